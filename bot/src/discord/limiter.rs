//! Klaxon's own Discord rate limiter.
//!
//! serenity's limiter is off (its proxy setting only works that way, and it lets
//! bursts through: concurrent first requests, no global pacing, no bucket hashes).
//! Instead every REST call goes through [`Limiter::execute`]:
//!
//! - Per-bucket state learned from `X-RateLimit-*` headers, keyed by bucket hash
//!   (or route, before the hash is known) and major parameter (channel, guild,
//!   webhook/interaction). Requests in one bucket go one at a time, FIFO: a request
//!   only leaves when the previous response told us how many remain. That is the
//!   conservative default before headers are known, and it keeps a burst of
//!   concurrent sends from all leaving before the first `Remaining: 0` comes back.
//! - Global pacing: requests leave at most `rate` per second (below Discord's 50),
//!   except interaction callbacks and webhook-token routes, which Discord exempts.
//! - A 429 waits `Retry-After` (header, else body) and retries, a bounded number
//!   of times; a global 429 pauses every non-exempt request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use klaxon_core::metrics::Metrics;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::{debug, error, warn};

/// Retries of one request after 429s or (for GETs) 5xx, before giving up.
const MAX_ATTEMPTS: u32 = 5;
/// A single upstream request may not hang the bucket behind it forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest 429 wait honoured inline; longer ones are returned to the caller.
const MAX_INLINE_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct BucketState {
    /// Requests left in the current window: Discord's last word, minus what has
    /// left since.
    remaining: Option<u32>,
    reset_at: Option<Instant>,
}

/// How one request is classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Method and path with ids replaced, e.g. `POST /channels/{major}/messages`.
    pub template: String,
    /// The major parameter: `channels/111`, `guilds/1`, `webhooks/2/<token>`.
    pub major: String,
    /// Interaction callbacks and webhook-token routes skip the global limit.
    pub global_exempt: bool,
}

/// The route family of a Discord API path, for `/metrics`: a small fixed set, so a
/// label never carries an id or a token.
pub fn route_family(path: &str) -> &'static str {
    let path = path.split('?').next().unwrap_or(path);
    let path = path
        .strip_prefix("/api/v10")
        .or_else(|| path.strip_prefix("/api"))
        .unwrap_or(path);
    let first = path.split('/').find(|s| !s.is_empty()).unwrap_or("");
    match first {
        // Interaction callbacks, and their follow-ups (webhook-token routes).
        "interactions" | "webhooks" => "interactions",
        _ if path.contains("/messages") => "messages",
        "channels" => "channels",
        "guilds" => "guilds",
        "gateway" => "gateway",
        _ => "other",
    }
}

/// `2xx`, `4xx`, `5xx`...; 429 on its own (a rate limit is not a client error).
pub fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        429 => "429",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

impl Route {
    fn queue_key(&self) -> String {
        format!("{}|{}", self.template, self.major)
    }
}

pub struct Limiter {
    interval: Duration,
    next_global_slot: StdMutex<Instant>,
    /// One FIFO queue per route and major parameter. Keyed by route, which never
    /// changes, so requests that arrive before and after the bucket hash is
    /// learned still wait in the same line.
    queues: StdMutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Window state per bucket hash (or route, until the hash is known) and major
    /// parameter: routes that share a bucket share its count.
    states: StdMutex<HashMap<String, BucketState>>,
    /// Route template to the bucket hash Discord reported for it.
    hashes: StdMutex<HashMap<String, String>>,
    metrics: Arc<Metrics>,
}

pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The maps hold plain data; a panic elsewhere cannot leave them inconsistent.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Limiter {
    pub fn new(rate_per_sec: u32, metrics: Arc<Metrics>) -> Self {
        Limiter {
            interval: Duration::from_secs(1) / rate_per_sec.max(1),
            next_global_slot: StdMutex::new(Instant::now()),
            queues: StdMutex::new(HashMap::new()),
            states: StdMutex::new(HashMap::new()),
            hashes: StdMutex::new(HashMap::new()),
            metrics,
        }
    }

    fn queue(&self, route: &Route) -> Arc<Mutex<()>> {
        let mut queues = lock(&self.queues);
        if queues.len() > 4_096 {
            // Interaction tokens make a new queue per command; drop idle ones.
            queues.retain(|_, q| Arc::strong_count(q) > 1);
            let now = Instant::now();
            lock(&self.states).retain(|_, s| s.reset_at.is_some_and(|r| r > now));
        }
        Arc::clone(queues.entry(route.queue_key()).or_default())
    }

    fn state_key(&self, route: &Route) -> String {
        let hashes = lock(&self.hashes);
        format!(
            "{}|{}",
            hashes.get(&route.template).unwrap_or(&route.template),
            route.major
        )
    }

    /// Takes one request from the bucket, or says until when to wait.
    fn reserve(&self, route: &Route) -> Option<Instant> {
        let key = self.state_key(route);
        let mut states = lock(&self.states);
        let state = states.entry(key).or_default();
        let now = Instant::now();
        match (state.remaining, state.reset_at) {
            (Some(0), Some(reset)) if reset > now => Some(reset),
            (Some(0), _) => {
                // The window is over; the next response says what the new one holds.
                state.remaining = None;
                None
            }
            (Some(n), _) => {
                state.remaining = Some(n - 1);
                None
            }
            (None, _) => None,
        }
    }

    /// Waits for this request's global slot.
    async fn global_slot(&self) {
        let slot = {
            let mut next = lock(&self.next_global_slot);
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + self.interval;
            slot
        };
        let now = Instant::now();
        if slot > now {
            // Pacing at the global rate is the normal case; count only real waits.
            if slot - now > self.interval {
                self.metrics.inc("klaxon_limiter_waits_total", &[]);
            }
            self.metrics.add(
                "klaxon_limiter_wait_seconds_total",
                &[],
                (slot - now).as_secs_f64(),
            );
            let wait = (slot - now).as_secs_f64();
            self.metrics
                .observe("klaxon_limiter_wait_duration_seconds", &[], wait);
            tokio::time::sleep_until(slot).await;
        }
    }

    fn pause_global(&self, until: Instant) {
        let mut next = lock(&self.next_global_slot);
        *next = (*next).max(until);
    }

    fn exhaust(&self, route: &Route, until: Instant) {
        let key = self.state_key(route);
        let mut states = lock(&self.states);
        let state = states.entry(key).or_default();
        state.remaining = Some(0);
        state.reset_at = Some(until);
    }

    /// Sends one request through the limiter, retrying 429s.
    pub async fn execute<F, Fut>(
        &self,
        method: &Method,
        path: &str,
        send: F,
    ) -> Result<Response, reqwest::Error>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Response, reqwest::Error>>,
    {
        let route = Route::classify(method, path);
        let family = route_family(path);
        let queue = self.queue(&route);
        // One request per route and major at a time: the next one leaves only once
        // the previous response said how many remain. That is the conservative
        // default before headers are known, and it keeps a burst of concurrent
        // sends from all leaving before the first `Remaining: 0` comes back.
        let _turn = queue.lock().await;
        let mut attempt = 0;
        loop {
            attempt += 1;
            while let Some(reset) = self.reserve(&route) {
                debug!(route = %route.template, major = %route.major, "bucket exhausted, waiting for reset");
                self.metrics.inc("klaxon_limiter_waits_total", &[]);
                let now = Instant::now();
                let wait = reset.saturating_duration_since(now).as_secs_f64();
                self.metrics
                    .add("klaxon_limiter_wait_seconds_total", &[], wait);
                self.metrics
                    .observe("klaxon_limiter_wait_duration_seconds", &[], wait);
                tokio::time::sleep_until(reset).await;
            }
            if !route.global_exempt {
                self.global_slot().await;
            }
            let sent = Instant::now();
            let answer = tokio::time::timeout(REQUEST_TIMEOUT, send()).await;
            let class = match &answer {
                Ok(Ok(r)) => status_class(r.status),
                Ok(Err(_)) => "error",
                Err(_) => "timeout",
            };
            self.metrics.observe(
                "klaxon_discord_request_duration_seconds",
                &[("route", family), ("status_class", class)],
                sent.elapsed().as_secs_f64(),
            );
            let resp = match answer {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    self.metrics
                        .inc("klaxon_discord_requests_total", &[("status", "error")]);
                    return Err(e);
                }
                Err(_) => {
                    self.metrics
                        .inc("klaxon_discord_requests_total", &[("status", "timeout")]);
                    return Ok(Response {
                        status: StatusCode::GATEWAY_TIMEOUT,
                        headers: HeaderMap::new(),
                        body: Bytes::from_static(
                            br#"{"message":"Klaxon: Discord did not answer in time","code":0}"#,
                        ),
                    });
                }
            };
            self.learn(&route, &resp.headers);
            let status = resp.status;
            self.metrics.inc(
                "klaxon_discord_requests_total",
                &[("status", status.as_str())],
            );
            match status.as_u16() {
                429 => {
                    let info = RateLimited::from_response(&resp);
                    if !info.shared {
                        // Cloudflare bans an IP at 10,000 of these in 10 minutes.
                        self.metrics
                            .inc("klaxon_discord_invalid_requests_total", &[]);
                    }
                    let until = Instant::now() + info.retry_after;
                    if info.global {
                        self.pause_global(until);
                    } else {
                        self.exhaust(&route, until);
                    }
                    warn!(
                        route = %route.template,
                        major = %route.major,
                        retry_after_ms = info.retry_after.as_millis() as u64,
                        global = info.global,
                        attempt,
                        "Discord answered 429"
                    );
                    if attempt >= MAX_ATTEMPTS || info.retry_after > MAX_INLINE_WAIT {
                        return Ok(resp);
                    }
                    self.metrics.inc("klaxon_discord_retries_total", &[]);
                    continue;
                }
                401 | 403 => {
                    self.metrics
                        .inc("klaxon_discord_invalid_requests_total", &[]);
                    if status == StatusCode::UNAUTHORIZED {
                        error!(route = %route.template, "Discord rejected the bot token (401)");
                    }
                    return Ok(resp);
                }
                // Only reads are safe to repeat: a POST that timed out upstream may
                // have created the message already.
                500..=599 if *method == Method::GET && attempt < MAX_ATTEMPTS => {
                    self.metrics.inc("klaxon_discord_retries_total", &[]);
                    tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
                    continue;
                }
                _ => return Ok(resp),
            }
        }
    }

    fn learn(&self, route: &Route, headers: &HeaderMap) {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(hash) = header("x-ratelimit-bucket") {
            let mut hashes = lock(&self.hashes);
            if hashes.get(&route.template).map(String::as_str) != Some(hash) {
                hashes.insert(route.template.clone(), hash.to_string());
            }
        }
        let remaining = header("x-ratelimit-remaining").and_then(|v| v.parse::<u32>().ok());
        let reset_after = header("x-ratelimit-reset-after")
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|a| a.is_finite() && *a >= 0.0);
        if remaining.is_none() && reset_after.is_none() {
            return;
        }
        let key = self.state_key(route);
        let mut states = lock(&self.states);
        let state = states.entry(key).or_default();
        if let Some(r) = remaining {
            state.remaining = Some(r);
        }
        if let Some(after) = reset_after {
            state.reset_at = Some(Instant::now() + Duration::from_secs_f64(after));
        }
    }
}

struct RateLimited {
    retry_after: Duration,
    global: bool,
    shared: bool,
}

impl RateLimited {
    fn from_response(resp: &Response) -> Self {
        let header = |name: &str| resp.headers.get(name).and_then(|v| v.to_str().ok());
        #[derive(serde::Deserialize)]
        struct Body {
            retry_after: Option<f64>,
            global: Option<bool>,
        }
        let body: Option<Body> = serde_json::from_slice(&resp.body).ok();
        // The body's value has millisecond precision; the header is whole seconds.
        let secs = body
            .as_ref()
            .and_then(|b| b.retry_after)
            .or_else(|| header("retry-after").and_then(|v| v.parse::<f64>().ok()))
            .filter(|s| s.is_finite() && *s >= 0.0)
            .unwrap_or(1.0);
        let global = header("x-ratelimit-global").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || body.as_ref().and_then(|b| b.global).unwrap_or(false);
        RateLimited {
            retry_after: Duration::from_secs_f64(secs),
            global,
            shared: header("x-ratelimit-scope") == Some("shared"),
        }
    }
}

impl Route {
    /// `path` is what serenity requested, e.g. `/api/v10/channels/111/messages?x=y`.
    pub fn classify(method: &Method, path: &str) -> Route {
        let path = path.split('?').next().unwrap_or(path);
        let path = path
            .strip_prefix("/api/v10")
            .or_else(|| path.strip_prefix("/api"))
            .unwrap_or(path);
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut template = Vec::with_capacity(segs.len());
        let mut major = String::new();
        let mut global_exempt = false;
        let mut i = 0;
        while i < segs.len() {
            let seg = segs[i];
            let next = segs.get(i + 1).copied();
            match (seg, next) {
                ("channels" | "guilds", Some(id)) if major.is_empty() => {
                    template.push(format!("{seg}/{{major}}"));
                    major = format!("{seg}/{id}");
                    i += 2;
                }
                ("webhooks", Some(id)) if major.is_empty() => match segs.get(i + 2) {
                    Some(token)
                        if !token.chars().all(|c| c.is_ascii_digit()) && *token != "messages" =>
                    {
                        template.push("webhooks/{major}/{token}".into());
                        major = format!("webhooks/{id}/{token}");
                        global_exempt = true;
                        i += 3;
                    }
                    _ => {
                        template.push("webhooks/{major}".into());
                        major = format!("webhooks/{id}");
                        i += 2;
                    }
                },
                ("interactions", Some(id)) => {
                    // Each interaction is its own bucket, exempt from the global limit.
                    template.push("interactions/{id}/{token}".into());
                    major = format!("interactions/{id}");
                    global_exempt = true;
                    i += 3;
                }
                ("reactions", Some(_)) => {
                    template.push("reactions/{emoji}".into());
                    i += 2;
                }
                (s, _) if s.chars().all(|c| c.is_ascii_digit()) => {
                    template.push("{id}".into());
                    i += 1;
                }
                (s, _) => {
                    template.push(s.to_string());
                    i += 1;
                }
            }
        }
        Route {
            template: format!("{method} /{}", template.join("/")),
            major,
            global_exempt,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn route_families_are_a_small_fixed_set() {
        use super::route_family as f;
        assert_eq!(f("/api/v10/channels/1/messages"), "messages");
        assert_eq!(f("/api/v10/channels/1/messages/2?x=1"), "messages");
        assert_eq!(f("/api/v10/channels/1/threads"), "channels");
        assert_eq!(f("/api/v10/guilds/1/members/2"), "guilds");
        assert_eq!(f("/api/v10/interactions/1/tok/callback"), "interactions");
        assert_eq!(
            f("/api/v10/webhooks/1/tok/messages/@original"),
            "interactions"
        );
        assert_eq!(f("/api/v10/gateway/bot"), "gateway");
        assert_eq!(f("/api/v10/users/@me"), "other");
        assert_eq!(super::status_class(http::StatusCode::FORBIDDEN), "4xx");
        assert_eq!(
            super::status_class(http::StatusCode::TOO_MANY_REQUESTS),
            "429"
        );
    }
    use super::*;

    #[test]
    fn routes_keep_the_major_parameter() {
        let r = Route::classify(&Method::POST, "/api/v10/channels/111/messages");
        assert_eq!(r.template, "POST /channels/{major}/messages");
        assert_eq!(r.major, "channels/111");
        assert!(!r.global_exempt);
        let r = Route::classify(&Method::PATCH, "/api/v10/channels/111/messages/999");
        assert_eq!(r.template, "PATCH /channels/{major}/messages/{id}");
        let r = Route::classify(&Method::POST, "/api/v10/interactions/5/tok-en/callback");
        assert_eq!(r.template, "POST /interactions/{id}/{token}/callback");
        assert!(r.global_exempt);
        let r = Route::classify(&Method::PATCH, "/api/v10/webhooks/2/abc/messages/@original");
        assert_eq!(
            r.template,
            "PATCH /webhooks/{major}/{token}/messages/@original"
        );
        assert_eq!(r.major, "webhooks/2/abc");
        assert!(r.global_exempt);
        let r = Route::classify(&Method::PUT, "/api/v10/applications/2/guilds/123/commands");
        assert_eq!(r.template, "PUT /applications/{id}/guilds/{major}/commands");
        let r = Route::classify(
            &Method::PUT,
            "/api/v10/channels/1/messages/2/reactions/%F0%9F%93%8C/@me",
        );
        assert_eq!(
            r.template,
            "PUT /channels/{major}/messages/{id}/reactions/{emoji}/@me"
        );
    }

    fn ok(remaining: u32, reset_after: f64) -> Response {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-ratelimit-remaining",
            remaining.to_string().parse().unwrap(),
        );
        headers.insert(
            "x-ratelimit-reset-after",
            reset_after.to_string().parse().unwrap(),
        );
        headers.insert("x-ratelimit-bucket", "abc".parse().unwrap());
        Response {
            status: StatusCode::OK,
            headers,
            body: Bytes::new(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn waits_for_the_reset_when_the_bucket_is_empty() {
        let limiter = Limiter::new(50, Arc::new(Metrics::new()));
        let start = Instant::now();
        let remaining = std::sync::atomic::AtomicU32::new(2);
        for _ in 0..3 {
            limiter
                .execute(&Method::POST, "/api/v10/channels/1/messages", || async {
                    let r = remaining
                        .load(std::sync::atomic::Ordering::SeqCst)
                        .saturating_sub(1);
                    remaining.store(r, std::sync::atomic::Ordering::SeqCst);
                    Ok(ok(r, 5.0))
                })
                .await
                .unwrap();
        }
        // Third request waited for the 5 s window announced by the second response.
        assert!(
            start.elapsed() >= Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_is_retried_after_retry_after() {
        let limiter = Limiter::new(50, Arc::new(Metrics::new()));
        let calls = std::sync::atomic::AtomicU32::new(0);
        let start = Instant::now();
        let resp = limiter
            .execute(&Method::POST, "/api/v10/channels/1/messages", || async {
                if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    // No Retry-After header: serenity would ignore this; we read the body.
                    Ok(Response {
                        status: StatusCode::TOO_MANY_REQUESTS,
                        headers: HeaderMap::new(),
                        body: Bytes::from_static(br#"{"message":"You are being rate limited.","retry_after":1.5,"global":false}"#),
                    })
                } else {
                    Ok(ok(4, 5.0))
                }
            })
            .await
            .unwrap();
        assert_eq!(resp.status, StatusCode::OK);
        assert!(start.elapsed() >= Duration::from_millis(1_500));
        assert_eq!(
            limiter
                .metrics
                .get("klaxon_discord_invalid_requests_total", &[]),
            1.0
        );
    }

    #[tokio::test(start_paused = true)]
    async fn global_pacing_spaces_requests() {
        let limiter = Limiter::new(10, Arc::new(Metrics::new()));
        let start = Instant::now();
        for ch in 0..11 {
            limiter
                .execute(
                    &Method::POST,
                    &format!("/api/v10/channels/{ch}/messages"),
                    || async { Ok(ok(4, 5.0)) },
                )
                .await
                .unwrap();
        }
        // 11 requests at 10/s: the last leaves a full second after the first.
        assert!(start.elapsed() >= Duration::from_secs(1));
        // Interaction callbacks are exempt.
        let start = Instant::now();
        for i in 0..20 {
            limiter
                .execute(
                    &Method::POST,
                    &format!("/api/v10/interactions/{i}/t/callback"),
                    || async { Ok(ok(4, 5.0)) },
                )
                .await
                .unwrap();
        }
        assert!(start.elapsed() < Duration::from_millis(10));
    }
}
