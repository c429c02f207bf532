//! More than one Klaxon: replicas on one PostgreSQL (one leader, takeover when it
//! dies), one instance per SQLite file, and a graceful shutdown that drains the
//! outbox.

use std::time::{Duration, Instant};

use klaxon::config::Secret;
use klaxon_core::permissions::Level;
use klaxon_tests::tester::ALERTS;
use klaxon_tests::{Db, Tester};
use serde_json::{json, Value};

const TOKEN: &str = "generic-token";

async fn post(addr: std::net::SocketAddr, name: &str) -> Value {
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/alerts/generic"))
        .bearer_auth(TOKEN)
        .json(&json!({"name": name, "service": "api", "severity": "warning", "summary": "x"}))
        .send()
        .await
        .expect("the intake answers");
    assert_eq!(r.status().as_u16(), 200, "{name}");
    r.json().await.expect("json")
}

async fn readyz(addr: std::net::SocketAddr) -> (u16, Value) {
    let r = reqwest::get(format!("http://{addr}/readyz"))
        .await
        .expect("readyz");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// How many messages in the alerts channel show the group of `name`.
fn shown(t: &Tester, name: &str) -> usize {
    t.fake
        .messages(ALERTS)
        .iter()
        .filter(|m| m.text().contains(&format!("{name} · api")))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_postgres_share_the_work_and_take_over_when_the_leader_dies() {
    let mut t = Tester::builder()
        .db(Db::Postgres)
        .intake(|i| i.generic_token = Secret::new(TOKEN))
        .alerts(|a| a.group_wait_secs = 1)
        .spawn()
        .await;
    assert!(t.bot().is_leader(), "the first replica leads");
    // A second replica on the same database: it follows, and takes alerts.
    let follower = klaxon::start(t.config.clone())
        .await
        .expect("a second replica starts as a follower");
    assert!(!follower.is_leader());
    let (status, body) = readyz(follower.http_addr).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["role"], "follower", "{body}");
    assert_eq!(readyz(t.bot().http_addr).await.1["role"], "leader");

    // Taken by the follower, delivered by the leader.
    post(follower.http_addr, "TakenByFollower").await;
    let m = t.channel_message(ALERTS).await;
    assert!(m.text().contains("TakenByFollower · api"), "{}", m.text());

    // Accepted by the leader, which dies before it delivers it.
    post(t.bot().http_addr, "AcceptedBeforeDeath").await;
    let killed = Instant::now();
    t.bot.take().expect("leader").kill().await;
    post(follower.http_addr, "AfterDeath").await;

    // The follower takes over within 15 s and delivers both, once each.
    let deadline = killed + Duration::from_secs(25);
    while shown(&t, "AcceptedBeforeDeath") + shown(&t, "AfterDeath") < 2 {
        assert!(
            Instant::now() < deadline,
            "no takeover: {:#?}",
            t.fake.messages(ALERTS)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let takeover = killed.elapsed();
    assert!(takeover < Duration::from_secs(15), "took {takeover:?}");
    assert!(follower.is_leader());
    for _ in 0..2 {
        t.channel_message(ALERTS).await;
    }
    assert_eq!(shown(&t, "AcceptedBeforeDeath"), 1, "not sent twice");
    assert_eq!(shown(&t, "AfterDeath"), 1, "not sent twice");
    assert_eq!(shown(&t, "TakenByFollower"), 1, "not sent twice");
    eprintln!("takeover: leader killed -> first alert posted by the new leader in {takeover:?}");

    // Commands work on the new leader.
    t.bot = Some(follower);
    t.slash("alerts list")
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await
        .assert_contains("firing");
    t.finish().await;
}

/// Issue #18: a replica that took the lease but has no gateway session yet (Discord's
/// `GET /gateway` fails as it takes over) is neither a follower nor ready: `/readyz`
/// says `leader (connecting)` with 503 until the session is up, then `leader`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_holds_the_lease_but_is_still_connecting_says_so_in_readyz() {
    let mut t = Tester::builder()
        .db(Db::Postgres)
        .intake(|i| i.generic_token = Secret::new(TOKEN))
        .spawn()
        .await;
    let follower = klaxon::start(t.config.clone())
        .await
        .expect("a second replica starts as a follower");
    assert_eq!(readyz(follower.http_addr).await.1["role"], "follower");
    let killed = Instant::now();
    t.fake.inject(klaxon_tests::fake::FaultRule::Outage {
        path_contains: "/api/v10/gateway".into(),
        status: 503,
        until: killed + Duration::from_secs(30),
    });
    t.bot.take().expect("leader").kill().await;
    let deadline = killed + Duration::from_secs(25);
    loop {
        let (status, body) = readyz(follower.http_addr).await;
        if body["role"] == "leader (connecting)" {
            assert_eq!(status, 503, "{body}");
            assert_eq!(body["gateway"], "connecting", "{body}");
            break;
        }
        assert_eq!(body["role"], "follower", "{body}");
        assert!(Instant::now() < deadline, "never took the lease: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = killed + Duration::from_secs(60);
    loop {
        let (status, body) = readyz(follower.http_addr).await;
        if body["role"] == "leader" {
            assert_eq!(status, 200, "{body}");
            break;
        }
        assert_eq!(body["role"], "leader (connecting)", "{body}");
        assert_eq!(status, 503, "{body}");
        assert!(Instant::now() < deadline, "never connected: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(follower.is_leader());
    t.bot = Some(follower);
    t.discard_unread().await;
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_on_the_same_sqlite_file_is_refused() {
    let t = Tester::builder().spawn().await;
    let second = klaxon::start(t.config.clone()).await;
    let err = format!("{:#}", second.err().expect("refused"));
    assert!(err.contains("another Klaxon"), "{err}");
    assert!(err.contains("PostgreSQL"), "{err}");
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    t.finish().await;
}

/// Shutdown (SIGTERM) stops taking commands and drains the outbox first: eight
/// groups need two of the channel's 5-second windows, and all eight are posted
/// before the bot is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_delivers_the_outbox_first() {
    let mut t = Tester::builder()
        .intake(|i| i.generic_token = Secret::new(TOKEN))
        .alerts(|a| a.group_wait_secs = 1)
        .spawn()
        .await;
    let addr = t.bot().http_addr;
    for i in 0..8 {
        post(addr, &format!("Burst{i}")).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while t.fake.messages(ALERTS).is_empty() {
        assert!(Instant::now() < deadline, "nothing delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = t.fake.messages(ALERTS).len();
    assert!(
        before < 8,
        "the test needs messages still queued ({before} sent)"
    );
    let started = Instant::now();
    t.bot.take().expect("bot").shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    for i in 0..8 {
        assert_eq!(shown(&t, &format!("Burst{i}")), 1, "Burst{i}");
    }
    for _ in 0..8 {
        t.channel_message(ALERTS).await;
    }
    t.finish().await;
}

/// Shutdown while a command is running: the member still gets the answer (the reply
/// goes out through the transport, which stays up until running commands are done).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_lets_a_running_command_answer() {
    // A health endpoint that takes 2.5 s: /health defers, then answers.
    let slow = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("port");
    let slow_addr = slow.local_addr().expect("addr");
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut conn, _)) = slow.accept().await {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(2_500)).await;
                let _ = conn
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    let mut t = Tester::builder()
        .service("api", None, Some(&format!("http://{slow_addr}/health")))
        .thresholds(|h| {
            h.probe_timeout_ms = 10_000;
            h.response_time_ms = 10_000;
        })
        .spawn()
        .await;
    let bot = t.bot.take().expect("bot");
    let inv = t.slash("health").as_level(Level::Viewer).send().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopping = tokio::spawn(bot.shutdown());
    let reply = inv.reply().await;
    assert!(reply.deferred);
    reply.assert_contains("api is healthy");
    tokio::time::timeout(Duration::from_secs(15), stopping)
        .await
        .expect("shutdown ends")
        .expect("shutdown");
    t.finish().await;
}
