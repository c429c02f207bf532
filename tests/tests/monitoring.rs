//! Issue #19: Klaxon watching itself. The real bot, the fake Discord and a real
//! Docker engine: after a known sequence (a burst of alerts, a Discord outage,
//! refused and unreadable notifications, a command), `/metrics` shows the values
//! that sequence must produce; the alerting rules and the Grafana dashboard in
//! `docs/monitoring` use only series a real scrape has; promtool accepts the rules.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use klaxon::config::Secret;
use klaxon_core::permissions::Level;
use klaxon_tests::fake::FaultRule;
use klaxon_tests::scrape::{names_in_expr, Scrape};
use klaxon_tests::tester::ALERTS;
use klaxon_tests::{both_databases, Db, Tester};
use serde_json::{json, Value};

const TOKEN: &str = "generic-token";

fn monitoring_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/monitoring")
}

async fn post(t: &Tester, token: &str, body: Vec<u8>) -> u16 {
    reqwest::Client::new()
        .post(format!("http://{}/alerts/generic", t.bot().http_addr))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the intake answers")
        .status()
        .as_u16()
}

fn burst(name: &str, n: usize) -> Vec<u8> {
    let alerts: Vec<Value> = (1..=n)
        .map(|i| {
            json!({"name": name, "status": "firing", "service": "api", "severity": "warning",
                   "summary": "disk at 95%", "labels": {"instance": format!("i-{i}")}})
        })
        .collect();
    serde_json::to_vec(&json!({ "alerts": alerts })).expect("json")
}

/// Scrapes until `ok` holds (the database gauges refresh every 5 s), or fails
/// showing the last scrape.
async fn scrape_until(t: &Tester, what: &str, ok: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = Scrape::get(t.bot().http_addr).await.expect("/metrics");
        if ok(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: never seen in\n{}",
            s.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn the_metrics_after_a_burst_an_outage_and_a_command_on(db: Db) {
    let t = Tester::builder()
        .db(db)
        .docker_host(&klaxon_tests::env::docker_host())
        .service("api", Some("klaxon-monitoring-test-api"), None)
        .intake(|i| i.generic_token = Secret::new(TOKEN))
        .alerts(|a| {
            a.group_wait_secs = 0;
            a.group_interval_secs = 1;
        })
        .spawn()
        .await;
    let ch = ALERTS.to_string();
    // Discord refuses alert posts for 4 s; the outbox backs off and retries.
    let outage = Duration::from_secs(4);
    t.fake.inject(FaultRule::Outage {
        path_contains: format!("/channels/{ALERTS}/messages"),
        status: 503,
        until: Instant::now() + outage,
    });
    let began = Instant::now();
    assert_eq!(post(&t, TOKEN, burst("DiskFull", 5)).await, 200);
    assert_eq!(post(&t, TOKEN, burst("HighLatency", 3)).await, 200);
    assert_eq!(post(&t, "wrong", burst("Nope", 1)).await, 401);
    assert_eq!(post(&t, TOKEN, b"not json".to_vec()).await, 400);

    // During the outage: the backlog shows, with its age.
    let during = scrape_until(&t, "a pending backlog", |s| {
        s.value(
            "klaxon_outbox_pending",
            &[("kind", "alert"), ("channel", &ch)],
        )
        .is_some_and(|v| v >= 1.0)
    })
    .await;
    assert!(
        began.elapsed() < outage + Duration::from_secs(3),
        "the backlog was seen only after the outage"
    );
    assert!(
        during
            .value(
                "klaxon_outbox_oldest_pending_age_seconds",
                &[("kind", "alert"), ("channel", &ch)]
            )
            .is_some_and(|v| v >= 0.0),
        "{}",
        during.text
    );

    // Both groups are posted once Discord is back.
    let mut titles = BTreeSet::new();
    for _ in 0..2 {
        let m = t.channel_message(ALERTS).await;
        let text = m.text();
        let name = ["DiskFull", "HighLatency"]
            .into_iter()
            .find(|n| text.contains(n))
            .unwrap_or_else(|| panic!("an alert group message: {text}"));
        titles.insert(name);
    }
    assert_eq!(titles.len(), 2);
    assert!(began.elapsed() >= outage, "nothing got through the outage");

    // A command.
    t.slash("health")
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;

    let s = scrape_until(&t, "the drained outbox and the command", |s| {
        s.value(
            "klaxon_outbox_pending",
            &[("kind", "alert"), ("channel", &ch)],
        ) == Some(0.0)
            && s.value(
                "klaxon_command_duration_seconds_count",
                &[("command", "health"), ("outcome", "ok")],
            ) == Some(1.0)
    })
    .await;
    let v = |name: &str, labels: &[(&str, &str)]| {
        s.value(name, labels)
            .unwrap_or_else(|| panic!("{name} {labels:?} missing from\n{}", s.text))
    };
    let generic = ("source", "generic");
    // Intake: counters as before, and the new histograms.
    assert_eq!(
        v(
            "klaxon_alert_intake_total",
            &[generic, ("result", "stored")]
        ),
        2.0
    );
    assert_eq!(
        v(
            "klaxon_alert_intake_total",
            &[generic, ("result", "unauthorized")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "klaxon_alert_intake_total",
            &[generic, ("result", "invalid")]
        ),
        1.0
    );
    assert_eq!(v("klaxon_alerts_received_total", &[generic]), 8.0);
    assert_eq!(v("klaxon_intake_alerts_per_request_count", &[generic]), 2.0);
    assert_eq!(v("klaxon_intake_alerts_per_request_sum", &[generic]), 8.0);
    assert_eq!(
        v(
            "klaxon_intake_alerts_per_request_bucket",
            &[generic, ("le", "2.0")]
        ),
        0.0
    );
    assert_eq!(
        v(
            "klaxon_intake_alerts_per_request_bucket",
            &[generic, ("le", "5.0")]
        ),
        2.0
    );
    for (status, n) in [("200", 2.0), ("401", 1.0), ("400", 1.0)] {
        assert_eq!(
            v(
                "klaxon_intake_request_duration_seconds_count",
                &[generic, ("status", status)]
            ),
            n,
            "status {status}"
        );
    }
    // The outage: every 503 is one Discord round trip of the messages family.
    let refused = v("klaxon_discord_requests_total", &[("status", "503")]);
    assert!(refused >= 2.0, "{refused} refused posts");
    assert_eq!(
        v(
            "klaxon_discord_request_duration_seconds_count",
            &[("route", "messages"), ("status_class", "5xx")]
        ),
        refused
    );
    assert!(
        v(
            "klaxon_discord_request_duration_seconds_count",
            &[("route", "messages"), ("status_class", "2xx")]
        ) >= 2.0
    );
    assert!(
        v(
            "klaxon_discord_request_duration_seconds_count",
            &[("route", "interactions"), ("status_class", "2xx")]
        ) >= 1.0
    );
    // Delivery: two first messages; they waited out the outage in the outbox.
    assert_eq!(s.sum("klaxon_alert_first_message_seconds_count", &[]), 2.0);
    let delivered = v(
        "klaxon_outbox_delivery_age_seconds_count",
        &[("kind", "alert")],
    );
    assert!(delivered >= 2.0, "{delivered}");
    let quick = v(
        "klaxon_outbox_delivery_age_seconds_bucket",
        &[("kind", "alert"), ("le", "1.0")],
    );
    assert!(
        quick < delivered,
        "no message waited over 1 s: {quick} of {delivered}"
    );
    assert!(
        v(
            "klaxon_outbox_delivery_age_seconds_sum",
            &[("kind", "alert")]
        ) >= outage.as_secs_f64() * 0.5
    );
    assert_eq!(
        v(
            "klaxon_outbox_oldest_pending_age_seconds",
            &[("kind", "alert"), ("channel", &ch)]
        ),
        0.0
    );
    // State gauges.
    assert_eq!(v("klaxon_alerts", &[("state", "firing")]), 8.0);
    assert_eq!(v("klaxon_alerts", &[("state", "silenced")]), 0.0);
    assert_eq!(v("klaxon_alerts", &[("state", "maintenance")]), 0.0);
    assert_eq!(v("klaxon_incidents_open", &[("severity", "P1")]), 0.0);
    assert_eq!(v("klaxon_reminders_pending", &[("kind", "page")]), 0.0);
    assert_eq!(v("klaxon_leader", &[]), 1.0);
    assert_eq!(v("klaxon_gateway_connected", &[]), 1.0);
    assert_eq!(v("klaxon_discord_token_valid", &[]), 1.0);
    assert_eq!(v("klaxon_docker_engine_up", &[("host", "default")]), 1.0);
    assert!(v("klaxon_db_pool_connections", &[("state", "idle")]) >= 0.0);
    // The command.
    assert_eq!(
        v(
            "klaxon_commands_total",
            &[("command", "health"), ("outcome", "ok")]
        ),
        1.0
    );
    assert!(s.series() < 500, "{} series", s.series());
    // No label carries an alert name, a fingerprint or an instance.
    for name in ["DiskFull", "HighLatency", "i-1"] {
        assert!(
            !s.samples
                .iter()
                .any(|x| x.labels.iter().any(|(_, v)| v.contains(name))),
            "{name} is a label value"
        );
    }

    every_series_in_the_monitoring_files_is_in(&s);
    t.finish().await;
}

both_databases!(
    the_metrics_after_a_burst_an_outage_and_a_command_on,
    the_metrics_after_a_burst_an_outage_and_a_command,
    the_metrics_after_a_burst_an_outage_and_a_command_on_postgres
);

/// The `expr:` of every rule: one line, or a `|` block of more-indented lines.
fn rule_exprs(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("expr:") {
            let rest = rest.trim();
            if rest == "|" || rest == ">" {
                let indent = line.len() - trimmed.len();
                let mut block = Vec::new();
                while let Some(next) = lines.get(i + 1) {
                    let t = next.trim_start();
                    if !t.is_empty() && next.len() - t.len() <= indent {
                        break;
                    }
                    block.push(t);
                    i += 1;
                }
                out.push(block.join(" "));
            } else {
                out.push(rest.trim_matches('\'').to_string());
            }
        }
        i += 1;
    }
    out
}

/// Every `expr` string in the dashboard's JSON, wherever it is.
fn dashboard_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    ("query" | "definition", Value::String(e)) if e.contains("klaxon_") => {
                        out.push(e.clone())
                    }
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

fn every_series_in_the_monitoring_files_is_in(scrape: &Scrape) {
    let have = scrape.names();
    let rules = std::fs::read_to_string(monitoring_dir().join("klaxon-rules.yml"))
        .expect("docs/monitoring/klaxon-rules.yml");
    let exprs = rule_exprs(&rules);
    assert!(exprs.len() >= 6, "{exprs:?}");
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(monitoring_dir().join("klaxon-dashboard.json"))
            .expect("docs/monitoring/klaxon-dashboard.json"),
    )
    .expect("the dashboard is JSON");
    let mut panels = Vec::new();
    dashboard_exprs(&dashboard, &mut panels);
    assert!(panels.len() >= 20, "{panels:?}");
    let mut missing = BTreeSet::new();
    let mut used = BTreeSet::new();
    for e in exprs.iter().chain(&panels) {
        for name in names_in_expr(e) {
            if !have.contains(&name) {
                missing.insert(name.clone());
            }
            used.insert(name);
        }
    }
    assert!(
        missing.is_empty(),
        "series used in docs/monitoring but not in a real scrape: {missing:?}"
    );
    for rule in [
        "klaxon_outbox_oldest_pending_age_seconds",
        "klaxon_discord_requests_total",
        "klaxon_gateway_connected",
        "klaxon_leader",
        "klaxon_intake_request_duration_seconds_count",
        "klaxon_docker_engine_up",
    ] {
        assert!(used.contains(rule), "no rule or panel uses {rule}");
    }
}

/// promtool (Debian package `prometheus`) accepts the rules. Never skipped.
#[test]
fn promtool_accepts_the_rules() {
    let files: Vec<PathBuf> = std::fs::read_dir(monitoring_dir())
        .expect("docs/monitoring")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    assert!(!files.is_empty(), "no rules file in docs/monitoring");
    let out = std::process::Command::new("promtool")
        .arg("check")
        .arg("rules")
        .args(&files)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "promtool is missing ({e}): install the Debian package `prometheus` \
                 (`apt-get install prometheus`, or run scripts/test.sh as root)"
            )
        });
    assert!(
        out.status.success(),
        "promtool check rules failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_rule_extractor_reads_one_line_and_block_exprs() {
    let yaml = "rules:\n  - alert: A\n    expr: klaxon_a > 1\n  - alert: B\n    expr: |\n      sum(klaxon_b)\n        / 2\n    for: 1m\n";
    assert_eq!(rule_exprs(yaml), ["klaxon_a > 1", "sum(klaxon_b) / 2"]);
}
