//! A faithful fake of Discord's REST API and gateway for Klaxon's end-to-end tests.
//!
//! The bot under test talks to it exactly as it would to Discord (serenity with its
//! ratelimiter disabled, every call sent to `{api_url}/api/v10/...`, gateway URL from
//! `GET /api/v10/gateway`). The fake enforces Discord's limits and answers with
//! Discord's error bodies, and it keeps score: every limit the bot breaks is counted
//! in [`Violations`], every message it sends is recorded as an [`Output`].
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::time::Duration;
//! use klaxon_fake_discord::{FakeConfig, FakeDiscord, Member, SlashInvocation};
//!
//! let fake = FakeDiscord::start(FakeConfig::default()).await?;
//! // ... start the bot against fake.api_url() ...
//! fake.wait_ready(Duration::from_secs(10)).await?;
//! fake.wait_commands(123, Duration::from_secs(10)).await?;
//! let member = Member { user_id: 42, username: "alice".into(), roles: vec![] };
//! fake.slash(SlashInvocation::guild("ping", 111, member)).await?;
//! let reply = fake.next_output(Duration::from_secs(3)).await.expect("a reply");
//! assert!(reply.message.text().contains("pong"));
//! assert_eq!(fake.violations().total(), 0);
//! # Ok(()) }
//! ```

mod error;
mod gateway;
mod interactions;
mod limits;
mod model;
mod ratelimit;
mod rest;
mod setup;
mod state;

pub use setup::BOT_ROLE_ID;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::Value;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::state::State;

/// The application id the fake reports (READY, `/oauth2/applications/@me`).
pub const APP_ID: u64 = 2;
/// The bot user's id.
pub const BOT_USER_ID: u64 = 1;

#[derive(Clone, Debug)]
pub struct FakeConfig {
    /// The bot token; REST calls must send `Authorization: Bot <token>`.
    pub token: String,
    pub guild_id: u64,
    /// The guild's text channels; anything else is `Unknown Channel`.
    pub channels: Vec<u64>,
    /// Message creates allowed per channel per `channel_window`.
    pub channel_limit: u32,
    pub channel_window: Duration,
    /// Requests allowed per `global_window` across all routes (interaction callbacks
    /// and webhook-token routes are exempt).
    pub global_limit: u32,
    pub global_window: Duration,
    /// Time from dispatching INTERACTION_CREATE to the latest accepted callback.
    pub interaction_deadline: Duration,
    pub heartbeat_interval: Duration,
    /// How long `enforce_nonce` remembers a nonce: Discord says "a few minutes"; a
    /// test of what happens after the window sets it short.
    pub nonce_window: Duration,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            token: "fake-token".into(),
            guild_id: 123,
            channels: vec![111, 222, 333, 444],
            channel_limit: 5,
            channel_window: Duration::from_secs(5),
            global_limit: 50,
            global_window: Duration::from_secs(1),
            interaction_deadline: Duration::from_secs(3),
            heartbeat_interval: Duration::from_millis(41_250),
            nonce_window: Duration::from_secs(5 * 60),
        }
    }
}

/// A guild member who invokes commands or clicks buttons.
#[derive(Clone, Debug)]
pub struct Member {
    pub user_id: u64,
    pub username: String,
    pub roles: Vec<u64>,
}

/// A slash command (or autocomplete request) as a user would send it.
#[derive(Clone, Debug)]
pub struct SlashInvocation {
    pub name: String,
    /// Raw option objects, e.g. `{"name": "id", "type": 3, "value": "abc"}`; for
    /// autocomplete the focused one carries `"focused": true`.
    pub options: Vec<Value>,
    /// `None` makes it a DM invocation: `user` instead of `member`, no `guild_id`.
    pub member: Option<Member>,
    /// The DM user (id, username) when `member` is `None`.
    pub user_for_dm: Option<(u64, String)>,
    pub channel_id: u64,
    /// Defaults to the configured guild for guild invocations.
    pub guild_id: Option<u64>,
}

impl SlashInvocation {
    /// An invocation without options in a channel of the configured guild.
    pub fn guild(name: &str, channel_id: u64, member: Member) -> Self {
        SlashInvocation {
            name: name.into(),
            options: Vec::new(),
            member: Some(member),
            user_for_dm: None,
            channel_id,
            guild_id: None,
        }
    }

    pub fn with_options(mut self, options: Vec<Value>) -> Self {
        self.options = options;
        self
    }
}

/// A dispatched interaction.
#[derive(Clone, Debug)]
pub struct Interaction {
    pub id: u64,
    pub token: String,
    pub dispatched_at: Instant,
}

#[derive(Clone, Debug)]
pub enum OutputKind {
    /// The initial response (`POST /interactions/{id}/{token}/callback`).
    Callback {
        interaction_id: u64,
        callback_type: u8,
    },
    /// `POST /webhooks/{app}/{token}`; the first one after a type-5 defer replaces the
    /// "thinking" message (same message id), as Discord does.
    Followup {
        interaction_id: u64,
    },
    /// `PATCH /webhooks/{app}/{token}/messages/{@original|id}`; `message.id` tells
    /// which message was edited.
    EditOriginal {
        interaction_id: u64,
    },
    ChannelMessage {
        channel_id: u64,
    },
    ChannelEdit {
        channel_id: u64,
    },
}

/// Something the bot said, in the order the fake received it.
#[derive(Clone, Debug)]
pub struct Output {
    pub kind: OutputKind,
    pub at: Instant,
    /// The message as it stands after this output. For a type 5/6 defer it is empty
    /// (content ""), for type 8 `raw` is the callback data `{"choices": [...]}`, for
    /// type 9 `raw` is the modal.
    pub message: MessageRecord,
}

#[derive(Clone, Debug, Default)]
pub struct MessageRecord {
    pub id: u64,
    pub channel_id: u64,
    pub content: String,
    pub embeds: Vec<Value>,
    pub components: Vec<Value>,
    pub flags: u64,
    pub allowed_mentions: Option<Value>,
    pub attachments: Vec<Attachment>,
    pub nonce: Option<String>,
    /// The JSON body the bot sent (the callback's `data` for interaction responses).
    pub raw: Value,
}

impl MessageRecord {
    pub fn ephemeral(&self) -> bool {
        self.flags & limits::FLAG_EPHEMERAL != 0
    }

    /// What a reader sees: the content, then each embed's title, description, field
    /// names and values and footer, one per line.
    pub fn text(&self) -> String {
        let mut parts = vec![self.content.clone()];
        for embed in &self.embeds {
            let s = |v: &Value| v.as_str().map(str::to_string);
            parts.extend(s(&embed["title"]));
            parts.extend(s(&embed["description"]));
            for field in embed["fields"].as_array().into_iter().flatten() {
                parts.extend(s(&field["name"]));
                parts.extend(s(&field["value"]));
            }
            parts.extend(s(&embed["footer"]["text"]));
        }
        parts.retain(|p| !p.is_empty());
        parts.join("\n")
    }

    /// Every `custom_id` in the message's components.
    pub fn custom_ids(&self) -> Vec<String> {
        fn walk(components: &[Value], out: &mut Vec<String>) {
            for component in components {
                if let Some(id) = component["custom_id"].as_str() {
                    out.push(id.to_string());
                }
                if let Some(children) = component["components"].as_array() {
                    walk(children, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.components, &mut out);
        out
    }
}

#[derive(Clone, Debug)]
pub struct Attachment {
    pub filename: String,
    pub data: bytes::Bytes,
}

/// One REST request as the fake answered it.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    pub method: String,
    /// The full path, e.g. `/api/v10/channels/111/messages`.
    pub path: String,
    /// The query string without `?` ("" when absent).
    pub query: String,
    pub status: u16,
    pub at: Instant,
    pub body_size: usize,
}

/// Counts of everything the bot did wrong; `details` says what, one line each.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Violations {
    /// 413: a file over 10 MiB or a request over 25 MiB.
    pub too_large: u64,
    /// 400: any limit or shape violation (content, embeds, components, commands,
    /// callback type, empty message, malformed body).
    pub invalid_body: u64,
    /// 429 from a route bucket.
    pub rate_limited: u64,
    /// 429 from the global limit.
    pub global_rate_limited: u64,
    /// A callback after the deadline or for an unknown interaction, or an interaction
    /// webhook used before the initial response, after 15 minutes or with a bad token.
    pub late_interaction: u64,
    /// A second initial response (400 40060).
    pub double_ack: u64,
    /// Missing or wrong token (REST 401 or gateway close 4004).
    pub unauthorized: u64,
    /// A method + path the fake does not serve.
    pub unknown_route: u64,
    /// A message without `allowed_mentions` whose content mentions a user, a role,
    /// `@everyone` or `@here` (not an HTTP error; Discord would ping).
    pub would_ping: u64,
    pub details: Vec<String>,
}

impl Violations {
    pub fn total(&self) -> u64 {
        self.too_large
            + self.invalid_body
            + self.rate_limited
            + self.global_rate_limited
            + self.late_interaction
            + self.double_ack
            + self.unauthorized
            + self.unknown_route
            + self.would_ping
    }
}

/// Fault injection: requests whose path contains `path_contains` are answered with
/// `status` instead of being handled: the next `times` of them, or all of them until
/// `until` (an outage). 429 is a `shared`-scope rate limit (not the bot's fault, not
/// counted); 5xx are server errors.
#[derive(Clone, Debug)]
pub enum FaultRule {
    Status {
        path_contains: String,
        status: u16,
        times: u32,
    },
    Outage {
        path_contains: String,
        status: u16,
        until: std::time::Instant,
    },
    /// Discord that does not answer: matching requests wait until `until`, then are
    /// handled (a client that gave up meanwhile never learns that its message was
    /// posted; a retry with the same nonce must not post it twice).
    Hang {
        path_contains: String,
        until: std::time::Instant,
    },
}

/// State shared by the server tasks and the test's handles.
pub(crate) struct Shared {
    pub cfg: FakeConfig,
    pub api_url: String,
    state: Mutex<State>,
    /// Woken on every change tests may wait for (ready, commands, outputs).
    pub changed: Notify,
}

impl Shared {
    /// The state lock. Never held across an await; a panic while holding it (a bug
    /// in the fake) must not wedge every later test call, hence no poisoning.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Stops the server when the last [`FakeDiscord`] handle goes away.
struct ServerGuard {
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        self.server.abort();
        self.shared
            .lock()
            .close_gateway(1001, "fake: shutting down");
    }
}

/// A running fake Discord. Cheap to clone; the server stops when the last clone is
/// dropped.
#[derive(Clone)]
pub struct FakeDiscord {
    inner: Arc<Shared>,
    _guard: Arc<ServerGuard>,
}

impl FakeDiscord {
    /// Whether the bot was invited to the guild (default yes). Without it, every
    /// guild route answers 403 `Missing Access`, as Discord does.
    pub fn set_bot_in_guild(&self, yes: bool) {
        self.inner.lock().setup.bot_in_guild = yes;
    }

    /// A member of the guild who has not used a command yet (GET member finds them;
    /// DMs reach them).
    pub fn add_member(&self, member: Member) {
        self.inner
            .lock()
            .members
            .insert(member.user_id, (member, std::time::SystemTime::now()));
    }

    /// The roles a member holds now (after the bot gave or took some).
    pub fn member_roles(&self, user_id: u64) -> Vec<u64> {
        self.inner
            .lock()
            .members
            .get(&user_id)
            .map(|(m, _)| m.roles.clone())
            .unwrap_or_default()
    }

    /// The user turned off DMs from server members: the bot's DMs to them answer
    /// 403 50007 "Cannot send messages to this user".
    pub fn close_dms(&self, user_id: u64) {
        self.inner.lock().setup.dms_closed.insert(user_id);
    }

    /// Gives the bot's role Manage Roles and puts it at `position`: it may then give
    /// and take roles below that position (roles count up from 1 in id order).
    pub fn grant_manage_roles(&self, position: u64) {
        let mut s = self.inner.lock();
        s.setup.manage_roles = true;
        s.setup.bot_role_position = position;
    }

    /// Roles that exist in the guild (besides @everyone, the bot's managed role and
    /// the roles of members seen in interactions).
    pub fn add_roles(&self, ids: &[u64]) {
        self.inner.lock().setup.roles.extend_from_slice(ids);
    }

    /// The @everyone permission overwrite of a channel: Discord permission bits
    /// allowed and denied. Denying View Channel (1 << 10) hides the channel from
    /// the bot (403).
    pub fn set_everyone_overwrite(&self, channel: u64, allow: u64, deny: u64) {
        self.inner
            .lock()
            .setup
            .everyone
            .insert(channel, (allow, deny));
    }

    /// Starts the fake on `127.0.0.1` with an ephemeral port.
    pub async fn start(cfg: FakeConfig) -> anyhow::Result<FakeDiscord> {
        Self::start_on_port(cfg, 0).await
    }

    /// Starts the fake on `127.0.0.1:port` (0 = any free port).
    pub async fn start_on_port(cfg: FakeConfig, port: u16) -> anyhow::Result<FakeDiscord> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .context("binding the fake Discord listener")?;
        let addr = listener.local_addr()?;
        let api_url = format!("http://{addr}");
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(cfg.clone(), api_url.clone())),
            cfg,
            api_url,
            changed: Notify::new(),
        });
        let app = rest::router(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("fake Discord server stopped: {e}");
            }
        });
        Ok(FakeDiscord {
            _guard: Arc::new(ServerGuard {
                shared: shared.clone(),
                server,
            }),
            inner: shared,
        })
    }

    /// `http://127.0.0.1:PORT`, the base that replaces `https://discord.com`.
    pub fn api_url(&self) -> String {
        self.inner.api_url.clone()
    }

    /// `ws://127.0.0.1:PORT/gateway`.
    pub fn gateway_url(&self) -> String {
        gateway::gateway_url(&self.inner.api_url)
    }

    pub fn config(&self) -> &FakeConfig {
        &self.inner.cfg
    }

    /// Polls `check` under the state lock until it yields a value or `timeout` passes.
    async fn wait_for<T>(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&mut State) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Register for the wake-up before checking, so a change between the check
            // and the wait is not missed.
            let notified = self.inner.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(value) = check(&mut self.inner.lock()) {
                return Some(value);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Waits until a gateway session is connected and has received READY (or
    /// RESUMED after [`Self::drop_gateway`]).
    pub async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        self.wait_for(timeout, |s| s.gateway_ready().then_some(()))
            .await
            .with_context(|| format!("no gateway session became ready within {timeout:?}"))
    }

    /// Waits until the bot has registered (bulk overwritten) the guild's commands.
    pub async fn wait_commands(
        &self,
        guild_id: u64,
        timeout: Duration,
    ) -> anyhow::Result<Vec<Value>> {
        self.wait_for(timeout, |s| s.commands.get(&Some(guild_id)).cloned())
            .await
            .with_context(|| {
                format!("no commands registered in guild {guild_id} within {timeout:?}")
            })
    }

    fn changed(&self) {
        self.inner.changed.notify_waiters();
    }

    /// Dispatches a slash command (INTERACTION_CREATE type 2).
    pub async fn slash(&self, inv: SlashInvocation) -> anyhow::Result<Interaction> {
        let result = self.inner.lock().slash(inv, false);
        self.changed();
        result
    }

    /// Dispatches an autocomplete request (type 4); mark the focused option with
    /// `"focused": true`.
    pub async fn autocomplete(&self, inv: SlashInvocation) -> anyhow::Result<Interaction> {
        let result = self.inner.lock().slash(inv, true);
        self.changed();
        result
    }

    /// A message context-menu command ("Add to timeline") on any message.
    pub async fn message_command(
        &self,
        member: Member,
        name: &str,
        message_id: u64,
    ) -> anyhow::Result<Interaction> {
        let result = self.inner.lock().message_command(member, name, message_id);
        self.changed();
        result
    }

    /// A click on a button of a message the bot sent (type 3).
    pub async fn click(
        &self,
        user: Member,
        message: &MessageRecord,
        custom_id: &str,
    ) -> anyhow::Result<Interaction> {
        let result = self
            .inner
            .lock()
            .component(user, message.id, custom_id, Vec::new());
        self.changed();
        result
    }

    /// A click on a button of an earlier version of a message the bot sent: what a
    /// client that has not refreshed yet sends after the bot removed the button.
    pub async fn click_stale(
        &self,
        user: Member,
        seen: &MessageRecord,
        custom_id: &str,
    ) -> anyhow::Result<Interaction> {
        let result =
            self.inner
                .lock()
                .component_as_seen(user, seen.id, Some(seen), custom_id, Vec::new());
        self.changed();
        result
    }

    /// A choice in a select menu of a message the bot sent (type 3).
    pub async fn select(
        &self,
        user: Member,
        message: &MessageRecord,
        custom_id: &str,
        values: Vec<String>,
    ) -> anyhow::Result<Interaction> {
        let result = self
            .inner
            .lock()
            .component(user, message.id, custom_id, values);
        self.changed();
        result
    }

    /// Submits a modal the bot showed (type 5); `fields` are (custom_id, value).
    pub async fn submit_modal(
        &self,
        user: Member,
        channel_id: u64,
        custom_id: &str,
        fields: Vec<(String, String)>,
    ) -> anyhow::Result<Interaction> {
        let result = self
            .inner
            .lock()
            .modal_submit(user, channel_id, custom_id, fields);
        self.changed();
        result
    }

    /// Dispatches any gateway event. A `MESSAGE_CREATE` is also remembered as a
    /// user message, so the bot can reply to it, react to it or start a thread on it.
    pub async fn dispatch(&self, event_name: &str, d: Value) -> anyhow::Result<()> {
        let result = self.inner.lock().dispatch_raw(event_name, d);
        self.changed();
        result
    }

    /// The next output not yet taken, waiting up to `timeout` for one.
    pub async fn next_output(&self, timeout: Duration) -> Option<Output> {
        self.wait_for(timeout, |s| {
            let next = s.outputs.get(s.cursor).cloned()?;
            s.cursor += 1;
            Some(next)
        })
        .await
    }

    /// Outputs not yet taken by [`Self::next_output`] (does not take them).
    pub fn unread_outputs(&self) -> Vec<Output> {
        let state = self.inner.lock();
        state.outputs[state.cursor..].to_vec()
    }

    /// Marks every output so far as read.
    pub fn discard_outputs(&self) {
        let mut state = self.inner.lock();
        state.cursor = state.outputs.len();
    }

    /// Messages the bot posted in `channel_id` as they stand now (edits applied,
    /// deleted ones gone), oldest first. Includes ephemeral interaction responses
    /// (check [`MessageRecord::ephemeral`]), unlike `GET /channels/{id}/messages`.
    pub fn messages(&self, channel_id: u64) -> Vec<MessageRecord> {
        self.inner.lock().bot_messages(channel_id)
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.inner.lock().requests.clone()
    }

    pub fn violations(&self) -> Violations {
        self.inner.lock().violations.clone()
    }

    pub fn inject(&self, rule: FaultRule) {
        self.inner.lock().faults.push(rule);
    }

    /// Closes the gateway connection (code 4000, resumable). Events dispatched until
    /// the bot resumes are replayed to it on RESUME, as Discord does.
    pub async fn drop_gateway(&self) {
        self.inner
            .lock()
            .close_gateway(4000, "fake: connection dropped");
        self.changed();
    }
}
