//! `klaxon run | check-config | migrate | postmortem | alerts | db | healthcheck`.
//!
//! Fatal errors go through [`fatal`]: one `klaxon: …` line on a terminal, a JSON
//! record with `--log-format json`, so a log pipeline sees why Klaxon stopped.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

use crate::config::Config;

mod db;
mod tools;

#[derive(Parser, Debug)]
#[command(
    name = "klaxon",
    version,
    about = "Discord chat-ops for teams that run services in containers"
)]
pub struct Cli {
    /// Log format: text for a terminal, json for a log pipeline.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "KLAXON_LOG_FORMAT", global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the bot. The Discord token comes from DISCORD_TOKEN or the file named by
    /// discord.token_file, never from the config file.
    Run(ConfigArg),
    /// Validate the config, print it resolved with secrets masked; exit 1 listing every
    /// problem. Needs no Discord token; --online also checks Discord, Docker and the
    /// services' health URLs.
    CheckConfig(CheckConfigArgs),
    /// Apply database migrations and exit (needs no Discord token).
    Migrate(ConfigArg),
    /// Exit 0 when the running Klaxon's /healthz answers (for a container HEALTHCHECK).
    Healthcheck(ConfigArg),
    /// Write an incident's post-mortem (Markdown) from its timeline, to stdout or a file.
    Postmortem(PostmortemArgs),
    /// Alert tools.
    #[command(subcommand)]
    Alerts(AlertsCommand),
    /// Database tools.
    #[command(subcommand)]
    Db(DbCommand),
}

#[derive(Subcommand, Debug)]
pub enum DbCommand {
    /// Print the rows and size of every table (indexes included) and the total;
    /// read-only, needs no Discord token.
    Stats(ConfigArg),
}

#[derive(Subcommand, Debug)]
pub enum AlertsCommand {
    /// Show which route a payload matches and the exact messages it would post
    /// (like `amtool config routes test`); sends nothing.
    Test(AlertsTestArgs),
    /// Post a demo alert to the running Klaxon's Alertmanager intake (http.listen,
    /// intake.alertmanager_token), through the same path Alertmanager uses.
    SendTest(SendTestArgs),
}

#[derive(clap::Args, Debug)]
pub struct SendTestArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The Alertmanager webhook body to send (default: the demo alert of
    /// docs/examples/alertmanager.json, with fresh times).
    #[arg(long)]
    pub payload: Option<PathBuf>,
    /// Where Klaxon listens (default: http.listen from the config).
    #[arg(long)]
    pub url: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct CheckConfigArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Also check the token, that the bot is in the guild, that every channel is
    /// visible and writable, that every role exists, that the Docker engine answers,
    /// and that every health_url answers; one line per check.
    #[arg(long)]
    pub online: bool,
}

#[derive(clap::Args, Debug)]
pub struct AlertsTestArgs {
    /// A webhook body: Alertmanager, Grafana or Klaxon's generic JSON.
    pub payload: PathBuf,
    #[command(flatten)]
    pub config: ConfigArg,
    /// The payload's format (default: from its `version`: 4 Alertmanager, 1 Grafana,
    /// else generic).
    #[arg(long, value_parser = ["alertmanager", "grafana", "generic"])]
    pub source: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct PostmortemArgs {
    /// The incident, e.g. INC-7.
    pub incident: String,
    #[command(flatten)]
    pub config: ConfigArg,
    /// Write to this file instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct ConfigArg {
    /// The TOML config file.
    #[arg(long, short, default_value = "klaxon.toml", env = "KLAXON_CONFIG")]
    pub config: PathBuf,
}

/// The filter when `KLAXON_LOG` is not set.
const DEFAULT_LOG: &str = "info,serenity=warn,poise=warn,sqlx=warn,tracing::span=warn";

/// Libraries whose debug and trace logs carry request and response bodies:
/// bollard's container inspect holds the container's environment (its passwords),
/// hyper, h2 and reqwest log headers. They stay at `warn` whatever general level
/// `KLAXON_LOG` asks for; naming one (`KLAXON_LOG=debug,bollard=debug`) opts in.
const NOISY_WITH_SECRETS: &[&str] = &[
    "bollard",
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
    "rustls",
    "tower",
    "tungstenite",
    "tokio_tungstenite",
];

/// `KLAXON_LOG` (RUST_LOG syntax), or the default, with every library of
/// [`NOISY_WITH_SECRETS`] the user did not name explicitly held at `warn`.
pub fn log_filter(user: Option<&str>) -> String {
    let base = user
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .unwrap_or(DEFAULT_LOG);
    let named = |lib: &str| {
        base.split(',').any(|d| {
            let target = d.split(['=', '[']).next().unwrap_or("").trim();
            target == lib || target.starts_with(&format!("{lib}::"))
        })
    };
    let mut filter = base.to_string();
    for lib in NOISY_WITH_SECRETS.iter().filter(|l| !named(l)) {
        filter.push_str(&format!(",{lib}=warn"));
    }
    filter
}

/// Set once `--log-format json` is in force: fatal errors become JSON records.
static JSON_LOGS: AtomicBool = AtomicBool::new(false);

/// A fatal (or final) error for the operator: `klaxon: …` on stderr, or an ERROR
/// record in the JSON log.
pub fn fatal(message: impl std::fmt::Display) {
    let text = message.to_string();
    let text = text.trim_end();
    if JSON_LOGS.load(Ordering::Relaxed) {
        tracing::error!(target: "klaxon", "{text}");
    } else {
        eprintln!("klaxon: {text}");
    }
}

/// ANSI colours only for a terminal, and never with `NO_COLOR` set (no-color.org).
pub fn colour(is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// serenity warns "Received an error awaiting close frame" on every clean
/// shutdown: after its own close frame the connection ends before Discord's echo.
/// Nothing is wrong, and a WARN at every stop teaches operators to ignore WARNs;
/// this one event (serenity 0.12.5, `checked_shutdown`, the `warn!` at line 254) is
/// dropped.
pub fn is_shutdown_noise(meta: &tracing::Metadata<'_>) -> bool {
    *meta.level() == tracing::Level::WARN
        && meta.target() == "serenity::gateway::bridge::shard_runner"
        && meta
            .file()
            .is_some_and(|f| f.ends_with("gateway/bridge/shard_runner.rs"))
        && meta.line().is_some_and(|l| (250..=260).contains(&l))
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    // KLAXON_LOG takes the usual RUST_LOG syntax.
    let user = std::env::var("KLAXON_LOG").ok();
    let filter = EnvFilter::try_new(log_filter(user.as_deref()))
        .unwrap_or_else(|_| EnvFilter::new(log_filter(None)));
    let ansi = colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    JSON_LOGS.store(format == LogFormat::Json, Ordering::Relaxed);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let layer = match format {
        LogFormat::Text => layer.boxed(),
        LogFormat::Json => layer
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed(),
    };
    let quiet = tracing_subscriber::filter::filter_fn(|meta| !is_shutdown_noise(meta));
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(filter).with_filter(quiet))
        .try_init();
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            fatal(format!("cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match cli.command {
            Command::CheckConfig(a) => check_config(&a.config.config, a.online).await,
            Command::Migrate(a) => migrate(&a.config).await,
            Command::Healthcheck(a) => tools::healthcheck(&a.config).await,
            Command::Postmortem(a) => postmortem(&a).await,
            Command::Alerts(AlertsCommand::Test(a)) => alerts_test(&a),
            Command::Alerts(AlertsCommand::SendTest(a)) => tools::send_test(&a).await,
            Command::Db(DbCommand::Stats(a)) => db::stats(&a.config).await,
            Command::Run(a) => match load(&a.config) {
                Some(config) => {
                    for w in config.warnings() {
                        tracing::warn!("{w}");
                    }
                    match crate::run::run(config).await {
                        Ok(()) => ExitCode::SUCCESS,
                        Err(e) => {
                            fatal(tools::full_chain(&e));
                            ExitCode::FAILURE
                        }
                    }
                }
                None => ExitCode::FAILURE,
            },
        }
    })
}

fn load(path: &std::path::Path) -> Option<Config> {
    match Config::load(path) {
        Ok(c) => Some(c),
        Err(errs) => {
            fatal(format!("{}: {errs}", path.display()));
            None
        }
    }
}

/// For tools that do not talk to Discord: no token needed.
fn load_offline(path: &std::path::Path) -> Option<Config> {
    match Config::load_offline(path) {
        Ok(c) => Some(c),
        Err(errs) => {
            fatal(format!("{}: {errs}", path.display()));
            None
        }
    }
}

async fn check_config(path: &std::path::Path, online: bool) -> ExitCode {
    let config = match Config::load_for_check(path) {
        Ok(c) => c,
        Err(errs) => {
            fatal(format!("{}: {errs}", path.display()));
            return ExitCode::FAILURE;
        }
    };
    // A PostgreSQL URL is checked for reachability; a SQLite file is created on
    // first run, so only its directory must exist.
    let db_problem = match klaxon_core::store::Backend::of_url(&config.database.url) {
        Ok(klaxon_core::store::Backend::Postgres) => {
            match klaxon_core::store::Store::connect(&config.database.url).await {
                Ok(s) => {
                    s.close().await;
                    None
                }
                Err(e) => Some(format!(
                    "database.url: {}",
                    crate::config::online::chain(&e)
                )),
            }
        }
        Ok(klaxon_core::store::Backend::Sqlite) => sqlite_dir_problem(&config.database.url),
        Err(e) => Some(format!("database.url: {e}")),
    };
    println!("{}", config.to_masked_toml());
    for w in config.warnings() {
        eprintln!("klaxon: warning: {w}");
    }
    if config.discord.token.is_empty() {
        eprintln!(
            "klaxon: note: no Discord token set; `klaxon run` and `check-config --online` \
             need DISCORD_TOKEN or discord.token_file"
        );
    }
    let mut online_failed = false;
    if online {
        for check in crate::config::online::run(&config).await {
            online_failed |= !check.ok;
            println!("{check}");
        }
    }
    let problems: Vec<String> = db_problem.into_iter().collect();
    match problems.is_empty() {
        false => {
            let errs = crate::config::ConfigErrors(problems);
            fatal(format!("{}: {errs}", path.display()));
            ExitCode::FAILURE
        }
        true if online_failed => {
            fatal(format!(
                "{}: the file is valid, but the online checks above failed",
                path.display()
            ));
            ExitCode::FAILURE
        }
        true => {
            eprintln!("klaxon: {}: configuration OK", path.display());
            ExitCode::SUCCESS
        }
    }
}

fn sqlite_dir_problem(url: &str) -> Option<String> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path.contains(":memory:") {
        return None;
    }
    let dir = std::path::Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty());
    match dir {
        Some(d) if !d.is_dir() => Some(format!(
            "database.url: directory {} does not exist",
            d.display()
        )),
        _ => None,
    }
}

fn alerts_test(args: &AlertsTestArgs) -> ExitCode {
    use klaxon_core::alerts::{deliver, parse, AlertStatus};
    use klaxon_core::routing::Router;
    let Some(config) = load_offline(&args.config.config) else {
        return ExitCode::FAILURE;
    };
    let body = match std::fs::read(&args.payload) {
        Ok(b) => b,
        Err(e) => {
            fatal(format!("cannot read {}: {e}", args.payload.display()));
            return ExitCode::FAILURE;
        }
    };
    let source = args
        .source
        .clone()
        .unwrap_or_else(|| tools::source_of(&body).into());
    let parsed = match source.as_str() {
        "alertmanager" => parse::alertmanager(&body),
        "grafana" => parse::grafana(&body),
        _ => parse::generic(&body),
    };
    let alerts = match parsed {
        Ok(a) => a,
        Err(e) => {
            // What the intake would answer: 400 with this reason.
            fatal(format!(
                "the intake would refuse this {source} payload (400): {e}"
            ));
            return ExitCode::FAILURE;
        }
    };
    let router = match Router::new(&config.alerts) {
        Ok(r) => r,
        Err(e) => {
            fatal(e.join("; "));
            return ExitCode::FAILURE;
        }
    };
    // A resolved alert only edits the message of the firing one it closes; one
    // Klaxon never saw firing posts nothing (it is counted, as the intake does).
    let (firing, resolved): (Vec<_>, Vec<_>) = alerts
        .into_iter()
        .partition(|a| a.status == AlertStatus::Firing);
    let now = chrono::Utc::now().timestamp_millis();
    let previews = deliver::preview(
        &router,
        config.channels.alerts,
        config.incidents.on_call_role,
        &firing,
        now,
    );
    println!(
        "{} {source} alert(s) firing in {} group(s)",
        firing.len(),
        previews.len()
    );
    if !resolved.is_empty() {
        println!(
            "{} resolved alert(s): each closes its firing alert's message; one Klaxon \
             never saw firing posts nothing",
            resolved.len()
        );
    }
    for p in previews {
        let route = match p.route {
            Some(i) => format!("route: [[alerts.routes]] number {} of the config", i + 1),
            None => "no route matched: the default (channels.alerts, severity label)".into(),
        };
        let channel = p.channel.map_or_else(
            || "nowhere (no channel: set channels.alerts)".to_string(),
            |c| c.to_string(),
        );
        println!(
            "\ngroup {}\n  {route}\n  channel {channel} · {} · {}",
            p.group_key,
            p.severity,
            if p.page {
                "pages the on-call role"
            } else {
                "no page"
            }
        );
        for (i, m) in p.messages.iter().enumerate() {
            println!("  message {} of {}:", i + 1, p.messages.len());
            // What Discord would get: the paged role's mention rendered into the text.
            let shown = klaxon_core::chat::ChatMessage {
                content: klaxon_core::chat::discord::content(m).into(),
                ping_roles: klaxon_core::chat::discord::ping_roles(m),
                page: None,
                ..m.clone()
            };
            let json = serde_json::to_string_pretty(&shown).unwrap_or_default();
            for l in json.lines() {
                println!("    {l}");
            }
        }
    }
    ExitCode::SUCCESS
}

async fn postmortem(args: &PostmortemArgs) -> ExitCode {
    let id = match args.incident.parse::<klaxon_core::incidents::IncidentId>() {
        Ok(id) => id,
        Err(e) => {
            fatal(e);
            return ExitCode::FAILURE;
        }
    };
    // Only the database is needed: no Discord token is asked for.
    let Some(config) = load_offline(&args.config.config) else {
        return ExitCode::FAILURE;
    };
    // A read-only tool never creates a database: a missing file means a wrong
    // --config or database.url, not an empty history.
    if let Some(file) = klaxon_core::leader::sqlite_file(&config.database.url) {
        if !file.exists() {
            fatal(format!(
                "database.url: no database at {} (nothing to read; is --config the right file?)",
                file.display()
            ));
            return ExitCode::FAILURE;
        }
    }
    let store = match crate::run::open_store(&config).await {
        Ok(s) => s,
        Err(e) => {
            fatal(tools::full_chain(&e));
            return ExitCode::FAILURE;
        }
    };
    let now = chrono::Utc::now().timestamp_millis();
    let result = klaxon_core::incidents::postmortem::generate_in(&store, id, now).await;
    store.close().await;
    let markdown = match result {
        Ok((_, md)) => md,
        Err(e) => {
            fatal(e);
            return ExitCode::FAILURE;
        }
    };
    match &args.output {
        Some(file) => match std::fs::write(file, markdown) {
            Ok(()) => {
                eprintln!("klaxon: wrote {}", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                fatal(format!("cannot write {}: {e}", file.display()));
                ExitCode::FAILURE
            }
        },
        None => {
            print!("{markdown}");
            ExitCode::SUCCESS
        }
    }
}

async fn migrate(path: &std::path::Path) -> ExitCode {
    let Some(config) = load_offline(path) else {
        return ExitCode::FAILURE;
    };
    match crate::run::open_store(&config).await {
        Ok(store) => {
            store.close().await;
            eprintln!("klaxon: migrations applied");
            ExitCode::SUCCESS
        }
        Err(e) => {
            fatal(tools::full_chain(&e));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Item 6 of issue #12: `KLAXON_LOG=debug` must not print bollard's container
    /// inspect (the container's environment) nor HTTP headers; naming bollard opts in.
    #[test]
    fn secrets_in_library_debug_logs_stay_out_of_the_default_filters() {
        for user in [
            None,
            Some("debug"),
            Some("trace"),
            Some("info,klaxon=debug"),
        ] {
            let f = log_filter(user);
            for lib in ["bollard", "hyper", "h2", "reqwest"] {
                assert!(f.contains(&format!(",{lib}=warn")), "{user:?}: {f}");
            }
            assert!(EnvFilter::try_new(&f).is_ok(), "{f}");
        }
        let f = log_filter(Some("debug,bollard=debug"));
        assert!(!f.contains("bollard=warn"), "{f}");
        assert!(f.contains("hyper=warn"), "{f}");
        let f = log_filter(Some("bollard::docker=trace"));
        assert!(!f.contains("bollard=warn"), "{f}");
        // What reaches the log under KLAXON_LOG=debug: Klaxon's debug, not bollard's.
        let printed = capture(&log_filter(Some("debug")), || {
            tracing::debug!(target: "bollard::docker", "inspect: Env=[DB_PASSWORD=hunter2]");
            tracing::debug!(target: "klaxon::run", "klaxon detail");
        });
        assert!(printed.contains("klaxon detail"), "{printed}");
        assert!(!printed.contains("hunter2"), "{printed}");
        let printed = capture(&log_filter(Some("debug,bollard=debug")), || {
            tracing::debug!(target: "bollard::docker", "inspect: opted in");
        });
        assert!(printed.contains("opted in"), "{printed}");
    }

    fn capture(filter: &str, f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new(filter))
            .with_writer(move || out.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = buf.0.lock().unwrap().clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}
