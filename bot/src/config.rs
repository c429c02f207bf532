//! Configuration: a TOML file, then `KLAXON_<SECTION>__<KEY>` environment overrides,
//! then the token from `DISCORD_TOKEN` or `discord.token_file`.
//!
//! Every struct denies unknown keys so a typo is an error naming the key, not a
//! setting silently ignored in the middle of an incident.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Toml};
use figment::Figment;
use klaxon_core::permissions::{Level, RoleMap};
use klaxon_core::settings::services::{ServiceConfig, Thresholds};
use serde::{Deserialize, Serialize, Serializer};

mod checks;
mod diagnose;
pub mod docker;
pub use docker::DockerConfig;
pub mod heartbeats;
#[cfg(test)]
mod load_tests;
pub mod online;
mod paths;

/// A secret: never printed, never logged, never serialized in clear.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

/// A secret is text, but a TOML file or an environment may give it as a number
/// or a boolean (`alertmanager_token = 918273645546372819`): it is kept as written.
/// An error never quotes it.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret::new(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Secret, E> {
                Ok(Secret::new(v.to_string()))
            }
            fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Secret, E> {
                Ok(Secret::new(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Secret, E> {
                Ok(Secret::new(v.to_string()))
            }
            fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<Secret, E> {
                Ok(Secret::new(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Secret, E> {
                Ok(Secret::new(v.to_string()))
            }
        }
        d.deserialize_any(Text)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.is_empty() { "" } else { "****" })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub discord: DiscordConfig,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub docker: DockerConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub channels: ChannelsConfig,
    #[serde(default)]
    pub roles: RoleMap,
    /// Minimum level per command, by name (`health`, `incident open`): overrides
    /// the defaults.
    #[serde(default)]
    pub permissions: BTreeMap<String, Level>,
    #[serde(default)]
    pub health: Thresholds,
    #[serde(default)]
    pub logs: klaxon_core::settings::logs::LogsConfig,
    #[serde(default)]
    pub rollback: klaxon_core::rollout::RolloutConfig,
    #[serde(default)]
    pub incidents: klaxon_core::incidents::IncidentsConfig,
    #[serde(default)]
    pub intake: IntakeConfig,
    #[serde(default)]
    pub alerts: klaxon_core::routing::AlertsConfig,
    #[serde(default)]
    pub maintenance: klaxon_core::maintenance::MaintenanceConfig,
    #[serde(default)]
    pub retention: klaxon_core::settings::retention::RetentionConfig,
    #[serde(default)]
    pub services: Vec<ServiceConfig>,
    #[serde(default)]
    pub oncall: klaxon_core::settings::oncall::OncallConfig,
    /// `[[heartbeats]]`: dead-man's switches for cron jobs.
    #[serde(default)]
    pub heartbeats: Vec<heartbeats::HeartbeatConfig>,
    #[serde(default)]
    pub status_page: klaxon_core::settings::status_page::StatusPageConfig,
    /// `[digests]`: the daily health check and the weekly review.
    #[serde(default)]
    pub digests: klaxon_core::settings::digests::DigestsConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordConfig {
    /// Upstream REST base; tests point it at the fake Discord.
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// Slash commands are registered in this guild.
    pub guild_id: u64,
    /// A file holding the bot token, for secret managers that mount files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// Ceiling on REST requests per second, under Discord's global 50.
    #[serde(default = "default_global_rate")]
    pub global_rate_per_sec: u32,
    /// How long one REST request to Discord may take before it counts as failed
    /// (and alert messages are retried): a Discord that accepts connections but
    /// does not answer must not hang deliveries.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
    /// Resolved from `DISCORD_TOKEN` or `token_file`; never read from the TOML, so
    /// a config file can be shared or committed without leaking it.
    #[serde(skip_deserializing, default)]
    pub token: Secret,
}

fn default_api_url() -> String {
    "https://discord.com".into()
}
fn default_global_rate() -> u32 {
    45
}
fn default_request_timeout() -> u64 {
    20
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    #[serde(serialize_with = "serialize_db_url")]
    pub url: String,
}

fn serialize_db_url<S: Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&klaxon_core::store::redact_url(url))
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://klaxon.db".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Alert intake, /healthz, /readyz and /metrics.
    pub listen: SocketAddr,
    /// Connections held at once. At the limit, the oldest connection without a
    /// request in progress (idle, or still sending its head) is closed for the
    /// new one; when every
    /// connection is in a request, the new one gets 503.
    pub max_connections: usize,
    /// Seconds a sender has for a request head, and again for its body; also how
    /// long an idle keep-alive connection stays open.
    pub read_timeout_secs: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8686)),
            max_connections: 256,
            read_timeout_secs: 10,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelsConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<u64>,
    /// Stakeholder announcements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incidents: Option<u64>,
    /// Every command invocation is mirrored here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<u64>,
}

/// `[intake]`: who may post alerts. A source without a token is switched off (its
/// endpoint answers 404), so nothing is open by accident. Set tokens from the
/// environment (`KLAXON_INTAKE__ALERTMANAGER_TOKEN`) rather than in the file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeConfig {
    /// Bearer token for `POST /alerts/alertmanager`.
    #[serde(default)]
    pub alertmanager_token: Secret,
    /// Bearer token for `POST /alerts/grafana`.
    #[serde(default)]
    pub grafana_token: Secret,
    /// When set, Grafana's `X-Grafana-Alerting-Signature` (HMAC-SHA256 of the body,
    /// or of `timestamp:body` with `X-Grafana-Alerting-Signature-Timestamp`, hex)
    /// must match, and a timestamp must be within 5 minutes.
    #[serde(default)]
    pub grafana_signing_secret: Secret,
    /// Refuse a signed Grafana request without a timestamp: a body-only signature
    /// can be replayed for ever.
    #[serde(default)]
    pub grafana_require_timestamp: bool,
    /// Bearer token for `POST /alerts/generic`.
    #[serde(default)]
    pub generic_token: Secret,
}

impl IntakeConfig {
    /// A token with whitespace is refused at start-up rather than trimmed: a
    /// sender's `Authorization: Bearer` value cannot carry it, so it would be
    /// refused with 401 forever, and a silently trimmed token would differ from
    /// the one the sender was given. The value is never shown.
    pub fn problems(&self) -> Vec<String> {
        let mut errs = Vec::new();
        for (key, secret, bearer) in [
            ("intake.alertmanager_token", &self.alertmanager_token, true),
            ("intake.grafana_token", &self.grafana_token, true),
            (
                "intake.grafana_signing_secret",
                &self.grafana_signing_secret,
                false,
            ),
            ("intake.generic_token", &self.generic_token, true),
        ] {
            let v = secret.expose();
            if v.trim().is_empty() {
                // Unset, or only whitespace: the source is off, as documented.
                continue;
            }
            if v.trim() != v {
                errs.push(format!(
                    "{key}: starts or ends with whitespace (a newline from a secret file?); \
                     remove it (the value is not shown)"
                ));
            } else if bearer && v.chars().any(char::is_whitespace) {
                errs.push(format!(
                    "{key}: contains whitespace, which a bearer token cannot; \
                     remove it (the value is not shown)"
                ));
            }
        }
        errs
    }
}

/// Everything wrong with a config, each naming its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the configuration has {} problem(s):", self.0.len())?;
        for p in &self.0 {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// What the caller needs of a config beyond its syntax.
#[derive(Clone, Copy)]
enum Need {
    /// `klaxon run`: a token, and ids that can be Discord's.
    Run,
    /// `check-config`: ids that can be Discord's; the token is optional.
    Check,
    /// Tools that never reach Discord.
    Offline,
    /// The library (tests, embedders): a token.
    Token,
}

/// Where the token may come from, for tests that must not touch the process env.
pub struct Sources<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

impl Config {
    /// Loads, resolves the token and validates; every problem is listed.
    /// What `klaxon run` uses: also refuses ids that cannot be Discord's.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let env = |k: &str| std::env::var(k).ok();
        Self::load_inner(path, Sources { env: &env }, std::env::vars(), Need::Run)
    }

    /// What `klaxon check-config` uses: everything `run` refuses except a missing
    /// token.
    pub fn load_for_check(path: &Path) -> Result<Config, ConfigErrors> {
        let env = |k: &str| std::env::var(k).ok();
        Self::load_inner(path, Sources { env: &env }, std::env::vars(), Need::Check)
    }

    /// For tools that do not talk to Discord (`check-config`, `migrate`,
    /// `klaxon postmortem`, `klaxon alerts test`): a missing token is no problem, as
    /// `amtool check-config` needs no Alertmanager. A token that is set is still
    /// resolved (and a `token_file` that cannot be read is still reported).
    pub fn load_offline(path: &Path) -> Result<Config, ConfigErrors> {
        let env = |k: &str| std::env::var(k).ok();
        Self::load_inner(path, Sources { env: &env }, std::env::vars(), Need::Offline)
    }

    pub fn load_with(path: &Path, sources: Sources<'_>) -> Result<Config, ConfigErrors> {
        Self::load_from(path, sources, std::env::vars())
    }

    /// As [`Config::load_with`], with the `KLAXON_*__*` overrides from `vars`
    /// instead of the process environment.
    pub fn load_from(
        path: &Path,
        sources: Sources<'_>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigErrors> {
        Self::load_inner(path, sources, vars, Need::Token)
    }

    fn load_inner(
        path: &Path,
        sources: Sources<'_>,
        vars: impl IntoIterator<Item = (String, String)>,
        need: Need,
    ) -> Result<Config, ConfigErrors> {
        let need_token = matches!(need, Need::Run | Need::Token);
        let text = read_file(path).map_err(|e| ConfigErrors(vec![e]))?;
        let env = diagnose::TextEnv::new(vars);
        let figment = Figment::new().merge(Toml::string(&text)).merge(&env);
        let (config, problems) = diagnose::extract(&figment, &env);
        let mut errs: Vec<String> = problems.iter().map(|p| p.line.clone()).collect();
        let reported: Vec<String> = problems
            .iter()
            .map(|p| diagnose::display_key(&p.key))
            .filter(|k| !k.is_empty())
            .collect();
        let Some(mut config) = config else {
            return Err(ConfigErrors(errs));
        };
        // Relative files are the config file's neighbours (see `paths`).
        let base = paths::base_dir(path);
        config.database.url = paths::sqlite_url(&base, &config.database.url);
        if let Some(file) = &config.discord.token_file {
            config.discord.token_file = Some(paths::against(&base, file));
        }
        if let Some(file) = &config.health.ca_file {
            config.health.ca_file = Some(paths::against(&base, file));
        }
        config.docker.resolve_paths(&base);
        if let Err(e) = config.prober() {
            errs.push(e);
        }
        heartbeats::resolve_tokens(&mut config.heartbeats, sources.env);
        let token_file_unreadable = match config.resolve_token(&sources) {
            Ok(()) => false,
            Err(e) => {
                errs.extend(e.0);
                true
            }
        };
        if let Err(e) = config.validate() {
            // What a placeholder or a default caused is not the operator's doing,
            // and an unreadable token file was reported already.
            let already = |line: &String| {
                reported.iter().any(|k| diagnose::covers(k, line))
                    || ((token_file_unreadable || !need_token)
                        && line.starts_with("discord token: missing"))
            };
            errs.extend(e.0.into_iter().filter(|line| !already(line)));
        }
        if matches!(need, Need::Run | Need::Check) {
            errs.extend(config.placeholder_ids());
        }
        if errs.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(errs))
        }
    }

    fn resolve_token(&mut self, sources: &Sources<'_>) -> Result<(), ConfigErrors> {
        if let Some(token) = (sources.env)("DISCORD_TOKEN").filter(|t| !t.trim().is_empty()) {
            self.discord.token = Secret::new(bare_token(&token));
            return Ok(());
        }
        if let Some(file) = &self.discord.token_file {
            let token = std::fs::read_to_string(file).map_err(|e| {
                ConfigErrors(vec![format!(
                    "discord.token_file: cannot read {}: {e}",
                    file.display()
                )])
            })?;
            self.discord.token = Secret::new(bare_token(&token));
        }
        Ok(())
    }

    /// Problems serde cannot see; all of them, not just the first.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut errs = Vec::new();
        if self.discord.token.is_empty() {
            errs.push(
                "discord token: missing; set DISCORD_TOKEN or discord.token_file".to_string(),
            );
        }
        if self.discord.guild_id == 0 {
            errs.push("discord.guild_id: must be the id of your server".into());
        }
        if !(self.discord.api_url.starts_with("https://")
            || self.discord.api_url.starts_with("http://"))
        {
            errs.push(format!(
                "discord.api_url: `{}` is not an http(s) URL",
                klaxon_core::secret::redact_url(&self.discord.api_url)
            ));
        }
        if !(1..=300).contains(&self.discord.request_timeout_secs) {
            errs.push("discord.request_timeout_secs: must be 1 to 300".into());
        }
        if !(1..=50).contains(&self.discord.global_rate_per_sec) {
            errs.push("discord.global_rate_per_sec: must be 1 to 50 (Discord allows 50)".into());
        }
        if let Err(e) = klaxon_core::store::Backend::of_url(&self.database.url) {
            errs.push(format!("database.url: {e}"));
        }
        errs.extend(self.docker.problems(&self.services));
        if self.http.max_connections == 0 {
            errs.push("http.max_connections: must be at least 1".into());
        }
        if !(1..=300).contains(&self.http.read_timeout_secs) {
            errs.push("http.read_timeout_secs: must be 1 to 300".into());
        }
        if self.rollback.max_replicas == 0 {
            errs.push("rollback.max_replicas: must be at least 1".into());
        }
        if self.health.probe_timeout_ms == 0 {
            errs.push("health.probe_timeout_ms: must be at least 1".into());
        }
        errs.extend(self.logs.validate());
        errs.extend(self.incidents.problems());
        errs.extend(self.intake.problems());
        errs.extend(self.retention.problems());
        errs.extend(heartbeats::problems(&self.heartbeats, &self.services));
        if let Err(e) = klaxon_core::routing::Router::new(&self.alerts) {
            errs.extend(e);
        }
        if let Err(e) = klaxon_core::maintenance::Settings::new(&self.maintenance) {
            errs.extend(e);
        }
        if let Err(e) = self.oncall_settings() {
            errs.extend(e);
        }
        if let Err(e) = klaxon_core::settings::digests::Digests::new(&self.digests) {
            errs.extend(e);
        }
        let names: Vec<&str> = self.services.iter().map(|s| s.name.as_str()).collect();
        errs.extend(self.status_page.problems(&names));
        let known = klaxon_commands::known_command_names(&klaxon_commands::all());
        for name in self.permissions.keys() {
            if !known.iter().any(|k| k == name.trim_start_matches('/')) {
                errs.push(format!(
                    "permissions.{name}: no such command (known: {})",
                    known.join(", ")
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, s) in self.services.iter().enumerate() {
            let key = format!("services[{i}]");
            if s.name.trim().is_empty() {
                errs.push(format!("{key}.name: must not be empty"));
            } else if !seen.insert(s.name.to_lowercase()) {
                errs.push(format!("{key}.name: `{}` is configured twice", s.name));
            }
            if s.container.is_none()
                && s.health_url.is_none()
                && s.compose.is_none()
                && s.swarm_service.is_none()
            {
                errs.push(format!(
                    "{key} (`{}`): needs a container, a health_url, or both",
                    s.name
                ));
            }
            errs.extend(compose_problems(&key, s));
            // Swarm services (issue #16): a service is a container or a Swarm service.
            errs.extend(s.swarm_problems(&key));
            if let Some(url) = &s.health_url {
                if reqwest::Url::parse(url)
                    .map(|u| !matches!(u.scheme(), "http" | "https"))
                    .unwrap_or(true)
                {
                    let url = klaxon_core::secret::redact_url(url);
                    errs.push(format!("{key}.health_url: `{url}` is not an http(s) URL"));
                }
            }
            for (j, repo) in s.allowed_images.iter().enumerate() {
                if !klaxon_core::rollout::valid_repository(repo) {
                    errs.push(format!(
                        "{key}.allowed_images[{j}]: `{repo}` is not an image repository (write it without a tag or digest, e.g. `registry:5000/team/app`)"
                    ));
                }
            }
            if let Some(flag) = &s.maintenance_flag {
                errs.extend(flag.problems(&format!("{key}.maintenance_flag")));
                if s.container.is_none() {
                    errs.push(format!(
                        "{key}.maintenance_flag: `{}` has no container to run it in (a Swarm service has many)",
                        s.name
                    ));
                }
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errs))
        }
    }

    /// `[oncall]` validated, with the policies named by alert routes and severities.
    pub fn oncall_settings(&self) -> Result<klaxon_core::settings::oncall::OnCall, Vec<String>> {
        let mut refs = self.incidents.severity.escalation_refs();
        for (i, r) in self.alerts.routes.iter().enumerate() {
            if let Some(e) = &r.escalation {
                refs.push((format!("alerts.routes[{i}].escalation"), e.clone()));
            }
        }
        klaxon_core::settings::oncall::OnCall::new(&self.oncall, &refs)
    }

    /// The resolved config as TOML, secrets masked: what `check-config` prints.
    /// Every text value is masked as a URL would be (user-info passwords, secret
    /// query parameters): `health_url`, `database.url`, `docker.host`, commands.
    pub fn to_masked_toml(&self) -> String {
        fn mask_urls(v: &mut toml::Value) {
            match v {
                toml::Value::String(s) => *s = klaxon_core::secret::redact_url(s),
                toml::Value::Array(a) => a.iter_mut().for_each(mask_urls),
                toml::Value::Table(t) => t.iter_mut().for_each(|(_, v)| mask_urls(v)),
                _ => {}
            }
        }
        let mut v =
            toml::Value::try_from(self).unwrap_or(toml::Value::String("<unprintable>".into()));
        mask_urls(&mut v);
        if let Some(d) = v.get_mut("discord").and_then(|d| d.as_table_mut()) {
            d.insert(
                "token".into(),
                toml::Value::String(
                    if self.discord.token.is_empty() {
                        ""
                    } else {
                        "****"
                    }
                    .into(),
                ),
            );
        }
        toml::to_string_pretty(&v).unwrap_or_default()
    }
}

/// The token as Discord's `Authorization: Bot <token>` needs it: the Developer
/// Portal shows it bare, but guides write `Bot abc`, which would be sent as
/// `Bot Bot abc` and refused.
fn bare_token(raw: &str) -> &str {
    let t = raw.trim();
    match t.get(..4) {
        Some(p) if p.eq_ignore_ascii_case("bot ") => t[4..].trim_start(),
        _ => t,
    }
}

/// The file's text; a directory, a missing or unreadable file, or a TOML syntax
/// error is one clear problem. A syntax error names line and column but does not
/// quote the line, which may hold a secret.
fn read_file(path: &Path) -> Result<String, String> {
    if path.is_dir() {
        return Err(format!(
            "--config {} is a directory; give the path of the TOML file",
            path.display()
        ));
    }
    if !path.exists() {
        return Err(format!(
            "config file {} not found (start from klaxon.example.toml)",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the config file {}: {e}", path.display()))?;
    if let Err(e) = toml::from_str::<toml::Value>(&text) {
        let at = e.span().map_or(String::new(), |span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!(" at line {line}, column {column}")
        });
        return Err(format!("not valid TOML{at}: {}", e.message().trim()));
    }
    Ok(text)
}

/// `compose = "project/service"`: well formed, and not together with `container`
/// (a compose project that matches nothing is only a warning at start-up, since
/// containers come and go).
fn compose_problems(key: &str, s: &klaxon_core::settings::services::ServiceConfig) -> Vec<String> {
    let mut errs = Vec::new();
    if let Some(c) = &s.compose {
        if s.container.is_some() {
            errs.push(format!(
                "{key}.compose: `{}` sets both `container` and `compose`; a service is one container or the replicas of one compose service",
                s.name
            ));
        }
        if klaxon_core::settings::services::compose_parts(c).is_none() {
            errs.push(format!(
                "{key}.compose: `{c}` is not `project/service` (the labels com.docker.compose.project and com.docker.compose.service)"
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let p = dir.path().join("klaxon.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn load(text: &str, token: Option<&str>) -> Result<Config, ConfigErrors> {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, text);
        let token = token.map(String::from);
        let env = move |k: &str| {
            if k == "DISCORD_TOKEN" {
                token.clone()
            } else {
                None
            }
        };
        Config::load_with(&p, Sources { env: &env })
    }

    const GOOD: &str = r#"
[discord]
guild_id = 123
[[services]]
name = "api"
container = "api"
health_url = "http://127.0.0.1:8080/health"
"#;

    #[test]
    fn defaults_and_token_from_env() {
        let c = load(GOOD, Some("abc")).unwrap();
        assert_eq!(c.discord.api_url, "https://discord.com");
        // The default SQLite file is the config file's neighbour.
        assert!(
            c.database.url.starts_with("sqlite:///"),
            "{}",
            c.database.url
        );
        assert!(c.database.url.ends_with("/klaxon.db"), "{}", c.database.url);
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:8686");
        assert_eq!(c.discord.token.expose(), "abc");
        assert_eq!(format!("{:?}", c.discord.token), "Secret(****)");
        let printed = c.to_masked_toml();
        assert!(!printed.contains("abc"), "{printed}");
        assert!(printed.contains("token = \"****\""));
    }

    #[test]
    fn a_bot_prefix_on_the_token_is_dropped() {
        // Guides write `Bot abc`; Discord's header is `Bot <token>`, so the prefix
        // would be sent twice and refused.
        for raw in ["Bot abc", "bot abc", " Bot  abc\n", "abc"] {
            assert_eq!(load(GOOD, Some(raw)).unwrap().discord.token.expose(), "abc");
        }
    }

    #[test]
    fn every_problem_is_listed_with_its_key() {
        let text = r#"
[discord]
guild_id = 0
[database]
url = "mysql://x"
[[services]]
name = "api"
[[services]]
name = "api"
container = "api"
"#;
        let errs = load(text, None).unwrap_err().0;
        let all = errs.join("\n");
        assert!(all.contains("discord token: missing"), "{all}");
        assert!(all.contains("discord.guild_id"), "{all}");
        assert!(all.contains("database.url"), "{all}");
        assert!(
            all.contains("services[0] (`api`): needs a container, a health_url, or both"),
            "{all}"
        );
        assert!(
            all.contains("services[1].name: `api` is configured twice"),
            "{all}"
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let errs = load("[discord]\nguild_id = 1\ngild = 2\n", Some("t"))
            .unwrap_err()
            .0;
        assert_eq!(errs, vec!["discord.gild: unknown key".to_string()]);
        let errs = load("[discord]\nguild_id = 1\n[databse]\nurl='x'\n", Some("t"))
            .unwrap_err()
            .0;
        assert_eq!(
            errs,
            vec!["databse: unknown key; did you mean `database`?".to_string()]
        );
    }

    #[test]
    fn database_password_is_masked() {
        let c = load(
            &format!("{GOOD}\n[database]\nurl = \"postgres://k:hunter2@db/k\"\n"),
            Some("t"),
        )
        .unwrap();
        let printed = c.to_masked_toml();
        assert!(!printed.contains("hunter2"));
        assert!(printed.contains("postgres://k:****@db/k"));
    }
}
