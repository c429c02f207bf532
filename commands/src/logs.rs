//! `/logs service [lines] [since] [until] [grep] [level] [stream] [follow] [public]`:
//! what an engineer runs instead of `docker logs --tail 200 api 2>&1 | grep -i error`.
//!
//! Reading, filtering and redaction live in `klaxon_core::logs`; this module turns
//! the result into a message (inline code block, or a `.log` attachment when it
//! does not fit) and runs follow mode: one message in a thread, edited with new
//! lines at most every [`EDIT_EVERY`], with a Stop button (prefix `logs:`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use klaxon_core::audit::Outcome;
use klaxon_core::chat::{chars, limits, neutralize, truncate};
use klaxon_core::logs::{
    self, Bound, Grep, LogLevel, LogLine, LogsError, Query, Redactor, Snapshot, Streams,
};
use poise::CreateReply;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::choices::autocomplete_service;
use crate::interaction::{reply_private, Allowed, Target};
use crate::serenity::{
    self, AutoArchiveDuration, ButtonStyle, ChannelId, ComponentInteraction, CreateActionRow,
    CreateAllowedMentions, CreateAttachment, CreateButton, CreateInteractionResponse,
    CreateMessage, CreateThread, EditMessage, MessageId,
};
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
    let container = svc
        .container
        .clone()
        .ok_or_else(|| user(LogsError::NoContainer(name.clone())))?;
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
    // A missing container or a stopped engine gets a private answer before the
    // defer; an engine too slow to answer this quickly is left to the read.
    if let Ok(Err(e)) =
        tokio::time::timeout(CHECK_WITHIN, logs::check_container(&app.docker, &container)).await
    {
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
    let snap = logs::read(&app.docker, redactor, &q, app.logs.read_timeout())
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

/// What a `/logs` answer looks like.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub content: String,
    /// `(filename, bytes)` when the lines do not fit inline.
    pub file: Option<(String, Vec<u8>)>,
}

/// `1,234`.
fn count(n: u64) -> String {
    let digits: Vec<char> = n.to_string().chars().collect();
    let groups: Vec<String> = digits
        .rchunks(3)
        .rev()
        .map(|g| g.iter().collect())
        .collect();
    groups.join(",")
}

fn size(bytes: usize) -> String {
    match bytes {
        b if b >= 1024 * 1024 => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
        b if b >= 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} bytes"),
    }
}

/// `10m`, `1h30m`, `2d`.
fn compact(d: Duration) -> String {
    let mut s = d.as_secs();
    if s == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if s >= len {
            out.push_str(&format!("{}{unit}", s / len));
            s %= len;
        }
    }
    out
}

fn when(b: &Bound) -> String {
    match b.ago {
        Some(d) if d.is_zero() => "now".into(),
        Some(d) => format!("{} ago", compact(d)),
        None => b.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    }
}

/// `last 10m`, `from … to …`, `whole log`.
pub fn window(q: &Query) -> String {
    match (&q.since, &q.until) {
        (None, None) => "whole log".into(),
        (Some(s), None) => match s.ago {
            Some(d) if !d.is_zero() => format!("last {}", compact(d)),
            _ => format!("since {}", when(s)),
        },
        (None, Some(u)) => format!("until {}", when(u)),
        (Some(s), Some(u)) => format!("from {} to {}", when(s), when(u)),
    }
}

/// Inline code that survives any text: a span delimited by double backticks.
fn code(s: &str) -> String {
    format!(
        "`` {} ``",
        neutralize(&truncate(s, 100)).replace("``", "`\u{200b}`")
    )
}

/// `grep ``ERROR`` · level ≥ warn · stderr only`, empty without filters.
pub fn filters(q: &Query) -> String {
    let mut parts = Vec::new();
    if let Some(g) = &q.grep {
        parts.push(format!("grep {}", code(&g.text)));
    }
    if let Some(l) = q.level {
        parts.push(format!("level ≥ {}", l.as_str()));
    }
    if q.streams != Streams::Both {
        parts.push(format!("{} only", q.streams.as_str()));
    }
    parts.join(" · ")
}

fn header(service: &str, q: &Query) -> String {
    let mut h = format!("📜 **{}** · {}", neutralize(service), window(q));
    let f = filters(q);
    if !f.is_empty() {
        h.push_str(" · ");
        h.push_str(&f);
    }
    h
}

/// `19:41:43 text`, made safe for a code block.
fn inline_line(l: &LogLine) -> String {
    let ts =
        l.at.map(|t| t.format("%H:%M:%S ").to_string())
            .unwrap_or_default();
    // Code blocks need no other escaping; fences and mentions are neutralised.
    neutralize(&format!("{ts}{}", l.text))
}

/// The timestamp a file line starts with: `2026-11-23T19:41:43.123Z `.
fn file_ts(l: &LogLine) -> String {
    l.at.map(|t| {
        format!(
            "{} ",
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        )
    })
    .unwrap_or_default()
}

/// The lines at the end that fit into `budget` characters, as a code block
/// (without the fences), and how many that is. Only those lines are rendered.
fn tail_block<'a>(
    lines: impl DoubleEndedIterator<Item = &'a LogLine>,
    budget: usize,
) -> (String, usize) {
    let mut used = 0;
    let mut tail = Vec::new();
    for l in lines.rev() {
        let line = inline_line(l);
        let c = chars(&line) + 1;
        if used + c > budget {
            break;
        }
        used += c;
        tail.push(line);
    }
    tail.reverse();
    let n = tail.len();
    (tail.join("\n"), n)
}

/// The answer to a read: header, then the lines inline when they fit in one
/// message, else as a `.log` file with the last lines previewed inline.
pub fn render(service: &str, q: &Query, snap: &Snapshot, now: DateTime<Utc>) -> Rendered {
    let shown = snap.lines.len() as u64;
    let mut head = header(service, q);
    head.push('\n');
    head.push_str(&match snap.matched {
        _ if shown == 0 => "No matching lines.".to_string(),
        Some(m) => format!(
            "{} of {} matching line{}",
            count(shown),
            count(m),
            if m == 1 { "" } else { "s" }
        ),
        None => format!("the last {} lines", count(shown)),
    });
    if let Some(d) = snap.cut_short {
        let upto = snap
            .read_up_to
            .map(|t| format!(", at the lines of {}", t.format("%Y-%m-%d %H:%M:%S UTC")))
            .unwrap_or_default();
        head.push_str(&format!(
            "\n⚠️ Stopped reading after {} s{upto}: these are the last matches up to there. Narrow the window with `since` / `until`.",
            d.as_secs()
        ));
    }
    if shown == 0 {
        return Rendered {
            content: truncate(&head, limits::CONTENT),
            file: None,
        };
    }
    // A character takes at most four bytes: lines with more than four times a
    // message's characters cannot fit, and are not rendered inline at all (5,000
    // long lines would be copied once more for nothing).
    let bytes: usize = snap.lines.iter().map(|l| l.text.len() + 1).sum();
    if bytes <= 4 * limits::CONTENT {
        let inline: Vec<String> = snap.lines.iter().map(inline_line).collect();
        let fences = "\n```\n".len() + "\n```".len();
        let total: usize = inline.iter().map(|l| chars(l) + 1).sum();
        if chars(&head) + fences + total <= limits::CONTENT {
            return Rendered {
                content: format!("{head}\n```\n{}\n```", inline.join("\n")),
                file: None,
            };
        }
    }

    // Too long for a message: the whole answer goes into a file, newest lines kept
    // when even that is too big for Discord.
    let file_head = format!(
        "# Klaxon /logs {service} · {} {}\n# {} line(s) shown{}\n",
        window(q),
        plain_filters(q),
        count(shown),
        snap.matched
            .map(|m| format!(" of {} matching", count(m)))
            .unwrap_or_default()
    );
    // Written straight into the file's bytes: the lines are not copied into an
    // intermediate list first.
    let stamps: Vec<String> = snap.lines.iter().map(file_ts).collect();
    let len = |i: usize| stamps[i].len() + snap.lines[i].text.len() + 1;
    let mut budget = MAX_FILE_BYTES - file_head.len() - 200;
    let mut first = snap.lines.len();
    while first > 0 && len(first - 1) <= budget {
        budget -= len(first - 1);
        first -= 1;
    }
    let left_out_bytes: usize = (0..first).map(len).sum();
    let kept_bytes: usize = (first..snap.lines.len()).map(len).sum();
    let mut data = Vec::with_capacity(file_head.len() + 300 + kept_bytes);
    data.extend_from_slice(file_head.as_bytes());
    let mut note = String::new();
    if first > 0 {
        note = format!(
            "{} earlier line(s) ({}) left out: Discord takes files up to 10 MiB.",
            count(first as u64),
            size(left_out_bytes)
        );
        data.extend_from_slice(format!("# {note}\n").as_bytes());
    }
    for (stamp, l) in stamps[first..].iter().zip(&snap.lines[first..]) {
        data.extend_from_slice(stamp.as_bytes());
        data.extend_from_slice(l.text.as_bytes());
        data.push(b'\n');
    }
    let filename = format!(
        "{}-{}.log",
        service
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            })
            .collect::<String>(),
        now.format("%Y%m%d-%H%M%S")
    );
    let mut content = format!(
        "{head}\nAll of them are in `{filename}` ({}).",
        size(data.len())
    );
    if !note.is_empty() {
        content.push_str(&format!("\n⚠️ {note}"));
    }
    // A preview for phones: the newest lines that fit.
    let fences = "\n```\n".len() + "\n```".len();
    let budget = limits::CONTENT.saturating_sub(chars(&content) + fences + 20);
    let (preview, n) = tail_block(snap.lines.iter(), budget.min(1_500));
    if n > 0 {
        content.push_str(&format!("\nThe last {n}:\n```\n{preview}\n```"));
    }
    Rendered {
        content: truncate(&content, limits::CONTENT),
        file: Some((filename, data)),
    }
}

/// The filters for the file's header, without Discord markdown.
fn plain_filters(q: &Query) -> String {
    let mut parts = Vec::new();
    if let Some(g) = &q.grep {
        parts.push(format!("grep {}", g.text));
    }
    if let Some(l) = q.level {
        parts.push(format!("level >= {}", l.as_str()));
    }
    if q.streams != Streams::Both {
        parts.push(format!("{} only", q.streams.as_str()));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("· {}", parts.join(" · "))
    }
}

// ---------------------------------------------------------------------------
// Follow mode

// Running follows are the application's (`App::follows`): the Stop button sends
// the clicking member's name to the follow it names.

/// Why a follow ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Stopped {
    TimeUp(Duration),
    By(String),
    /// The container's output ended: it stopped or was removed.
    Ended,
    Failed(String),
}

fn stop_button(id: u64) -> Vec<CreateActionRow> {
    vec![CreateActionRow::Buttons(vec![CreateButton::new(format!(
        "{PREFIX}:stop:{id}"
    ))
    .label("Stop")
    .style(ButtonStyle::Danger)])]
}

/// The follow message: header, status, and the newest lines that fit.
pub fn render_follow(
    service: &str,
    q: &Query,
    lines: &VecDeque<LogLine>,
    matched: u64,
    status: &str,
    running: bool,
) -> String {
    let mut head = header(service, q);
    head.push_str(&format!(
        "\n{} · {} matching line{}{}",
        status,
        count(matched),
        if matched == 1 { "" } else { "s" },
        if running { " so far" } else { "" }
    ));
    let fences = "\n```\n".len() + "\n```".len();
    let budget = limits::CONTENT.saturating_sub(chars(&head) + fences);
    let (block, n) = tail_block(lines.iter(), budget);
    if n == 0 {
        truncate(&head, limits::CONTENT)
    } else {
        format!("{head}\n```\n{block}\n```")
    }
}

async fn start_follow(
    ctx: Context<'_>,
    app: Data,
    service: String,
    q: Query,
    redactor: Arc<Redactor>,
    public: bool,
) -> Result<(), Error> {
    let http = Arc::clone(&ctx.serenity_context().http);
    let channel = ctx.channel_id();
    let limit = app.logs.follow_limit();
    let until = Utc::now() + chrono::Duration::from_std(limit).unwrap_or_default();
    let none = CreateAllowedMentions::new;

    // The thread starts from a message of the bot's own in the channel: an
    // ephemeral reply cannot carry a thread.
    let filter = filters(&q);
    let starter = CreateMessage::new()
        .content(truncate(
            &format!(
                "📜 Following the logs of **{}**{} for {}, started by {}.",
                neutralize(&service),
                if filter.is_empty() {
                    String::new()
                } else {
                    format!(" ({filter})")
                },
                compact(limit),
                neutralize(&ctx.author().name),
            ),
            limits::CONTENT,
        ))
        .allowed_mentions(none());
    let starter = channel.send_message(&http, starter).await?;
    let thread_name = truncate(
        &format!("logs · {service} · {}", Utc::now().format("%H:%M")),
        100,
    );
    let target = match channel
        .create_thread_from_message(
            &http,
            starter.id,
            CreateThread::new(thread_name).auto_archive_duration(AutoArchiveDuration::OneHour),
        )
        .await
    {
        Ok(thread) => thread.id,
        Err(e) => {
            // Inside a thread already, or no permission: follow in the channel.
            warn!(error = %e, channel = channel.get(), "could not start a thread; following in the channel");
            channel
        }
    };

    let id = app.follows.next_id();
    let (stop_tx, stop_rx) = oneshot::channel();
    app.follows.insert(id, stop_tx);
    let status = format!("🟢 following until {} UTC", until.format("%H:%M:%S"));
    let first = CreateMessage::new()
        .content(render_follow(
            &service,
            &q,
            &VecDeque::new(),
            0,
            &status,
            true,
        ))
        .components(stop_button(id))
        .allowed_mentions(none());
    let message = match target.send_message(&http, first).await {
        Ok(m) => m,
        Err(e) => {
            app.follows.remove(id);
            return Err(e.into());
        }
    };
    let reply = CreateReply::default()
        .content(format!(
            "Following `{}` in <#{}> until {} UTC ({}); its Stop button ends it sooner.",
            neutralize(&service),
            target.get(),
            until.format("%H:%M:%S"),
            compact(limit),
        ))
        .ephemeral(!public)
        .allowed_mentions(none());
    if let Err(e) = ctx.send(reply).await {
        // The follow itself is posted; a lost pointer to it is not worth stopping it.
        warn!(error = %e, "could not tell the member where the follow is");
    }
    info!(service = %service, follow = id, thread = target.get(), limit_secs = limit.as_secs(), "follow started");
    let run = FollowRun {
        http,
        app,
        service,
        q,
        redactor,
        target,
        message: message.id,
        id,
        limit,
        status,
    };
    tokio::spawn(run.run(stop_rx));
    Ok(())
}

struct FollowRun {
    http: Arc<serenity::Http>,
    app: Data,
    service: String,
    q: Query,
    redactor: Arc<Redactor>,
    target: ChannelId,
    message: MessageId,
    id: u64,
    limit: Duration,
    status: String,
}

impl FollowRun {
    async fn edit(&self, content: String, last: bool) -> Instant {
        let mut edit = EditMessage::new()
            .content(content)
            .allowed_mentions(CreateAllowedMentions::new());
        if last {
            edit = edit.components(Vec::new());
        }
        if let Err(e) = self
            .target
            .edit_message(&self.http, self.message, edit)
            .await
        {
            warn!(error = %e, follow = self.id, "follow edit failed");
        }
        Instant::now()
    }

    async fn run(self, mut stop: oneshot::Receiver<String>) {
        let started = Instant::now();
        let (tx, mut rx) = mpsc::channel::<LogLine>(1_024);
        let reader = tokio::spawn(logs::follow(
            self.app.docker.clone(),
            Arc::clone(&self.redactor),
            self.q.clone(),
            tx,
        ));
        let time_up = tokio::time::sleep(self.limit);
        tokio::pin!(time_up);
        let mut lines: VecDeque<LogLine> = VecDeque::with_capacity(FOLLOW_KEEP);
        let mut matched: u64 = 0;
        let mut dirty = false;
        // The message was just posted: the first edit waits a full interval.
        let mut last_edit = Instant::now();
        let mut reader = Some(reader);
        let stopped = loop {
            let next_edit = tokio::time::Instant::from_std(last_edit + EDIT_EVERY);
            tokio::select! {
                line = rx.recv() => match line {
                    Some(l) => {
                        if lines.len() == FOLLOW_KEEP {
                            lines.pop_front();
                        }
                        lines.push_back(l);
                        matched += 1;
                        dirty = true;
                    }
                    None => {
                        let result = match reader.take() {
                            Some(r) => r.await,
                            None => Ok(Ok(())),
                        };
                        break match result {
                            Ok(Ok(())) => Stopped::Ended,
                            Ok(Err(e)) => Stopped::Failed(e.to_string()),
                            Err(e) => {
                                warn!(error = %e, follow = self.id, "follow reader panicked");
                                Stopped::Failed("Klaxon's log reader failed; the details are in its logs.".into())
                            }
                        };
                    }
                },
                _ = tokio::time::sleep_until(next_edit), if dirty => {
                    let content = render_follow(&self.service, &self.q, &lines, matched, &self.status, true);
                    last_edit = self.edit(content, false).await;
                    dirty = false;
                }
                _ = &mut time_up => break Stopped::TimeUp(self.limit),
                by = &mut stop => break Stopped::By(by.unwrap_or_else(|_| "someone".into())),
            }
        };
        // Clicks from now on get "already stopped"; the reader stops with its channel.
        self.app.follows.remove(self.id);
        drop(rx);
        if let Some(r) = reader {
            r.abort();
        }
        let status = match &stopped {
            Stopped::TimeUp(d) => format!("⏹ Stopped after {} (the time limit).", compact(*d)),
            Stopped::By(who) => format!("⏹ Stopped by {}.", neutralize(who)),
            Stopped::Ended => "⏹ The container's output ended (it stopped or was removed).".into(),
            Stopped::Failed(why) => format!("⚠️ Stopped: {}", neutralize(why)),
        };
        // Even the last edit keeps to the pace.
        tokio::time::sleep_until(tokio::time::Instant::from_std(last_edit + EDIT_EVERY)).await;
        let content = render_follow(&self.service, &self.q, &lines, matched, &status, false);
        self.edit(content, true).await;
        info!(
            service = %self.service,
            follow = self.id,
            matched,
            elapsed_ms = started.elapsed().as_millis() as u64,
            stopped = ?stopped,
            "follow ended"
        );
    }
}

/// Reads a click on a Stop button (`logs:stop:<id>`): viewers may stop any follow.
pub fn read_click(_app: &Data, custom_id: &str) -> Option<Target> {
    let id = follow_of(custom_id)?;
    Some(Target {
        verb: "stop".into(),
        command: "logs".into(),
        arguments: format!("click=stop follow={id}"),
    })
}

fn follow_of(custom_id: &str) -> Option<u64> {
    let mut parts = custom_id.split(':').skip(1);
    let verb = parts.next().unwrap_or_default();
    let id = parts.next().and_then(|s| s.parse::<u64>().ok());
    match (id, verb) {
        (Some(id), "stop") => Some(id),
        _ => None,
    }
}

/// A Stop click by a member whose level allows it.
pub async fn on_click(a: Allowed<'_, ComponentInteraction>) -> Result<(), Error> {
    let (ctx, app, click) = (a.ctx, a.app, a.interaction);
    let Some(id) = follow_of(&click.data.custom_id) else {
        return reply_private(ctx, click, "This button is no longer active.").await;
    };
    let Some(stop) = app.follows.remove(id) else {
        return reply_private(ctx, click, "This follow has already stopped.").await;
    };
    // The follow edits its message itself (keeping its edit pace); the click only
    // needs acknowledging.
    let _ = stop.send(click.user.name.clone());
    click
        .create_response(ctx, CreateInteractionResponse::Acknowledge)
        .await?;
    a.audit(Outcome::Ok, "follow stopped".into()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
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
