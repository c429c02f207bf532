//! Rollback overhead: Confirm to healthy through Klaxon, against the same change
//! done by hand (`docker stop` + `docker run` of the same image with the same
//! health check).
//!
//! ```text
//! eval "$(scripts/test.sh --env-only)"          # once: the private dockerd
//! cargo run --release -p klaxon-tests --bin bench-rollback -- --rounds 5 --stop-timeout 1
//! ```
//!
//! - Klaxon: one service whose container (health check `true` every 500 ms) is
//!   rolled between `v2` and `v1`, `--rounds` times, through the fake Discord and the
//!   in-process bot: `/rollback`, then a Confirm click. "Healthy" is the `healthy`
//!   step of the deployment history (written the moment Klaxon saw it), measured
//!   from the click; "done" is the final progress edit (old container removed,
//!   history closed, Discord edited).
//! - By hand: a container of the same image and health check; `docker stop -t N`,
//!   then `docker run -d` of the other image with the same health check, polled
//!   every 20 ms until Docker reports it healthy.
//!
//! Both stop with the same timeout: the test images' shell ignores SIGTERM, so
//! every stop costs the whole `--stop-timeout` on both sides.
//!
//! Prints medians and writes `target/bench/rollback.json`. The 1.2x target is
//! reported as met or missed; the exit code is 1 only when a round failed.

use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use klaxon_core::deployments;
use klaxon_core::permissions::Level;
use klaxon_fake_discord::OutputKind;
use klaxon_tests::docker::{Containers, Spec};
use klaxon_tests::{bench, env, Tester};
use serde_json::json;

const TARGET_RATIO: f64 = 1.2;
const USAGE: &str = "usage: bench-rollback [--rounds N] [--stop-timeout SECS]  (defaults 5, 1)";

struct Args {
    rounds: usize,
    stop_timeout: u64,
}

fn parse_args() -> Result<Args, String> {
    let f = bench::Flags::from_env(USAGE, &["--rounds", "--stop-timeout"], &[])?;
    Ok(Args {
        rounds: f.positive("--rounds")?.map_or(5, |n| n as usize),
        stop_timeout: f.number("--stop-timeout")?.unwrap_or(1),
    })
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn docker(host: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = std::process::Command::new("docker")
        .args(["-H", host])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running the docker CLI")?;
    if !out.status.success() {
        bail!(
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

async fn health(c: &Containers, name: &str) -> String {
    c.docker
        .inspect_container(name, None)
        .await
        .ok()
        .and_then(|i| i.state)
        .and_then(|s| s.health)
        .and_then(|h| h.status)
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// Milliseconds from `docker stop` to the replacement being healthy.
async fn by_hand(c: &mut Containers, round: usize, stop_timeout: u64) -> anyhow::Result<f64> {
    let (from, to) = if round & 1 == 0 {
        ("v2", "v1")
    } else {
        ("v1", "v2")
    };
    let old = c.run("manual", Spec::new(from).health("true")).await;
    c.wait_health(&old, "healthy").await;
    let new = env::unique("manual-new").replace('_', "-");
    let host = c.host().to_string();
    let t = stop_timeout.to_string();
    let started = Instant::now();
    docker(&host, &["stop", "-t", &t, &old])?;
    docker(
        &host,
        &[
            "run",
            "-d",
            "--name",
            &new,
            "--network",
            "none",
            "--health-cmd",
            "true",
            "--health-interval",
            "500ms",
            "--health-timeout",
            "1s",
            "--health-retries",
            "1",
            &env::image(to),
        ],
    )?;
    let healthy = loop {
        if health(c, &new).await == "healthy" {
            break started.elapsed();
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("{new} never became healthy");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let _ = docker(&host, &["rm", "-f", &new]);
    Ok(healthy.as_secs_f64() * 1_000.0)
}

struct KlaxonRound {
    healthy_ms: f64,
    done_ms: f64,
}

async fn through_klaxon(t: &Tester, round: usize) -> anyhow::Result<KlaxonRound> {
    let to = if round & 1 == 0 { "v1" } else { "v2" };
    let plan = t
        .slash("rollback")
        .opt("service", "api")
        .opt("to", to)
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await;
    let confirm = plan
        .message
        .custom_ids()
        .into_iter()
        .find(|id| id.starts_with("rollback:confirm:"))
        .context("no Confirm button in the plan")?;
    let clicked_ms = now_ms();
    let click = t
        .fake
        .click(
            Tester::member(Some(Level::Operator)),
            &plan.message,
            &confirm,
        )
        .await?;
    let id = click.id;
    t.take(
        "the click's callback",
        |o| matches!(o.kind, OutputKind::Callback { interaction_id, .. } if interaction_id == id),
    )
    .await;
    let done = loop {
        let o = t
            .take("a progress edit", |o| {
                matches!(o.kind, OutputKind::EditOriginal { interaction_id } if interaction_id == id)
            })
            .await;
        let text = o.message.text();
        if text.contains("Done in") {
            break o.at.saturating_duration_since(click.dispatched_at);
        }
        if text.contains("Reverted:") || text.contains('❌') {
            bail!("round {round} did not succeed: {text}");
        }
    };
    let store = &t.bot().app.store;
    let row = deployments::recent(store, "api", 1)
        .await?
        .into_iter()
        .next()
        .context("no deployment row")?;
    let healthy_at = deployments::steps(store, row.id)
        .await?
        .into_iter()
        .find(|s| s.step == "healthy")
        .context("no healthy step")?
        .at_ms;
    Ok(KlaxonRound {
        healthy_ms: (healthy_at - clicked_ms) as f64,
        done_ms: done.as_secs_f64() * 1_000.0,
    })
}

async fn run(args: &Args) -> anyhow::Result<serde_json::Value> {
    let mut c = Containers::new().await;
    let name = c.run("api", Spec::new("v2").health("true")).await;
    c.wait_health(&name, "healthy").await;
    let stop_timeout = args.stop_timeout;
    let t = Tester::builder()
        .docker_host(c.host())
        .service("api", Some(&name), None)
        .rollback(|r| {
            r.stop_timeout_secs = stop_timeout;
            r.health_timeout_secs = 30;
        })
        .spawn()
        .await;
    let (mut healthy, mut done, mut manual) = (Vec::new(), Vec::new(), Vec::new());
    let mut failure = None;
    for round in 0..args.rounds {
        // Alternate, so that neither side always runs on a warmer engine.
        match by_hand(&mut c, round, stop_timeout).await {
            Ok(ms) => manual.push(ms),
            Err(e) => {
                failure = Some(format!("by hand, round {round}: {e:#}"));
                break;
            }
        }
        match through_klaxon(&t, round).await {
            Ok(r) => {
                healthy.push(r.healthy_ms);
                done.push(r.done_ms);
            }
            Err(e) => {
                failure = Some(format!("Klaxon, round {round}: {e:#}"));
                break;
            }
        }
        println!(
            "round {round}: by hand {:.0} ms; Klaxon healthy {:.0} ms, done {:.0} ms",
            manual.last().copied().unwrap_or(f64::NAN),
            healthy.last().copied().unwrap_or(f64::NAN),
            done.last().copied().unwrap_or(f64::NAN),
        );
    }
    t.finish().await;
    c.cleanup().await;
    if let Some(f) = failure {
        bail!(f);
    }
    let (m, h, d) = (median(&manual), median(&healthy), median(&done));
    let ratio = h / m;
    println!();
    println!(
        "rollback overhead ({} rounds, stop timeout {stop_timeout} s, health check every 500 ms)",
        args.rounds
    );
    println!("  by hand (docker stop + docker run, to healthy): median {m:.0} ms");
    println!("  Klaxon (Confirm click to healthy):              median {h:.0} ms  ({ratio:.2}x, target {TARGET_RATIO}x: {})",
        if ratio <= TARGET_RATIO { "met" } else { "missed" });
    println!(
        "  Klaxon (Confirm click to the final edit):       median {d:.0} ms  ({:.2}x)",
        d / m
    );
    Ok(json!({
        "rounds": args.rounds,
        "stop_timeout_secs": stop_timeout,
        "by_hand_ms": manual,
        "klaxon_healthy_ms": healthy,
        "klaxon_done_ms": done,
        "median_by_hand_ms": m,
        "median_klaxon_healthy_ms": h,
        "median_klaxon_done_ms": d,
        "ratio_healthy": ratio,
        "ratio_done": d / m,
        "target_ratio": TARGET_RATIO,
        "target_met": ratio <= TARGET_RATIO,
    }))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&args).await {
        Ok(report) => {
            let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
            let dir = manifest.parent().unwrap_or(manifest).join("target/bench");
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join("rollback.json");
            match serde_json::to_string_pretty(&report) {
                Ok(s) => match std::fs::write(&path, s) {
                    Ok(()) => println!("  report: {}", path.display()),
                    Err(e) => eprintln!("could not write {}: {e}", path.display()),
                },
                Err(e) => eprintln!("could not serialize the report: {e}"),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench-rollback failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}
