//! Alert intake and delivery under a burst, against the fake Discord enforcing
//! Discord's real limits.
//!
//! ```text
//! cargo run --release -p klaxon-tests --bin bench-alerts -- [--alerts 10000] [--seconds 10] [--replicas N] [--prune-history N]
//! ```
//!
//! `--prune-history N` (#18: intake while old rows are pruned): before the burst the
//! database gets a history of N alerts (with N/10 audit rows and N/200 incidents)
//! over the last 400 days (`klaxon_tests::year`); halfway through the burst the real
//! pruner starts on it with the default `[retention]` (the bot's own pruner is set to
//! keep everything, so it stays out of the way). Reported besides: intake p99 of the
//! notifications sent before pruning (idle) and of those sent while it ran, and
//! their ratio (target <= 2x).
//!
//! `--replicas N` runs on PostgreSQL (`KLAXON_TEST_PG_URL`) with N replicas on one
//! database: the notifications go round-robin to every replica's intake, the leader
//! delivers; with N >= 2 the leader is then killed and the failover time measured
//! (leader killed -> first alert posted by the new leader).
//!
//! The in-process bot (SQLite), `[alerts]` at their defaults but `group_interval_secs
//! = 10` (so the run drains in well under a minute; Alertmanager's own default is 5 m).
//! `--alerts` Alertmanager alerts arrive in 100-alert notifications spread evenly over
//! `--seconds`, from 20 groups (alertname) routed to 3 channels (by `team`), plus one P1
//! (a route with `severity = "P1"`) in the middle.
//!
//! Reported: intake throughput (alerts over the time the intake spent answering) and
//! p99 notification latency; Discord requests made for the alert channels against
//! the minimum needed to show the final state of every group (one request per
//! message of its last render); 429s; the P1's time from its POST to its message;
//! the time from the last POST until every group's last render was delivered; the
//! process's peak RSS (bot and fake together); the number of series in `/metrics`
//! after the burst (< 500) and its render time (< 5 ms). Writes
//! `target/bench/alerts.json`.
//! Exits 1 when the fake counted a broken Discord rule or an alert went missing.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use klaxon_core::incidents::Severity;
use klaxon_core::routing::RouteConfig;
use klaxon_fake_discord::OutputKind;
use klaxon_tests::{bench, Tester};
use serde_json::json;

const CHANNELS: [u64; 3] = [111, 333, 444];
const GROUPS: usize = 20;
const PER_POST: usize = 100;
const TOKEN: &str = "bench-token";

fn payload(batch: usize, alerts: usize) -> serde_json::Value {
    let list: Vec<serde_json::Value> = (0..alerts)
        .map(|i| {
            let n = batch * PER_POST + i;
            let g = n % GROUPS;
            json!({
                "status": "firing",
                "labels": {"alertname": format!("Group{g:02}"), "team": format!("t{}", g % 3),
                           "instance": format!("host-{n:05}"), "severity": "warning"},
                "annotations": {"summary": format!("disk usage at {}% on host-{n:05}", 80 + n % 20)},
                "startsAt": "2026-12-01T14:03:00Z", "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus/graph", "fingerprint": format!("fp{n:06}")
            })
        })
        .collect();
    json!({"version": "4", "status": "firing", "receiver": "klaxon", "groupKey": "bench",
           "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
           "externalURL": "http://am", "truncatedAlerts": 0, "alerts": list})
}

async fn run(total: usize, seconds: u64, replicas: usize, history: usize) -> anyhow::Result<bool> {
    let db = if replicas == 0 {
        klaxon_tests::Db::Sqlite
    } else {
        klaxon_tests::Db::Postgres
    };
    let mut t = Tester::builder()
        .db(db)
        .intake(|i| i.alertmanager_token = klaxon::config::Secret::new(TOKEN))
        .retention(|r| {
            if history > 0 {
                // The bench runs the pruner itself, at the moment it chooses.
                r.alerts_days = 36_500;
                r.outbox_days = 36_500;
                r.audit_days = 36_500;
                r.deployments_days = 36_500;
            }
        })
        .alerts(|a| {
            a.group_interval_secs = 10;
            for (i, ch) in CHANNELS.iter().enumerate() {
                a.routes.push(RouteConfig {
                    matchers: [("team".to_string(), format!("t{i}"))]
                        .into_iter()
                        .collect(),
                    channel: Some(*ch),
                    ..Default::default()
                });
            }
            a.routes.insert(
                0,
                RouteConfig {
                    matchers: [("alertname".to_string(), "CheckoutDown".to_string())]
                        .into_iter()
                        .collect(),
                    channel: Some(CHANNELS[0]),
                    severity: Some(Severity::P1),
                    ..Default::default()
                },
            );
        })
        .spawn()
        .await;
    let mut followers = Vec::new();
    for _ in 1..replicas {
        followers.push(klaxon::start(t.config.clone()).await?);
    }
    let urls: Vec<String> = std::iter::once(t.bot().http_addr)
        .chain(followers.iter().map(|f| f.http_addr))
        .map(|a| format!("http://{a}/alerts/alertmanager"))
        .collect();
    let url = urls[0].clone();
    let client = reqwest::Client::new();
    if history > 0 {
        let store = &t.bot().app.store;
        let span = klaxon_tests::year::SPAN_DAYS * klaxon_core::settings::retention::DAY_MS;
        let size = klaxon_tests::year::Size {
            alerts: history,
            incidents: history / 200,
            audit: history / 10,
            pending: false,
        };
        let filled = klaxon_tests::year::fill(
            store,
            chrono::Utc::now().timestamp_millis() - span,
            size,
            &Default::default(),
        )
        .await?;
        println!(
            "history: {history} alerts, {} audit rows, {} incidents over 400 days, written in {:.1} s",
            history / 10,
            history / 200,
            filled.filling.as_secs_f64()
        );
    }
    let burst_start_ms = chrono::Utc::now().timestamp_millis();
    // 0: not started, 1: running, 2: done.
    let pruning = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(0));
    let mut pruner = None;
    let mut idle = Vec::new();
    let mut during = Vec::new();
    let posts = total.div_ceil(PER_POST);
    let gap = Duration::from_secs_f64(seconds as f64 / posts as f64);
    let mut latencies = Vec::with_capacity(posts);
    let mut p1_sent = None;
    let started = Instant::now();
    for b in 0..posts {
        let due = started + gap * b as u32;
        tokio::time::sleep_until(due.into()).await;
        let n = PER_POST.min(total - b * PER_POST);
        let body = serde_json::to_vec(&payload(b, n))?;
        if history > 0 && b == posts / 2 {
            let store = t.bot().app.store.clone();
            let flag = std::sync::Arc::clone(&pruning);
            flag.store(1, std::sync::atomic::Ordering::SeqCst);
            pruner = Some(tokio::spawn(async move {
                let mut pacer = klaxon_core::retention::Pacer::default();
                let started = Instant::now();
                let r = klaxon_core::retention::prune(
                    &store,
                    &Default::default(),
                    chrono::Utc::now().timestamp_millis(),
                    &mut pacer,
                )
                .await;
                flag.store(2, std::sync::atomic::Ordering::SeqCst);
                (r, pacer, started.elapsed())
            }));
        }
        let state = pruning.load(std::sync::atomic::Ordering::SeqCst);
        let t0 = Instant::now();
        let r = client
            .post(&urls[b % urls.len()])
            .bearer_auth(TOKEN)
            .body(body)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "intake answered {}", r.status());
        latencies.push(t0.elapsed());
        match (state, pruning.load(std::sync::atomic::Ordering::SeqCst)) {
            (0, _) => idle.push(t0.elapsed()),
            (1, 1) => during.push(t0.elapsed()),
            _ => {}
        }
        if b == posts / 2 {
            let p1 = json!({"version": "4", "status": "firing", "receiver": "k", "groupKey": "p1",
                "alerts": [{"status": "firing", "labels": {"alertname": "CheckoutDown", "service": "checkout"},
                            "annotations": {"summary": "checkout 5xx at 80%"}, "fingerprint": "p1"}]});
            p1_sent = Some(Instant::now());
            let r = client
                .post(&url)
                .bearer_auth(TOKEN)
                .json(&p1)
                .send()
                .await?;
            anyhow::ensure!(r.status().is_success(), "P1 intake answered {}", r.status());
        }
    }
    let last_post = Instant::now();
    // Drained: every group rendered and nothing left to send.
    let drain_deadline = last_post + Duration::from_secs(120);
    loop {
        let pending: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM outbox WHERE state = 'pending') + \
             (SELECT COUNT(*) FROM alert_groups WHERE due_ms IS NOT NULL)",
        )
        .fetch_one(t.bot().app.store.pool())
        .await?;
        if pending == 0 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < drain_deadline,
            "not drained after 120 s ({pending} left)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drained = last_post.elapsed();
    // Cardinality (issue #19): the scrape after the burst, and how long the
    // registry takes to render it (the median of 21, after one refresh).
    let scrape = klaxon_tests::scrape::Scrape::get(t.bot().http_addr).await?;
    let mut renders: Vec<Duration> = (0..21)
        .map(|_| {
            let t0 = Instant::now();
            let text = t.bot().app.metrics.render();
            std::hint::black_box(text);
            t0.elapsed()
        })
        .collect();
    renders.sort_unstable();
    let render = renders[renders.len() / 2];
    let t0 = Instant::now();
    let _ = klaxon_tests::scrape::Scrape::get(t.bot().http_addr).await?;
    let scrape_ms = t0.elapsed().as_secs_f64() * 1000.0;
    // The P1's message.
    let mut p1_latency = None;
    let mut outputs = Vec::new();
    while let Some(o) = t.fake.next_output(Duration::from_millis(50)).await {
        outputs.push(o);
    }
    for o in &outputs {
        if matches!(o.kind, OutputKind::ChannelMessage { .. })
            && o.message.text().contains("CheckoutDown")
        {
            p1_latency = p1_sent.map(|s| o.at.saturating_duration_since(s));
        }
    }
    let requests: Vec<_> = t
        .fake
        .requests()
        .into_iter()
        .filter(|r| {
            CHANNELS
                .iter()
                .any(|c| r.path.contains(&format!("/channels/{c}/messages")))
                && (r.method == "POST" || r.method == "PATCH")
        })
        .collect();
    let made = requests.len();
    let too_many = requests.iter().filter(|r| r.status == 429).count();
    // The minimum: one request per message of each group's final render.
    let minimum: i64 = sqlx::query_scalar(
        "SELECT COALESCE(SUM(LENGTH(message_ids) - LENGTH(REPLACE(message_ids, ',', '')) + 1), 0) \
         FROM alert_groups WHERE message_ids <> '' AND created_ms >= $1",
    )
    .bind(burst_start_ms)
    .fetch_one(t.bot().app.store.pool())
    .await?;
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM alerts WHERE first_seen_ms >= $1")
        .bind(burst_start_ms)
        .fetch_one(t.bot().app.store.pool())
        .await?;
    let violations = t.fake.violations();
    latencies.sort_unstable();
    let intake_time: Duration = latencies.iter().sum();
    let p99 =
        latencies[((latencies.len() as f64 * 0.99).ceil() as usize).clamp(1, latencies.len()) - 1];
    let throughput = total as f64 / intake_time.as_secs_f64();
    let rss = bench::Memory::of_self().map(|m| m.hwm / 1024).unwrap_or(0);
    println!(
        "intake: {total} alerts in {posts} notifications over {seconds} s: {throughput:.0} alerts/s of intake time (target >= 5000), notification p99 {:.1} ms",
        p99.as_secs_f64() * 1000.0
    );
    println!(
        "Discord: {made} requests for a minimum of {minimum} ({:.2}x, target <= 1.1x); 429s {too_many} (target 0); violations {}",
        made as f64 / minimum.max(1) as f64,
        violations.total()
    );
    println!(
        "P1: {} from POST to message (target < 1 s); drained {:.1} s after the last POST; peak RSS {:.1} MiB; {stored} alerts stored",
        p1_latency.map_or("never".to_string(), |d| format!("{:.0} ms", d.as_secs_f64() * 1000.0)),
        drained.as_secs_f64(),
        rss as f64 / 1024.0
    );
    println!(
        "/metrics: {} series (target < 500); renders in {:.2} ms (median of 21, target < 5 ms); a cached scrape over HTTP {scrape_ms:.1} ms",
        scrape.series(),
        render.as_secs_f64() * 1000.0
    );
    let report = json!({
        "metrics_series": scrape.series(), "metrics_render_ms": render.as_secs_f64() * 1000.0,
        "alerts": total, "notifications": posts, "seconds": seconds,
        "intake_alerts_per_s": throughput, "notification_p99_ms": p99.as_secs_f64() * 1000.0,
        "discord_requests": made, "minimum_requests": minimum, "requests_429": too_many,
        "p1_ms": p1_latency.map(|d| d.as_secs_f64() * 1000.0),
        "drain_s": drained.as_secs_f64(), "peak_rss_mib": rss as f64 / 1024.0,
        "violations": violations.total(), "stored": stored,
    });
    std::fs::create_dir_all("target/bench")?;
    std::fs::write(
        "target/bench/alerts.json",
        serde_json::to_string_pretty(&report)?,
    )
    .context("writing the report")?;
    let mut ok = violations.total() == 0
        && stored as usize == total + 1
        && p1_latency.is_some()
        && scrape.series() < 500
        && render < Duration::from_millis(5);
    if let Some(task) = pruner {
        let (result, pacer, took) = task.await?;
        let report = result?;
        idle.sort_unstable();
        during.sort_unstable();
        let p_idle = bench::percentile(&idle, 99.0);
        let p_during = bench::percentile(&during, 99.0);
        let ratio = p_during.as_secs_f64() / p_idle.as_secs_f64().max(1e-6);
        let met = during.len() >= 10 && ratio <= 2.0;
        println!(
            "pruning during the burst: {} rows deleted in {:.1} s, longest lock {:.1} ms; intake p99 idle {:.1} ms ({} notifications), during pruning {:.1} ms ({} notifications): {ratio:.2}x (target <= 2x) {}",
            report.total(),
            took.as_secs_f64(),
            bench::ms_tenths(pacer.longest),
            bench::ms_tenths(p_idle),
            idle.len(),
            bench::ms_tenths(p_during),
            during.len(),
            bench::met(met)
        );
        if during.len() < 10 {
            println!("(pruning ended before 10 notifications were sent: raise --prune-history or --seconds)");
        }
        ok &= met;
    }
    drop(outputs);
    if !followers.is_empty() {
        // Failover: the leader dies, then a P1 comes in through a follower.
        let probe = json!({"version": "4", "status": "firing", "receiver": "k", "groupKey": "fo",
            "alerts": [{"status": "firing", "labels": {"alertname": "FailoverProbe", "severity": "critical"},
                        "annotations": {"summary": "posted by the new leader"}, "fingerprint": "failover"}]});
        let killed = Instant::now();
        t.bot.take().context("leader")?.kill().await;
        let r = client
            .post(&urls[1])
            .bearer_auth(TOKEN)
            .json(&probe)
            .send()
            .await?;
        anyhow::ensure!(
            r.status().is_success(),
            "probe intake answered {}",
            r.status()
        );
        let deadline = killed + Duration::from_secs(60);
        let failover = loop {
            let shown = CHANNELS
                .iter()
                .chain(std::iter::once(&klaxon_tests::tester::ALERTS))
                .any(|c| {
                    t.fake
                        .messages(*c)
                        .iter()
                        .any(|m| m.text().contains("FailoverProbe"))
                });
            if shown {
                break killed.elapsed();
            }
            anyhow::ensure!(Instant::now() < deadline, "no failover within 60 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        println!(
            "failover: leader killed -> first alert posted by the new leader in {:.1} s (target < 15 s), {replicas} replicas on PostgreSQL",
            failover.as_secs_f64()
        );
        ok &= failover < Duration::from_secs(15);
        let leader = followers.iter().position(|f| f.is_leader()).unwrap_or(0);
        t.bot = Some(followers.remove(leader));
        for f in followers {
            f.shutdown().await;
        }
    }
    // The test world checks unread outputs at the end; this run read what it needed.
    t.discard_unread().await;
    t.finish().await;
    Ok(ok)
}

fn main() -> ExitCode {
    const USAGE: &str =
        "usage: bench-alerts [--alerts N] [--seconds N] [--replicas N] [--prune-history N]";
    let parsed = bench::Flags::from_env(
        USAGE,
        &["--alerts", "--seconds", "--replicas", "--prune-history"],
        &[],
    )
    .and_then(|f| {
        Ok((
            f.number::<u64>("--alerts")?
                .map_or(10_000, |n| n.clamp(100, 100_000) as usize),
            f.number::<u64>("--seconds")?
                .map_or(10, |n| n.clamp(1, 120)),
            f.number::<u64>("--replicas")?
                .map_or(0, |n| n.clamp(1, 5) as usize),
            f.number::<u64>("--prune-history")?
                .map_or(0, |n| n.min(2_000_000) as usize),
        ))
    });
    let (total, seconds, replicas, history) = match parsed {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
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
            eprintln!("bench-alerts: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(total, seconds, replicas, history)) {
        Ok(true) => {
            println!("PASS");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("FAIL");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("bench-alerts: {e:#}");
            ExitCode::FAILURE
        }
    }
}
