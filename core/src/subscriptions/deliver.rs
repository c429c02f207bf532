//! The subscriptions' outbox worker: sends the due deliveries (email, webhooks), on
//! the leader only (`bot/src/status_page.rs` runs it while `App::leader` is set).
//!
//! - **Retries**: a mail server or webhook that is down, slow, answers 5xx, 408 or
//!   429 gets the delivery again after 1 s, 2 s, 4 s … up to [`MAX_BACKOFF_MS`]; one
//!   that is down skips its other deliveries for the rest of the pass (they are not
//!   counted as attempts). A delivery still failing after [`GIVE_UP_MS`] is parked.
//! - **Refused for good** (SMTP 5xx, HTTP 4xx other than 408/429), a subscriber
//!   gone or a webhook no longer configured: parked with why.
//! - **Once**: a delivery is closed as `sent` right after the receiver took it;
//!   mails carry `Message-ID: <update.ID@…>` and webhooks `X-Klaxon-Delivery: ID`,
//!   so a repeat after a lost answer can be recognised.

use std::collections::HashSet;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tracing::{info, warn};

use super::mail::{MailError, Mailer};
use super::Notice;
use crate::app::App;
use crate::settings::status_page::StatusPageConfig;
use crate::settings::subscriptions::WebhookConfig;
use crate::store::subscriptions::{self as db, Due};
use crate::store::StoreError;

/// The longest wait between two attempts of a delivery.
pub const MAX_BACKOFF_MS: i64 = 300_000;
/// A delivery failing for this long is parked.
pub const GIVE_UP_MS: i64 = 24 * 3_600_000;
/// How long one webhook POST may take.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
const BATCH: i64 = 50;
/// The deliveries metric.
pub const METRIC: &str = "klaxon_status_deliveries_total";

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub sent: usize,
    pub retrying: usize,
    pub parked: usize,
}

/// Where the pass sends: the mailer (when `[status_page.smtp]` is set) and an HTTP
/// client for the webhooks.
#[derive(Debug, Clone)]
pub struct Senders {
    pub mailer: Option<Mailer>,
    pub http: reqwest::Client,
}

impl Senders {
    pub fn new(cfg: &StatusPageConfig) -> anyhow::Result<Senders> {
        let mailer = cfg.smtp.as_ref().map(Mailer::new).transpose()?;
        let http = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Senders { mailer, http })
    }
}

enum Outcome {
    Sent,
    /// Try again later; the receiver is down for the rest of the pass.
    Retry(String),
    Park(String),
}

/// Sends every due delivery; bounded, so a pass always ends.
pub async fn deliver_due(
    app: &App,
    cfg: &StatusPageConfig,
    senders: &Senders,
) -> Result<Delivered, StoreError> {
    let mut out = Delivered::default();
    let mut down: HashSet<String> = HashSet::new();
    let mut tried: HashSet<i64> = HashSet::new();
    for _ in 0..20 {
        let due = db::due(&app.store, app.clock.now_ms(), BATCH).await?;
        let due: Vec<Due> = due.into_iter().filter(|d| !tried.contains(&d.id)).collect();
        if due.is_empty() {
            break;
        }
        for d in &due {
            tried.insert(d.id);
            let channel = channel(&d.target);
            let receiver = if channel == "email" {
                "smtp"
            } else {
                d.target.as_str()
            };
            if down.contains(receiver) {
                continue;
            }
            let outcome = send_one(cfg, senders, d).await;
            let now = app.clock.now_ms();
            let label = match outcome {
                Outcome::Sent => {
                    db::close(&app.store, d.id, "sent", "", now).await?;
                    out.sent += 1;
                    "sent"
                }
                Outcome::Park(why) => {
                    warn!(delivery = d.id, target = %d.target, update = %d.ukey, %why, "status update delivery parked");
                    db::close(
                        &app.store,
                        d.id,
                        "parked",
                        &crate::chat::truncate(&why, 300),
                        now,
                    )
                    .await?;
                    out.parked += 1;
                    "parked"
                }
                Outcome::Retry(why) if now - d.created_ms > GIVE_UP_MS => {
                    warn!(delivery = d.id, target = %d.target, update = %d.ukey, %why, "status update delivery failed for a day; parked");
                    db::close(
                        &app.store,
                        d.id,
                        "parked",
                        &crate::chat::truncate(&why, 300),
                        now,
                    )
                    .await?;
                    out.parked += 1;
                    "parked"
                }
                Outcome::Retry(why) => {
                    let wait = (1_000_i64 << d.attempts.clamp(0, 20)).min(MAX_BACKOFF_MS);
                    db::retry_later(
                        &app.store,
                        d.id,
                        now + wait,
                        &crate::chat::truncate(&why, 300),
                    )
                    .await?;
                    // The receiver's other deliveries wait as long (uncounted), so
                    // they neither fail in turn nor hold up the other receivers.
                    db::defer(&app.store, channel == "email", &d.target, now + wait).await?;
                    info!(delivery = d.id, target = %d.target, attempts = d.attempts + 1, wait_ms = wait, %why, "status update delivery will be retried");
                    down.insert(receiver.to_string());
                    out.retrying += 1;
                    "retry"
                }
            };
            app.metrics
                .inc(METRIC, &[("channel", channel), ("outcome", label)]);
        }
    }
    if out != Delivered::default() {
        info!(
            sent = out.sent,
            retrying = out.retrying,
            parked = out.parked,
            "status updates delivered"
        );
    }
    Ok(out)
}

fn channel(target: &str) -> &'static str {
    if target.starts_with("email:") {
        "email"
    } else {
        "webhook"
    }
}

async fn send_one(cfg: &StatusPageConfig, senders: &Senders, d: &Due) -> Outcome {
    let notice: Notice = match serde_json::from_str(&d.body) {
        Ok(n) => n,
        Err(e) => return Outcome::Park(format!("unreadable update: {e}")),
    };
    if let Some(name) = d.target.strip_prefix("webhook:") {
        let Some(hook) = cfg.webhooks.iter().find(|w| w.name == name) else {
            return Outcome::Park("webhook no longer configured".into());
        };
        return post(&senders.http, hook, &d.body, d.id).await;
    }
    let Some((email, token)) = &d.email else {
        return Outcome::Park("subscriber gone".into());
    };
    let Some(mailer) = &senders.mailer else {
        return Outcome::Park("[status_page.smtp] not configured".into());
    };
    let unsubscribe = format!(
        "{}/unsubscribe?token={token}",
        cfg.base_url.trim_end_matches('/')
    );
    let message = match mailer.update(&cfg.title, email, &notice, &unsubscribe, d.id) {
        Ok(m) => m,
        Err(e) => return Outcome::Park(e.to_string()),
    };
    match mailer.send(message).await {
        Ok(()) => Outcome::Sent,
        Err(e @ (MailError::Refused(_) | MailError::Build(_))) => Outcome::Park(e.to_string()),
        Err(e @ MailError::Unavailable(_)) => Outcome::Retry(e.to_string()),
    }
}

/// `sha256=<hex>` of the body under the webhook's secret.
pub fn signature(secret: &str, body: &str) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    m.update(body.as_bytes());
    format!("sha256={}", super::token::hex(&m.finalize().into_bytes()))
}

async fn post(http: &reqwest::Client, hook: &WebhookConfig, body: &str, id: i64) -> Outcome {
    let mut req = http
        .post(&hook.url)
        .header("content-type", "application/json")
        .header("user-agent", "Klaxon status page")
        .header("x-klaxon-delivery", id.to_string())
        .body(body.to_string());
    if !hook.secret.is_empty() {
        req = req.header("x-klaxon-signature", signature(hook.secret.expose(), body));
    }
    if let Some((name, value)) = hook.header() {
        req = req.header(name, value);
    }
    match req.send().await {
        Ok(r) if r.status().is_success() => Outcome::Sent,
        Ok(r) => {
            let s = r.status();
            if s.is_server_error() || s.as_u16() == 408 || s.as_u16() == 429 {
                Outcome::Retry(format!("HTTP {s}"))
            } else {
                Outcome::Park(format!("refused: HTTP {s}"))
            }
        }
        Err(e) => Outcome::Retry(crate::secret::redact_url(&e.without_url().to_string())),
    }
}

/// How long the worker may sleep: until the next retry is due, at most `idle`.
pub async fn next_pass_in(app: &App, idle: Duration) -> Duration {
    match db::next_due_ms(&app.store).await {
        Ok(Some(due)) => {
            let ms = (due - app.clock.now_ms()).clamp(50, idle.as_millis() as i64);
            Duration::from_millis(ms as u64)
        }
        Ok(None) => idle,
        Err(e) => {
            warn!(error = %e, "status deliveries: next retry unknown; trying again soon");
            Duration::from_secs(1)
        }
    }
}
