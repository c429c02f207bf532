//! Loading as an operator meets it: environment values, every problem in one
//! run, and no secret in any message (issue #12, items 7 and 14 and tokens with
//! whitespace).

use std::path::PathBuf;

use super::{Config, ConfigErrors, Sources};

const BASE: &str = "[discord]\nguild_id = 123\n";

fn load_env(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("klaxon.toml");
    std::fs::write(&p, text).unwrap();
    load_path(&p, vars)
}

fn load_path(p: &std::path::Path, vars: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
    let env = |k: &str| (k == "DISCORD_TOKEN").then(|| "t".to_string());
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::load_from(p, Sources { env: &env }, vars)
}

#[test]
fn an_extra_ca_file_is_read_next_to_the_config_and_must_be_pem() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("klaxon.toml");
    std::fs::write(&p, format!("{BASE}[health]\nca_file = \"ca.pem\"\n")).unwrap();
    let errs = load_path(&p, &[]).unwrap_err().0;
    let expected = format!(
        "health.ca_file: cannot read {}",
        dir.path().join("ca.pem").display()
    );
    assert!(errs.iter().any(|e| e.starts_with(&expected)), "{errs:?}");
    std::fs::write(dir.path().join("ca.pem"), "not a certificate").unwrap();
    let errs = load_path(&p, &[]).unwrap_err().0;
    assert!(
        errs.iter()
            .any(|e| e.contains("health.ca_file") && e.contains("PEM")),
        "{errs:?}"
    );
}

const THIRTY_DIGITS: &str = "123456789012345678901234567890";

#[test]
fn numeric_and_boolean_secrets_from_the_environment_work() {
    let c = load_env(
        BASE,
        &[
            ("KLAXON_INTAKE__ALERTMANAGER_TOKEN", "918273645546372819"),
            ("KLAXON_INTAKE__GRAFANA_TOKEN", "true"),
            ("KLAXON_INTAKE__GENERIC_TOKEN", THIRTY_DIGITS),
            ("KLAXON_INTAKE__GRAFANA_SIGNING_SECRET", "0012.50"),
            // Numeric and boolean keys that are not secrets still work from text.
            ("KLAXON_DISCORD__GUILD_ID", "987"),
            ("KLAXON_DISCORD__REQUEST_TIMEOUT_SECS", "30"),
            ("KLAXON_HTTP__LISTEN", "0.0.0.0:9000"),
            ("KLAXON_ALERTS__DOCKER_EVENTS", "false"),
            ("KLAXON_HEALTH__MEMORY_PERCENT", "90.5"),
            ("KLAXON_LOG", "debug"),
        ],
    )
    .unwrap();
    assert_eq!(c.intake.alertmanager_token.expose(), "918273645546372819");
    assert_eq!(c.intake.grafana_token.expose(), "true");
    assert_eq!(c.intake.generic_token.expose(), THIRTY_DIGITS);
    assert_eq!(c.intake.grafana_signing_secret.expose(), "0012.50");
    assert_eq!(c.discord.guild_id, 987);
    assert_eq!(c.discord.request_timeout_secs, 30);
    assert_eq!(c.http.listen.to_string(), "0.0.0.0:9000");
    assert!(!c.alerts.docker_events);
    assert_eq!(c.health.memory_percent, 90.5);
    // Written as TOML numbers, they are taken as their text too.
    let c = load_env(
        &format!("{BASE}[intake]\nalertmanager_token = 918273645546372819\ngeneric_token = true\n"),
        &[],
    )
    .unwrap();
    assert_eq!(c.intake.alertmanager_token.expose(), "918273645546372819");
    assert_eq!(c.intake.generic_token.expose(), "true");
}

#[test]
fn config_errors_never_print_a_secret() {
    let text = format!(
        r#"{BASE}api_url = "ftp://bot:sekrit1@discord.example"
[database]
url = "mysql://k:sekrit2@db/k?password=sekrit3"
[docker]
host = "ssh://u:sekrit4@docker"
[intake]
generic_token = ["sekrit5"]
grafana_token = {{ value = "sekrit6" }}
[[services]]
name = "api"
health_url = "ftp://u:sekrit7@h/health?token=sekrit8"
"#
    );
    let errs = load_env(&text, &[("KLAXON_INTAKE__ALERTMANAGER_TOKEN", " sekrit9")])
        .unwrap_err()
        .to_string();
    for n in 1..=9 {
        assert!(
            !errs.contains(&format!("sekrit{n}")),
            "sekrit{n} shown:\n{errs}"
        );
    }
    for key in [
        "discord.api_url",
        "database.url",
        "docker.host",
        "intake.generic_token",
        "intake.grafana_token",
        "intake.alertmanager_token",
        "services[0].health_url",
    ] {
        assert!(
            errs.contains(&format!("{key}: ")),
            "{key} not named:\n{errs}"
        );
    }
    // A syntax error does not quote the line it is on.
    let errs = load_env(
        &format!("{BASE}[intake]\ngeneric_token = \"sekrit10\n"),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(errs.contains("not valid TOML at line 4"), "{errs}");
    assert!(!errs.contains("sekrit10"), "{errs}");
}

#[test]
fn config_errors_list_every_problem() {
    let text = r#"
[discord]
guild_id = "the-guild"
request_timeout_secs = "slow"
global_rate_per_sec = 99
[[services]]
name = "api"
container = "api"
[[services]]
name = "web"
helath_url = "http://127.0.0.1:8080/health"
"#;
    let errs = load_env(text, &[("KLAXON_HEALTH__PROBE_TIMEOUT_MS", "soon")])
        .unwrap_err()
        .0;
    let all = errs.join("\n");
    assert_eq!(errs.len(), 6, "{all}");
    assert!(
        all.contains("discord.guild_id: invalid type: found string \"the-guild\", expected u64"),
        "{all}"
    );
    assert!(
        all.contains("discord.request_timeout_secs: invalid type: found string \"slow\""),
        "{all}"
    );
    assert!(
        all.contains("services[1].helath_url: unknown key; did you mean `health_url`?"),
        "{all}"
    );
    assert!(
        all.contains("health.probe_timeout_ms: invalid type: found string \"soon\", expected u64 (from KLAXON_HEALTH__PROBE_TIMEOUT_MS)"),
        "{all}"
    );
    // The semantic checks run too, in the same pass.
    assert!(
        all.contains("discord.global_rate_per_sec: must be 1 to 50"),
        "{all}"
    );
    assert!(
        all.contains("services[1] (`web`): needs a container, a health_url, or both"),
        "{all}"
    );
    // A value taken out is not reported a second time as missing or zero.
    assert!(!all.contains("discord.guild_id: missing"), "{all}");
    assert!(!all.contains("must be the id of your server"), "{all}");
}

#[test]
fn a_missing_table_is_named_once() {
    let errs = load_env("[databse]\nurl = 'sqlite://x.db'\n", &[])
        .unwrap_err()
        .0;
    assert_eq!(
        errs,
        vec![
            "databse: unknown key; did you mean `database`?".to_string(),
            "discord: missing".to_string()
        ]
    );
}

#[test]
fn config_path_that_is_a_directory_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let errs = load_path(dir.path(), &[]).unwrap_err().0;
    assert_eq!(
        errs,
        vec![format!(
            "--config {} is a directory; give the path of the TOML file",
            dir.path().display()
        )]
    );
    let missing: PathBuf = dir.path().join("nope.toml");
    let errs = load_path(&missing, &[]).unwrap_err().0;
    assert!(errs[0].contains("not found"), "{errs:?}");
}

#[test]
fn configured_token_with_whitespace_is_refused_at_start_up() {
    for (value, why) in [
        ("qqvalue-from-a-file\n", "starts or ends with whitespace"),
        (" qqvalue", "starts or ends with whitespace"),
        ("qq value", "contains whitespace"),
    ] {
        let errs = load_env(BASE, &[("KLAXON_INTAKE__GENERIC_TOKEN", value)])
            .unwrap_err()
            .0;
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with(&format!("intake.generic_token: {why}")),
            "{errs:?}"
        );
        assert!(!errs[0].contains("qq"), "value shown: {errs:?}");
    }
    // The signing secret is HMAC key material: inner spaces are allowed.
    let c = load_env(
        BASE,
        &[("KLAXON_INTAKE__GRAFANA_SIGNING_SECRET", "a long passphrase")],
    )
    .unwrap();
    assert_eq!(
        c.intake.grafana_signing_secret.expose(),
        "a long passphrase"
    );
    // Only whitespace: the source stays off, as an unset token.
    let c = load_env(BASE, &[("KLAXON_INTAKE__GENERIC_TOKEN", "  ")]).unwrap();
    assert!(c.intake.generic_token.is_empty());
}

/// `[retention]`: 0 or negative days are refused naming the key (also from the
/// environment); the resolved section is what check-config prints.
#[test]
fn retention_days_are_checked_and_shown() {
    let errs = load_env(
        &format!("{BASE}[retention]\nalerts_days = 0\naudit_days = -5\n"),
        &[("KLAXON_RETENTION__OUTBOX_DAYS", "-1")],
    )
    .unwrap_err()
    .0;
    for key in ["alerts_days", "audit_days", "outbox_days"] {
        assert!(
            errs.iter()
                .any(|e| e.starts_with(&format!("retention.{key}: must be between 1 and"))),
            "{key}: {errs:?}"
        );
    }
    let c = load_env(BASE, &[]).unwrap();
    let shown = c.to_masked_toml();
    assert!(shown.contains("[retention]"), "{shown}");
    for line in [
        "alerts_days = 90",
        "outbox_days = 7",
        "audit_days = 365",
        "deployments_days = 365",
    ] {
        assert!(shown.contains(line), "{line}: {shown}");
    }
    assert!(
        !shown.contains("incidents_days"),
        "unset: kept forever\n{shown}"
    );
    let c = load_env(&format!("{BASE}[retention]\nincidents_days = 730\n"), &[]).unwrap();
    assert_eq!(c.retention.incidents_days, Some(730));
}

#[test]
fn compose_services_are_checked() {
    let text = r#"
[discord]
guild_id = 1
[rollback]
max_replicas = 0
[[services]]
name = "api"
container = "api"
compose = "shop/api"
[[services]]
name = "web"
compose = "shop"
[[services]]
name = "good"
compose = "shop/good"
"#;
    let errs = load_env(text, &[]).unwrap_err().0;
    let all = errs.join("\n");
    assert!(
        all.contains("services[0].compose: `api` sets both `container` and `compose`"),
        "{all}"
    );
    assert!(
        all.contains("services[1].compose: `shop` is not `project/service`"),
        "{all}"
    );
    assert!(!all.contains("services[2]"), "{all}");
    assert!(!all.contains("services[1] (`web`): needs"), "{all}");
    assert!(
        all.contains("rollback.max_replicas: must be at least 1"),
        "{all}"
    );
}

#[test]
fn a_service_is_a_container_or_a_swarm_service_never_both() {
    let ok = load_env(
        &format!("{BASE}[[services]]\nname = \"web\"\nswarm_service = \"web_front\"\n"),
        &[],
    )
    .expect("a Swarm service alone is fine");
    assert_eq!(ok.services[0].swarm_service.as_deref(), Some("web_front"));
    let errs = load_env(
        &format!(
            "{BASE}[[services]]\nname = \"web\"\ncontainer = \"web\"\nswarm_service = \"web\"\n"
        ),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        errs.contains(
            "services[0].swarm_service: `web` names both `container` and `swarm_service`"
        ),
        "{errs}"
    );
}

#[test]
fn status_page_subscriptions_are_checked_by_key_and_secrets_masked() {
    let page = "[status_page]\nbase_url = \"https://status.example.com\"\n";
    let errs = load_env(
        &format!(
            "{BASE}{page}[status_page.smtp]\nhost = \"smtp.example.com:25\"\nfrom = \"nobody\"\n\
             [[status_page.webhooks]]\nname = \"ops\"\nurl = \"gopher://x\"\n"
        ),
        &[],
    )
    .unwrap_err()
    .0;
    for key in [
        "status_page.smtp.host:",
        "status_page.smtp.from:",
        "status_page.webhooks[0].url:",
    ] {
        assert!(errs.iter().any(|e| e.starts_with(key)), "{key}: {errs:?}");
    }
    let c = load_env(
        &format!(
            "{BASE}{page}[status_page.smtp]\nhost = \"smtp.example.com\"\nusername = \"status\"\n\
             from = \"Acme <status@example.com>\"\n[[status_page.webhooks]]\nname = \"ops\"\n\
             url = \"https://hooks.example.com/k\"\nsecret = \"hook-secret-1\"\n\
             header = \"Authorization: Bearer hdr-secret-2\"\n"
        ),
        &[("KLAXON_STATUS_PAGE__SMTP__PASSWORD", "smtp-secret-3")],
    )
    .unwrap();
    let smtp = c.status_page.smtp.as_ref().expect("smtp");
    assert_eq!(smtp.password.expose(), "smtp-secret-3");
    let shown = c.to_masked_toml();
    for secret in ["hook-secret-1", "hdr-secret-2", "smtp-secret-3"] {
        assert!(!shown.contains(secret), "{secret} shown: {shown}");
        assert!(!format!("{c:?}").contains(secret), "{secret} in Debug");
    }
    assert!(shown.contains("password = \"****\""), "{shown}");
}
