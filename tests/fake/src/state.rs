//! Everything the fake remembers: channels, messages, commands, members, the output
//! log, requests and violations. All of it sits behind one lock in [`crate::Shared`].

use std::collections::{BTreeMap, HashMap};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use serde_json::{json, Value};

use crate::error::{ApiError, FormErrors, ViolationKind};
use crate::gateway::GatewayState;
use crate::interactions::{InteractionState, ShownModal};
use crate::limits::{self, FLAG_LOADING, FLAG_SUPPRESS_EMBEDS};
use crate::model::{self, ChannelInfo, IdGen};
use crate::ratelimit::RateLimiter;
use crate::{
    Attachment, FakeConfig, FaultRule, Member, MessageRecord, Output, OutputKind, RequestRecord,
    Violations, APP_ID,
};

/// A file part of a multipart request.
#[derive(Clone, Debug)]
pub(crate) struct Upload {
    /// `n` of a `files[n]` part, which `attachments[].id` refers to.
    pub index: Option<u64>,
    pub filename: String,
    pub content_type: Option<String>,
    pub data: Bytes,
}

/// A request body: the JSON (or `payload_json`) and any uploaded files.
#[derive(Clone, Debug, Default)]
pub(crate) struct Incoming {
    pub json: Value,
    pub files: Vec<Upload>,
}

#[derive(Clone, Debug)]
pub(crate) struct StoredAttachment {
    pub id: u64,
    pub filename: String,
    pub content_type: Option<String>,
    pub description: Option<String>,
    pub data: Bytes,
}

#[derive(Clone, Debug)]
pub(crate) struct StoredMessage {
    pub record: MessageRecord,
    pub attachments: Vec<StoredAttachment>,
    pub guild_id: Option<u64>,
    /// False for user messages remembered from a dispatched MESSAGE_CREATE.
    pub by_bot: bool,
    pub created: SystemTime,
    pub edited: Option<SystemTime>,
    /// Discord message type: 0 default, 19 reply, 20 chat input command.
    pub kind: u8,
    /// The interaction this message answers (sent through its webhook).
    pub interaction: Option<u64>,
    pub message_reference: Option<Value>,
    pub reactions: Vec<String>,
    pub tts: bool,
    /// Whether a thread was started from this message.
    pub has_thread: bool,
}

pub(crate) struct State {
    pub cfg: FakeConfig,
    pub api_url: String,
    pub ids: IdGen,
    pub ratelimits: RateLimiter,
    pub channels: HashMap<u64, ChannelInfo>,
    /// DM channel per user id.
    pub dm_channels: HashMap<u64, u64>,
    /// By message id; ids increase, so this is creation order.
    pub messages: BTreeMap<u64, StoredMessage>,
    /// `(channel, nonce)` -> (message, when) for `enforce_nonce`.
    pub nonces: HashMap<(u64, String), (u64, Instant)>,
    pub interactions: HashMap<u64, InteractionState>,
    /// Interaction token -> interaction id.
    pub tokens: HashMap<String, u64>,
    pub modals: Vec<ShownModal>,
    /// Registered commands: `None` = global, `Some(guild)` = guild commands.
    pub commands: HashMap<Option<u64>, Vec<Value>>,
    /// Members seen in interactions, with their join time.
    pub members: BTreeMap<u64, (Member, SystemTime)>,
    pub outputs: Vec<Output>,
    pub cursor: usize,
    pub requests: Vec<RequestRecord>,
    pub violations: Violations,
    pub faults: Vec<FaultRule>,
    pub gateway: GatewayState,
    pub setup: crate::setup::GuildSetup,
}

impl State {
    pub fn new(cfg: FakeConfig, api_url: String) -> State {
        let now = SystemTime::now();
        let channels = cfg
            .channels
            .iter()
            .map(|&id| {
                let info = ChannelInfo {
                    id,
                    kind: 0,
                    guild_id: Some(cfg.guild_id),
                    parent_id: None,
                    name: format!("channel-{id}"),
                    auto_archive: 0,
                    recipient: None,
                    created: now,
                };
                (id, info)
            })
            .collect();
        State {
            ratelimits: RateLimiter::new(
                cfg.channel_limit,
                cfg.channel_window,
                cfg.global_limit,
                cfg.global_window,
            ),
            cfg,
            api_url,
            ids: IdGen::default(),
            channels,
            dm_channels: HashMap::new(),
            messages: BTreeMap::new(),
            nonces: HashMap::new(),
            interactions: HashMap::new(),
            tokens: HashMap::new(),
            modals: Vec::new(),
            commands: HashMap::new(),
            members: BTreeMap::new(),
            outputs: Vec::new(),
            cursor: 0,
            requests: Vec::new(),
            violations: Violations::default(),
            faults: Vec::new(),
            gateway: GatewayState::default(),
            setup: crate::setup::GuildSetup::default(),
        }
    }

    pub fn count(&mut self, kind: ViolationKind, detail: impl Into<String>) {
        let v = &mut self.violations;
        let (counter, label) = match kind {
            ViolationKind::TooLarge => (&mut v.too_large, "too large"),
            ViolationKind::InvalidBody => (&mut v.invalid_body, "invalid body"),
            ViolationKind::RateLimited => (&mut v.rate_limited, "rate limited"),
            ViolationKind::GlobalRateLimited => (&mut v.global_rate_limited, "global rate limited"),
            ViolationKind::LateInteraction => (&mut v.late_interaction, "late interaction"),
            ViolationKind::DoubleAck => (&mut v.double_ack, "double ack"),
            ViolationKind::Unauthorized => (&mut v.unauthorized, "unauthorized"),
            ViolationKind::UnknownRoute => (&mut v.unknown_route, "unknown route"),
            ViolationKind::WouldPing => (&mut v.would_ping, "would ping"),
        };
        *counter += 1;
        let line = format!("{label}: {}", detail.into());
        tracing::warn!("fake Discord violation: {line}");
        v.details.push(line);
    }

    pub fn output(&mut self, kind: OutputKind, message: MessageRecord) {
        self.outputs.push(Output {
            kind,
            at: Instant::now(),
            message,
        });
    }

    pub fn channel(&self, id: u64) -> Result<&ChannelInfo, ApiError> {
        self.channels.get(&id).ok_or_else(ApiError::unknown_channel)
    }

    /// The DM channel with `user`, created on first use.
    pub fn dm_channel(&mut self, user_id: u64, username: &str) -> u64 {
        if let Some(&id) = self.dm_channels.get(&user_id) {
            return id;
        }
        let id = self.ids.next();
        self.register_dm(id, user_id, username);
        id
    }

    /// Makes `channel_id` known as the DM channel with `user`.
    pub fn register_dm(&mut self, channel_id: u64, user_id: u64, username: &str) {
        self.dm_channels.insert(user_id, channel_id);
        self.channels
            .entry(channel_id)
            .or_insert_with(|| ChannelInfo {
                id: channel_id,
                kind: 1,
                guild_id: None,
                parent_id: None,
                name: String::new(),
                auto_archive: 0,
                recipient: Some((user_id, username.to_string())),
                created: SystemTime::now(),
            });
    }

    pub fn bot_messages(&self, channel_id: u64) -> Vec<MessageRecord> {
        self.messages
            .values()
            .filter(|m| m.by_bot && m.record.channel_id == channel_id)
            .map(|m| m.record.clone())
            .collect()
    }

    /// A stored message of `channel_id`; ephemeral ones only when `ephemeral_ok`
    /// (Discord does not serve them on channel routes).
    pub fn message_in(
        &self,
        channel_id: u64,
        message_id: u64,
        ephemeral_ok: bool,
    ) -> Result<&StoredMessage, ApiError> {
        self.messages
            .get(&message_id)
            .filter(|m| m.record.channel_id == channel_id)
            .filter(|m| ephemeral_ok || !m.record.ephemeral())
            .ok_or_else(ApiError::unknown_message)
    }

    /// Builds (does not store) a bot message from a request body. `allowed_flags`
    /// masks the flags the route accepts; others are dropped, as Discord drops them.
    pub fn build_message(
        &mut self,
        channel_id: u64,
        incoming: Incoming,
        allowed_flags: u64,
        kind: u8,
        interaction: Option<u64>,
    ) -> StoredMessage {
        let Incoming {
            json: payload,
            files,
        } = incoming;
        let attachments = build_attachments(&mut self.ids, &payload, files, Vec::new());
        let message_reference = payload
            .get("message_reference")
            .filter(|v| !v.is_null())
            .cloned();
        let kind = if message_reference.is_some() {
            19
        } else {
            kind
        };
        let record = MessageRecord {
            id: self.ids.next(),
            channel_id,
            content: payload["content"].as_str().unwrap_or_default().to_string(),
            embeds: embeds_of(&payload["embeds"]),
            components: payload["components"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            flags: payload["flags"].as_u64().unwrap_or(0) & allowed_flags,
            allowed_mentions: payload
                .get("allowed_mentions")
                .filter(|v| !v.is_null())
                .cloned(),
            attachments: public_attachments(&attachments),
            nonce: match &payload["nonce"] {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            },
            raw: payload.clone(),
        };
        StoredMessage {
            record,
            attachments,
            guild_id: self.channels.get(&channel_id).and_then(|c| c.guild_id),
            by_bot: true,
            created: SystemTime::now(),
            edited: None,
            kind,
            interaction,
            message_reference,
            reactions: Vec::new(),
            tts: payload["tts"].as_bool().unwrap_or(false),
            has_thread: false,
        }
    }

    /// Applies an edit body to a stored message: present fields replace, absent ones
    /// stay. Clears the "thinking" state of a deferred response.
    pub fn apply_edit(&mut self, message_id: u64, incoming: Incoming) -> Result<(), ApiError> {
        let Incoming { json: p, files } = incoming;
        let ids = &mut self.ids;
        let msg = self
            .messages
            .get_mut(&message_id)
            .ok_or_else(ApiError::unknown_message)?;
        let record = &mut msg.record;
        if let Some(content) = p.get("content") {
            record.content = content.as_str().unwrap_or_default().to_string();
        }
        if let Some(embeds) = p.get("embeds") {
            record.embeds = embeds_of(embeds);
        }
        if let Some(components) = p.get("components") {
            record.components = components.as_array().cloned().unwrap_or_default();
        }
        if let Some(flags) = p["flags"].as_u64() {
            // Only SUPPRESS_EMBEDS may change after sending.
            record.flags = (record.flags & !FLAG_SUPPRESS_EMBEDS) | (flags & FLAG_SUPPRESS_EMBEDS);
        }
        record.flags &= !FLAG_LOADING;
        if let Some(mentions) = p.get("allowed_mentions").filter(|v| !v.is_null()) {
            record.allowed_mentions = Some(mentions.clone());
        }
        if p.get("attachments").is_some() || !files.is_empty() {
            let existing = std::mem::take(&mut msg.attachments);
            msg.attachments = build_attachments(ids, &p, files, existing);
            msg.record.attachments = public_attachments(&msg.attachments);
        }
        msg.record.raw = p;
        msg.edited = Some(SystemTime::now());
        Ok(())
    }

    /// Counts a would-be ping: no `allowed_mentions` and the content mentions someone.
    pub fn note_pings(&mut self, record: &MessageRecord, route: &str) {
        if record.allowed_mentions.is_some() || record.ephemeral() {
            return;
        }
        let m = limits::parse_mentions(&record.content);
        if !m.is_empty() {
            self.count(
                ViolationKind::WouldPing,
                format!(
                    "{route}: message {} has no allowed_mentions and mentions users {:?}, roles {:?}{}",
                    record.id,
                    m.users,
                    m.roles,
                    if m.everyone { ", @everyone/@here" } else { "" }
                ),
            );
        }
    }

    /// The message object Discord returns for a stored message.
    pub fn message_json(&self, m: &StoredMessage) -> Value {
        if !m.by_bot {
            return m.record.raw.clone();
        }
        let r = &m.record;
        let pinged = limits::pinged(
            &limits::parse_mentions(&r.content),
            r.allowed_mentions.as_ref(),
        );
        let mentions: Vec<Value> = pinged
            .users
            .iter()
            .map(|id| match self.members.get(id) {
                Some((member, _)) => model::user(*id, &member.username),
                None => model::user(*id, &format!("user-{id}")),
            })
            .collect();
        let attachments: Vec<Value> = m
            .attachments
            .iter()
            .map(|a| {
                let url = format!(
                    "{}/attachments/{}/{}/{}",
                    self.api_url, r.channel_id, a.id, a.filename
                );
                json!({
                    "id": a.id.to_string(),
                    "filename": a.filename,
                    "description": a.description,
                    "content_type": a.content_type,
                    "size": a.data.len(),
                    "url": url,
                    "proxy_url": url,
                })
            })
            .collect();
        let reactions: Vec<Value> = m
            .reactions
            .iter()
            .map(|emoji| {
                json!({
                    "count": 1,
                    "count_details": { "burst": 0, "normal": 1 },
                    "me": true,
                    "me_burst": false,
                    "emoji": emoji_json(emoji),
                    "burst_colors": [],
                })
            })
            .collect();
        let mut out = json!({
            "id": r.id.to_string(),
            "channel_id": r.channel_id.to_string(),
            "author": model::bot_user(),
            "content": r.content,
            "timestamp": model::timestamp(m.created),
            "edited_timestamp": m.edited.map(model::timestamp),
            "tts": m.tts,
            "mention_everyone": pinged.everyone,
            "mentions": mentions,
            "mention_roles": pinged.roles.iter().map(u64::to_string).collect::<Vec<_>>(),
            "attachments": attachments,
            "embeds": r.embeds,
            "reactions": reactions,
            "pinned": false,
            "type": m.kind,
            "flags": r.flags,
            "components": r.components,
        });
        if let Some(guild_id) = m.guild_id {
            out["guild_id"] = json!(guild_id.to_string());
        }
        if let Some(nonce) = &r.nonce {
            out["nonce"] = json!(nonce);
        }
        if let Some(reference) = &m.message_reference {
            out["message_reference"] = reference.clone();
        }
        if m.interaction.is_some() {
            out["webhook_id"] = json!(APP_ID.to_string());
            out["application_id"] = json!(APP_ID.to_string());
        }
        out
    }

    /// Remembers a user message from a dispatched MESSAGE_CREATE.
    pub fn remember_user_message(&mut self, d: &Value) {
        let (Some(id), Some(channel_id)) =
            (limits::id_of(&d["id"]), limits::id_of(&d["channel_id"]))
        else {
            return;
        };
        let record = MessageRecord {
            id,
            channel_id,
            content: d["content"].as_str().unwrap_or_default().to_string(),
            embeds: d["embeds"].as_array().cloned().unwrap_or_default(),
            components: d["components"].as_array().cloned().unwrap_or_default(),
            flags: d["flags"].as_u64().unwrap_or(0),
            raw: d.clone(),
            ..MessageRecord::default()
        };
        self.messages.insert(
            id,
            StoredMessage {
                record,
                attachments: Vec::new(),
                guild_id: limits::id_of(&d["guild_id"]),
                by_bot: false,
                created: SystemTime::now(),
                edited: None,
                kind: 0,
                interaction: None,
                message_reference: None,
                reactions: Vec::new(),
                tts: false,
                has_thread: false,
            },
        );
    }

    // ----- channel routes -------------------------------------------------------

    /// `POST /channels/{id}/messages`.
    pub fn create_channel_message(
        &mut self,
        channel_id: u64,
        incoming: Incoming,
    ) -> Result<Value, ApiError> {
        let route = format!("POST /channels/{channel_id}/messages");
        if let Some((user, _)) = &self.channel(channel_id)?.recipient {
            // A DM: refused when the user closed DMs or shares no server with the bot.
            if self.setup.dms_closed.contains(user) || !self.members.contains_key(user) {
                return Err(ApiError::cannot_message_user());
            }
        }
        validate_new_message(&incoming, &route)?;
        if let Some(reference) = incoming
            .json
            .get("message_reference")
            .filter(|v| !v.is_null())
        {
            self.check_reference(channel_id, reference, &route)?;
        }
        let nonce_key = match (
            &incoming.json["nonce"],
            incoming.json["enforce_nonce"].as_bool(),
        ) {
            (Value::String(s), Some(true)) => Some((channel_id, s.clone())),
            (Value::Number(n), Some(true)) => Some((channel_id, n.to_string())),
            _ => None,
        };
        if let Some(key) = &nonce_key {
            // Forgotten after the window ("a few minutes" per Discord).
            let window = self.cfg.nonce_window;
            self.nonces.retain(|_, (_, at)| at.elapsed() < window);
            if let Some((original, _)) = self.nonces.get(key) {
                // A retry: Discord answers with the message the nonce already created.
                if let Some(m) = self.messages.get(original) {
                    return Ok(self.message_json(m));
                }
            }
        }
        // EPHEMERAL is not valid outside interactions; Discord silently drops it.
        let allowed = FLAG_SUPPRESS_EMBEDS | limits::FLAG_SUPPRESS_NOTIFICATIONS;
        let msg = self.build_message(channel_id, incoming, allowed, 0, None);
        let id = msg.record.id;
        if let Some(key) = nonce_key {
            self.nonces.insert(key, (id, Instant::now()));
        }
        self.note_pings(&msg.record, &route);
        self.output(
            OutputKind::ChannelMessage { channel_id },
            msg.record.clone(),
        );
        let json = self.message_json(&msg);
        self.messages.insert(id, msg);
        Ok(json)
    }

    fn check_reference(
        &self,
        channel_id: u64,
        reference: &Value,
        route: &str,
    ) -> Result<(), ApiError> {
        let target = limits::id_of(&reference["message_id"]);
        let in_channel = limits::id_of(&reference["channel_id"]).unwrap_or(channel_id);
        let exists = target.is_some_and(|id| self.message_in(in_channel, id, false).is_ok());
        let must_exist = reference["fail_if_not_exists"].as_bool().unwrap_or(true);
        if !exists && must_exist {
            return Err(FormErrors::one(
                "message_reference",
                "REPLIES_UNKNOWN_MESSAGE",
                "Unknown message",
                route,
            ));
        }
        Ok(())
    }

    /// `PATCH /channels/{id}/messages/{mid}`.
    pub fn edit_channel_message(
        &mut self,
        channel_id: u64,
        message_id: u64,
        incoming: Incoming,
    ) -> Result<Value, ApiError> {
        let route = format!("PATCH /channels/{channel_id}/messages/{message_id}");
        self.channel(channel_id)?;
        if !self.message_in(channel_id, message_id, false)?.by_bot {
            return Err(ApiError::not_author());
        }
        validate_edit(&incoming, &route)?;
        self.finish_edit(message_id, incoming, &route)?;
        let record = self.messages[&message_id].record.clone();
        self.output(OutputKind::ChannelEdit { channel_id }, record);
        Ok(self.message_json(&self.messages[&message_id]))
    }

    /// Applies a validated edit, refusing (without changing anything) one that
    /// would leave the message empty.
    pub fn finish_edit(
        &mut self,
        message_id: u64,
        incoming: Incoming,
        route: &str,
    ) -> Result<(), ApiError> {
        let before = self
            .messages
            .get(&message_id)
            .cloned()
            .ok_or_else(ApiError::unknown_message)?;
        self.apply_edit(message_id, incoming)?;
        if is_empty(&self.messages[&message_id]) {
            self.messages.insert(message_id, before);
            return Err(ApiError::empty_message().counted(
                ViolationKind::InvalidBody,
                format!("{route}: the edit leaves the message empty"),
            ));
        }
        Ok(())
    }

    /// `DELETE /channels/{id}/messages/{mid}`.
    pub fn delete_channel_message(
        &mut self,
        channel_id: u64,
        message_id: u64,
    ) -> Result<(), ApiError> {
        self.channel(channel_id)?;
        if !self.message_in(channel_id, message_id, false)?.by_bot {
            // The bot has no MANAGE_MESSAGES.
            return Err(ApiError::new(
                http::StatusCode::FORBIDDEN,
                50013,
                "Missing Permissions",
            ));
        }
        self.messages.remove(&message_id);
        Ok(())
    }

    /// `GET /channels/{id}/messages?limit&before&after`.
    pub fn list_messages(&self, channel_id: u64, query: &str) -> Result<Value, ApiError> {
        self.channel(channel_id)?;
        let param = |name: &str| {
            query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        let limit = match param("limit") {
            None => 50,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=100).contains(&n) => n,
                _ => {
                    return Err(FormErrors::one(
                        "limit",
                        "NUMBER_TYPE_MAX",
                        "int value should be between 1 and 100.",
                        &format!("GET /channels/{channel_id}/messages"),
                    ))
                }
            },
        };
        let before = param("before").and_then(|v| v.parse::<u64>().ok());
        let after = param("after").and_then(|v| v.parse::<u64>().ok());
        let visible = self
            .messages
            .values()
            .filter(|m| m.record.channel_id == channel_id && !m.record.ephemeral())
            .filter(|m| before.is_none_or(|b| m.record.id < b))
            .filter(|m| after.is_none_or(|a| m.record.id > a));
        // Newest first, as Discord returns them; with `after`, the oldest after it.
        let mut page: Vec<&StoredMessage> = if after.is_some() && before.is_none() {
            visible.take(limit).collect()
        } else {
            visible.rev().take(limit).collect()
        };
        page.sort_by_key(|m| std::cmp::Reverse(m.record.id));
        // Discord gives a message's nonce back only in the create's answer (and the
        // gateway's MESSAGE_CREATE), never when messages are listed.
        Ok(Value::Array(
            page.into_iter()
                .map(|m| {
                    let mut v = self.message_json(m);
                    if let Some(o) = v.as_object_mut() {
                        o.remove("nonce");
                    }
                    v
                })
                .collect(),
        ))
    }

    /// `POST /channels/{id}/messages/{mid}/threads` and `POST /channels/{id}/threads`.
    pub fn start_thread(
        &mut self,
        channel_id: u64,
        message_id: Option<u64>,
        body: &Value,
    ) -> Result<Value, ApiError> {
        let route = format!("POST /channels/{channel_id}/threads");
        let parent = self.channel(channel_id)?;
        let guild_id = parent.guild_id;
        if parent.kind != 0 {
            return Err(ApiError::new(
                http::StatusCode::BAD_REQUEST,
                50024,
                "Cannot execute action on this channel type",
            ));
        }
        if let Some(message_id) = message_id {
            if self.message_in(channel_id, message_id, false)?.has_thread {
                return Err(ApiError::new(
                    http::StatusCode::BAD_REQUEST,
                    160004,
                    "A thread has already been created for this message",
                ));
            }
        }
        let mut errors = FormErrors::default();
        let name = body["name"].as_str().unwrap_or_default();
        let n = name.chars().count();
        if !(1..=100).contains(&n) {
            errors.add(
                "name",
                "BASE_TYPE_BAD_LENGTH",
                "Must be between 1 and 100 in length.",
            );
        }
        let auto_archive = match &body["auto_archive_duration"] {
            Value::Null => 4320,
            v => match v.as_u64() {
                Some(m @ (60 | 1440 | 4320 | 10080)) => m,
                _ => {
                    errors.add(
                        "auto_archive_duration",
                        "BASE_TYPE_CHOICES",
                        "Value must be one of {60, 1440, 4320, 10080}.",
                    );
                    0
                }
            },
        };
        // v10 default for a thread without a message is a private thread.
        let kind = match (message_id, body["type"].as_u64()) {
            (Some(_), _) => 11,
            (None, None) => 12,
            (None, Some(k @ (10..=12))) => k as u8,
            (None, Some(_)) => {
                errors.add(
                    "type",
                    "BASE_TYPE_CHOICES",
                    "Value must be one of {10, 11, 12}.",
                );
                12
            }
        };
        errors.into_result(&route)?;
        // A thread started from a message has the message's id.
        let id = match message_id {
            Some(id) => id,
            None => self.ids.next(),
        };
        if let Some(m) = message_id.and_then(|id| self.messages.get_mut(&id)) {
            m.has_thread = true;
        }
        let info = ChannelInfo {
            id,
            kind,
            guild_id,
            parent_id: Some(channel_id),
            name: name.to_string(),
            auto_archive,
            recipient: None,
            created: SystemTime::now(),
        };
        let json = info.to_json();
        self.channels.insert(id, info);
        Ok(json)
    }

    /// `POST /guilds/{id}/channels`: a text channel (type 0), optionally under a
    /// category. Discord lower-cases text channel names and turns spaces into dashes.
    pub fn create_guild_channel(&mut self, guild_id: u64, body: &Value) -> Result<Value, ApiError> {
        let route = format!("POST /guilds/{guild_id}/channels");
        self.guild(guild_id)?;
        let mut errors = FormErrors::default();
        let name = body["name"].as_str().unwrap_or_default();
        if !(1..=100).contains(&name.chars().count()) {
            errors.add(
                "name",
                "BASE_TYPE_BAD_LENGTH",
                "Must be between 1 and 100 in length.",
            );
        }
        match body["type"].as_u64() {
            None | Some(0) => {}
            Some(_) => errors.add(
                "type",
                "BASE_TYPE_CHOICES",
                "Klaxon's fake only creates text channels (type 0).",
            ),
        }
        let parent_id = limits::id_of(&body["parent_id"]);
        errors.into_result(&route)?;
        let name: String = name
            .to_lowercase()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join("-");
        let id = self.ids.next();
        let info = ChannelInfo {
            id,
            kind: 0,
            guild_id: Some(guild_id),
            parent_id,
            name,
            auto_archive: 0,
            recipient: None,
            created: SystemTime::now(),
        };
        let json = info.to_json();
        self.channels.insert(id, info);
        Ok(json)
    }

    /// `PUT|DELETE /channels/{id}/messages/{mid}/reactions/{emoji}/@me`.
    pub fn react(
        &mut self,
        channel_id: u64,
        message_id: u64,
        emoji: &str,
        add: bool,
    ) -> Result<(), ApiError> {
        self.channel(channel_id)?;
        self.message_in(channel_id, message_id, false)?;
        if !valid_emoji(emoji) {
            return Err(
                ApiError::new(http::StatusCode::BAD_REQUEST, 10014, "Unknown Emoji").counted(
                    ViolationKind::InvalidBody,
                    format!("reaction with invalid emoji {emoji:?}"),
                ),
            );
        }
        if let Some(m) = self.messages.get_mut(&message_id) {
            let had = m.reactions.iter().position(|e| e == emoji);
            match (add, had) {
                (true, None) => m.reactions.push(emoji.to_string()),
                (false, Some(i)) => {
                    m.reactions.remove(i);
                }
                _ => {}
            }
        }
        Ok(())
    }

    // ----- commands ---------------------------------------------------------------

    /// `PUT /applications/{app}[/guilds/{guild}]/commands` (bulk overwrite).
    pub fn put_commands(
        &mut self,
        app: u64,
        guild: Option<u64>,
        body: &Value,
    ) -> Result<Value, ApiError> {
        let route = match guild {
            Some(g) => format!("PUT /applications/{app}/guilds/{g}/commands"),
            None => format!("PUT /applications/{app}/commands"),
        };
        self.check_app_guild(app, guild, &route)?;
        let Some(commands) = body.as_array() else {
            return Err(FormErrors::one(
                "",
                "BASE_TYPE_ARRAY",
                "Must be an array.",
                &route,
            ));
        };
        let mut errors = FormErrors::default();
        limits::check_commands(commands, &mut errors);
        errors.into_result(&route)?;
        let previous = self.commands.get(&guild).cloned().unwrap_or_default();
        let stored: Vec<Value> = commands
            .iter()
            .map(|c| {
                let kind = c["type"].as_u64().unwrap_or(1);
                let name = c["name"].as_str().unwrap_or_default();
                // An overwrite keeps the id of a command with the same name and type.
                let id = previous
                    .iter()
                    .find(|p| p["name"] == name && p["type"].as_u64() == Some(kind))
                    .and_then(|p| limits::id_of(&p["id"]))
                    .unwrap_or_else(|| self.ids.next());
                let mut cmd = json!({
                    "id": id.to_string(),
                    "application_id": APP_ID.to_string(),
                    "version": self.ids.next().to_string(),
                    "type": kind,
                    "name": name,
                    "name_localizations": c.get("name_localizations").cloned().unwrap_or(Value::Null),
                    "description": c["description"].as_str().unwrap_or_default(),
                    "description_localizations": c.get("description_localizations").cloned().unwrap_or(Value::Null),
                    "options": c.get("options").cloned().filter(|o| !o.is_null()).unwrap_or_else(|| json!([])),
                    "default_member_permissions": c.get("default_member_permissions").cloned().unwrap_or(Value::Null),
                    "nsfw": c["nsfw"].as_bool().unwrap_or(false),
                    "contexts": c.get("contexts").cloned().unwrap_or(Value::Null),
                    "integration_types": c.get("integration_types").cloned().unwrap_or_else(|| json!([0])),
                });
                match guild {
                    Some(g) => cmd["guild_id"] = json!(g.to_string()),
                    None => cmd["dm_permission"] = c.get("dm_permission").cloned().unwrap_or(json!(true)),
                }
                cmd
            })
            .collect();
        self.commands.insert(guild, stored.clone());
        Ok(Value::Array(stored))
    }

    /// `GET /applications/{app}[/guilds/{guild}]/commands`.
    pub fn get_commands(&mut self, app: u64, guild: Option<u64>) -> Result<Value, ApiError> {
        self.check_app_guild(app, guild, "GET commands")?;
        Ok(Value::Array(
            self.commands.get(&guild).cloned().unwrap_or_default(),
        ))
    }

    fn check_app_guild(&self, app: u64, guild: Option<u64>, route: &str) -> Result<(), ApiError> {
        if app != APP_ID {
            return Err(ApiError::missing_access().counted(
                ViolationKind::InvalidBody,
                format!("{route}: not this bot's application id"),
            ));
        }
        if guild.is_some_and(|g| g != self.cfg.guild_id) {
            return Err(ApiError::missing_access().counted(
                ViolationKind::InvalidBody,
                format!("{route}: the bot is not in that guild"),
            ));
        }
        Ok(())
    }

    // ----- guild --------------------------------------------------------------------

    fn member_roles(&self) -> Vec<u64> {
        let mut roles: Vec<u64> = self
            .members
            .values()
            .flat_map(|(m, _)| m.roles.iter().copied())
            .collect();
        roles.sort_unstable();
        roles.dedup();
        roles
    }

    pub fn guild(&self, guild_id: u64) -> Result<Value, ApiError> {
        if guild_id != self.cfg.guild_id {
            return Err(ApiError::unknown_guild());
        }
        self.setup.member_check()?;
        let mut guild = model::guild(&self.cfg, &self.member_roles());
        guild["roles"] = self.guild_roles(guild_id)?;
        Ok(guild)
    }

    pub fn guild_roles(&self, guild_id: u64) -> Result<Value, ApiError> {
        if guild_id != self.cfg.guild_id {
            return Err(ApiError::unknown_guild());
        }
        self.setup.member_check()?;
        let mut ids = self.member_roles();
        ids.extend(
            self.setup
                .roles
                .iter()
                .filter(|r| **r != crate::setup::BOT_ROLE_ID),
        );
        ids.sort_unstable();
        ids.dedup();
        let mut roles = model::roles(guild_id, &ids);
        roles.push(self.setup.bot_role());
        Ok(Value::Array(roles))
    }

    pub fn guild_member(&self, guild_id: u64, user_id: u64) -> Result<Value, ApiError> {
        if guild_id != self.cfg.guild_id {
            return Err(ApiError::unknown_guild());
        }
        self.setup.member_check()?;
        if user_id == crate::BOT_USER_ID {
            let mut bot = model::member(
                &Member {
                    user_id,
                    username: model::BOT_USERNAME.into(),
                    roles: vec![crate::setup::BOT_ROLE_ID],
                },
                SystemTime::UNIX_EPOCH,
            );
            bot["user"] = model::bot_user();
            return Ok(bot);
        }
        let (member, joined) = self
            .members
            .get(&user_id)
            .ok_or_else(ApiError::unknown_member)?;
        Ok(model::member(member, *joined))
    }

    /// `PUT` / `DELETE /guilds/{g}/members/{u}/roles/{r}`: as Discord, the bot
    /// needs Manage Roles and a role above the one it gives or takes (else 50013);
    /// an unknown member is 10007, an unknown role 10011. Idempotent.
    pub fn set_member_role(
        &mut self,
        guild_id: u64,
        user_id: u64,
        role_id: u64,
        add: bool,
    ) -> Result<(), ApiError> {
        if guild_id != self.cfg.guild_id {
            return Err(ApiError::unknown_guild());
        }
        self.setup.member_check()?;
        if !self.members.contains_key(&user_id) {
            return Err(ApiError::unknown_member());
        }
        let roles = self.guild_roles(guild_id)?;
        let position = roles
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["id"].as_str() == Some(role_id.to_string().as_str()))
            .find_map(|r| r["position"].as_u64());
        let Some(position) = position else {
            return Err(ApiError::unknown_role());
        };
        if !self.setup.manage_roles
            || role_id == crate::setup::BOT_ROLE_ID
            || role_id == guild_id
            || position >= self.setup.bot_role_position
        {
            return Err(ApiError::missing_permissions());
        }
        if let Some((member, _)) = self.members.get_mut(&user_id) {
            if add {
                if !member.roles.contains(&role_id) {
                    member.roles.push(role_id);
                }
            } else {
                member.roles.retain(|r| *r != role_id);
            }
        }
        Ok(())
    }

    /// Stored attachment bytes for the CDN-like download route.
    pub fn attachment(
        &self,
        channel_id: u64,
        attachment_id: u64,
    ) -> Option<(Option<String>, Bytes)> {
        self.messages
            .values()
            .filter(|m| m.record.channel_id == channel_id)
            .flat_map(|m| &m.attachments)
            .find(|a| a.id == attachment_id)
            .map(|a| (a.content_type.clone(), a.data.clone()))
    }
}

/// Embeds as Discord returns them: with `type: "rich"`.
fn embeds_of(value: &Value) -> Vec<Value> {
    let mut embeds = value.as_array().cloned().unwrap_or_default();
    for embed in &mut embeds {
        if let Some(obj) = embed.as_object_mut() {
            obj.entry("type").or_insert_with(|| json!("rich"));
        }
    }
    embeds
}

/// The attachments a message has after a request: the kept existing ones (all of
/// them when the body has no `attachments` list; v10 otherwise keeps only listed
/// ids) followed by the uploaded files.
fn build_attachments(
    ids: &mut IdGen,
    payload: &Value,
    files: Vec<Upload>,
    existing: Vec<StoredAttachment>,
) -> Vec<StoredAttachment> {
    let listed = payload["attachments"].as_array();
    let listed_ids: Vec<u64> = listed
        .map(|l| l.iter().filter_map(|a| limits::id_of(&a["id"])).collect())
        .unwrap_or_default();
    let mut out: Vec<StoredAttachment> = match listed {
        Some(_) => existing
            .into_iter()
            .filter(|a| listed_ids.contains(&a.id))
            .collect(),
        None => existing,
    };
    for file in files {
        let entry = listed
            .into_iter()
            .flatten()
            .find(|a| file.index.is_some() && limits::id_of(&a["id"]) == file.index);
        let entry_str = |key: &str| entry.and_then(|e| e[key].as_str()).map(str::to_string);
        out.push(StoredAttachment {
            id: ids.next(),
            filename: entry_str("filename").unwrap_or(file.filename),
            content_type: file.content_type,
            description: entry_str("description"),
            data: file.data,
        });
    }
    out
}

fn public_attachments(stored: &[StoredAttachment]) -> Vec<Attachment> {
    stored
        .iter()
        .map(|a| Attachment {
            filename: a.filename.clone(),
            data: a.data.clone(),
        })
        .collect()
}

/// Discord's notion of an empty message: nothing visible at all.
pub(crate) fn is_empty(m: &StoredMessage) -> bool {
    m.record.content.trim().is_empty()
        && m.record.embeds.is_empty()
        && m.record.components.is_empty()
        && m.attachments.is_empty()
        && m.record
            .raw
            .get("sticker_ids")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
        && m.record.raw.get("poll").is_none_or(Value::is_null)
}

/// Limits plus "not empty" for a body that creates a message.
pub(crate) fn validate_new_message(incoming: &Incoming, route: &str) -> Result<(), ApiError> {
    validate_edit(incoming, route)?;
    let p = &incoming.json;
    let nonempty = |key: &str| p[key].as_array().is_some_and(|a| !a.is_empty());
    let has_content = p["content"].as_str().is_some_and(|c| !c.trim().is_empty());
    if !has_content
        && !nonempty("embeds")
        && !nonempty("components")
        && !nonempty("sticker_ids")
        && incoming.files.is_empty()
        && p.get("poll").is_none_or(Value::is_null)
    {
        return Err(ApiError::empty_message().counted(
            ViolationKind::InvalidBody,
            format!("{route}: empty message"),
        ));
    }
    Ok(())
}

/// Limits only (an edit may leave fields out).
pub(crate) fn validate_edit(incoming: &Incoming, route: &str) -> Result<(), ApiError> {
    let mut errors = FormErrors::default();
    limits::check_message(&incoming.json, incoming.files.len(), &mut errors);
    errors.into_result(route)
}

/// A unicode emoji, or a custom one as `name:id`; a shortcode like `:ok:` or a bare
/// name is what Discord rejects as Unknown Emoji.
fn valid_emoji(emoji: &str) -> bool {
    match emoji.split_once(':') {
        Some((name, id)) => {
            !name.is_empty() && !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())
        }
        None => !emoji.is_empty() && !emoji.is_ascii(),
    }
}

fn emoji_json(emoji: &str) -> Value {
    match emoji.split_once(':') {
        Some((name, id)) => json!({ "id": id, "name": name, "animated": false }),
        None => json!({ "id": null, "name": emoji }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emoji_validation() {
        assert!(valid_emoji("✅"));
        assert!(valid_emoji("1️⃣"));
        assert!(valid_emoji("klaxon:123"));
        assert!(!valid_emoji(":white_check_mark:"));
        assert!(!valid_emoji("white_check_mark"));
        assert!(!valid_emoji(""));
    }
}
