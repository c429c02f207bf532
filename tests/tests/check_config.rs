//! `klaxon check-config` as a new team runs it (issue #13): offline with no token,
//! and `--online` against the fake Discord, the private Docker engine and a local
//! health endpoint, with each failure a team meets on day one: a refused token, a
//! bot never invited, a channel it cannot see or write to, a role from another
//! server, a Docker socket it may not open, a `health_url` that does not answer.

use std::path::{Path, PathBuf};
use std::process::Command;

use klaxon_fake_discord::{FakeConfig, FakeDiscord};
use klaxon_tests::env;

const ALERTS: u64 = 111;
const INCIDENTS: u64 = 222;
const AUDIT: u64 = 333;
const ADMIN_ROLE: u64 = 9001;

/// The `klaxon` binary cargo built next to this test.
fn klaxon_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/..");
    let binary = dir.join("klaxon");
    assert!(
        binary.is_file(),
        "{} not found: run `cargo build -p klaxon` (scripts/test.sh builds it with the workspace)",
        binary.display()
    );
    binary
}

fn check(config: &Path, token: Option<&str>, online: bool) -> (i32, String, String) {
    let mut cmd = Command::new(klaxon_binary());
    cmd.arg("check-config")
        .arg("--config")
        .arg(config)
        .env_remove("DISCORD_TOKEN")
        .env("KLAXON_LOG", "error");
    if online {
        cmd.arg("--online");
    }
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

/// A health endpoint on 127.0.0.1 answering 200.
async fn health_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/health")
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn write_config(dir: &Path, fake: &FakeDiscord, docker_host: &str, health: &str) -> PathBuf {
    let path = dir.join("klaxon.toml");
    std::fs::write(
        &path,
        format!(
            "[discord]\napi_url = \"{}\"\nguild_id = {}\n[database]\nurl = \"{}\"\n\
             [docker]\nhost = \"{docker_host}\"\n\
             [channels]\nalerts = {ALERTS}\nincidents = {INCIDENTS}\naudit = {AUDIT}\n\
             [roles]\nadmin = [{ADMIN_ROLE}]\n\
             [[services]]\nname = \"api\"\nhealth_url = \"{health}\"\n",
            fake.api_url(),
            fake.config().guild_id,
            env::sqlite_url(dir),
        ),
    )
    .expect("config");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_checks_pass_line_by_line_then_name_each_failure() {
    let fake = FakeDiscord::start(FakeConfig::default())
        .await
        .expect("fake");
    fake.add_roles(&[ADMIN_ROLE]);
    let dir = tempfile::tempdir().expect("dir");
    let health = health_server().await;
    let path = write_config(dir.path(), &fake, &env::docker_host(), &health);
    let token = fake.config().token.clone();

    // Offline: no token needed, nothing contacted.
    let (code, _, stderr) = check(&path, None, false);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("configuration OK"), "{stderr}");
    assert!(
        fake.requests().is_empty(),
        "offline check-config called Discord"
    );

    // Online, all good: one line per check.
    let (code, stdout, stderr) = check(&path, Some(&token), true);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("ok ") || l.starts_with("FAIL"))
        .collect();
    for expected in [
        "ok   token: accepted: the bot is klaxon (id 1)",
        "ok   guild: the bot is in Klaxon Test Guild (123)",
        "ok   roles.admin: role 9001 exists",
        "ok   channels.alerts: #channel-111 (111): the bot can see and write",
        "ok   channels.incidents: #channel-222 (222): the bot can see and write",
        "ok   channels.audit: #channel-333 (333): the bot can see and write",
        "ok   docker: ",
        "ok   services[0].health_url (api): ",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(expected)),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert_eq!(lines.len(), 8, "{stdout}");
    assert!(!stdout.contains(&token), "token printed");

    // A refused token.
    let (code, stdout, _) = check(&path, Some("wrong-token"), true);
    assert_eq!(code, 1);
    assert!(
        stdout.contains("FAIL token: refused by Discord (401): copy a new one from the Developer Portal (Bot → Reset Token)"),
        "{stdout}"
    );

    // Channels: one hidden, one read-only; a role from another server; Docker and
    // the health URL unreachable.
    fake.set_everyone_overwrite(INCIDENTS, 0, 1 << 10);
    fake.set_everyone_overwrite(AUDIT, 0, 1 << 11);
    let gone = format!("http://127.0.0.1:{}/health", closed_port());
    let no_docker = dir.path().join("no-docker.sock");
    let path = write_config(
        dir.path(),
        &fake,
        &format!("unix://{}", no_docker.display()),
        &gone,
    );
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(
        &path,
        text.replace(&format!("admin = [{ADMIN_ROLE}]"), "admin = [9002]"),
    )
    .expect("write");
    let (code, stdout, stderr) = check(&path, Some(&token), true);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stderr.contains("the online checks above failed"),
        "{stderr}"
    );
    for expected in [
        "ok   channels.alerts: #channel-111 (111): the bot can see and write",
        "FAIL channels.incidents: channel 222: the bot cannot see it (give it View Channel there)",
        "FAIL channels.audit: #channel-333 (333): the bot lacks Send Messages",
        "FAIL roles.admin: no role 9002 in this server (right-click the role → Copy ID)",
        "FAIL docker: unix://",
        "FAIL services[0].health_url (api): http://127.0.0.1:",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("Connection refused") || stdout.contains("connection refused"),
        "{stdout}"
    );

    // Docker permission denied (EACCES): a socket closed to this user. Root passes
    // every permission check, so as root the check runs as `nobody` (setpriv).
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let sock = dir.path().join("denied.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o000)).expect("chmod");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let denied = write_config(
            dir.path(),
            &fake,
            &format!("unix://{}", sock.display()),
            &health,
        );
        std::fs::set_permissions(&denied, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let root = std::fs::metadata("/proc/self").expect("proc").uid() == 0;
        let mut cmd = if root {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(klaxon_binary());
            c
        } else {
            Command::new(klaxon_binary())
        };
        let out = cmd
            .args(["check-config", "--online", "--config"])
            .arg(&denied)
            .env("DISCORD_TOKEN", &token)
            .env("KLAXON_LOG", "error")
            .output()
            .expect("run klaxon");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stdout.contains("FAIL docker: unix://")
                && stdout.contains("permission denied: this user may not open the Docker socket")
                && stdout.contains("--group-add"),
            "{stdout}\n{stderr}"
        );
    }

    // A bot that was never invited: the invite URL with the permissions it needs.
    fake.set_bot_in_guild(false);
    let (code, stdout, _) = check(&path, Some(&token), true);
    assert_eq!(code, 1);
    assert!(
        stdout.contains(
            "FAIL guild: the bot is not in this server (123); invite it with \
             https://discord.com/oauth2/authorize?client_id=1&scope=bot+applications.commands&permissions=309237763072"
        ),
        "{stdout}"
    );
    // A Discord that does not answer: the cause in full.
    let (code, stdout, _) = check(
        &{
            let p = dir.path().join("dead.toml");
            let text = std::fs::read_to_string(&path).expect("read");
            std::fs::write(
                &p,
                text.replace(
                    &fake.api_url(),
                    &format!("http://127.0.0.1:{}", closed_port()),
                ),
            )
            .expect("write");
            p
        },
        Some(&token),
        true,
    );
    assert_eq!(code, 1);
    assert!(
        stdout.contains("FAIL token: cannot reach http://127.0.0.1:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Connection refused") || stdout.contains("connection refused"),
        "the cause is missing: {stdout}"
    );
}

/// A Docker socket this user may not open (EACCES): `klaxon run` names it once,
/// with the fix, not as a "hyper legacy client" warning every retry, and `/readyz`
/// says the engine is unreachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_docker_socket_is_named_once_and_shown_in_readyz() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let fake = FakeDiscord::start(FakeConfig::default())
        .await
        .expect("fake");
    let dir = tempfile::tempdir().expect("dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let sock = dir.path().join("denied.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let port = closed_port();
    let config = dir.path().join("klaxon.toml");
    std::fs::write(
        &config,
        format!(
            "[discord]\napi_url = \"{}\"\nguild_id = 123\n[database]\nurl = \"sqlite://k.db\"\n\
             [docker]\nhost = \"unix://{}\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n\
             [roles]\nadmin = [{ADMIN_ROLE}]\n[alerts]\nprobe_interval_secs = 0\n\
             [[services]]\nname = \"api\"\ncontainer = \"api\"\n",
            fake.api_url(),
            sock.display()
        ),
    )
    .expect("config");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let log = dir.path().join("klaxon.log");
    let root = std::fs::metadata("/proc/self").expect("proc").uid() == 0;
    let mut cmd = if root {
        let mut c = tokio::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(klaxon_binary());
        c
    } else {
        tokio::process::Command::new(klaxon_binary())
    };
    let mut bot = cmd
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env("DISCORD_TOKEN", &fake.config().token)
        .env("KLAXON_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .kill_on_drop(true)
        .spawn()
        .expect("klaxon run");
    // Up, then long enough for several reconnect attempts (1, 2, 4 s apart).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let body = loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await {
            break r.text().await.expect("body");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "klaxon did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let ready: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let docker = ready["docker"].as_str().unwrap_or_default();
    assert!(
        docker.starts_with(&format!(
            "Docker is unreachable at unix://{}: permission denied",
            sock.display()
        )) && docker.contains("--group-add"),
        "{body}"
    );
    tokio::time::sleep(std::time::Duration::from_secs(8)).await;
    let _ = bot.start_kill();
    let _ = bot.wait().await;
    let text = std::fs::read_to_string(&log).expect("log");
    let warned = text
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("permission denied"))
        .count();
    assert_eq!(warned, 1, "{text}");
    assert!(!text.contains("hyper legacy client"), "{text}");
}

/// `check-config` names each bad `[[heartbeats]]` key, and masks a heartbeat's
/// token whether it comes from the file or from `KLAXON_HEARTBEAT_<NAME>_TOKEN`.
#[test]
fn heartbeats_are_checked_by_key_and_their_tokens_masked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("klaxon.toml");
    let base = format!(
        "[discord]\nguild_id = 987654321098765432\n[database]\nurl = \"{}\"\n\
         [[services]]\nname = \"db\"\nhealth_url = \"http://127.0.0.1:9/health\"\n",
        env::sqlite_url(dir.path())
    );
    std::fs::write(
        &path,
        format!(
            "{base}[[heartbeats]]\nname = \"db-backup\"\nperiod = \"0s\"\nservice = \"nope\"\n\
             [[heartbeats]]\nname = \"db-backup\"\nperiod = \"1d\"\ngrace = \"soon\"\ntoken = \"file-sekrit\"\n"
        ),
    )
    .expect("config");
    let (code, out, err) = check(&path, None, false);
    let all = format!("{out}{err}");
    assert_eq!(code, 1, "{all}");
    for line in [
        "heartbeats[0].period: must be longer than 0",
        "heartbeats[0].service: no service `nope` is configured",
        "heartbeats[0].token: missing; set it here or in KLAXON_HEARTBEAT_DB_BACKUP_TOKEN",
        "heartbeats[1].name: `db-backup` is configured twice",
        "heartbeats[1].grace: `soon` is not a duration",
    ] {
        assert!(all.contains(line), "missing `{line}` in:\n{all}");
    }
    assert!(!all.contains("file-sekrit"), "{all}");

    std::fs::write(
        &path,
        format!("{base}[[heartbeats]]\nname = \"db-backup\"\nperiod = \"24h\"\nservice = \"db\"\n"),
    )
    .expect("config");
    let out = Command::new(klaxon_binary())
        .args(["check-config", "--config"])
        .arg(&path)
        .env_remove("DISCORD_TOKEN")
        .env("KLAXON_LOG", "error")
        .env("KLAXON_HEARTBEAT_DB_BACKUP_TOKEN", "env-sekrit")
        .output()
        .expect("run klaxon");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("[[heartbeats]]"), "{all}");
    assert!(all.contains("token = \"****\""), "{all}");
    assert!(!all.contains("env-sekrit"), "{all}");
}

/// Issue #16: a service is one container or one Swarm service; both is refused,
/// naming the key. A Swarm service alone is shown back in the resolved config.
#[test]
fn a_service_naming_both_container_and_swarm_service_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("klaxon.toml");
    let base = format!(
        "[discord]\nguild_id = 987654321098765432\n[database]\nurl = \"{}\"\n",
        env::sqlite_url(dir.path())
    );
    std::fs::write(
        &path,
        format!(
            "{base}[[services]]\nname = \"web\"\ncontainer = \"web\"\nswarm_service = \"web\"\n"
        ),
    )
    .expect("config");
    let (code, out, err) = check(&path, Some("t"), false);
    let all = format!("{out}{err}");
    assert_eq!(code, 1, "{all}");
    assert!(
        all.contains("services[0].swarm_service: `web` names both `container` and `swarm_service`"),
        "{all}"
    );
    std::fs::write(
        &path,
        format!("{base}[[services]]\nname = \"web\"\nswarm_service = \"web_front\"\n"),
    )
    .expect("config");
    let (code, out, err) = check(&path, Some("t"), false);
    let all = format!("{out}{err}");
    assert_eq!(code, 0, "{all}");
    assert!(all.contains("swarm_service = \"web_front\""), "{all}");
}
