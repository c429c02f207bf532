//! The README's quick start, followed as written (issue #13): its `klaxon.toml`
//! and its `cargo run --release -- …` command lines are read from README.md and
//! run with the `klaxon` binary of this build, the fake Discord standing in for
//! discord.com (`KLAXON_DISCORD__API_URL`, and the fake's ids in place of the
//! README's). It ends where a new team's first half hour should: the demo alert
//! of `klaxon alerts send-test` in the alerts channel.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use klaxon_fake_discord::{FakeConfig, FakeDiscord};
use klaxon_tests::env;

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

/// The quick start section of README.md: its fenced blocks, as (language, text).
fn quick_start_blocks() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let start = readme
        .find("## Quick start")
        .expect("a Quick start section");
    let section = &readme[start..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    let mut blocks = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in section[..end].lines() {
        let trimmed = line.trim_start();
        if let Some(lang) = trimmed.strip_prefix("```") {
            match current.take() {
                Some(block) => blocks.push(block),
                None => current = Some((lang.to_string(), String::new())),
            }
        } else if let Some((_, text)) = current.as_mut() {
            // The blocks are indented under list items.
            text.push_str(line.strip_prefix("   ").unwrap_or(line));
            text.push('\n');
        }
    }
    blocks
}

/// `VAR=value` pairs set before a command.
type Vars = Vec<(String, String)>;

/// A README command line `[VAR=value ...] cargo run --release -- ARGS  # comment`:
/// its variables and arguments.
fn command(line: &str) -> Option<(Vars, Vec<String>)> {
    let line = line.split(" #").next().unwrap_or(line);
    let (before, args) = line.split_once("cargo run --release -- ")?;
    let vars = before
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Some((vars, args.split_whitespace().map(str::to_string).collect()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_quick_start_ends_with_the_demo_alert_in_the_alerts_channel() {
    let fake = FakeDiscord::start(FakeConfig::default())
        .await
        .expect("fake");
    let dir = tempfile::tempdir().expect("dir");
    let blocks = quick_start_blocks();

    // Step 4: the config as written.
    let (_, toml) = blocks
        .iter()
        .find(|(lang, _)| lang == "toml")
        .expect("a toml block in the quick start");
    std::fs::write(dir.path().join("klaxon.toml"), toml).expect("klaxon.toml");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let intake_token = format!("quickstart-{}", std::process::id());
    // Only what points the README's config at this machine's stand-ins.
    let overrides = [
        ("KLAXON_DISCORD__API_URL", fake.api_url()),
        (
            "KLAXON_DISCORD__GUILD_ID",
            fake.config().guild_id.to_string(),
        ),
        ("KLAXON_CHANNELS__ALERTS", "111".to_string()),
        ("KLAXON_CHANNELS__INCIDENTS", "222".to_string()),
        ("KLAXON_CHANNELS__AUDIT", "333".to_string()),
        ("KLAXON_HTTP__LISTEN", format!("127.0.0.1:{port}")),
        ("KLAXON_DOCKER__HOST", env::docker_host()),
        ("KLAXON_INTAKE__ALERTMANAGER_TOKEN", intake_token.clone()),
        ("KLAXON_LOG", "info".to_string()),
    ];
    let run = |vars: &[(String, String)], args: &[String]| {
        let mut cmd = tokio::process::Command::new(klaxon_binary());
        cmd.current_dir(dir.path())
            .args(args)
            .env_remove("DISCORD_TOKEN")
            .kill_on_drop(true);
        for (k, v) in &overrides {
            cmd.env(k, v);
        }
        for (k, v) in vars {
            let v = if k == "DISCORD_TOKEN" {
                fake.config().token.clone()
            } else {
                v.clone()
            };
            cmd.env(k, v);
        }
        cmd
    };

    let commands: Vec<_> = blocks
        .iter()
        .filter(|(lang, _)| lang == "sh")
        .flat_map(|(_, text)| text.lines().filter_map(command).collect::<Vec<_>>())
        .collect();
    let names: Vec<String> = commands.iter().map(|(_, a)| a.join(" ")).collect();
    assert_eq!(
        names,
        [
            "check-config --config klaxon.toml",
            "check-config --online --config klaxon.toml",
            "run --config klaxon.toml",
            "alerts send-test --config klaxon.toml",
        ],
        "the quick start's commands changed: update this test"
    );

    let mut bot = None;
    for (vars, args) in &commands {
        let shown = args.join(" ");
        match args[0].as_str() {
            "run" => {
                let log = std::fs::File::create(dir.path().join("klaxon.log")).expect("log");
                let child = run(vars, args)
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .expect("klaxon run");
                bot = Some(child);
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    let ready = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
                        .await
                        .map(|r| r.status().as_u16() == 200)
                        .unwrap_or(false);
                    if ready {
                        break;
                    }
                    let log =
                        std::fs::read_to_string(dir.path().join("klaxon.log")).unwrap_or_default();
                    assert!(
                        Instant::now() < deadline,
                        "klaxon did not become ready:\n{log}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            _ => {
                let out = run(vars, args).output().await.expect("klaxon");
                let stdout = String::from_utf8_lossy(&out.stdout);
                let stderr = String::from_utf8_lossy(&out.stderr);
                if shown.contains("--online") {
                    // The README's [[services]] example is not running here: every
                    // other check passes, Docker included.
                    for ok in [
                        "ok   token:",
                        "ok   guild:",
                        "ok   channels.alerts:",
                        "ok   docker:",
                    ] {
                        assert!(
                            stdout.contains(ok),
                            "{shown}: no {ok:?}:\n{stdout}\n{stderr}"
                        );
                    }
                    assert!(
                        stdout.contains(
                            "FAIL services[0].health_url (api): http://127.0.0.1:8080/health"
                        ),
                        "{stdout}"
                    );
                    // The README's role id is not in the fake's server.
                    assert!(
                        stdout.contains("FAIL roles.admin: no role 712345678901234571"),
                        "{stdout}"
                    );
                } else {
                    assert!(out.status.success(), "{shown}:\n{stdout}\n{stderr}");
                }
            }
        }
    }

    // Step 6's alert, in the alerts channel, through Alertmanager's path.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let shown = fake
            .messages(111)
            .iter()
            .any(|m| m.text().contains("KlaxonTestAlert"));
        if shown {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no KlaxonTestAlert in the alerts channel; klaxon log:\n{}",
            std::fs::read_to_string(dir.path().join("klaxon.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The README's SQLite file is next to its config.
    assert!(dir.path().join("klaxon.db").exists());
    let mut bot = bot.expect("klaxon run was in the quick start");
    let pid = bot.id().expect("pid") as i32;
    // SIGTERM (`kill`), as systemd and `docker stop` send it: a clean stop.
    let _ = std::process::Command::new("kill")
        .arg(pid.to_string())
        .status();
    let status = tokio::time::timeout(Duration::from_secs(35), bot.wait())
        .await
        .expect("stopped within 35 s")
        .expect("exit status");
    assert!(status.success(), "{status}");
}
