//! JSON shapes of Discord objects, complete enough for serenity 0.12.5 to deserialize
//! (it silently drops gateway events with a missing required field).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::{FakeConfig, Member, APP_ID, BOT_USER_ID};

pub(crate) const BOT_USERNAME: &str = "klaxon";
pub(crate) const OWNER_USER_ID: u64 = 3;

/// Permissions of an ordinary member: view, send, embed, attach, history, react,
/// use application commands.
pub(crate) const MEMBER_PERMISSIONS: u64 =
    (1 << 6) | (1 << 10) | (1 << 11) | (1 << 14) | (1 << 15) | (1 << 16) | (1 << 31);
/// The bot's permissions: a member's plus external emoji, manage/create threads and
/// send in threads.
pub(crate) const BOT_PERMISSIONS: u64 =
    MEMBER_PERMISSIONS | (1 << 18) | (1 << 34) | (1 << 35) | (1 << 38);

/// Discord's epoch (2015-01-01) in Unix milliseconds.
const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// Hands out increasing snowflake-like ids whose timestamp part is the current time.
#[derive(Debug, Default)]
pub(crate) struct IdGen {
    last: u64,
}

impl IdGen {
    pub fn next(&mut self) -> u64 {
        let ms = unix_ms(SystemTime::now()).saturating_sub(DISCORD_EPOCH_MS);
        self.last = (ms << 22).max(self.last + 1);
        self.last
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

/// RFC 3339 with microseconds and `+00:00`, as Discord formats timestamps.
pub(crate) fn timestamp(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}+00:00",
        rem / 3_600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_micros()
    )
}

pub(crate) fn user(id: u64, username: &str) -> Value {
    json!({
        "id": id.to_string(),
        "username": username,
        "discriminator": "0",
        "global_name": username,
        "avatar": null,
        "bot": false,
        "public_flags": 0,
    })
}

pub(crate) fn bot_user() -> Value {
    json!({
        "id": BOT_USER_ID.to_string(),
        "username": BOT_USERNAME,
        "discriminator": "0",
        "global_name": null,
        "avatar": null,
        "bot": true,
        "verified": true,
        "mfa_enabled": false,
        "flags": 0,
        "public_flags": 0,
    })
}

pub(crate) fn member(m: &Member, joined_at: SystemTime) -> Value {
    json!({
        "user": user(m.user_id, &m.username),
        "nick": null,
        "avatar": null,
        "roles": m.roles.iter().map(u64::to_string).collect::<Vec<_>>(),
        "joined_at": timestamp(joined_at),
        "premium_since": null,
        "deaf": false,
        "mute": false,
        "flags": 0,
        "pending": false,
        "permissions": MEMBER_PERMISSIONS.to_string(),
        "communication_disabled_until": null,
    })
}

pub(crate) fn role(id: u64, name: &str, permissions: u64, position: u64) -> Value {
    json!({
        "id": id.to_string(),
        "name": name,
        "color": 0,
        "colors": { "primary_color": 0, "secondary_color": null, "tertiary_color": null },
        "hoist": false,
        "icon": null,
        "unicode_emoji": null,
        "position": position,
        "permissions": permissions.to_string(),
        "managed": false,
        "mentionable": false,
        "flags": 0,
    })
}

/// The `@everyone` role has the guild's id.
pub(crate) fn roles(guild_id: u64, role_ids: &[u64]) -> Vec<Value> {
    std::iter::once(role(guild_id, "@everyone", MEMBER_PERMISSIONS, 0))
        .chain(
            role_ids
                .iter()
                .enumerate()
                .map(|(i, id)| role(*id, &format!("role-{id}"), MEMBER_PERMISSIONS, i as u64 + 1)),
        )
        .collect()
}

pub(crate) fn guild(cfg: &FakeConfig, role_ids: &[u64]) -> Value {
    json!({
        "id": cfg.guild_id.to_string(),
        "name": "Klaxon Test Guild",
        "icon": null,
        "icon_hash": null,
        "splash": null,
        "discovery_splash": null,
        "owner_id": OWNER_USER_ID.to_string(),
        "afk_channel_id": null,
        "afk_timeout": 300,
        "widget_enabled": false,
        "widget_channel_id": null,
        "verification_level": 0,
        "default_message_notifications": 1,
        "explicit_content_filter": 0,
        "roles": roles(cfg.guild_id, role_ids),
        "emojis": [],
        "features": [],
        "mfa_level": 0,
        "application_id": null,
        "system_channel_id": null,
        "system_channel_flags": 0,
        "rules_channel_id": null,
        "max_presences": null,
        "max_members": 500000,
        "vanity_url_code": null,
        "description": null,
        "banner": null,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "preferred_locale": "en-US",
        "public_updates_channel_id": null,
        "max_video_channel_users": 25,
        "max_stage_video_channel_users": 50,
        "nsfw_level": 0,
        "stickers": [],
        "premium_progress_bar_enabled": false,
        "safety_alerts_channel_id": null,
    })
}

pub(crate) fn application() -> Value {
    json!({
        "id": APP_ID.to_string(),
        "name": BOT_USERNAME,
        "icon": null,
        "description": "",
        "rpc_origins": [],
        "bot_public": false,
        "bot_require_code_grant": false,
        "bot": bot_user(),
        "owner": user(OWNER_USER_ID, "owner"),
        "verify_key": "",
        "team": null,
        "flags": 0,
        "tags": [],
        "redirect_uris": [],
        "interactions_endpoint_url": null,
        "role_connections_verification_url": null,
        "approximate_guild_count": 1,
    })
}

/// Channel kinds the fake knows about.
#[derive(Clone, Debug)]
pub(crate) struct ChannelInfo {
    pub id: u64,
    /// Discord channel type: 0 text, 1 DM, 11 public thread, 12 private thread.
    pub kind: u8,
    pub guild_id: Option<u64>,
    pub parent_id: Option<u64>,
    pub name: String,
    /// For threads: auto-archive minutes; for DMs: the recipient.
    pub auto_archive: u64,
    pub recipient: Option<(u64, String)>,
    pub created: SystemTime,
}

impl ChannelInfo {
    pub fn to_json(&self) -> Value {
        if self.kind == 1 {
            let (id, name) = self.recipient.clone().unwrap_or((0, "unknown".into()));
            return json!({
                "id": self.id.to_string(),
                "type": 1,
                "last_message_id": null,
                "flags": 0,
                "recipients": [user(id, &name)],
            });
        }
        let mut channel = json!({
            "id": self.id.to_string(),
            "type": self.kind,
            "guild_id": self.guild_id.map(|g| g.to_string()),
            "name": self.name,
            "parent_id": self.parent_id.map(|p| p.to_string()),
            "position": 0,
            "permission_overwrites": [],
            "nsfw": false,
            "topic": null,
            "last_message_id": null,
            "rate_limit_per_user": 0,
            "flags": 0,
        });
        if matches!(self.kind, 10..=12) {
            channel["owner_id"] = json!(BOT_USER_ID.to_string());
            channel["message_count"] = json!(0);
            channel["member_count"] = json!(1);
            channel["total_message_sent"] = json!(0);
            channel["thread_metadata"] = json!({
                "archived": false,
                "auto_archive_duration": self.auto_archive,
                "archive_timestamp": timestamp(self.created),
                "locked": false,
                "create_timestamp": timestamp(self.created),
            });
        }
        channel
    }

    /// The `channel` object inside an interaction.
    pub fn partial_json(&self) -> Value {
        let mut channel = self.to_json();
        channel["permissions"] = json!(BOT_PERMISSIONS.to_string());
        channel
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_timestamps() {
        let t = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        assert_eq!(timestamp(t), "2023-11-14T22:13:20.123456+00:00");
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000000+00:00");
    }

    #[test]
    fn ids_increase() {
        let mut ids = IdGen::default();
        let a = ids.next();
        let b = ids.next();
        assert!(b > a && a > 1 << 40);
    }
}
