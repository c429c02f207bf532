//! Heartbeats end to end: the real bot's HTTP server takes the pings, the leader's
//! checker raises `HeartbeatMissed` / `HeartbeatFailed` into the alerts channel of
//! the fake Discord, a ping resolves them, a restart gives one grace period, and
//! `/health` lists them. Deadlines run on the bot's controllable clock
//! (`Tester::advance`), so the test waits only for the one-second checker tick.

use std::time::Duration;

use klaxon_core::permissions::Level;
use klaxon_tests::both_databases;
use klaxon_tests::tester::ALERTS;
use klaxon_tests::{Db, Tester};

const TOKEN: &str = "hb-s3cret-token";
const PERIOD: Duration = Duration::from_secs(600);
const GRACE: Duration = Duration::from_secs(300);

async fn spawn(db: Db) -> Tester {
    Tester::builder()
        .db(db)
        .heartbeat("db-backup", "10m", "5m", None, TOKEN)
        .alerts(|a| {
            a.group_wait_secs = 0;
            a.group_interval_secs = 1;
        })
        .spawn()
        .await
}

/// `method /heartbeat/{path}` with `token`: (status, body).
async fn ping(t: &Tester, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let url = format!("http://{}/heartbeat/{path}", t.bot().http_addr);
    let client = reqwest::Client::new();
    let mut req = match method {
        "GET" => client.get(url),
        _ => client.post(url),
    };
    if let Some(tok) = token {
        req = req.bearer_auth(tok);
    }
    let r = req.send().await.expect("the heartbeat endpoint answers");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// Nothing reaches the alerts channel for `d` (the checker ticks every second).
async fn quiet_for(t: &Tester, d: Duration) {
    tokio::time::sleep(d).await;
    assert!(
        t.fake.messages(ALERTS).is_empty(),
        "no alert expected yet: {:#?}",
        t.fake.messages(ALERTS)
    );
}

async fn on_time_late_and_failed(db: Db) {
    let t = spawn(db).await;

    // Refused: no token (401), a wrong token or an unknown name (404, the same
    // answer for both, so it never tells which names exist).
    let (status, _) = ping(&t, "POST", "db-backup", None).await;
    assert_eq!(status, 401);
    let (status, wrong) = ping(&t, "POST", "db-backup", Some("nope")).await;
    assert_eq!(status, 404);
    let (status, unknown) = ping(&t, "POST", "other", Some(TOKEN)).await;
    assert_eq!(status, 404);
    assert_eq!(wrong, unknown);
    let (status, _) = ping(&t, "GET", "db-backup/fail", Some("nope")).await;
    assert_eq!(status, 404);
    assert!(!wrong.contains(TOKEN));

    // On time: runs within period + grace raise nothing (GET and POST alike).
    let (status, body) = ping(&t, "POST", "db-backup", Some(TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    t.advance(PERIOD + GRACE - Duration::from_secs(30));
    let (status, _) = ping(&t, "GET", "db-backup", Some(TOKEN)).await;
    assert_eq!(status, 200);
    t.advance(PERIOD + GRACE - Duration::from_secs(30));
    quiet_for(&t, Duration::from_millis(2_500)).await;

    // Late: past period + grace of the last run, HeartbeatMissed within a tick.
    t.advance(Duration::from_secs(31));
    let missed = t.channel_message(ALERTS).await;
    assert!(
        missed
            .text()
            .contains("FIRING · HeartbeatMissed · db-backup"),
        "{}",
        missed.text()
    );
    assert!(
        missed
            .text()
            .contains("did not run within 10m 0s + 5m 0s grace"),
        "{}",
        missed.text()
    );
    // The next ping resolves it, in the same message.
    let (status, _) = ping(&t, "GET", "db-backup", Some(TOKEN)).await;
    assert_eq!(status, 200);
    let back = t.channel_edit(ALERTS).await;
    assert_eq!(back.id, missed.id);
    assert!(
        back.text()
            .contains("✅ RESOLVED · HeartbeatMissed · db-backup"),
        "{}",
        back.text()
    );

    // Failed: HeartbeatFailed at once, resolved by the next good run.
    let (status, _) = ping(&t, "POST", "db-backup/fail", Some(TOKEN)).await;
    assert_eq!(status, 200);
    let failed = t.channel_message(ALERTS).await;
    assert!(
        failed
            .text()
            .contains("FIRING · HeartbeatFailed · db-backup"),
        "{}",
        failed.text()
    );
    assert!(
        failed.text().contains("reported a failed run"),
        "{}",
        failed.text()
    );
    let (status, _) = ping(&t, "POST", "db-backup", Some(TOKEN)).await;
    assert_eq!(status, 200);
    let ok = t.channel_edit(ALERTS).await;
    assert_eq!(ok.id, failed.id);
    assert!(
        ok.text()
            .contains("✅ RESOLVED · HeartbeatFailed · db-backup"),
        "{}",
        ok.text()
    );
    t.finish().await;
}

both_databases!(
    on_time_late_and_failed,
    heartbeats_on_time_late_and_failed_on_sqlite,
    heartbeats_on_time_late_and_failed_on_postgres,
);

async fn across_a_restart(db: Db) {
    let mut t = spawn(db).await;
    let (status, _) = ping(&t, "POST", "db-backup", Some(TOKEN)).await;
    assert_eq!(status, 200);
    // Klaxon is down far longer than period + grace: the deadline passes meanwhile.
    t.restart(PERIOD + GRACE + Duration::from_secs(3_600)).await;
    // No false alarm for Klaxon's own downtime: one grace period first.
    quiet_for(&t, Duration::from_millis(2_500)).await;
    t.advance(GRACE - Duration::from_secs(10));
    quiet_for(&t, Duration::from_millis(1_500)).await;
    // The deadline was not forgotten: it fires once the grace is over.
    t.advance(Duration::from_secs(10));
    let missed = t.channel_message(ALERTS).await;
    assert!(
        missed
            .text()
            .contains("FIRING · HeartbeatMissed · db-backup"),
        "{}",
        missed.text()
    );
    let (status, _) = ping(&t, "POST", "db-backup", Some(TOKEN)).await;
    assert_eq!(status, 200);
    let back = t.channel_edit(ALERTS).await;
    assert!(
        back.text().contains("RESOLVED · HeartbeatMissed"),
        "{}",
        back.text()
    );
    t.finish().await;
}

both_databases!(
    across_a_restart,
    heartbeats_across_a_restart_on_sqlite,
    heartbeats_across_a_restart_on_postgres,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_lists_heartbeats_with_their_last_run() {
    let t = Tester::builder()
        .heartbeat("db-backup", "1d", "1h", None, TOKEN)
        .heartbeat("log_rotate", "1h", "5m", None, "other-token")
        .spawn()
        .await;
    let (status, _) = ping(&t, "POST", "db-backup", Some(TOKEN)).await;
    assert_eq!(status, 200);
    let (status, _) = ping(&t, "POST", "log_rotate/fail", Some("other-token")).await;
    assert_eq!(status, 200);
    t.discard_unread().await; // the HeartbeatFailed alert: tested above
    let reply = t
        .slash("health")
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    reply
        .assert_contains("Heartbeats — 1 of 2 late or failed")
        .assert_contains("🔴 `log_rotate` — failed · failed <t:")
        .assert_contains("🟢 `db-backup` — on time · last run <t:");
    let text = reply.text();
    let failed_at = text.find("log_rotate").unwrap_or(usize::MAX);
    let ok_at = text.find("db-backup").unwrap_or(0);
    assert!(failed_at < ok_at, "problems first: {text}");
    assert!(!text.contains(TOKEN));
    t.finish().await;
}

/// The deadline rules straight on the store of each database, on a controllable
/// clock, without the bot: on time, missed once, resolved, failed, a restart's
/// grace period and a deadline a restart never shortens.
async fn deadline_rules(db: Db) {
    use klaxon_core::alerts::heartbeats as hb;
    use klaxon_core::settings::heartbeats::{Heartbeat, Token};
    use klaxon_core::store::heartbeats::BeatState;
    use klaxon_core::store::Store;

    let dir = tempfile::tempdir().expect("tempdir");
    let url = match db {
        Db::Sqlite => klaxon_tests::env::sqlite_url(dir.path()),
        Db::Postgres => klaxon_tests::env::fresh_pg_database().await,
    };
    let store = Store::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("{db:?}: {e}"));
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("{db:?}: {e}"));
    let clock = klaxon_core::clock::Clock::default();
    let app = klaxon_core::App::builder()
        .clock(clock.clone())
        .heartbeats(vec![Heartbeat {
            name: "db-backup".into(),
            period: PERIOD,
            grace: GRACE,
            service: None,
            token: Token::new(TOKEN),
        }])
        .build(store);
    let beat = app.heartbeats[0].clone();
    let state = || async { hb::statuses(&app).await.expect("statuses")[0].clone() };
    let firing = || async {
        klaxon_core::store::alerts::firing(&app.store)
            .await
            .expect("firing")
            .into_iter()
            .map(|a| a.name)
            .collect::<Vec<_>>()
    };
    let check = || async { hb::check(&app).await.expect("check") };

    hb::start(&app).await.expect("start");
    hb::ran(&app, &beat).await.expect("ran");
    clock.advance(PERIOD + GRACE - Duration::from_secs(1));
    assert_eq!(check().await, 0, "{db:?}: on time");
    clock.advance(Duration::from_secs(1));
    assert_eq!(check().await, 1, "{db:?}: missed");
    assert_eq!(check().await, 0, "{db:?}: raised once");
    assert_eq!(firing().await, ["HeartbeatMissed"]);
    assert_eq!(state().await.state, BeatState::Missed);
    hb::ran(&app, &beat).await.expect("ran");
    assert!(firing().await.is_empty(), "{db:?}: a ping resolves it");

    hb::failed(&app, &beat).await.expect("failed");
    assert_eq!(firing().await, ["HeartbeatFailed"]);
    hb::ran(&app, &beat).await.expect("ran");
    assert!(firing().await.is_empty());

    // A restart shortly after a run keeps the run's deadline.
    clock.advance(Duration::from_secs(60));
    hb::start(&app).await.expect("restart");
    clock.advance(PERIOD + GRACE - Duration::from_secs(61));
    assert_eq!(check().await, 0, "{db:?}: the deadline was not shortened");
    // Down past the deadline: one grace period after the start-up, then it fires.
    clock.advance(Duration::from_secs(3_600));
    hb::start(&app).await.expect("restart");
    assert_eq!(check().await, 0, "{db:?}: no false alarm after a restart");
    clock.advance(GRACE);
    assert_eq!(check().await, 1, "{db:?}: fires after the grace");
    app.store.close().await;
}

both_databases!(
    deadline_rules,
    heartbeat_deadline_rules_on_sqlite,
    heartbeat_deadline_rules_on_postgres,
);
