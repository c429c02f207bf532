//! `/logs service [lines] [since] [until] [grep] [level] [stream] [follow] [public]`:
//! what an engineer runs instead of `docker logs --tail 200 api 2>&1 | grep -i error`.
//!
//! Reading, filtering and redaction live in `klaxon_core::logs`. Here: the command
//! and the reading of its options into a query; [`render`] turns the result into
//! a message (inline code block, or a `.log` attachment when it does not fit);
//! [`follow`] runs follow mode (one message in a thread, edited with new lines at
//! most every [`EDIT_EVERY`], with a Stop button); [`click`] takes the Stop
//! button's clicks (prefix `logs:`) from the interaction pipeline.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use klaxon_core::chat::{chars, limits};
use klaxon_core::logs::{self, Bound, Grep, LogLevel, LogsError, Query, Streams};
use poise::CreateReply;
use tracing::info;

use crate::choices::autocomplete_service;
use crate::interaction;
use crate::serenity::{CreateAllowedMentions, CreateAttachment};
use crate::{Context, Data, Error, UserError};

/// The `custom_id` prefix of the Stop button (routed by `components`).
pub const PREFIX: &str = "logs";
/// Follow mode edits its message at most this often: Discord allows about five
/// edits per five seconds in a channel, and a phone cannot read faster anyway.
pub const EDIT_EVERY: Duration = Duration::from_secs(2);
/// Discord refuses files over 10 MiB.
pub const MAX_FILE_BYTES: usize = 10 * 1024 * 1024;
/// Follows running at once in this process: each holds a Docker stream open.
const MAX_FOLLOWS: usize = 10;
/// The container check before deferring must leave time to defer inside 3 s.
const CHECK_WITHIN: Duration = Duration::from_millis(1_500);
/// Lines a follow keeps for its message (only those that fit are shown).
const FOLLOW_KEEP: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, poise::ChoiceParameter)]
pub enum LevelChoice {
    #[name = "error"]
    Error,
    #[name = "warn"]
    Warn,
    #[name = "info"]
    Info,
}

impl From<LevelChoice> for LogLevel {
    fn from(c: LevelChoice) -> Self {
        match c {
            LevelChoice::Error => LogLevel::Error,
            LevelChoice::Warn => LogLevel::Warn,
            LevelChoice::Info => LogLevel::Info,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, poise::ChoiceParameter)]
pub enum StreamChoice {
    #[name = "both"]
    Both,
    #[name = "stdout"]
    Stdout,
    #[name = "stderr"]
    Stderr,
}

impl From<StreamChoice> for Streams {
    fn from(c: StreamChoice) -> Self {
        match c {
            StreamChoice::Both => Streams::Both,
            StreamChoice::Stdout => Streams::Stdout,
            StreamChoice::Stderr => Streams::Stderr,
        }
    }
}

fn user(e: LogsError) -> Error {
    UserError(e.to_string()).into()
}

/// Everything the member asked for, checked. Nothing here does I/O, so a mistake
/// gets its private answer at once.
#[allow(clippy::too_many_arguments)]
pub fn parse_query(
    container: &str,
    lines: Option<u32>,
    since: Option<&str>,
    until: Option<&str>,
    grep: Option<&str>,
    level: Option<LevelChoice>,
    stream: Option<StreamChoice>,
    now: DateTime<Utc>,
) -> Result<Query, LogsError> {
    let mut q = Query::new(container);
    if let Some(n) = lines {
        if n == 0 || n as usize > logs::MAX_LINES {
            return Err(LogsError::BadOption {
                option: "lines",
                value: n.to_string(),
                reason: format!("give 1 to {}", logs::MAX_LINES),
            });
        }
        q.lines = n as usize;
    }
    q.since = since.map(|s| Bound::parse("since", s, now)).transpose()?;
    q.until = until.map(|s| Bound::parse("until", s, now)).transpose()?;
    if let (Some(s), Some(u)) = (&q.since, &q.until) {
        if s.at >= u.at {
            return Err(LogsError::BadOption {
                option: "until",
                value: until.unwrap_or_default().to_string(),
                reason: "it must be later than `since`".into(),
            });
        }
    }
    q.grep = grep.map(Grep::parse).transpose()?.flatten();
    q.level = level.map(LogLevel::from);
    q.streams = stream.map(Streams::from).unwrap_or_default();
    Ok(q)
}

/// Show a service's container logs, filtered and with secrets redacted
#[allow(clippy::too_many_arguments)]
#[poise::command(slash_command, rename = "logs")]
pub async fn logs(
    ctx: Context<'_>,
    #[description = "The service"]
    #[autocomplete = "autocomplete_service"]
    service: String,
    #[description = "How many matching lines, the latest (default 100, at most 5000)"]
    #[min = 1]
    #[max = 5000]
    lines: Option<u32>,
    #[description = "From this long ago (10m, 2h, 1d) or this time (2026-11-23T19:00:00Z)"]
    since: Option<String>,
    #[description = "Up to this long ago (5m) or this time (RFC 3339)"] until: Option<String>,
    #[description = "Only lines containing this (any case), or a regex written as /.../"]
    grep: Option<String>,
    #[description = "Only lines at this level or worse"] level: Option<LevelChoice>,
    #[description = "stdout, stderr or both (the default)"] stream: Option<StreamChoice>,
    #[description = "Keep posting new lines in a thread for a few minutes"] follow: Option<bool>,
    #[description = "Show the answer to the channel (default: only to you)"] public: Option<bool>,
) -> Result<(), Error> {
    let app = Arc::clone(ctx.data());
    let follow = follow.unwrap_or(false);
    let public = public.unwrap_or(false);
    let svc = app.service(&service).map_err(UserError::from)?;
    let name = svc.name.clone();
    // A compose service: its replicas, merged (the name shown is the compose one).
    let compose = svc.compose.clone().filter(|_| svc.container.is_none());
    // A Swarm service's log is that of all its tasks (issue #16).
    let swarm = svc.container.is_none() && svc.swarm_service.is_some();
    let container = match (&svc.container, &compose, &svc.swarm_service) {
        (Some(c), _, _) => c.clone(),
        (None, Some(c), _) => c.clone(),
        (None, None, Some(s)) => s.clone(),
        (None, None, None) => return Err(user(LogsError::NoContainer(name.clone()))),
    };
    let now = Utc::now();
    let mut q = parse_query(
        &container,
        lines,
        since.as_deref(),
        until.as_deref(),
        grep.as_deref(),
        level,
        stream,
        now,
    )
    .map_err(user)?;
    q.swarm = swarm;
    if follow && q.since.is_none() && (q.filters() || q.streams != Streams::Both) {
        // Docker can only `tail` an unfiltered log; a filtered follow would replay
        // the whole history before the first new line. New lines only, then.
        q.since = Some(Bound {
            at: now,
            ago: Some(Duration::ZERO),
        });
    }
    if follow && q.until.is_some() {
        return Err(UserError::new(
            "`until` and `follow` do not go together: a follow shows new lines as they come.",
        )
        .into());
    }
    if follow && app.follows.running() >= MAX_FOLLOWS {
        return Err(UserError::new(format!(
            "{MAX_FOLLOWS} follows are already running; stop one (its Stop button) or wait for it to end."
        ))
        .into());
    }
    // The config was validated at start-up, so a failure here is Klaxon's bug.
    let redactor = app.logs.redactor()?;
    if compose.is_some() {
        q.replicas = replicas(&app, svc).await?;
    }
    // A missing container or a stopped engine gets a private answer before the
    // defer; an engine too slow to answer this quickly is left to the read.
    let engine = engine(&app, &name)?;
    let check = async {
        match q.replicas.first() {
            Some(first) => logs::check_container(&engine, &first.1).await,
            None => logs::check_source(&engine, &q).await,
        }
    };
    if let Ok(Err(e)) = tokio::time::timeout(CHECK_WITHIN, check).await {
        return Err(user(e));
    }
    if public {
        ctx.defer().await?;
    } else {
        ctx.defer_ephemeral().await?;
    }
    if follow {
        return start_follow(ctx, app, name, q, redactor, public).await;
    }
    // Reads take turns (`[logs] max_concurrent_reads`): memory stays bounded
    // however many members ask at once. The turn lasts until the answer is sent.
    let turn = app.log_reads.turn().await;
    let snap = logs::read(&engine, redactor, &q, app.logs.read_timeout())
        .await
        .map_err(user)?;
    info!(
        service = %name,
        matched = ?snap.matched,
        shown = snap.lines.len(),
        scanned_lines = snap.scanned_lines,
        scanned_bytes = snap.scanned_bytes,
        cut_short = snap.cut_short.is_some(),
        "logs shown"
    );
    let mut out = render(&name, &q, &snap, now);
    drop(snap);
    if let Some(waited) = turn.waited {
        let note = format!(
            "\n⏳ Queued {:.1} s behind other log reads (at most {} run at once).",
            waited.as_secs_f64(),
            app.log_reads.limit()
        );
        if chars(&out.content) + chars(&note) <= limits::CONTENT {
            out.content.push_str(&note);
        }
    }
    let mut reply = CreateReply::default()
        .content(out.content)
        .ephemeral(!public)
        .allowed_mentions(CreateAllowedMentions::new());
    if let Some((filename, data)) = out.file {
        reply = reply.attachment(CreateAttachment::bytes(data, filename));
    }
    ctx.send(reply).await?;
    drop(turn);
    Ok(())
}

/// The replicas of a compose service, by number, within [`CHECK_WITHIN`]; none
/// (or an engine that does not answer) is a private answer.
async fn replicas(
    app: &Data,
    svc: &klaxon_core::settings::services::ServiceConfig,
) -> Result<Vec<(u32, String)>, Error> {
    let listed = tokio::time::timeout(
        CHECK_WITHIN,
        klaxon_core::rollout::replicas::of_service(app, svc),
    )
    .await
    .map_err(|_| UserError::new("The Docker engine did not answer in time; try again."))?;
    let found = listed.map_err(|e| interaction::user_error(e, "listing replicas"))?;
    Ok(found.into_iter().map(|r| (r.number, r.name)).collect())
}

mod click;
mod follow;
mod render;

pub use click::{on_click, read_click};
use follow::start_follow;

/// The engine `service` runs on (its `host`).
pub(crate) fn engine(
    app: &klaxon_core::app::App,
    service: &str,
) -> Result<klaxon_core::docker::DockerClient, UserError> {
    let svc = app.service(service).map_err(UserError::from)?;
    Ok(app.engine_for(svc).map_err(UserError::from)?.clone())
}
pub use follow::{render_follow, Stopped};
pub use render::{filters, render, window, Rendered};

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use klaxon_core::logs::{LogLine, Snapshot};

    use super::render::{compact, count};
    use super::*;

    fn line(text: &str) -> LogLine {
        LogLine {
            at: DateTime::parse_from_rfc3339("2026-11-23T19:41:43.5Z")
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            stderr: false,
            text: text.into(),
        }
    }

    fn snap(lines: Vec<LogLine>, matched: Option<u64>) -> Snapshot {
        Snapshot {
            lines,
            matched,
            ..Default::default()
        }
    }

    #[test]
    fn short_output_is_inline_and_safe() {
        let now = Utc::now();
        let q = parse_query(
            "api",
            None,
            Some("10m"),
            None,
            Some("error"),
            None,
            None,
            now,
        )
        .expect("valid");
        let r = render(
            "api",
            &q,
            &snap(vec![line("ERROR @everyone <@123> ```x```")], Some(1)),
            now,
        );
        assert!(r.file.is_none());
        assert!(r.content.starts_with("📜 **api** · last 10m · grep `` error ``\n1 of 1 matching line\n```\n19:41:43 ERROR"), "{}", r.content);
        assert!(!r.content.contains("@everyone") && !r.content.contains("<@123>"));
        assert_eq!(r.content.matches("```").count(), 2, "{}", r.content);
    }

    #[test]
    fn long_output_is_attached_with_a_preview() {
        let now = Utc::now();
        let q = Query::new("api");
        let lines: Vec<LogLine> = (0..500)
            .map(|i| line(&format!("line {i} {}", "x".repeat(40))))
            .collect();
        let r = render("api", &q, &snap(lines, None), now);
        let (name, data) = r.file.expect("a file");
        assert!(name.starts_with("api-") && name.ends_with(".log"));
        let text = String::from_utf8(data).unwrap();
        assert!(text.contains("2026-11-23T19:41:43.500Z line 0 "));
        assert!(text.ends_with(&format!("line 499 {}\n", "x".repeat(40))));
        assert!(chars(&r.content) <= limits::CONTENT);
        assert!(r.content.contains("the last 500 lines"), "{}", r.content);
        assert!(r.content.contains("line 499"), "preview: {}", r.content);
    }

    #[test]
    fn huge_output_is_cut_to_ten_mib() {
        let now = Utc::now();
        let q = Query::new("api");
        let big = "y".repeat(logs::MAX_LINE_BYTES);
        let lines: Vec<LogLine> = (0..3_000).map(|i| line(&format!("{i} {big}"))).collect();
        let r = render("api", &q, &snap(lines, Some(3_000)), now);
        let (_, data) = r.file.expect("a file");
        assert!(data.len() <= MAX_FILE_BYTES);
        assert!(r.content.contains("earlier line(s)"), "{}", r.content);
        let text = String::from_utf8(data).unwrap();
        assert!(text.contains("left out: Discord takes files up to 10 MiB"));
        assert!(text.trim_end().ends_with(&big));
    }

    #[test]
    fn queries_are_checked() {
        let now = Utc::now();
        assert!(parse_query("c", Some(0), None, None, None, None, None, now).is_err());
        assert!(parse_query("c", Some(5_001), None, None, None, None, None, now).is_err());
        let e = parse_query("c", None, Some("5m"), Some("10m"), None, None, None, now).unwrap_err();
        assert!(e.to_string().contains("later than `since`"), "{e}");
        let e = parse_query("c", None, None, None, Some("/(x/"), None, None, now).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("`(x` is not a valid regular expression"),
            "{e}"
        );
    }

    #[test]
    fn follow_message_fits() {
        let q = Query::new("api");
        let lines: VecDeque<LogLine> = (0..100)
            .map(|i| line(&format!("{i} {}", "z".repeat(80))))
            .collect();
        let s = render_follow("api", &q, &lines, 100, "🟢 following", true);
        assert!(chars(&s) <= limits::CONTENT);
        assert!(s.contains("99 zzz"));
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(count(0), "0");
        assert_eq!(count(1_234), "1,234");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(compact(Duration::from_secs(5_400)), "1h30m");
    }
}
