//! What an alert is, whatever sent it: the model the intake parses into and that
//! routing, storage, incidents and maintenance read. A leaf, so that those can
//! read an alert without importing the alerts domain (which imports them).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Alertmanager,
    Grafana,
    Generic,
    Probe,
    Docker,
    Heartbeat,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Alertmanager => "alertmanager",
            Source::Grafana => "grafana",
            Source::Generic => "generic",
            Source::Probe => "probe",
            Source::Docker => "docker",
            Source::Heartbeat => "heartbeat",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<AlertStatus> {
        match s.trim().to_ascii_lowercase().as_str() {
            "firing" | "alerting" | "problem" => Some(AlertStatus::Firing),
            "resolved" | "ok" | "normal" => Some(AlertStatus::Resolved),
            _ => None,
        }
    }
}

/// One alert as Klaxon keeps it, whatever sent it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub source: Source,
    /// Identity across notifications: the sender's fingerprint, or a hash of the
    /// labels when it has none.
    pub fingerprint: String,
    pub status: AlertStatus,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_ms: Option<i64>,
    pub ends_ms: Option<i64>,
    /// Where to look: generator, dashboard or panel URL.
    pub url: Option<String>,
}

impl Alert {
    pub fn name(&self) -> &str {
        self.labels
            .get("alertname")
            .map(String::as_str)
            .unwrap_or("alert")
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }

    /// The one line a responder reads first: summary, else description, else name.
    pub fn summary(&self) -> &str {
        ["summary", "description", "message"]
            .iter()
            .find_map(|k| self.annotations.get(*k).filter(|v| !v.trim().is_empty()))
            .map(String::as_str)
            .unwrap_or_else(|| self.name())
    }
}

impl Alert {
    /// An alert Klaxon raises itself (probes, Docker events): one per service and
    /// name, so firing and resolving it again is the same alert.
    pub fn own(
        source: Source,
        service: &str,
        name: &str,
        status: AlertStatus,
        severity: &str,
        summary: String,
    ) -> Alert {
        let labels: BTreeMap<String, String> = [
            ("alertname", name),
            ("service", service),
            ("severity", severity),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Alert {
            source,
            fingerprint: format!("{}:{name}:{service}", source.as_str()),
            status,
            labels,
            annotations: [("summary".to_string(), summary)].into_iter().collect(),
            starts_ms: None,
            ends_ms: None,
            url: None,
        }
    }
}

/// A stable fingerprint from the labels (sorted by the BTreeMap), as Alertmanager
/// derives its own.
pub fn fingerprint_of(labels: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (k, v) in labels {
        h.update(k.as_bytes());
        h.update([0xff]);
        h.update(v.as_bytes());
        h.update([0xfe]);
    }
    let digest = h.finalize();
    let mut out = String::with_capacity(16);
    for b in &digest[..8] {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_follow_labels_not_their_order() {
        let a: BTreeMap<String, String> = [("a", "1"), ("b", "2")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut b = BTreeMap::new();
        b.insert("b".to_string(), "2".to_string());
        b.insert("a".to_string(), "1".to_string());
        assert_eq!(fingerprint_of(&a), fingerprint_of(&b));
        assert_eq!(fingerprint_of(&a).len(), 16);
        b.insert("c".into(), "3".into());
        assert_ne!(fingerprint_of(&a), fingerprint_of(&b));
    }
}
