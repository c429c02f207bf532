//! Webhook targets of escalation steps (`webhook:NAME`): what wakes a phone in Do
//! Not Disturb (ntfy, an SMS gateway, a phone bridge).
//!
//! A step stores its send as a row (in the step's own transaction, under a unique
//! key), and the leader delivers due sends here with retries and back-off, so a
//! gateway that is down for a minute still gets the page, and a step is posted
//! once. The body is the configured template with its placeholders replaced by
//! JSON-escaped text (no `"` or newline from an alert title can break the JSON).
//! The URL may hold a token: it is never logged.

use std::sync::OnceLock;
use std::time::Duration;

use tracing::{info, warn};

use crate::app::App;
use crate::store::escalations as db;
use crate::store::StoreError;

/// Attempts before a send is given up (1 s, 2 s, 4 s ... 60 s apart: ~5 minutes).
pub const MAX_ATTEMPTS: i64 = 10;
const TIMEOUT: Duration = Duration::from_secs(10);

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default()
    })
}

/// The text as it goes inside a JSON string (without the quotes).
fn json_escaped(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or_default()
        .to_string()
}

/// The body template with `{title}`, `{severity}`, `{link}` and `{target}` filled
/// in, JSON-escaped, literally (a `{link}` inside a title stays text).
pub fn fill(template: &str, title: &str, severity: &str, link: &str, target: &str) -> String {
    let mut out = String::with_capacity(template.len() + title.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after.find('}').and_then(|close| {
            let v = match &after[..close] {
                "title" => title,
                "severity" => severity,
                "link" => link,
                "target" => target,
                _ => return None,
            };
            Some((json_escaped(v), close))
        });
        match value {
            Some((v, close)) => {
                out.push_str(&v);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Delivers the due webhook sends. Returns how many went out.
pub async fn deliver_due(app: &App) -> Result<usize, StoreError> {
    let mut sent = 0;
    for w in db::due_webhooks(&app.store, app.clock.now_ms()).await? {
        let Some(hook) = app.oncall.webhook(&w.webhook) else {
            db::webhook_done(
                &app.store,
                w.id,
                "failed",
                0,
                "webhook no longer configured",
                app.clock.now_ms(),
            )
            .await?;
            continue;
        };
        let result = client()
            .post(&hook.url)
            .header("content-type", "application/json")
            .header("idempotency-key", &w.key)
            .body(w.body.clone())
            .send()
            .await;
        let now = app.clock.now_ms();
        let failure = match result {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("HTTP {}", r.status().as_u16())),
            // Without the URL: it may carry a token.
            Err(e) => Some(if e.is_timeout() {
                "timed out".to_string()
            } else {
                "could not connect".to_string()
            }),
        };
        match failure {
            None => {
                db::webhook_done(&app.store, w.id, "sent", now, "", now).await?;
                info!(webhook = %hook.name, send = %w.key, "escalation webhook sent");
                sent += 1;
            }
            Some(why) if w.attempts + 1 >= MAX_ATTEMPTS => {
                warn!(webhook = %hook.name, send = %w.key, %why, "escalation webhook given up");
                db::webhook_done(&app.store, w.id, "failed", now, &why, now).await?;
            }
            Some(why) => {
                let wait = (1_000_i64 << w.attempts.clamp(0, 6)).min(60_000);
                warn!(webhook = %hook.name, send = %w.key, %why, attempts = w.attempts + 1, "escalation webhook failed; retrying");
                db::webhook_done(&app.store, w.id, "pending", now + wait, &why, now).await?;
            }
        }
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_json_escaped_and_literally() {
        let body = fill(
            r#"{"title":"{title}","p":"{severity}","u":"{link}","to":"{target}","x":"{other}"}"#,
            "Checkout \"down\"\n{link}",
            "P1",
            "https://discord.com/channels/1/2",
            "ntfy",
        );
        let v: serde_json::Value = serde_json::from_str(&body).expect("valid JSON");
        assert_eq!(v["title"], "Checkout \"down\"\n{link}");
        assert_eq!(v["p"], "P1");
        assert_eq!(v["u"], "https://discord.com/channels/1/2");
        assert_eq!(v["to"], "ntfy");
        assert_eq!(v["x"], "{other}");
    }
}
