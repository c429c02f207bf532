//! [`both_databases!`]: one end-to-end scenario, run once on SQLite and once on
//! PostgreSQL, as two tests.
//!
//! Why: every storage change must behave the same on both backends, so most
//! scenarios run on both. Writing the two `#[tokio::test]` wrappers by hand, 19
//! times, let one of a pair drift (another runtime flavour, a forgotten backend).
//! The macro takes the test names explicitly rather than deriving them, so the names
//! CI and people already know stay exactly as they were (some SQLite variants carry
//! no `_on_sqlite` suffix), and no identifier-pasting dependency is needed.

/// Generates two tests from an `async fn(Db)`: the first name runs it on SQLite,
/// the second on PostgreSQL, each on a two-thread runtime.
///
/// ```ignore
/// async fn intake(db: Db) { ... }
///
/// both_databases!(intake, intake_on_sqlite, intake_on_postgres);
/// ```
#[macro_export]
macro_rules! both_databases {
    ($scenario:path, $on_sqlite:ident, $on_postgres:ident $(,)?) => {
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $on_sqlite() {
            $scenario($crate::Db::Sqlite).await;
        }

        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $on_postgres() {
            $scenario($crate::Db::Postgres).await;
        }
    };
}
