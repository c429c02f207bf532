//! The status page's subscription forms (issue #15), on the page's own listener:
//! `POST /subscribe`, `GET /confirm?token=…`, `GET`/`POST /unsubscribe?token=…`.
//!
//! - **Double opt-in.** `POST /subscribe` checks the address (a malformed one gets
//!   a page saying what is wrong, 400) and mails a confirmation link carrying the
//!   address in a signed token (`klaxon_core::subscriptions::token`): nothing is
//!   stored until `GET /confirm` comes back with it. The confirmation is sent
//!   directly, not through the outbox, so the address never sits in a table
//!   before it is confirmed; a mail server that is down gets a "try again later"
//!   page (503).
//! - **Rate limit** per client address ([`PER_HOUR`] posts an hour; IPv6 by /64),
//!   counted on every post, good or malformed: a 429 page with `Retry-After`. The
//!   address is the TCP peer's (the listener records it): behind a reverse proxy,
//!   limit there too.
//! - **Unsubscribe.** `GET` shows a button (so a mail scanner following links does
//!   not unsubscribe anyone); `POST` unsubscribes, also as RFC 8058 one-click from
//!   the mail's `List-Unsubscribe` header.
//! - Every page is plain HTML under the page's CSP, every text escaped, never cached.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use klaxon_core::app::App;
use klaxon_core::settings::status_page::StatusPageConfig;
use klaxon_core::status_page::html::esc;
use klaxon_core::store::subscriptions as db;
use klaxon_core::subscriptions::mail::{MailError, Mailer};
use klaxon_core::subscriptions::token;
use serde::Deserialize;
use tracing::{info, warn};

/// Subscribe posts allowed per client address and hour.
pub const PER_HOUR: usize = 5;
const WINDOW: Duration = Duration::from_secs(3_600);
/// Client addresses remembered at most; past that, new ones are refused until
/// old ones age out (the form must not become a way to fill memory or mail).
const MAX_CLIENTS: usize = 10_000;
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/// Attempts per client in the last hour.
#[derive(Debug, Default)]
pub struct Limiter {
    seen: HashMap<IpAddr, VecDeque<Instant>>,
}

/// The key of a client: its IPv4 address, or its IPv6 /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

impl Limiter {
    /// Counts an attempt; `Err(wait)` when the client is over the limit.
    pub fn attempt(&mut self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let key = client_key(ip);
        if !self.seen.contains_key(&key) && self.seen.len() >= MAX_CLIENTS {
            self.seen
                .retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
            if self.seen.len() >= MAX_CLIENTS {
                return Err(Duration::from_secs(60));
            }
        }
        let q = self.seen.entry(key).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            q.pop_front();
        }
        if q.len() >= PER_HOUR {
            let oldest = q.front().copied().unwrap_or(now);
            return Err(WINDOW.saturating_sub(now.duration_since(oldest)));
        }
        q.push_back(now);
        Ok(())
    }
}

struct Forms {
    app: Arc<App>,
    cfg: StatusPageConfig,
    mailer: Mailer,
    limiter: Mutex<Limiter>,
    key: tokio::sync::OnceCell<String>,
}

impl Forms {
    fn base(&self) -> &str {
        self.cfg.base_url.trim_end_matches('/')
    }

    /// The confirmation tokens' key: made once, kept in the database.
    async fn key(&self) -> anyhow::Result<&str> {
        let k = self
            .key
            .get_or_try_init(|| async {
                let fresh = token::random_hex(32)?;
                anyhow::Ok(db::key(&self.app.store, "confirm", &fresh).await?)
            })
            .await?;
        Ok(k.as_str())
    }
}

/// The routes, when `[status_page.smtp]` is set.
pub fn router(app: Arc<App>, cfg: &StatusPageConfig) -> anyhow::Result<Option<Router>> {
    let Some(smtp) = &cfg.smtp else {
        return Ok(None);
    };
    let forms = Arc::new(Forms {
        app,
        cfg: cfg.clone(),
        mailer: Mailer::new(smtp)?,
        limiter: Mutex::new(Limiter::default()),
        key: tokio::sync::OnceCell::new(),
    });
    Ok(Some(
        Router::new()
            .route("/subscribe", post(subscribe))
            .route("/confirm", get(confirm))
            .route("/unsubscribe", get(unsubscribe_page).post(unsubscribe))
            .with_state(forms),
    ))
}

fn page(status: StatusCode, title: &str, text: &str, extra: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{t}</title>\
<style>body{{margin:0;font:16px/1.5 system-ui,sans-serif;color:#1f2328;background:#f6f8fa}}\
main{{max-width:640px;margin:0 auto;padding:16px}}.box{{background:#fff;border:1px solid #d0d7de;\
border-radius:8px;padding:12px 14px;overflow-wrap:anywhere}}button,input{{font:inherit;padding:6px 12px}}</style>\
</head><body><main><h1>{t}</h1><div class=\"box\"><p id=\"message\">{m}</p>{extra}</div>\
<p><a href=\"/\">Back to the status page</a></p></main></body></html>",
        t = esc(title),
        m = esc(text),
    );
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

fn trouble() -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Please try again later",
        "Something went wrong on our side. Please try again in a few minutes.",
        "",
    )
}

#[derive(Deserialize)]
struct EmailForm {
    #[serde(default)]
    email: String,
}

async fn subscribe(
    State(f): State<Arc<Forms>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    form: Result<Form<EmailForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let limited = f
        .limiter
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .attempt(peer.ip(), Instant::now());
    if let Err(wait) = limited {
        let mut r = page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            "Too many subscription requests from your network. Please try again later.",
            "",
        );
        if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let raw = form.map(|Form(e)| e.email).unwrap_or_default();
    let address = match token::check_address(&raw) {
        Ok(a) => a,
        Err(why) => {
            return page(
                StatusCode::BAD_REQUEST,
                "That address does not look right",
                why,
                "<p><a href=\"/#subscribe\">Try again</a></p>",
            )
        }
    };
    let key = match f.key().await {
        Ok(k) => k,
        Err(e) => {
            warn!(error = %format!("{e:#}"), "subscription key not read");
            return trouble();
        }
    };
    let now = f.app.clock.now_ms();
    let t = token::sign(key, &address, now + token::CONFIRM_TTL_MS);
    let url = format!("{}/confirm?token={t}", f.base());
    let nonce = token::random_hex(8).unwrap_or_else(|_| now.to_string());
    let sent = match f.mailer.confirmation(&f.cfg.title, &address, &url, &nonce) {
        Ok(m) => f.mailer.send(m).await,
        Err(e) => Err(e),
    };
    match sent {
        Ok(()) => {
            info!("subscription confirmation sent");
            page(
                StatusCode::OK,
                "Check your inbox",
                "We sent a link to confirm your subscription. It works for 24 hours.",
                "",
            )
        }
        Err(MailError::Refused(e) | MailError::Build(e)) => {
            info!(error = %e, "subscription confirmation refused by the mail server");
            page(
                StatusCode::BAD_REQUEST,
                "We could not mail that address",
                "The mail server refused this address. Please check it and try again.",
                "<p><a href=\"/#subscribe\">Try again</a></p>",
            )
        }
        Err(MailError::Unavailable(e)) => {
            warn!(error = %e, "subscription confirmation not sent: mail server unavailable");
            trouble()
        }
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

async fn confirm(State(f): State<Arc<Forms>>, Query(q): Query<TokenQuery>) -> Response {
    let key = match f.key().await {
        Ok(k) => k,
        Err(e) => {
            warn!(error = %format!("{e:#}"), "subscription key not read");
            return trouble();
        }
    };
    let now = f.app.clock.now_ms();
    let address = match token::verify(key, &q.token, now) {
        Ok(a) => a,
        Err(e) => {
            let text = match e {
                token::TokenError::Expired => {
                    "This confirmation link has expired. Please subscribe again."
                }
                token::TokenError::Invalid => {
                    "This confirmation link is not valid. Please subscribe again."
                }
            };
            return page(StatusCode::BAD_REQUEST, "Not confirmed", text, "");
        }
    };
    let unsubscribe = match token::random_hex(24) {
        Ok(t) => t,
        Err(e) => {
            warn!(error = %e, "no random token");
            return trouble();
        }
    };
    match db::add_subscriber(&f.app.store, &address, &unsubscribe, now).await {
        Ok(new) => {
            info!(new, "status page subscription confirmed");
            page(
                StatusCode::OK,
                "You are subscribed",
                "You will get an email for every update on this status page. Every mail has an unsubscribe link.",
                "",
            )
        }
        Err(e) => {
            warn!(error = %e, "subscriber not stored");
            trouble()
        }
    }
}

async fn unsubscribe_page(State(f): State<Arc<Forms>>, Query(q): Query<TokenQuery>) -> Response {
    match db::token_known(&f.app.store, &q.token).await {
        Ok(true) => page(
            StatusCode::OK,
            "Unsubscribe",
            "Stop getting emails about this status page?",
            &format!(
                "<form method=\"post\" action=\"/unsubscribe\"><input type=\"hidden\" name=\"token\" value=\"{}\">\
<button type=\"submit\" id=\"unsubscribe\">Unsubscribe</button></form>",
                esc(&q.token)
            ),
        ),
        Ok(false) => page(
            StatusCode::NOT_FOUND,
            "Not subscribed",
            "This link belongs to no subscription: it was unsubscribed already.",
            "",
        ),
        Err(e) => {
            warn!(error = %e, "unsubscribe token not read");
            trouble()
        }
    }
}

async fn unsubscribe(
    State(f): State<Arc<Forms>>,
    Query(q): Query<TokenQuery>,
    form: Result<Form<TokenQuery>, axum::extract::rejection::FormRejection>,
) -> Response {
    // One-click (RFC 8058) posts to the link itself: the token is in the query.
    let t = match form {
        Ok(Form(b)) if !b.token.is_empty() => b.token,
        _ => q.token,
    };
    match db::remove_subscriber(&f.app.store, &t).await {
        Ok(removed) => {
            info!(removed, "status page unsubscribe");
            page(
                StatusCode::OK,
                "Unsubscribed",
                "You will get no more emails about this status page.",
                "",
            )
        }
        Err(e) => {
            warn!(error = %e, "unsubscribe failed");
            trouble()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_posts_an_hour_per_client_then_a_wait() {
        let mut l = Limiter::default();
        let t0 = Instant::now();
        let a: IpAddr = "192.0.2.7".parse().expect("ip");
        for _ in 0..PER_HOUR {
            assert!(l.attempt(a, t0).is_ok());
        }
        let wait = l
            .attempt(a, t0 + Duration::from_secs(60))
            .expect_err("limited");
        assert_eq!(wait, Duration::from_secs(3_540));
        assert!(l.attempt("192.0.2.8".parse().expect("ip"), t0).is_ok());
        assert!(l.attempt(a, t0 + WINDOW).is_ok(), "an hour later");
        // One IPv6 /64 is one client.
        let v6 = |s: &str| s.parse::<IpAddr>().expect("ip");
        for k in 0..PER_HOUR {
            assert!(l.attempt(v6(&format!("2001:db8::{k}")), t0).is_ok());
        }
        assert!(l.attempt(v6("2001:db8::ffff"), t0).is_err());
    }
}
