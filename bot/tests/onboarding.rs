//! A new team's first half hour with the `klaxon` binary (issue #13): the checks
//! that need no token, the hints for the usual mistakes, paths read against the
//! config file, logs a pipeline can read, and `klaxon alerts test` reading payloads
//! as people write them.

use std::path::Path;
use std::process::Command;

const GUILD: &str = "712345678901234567";

fn klaxon_in(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_klaxon"));
    cmd.current_dir(cwd)
        .args(args)
        .env_remove("DISCORD_TOKEN")
        .env_remove("NO_COLOR")
        .env_remove("KLAXON_LOG_FORMAT")
        .env("KLAXON_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run klaxon");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn klaxon(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    klaxon_in(Path::new("/"), args, env)
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn check_config_and_migrate_need_no_token_and_warn_about_useless_settings() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "klaxon.toml",
        &format!("[discord]\nguild_id = {GUILD}\n[database]\nurl = \"sqlite://k.db\"\n"),
    );
    let (code, _, stderr) = klaxon(&["check-config", "--config", &path], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("configuration OK"), "{stderr}");
    assert!(
        stderr.contains("note: no Discord token set; `klaxon run` and `check-config --online` need DISCORD_TOKEN or discord.token_file"),
        "{stderr}"
    );
    assert!(
        stderr
            .contains("warning: roles: no role is mapped to a level, so every command is refused"),
        "{stderr}"
    );
    assert!(
        stderr.contains("warning: services: none configured"),
        "{stderr}"
    );
    let (code, _, stderr) = klaxon(&["migrate", "--config", &path], &[]);
    assert_eq!(code, 0, "{stderr}");
    // The relative SQLite file is the config file's neighbour, not the cwd's (/).
    assert!(dir.path().join("k.db").exists());
    // `run` still needs the token.
    let (code, _, stderr) = klaxon(&["run", "--config", &path], &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("discord token: missing; set DISCORD_TOKEN or discord.token_file"),
        "{stderr}"
    );
}

#[test]
fn a_token_in_the_file_gets_a_hint_and_run_help_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "klaxon.toml",
        &format!("[discord]\nguild_id = {GUILD}\ntoken = \"abc.def\"\n"),
    );
    let (code, stdout, stderr) = klaxon(&["check-config", "--config", &path], &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("discord.token: not read from the config (a file may be shared or committed); the token is read from DISCORD_TOKEN or discord.token_file"),
        "{stderr}"
    );
    assert!(!stderr.contains("abc.def") && !stdout.contains("abc.def"));
    let (code, stdout, _) = klaxon(&["run", "--help"], &[]);
    assert_eq!(code, 0);
    assert!(stdout.contains("DISCORD_TOKEN"), "{stdout}");
}

#[test]
fn read_only_tools_read_paths_against_the_config_file_and_create_nothing() {
    let cwd = tempfile::tempdir().unwrap();
    let other = cwd.path().join("other");
    let path = write(
        &other,
        "klaxon.toml",
        &format!("[discord]\nguild_id = {GUILD}\ntoken_file = \"token\"\n"),
    );
    // token_file is read next to the config file: check-config reports it unreadable
    // there, by its full path.
    let (code, _, stderr) = klaxon_in(
        cwd.path(),
        &["check-config", "-c", "other/klaxon.toml"],
        &[],
    );
    assert_eq!(code, 1);
    let expected = format!(
        "discord.token_file: cannot read {}",
        other.join("token").display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    std::fs::write(other.join("token"), "Bot abc\n").unwrap();
    // No database yet: postmortem says so and creates none, here or there.
    let (code, _, stderr) = klaxon_in(
        cwd.path(),
        &["postmortem", "INC-1", "-c", "other/klaxon.toml"],
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!(
            "database.url: no database at {}",
            other.join("klaxon.db").display()
        )),
        "{stderr}"
    );
    assert!(!cwd.path().join("klaxon.db").exists());
    assert!(!other.join("klaxon.db").exists());
    // migrate creates it next to the config; then postmortem reads it from there.
    let (code, _, stderr) = klaxon_in(cwd.path(), &["migrate", "-c", "other/klaxon.toml"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(other.join("klaxon.db").exists());
    assert!(!cwd.path().join("klaxon.db").exists());
    let (code, _, stderr) = klaxon_in(
        cwd.path(),
        &["postmortem", "INC-1", "-c", "other/klaxon.toml"],
        &[],
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("There is no incident INC-1."), "{stderr}");
    let _ = path;
}

#[test]
fn logs_have_no_colour_off_a_terminal_and_fatal_errors_are_json_in_json_mode() {
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let path = write(
        dir.path(),
        "klaxon.toml",
        &format!(
            "[discord]\nguild_id = {GUILD}\n[database]\nurl = \"postgres://k@127.0.0.1:{port}/k\"\n"
        ),
    );
    // A warning (no roles) is logged, then the database refuses the connection.
    let (code, _, stderr) = klaxon(&["run", "--config", &path], &[("DISCORD_TOKEN", "t")]);
    assert_eq!(code, 1);
    assert!(stderr.contains("WARN"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "ANSI escapes in a pipe: {stderr:?}"
    );
    assert!(
        stderr.contains(&format!("connection refused at 127.0.0.1:{port}")),
        "{stderr}"
    );
    let (code, _, stderr) = klaxon(
        &["--log-format", "json", "run", "--config", &path],
        &[("DISCORD_TOKEN", "t")],
    );
    assert_eq!(code, 1);
    let last = stderr.lines().last().unwrap_or_default();
    let record: serde_json::Value = serde_json::from_str(last).expect("a JSON record");
    assert_eq!(record["level"], "ERROR", "{last}");
    assert!(
        record["message"]
            .as_str()
            .unwrap_or_default()
            .contains("connection refused"),
        "{last}"
    );
    for line in stderr.lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "{line}"
        );
    }
    // A bad config is a JSON record too.
    let (code, _, stderr) = klaxon(
        &[
            "--log-format",
            "json",
            "run",
            "--config",
            "/nonexistent/k.toml",
        ],
        &[],
    );
    assert_eq!(code, 1);
    let record: serde_json::Value = serde_json::from_str(stderr.trim()).expect("a JSON record");
    assert!(
        record["message"]
            .as_str()
            .unwrap_or_default()
            .contains("config file /nonexistent/k.toml not found"),
        "{stderr}"
    );
}

#[test]
fn alerts_test_reads_a_numeric_version_and_posts_nothing_for_unknown_resolved_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "klaxon.toml",
        &format!("[discord]\nguild_id = {GUILD}\n[channels]\nalerts = 712345678901234568\n"),
    );
    let payload = write(
        dir.path(),
        "am.json",
        r#"{"version": "4", "status": "resolved", "receiver": "k", "groupKey": "g",
            "alerts": [
              {"status": "resolved", "labels": {"alertname": "DiskFull", "severity": "warning"},
               "annotations": {}, "startsAt": "2026-12-01T14:03:00Z", "fingerprint": "b2"}
            ]}"#,
    );
    let (code, stdout, stderr) = klaxon(&["alerts", "test", &payload, "--config", &path], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("0 alertmanager alert(s) firing in 0 group(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 resolved alert(s): each closes its firing alert's message; one Klaxon never saw firing posts nothing"),
        "{stdout}"
    );
    assert!(!stdout.contains("RESOLVED"), "{stdout}");
    // `"version": 4` (a number) is read as Alertmanager's too, and refused as the
    // intake would refuse it, with the reason, not taken for a generic payload.
    let numeric = write(
        dir.path(),
        "n.json",
        r#"{"version": 4, "status": "firing", "receiver": "k", "groupKey": "g", "alerts": []}"#,
    );
    let (code, _, stderr) = klaxon(&["alerts", "test", &numeric, "--config", &path], &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("the intake would refuse this alertmanager payload (400)"),
        "{stderr}"
    );
    assert!(stderr.contains("expected a string"), "{stderr}");
    // The shipped example is an Alertmanager payload as well.
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/examples/alertmanager.json"
    );
    let (code, stdout, stderr) = klaxon(&["alerts", "test", example, "--config", &path], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("1 alertmanager alert(s) firing in 1 group(s)"),
        "{stdout}"
    );
    assert!(stdout.contains("KlaxonTestAlert"), "{stdout}");
}

/// A Discord that refuses connections or hangs: start-up waits it out and says
/// why in full, in the log and in `/readyz`.
#[test]
fn a_refused_or_hung_discord_is_explained_in_full() {
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hung_port = hung.local_addr().unwrap().port();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    for (api, expected) in [
        (
            format!("http://127.0.0.1:{hung_port}"),
            "timed out after 1 s (discord.request_timeout_secs)".to_string(),
        ),
        (
            format!("http://127.0.0.1:{closed_port}"),
            "onnection refused".to_string(),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = http.local_addr().unwrap().port();
        drop(http);
        let path = write(
            dir.path(),
            "klaxon.toml",
            &format!(
                "[discord]\napi_url = \"{api}\"\nguild_id = {GUILD}\nrequest_timeout_secs = 1\n\
                 [database]\nurl = \"sqlite://k.db\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n"
            ),
        );
        let mut child = Command::new(env!("CARGO_BIN_EXE_klaxon"))
            .args(["run", "--config", &path])
            .env("DISCORD_TOKEN", "t")
            .env("KLAXON_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut last = String::new();
        let found = loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                use std::io::{Read, Write};
                let _ = s.write_all(b"GET /readyz HTTP/1.0\r\nHost: x\r\n\r\n");
                let mut body = String::new();
                let _ = s.read_to_string(&mut body);
                if body.contains(&expected) {
                    break true;
                }
                last = body;
            }
            if std::time::Instant::now() > deadline {
                break false;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        };
        let _ = child.kill();
        let _ = child.wait();
        assert!(found, "{expected:?} not in /readyz: {last}");
    }
    drop(hung);
}
