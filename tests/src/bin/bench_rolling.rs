//! Rolling rollback overhead: a 3-replica compose service rolled through Klaxon,
//! against the same steps done by hand with the docker CLI, replica after replica
//! (`docker stop`, `docker rm`, `docker run` of the other image with the same
//! labels and health check, wait until Docker reports it healthy).
//!
//! ```text
//! eval "$(scripts/test.sh --env-only)"          # once: the private dockerd
//! cargo run --release -p klaxon-tests --bin bench-rolling -- --rounds 3 --stop-timeout 1
//! ```
//!
//! - Klaxon: `/rollback` of the compose service through the fake Discord and the
//!   in-process bot, then a Confirm click; measured from the click to the `healthy`
//!   step of the last replica in the deployment history (Klaxon then removes the
//!   kept originals, which the hand-made version did as it went), and to the final
//!   progress edit.
//! - By hand: a second project of three replicas, the same image and health check.
//!
//! Both stop with the same timeout: the test images' shell ignores SIGTERM, so
//! every stop costs the whole `--stop-timeout` on both sides. Prints medians and
//! writes `target/bench/rolling.json`; the 1.2x target is reported as met or missed.

use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use klaxon_core::permissions::Level;
use klaxon_core::store::deployments;
use klaxon_fake_discord::OutputKind;
use klaxon_tests::{bench, env, Tester};
use serde_json::json;

const TARGET_RATIO: f64 = 1.2;
const REPLICAS: u32 = 3;
const USAGE: &str = "usage: bench-rolling [--rounds N] [--stop-timeout SECS]  (defaults 3, 1)";

struct Args {
    rounds: usize,
    stop_timeout: u64,
}

fn parse_args() -> Result<Args, String> {
    let f = bench::Flags::from_env(USAGE, &["--rounds", "--stop-timeout"], &[])?;
    Ok(Args {
        rounds: f.positive("--rounds")?.map_or(3, |n| n as usize),
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

fn docker(host: &str, args: &[&str]) -> anyhow::Result<String> {
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
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `docker run` of replica `n` of `project/api` on `tag`, as compose runs it.
fn run_replica(host: &str, project: &str, n: u32, tag: &str) -> anyhow::Result<String> {
    let name = format!("{project}-api-{n}");
    let labels = [
        format!("com.docker.compose.project={project}"),
        "com.docker.compose.service=api".to_string(),
        format!("com.docker.compose.container-number={n}"),
    ];
    let image = env::image(tag);
    let mut args = vec!["run", "-d", "--name", &name, "--network", "none"];
    for l in &labels {
        args.extend(["--label", l.as_str()]);
    }
    args.extend([
        "--health-cmd",
        "true",
        "--health-interval",
        "500ms",
        "--health-timeout",
        "1s",
        "--health-retries",
        "1",
        &image,
    ]);
    docker(host, &args)?;
    Ok(name)
}

fn wait_healthy(host: &str, name: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let status = docker(host, &["inspect", "-f", "{{.State.Health.Status}}", name])?;
        if status == "healthy" {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("{name} never became healthy (last: {status})");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn remove_project(host: &str, project: &str) {
    let filter = format!("label=com.docker.compose.project={project}");
    if let Ok(ids) = docker(host, &["ps", "-aq", "--filter", &filter]) {
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            let _ = docker(host, &args);
        }
    }
}

/// Milliseconds for the three replicas, one after the other, by hand.
fn by_hand(host: &str, round: usize, stop_timeout: u64) -> anyhow::Result<f64> {
    let (from, to) = if round & 1 == 0 {
        ("v2", "v1")
    } else {
        ("v1", "v2")
    };
    let project = env::unique("benchhand").replace('_', "-").to_lowercase();
    for n in 1..=REPLICAS {
        run_replica(host, &project, n, from)?;
    }
    for n in 1..=REPLICAS {
        wait_healthy(host, &format!("{project}-api-{n}"))?;
    }
    let t = stop_timeout.to_string();
    let started = Instant::now();
    let result = (|| {
        for n in 1..=REPLICAS {
            let name = format!("{project}-api-{n}");
            docker(host, &["stop", "-t", &t, &name])?;
            docker(host, &["rm", &name])?;
            run_replica(host, &project, n, to)?;
            wait_healthy(host, &name)?;
        }
        Ok::<(), anyhow::Error>(())
    })();
    let took = started.elapsed();
    remove_project(host, &project);
    result?;
    Ok(took.as_secs_f64() * 1_000.0)
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
        .opt("to", env::image(to))
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
        .with_context(|| format!("no Confirm button in the plan: {}", plan.text()))?;
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
        .filter(|s| s.step == "healthy")
        .map(|s| s.at_ms)
        .max()
        .context("no healthy step")?;
    Ok(KlaxonRound {
        healthy_ms: (healthy_at - clicked_ms) as f64,
        done_ms: done.as_secs_f64() * 1_000.0,
    })
}

async fn run(args: &Args) -> anyhow::Result<serde_json::Value> {
    let host = env::docker_host();
    let project = env::unique("benchroll").replace('_', "-").to_lowercase();
    for n in 1..=REPLICAS {
        run_replica(&host, &project, n, "v2")?;
    }
    for n in 1..=REPLICAS {
        wait_healthy(&host, &format!("{project}-api-{n}"))?;
    }
    let stop_timeout = args.stop_timeout;
    let t = Tester::builder()
        .docker_host(&host)
        .compose_service("api", &format!("{project}/api"))
        .rollback(|r| {
            r.stop_timeout_secs = stop_timeout;
            r.health_timeout_secs = 30;
        })
        .spawn()
        .await;
    let (mut healthy, mut done, mut manual) = (Vec::new(), Vec::new(), Vec::new());
    let mut failure = None;
    for round in 0..args.rounds {
        match by_hand(&host, round, stop_timeout) {
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
    remove_project(&host, &project);
    if let Some(f) = failure {
        bail!(f);
    }
    let (m, h, d) = (median(&manual), median(&healthy), median(&done));
    let ratio = h / m;
    println!();
    println!(
        "rolling rollback of {REPLICAS} replicas ({} rounds, stop timeout {stop_timeout} s, health check every 500 ms)",
        args.rounds
    );
    println!("  by hand (stop, rm, run, healthy; per replica): median {m:.0} ms");
    println!("  Klaxon (Confirm click to the last healthy):     median {h:.0} ms  ({ratio:.2}x, target {TARGET_RATIO}x: {})",
        if ratio <= TARGET_RATIO { "met" } else { "missed" });
    println!(
        "  Klaxon (Confirm click to the final edit):       median {d:.0} ms  ({:.2}x)",
        d / m
    );
    Ok(json!({
        "rounds": args.rounds,
        "replicas": REPLICAS,
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
            let path = dir.join("rolling.json");
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
            eprintln!("bench-rolling failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}
