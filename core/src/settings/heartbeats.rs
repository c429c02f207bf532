//! `[[heartbeats]]` as core uses them: dead-man's switches a cron job pings
//! (`/heartbeat/NAME`). Parsed and validated by the bot's config loader; core only
//! needs the durations, the optional service and a way to check the token.

use std::fmt;
use std::time::Duration;

use subtle::ConstantTimeEq;

/// A heartbeat's bearer token: never printed, compared in constant time.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(s: impl Into<String>) -> Self {
        Token(s.into())
    }

    /// Whether `got` is this token, in constant time. An empty token matches
    /// nothing (a heartbeat without one is refused at load anyway).
    pub fn matches(&self, got: &str) -> bool {
        let same = bool::from(got.as_bytes().ct_eq(self.0.as_bytes()));
        same && !self.0.is_empty()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(****)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// The URL segment (`/heartbeat/NAME`) and the `heartbeat` label of its alerts.
    pub name: String,
    /// How often the job runs.
    pub period: Duration,
    /// How late a run may be before `HeartbeatMissed` fires; also what every
    /// heartbeat gets after a start-up before it can fire.
    pub grace: Duration,
    /// The service its alerts name (routing, silences, maintenance); the
    /// heartbeat's own name when unset.
    pub service: Option<String>,
    pub token: Token,
}

impl Heartbeat {
    /// The `service` label of its alerts.
    pub fn service_label(&self) -> &str {
        self.service.as_deref().unwrap_or(&self.name)
    }

    pub fn period_ms(&self) -> i64 {
        i64::try_from(self.period.as_millis()).unwrap_or(i64::MAX / 4)
    }

    pub fn grace_ms(&self) -> i64 {
        i64::try_from(self.grace.as_millis()).unwrap_or(i64::MAX / 4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_exactly_and_never_print() {
        let t = Token::new("s3cret");
        assert!(t.matches("s3cret"));
        assert!(!t.matches("s3cre"));
        assert!(!t.matches(""));
        assert!(!Token::default().matches(""));
        assert_eq!(format!("{t:?}"), "Token(****)");
    }
}
