//! A small Prometheus registry: counters with labels, rendered as text.
//!
//! Klaxon exposes a handful of series; a full client library would add more
//! dependency than it saves.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

type Key = (&'static str, Vec<(&'static str, String)>);

#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<Key, f64>>,
    help: Mutex<BTreeMap<&'static str, &'static str>>,
}

impl Metrics {
    pub fn new() -> Self {
        let m = Metrics::default();
        for (name, help) in [
            (
                "klaxon_commands_total",
                "Slash commands by name and outcome.",
            ),
            (
                "klaxon_discord_requests_total",
                "Discord REST responses by status.",
            ),
            (
                "klaxon_discord_invalid_requests_total",
                "Discord responses of 401, 403 or 429 (Cloudflare bans at 10,000 in 10 minutes).",
            ),
            (
                "klaxon_limiter_waits_total",
                "Times the Discord limiter held a request back.",
            ),
            (
                "klaxon_limiter_wait_seconds_total",
                "Seconds requests spent waiting in the Discord limiter.",
            ),
            (
                "klaxon_discord_retries_total",
                "Discord requests retried after a 429 or a 5xx.",
            ),
        ] {
            m.describe(name, help);
        }
        m
    }

    pub fn describe(&self, name: &'static str, help: &'static str) {
        if let Ok(mut h) = self.help.lock() {
            h.insert(name, help);
        }
    }

    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        let key = (
            name,
            labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        );
        if let Ok(mut c) = self.counters.lock() {
            *c.entry(key).or_insert(0.0) += value;
        }
    }

    pub fn inc(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        self.add(name, labels, 1.0);
    }

    /// The current value of one series (0 when never touched).
    pub fn get(&self, name: &'static str, labels: &[(&'static str, &str)]) -> f64 {
        let key: Key = (
            name,
            labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        );
        self.counters
            .lock()
            .map(|c| c.get(&key).copied().unwrap_or(0.0))
            .unwrap_or(0.0)
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let counters = match self.counters.lock() {
            Ok(c) => c.clone(),
            Err(_) => return String::new(),
        };
        let help = self.help.lock().map(|h| h.clone()).unwrap_or_default();
        let mut out = String::new();
        let mut names: Vec<&str> = help.keys().copied().collect();
        names.extend(counters.keys().map(|(n, _)| *n));
        names.sort_unstable();
        names.dedup();
        for name in names {
            if let Some(h) = help.get(name) {
                let _ = writeln!(out, "# HELP {name} {h}");
            }
            let _ = writeln!(out, "# TYPE {name} counter");
            let mut any = false;
            for ((n, labels), v) in counters.iter().filter(|((n, _), _)| *n == name) {
                any = true;
                let _ = write!(out, "{n}");
                if !labels.is_empty() {
                    let parts: Vec<String> = labels
                        .iter()
                        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                        .collect();
                    let _ = write!(out, "{{{}}}", parts.join(","));
                }
                let _ = writeln!(out, " {v}");
            }
            if !any && !name.is_empty() {
                // A counter with no labels that was never touched still shows as 0, so
                // dashboards and alerts see the series exist.
                let _ = writeln!(out, "{name} 0");
            }
        }
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_labels_and_escapes() {
        let m = Metrics::new();
        m.inc(
            "klaxon_commands_total",
            &[("command", "health"), ("outcome", "ok")],
        );
        m.inc(
            "klaxon_commands_total",
            &[("command", "health"), ("outcome", "ok")],
        );
        m.inc(
            "klaxon_commands_total",
            &[("command", "a\"b"), ("outcome", "denied")],
        );
        let text = m.render();
        assert!(text.contains("klaxon_commands_total{command=\"health\",outcome=\"ok\"} 2"));
        assert!(text.contains("command=\"a\\\"b\""));
        assert!(text
            .contains("# TYPE klaxon_limiter_waits_total counter\nklaxon_limiter_waits_total 0"));
        assert_eq!(
            m.get(
                "klaxon_commands_total",
                &[("command", "health"), ("outcome", "ok")]
            ),
            2.0
        );
    }
}
