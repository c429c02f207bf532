//! The fast test world: an [`App`] on a fresh SQLite file with the real
//! migrations, a chat sink that records everything, and a clock the test moves.
//!
//! Why: the end-to-end tests need dockerd, PostgreSQL and the fake Discord, and take
//! minutes; the rules of incidents, alert grouping, the outbox and maintenance need
//! none of that. A test here runs in milliseconds, through the same public functions
//! the commands and workers call, and asserts what chat would have shown: the
//! recording sink keeps each message as core meant it ([`RecordingChat::sent_to`])
//! and shows it as Discord would ([`RecordingChat::shown_to`]).
//!
//! In the style of bors' `run_test`:
//!
//! ```ignore
//! #[test]
//! fn acking_stops_the_pages() {
//!     run_test(|w| async move {
//!         let i = w.open_incident("Checkout down", Severity::P1).await?;
//!         ...
//!         Ok(())
//!     });
//! }
//! ```
//!
//! Why not `#[sqlx::test]`: it hands each test a pool of one concrete driver
//! (`SqlitePool`, `PgPool`) and needs `DATABASE_URL`, while [`Store`] wraps sqlx's
//! `Any` pool and sets its own connection pragmas (WAL, busy timeout, foreign
//! keys); a store built from sqlx's pool would not be the one the bot runs. So each
//! world opens its own SQLite file through [`Store::connect`] and migrates it, as
//! start-up does, and deletes it afterwards.
//!
//! Compiled for core's own tests and behind the `test-support` feature.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use crate::app::App;
use crate::builder::AppBuilder;
use crate::chat::{self, ChatError, ChatMessage, ChatSink, PostedMessage};
use crate::clock::Clock;
use crate::store::Store;

/// What the recording sink was asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// A new message: its channel, the id the sink gave it, the message.
    Send {
        channel: u64,
        id: u64,
        message: ChatMessage,
    },
    /// An edit of an earlier message.
    Edit {
        channel: u64,
        id: u64,
        message: ChatMessage,
    },
    /// A thread started in `channel`.
    Thread { channel: u64, id: u64, name: String },
    /// A text channel created in `guild`.
    Channel {
        guild: u64,
        id: u64,
        name: String,
        category: Option<u64>,
    },
    /// A role given (`added`) to or taken from a member.
    Role {
        guild: u64,
        user: u64,
        role: u64,
        added: bool,
    },
}

/// How the next send or edit fails.
#[derive(Debug)]
pub enum Failure {
    /// Refused before anything was posted.
    Before(ChatError),
    /// Posted, but the answer is lost (a timeout): the caller sees the error, and a
    /// retry with the same nonce must not post a second message.
    AfterDelivery(ChatError),
}

#[derive(Default)]
struct State {
    log: Vec<Recorded>,
    failures: VecDeque<Failure>,
    /// Nonces of the messages created, as Discord enforces them: a second create
    /// with a nonce answers with the first message's id.
    nonces: HashMap<String, u64>,
    posted: HashMap<(u64, u64), PostedMessage>,
    /// Direct-message channels, by user.
    dms: HashMap<u64, u64>,
    /// Users who closed their DMs: a post into their DM channel is refused (50007).
    dms_closed: std::collections::HashSet<u64>,
    /// Users who are not members of the guild (everyone else is).
    strangers: std::collections::HashSet<u64>,
    /// Roles each member holds, as given by `add_role`.
    roles: HashMap<u64, std::collections::BTreeSet<u64>>,
}

/// A [`ChatSink`] that keeps everything it is asked to do, for a test to read.
/// Ids count up from 1,000 (threads and channels share the sequence).
pub struct RecordingChat {
    state: Mutex<State>,
    next_id: AtomicU64,
}

impl Default for RecordingChat {
    fn default() -> Self {
        RecordingChat {
            state: Mutex::default(),
            next_id: AtomicU64::new(1_000),
        }
    }
}

impl RecordingChat {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn next(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::SeqCst)
    }

    /// Everything recorded, in order.
    pub fn records(&self) -> Vec<Recorded> {
        self.state().log.clone()
    }

    /// Messages created, with their channels, in order.
    pub fn sent(&self) -> Vec<(u64, ChatMessage)> {
        self.records()
            .into_iter()
            .filter_map(|r| match r {
                Recorded::Send {
                    channel, message, ..
                } => Some((channel, message)),
                _ => None,
            })
            .collect()
    }

    /// Messages created in one channel, in order.
    pub fn sent_to(&self, channel: u64) -> Vec<ChatMessage> {
        self.sent()
            .into_iter()
            .filter(|(c, _)| *c == channel)
            .map(|(_, m)| m)
            .collect()
    }

    /// The content of the messages created in one channel, as Discord shows it
    /// (mentions and times in Discord's syntax, the paged role first): the same
    /// strings the bot sends, rendered by [`chat::discord::content`].
    pub fn shown_to(&self, channel: u64) -> Vec<String> {
        self.sent_to(channel)
            .iter()
            .map(chat::discord::content)
            .collect()
    }

    /// Edits, as (channel, message id, new message), in order.
    pub fn edits(&self) -> Vec<(u64, u64, ChatMessage)> {
        self.records()
            .into_iter()
            .filter_map(|r| match r {
                Recorded::Edit {
                    channel,
                    id,
                    message,
                } => Some((channel, id, message)),
                _ => None,
            })
            .collect()
    }

    /// Threads started, as (parent channel, thread id, name).
    pub fn threads(&self) -> Vec<(u64, u64, String)> {
        self.records()
            .into_iter()
            .filter_map(|r| match r {
                Recorded::Thread { channel, id, name } => Some((channel, id, name)),
                _ => None,
            })
            .collect()
    }

    /// Forgets what was recorded (the failures queued stay).
    pub fn clear(&self) {
        self.state().log.clear();
    }

    /// The next send or edit fails so; several calls queue several failures.
    pub fn fail_next(&self, failure: Failure) {
        self.state().failures.push_back(failure);
    }

    /// Discord's nonce window passes: the nonces of earlier creates are forgotten,
    /// so a create sent again with one posts a second message (as Discord does after
    /// "a few minutes").
    pub fn forget_nonces(&self) {
        self.state().nonces.clear();
    }

    /// A message someone posted, for [`ChatSink::fetch`] to return.
    /// The user refuses direct messages: posts into their DM channel fail with
    /// Discord's 50007.
    pub fn close_dms(&self, user: u64) {
        self.state().dms_closed.insert(user);
    }

    /// The user is not a member of the guild.
    pub fn not_a_member(&self, user: u64) {
        self.state().strangers.insert(user);
    }

    /// The roles a member holds (given by `add_role`, not yet removed).
    pub fn roles_of(&self, user: u64) -> Vec<u64> {
        self.state()
            .roles
            .get(&user)
            .map(|r| r.iter().copied().collect())
            .unwrap_or_default()
    }

    pub fn post_by_member(&self, message: PostedMessage) {
        self.state()
            .posted
            .insert((message.channel_id, message.id), message);
    }
}

#[async_trait]
impl ChatSink for RecordingChat {
    async fn send(&self, channel_id: u64, message: ChatMessage) -> Result<u64, ChatError> {
        let mut s = self.state();
        let failure = s.failures.pop_front();
        if let Some(Failure::Before(e)) = failure {
            return Err(e);
        }
        let closed_dm = s
            .dms
            .iter()
            .any(|(user, dm)| *dm == channel_id && s.dms_closed.contains(user));
        if closed_dm {
            return Err(ChatError::Rejected(format!(
                "{} Cannot send messages to this user",
                chat::DM_CLOSED
            )));
        }
        if let Some(id) = message.nonce.as_ref().and_then(|n| s.nonces.get(n)) {
            return Ok(*id);
        }
        let id = self.next();
        if let Some(n) = &message.nonce {
            s.nonces.insert(n.clone(), id);
        }
        s.log.push(Recorded::Send {
            channel: channel_id,
            id,
            message,
        });
        match failure {
            Some(Failure::AfterDelivery(e)) => Err(e),
            _ => Ok(id),
        }
    }

    async fn edit(
        &self,
        channel_id: u64,
        message_id: u64,
        message: ChatMessage,
    ) -> Result<(), ChatError> {
        let mut s = self.state();
        let failure = s.failures.pop_front();
        if let Some(Failure::Before(e)) = failure {
            return Err(e);
        }
        s.log.push(Recorded::Edit {
            channel: channel_id,
            id: message_id,
            message,
        });
        match failure {
            Some(Failure::AfterDelivery(e)) => Err(e),
            _ => Ok(()),
        }
    }

    async fn create_thread(&self, channel_id: u64, name: &str) -> Result<u64, ChatError> {
        if let Some(Failure::Before(e)) = self.state().failures.pop_front() {
            return Err(e);
        }
        let id = self.next();
        self.state().log.push(Recorded::Thread {
            channel: channel_id,
            id,
            name: name.to_string(),
        });
        Ok(id)
    }

    async fn create_channel(
        &self,
        guild_id: u64,
        name: &str,
        category: Option<u64>,
    ) -> Result<u64, ChatError> {
        if let Some(Failure::Before(e)) = self.state().failures.pop_front() {
            return Err(e);
        }
        let id = self.next();
        self.state().log.push(Recorded::Channel {
            guild: guild_id,
            id,
            name: name.to_string(),
            category,
        });
        Ok(id)
    }

    async fn fetch(&self, channel_id: u64, message_id: u64) -> Result<PostedMessage, ChatError> {
        self.state()
            .posted
            .get(&(channel_id, message_id))
            .cloned()
            .ok_or(ChatError::UnknownChannel)
    }

    async fn open_dm(&self, user_id: u64) -> Result<u64, ChatError> {
        if let Some(id) = self.state().dms.get(&user_id) {
            return Ok(*id);
        }
        let id = self.next();
        self.state().dms.insert(user_id, id);
        Ok(id)
    }

    async fn is_member(&self, _guild_id: u64, user_id: u64) -> Result<bool, ChatError> {
        Ok(!self.state().strangers.contains(&user_id))
    }

    async fn member_roles(&self, _guild: u64, user: u64) -> Result<Option<Vec<u64>>, ChatError> {
        let s = self.state();
        if s.strangers.contains(&user) {
            return Ok(None);
        }
        Ok(Some(
            s.roles
                .get(&user)
                .map(|r| r.iter().copied().collect())
                .unwrap_or_default(),
        ))
    }

    async fn add_role(&self, guild: u64, user: u64, role: u64, _: &str) -> Result<(), ChatError> {
        let mut s = self.state();
        s.roles.entry(user).or_default().insert(role);
        s.log.push(Recorded::Role {
            guild,
            user,
            role,
            added: true,
        });
        Ok(())
    }

    async fn remove_role(
        &self,
        guild: u64,
        user: u64,
        role: u64,
        _: &str,
    ) -> Result<(), ChatError> {
        let mut s = self.state();
        s.roles.entry(user).or_default().remove(&role);
        s.log.push(Recorded::Role {
            guild,
            user,
            role,
            added: false,
        });
        Ok(())
    }

    /// What Klaxon created in the channel, newest first, as Discord lists it: the
    /// content as shown and the embeds' titles, no nonce.
    async fn recent_own(
        &self,
        channel_id: u64,
        limit: u8,
    ) -> Result<Vec<PostedMessage>, ChatError> {
        let s = self.state();
        Ok(s.log
            .iter()
            .rev()
            .filter_map(|r| match r {
                Recorded::Send {
                    channel,
                    id,
                    message,
                } if *channel == channel_id => Some(PostedMessage {
                    id: *id,
                    channel_id,
                    content: chat::truncate(
                        &chat::discord::content(message),
                        chat::limits::CONTENT,
                    ),
                    embed_titles: message.embeds.iter().map(|e| e.title.clone()).collect(),
                    ..Default::default()
                }),
                _ => None,
            })
            .take(usize::from(limit))
            .collect())
    }
}

/// A SQLite file (and its WAL companions), removed with its [`World`].
struct TempDb(PathBuf);

impl TempDb {
    fn new() -> TempDb {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "klaxon-world-{}-{}-{}.db",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        TempDb(std::env::temp_dir().join(name))
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.0.display())
    }
}

impl TempDb {
    fn remove(&self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.0.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The channels a world's app posts to.
pub const INCIDENTS_CHANNEL: u64 = 100;
pub const ALERTS_CHANNEL: u64 = 200;
pub const AUDIT_CHANNEL: u64 = 300;

async fn open_store(db: &TempDb) -> anyhow::Result<Store> {
    let store = Store::connect(&db.url()).await?;
    store.migrate().await?;
    Ok(store)
}

/// One test's application, its recorded chat and its clock.
pub struct World {
    pub app: Arc<App>,
    pub chat: Arc<RecordingChat>,
    pub clock: Clock,
    db: TempDb,
}

/// A world is one whole: a test that uses only some of its fields still keeps
/// its database file until the end. (An `async move` block captures the fields it
/// uses, so without this `Drop` the file would be deleted as the test starts.)
impl Drop for World {
    fn drop(&mut self) {
        self.db.remove();
    }
}

impl World {
    /// Moves the app's clock forward.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Runs the posts worker once, as the leader's would after a wake: what Klaxon
    /// posts on its own initiative goes through the posts outbox, so a test reads
    /// the chat after this.
    pub async fn deliver(&self) -> anyhow::Result<crate::delivery::Delivered> {
        Ok(crate::delivery::deliver_due(&self.app).await?)
    }
}

/// A world with the default app: the channels above, no services.
pub async fn world() -> anyhow::Result<World> {
    world_with(|b| b).await
}

/// A world whose app the test adjusts (services, routes, severities, ...). The
/// chat sink, the clock and the channels are set before `adjust` runs.
pub async fn world_with(adjust: impl FnOnce(AppBuilder) -> AppBuilder) -> anyhow::Result<World> {
    let db = TempDb::new();
    let store = match open_store(&db).await {
        Ok(s) => s,
        Err(e) => {
            db.remove();
            return Err(e);
        }
    };
    let chat = Arc::new(RecordingChat::default());
    let clock = Clock::default();
    let builder = App::builder()
        .chat(Arc::clone(&chat) as Arc<dyn ChatSink>)
        .clock(clock.clone())
        .incidents_channel(Some(INCIDENTS_CHANNEL))
        .alerts_channel(Some(ALERTS_CHANNEL))
        .audit_channel(Some(AUDIT_CHANNEL));
    let app = Arc::new(adjust(builder).build(store));
    Ok(World {
        app,
        chat,
        clock,
        db,
    })
}

/// Runs one test on a fresh [`world`], on its own runtime; an error fails the
/// test with its whole chain of causes.
pub fn run_test<F, Fut>(test: F)
where
    F: FnOnce(World) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    run_test_with(|b| b, test)
}

/// [`run_test`] on a world adjusted as [`world_with`] does.
pub fn run_test_with<F, Fut>(adjust: impl FnOnce(AppBuilder) -> AppBuilder, test: F)
where
    F: FnOnce(World) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => panic!("no tokio runtime for the test: {e}"),
    };
    let result = runtime.block_on(async move {
        let w = world_with(adjust).await?;
        let store = w.app.store.clone();
        let out = test(w).await;
        store.close().await;
        out
    });
    if let Err(e) = result {
        panic!("{e:#}");
    }
}
