//! A queue in front of `/logs` reads. One read may hold up to `MAX_LINES` lines of
//! `MAX_LINE_BYTES` each while it renders them (about 20 MiB, plus the attachment),
//! so sixteen members asking at once would take hundreds of megabytes, and the
//! allocator keeps much of it afterwards. Reads beyond the limit wait their turn,
//! in order, and the reply says how long they waited.

use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

/// `[logs] max_concurrent_reads` when the config says nothing.
pub const DEFAULT_CONCURRENT_READS: usize = 2;

#[derive(Debug)]
pub struct ReadQueue {
    slots: Semaphore,
    limit: usize,
}

/// A turn to read; the next read in line starts when it is dropped.
pub struct Turn<'a> {
    _permit: Option<SemaphorePermit<'a>>,
    /// How long the read waited for its turn, when it had to.
    pub waited: Option<Duration>,
}

impl ReadQueue {
    pub fn new(limit: usize) -> ReadQueue {
        let limit = limit.max(1);
        ReadQueue {
            slots: Semaphore::new(limit),
            limit,
        }
    }

    /// Reads running now (or waiting).
    pub fn busy(&self) -> usize {
        self.limit.saturating_sub(self.slots.available_permits())
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Waits for a turn (first come, first served).
    pub async fn turn(&self) -> Turn<'_> {
        if let Ok(permit) = self.slots.try_acquire() {
            return Turn {
                _permit: Some(permit),
                waited: None,
            };
        }
        let started = Instant::now();
        // `acquire` fails only on a closed semaphore, and this one is never closed.
        let permit = self.slots.acquire().await.ok();
        Turn {
            _permit: permit,
            waited: Some(started.elapsed()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_past_the_limit_wait_their_turn() {
        let q = ReadQueue::new(1);
        let first = q.turn().await;
        assert!(first.waited.is_none());
        assert_eq!(q.busy(), 1);
        let second = async { q.turn().await.waited };
        let release = async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            drop(first);
        };
        let (waited, ()) = tokio::join!(second, release);
        assert!(
            waited.is_some_and(|w| w >= Duration::from_millis(20)),
            "{waited:?}"
        );
        assert_eq!(q.busy(), 0);
    }
}
