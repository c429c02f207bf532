//! Discord's rate limits: fixed windows per route bucket and major parameter, plus the
//! global per-token limit.
//!
//! A window starts with the first request after the previous one ran out, which is how
//! Discord's buckets behave as seen from a client (`X-RateLimit-Reset-After` counts
//! down from the first request).

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};

/// Route buckets that are not message creates: generous, as Discord's are.
pub(crate) const DEFAULT_ROUTE_LIMIT: u32 = 50;
pub(crate) const DEFAULT_ROUTE_WINDOW: Duration = Duration::from_secs(1);

/// The bucket template whose limit is the configured per-channel message limit.
pub(crate) const MESSAGE_CREATE: &str = "POST /channels/{channel_id}/messages";

#[derive(Clone, Copy, Debug)]
struct Window {
    start: Instant,
    count: u32,
}

impl Window {
    /// The window as of `now`: a finished window is forgotten.
    fn current(this: Option<Window>, now: Instant, length: Duration) -> Option<Window> {
        this.filter(|w| now < w.start + length)
    }
}

/// Which limit answered with a 429.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The route bucket (`X-RateLimit-Scope: user`).
    User,
    Global,
    /// Discord's shared resource limits; only produced by fault injection.
    Shared,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::User => "user",
            Scope::Global => "global",
            Scope::Shared => "shared",
        }
    }
}

/// The bucket state a response reports, and whether the request was refused.
#[derive(Clone, Debug)]
pub(crate) struct Verdict {
    limit: u32,
    remaining: u32,
    reset_after: Duration,
    bucket: String,
    pub limited: Option<(Scope, Duration)>,
}

impl Verdict {
    /// The `X-RateLimit-*` headers (and on a 429 `Retry-After`, `-Scope`, `-Global`).
    pub fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let reset_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            + self.reset_after;
        let mut put = |name: &'static str, value: String| {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        };
        put("x-ratelimit-limit", self.limit.to_string());
        put("x-ratelimit-remaining", self.remaining.to_string());
        put(
            "x-ratelimit-reset",
            format!("{:.3}", reset_at.as_secs_f64()),
        );
        put(
            "x-ratelimit-reset-after",
            format!("{:.3}", self.reset_after.as_secs_f64()),
        );
        put("x-ratelimit-bucket", self.bucket.clone());
        if let Some((scope, retry_after)) = self.limited {
            // Retry-After is whole seconds, rounded up, as Discord sends it.
            put(
                "retry-after",
                retry_after.as_secs_f64().ceil().max(1.0).to_string(),
            );
            put("x-ratelimit-scope", scope.as_str().to_string());
            if scope == Scope::Global {
                put("x-ratelimit-global", "true".to_string());
            }
        }
        headers
    }

    /// Turns this into a refusal of the given scope (fault injection).
    pub fn refuse(mut self, scope: Scope, retry_after: Duration) -> Self {
        self.limited = Some((scope, retry_after));
        self
    }
}

/// An opaque, stable bucket id per route template, shaped like Discord's hashes.
fn bucket_hash(template: &str) -> String {
    // FNV-1a: stable across runs and platforms, unlike std's RandomState.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in template.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!(
        "{hash:016x}{:016x}",
        hash.rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15
    )
}

#[derive(Debug)]
pub(crate) struct RateLimiter {
    channel_limit: u32,
    channel_window: Duration,
    global_limit: u32,
    global_window: Duration,
    buckets: HashMap<(String, String), Window>,
    global: Option<Window>,
}

impl RateLimiter {
    pub fn new(
        channel_limit: u32,
        channel_window: Duration,
        global_limit: u32,
        global_window: Duration,
    ) -> Self {
        RateLimiter {
            channel_limit,
            channel_window,
            global_limit,
            global_window,
            buckets: HashMap::new(),
            global: None,
        }
    }

    fn limits(&self, template: &str) -> (u32, Duration) {
        if template == MESSAGE_CREATE {
            (self.channel_limit, self.channel_window)
        } else {
            (DEFAULT_ROUTE_LIMIT, DEFAULT_ROUTE_WINDOW)
        }
    }

    /// The bucket's state without using it up (for answers that never reached the
    /// route, such as 401s and injected faults).
    pub fn peek(&self, template: &str, major: &str, now: Instant) -> Verdict {
        let (limit, length) = self.limits(template);
        let key = (template.to_string(), major.to_string());
        let window = Window::current(self.buckets.get(&key).copied(), now, length);
        Verdict {
            limit,
            remaining: limit.saturating_sub(window.map_or(0, |w| w.count)),
            reset_after: window.map_or(length, |w| w.start + length - now),
            bucket: bucket_hash(template),
            limited: None,
        }
    }

    /// Counts one request against the global limit (when `global`) and its route
    /// bucket. A request refused by the global limit does not use the route bucket.
    pub fn hit(&mut self, template: &str, major: &str, global: bool, now: Instant) -> Verdict {
        if global {
            let window = Window::current(self.global, now, self.global_window).unwrap_or(Window {
                start: now,
                count: 0,
            });
            if window.count >= self.global_limit {
                let retry = window.start + self.global_window - now;
                self.global = Some(window);
                return self.peek(template, major, now).refuse(Scope::Global, retry);
            }
            self.global = Some(Window {
                count: window.count + 1,
                ..window
            });
        }
        let (limit, length) = self.limits(template);
        let key = (template.to_string(), major.to_string());
        let window =
            Window::current(self.buckets.get(&key).copied(), now, length).unwrap_or(Window {
                start: now,
                count: 0,
            });
        let reset_after = window.start + length - now;
        let mut verdict = Verdict {
            limit,
            remaining: 0,
            reset_after,
            bucket: bucket_hash(template),
            limited: None,
        };
        if window.count >= limit {
            verdict.limited = Some((Scope::User, reset_after));
        } else {
            verdict.remaining = limit - window.count - 1;
        }
        self.buckets.insert(
            key,
            Window {
                count: (window.count + 1).min(limit),
                ..window
            },
        );
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_bucket_is_per_channel_and_resets() {
        let mut rl = RateLimiter::new(2, Duration::from_millis(100), 100, Duration::from_secs(1));
        let t0 = Instant::now();
        assert!(rl.hit(MESSAGE_CREATE, "1", true, t0).limited.is_none());
        assert!(rl.hit(MESSAGE_CREATE, "1", true, t0).limited.is_none());
        let third = rl.hit(MESSAGE_CREATE, "1", true, t0);
        assert_eq!(third.limited.map(|l| l.0), Some(Scope::User));
        assert!(rl.hit(MESSAGE_CREATE, "2", true, t0).limited.is_none());
        let later = t0 + Duration::from_millis(101);
        assert!(rl.hit(MESSAGE_CREATE, "1", true, later).limited.is_none());
    }

    #[test]
    fn global_limit_spans_routes_and_skips_exempt() {
        let mut rl = RateLimiter::new(5, Duration::from_secs(5), 2, Duration::from_secs(1));
        let t0 = Instant::now();
        assert!(rl.hit("GET /a", "", true, t0).limited.is_none());
        assert!(rl.hit("GET /b", "", true, t0).limited.is_none());
        let refused = rl.hit("GET /c", "", true, t0);
        assert_eq!(refused.limited.map(|l| l.0), Some(Scope::Global));
        assert!(rl.hit("POST /exempt", "", false, t0).limited.is_none());
        let headers = refused.headers();
        assert_eq!(headers["x-ratelimit-global"], "true");
        assert_eq!(headers["retry-after"], "1");
    }

    #[test]
    fn bucket_hash_is_stable_and_distinct() {
        assert_eq!(bucket_hash(MESSAGE_CREATE), bucket_hash(MESSAGE_CREATE));
        assert_ne!(
            bucket_hash(MESSAGE_CREATE),
            bucket_hash("GET /channels/{channel_id}")
        );
    }
}
