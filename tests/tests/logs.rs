//! `/logs` end to end: fake Discord, the real bot, a real dockerd.

use std::time::{Duration, Instant};

use futures::StreamExt;
use klaxon_core::permissions::Level;
use klaxon_tests::docker::{Containers, Spec};
use klaxon_tests::fake::{Member, MessageRecord, Output, OutputKind};
use klaxon_tests::tester::{GUILD, OPS};
use klaxon_tests::{Reply, Tester};

/// Waits until the container has logged `needle` (containers start printing a
/// moment after `run` returns).
async fn wait_logged(c: &Containers, name: &str, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let opts = bollard::query_parameters::LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .build();
        let mut s = c.docker.logs(name, Some(opts));
        let mut all = String::new();
        while let Some(Ok(o)) = s.next().await {
            all.push_str(&o.to_string());
        }
        if all.contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never logged {needle:?}; it logged:\n{all}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value Discord sends for a choice of a registered option (poise registers
/// choice enums as integer options).
async fn choice(t: &Tester, option: &str, name: &str) -> i64 {
    let commands = t
        .fake
        .wait_commands(GUILD, Duration::from_secs(10))
        .await
        .expect("commands registered");
    let logs = commands
        .iter()
        .find(|c| c["name"] == "logs")
        .expect("/logs is registered");
    let opt = logs["options"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["name"] == option))
        .unwrap_or_else(|| panic!("/logs has no option {option}"));
    opt["choices"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .and_then(|c| c["value"].as_i64())
        .unwrap_or_else(|| panic!("{option} has no choice {name}: {opt}"))
}

fn viewer() -> Member {
    Tester::member(Some(Level::Viewer))
}

/// The code block of a reply, line by line.
fn block(reply: &Reply) -> Vec<String> {
    let text = reply.text();
    let Some(start) = text.find("```\n") else {
        return Vec::new();
    };
    let rest = &text[start + 4..];
    let end = rest.find("\n```").unwrap_or(rest.len());
    rest[..end].lines().map(String::from).collect()
}

/// A container that logs a known mix to stdout and stderr, behind 3,000 filler lines.
/// The pauses keep the order across the two streams (Docker reads them separately).
const MIX: &str = r#"seq 1 3000 | sed 's/^/INFO filler /'
echo 'WARN disk 81% full'
echo 'ERROR db timeout after 5000 ms'
echo '{"level":"error","msg":"json failure"}'
echo 'level=warn msg="slow query"'
sleep 0.2
echo 'ERROR on stderr: connection reset' >&2
echo 'info on stderr: retrying' >&2
sleep 0.2
echo 'DEBUG cache miss'
echo MIX-DONE
sleep 3600"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_filters_by_grep_regex_level_and_stream() {
    let mut c = Containers::new().await;
    let api = c.run("logs-mix", Spec::new("v1").cmd(MIX)).await;
    wait_logged(&c, &api, "MIX-DONE").await;
    let t = Tester::builder()
        .docker_host(c.host())
        .service("api", Some(&api), None)
        .spawn()
        .await;

    // grep: a case-insensitive substring, over every line of the log.
    let reply = t
        .slash("logs")
        .opt("service", "api")
        .opt("grep", "error")
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    assert!(
        reply.deferred && reply.ephemeral(),
        "deferred, private by default"
    );
    assert!(
        reply.ack_latency < Duration::from_millis(2_500),
        "{:?}",
        reply.ack_latency
    );
    assert_eq!(
        reply
            .message
            .allowed_mentions
            .as_ref()
            .and_then(|m| m.get("parse"))
            .cloned(),
        Some(serde_json::json!([]))
    );
    let text = reply.text();
    assert!(
        text.starts_with("📜 **api** · whole log · grep `` error ``\n3 of 3 matching lines\n```"),
        "{text}"
    );
    let lines = block(&reply);
    let bodies: Vec<&str> = lines.iter().map(|l| &l[9..]).collect();
    assert_eq!(
        bodies,
        [
            "ERROR db timeout after 5000 ms",
            "{\"level\":\"error\",\"msg\":\"json failure\"}",
            "ERROR on stderr: connection reset",
        ],
        "each line starts with its HH:MM:SS time: {lines:?}"
    );

    // A regex, written /.../, is case-sensitive.
    let reply = t
        .slash("logs")
        .opt("service", "api")
        .opt("grep", "/^(WARN|ERROR) [a-z]+ /")
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    reply.assert_contains("3 of 3 matching lines");
    let bodies: Vec<String> = block(&reply).iter().map(|l| l[9..].to_string()).collect();
    assert_eq!(
        bodies,
        [
            "WARN disk 81% full",
            "ERROR db timeout after 5000 ms",
            "ERROR on stderr: connection reset"
        ]
    );

    // An invalid regex: a private answer at once, saying why.
    let reply = t
        .slash("logs")
        .opt("service", "api")
        .opt("grep", "/(unclosed/")
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    assert!(reply.ephemeral() && !reply.deferred);
    let text = reply.text();
    assert!(
        text.starts_with("`(unclosed` is not a valid regular expression: regex parse error:"),
        "{text}"
    );
    assert!(text.contains("unclosed group"), "{text}");

    // level: that level or worse, from words and JSON / logfmt fields.
    let warn = choice(&t, "level", "warn").await;
    let reply = t
        .slash("logs")
        .opt("service", "api")
        .opt("level", warn)
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    reply
        .assert_contains("level ≥ warn")
        .assert_contains("5 of 5 matching lines");
    for want in [
        "WARN disk",
        "ERROR db timeout",
        "json failure",
        "level=warn",
        "ERROR on stderr",
    ] {
        reply.assert_contains(want);
    }
    assert!(!reply.text().contains("filler") && !reply.text().contains("DEBUG"));

    // stream: stderr only, then stdout only with a filter.
    let stderr = choice(&t, "stream", "stderr").await;
    let reply = t
        .slash("logs")
        .opt("service", "api")
        .opt("stream", stderr)
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    reply
        .assert_contains("stderr only")
        .assert_contains("2 of 2 matching lines");
    let bodies: Vec<String> = block(&reply).iter().map(|l| l[9..].to_string()).collect();
    assert_eq!(
        bodies,
        [
            "ERROR on stderr: connection reset",
            "info on stderr: retrying"
        ]
    );
    let stdout = choice(&t, "stream", "stdout").await;
    let reply = t
        .slash("logs")
        .opt("service", "api")
        .opt("stream", stdout)
        .opt("grep", "on stderr")
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    reply.assert_contains("No matching lines.");

    // lines: the newest N of the matches; the count says how many matched.
    let reply = t
        .slash("logs")
        .opt("service", "api")
        .opt("grep", "filler")
        .opt("lines", 5)
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    reply.assert_contains("5 of 3,000 matching lines");
    let bodies: Vec<String> = block(&reply).iter().map(|l| l[9..].to_string()).collect();
    assert_eq!(bodies.first().map(String::as_str), Some("INFO filler 2996"));
    assert_eq!(bodies.last().map(String::as_str), Some("INFO filler 3000"));

    // Without a filter Docker does the tail.
    let reply = t
        .slash("logs")
        .opt("service", "api")
        .opt("lines", 3)
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    reply.assert_contains("the last 3 lines");
    let bodies: Vec<String> = block(&reply).iter().map(|l| l[9..].to_string()).collect();
    assert_eq!(
        bodies,
        ["info on stderr: retrying", "DEBUG cache miss", "MIX-DONE"]
    );
    t.finish().await;
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_since_until_and_public() {
    let mut c = Containers::new().await;
    let api = c
        .run(
            "logs-since",
            Spec::new("v1")
                .cmd("echo EARLY one; echo EARLY two; sleep 4; echo LATE three; sleep 3600"),
        )
        .await;
    let started = chrono::Utc::now();
    let t = Tester::builder()
        .docker_host(c.host())
        .service("api", Some(&api), None)
        .spawn()
        .await;
    wait_logged(&c, &api, "LATE three").await;
    // Between the two bursts: Docker takes whole seconds, so leave a margin.
    let middle = (started + chrono::Duration::milliseconds(2_500))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);

    let reply = t
        .slash("logs")
        .opt("service", "api")
        .opt("since", middle.as_str())
        .opt("public", true)
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    assert!(
        reply.deferred && !reply.ephemeral(),
        "public:true shows it to the channel"
    );
    reply
        .assert_contains("LATE three")
        .assert_contains("1 of 1 matching line");
    assert!(!reply.text().contains("EARLY"), "{}", reply.text());

    let reply = t
        .slash("logs")
        .opt("service", "api")
        .opt("until", middle.as_str())
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    reply.assert_contains(&format!(
        "until {}",
        middle.replace('T', " ").replace('Z', " UTC")
    ));
    reply
        .assert_contains("EARLY one")
        .assert_contains("EARLY two");
    assert!(!reply.text().contains("LATE"), "{}", reply.text());

    // A duration ago covers everything here; a bad value is explained.
    let reply = t
        .slash("logs")
        .opt("service", "api")
        .opt("since", "1h")
        .opt("grep", "e")
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    reply
        .assert_contains("last 1h")
        .assert_contains("3 of 3 matching lines");
    let reply = t
        .slash("logs")
        .opt("service", "api")
        .opt("since", "yesterday")
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    assert!(reply.ephemeral() && !reply.deferred);
    reply.assert_contains("`since:yesterday` is not understood: use a duration such as `10m`");
    t.finish().await;
    c.cleanup().await;
}

/// Log lines that try to close the reply's code block and render a masked link or
/// a ping in the public reply (issue #12, item 8).
const ESCAPES: &[&str] = &[
    "```",
    "x```` [click](http://evil) @everyone",
    "`````",
    "[click](<http://evil>) <@&123>",
    "``````````",
    "ESCAPES-DONE",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_fences_and_masked_links_stay_inert() {
    let mut c = Containers::new().await;
    let quoted: Vec<String> = ESCAPES.iter().map(|l| format!("'{l}'")).collect();
    let cmd = format!("printf '%s\\n' {}\nsleep 3600", quoted.join(" "));
    let api = c.run("logs-escapes", Spec::new("v1").cmd(&cmd)).await;
    wait_logged(&c, &api, "ESCAPES-DONE").await;
    let t = Tester::builder()
        .docker_host(c.host())
        .service("api", Some(&api), None)
        .spawn()
        .await;
    let reply = t
        .slash("logs")
        .opt("service", "api")
        .opt("public", true)
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    let text = reply.text();
    // The reply's own fences are the only ones: no line can end the block early.
    assert_eq!(text.matches("```").count(), 2, "{text}");
    assert!(text.ends_with("\n```"), "{text}");
    // No link syntax and no mention survive anywhere in the message.
    assert!(!text.contains("]("), "a masked link renders:\n{text}");
    assert!(
        !text.contains("@everyone") && !text.contains("<@&"),
        "{text}"
    );
    // And every line is shown as it was logged (the zero-width spaces are invisible).
    let shown: Vec<String> = block(&reply)
        .iter()
        .map(|l| l[9..].replace('\u{200b}', ""))
        .collect();
    assert_eq!(shown, ESCAPES);
    t.finish().await;
    c.cleanup().await;
}

/// One line of each secret kind the redactor knows, plus one for a config pattern.
const SECRETS: &str = r#"printf '%s\n' \
  'auth header: Authorization: Bearer abcDEF123456ghiJKL.xyz' \
  'connecting to postgres://app:hunter2pw@db:5432/orders' \
  'login password=pa55word user=bob' \
  'vault secret=s3cr3tvalue ok' \
  'refresh token=tok_98765abcdef' \
  'cfg {"api_key": "key-abcdef-12345"}' \
  'jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyMTIzIn0.c2lnbmF0dXJlX2hlcmU end' \
  'aws AKIAIOSFODNN7EXAMPLE configured' \
  'bot MTA4NzY1NDMyMTA5ODc2NTQzMg.GaBcDe.abcdefghijklmnopqrstuvwxyz0123 ready' \
  '-----BEGIN RSA PRIVATE KEY-----' \
  'MIIEowIBAAKCAQEAx7dlKcXpWUQyGv2gLYhbXcPHD8zEs8s8x1dwlJd3aXXA' \
  'q0Ld9pHf3aNi2L1pRH2hHhK4zyH8lQsZ5eZ2d8sA3bGv' \
  '-----END RSA PRIVATE KEY-----' \
  'tenant internal-4242 loaded' \
  'SECRETS-DONE'
sleep 3600"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_redacts_every_secret_kind() {
    let mut c = Containers::new().await;
    let api = c.run("logs-secrets", Spec::new("v1").cmd(SECRETS)).await;
    wait_logged(&c, &api, "SECRETS-DONE").await;
    let t = Tester::builder()
        .docker_host(c.host())
        .service("api", Some(&api), None)
        .logs(|l| l.redact = vec!["internal-[0-9]+".into()])
        .spawn()
        .await;
    let reply = t
        .slash("logs")
        .opt("service", "api")
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    let text = reply.text();
    for secret in [
        "abcDEF123456ghiJKL",
        "hunter2pw",
        "pa55word",
        "s3cr3tvalue",
        "tok_98765abcdef",
        "key-abcdef-12345",
        "eyJhbGciOiJIUzI1NiJ9",
        "c2lnbmF0dXJlX2hlcmU",
        "AKIAIOSFODNN7EXAMPLE",
        "MTA4NzY1NDMyMTA5ODc2NTQzMg",
        "abcdefghijklmnopqrstuvwxyz0123",
        "MIIEowIBAAKCAQEAx7dlKcXpWUQyGv2gLYhbXcPHD8zEs8s8x1dwlJd3aXXA",
        "q0Ld9pHf3aNi2L1pRH2hHhK4zyH8lQsZ5eZ2d8sA3bGv",
        "internal-4242",
    ] {
        assert!(!text.contains(secret), "{secret} leaked:\n{text}");
    }
    let bodies: Vec<String> = block(&reply).iter().map(|l| l[9..].to_string()).collect();
    assert_eq!(
        bodies,
        [
            "auth header: Authorization: Bearer [redacted]",
            "connecting to postgres://app:[redacted]@\u{200b}db:5432/orders",
            "login password=[redacted] user=bob",
            "vault secret=[redacted] ok",
            "refresh token=[redacted]",
            "cfg {\"api_key\": \"[redacted]\"}",
            "jwt [redacted] end",
            "aws [redacted] configured",
            "bot [redacted] ready",
            "[redacted]",
            "[redacted]",
            "[redacted]",
            "[redacted]",
            "tenant [redacted] loaded",
            "SECRETS-DONE",
        ]
    );

    // Matching runs on the redacted text: grep cannot find out a secret.
    let reply = t
        .slash("logs")
        .opt("service", "api")
        .opt("grep", "hunter2")
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    reply.assert_contains("No matching lines.");
    t.finish().await;
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_cannot_ping_or_break_the_block() {
    let mut c = Containers::new().await;
    let api = c
        .run(
            "logs-ping",
            Spec::new("v1").cmd(
                "echo 'hey @everyone and @here look'; echo 'user <@123> role <@&456>'; \
                 echo 'fence ``` inside'; echo PING-DONE; sleep 3600",
            ),
        )
        .await;
    wait_logged(&c, &api, "PING-DONE").await;
    let t = Tester::builder()
        .docker_host(c.host())
        .service("api", Some(&api), None)
        .spawn()
        .await;
    let reply = t
        .slash("logs")
        .opt("service", "api")
        .opt("public", true)
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    assert!(!reply.ephemeral());
    let text = reply.text();
    assert!(
        text.contains("hey @\u{200b}everyone and @\u{200b}here look"),
        "{text}"
    );
    assert!(
        text.contains("user <@\u{200b}123> role <@\u{200b}&456>"),
        "{text}"
    );
    assert!(!text.contains("@everyone") && !text.contains("<@123>"));
    // One block: the fence in the log does not close it.
    assert_eq!(text.matches("```").count(), 2, "{text}");
    assert_eq!(block(&reply).len(), 4);
    assert_eq!(t.fake.violations().would_ping, 0);
    t.finish().await;
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_output_is_attached_and_cut_at_10_mib() {
    let mut c = Containers::new().await;
    let api = c
        .run(
            "logs-long",
            Spec::new("v1").cmd("seq -w 1 3000 | sed 's/^/line /'; echo LONG-DONE; sleep 3600"),
        )
        .await;
    // 3,000 lines of 4,000 characters: 12 MB, more than Discord's 10 MiB per file.
    let huge = c
        .run(
            "logs-huge",
            Spec::new("v1").cmd(
                "x=$(head -c 4000 /dev/zero | tr '\\0' x); i=0; \
                 while [ $i -lt 3000 ]; do i=$((i+1)); echo \"$i $x\"; done; echo HUGE-DONE; sleep 3600",
            ),
        )
        .await;
    wait_logged(&c, &api, "LONG-DONE").await;
    wait_logged(&c, &huge, "HUGE-DONE").await;
    let t = Tester::builder()
        .docker_host(c.host())
        .service("api", Some(&api), None)
        .service("huge", Some(&huge), None)
        .spawn()
        .await;

    let reply = t
        .slash("logs")
        .opt("service", "api")
        .opt("grep", "line")
        .opt("lines", 2000)
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    let text = reply.text();
    assert!(text.contains("2,000 of 3,000 matching lines"), "{text}");
    assert_eq!(reply.message.attachments.len(), 1, "{text}");
    let file = &reply.message.attachments[0];
    assert!(file.filename.starts_with("api-") && file.filename.ends_with(".log"));
    assert!(
        text.contains(&format!("All of them are in `{}`", file.filename)),
        "{text}"
    );
    let data = String::from_utf8(file.data.to_vec()).expect("UTF-8");
    let lines: Vec<&str> = data.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines.len(), 2_000);
    // Full timestamps in the file, oldest first.
    assert!(lines[0].ends_with("Z line 1001"), "{}", lines[0]);
    assert!(lines[1_999].ends_with("Z line 3000"), "{}", lines[1_999]);
    assert!(
        data.starts_with(
            "# Klaxon /logs api · whole log · grep line\n# 2,000 line(s) shown of 3,000 matching\n"
        ),
        "{}",
        &data[..200]
    );
    // The newest lines are previewed inline for phones.
    assert!(text.contains("line 3000\n```"), "{text}");
    assert!(text.chars().count() <= 2_000);

    let reply = t
        .slash("logs")
        .opt("service", "huge")
        .opt("lines", 3000)
        .opt("grep", "x")
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    let text = reply.text();
    let file = &reply.message.attachments[0];
    assert!(file.data.len() <= 10 * 1024 * 1024, "{}", file.data.len());
    assert!(file.data.len() > 9 * 1024 * 1024, "{}", file.data.len());
    assert!(
        text.contains("earlier line(s)")
            && text.contains("left out: Discord takes files up to 10 MiB"),
        "{text}"
    );
    let data = String::from_utf8(file.data.to_vec()).expect("UTF-8");
    let last = data.lines().last().unwrap_or_default();
    assert!(
        last.contains("Z 3000 xxxx"),
        "{}",
        &last[..60.min(last.len())]
    );
    t.finish().await;
    c.cleanup().await;
}

/// The follow's messages: the starter in the channel and the one in its thread.
async fn follow_started(t: &Tester, reply: &Reply) -> (u64, MessageRecord) {
    let starter = t.channel_message(OPS).await;
    assert!(
        starter
            .content
            .starts_with("📜 Following the logs of **api**"),
        "{}",
        starter.content
    );
    // A thread started from a message has the message's id.
    let thread = starter.id;
    reply.assert_contains(&format!("in <#{thread}>"));
    let message = t.channel_message(thread).await;
    assert_eq!(message.custom_ids().len(), 1, "a Stop button");
    assert!(message.custom_ids()[0].starts_with("logs:stop:"));
    (thread, message)
}

async fn next_edit(t: &Tester, thread: u64) -> Output {
    t.take(
        "an edit of the follow message",
        |o| matches!(o.kind, OutputKind::ChannelEdit { channel_id } if channel_id == thread),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_posts_new_lines_in_a_thread_and_stops_on_time() {
    let mut c = Containers::new().await;
    let api = c
        .run(
            "logs-follow",
            Spec::new("v1")
                .cmd("i=0; while true; do i=$((i+1)); echo \"tick $i\"; sleep 0.2; done"),
        )
        .await;
    let t = Tester::builder()
        .docker_host(c.host())
        .service("api", Some(&api), None)
        .logs(|l| l.follow_seconds = Some(3))
        .spawn()
        .await;
    let reply = t
        .slash("logs")
        .opt("service", "api")
        .opt("grep", "tick")
        .opt("follow", true)
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    assert!(reply.ephemeral(), "{}", reply.text());
    reply
        .assert_contains("Following `api` in <#")
        .assert_contains("(3s)");
    let (thread, _message) = follow_started(&t, &reply).await;

    let mut edits = Vec::new();
    loop {
        let e = next_edit(&t, thread).await;
        let last = e.message.components.is_empty();
        edits.push(e);
        if last {
            break;
        }
    }
    let last = &edits.last().expect("edits").message;
    assert!(
        last.content
            .contains("⏹ Stopped after 3s (the time limit)."),
        "{}",
        last.content
    );
    assert!(last.content.contains("tick "), "{}", last.content);
    assert!(last.content.contains("grep `` tick ``"), "{}", last.content);
    for pair in edits.windows(2) {
        let gap = pair[1].at.saturating_duration_since(pair[0].at);
        assert!(gap >= Duration::from_millis(1_900), "edits {gap:?} apart");
    }
    assert!(
        edits.len() >= 2,
        "lines were edited in before the end: {}",
        edits.len()
    );
    t.finish().await;
    c.cleanup().await;
}

/// The audit rows once there are at least `n` (they are written after the reply).
async fn audit_rows(t: &Tester, n: usize) -> Vec<klaxon_core::audit::AuditEntry> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let rows = t.bot().app.store.recent_audit(20).await.expect("audit");
        if rows.len() >= n || Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn last_button(m: &MessageRecord) -> String {
    m.custom_ids().pop().expect("a button")
}

fn callback_type(o: &Output) -> u8 {
    match o.kind {
        OutputKind::Callback { callback_type, .. } => callback_type,
        _ => 0,
    }
}

async fn click(t: &Tester, who: Member, message: &MessageRecord, custom_id: &str) -> Output {
    let id = t
        .fake
        .click(who, message, custom_id)
        .await
        .expect("click")
        .id;
    t.take(
        "the click's callback",
        |o| matches!(o.kind, OutputKind::Callback { interaction_id, .. } if interaction_id == id),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_stops_with_the_stop_button() {
    let mut c = Containers::new().await;
    let api = c
        .run(
            "logs-stop",
            Spec::new("v1")
                .cmd("i=0; while true; do i=$((i+1)); echo \"beat $i\"; sleep 0.3; done"),
        )
        .await;
    let t = Tester::builder()
        .docker_host(c.host())
        .service("api", Some(&api), None)
        .spawn()
        .await;
    let reply = t
        .slash("logs")
        .opt("service", "api")
        .opt("follow", true)
        .opt("public", true)
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    assert!(!reply.ephemeral());
    reply.assert_contains("(5m)");
    let (thread, message) = follow_started(&t, &reply).await;
    let stop = last_button(&message);
    let first = next_edit(&t, thread).await;
    assert!(
        first.message.content.contains("beat "),
        "{}",
        first.message.content
    );
    assert_eq!(
        first.message.custom_ids(),
        std::slice::from_ref(&stop),
        "the button stays while it runs"
    );

    // A member without a Klaxon role may not stop it.
    let cb = click(&t, Tester::member(None), &first.message, &stop).await;
    assert_eq!(callback_type(&cb), 4);
    assert!(cb.message.ephemeral());
    assert_eq!(
        cb.message.content,
        "`/logs` needs the viewer level; you have no Klaxon role."
    );

    // Two viewers click at once: one stops it, the other is told it has stopped.
    let clicked = Instant::now();
    let a = t
        .fake
        .click(viewer(), &first.message, &stop)
        .await
        .expect("click")
        .id;
    let b = t
        .fake
        .click(
            Tester::member(Some(Level::Responder)),
            &first.message,
            &stop,
        )
        .await
        .expect("click")
        .id;
    let mut types = Vec::new();
    for id in [a, b] {
        let cb = t
            .take("a click's callback", |o| {
                matches!(o.kind, OutputKind::Callback { interaction_id, .. } if interaction_id == id)
            })
            .await;
        if callback_type(&cb) == 4 {
            assert_eq!(cb.message.content, "This follow has already stopped.");
            assert!(cb.message.ephemeral());
        }
        types.push(callback_type(&cb));
    }
    types.sort();
    assert_eq!(
        types,
        [4, 6],
        "one acknowledged (the follow edits its own message), one told"
    );
    let fin = loop {
        let e = next_edit(&t, thread).await;
        if e.message.components.is_empty() {
            break e;
        }
    };
    let by = &fin.message.content;
    assert!(
        by.contains("⏹ Stopped by viewer-member.") || by.contains("⏹ Stopped by responder-member."),
        "{by}"
    );
    assert!(
        clicked.elapsed() < Duration::from_secs(3),
        "stopped within one edit interval"
    );
    let rows = audit_rows(&t, 3).await;
    assert!(
        rows.iter().any(|r| r.command == "logs"
            && r.outcome.as_str() == "denied"
            && r.arguments.contains("click=stop")),
        "{rows:?}"
    );
    assert!(
        rows.iter().any(|r| r.command == "logs"
            && r.outcome.as_str() == "ok"
            && r.arguments.contains("click=stop")),
        "{rows:?}"
    );
    t.finish().await;
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_service_missing_container_and_docker_down_are_private_errors() {
    let mut c = Containers::new().await;
    let gone = c.run("logs-gone", Spec::new("v1")).await;
    c.cleanup().await;
    let t = Tester::builder()
        .docker_host(c.host())
        .service("api", Some(&gone), None)
        .service("web", None, Some("http://127.0.0.1:9/health"))
        .spawn()
        .await;
    let ask = |service: &'static str| {
        t.slash("logs")
            .opt("service", service)
            .as_level(Level::Viewer)
            .send()
    };
    let reply = ask("apu").await.reply().await;
    assert!(reply.ephemeral() && !reply.deferred);
    assert_eq!(
        reply.text(),
        "No service named `apu`. Known services: api, web."
    );
    let reply = ask("web").await.reply().await;
    assert!(reply.ephemeral() && !reply.deferred);
    assert_eq!(
        reply.text(),
        "`web` has no container configured, so it has no logs to read."
    );
    let reply = ask("api").await.reply().await;
    assert!(reply.ephemeral() && !reply.deferred);
    assert_eq!(
        reply.text(),
        format!("The container `{gone}` does not exist (any more): no logs to read.")
    );
    t.finish().await;

    let t = Tester::builder()
        .docker_host("unix:///nonexistent/docker.sock")
        .service("api", Some("api"), None)
        .spawn()
        .await;
    let reply = t
        .slash("logs")
        .opt("service", "api")
        .opt("public", true)
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    assert!(
        reply.ephemeral(),
        "errors stay private even with public:true"
    );
    reply.assert_contains("Docker is unreachable at unix:///nonexistent/docker.sock");
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autocomplete_and_permissions() {
    let mut b = Tester::builder();
    for i in 0..30 {
        b = b.service(&format!("svc-{i:02}"), Some("nothing"), None);
    }
    let t = b.spawn().await;
    let all = t
        .slash("logs")
        .as_level(Level::Viewer)
        .autocomplete("service", "")
        .await;
    assert_eq!(all.len(), 25);
    let some = t
        .slash("logs")
        .as_level(Level::Viewer)
        .autocomplete("service", "svc-1")
        .await;
    assert_eq!(
        some,
        (10..20).map(|i| format!("svc-{i}")).collect::<Vec<_>>()
    );

    let reply = t
        .slash("logs")
        .opt("service", "svc-01")
        .without_role()
        .send()
        .await
        .reply()
        .await;
    assert!(reply.ephemeral());
    assert_eq!(
        reply.text(),
        "`/logs` needs the viewer level; you have no Klaxon role."
    );
    let rows = audit_rows(&t, 1).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (
            rows[0].command.as_str(),
            rows[0].outcome.as_str(),
            rows[0].arguments.as_str()
        ),
        ("logs", "denied", "service=svc-01")
    );
    t.finish().await;
}

#[test]
fn an_invalid_redaction_pattern_is_a_config_error_naming_the_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("klaxon.toml");
    std::fs::write(
        &path,
        "[discord]\nguild_id = 123\n[logs]\nredact = [\"internal-[0-9]+\", \"(unclosed\"]\nfollow_seconds = 0\n",
    )
    .expect("write config");
    let env = |k: &str| (k == "DISCORD_TOKEN").then(|| "t".to_string());
    let errs = klaxon::config::Config::load_with(&path, klaxon::config::Sources { env: &env })
        .expect_err("invalid");
    assert_eq!(errs.0.len(), 2, "{errs}");
    assert!(
        errs.0[0].starts_with(
            "logs.redact[1]: `(unclosed` is not a valid regular expression: regex parse error:"
        ),
        "{errs}"
    );
    assert_eq!(errs.0[1], "logs.follow_seconds: must be at least 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_past_its_deadline_says_how_far_it_got() {
    let mut c = Containers::new().await;
    // 60 MB: Docker serves json-file logs at some tens of MB/s, so a 1 s deadline
    // cuts the read.
    let api = c
        .run(
            "logs-slow",
            Spec::new("v1")
                .cmd("yes 'ERROR a line with a payload to make it longer' | head -c 60000000"),
        )
        .await;
    c.wait_exited(&api).await;
    let t = Tester::builder()
        .docker_host(c.host())
        .service("api", Some(&api), None)
        .logs(|l| l.read_timeout_secs = 1)
        .spawn()
        .await;
    let reply = t
        .slash("logs")
        .opt("service", "api")
        .opt("grep", "error")
        .opt("lines", 3)
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    let text = reply.text();
    assert!(
        text.contains("⚠️ Stopped reading after 1 s, at the lines of 20"),
        "{text}"
    );
    assert!(
        text.contains("these are the last matches up to there"),
        "{text}"
    );
    assert_eq!(block(&reply).len(), 3, "{text}");
    t.finish().await;
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_ends_when_the_container_stops() {
    let mut c = Containers::new().await;
    let api = c
        .run(
            "logs-ends",
            Spec::new("v1").cmd("sleep 1; echo 'last words'; sleep 1; exit 0"),
        )
        .await;
    let t = Tester::builder()
        .docker_host(c.host())
        .service("api", Some(&api), None)
        .spawn()
        .await;
    let reply = t
        .slash("logs")
        .opt("service", "api")
        .opt("follow", true)
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    let (thread, _) = follow_started(&t, &reply).await;
    let fin = loop {
        let e = next_edit(&t, thread).await;
        if e.message.components.is_empty() {
            break e;
        }
    };
    let text = &fin.message.content;
    assert!(
        text.contains("⏹ The container's output ended (it stopped or was removed)."),
        "{text}"
    );
    assert!(
        text.contains("last words") && text.contains("· 1 matching line\n"),
        "{text}"
    );
    t.finish().await;
    c.cleanup().await;
}

/// #12 item 12: reads past `[logs] max_concurrent_reads` wait their turn, and
/// their reply says so; every member still gets the right answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_memory_is_bounded_across_requests() {
    let mut c = Containers::new().await;
    let big = c
        .run(
            "logs-many",
            Spec::new("v1").cmd(
                "x=$(head -c 4000 /dev/zero | tr '\\0' x); i=0; \
                 while [ $i -lt 1500 ]; do i=$((i+1)); echo \"$i $x\"; done; echo MANY-DONE; sleep 3600",
            ),
        )
        .await;
    wait_logged(&c, &big, "MANY-DONE").await;
    let t = Tester::builder()
        .docker_host(c.host())
        .service("big", Some(&big), None)
        .logs(|l| l.max_concurrent_reads = 1)
        .spawn()
        .await;
    let mut sent = Vec::new();
    for _ in 0..4 {
        sent.push(
            t.slash("logs")
                .opt("service", "big")
                .opt("lines", 1500)
                .as_level(Level::Viewer)
                .send()
                .await,
        );
    }
    let mut queued = 0;
    for s in sent {
        let reply = s.reply().await;
        let text = reply.text();
        assert!(text.contains("the last 1,500 lines"), "{text}");
        assert_eq!(reply.message.attachments.len(), 1, "{text}");
        if text.contains("⏳ Queued") && text.contains("at most 1 run at once") {
            queued += 1;
        }
    }
    assert!(queued >= 1, "reads past the limit say they waited");
    t.finish().await;
    c.cleanup().await;
}
