//! `[status_page.smtp]` and `[[status_page.webhooks]]`: how stakeholders who
//! subscribed to the status page hear of each public update (issue #15).
//!
//! Why here and not in the bot's config: the settings are a leaf that `App` and
//! the status page's workers read without importing the bot; the secrets are a
//! type of their own ([`SecretText`]) that never prints, so `check-config`, the
//! logs and `Debug` show `****`.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

/// A password or a webhook's signing secret: kept as written, shown as `****`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretText(String);

impl SecretText {
    pub fn new(s: impl Into<String>) -> Self {
        SecretText(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretText(****)")
    }
}

impl Serialize for SecretText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "****" })
    }
}

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP, upgraded with STARTTLS (required: no fallback to clear text).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// No encryption: only for a relay on the same host (`127.0.0.1`).
    None,
}

/// `[status_page.smtp]`: email subscriptions are offered while this is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    /// Default: 587 (starttls), 465 (tls), 25 (none).
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: SmtpTls,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: SecretText,
    /// `Acme status <status@example.com>` or a bare address.
    pub from: String,
}

impl SmtpConfig {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        })
    }
}

/// `[[status_page.webhooks]]`: a system that gets a JSON POST per public update.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Unique; the delivery key, so renaming a webhook makes it a new subscriber.
    pub name: String,
    pub url: String,
    /// When set, each POST carries `X-Klaxon-Signature: sha256=<hex HMAC of the body>`.
    #[serde(default)]
    pub secret: SecretText,
    /// One extra header, `Name: value` (for example `Authorization: Bearer …`);
    /// its value is masked like a secret.
    #[serde(default)]
    pub header: SecretText,
}

impl WebhookConfig {
    /// The extra header split in name and value, when set and well formed.
    pub fn header(&self) -> Option<(&str, &str)> {
        let (n, v) = self.header.expose().split_once(':')?;
        Some((n.trim(), v.trim()))
    }
}

fn is_header_name(n: &str) -> bool {
    !n.is_empty()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Problems of the two sections, each naming its key.
pub fn problems(smtp: Option<&SmtpConfig>, webhooks: &[WebhookConfig]) -> Vec<String> {
    let mut errs = Vec::new();
    if let Some(s) = smtp {
        let k = "status_page.smtp";
        if s.host.trim().is_empty() || s.host.contains(['/', ' ', ':']) {
            errs.push(format!(
                "{k}.host: must be a host name or address (no scheme, no port)"
            ));
        }
        if s.port == Some(0) {
            errs.push(format!("{k}.port: must be 1 to 65535"));
        }
        if s.from.parse::<lettre::message::Mailbox>().is_err() {
            errs.push(format!(
                "{k}.from: `{}` is not an address (write `status@example.com` or `Acme status <status@example.com>`)",
                s.from
            ));
        }
        if s.username.is_empty() != s.password.is_empty() {
            errs.push(format!(
                "{k}.password: set both username and password, or neither"
            ));
        }
        if s.tls == SmtpTls::None && !s.password.is_empty() {
            errs.push(format!(
                "{k}.tls: \"none\" would send the password in clear; use \"starttls\" or \"tls\""
            ));
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, w) in webhooks.iter().enumerate() {
        let k = format!("status_page.webhooks[{i}]");
        if w.name.trim().is_empty() || w.name.len() > 64 {
            errs.push(format!("{k}.name: must be 1 to 64 characters"));
        } else if !names.insert(w.name.to_lowercase()) {
            errs.push(format!("{k}.name: `{}` is named twice", w.name));
        }
        let ok = reqwest::Url::parse(&w.url)
            .ok()
            .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !ok {
            errs.push(format!(
                "{k}.url: `{}` is not an http(s) URL",
                crate::secret::redact_url(&w.url)
            ));
        }
        if !w.header.is_empty() {
            let good = w.header().is_some_and(|(n, v)| {
                is_header_name(n) && !v.is_empty() && !v.contains(['\r', '\n'])
            });
            if !good {
                errs.push(format!("{k}.header: write it as `Name: value`"));
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smtp() -> SmtpConfig {
        SmtpConfig {
            host: "mail.example.com".into(),
            port: None,
            tls: SmtpTls::Starttls,
            username: "status".into(),
            password: SecretText::new("hunter2"),
            from: "Acme status <status@example.com>".into(),
        }
    }

    #[test]
    fn good_sections_pass_and_bad_keys_are_named() {
        assert!(problems(Some(&smtp()), &[]).is_empty());
        assert_eq!(smtp().port(), 587);
        let bad = SmtpConfig {
            host: "smtp://x".into(),
            from: "not an address".into(),
            tls: SmtpTls::None,
            ..smtp()
        };
        let hooks = [
            WebhookConfig {
                name: "ops".into(),
                url: "ftp://x".into(),
                secret: SecretText::default(),
                header: SecretText::new("no colon"),
            },
            WebhookConfig {
                name: "OPS".into(),
                url: "https://hooks.example.com/x".into(),
                secret: SecretText::new("s"),
                header: SecretText::new("Authorization: Bearer t"),
            },
        ];
        let p = problems(Some(&bad), &hooks);
        let keys: Vec<&str> = p.iter().filter_map(|e| e.split(':').next()).collect();
        assert_eq!(
            keys,
            [
                "status_page.smtp.host",
                "status_page.smtp.from",
                "status_page.smtp.tls",
                "status_page.webhooks[0].url",
                "status_page.webhooks[0].header",
                "status_page.webhooks[1].name",
            ],
            "{p:?}"
        );
    }

    #[test]
    fn secrets_never_print() {
        let s = smtp();
        assert!(!format!("{s:?}").contains("hunter2"));
        let t = toml::to_string(&s).expect("serializes");
        assert!(
            t.contains("password = \"****\"") && !t.contains("hunter2"),
            "{t}"
        );
    }
}
