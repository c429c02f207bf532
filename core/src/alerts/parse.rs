//! Payload parsers. Fields Klaxon does not know are ignored (senders add fields in
//! new versions); fields it needs are required, and a missing or malformed one is
//! an error naming it, which the intake answers with 400.
//!
//! A NUL byte in any text (name, label, annotation, fingerprint, URL) becomes
//! U+FFFD here, for every source and both databases: PostgreSQL's TEXT cannot
//! hold NUL, so the whole batch failed on every retry and its clean alerts were
//! lost; a 400 naming the field would make Alertmanager drop the batch just the
//! same. The replaced alert is kept, still visibly odd.

use std::collections::BTreeMap;

use chrono::DateTime;
use serde::Deserialize;
use serde_json::Value;

use super::{fingerprint_of, Alert, AlertStatus, Source};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("{0}")]
    Invalid(String),
}

fn invalid(s: impl Into<String>) -> ParseError {
    ParseError::Invalid(s.into())
}

/// Sender time (`2026-12-01T14:03:00.123Z`); Alertmanager's zero time is no time.
fn time_ms(s: Option<&str>) -> Option<i64> {
    let t = DateTime::parse_from_rfc3339(s?.trim()).ok()?;
    let ms = t.timestamp_millis();
    (ms > 0).then_some(ms)
}

fn json(body: &[u8]) -> Result<Value, ParseError> {
    serde_json::from_slice(body).map_err(|e| ParseError::NotJson(e.to_string()))
}

#[derive(Deserialize)]
struct Webhook {
    version: Option<String>,
    alerts: Option<Vec<Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhookAlert {
    status: Option<String>,
    labels: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    annotations: BTreeMap<String, Value>,
    starts_at: Option<String>,
    ends_at: Option<String>,
    #[serde(rename = "generatorURL")]
    generator_url: Option<String>,
    #[serde(rename = "panelURL")]
    panel_url: Option<String>,
    #[serde(rename = "dashboardURL")]
    dashboard_url: Option<String>,
    fingerprint: Option<String>,
    value_string: Option<String>,
}

/// Label and annotation values as text (Grafana sometimes sends numbers).
fn strings(m: BTreeMap<String, Value>) -> BTreeMap<String, String> {
    m.into_iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s,
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (k, v)
        })
        .collect()
}

/// `\0` → U+FFFD in every text of the alert.
fn without_nul(mut a: Alert) -> Alert {
    fn clean(s: &mut String) {
        if s.contains('\0') {
            *s = s.replace('\0', "\u{FFFD}");
        }
    }
    fn clean_map(m: &mut BTreeMap<String, String>) {
        if m.iter().any(|(k, v)| k.contains('\0') || v.contains('\0')) {
            *m = std::mem::take(m)
                .into_iter()
                .map(|(mut k, mut v)| {
                    clean(&mut k);
                    clean(&mut v);
                    (k, v)
                })
                .collect();
        }
    }
    clean(&mut a.fingerprint);
    clean_map(&mut a.labels);
    clean_map(&mut a.annotations);
    if let Some(u) = a.url.as_mut() {
        clean(u);
    }
    a
}

fn webhook(body: &[u8], source: Source, version: &str) -> Result<Vec<Alert>, ParseError> {
    let v = json(body)?;
    let hook: Webhook = serde_json::from_value(v)
        .map_err(|e| invalid(format!("not a {} webhook: {e}", source.as_str())))?;
    match hook.version.as_deref() {
        Some(v) if v == version => {}
        Some(other) => {
            return Err(invalid(format!(
                "version: {} webhook version {version} expected, got `{other}`",
                source.as_str()
            )))
        }
        None => return Err(invalid("version: missing (is this a templated body?)")),
    }
    let Some(alerts) = hook.alerts else {
        return Err(invalid("alerts: missing"));
    };
    // The answer an empty generic batch gets: no sender means to notify nothing.
    if alerts.is_empty() {
        return Err(invalid("alerts: empty"));
    }
    let mut out = Vec::with_capacity(alerts.len());
    for (i, raw) in alerts.into_iter().enumerate() {
        let a: WebhookAlert =
            serde_json::from_value(raw).map_err(|e| invalid(format!("alerts[{i}]: {e}")))?;
        // Each alert's own status, not endsAt: Alertmanager sets endsAt on firing
        // alerts too.
        let status = a
            .status
            .as_deref()
            .ok_or_else(|| invalid(format!("alerts[{i}].status: missing")))
            .and_then(|s| {
                AlertStatus::parse(s).ok_or_else(|| {
                    invalid(format!(
                        "alerts[{i}].status: `{s}` is neither firing nor resolved"
                    ))
                })
            })?;
        let mut labels = strings(
            a.labels
                .ok_or_else(|| invalid(format!("alerts[{i}].labels: missing")))?,
        );
        // A blank alertname is no name (Prometheus treats an empty label as absent):
        // without it the alert is shown as "alert", not as nothing.
        if labels.get("alertname").is_some_and(|n| n.trim().is_empty()) {
            labels.remove("alertname");
        }
        if labels.is_empty() {
            return Err(invalid(format!("alerts[{i}].labels: empty")));
        }
        let mut annotations = strings(a.annotations);
        if let Some(v) = a.value_string.filter(|v| !v.is_empty()) {
            annotations.entry("value".into()).or_insert(v);
        }
        let fingerprint = a
            .fingerprint
            .filter(|f| !f.trim().is_empty())
            .unwrap_or_else(|| fingerprint_of(&labels));
        out.push(without_nul(Alert {
            source,
            fingerprint,
            status,
            labels,
            annotations,
            starts_ms: time_ms(a.starts_at.as_deref()),
            ends_ms: time_ms(a.ends_at.as_deref()),
            url: a
                .panel_url
                .or(a.dashboard_url)
                .or(a.generator_url)
                .filter(|u| !u.is_empty()),
        }));
    }
    Ok(out)
}

/// Prometheus Alertmanager's webhook (version 4).
pub fn alertmanager(body: &[u8]) -> Result<Vec<Alert>, ParseError> {
    webhook(body, Source::Alertmanager, "4")
}

/// Grafana's webhook contact point (version 1).
pub fn grafana(body: &[u8]) -> Result<Vec<Alert>, ParseError> {
    webhook(body, Source::Grafana, "1")
}

#[derive(Deserialize)]
struct GenericAlert {
    name: Option<String>,
    status: Option<String>,
    severity: Option<String>,
    service: Option<String>,
    summary: Option<String>,
    description: Option<String>,
    url: Option<String>,
    fingerprint: Option<String>,
    starts_at: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, Value>,
}

/// Klaxon's own small schema, for scripts and cron jobs: one alert object, or
/// `{"alerts": [...]}`. Each needs a `name`; `status` defaults to firing.
///
/// ```json
/// {"name": "BackupFailed", "severity": "P2", "service": "db",
///  "summary": "nightly backup failed", "labels": {"host": "db1"}}
/// ```
pub fn generic(body: &[u8]) -> Result<Vec<Alert>, ParseError> {
    let v = json(body)?;
    let items: Vec<Value> = match v {
        Value::Object(ref o) if o.contains_key("alerts") => match o.get("alerts") {
            Some(Value::Array(a)) => a.clone(),
            _ => return Err(invalid("alerts: must be an array")),
        },
        Value::Object(_) => vec![v],
        _ => {
            return Err(invalid(
                "the body must be an alert object or {\"alerts\": [...]}",
            ))
        }
    };
    if items.is_empty() {
        return Err(invalid("alerts: empty"));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, raw) in items.into_iter().enumerate() {
        let g: GenericAlert =
            serde_json::from_value(raw).map_err(|e| invalid(format!("alerts[{i}]: {e}")))?;
        let name = g
            .name
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| invalid(format!("alerts[{i}].name: missing")))?;
        let status = match g.status.as_deref() {
            None => AlertStatus::Firing,
            Some(s) => AlertStatus::parse(s).ok_or_else(|| {
                invalid(format!(
                    "alerts[{i}].status: `{s}` is neither firing nor resolved"
                ))
            })?,
        };
        let mut labels = strings(g.labels);
        labels.insert("alertname".into(), name);
        for (k, v) in [("severity", g.severity), ("service", g.service)] {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                labels.insert(k.into(), v);
            }
        }
        let mut annotations = BTreeMap::new();
        for (k, v) in [("summary", g.summary), ("description", g.description)] {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                annotations.insert(k.to_string(), v);
            }
        }
        let fingerprint = g
            .fingerprint
            .filter(|f| !f.trim().is_empty())
            .unwrap_or_else(|| fingerprint_of(&labels));
        out.push(without_nul(Alert {
            source: Source::Generic,
            fingerprint,
            status,
            labels,
            annotations,
            starts_ms: time_ms(g.starts_at.as_deref()),
            ends_ms: None,
            url: g.url.filter(|u| !u.is_empty()),
        }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AM: &str = r#"{
      "version": "4", "groupKey": "{}:{alertname=\"HighLatency\"}", "truncatedAlerts": 0,
      "status": "firing", "receiver": "klaxon", "groupLabels": {"alertname": "HighLatency"},
      "commonLabels": {"alertname": "HighLatency"}, "commonAnnotations": {},
      "externalURL": "http://am:9093", "notification_reason": "new", "routeLabels": {},
      "alerts": [
        {"status": "firing", "labels": {"alertname": "HighLatency", "service": "api", "severity": "critical"},
         "annotations": {"summary": "p99 over 2 s"}, "startsAt": "2026-12-01T14:03:00Z",
         "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom/graph", "fingerprint": "abc123"},
        {"status": "resolved", "labels": {"alertname": "HighLatency", "service": "web"},
         "annotations": {}, "startsAt": "2026-12-01T13:00:00Z", "endsAt": "2026-12-01T14:00:00Z",
         "generatorURL": "", "fingerprint": "def456", "someNewField": true}
      ]
    }"#;

    #[test]
    fn alertmanager_v4_with_unknown_fields() {
        let a = alertmanager(AM.as_bytes()).expect("parses");
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].fingerprint, "abc123");
        assert_eq!(a[0].status, AlertStatus::Firing);
        assert_eq!(a[0].summary(), "p99 over 2 s");
        assert_eq!(a[0].starts_ms, Some(1_796_133_780_000));
        assert_eq!(a[0].ends_ms, None, "the zero time is no time");
        assert_eq!(a[1].status, AlertStatus::Resolved);
        assert_eq!(a[1].url, None);
    }

    #[test]
    fn templated_or_broken_bodies_are_refused_with_the_reason() {
        assert!(matches!(
            alertmanager(b"[FIRING:1] HighLatency api"),
            Err(ParseError::NotJson(_))
        ));
        let e = alertmanager(br#"{"text": "HighLatency is firing"}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "version: missing (is this a templated body?)"
        );
        let e = alertmanager(br#"{"version": "3", "alerts": []}"#).unwrap_err();
        assert!(e.to_string().contains("version 4 expected"), "{e}");
        let e =
            alertmanager(br#"{"version": "4", "alerts": [{"labels": {"a": "b"}}]}"#).unwrap_err();
        assert_eq!(e.to_string(), "alerts[0].status: missing");
        let e = alertmanager(br#"{"version": "4", "alerts": [{"status": "firing"}]}"#).unwrap_err();
        assert_eq!(e.to_string(), "alerts[0].labels: missing");
    }

    #[test]
    fn grafana_v1_keeps_the_panel_and_value() {
        let body = r#"{"version": "1", "orgId": 1, "title": "[FIRING:1]", "state": "alerting",
          "message": "x", "status": "firing", "receiver": "k", "groupKey": "g",
          "alerts": [{"status": "firing", "labels": {"alertname": "DiskFull", "instance": "db1"},
            "annotations": {"description": "disk at 97%"}, "startsAt": "2026-12-01T14:03:00Z",
            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://g/alerting",
            "fingerprint": "", "silenceURL": "http://g/silence", "dashboardURL": "http://g/d",
            "panelURL": "http://g/d?viewPanel=2", "values": {"A": 97}, "valueString": "A=97"}]}"#;
        let a = grafana(body.as_bytes()).expect("parses");
        assert_eq!(a[0].url.as_deref(), Some("http://g/d?viewPanel=2"));
        assert_eq!(a[0].annotations["value"], "A=97");
        assert_eq!(a[0].summary(), "disk at 97%");
        assert_eq!(a[0].fingerprint.len(), 16, "derived from the labels");
    }

    #[test]
    fn a_blank_alertname_is_no_name() {
        // Found by fuzz/fuzz_targets/grafana.rs.
        let body = br#"{"version": "1", "alerts": [{"status": "firing",
          "labels": {"alertname": " ", "instance": "db1"}}]}"#;
        let a = grafana(body).expect("parses");
        assert_eq!(a[0].name(), "alert");
        assert_eq!(a[0].label("alertname"), None);
        let e = alertmanager(
            br#"{"version": "4", "alerts": [{"status": "firing", "labels": {"alertname": ""}}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "alerts[0].labels: empty");
    }

    #[test]
    fn generic_single_and_list() {
        let one =
            generic(br#"{"name": "BackupFailed", "severity": "P2", "service": "db"}"#).unwrap();
        assert_eq!(one[0].name(), "BackupFailed");
        assert_eq!(one[0].label("severity"), Some("P2"));
        assert_eq!(one[0].status, AlertStatus::Firing);
        let many = generic(
            br#"{"alerts": [{"name": "A", "status": "resolved"}, {"name": "B", "labels": {"n": 3}}]}"#,
        )
        .unwrap();
        assert_eq!(many.len(), 2);
        assert_eq!(many[0].status, AlertStatus::Resolved);
        assert_eq!(many[1].label("n"), Some("3"));
        assert_eq!(
            generic(br#"{"alerts": [{"status": "firing"}]}"#)
                .unwrap_err()
                .to_string(),
            "alerts[0].name: missing"
        );
        assert!(generic(br#"{"name": "A", "status": "maybe"}"#).is_err());
    }
}
