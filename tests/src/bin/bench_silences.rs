//! Alert intake with silences in force (#12 item 2: a silence's regex must not stall
//! intake).
//!
//! ```text
//! cargo run --release -p klaxon-tests --bin bench-silences -- [--alerts 2000] [--silences 50] [--rounds 5] [--postgres]
//! ```
//!
//! The in-process bot (SQLite, or PostgreSQL at `KLAXON_TEST_PG_URL` with
//! `--postgres`) takes `--rounds` notifications of `--alerts` new firing alerts each,
//! first with no silence, then with `--silences` silences in force (a third of them
//! regexes of the kind that stalled intake when every regex was compiled per
//! alert: `(?-u)\w{40}QQ`, `.*a.*b.*c.*d`), none matching, so every alert is
//! grouped as usual. Reported: the time the intake took to answer each notification
//! (median and max), both ways. Target: under 200 ms for 2,000 alerts with 50
//! silences.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use klaxon::config::Secret;
use klaxon_core::alerts::silence;
use klaxon_tests::{bench, Db, Tester};
use serde_json::json;

const TOKEN: &str = "bench-token";

async fn round(t: &Tester, tag: &str, round: usize, alerts: usize) -> anyhow::Result<Duration> {
    let list: Vec<serde_json::Value> = (0..alerts)
        .map(|i| {
            json!({"name": format!("Load{:02}", i % 20), "service": "batch", "severity": "info",
                   "summary": "load", "labels": {"instance": format!("{tag}-{round}-{i}")}})
        })
        .collect();
    let body = serde_json::to_vec(&json!({ "alerts": list }))?;
    let started = Instant::now();
    let r = reqwest::Client::new()
        .post(format!("http://{}/alerts/generic", t.bot().http_addr))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let took = started.elapsed();
    anyhow::ensure!(r.status().is_success(), "intake answered {}", r.status());
    Ok(took)
}

fn summary(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1_000.0;
    (ms(v[v.len() / 2]), ms(v[v.len() - 1]))
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(ok) => {
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("bench-silences: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<bool> {
    const USAGE: &str =
        "usage: bench-silences [--alerts N] [--silences N] [--rounds N] [--postgres]";
    let flags = bench::Flags::from_env(
        USAGE,
        &["--alerts", "--silences", "--rounds"],
        &["--postgres"],
    )
    .map_err(anyhow::Error::msg)?;
    let number = |f: &str, default: usize| -> anyhow::Result<usize> {
        Ok(flags
            .number(f)
            .map_err(anyhow::Error::msg)?
            .unwrap_or(default))
    };
    let alerts = number("--alerts", 2_000)?;
    let silences = number("--silences", 50)?;
    let rounds = number("--rounds", 5)?.max(1);
    let db = if flags.is_set("--postgres") {
        Db::Postgres
    } else {
        Db::Sqlite
    };
    let t = Tester::builder()
        .db(db)
        .intake(|i| i.generic_token = Secret::new(TOKEN))
        .alerts(|a| a.group_wait_secs = 3_600)
        .spawn()
        .await;
    let mut without = Vec::new();
    for r in 0..rounds {
        without.push(round(&t, "plain", r, alerts).await?);
    }
    let app = &t.bot().app;
    let now = app.clock.now_ms();
    for i in 0..silences {
        let text = match i % 3 {
            0 => format!(r"alertname=~(?-u)\w{{40}}QQ{i}"),
            1 => format!("alertname=~.*a.*b.*c.*d{i} service=~api|web"),
            _ => format!("team=payments{i}"),
        };
        let m = silence::parse_matchers(&text).map_err(anyhow::Error::msg)?;
        silence::create(
            &app.store,
            &m,
            "bench",
            "bench",
            now,
            now + 3_600_000,
            false,
        )
        .await?;
    }
    let mut with = Vec::new();
    for r in 0..rounds {
        with.push(round(&t, "silenced", r, alerts).await?);
    }
    let ms = |v: &[Duration]| {
        v.iter()
            .map(|d| format!("{:.0}", d.as_secs_f64() * 1_000.0))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("  each notification, no silence (ms): {}", ms(&without));
    println!(
        "  each notification, {silences} silences (ms): {}",
        ms(&with)
    );
    let (p50a, maxa) = summary(without);
    let (p50b, maxb) = summary(with);
    println!("bench-silences ({db:?}): {rounds} notifications of {alerts} alerts each");
    println!("  no silence:          median {p50a:.1} ms, max {maxa:.1} ms");
    println!(
        "  {silences} silences in force: median {p50b:.1} ms, max {maxb:.1} ms (target < 200 ms)"
    );
    t.fake.discard_outputs();
    t.finish().await;
    Ok(true)
}
