//! `klaxon run | check-config | migrate`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

use crate::config::Config;

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
    /// Run the bot.
    Run(ConfigArg),
    /// Validate the config, print it resolved with secrets masked; exit 1 listing every problem.
    CheckConfig(ConfigArg),
    /// Apply database migrations and exit.
    Migrate(ConfigArg),
    /// Write an incident's post-mortem (Markdown) from its timeline, to stdout or a file.
    Postmortem(PostmortemArgs),
    /// Alert tools.
    #[command(subcommand)]
    Alerts(AlertsCommand),
}

#[derive(Subcommand, Debug)]
pub enum AlertsCommand {
    /// Show which route a payload matches and the exact messages it would post
    /// (like `amtool config routes test`); sends nothing.
    Test(AlertsTestArgs),
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

fn init_logging(format: LogFormat) {
    // KLAXON_LOG takes the usual RUST_LOG syntax.
    let user = std::env::var("KLAXON_LOG").ok();
    let filter = EnvFilter::try_new(log_filter(user.as_deref()))
        .unwrap_or_else(|_| EnvFilter::new(log_filter(None)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
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
            eprintln!("klaxon: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match cli.command {
            Command::CheckConfig(a) => check_config(&a.config).await,
            Command::Migrate(a) => migrate(&a.config).await,
            Command::Postmortem(a) => postmortem(&a).await,
            Command::Alerts(AlertsCommand::Test(a)) => alerts_test(&a),
            Command::Run(a) => match load(&a.config) {
                Some(config) => match crate::run::run(config).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("klaxon: {e:#}");
                        ExitCode::FAILURE
                    }
                },
                None => ExitCode::FAILURE,
            },
        }
    })
}

fn load(path: &std::path::Path) -> Option<Config> {
    match Config::load(path) {
        Ok(c) => Some(c),
        Err(errs) => {
            eprint!("klaxon: {}: {errs}", path.display());
            None
        }
    }
}

async fn check_config(path: &std::path::Path) -> ExitCode {
    let Some(config) = load(path) else {
        return ExitCode::FAILURE;
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
                Err(e) => Some(format!("database.url: {e}")),
            }
        }
        Ok(klaxon_core::store::Backend::Sqlite) => sqlite_dir_problem(&config.database.url),
        Err(e) => Some(format!("database.url: {e}")),
    };
    println!("{}", config.to_masked_toml());
    match db_problem {
        Some(p) => {
            eprintln!(
                "klaxon: {}: the configuration has 1 problem(s):\n  - {p}",
                path.display()
            );
            ExitCode::FAILURE
        }
        None => {
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
    use klaxon_core::alerts::{deliver, parse};
    use klaxon_core::routing::Router;
    let path = &args.config.config;
    let config = match Config::load_offline(path) {
        Ok(c) => c,
        Err(errs) => {
            eprint!("klaxon: {}: {errs}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let body = match std::fs::read(&args.payload) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("klaxon: cannot read {}: {e}", args.payload.display());
            return ExitCode::FAILURE;
        }
    };
    let source = args.source.clone().unwrap_or_else(|| {
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        match v.get("version").and_then(|v| v.as_str()) {
            Some("4") => "alertmanager".into(),
            Some("1") => "grafana".into(),
            _ => "generic".into(),
        }
    });
    let parsed = match source.as_str() {
        "alertmanager" => parse::alertmanager(&body),
        "grafana" => parse::grafana(&body),
        _ => parse::generic(&body),
    };
    let alerts = match parsed {
        Ok(a) => a,
        Err(e) => {
            // What the intake would answer: 400 with this reason.
            eprintln!("klaxon: the intake would refuse this {source} payload (400): {e}");
            return ExitCode::FAILURE;
        }
    };
    let router = match Router::new(&config.alerts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("klaxon: {}", e.join("; "));
            return ExitCode::FAILURE;
        }
    };
    let now = chrono::Utc::now().timestamp_millis();
    let previews = deliver::preview(
        &router,
        config.channels.alerts,
        config.incidents.on_call_role,
        &alerts,
        now,
    );
    println!(
        "{} {source} alert(s) in {} group(s)",
        alerts.len(),
        previews.len()
    );
    for p in previews {
        let route = match p.route {
            Some(i) => format!("route #{i} ([[alerts.routes]] number {})", i + 1),
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
            eprintln!("klaxon: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Only the database is needed: no Discord token is asked for.
    let path = &args.config.config;
    let config = match Config::load_offline(path) {
        Ok(c) => c,
        Err(errs) => {
            eprint!("klaxon: {}: {errs}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let store = match crate::run::open_store(&config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("klaxon: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let now = chrono::Utc::now().timestamp_millis();
    let result = klaxon_core::incidents::postmortem::generate_in(&store, id, now).await;
    store.close().await;
    let markdown = match result {
        Ok((_, md)) => md,
        Err(e) => {
            eprintln!("klaxon: {e}");
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
                eprintln!("klaxon: cannot write {}: {e}", file.display());
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
    let Some(config) = load(path) else {
        return ExitCode::FAILURE;
    };
    match crate::run::open_store(&config).await {
        Ok(store) => {
            store.close().await;
            eprintln!("klaxon: migrations applied");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("klaxon: {e:#}");
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
