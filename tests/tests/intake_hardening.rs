//! Intake against senders that are slow, careless or hostile (issue #12): a
//! listener that slow connections cannot fill, NUL bytes that would otherwise
//! lose a batch on PostgreSQL, Grafana signatures that cannot be replayed, and
//! the small protocol points (scheme case, empty batches).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use klaxon::config::Secret;
use klaxon_core::alerts;
use klaxon_tests::both_databases;
use klaxon_tests::{Db, Tester};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const AM_TOKEN: &str = "am-secret-token";
const GRAFANA_TOKEN: &str = "grafana-token";
const GENERIC_TOKEN: &str = "generic-token";
const SIGNING: &str = "grafana-signing-secret";

async fn spawn(db: Db) -> Tester {
    Tester::builder()
        .db(db)
        // Intake only: every group waits an hour, so nothing is posted during it.
        .alerts(|a| a.group_wait_secs = 3_600)
        .intake(|i| {
            i.alertmanager_token = Secret::new(AM_TOKEN);
            i.grafana_token = Secret::new(GRAFANA_TOKEN);
            i.grafana_signing_secret = Secret::new(SIGNING);
            i.generic_token = Secret::new(GENERIC_TOKEN);
        })
        .spawn()
        .await
}

fn url(t: &Tester, source: &str) -> String {
    format!("http://{}/alerts/{source}", t.bot().http_addr)
}

/// Posts with a raw `Authorization` value (or none).
async fn post_auth(t: &Tester, source: &str, auth: Option<&str>, body: Vec<u8>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(url(t, source))
        .header("content-type", "application/json")
        .body(body);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let r = req.send().await.expect("the intake answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post(t: &Tester, source: &str, token: &str, body: &Value) -> (u16, Value) {
    let body = serde_json::to_vec(body).expect("json");
    post_auth(t, source, Some(&format!("Bearer {token}")), body).await
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// One slow sender: a request head that never ends, a byte every 2 s. Counts
/// itself in `closed` when the server hangs up.
async fn slow_sender(addr: std::net::SocketAddr, closed: Arc<AtomicUsize>) {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return;
    };
    if s.write_all(b"POST /alerts/generic HTTP/1.1\r\nHost: klaxon\r\nX-Slow: ")
        .await
        .is_err()
    {
        closed.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let mut buf = [0u8; 512];
    // Bounded: 30 s at most, whatever the server does.
    for _ in 0..15 {
        tokio::select! {
            r = s.read(&mut buf) => {
                if matches!(r, Ok(0) | Err(_)) {
                    closed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
            _ = tokio::time::sleep(Duration::from_secs(2)) => {
                if s.write_all(b"x").await.is_err() {
                    closed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    }
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Issue #12 item 3: 500 connections that trickle a request head cannot stall
/// intake or `/healthz`; the server holds at most `http.max_connections` of them
/// and hangs up on each after `http.read_timeout_secs` (10 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_connections_cannot_stall_intake() {
    let t = spawn(Db::Sqlite).await;
    let addr = t.bot().http_addr;
    let fds_before = fd_count();
    let closed = Arc::new(AtomicUsize::new(0));
    let mut senders = tokio::task::JoinSet::new();
    let opened = Instant::now();
    for _ in 0..500 {
        senders.spawn(slow_sender(addr, Arc::clone(&closed)));
    }
    // Let them all connect and start trickling.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let fds_during = fd_count();

    let client = reqwest::Client::new();
    let started = Instant::now();
    let health = tokio::time::timeout(
        Duration::from_secs(5),
        client.get(format!("http://{addr}/healthz")).send(),
    )
    .await;
    let health_ms = started.elapsed().as_millis();
    let started = Instant::now();
    let stored = tokio::time::timeout(
        Duration::from_secs(5),
        post(
            &t,
            "generic",
            GENERIC_TOKEN,
            &json!({"name": "StillHere", "service": "api"}),
        ),
    )
    .await;
    let intake_ms = started.elapsed().as_millis();
    let metrics = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics text");
    let open = metric(&metrics, "klaxon_http_connections_open");
    eprintln!(
        "500 slow connections: /healthz answered in {health_ms} ms, intake in {intake_ms} ms; \
         fds of the test process (both ends) before {fds_before}, with them open {fds_during}; \
         server-side connections open {open:?}, evicted {:?}",
        metric(&metrics, "klaxon_http_connections_evicted_total")
    );
    assert_eq!(
        health
            .expect("/healthz answers")
            .expect("/healthz")
            .status(),
        200
    );
    assert!(health_ms < 1000, "/healthz took {health_ms} ms");
    let (status, reply) = stored.expect("intake answers");
    assert_eq!(status, 200, "{reply}");
    assert!(intake_ms < 1000, "intake took {intake_ms} ms");
    let open = open.expect("klaxon_http_connections_open in /metrics");
    assert!(
        open <= 256.0,
        "{open} connections held, over max_connections"
    );

    // The header read timeout (10 s) hangs up on every one of them.
    let deadline = opened + Duration::from_secs(16);
    while closed.load(Ordering::Relaxed) < 500 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let hung_up = closed.load(Ordering::Relaxed);
    senders.abort_all();
    while senders.join_next().await.is_some() {}
    tokio::time::sleep(Duration::from_millis(300)).await;
    eprintln!(
        "after {} s: the server hung up on {hung_up} of 500; fds now {}",
        opened.elapsed().as_secs(),
        fd_count()
    );
    assert_eq!(hung_up, 500, "slow connections still open after 16 s");
    t.finish().await;
}

/// Issue #12 item 3, the other half: senders that finish the head and trickle the
/// body are inside a request, so they are not closed for a new connection; at
/// the cap the new one gets `503 too many connections`, and each slow body gets
/// 408 after `read_timeout_secs`, after which `/healthz` answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_connections_cannot_stall_intake_from_inside_requests() {
    let t = Tester::builder()
        .intake(|i| i.generic_token = Secret::new(GENERIC_TOKEN))
        .http(|h| {
            h.max_connections = 4;
            h.read_timeout_secs = 2;
        })
        .spawn()
        .await;
    let addr = t.bot().http_addr;
    let mut slow = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "POST /alerts/generic HTTP/1.1\r\nHost: klaxon\r\nAuthorization: Bearer {GENERIC_TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":"
        );
        s.write_all(head.as_bytes()).await.expect("head");
        slow.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let mut fifth = TcpStream::connect(addr).await.expect("connect");
    fifth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: klaxon\r\n\r\n")
        .await
        .expect("request");
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(2), fifth.read_to_string(&mut answer))
        .await
        .expect("the refusal comes at once")
        .expect("read");
    eprintln!(
        "refused in {} ms: {answer:?}",
        started.elapsed().as_millis()
    );
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.ends_with("too many connections\n"), "{answer}");

    for mut s in slow {
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut answer))
            .await
            .expect("the slow body is cut off")
            .expect("read");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("did not arrive within 2 s"), "{answer}");
    }
    let client = reqwest::Client::new();
    let health = client
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .expect("/healthz answers");
    assert_eq!(health.status(), 200);
    let metrics = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert_eq!(
        metric(&metrics, "klaxon_http_connections_refused_total"),
        Some(1.0)
    );
    assert!(
        metrics.contains(r#"klaxon_alert_intake_total{result="timeout",source="generic"} 4"#)
            || metrics
                .contains(r#"klaxon_alert_intake_total{source="generic",result="timeout"} 4"#),
        "{metrics}"
    );
    t.finish().await;
}

/// Issue #12 item 4: a NUL byte in a name, label, fingerprint, annotation or URL
/// is replaced (U+FFFD) on both databases, so the batch, clean alerts and the bad
/// one, is stored instead of failing on every retry.
async fn nul_bytes(db: Db) {
    let t = spawn(db).await;
    let body = json!({
        "version": "4", "status": "firing", "receiver": "klaxon", "groupKey": "g",
        "alerts": [
            {"status": "firing", "labels": {"alertname": "CleanBefore", "service": "api"},
             "annotations": {"summary": "fine"}, "startsAt": "2026-12-01T14:03:00Z",
             "fingerprint": "clean-1"},
            {"status": "firing", "labels": {"alertname": "Disk\u{0}Full", "service": "d\u{0}b",
             "in\u{0}stance": "db1"},
             "annotations": {"summary": "at\u{0}97%"}, "startsAt": "2026-12-01T14:03:00Z",
             "generatorURL": "http://prom/\u{0}graph", "fingerprint": "f\u{0}p"},
            {"status": "firing", "labels": {"alertname": "CleanAfter", "service": "web"},
             "annotations": {}, "startsAt": "2026-12-01T14:03:00Z", "fingerprint": "clean-2"}
        ]
    });
    let (status, reply) = post(&t, "alertmanager", AM_TOKEN, &body).await;
    assert_eq!(status, 200, "{db:?}: {reply}");
    assert_eq!(reply["stored"]["firing"], 3, "{db:?}: {reply}");
    // A retry of the same notification is the same three alerts.
    let (status, reply) = post(&t, "alertmanager", AM_TOKEN, &body).await;
    assert_eq!(status, 200, "{db:?}: {reply}");
    assert_eq!(reply["stored"]["duplicates"], 3, "{db:?}: {reply}");
    let (status, reply) = post(
        &t,
        "generic",
        GENERIC_TOKEN,
        &json!({"name": "Back\u{0}up", "service": "cr\u{0}on", "summary": "x\u{0}y",
                "fingerprint": "g\u{0}1", "url": "http://x/\u{0}"}),
    )
    .await;
    assert_eq!(status, 200, "{db:?}: {reply}");

    let firing = alerts::db::firing(&t.bot().app.store)
        .await
        .expect("firing");
    let mut seen: Vec<(String, String, String, String)> = firing
        .iter()
        .map(|a| {
            (
                a.fingerprint.clone(),
                a.name.clone(),
                a.service.clone(),
                a.summary.clone(),
            )
        })
        .collect();
    seen.sort();
    let r = |s: &str| s.replace('\0', "\u{FFFD}");
    assert_eq!(
        seen,
        vec![
            (
                "clean-1".into(),
                "CleanBefore".into(),
                "api".into(),
                "fine".into()
            ),
            (
                "clean-2".into(),
                "CleanAfter".into(),
                "web".into(),
                "CleanAfter".into()
            ),
            (r("f\0p"), r("Disk\0Full"), r("d\0b"), r("at\u{0}97%")),
            (r("g\u{0}1"), r("Back\0up"), r("cr\0on"), r("x\0y")),
        ],
        "{db:?}"
    );
    t.finish().await;
}

both_databases!(
    nul_bytes,
    nul_bytes_do_not_lose_the_batch_on_sqlite,
    nul_bytes_do_not_lose_the_batch_on_postgres
);

fn grafana_body() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "version": "1", "orgId": 1, "status": "firing", "receiver": "klaxon", "groupKey": "g",
        "alerts": [{"status": "firing", "labels": {"alertname": "DiskFull", "instance": "db1"},
            "annotations": {}, "startsAt": "2026-12-01T14:03:00Z", "fingerprint": "gf1"}]
    }))
    .expect("json")
}

fn hmac_hex(parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SIGNING.as_bytes()).expect("key");
    for p in parts {
        mac.update(p);
    }
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn grafana(t: &Tester, sig: &str, timestamp: Option<&str>, body: &[u8]) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .post(url(t, "grafana"))
        .bearer_auth(GRAFANA_TOKEN)
        .header("X-Grafana-Alerting-Signature", sig)
        .body(body.to_vec());
    if let Some(ts) = timestamp {
        req = req.header("X-Grafana-Alerting-Signature-Timestamp", ts);
    }
    let r = req.send().await.expect("the intake answers");
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    (status, v["error"].as_str().unwrap_or_default().to_string())
}

/// Issue #12 item 13: with Grafana's timestamp header, the signature covers
/// `timestamp:body` and is refused when over 5 minutes old (or ahead); without
/// it, the body-only signature is accepted (documented as replayable) unless
/// `intake.grafana_require_timestamp` is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_signatures_cannot_be_replayed() {
    let t = spawn(Db::Sqlite).await;
    let body = grafana_body();
    let now = t.bot().app.clock.now_ms() / 1000;

    let fresh = now.to_string();
    let (status, error) = grafana(
        &t,
        &hmac_hex(&[fresh.as_bytes(), b":", &body]),
        Some(&fresh),
        &body,
    )
    .await;
    assert_eq!(status, 200, "a fresh signature: {error}");

    for (ts, word) in [(now - 600, "old"), (now + 600, "ahead")] {
        let ts = ts.to_string();
        let (status, error) = grafana(
            &t,
            &hmac_hex(&[ts.as_bytes(), b":", &body]),
            Some(&ts),
            &body,
        )
        .await;
        assert_eq!(status, 401, "a signature 10 minutes {word}");
        assert!(
            error.contains(word) && error.contains("5 minutes"),
            "the reason is named: {error}"
        );
    }
    // The fresh signature without its timestamp does not verify over the body.
    let (status, _) = grafana(&t, &hmac_hex(&[fresh.as_bytes(), b":", &body]), None, &body).await;
    assert_eq!(status, 401);
    let (status, error) = grafana(&t, "zz", Some("yesterday"), &body).await;
    assert_eq!(status, 401);
    assert!(error.contains("Unix time"), "{error}");
    // Without a timestamp header: the body-only signature, as before.
    let (status, error) = grafana(&t, &hmac_hex(&[&body]), None, &body).await;
    assert_eq!(status, 200, "{error}");
    t.finish().await;

    let strict = Tester::builder()
        .alerts(|a| a.group_wait_secs = 3_600)
        .intake(|i| {
            i.grafana_token = Secret::new(GRAFANA_TOKEN);
            i.grafana_signing_secret = Secret::new(SIGNING);
            i.grafana_require_timestamp = true;
        })
        .spawn()
        .await;
    let (status, error) = grafana(&strict, &hmac_hex(&[&body]), None, &body).await;
    assert_eq!(
        status, 401,
        "a body-only signature when a timestamp is required"
    );
    assert!(
        error.contains("X-Grafana-Alerting-Signature-Timestamp"),
        "{error}"
    );
    let now = (strict.bot().app.clock.now_ms() / 1000).to_string();
    let (status, error) = grafana(
        &strict,
        &hmac_hex(&[now.as_bytes(), b":", &body]),
        Some(&now),
        &body,
    )
    .await;
    assert_eq!(status, 200, "{error}");
    strict.finish().await;
}

/// Issue #12, also: the `Authorization` scheme is case-insensitive (RFC 7235).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_scheme_is_case_insensitive() {
    let t = spawn(Db::Sqlite).await;
    let body = serde_json::to_vec(&json!({"name": "Cased", "service": "api"})).expect("json");
    for auth in [
        format!("Bearer {GENERIC_TOKEN}"),
        format!("bearer {GENERIC_TOKEN}"),
        format!("BEARER {GENERIC_TOKEN}"),
        format!("bEaReR  {GENERIC_TOKEN}"),
    ] {
        let (status, reply) = post_auth(&t, "generic", Some(&auth), body.clone()).await;
        assert_eq!(status, 200, "`{auth}`: {reply}");
    }
    for auth in [
        format!("Basic {GENERIC_TOKEN}"),
        format!("Bearer{GENERIC_TOKEN}"),
        format!("bearer {GENERIC_TOKEN}x"),
        GENERIC_TOKEN.to_string(),
    ] {
        let (status, _) = post_auth(&t, "generic", Some(&auth), body.clone()).await;
        assert_eq!(status, 401, "`{auth}`");
    }
    t.finish().await;
}

/// Issue #12, also: `{"version":"4","alerts":[]}` gets the answer an empty
/// generic batch gets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_alertmanager_batch_is_answered_like_an_empty_generic_batch() {
    let t = spawn(Db::Sqlite).await;
    let generic = post(&t, "generic", GENERIC_TOKEN, &json!({"alerts": []})).await;
    let am = post(
        &t,
        "alertmanager",
        AM_TOKEN,
        &json!({"version": "4", "alerts": []}),
    )
    .await;
    assert_eq!(am, generic);
    assert_eq!(am.0, 400, "{}", am.1);
    t.finish().await;
}

/// The real binary, as issue #12 found it: a descriptor limit of 256 (`prlimit`)
/// and 500 slow connections. Intake and `/healthz` still answer within 1 s, and
/// the process stays under its limit, so Docker, probes and the database keep
/// their descriptors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_connections_cannot_stall_intake_with_256_descriptors() {
    use klaxon_fake_discord::{FakeConfig, FakeDiscord};
    let exe = std::env::current_exe().expect("test executable");
    let binary = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target/<profile>/deps/..")
        .join("klaxon");
    assert!(
        binary.is_file(),
        "{} not found: run `cargo build -p klaxon`",
        binary.display()
    );
    let fake = FakeDiscord::start(FakeConfig::default())
        .await
        .expect("fake Discord");
    let dir = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let config = dir.path().join("klaxon.toml");
    std::fs::write(
        &config,
        format!(
            "[discord]\napi_url = \"{}\"\nguild_id = 123\n[database]\nurl = \"{}\"\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\n[channels]\nalerts = 111\n\
             [alerts]\ngroup_wait_secs = 3600\nprobe_interval_secs = 0\ndocker_events = false\n",
            fake.api_url(),
            klaxon_tests::env::sqlite_url(dir.path())
        ),
    )
    .expect("config");
    let mut child = tokio::process::Command::new("prlimit")
        .arg("--nofile=256:256")
        .arg("--")
        .arg(&binary)
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env("DISCORD_TOKEN", &fake.config().token)
        .env("KLAXON_INTAKE__GENERIC_TOKEN", GENERIC_TOKEN)
        .env("KLAXON_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("prlimit and klaxon");
    let pid = child.id().expect("pid");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
        != 200
    {
        assert!(Instant::now() < deadline, "klaxon did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fds = || std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let fds_before = fds();
    let closed = Arc::new(AtomicUsize::new(0));
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..500 {
        senders.spawn(slow_sender(addr, Arc::clone(&closed)));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let fds_during = fds();
    let started = Instant::now();
    let health = tokio::time::timeout(
        Duration::from_secs(5),
        client.get(format!("http://{addr}/healthz")).send(),
    )
    .await;
    let health_ms = started.elapsed().as_millis();
    let started = Instant::now();
    let stored = tokio::time::timeout(
        Duration::from_secs(5),
        client
            .post(format!("http://{addr}/alerts/generic"))
            .bearer_auth(GENERIC_TOKEN)
            .json(&json!({"name": "StillHere", "service": "api"}))
            .send(),
    )
    .await;
    let intake_ms = started.elapsed().as_millis();
    let metrics = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    senders.abort_all();
    while senders.join_next().await.is_some() {}
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fds_after = fds();
    eprintln!(
        "real binary, fd limit 256, 500 slow connections: /healthz in {health_ms} ms, intake in \
         {intake_ms} ms; klaxon's fds before {fds_before}, during {fds_during}, after {fds_after}; \
         cap {:?}, open {:?}, evicted {:?}",
        metric(&metrics, "klaxon_http_connections_max"),
        metric(&metrics, "klaxon_http_connections_open"),
        metric(&metrics, "klaxon_http_connections_evicted_total"),
    );
    let _ = child.kill().await;
    assert_eq!(
        health
            .expect("/healthz answers")
            .expect("/healthz")
            .status(),
        200
    );
    assert!(health_ms < 1000, "/healthz took {health_ms} ms");
    let stored = stored.expect("intake answers").expect("intake");
    assert_eq!(stored.status(), 200);
    assert!(intake_ms < 1000, "intake took {intake_ms} ms");
    assert!(fds_during < 256, "{fds_during} descriptors");
    assert_eq!(metric(&metrics, "klaxon_http_connections_max"), Some(192.0));
}
