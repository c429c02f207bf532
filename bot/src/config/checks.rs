//! Checks a new team trips over that serde cannot see: ids copied from the
//! example (`guild_id = 123`) that cannot be Discord snowflakes, and settings that
//! are valid but leave Klaxon useless (no roles: every command is refused; no
//! services: nothing to watch), which are warnings, not errors.

use super::Config;

/// The smallest id Discord can give: a snowflake carries its creation time in
/// milliseconds since 2015 in the bits above 22, so anything below 2^22 was made
/// at Discord's epoch itself, i.e. it is a placeholder. Real ids have 17-20 digits.
const MIN_SNOWFLAKE: u64 = 1 << 22;

/// Every configured Discord id, with its key.
fn ids(c: &Config) -> Vec<(String, u64)> {
    let mut out = vec![("discord.guild_id".to_string(), c.discord.guild_id)];
    let ch = &c.channels;
    for (k, v) in [
        ("alerts", ch.alerts),
        ("incidents", ch.incidents),
        ("audit", ch.audit),
    ] {
        if let Some(v) = v {
            out.push((format!("channels.{k}"), v));
        }
    }
    let r = &c.roles;
    for (k, list) in [
        ("viewer", &r.viewer),
        ("responder", &r.responder),
        ("operator", &r.operator),
        ("admin", &r.admin),
    ] {
        out.extend(list.iter().map(|&v| (format!("roles.{k}"), v)));
    }
    if let Some(v) = c.incidents.category_id {
        out.push(("incidents.category_id".into(), v));
    }
    if let Some(v) = c.incidents.on_call_role {
        out.push(("incidents.on_call_role".into(), v));
    }
    for (i, r) in c.alerts.routes.iter().enumerate() {
        if let Some(v) = r.channel {
            out.push((format!("alerts.routes[{i}].channel"), v));
        }
    }
    out
}

/// Ids that cannot be real, when Klaxon talks to Discord itself (a stand-in such as
/// the test suite's fake Discord may use any id). Only `run` and `check-config`
/// refuse them: tools that never reach Discord need not care.
fn placeholder_ids(c: &Config) -> Vec<String> {
    let real_discord = c.discord.api_url.trim_end_matches('/') == "https://discord.com";
    if !real_discord {
        return Vec::new();
    }
    ids(c)
        .into_iter()
        .filter(|(_, id)| *id != 0 && *id < MIN_SNOWFLAKE)
        .map(|(key, id)| {
            format!(
                "{key}: {id} cannot be a Discord id (real ids have 17 to 20 digits; \
                 copy it with Developer Mode on: right-click → Copy ID)"
            )
        })
        .collect()
}

impl Config {
    /// The health prober, trusting `health.ca_file` besides the bundled roots.
    pub fn prober(&self) -> Result<klaxon_core::probe::Prober, String> {
        let Some(file) = &self.health.ca_file else {
            return Ok(klaxon_core::probe::Prober::new());
        };
        let pem = std::fs::read(file)
            .map_err(|e| format!("health.ca_file: cannot read {}: {e}", file.display()))?;
        klaxon_core::probe::Prober::with_extra_ca(&pem)
            .map_err(|e| format!("health.ca_file: {}: {e}", file.display()))
    }

    /// Ids copied from the example that cannot be Discord snowflakes (refused by
    /// [`Config::load`] and [`Config::load_for_check`] when `api_url` is Discord's).
    pub fn placeholder_ids(&self) -> Vec<String> {
        placeholder_ids(self)
    }

    /// Valid, but most likely not what the operator wants; printed by
    /// `check-config` and logged at start-up.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let r = &self.roles;
        if r.viewer.is_empty()
            && r.responder.is_empty()
            && r.operator.is_empty()
            && r.admin.is_empty()
        {
            out.push(
                "roles: no role is mapped to a level, so every command is refused; \
                 add your role ids under [roles] (e.g. admin = [ROLE_ID])"
                    .to_string(),
            );
        }
        if self.services.is_empty() {
            out.push(
                "services: none configured; /health, /logs, /rollback and the probes have \
                 nothing to watch (add [[services]] entries)"
                    .to_string(),
            );
        }
        out
    }
}
