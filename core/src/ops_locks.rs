//! The operations of `/rollback` and `/restart` as `App` holds them: what a member
//! confirms ([`Plan`]), the plans waiting for their Confirm clicks, and the
//! in-memory lock that lets one operation per service run at a time (the
//! deployment row in the database is the durable half).
//!
//! A leaf of the module graph (it imports only other leaves: docker's image type,
//! secret, timefmt), so that `App` holds the [`Locks`] without importing the
//! rollout domain, which takes `&App` as its context. Planning, running and
//! recovering operations are `rollout`'s.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::docker::ImageInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Rollback,
    Restart,
    /// `/scale`: replicas of a compose service added or removed.
    Scale,
}

impl Action {
    /// Also the command's name, for permission checks and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Rollback => "rollback",
            Action::Restart => "restart",
            Action::Scale => "scale",
        }
    }
}

use crate::actor::Actor;

/// How Klaxon decides that a container is healthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthWait {
    /// The Docker health check (the image's or the container's own).
    Docker,
    /// The service's `health_url` answers 2xx.
    Http(String),
    /// Neither: the container keeps running this long without restarting.
    Running(Duration),
    /// A Swarm service: every replica runs a task of the new spec (Swarm's own
    /// health checks gate "running").
    Swarm,
}

impl HealthWait {
    pub fn describe(&self) -> String {
        match self {
            HealthWait::Docker => "Docker health check".into(),
            // Shown in the plan and logged at each step: never with its credentials.
            HealthWait::Http(url) => format!("HTTP check of {}", crate::secret::redact_url(url)),
            HealthWait::Running(d) => format!("running for {} s", d.as_secs()),
            HealthWait::Swarm => "every Swarm task running (Swarm's health checks)".into(),
        }
    }
}

/// Why the target image was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetSource {
    /// The member named it.
    Asked,
    /// It ran before the current image, according to Klaxon's deployment history.
    History,
    /// The newest image of the same repository older than the current one.
    NewestOlder,
}

/// What the member confirms.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Unique across restarts, so that a button of an old message never matches.
    pub id: u64,
    pub action: Action,
    pub service: String,
    pub container: String,
    pub current: ImageInfo,
    /// created, running, exited...
    pub container_state: String,
    pub started_at: Option<DateTime<Utc>>,
    /// The image to roll back to; `None` for a restart.
    pub target: Option<ImageInfo>,
    pub target_source: TargetSource,
    pub health: HealthWait,
    pub health_timeout: Duration,
    pub approvals_needed: u8,
    /// The replicas of a compose service (container names, by number), one at a
    /// time; empty for a service of one container.
    pub replicas: Vec<String>,
    /// For `/scale`: how many replicas the service should run.
    pub scale_to: Option<u32>,
}

impl Plan {
    /// The old container's name while the new one starts.
    pub fn kept_name(&self) -> String {
        format!("{}-klaxon-{}", self.container, self.id)
    }

    /// `name=value` pairs for the audit log.
    pub fn arguments(&self) -> String {
        match (&self.target, self.scale_to) {
            (Some(t), _) => format!("service={} to={}", self.service, t.reference),
            (None, Some(n)) => format!("service={} replicas={n}", self.service),
            (None, None) => format!("service={}", self.service),
        }
    }
}

/// Who holds a service: shown to a member whose operation is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub service: String,
    pub action: Action,
    pub by: String,
    pub since_ms: i64,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ago = (Utc::now().timestamp_millis() - self.since_ms).max(0) as u64;
        write!(
            f,
            "A {} of `{}` started by {} {} ago is still running; try again when it has finished.",
            self.action.as_str(),
            self.service,
            self.by,
            crate::timefmt::human_duration(Duration::from_secs(ago / 1_000))
        )
    }
}

// ---------------------------------------------------------------------------
// Locks and pending confirmations (in memory; the deployment row is the durable half)
// ---------------------------------------------------------------------------

/// A plan waiting for its Confirm clicks.
#[derive(Debug, Clone)]
pub struct Pending {
    pub plan: Plan,
    pub requested_by: Actor,
    /// Operators who clicked Confirm so far, in order.
    pub approvals: Vec<Actor>,
    pub expires_at: Instant,
}

/// The answer to a Confirm click.
#[derive(Debug)]
pub enum Approval {
    /// No such plan: it expired, was cancelled, or Klaxon restarted since.
    Unknown,
    /// The plan was there, but its time was up (it is gone now).
    Expired(Box<Pending>),
    /// This operation is already running.
    Running,
    /// The same operator clicked twice: it does not count.
    AlreadyApproved(Box<Pending>),
    /// Recorded; more operators must confirm.
    NeedMore(Box<Pending>),
    /// Another operation holds the service; the plan stays pending.
    Busy(Holder),
    /// Enough approvals, and the service's lock is taken: `rollout::start` it.
    Ready(Box<Confirmed>),
}

/// A plan with all its approvals and the service's lock.
#[derive(Debug)]
pub struct Confirmed {
    pub pending: Pending,
    guard: LockGuard,
}

impl Confirmed {
    /// The plan, and the lock to hold for as long as the operation runs.
    pub fn into_parts(self) -> (Pending, LockGuard) {
        (self.pending, self.guard)
    }
}

#[derive(Default)]
struct LocksInner {
    running: HashMap<String, Running>,
    pending: HashMap<u64, Pending>,
}

struct Running {
    op_id: u64,
    holder: Holder,
    abort: Option<tokio::task::AbortHandle>,
}

/// In-memory locks (one operation per service) and pending confirmations.
#[derive(Default, Clone)]
pub struct Locks {
    inner: Arc<Mutex<LocksInner>>,
}

impl std::fmt::Debug for Locks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self.lock();
        f.debug_struct("Locks")
            .field("running", &g.running.keys().collect::<Vec<_>>())
            .field("pending", &g.pending.len())
            .finish()
    }
}

/// Releases the service when the operation ends, however it ends (an aborted task
/// drops it too).
#[derive(Debug)]
pub struct LockGuard {
    locks: Locks,
    key: String,
    op_id: u64,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let mut g = self.locks.lock();
        if g.running
            .get(&self.key)
            .is_some_and(|r| r.op_id == self.op_id)
        {
            g.running.remove(&self.key);
        }
    }
}

impl LockGuard {
    /// Where the task that runs the operation leaves its abort handle, for
    /// [`Locks::abort_all`].
    pub fn abort_slot(&self) -> AbortSlot {
        AbortSlot {
            locks: self.locks.clone(),
            key: self.key.clone(),
            op_id: self.op_id,
        }
    }
}

/// See [`LockGuard::abort_slot`].
pub struct AbortSlot {
    locks: Locks,
    key: String,
    op_id: u64,
}

impl AbortSlot {
    pub fn set(self, handle: tokio::task::AbortHandle) {
        self.locks.set_abort(&self.key, self.op_id, handle);
    }
}

fn key(service: &str) -> String {
    service.trim().to_lowercase()
}

impl Locks {
    fn lock(&self) -> MutexGuard<'_, LocksInner> {
        // Never held across an await; a panic elsewhere must not wedge every command.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Who runs an operation on `service` in this process, if anyone.
    pub fn holder(&self, service: &str) -> Option<Holder> {
        self.lock()
            .running
            .get(&key(service))
            .map(|r| r.holder.clone())
    }

    pub fn add_pending(&self, pending: Pending) {
        let mut g = self.lock();
        // Forget plans nobody confirmed long ago (their timer normally does it).
        let now = Instant::now();
        g.pending
            .retain(|_, p| p.expires_at + Duration::from_secs(600) > now);
        g.pending.insert(pending.plan.id, pending);
    }

    pub fn pending(&self, op_id: u64) -> Option<Pending> {
        self.lock().pending.get(&op_id).cloned()
    }

    /// Whether the operation with this plan id is running now.
    pub fn is_running(&self, op_id: u64) -> bool {
        self.lock().running.values().any(|r| r.op_id == op_id)
    }

    /// Records a Confirm click; the last needed one takes the service's lock, in the
    /// same step, so two plans for one service cannot both start.
    pub fn approve(&self, op_id: u64, by: &Actor, now: Instant) -> Approval {
        let mut g = self.lock();
        let Some(p) = g.pending.get_mut(&op_id) else {
            return if g.running.values().any(|r| r.op_id == op_id) {
                Approval::Running
            } else {
                Approval::Unknown
            };
        };
        if now >= p.expires_at {
            return match g.pending.remove(&op_id) {
                Some(p) => Approval::Expired(Box::new(p)),
                None => Approval::Unknown,
            };
        }
        if p.approvals.iter().any(|a| a.user_id == by.user_id) {
            return Approval::AlreadyApproved(Box::new(p.clone()));
        }
        let needed = usize::from(p.plan.approvals_needed.max(1));
        if p.approvals.len() + 1 < needed {
            p.approvals.push(by.clone());
            return Approval::NeedMore(Box::new(p.clone()));
        }
        let k = key(&p.plan.service);
        if let Some(r) = g.running.get(&k) {
            return Approval::Busy(r.holder.clone());
        }
        let Some(mut p) = g.pending.remove(&op_id) else {
            return Approval::Unknown;
        };
        p.approvals.push(by.clone());
        g.running.insert(
            k.clone(),
            Running {
                op_id,
                holder: Holder {
                    service: p.plan.service.clone(),
                    action: p.plan.action,
                    by: by.name.clone(),
                    since_ms: Utc::now().timestamp_millis(),
                },
                abort: None,
            },
        );
        Approval::Ready(Box::new(Confirmed {
            pending: p,
            guard: LockGuard {
                locks: self.clone(),
                key: k,
                op_id,
            },
        }))
    }

    /// Cancel: the plan is gone, whoever asks.
    pub fn cancel(&self, op_id: u64) -> Option<Pending> {
        self.lock().pending.remove(&op_id)
    }

    /// Removes the plan if its time is up (for the timer that disables the buttons).
    pub fn expire(&self, op_id: u64, now: Instant) -> Option<Pending> {
        let mut g = self.lock();
        if g.pending.get(&op_id).is_some_and(|p| now >= p.expires_at) {
            g.pending.remove(&op_id)
        } else {
            None
        }
    }

    fn set_abort(&self, key: &str, op_id: u64, handle: tokio::task::AbortHandle) {
        if let Some(r) = self.lock().running.get_mut(key) {
            if r.op_id == op_id {
                r.abort = Some(handle);
            }
        }
    }

    /// Stops every running operation where it stands, as a crash would: containers
    /// stay as they are and the deployment rows stay `in_progress` for `rollout::recover`.
    /// For tests of the recovery, and for an emergency stop.
    pub fn abort_all(&self) -> usize {
        let handles: Vec<_> = self
            .lock()
            .running
            .values_mut()
            .filter_map(|r| r.abort.take())
            .collect();
        for h in &handles {
            h.abort();
        }
        handles.len()
    }
}

/// A plan id: milliseconds since the epoch and a counter, so ids from an earlier run
/// of Klaxon never come back.
pub fn next_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let ms = Utc::now().timestamp_millis().max(0) as u64;
    (ms << 12) | (COUNTER.fetch_add(1, Ordering::Relaxed) & 0xfff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(service: &str, needed: u8) -> Plan {
        Plan {
            id: next_id(),
            action: Action::Rollback,
            service: service.into(),
            container: service.into(),
            current: ImageInfo {
                repository: "app".into(),
                reference: "app:v2".into(),
                id: "sha256:2".into(),
                digest: None,
                created: None,
            },
            container_state: "running".into(),
            started_at: None,
            target: None,
            target_source: TargetSource::Asked,
            health: HealthWait::Docker,
            health_timeout: Duration::from_secs(60),
            approvals_needed: needed,
            replicas: Vec::new(),
            scale_to: None,
        }
    }

    fn actor(id: u64) -> Actor {
        Actor {
            user_id: id,
            name: format!("user{id}"),
            guild_id: None,
            channel_id: None,
        }
    }

    fn pending(plan: Plan, ttl: Duration) -> Pending {
        Pending {
            plan,
            requested_by: actor(1),
            approvals: Vec::new(),
            expires_at: Instant::now() + ttl,
        }
    }

    #[test]
    fn two_person_rule_counts_distinct_operators() {
        let locks = Locks::default();
        let p = plan("api", 2);
        let id = p.id;
        locks.add_pending(pending(p, Duration::from_secs(60)));
        let now = Instant::now();
        assert!(
            matches!(locks.approve(id, &actor(1), now), Approval::NeedMore(p) if p.approvals.len() == 1)
        );
        assert!(matches!(
            locks.approve(id, &actor(1), now),
            Approval::AlreadyApproved(_)
        ));
        let Approval::Ready(confirmed) = locks.approve(id, &actor(2), now) else {
            panic!("a second operator completes it");
        };
        assert_eq!(confirmed.pending.approvals.len(), 2);
        assert_eq!(locks.holder("API").map(|h| h.by), Some("user2".to_string()));
        assert!(matches!(
            locks.approve(id, &actor(3), now),
            Approval::Running
        ));
        drop(confirmed);
        assert_eq!(locks.holder("api"), None, "the lock goes with the guard");
        assert!(matches!(
            locks.approve(id, &actor(3), now),
            Approval::Unknown
        ));
    }

    #[test]
    fn one_operation_per_service_and_expiry() {
        let locks = Locks::default();
        let (a, b) = (plan("api", 1), plan("api", 1));
        let (ida, idb) = (a.id, b.id);
        assert_ne!(ida, idb);
        locks.add_pending(pending(a, Duration::from_secs(60)));
        locks.add_pending(pending(b, Duration::from_secs(60)));
        let now = Instant::now();
        let Approval::Ready(first) = locks.approve(ida, &actor(1), now) else {
            panic!("first plan starts");
        };
        assert!(matches!(locks.approve(idb, &actor(2), now), Approval::Busy(h) if h.by == "user1"));
        assert!(locks.pending(idb).is_some(), "a refused plan stays pending");
        drop(first);
        assert!(locks.expire(idb, now).is_none(), "not expired yet");
        assert!(locks.expire(idb, now + Duration::from_secs(61)).is_some());
        let c = plan("web", 1);
        let idc = c.id;
        locks.add_pending(pending(c, Duration::ZERO));
        assert!(matches!(
            locks.approve(idc, &actor(1), Instant::now()),
            Approval::Expired(_)
        ));
        assert!(locks.cancel(idc).is_none());
    }
}
