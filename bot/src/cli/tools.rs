//! The small shell tools around a running Klaxon: `klaxon alerts send-test` (the
//! last step of the quick start: a demo alert through the real intake, so a team
//! sees the whole path work before Alertmanager is wired up) and `klaxon
//! healthcheck` (a container `HEALTHCHECK` without curl or wget in the image).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use super::{fatal, load_offline, SendTestArgs};

/// The shipped demo payload (docs/examples/alertmanager.json).
const DEMO: &str = include_str!("../../../docs/examples/alertmanager.json");

/// `{e:#}`: the error with every cause, "a: b: c".
pub fn full_chain(e: &anyhow::Error) -> String {
    format!("{e:#}")
}

/// A payload's source from its `version`: Alertmanager sends `"4"`, Grafana `"1"`;
/// a number is read the same (hand-written payloads often have `"version": 4`).
pub fn source_of(body: &[u8]) -> &'static str {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let version = match &v["version"] {
        serde_json::Value::String(s) => s.trim().to_string(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    match version.as_str() {
        "4" => "alertmanager",
        "1" if v.get("orgId").is_some() || v.get("alerts").is_some() => "grafana",
        "1" => "grafana",
        _ => "generic",
    }
}

/// The address a local client reaches `http.listen` on: a wildcard listen
/// (`0.0.0.0`, `::`) is reached on loopback.
fn local(listen: SocketAddr) -> SocketAddr {
    match listen {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            SocketAddr::from(([127, 0, 0, 1], a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
        }
        other => other,
    }
}

pub async fn healthcheck(path: &std::path::Path) -> ExitCode {
    let Some(config) = load_offline(path) else {
        return ExitCode::FAILURE;
    };
    let url = format!("http://{}/healthz", local(config.http.listen));
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            fatal(e);
            return ExitCode::FAILURE;
        }
    };
    match client.get(&url).send().await {
        Ok(r) if r.status().is_success() => ExitCode::SUCCESS,
        Ok(r) => {
            fatal(format!("{url} answered {}", r.status()));
            ExitCode::FAILURE
        }
        Err(e) => {
            fatal(format!("{url}: {}", crate::config::online::chain(&e)));
            ExitCode::FAILURE
        }
    }
}

pub async fn send_test(args: &SendTestArgs) -> ExitCode {
    let Some(config) = load_offline(&args.config.config) else {
        return ExitCode::FAILURE;
    };
    let token = &config.intake.alertmanager_token;
    if token.is_empty() {
        fatal(
            "intake.alertmanager_token is not set, so the Alertmanager intake is off; \
             set it (KLAXON_INTAKE__ALERTMANAGER_TOKEN) and restart Klaxon",
        );
        return ExitCode::FAILURE;
    }
    let text = match &args.payload {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => t,
            Err(e) => {
                fatal(format!("cannot read {}: {e}", p.display()));
                return ExitCode::FAILURE;
            }
        },
        None => DEMO.to_string(),
    };
    let mut body: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            fatal(format!("the payload is not JSON: {e}"));
            return ExitCode::FAILURE;
        }
    };
    if args.payload.is_none() {
        // A new alert each time (its own fingerprint), starting now.
        let now = chrono::Utc::now();
        if let Some(alerts) = body["alerts"].as_array_mut() {
            for a in alerts {
                a["startsAt"] = now.to_rfc3339().into();
                a["fingerprint"] = format!("klaxon-send-test-{}", now.timestamp_millis()).into();
            }
        }
    }
    let base = args
        .url
        .clone()
        .unwrap_or_else(|| format!("http://{}", local(config.http.listen)));
    let url = format!("{}/alerts/alertmanager", base.trim_end_matches('/'));
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            fatal(e);
            return ExitCode::FAILURE;
        }
    };
    let sent = client
        .post(&url)
        .bearer_auth(token.expose())
        .json(&body)
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => {
            let channel = config
                .channels
                .alerts
                .map_or("the route's channel".to_string(), |c| {
                    format!("channel {c}")
                });
            eprintln!(
                "klaxon: {url} accepted the test alert ({}); it is posted to {channel} after \
                 alerts.group_wait_secs ({} s)",
                r.status(),
                config.alerts.group_wait_secs
            );
            ExitCode::SUCCESS
        }
        Ok(r) => {
            let status = r.status();
            let reason = r.text().await.unwrap_or_default();
            fatal(format!("{url} answered {status}: {}", reason.trim()));
            ExitCode::FAILURE
        }
        Err(e) => {
            fatal(format!(
                "{url}: {} (is `klaxon run` running with this config?)",
                crate::config::online::chain(&e)
            ));
            ExitCode::FAILURE
        }
    }
}
