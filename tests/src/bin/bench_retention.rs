//! A year of running, then `[retention]` (#18 item 2).
//!
//! ```text
//! cargo run --release -p klaxon-tests --bin bench-retention -- [--alerts 1000000] [--incidents 5000] [--audit 100000] [--postgres]
//! ```
//!
//! A fresh database (SQLite in a temporary directory, or a fresh PostgreSQL
//! database at `KLAXON_TEST_PG_URL` with `--postgres`) is filled through the store's
//! bulk inserts with a simulated history spread over 400 days of a clock that is
//! then moved forward (see `klaxon_tests::year`): `--alerts` alerts in groups with
//! their outbox rows, silences, maintenance windows, `--audit` audit rows, 500
//! deployments and `--incidents` incidents with their timelines. Then the real
//! pruner runs once with the default settings.
//!
//! Reported: rows per table before, after and expected from the settings; the
//! longest write lock a batch or vacuum step held (ceiling 50 ms); how long
//! filling and pruning took; on SQLite the file's size before and after (after a
//! WAL checkpoint, so the file holds everything). Writes
//! `target/bench/retention.json`. Exits 1 when a count is not what the settings
//! leave, a batch held the lock past 50 ms, or the SQLite file did not shrink.

use std::process::ExitCode;

use klaxon_core::clock::Clock;
use klaxon_core::retention::{Pacer, MAX_HOLD};
use klaxon_core::settings::retention::RetentionConfig;
use klaxon_core::store::{retention, Store};
use klaxon_tests::year::{self, Size};
use klaxon_tests::{bench, env};
use serde_json::json;

async fn run(size: Size, postgres: bool) -> anyhow::Result<bool> {
    let dir = tempfile::tempdir()?;
    let url = if postgres {
        env::fresh_pg_database().await
    } else {
        env::sqlite_url(dir.path())
    };
    let file = dir.path().join("klaxon.db");
    let store = Store::connect(&url).await?;
    store.migrate().await?;
    let clock = Clock::default();
    let settings = RetentionConfig::default();
    let mut pacer = Pacer::default();

    let sizer = FileSize {
        file: (!postgres).then(|| file.clone()),
    };
    let filled = year::fill(&store, clock.now_ms(), size, &settings).await?;
    let before_bytes = sizer.bytes(&store).await?;
    // The moved clock: the pruner runs at the end of the simulated span.
    clock.advance(std::time::Duration::from_millis(
        (filled.now_ms - clock.now_ms()).max(0) as u64,
    ));
    let outcome = year::prune(&store, filled, &settings, &mut pacer).await?;
    let after_bytes = sizer.bytes(&store).await?;

    println!(
        "filled {} alerts, {} incidents, {} audit rows over 400 simulated days in {:.1} s; \
         pruned in {:.1} s ({} batches and vacuum steps)",
        bench::thousands(size.alerts as u64),
        bench::thousands(size.incidents as u64),
        bench::thousands(size.audit as u64),
        bench::secs(outcome.filling),
        bench::secs(outcome.pruning),
        outcome.steps
    );
    println!(
        "{:<22} {:>12} {:>12} {:>12}",
        "table", "before", "after", "expected"
    );
    for (t, (before, after, expected)) in &outcome.tables {
        println!(
            "{t:<22} {:>12} {:>12} {:>12}{}",
            before,
            after,
            expected,
            if after == expected { "" } else { "  MISMATCH" }
        );
    }
    let longest_ok = outcome.longest_batch < MAX_HOLD;
    println!(
        "longest write lock held by one batch or vacuum step: {:.1} ms (ceiling {} ms) {}",
        bench::ms_tenths(outcome.longest_batch),
        MAX_HOLD.as_millis(),
        bench::met(longest_ok)
    );
    let shrank = match (before_bytes, after_bytes) {
        (Some(b), Some(a)) => {
            println!(
                "SQLite file: {:.1} MiB before pruning, {:.1} MiB after ({} pages given back) {}",
                bench::mib(b),
                bench::mib(a),
                outcome.report.vacuumed_pages,
                bench::met(a < b)
            );
            a < b
        }
        _ => {
            println!("PostgreSQL: space is reclaimed by autovacuum (not measured)");
            true
        }
    };
    let mismatches = outcome.mismatches();
    let report = json!({
        "backend": if postgres { "postgres" } else { "sqlite" },
        "alerts": size.alerts, "incidents": size.incidents, "audit": size.audit,
        "tables": outcome.tables.iter().map(|(t, (b, a, e))| (t.to_string(), json!({"before": b, "after": a, "expected": e}))).collect::<serde_json::Map<_, _>>(),
        "fill_s": bench::secs(outcome.filling), "prune_s": bench::secs(outcome.pruning),
        "longest_batch_ms": bench::ms_tenths(outcome.longest_batch), "steps": outcome.steps,
        "file_bytes_before": before_bytes, "file_bytes_after": after_bytes,
        "vacuumed_pages": outcome.report.vacuumed_pages,
    });
    let path = bench::write_json("retention", &report)?;
    println!("report: {}", path.display());
    store.close().await;
    Ok(mismatches.is_empty() && longest_ok && shrank)
}

/// The SQLite file's size, everything checkpointed into it.
struct FileSize {
    file: Option<std::path::PathBuf>,
}

impl FileSize {
    async fn bytes(&self, store: &Store) -> anyhow::Result<Option<u64>> {
        let Some(file) = &self.file else {
            return Ok(None);
        };
        retention::checkpoint(store).await?;
        Ok(Some(std::fs::metadata(file)?.len()))
    }
}

fn main() -> ExitCode {
    const USAGE: &str =
        "usage: bench-retention [--alerts 1000000] [--incidents 5000] [--audit 100000] [--postgres]";
    let parsed = bench::Flags::from_env(
        USAGE,
        &["--alerts", "--incidents", "--audit"],
        &["--postgres"],
    )
    .and_then(|f| {
        Ok((
            Size {
                alerts: f.positive("--alerts")?.map_or(1_000_000, |n| n as usize),
                incidents: f.positive("--incidents")?.map_or(5_000, |n| n as usize),
                audit: f.positive("--audit")?.map_or(100_000, |n| n as usize),
                pending: true,
            },
            f.is_set("--postgres"),
        ))
    });
    let (size, postgres) = match parsed {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench-retention: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(size, postgres)) {
        Ok(true) => {
            println!("PASS");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("FAIL");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("bench-retention: {e:#}");
            ExitCode::FAILURE
        }
    }
}
