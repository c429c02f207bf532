//! Escalations under load (issue #14), as a rerunnable benchmark.
//!
//! ```text
//! nice cargo run --release -p klaxon-tests --bin bench-escalation -- [--groups 100] [--incidents 100] [--ack-half]
//! ```
//!
//! `--groups` P1 alert groups (one intake request) and `--incidents` P1 incidents
//! start the same 4-step policy (0 s / 2 s / 4 s / 6 s: primary, primary, secondary,
//! the on-call role) at once, against the fake Discord and the in-process bot on
//! SQLite. After the second step half of them are acknowledged (half the groups,
//! half the incidents).
//!
//! Measured from the database (the posts outbox keeps when each step's messages
//! were stored and sent; the step's due time is its escalation's start + `after`):
//! - step lateness: stored (fired) and delivered, p50/p99/max. Target: fired p99
//!   ≤ 5 s. Delivery is bounded by Discord's per-channel limit (5 messages / 5 s in
//!   one channel): 200 escalations paging one person put 200 DMs into one DM
//!   channel per step, so delivered lateness is reported, not held to the target;
//! - ack to stop: how long the acknowledgement takes to end the escalation, and
//!   how many sends were stored after it (target ≤ 2 s, 0 sends);
//! - 429s the fake counted and duplicate pages (the same nonce twice). Target 0.
//!
//! Prints a report and writes `target/bench/escalation.json`. Exits 1 when a target
//! is missed.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use klaxon::config::Secret;
use klaxon_core::actor::Actor;
use klaxon_core::incidents::Severity;
use klaxon_core::oncall::escalate::{self, Subject};
use klaxon_core::routing::RouteConfig;
use klaxon_core::settings::oncall::{PolicyConfig, ScheduleConfig, StepConfig};
use klaxon_core::store::escalations as esc_db;
use klaxon_core::store::incidents::{self as incidents_db, NewIncident};
use klaxon_tests::bench::{self, ms, percentile};
use klaxon_tests::fake::Member;
use klaxon_tests::tester::{ALERTS, INCIDENTS};
use klaxon_tests::Tester;
use serde_json::json;

const USAGE: &str = "usage: bench-escalation [--groups N] [--incidents N]";
const TOKEN: &str = "bench-token";
const PRIMARY: u64 = 7001;
const SECONDARY: u64 = 7002;
const ROLE: u64 = 4242;
const AFTER_MS: [i64; 4] = [0, 2_000, 4_000, 6_000];
const LATE_TARGET: Duration = Duration::from_secs(5);
const STOP_TARGET: Duration = Duration::from_secs(2);

struct Args {
    groups: usize,
    incidents: usize,
}

fn parse_args() -> Result<Args, String> {
    let f = bench::Flags::from_env(USAGE, &["--groups", "--incidents"], &[])?;
    Ok(Args {
        groups: f
            .number::<usize>("--groups")?
            .map_or(100, |n| n.clamp(0, 1_000)),
        incidents: f
            .number::<usize>("--incidents")?
            .map_or(100, |n| n.clamp(0, 1_000)),
    })
}

fn step(after: &str, notify: &str) -> StepConfig {
    StepConfig {
        after: after.into(),
        notify: notify.into(),
    }
}

fn schedule(name: &str, member: u64) -> ScheduleConfig {
    ScheduleConfig {
        name: name.into(),
        timezone: "UTC".into(),
        members: vec![member],
        shift: "1w".into(),
        start: "2026-01-05T09:00".into(),
        sync_role: None,
        announce: None,
    }
}

fn summary(v: &mut [Duration]) -> serde_json::Value {
    v.sort();
    json!({
        "n": v.len(),
        "p50_ms": ms(percentile(v, 50.0)),
        "p99_ms": ms(percentile(v, 99.0)),
        "max_ms": ms(v.last().copied().unwrap_or_default()),
    })
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let t = Tester::builder()
        .intake(|i| i.generic_token = Secret::new(TOKEN))
        .alerts(|a| {
            a.routes.push(RouteConfig {
                matchers: [("service".to_string(), "bench".to_string())]
                    .into_iter()
                    .collect(),
                severity: Some(Severity::P1),
                escalation: Some("bench".into()),
                ..Default::default()
            })
        })
        .incidents(|c| c.severity.p1.escalation = Some("bench".into()))
        .oncall(|o| {
            o.schedules.push(schedule("primary", PRIMARY));
            o.schedules.push(schedule("secondary", SECONDARY));
            o.policies.push(PolicyConfig {
                name: "bench".into(),
                steps: vec![
                    step("0s", "schedule:primary"),
                    step("2s", "schedule:primary"),
                    step("4s", "schedule:secondary"),
                    step("6s", &format!("role:{ROLE}")),
                ],
                repeat: 0,
            });
        })
        .spawn()
        .await;
    for (id, name) in [(PRIMARY, "primary"), (SECONDARY, "secondary")] {
        t.fake.add_member(Member {
            user_id: id,
            username: name.into(),
            roles: vec![],
        });
    }
    let app = std::sync::Arc::clone(&t.bot().app);
    let wall = Instant::now();

    // Incidents as rows (their rooms and cards are not what is measured), each
    // starting the policy as `incidents::open` does.
    let now = app.clock.now_ms();
    let mut incidents = Vec::new();
    for n in 0..args.incidents {
        let i = incidents_db::insert(
            &app.store,
            &NewIncident {
                title: format!("Bench incident {n}"),
                severity: Severity::P1,
                service: None,
                summary: String::new(),
                guild_id: None,
                commander: Actor::member(5001, "bench"),
                opened_ms: now,
                next_page_ms: None,
                next_update_ms: None,
                public: true,
            },
        )
        .await?;
        escalate::start_incident(&app, i.id, "bench", &i.title, "P1", INCIDENTS).await;
        incidents.push(i.id);
    }
    // Alert groups: one intake request, one group per alert name.
    let alerts: Vec<_> = (0..args.groups)
        .map(|n| {
            json!({"name": format!("Bench{n}"), "status": "firing", "service": "bench",
            "severity": "critical", "summary": "bench"})
        })
        .collect();
    if !alerts.is_empty() {
        let r = reqwest::Client::new()
            .post(format!("http://{}/alerts/generic", t.bot().http_addr))
            .bearer_auth(TOKEN)
            .json(&json!({ "alerts": alerts }))
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "intake: {}", r.status());
    }
    let total = args.incidents + args.groups;
    // Every escalation has started (groups start when the grouper renders them).
    let deadline = Instant::now() + Duration::from_secs(30);
    while (esc_db::pending(&app.store).await? as usize) < total {
        anyhow::ensure!(Instant::now() < deadline, "escalations did not all start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // After the second step (due at 2 s): half of each kind acknowledged.
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    let by = Actor::member(PRIMARY, "primary");
    let mut stops = Vec::new();
    let mut acked_at: HashMap<(String, i64), i64> = HashMap::new();
    for id in incidents.iter().step_by(2) {
        let t0 = Instant::now();
        klaxon_core::incidents::ack(&app, *id, &by).await?;
        stops.push(t0.elapsed());
        acked_at.insert(("incident".into(), id.0), app.clock.now_ms());
    }
    let groups: Vec<i64> = {
        let mut g = Vec::new();
        for n in 0..args.groups as i64 {
            g.push(n + 1);
        }
        g
    };
    for g in groups.iter().step_by(2) {
        let t0 = Instant::now();
        klaxon_core::alerts::deliver::acknowledge(&app.store, *g, &by.name, app.clock.now_ms())
            .await?;
        escalate::stop(&app, Subject::Group(*g), true, "acknowledged", &by).await?;
        stops.push(t0.elapsed());
        acked_at.insert(("group".into(), *g), app.clock.now_ms());
    }

    // The chains end at 6 s; then the outbox drains.
    let drain_deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let active = esc_db::pending(&app.store).await?;
        let pending = klaxon_core::store::posts::count(&app.store, "pending").await?;
        if active == 0 && pending == 0 {
            break;
        }
        if Instant::now() > drain_deadline {
            println!("not drained after 300 s: {active} active, {pending} posts pending");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let drained = wall.elapsed();

    // Lateness, from the outbox rows.
    let sends = esc_db::send_times(&app.store).await?;
    let mut fired = Vec::new();
    let mut delivered = Vec::new();
    let mut after_ack = 0;
    let mut subjects: HashMap<i64, (String, i64)> = HashMap::new();
    for id in incidents.iter() {
        for e in esc_db::of_subject(&app.store, "incident", id.0).await? {
            subjects.insert(e.id, ("incident".into(), id.0));
        }
    }
    for g in &groups {
        for e in esc_db::of_subject(&app.store, "group", *g).await? {
            subjects.insert(e.id, ("group".into(), *g));
        }
    }
    for s in &sends {
        let mut parts = s.key.trim_start_matches("esc").split('.');
        let id: i64 = parts.next().and_then(|x| x.parse().ok()).unwrap_or(0);
        let _round = parts.next();
        let step: usize = parts.next().and_then(|x| x.parse().ok()).unwrap_or(0);
        let due = s.started_ms + AFTER_MS.get(step).copied().unwrap_or(0);
        fired.push(Duration::from_millis((s.stored_ms - due).max(0) as u64));
        if let Some(sent) = s.sent_ms.filter(|_| s.state == "sent") {
            delivered.push(Duration::from_millis((sent - due).max(0) as u64));
        }
        if let Some(at) = subjects.get(&id).and_then(|k| acked_at.get(k)) {
            if s.stored_ms > *at {
                after_ack += 1;
            }
        }
    }
    let fired_p99 = {
        let mut f = fired.clone();
        f.sort();
        percentile(&f, 99.0)
    };
    let stop_max = stops.iter().max().copied().unwrap_or_default();

    // Duplicates: a nonce shown twice in any channel the pages went to.
    let mut channels = vec![ALERTS, INCIDENTS];
    for user in [PRIMARY, SECONDARY] {
        channels.push(app.chat.open_dm(user).await?);
    }
    let mut duplicates = 0;
    let mut messages = 0;
    for c in channels {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for m in t.fake.messages(c) {
            messages += 1;
            if let Some(n) = m.nonce.filter(|n| n.starts_with("esc")) {
                *seen.entry(n).or_default() += 1;
            }
        }
        duplicates += seen.values().filter(|n| **n > 1).count();
    }
    let v = t.fake.violations();
    let limited = v.rate_limited + v.global_rate_limited;

    let met = fired_p99 <= LATE_TARGET
        && stop_max <= STOP_TARGET
        && after_ack == 0
        && limited == 0
        && duplicates == 0;
    let report = json!({
        "escalations": total,
        "sends": sends.len(),
        "messages_seen": messages,
        "fired_lateness": summary(&mut fired),
        "delivered_lateness": summary(&mut delivered),
        "ack_to_stop": summary(&mut stops),
        "sends_after_ack": after_ack,
        "rate_limited_429": limited,
        "duplicate_pages": duplicates,
        "drained_s": drained.as_secs_f64(),
        "met": met,
    });
    println!(
        "{total} escalations ({} groups, {} incidents), {} sends; drained in {:.1} s",
        args.groups,
        args.incidents,
        sends.len(),
        drained.as_secs_f64()
    );
    println!(
        "step fired (stored) lateness: {} (target p99 <= 5 s: {})",
        report["fired_lateness"],
        bench::met(fired_p99 <= LATE_TARGET)
    );
    println!(
        "step delivered lateness: {} (bounded by Discord's per-channel limit)",
        report["delivered_lateness"]
    );
    println!(
        "ack to stop: {} (target <= 2 s: {}); sends stored after an ack: {after_ack}",
        report["ack_to_stop"],
        bench::met(stop_max <= STOP_TARGET)
    );
    println!("429s: {limited}; duplicate pages: {duplicates}");
    bench::write_json("escalation", &report)?;
    t.discard_unread().await;
    if v.total() == 0 {
        t.finish().await;
    } else {
        println!("Discord rule violations: {:?}", v.details);
        // The report is the point; a Tester with violations would panic on drop.
        std::mem::forget(t);
    }
    Ok(met)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench-escalation: {e}");
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
            eprintln!("bench-escalation: runtime: {e}");
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
            eprintln!("bench-escalation: {e:#}");
            ExitCode::FAILURE
        }
    }
}
