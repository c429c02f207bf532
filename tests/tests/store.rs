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
