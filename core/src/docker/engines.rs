//! The engines Klaxon talks to, by name: `[[docker.hosts]]` plus the single
//! `[docker] host`, which is the engine named `default`.
//!
//! Why a registry rather than one client: a team past one machine runs its
//! services on several engines, and every area (health, logs, rollouts, the
//! maintenance flag, events) must reach the engine of the service it acts on. The
//! lookup is the one place a service's `host` turns into a client, so a service
//! naming an engine nobody configured fails the same way everywhere (check-config
//! refuses it before that can happen).

use std::sync::LazyLock;
use std::time::Duration;

use super::DockerClient;

/// Only for an `Engines` built empty by hand: `App::build` always inserts
/// `default`, so no running Klaxon reaches it.
static FALLBACK: LazyLock<DockerClient> =
    LazyLock::new(|| DockerClient::new("unix:///var/run/docker.sock", Duration::from_secs(5)));

/// The name of the engine of `[docker] host`, and of a service naming none.
pub const DEFAULT_HOST: &str = "default";

/// A service names an engine that is not configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("No Docker host named `{name}`. Known hosts: {}.", known.join(", "))]
pub struct UnknownHost {
    pub name: String,
    pub known: Vec<String>,
}

/// The configured engines, in the config's order (`default` first).
#[derive(Debug, Clone, Default)]
pub struct Engines {
    hosts: Vec<(String, DockerClient)>,
}

impl Engines {
    /// Adds (or replaces) the engine called `name`.
    pub fn insert(&mut self, name: &str, client: DockerClient) {
        match self.hosts.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = client,
            None => self.hosts.push((name.to_string(), client)),
        }
    }

    /// The engine called `name`.
    pub fn get(&self, name: &str) -> Result<&DockerClient, UnknownHost> {
        self.hosts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c)
            .ok_or_else(|| UnknownHost {
                name: name.to_string(),
                known: self.names().map(String::from).collect(),
            })
    }

    /// Every engine with its name, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &DockerClient)> {
        self.hosts.iter().map(|(n, c)| (n.as_str(), c))
    }

    /// The first engine (`default`, which `App::build` always inserts).
    pub fn first(&self) -> &DockerClient {
        match self.hosts.first() {
            Some((_, client)) => client,
            None => &FALLBACK,
        }
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.hosts.iter().map(|(n, _)| n.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_unknown_host_names_the_known_ones() {
        let mut e = Engines::default();
        e.insert(
            DEFAULT_HOST,
            DockerClient::new("unix:///a", Duration::from_secs(1)),
        );
        e.insert(
            "edge",
            DockerClient::new("tcp://127.0.0.1:1", Duration::from_secs(1)),
        );
        assert_eq!(e.get("edge").map(|c| c.host()), Ok("tcp://127.0.0.1:1"));
        let err = e.get("nope").unwrap_err();
        assert_eq!(
            err.to_string(),
            "No Docker host named `nope`. Known hosts: default, edge."
        );
    }
}
