//! The outbox to chat: one task per channel, each sending its channel's messages
//! in priority order, creating a group's messages or editing them in place. What
//! to retry, park or skip is decided here; the SQL is [`crate::store::outbox`].

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use crate::app::App;
use crate::chat::{self, ChatError, ChatMessage};
use crate::store::outbox;
use crate::store::StoreError;

/// Creates per channel per window that are not P1: one slot of Discord's 5 per 5 s
/// stays free, so a P1 goes out within about a second even behind a burst.
const NON_P1_PER_WINDOW: usize = 4;
const CHANNEL_WINDOW: Duration = Duration::from_secs(5);

type Recent = Arc<Mutex<HashMap<u64, VecDeque<Instant>>>>;

/// Delivers the outbox: one task per channel with something due, each sending its
/// channel's messages in priority order (re-read after every send, so a P1 that
/// arrives mid-burst goes next), channels independent of one another.
#[derive(Default)]
pub struct Sender {
    running: HashMap<u64, tokio::task::JoinHandle<()>>,
    recent: Recent,
}

impl Sender {
    /// Starts a task for every channel with due messages and none running.
    pub async fn tick(&mut self, app: &Arc<App>) -> Result<(), StoreError> {
        self.running.retain(|_, t| !t.is_finished());
        for channel in outbox::due_channels(&app.store, app.clock.now_ms()).await? {
            if self.running.contains_key(&channel) {
                continue;
            }
            let (app, recent) = (Arc::clone(app), Arc::clone(&self.recent));
            let task = tokio::spawn(async move {
                if let Err(e) = deliver_channel(&app, channel, &recent).await {
                    warn!(error = %e, channel, "alert delivery stopped; retrying");
                }
            });
            self.running.insert(channel, task);
        }
        Ok(())
    }

    /// Waits for the running channel tasks (shutdown, tests).
    /// Cancelled (a shutdown's time is up), the tasks still being waited for stay
    /// here, so that dropping the sender aborts them rather than detaching them.
    pub async fn drain(&mut self) {
        for t in self.running.values_mut() {
            if !t.is_finished() {
                let _ = t.await;
            }
        }
        self.running.clear();
    }
}

/// A sender that goes away (the leader stepped down, the worker was stopped) takes
/// its channel tasks with it: another replica may be sending already.
impl Drop for Sender {
    fn drop(&mut self) {
        for (_, t) in self.running.drain() {
            t.abort();
        }
    }
}

/// What one channel task did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub sent: usize,
    pub superseded: usize,
    pub retrying: usize,
    pub parked: usize,
}

async fn deliver_channel(
    app: &App,
    channel: u64,
    recent: &Recent,
) -> Result<Delivered, StoreError> {
    let store = &app.store;
    let mut out = Delivered::default();
    loop {
        if app.chat_unauthorized.load(Ordering::Relaxed) {
            break; // kept pending: delivered after a restart with a good token
        }
        let now_ms = app.clock.now_ms();
        let Some(r) = outbox::next_pending(store, channel, now_ms).await? else {
            break;
        };
        let (id, group_id, part, attempts, priority) =
            (r.id, r.group_id, r.part, r.attempts, r.priority);
        // Only the newest body of a message is worth sending.
        if outbox::has_newer(store, group_id, part, id).await? {
            outbox::mark(store, id, "superseded", "", now_ms).await?;
            out.superseded += 1;
            continue;
        }
        let message: ChatMessage = match serde_json::from_str(&r.body) {
            Ok(m) => m,
            Err(e) => {
                outbox::mark(
                    store,
                    id,
                    "parked",
                    &format!("unreadable body: {e}"),
                    now_ms,
                )
                .await?;
                out.parked += 1;
                continue;
            }
        };
        let ids = outbox::message_ids(store, group_id).await?;
        let ids: Vec<u64> = ids.split(',').filter_map(|s| s.parse().ok()).collect();
        let index = part as usize;
        if index > ids.len() {
            // An earlier part is not created yet (it is retrying): wait for it.
            tokio::time::sleep(Duration::from_millis(250)).await;
            break;
        }
        let create = index == ids.len();
        if create && priority > 1 {
            let wait = {
                let mut map = recent.lock().unwrap_or_else(|p| p.into_inner());
                let q = map.entry(channel).or_default();
                while q.front().is_some_and(|t| t.elapsed() >= CHANNEL_WINDOW) {
                    q.pop_front();
                }
                (q.len() >= NON_P1_PER_WINDOW)
                    .then(|| {
                        q.front()
                            .map(|t| CHANNEL_WINDOW.saturating_sub(t.elapsed()))
                    })
                    .flatten()
            };
            if let Some(w) = wait {
                // Short naps: a P1 arriving meanwhile is picked up first.
                tokio::time::sleep(w.min(Duration::from_millis(200))).await;
                continue;
            }
        }
        let result = match ids.get(index) {
            Some(existing) => app
                .chat
                .edit(channel, *existing, message)
                .await
                .map(|_| None),
            None => app.chat.send(channel, message).await.map(Some),
        };
        match result {
            Ok(created) => {
                let mut joined_ids = None;
                if let Some(new_id) = created {
                    recent
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(channel)
                        .or_default()
                        .push_back(Instant::now());
                    let mut ids = ids.clone();
                    ids.push(new_id);
                    let joined: Vec<String> = ids.iter().map(u64::to_string).collect();
                    joined_ids = Some(joined.join(","));
                }
                let first = created.is_some() && index == 0;
                outbox::record_sent(store, id, group_id, joined_ids, now_ms).await?;
                out.sent += 1;
                crate::observe::delivered(app, "alert", r.created_ms, first.then_some(group_id))
                    .await;
            }
            Err(ChatError::UnknownChannel) => {
                // The channel is gone or hidden: park its messages and say so; the rest
                // of this channel's queue would only fail the same way.
                warn!(
                    channel,
                    "alert channel unknown to Discord; its messages are parked"
                );
                outbox::park_channel(store, channel).await?;
                out.parked += 1;
                break;
            }
            Err(ChatError::Unauthorized) => {
                error!("Discord refused Klaxon's token (401): alert delivery stopped; nothing is lost, restart Klaxon with a valid token");
                app.chat_unauthorized.store(true, Ordering::Relaxed);
                break;
            }
            Err(ChatError::Rejected(why)) => {
                warn!(channel, outbox = id, %why, "Discord refused an alert message; parked");
                outbox::mark(store, id, "parked", &why, now_ms).await?;
                out.parked += 1;
            }
            Err(ChatError::Unavailable(why)) => {
                // Backs off 1 s, 2 s, 4 s ... up to a minute, for the whole channel: a
                // Discord that is down is down for every message, and a new one must
                // not start its own back-off from a second (a burst of attempts). The
                // channel's order is kept by stopping here.
                let worst = outbox::worst_attempts(store, channel).await?;
                let wait = (1_000_i64 << worst.max(attempts).clamp(0, 6)).min(60_000);
                outbox::retry_later(
                    store,
                    channel,
                    id,
                    now_ms + wait,
                    &chat::truncate(&why, 300),
                )
                .await?;
                info!(channel, outbox = id, %why, "alert message will be retried");
                out.retrying += 1;
                break;
            }
        }
    }
    if out.sent + out.parked + out.retrying > 0 {
        info!(
            channel,
            sent = out.sent,
            superseded = out.superseded,
            retrying = out.retrying,
            parked = out.parked,
            "alert messages"
        );
    }
    Ok(out)
}
