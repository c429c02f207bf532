//! Who acted: the one type for the member behind a command, click or modal.
//!
//! Every interaction (slash command, button, form, context menu) names the member
//! who acted and where, for permission checks, the audit log and the timelines.
//! Domain code takes this one type instead of each family naming its own.

/// A member acting through Klaxon, and where they did it (for the audit log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user_id: u64,
    pub name: String,
    pub guild_id: Option<u64>,
    pub channel_id: Option<u64>,
}
