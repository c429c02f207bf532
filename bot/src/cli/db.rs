//! `klaxon db stats`: what each table holds, so an operator can see that
//! `[retention]` keeps the database in bounds (and which table grows if not).
//!
//! Read-only: it connects without migrating, and a SQLite file that does not exist
//! is an error rather than a new empty database.

use std::path::Path;
use std::process::ExitCode;

use klaxon_core::store::{redact_url, stats, Store};

use super::{fatal, load_offline};

pub async fn stats(path: &Path) -> ExitCode {
    let Some(config) = load_offline(path) else {
        return ExitCode::FAILURE;
    };
    let url = &config.database.url;
    if let Some(file) = klaxon_core::leader::sqlite_file(url) {
        if !file.exists() {
            fatal(format!(
                "database.url: {} does not exist (nothing to count)",
                file.display()
            ));
            return ExitCode::FAILURE;
        }
    }
    let store = match Store::connect(url).await {
        Ok(s) => s,
        Err(e) => {
            fatal(format!(
                "database.url: cannot open {}: {e}",
                redact_url(url)
            ));
            return ExitCode::FAILURE;
        }
    };
    let result = stats::collect(&store).await;
    store.close().await;
    match result {
        Ok(s) => {
            println!("database: {}", redact_url(url));
            print!("{}", stats::render(&s));
            ExitCode::SUCCESS
        }
        Err(e) => {
            fatal(format!("reading table sizes failed: {e}"));
            ExitCode::FAILURE
        }
    }
}
