//! The real parts the tests need. A missing one fails the test with instructions;
//! nothing skips itself.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;

const HOW: &str = "run the whole suite with `scripts/test.sh` (it provisions and starts a private dockerd \
and PostgreSQL), or start them once with `eval \"$(scripts/test.sh --env-only)\"` and rerun cargo test";

fn required(var: &str, what: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => v,
        _ => panic!("{var} is not set: this test needs {what}; {HOW}"),
    }
}

/// `unix:///…/docker.sock` of the private test engine.
pub fn docker_host() -> String {
    required("KLAXON_TEST_DOCKER_HOST", "a Docker engine")
}

/// `tcp://127.0.0.1:PORT` of the second private test engine (TLS, issue 16).
pub fn docker_host2() -> String {
    required(
        "KLAXON_TEST_DOCKER_HOST2",
        "a second Docker engine (TCP with TLS)",
    )
}

/// The directory of the second engine's client certificates (ca.pem, cert.pem, key.pem).
pub fn docker_tls_dir() -> std::path::PathBuf {
    required(
        "KLAXON_TEST_DOCKER_TLS_DIR",
        "the TLS certificates of the second Docker engine",
    )
    .into()
}

/// The images `scripts/test.sh` builds offline: `<prefix>:v1`, `:v2`, `:v3`.
pub fn image(tag: &str) -> String {
    let prefix =
        std::env::var("KLAXON_TEST_IMAGE_PREFIX").unwrap_or_else(|_| "klaxon-test/app".into());
    format!("{prefix}:{tag}")
}

pub fn pg_admin_url() -> String {
    required("KLAXON_TEST_PG_URL", "PostgreSQL")
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique name for this process and call: tests run in parallel.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}_{}_{n}_{nanos}", std::process::id())
}

/// Creates an empty PostgreSQL database for one test and returns its URL.
pub async fn fresh_pg_database() -> String {
    let admin = pg_admin_url();
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to KLAXON_TEST_PG_URL ({admin}): {e}; {HOW}"));
    let name = unique("klaxon_test");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    let _ = conn.close().await;
    // Replace the database part of the admin URL.
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b.to_string(), format!("?{q}")),
        None => (admin.clone(), String::new()),
    };
    let base = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => base[..i].to_string(),
        _ => base,
    };
    format!("{base}/{name}{query}")
}

/// A SQLite URL in `dir`.
pub fn sqlite_url(dir: &std::path::Path) -> String {
    format!("sqlite://{}", dir.join("klaxon.db").display())
}
