//! `/logs`: reading, filtering and redacting container logs.
//!
//! Logs are read from the engine as a stream and filtered line by line, so memory
//! stays bounded however large the container's log is: only the last N matching
//! lines are kept (a ring buffer), each cut to [`MAX_LINE_BYTES`]. Without a filter
//! Docker does the `tail` itself. Every line is redacted before it is matched or
//! kept, so neither the text shown nor the count of matches can reveal a secret.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use regex::bytes::{Regex, RegexBuilder};
use tokio::sync::mpsc;
use tracing::debug;

use crate::docker::{DockerClient, DockerError, LogRequest};

mod redact;
mod replicas;
pub use redact::{RedactState, Redactor};

/// `lines` when the member gives none.
pub const DEFAULT_LINES: usize = 100;
/// The most lines one `/logs` returns.
pub const MAX_LINES: usize = 5_000;
/// Longest line kept, in bytes (cut with `…`): a container that logs megabyte-long
/// lines cannot push memory past 5,000 × 4 KiB.
pub const MAX_LINE_BYTES: usize = 4_096;
/// What redacted text shows as.
pub const REDACTED: &str = "[redacted]";
use crate::settings::logs::MAX_FOLLOW;
/// Compiled user regexes (config and `grep`) are capped, so a pathological pattern
/// is refused instead of eating memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

use crate::settings::logs::LogsConfig;

impl LogsConfig {
    /// Problems with this section, each naming its key (`logs.redact[1]: …`).
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        for (i, p) in self.redact.iter().enumerate() {
            if let Err(e) = compile_user(p, false) {
                errs.push(format!(
                    "logs.redact[{i}]: `{p}` is not a valid regular expression: {}",
                    one_line(&e.to_string())
                ));
            }
        }
        match self.follow_seconds {
            Some(0) => errs.push("logs.follow_seconds: must be at least 1".into()),
            Some(s) if s > MAX_FOLLOW.as_secs() => {
                errs.push("logs.follow_seconds: must be at most 3600 (one hour)".into())
            }
            Some(_) => {}
            None if self.follow_minutes == 0 => {
                errs.push("logs.follow_minutes: must be at least 1".into())
            }
            None if self.follow_minutes > 60 => {
                errs.push("logs.follow_minutes: must be at most 60".into())
            }
            None => {}
        }
        if self.read_timeout_secs == 0 {
            errs.push("logs.read_timeout_secs: must be at least 1".into());
        }
        if !(1..=64).contains(&self.max_concurrent_reads) {
            errs.push("logs.max_concurrent_reads: must be from 1 to 64".into());
        }
        errs
    }

    /// The redactor for this config: built-in patterns plus `redact`, compiled once
    /// per distinct list and shared (commands call this on every invocation).
    pub fn redactor(&self) -> Result<Arc<Redactor>, LogsError> {
        type Cache = Mutex<Vec<(Vec<String>, Arc<Redactor>)>>;
        static CACHE: OnceLock<Cache> = OnceLock::new();
        let cache = CACHE.get_or_init(|| Mutex::new(Vec::new()));
        let mut cache = cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, r)) = cache.iter().find(|(k, _)| *k == self.redact) {
            return Ok(Arc::clone(r));
        }
        let r = Arc::new(Redactor::new(&self.redact)?);
        cache.push((self.redact.clone(), Arc::clone(&r)));
        Ok(r)
    }
}

/// Regex errors span several lines (the pattern, a caret); chat and config
/// listings want one.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn compile_user(pattern: &str, case_insensitive: bool) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .case_insensitive(case_insensitive)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// Why `/logs` could not answer. Every variant's text is written for the member.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogsError {
    #[error("`{0}` has no container configured, so it has no logs to read.")]
    NoContainer(String),
    #[error("`{pattern}` is not a valid regular expression: {reason}")]
    BadRegex { pattern: String, reason: String },
    #[error("`{option}:{value}` is not understood: {reason}")]
    BadOption {
        option: &'static str,
        value: String,
        reason: String,
    },
    #[error("The container `{0}` does not exist (any more): no logs to read.")]
    ContainerGone(String),
    #[error("{0}")]
    Docker(#[from] DockerError),
    #[error("Docker cannot read the logs of `{container}`: {reason}")]
    Unreadable { container: String, reason: String },
}

/// Which of the container's output streams to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Streams {
    #[default]
    Both,
    Stdout,
    Stderr,
}

impl Streams {
    pub fn as_str(self) -> &'static str {
        match self {
            Streams::Both => "both",
            Streams::Stdout => "stdout",
            Streams::Stderr => "stderr",
        }
    }
}

/// The least severe level a line may have to be shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Info = 1,
    Warn = 2,
    Error = 3,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// A `grep`: a case-insensitive substring, or a regex written as `/.../` (with an
/// optional trailing `i` for case-insensitive).
#[derive(Debug, Clone)]
pub struct Grep {
    /// As the member typed it.
    pub text: String,
    pub is_regex: bool,
    re: Regex,
}

impl Grep {
    /// `None` for an empty filter.
    pub fn parse(s: &str) -> Result<Option<Grep>, LogsError> {
        let text = s.trim();
        if text.is_empty() {
            return Ok(None);
        }
        let regex = text
            .strip_prefix('/')
            .and_then(|r| {
                r.strip_suffix('/')
                    .map(|p| (p, false))
                    .or_else(|| r.strip_suffix("/i").map(|p| (p, true)))
            })
            .filter(|(p, _)| !p.is_empty());
        let re = match regex {
            Some((pattern, ci)) => compile_user(pattern, ci).map_err(|e| LogsError::BadRegex {
                pattern: pattern.to_string(),
                reason: one_line(&e.to_string()),
            })?,
            None => {
                // A plain ASCII substring needs no Unicode tables: the matcher then
                // runs as a byte-level search, the fast path for big logs.
                RegexBuilder::new(&regex::escape(text))
                    .case_insensitive(true)
                    .unicode(!text.is_ascii())
                    .build()
                    .map_err(|e| LogsError::BadRegex {
                        pattern: text.to_string(),
                        reason: one_line(&e.to_string()),
                    })?
            }
        };
        Ok(Some(Grep {
            text: text.to_string(),
            is_regex: regex.is_some(),
            re,
        }))
    }

    pub fn is_match(&self, line: &[u8]) -> bool {
        self.re.is_match(line)
    }
}

/// A `since` or `until`: a duration ago (`10m`, `1h30m`, `2d`) or an RFC 3339 time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    pub at: DateTime<Utc>,
    /// A duration ago rather than a time.
    pub ago: Option<Duration>,
}

impl Bound {
    pub fn parse(option: &'static str, s: &str, now: DateTime<Utc>) -> Result<Bound, LogsError> {
        let text = s.trim();
        let bad = |reason: &str| LogsError::BadOption {
            option,
            value: text.to_string(),
            reason: reason.to_string(),
        };
        if text.eq_ignore_ascii_case("now") {
            return Ok(Bound {
                at: now,
                ago: Some(Duration::ZERO),
            });
        }
        if let Some(d) = parse_duration(text) {
            let at = chrono::Duration::from_std(d)
                .ok()
                .and_then(|d| now.checked_sub_signed(d))
                .ok_or_else(|| bad("that is too long ago"))?;
            return Ok(Bound { at, ago: Some(d) });
        }
        match DateTime::parse_from_rfc3339(text) {
            Ok(t) => Ok(Bound {
                at: t.with_timezone(&Utc),
                ago: None,
            }),
            Err(_) => Err(bad(
                "use a duration such as `10m`, `1h30m` or `2d`, or a time such as `2026-11-23T19:00:00Z`",
            )),
        }
    }

    /// Unix seconds for Docker, which takes whole seconds: `since` rounds down and
    /// `until` up, so the window never loses a line.
    fn unix(&self, round_up: bool) -> i32 {
        let mut s = self.at.timestamp();
        if round_up && self.at.timestamp_subsec_nanos() > 0 {
            s += 1;
        }
        s.clamp(1, i64::from(i32::MAX)) as i32
    }
}

use crate::timefmt::parse_duration;

/// What to read and how to filter it.
#[derive(Debug, Clone)]
pub struct Query {
    pub container: String,
    /// `container` names a Docker Swarm service: read the log of all its tasks.
    pub swarm: bool,
    /// Keep the last this many matching lines.
    pub lines: usize,
    pub since: Option<Bound>,
    pub until: Option<Bound>,
    pub grep: Option<Grep>,
    pub level: Option<LogLevel>,
    pub streams: Streams,
    /// A compose service: its replicas (number, container), read together and
    /// merged in time order, each line prefixed with its replica's number;
    /// `container` is then only the name shown.
    pub replicas: Vec<(u32, String)>,
}

impl Query {
    pub fn new(container: &str) -> Self {
        Query {
            container: container.to_string(),
            swarm: false,
            lines: DEFAULT_LINES,
            since: None,
            until: None,
            grep: None,
            level: None,
            streams: Streams::Both,
            replicas: Vec::new(),
        }
    }

    /// Whether every line must be looked at: then Docker cannot `tail` for us.
    pub fn filters(&self) -> bool {
        self.grep.is_some() || self.level.is_some()
    }

    /// Docker's `tail` counts lines before its own `until` and stream filters are
    /// applied (it reads the file backwards), so it is only used when the answer is
    /// "the last N lines of everything from `since` on".
    fn docker_tails(&self) -> bool {
        !self.filters() && self.until.is_none() && self.streams == Streams::Both
    }

    fn request(&self, follow: bool) -> LogRequest {
        let tail = if self.docker_tails() {
            self.lines.to_string()
        } else {
            "all".to_string()
        };
        LogRequest {
            follow,
            stdout: self.streams != Streams::Stderr,
            stderr: self.streams != Streams::Stdout,
            since: self.since.as_ref().map(|s| s.unix(false)),
            until: self.until.as_ref().map(|u| u.unix(true)),
            tail,
        }
    }
}

/// One line as shown: redacted, cut to [`MAX_LINE_BYTES`].
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// Docker's receive time (the `timestamps` option).
    pub at: Option<DateTime<Utc>>,
    pub stderr: bool,
    pub text: String,
}

/// The answer to a read.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Oldest first.
    pub lines: Vec<LogLine>,
    /// Lines that matched the filter in the window; `None` when Docker did the
    /// `tail` (unfiltered read), so nobody counted the lines before it.
    pub matched: Option<u64>,
    /// Lines and bytes read from Docker.
    pub scanned_lines: u64,
    pub scanned_bytes: u64,
    /// The read hit its deadline: the lines are the last matches before it.
    pub cut_short: Option<Duration>,
    /// When the read was cut short: the time of the last line read, so the member
    /// knows how far it got (a filtered read starts at the oldest line).
    pub read_up_to: Option<DateTime<Utc>>,
}

/// Severity words and JSON / logfmt `level` fields.
struct LevelDetector {
    field: Regex,
    word: Regex,
}

fn level_detector() -> &'static LevelDetector {
    static D: OnceLock<LevelDetector> = OnceLock::new();
    D.get_or_init(|| LevelDetector {
        // "level":"warn", "severity": "ERROR", level=info, lvl=err, "level":50 (pino).
        field: Regex::new(
            r#"(?i-u)(?:"(?:level|lvl|severity|loglevel|log_level)"\s*:\s*"?|\b(?:level|lvl|severity)=)"?([a-z]+|\d+)"#,
        )
        .expect("static regex"),
        word: Regex::new(
            r"(?i-u)\b(fatal|panic|critical|crit|emerg|emergency|alert|error|err|warning|warn|info|notice|debug|trace)\b",
        )
        .expect("static regex"),
    })
}

/// 0 debug/trace, 1 info, 2 warn, 3 error and worse.
fn rank(word: &[u8]) -> Option<u8> {
    if let Ok(n) = std::str::from_utf8(word).unwrap_or("x").parse::<u32>() {
        // pino/bunyan numeric levels.
        return Some(match n {
            0..=29 => 0,
            30..=39 => 1,
            40..=49 => 2,
            _ => 3,
        });
    }
    let w = word.to_ascii_lowercase();
    Some(match w.as_slice() {
        b"trace" | b"debug" | b"dbg" => 0,
        b"info" | b"notice" | b"information" => 1,
        b"warn" | b"warning" => 2,
        b"error" | b"err" | b"fatal" | b"panic" | b"critical" | b"crit" | b"emerg"
        | b"emergency" | b"alert" => 3,
        _ => return None,
    })
}

/// The severity of a line: a `level` field if there is one, else the first level
/// word. `None` when the line names none.
pub fn line_level(line: &[u8]) -> Option<u8> {
    let d = level_detector();
    if let Some(c) = d.field.captures(line) {
        if let Some(r) = c.get(1).and_then(|m| rank(m.as_bytes())) {
            return Some(r);
        }
    }
    d.word
        .captures(line)
        .and_then(|c| c.get(1))
        .and_then(|m| rank(m.as_bytes()))
}

/// Redaction then filtering, line by line; shared by reads and follows.
pub struct Matcher {
    redactor: Arc<Redactor>,
    grep: Option<Grep>,
    level: Option<LogLevel>,
    state: RedactState,
}

/// A frame from Docker split into its timestamp and text.
fn split_frame(frame: &[u8]) -> (&[u8], &[u8]) {
    let mut text = frame;
    while let Some((&last, rest)) = text.split_last() {
        if last == b'\n' || last == b'\r' {
            text = rest;
        } else {
            break;
        }
    }
    // With `timestamps`, every entry starts with an RFC 3339 time and a space.
    match text.iter().position(|&b| b == b' ') {
        Some(i) if i >= 20 && text[0].is_ascii_digit() => (&text[..i], &text[i + 1..]),
        _ => (&[], text),
    }
}

fn cut(text: &[u8]) -> &[u8] {
    if text.len() <= MAX_LINE_BYTES {
        return text;
    }
    // Back up to a character boundary so the cut never splits UTF-8.
    let mut end = MAX_LINE_BYTES;
    while end > 0 && (text[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    &text[..end]
}

fn parse_ts(ts: &[u8]) -> Option<DateTime<Utc>> {
    std::str::from_utf8(ts)
        .ok()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

impl Matcher {
    pub fn new(redactor: Arc<Redactor>, q: &Query) -> Self {
        Matcher {
            redactor,
            grep: q.grep.clone(),
            level: q.level,
            state: RedactState::default(),
        }
    }

    /// The redacted text when the line passes the filters.
    pub fn check<'a>(&mut self, text: &'a [u8], stderr: bool) -> Option<Cow<'a, [u8]>> {
        let text = self.redactor.redact(text, stderr, &mut self.state);
        if let Some(g) = &self.grep {
            if !g.is_match(&text) {
                return None;
            }
        }
        if let Some(min) = self.level {
            if line_level(&text).is_none_or(|l| l < min as u8) {
                return None;
            }
        }
        Some(text)
    }
}

/// A kept line before it is turned into a [`LogLine`]: timestamp and text bytes in
/// one buffer, reused when the ring is full so steady state does not allocate.
struct Kept {
    buf: Vec<u8>,
    ts_len: usize,
    stderr: bool,
    cut: bool,
}

impl Kept {
    fn fill(&mut self, ts: &[u8], text: &[u8], stderr: bool) {
        self.buf.clear();
        self.buf.extend_from_slice(ts);
        self.ts_len = ts.len();
        let kept = cut(text);
        self.buf.extend_from_slice(kept);
        self.cut = kept.len() < text.len();
        self.stderr = stderr;
    }

    /// The line, its text moved out of the buffer (no copy when it is UTF-8).
    fn into_line(mut self) -> LogLine {
        let at = parse_ts(&self.buf[..self.ts_len]);
        self.buf.drain(..self.ts_len);
        let mut text = match String::from_utf8(self.buf) {
            Ok(t) => t,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        if self.cut {
            text.push('…');
        }
        text.shrink_to_fit();
        LogLine {
            at,
            stderr: self.stderr,
            text,
        }
    }
}

/// What a failed read means for the member. Connecting to the engine fails with
/// [`LogsError::Docker`] as it is (`?`); this is for the read itself.
fn read_error(e: DockerError, docker: &DockerClient, container: &str) -> LogsError {
    match e {
        DockerError::NotFound(_) => LogsError::ContainerGone(container.to_string()),
        DockerError::Api(reason) => LogsError::Unreadable {
            container: container.to_string(),
            reason,
        },
        DockerError::Timeout(_) => LogsError::Docker(DockerError::Unreachable {
            host: docker.host().to_string(),
            reason: "it did not answer in time".into(),
        }),
        e @ DockerError::Unreachable { .. } => LogsError::Docker(e),
    }
}

/// The log stream of a container, or of a Swarm service's tasks (issue #16).
async fn open<'a>(
    docker: &'a DockerClient,
    q: &Query,
    follow: bool,
) -> Result<
    impl futures::Stream<Item = Result<crate::docker::LogFrame, DockerError>> + 'a,
    DockerError,
> {
    use futures::StreamExt as _;
    Ok(if q.swarm {
        let s = docker
            .service_logs(&q.container, &q.request(follow))
            .await?;
        s.left_stream()
    } else {
        let s = docker.logs(&q.container, &q.request(follow)).await?;
        s.right_stream()
    })
}

/// Reads the container's log once (`docker logs --timestamps`), redacting and
/// filtering while streaming, and returns the last `q.lines` matching lines.
/// Stops at `deadline` with what it has (`cut_short`).
pub async fn read(
    docker: &DockerClient,
    redactor: Arc<Redactor>,
    q: &Query,
    deadline: Duration,
) -> Result<Snapshot, LogsError> {
    if q.replicas.is_empty() {
        read_one(docker, redactor, q, deadline).await
    } else {
        replicas::read(docker, redactor, q, deadline).await
    }
}

/// [`read`] of one container.
async fn read_one(
    docker: &DockerClient,
    redactor: Arc<Redactor>,
    q: &Query,
    deadline: Duration,
) -> Result<Snapshot, LogsError> {
    let started = Instant::now();
    let stream = open(docker, q, false).await?;
    tokio::pin!(stream);
    let mut matcher = Matcher::new(redactor, q);
    let want = q.lines.clamp(1, MAX_LINES);
    let mut ring: VecDeque<Kept> = VecDeque::with_capacity(want.min(1_024));
    let mut snap = Snapshot::default();
    let mut matched: u64 = 0;
    let mut last_ts: Vec<u8> = Vec::with_capacity(40);
    // One deadline around the whole scan (not one timer per frame: millions of
    // frames would each register and cancel a timer).
    let scan = async {
        while let Some(frame) = stream.next().await {
            let frame = frame.map_err(|e| read_error(e, docker, &q.container))?;
            let stderr = frame.is_stderr();
            let frame: &[u8] = frame.bytes();
            snap.scanned_lines += 1;
            snap.scanned_bytes += frame.len() as u64;
            let (ts, text) = split_frame(frame);
            last_ts.clear();
            last_ts.extend_from_slice(ts);
            let Some(text) = matcher.check(text, stderr) else {
                continue;
            };
            matched += 1;
            let mut slot = if ring.len() == want {
                ring.pop_front().unwrap_or_else(empty_kept)
            } else {
                empty_kept()
            };
            slot.fill(ts, &text, stderr);
            ring.push_back(slot);
        }
        Ok::<(), LogsError>(())
    };
    match tokio::time::timeout(deadline, scan).await {
        Ok(result) => result?,
        Err(_) => {
            snap.cut_short = Some(deadline);
            snap.read_up_to = parse_ts(&last_ts);
        }
    }
    // Docker's `tail` hides how many lines came before it, unless it returned
    // fewer than asked (then it returned them all).
    snap.matched = (!q.docker_tails() || ring.len() < want).then_some(matched);
    snap.lines = ring.into_iter().map(Kept::into_line).collect();
    debug!(
        container = %q.container,
        scanned_lines = snap.scanned_lines,
        scanned_bytes = snap.scanned_bytes,
        matched,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "logs read"
    );
    Ok(snap)
}

fn empty_kept() -> Kept {
    Kept {
        buf: Vec::new(),
        ts_len: 0,
        stderr: false,
        cut: false,
    }
}

/// [`check_container`], or for a Swarm service's log that the service exists.
pub async fn check_source(docker: &DockerClient, q: &Query) -> Result<(), LogsError> {
    if !q.swarm {
        return check_container(docker, &q.container).await;
    }
    docker.ready().await?;
    docker
        .inspect_service(&q.container)
        .await
        .map(|_| ())
        .map_err(|e| read_error(e, docker, &q.container))
}

/// Checks that the container exists, quickly, so a typo or a stopped engine gets a
/// private answer before the command defers.
pub async fn check_container(docker: &DockerClient, container: &str) -> Result<(), LogsError> {
    docker.ready().await?;

    docker
        .inspect(container)
        .await
        .map(|_| ())
        .map_err(|e| read_error(e, docker, container))
}

/// `docker logs --follow`: sends every matching line to `tx`, from `q.since` (or
/// the last `q.lines` lines when unfiltered) on, until the container's output ends
/// (it stopped or was removed) or `tx` is closed.
pub async fn follow(
    docker: DockerClient,
    redactor: Arc<Redactor>,
    q: Query,
    tx: mpsc::Sender<LogLine>,
) -> Result<(), LogsError> {
    if q.replicas.is_empty() {
        follow_one(docker, redactor, q, tx).await
    } else {
        replicas::follow(docker, redactor, q, tx).await
    }
}

/// [`follow`] of one container.
async fn follow_one(
    docker: DockerClient,
    redactor: Arc<Redactor>,
    q: Query,
    tx: mpsc::Sender<LogLine>,
) -> Result<(), LogsError> {
    let stream = open(&docker, &q, true).await?;
    tokio::pin!(stream);
    let mut matcher = Matcher::new(redactor, &q);
    loop {
        let next = tokio::select! {
            next = stream.next() => next,
            _ = tx.closed() => return Ok(()),
        };
        let frame = match next {
            None => return Ok(()),
            Some(Err(e)) => return Err(read_error(e, &docker, &q.container)),
            Some(Ok(out)) => out,
        };
        let stderr = frame.is_stderr();
        let (ts, text) = split_frame(frame.bytes());
        let Some(text) = matcher.check(text, stderr) else {
            continue;
        };
        let mut slot = empty_kept();
        slot.fill(ts, &text, stderr);
        if tx.send(slot.into_line()).await.is_err() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation_names_the_key() {
        let c = LogsConfig {
            redact: vec!["ok".into(), "(unclosed".into()],
            ..Default::default()
        };
        let errs = c.validate();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("logs.redact[1]: `(unclosed` is not a valid regular expression"),
            "{errs:?}"
        );
        assert!(!errs[0].contains('\n'));
    }

    #[test]
    fn grep_substring_and_regex() {
        let g = Grep::parse("error").unwrap().unwrap();
        assert!(g.is_match(b"an ERROR here") && !g.is_match(b"fine"));
        let g = Grep::parse("/ERR(OR)? [0-9]+/").unwrap().unwrap();
        assert!(g.is_regex && g.is_match(b"ERR 42") && !g.is_match(b"err 42"));
        let g = Grep::parse("/err/i").unwrap().unwrap();
        assert!(g.is_match(b"ERR"));
        assert!(matches!(
            Grep::parse("/(oops/"),
            Err(LogsError::BadRegex { .. })
        ));
        assert!(Grep::parse("  ").unwrap().is_none());
    }

    #[test]
    fn levels() {
        assert_eq!(line_level(b"2026 ERROR db down"), Some(3));
        assert_eq!(
            line_level(br#"{"msg":"error talking","level":"info"}"#),
            Some(1)
        );
        assert_eq!(line_level(b"ts=1 level=warn msg=slow"), Some(2));
        assert_eq!(line_level(br#"{"level":50,"msg":"x"}"#), Some(3));
        assert_eq!(line_level(b"[warning] disk"), Some(2));
        assert_eq!(line_level(b"no level here, errors=0"), None);
    }

    #[test]
    fn durations_and_times() {
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("m"), None);
        let now = Utc::now();
        let b = Bound::parse("since", "2026-11-23T19:00:00Z", now).unwrap();
        assert_eq!(b.at.to_rfc3339(), "2026-11-23T19:00:00+00:00");
        assert!(Bound::parse("since", "yesterday", now).is_err());
    }

    #[test]
    fn frames_split_into_time_and_text() {
        let (ts, text) = split_frame(b"2026-11-23T19:41:43.123456789Z hello world\n");
        assert_eq!(ts, b"2026-11-23T19:41:43.123456789Z");
        assert_eq!(text, b"hello world");
        assert!(parse_ts(ts).is_some());
        let (ts, text) = split_frame(b"no timestamp\r\n");
        assert!(ts.is_empty());
        assert_eq!(text, b"no timestamp");
    }

    #[test]
    fn long_lines_are_cut_on_a_char_boundary() {
        let s = "é".repeat(MAX_LINE_BYTES);
        let c = cut(s.as_bytes());
        assert!(c.len() <= MAX_LINE_BYTES);
        assert!(std::str::from_utf8(c).is_ok());
    }
}
