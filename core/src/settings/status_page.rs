//! `[status_page]`: the public page for stakeholders outside Discord (issue #15).
//!
//! Why its own listener: `[http] listen` carries the intake, `/metrics` and
//! `/readyz`, which stay private; the page is meant to be reachable by customers,
//! so it gets an address of its own and is off unless one is set.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The section as written in the config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusPageConfig {
    /// Where the page listens; the page is off when unset.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    #[serde(default = "default_title")]
    pub title: String,
    /// The page's public address, for the links of the Atom feed.
    #[serde(default)]
    pub base_url: String,
    #[serde(default = "default_history_days")]
    pub history_days: u32,
    /// How long before its start a maintenance window is shown (`48h`).
    #[serde(default = "default_show_before")]
    pub show_maintenance_before: String,
    #[serde(default)]
    pub components: Vec<ComponentConfig>,
    /// Email subscriptions (double opt-in), offered while set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<super::subscriptions::SmtpConfig>,
    /// Systems that get a JSON POST per public update.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<super::subscriptions::WebhookConfig>,
}

/// One thing stakeholders know by name, made of configured services.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentConfig {
    pub name: String,
    pub services: Vec<String>,
    #[serde(default)]
    pub description: String,
}

fn default_title() -> String {
    "Service status".into()
}
fn default_history_days() -> u32 {
    90
}
fn default_show_before() -> String {
    "48h".into()
}

impl Default for StatusPageConfig {
    fn default() -> Self {
        StatusPageConfig {
            listen: None,
            title: default_title(),
            base_url: String::new(),
            history_days: default_history_days(),
            show_maintenance_before: default_show_before(),
            components: Vec::new(),
            smtp: None,
            webhooks: Vec::new(),
        }
    }
}

impl StatusPageConfig {
    /// `show_maintenance_before` as a duration (48 h when it does not parse; the
    /// load-time check refuses that).
    pub fn show_before(&self) -> Duration {
        crate::timefmt::parse_duration(&self.show_maintenance_before)
            .unwrap_or(Duration::from_secs(48 * 3600))
    }

    /// Problems serde cannot see, each naming its key. `services` are the
    /// configured service names.
    pub fn problems(&self, services: &[&str]) -> Vec<String> {
        let mut errs = Vec::new();
        if self.title.trim().is_empty() {
            errs.push("status_page.title: must not be empty".into());
        }
        if !(1..=365).contains(&self.history_days) {
            errs.push("status_page.history_days: must be 1 to 365".into());
        }
        if crate::timefmt::parse_duration(&self.show_maintenance_before).is_none() {
            errs.push(format!(
                "status_page.show_maintenance_before: `{}` is not a duration (write it as 48h)",
                self.show_maintenance_before
            ));
        }
        let url_ok = self.base_url.is_empty()
            || self.base_url.starts_with("https://")
            || self.base_url.starts_with("http://");
        if !url_ok {
            errs.push("status_page.base_url: must be an http(s) URL".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, c) in self.components.iter().enumerate() {
            let key = format!("status_page.components[{i}]");
            if c.name.trim().is_empty() {
                errs.push(format!("{key}.name: must not be empty"));
            } else if !seen.insert(c.name.to_lowercase()) {
                errs.push(format!("{key}.name: `{}` is named twice", c.name));
            }
            if c.services.is_empty() {
                errs.push(format!("{key}.services: name at least one service"));
            }
            for s in &c.services {
                if !services.iter().any(|k| k.eq_ignore_ascii_case(s)) {
                    errs.push(format!(
                        "{key}.services: `{s}` is not a configured service (known: {})",
                        services.join(", ")
                    ));
                }
            }
        }
        errs.extend(super::subscriptions::problems(
            self.smtp.as_ref(),
            &self.webhooks,
        ));
        if (self.smtp.is_some() || !self.webhooks.is_empty()) && self.base_url.is_empty() {
            errs.push(
                "status_page.base_url: required with smtp or webhooks (the links in mails and posts)"
                    .into(),
            );
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_services_and_bad_durations_are_named_by_key() {
        let c = StatusPageConfig {
            show_maintenance_before: "soon".into(),
            components: vec![ComponentConfig {
                name: "API".into(),
                services: vec!["api".into(), "ghost".into()],
                description: String::new(),
            }],
            ..Default::default()
        };
        let p = c.problems(&["api", "web"]);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("status_page.show_maintenance_before:"));
        assert!(p[1].starts_with("status_page.components[0].services: `ghost`"));
        assert!(StatusPageConfig::default().problems(&[]).is_empty());
    }
}
