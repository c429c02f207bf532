//! The real `klaxon` binary killed with SIGKILL in the middle of an alert burst:
//! after a restart everything is delivered, and nothing twice.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use klaxon_fake_discord::{FakeConfig, FakeDiscord};
use klaxon_tests::env;
use serde_json::json;

const ALERTS: u64 = 111;
const TOKEN: &str = "crash-intake-token";
const GROUPS: usize = 24;

/// The `klaxon` binary cargo built next to this test (`cargo test --workspace` builds
/// it; so does `cargo build -p klaxon`).
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start(fake: &FakeDiscord, dir: &Path, port: u16) -> tokio::process::Child {
    start_with(fake, dir, port, "")
}

/// The binary with the common config plus `extra` TOML (sections after `[alerts]`).
fn start_with(fake: &FakeDiscord, dir: &Path, port: u16, extra: &str) -> tokio::process::Child {
    let config = dir.join("klaxon.toml");
    std::fs::write(
        &config,
        format!(
            "[discord]\napi_url = \"{}\"\nguild_id = 123\n[database]\nurl = \"{}\"\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\n[channels]\nalerts = {ALERTS}\n\
             [alerts]\ngroup_wait_secs = 0\nprobe_interval_secs = 0\ndocker_events = false\n{extra}",
            fake.api_url(),
            env::sqlite_url(dir)
        ),
    )
    .expect("config");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("klaxon.log"))
        .expect("log");
    tokio::process::Command::new(klaxon_binary())
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env("DISCORD_TOKEN", &fake.config().token)
        .env("KLAXON_INTAKE__GENERIC_TOKEN", TOKEN)
        .env("KLAXON_LOG", "info,serenity=warn")
        .env("KLAXON_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("spawning klaxon")
}

async fn wait_up(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
        != 200
    {
        assert!(Instant::now() < deadline, "klaxon did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Group title -> how many messages show it.
fn shown(fake: &FakeDiscord) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for m in fake.messages(ALERTS) {
        let text = m.text();
        if let Some(start) = text.find("Burst") {
            let name: String = text[start..]
                .chars()
                .take_while(|c| c.is_alphanumeric())
                .collect();
            *out.entry(name).or_default() += 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_burst_loses_nothing_and_duplicates_nothing() {
    let fake = FakeDiscord::start(FakeConfig::default())
        .await
        .expect("fake");
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let mut bot = start(&fake, dir.path(), port);
    wait_up(port).await;

    // 24 groups: at Discord's 5 messages per 5 s, about 25 s of sending.
    let alerts: Vec<_> = (0..GROUPS)
        .map(|i| json!({"name": format!("Burst{i:02}"), "summary": "x", "labels": {"n": i}}))
        .collect();
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/alerts/generic"))
        .bearer_auth(TOKEN)
        .json(&json!({ "alerts": alerts }))
        .send()
        .await
        .expect("intake");
    assert_eq!(r.status().as_u16(), 200, "stored before the answer");

    // Some are out, most are not: kill -9.
    let deadline = Instant::now() + Duration::from_secs(20);
    while shown(&fake).len() < 3 {
        assert!(Instant::now() < deadline, "nothing was delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bot.start_kill().expect("SIGKILL");
    let _ = bot.wait().await;
    let before = shown(&fake).len();
    assert!(
        before < GROUPS,
        "the kill came too late to test anything ({before})"
    );

    // Restarted on the same database: the rest is delivered, nothing twice.
    let mut bot = start(&fake, dir.path(), port);
    wait_up(port).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while shown(&fake).len() < GROUPS {
        assert!(
            Instant::now() < deadline,
            "after the restart only {} of {GROUPS} groups were shown",
            shown(&fake).len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let counts = shown(&fake);
    assert_eq!(counts.len(), GROUPS);
    assert!(
        counts.values().all(|n| *n == 1),
        "a group shown twice: {counts:?}"
    );
    let violations = fake.violations();
    assert_eq!(violations.total(), 0, "{violations:?}");
    bot.start_kill().expect("kill");
    let _ = bot.wait().await;
}

/// SIGTERM: the bot stops taking commands, drains what is due from the outbox
/// (about 10 s at most), exits 0; and its JSON logs carry a correlation id on every
/// line about an alert notification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_outbox_and_logs_carry_correlation_ids() {
    let fake = FakeDiscord::start(FakeConfig::default())
        .await
        .expect("fake");
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let mut bot = start(&fake, dir.path(), port);
    wait_up(port).await;
    // Eight groups: two of the channel's 5-second windows.
    let alerts: Vec<_> = (0..8)
        .map(|i| json!({"name": format!("Burst{i:02}"), "summary": "x", "labels": {"n": i}}))
        .collect();
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/alerts/generic"))
        .bearer_auth(TOKEN)
        .json(&json!({ "alerts": alerts }))
        .send()
        .await
        .expect("intake");
    assert_eq!(r.status().as_u16(), 200);
    let request_id = r
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("X-Request-Id")
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    while shown(&fake).is_empty() {
        assert!(Instant::now() < deadline, "nothing was delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        shown(&fake).len() < 8,
        "the test needs messages still queued"
    );
    let pid = bot.id().expect("pid");
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    let status = tokio::time::timeout(Duration::from_secs(20), bot.wait())
        .await
        .expect("klaxon exits within 20 s of SIGTERM")
        .expect("status");
    assert!(status.success(), "exit status {status:?}");
    let counts = shown(&fake);
    assert_eq!(counts.len(), 8, "drained before exiting: {counts:?}");
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");

    let log = std::fs::read_to_string(dir.path().join("klaxon.log")).expect("log");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(!lines.is_empty(), "{log}");
    let stored = lines
        .iter()
        .find(|l| l["message"] == "alerts stored")
        .unwrap_or_else(|| panic!("no 'alerts stored' line: {log}"));
    assert_eq!(
        stored["span"]["correlation_id"],
        request_id.as_str(),
        "{stored}"
    );
    assert!(
        lines.iter().any(|l| l["message"] == "shutting down"),
        "{log}"
    );
}

/// SIGKILL of the real binary in the middle of a rollback (the new container is up,
/// Klaxon waits for it to prove healthy): at the next start Klaxon finds the
/// half-done rollback in its database, makes sure the service runs, and says so in
/// the alerts channel; the service is free for the next operation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_rollback_is_recovered_at_the_next_start() {
    use klaxon_fake_discord::{Member, OutputKind, SlashInvocation};
    use klaxon_tests::docker::{Containers, Spec};

    let mut c = Containers::new().await;
    let name = c.run("crash-api", Spec::new("v2")).await;
    let fake = FakeDiscord::start(FakeConfig::default())
        .await
        .expect("fake");
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let extra = format!(
        "[docker]\nhost = \"{}\"\n[roles]\noperator = [1003]\n\
         [rollback]\nstop_timeout_secs = 1\nrunning_secs = 120\nhealth_timeout_secs = 300\n\
         [[services]]\nname = \"api\"\ncontainer = \"{name}\"\n",
        c.host()
    );
    let mut bot = start_with(&fake, dir.path(), port, &extra);
    wait_up(port).await;
    fake.wait_commands(123, Duration::from_secs(20))
        .await
        .expect("commands registered");
    let operator = Member {
        user_id: 6003,
        username: "operator".into(),
        roles: vec![1003],
    };
    let ask = fake
        .slash(SlashInvocation {
            name: "rollback".into(),
            options: vec![
                json!({"name": "service", "type": 3, "value": "api"}),
                json!({"name": "to", "type": 3, "value": "v1"}),
            ],
            member: Some(operator.clone()),
            user_for_dm: None,
            channel_id: 444,
            guild_id: Some(123),
        })
        .await
        .expect("slash");
    // The plan, with its Confirm button (after a defer, in an edit).
    let deadline = Instant::now() + Duration::from_secs(20);
    let plan = loop {
        assert!(Instant::now() < deadline, "no rollback plan");
        let Some(o) = fake.next_output(Duration::from_millis(200)).await else {
            continue;
        };
        let mine = match o.kind {
            OutputKind::Callback { interaction_id, .. }
            | OutputKind::EditOriginal { interaction_id }
            | OutputKind::Followup { interaction_id } => interaction_id == ask.id,
            _ => false,
        };
        if mine
            && o.message
                .custom_ids()
                .iter()
                .any(|id| id.starts_with("rollback:confirm:"))
        {
            break o.message;
        }
    };
    let confirm = plan
        .custom_ids()
        .into_iter()
        .find(|id| id.starts_with("rollback:confirm:"))
        .expect("confirm");
    let click = fake.click(operator, &plan, &confirm).await.expect("click");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            Instant::now() < deadline,
            "the rollback never reached the health wait"
        );
        let Some(o) = fake.next_output(Duration::from_millis(200)).await else {
            continue;
        };
        if matches!(o.kind, OutputKind::EditOriginal { interaction_id } if interaction_id == click.id)
            && o.message.text().contains("Waiting for health")
        {
            break;
        }
    }

    bot.start_kill().expect("SIGKILL");
    let _ = bot.wait().await;
    let before = fake.messages(ALERTS).len();

    let mut bot = start_with(&fake, dir.path(), port, &extra);
    wait_up(port).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let report = loop {
        let found = fake.messages(ALERTS).into_iter().skip(before).find(|m| {
            m.text()
                .contains("Klaxon restarted during a rollback of api")
        });
        if let Some(m) = found {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery report: {:#?}",
            fake.messages(ALERTS)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let info = c
        .docker
        .inspect_container(
            &name,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .expect("inspect");
    assert_eq!(
        info.state.and_then(|s| s.running),
        Some(true),
        "the service runs after the recovery: {}",
        report.text()
    );
    let violations = fake.violations();
    assert_eq!(violations.total(), 0, "{violations:?}");
    bot.start_kill().expect("kill");
    let _ = bot.wait().await;
    let _ = std::process::Command::new("docker")
        .args([
            "-H",
            c.host(),
            "ps",
            "-aq",
            "--filter",
            &format!("name={name}-klaxon-"),
        ])
        .output()
        .map(|o| {
            for id in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                let _ = std::process::Command::new("docker")
                    .args(["-H", c.host(), "rm", "-f", id])
                    .output();
            }
        });
    c.cleanup().await;
}
