//! Interactions: the INTERACTION_CREATE payloads the fake dispatches, and the callback
//! and webhook-token routes the bot answers them with.

use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail};
use serde_json::{json, Map, Value};

use crate::error::{ApiError, FormErrors, ViolationKind};
use crate::limits::{
    self, FLAG_EPHEMERAL, FLAG_LOADING, FLAG_SUPPRESS_EMBEDS, FLAG_SUPPRESS_NOTIFICATIONS,
};
use crate::model::{self, BOT_PERMISSIONS};
use crate::state::{validate_edit, validate_new_message, Incoming, State};
use crate::{Interaction, Member, MessageRecord, OutputKind, SlashInvocation, APP_ID};

/// Interaction tokens stay valid this long for followups and edits.
pub(crate) const WEBHOOK_TTL: Duration = Duration::from_secs(15 * 60);

/// Flags an interaction response or followup may carry.
const RESPONSE_FLAGS: u64 = FLAG_SUPPRESS_EMBEDS | FLAG_EPHEMERAL | FLAG_SUPPRESS_NOTIFICATIONS;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Command,
    Component,
    Autocomplete,
    ModalSubmit,
}

impl Kind {
    fn code(self) -> u8 {
        match self {
            Kind::Command => 2,
            Kind::Component => 3,
            Kind::Autocomplete => 4,
            Kind::ModalSubmit => 5,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Command => "application command",
            Kind::Component => "message component",
            Kind::Autocomplete => "autocomplete",
            Kind::ModalSubmit => "modal submit",
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct InteractionState {
    pub id: u64,
    pub token: String,
    pub kind: Kind,
    pub channel_id: u64,
    pub created: Instant,
    /// The initial response's callback type, once there is one.
    pub acked: Option<u8>,
    /// The message `@original` refers to.
    pub original: Option<u64>,
    /// A type-5 defer whose "thinking" message has not been filled yet.
    pub loading: bool,
    /// The message a component (or a modal opened from one) belongs to.
    pub message_id: Option<u64>,
    pub followups: Vec<u64>,
}

/// A modal the bot showed (type 9), which a test may then submit once.
#[derive(Clone, Debug)]
pub(crate) struct ShownModal {
    pub custom_id: String,
    pub interaction_id: u64,
}

enum Invoker {
    Member(Member),
    DmUser(u64, String),
}

impl Invoker {
    fn for_channel(user: Member, guild_id: Option<u64>) -> Invoker {
        match guild_id {
            Some(_) => Invoker::Member(user),
            None => Invoker::DmUser(user.user_id, user.username),
        }
    }
}

/// An opaque token, unique per interaction.
fn make_token(id: u64) -> String {
    format!(
        "aW50ZXJhY3Rpb246{id:x}.{:016x}",
        id.rotate_left(23) ^ 0x5bd1_e995_f00d_cafe
    )
}

fn find_component<'a>(components: &'a [Value], custom_id: &str) -> Option<&'a Value> {
    components.iter().find_map(|c| {
        if c["custom_id"].as_str() == Some(custom_id) {
            Some(c)
        } else {
            find_component(
                c["components"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
                custom_id,
            )
        }
    })
}

/// Deferring (type 5) may only set flags; empty values serenity always serializes
/// (`attachments: []`) are tolerated.
fn check_defer_data(data: &Value, errors: &mut FormErrors) {
    for (key, value) in data.as_object().into_iter().flatten() {
        let empty = match value {
            Value::Null => true,
            Value::Bool(b) => !b,
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            Value::Number(_) => false,
        };
        if key != "flags" && !empty {
            errors.add(
                format!("data.{key}"),
                "INTERACTION_RESPONSE_DEFERRED_DATA_INVALID",
                "A deferred response may only set flags",
            );
        }
    }
}

impl State {
    /// Dispatches a gateway event; MESSAGE_CREATE is also remembered as a user message.
    pub fn dispatch_raw(&mut self, name: &str, d: Value) -> anyhow::Result<()> {
        if name == "MESSAGE_CREATE" {
            self.remember_user_message(&d);
        }
        self.dispatch(name, d)
    }

    pub fn slash(
        &mut self,
        inv: SlashInvocation,
        autocomplete: bool,
    ) -> anyhow::Result<Interaction> {
        let (invoker, guild_id) = match (inv.member, inv.user_for_dm) {
            (Some(member), _) => (
                Invoker::Member(member),
                Some(inv.guild_id.unwrap_or(self.cfg.guild_id)),
            ),
            (None, Some((id, name))) => (Invoker::DmUser(id, name), None),
            (None, None) => bail!("a DM invocation (member: None) needs user_for_dm"),
        };
        // Discord only sends interactions for registered commands.
        let scopes = [guild_id, None];
        let scopes = if guild_id.is_some() {
            &scopes[..]
        } else {
            &scopes[1..]
        };
        let (command_id, command_guild) = scopes
            .iter()
            .find_map(|scope| {
                let cmd = self.commands.get(scope)?.iter().find(|c| {
                    c["name"].as_str() == Some(inv.name.as_str()) && c["type"].as_u64() == Some(1)
                })?;
                Some((cmd["id"].clone(), *scope))
            })
            .ok_or_else(|| {
                let known: Vec<&str> = scopes
                    .iter()
                    .filter_map(|s| self.commands.get(s))
                    .flatten()
                    .filter_map(|c| c["name"].as_str())
                    .collect();
                anyhow!(
                    "command /{} is not registered (registered: {known:?})",
                    inv.name
                )
            })?;
        let mut data = json!({
            "id": command_id,
            "name": inv.name,
            "type": 1,
            "options": inv.options,
        });
        if let Some(g) = command_guild {
            data["guild_id"] = json!(g.to_string());
        }
        let resolved = self.resolve(&inv.options, guild_id);
        if !resolved.is_empty() {
            data["resolved"] = Value::Object(resolved);
        }
        let kind = if autocomplete {
            Kind::Autocomplete
        } else {
            Kind::Command
        };
        self.begin(kind, inv.channel_id, guild_id, invoker, data, None)
    }

    /// A message context-menu command (type 2 interaction, command type 3) on a
    /// message in a channel, as Discord sends it: `target_id` and the message in
    /// `resolved.messages`.
    pub fn message_command(
        &mut self,
        member: Member,
        name: &str,
        message_id: u64,
    ) -> anyhow::Result<Interaction> {
        let message = self
            .messages
            .get(&message_id)
            .ok_or_else(|| anyhow!("message {message_id} does not exist"))?;
        let (channel_id, guild_id) = (message.record.channel_id, message.guild_id);
        let guild = guild_id.ok_or_else(|| anyhow!("message {message_id} is not in a guild"))?;
        let message_json = self.message_json(message);
        let cmd = [Some(guild), None]
            .iter()
            .find_map(|scope| {
                self.commands
                    .get(scope)?
                    .iter()
                    .find(|c| c["name"].as_str() == Some(name) && c["type"].as_u64() == Some(3))
            })
            .ok_or_else(|| anyhow!("message command {name:?} is not registered"))?;
        let data = json!({
            "id": cmd["id"].clone(),
            "name": name,
            "type": 3,
            "guild_id": guild.to_string(),
            "target_id": message_id.to_string(),
            "resolved": { "messages": { message_id.to_string(): message_json } },
        });
        let invoker = Invoker::for_channel(member, guild_id);
        self.begin(Kind::Command, channel_id, guild_id, invoker, data, None)
    }

    pub fn component(
        &mut self,
        user: Member,
        message_id: u64,
        custom_id: &str,
        values: Vec<String>,
    ) -> anyhow::Result<Interaction> {
        self.component_as_seen(user, message_id, None, custom_id, values)
    }

    /// A component interaction; `seen` is the version of the message the member's
    /// client shows (a phone that has not refreshed yet may still show buttons the
    /// bot has since removed), `None` for the current one.
    pub fn component_as_seen(
        &mut self,
        user: Member,
        message_id: u64,
        seen: Option<&MessageRecord>,
        custom_id: &str,
        values: Vec<String>,
    ) -> anyhow::Result<Interaction> {
        let message = self
            .messages
            .get(&message_id)
            .filter(|m| m.by_bot)
            .ok_or_else(|| anyhow!("message {message_id} is gone or was not sent by the bot"))?;
        let components = seen.map_or(&message.record.components, |m| &m.components);
        let component = find_component(components, custom_id).ok_or_else(|| {
            anyhow!(
                "message {message_id} has no component {custom_id:?} (it has {:?})",
                message.record.custom_ids()
            )
        })?;
        if component["disabled"].as_bool() == Some(true) {
            bail!("component {custom_id:?} is disabled and cannot be used");
        }
        let component_type = component["type"].as_u64().unwrap_or(2);
        let mut data = json!({ "custom_id": custom_id, "component_type": component_type });
        if component_type != 2 {
            data["values"] = json!(values);
        }
        let (channel_id, guild_id) = (message.record.channel_id, message.guild_id);
        let invoker = Invoker::for_channel(user, guild_id);
        self.begin(
            Kind::Component,
            channel_id,
            guild_id,
            invoker,
            data,
            Some(message_id),
        )
    }

    pub fn modal_submit(
        &mut self,
        user: Member,
        channel_id: u64,
        custom_id: &str,
        fields: Vec<(String, String)>,
    ) -> anyhow::Result<Interaction> {
        // Only a modal the bot showed can be submitted, and only once.
        let position = self
            .modals
            .iter()
            .rposition(|m| m.custom_id == custom_id)
            .ok_or_else(|| anyhow!("the bot has not shown a modal with custom_id {custom_id:?}"))?;
        let shown = self.modals[position].clone();
        let message_id = self
            .interactions
            .get(&shown.interaction_id)
            .and_then(|i| i.message_id);
        let guild_id = self
            .channels
            .get(&channel_id)
            .ok_or_else(|| anyhow!("unknown channel {channel_id}"))?
            .guild_id;
        let rows: Vec<Value> = fields
            .into_iter()
            .map(|(id, value)| {
                json!({ "type": 1, "components": [{ "type": 4, "custom_id": id, "value": value }] })
            })
            .collect();
        let data = json!({ "custom_id": custom_id, "components": rows });
        let invoker = Invoker::for_channel(user, guild_id);
        let interaction = self.begin(
            Kind::ModalSubmit,
            channel_id,
            guild_id,
            invoker,
            data,
            message_id,
        )?;
        self.modals.remove(position);
        Ok(interaction)
    }

    /// `resolved` for user, channel, role and mentionable options (poise reads
    /// `User`/`Member`/`Role` arguments from there).
    fn resolve(&self, options: &[Value], guild_id: Option<u64>) -> Map<String, Value> {
        let mut maps: [(&str, Map<String, Value>); 4] = [
            ("users", Map::new()),
            ("members", Map::new()),
            ("roles", Map::new()),
            ("channels", Map::new()),
        ];
        let mut stack: Vec<&Value> = options.iter().collect();
        while let Some(option) = stack.pop() {
            stack.extend(option["options"].as_array().into_iter().flatten());
            let Some(id) = limits::id_of(&option["value"]) else {
                continue;
            };
            let known = self.members.get(&id);
            let as_user = match option["type"].as_u64() {
                Some(6) => true,
                Some(9) => known.is_some(),
                Some(7) => {
                    let channel = match self.channels.get(&id) {
                        Some(c) => c.partial_json(),
                        None => {
                            json!({ "id": id.to_string(), "type": 0, "name": format!("channel-{id}") })
                        }
                    };
                    maps[3].1.insert(id.to_string(), channel);
                    continue;
                }
                _ => false,
            };
            if as_user {
                let (user, member) = match known {
                    Some((m, joined)) => (
                        model::user(id, &m.username),
                        Some(model::member(m, *joined)),
                    ),
                    None => (model::user(id, &format!("user-{id}")), None),
                };
                maps[0].1.insert(id.to_string(), user);
                if let (Some(mut member), Some(_)) = (member, guild_id) {
                    if let Some(obj) = member.as_object_mut() {
                        obj.remove("user");
                    }
                    maps[1].1.insert(id.to_string(), member);
                }
            } else if matches!(option["type"].as_u64(), Some(8 | 9)) {
                maps[2]
                    .1
                    .insert(id.to_string(), model::role(id, &format!("role-{id}"), 0, 1));
            }
        }
        maps.into_iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(k, m)| (k.to_string(), Value::Object(m)))
            .collect()
    }

    /// Builds and dispatches INTERACTION_CREATE, and starts tracking the interaction.
    fn begin(
        &mut self,
        kind: Kind,
        channel_id: u64,
        guild_id: Option<u64>,
        invoker: Invoker,
        data: Value,
        message_id: Option<u64>,
    ) -> anyhow::Result<Interaction> {
        match (&invoker, guild_id) {
            (Invoker::DmUser(user_id, username), None) => {
                if self.channels.get(&channel_id).is_some_and(|c| c.kind != 1) {
                    bail!("channel {channel_id} is a guild channel, not a DM");
                }
                self.register_dm(channel_id, *user_id, username);
            }
            (_, Some(guild)) => {
                if self.channels.get(&channel_id).and_then(|c| c.guild_id) != Some(guild) {
                    bail!("channel {channel_id} is not a channel of guild {guild}");
                }
            }
            (Invoker::Member(_), None) => bail!("a member needs a guild"),
        }
        let channel = self.channels[&channel_id].partial_json();
        let id = self.ids.next();
        let token = make_token(id);
        let mut d = json!({
            "id": id.to_string(),
            "application_id": APP_ID.to_string(),
            "type": kind.code(),
            "token": token,
            "version": 1,
            "channel_id": channel_id.to_string(),
            "channel": channel,
            "app_permissions": BOT_PERMISSIONS.to_string(),
            "locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": { "0": guild_id.unwrap_or(0).to_string() },
            "context": if guild_id.is_some() { 0 } else { 1 },
            "attachment_size_limit": limits::MAX_FILE_SIZE,
            "data": data,
        });
        match invoker {
            Invoker::Member(member) => {
                let joined = self
                    .members
                    .get(&member.user_id)
                    .map_or_else(SystemTime::now, |m| m.1);
                d["guild_id"] = json!(guild_id.unwrap_or_default().to_string());
                d["guild_locale"] = json!("en-US");
                d["member"] = model::member(&member, joined);
                self.members.insert(member.user_id, (member, joined));
            }
            Invoker::DmUser(user_id, username) => d["user"] = model::user(user_id, &username),
        }
        if let Some(message) = message_id.and_then(|m| self.messages.get(&m)) {
            d["message"] = self.message_json(message);
        }
        self.dispatch("INTERACTION_CREATE", d)?;
        let now = Instant::now();
        self.tokens.insert(token.clone(), id);
        self.interactions.insert(
            id,
            InteractionState {
                id,
                token: token.clone(),
                kind,
                channel_id,
                created: now,
                acked: None,
                original: None,
                loading: false,
                message_id,
                followups: Vec::new(),
            },
        );
        Ok(Interaction {
            id,
            token,
            dispatched_at: now,
        })
    }

    /// `POST /interactions/{id}/{token}/callback`.
    pub fn callback(&mut self, id: u64, token: &str, incoming: Incoming) -> Result<(), ApiError> {
        let route = format!("POST /interactions/{id}/<token>/callback");
        let ix = match self.interactions.get(&id) {
            Some(ix) if ix.token == token => ix.clone(),
            _ => {
                return Err(ApiError::unknown_interaction().counted(
                    ViolationKind::LateInteraction,
                    format!("{route}: unknown interaction or wrong token"),
                ))
            }
        };
        if let Some(previous) = ix.acked {
            return Err(ApiError::already_acknowledged().counted(
                ViolationKind::DoubleAck,
                format!("{route}: already acknowledged with type {previous}"),
            ));
        }
        let elapsed = ix.created.elapsed();
        let deadline = self.cfg.interaction_deadline;
        if elapsed > deadline {
            return Err(ApiError::unknown_interaction().counted(
                ViolationKind::LateInteraction,
                format!("{route}: callback {elapsed:?} after dispatch (deadline {deadline:?})"),
            ));
        }
        let Incoming { json: body, files } = incoming;
        let mut errors = FormErrors::default();
        let Some(ty) = body["type"].as_u64() else {
            errors.add("type", "BASE_TYPE_REQUIRED", "This field is required");
            return errors.into_result(&route);
        };
        let allowed = match ix.kind {
            Kind::Command => matches!(ty, 4 | 5 | 9),
            Kind::Component => matches!(ty, 4..=7 | 9),
            Kind::Autocomplete => ty == 8,
            Kind::ModalSubmit => {
                matches!(ty, 4 | 5) || (ix.message_id.is_some() && matches!(ty, 6 | 7))
            }
        };
        if !allowed {
            errors.add(
                "type",
                "INTERACTION_RESPONSE_TYPE_INVALID",
                format!(
                    "Interaction response type {ty} is not valid for a {} interaction",
                    ix.kind.name()
                ),
            );
            return errors.into_result(&route);
        }
        let data = body.get("data").cloned().unwrap_or(Value::Null);
        let message_kind = if ix.kind == Kind::Command { 20 } else { 0 };
        let data_body = Incoming {
            json: data.clone(),
            files,
        };
        let channel_id = ix.channel_id;
        let (original, loading, record) = match ty {
            4 => {
                validate_new_message(&data_body, &route)?;
                let msg = self.build_message(
                    channel_id,
                    data_body,
                    RESPONSE_FLAGS,
                    message_kind,
                    Some(id),
                );
                let record = msg.record.clone();
                self.note_pings(&record, &route);
                self.messages.insert(record.id, msg);
                (Some(record.id), false, record)
            }
            5 => {
                check_defer_data(&data, &mut errors);
                errors.into_result(&route)?;
                // The "thinking" message: empty until a followup or @original edit.
                let flags =
                    json!({ "flags": data["flags"].as_u64().unwrap_or(0) & FLAG_EPHEMERAL });
                let placeholder = Incoming {
                    json: flags,
                    files: Vec::new(),
                };
                let mut msg = self.build_message(
                    channel_id,
                    placeholder,
                    FLAG_EPHEMERAL,
                    message_kind,
                    Some(id),
                );
                msg.record.flags |= FLAG_LOADING;
                msg.record.raw = data;
                let record = msg.record.clone();
                self.messages.insert(record.id, msg);
                (Some(record.id), true, record)
            }
            6 => {
                let record = MessageRecord {
                    id: ix.message_id.unwrap_or_default(),
                    channel_id,
                    raw: data,
                    ..MessageRecord::default()
                };
                (ix.message_id, false, record)
            }
            7 => {
                let message_id = ix.message_id.ok_or_else(ApiError::unknown_message)?;
                validate_edit(&data_body, &route)?;
                self.finish_edit(message_id, data_body, &route)?;
                (
                    Some(message_id),
                    false,
                    self.messages[&message_id].record.clone(),
                )
            }
            8 => {
                limits::check_autocomplete(&data, &mut errors);
                errors.into_result(&route)?;
                (
                    None,
                    false,
                    MessageRecord {
                        channel_id,
                        raw: data,
                        ..MessageRecord::default()
                    },
                )
            }
            _ => {
                limits::check_modal(&data, &mut errors);
                errors.into_result(&route)?;
                let custom_id = data["custom_id"].as_str().unwrap_or_default().to_string();
                self.modals.push(ShownModal {
                    custom_id,
                    interaction_id: id,
                });
                (
                    None,
                    false,
                    MessageRecord {
                        channel_id,
                        raw: data,
                        ..MessageRecord::default()
                    },
                )
            }
        };
        if let Some(state) = self.interactions.get_mut(&id) {
            state.acked = Some(ty as u8);
            state.original = original;
            state.loading = loading;
        }
        self.output(
            OutputKind::Callback {
                interaction_id: id,
                callback_type: ty as u8,
            },
            record,
        );
        Ok(())
    }

    /// The interaction behind a webhook-token route, if the token is still valid.
    fn webhook(
        &mut self,
        app: u64,
        token: &str,
        route: &str,
    ) -> Result<InteractionState, ApiError> {
        let ix = (app == APP_ID)
            .then(|| self.tokens.get(token))
            .flatten()
            .and_then(|id| self.interactions.get(id))
            .cloned();
        let Some(ix) = ix else {
            return Err(ApiError::unknown_webhook().counted(
                ViolationKind::LateInteraction,
                format!("{route}: unknown application id or interaction token"),
            ));
        };
        if ix.created.elapsed() > WEBHOOK_TTL {
            return Err(ApiError::unknown_webhook().counted(
                ViolationKind::LateInteraction,
                format!("{route}: interaction token expired (15 minutes)"),
            ));
        }
        Ok(ix)
    }

    /// `POST /webhooks/{app}/{token}`: a followup message.
    pub fn followup(
        &mut self,
        app: u64,
        token: &str,
        incoming: Incoming,
    ) -> Result<Value, ApiError> {
        let route = format!("POST /webhooks/{app}/<token>");
        let ix = self.webhook(app, token, &route)?;
        if !matches!(ix.acked, Some(4..=7)) {
            return Err(ApiError::unknown_webhook().counted(
                ViolationKind::LateInteraction,
                format!(
                    "{route}: followup without an initial message response to interaction {}",
                    ix.id
                ),
            ));
        }
        validate_new_message(&incoming, &route)?;
        let kind = if ix.kind == Kind::Command { 20 } else { 0 };
        let mut msg =
            self.build_message(ix.channel_id, incoming, RESPONSE_FLAGS, kind, Some(ix.id));
        let placeholder = ix
            .original
            .filter(|_| ix.loading)
            .and_then(|o| self.messages.get(&o))
            .map(|p| (p.record.id, p.record.flags, p.created));
        if let Some((id, flags, created)) = placeholder {
            // The first followup after a defer replaces the "thinking" message and
            // keeps the visibility chosen when deferring; like any edit, it pings no one.
            msg.record.id = id;
            msg.record.flags = (msg.record.flags & !FLAG_EPHEMERAL) | (flags & FLAG_EPHEMERAL);
            msg.created = created;
            msg.edited = Some(SystemTime::now());
        } else {
            self.note_pings(&msg.record, &route);
        }
        let replaced = placeholder.is_some();
        if let Some(state) = self.interactions.get_mut(&ix.id) {
            if replaced {
                state.loading = false;
            } else {
                state.followups.push(msg.record.id);
            }
        }
        self.output(
            OutputKind::Followup {
                interaction_id: ix.id,
            },
            msg.record.clone(),
        );
        let json = self.message_json(&msg);
        self.messages.insert(msg.record.id, msg);
        Ok(json)
    }

    /// `GET|PATCH|DELETE /webhooks/{app}/{token}/messages/{@original|id}`.
    /// `Ok(None)` is a 204.
    pub fn webhook_message(
        &mut self,
        app: u64,
        token: &str,
        target: Option<u64>,
        method: &str,
        incoming: Incoming,
    ) -> Result<Option<Value>, ApiError> {
        let which = target.map_or_else(|| "@original".to_string(), |t| t.to_string());
        let route = format!("{method} /webhooks/{app}/<token>/messages/{which}");
        let ix = self.webhook(app, token, &route)?;
        if !matches!(ix.acked, Some(4..=7)) {
            return Err(ApiError::unknown_message().counted(
                ViolationKind::LateInteraction,
                format!(
                    "{route}: no initial message response to interaction {} yet",
                    ix.id
                ),
            ));
        }
        let message_id = match target {
            None => ix.original,
            Some(m) if ix.original == Some(m) || ix.followups.contains(&m) => Some(m),
            Some(_) => None,
        }
        .filter(|m| self.messages.contains_key(m))
        .ok_or_else(ApiError::unknown_message)?;
        match method {
            "GET" => Ok(Some(self.message_json(&self.messages[&message_id]))),
            "PATCH" => {
                validate_edit(&incoming, &route)?;
                self.finish_edit(message_id, incoming, &route)?;
                if let Some(state) = self.interactions.get_mut(&ix.id) {
                    if state.original == Some(message_id) {
                        state.loading = false;
                    }
                }
                let record = self.messages[&message_id].record.clone();
                self.output(
                    OutputKind::EditOriginal {
                        interaction_id: ix.id,
                    },
                    record,
                );
                Ok(Some(self.message_json(&self.messages[&message_id])))
            }
            _ => {
                self.messages.remove(&message_id);
                Ok(None)
            }
        }
    }
}
