//! The `klaxon` binary's command line: config errors are listed, secrets never print.

use std::process::Command;

fn klaxon(args: &[&str], token: Option<&str>) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_klaxon"));
    cmd.args(args)
        .env_remove("DISCORD_TOKEN")
        .env("KLAXON_LOG", "error");
    if let Some(t) = token {
        cmd.env("DISCORD_TOKEN", t);
    }
    let out = cmd.output().expect("run klaxon");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &tempfile::TempDir, text: &str) -> String {
    let p = dir.path().join("klaxon.toml");
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn the_example_config_checks_clean_and_masks_the_token() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../klaxon.example.toml");
    let dir = tempfile::tempdir().unwrap();
    // Keep the example's SQLite file out of the source tree.
    let text = std::fs::read_to_string(example).unwrap().replace(
        "sqlite://klaxon.db",
        &format!("sqlite://{}/k.db", dir.path().display()),
    );
    // As shipped, its placeholder ids are refused, each with its key.
    let path = write(&dir, &text);
    let (code, _, stderr) = klaxon(&["check-config", "--config", &path], None);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("discord.guild_id: 123 cannot be a Discord id"),
        "{stderr}"
    );
    assert!(
        stderr.contains("channels.alerts: 111 cannot be a Discord id"),
        "{stderr}"
    );
    assert!(
        stderr.contains("roles.admin: 1004 cannot be a Discord id"),
        "{stderr}"
    );
    // With real ids it checks clean.
    let mut real = text.clone();
    for (i, placeholder) in [
        "123", "111", "222", "333", "1001", "1002", "1003", "1004", "1005", "900",
    ]
    .iter()
    .enumerate()
    {
        real = real
            .replace(
                &format!("= {placeholder}\n"),
                &format!("= 71234567890123{i:04}\n"),
            )
            .replace(
                &format!("[{placeholder}]"),
                &format!("[71234567890123{i:04}]"),
            );
    }
    let path = write(&dir, &real);
    let (code, stdout, stderr) = klaxon(
        &["check-config", "--config", &path],
        Some("super-secret-token"),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("configuration OK"), "{stderr}");
    assert!(stdout.contains("token = \"****\""), "{stdout}");
    assert!(!stdout.contains("super-secret-token") && !stderr.contains("super-secret-token"));
    assert!(stdout.contains("guild_id = 712345678901230000"), "{stdout}");
}

#[test]
fn every_problem_is_listed_and_the_exit_code_is_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        r#"
[discord]
guild_id = 123
[[services]]
name = "api"
[[services]]
name = "web"
health_url = "ftp://x"
"#,
    );
    let (code, _, stderr) = klaxon(&["check-config", "--config", &path], None);
    assert_eq!(code, 1);
    // check-config needs no token (as amtool's check needs no Alertmanager).
    assert!(
        stderr.contains("the configuration has 3 problem(s)"),
        "{stderr}"
    );
    assert!(!stderr.contains("discord token: missing"), "{stderr}");
    assert!(
        stderr.contains("discord.guild_id: 123 cannot be a Discord id"),
        "{stderr}"
    );
    assert!(
        stderr.contains("services[0] (`api`): needs a container, a health_url, or both"),
        "{stderr}"
    );
    assert!(
        stderr.contains("services[1].health_url: `ftp://x` is not an http(s) URL"),
        "{stderr}"
    );
}

#[test]
fn unknown_keys_and_a_missing_file_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "[discord]\nguild_id = 712345678901234567\n[servics]\nname = 'x'\n",
    );
    let (code, _, stderr) = klaxon(&["check-config", "--config", &path], Some("t"));
    assert_eq!(code, 1);
    assert!(stderr.contains("servics: unknown key"), "{stderr}");
    let (code, _, stderr) = klaxon(&["run", "--config", "/nonexistent/klaxon.toml"], Some("t"));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("config file /nonexistent/klaxon.toml not found"),
        "{stderr}"
    );
}

#[test]
fn environment_overrides_apply() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "[discord]\nguild_id = 712345678901234567\n");
    let out = Command::new(env!("CARGO_BIN_EXE_klaxon"))
        .args(["check-config", "--config", &path])
        .env("DISCORD_TOKEN", "t")
        .env("KLAXON_DISCORD__GUILD_ID", "987654321098765432")
        .env(
            "KLAXON_DATABASE__URL",
            format!("sqlite://{}/o.db", dir.path().display()),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("guild_id = 987654321098765432"), "{stdout}");
    assert!(stdout.contains("/o.db"), "{stdout}");
}

#[test]
fn an_unreachable_postgres_fails_check_config_and_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "[discord]\nguild_id = 712345678901234567\n[database]\nurl = \"postgres://k:pw@127.0.0.1:9/k\"\n",
    );
    for cmd in ["check-config", "migrate"] {
        let (code, stdout, stderr) = klaxon(&[cmd, "--config", &path], Some("t"));
        assert_eq!(code, 1, "{cmd}");
        assert!(stderr.contains("database.url"), "{cmd}: {stderr}");
        assert!(
            !stderr.contains(":pw@") && !stdout.contains(":pw@"),
            "{cmd}: password shown"
        );
    }
}

#[test]
fn migrate_creates_the_sqlite_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let path = write(
        &dir,
        &format!(
            "[discord]\nguild_id = 712345678901234567\n[database]\nurl = \"sqlite://{}\"\n",
            db.display()
        ),
    );
    let (code, _, stderr) = klaxon(&["migrate", "--config", &path], Some("t"));
    assert_eq!(code, 0, "{stderr}");
    assert!(db.exists());
}

#[tokio::test]
async fn postmortem_from_a_shell_needs_no_token() {
    use klaxon_core::actor::Actor;
    use klaxon_core::incidents::Severity;
    use klaxon_core::store::incidents as db;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/k.db", dir.path().display());
    let path = write(
        &dir,
        &format!("[discord]\nguild_id = 123\n[database]\nurl = \"{url}\"\n"),
    );
    let store = klaxon_core::store::Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let who = Actor::member(1, "alice");
    let inc = db::insert(
        &store,
        &db::NewIncident {
            title: "Disk full on db1".into(),
            severity: Severity::P2,
            service: None,
            summary: "Writes failed".into(),
            guild_id: None,
            commander: who.clone(),
            opened_ms: 1_796_133_780_000,
            next_page_ms: None,
            next_update_ms: None,
            public: true,
        },
    )
    .await
    .unwrap();
    db::add_action(&store, inc.id, "Alert on 80% disk", &who, 1_796_133_790_000)
        .await
        .unwrap();
    store.close().await;

    let (code, stdout, stderr) = klaxon(&["postmortem", "INC-1", "--config", &path], None);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("# Post-mortem: INC-1 · Disk full on db1\n"),
        "{stdout}"
    );
    assert!(stdout.contains("| Severity | P2 |"), "{stdout}");
    assert!(stdout.contains("- [ ] #1 Alert on 80% disk"), "{stdout}");
    assert!(stdout.contains("## Root cause\n\n> _TODO:"), "{stdout}");

    let out = dir.path().join("pm.md");
    let out_s = out.display().to_string();
    let (code, _, stderr) = klaxon(
        &["postmortem", "inc-1", "--config", &path, "--output", &out_s],
        None,
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), stdout);

    let (code, _, stderr) = klaxon(&["postmortem", "INC-9", "--config", &path], None);
    assert_eq!(code, 1);
    assert!(stderr.contains("There is no incident INC-9."), "{stderr}");
    let (code, _, stderr) = klaxon(&["postmortem", "seven", "--config", &path], None);
    assert_eq!(code, 1);
    assert!(stderr.contains("is not an incident id"), "{stderr}");
}

#[test]
fn alerts_test_shows_the_route_and_the_message_without_sending() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        r#"
[discord]
guild_id = 123
[channels]
alerts = 111
[incidents]
on_call_role = 1005
[[alerts.routes]]
match = { team = "payments" }
channel = 900
severity = "P1"
page = true
"#,
    );
    let payload = dir.path().join("am.json");
    std::fs::write(
        &payload,
        r#"{"version": "4", "status": "firing", "receiver": "k", "groupKey": "g",
            "alerts": [
              {"status": "firing", "labels": {"alertname": "CheckoutDown", "service": "checkout", "team": "payments"},
               "annotations": {"summary": "5xx at 80%"}, "startsAt": "2026-12-01T14:03:00Z", "fingerprint": "a1"},
              {"status": "firing", "labels": {"alertname": "DiskFull", "instance": "db1", "severity": "warning"},
               "annotations": {}, "startsAt": "2026-12-01T14:03:00Z", "fingerprint": "b2"}
            ]}"#,
    )
    .unwrap();
    let p = payload.display().to_string();
    let (code, stdout, stderr) = klaxon(&["alerts", "test", &p, "--config", &path], None);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("2 alertmanager alert(s) firing in 2 group(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("route: [[alerts.routes]] number 1 of the config"),
        "{stdout}"
    );
    assert!(
        stdout.contains("channel 900 · P1 · pages the on-call role"),
        "{stdout}"
    );
    assert!(stdout.contains("\"content\": \"<@&1005>\""), "{stdout}");
    assert!(
        stdout.contains("🔥 P1 FIRING · CheckoutDown · checkout (1)"),
        "{stdout}"
    );
    assert!(stdout.contains("no route matched: the default"), "{stdout}");
    assert!(stdout.contains("channel 111 · P3 · no page"), "{stdout}");

    std::fs::write(&payload, "[FIRING:1] CheckoutDown").unwrap();
    let (code, _, stderr) = klaxon(&["alerts", "test", &p, "--config", &path], None);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("would refuse this generic payload (400)"),
        "{stderr}"
    );
}

/// Issue #12 item 6: `check-config` prints URLs without their credentials, in the
/// resolved config and in its errors.
#[test]
fn secrets_in_urls_are_masked_in_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        &format!(
            r#"
[discord]
guild_id = 712345678901234567
[database]
url = "sqlite://{}/k.db?password=sekrit1"
[[services]]
name = "api"
container = "api"
health_url = "http://user:sekrit2@127.0.0.1:8080/health?token=sekrit3"
"#,
            dir.path().display()
        ),
    );
    let (code, stdout, stderr) = klaxon(&["check-config", "--config", &path], Some("t"));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(r#"health_url = "http://user:****@127.0.0.1:8080/health?token=****""#),
        "{stdout}"
    );
    assert!(stdout.contains("/k.db?password=****"), "{stdout}");
    for n in 1..=3 {
        let s = format!("sekrit{n}");
        assert!(!stdout.contains(&s) && !stderr.contains(&s), "{s} shown");
    }
    // The same URLs in errors.
    let path = write(
        &dir,
        r#"
[discord]
guild_id = 712345678901234567
[database]
url = "mysql://k:sekrit4@db/k?password=sekrit5"
[[services]]
name = "api"
health_url = "ftp://user:sekrit6@h/health"
"#,
    );
    let (code, stdout, stderr) = klaxon(&["check-config", "--config", &path], Some("t"));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("services[0].health_url: `ftp://user:****@h/health`"),
        "{stderr}"
    );
    for n in 4..=6 {
        let s = format!("sekrit{n}");
        assert!(
            !stdout.contains(&s) && !stderr.contains(&s),
            "{s} shown: {stderr}"
        );
    }
}

/// Issue #12 item 7: a token of digits or `true` from the environment is a token.
#[test]
fn numeric_and_boolean_secrets_from_the_environment_work_in_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        &format!(
            "[discord]\nguild_id = 712345678901234567\n[database]\nurl = \"sqlite://{}/k.db\"\n",
            dir.path().display()
        ),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_klaxon"))
        .args(["check-config", "--config", &path])
        .env("DISCORD_TOKEN", "t")
        .env("KLAXON_LOG", "error")
        .env("KLAXON_INTAKE__ALERTMANAGER_TOKEN", "918273645546372819")
        .env("KLAXON_INTAKE__GRAFANA_TOKEN", "true")
        .env(
            "KLAXON_INTAKE__GENERIC_TOKEN",
            "123456789012345678901234567890",
        )
        .env("KLAXON_HTTP__LISTEN", "127.0.0.1:9999")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("alertmanager_token = \"****\""), "{stdout}");
    assert!(stdout.contains("grafana_token = \"****\""), "{stdout}");
    assert!(stdout.contains("listen = \"127.0.0.1:9999\""), "{stdout}");
    for s in ["918273645546372819", "123456789012345678901234567890"] {
        assert!(!stdout.contains(s) && !stderr.contains(s), "{s} shown");
    }
}

/// Issue #12 item 14: a directory is not a config file, and an unreachable
/// PostgreSQL says why instead of "pool timed out".
#[test]
fn config_path_that_is_a_directory_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let shown = dir.path().display().to_string();
    let (code, _, stderr) = klaxon(&["check-config", "--config", &shown], Some("t"));
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!(
            "--config {shown} is a directory; give the path of the TOML file"
        )),
        "{stderr}"
    );
}

#[test]
fn unreachable_postgres_names_the_cause() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        &format!("[discord]\nguild_id = 712345678901234567\n[database]\nurl = \"postgres://k:sekrit@127.0.0.1:{port}/k\"\n"),
    );
    for cmd in ["check-config", "migrate"] {
        let (code, stdout, stderr) = klaxon(&[cmd, "--config", &path], Some("t"));
        assert_eq!(code, 1, "{cmd}");
        assert!(
            stderr.contains(&format!("connection refused at 127.0.0.1:{port}")),
            "{cmd}: {stderr}"
        );
        assert!(!stderr.contains("pool timed out"), "{cmd}: {stderr}");
        assert!(
            !stderr.contains("sekrit") && !stdout.contains("sekrit"),
            "{cmd}"
        );
    }
}
