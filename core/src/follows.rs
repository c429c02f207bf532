//! The log follows running in this process, by id: the application owns them (a
//! field of `App`), so the Stop button, the follow itself and the `/logs` limit on
//! follows at once all see the same set, and a test world gets a fresh one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

/// Running follows: each one's stop channel takes the name of who stopped it.
pub struct Follows {
    running: Mutex<HashMap<u64, oneshot::Sender<String>>>,
    next: AtomicU64,
}

impl Default for Follows {
    /// Follow ids start from the clock, so a Stop button left over from an earlier
    /// run of the bot never matches a follow of this one.
    fn default() -> Self {
        Follows {
            running: Mutex::new(HashMap::new()),
            next: AtomicU64::new(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_micros() as u64)
                    .unwrap_or(1),
            ),
        }
    }
}

impl std::fmt::Debug for Follows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follows")
            .field("running", &self.running())
            .finish()
    }
}

impl Follows {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, oneshot::Sender<String>>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fresh id for the next follow.
    pub fn next_id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers a running follow and the channel its Stop button sends on.
    pub fn insert(&self, id: u64, stop: oneshot::Sender<String>) {
        self.lock().insert(id, stop);
    }

    /// Takes a follow out: `None` when it has already stopped.
    pub fn remove(&self, id: u64) -> Option<oneshot::Sender<String>> {
        self.lock().remove(&id)
    }

    /// How many follows run now.
    pub fn running(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_follow_is_gone_and_ids_do_not_repeat() {
        let f = Follows::default();
        let (a, b) = (f.next_id(), f.next_id());
        assert_ne!(a, b);
        let (tx, _rx) = oneshot::channel();
        f.insert(a, tx);
        assert_eq!(f.running(), 1);
        assert!(f.remove(a).is_some());
        assert!(f.remove(a).is_none());
        assert_eq!(f.running(), 0);
    }
}
