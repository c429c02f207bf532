//! Who acted: the one type for the member behind a command, click or modal.
//!
//! Every interaction (slash command, button, form, context menu) names the member
//! who acted and where, for permission checks, the audit log and the timelines.
//! Domain code takes this one type instead of each family naming its own.

/// A member acting through Klaxon, and where they did it (for the audit log).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Actor {
    pub user_id: u64,
    pub name: String,
    pub guild_id: Option<u64>,
    pub channel_id: Option<u64>,
}

impl Actor {
    /// A member known by id and name only: a record read back from the database,
    /// or someone named in a command (an incident role's new holder).
    pub fn member(user_id: u64, name: impl Into<String>) -> Actor {
        Actor {
            user_id,
            name: name.into(),
            guild_id: None,
            channel_id: None,
        }
    }

    /// Klaxon itself, for what its workers do (timeline entries, scheduled steps).
    pub fn klaxon() -> Actor {
        Actor::member(0, "Klaxon")
    }
}
