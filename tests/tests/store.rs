//! The store behaves the same on SQLite and PostgreSQL.

use klaxon_core::audit::{AuditEntry, Outcome};
use klaxon_core::store::{Backend, Store};
use klaxon_tests::{env, Db};

async fn open(db: Db, dir: &tempfile::TempDir) -> Store {
    let url = match db {
        Db::Sqlite => env::sqlite_url(dir.path()),
        Db::Postgres => env::fresh_pg_database().await,
    };
    let store = Store::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("{db:?}: {e}"));
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("{db:?}: {e}"));
    store
}

fn entry(i: i64, outcome: Outcome) -> AuditEntry {
    AuditEntry {
        at_ms: 1_700_000_000_000 + i,
        guild_id: Some(123),
        channel_id: None,
        user_id: 1_234_567_890_123_456_789,
        user_name: format!("user{i}"),
        command: "health".into(),
        arguments: format!("service=api{i}"),
        outcome,
        detail: "needs 'viewer' — \"quoted\"".into(),
        duration_ms: i,
    }
}

#[tokio::test]
async fn audit_round_trips_on_both_databases() {
    for db in Db::BOTH {
        let dir = tempfile::tempdir().unwrap();
        let store = open(db, &dir).await;
        assert_eq!(
            store.backend(),
            if db == Db::Sqlite {
                Backend::Sqlite
            } else {
                Backend::Postgres
            }
        );
        // Migrating again is a no-op (every start-up does it).
        store.migrate().await.unwrap();
        store.ping().await.unwrap();
        let a = store.insert_audit(&entry(1, Outcome::Ok)).await.unwrap();
        let b = store
            .insert_audit(&entry(2, Outcome::Denied))
            .await
            .unwrap();
        assert!(b > a, "{db:?}: ids increase");
        let rows = store.recent_audit(10).await.unwrap();
        assert_eq!(
            rows,
            vec![entry(2, Outcome::Denied), entry(1, Outcome::Ok)],
            "{db:?}"
        );
        assert_eq!(store.recent_audit(1).await.unwrap().len(), 1);
        store.close().await;
    }
}

#[tokio::test]
async fn concurrent_writers_lose_nothing_on_both_databases() {
    for db in Db::BOTH {
        let dir = tempfile::tempdir().unwrap();
        let store = open(db, &dir).await;
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let s = store.clone();
                tokio::spawn(async move { s.insert_audit(&entry(i, Outcome::Ok)).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap_or_else(|e| panic!("{db:?}: {e}"));
        }
        assert_eq!(store.recent_audit(100).await.unwrap().len(), 50, "{db:?}");
        store.close().await;
    }
}

#[tokio::test]
async fn sqlite_uses_wal_and_creates_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(Db::Sqlite, &dir).await;
    let mode: (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(mode.0.to_lowercase(), "wal");
    assert!(dir.path().join("klaxon.db").exists());
    store.close().await;
}

#[tokio::test]
async fn unreachable_postgres_is_a_clear_error() {
    // Port 9 on loopback: nothing listens there.
    let err = Store::connect("postgres://k:secret@127.0.0.1:9/k")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("cannot open the database"), "{text}");
    assert!(!text.contains("secret"), "{text}");
}

/// Issue #18: the posts outbox's SQL on both databases: a key stores a post once,
/// only the first pending post of a subject is due, newer edits are seen, and the
/// message a create made is found for its edits.
#[tokio::test]
async fn posts_keep_order_per_subject_on_both_databases() {
    use klaxon_core::store::posts::{self, NewPost};
    for db in Db::BOTH {
        let dir = tempfile::tempdir().unwrap();
        let store = open(db, &dir).await;
        let new =
            |kind: &'static str, subject: &'static str, key: Option<&str>, edit: bool| NewPost {
                kind,
                subject,
                channel_id: if subject == "room" { None } else { Some(222) },
                body: "{}".into(),
                key: key.map(String::from),
                edit,
            };
        let mut tx = store.begin_write().await.unwrap();
        let card = posts::insert(
            &mut tx,
            &new("incident.card", "incident INC-1", None, false),
            1_000,
        )
        .await
        .unwrap()
        .expect("stored");
        let notice = posts::insert(
            &mut tx,
            &new("incident.notice", "incident INC-1", Some("n1"), false),
            1_000,
        )
        .await
        .unwrap()
        .expect("stored");
        assert_eq!(
            posts::insert(
                &mut tx,
                &new("incident.notice", "incident INC-1", Some("n1"), false),
                1_000
            )
            .await
            .unwrap(),
            None,
            "{db:?}: a key stores once"
        );
        let edit1 = posts::insert(
            &mut tx,
            &new("incident.card", "incident INC-1", None, true),
            1_000,
        )
        .await
        .unwrap()
        .expect("stored");
        posts::insert(
            &mut tx,
            &new("incident.card", "incident INC-1", None, true),
            1_000,
        )
        .await
        .unwrap()
        .expect("stored");
        let other = posts::insert(
            &mut tx,
            &new("maintenance", "maintenance 1", None, false),
            1_000,
        )
        .await
        .unwrap()
        .expect("stored");
        tx.commit().await.unwrap();

        let heads: Vec<i64> = posts::due_heads(&store, 1_000, 50)
            .await
            .unwrap()
            .iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(heads, vec![card, other], "{db:?}: one head per subject");
        assert_eq!(posts::due_heads(&store, 999, 50).await.unwrap().len(), 0);
        posts::retry_later(&store, card, 5_000, "503")
            .await
            .unwrap();
        let heads: Vec<i64> = posts::due_heads(&store, 2_000, 50)
            .await
            .unwrap()
            .iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(
            heads,
            vec![other],
            "{db:?}: the subject waits for its retrying head"
        );
        assert_eq!(posts::next_due_ms(&store).await.unwrap(), Some(1_000));
        posts::record_sent(&store, card, 333, Some(9_000_000_000_000_000_001), 5_000)
            .await
            .unwrap();
        assert_eq!(
            posts::created_message(&store, "incident.card", "incident INC-1")
                .await
                .unwrap(),
            Some((333, 9_000_000_000_000_000_001)),
            "{db:?}: 64-bit ids survive"
        );
        posts::record_sent(&store, notice, 222, Some(7), 5_000)
            .await
            .unwrap();
        let head = posts::due_heads(&store, 5_000, 50).await.unwrap();
        assert_eq!(head[0].id, edit1);
        assert!(head[0].edit && head[0].attempts == 0);
        assert!(
            posts::has_newer_edit(&store, &head[0]).await.unwrap(),
            "{db:?}"
        );
        posts::close(&store, edit1, "superseded", "", 5_000)
            .await
            .unwrap();
        assert_eq!(posts::count(&store, "sent").await.unwrap(), 2);
        assert_eq!(posts::count(&store, "superseded").await.unwrap(), 1);
        store.close().await;
    }
}

/// MTTA/MTTR's times and the status page's `public` filter read the same on both
/// databases, against figures computed by hand.
#[tokio::test]
async fn incident_times_and_the_public_filter_on_both_databases() {
    use klaxon_core::actor::Actor;
    use klaxon_core::incidents::stats::{summarize, Spread};
    use klaxon_core::severity::Severity;
    use klaxon_core::store::incidents::{self as db, Change, NewIncident};

    const MIN: i64 = 60_000;
    const T0: i64 = 1_765_000_000_000;
    for dbk in Db::BOTH {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dbk, &dir).await;
        let by = Actor::member(7, "alice");
        // (severity, opened, ack after, resolve after, public)
        let fixture = [
            (Severity::P1, T0, Some(5), Some(90), true),
            (Severity::P1, T0 + 60 * MIN, Some(2), Some(30), true),
            (Severity::P1, T0 + 120 * MIN, Some(20), None, false),
            (Severity::P2, T0 + 10 * MIN, None, None, true),
            // Before the window: not counted.
            (Severity::P1, T0 - 2 * MIN, Some(1), Some(1), true),
        ];
        for (n, (sev, opened, ack, resolve, public)) in fixture.iter().enumerate() {
            let i = db::insert(
                &store,
                &NewIncident {
                    title: format!("incident {n}"),
                    severity: *sev,
                    service: None,
                    summary: String::new(),
                    guild_id: None,
                    commander: by.clone(),
                    opened_ms: *opened,
                    next_page_ms: None,
                    next_update_ms: None,
                    public: *public,
                },
            )
            .await
            .unwrap();
            for (set, after) in [
                ("acked_ms = $2", ack),
                ("status = 'resolved', resolved_ms = $2", resolve),
            ] {
                if let Some(m) = after {
                    let c = Change {
                        set,
                        binds: vec![(opened + m * MIN).into()],
                        entry: None,
                        allow_resolved: false,
                        only_unacked: false,
                    };
                    db::change(&store, i.id, c).await.unwrap().unwrap();
                }
            }
        }
        let times =
            klaxon_core::store::incident_times::opened_between(&store, T0, T0 + 1_000 * MIN)
                .await
                .unwrap();
        assert_eq!(times.len(), 4, "{dbk:?}: {times:?}");
        let s = summarize(&times);
        // P1 acks 5, 2, 20 min → sorted 2, 5, 20: p50 = 2nd = 5, p90 = 3rd = 20.
        // P1 resolves 90, 30 → sorted 30, 90: p50 = 1st = 30, p90 = 2nd = 90.
        assert_eq!(s[0].severity, Severity::P1, "{dbk:?}");
        assert_eq!(s[0].opened, 3);
        assert_eq!(
            s[0].mtta,
            Spread {
                count: 3,
                p50_ms: Some(5 * MIN),
                p90_ms: Some(20 * MIN)
            },
            "{dbk:?}"
        );
        assert_eq!(
            s[0].mttr,
            Spread {
                count: 2,
                p50_ms: Some(30 * MIN),
                p90_ms: Some(90 * MIN)
            },
            "{dbk:?}"
        );
        assert_eq!((s[1].severity, s[1].opened), (Severity::P2, 1));
        assert_eq!(s[1].mtta.count, 0);

        // The page reads the public incidents only.
        let shown = klaxon_core::store::status::incidents_since(&store, T0 - 10 * MIN, 100)
            .await
            .unwrap();
        let titles: Vec<&str> = shown.iter().map(|i| i.title.as_str()).collect();
        assert_eq!(titles.len(), 4, "{dbk:?}: {titles:?}");
        assert!(!titles.contains(&"incident 2"), "{dbk:?}: {titles:?}");
        let private = db::IncidentId(3);
        assert!(!klaxon_core::store::status::is_public(&store, private)
            .await
            .unwrap());
        assert!(
            klaxon_core::store::status::is_public(&store, db::IncidentId(1))
                .await
                .unwrap()
        );
        store.close().await;
    }
}

/// Each digest once on both databases: two replicas (or a restart) tick at the
/// same due time and only one posts; a day later the next one, once.
#[tokio::test]
async fn digests_are_claimed_once_per_period_on_both_databases() {
    use std::sync::Arc;
    use std::time::Duration;

    use chrono::{NaiveTime, Weekday};
    use klaxon_core::chat::ChatSink;
    use klaxon_core::clock::Clock;
    use klaxon_core::settings::digests::Digests;
    use klaxon_core::testing::RecordingChat;
    use klaxon_core::App;

    const CHANNEL: u64 = 4242;
    for dbk in Db::BOTH {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dbk, &dir).await;
        let clock = Clock::default();
        let chat = Arc::new(RecordingChat::default());
        let replica = || {
            App::builder()
                .clock(clock.clone())
                .chat(Arc::clone(&chat) as Arc<dyn ChatSink>)
                .digests(Digests {
                    daily: NaiveTime::from_hms_opt(9, 0, 0),
                    weekly: Some((Weekday::Mon, NaiveTime::MIN)),
                    channel: Some(CHANNEL),
                })
                .build(store.clone())
        };
        let (a, b) = (replica(), replica());
        let (x, y) = tokio::join!(
            klaxon_core::digests::tick(&a),
            klaxon_core::digests::tick(&b)
        );
        assert_eq!(
            x.unwrap() + y.unwrap(),
            2,
            "{dbk:?}: daily and weekly, once"
        );
        // A restart: a third App on the same database.
        assert_eq!(klaxon_core::digests::tick(&replica()).await.unwrap(), 0);
        clock.advance(Duration::from_secs(86_400));
        let n = klaxon_core::digests::tick(&b).await.unwrap();
        assert!(
            (1..=2).contains(&n),
            "{dbk:?}: the next day's daily (and a new week's)"
        );
        assert_eq!(klaxon_core::digests::tick(&a).await.unwrap(), 0, "{dbk:?}");
        klaxon_core::delivery::deliver_due(&a).await.unwrap();
        let shown = chat.shown_to(CHANNEL);
        let dailies = shown
            .iter()
            .filter(|m| m.contains("Morning health check"))
            .count();
        assert_eq!(dailies, 2, "{dbk:?}: {shown:?}");
        assert_eq!(shown.len(), 2 + n, "{dbk:?}: {shown:?}");
        store.close().await;
    }
}

/// The status page's roll-ups add up the same on both databases: the worst state
/// is kept, the time since the last sample is counted in the sample's state, and
/// a gap longer than a minute counts only a minute.
#[tokio::test]
async fn status_rollups_add_up_on_both_databases() {
    use klaxon_core::store::status_days::{record, since, Sample};

    const DAY: i64 = 86_400_000;
    const D: i64 = 20_430 * DAY;
    for dbk in Db::BOTH {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dbk, &dir).await;
        let s = |rank| {
            vec![
                Sample {
                    component: "API",
                    rank,
                },
                Sample {
                    component: "Web",
                    rank: 0,
                },
            ]
        };
        record(&store, D, &s(0), D + 1_000).await.unwrap();
        record(&store, D, &s(3), D + 31_000).await.unwrap(); // 30 s outage
        record(&store, D, &s(2), D + 41_000).await.unwrap(); // 10 s degraded
        record(&store, D, &s(3), D + 600_000).await.unwrap(); // capped: 60 s outage
        record(&store, D - DAY, &s(1), D - 1_000).await.unwrap();
        let rows = since(&store, D - DAY).await.unwrap();
        assert_eq!(rows.len(), 4, "{dbk:?}: {rows:?}");
        let api = rows
            .iter()
            .find(|r| r.component == "API" && r.day_ms == D)
            .unwrap();
        assert_eq!(
            (
                api.worst,
                api.outage_ms,
                api.degraded_ms,
                api.maintenance_ms
            ),
            (3, 90_000, 10_000, 0),
            "{dbk:?}"
        );
        let web = rows
            .iter()
            .find(|r| r.component == "Web" && r.day_ms == D)
            .unwrap();
        assert_eq!((web.worst, web.outage_ms), (0, 0), "{dbk:?}");
        assert_eq!(since(&store, D).await.unwrap().len(), 2, "{dbk:?}");
        store.close().await;
    }
}
