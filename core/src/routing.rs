//! `[alerts]`: routing rules and grouping timers, and the router compiled from
//! them. A leaf: the `App` holds the router, and `app` imports only leaves.

use std::collections::BTreeMap;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::alert::Alert;
use crate::severity::Severity;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Labels whose values make a group: one Discord message per group.
    #[serde(default = "default_group_by")]
    pub group_by: Vec<String>,
    /// How long a new group waits for more alerts before its first message (P1 does
    /// not wait).
    #[serde(default = "default_group_wait")]
    pub group_wait_secs: u64,
    /// At most one update of a group's message this often (P1: at once).
    #[serde(default = "default_group_interval")]
    pub group_interval_secs: u64,
    /// A group still firing and not acknowledged is announced again this often (a new
    /// message: edits do not notify anybody).
    #[serde(default = "default_repeat")]
    pub repeat_interval_secs: u64,
    /// A group with more alerts than this shows its first ones and counts, with the
    /// full list attached as a text file.
    #[serde(default = "default_summarize")]
    pub summarize_over: usize,
    /// Alert lines a group's message shows inline (after the common header); the
    /// rest are counted ("… and 90 more") and listed in the attached file. Every
    /// message stays within one phone screen whatever this says.
    #[serde(default = "default_inline_max")]
    pub inline_max: usize,
    /// First matching route wins; without a match, `channels.alerts` and the
    /// severity label decide.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Klaxon probes every service's `health_url` this often (0: never).
    #[serde(default = "default_probe_interval")]
    pub probe_interval_secs: u64,
    /// Consecutive failed probes before a `ServiceDown` alert fires.
    #[serde(default = "default_probe_failures")]
    pub probe_failures: u32,
    /// Follow Docker events of the services' containers (die, oom, unhealthy,
    /// restart loops).
    #[serde(default = "default_true")]
    pub docker_events: bool,
}

fn default_true() -> bool {
    true
}

fn default_probe_interval() -> u64 {
    30
}
fn default_probe_failures() -> u32 {
    3
}

fn default_group_by() -> Vec<String> {
    vec!["alertname".into(), "service".into()]
}
fn default_summarize() -> usize {
    100
}
fn default_inline_max() -> usize {
    10
}
/// The most lines `inline_max` may ask for: with the title, the common header, the
/// "and N more" line and the footer, a message stays one phone screen (~15 lines).
pub const INLINE_MAX_LIMIT: usize = 10;
fn default_repeat() -> u64 {
    4 * 3_600
}
fn default_group_wait() -> u64 {
    10
}
fn default_group_interval() -> u64 {
    120
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            group_by: default_group_by(),
            group_wait_secs: default_group_wait(),
            group_interval_secs: default_group_interval(),
            repeat_interval_secs: default_repeat(),
            summarize_over: default_summarize(),
            inline_max: default_inline_max(),
            routes: Vec::new(),
            probe_interval_secs: default_probe_interval(),
            probe_failures: default_probe_failures(),
            docker_events: true,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Labels that must be equal: `match = { severity = "critical" }`.
    #[serde(default, rename = "match")]
    pub matchers: BTreeMap<String, String>,
    /// Labels that must match a regular expression (anchored): `match_re = { service = "api|web" }`.
    #[serde(default)]
    pub match_re: BTreeMap<String, String>,
    /// Where its alerts go (default `channels.alerts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<u64>,
    /// The severity its alerts get (default: from the `severity` label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// Whether its groups page the on-call role (`incidents.on_call_role`). Unset:
    /// P1 groups page, others do not; `false` opts a route's P1 groups out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<bool>,
    /// The `[[oncall.policies]]` its groups start when they first fire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<String>,
}

/// Where one alert goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Routed {
    /// The route's position, or `None` for the default.
    pub route: Option<usize>,
    pub channel: Option<u64>,
    pub severity: Severity,
    pub page: bool,
}

struct Compiled {
    exact: Vec<(String, String)>,
    re: Vec<(String, Regex)>,
    channel: Option<u64>,
    severity: Option<Severity>,
    page: Option<bool>,
}

/// Whether a group pages: what its route says, else whether it is a P1. A paging
/// group whose route names an `escalation` pages through that policy instead of the
/// on-call role (see [`Router::escalation`]): its first step replaces the ping.
fn pages(route: Option<bool>, severity: Severity) -> bool {
    route.unwrap_or(severity == Severity::P1)
}

/// The routes, compiled once at start-up.
pub struct Router {
    routes: Vec<Compiled>,
    pub config: AlertsConfig,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("routes", &self.routes.len())
            .finish()
    }
}

/// The usual severity words, as P1..P4.
pub fn severity_of_label(label: Option<&str>) -> Severity {
    match label.map(|l| l.trim().to_ascii_lowercase()).as_deref() {
        Some("p1" | "critical" | "crit" | "page" | "emergency" | "fatal") => Severity::P1,
        Some("p2" | "high" | "error" | "major") => Severity::P2,
        Some("p4" | "info" | "low" | "none" | "debug") => Severity::P4,
        _ => Severity::P3,
    }
}

impl Router {
    /// Compiles the routes; every bad regex is named by its key.
    pub fn new(config: &AlertsConfig) -> Result<Router, Vec<String>> {
        let mut errors = Vec::new();
        let mut routes = Vec::new();
        for (i, r) in config.routes.iter().enumerate() {
            let mut re = Vec::new();
            for (label, pattern) in &r.match_re {
                match Regex::new(&format!("^(?:{pattern})$")) {
                    Ok(x) => re.push((label.clone(), x)),
                    Err(e) => errors.push(format!("alerts.routes[{i}].match_re.{label}: {e}")),
                }
            }
            routes.push(Compiled {
                exact: r
                    .matchers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                re,
                channel: r.channel,
                severity: r.severity,
                page: r.page,
            });
        }
        if config.group_interval_secs == 0 || config.group_interval_secs > 86_400 {
            errors.push("alerts.group_interval_secs: between 1 and 86400".into());
        }
        if config.repeat_interval_secs < 60 && config.repeat_interval_secs != 0 {
            // Seconds are for tests; a real team wants minutes at least.
            tracing::warn!(
                secs = config.repeat_interval_secs,
                "alerts.repeat_interval_secs is very short"
            );
        }
        if config.summarize_over == 0 || config.summarize_over > 1_000 {
            errors.push("alerts.summarize_over: between 1 and 1000".into());
        }
        if config.inline_max == 0 || config.inline_max > INLINE_MAX_LIMIT {
            errors.push(format!(
                "alerts.inline_max: between 1 and {INLINE_MAX_LIMIT} (one phone screen)"
            ));
        }
        if config.probe_failures == 0 {
            errors.push("alerts.probe_failures: at least 1".into());
        }
        if config.group_wait_secs > 3_600 {
            errors.push("alerts.group_wait_secs: at most 3600".into());
        }
        if errors.is_empty() {
            Ok(Router {
                routes,
                config: config.clone(),
            })
        } else {
            Err(errors)
        }
    }

    pub fn route(&self, a: &Alert) -> Routed {
        for (i, r) in self.routes.iter().enumerate() {
            let exact = r.exact.iter().all(|(k, v)| a.label(k) == Some(v.as_str()));
            let re =
                r.re.iter()
                    .all(|(k, x)| x.is_match(a.label(k).unwrap_or_default()));
            if exact && re {
                let severity = r
                    .severity
                    .unwrap_or_else(|| severity_of_label(a.label("severity")));
                return Routed {
                    route: Some(i),
                    channel: r.channel,
                    severity,
                    page: pages(r.page, severity),
                };
            }
        }
        let severity = severity_of_label(a.label("severity"));
        Routed {
            route: None,
            channel: None,
            severity,
            page: pages(None, severity),
        }
    }

    /// The escalation policy a group starts when it first fires (and pages): its
    /// route's `escalation`, read from the group's key (`r<route>|...`).
    pub fn escalation(&self, group_key: &str) -> Option<&str> {
        let route = group_key.split('|').next()?.strip_prefix('r')?;
        let i: usize = route.parse().ok()?;
        self.config.routes.get(i)?.escalation.as_deref()
    }

    /// The group an alert joins, and its title: `HighLatency · api`.
    pub fn group(&self, a: &Alert, routed: &Routed) -> (String, String) {
        let mut key = match routed.route {
            Some(i) => format!("r{i}"),
            None => "default".to_string(),
        };
        let mut title = Vec::new();
        for label in &self.config.group_by {
            let v = a.label(label).unwrap_or_default();
            // Escaped, so that no label value can read as another label: `Legit|`
            // and `Legit` are two groups. (Values without `%`, `|` or `=` keep the
            // key they had before escaping existed.)
            key.push_str(&format!("|{}={}", escape_key(label), escape_key(v)));
            if !v.is_empty() {
                title.push(v.to_string());
            }
        }
        if title.is_empty() {
            title.push("Alerts".into());
        }
        (key, title.join(" · "))
    }
}

/// The group's identity as exact label values (an empty value: the label is
/// absent): what "Silence 1 h" on its message silences.
pub fn group_labels<'a>(group_by: &'a [String], a: &'a Alert) -> Vec<(&'a str, &'a str)> {
    group_by
        .iter()
        .map(|l| (l.as_str(), a.label(l).unwrap_or_default()))
        .collect()
}

/// `%`, `|` and `=` percent-encoded: the separators of a group key.
fn escape_key(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['%', '|', '=']) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 6);
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            '|' => out.push_str("%7C"),
            '=' => out.push_str("%3D"),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertStatus, Source};

    fn alert(labels: &[(&str, &str)]) -> Alert {
        Alert {
            source: Source::Generic,
            fingerprint: "f".into(),
            status: AlertStatus::Firing,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: BTreeMap::new(),
            starts_ms: None,
            ends_ms: None,
            url: None,
        }
    }

    #[test]
    fn first_matching_route_wins_and_regexes_are_anchored() {
        let cfg: AlertsConfig = toml::from_str(
            r#"
            [[routes]]
            match = { team = "payments" }
            match_re = { service = "api|web" }
            channel = 900
            severity = "P1"
            page = true
            [[routes]]
            match_re = { service = "api" }
            channel = 901
            "#,
        )
        .expect("parses");
        let r = Router::new(&cfg).expect("compiles");
        let a = r.route(&alert(&[("team", "payments"), ("service", "api")]));
        assert_eq!(
            (a.route, a.channel, a.severity, a.page),
            (Some(0), Some(900), Severity::P1, true)
        );
        let b = r.route(&alert(&[("service", "api"), ("severity", "warning")]));
        assert_eq!(
            (b.route, b.channel, b.severity),
            (Some(1), Some(901), Severity::P3)
        );
        let c = r.route(&alert(&[
            ("service", "api-gateway"),
            ("severity", "critical"),
        ]));
        assert_eq!(
            (c.route, c.severity, c.page),
            (None, Severity::P1, true),
            "anchored: api-gateway is not api; a P1 pages without a route"
        );
        let (key, title) = r.group(
            &alert(&[("alertname", "HighLatency"), ("service", "api")]),
            &b,
        );
        assert_eq!(key, "r1|alertname=HighLatency|service=api");
        assert_eq!(title, "HighLatency · api");
    }

    #[test]
    fn a_p1_pages_unless_its_route_opts_out() {
        let cfg: AlertsConfig = toml::from_str(
            r#"
            [[routes]]
            match = { team = "quiet" }
            page = false
            [[routes]]
            match = { team = "loud" }
            page = true
            [[routes]]
            match = { team = "plain" }
            "#,
        )
        .expect("parses");
        let r = Router::new(&cfg).expect("compiles");
        let page =
            |team: &str, sev: &str| r.route(&alert(&[("team", team), ("severity", sev)])).page;
        assert!(!page("quiet", "critical"), "page = false opts out");
        assert!(page("loud", "warning"), "page = true pages any severity");
        assert!(page("plain", "critical") && !page("plain", "warning"));
        assert!(page("none", "critical") && !page("none", "error"));
    }

    #[test]
    fn inline_max_is_one_phone_screen_at_most() {
        for bad in [0, INLINE_MAX_LIMIT + 1] {
            let cfg = AlertsConfig {
                inline_max: bad,
                ..Default::default()
            };
            let e = Router::new(&cfg).unwrap_err();
            assert!(e[0].starts_with("alerts.inline_max:"), "{e:?}");
        }
    }

    #[test]
    fn a_bad_regex_is_named() {
        let mut cfg = AlertsConfig::default();
        cfg.routes.push(RouteConfig {
            match_re: [("service".to_string(), "(".to_string())]
                .into_iter()
                .collect(),
            ..Default::default()
        });
        let e = Router::new(&cfg).unwrap_err();
        assert!(
            e[0].starts_with("alerts.routes[0].match_re.service:"),
            "{e:?}"
        );
    }
}
