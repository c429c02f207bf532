//! "Database or disk is full": the one storage failure worth naming to members and
//! to alert senders, because someone can act on it (free space on Klaxon's server).
//!
//! Recognised here, once, so the chat reply and the intake endpoint agree. SQLite
//! reports it as `SQLITE_FULL` (code 13, "database or disk is full"); errors that
//! reach callers wrapped in context only keep the text, so the text is matched too.

use super::StoreError;

/// Whether `text` is how the database says its disk is full.
pub fn says_disk_full(text: &str) -> bool {
    text.contains("disk is full")
}

/// Whether this error, or any error beneath it, is a full disk.
pub fn is_disk_full(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if says_disk_full(&e.to_string()) {
            return true;
        }
        next = e.source();
    }
    false
}

impl StoreError {
    /// Whether the database refused the write because its disk is full.
    pub fn is_disk_full(&self) -> bool {
        is_disk_full(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_recognised_through_context() {
        let full =
            anyhow::anyhow!("error returned from database: (code: 13) database or disk is full")
                .context("alert store");
        assert!(full.chain().any(|e| says_disk_full(&e.to_string())));
        let io = std::io::Error::other("database or disk is full");
        assert!(is_disk_full(&io));
        assert!(!is_disk_full(&std::io::Error::other("connection reset")));
        assert!(
            StoreError::Query(sqlx::Error::Protocol("database or disk is full".into()))
                .is_disk_full()
        );
    }
}
