//! Follow mode: one message in a thread, edited with new lines at most every
//! [`EDIT_EVERY`], with a Stop button, until the time is up, a member stops it or
//! the container's output ends.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use klaxon_core::chat::{chars, limits, neutralize, truncate};
use klaxon_core::logs::{self, LogLine, Query, Redactor};
use poise::CreateReply;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::serenity::{
    self, AutoArchiveDuration, ButtonStyle, ChannelId, CreateActionRow, CreateAllowedMentions,
    CreateButton, CreateMessage, CreateThread, EditMessage, MessageId,
};
use crate::{Context, Data, Error};

use super::render::{compact, count, filters, header, tail_block};
use super::{EDIT_EVERY, FOLLOW_KEEP, PREFIX};

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

pub(super) async fn start_follow(
    ctx: Context<'_>,
    app: Data,
    service: String,
    q: Query,
    redactor: Arc<Redactor>,
    public: bool,
) -> Result<(), Error> {
    let engine = super::engine(&app, &service)?;
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
        engine,
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
    /// The engine the service runs on.
    engine: klaxon_core::docker::DockerClient,
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
            self.engine.clone(),
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
