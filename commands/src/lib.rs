//! Klaxon's slash commands, one module per command family.
//!
//! A command parses its arguments, calls `klaxon-core`, and renders the reply.
//! Permission checks, audit and error replies are not in the commands: they are
//! applied to every interaction in one pipeline ([`interaction`]): slash commands
//! reach it through poise's [`hooks`], buttons and forms through the registry in
//! [`components`], from each command's level metadata set in [`all`].

use std::sync::Arc;

use klaxon_core::permissions::Level;

pub mod alerts;
pub mod choices;
pub mod components;
pub mod discord;
pub mod health;
pub mod hooks;
pub mod incident;
pub mod interaction;
pub mod logs;
pub mod maintenance;
pub mod oncall;
pub mod render;
pub mod replica_texts;
pub mod rollback;
pub mod scale;

pub use poise::serenity_prelude as serenity;

/// What every command sees: the application.
pub type Data = Arc<klaxon_core::App>;
pub type Error = anyhow::Error;
pub type Context<'a> = poise::Context<'a, Data, Error>;
pub type Command = poise::Command<Data, Error>;

/// An error whose text is written for the member and safe to show them (as in
/// triagebot). Anything else gets a short generic reply and a log line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UserError(pub String);

impl UserError {
    pub fn new(text: impl Into<String>) -> Self {
        UserError(text.into())
    }
}

impl klaxon_core::user_facing::UserFacing for UserError {
    fn user_text(&self) -> Option<String> {
        Some(self.0.clone())
    }
}

impl From<klaxon_core::docker::UnknownHost> for UserError {
    fn from(e: klaxon_core::docker::UnknownHost) -> Self {
        UserError(e.to_string())
    }
}

impl From<klaxon_core::settings::services::UnknownService> for UserError {
    fn from(e: klaxon_core::settings::services::UnknownService) -> Self {
        UserError(e.to_string())
    }
}

/// The minimum level a command needs, attached to the command itself.
#[derive(Debug, Clone, Copy)]
pub struct MinLevel(pub Level);

fn leveled(mut cmd: Command, level: Level) -> Command {
    cmd.custom_data = Box::new(MinLevel(level));
    cmd
}

/// Every command Klaxon registers, with its default minimum level. The config's
/// `[permissions]` table can raise or lower any of them.
pub fn all() -> Vec<Command> {
    vec![
        leveled(health::health(), Level::Viewer),
        leveled(logs::logs(), Level::Viewer),
        leveled(rollback::rollback(), Level::Operator),
        leveled(rollback::restart(), Level::Operator),
        leveled(scale::scale(), Level::Operator),
        leveled(incident_family(), Level::Responder),
        leveled(incident::add_to_timeline(), Level::Responder),
        leveled(alerts_family(), Level::Viewer),
        leveled(maintenance::maintenance(), Level::Operator),
        leveled(oncall_family(), Level::Viewer),
    ]
}

/// `/oncall`: anyone may look; covering is for responders, overriding for
/// operators.
fn oncall_family() -> Command {
    let mut cmd = oncall::oncall();
    for sub in &mut cmd.subcommands {
        let level = match &*sub.name {
            "cover" | "page" => Level::Responder,
            "override" | "override-cancel" => Level::Operator,
            _ => continue,
        };
        sub.custom_data = Box::new(MinLevel(level));
    }
    cmd
}

/// `/incident`: responders run it; anyone may see the stats.
fn incident_family() -> Command {
    let mut cmd = incident::incident();
    for sub in &mut cmd.subcommands {
        if sub.name == "stats" {
            sub.custom_data = Box::new(MinLevel(Level::Viewer));
        }
    }
    cmd
}

/// `/alerts`: anyone may look; silencing is for responders.
fn alerts_family() -> Command {
    let mut cmd = alerts::alerts();
    for sub in &mut cmd.subcommands {
        if sub.name != "list" {
            sub.custom_data = Box::new(MinLevel(Level::Responder));
        }
    }
    cmd
}

/// Every command and subcommand with its qualified name (`incident action add`),
/// depth first. The names are built here: poise fills `qualified_name` in only when
/// the framework starts, and the config is checked before that.
fn flatten(commands: &[Command]) -> Vec<(String, &Command)> {
    let mut out = Vec::new();
    let mut stack: Vec<(String, &Command)> = commands
        .iter()
        .rev()
        .map(|c| (c.name.to_string(), c))
        .collect();
    while let Some((name, cmd)) = stack.pop() {
        stack.extend(
            cmd.subcommands
                .iter()
                .rev()
                .map(|sub| (format!("{name} {}", sub.name), sub)),
        );
        out.push((name, cmd));
    }
    out
}

/// `(qualified name, default level)` for every command and subcommand.
pub fn default_levels(commands: &[Command]) -> Vec<(String, Level)> {
    flatten(commands)
        .into_iter()
        .filter_map(|(name, c)| {
            let MinLevel(level) = c.custom_data.downcast_ref::<MinLevel>()?;
            Some((name, *level))
        })
        .collect()
}

/// Names a config's `[permissions]` table may use.
pub fn known_command_names(commands: &[Command]) -> Vec<String> {
    flatten(commands)
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_a_level_and_fits_discord() {
        let cmds = all();
        let levels = default_levels(&cmds);
        for c in &cmds {
            assert!(
                levels.iter().any(|(n, _)| n == &c.qualified_name),
                "{} has no level",
                c.name
            );
            assert!(c.name.len() <= 32);
            let desc = c.description.as_deref().unwrap_or_default();
            assert!(
                !desc.is_empty() && desc.chars().count() <= 100,
                "{}: description",
                c.name
            );
        }
        assert!(levels.contains(&("health".to_string(), Level::Viewer)));
        assert!(levels.contains(&("incident stats".to_string(), Level::Viewer)));
        assert!(levels.contains(&("incident".to_string(), Level::Responder)));
    }

    #[test]
    fn subcommands_are_named_as_members_type_them() {
        let names = known_command_names(&all());
        for n in [
            "incident open",
            "incident resolve",
            "incident action add",
            "add-to-timeline",
        ] {
            assert!(names.iter().any(|k| k == n), "{n} in {names:?}");
        }
        assert!(!names.iter().any(|k| k == "open"), "{names:?}");
    }
}
