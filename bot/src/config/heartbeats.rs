//! `[[heartbeats]]`: dead-man's switches for cron jobs (see
//! `klaxon_core::alerts::heartbeats`). Parsed as text here so a bad duration or a
//! missing token is reported naming its key, like every other setting.
//!
//! The token is a secret: masked in `check-config`, never logged. It comes from
//! `token` in the file or, when that is unset, from the environment variable
//! `KLAXON_HEARTBEAT_<NAME>_TOKEN` (the name upper-cased, every other character than
//! a letter or digit as `_`), so it can stay out of the file.

use klaxon_core::settings::heartbeats::{Heartbeat, Token};
use klaxon_core::settings::services::ServiceConfig;
use klaxon_core::timefmt::parse_duration;
use serde::{Deserialize, Serialize};

use super::Secret;

fn default_grace() -> String {
    "1h".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatConfig {
    /// The URL segment: `/heartbeat/NAME`. Letters, digits, `-`, `_` and `.`.
    pub name: String,
    /// How often the job runs: `24h`, `15m`, `1w` (s, m, h, d, w).
    pub period: String,
    /// How late a run may be before `HeartbeatMissed` fires (default `1h`).
    #[serde(default = "default_grace")]
    pub grace: String,
    /// The configured service the alerts name (routing, silences, maintenance).
    #[serde(default)]
    pub service: Option<String>,
    /// Bearer token the job sends; or `KLAXON_HEARTBEAT_<NAME>_TOKEN`.
    #[serde(default)]
    pub token: Secret,
}

/// The environment variable a heartbeat's token may come from.
pub fn token_var(name: &str) -> String {
    let upper: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("KLAXON_HEARTBEAT_{upper}_TOKEN")
}

/// Fills tokens unset in the file from the environment.
pub fn resolve_tokens(list: &mut [HeartbeatConfig], env: &dyn Fn(&str) -> Option<String>) {
    for hb in list.iter_mut().filter(|h| h.token.is_empty()) {
        if let Some(v) = env(&token_var(&hb.name)).filter(|v| !v.is_empty()) {
            hb.token = Secret::new(v);
        }
    }
}

fn duration(key: &str, text: &str, errs: &mut Vec<String>) -> Option<std::time::Duration> {
    match parse_duration(text.trim()) {
        None => {
            errs.push(format!(
                "{key}: `{text}` is not a duration (digits and a unit: s, m, h, d, w; e.g. `24h`)"
            ));
            None
        }
        Some(d) if d.is_zero() => {
            errs.push(format!("{key}: must be longer than 0"));
            None
        }
        Some(d) => Some(d),
    }
}

/// Everything wrong with the heartbeats, each naming its key.
pub fn problems(list: &[HeartbeatConfig], services: &[ServiceConfig]) -> Vec<String> {
    let mut errs = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, hb) in list.iter().enumerate() {
        let key = format!("heartbeats[{i}]");
        let name = hb.name.trim();
        if name.is_empty() {
            errs.push(format!("{key}.name: must not be empty"));
        } else if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            || name != hb.name
        {
            errs.push(format!(
                "{key}.name: `{}` may hold only letters, digits, `-`, `_` and `.` (it is a URL path segment)",
                hb.name
            ));
        } else if !seen.insert(name.to_string()) {
            errs.push(format!("{key}.name: `{name}` is configured twice"));
        }
        duration(&format!("{key}.period"), &hb.period, &mut errs);
        duration(&format!("{key}.grace"), &hb.grace, &mut errs);
        if let Some(service) = &hb.service {
            if !services
                .iter()
                .any(|s| s.name.eq_ignore_ascii_case(service.trim()))
            {
                let known: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
                errs.push(format!(
                    "{key}.service: no service `{service}` is configured (known: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ));
            }
        }
        let token = hb.token.expose();
        if token.is_empty() {
            errs.push(format!(
                "{key}.token: missing; set it here or in {}",
                token_var(&hb.name)
            ));
        } else if token.chars().any(char::is_whitespace) {
            errs.push(format!(
                "{key}.token: contains whitespace, which a bearer token cannot; remove it (the value is not shown)"
            ));
        }
    }
    errs
}

/// The heartbeats as core uses them; only called on a validated config.
pub fn to_core(list: &[HeartbeatConfig], services: &[ServiceConfig]) -> Vec<Heartbeat> {
    list.iter()
        .map(|hb| Heartbeat {
            name: hb.name.clone(),
            period: parse_duration(hb.period.trim()).unwrap_or_default(),
            grace: parse_duration(hb.grace.trim()).unwrap_or_default(),
            // The service as configured, whatever case the heartbeat wrote.
            service: hb.service.as_ref().map(|want| {
                services
                    .iter()
                    .find(|s| s.name.eq_ignore_ascii_case(want.trim()))
                    .map_or_else(|| want.clone(), |s| s.name.clone())
            }),
            token: Token::new(hb.token.expose()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(
        name: &str,
        period: &str,
        grace: &str,
        service: Option<&str>,
        token: &str,
    ) -> HeartbeatConfig {
        HeartbeatConfig {
            name: name.into(),
            period: period.into(),
            grace: grace.into(),
            service: service.map(Into::into),
            token: Secret::new(token),
        }
    }

    #[test]
    fn bad_heartbeats_are_named_by_key() {
        let list = [
            hb("db-backup", "24h", "1h", None, "t"),
            hb("db-backup", "0s", "1h", None, "t"),
            hb("x", "1d", "soon", Some("nope"), ""),
            hb("a b", "1h", "1m", None, "t t"),
        ];
        let errs = problems(&list, &[]).join("\n");
        assert!(
            errs.contains("heartbeats[1].name: `db-backup` is configured twice"),
            "{errs}"
        );
        assert!(
            errs.contains("heartbeats[1].period: must be longer than 0"),
            "{errs}"
        );
        assert!(
            errs.contains("heartbeats[2].grace: `soon` is not a duration"),
            "{errs}"
        );
        assert!(
            errs.contains("heartbeats[2].service: no service `nope`"),
            "{errs}"
        );
        assert!(
            errs.contains(
                "heartbeats[2].token: missing; set it here or in KLAXON_HEARTBEAT_X_TOKEN"
            ),
            "{errs}"
        );
        assert!(
            errs.contains("heartbeats[3].name: `a b` may hold only"),
            "{errs}"
        );
        assert!(
            errs.contains("heartbeats[3].token: contains whitespace"),
            "{errs}"
        );
        assert!(!errs.contains("heartbeats[0]"), "{errs}");
        assert!(!errs.contains("t t"), "a token is never shown: {errs}");
    }

    #[test]
    fn a_token_may_come_from_the_environment() {
        let mut list = [hb("db-backup", "24h", "1h", None, "")];
        resolve_tokens(&mut list, &|k: &str| {
            (k == "KLAXON_HEARTBEAT_DB_BACKUP_TOKEN").then(|| "from-env".to_string())
        });
        assert_eq!(list[0].token.expose(), "from-env");
        assert!(problems(&list, &[]).is_empty());
        let core = to_core(&list, &[]);
        assert!(core[0].token.matches("from-env"));
        assert_eq!(core[0].period, std::time::Duration::from_secs(86_400));
        assert_eq!(core[0].grace, std::time::Duration::from_secs(3_600));
    }

    fn load(
        text: &str,
        env: &[(&str, &str)],
    ) -> Result<super::super::Config, super::super::ConfigErrors> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("klaxon.toml");
        std::fs::write(&p, format!("[discord]\nguild_id = 123\n{text}")).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |k: &str| {
            if k == "DISCORD_TOKEN" {
                return Some("t".to_string());
            }
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        };
        super::super::Config::load_from(
            &p,
            super::super::Sources { env: &lookup },
            std::iter::empty(),
        )
    }

    #[test]
    fn check_config_names_the_key_and_masks_the_token() {
        let errs = load(
            "[[heartbeats]]\nname = \"db-backup\"\nperiod = \"24h\"\nservice = \"db\"\ntoken = \"abc123\"\n",
            &[],
        )
        .unwrap_err()
        .0
        .join("\n");
        assert!(
            errs.contains("heartbeats[0].service: no service `db` is configured"),
            "{errs}"
        );
        assert!(!errs.contains("abc123"), "{errs}");
        let c = load(
            "[[services]]\nname = \"db\"\nhealth_url = \"http://127.0.0.1:1/\"\n\
             [[heartbeats]]\nname = \"db-backup\"\nperiod = \"24h\"\nservice = \"DB\"\n",
            &[("KLAXON_HEARTBEAT_DB_BACKUP_TOKEN", "from-env-123")],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let shown = c.to_masked_toml();
        assert!(shown.contains("token = \"****\""), "{shown}");
        assert!(!shown.contains("from-env-123"), "{shown}");
        assert!(!format!("{c:?}").contains("from-env-123"));
        let core = to_core(&c.heartbeats, &c.services);
        assert_eq!(core[0].service.as_deref(), Some("db"));
        assert_eq!(
            core[0].grace,
            std::time::Duration::from_secs(3_600),
            "1h by default"
        );
    }
}
