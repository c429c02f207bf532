//! `/logs` over a container with more than a gigabyte of logs, against
//! `docker logs … | grep` in the same run, and the bot's memory while it reads.
//!
//! ```text
//! source /tmp/klaxon-test-env                    # or: eval "$(scripts/test.sh --env-only)"
//! cargo build --release -p klaxon -p klaxon-tests
//! target/release/bench-logs [--bytes 1100000000] [--reps 1] [--concurrent 16] [--max-concurrent-reads K]
//! target/release/bench-logs --bytes 0 --concurrent 16     # only the concurrent scenario
//! ```
//!
//! 1. A busybox container writes `--bytes` of log lines to stdout (`yes` of a
//!    100-line chunk: 99 INFO lines, 1 ERROR line, ~200 bytes each) and exits.
//! 2. The log is streamed once to count its lines and bytes (the json-file on disk
//!    is not readable from here), which also warms the page cache for both sides.
//! 3. The release `klaxon` binary runs as a subprocess against the fake Discord.
//!    Each scenario runs the `docker` CLI baseline, then `/logs`, `--reps` times:
//!    - `/logs lines:1000`       vs `docker logs --tail 1000 NAME`
//!    - `/logs grep:ERROR since:` vs `docker logs --since T NAME 2>&1 | grep -i ERROR | tail -n 100`
//!      (the whole log: `since` is before the container started).
//!
//!    Klaxon's time is INTERACTION_CREATE to the visible answer (the fake's clock);
//!    its memory is VmHWM (reset through /proc/PID/clear_refs before each command)
//!    minus VmRSS at idle.
//! 4. The container is removed, the bot stopped.
//!
//! Targets (reported, exit 1 when missed): wall time within 1.2x of the baseline,
//! peak RSS above idle under 64 MB; also exit 1 on a wrong answer or a Discord rule
//! broken. Writes `target/bench/logs.json`.
//!
//! `--concurrent N` adds the scenario of issue #12 item 12 (see `concurrent.rs`):
//! N members ask `/logs lines:5000` at once over a log of 4 KB lines, against a
//! fresh bot. `/logs` reads take turns (`[logs] max_concurrent_reads`, default 2),
//! so the bot's peak RSS must stay under idle + 128 MiB. `--max-concurrent-reads K`
//! writes that setting into the bot's config (`16` shows what the queue saves).
//! `--bytes 0` skips the big log and its two scenarios.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures::StreamExt as _;
use klaxon_core::permissions::Level;
use klaxon_fake_discord::{FakeConfig, FakeDiscord, OutputKind, SlashInvocation};
use klaxon_tests::bench::{
    self, cpu_seconds, klaxon_binary, met, mib, secs, thousands, toml_str, Memory,
};
use klaxon_tests::docker::{Containers, Spec};
use klaxon_tests::tester::{role_of, GUILD, OPS};
use klaxon_tests::{env, Tester};
use serde_json::{json, Value};

const WALL_RATIO_TARGET: f64 = 1.2;
const PEAK_ABOVE_IDLE_TARGET: u64 = 64 * 1024 * 1024;
const SETTLE: Duration = Duration::from_secs(3);
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Generous: the engine reads json-file logs at some tens of MB/s.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);
const INGEST_TIMEOUT: Duration = Duration::from_secs(900);

const USAGE: &str =
    "usage: bench-logs [--bytes N] [--reps N] [--concurrent N] [--max-concurrent-reads N]\n  \
    defaults: --bytes 1100000000 (0 skips the big log), --reps 1, no concurrent scenario, \
    the bot's own max_concurrent_reads";

#[path = "bench_logs/concurrent.rs"]
mod concurrent;

/// The generator: a 100-line chunk repeated by `yes`, cut at $BYTES.
const GENERATOR: &str = r#"pad=$(head -c 100 /dev/zero | tr '\0' x)
chunk=""
i=0
while [ $i -lt 99 ]; do
  i=$((i+1))
  chunk="${chunk}INFO request handled method=GET path=/api/v1/orders/$i status=200 latency_ms=12 user=42 payload=$pad
"
done
chunk="${chunk}ERROR db timeout after 5000 ms query=select_orders attempt=3 payload=$pad"
yes "$chunk" | head -c "$BYTES"
"#;

struct Args {
    /// 0: no big log, no `lines:1000` / `grep` scenarios.
    bytes: u64,
    reps: usize,
    /// `/logs lines:5000` sent at once, when the concurrent scenario runs.
    concurrent: Option<usize>,
    /// `[logs] max_concurrent_reads` for the bot; its default when `None`.
    max_reads: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let f = bench::Flags::from_env(
        USAGE,
        &[
            "--bytes",
            "--reps",
            "--concurrent",
            "--max-concurrent-reads",
        ],
        &[],
    )?;
    let args = Args {
        bytes: f.number("--bytes")?.unwrap_or(1_100_000_000),
        reps: f.positive("--reps")?.map_or(1, |n| n as usize),
        concurrent: f.positive("--concurrent")?.map(|n| n as usize),
        max_reads: f.positive("--max-concurrent-reads")?.map(|n| n as usize),
    };
    if args.bytes == 0 && args.concurrent.is_none() {
        return Err(format!(
            "--bytes 0 without --concurrent: nothing to run\n{USAGE}"
        ));
    }
    Ok(args)
}

// ----------------------------------------------------------------- the log

struct LogStats {
    lines: u64,
    bytes: u64,
    errors: u64,
    ingest: Duration,
    count: Duration,
}

/// Starts a generator (`sh -c script` with `env`, `KEY=value` each) and waits
/// for it to exit (every byte logged).
async fn generate(
    c: &mut Containers,
    prefix: &str,
    script: &str,
    env: &[&str],
) -> anyhow::Result<(String, Duration)> {
    let started = Instant::now();
    let spec = env
        .iter()
        .fold(Spec::new("v1").cmd(script), |spec, kv| spec.env(kv));
    let name = c.run(prefix, spec).await;
    loop {
        let state = c
            .docker
            .inspect_container(&name, None)
            .await
            .context("inspecting the generator")?
            .state
            .unwrap_or_default();
        if !state.running.unwrap_or(false) {
            if state.exit_code != Some(0) {
                bail!("the generator exited with {:?}", state.exit_code);
            }
            return Ok((name, started.elapsed()));
        }
        if started.elapsed() > INGEST_TIMEOUT {
            bail!("the generator still runs after {INGEST_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Streams the whole log once: lines, bytes and ERROR lines.
async fn count(c: &Containers, name: &str) -> anyhow::Result<(u64, u64, u64)> {
    let opts = bollard::query_parameters::LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .build();
    let mut s = c.docker.logs(name, Some(opts));
    let (mut lines, mut bytes, mut errors) = (0u64, 0u64, 0u64);
    while let Some(frame) = s.next().await {
        let frame = frame.context("reading the log")?;
        let b: &[u8] = frame.as_ref();
        lines += 1;
        bytes += b.len() as u64;
        if b.starts_with(b"ERROR") {
            errors += 1;
        }
    }
    Ok((lines, bytes, errors))
}

// -------------------------------------------------------- the real binary

fn config_toml(
    api_url: &str,
    db_url: &str,
    docker_host: &str,
    container: &str,
    max_reads: Option<usize>,
) -> String {
    let max_reads = max_reads
        .map(|n| format!("max_concurrent_reads = {n}\n"))
        .unwrap_or_default();
    format!(
        r#"[discord]
api_url = {api}
guild_id = {GUILD}

[database]
url = {db}

[docker]
host = {docker}

[http]
listen = "127.0.0.1:0"

[roles]
viewer = [{viewer}]
admin = [{admin}]

[logs]
# The whole gigabyte must be read: the bench measures throughput, not the deadline.
read_timeout_secs = 900
{max_reads}
[[services]]
name = "bench"
container = {container}
"#,
        api = toml_str(api_url),
        db = toml_str(db_url),
        docker = toml_str(docker_host),
        container = toml_str(container),
        viewer = role_of(Level::Viewer),
        admin = role_of(Level::Admin),
    )
}

struct Bot {
    child: tokio::process::Child,
    pid: u32,
    log: PathBuf,
}

async fn start_bot(
    fake: &FakeDiscord,
    token: &str,
    dir: &Path,
    docker_host: &str,
    container: &str,
    max_reads: Option<usize>,
) -> anyhow::Result<Bot> {
    let binary = klaxon_binary()?;
    let config = dir.join("klaxon.toml");
    std::fs::write(
        &config,
        config_toml(
            &fake.api_url(),
            &env::sqlite_url(dir),
            docker_host,
            container,
            max_reads,
        ),
    )
    .with_context(|| format!("writing {}", config.display()))?;
    let log = dir.join("klaxon.log");
    let log_file =
        std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let mut cmd = tokio::process::Command::new(&binary);
    cmd.arg("run")
        .arg("--config")
        .arg(&config)
        .env("DISCORD_TOKEN", token)
        .env("KLAXON_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .kill_on_drop(true);
    for (key, _) in std::env::vars() {
        if key.starts_with("KLAXON_") && key.contains("__") {
            cmd.env_remove(key);
        }
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let pid = child.id().context("klaxon exited at once")?;
    tokio::select! {
        r = fake.wait_commands(GUILD, STARTUP_TIMEOUT) => { r.with_context(|| log_tail(&log))?; }
        status = child.wait() => bail!("klaxon exited during start-up ({status:?}); {}", log_tail(&log)),
    }
    Ok(Bot { child, pid, log })
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    format!(
        "klaxon's log ({}):\n{}",
        log.display(),
        lines[lines.len().saturating_sub(20)..].join("\n")
    )
}

async fn stop_bot(bot: &mut Bot) -> String {
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &bot.pid.to_string()])
        .status();
    if !matches!(sent, Ok(s) if s.success()) {
        let _ = bot.child.kill().await;
        return "kill -TERM failed; killed".into();
    }
    match tokio::time::timeout(Duration::from_secs(10), bot.child.wait()).await {
        Ok(Ok(status)) => format!("exited with {status}"),
        _ => {
            let _ = bot.child.kill().await;
            "did not exit within 10 s of SIGTERM; killed".into()
        }
    }
}

/// What the member saw, and when.
struct Answer {
    wall: Duration,
    content: String,
    file: Option<String>,
    peak: u64,
    cpu: f64,
}

/// One `/logs` through the fake; waits for the visible answer.
async fn run_logs(fake: &FakeDiscord, bot: &Bot, options: Vec<Value>) -> anyhow::Result<Answer> {
    Memory::reset_peak(bot.pid)?;
    let cpu_before = cpu_seconds(bot.pid);
    let member = Tester::member(Some(Level::Viewer));
    let ix = fake
        .slash(SlashInvocation::guild("logs", OPS, member).with_options(options))
        .await?;
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!(
                "no answer within {COMMAND_TIMEOUT:?}; {}",
                log_tail(&bot.log)
            );
        }
        let Some(out) = fake.next_output(left.min(Duration::from_secs(5))).await else {
            continue;
        };
        let answered = match out.kind {
            OutputKind::Callback {
                interaction_id,
                callback_type,
            } => interaction_id == ix.id && callback_type != 5,
            OutputKind::Followup { interaction_id }
            | OutputKind::EditOriginal { interaction_id } => interaction_id == ix.id,
            _ => false,
        };
        if !answered {
            continue;
        }
        let mem = Memory::of(bot.pid)?;
        return Ok(Answer {
            wall: out.at.saturating_duration_since(ix.dispatched_at),
            content: out.message.content.clone(),
            file: out
                .message
                .attachments
                .first()
                .map(|a| String::from_utf8_lossy(&a.data).into_owned()),
            peak: mem.hwm,
            cpu: cpu_seconds(bot.pid) - cpu_before,
        });
    }
}

/// The docker CLI baseline: wall time and its output.
fn baseline(shell: &str) -> anyhow::Result<(Duration, String)> {
    let started = Instant::now();
    let out = std::process::Command::new("sh")
        .args(["-c", shell])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("running the docker CLI")?;
    if !out.status.success() {
        bail!("`{shell}` failed: {}", out.status);
    }
    Ok((
        started.elapsed(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

/// The log lines of an answer (attachment, else the inline block), without
/// Klaxon's timestamps.
fn answer_lines(a: &Answer) -> Vec<String> {
    match &a.file {
        Some(f) => f
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split_once(' ').map(|(_, t)| t).unwrap_or(l).to_string())
            .collect(),
        None => {
            let start = a.content.find("```\n").map(|i| i + 4).unwrap_or(0);
            let body = &a.content[start..];
            let end = body.find("\n```").unwrap_or(body.len());
            body[..end]
                .lines()
                .map(|l| l.get(9..).unwrap_or(l).to_string())
                .collect()
        }
    }
}

struct Scenario {
    name: &'static str,
    options: Vec<Value>,
    shell: String,
    expect: String,
}

#[derive(Default)]
struct Result1 {
    name: String,
    baseline: Vec<Duration>,
    klaxon: Vec<Duration>,
    peak_above_idle: u64,
    cpu: f64,
    expect_ok: bool,
    same_lines: bool,
    summary: String,
}

impl Result1 {
    fn best(v: &[Duration]) -> Duration {
        v.iter().copied().min().unwrap_or_default()
    }
    fn ratio(&self) -> f64 {
        let b = Self::best(&self.baseline).as_secs_f64();
        if b == 0.0 {
            return f64::INFINITY;
        }
        Self::best(&self.klaxon).as_secs_f64() / b
    }
    fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.expect_ok {
            out.push(format!(
                "{}: unexpected answer: {}",
                self.name, self.summary
            ));
        }
        if !self.same_lines {
            out.push(format!("{}: lines differ from the docker CLI's", self.name));
        }
        if self.ratio() > WALL_RATIO_TARGET {
            out.push(format!(
                "{}: wall time {:.2}x the docker CLI's (target {WALL_RATIO_TARGET}x)",
                self.name,
                self.ratio()
            ));
        }
        if self.peak_above_idle >= PEAK_ABOVE_IDLE_TARGET {
            out.push(format!(
                "{}: peak RSS {:.1} MiB above idle (target < 64 MiB)",
                self.name,
                mib(self.peak_above_idle)
            ));
        }
        out
    }
    fn json(&self) -> Value {
        json!({
            "name": self.name,
            "docker_cli_s": self.baseline.iter().map(|d| secs(*d)).collect::<Vec<_>>(),
            "klaxon_s": self.klaxon.iter().map(|d| secs(*d)).collect::<Vec<_>>(),
            "ratio_best": (self.ratio() * 100.0).round() / 100.0,
            "klaxon_cpu_s": (self.cpu * 100.0).round() / 100.0,
            "peak_rss_above_idle_mib": mib(self.peak_above_idle),
            "answer": self.summary,
            "same_lines_as_docker_cli": self.same_lines,
            "failures": self.failures(),
        })
    }
}

async fn run_scenario(
    fake: &FakeDiscord,
    bot: &Bot,
    idle: Memory,
    s: &Scenario,
    reps: usize,
) -> anyhow::Result<Result1> {
    let mut r = Result1 {
        name: s.name.to_string(),
        ..Default::default()
    };
    let mut cli_lines = Vec::new();
    let mut last = None;
    for _ in 0..reps {
        let (d, out) = baseline(&s.shell)?;
        r.baseline.push(d);
        cli_lines = out.lines().map(String::from).collect::<Vec<_>>();
        let a = run_logs(fake, bot, s.options.clone()).await?;
        r.klaxon.push(a.wall);
        r.peak_above_idle = r.peak_above_idle.max(a.peak.saturating_sub(idle.rss));
        r.cpu = r.cpu.max(a.cpu);
        last = Some(a);
    }
    let a = last.context("no repetition ran")?;
    r.expect_ok = a.content.contains(&s.expect);
    r.summary = a.content.lines().take(2).collect::<Vec<_>>().join(" | ");
    let got = answer_lines(&a);
    r.same_lines = !got.is_empty() && got == cli_lines;
    if !r.same_lines {
        eprintln!(
            "{}: klaxon {} line(s), docker CLI {}; first {:?} vs {:?}",
            s.name,
            got.len(),
            cli_lines.len(),
            got.first(),
            cli_lines.first()
        );
    }
    Ok(r)
}

async fn bench(
    args: &Args,
    docker_host: &str,
    failures: &mut Vec<String>,
) -> anyhow::Result<Value> {
    let mut c = Containers::new().await;
    let since = chrono::Utc::now() - chrono::Duration::seconds(5);
    let (name, ingest) = generate(
        &mut c,
        "bench-logs",
        GENERATOR,
        &[&format!("BYTES={}", args.bytes)],
    )
    .await?;
    let t = Instant::now();
    let (lines, bytes, errors) = count(&c, &name).await?;
    let log = LogStats {
        lines,
        bytes,
        errors,
        ingest,
        count: t.elapsed(),
    };
    println!(
        "log: {} lines, {:.1} MiB ({} ERROR lines); generated in {:.1} s, streamed once in {:.1} s",
        log.lines,
        mib(log.bytes),
        log.errors,
        secs(log.ingest),
        secs(log.count)
    );

    let fake_cfg = FakeConfig::default();
    let token = fake_cfg.token.clone();
    let fake = FakeDiscord::start(fake_cfg).await?;
    let dir = tempfile::tempdir().context("creating a temp dir")?;
    let mut bot = start_bot(
        &fake,
        &token,
        dir.path(),
        docker_host,
        &name,
        args.max_reads,
    )
    .await?;
    tokio::time::sleep(SETTLE).await;
    let idle = Memory::of(bot.pid)?;
    println!(
        "klaxon pid {}: idle VmRSS {:.1} MiB",
        bot.pid,
        mib(idle.rss)
    );

    let since_text = since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let d = format!("docker -H {docker_host}");
    let opt = |n: &str, t: u8, v: Value| json!({"name": n, "type": t, "value": v});
    let scenarios = [
        Scenario {
            name: "lines:1000",
            options: vec![
                opt("service", 3, json!("bench")),
                opt("lines", 4, json!(1000)),
            ],
            shell: format!("{d} logs --tail 1000 {name} 2>&1"),
            expect: "the last 1,000 lines".into(),
        },
        Scenario {
            name: "grep:ERROR since:(whole log)",
            options: vec![
                opt("service", 3, json!("bench")),
                opt("grep", 3, json!("ERROR")),
                opt("since", 3, json!(since_text)),
            ],
            shell: format!(
                "{d} logs --since {since_text} {name} 2>&1 | grep -i ERROR | tail -n 100"
            ),
            expect: format!("100 of {} matching lines", thousands(log.errors)),
        },
    ];
    let mut results = Vec::new();
    for s in &scenarios {
        match run_scenario(&fake, &bot, idle, s, args.reps).await {
            Ok(r) => {
                println!(
                    "{:<30} docker CLI {:>7.2} s   klaxon {:>7.2} s   ratio {:.2}x (target ≤ {WALL_RATIO_TARGET}x: {})   klaxon CPU {:.1} s   peak RSS above idle {:.1} MiB (target < 64: {})   same lines: {}",
                    r.name,
                    secs(Result1::best(&r.baseline)),
                    secs(Result1::best(&r.klaxon)),
                    r.ratio(),
                    met(r.ratio() <= WALL_RATIO_TARGET),
                    r.cpu,
                    mib(r.peak_above_idle),
                    met(r.peak_above_idle < PEAK_ABOVE_IDLE_TARGET),
                    r.same_lines
                );
                println!("{:<30} answer: {}", "", r.summary);
                failures.extend(r.failures());
                results.push(r.json());
            }
            Err(e) => {
                failures.push(format!("{}: {e:#}", s.name));
                results.push(json!({"name": s.name, "error": format!("{e:#}")}));
            }
        }
    }
    let violations = fake.violations();
    if violations.total() > 0 {
        failures.push(format!("Discord rules broken: {:?}", violations.details));
    }
    let exit = stop_bot(&mut bot).await;
    c.cleanup().await;
    Ok(json!({
        "log": {
            "lines": log.lines,
            "bytes": log.bytes,
            "error_lines": log.errors,
            "generate_s": secs(log.ingest),
            "stream_once_s": secs(log.count),
        },
        "idle_rss_mib": mib(idle.rss),
        "scenarios": results,
        "violations": violations.total(),
        "bot_exit": exit,
    }))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let filter = std::env::var("KLAXON_TEST_LOG").unwrap_or_else(|_| "warn,serenity=error".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let Some(docker_host) = std::env::var("KLAXON_TEST_DOCKER_HOST")
        .ok()
        .filter(|h| !h.trim().is_empty())
    else {
        eprintln!(
            "bench-logs: KLAXON_TEST_DOCKER_HOST is not set: this bench needs the private test \
             engine; run `eval \"$(scripts/test.sh --env-only)\"` first (or `source /tmp/klaxon-test-env`)"
        );
        return ExitCode::FAILURE;
    };
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "bench-logs: {} bytes of logs, {} rep(s), concurrent scenario: {}, max_concurrent_reads: {}; {cpus} CPU(s); engine {docker_host}",
        args.bytes,
        args.reps,
        args.concurrent.map_or("off".into(), |n| format!("{n} reads")),
        args.max_reads.map_or("the bot's default".into(), |n| n.to_string()),
    );
    let mut failures = Vec::new();
    let started = Instant::now();
    let report = if args.bytes == 0 {
        Value::Null
    } else {
        match bench(&args, &docker_host, &mut failures).await {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{e:#}"));
                json!({ "error": format!("{e:#}") })
            }
        }
    };
    let concurrent = match args.concurrent {
        None => Value::Null,
        Some(n) => match concurrent::run(n, args.max_reads, &docker_host, &mut failures).await {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("concurrent: {e:#}"));
                json!({ "error": format!("{e:#}") })
            }
        },
    };
    println!("total {:.0} s", started.elapsed().as_secs_f64());
    let report = json!({
        "generated_at": chrono::Utc::now().to_rfc3339(),
        "bytes_requested": args.bytes,
        "reps": args.reps,
        "cpus": cpus,
        "max_concurrent_reads": args.max_reads,
        "targets": {
            "wall_ratio": WALL_RATIO_TARGET,
            "peak_rss_above_idle_mib": 64,
            "concurrent_peak_rss_above_idle_mib": mib(concurrent::PEAK_TARGET),
        },
        "result": report,
        "concurrent": concurrent,
        "failures": failures,
        "pass": failures.is_empty(),
    });
    if let Ok(path) = bench::json_path("logs") {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        match serde_json::to_string_pretty(&report)
            .map_err(anyhow::Error::from)
            .and_then(|t| std::fs::write(&path, t + "\n").map_err(anyhow::Error::from))
        {
            Ok(()) => println!("JSON: {}", path.display()),
            Err(e) => failures.push(format!("writing {}: {e:#}", path.display())),
        }
    }
    if failures.is_empty() {
        println!("PASS");
        ExitCode::SUCCESS
    } else {
        println!("FAIL");
        for f in &failures {
            println!("  - {f}");
        }
        ExitCode::FAILURE
    }
}
