//! The test world: [`Tester`] drives the real bot against the fake Discord.
//!
//! The bot is configured as an operator's is, in the way of zero2prod's
//! `spawn_app`: a `klaxon.toml` goes through the binary's own loader (the same
//! defaults, validation and diagnostics), and only what exists once the test world
//! runs is overridden. A setting a test needs is one builder method.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use klaxon::config::{Config, HttpConfig, Secret, Sources};
use klaxon::Bot;
use klaxon_core::permissions::Level;
use klaxon_core::settings::services::{ServiceConfig, Thresholds};
use klaxon_fake_discord::{
    FakeConfig, FakeDiscord, Interaction, Member, MessageRecord, Output, OutputKind,
    SlashInvocation,
};
use serde_json::{json, Value};

use crate::env;

pub const GUILD: u64 = 123;
pub const ALERTS: u64 = 111;
pub const INCIDENTS: u64 = 222;
pub const AUDIT: u64 = 333;
/// Where members type commands.
pub const OPS: u64 = 444;
/// How long any single read waits for the bot.
pub const READ_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

impl Db {
    pub const BOTH: [Db; 2] = [Db::Sqlite, Db::Postgres];
}

pub fn role_of(level: Level) -> u64 {
    match level {
        Level::Viewer => 1001,
        Level::Responder => 1002,
        Level::Operator => 1003,
        Level::Admin => 1004,
    }
}

/// The test world's `klaxon.toml`, in `dir`: what every [`Tester`]'s bot starts
/// from before [`TesterBuilder`]'s methods and [`TesterBuilder::spawn`]'s overrides.
/// Only what makes a test world differs from an operator's file.
fn base_toml(dir: &Path) -> String {
    format!(
        r#"# The test world's Klaxon, loaded as the binary loads its config.
[discord]
guild_id = {GUILD}
# discord.api_url: the fake Discord's, set once it runs.

[database]
# A fresh file per test; a test on PostgreSQL gets a fresh database instead.
url = {db}

[docker]
# Tests without containers never touch Docker; a missing socket makes any
# accidental use visible.
host = "unix:///nonexistent/klaxon-test.sock"

[http]
# A free loopback port: tests run in parallel.
listen = "127.0.0.1:0"

[channels]
alerts = {ALERTS}
incidents = {INCIDENTS}

[roles]
viewer = [{viewer}]
responder = [{responder}]
operator = [{operator}]
admin = [{admin}]

[health]
probe_timeout_ms = 2000

[alerts]
# Probes only where a test asks for them: a probe round of a service's
# health_url would post alerts that the test did not expect.
probe_interval_secs = 0
docker_events = false

[maintenance]
# Ticks every second, so a test that moves the clock sees windows start and end
# within a read timeout.
tick_secs = 1
"#,
        db = toml_string(&env::sqlite_url(dir)),
        viewer = role_of(Level::Viewer),
        responder = role_of(Level::Responder),
        operator = role_of(Level::Operator),
        admin = role_of(Level::Admin),
    )
}

/// A TOML basic string (JSON's escapes are valid TOML).
fn toml_string(s: &str) -> String {
    Value::String(s.into()).to_string()
}

/// Loads the test world's config with the binary's own loader (figment, the same
/// defaults, validation and diagnostics). The token is the fake Discord's; no
/// `KLAXON_*` variable of the developer's shell reaches a test.
fn load_config(dir: &Path, token: &str) -> Config {
    let path = dir.join("klaxon.toml");
    std::fs::write(&path, base_toml(dir)).expect("writing the test world's klaxon.toml");
    let token = token.to_string();
    let env = move |k: &str| (k == "DISCORD_TOKEN").then(|| token.clone());
    Config::load_from(&path, Sources { env: &env }, std::iter::empty())
        .unwrap_or_else(|e| panic!("the test world's klaxon.toml does not load: {e}"))
}

/// A bot configured as an operator's is: [`Tester::builder`] loads the config
/// through the real loader, each method below changes one setting, and
/// [`TesterBuilder::spawn`] overrides only what exists once the test world runs
/// (the fake Discord's URL and token, a PostgreSQL database).
pub struct TesterBuilder {
    config: Config,
    db: Db,
    database_url: Option<String>,
    fake: FakeConfig,
    /// Discord answers 503 to every REST request for this long after the fake
    /// starts: the bot starts during an outage.
    outage_at_start: Option<Duration>,
    /// Holds the config file and the SQLite database.
    dir: tempfile::TempDir,
}

impl TesterBuilder {
    /// The bot starts while Discord answers 503 to everything, for `d`.
    pub fn outage_at_start(mut self, d: Duration) -> Self {
        self.outage_at_start = Some(d);
        self
    }
    pub fn db(mut self, db: Db) -> Self {
        self.db = db;
        self
    }
    /// `discord.request_timeout_secs`.
    pub fn request_timeout(mut self, secs: u64) -> Self {
        self.config.discord.request_timeout_secs = secs;
        self
    }
    /// A database URL of the test's own (a proxy in front of PostgreSQL, a file
    /// on a small disk) instead of a fresh one.
    pub fn database_url(mut self, url: &str) -> Self {
        self.database_url = Some(url.into());
        self
    }
    pub fn service(
        mut self,
        name: &str,
        container: Option<&str>,
        health_url: Option<&str>,
    ) -> Self {
        self.config.services.push(ServiceConfig {
            name: name.into(),
            container: container.map(String::from),
            health_url: health_url.map(String::from),
            maintenance_flag: None,
            allowed_images: Vec::new(),
            compose: None,
            swarm_service: None,
            host: None,
        });
        self
    }
    /// A service made of the replicas of a compose service (`compose = "project/service"`).
    pub fn compose_service(mut self, name: &str, compose: &str) -> Self {
        self.config.services.push(ServiceConfig {
            name: name.into(),
            container: None,
            health_url: None,
            maintenance_flag: None,
            allowed_images: Vec::new(),
            compose: Some(compose.into()),
            swarm_service: None,
            host: None,
        });
        self
    }
    pub fn docker_host(mut self, host: &str) -> Self {
        self.config.docker.host = host.into();
        self
    }
    /// One more engine (`[[docker.hosts]]`); `tls`: the directory of ca.pem,
    /// cert.pem and key.pem.
    pub fn docker_engine(mut self, name: &str, host: &str, tls: Option<&std::path::Path>) -> Self {
        self.config
            .docker
            .hosts
            .push(klaxon::config::docker::DockerHostConfig {
                name: name.into(),
                host: host.into(),
                tls: tls.map(|d| klaxon::config::docker::TlsConfig {
                    ca: d.join("ca.pem"),
                    cert: d.join("cert.pem"),
                    key: d.join("key.pem"),
                }),
                timeout_secs: 2,
            });
        self
    }
    /// The engine of the service added last (`[[services]] host`).
    pub fn on_host(mut self, host: &str) -> Self {
        if let Some(s) = self.config.services.last_mut() {
            s.host = Some(host.into());
        }
        self
    }
    pub fn audit_channel(mut self, channel: u64) -> Self {
        self.config.channels.audit = Some(channel);
        self
    }
    pub fn fake(mut self, f: impl FnOnce(&mut FakeConfig)) -> Self {
        f(&mut self.fake);
        self
    }
    pub fn thresholds(mut self, f: impl FnOnce(&mut Thresholds)) -> Self {
        f(&mut self.config.health);
        self
    }
    pub fn logs(mut self, f: impl FnOnce(&mut klaxon_core::settings::logs::LogsConfig)) -> Self {
        f(&mut self.config.logs);
        self
    }
    pub fn rollback(mut self, f: impl FnOnce(&mut klaxon_core::rollout::RolloutConfig)) -> Self {
        f(&mut self.config.rollback);
        self
    }
    pub fn incidents(
        mut self,
        f: impl FnOnce(&mut klaxon_core::incidents::IncidentsConfig),
    ) -> Self {
        f(&mut self.config.incidents);
        self
    }
    /// Alert routes and grouping timers.
    pub fn alerts(mut self, f: impl FnOnce(&mut klaxon_core::routing::AlertsConfig)) -> Self {
        f(&mut self.config.alerts);
        self
    }
    /// `[oncall]`: schedules, escalation policies, webhooks.
    pub fn oncall(
        mut self,
        f: impl FnOnce(&mut klaxon_core::settings::oncall::OncallConfig),
    ) -> Self {
        f(&mut self.config.oncall);
        self
    }
    /// `[maintenance]`: time zone, lead times, longest window.
    pub fn maintenance(
        mut self,
        f: impl FnOnce(&mut klaxon_core::maintenance::MaintenanceConfig),
    ) -> Self {
        f(&mut self.config.maintenance);
        self
    }
    /// A service's maintenance flag settings (the last service added).
    /// `allowed_images` of the service added last.
    pub fn allowed_images(mut self, repos: &[&str]) -> Self {
        if let Some(s) = self.config.services.last_mut() {
            s.allowed_images = repos.iter().map(|r| r.to_string()).collect();
        }
        self
    }
    /// A service that is the Docker Swarm service `swarm` (no container).
    pub fn swarm_service(mut self, name: &str, swarm: &str) -> Self {
        self = self.service(name, None, None);
        if let Some(s) = self.config.services.last_mut() {
            s.swarm_service = Some(swarm.into());
        }
        self
    }
    pub fn flag(mut self, f: klaxon_core::settings::services::FlagConfig) -> Self {
        if let Some(s) = self.config.services.last_mut() {
            s.maintenance_flag = Some(f);
        }
        self
    }
    /// `[status_page]`; set `listen` to `127.0.0.1:0` to serve it.
    pub fn status_page(
        mut self,
        f: impl FnOnce(&mut klaxon_core::settings::status_page::StatusPageConfig),
    ) -> Self {
        f(&mut self.config.status_page);
        self
    }
    /// `[http]` limits (the listen address is always a free loopback port).
    pub fn http(mut self, f: impl FnOnce(&mut HttpConfig)) -> Self {
        f(&mut self.config.http);
        self
    }
    /// Alert intake tokens (none by default: every source switched off).
    pub fn intake(mut self, f: impl FnOnce(&mut klaxon::config::IntakeConfig)) -> Self {
        f(&mut self.config.intake);
        self
    }
    /// `[retention]` of the bot's config.
    pub fn retention(
        mut self,
        f: impl FnOnce(&mut klaxon_core::settings::retention::RetentionConfig),
    ) -> Self {
        f(&mut self.config.retention);
        self
    }

    /// A `[[heartbeats]]` entry (durations as the config writes them: `10m`).
    pub fn heartbeat(
        mut self,
        name: &str,
        period: &str,
        grace: &str,
        service: Option<&str>,
        token: &str,
    ) -> Self {
        self.config
            .heartbeats
            .push(klaxon::config::heartbeats::HeartbeatConfig {
                name: name.into(),
                period: period.into(),
                grace: grace.into(),
                service: service.map(String::from),
                token: Secret::new(token),
            });
        self
    }
    pub fn permission(mut self, command: &str, level: Level) -> Self {
        self.config.permissions.insert(command.into(), level);
        self
    }

    /// Starts the fake Discord and the real bot on a fresh database.
    pub async fn spawn(self) -> Tester {
        init_logging();
        let fake = FakeDiscord::start(self.fake.clone())
            .await
            .expect("starting the fake Discord");
        if let Some(d) = self.outage_at_start {
            fake.inject(klaxon_fake_discord::FaultRule::Outage {
                path_contains: String::new(),
                status: 503,
                until: std::time::Instant::now() + d,
            });
        }
        // What only exists now that the test world runs; everything else is as
        // loaded and set by the builder.
        let mut config = self.config;
        config.discord.api_url = fake.api_url();
        config.discord.token = Secret::new(self.fake.token.clone());
        match (self.database_url, self.db) {
            (Some(url), _) => config.database.url = url,
            (None, Db::Sqlite) => {}
            (None, Db::Postgres) => config.database.url = env::fresh_pg_database().await,
        }
        // `[http]` limits are the test's; the port is always a free one.
        config.http.listen = "127.0.0.1:0".parse().expect("addr");
        config.validate().expect("test config is valid");
        let bot = klaxon::start(config.clone())
            .await
            .expect("the bot starts against the fake Discord");
        Tester {
            fake,
            bot: Some(bot),
            config,
            pending: Mutex::new(Vec::new()),
            finished: false,
            _dir: self.dir,
        }
    }
}

/// `KLAXON_TEST_LOG=klaxon=debug cargo test ...` shows the bot's logs of a failing test.
pub fn init_logging() {
    let filter = std::env::var("KLAXON_TEST_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_test_writer()
        .try_init();
}

pub struct Tester {
    pub fake: FakeDiscord,
    pub bot: Option<Bot>,
    pub config: Config,
    /// Outputs read from the fake but not yet claimed by an expectation.
    pending: Mutex<Vec<Output>>,
    finished: bool,
    _dir: tempfile::TempDir,
}

/// What a member sees in answer to a command.
#[derive(Debug, Clone)]
pub struct Reply {
    pub message: MessageRecord,
    /// The reply came after a "thinking…" defer.
    pub deferred: bool,
    /// INTERACTION_CREATE to the interaction callback (Discord's 3 s deadline).
    pub ack_latency: Duration,
    /// INTERACTION_CREATE to the visible answer.
    pub latency: Duration,
}

impl Reply {
    pub fn text(&self) -> String {
        self.message.text()
    }
    pub fn ephemeral(&self) -> bool {
        self.message.ephemeral()
    }
    #[track_caller]
    pub fn assert_contains(&self, needle: &str) -> &Self {
        let text = self.text();
        assert!(
            text.contains(needle),
            "reply does not contain {needle:?}:\n{text}"
        );
        self
    }
}

impl Tester {
    pub fn builder() -> TesterBuilder {
        let dir = tempfile::tempdir().expect("temp dir");
        let fake = FakeConfig::default();
        TesterBuilder {
            config: load_config(dir.path(), &fake.token),
            db: Db::Sqlite,
            database_url: None,
            fake,
            outage_at_start: None,
            dir,
        }
    }

    pub fn bot(&self) -> &Bot {
        self.bot.as_ref().expect("bot running")
    }

    pub fn member(level: Option<Level>) -> Member {
        let (id, name) = match level {
            Some(l) => (5000 + role_of(l), format!("{l}-member")),
            None => (4999, "no-role-member".to_string()),
        };
        Member {
            user_id: id,
            username: name,
            roles: level.map(role_of).into_iter().collect(),
        }
    }

    /// A slash command as the member types it: `slash("health")`, or with its
    /// subcommand path, `slash("incident open")`, `slash("incident action add")`.
    pub fn slash(&self, name: &str) -> Slash<'_> {
        let mut words = name.split_whitespace().map(String::from);
        let name = words.next().unwrap_or_default();
        let sub: Vec<String> = words.collect();
        Slash {
            t: self,
            name,
            options: Vec::new(),
            member: Some(Tester::member(Some(Level::Admin))),
            dm: false,
            sub,
            channel_id: OPS,
        }
    }

    /// Takes the first output matching `pred`, keeping the others for later reads.
    /// Safe to call from several tasks at once: each reader looks at what the
    /// others set aside between short reads.
    pub async fn take(&self, what: &str, pred: impl Fn(&Output) -> bool) -> Output {
        let deadline = Instant::now() + READ_TIMEOUT;
        loop {
            {
                let mut pending = self.pending.lock().expect("pending");
                if let Some(i) = pending.iter().position(&pred) {
                    return pending.remove(i);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "timed out after {READ_TIMEOUT:?} waiting for {what}; unclaimed outputs: {:#?}",
                    self.pending.lock().expect("pending")
                );
            }
            match self
                .fake
                .next_output(left.min(Duration::from_millis(20)))
                .await
            {
                Some(o) if pred(&o) => return o,
                Some(o) => self.pending.lock().expect("pending").push(o),
                None => {}
            }
        }
    }

    /// A member posts a message (MESSAGE_CREATE); returns its id.
    pub async fn user_message(
        &self,
        channel_id: u64,
        who: &Member,
        content: &str,
        attachment_urls: &[&str],
    ) -> u64 {
        static NEXT: std::sync::atomic::AtomicU64 =
            std::sync::atomic::AtomicU64::new(9_100_000_000_000_000);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let attachments: Vec<Value> = attachment_urls
            .iter()
            .enumerate()
            .map(|(i, url)| {
                json!({ "id": (id + 1_000 + i as u64).to_string(), "filename": "shot.png",
                        "size": 1, "url": url, "proxy_url": url })
            })
            .collect();
        let d = json!({
            "id": id.to_string(), "channel_id": channel_id.to_string(), "guild_id": GUILD.to_string(),
            "author": { "id": who.user_id.to_string(), "username": who.username, "discriminator": "0",
                        "global_name": null, "avatar": null },
            "member": { "roles": who.roles.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
                        "joined_at": "2024-01-01T00:00:00.000000+00:00", "deaf": false, "mute": false, "flags": 0 },
            "content": content, "timestamp": chrono::Utc::now().to_rfc3339(), "edited_timestamp": null,
            "tts": false, "mention_everyone": false, "mentions": [], "mention_roles": [],
            "attachments": attachments, "embeds": [], "pinned": false, "type": 0, "flags": 0,
            "components": [],
        });
        self.fake
            .dispatch("MESSAGE_CREATE", d)
            .await
            .expect("dispatching MESSAGE_CREATE");
        id
    }

    /// A member reacts to a message (MESSAGE_REACTION_ADD).
    pub async fn react(&self, channel_id: u64, message_id: u64, who: &Member, emoji: &str) {
        let d = json!({
            "user_id": who.user_id.to_string(), "channel_id": channel_id.to_string(),
            "message_id": message_id.to_string(), "guild_id": GUILD.to_string(),
            "member": { "user": { "id": who.user_id.to_string(), "username": who.username,
                                  "discriminator": "0", "global_name": null, "avatar": null },
                        "roles": who.roles.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
                        "joined_at": "2024-01-01T00:00:00.000000+00:00", "deaf": false, "mute": false, "flags": 0 },
            "emoji": { "id": null, "name": emoji }, "burst": false, "type": 0,
        });
        self.fake
            .dispatch("MESSAGE_REACTION_ADD", d)
            .await
            .expect("dispatching MESSAGE_REACTION_ADD");
    }

    /// A member edits their message (MESSAGE_UPDATE).
    pub async fn edit_user_message(&self, channel_id: u64, message_id: u64, content: &str) {
        let d = json!({
            "id": message_id.to_string(), "channel_id": channel_id.to_string(),
            "guild_id": GUILD.to_string(), "content": content,
            "edited_timestamp": chrono::Utc::now().to_rfc3339(),
        });
        self.fake
            .dispatch("MESSAGE_UPDATE", d)
            .await
            .expect("dispatching MESSAGE_UPDATE");
    }

    /// A message is deleted (MESSAGE_DELETE).
    pub async fn delete_user_message(&self, channel_id: u64, message_id: u64) {
        let d = json!({ "id": message_id.to_string(), "channel_id": channel_id.to_string(),
                        "guild_id": GUILD.to_string() });
        self.fake
            .dispatch("MESSAGE_DELETE", d)
            .await
            .expect("dispatching MESSAGE_DELETE");
    }

    /// The next edit the bot made to a message in a channel.
    pub async fn channel_edit(&self, channel_id: u64) -> MessageRecord {
        self.take(
            &format!("an edit in channel {channel_id}"),
            |o| matches!(o.kind, OutputKind::ChannelEdit { channel_id: c } if c == channel_id),
        )
        .await
        .message
    }

    /// The next message the bot posted to a channel (not an interaction reply).
    pub async fn channel_message(&self, channel_id: u64) -> MessageRecord {
        self.take(
            &format!("a message in channel {channel_id}"),
            |o| matches!(o.kind, OutputKind::ChannelMessage { channel_id: c } if c == channel_id),
        )
        .await
        .message
    }

    /// Stops the bot (gracefully), lets `down` pass on its clock, and starts it
    /// again on the same database, as after a restart that took that long.
    pub async fn restart(&mut self, down: Duration) {
        let bot = self.bot.take().expect("bot running");
        let clock = bot.app.clock.clone();
        bot.shutdown().await;
        clock.advance(down);
        let bot = klaxon::start_with_clock(self.config.clone(), clock)
            .await
            .expect("the bot starts again");
        self.bot = Some(bot);
    }

    /// Forgets everything the bot said that no test read yet (after letting late
    /// replies land): for tests about something else than those messages.
    pub async fn discard_unread(&self) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.pending.lock().expect("pending").clear();
        self.fake.discard_outputs();
    }

    /// Moves the bot's clock forward (scheduled work comes due at once).
    pub fn advance(&self, by: Duration) {
        self.bot().app.clock.advance(by);
    }

    /// Ends the test world: fails on anything unread or any Discord limit broken.
    pub async fn finish(mut self) {
        self.finished = true;
        // Let fire-and-forget sends (audit mirror) land before looking.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut unread: Vec<Output> = std::mem::take(&mut *self.pending.lock().expect("pending"));
        unread.extend(self.fake.unread_outputs());
        let violations = self.fake.violations();
        if let Some(bot) = self.bot.take() {
            bot.shutdown().await;
        }
        assert!(
            unread.is_empty(),
            "the bot said things the test did not read: {unread:#?}"
        );
        assert_eq!(
            violations.total(),
            0,
            "the bot broke Discord's rules: {violations:#?}"
        );
    }
}

impl Drop for Tester {
    fn drop(&mut self) {
        if !self.finished && !std::thread::panicking() {
            panic!("a Tester must end with `tester.finish().await` (it checks unread output and violations)");
        }
    }
}

pub struct Slash<'t> {
    t: &'t Tester,
    name: String,
    options: Vec<Value>,
    member: Option<Member>,
    dm: bool,
    /// Subcommand (group) path: `["action", "add"]` for `/incident action add`.
    sub: Vec<String>,
    channel_id: u64,
}

impl<'t> Slash<'t> {
    /// An option, typed from the JSON value (string, integer, boolean, number).
    pub fn opt(mut self, name: &str, value: impl Into<Value>) -> Self {
        let value = value.into();
        let kind = match &value {
            Value::Bool(_) => 5,
            Value::Number(n) if n.is_i64() || n.is_u64() => 4,
            Value::Number(_) => 10,
            _ => 3,
        };
        self.options
            .push(json!({"name": name, "type": kind, "value": value}));
        self
    }
    /// A user option (type 6): Discord also sends the user in `resolved`.
    pub fn opt_user(mut self, name: &str, user_id: u64) -> Self {
        self.options
            .push(json!({"name": name, "type": 6, "value": user_id.to_string()}));
        self
    }
    /// Where the member types it (default: the ops channel).
    pub fn in_channel(mut self, channel_id: u64) -> Self {
        self.channel_id = channel_id;
        self
    }
    pub fn as_level(mut self, level: Level) -> Self {
        self.member = Some(Tester::member(Some(level)));
        self
    }
    pub fn without_role(mut self) -> Self {
        self.member = Some(Tester::member(None));
        self
    }
    pub fn as_member(mut self, m: Member) -> Self {
        self.member = Some(m);
        self
    }
    pub fn in_dm(mut self) -> Self {
        self.dm = true;
        self
    }

    fn invocation(&self, mut options: Vec<Value>) -> SlashInvocation {
        let m = self.member.clone().unwrap_or_else(|| Tester::member(None));
        // Innermost first: the subcommand (type 1), then its group (type 2).
        for (depth, name) in self.sub.iter().enumerate().rev() {
            let kind = if depth + 1 == self.sub.len() { 1 } else { 2 };
            options = vec![json!({"name": name, "type": kind, "options": options})];
        }
        SlashInvocation {
            name: self.name.clone(),
            options,
            member: if self.dm { None } else { Some(m.clone()) },
            user_for_dm: if self.dm {
                Some((m.user_id, m.username.clone()))
            } else {
                None
            },
            channel_id: self.channel_id,
            guild_id: if self.dm { None } else { Some(GUILD) },
        }
    }

    pub async fn send(self) -> Invocation<'t> {
        let inv = self.invocation(self.options.clone());
        let interaction = self
            .t
            .fake
            .slash(inv)
            .await
            .expect("dispatching the slash command");
        Invocation {
            t: self.t,
            interaction,
        }
    }

    /// Autocomplete for `option` with `partial` typed; returns the choices' values.
    pub async fn autocomplete(self, option: &str, partial: &str) -> Vec<String> {
        let mut options = self.options.clone();
        options.push(json!({"name": option, "type": 3, "value": partial, "focused": true}));
        let interaction = self
            .t
            .fake
            .autocomplete(self.invocation(options))
            .await
            .expect("autocomplete");
        let id = interaction.id;
        let out = self
            .t
            .take("an autocomplete answer", |o| {
                matches!(o.kind, OutputKind::Callback { interaction_id, callback_type: 8 } if interaction_id == id)
            })
            .await;
        let choices = out
            .message
            .raw
            .pointer("/data/choices")
            .or_else(|| out.message.raw.get("choices"));
        choices
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.get("value").and_then(Value::as_str).map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
}

pub struct Invocation<'t> {
    t: &'t Tester,
    pub interaction: Interaction,
}

impl Invocation<'_> {
    /// What the member finally sees: the callback's message, or after a defer the
    /// edit of the original response (or its first followup).
    pub async fn reply(&self) -> Reply {
        let id = self.interaction.id;
        let sent = self.interaction.dispatched_at;
        let cb = self
            .t
            .take(&format!("the callback of interaction {id}"), |o| {
                matches!(o.kind, OutputKind::Callback { interaction_id, .. } if interaction_id == id)
            })
            .await;
        let ack_latency = cb.at.saturating_duration_since(sent);
        let OutputKind::Callback { callback_type, .. } = cb.kind else {
            unreachable!()
        };
        if callback_type != 5 && callback_type != 6 {
            return Reply {
                message: cb.message,
                deferred: false,
                ack_latency,
                latency: ack_latency,
            };
        }
        let out = self
            .t
            .take(
                &format!("the deferred reply of interaction {id}"),
                |o| match o.kind {
                    OutputKind::EditOriginal { interaction_id }
                    | OutputKind::Followup { interaction_id } => interaction_id == id,
                    _ => false,
                },
            )
            .await;
        let mut message = out.message;
        // The answer to a deferred command keeps the defer's ephemerality.
        message.flags |= cb.message.flags & 64;
        Reply {
            message,
            deferred: true,
            ack_latency,
            latency: out.at.saturating_duration_since(sent),
        }
    }
}
