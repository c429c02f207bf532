//! `bench-logs --concurrent N`: N members ask `/logs lines:5000` at once over a
//! log of ~4 KB lines (issue #12 item 12). Before reads took turns, sixteen of
//! them took the bot to 519 MB and left it near 300 MB; one read holds up to
//! 5,000 lines of 4 KiB plus a 10 MiB attachment, so the bound has to hold across
//! requests, not only within one.
//!
//! 1. A busybox container writes 6,000 numbered lines of ~4 KB and exits.
//! 2. A fresh bot starts (its own process, so the big-log scenarios' allocator
//!    leftovers stay out of this figure) and settles; idle VmRSS is taken and
//!    VmHWM reset.
//! 3. N `/logs service:bench lines:5000` are dispatched at once, from N members,
//!    and every answer is awaited.
//! 4. Each answer must say "the last 5,000 lines" and carry a `.log` file whose
//!    header says 5,000 lines shown, whose lines are the newest ones, contiguous,
//!    uncut and ending at the log's last, and whose "earlier line(s) left out"
//!    note (Discord takes files up to 10 MiB) accounts for the rest.
//! 5. Peak = VmHWM − idle over all N reads (target < 128 MiB, exit 1 when missed);
//!    also VmRSS − idle 5 s after the last answer, the wall time from the first
//!    dispatch to the last answer, and how many replies said they were queued.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use klaxon_core::permissions::Level;
use klaxon_fake_discord::{FakeConfig, FakeDiscord, Member, OutputKind, SlashInvocation};
use klaxon_tests::docker::Containers;
use klaxon_tests::tester::{role_of, OPS};
use serde_json::{json, Value};

use super::{
    cpu_seconds, generate, log_tail, met, mib, secs, start_bot, stop_bot, thousands, Bot, Memory,
    COMMAND_TIMEOUT, SETTLE,
};

/// Peak RSS above idle while the N reads run (issue #12: "under idle + 128 MiB").
pub const PEAK_TARGET: u64 = 128 * 1024 * 1024;
/// Lines the container writes: more than one read asks for.
const LINES: u64 = 6_000;
/// `lines:` of each read (the most `/logs` shows).
const ASK: u64 = 5_000;
/// Each line: `line N ` and this many `x` (a line stays under the 4 KiB cut).
const PAD: usize = 4_000;
/// When "RSS after" is taken.
const AFTER: Duration = Duration::from_secs(5);

const GENERATOR: &str = r#"pad=$(head -c "$PAD" /dev/zero | tr '\0' x)
i=0
while [ $i -lt "$LINES" ]; do
  i=$((i+1))
  echo "line $i $pad"
done
"#;

/// One member's answer, as the fake saw it.
struct Answer {
    wall: Duration,
    content: String,
    file: Option<String>,
}

/// What the N reads cost.
struct Measured {
    idle: u64,
    peak: u64,
    after: u64,
    wall: Duration,
    first: Duration,
    last: Duration,
    cpu: f64,
    answers: Vec<Answer>,
}

pub async fn run(
    n: usize,
    max_reads: Option<usize>,
    docker_host: &str,
    failures: &mut Vec<String>,
) -> anyhow::Result<Value> {
    let mut c = Containers::new().await;
    let result = scenario(&mut c, n, max_reads, docker_host, failures).await;
    c.cleanup().await;
    result
}

async fn scenario(
    c: &mut Containers,
    n: usize,
    max_reads: Option<usize>,
    docker_host: &str,
    failures: &mut Vec<String>,
) -> anyhow::Result<Value> {
    let (name, ingest) = generate(
        c,
        "bench-logs-concurrent",
        GENERATOR,
        &[&format!("LINES={LINES}"), &format!("PAD={PAD}")],
    )
    .await?;
    println!(
        "concurrent: {} lines of ~{:.1} KB written in {:.1} s",
        thousands(LINES),
        PAD as f64 / 1000.0,
        secs(ingest)
    );
    let fake_cfg = FakeConfig::default();
    let token = fake_cfg.token.clone();
    let fake = FakeDiscord::start(fake_cfg).await?;
    let dir = tempfile::tempdir().context("creating a temp dir")?;
    let mut bot = start_bot(&fake, &token, dir.path(), docker_host, &name, max_reads).await?;
    let measured = ask_all(&fake, &bot, n).await;
    let violations = fake.violations();
    let exit = stop_bot(&mut bot).await;
    let m = measured?;

    let mut wrong = Vec::new();
    for (i, a) in m.answers.iter().enumerate() {
        if let Err(e) = check(a) {
            wrong.push(format!("read {}: {e}", i + 1));
        }
    }
    let queued = m
        .answers
        .iter()
        .filter(|a| a.content.contains("Queued"))
        .count();
    let peak = m.peak.saturating_sub(m.idle);
    let after = m.after.saturating_sub(m.idle);
    let limit = max_reads.map_or("the default".to_string(), |k| k.to_string());
    println!(
        "concurrent: {n} × /logs lines:{ASK} (max_concurrent_reads {limit}): idle VmRSS {:.1} MiB; \
         peak RSS above idle {:.1} MiB (target < {:.0}: {}); above idle {} s after the last answer {:.1} MiB",
        mib(m.idle),
        mib(peak),
        mib(PEAK_TARGET),
        met(peak < PEAK_TARGET),
        AFTER.as_secs(),
        mib(after),
    );
    println!(
        "concurrent: wall {:.2} s from the first dispatch to the last answer (first answer after {:.2} s); \
         klaxon CPU {:.1} s; {queued}/{n} replies said Queued; right answers {}/{n}",
        secs(m.wall),
        secs(m.first),
        m.cpu,
        n - wrong.len(),
    );
    if let Some(a) = m.answers.iter().find(|a| a.content.contains("Queued")) {
        let note = a.content.lines().find(|l| l.contains("Queued"));
        println!("concurrent: e.g. {}", note.unwrap_or_default());
    }
    for w in &wrong {
        eprintln!("concurrent: {w}");
    }

    let mut mine = Vec::new();
    if peak >= PEAK_TARGET {
        mine.push(format!(
            "concurrent: peak RSS {:.1} MiB above idle (target < {:.0} MiB)",
            mib(peak),
            mib(PEAK_TARGET)
        ));
    }
    mine.extend(
        wrong
            .iter()
            .map(|w| format!("concurrent: wrong answer: {w}")),
    );
    if violations.total() > 0 {
        mine.push(format!(
            "concurrent: Discord rules broken: {:?}",
            violations.details
        ));
    }
    failures.extend(mine.iter().cloned());
    Ok(json!({
        "reads": n,
        "lines_each": ASK,
        "log": { "lines": LINES, "line_bytes": PAD + "line 6000 ".len(), "generate_s": secs(ingest) },
        "max_concurrent_reads": max_reads,
        "idle_rss_mib": mib(m.idle),
        "peak_rss_above_idle_mib": mib(peak),
        "rss_above_idle_after_mib": mib(after),
        "after_s": AFTER.as_secs(),
        "wall_s": secs(m.wall),
        "first_answer_s": secs(m.first),
        "last_answer_s": secs(m.last),
        "klaxon_cpu_s": (m.cpu * 100.0).round() / 100.0,
        "queued_replies": queued,
        "right_answers": n - wrong.len(),
        "violations": violations.total(),
        "bot_exit": exit,
        "failures": mine,
    }))
}

/// Dispatches `n` reads at once and waits for every answer.
async fn ask_all(fake: &FakeDiscord, bot: &Bot, n: usize) -> anyhow::Result<Measured> {
    tokio::time::sleep(SETTLE).await;
    let idle = Memory::of(bot.pid)?.rss;
    Memory::reset_peak(bot.pid)?;
    let cpu_before = cpu_seconds(bot.pid);
    let opt = |name: &str, t: u8, v: Value| json!({"name": name, "type": t, "value": v});
    let options = vec![
        opt("service", 3, json!("bench")),
        opt("lines", 4, json!(ASK)),
    ];
    // Each dispatch only queues a gateway event: all n are out within milliseconds.
    let mut asked = HashMap::new();
    let mut dispatched = Vec::new();
    for i in 0..n {
        let member = Member {
            user_id: 7_000 + i as u64,
            username: format!("reader-{i}"),
            roles: vec![role_of(Level::Viewer)],
        };
        let ix = fake
            .slash(SlashInvocation::guild("logs", OPS, member).with_options(options.clone()))
            .await?;
        asked.insert(ix.id, i);
        dispatched.push(ix.dispatched_at);
    }
    let start = dispatched.first().copied().context("no read was sent")?;
    let mut answers: Vec<Option<Answer>> = (0..n).map(|_| None).collect();
    let mut last_at = start;
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    while answers.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let missing = answers.iter().filter(|a| a.is_none()).count();
            bail!(
                "{missing} of {n} reads not answered within {COMMAND_TIMEOUT:?}; {}",
                log_tail(&bot.log)
            );
        }
        let Some(out) = fake.next_output(left.min(Duration::from_secs(5))).await else {
            continue;
        };
        let id = match out.kind {
            OutputKind::Callback {
                interaction_id,
                callback_type,
            } if callback_type != 5 => interaction_id,
            OutputKind::Followup { interaction_id }
            | OutputKind::EditOriginal { interaction_id } => interaction_id,
            _ => continue,
        };
        let Some(&i) = asked.get(&id) else { continue };
        if answers[i].is_some() {
            continue;
        }
        last_at = last_at.max(out.at);
        answers[i] = Some(Answer {
            wall: out.at.saturating_duration_since(dispatched[i]),
            content: out.message.content.clone(),
            file: out
                .message
                .attachments
                .first()
                .map(|a| String::from_utf8_lossy(&a.data).into_owned()),
        });
    }
    let peak = Memory::of(bot.pid)?.hwm;
    let cpu = cpu_seconds(bot.pid) - cpu_before;
    tokio::time::sleep(AFTER).await;
    let after = Memory::of(bot.pid)?.rss;
    let answers: Vec<Answer> = answers.into_iter().flatten().collect();
    let walls = answers.iter().map(|a| a.wall);
    Ok(Measured {
        idle,
        peak,
        after,
        wall: last_at.saturating_duration_since(start),
        first: walls.clone().min().unwrap_or_default(),
        last: walls.max().unwrap_or_default(),
        cpu,
        answers,
    })
}

/// The answer a member should see: the newest 5,000 lines, as a file, each line
/// whole; the oldest of them left out (and said so) only to fit Discord's 10 MiB.
fn check(a: &Answer) -> Result<(), String> {
    let want = format!("the last {} lines", thousands(ASK));
    if !a.content.contains(&want) {
        return Err(format!(
            "no “{want}” in {:?}",
            a.content.lines().take(3).collect::<Vec<_>>()
        ));
    }
    let file = a.file.as_deref().ok_or("no attachment")?;
    let shown = format!("# {} line(s) shown", thousands(ASK));
    if !file.lines().take(3).any(|l| l == shown) {
        return Err(format!("no “{shown}” in the file's header"));
    }
    let left_out: u64 = file
        .lines()
        .take(4)
        .find_map(|l| {
            let (n, _) = l.strip_prefix("# ")?.split_once(" earlier line(s)")?;
            n.replace(',', "").parse().ok()
        })
        .unwrap_or(0);
    let mut numbers = Vec::new();
    for l in file.lines().filter(|l| !l.starts_with('#')) {
        // `2026-…Z line 17 xxxx…`: Klaxon's timestamp, then the container's line.
        let text = match l.strip_prefix("line ") {
            Some(_) => l,
            None => l.split_once(' ').map_or(l, |(_, t)| t),
        };
        let (k, pad) = text
            .strip_prefix("line ")
            .and_then(|r| r.split_once(' '))
            .ok_or_else(|| format!("unexpected line {:?}", text.get(..40)))?;
        let k: u64 = k.parse().map_err(|_| format!("bad line number {k:?}"))?;
        if pad.len() != PAD || pad.bytes().any(|b| b != b'x') {
            return Err(format!(
                "line {k} is {} bytes long, not {PAD} x's",
                pad.len()
            ));
        }
        numbers.push(k);
    }
    let kept = numbers.len() as u64;
    if kept + left_out != ASK {
        return Err(format!(
            "{kept} line(s) in the file + {left_out} left out ≠ {ASK}"
        ));
    }
    let expected: Vec<u64> = (LINES - kept + 1..=LINES).collect();
    if numbers != expected {
        return Err(format!(
            "the file's lines are not {}..={LINES} in order (first {:?}, last {:?})",
            LINES - kept + 1,
            numbers.first(),
            numbers.last()
        ));
    }
    Ok(())
}
