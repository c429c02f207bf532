//! docs/configuration.md is checked against the config structs: every key the
//! structs accept (defaults serialised, optional keys filled in below) must be
//! documented there as `` `key` ``. A new key without documentation fails here.

use klaxon::Config;

/// The keys that have no default, so serialising the defaults would not show them.
const OPTIONAL: &str = r#"
[discord]
guild_id = 123
token_file = "/run/secrets/discord_token"
[health]
ca_file = "/etc/ssl/internal-ca.pem"
[channels]
alerts = 1
incidents = 2
audit = 3
[incidents]
category_id = 4
on_call_role = 5
[incidents.severity.P1]
description = "down"
ack_minutes = 5
update_minutes = 15
page = true
[[alerts.routes]]
match = { team = "payments" }
match_re = { service = "api|web" }
channel = 6
severity = "P1"
page = true
escalation = "runbook"
[incidents.severity.P2]
escalation = "runbook"
[[oncall.schedules]]
name = "primary"
timezone = "UTC"
members = [1]
shift = "1d"
start = "2026-12-07T09:00"
sync_role = 7
announce = 8
[[oncall.policies]]
name = "runbook"
repeat = 1
steps = [{ after = "0m", notify = "schedule:primary" }]
[[oncall.webhooks]]
name = "ntfy"
url = "https://ntfy.example/x"
body = "{title}"
[retention]
incidents_days = 1095
[[services]]
name = "api"
container = "api"
health_url = "http://127.0.0.1:8080/health"
[services.maintenance_flag]
path = "/app/MAINTENANCE"
on = ["on"]
off = ["off"]
check = ["check"]
"#;

fn keys(prefix: &str, v: &toml::Value, out: &mut Vec<String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                // Tables of user-chosen names (label matchers, [permissions]).
                if !matches!(k.as_str(), "match" | "match_re") {
                    out.push(format!("{prefix}{k}"));
                }
                if !matches!(k.as_str(), "match" | "match_re" | "permissions") {
                    keys(&format!("{prefix}{k}."), v, out);
                }
            }
        }
        toml::Value::Array(a) => {
            if let Some(first) = a.first().filter(|f| f.is_table()) {
                keys(prefix, first, out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_config_key_is_in_the_reference() {
    let config: Config = toml::from_str(OPTIONAL).expect("the sample parses");
    let value = toml::Value::try_from(&config).expect("serialises");
    let mut all = Vec::new();
    keys("", &value, &mut all);
    assert!(all.len() > 60, "{all:?}");
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/configuration.md"
    ))
    .expect("docs/configuration.md");
    let missing: Vec<&String> = all
        .iter()
        .filter(|path| {
            let key = path.rsplit('.').next().unwrap_or_default();
            !doc.contains(&format!("`{key}`")) && !doc.contains(&format!("[{path}]"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "keys of the config structs missing from docs/configuration.md: {missing:?}"
    );
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(format!("{}/../{rel}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn all_keys() -> Vec<String> {
    let config: Config = toml::from_str(OPTIONAL).expect("the sample parses");
    let value = toml::Value::try_from(&config).expect("serialises");
    let mut all = Vec::new();
    keys("", &value, &mut all);
    all
}

/// klaxon.example.toml "lists every key": each one appears as `key =`, set or
/// commented out.
#[test]
fn the_example_config_lists_every_key() {
    let example = read("klaxon.example.toml");
    let missing: Vec<String> = all_keys()
        .into_iter()
        .filter(|path| {
            let key = path.rsplit('.').next().unwrap_or_default();
            // Tables show as [key] or [[key]].
            !example.contains(&format!("{key} =")) && !example.contains(&format!("{key}]"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "keys missing from klaxon.example.toml: {missing:?}"
    );
}

/// Each key of a top-level table is documented in that table's section of
/// docs/configuration.md (`request_timeout_secs` once sat under `[database]`).
#[test]
fn each_key_is_documented_in_its_own_section() {
    let doc = read("docs/configuration.md");
    let section = |table: &str| -> Option<String> {
        let head = format!("## `[{table}]`");
        let start = doc.find(&head)?;
        let rest = &doc[start + head.len()..];
        let end = rest.find("\n## ").unwrap_or(rest.len());
        Some(rest[..end].to_string())
    };
    for table in ["discord", "database", "docker", "http"] {
        let text = section(table).unwrap_or_else(|| panic!("no section for [{table}]"));
        for path in all_keys() {
            let Some(key) = path.strip_prefix(&format!("{table}.")) else {
                continue;
            };
            if key.contains('.') {
                continue;
            }
            assert!(
                text.contains(&format!("`{key}`")),
                "`{key}` is not documented under [{table}] in docs/configuration.md"
            );
        }
    }
    let database = section("database").expect("[database]");
    assert!(
        !database.contains("request_timeout_secs"),
        "request_timeout_secs is a [discord] key"
    );
}

/// One name per secret: the intake tokens are set as KLAXON_INTAKE__<KEY>
/// everywhere the docs and packaging mention them.
#[test]
fn intake_secrets_have_one_environment_name() {
    for file in [
        "README.md",
        "docs/operator-guide.md",
        "docs/configuration.md",
        "packaging/docker-compose.yml",
        "packaging/klaxon.service",
        "packaging/README.md",
    ] {
        let text = read(file);
        for other in [
            "KLAXON_ALERTMANAGER_TOKEN",
            "KLAXON_GRAFANA_TOKEN",
            "KLAXON_GRAFANA_SIGNING_SECRET",
            "KLAXON_GENERIC_TOKEN",
        ] {
            assert!(
                !text.contains(other),
                "{file} uses {other}: use KLAXON_INTAKE__…"
            );
        }
    }
}

/// docs/architecture.md names every subcommand the binary has.
#[test]
fn the_architecture_names_every_cli_command() {
    use clap::CommandFactory;
    let doc = read("docs/architecture.md");
    for sub in klaxon::cli::Cli::command().get_subcommands() {
        let name = sub.get_name();
        assert!(
            doc.contains(&format!("`{name}")),
            "docs/architecture.md does not name `{name}`"
        );
    }
}

/// The shutdown worst case is about 32 s (HTTP 5, commands 10, outbox 12, proxy 5):
/// every stop timeout in the packaging allows 35 s.
#[test]
fn stop_timeouts_allow_the_whole_shutdown() {
    assert!(read("packaging/klaxon.service").contains("\nTimeoutStopSec=35\n"));
    assert!(read("packaging/docker-compose.yml").contains("stop_grace_period: 35s"));
    for file in ["packaging/Dockerfile", "packaging/Dockerfile.runtime"] {
        assert!(read(file).contains("--stop-timeout 35"), "{file}");
    }
    for (file, text) in [
        ("packaging/klaxon.service", read("packaging/klaxon.service")),
        (
            "packaging/docker-compose.yml",
            read("packaging/docker-compose.yml"),
        ),
    ] {
        for short in [
            "TimeoutStopSec=10",
            "TimeoutStopSec=20",
            "stop_grace_period: 10s",
            "stop_grace_period: 20s",
        ] {
            assert!(!text.contains(short), "{file}: {short}");
        }
    }
}
