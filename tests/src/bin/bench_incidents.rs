//! Incidents, as a rerunnable benchmark.
//!
//! ```text
//! eval "$(scripts/test.sh --env-only)"          # once: PostgreSQL for the second run
//! cargo run --release -p klaxon-tests --bin bench-incidents -- [--entries 10000] [--notes 200] [--concurrency 20]
//! ```
//!
//! - A: post-mortem generation (read incident, timeline and actions, render the
//!   Markdown, store it) for an incident with `--entries` timeline entries and 50
//!   actions, 20 times, on SQLite and (when `KLAXON_TEST_PG_URL` is set) PostgreSQL.
//!   Target: under 200 ms.
//! - B: `/incident note` through the fake Discord and the in-process bot: `--notes`
//!   invocations with at most `--concurrency` in flight, INTERACTION_CREATE to the
//!   interaction callback. Target: p99 under 300 ms (always under the 3 s deadline).
//!
//! Prints a report and writes `target/bench/incidents.json`. Exits 1 when a target is
//! missed, a note was lost, or the fake counted a broken Discord rule.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt as _;
use klaxon_core::actor::Actor;
use klaxon_core::incidents::{postmortem, EntryKind, IncidentId, Severity};
use klaxon_core::permissions::Level;
use klaxon_core::store::incidents::{self as db, NewEntry, NewIncident};
use klaxon_core::store::Store;
use klaxon_tests::bench::{self, ms, percentile};
use klaxon_tests::tester::INCIDENTS;
use klaxon_tests::{env, Tester};
use serde_json::json;

const POSTMORTEM_TARGET: Duration = Duration::from_millis(200);
const NOTE_P99_TARGET: Duration = Duration::from_millis(300);
const USAGE: &str = "usage: bench-incidents [--entries N] [--notes N] [--concurrency N]";

struct Args {
    entries: usize,
    notes: usize,
    concurrency: usize,
}

fn parse_args() -> Result<Args, String> {
    let f = bench::Flags::from_env(USAGE, &["--entries", "--notes", "--concurrency"], &[])?;
    Ok(Args {
        entries: f
            .number::<usize>("--entries")?
            .map_or(10_000, |n| n.clamp(1, 200_000)),
        notes: f
            .number::<usize>("--notes")?
            .map_or(200, |n| n.clamp(1, 5_000)),
        concurrency: f
            .number::<usize>("--concurrency")?
            .map_or(20, |n| n.clamp(1, 100)),
    })
}

/// A: an incident with `entries` timeline entries, then 20 post-mortems of it.
async fn postmortem_on(url: &str, entries: usize) -> anyhow::Result<serde_json::Value> {
    let store = Store::connect(url).await.context("connecting")?;
    store.migrate().await.context("migrating")?;
    let who = Actor::member(42, "alice");
    let start = 1_796_133_780_000_i64;
    let incident = db::insert(
        &store,
        &NewIncident {
            title: "Checkout API down".into(),
            severity: Severity::P1,
            service: Some("api".into()),
            summary: "Checkout failed for every customer".into(),
            guild_id: None,
            commander: who.clone(),
            opened_ms: start,
            next_page_ms: None,
            next_update_ms: None,
            public: true,
        },
    )
    .await?;
    let id = incident.id;
    let load = Instant::now();
    // Filled 8 at a time so the set-up itself stays quick on both backends.
    let kinds = [
        EntryKind::Note,
        EntryKind::Status,
        EntryKind::Command,
        EntryKind::Message,
    ];
    futures::stream::iter(1..entries)
        .map(|n| {
            let store = &store;
            let who = &who;
            async move {
                let e = NewEntry::new(
                    kinds[n % kinds.len()],
                    start + n as i64 * 1_000,
                    who,
                    format!(
                        "entry {n}: error rate at {}% on api-{}, rolling pods",
                        n % 97,
                        n % 7
                    ),
                );
                db::add_entry(store, id, &e).await
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    for n in 0..50 {
        db::add_action(&store, id, &format!("follow-up {n}"), &who, start).await?;
    }
    let fill = load.elapsed();
    let total = db::timeline(&store, id).await?.len();
    anyhow::ensure!(total >= entries, "only {total} entries were stored");
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..20 {
        let t = Instant::now();
        let (_, md) = postmortem::generate_in(&store, id, start).await?;
        times.push(t.elapsed());
        size = md.len();
    }
    store.close().await;
    times.sort_unstable();
    Ok(json!({
        "entries": total,
        "fill_ms": ms(fill),
        "markdown_bytes": size,
        "p50_ms": ms(percentile(&times, 50.0)),
        "max_ms": ms(*times.last().unwrap_or(&Duration::ZERO)),
        "met": *times.last().unwrap_or(&Duration::MAX) < POSTMORTEM_TARGET,
    }))
}

/// B: `/incident note` latency with `concurrency` in flight.
async fn note_latency(notes: usize, concurrency: usize) -> anyhow::Result<serde_json::Value> {
    let t = Tester::builder().spawn().await;
    let open = t
        .slash("incident open")
        .opt("title", "Bench incident")
        .opt("severity", 2) // P3: no page
        .as_level(Level::Responder)
        .send()
        .await
        .reply()
        .await;
    anyhow::ensure!(
        open.text().contains("INC-1"),
        "open failed: {}",
        open.text()
    );
    let thread = klaxon_core::incidents::get(&t.bot().app, IncidentId(1))
        .await?
        .channel_id
        .context("no thread")?;
    t.channel_message(thread).await;
    t.channel_message(INCIDENTS).await;
    let started = Instant::now();
    let replies: Vec<klaxon_tests::Reply> = futures::stream::iter(0..notes)
        .map(|n| {
            let t = &t;
            async move {
                t.slash("incident note")
                    .opt("text", format!("note {n}"))
                    .in_channel(thread)
                    .as_level(Level::Responder)
                    .send()
                    .await
                    .reply()
                    .await
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let wall = started.elapsed();
    let mut acks: Vec<Duration> = replies.iter().map(|r| r.ack_latency).collect();
    acks.sort_unstable();
    let ok = replies
        .iter()
        .filter(|r| r.text().contains("Noted in INC-1"))
        .count();
    let stored = klaxon_core::incidents::timeline(&t.bot().app, IncidentId(1))
        .await?
        .1
        .iter()
        .filter(|e| e.kind == EntryKind::Note)
        .count();
    let violations = t.fake.violations().total();
    t.finish().await;
    let p99 = percentile(&acks, 99.0);
    Ok(json!({
        "notes": notes,
        "concurrency": concurrency,
        "answered": ok,
        "stored": stored,
        "wall_s": wall.as_secs_f64(),
        "p50_ms": ms(percentile(&acks, 50.0)),
        "p99_ms": ms(p99),
        "max_ms": ms(*acks.last().unwrap_or(&Duration::ZERO)),
        "violations": violations,
        "met": p99 < NOTE_P99_TARGET && ok == notes && stored == notes && violations == 0,
    }))
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let dir = tempfile::tempdir()?;
    let mut report = json!({});
    let mut met = true;
    let sqlite = postmortem_on(&env::sqlite_url(dir.path()), args.entries).await?;
    println!(
        "A post-mortem, SQLite: {} entries, {} bytes of Markdown: p50 {:.1} ms, max {:.1} ms (target < 200 ms: {})",
        sqlite["entries"], sqlite["markdown_bytes"], sqlite["p50_ms"].as_f64().unwrap_or(0.0),
        sqlite["max_ms"].as_f64().unwrap_or(0.0),
        if sqlite["met"].as_bool() == Some(true) { "met" } else { "MISSED" }
    );
    met &= sqlite["met"].as_bool() == Some(true);
    report["postmortem_sqlite"] = sqlite;
    if std::env::var("KLAXON_TEST_PG_URL").is_ok() {
        let pg = postmortem_on(&env::fresh_pg_database().await, args.entries).await?;
        println!(
            "A post-mortem, PostgreSQL: {} entries: p50 {:.1} ms, max {:.1} ms (target < 200 ms: {})",
            pg["entries"],
            pg["p50_ms"].as_f64().unwrap_or(0.0),
            pg["max_ms"].as_f64().unwrap_or(0.0),
            if pg["met"].as_bool() == Some(true) { "met" } else { "MISSED" }
        );
        met &= pg["met"].as_bool() == Some(true);
        report["postmortem_postgres"] = pg;
    } else {
        println!("A post-mortem, PostgreSQL: skipped (KLAXON_TEST_PG_URL not set; see the header)");
    }
    let notes = note_latency(args.notes, args.concurrency).await?;
    println!(
        "B /incident note: {} with {} in flight, {} answered, {} stored: callback p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (target p99 < 300 ms: {}); Discord violations {}",
        notes["notes"], notes["concurrency"], notes["answered"], notes["stored"],
        notes["p50_ms"].as_f64().unwrap_or(0.0), notes["p99_ms"].as_f64().unwrap_or(0.0),
        notes["max_ms"].as_f64().unwrap_or(0.0),
        if notes["met"].as_bool() == Some(true) { "met" } else { "MISSED" },
        notes["violations"]
    );
    met &= notes["met"].as_bool() == Some(true);
    report["note"] = notes;
    std::fs::create_dir_all("target/bench")?;
    std::fs::write(
        "target/bench/incidents.json",
        serde_json::to_string_pretty(&report)?,
    )?;
    Ok(met)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench-incidents: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench-incidents: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(true) => {
            println!("PASS");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("FAIL: a target was missed");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("bench-incidents: {e:#}");
            ExitCode::FAILURE
        }
    }
}
