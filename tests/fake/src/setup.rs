//! How the guild is set up for the bot, as `klaxon check-config --online` reads it:
//! whether the bot was invited at all, which roles exist besides those of members
//! seen in interactions, and channel permission overwrites. Discord's answers are
//! reproduced: a guild the bot is not in answers 403 `Missing Access` (50001) on
//! every guild route, as does a channel the bot may not view; the bot has its
//! managed role (named after it) carrying the invite's permissions.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::error::ApiError;
use crate::model;

/// The bot's managed role, created when it is invited.
pub const BOT_ROLE_ID: u64 = 3;

const VIEW_CHANNEL: u64 = 1 << 10;
pub(crate) const MANAGE_ROLES: u64 = 1 << 28;

pub(crate) struct GuildSetup {
    pub bot_in_guild: bool,
    /// Whether the bot's role carries Manage Roles (`1 << 28`); not by default, as
    /// an invite without it.
    pub manage_roles: bool,
    /// The bot's role position: it may give only roles below it.
    pub bot_role_position: u64,
    /// Users who turned off DMs from server members: a DM to them is 50007.
    pub dms_closed: std::collections::HashSet<u64>,
    /// Roles that exist in the guild whether or not a member has them.
    pub roles: Vec<u64>,
    /// Per channel: `(allow, deny)` of the @everyone overwrite.
    pub everyone: HashMap<u64, (u64, u64)>,
}

impl Default for GuildSetup {
    fn default() -> Self {
        GuildSetup {
            bot_in_guild: true,
            manage_roles: false,
            bot_role_position: 1,
            dms_closed: Default::default(),
            roles: Vec::new(),
            everyone: HashMap::new(),
        }
    }
}

impl GuildSetup {
    /// 403 when the bot is not in the guild.
    pub fn member_check(&self) -> Result<(), ApiError> {
        if self.bot_in_guild {
            Ok(())
        } else {
            Err(ApiError::missing_access())
        }
    }

    /// The bot's managed role.
    pub fn bot_role(&self) -> Value {
        let permissions = model::BOT_PERMISSIONS | if self.manage_roles { MANAGE_ROLES } else { 0 };
        let mut r = model::role(
            BOT_ROLE_ID,
            model::BOT_USERNAME,
            permissions,
            self.bot_role_position,
        );
        r["managed"] = json!(true);
        r["tags"] = json!({ "bot_id": crate::BOT_USER_ID.to_string() });
        r
    }

    /// A guild channel as the bot sees it: 403 when it may not view it, else its
    /// JSON with the @everyone overwrite.
    pub fn channel(&self, guild_id: u64, id: u64, mut channel: Value) -> Result<Value, ApiError> {
        let Some(&(allow, deny)) = self.everyone.get(&id) else {
            return Ok(channel);
        };
        self.member_check()?;
        if deny & VIEW_CHANNEL != 0 {
            return Err(ApiError::missing_access());
        }
        channel["permission_overwrites"] = json!([{
            "id": guild_id.to_string(),
            "type": 0,
            "allow": allow.to_string(),
            "deny": deny.to_string(),
        }]);
        Ok(channel)
    }
}
