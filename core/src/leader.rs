//! Who does the work that must happen once: holding the Discord gateway session,
//! running the schedulers (reminders, maintenance, probes, Docker events) and
//! draining the outbox. Every replica takes alerts over HTTP; only the leader acts.
//!
//! - PostgreSQL: a lease row ([`crate::store::lease`]) with an expiry in the database's own clock (so replica
//!   clocks do not matter). The leader renews it every [`RENEW`]; a replica that
//!   cannot renew for [`STEP_DOWN_AFTER`] stops acting before the lease can expire
//!   ([`TTL_MS`]), so two leaders never overlap. A dead leader's lease expires and
//!   another replica takes it at its next try: within `TTL_MS` + [`RENEW`].
//! - SQLite: one process per database file, enforced with an exclusive lock on a
//!   file beside it; a second instance is refused with the reason.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often the leader renews, and a follower tries to take over.
pub const RENEW: Duration = Duration::from_secs(2);
/// A leader that could not renew for this long stops acting (well inside `TTL_MS`).
pub const STEP_DOWN_AFTER: Duration = Duration::from_secs(7);

pub use crate::store::lease::{Lease, TTL_MS};

/// A name for this process in the lease row: `host:pid`.
pub fn holder_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "klaxon".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    // The suffix tells two bots in one process (tests) apart.
    format!("{host}:{}:{nanos:08x}", std::process::id())
}

/// The SQLite database file of a URL, when it is a file.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.contains(":memory:") {
        return None;
    }
    Some(PathBuf::from(path))
}

/// Held for the life of the process: the one Klaxon on a SQLite file.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another Klaxon{} is already using {db} (it holds {lock}). SQLite takes one \
         instance per database file: stop the other one, or move to PostgreSQL \
         (database.url = \"postgres://…\") to run several replicas",
        .pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Held {
        db: String,
        lock: String,
        pid: Option<u32>,
    },
    #[error("cannot create the lock file {lock}: {reason}")]
    Io { lock: String, reason: String },
}

impl InstanceLock {
    /// Locks `<db>.lock` exclusively (released by the OS if the process dies).
    pub fn acquire(db: &Path) -> Result<InstanceLock, LockError> {
        let mut name = db.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let io = |e: std::io::Error| LockError::Io {
            lock: path.display().to_string(),
            reason: e.to_string(),
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                return Err(LockError::Held {
                    db: db.display().to_string(),
                    lock: path.display().to_string(),
                    pid: pid.trim().parse().ok(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        // The pid is only for the message a second instance prints.
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        Ok(InstanceLock { _file: file, path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_files_from_urls() {
        assert_eq!(
            sqlite_file("sqlite:///var/lib/klaxon/k.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/klaxon/k.db"))
        );
        assert_eq!(
            sqlite_file("sqlite://klaxon.db"),
            Some(PathBuf::from("klaxon.db"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://x@y/z"), None);
    }

    #[test]
    fn a_second_lock_on_the_same_file_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("klaxon.db");
        let first = InstanceLock::acquire(&db).expect("first");
        let second = InstanceLock::acquire(&db).unwrap_err().to_string();
        assert!(second.contains("another Klaxon"), "{second}");
        assert!(
            second.contains(&format!("pid {}", std::process::id())),
            "{second}"
        );
        assert!(second.contains("PostgreSQL"), "{second}");
        drop(first);
        InstanceLock::acquire(&db).expect("free again once the first is gone");
    }
}
