//! Permission levels and their mapping from Discord role ids.
//!
//! Klaxon checks the level itself on every invocation: guild admins can change
//! Discord's own per-command settings, so those are never trusted.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Ordered: a higher level may do everything a lower one may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Viewer,
    Responder,
    Operator,
    Admin,
}

impl Level {
    pub const ALL: [Level; 4] = [
        Level::Viewer,
        Level::Responder,
        Level::Operator,
        Level::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Viewer => "viewer",
            Level::Responder => "responder",
            Level::Operator => "operator",
            Level::Admin => "admin",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown permission level `{0}` (expected viewer, responder, operator or admin)")]
pub struct UnknownLevel(String);

impl FromStr for Level {
    type Err = UnknownLevel;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownLevel(s.to_string()))
    }
}

/// `[roles]` in the config: the Discord role ids that grant each level.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleMap {
    #[serde(default)]
    pub viewer: Vec<u64>,
    #[serde(default)]
    pub responder: Vec<u64>,
    #[serde(default)]
    pub operator: Vec<u64>,
    #[serde(default)]
    pub admin: Vec<u64>,
}

impl RoleMap {
    fn roles(&self, level: Level) -> &[u64] {
        match level {
            Level::Viewer => &self.viewer,
            Level::Responder => &self.responder,
            Level::Operator => &self.operator,
            Level::Admin => &self.admin,
        }
    }

    /// The highest level any of the member's roles grants, if any.
    pub fn level_of(&self, member_roles: &[u64]) -> Option<Level> {
        Level::ALL
            .into_iter()
            .rev()
            .find(|&level| self.roles(level).iter().any(|r| member_roles.contains(r)))
    }
}

/// The minimum level of every command, by qualified name (`"health"`, `"incident open"`).
#[derive(Debug, Clone)]
pub struct Policy {
    roles: RoleMap,
    minimum: BTreeMap<String, Level>,
}

/// Why a member may not run a command: the text is shown to them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("`/{command}` needs the {needed} level; you have no Klaxon role.")]
    NoRole { command: String, needed: Level },
    #[error("`/{command}` needs the {needed} level; you have {have}.")]
    TooLow {
        command: String,
        needed: Level,
        have: Level,
    },
}

impl Policy {
    /// `defaults` come from the command list (each command's metadata); `overrides`
    /// from `[permissions]` in the config and win.
    pub fn new(
        roles: RoleMap,
        defaults: impl IntoIterator<Item = (String, Level)>,
        overrides: &BTreeMap<String, Level>,
    ) -> Self {
        let mut minimum: BTreeMap<String, Level> = defaults.into_iter().collect();
        for (name, level) in overrides {
            minimum.insert(name.trim_start_matches('/').to_string(), *level);
        }
        Policy { roles, minimum }
    }

    /// The level a command needs: its own entry, else its parent's (`"incident open"`
    /// falls back to `"incident"`), else admin, so a command nobody classified is safe.
    pub fn required(&self, qualified_name: &str) -> Level {
        let mut name = qualified_name;
        loop {
            if let Some(level) = self.minimum.get(name) {
                return *level;
            }
            match name.rsplit_once(' ') {
                Some((parent, _)) => name = parent,
                None => return Level::Admin,
            }
        }
    }

    pub fn level_of(&self, member_roles: &[u64]) -> Option<Level> {
        self.roles.level_of(member_roles)
    }

    /// Checks a member against a command; `Ok` carries the member's level.
    pub fn check(&self, qualified_name: &str, member_roles: &[u64]) -> Result<Level, Denied> {
        let needed = self.required(qualified_name);
        match self.level_of(member_roles) {
            Some(have) if have >= needed => Ok(have),
            Some(have) => Err(Denied::TooLow {
                command: qualified_name.to_string(),
                needed,
                have,
            }),
            None => Err(Denied::NoRole {
                command: qualified_name.to_string(),
                needed,
            }),
        }
    }

    /// Commands whose minimum is known, for `check-config` and the docs.
    pub fn table(&self) -> impl Iterator<Item = (&str, Level)> {
        self.minimum.iter().map(|(k, v)| (k.as_str(), *v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        let roles = RoleMap {
            viewer: vec![1],
            responder: vec![2],
            operator: vec![3],
            admin: vec![4],
        };
        let mut overrides = BTreeMap::new();
        overrides.insert("/logs".to_string(), Level::Responder);
        Policy::new(
            roles,
            [
                ("health".into(), Level::Viewer),
                ("logs".into(), Level::Viewer),
                ("incident".into(), Level::Responder),
            ],
            &overrides,
        )
    }

    #[test]
    fn highest_role_wins() {
        let p = policy();
        assert_eq!(p.level_of(&[1, 3]), Some(Level::Operator));
        assert_eq!(p.level_of(&[99]), None);
    }

    #[test]
    fn overrides_and_parent_fallback() {
        let p = policy();
        assert_eq!(p.required("logs"), Level::Responder);
        assert_eq!(p.required("incident open"), Level::Responder);
        assert_eq!(p.required("unknown"), Level::Admin);
    }

    #[test]
    fn denial_names_the_level() {
        let p = policy();
        let err = p.check("logs", &[1]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`/logs` needs the responder level; you have viewer."
        );
        let err = p.check("health", &[]).unwrap_err();
        assert!(err
            .to_string()
            .contains("viewer level; you have no Klaxon role"));
        assert_eq!(p.check("health", &[4]), Ok(Level::Admin));
    }

    #[test]
    fn level_parses_case_insensitively() {
        assert_eq!("Operator".parse::<Level>().unwrap(), Level::Operator);
        assert!("root".parse::<Level>().is_err());
    }
}
