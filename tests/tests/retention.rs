//! `[retention]`: the pruner deletes what the settings say and nothing else, on
//! both databases; SQLite gives the space back; `klaxon db stats` shows it.

use klaxon_core::clock::Clock;
use klaxon_core::retention::Pacer;
use klaxon_core::settings::retention::RetentionConfig;
use klaxon_core::store::{retention, stats, Backend, Store};
use klaxon_tests::year::{simulate, Size};
use klaxon_tests::{both_databases, env, Db};

async fn open(db: Db, dir: &tempfile::TempDir) -> Store {
    open_at(db, dir).await.0
}

async fn open_at(db: Db, dir: &tempfile::TempDir) -> (Store, String) {
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
    (store, url)
}

/// The `klaxon` binary cargo built next to this test.
fn klaxon_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target/<profile>/deps/..");
    let binary = dir.join("klaxon");
    assert!(
        binary.is_file(),
        "{} not found: run `cargo build -p klaxon` (scripts/test.sh builds it with the workspace)",
        binary.display()
    );
    binary
}

/// A scaled-down year (20,000 alerts, 500 incidents, 5,000 audit rows): every
/// table keeps exactly what the settings leave, firing and held alerts, undelivered
/// messages, a deployment in progress and every incident included, in many small
/// batches; SQLite's file shrinks.
async fn a_year_pruned(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(db, &dir).await;
    let clock = Clock::default();
    let settings = RetentionConfig::default();
    let mut pacer = Pacer::default();
    let size = Size {
        alerts: 20_000,
        incidents: 500,
        audit: 5_000,
        pending: true,
    };
    let file = dir.path().join("klaxon.db");
    let out = simulate(&store, &clock, size, &settings, &mut pacer)
        .await
        .unwrap_or_else(|e| panic!("{db:?}: {e:#}"));
    let mismatches = out.mismatches();
    assert!(
        mismatches.is_empty(),
        "{db:?}: {mismatches:?}\n{:#?}",
        out.tables
    );
    let (before, after, _) = out.tables["alerts"];
    assert!(after < before / 3, "{db:?}: alerts {before} -> {after}");
    assert_eq!(
        out.tables["incidents"].1, 500,
        "{db:?}: incidents are kept forever by default"
    );
    // Batches stayed small (the 50 ms ceiling itself is a speed target: measured
    // by bench-retention, not asserted on a shared test machine).
    assert!(out.steps > 20, "{db:?}: {} batches", out.steps);
    if db == Db::Sqlite {
        assert_eq!(retention::auto_vacuum_mode(&store).await.unwrap(), Some(2));
        assert!(out.report.vacuumed_pages > 0, "{db:?}: {:?}", out.report);
        assert_eq!(retention::free_pages(&store).await.unwrap(), 0);
        let s = stats::collect(&store).await.unwrap();
        let on_disk = std::fs::metadata(&file).unwrap().len() as i64;
        assert_eq!(on_disk, s.total_bytes, "the file is what SQLite counts");
    }
    // A second run finds nothing more.
    let again = klaxon_core::retention::prune(&store, &settings, clock.now_ms(), &mut pacer)
        .await
        .unwrap();
    assert_eq!(again.total(), 0, "{db:?}: {:?}", again.deleted);
    store.close().await;
}

both_databases!(
    a_year_pruned,
    a_year_pruned_on_sqlite,
    a_year_pruned_on_postgres
);

/// `incidents_days` set: resolved incidents older than it go with their timelines;
/// open ones stay.
async fn incidents_go_when_configured(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(db, &dir).await;
    let settings = RetentionConfig {
        incidents_days: Some(100),
        ..RetentionConfig::default()
    };
    let out = simulate(
        &store,
        &Clock::default(),
        Size {
            alerts: 1_000,
            incidents: 400,
            audit: 100,
            pending: true,
        },
        &settings,
        &mut Pacer::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("{db:?}: {e:#}"));
    assert!(
        out.mismatches().is_empty(),
        "{db:?}: {:?}",
        out.mismatches()
    );
    let (before, after, _) = out.tables["incidents"];
    assert!(after < before && after >= 8, "{db:?}: {before} -> {after}");
    store.close().await;
}

both_databases!(
    incidents_go_when_configured,
    incidents_go_when_configured_on_sqlite,
    incidents_go_when_configured_on_postgres
);

/// A SQLite file made before incremental auto-vacuum is switched by one VACUUM,
/// keeping its rows.
#[tokio::test]
async fn an_older_sqlite_file_is_switched_to_incremental_vacuum() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("old.db");
    // A file as an older Klaxon left it: tables made without auto-vacuum.
    {
        use sqlx::{Connection, Executor};
        let mut conn =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", file.display()))
                .await
                .unwrap();
        conn.execute("CREATE TABLE kept (x BIGINT); INSERT INTO kept VALUES (1), (2);")
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    let store = Store::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    assert_eq!(retention::auto_vacuum_mode(&store).await.unwrap(), Some(0));
    assert!(retention::ensure_incremental_vacuum(&store).await.unwrap());
    // The next start finds it switched, and does not VACUUM again.
    store.close().await;
    let store = Store::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    assert_eq!(retention::auto_vacuum_mode(&store).await.unwrap(), Some(2));
    assert!(!retention::ensure_incremental_vacuum(&store).await.unwrap());
    assert_eq!(
        klaxon_core::store::seed::count(&store, "kept")
            .await
            .unwrap(),
        2
    );
    store.close().await;
}

/// `klaxon db stats` on the real binary: every table with its rows and a size.
async fn db_stats_lists_every_table(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let (store, url) = open_at(db, &dir).await;
    for i in 0..3 {
        store
            .insert_audit(&klaxon_core::audit::AuditEntry {
                at_ms: 1_700_000_000_000 + i,
                guild_id: None,
                channel_id: None,
                user_id: 7,
                user_name: "ops".into(),
                command: "health".into(),
                arguments: String::new(),
                outcome: klaxon_core::audit::Outcome::Ok,
                detail: String::new(),
                duration_ms: 1,
            })
            .await
            .unwrap();
    }
    store.close().await;
    let config = dir.path().join("klaxon.toml");
    std::fs::write(
        &config,
        format!(
            "[discord]\nguild_id = 1\n[database]\nurl = {}\n",
            klaxon_tests::bench::toml_str(&url)
        ),
    )
    .unwrap();
    let out = std::process::Command::new(klaxon_binary())
        .args(["db", "stats", "--config"])
        .arg(&config)
        .env_remove("DISCORD_TOKEN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{db:?}: {stdout}\n{stderr}");
    let line = |table: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(table))
            .unwrap_or_else(|| panic!("{db:?}: no line for {table} in\n{stdout}"))
            .split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let audit = line("audit_log");
    assert_eq!(audit[1], "3", "{db:?}: {stdout}");
    assert!(
        audit[2].parse::<f64>().is_ok() && audit.len() == 4,
        "{db:?}: a size with its unit: {audit:?}"
    );
    for table in ["alerts", "outbox", "incidents", "deployments", "total"] {
        line(table);
    }
    assert_eq!(line("alerts")[1], "0");
    if let Some(password) = reqwest::Url::parse(&url)
        .ok()
        .and_then(|u| u.password().map(String::from))
    {
        assert!(
            !stdout.contains(&password),
            "{db:?}: password shown: {stdout}"
        );
    }
    if db == Db::Sqlite {
        assert!(stdout.contains("(free pages)"), "{stdout}");
    }
}

both_databases!(
    db_stats_lists_every_table,
    db_stats_on_sqlite,
    db_stats_on_postgres
);

/// A missing SQLite file is an error naming the key, not a new empty database.
#[test]
fn db_stats_of_a_missing_file_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("klaxon.toml");
    std::fs::write(
        &config,
        "[discord]\nguild_id = 1\n[database]\nurl = \"sqlite://nowhere.db\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(klaxon_binary())
        .args(["db", "stats", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("database.url"), "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(!dir.path().join("nowhere.db").exists());
}
