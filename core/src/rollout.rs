//! `/rollback` and `/restart`: replacing a service's container and waiting for health.
//!
//! What an engineer does by hand in the runbooks, as code: [`plan`] inspects the
//! service's container and picks the target image; once operators confirmed,
//! [`start`] runs the operation in its own task and reports [`Progress`] on a watch
//! channel (the command module only renders it); [`recover`] runs at start-up and
//! fixes up an operation a previous Klaxon left half done.
//!
//! A rollback never destroys the old container before the new one is healthy: it is
//! stopped and renamed out of the way, and put back (renamed, started) when the new
//! one does not become healthy in time. Every step goes to the audit log and to the
//! deployment history ([`crate::deployments`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::docker::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointSettings, HealthConfig,
    HealthStatusEnum, ImageConfig, ImageInspect, Mount, MountType, NetworkingConfig,
    RestartPolicyNameEnum,
};
use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::app::{App, UnknownService};
use crate::audit::{AuditEntry, Outcome};
use crate::chat::{ChatMessage, Embed};
use crate::deployments::{self, Deployment, NewDeployment, Status};
pub use crate::docker::images::{normalize_repository, repository, ImageInfo};
use crate::docker::images::{date_of, is_id_of, is_image_id, short_id};
use crate::docker::{DockerClient, DockerError};
use crate::health::{human_duration, ServiceConfig};
use crate::store::StoreError;

pub use crate::settings::rollout::{RolloutConfig, MAX_HEALTH_TIMEOUT_SECS};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Rollback,
    Restart,
}

impl Action {
    /// Also the command's name, for permission checks and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Rollback => "rollback",
            Action::Restart => "restart",
        }
    }
}

/// A member acting on an operation, and where they did it (for the audit log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user_id: u64,
    pub name: String,
    pub guild_id: Option<u64>,
    pub channel_id: Option<u64>,
}

/// How Klaxon decides that a container is healthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthWait {
    /// The Docker health check (the image's or the container's own).
    Docker,
    /// The service's `health_url` answers 2xx.
    Http(String),
    /// Neither: the container keeps running this long without restarting.
    Running(Duration),
}

impl HealthWait {
    pub fn describe(&self) -> String {
        match self {
            HealthWait::Docker => "Docker health check".into(),
            // Shown in the plan and logged at each step: never with its credentials.
            HealthWait::Http(url) => format!("HTTP check of {}", crate::secret::redact_url(url)),
            HealthWait::Running(d) => format!("running for {} s", d.as_secs()),
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
}

impl Plan {
    /// The old container's name while the new one starts.
    pub fn kept_name(&self) -> String {
        format!("{}-klaxon-{}", self.container, self.id)
    }

    /// `name=value` pairs for the audit log.
    pub fn arguments(&self) -> String {
        match &self.target {
            Some(t) => format!("service={} to={}", self.service, t.reference),
            None => format!("service={}", self.service),
        }
    }
}

/// Refusals and failures before anything changed. The texts are written for the
/// member; only `Store` is internal.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error(transparent)]
    UnknownService(#[from] UnknownService),
    #[error("`{0}` has no container configured, so there is nothing to roll back or restart.")]
    NoContainer(String),
    #[error("{0}")]
    Busy(Holder),
    #[error("{0}")]
    Docker(#[from] DockerError),
    #[error("No image of `{repo}` older than the running one is known to Docker or to Klaxon's history; name one with `to`.")]
    NoPrevious { repo: String },
    #[error("Image `{0}` is not on the Docker engine; pull it there first.")]
    ImageNotFound(String),
    #[error("`{0}` is not an image reference.")]
    BadImage(String),
    #[error("`{image}` is from `{image_repo}`, and `{service}` may only run images of {allowed}. Add the repository to the service's `allowed_images` in the config to allow it.")]
    ForeignImage {
        service: String,
        image: String,
        image_repo: String,
        /// The repositories allowed, already written for the member.
        allowed: String,
    },
    #[error("`{container}` already runs `{image}`; there is nothing to roll back.")]
    SameImage { container: String, image: String },
    #[error("`{0}` was started with --rm: stopping it would delete it, so Klaxon could not put it back. Recreate it without --rm first.")]
    AutoRemove(String),
    #[error("database error: {0}")]
    Store(#[from] StoreError),
}

impl RolloutError {
    /// Whether the text is meant for the member (everything but database trouble).
    pub fn is_user_facing(&self) -> bool {
        !matches!(self, RolloutError::Store(_))
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
            human_duration(Duration::from_secs(ago / 1_000))
        )
    }
}

impl Holder {
    fn of_row(d: &Deployment) -> Holder {
        Holder {
            service: d.service.clone(),
            action: if d.action == Action::Restart.as_str() {
                Action::Restart
            } else {
                Action::Rollback
            },
            by: d.requested_by_name.clone(),
            since_ms: d.started_ms,
        }
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
    /// Enough approvals, and the service's lock is taken: [`start`] it.
    Ready(Box<Confirmed>),
}

/// A plan with all its approvals and the service's lock.
#[derive(Debug)]
pub struct Confirmed {
    pub pending: Pending,
    guard: LockGuard,
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
struct LockGuard {
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
    /// stay as they are and the deployment rows stay `in_progress` for [`recover`].
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
fn next_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let ms = Utc::now().timestamp_millis().max(0) as u64;
    (ms << 12) | (COUNTER.fetch_add(1, Ordering::Relaxed) & 0xfff)
}

/// A reference as Docker lists it: repository normalized, `:latest` when it names
/// neither tag nor digest.
fn normalize_reference(reference: &str) -> String {
    let repo = repository(reference);
    let rest = &reference[repo.len()..];
    let rest = if rest.is_empty() { ":latest" } else { rest };
    format!("{}{rest}", normalize_repository(repo))
}

/// Whether a rollback may run this image: its repository must be the service's own
/// (`own`, from the running container) or one of `allowed`. The image is judged by
/// the names the engine has for it (`names`: its repo tags and repo digests), never
/// by the typed text alone: Docker finds `own/app@sha256:<id>` for any image whose
/// id that is, whatever repository stands in front. A target named by tag or digest
/// must be one of those names; one named by image id (or an id prefix) needs one of
/// them in an allowed repository. `Err` carries the image's repository.
fn allowed_target(
    reference: &str,
    image_id: &str,
    names: &[String],
    own: &str,
    allowed: &[String],
) -> Result<(), String> {
    let ok = |repo: &str| {
        let repo = normalize_repository(repo);
        (!own.is_empty() && repo == normalize_repository(own))
            || allowed.iter().any(|a| normalize_repository(a) == repo)
    };
    let engine_repo = || match names.first() {
        Some(n) => repository(n).to_string(),
        None => "no repository (an untagged image)".to_string(),
    };
    if is_id_of(reference, image_id) {
        return if names.iter().any(|n| ok(repository(n))) {
            Ok(())
        } else {
            Err(engine_repo())
        };
    }
    let typed = normalize_reference(reference);
    if !names.iter().any(|n| normalize_reference(n) == typed) {
        // The engine does not know the image by the name typed.
        return Err(engine_repo());
    }
    let repo = repository(reference);
    if ok(repo) {
        Ok(())
    } else {
        Err(repo.to_string())
    }
}

/// The repositories a service may run, as the refusal names them.
fn allowed_list(own: &str, allowed: &[String]) -> String {
    let mut names: Vec<String> = Vec::new();
    for r in std::iter::once(own).chain(allowed.iter().map(String::as_str)) {
        if !r.is_empty() && !names.iter().any(|n| n == normalize_repository(r)) {
            names.push(normalize_repository(r).to_string());
        }
    }
    match names.as_slice() {
        [] => "no repository (none is known or allowed)".to_string(),
        [one] => format!("`{one}`"),
        many => many
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Image references as the member may type them; anything else never reaches the
/// engine's URL paths.
fn valid_reference(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && !s.contains("..")
        && !s.starts_with(['/', '-', '.', ':'])
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@'))
}

/// A repository as `allowed_images` names it: a reference without tag or digest.
pub fn valid_repository(s: &str) -> bool {
    valid_reference(s) && !s.contains('@') && repository(s) == s && !s.ends_with('/')
}

fn health_of(check: Option<&HealthConfig>, svc: &ServiceConfig, cfg: &RolloutConfig) -> HealthWait {
    let has_check = check
        .and_then(|h| h.test.as_ref())
        .and_then(|t| t.first())
        .is_some_and(|first| first != "NONE");
    match (&svc.health_url, has_check) {
        (_, true) => HealthWait::Docker,
        (Some(url), false) => HealthWait::Http(url.clone()),
        (None, false) => HealthWait::Running(Duration::from_secs(cfg.running_secs)),
    }
}

/// The create body for `target` that reproduces the container described by `info`:
/// everything the container set itself (env, labels, command, mounts, ports,
/// network, restart policy, health check...) is kept; what it only inherited from
/// its old image (`old_image`) is left out, so that the target image's own defaults
/// apply — rolling back from v2 must not keep v2's command or version label.
pub fn recreate_body(
    info: &ContainerInspectResponse,
    old_image: Option<&ImageConfig>,
    target: &str,
) -> ContainerCreateBody {
    let cfg = info.config.clone().unwrap_or_default();
    let img = old_image.cloned().unwrap_or_default();
    let known = old_image.is_some();
    // A value the container shares with its old image came from that image.
    fn own<T: PartialEq>(value: Option<T>, image: &Option<T>, known: bool) -> Option<T> {
        if known && value.as_ref() == image.as_ref() {
            None
        } else {
            value
        }
    }
    fn minus(value: Option<Vec<String>>, image: &Option<Vec<String>>) -> Option<Vec<String>> {
        value.map(|v| {
            v.into_iter()
                .filter(|x| !image.as_ref().is_some_and(|i| i.contains(x)))
                .collect()
        })
    }
    let id = info.id.clone().unwrap_or_default();
    let mut host_config = info.host_config.clone().unwrap_or_default();

    // Anonymous volumes (an image's VOLUME, `-v /path`) would be replaced by empty
    // new ones: mount the same volumes again, as `docker compose` does.
    let bound: HashSet<String> = host_config
        .binds
        .iter()
        .flatten()
        .filter_map(|b| b.split(':').nth(1).map(String::from))
        .chain(
            host_config
                .mounts
                .iter()
                .flatten()
                .filter_map(|m| m.target.clone()),
        )
        .collect();
    let anonymous: Vec<Mount> = info
        .mounts
        .iter()
        .flatten()
        .filter(|m| m.typ.as_deref() == Some("volume"))
        .filter_map(|m| {
            let target = m.destination.clone()?;
            let name = m.name.clone()?;
            (!bound.contains(&target)).then(|| Mount {
                target: Some(target),
                source: Some(name),
                typ: Some(MountType::VOLUME),
                read_only: m.rw.map(|rw| !rw),
                ..Default::default()
            })
        })
        .collect();
    if !anonymous.is_empty() {
        host_config
            .mounts
            .get_or_insert_with(Vec::new)
            .extend(anonymous);
    }

    // A user-defined network is joined at creation; the others after (see
    // `extra_networks`). Built-in modes need nothing beyond network_mode.
    let mode = host_config.network_mode.clone().unwrap_or_default();
    let networking_config = (!builtin_network(&mode))
        .then(|| {
            let settings = info
                .network_settings
                .as_ref()
                .and_then(|n| n.networks.as_ref())
                .and_then(|n| n.get(&mode))?;
            Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    mode.clone(),
                    endpoint_copy(settings, &id),
                )])),
            })
        })
        .flatten();

    ContainerCreateBody {
        hostname: cfg
            .hostname
            .filter(|h| !h.is_empty() && !id.starts_with(h.as_str())),
        domainname: cfg.domainname.filter(|d| !d.is_empty()),
        user: own(cfg.user, &img.user, known).filter(|u| !u.is_empty()),
        attach_stdin: cfg.attach_stdin,
        attach_stdout: cfg.attach_stdout,
        attach_stderr: cfg.attach_stderr,
        exposed_ports: minus(cfg.exposed_ports, &img.exposed_ports),
        tty: cfg.tty,
        open_stdin: cfg.open_stdin,
        stdin_once: cfg.stdin_once,
        env: minus(cfg.env, &img.env),
        cmd: own(cfg.cmd, &img.cmd, known),
        healthcheck: own(cfg.healthcheck, &img.healthcheck, known),
        args_escaped: None,
        image: Some(target.to_string()),
        volumes: minus(cfg.volumes, &img.volumes),
        working_dir: own(cfg.working_dir, &img.working_dir, known).filter(|w| !w.is_empty()),
        entrypoint: own(cfg.entrypoint, &img.entrypoint, known),
        network_disabled: cfg.network_disabled,
        on_build: None,
        labels: cfg.labels.map(|labels| {
            labels
                .into_iter()
                .filter(|(k, v)| img.labels.as_ref().and_then(|l| l.get(k)) != Some(v))
                .collect()
        }),
        stop_signal: own(cfg.stop_signal, &img.stop_signal, known),
        stop_timeout: cfg.stop_timeout,
        shell: own(cfg.shell, &img.shell, known),
        host_config: Some(host_config),
        networking_config,
    }
}

fn builtin_network(mode: &str) -> bool {
    matches!(mode, "" | "default" | "bridge" | "host" | "none") || mode.starts_with("container:")
}

/// The parts of an endpoint a member chose (aliases, static addresses, links); the
/// rest belongs to the old container.
fn endpoint_copy(s: &EndpointSettings, old_id: &str) -> EndpointSettings {
    EndpointSettings {
        ipam_config: s.ipam_config.clone(),
        links: s.links.clone(),
        aliases: s.aliases.as_ref().map(|a| {
            a.iter()
                .filter(|alias| alias.len() < 12 || !old_id.starts_with(alias.as_str()))
                .cloned()
                .collect()
        }),
        driver_opts: s.driver_opts.clone(),
        ..Default::default()
    }
}

/// User-defined networks besides the primary one, to connect after creation
/// (API 1.41 takes one network at creation).
fn extra_networks(info: &ContainerInspectResponse) -> Vec<(String, EndpointSettings)> {
    let id = info.id.clone().unwrap_or_default();
    let mode = info
        .host_config
        .as_ref()
        .and_then(|h| h.network_mode.clone())
        .unwrap_or_default();
    if builtin_network(&mode) {
        return Vec::new();
    }
    let mut out: Vec<(String, EndpointSettings)> = info
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .into_iter()
        .flatten()
        .filter(|(name, _)| **name != mode && !builtin_network(name))
        .map(|(name, s)| (name.clone(), endpoint_copy(s, &id)))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn container_name(info: &ContainerInspectResponse) -> String {
    info.name
        .as_deref()
        .unwrap_or_default()
        .trim_start_matches('/')
        .to_string()
}

fn is_running(info: &ContainerInspectResponse) -> bool {
    info.state.as_ref().and_then(|s| s.running).unwrap_or(false)
}

fn state_text(info: &ContainerInspectResponse) -> String {
    info.state
        .as_ref()
        .and_then(|s| s.status)
        .map(|s| s.to_string())
        .unwrap_or_else(|| "unknown".into())
}

// ---------------------------------------------------------------------------
// Planning
// ---------------------------------------------------------------------------

/// Refuses when another operation holds the service: in this process, or (the
/// deployment row) in another replica.
pub async fn check_free(app: &App, service: &str) -> Result<(), RolloutError> {
    if let Some(h) = app.ops_locks.holder(service) {
        return Err(RolloutError::Busy(h));
    }
    if let Some(row) = deployments::in_progress(&app.store, Some(service))
        .await?
        .first()
    {
        return Err(RolloutError::Busy(Holder::of_row(row)));
    }
    Ok(())
}

/// Inspects the service's container and picks the target: what the member
/// confirms. Nothing changes on the engine.
pub async fn plan(
    app: &App,
    action: Action,
    service: &str,
    to: Option<&str>,
) -> Result<Plan, RolloutError> {
    let svc = app.service(service)?;
    let container = svc
        .container
        .clone()
        .ok_or_else(|| RolloutError::NoContainer(svc.name.clone()))?;
    if let Some(t) = to.map(str::trim) {
        if !valid_reference(t) {
            return Err(RolloutError::BadImage(t.to_string()));
        }
    }
    check_free(app, &svc.name).await?;
    app.docker.ready().await?;
    let engine = &app.docker;
    let info = engine.inspect(&container).await?;
    let current_id = info.image.clone().unwrap_or_default();
    let configured = info
        .config
        .as_ref()
        .and_then(|c| c.image.clone())
        .unwrap_or_else(|| current_id.clone());
    let current_image = engine.inspect_image(&current_id).await.ok();
    let current = match &current_image {
        Some(img) => ImageInfo::from_inspect(&configured, img),
        None => ImageInfo {
            repository: if is_image_id(&configured) {
                String::new()
            } else {
                repository(&configured).to_string()
            },
            reference: configured.clone(),
            id: current_id.clone(),
            digest: None,
            created: None,
        },
    };
    let repo = if is_image_id(&configured) {
        current_image
            .as_ref()
            .and_then(|i| i.repo_tags.as_ref())
            .and_then(|t| t.first())
            .map(|t| repository(t).to_string())
            .unwrap_or_default()
    } else {
        repository(&configured).to_string()
    };
    let state = info.state.clone().unwrap_or_default();
    let mut plan = Plan {
        id: next_id(),
        action,
        service: svc.name.clone(),
        container: container.clone(),
        current,
        container_state: state_text(&info),
        started_at: state.started_at.as_deref().and_then(crate::timefmt::parse_time),
        target: None,
        target_source: TargetSource::Asked,
        health: HealthWait::Running(Duration::from_secs(app.rollout.running_secs)),
        health_timeout: Duration::from_secs(
            app.rollout.health_timeout_secs.min(MAX_HEALTH_TIMEOUT_SECS),
        ),
        approvals_needed: app.rollout.approvals_for(&svc.name),
    };
    match action {
        Action::Restart => {
            plan.health = health_of(
                info.config.as_ref().and_then(|c| c.healthcheck.as_ref()),
                svc,
                &app.rollout,
            );
        }
        Action::Rollback => {
            if info
                .host_config
                .as_ref()
                .and_then(|h| h.auto_remove)
                .unwrap_or(false)
            {
                return Err(RolloutError::AutoRemove(container));
            }
            let (target, target_img, source) = match to.map(str::trim) {
                Some(t) => {
                    let (info, img) = resolve(&engine, &repo, t).await?;
                    (info, img, TargetSource::Asked)
                }
                None => default_target(app, &engine, &svc.name, &plan.current, &repo).await?,
            };
            // The new container gets the service's environment, mounts and networks:
            // only images of its own repository (or those the config allows) may run.
            let names: Vec<String> = target_img
                .repo_tags
                .iter()
                .chain(target_img.repo_digests.iter())
                .flatten()
                .cloned()
                .collect();
            if let Err(image_repo) = allowed_target(
                &target.reference,
                &target.id,
                &names,
                &repo,
                &svc.allowed_images,
            ) {
                return Err(RolloutError::ForeignImage {
                    service: svc.name.clone(),
                    image: target.reference,
                    image_repo,
                    allowed: allowed_list(&repo, &svc.allowed_images),
                });
            }
            let target_config = target_img.config.clone();
            if target.id == plan.current.id {
                return Err(RolloutError::SameImage {
                    container,
                    image: target.reference,
                });
            }
            let body = recreate_body(
                &info,
                current_image.as_ref().and_then(|i| i.config.as_ref()),
                &target.reference,
            );
            let check = body
                .healthcheck
                .as_ref()
                .or(target_config.as_ref().and_then(|c| c.healthcheck.as_ref()));
            plan.health = health_of(check, svc, &app.rollout);
            plan.target = Some(target);
            plan.target_source = source;
        }
    }
    Ok(plan)
}

/// The member's `to`: a full reference, an image id, or a bare tag of the
/// service's repository.
async fn resolve(
    engine: &DockerClient,
    repo: &str,
    to: &str,
) -> Result<(ImageInfo, ImageInspect), RolloutError> {
    let mut tries = Vec::new();
    if !repo.is_empty() && !to.contains([':', '/', '@']) {
        tries.push(format!("{repo}:{to}"));
    }
    tries.push(to.to_string());
    for reference in tries {
        match engine.inspect_image(&reference).await {
            Ok(img) => return Ok((ImageInfo::from_inspect(&reference, &img), img)),
            Err(DockerError::NotFound(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(RolloutError::ImageNotFound(to.to_string()))
}

/// The image that ran before the current one according to the history, else the
/// newest image of the same repository older than the current one. (Rolling back to
/// a newer build by default would be a surprise; `to` can still name one.)
async fn default_target(
    app: &App,
    engine: &DockerClient,
    service: &str,
    current: &ImageInfo,
    repo: &str,
) -> Result<(ImageInfo, ImageInspect, TargetSource), RolloutError> {
    let history = deployments::recent(&app.store, service, 50).await?;
    if let Some(row) = history.iter().find(|d| {
        d.status == Status::Succeeded
            && d.action == Action::Rollback.as_str()
            && d.to_image_id == current.id
            && d.from_image_id != current.id
    }) {
        // The tag may have moved since: run exactly the image that ran, by id if need be.
        let by_tag = engine.inspect_image(&row.from_image).await.ok();
        let found = match by_tag {
            Some(img) if img.id.as_deref() == Some(row.from_image_id.as_str()) => {
                Some((row.from_image.clone(), img))
            }
            _ => engine
                .inspect_image(&row.from_image_id)
                .await
                .ok()
                .map(|img| (row.from_image_id.clone(), img)),
        };
        if let Some((reference, img)) = found {
            let info = ImageInfo::from_inspect(&reference, &img);
            return Ok((info, img, TargetSource::History));
        }
    }
    let older = engine
        .candidates(repo)
        .await?
        .into_iter()
        .filter(|c| c.id != current.id)
        .find(|c| match (c.created, current.created) {
            (Some(c), Some(cur)) => c < cur,
            _ => true,
        });
    match older {
        Some(c) => {
            let img = engine.inspect_image(&c.reference).await?;
            Ok((c, img, TargetSource::NewestOlder))
        }
        None => Err(RolloutError::NoPrevious {
            repo: if repo.is_empty() {
                current.reference.clone()
            } else {
                repo.to_string()
            },
        }),
    }
}

/// One autocomplete choice for `to`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageChoice {
    pub reference: String,
    pub label: String,
}

/// Images of the service's repository known to the engine and to Klaxon's history,
/// newest first, each with its age; the running one left out.
pub async fn image_choices(
    app: &App,
    service: &str,
    partial: &str,
    limit: usize,
) -> Vec<ImageChoice> {
    let Ok(svc) = app.service(service) else {
        return Vec::new();
    };
    let Some(container) = svc.container.clone() else {
        return Vec::new();
    };
    let history = deployments::recent(&app.store, &svc.name, 50)
        .await
        .unwrap_or_default();
    let mut current_id = String::new();
    let mut engine_images = Vec::new();
    let engine = &app.docker;
    if engine.ready().await.is_ok() {
        if let Ok(info) = engine.inspect(&container).await {
            current_id = info.image.clone().unwrap_or_default();
            let configured = info
                .config
                .as_ref()
                .and_then(|c| c.image.clone())
                .unwrap_or_default();
            let repo = repository(&configured).to_string();
            engine_images = engine.candidates(&repo).await.unwrap_or_default();
        }
    }
    let now = Utc::now();
    let age = |t: DateTime<Utc>| human_duration((now - t).to_std().unwrap_or_default());
    let p = partial.trim().to_lowercase();
    // (sort key, choice)
    let mut out: Vec<(i64, ImageChoice)> = Vec::new();
    let mut seen = HashSet::new();
    for img in engine_images {
        if img.id == current_id || !seen.insert(img.reference.clone()) {
            continue;
        }
        let mut label = img.reference.clone();
        if let Some(c) = img.created {
            label.push_str(&format!(" · built {} ago", age(c)));
        }
        if history
            .iter()
            .any(|d| d.from_image_id == img.id || d.to_image_id == img.id)
        {
            label.push_str(" · deployed before");
        }
        let when = img.created.map(|c| c.timestamp_millis()).unwrap_or(0);
        out.push((
            when,
            ImageChoice {
                reference: img.reference,
                label,
            },
        ));
    }
    for d in &history {
        for (reference, id) in [
            (&d.from_image, &d.from_image_id),
            (&d.to_image, &d.to_image_id),
        ] {
            if *id == current_id || reference.is_empty() || !seen.insert(reference.clone()) {
                continue;
            }
            let ran = DateTime::from_timestamp_millis(d.started_ms).unwrap_or(now);
            out.push((
                d.started_ms,
                ImageChoice {
                    reference: reference.clone(),
                    label: format!("{reference} · ran {} ago · not on the engine", age(ran)),
                },
            ));
        }
    }
    out.sort_by_key(|c| std::cmp::Reverse(c.0));
    out.into_iter()
        .map(|(_, c)| c)
        // Discord refuses choices longer than 100 characters.
        .filter(|c| c.reference.len() <= 100 && c.reference.to_lowercase().contains(&p))
        .map(|c| ImageChoice {
            label: crate::chat::truncate(&c.label, 100),
            ..c
        })
        .take(limit)
        .collect()
}

// ---------------------------------------------------------------------------
// Running an operation
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// Confirmed; the first Docker call is on its way.
    Confirmed,
    Stopping,
    /// Creating and starting the new container.
    Starting,
    Restarting,
    WaitingHealth {
        waited: Duration,
    },
    Reverting {
        reason: String,
    },
    /// Healthy; for a rollback the old container is gone.
    Done,
    /// Not healthy in time; the original runs again.
    Reverted {
        reason: String,
    },
    /// Something went wrong; `reason` says what is left and what to do.
    Failed {
        reason: String,
    },
}

/// What the command module renders.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub phase: Phase,
    /// Steps done so far, oldest first, one short line each.
    pub done: Vec<String>,
    /// Since the operation started (the Confirm click).
    pub elapsed: Duration,
    pub health: HealthWait,
    /// The last thing the health wait saw ("health: starting", "HTTP 503").
    pub last_check: Option<String>,
}

impl Progress {
    pub fn is_final(&self) -> bool {
        matches!(
            self.phase,
            Phase::Done | Phase::Reverted { .. } | Phase::Failed { .. }
        )
    }
}

/// Starts a confirmed operation in its own task; progress arrives on the receiver,
/// which ends with a final phase (or closes, if the task was aborted).
pub fn start(app: Arc<App>, confirmed: Confirmed) -> watch::Receiver<Progress> {
    let Confirmed { pending, guard } = confirmed;
    let initial = Progress {
        phase: Phase::Confirmed,
        done: Vec::new(),
        elapsed: Duration::ZERO,
        health: pending.plan.health.clone(),
        last_check: None,
    };
    let (tx, rx) = watch::channel(initial);
    let locks = app.ops_locks.clone();
    let (lock_key, op_id) = (guard.key.clone(), guard.op_id);
    let by = pending
        .approvals
        .last()
        .cloned()
        .unwrap_or_else(|| pending.requested_by.clone());
    let mut run = Run {
        app,
        plan: pending.plan,
        requested_by: pending.requested_by,
        approvals: pending.approvals,
        by,
        row: None,
        started: Instant::now(),
        progress: tx,
        _guard: guard,
    };
    let task = tokio::spawn(async move { run.run().await });
    locks.set_abort(&lock_key, op_id, task.abort_handle());
    rx
}

struct Run {
    app: Arc<App>,
    plan: Plan,
    requested_by: Actor,
    approvals: Vec<Actor>,
    /// Who confirmed last: the audit rows of the steps are theirs.
    by: Actor,
    row: Option<i64>,
    started: Instant,
    progress: watch::Sender<Progress>,
    _guard: LockGuard,
}

/// How an operation ended.
struct End {
    status: Status,
    phase: Phase,
}

impl Run {
    fn phase(&self, phase: Phase) {
        let elapsed = self.started.elapsed();
        self.progress.send_modify(|p| {
            p.phase = phase;
            p.elapsed = elapsed;
        });
    }

    fn waiting(&self, waited: Duration, last: Option<String>) {
        let elapsed = self.started.elapsed();
        self.progress.send_modify(|p| {
            p.phase = Phase::WaitingHealth { waited };
            p.elapsed = elapsed;
            p.last_check = last;
        });
    }

    /// A step done: shown, written to the history and to the audit log.
    async fn step(&self, step: &str, line: String) {
        info!(service = %self.plan.service, action = self.plan.action.as_str(), step, "{line}");
        let elapsed = self.started.elapsed();
        self.progress.send_modify(|p| {
            p.done.push(line.clone());
            p.elapsed = elapsed;
        });
        self.record(step, &line, Outcome::Ok).await;
    }

    async fn record(&self, step: &str, detail: &str, outcome: Outcome) {
        let now = Utc::now().timestamp_millis();
        if let Some(id) = self.row {
            if let Err(e) = deployments::add_step(&self.app.store, id, now, step, detail).await {
                warn!(error = %e, deployment = id, step, "deployment step not recorded");
            }
        }
        self.app
            .audit(AuditEntry {
                at_ms: now,
                guild_id: self.by.guild_id,
                channel_id: self.by.channel_id,
                user_id: self.by.user_id,
                user_name: self.by.name.clone(),
                command: self.plan.action.as_str().to_string(),
                arguments: self.plan.arguments(),
                outcome,
                detail: format!("{step}: {detail}"),
                duration_ms: self.started.elapsed().as_millis() as i64,
            })
            .await;
    }

    async fn run(&mut self) {
        let end = match self.open_row().await {
            Err(phase) => End {
                status: Status::Failed,
                phase,
            },
            Ok(()) => match self.app.docker.ready().await {
                Err(e) => End {
                    status: Status::Failed,
                    phase: Phase::Failed {
                        reason: format!("{e}; nothing was changed."),
                    },
                },
                Ok(()) => match self.plan.action {
                    Action::Rollback => self.rollback(&Arc::clone(&self.app).docker).await,
                    Action::Restart => self.restart(&Arc::clone(&self.app).docker).await,
                },
            },
        };
        let (outcome, detail) = match &end.phase {
            Phase::Done => (
                Outcome::Ok,
                format!("done in {} s", self.started.elapsed().as_secs()),
            ),
            Phase::Reverted { reason } => (Outcome::Failed, reason.clone()),
            Phase::Failed { reason } => (Outcome::Failed, reason.clone()),
            other => (Outcome::Failed, format!("{other:?}")),
        };
        if let Some(id) = self.row {
            let now = Utc::now().timestamp_millis();
            if let Err(e) = deployments::finish(&self.app.store, id, end.status, now, &detail).await
            {
                error!(error = %e, deployment = id, "deployment row not closed; the next start-up will check the service");
            }
        }
        self.record(end.status.as_str(), &detail, outcome).await;
        self.phase(end.phase);
    }

    /// The durable half of the lock: refused while another replica's operation on
    /// the same service is in progress.
    async fn open_row(&mut self) -> Result<(), Phase> {
        let target = self.plan.target.as_ref().unwrap_or(&self.plan.current);
        let row = NewDeployment {
            service: self.plan.service.clone(),
            container: self.plan.container.clone(),
            action: self.plan.action.as_str().to_string(),
            from_image: self.plan.current.reference.clone(),
            from_image_id: self.plan.current.id.clone(),
            to_image: target.reference.clone(),
            to_image_id: target.id.clone(),
            requested_by: self.requested_by.user_id,
            requested_by_name: self.requested_by.name.clone(),
            approved_by: self
                .approvals
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            started_ms: Utc::now().timestamp_millis(),
        };
        match deployments::insert(&self.app.store, &row).await {
            Ok(id) => {
                self.row = Some(id);
                let approvers = row.approved_by.clone();
                self.record(
                    "confirmed",
                    &format!("confirmed by {approvers}"),
                    Outcome::Ok,
                )
                .await;
                Ok(())
            }
            Err(e) => {
                let holder = deployments::in_progress(&self.app.store, Some(&self.plan.service))
                    .await
                    .ok()
                    .and_then(|rows| rows.first().map(Holder::of_row));
                Err(Phase::Failed {
                    reason: match holder {
                        Some(h) => format!("{h} Nothing was changed."),
                        None => {
                            error!(error = %e, "deployment row not written");
                            "Klaxon could not write the deployment history, so it changed nothing."
                                .into()
                        }
                    },
                })
            }
        }
    }

    fn stop_secs(&self, info: &ContainerInspectResponse) -> u64 {
        info.config
            .as_ref()
            .and_then(|c| c.stop_timeout)
            .and_then(|t| u64::try_from(t).ok())
            .unwrap_or(self.app.rollout.stop_timeout_secs)
    }

    async fn rollback(&mut self, engine: &DockerClient) -> End {
        let failed = |reason: String| End {
            status: Status::Failed,
            phase: Phase::Failed { reason },
        };
        let Some(target) = self.plan.target.clone() else {
            return failed("no target image; nothing was changed.".into());
        };
        let name = self.plan.container.clone();
        let kept = self.plan.kept_name();
        self.phase(Phase::Stopping);
        let info = match engine.inspect(&name).await {
            Ok(i) => i,
            Err(e) => return failed(format!("{e}; nothing was changed.")),
        };
        if info.image.as_deref() != Some(self.plan.current.id.as_str()) {
            return failed(format!(
                "`{name}` changed since the plan was shown (it now runs {}); nothing was changed. Run the command again.",
                short_id(info.image.as_deref().unwrap_or("?"))
            ));
        }
        // The old image's defaults, to tell them from what the container set itself.
        let old_image = engine.inspect_image(&self.plan.current.id).await.ok();
        if old_image.is_none() {
            warn!(image = %self.plan.current.id, "old image gone; copying the container's whole config");
        }
        let body = recreate_body(
            &info,
            old_image.as_ref().and_then(|i| i.config.as_ref()),
            &target.reference,
        );
        let networks = extra_networks(&info);

        if let Err(e) = engine.stop(&name, self.stop_secs(&info)).await {
            // A stop that failed half way must not leave the service down.
            let _ = engine.start(&name).await;
            return failed(format!(
                "could not stop `{name}`: {e}; it was left running."
            ));
        }
        self.step(
            "stopped",
            format!("Stopped `{name}` ({})", self.plan.current.reference),
        )
        .await;
        if let Some(id) = self.row {
            if let Err(e) = deployments::set_kept(&self.app.store, id, &kept).await {
                warn!(error = %e, "kept name not recorded");
            }
        }
        if let Err(e) = engine.rename(&name, &kept).await {
            let restarted = engine.start(&name).await;
            return failed(format!(
                "could not rename `{name}` out of the way: {e}; {}",
                match restarted {
                    Ok(()) => "it was started again.".to_string(),
                    Err(e2) => format!("starting it again failed too ({e2}): `{name}` is stopped!"),
                }
            ));
        }
        self.step("kept", format!("Kept the old container as `{kept}`"))
            .await;

        self.phase(Phase::Starting);
        let started = async {
            engine.create(&name, body).await?;
            for (network, endpoint) in networks {
                engine.connect(&network, &name, endpoint).await?;
            }
            engine.start(&name).await
        }
        .await;
        if let Err(e) = started {
            return self
                .revert(
                    engine,
                    &name,
                    &kept,
                    format!("`{}` did not start: {e}", target.reference),
                )
                .await;
        }
        self.step(
            "started",
            format!("Started `{name}` on `{}`", target.reference),
        )
        .await;

        match self.wait_healthy(engine, &name, None).await {
            Ok(waited) => {
                self.step(
                    "healthy",
                    format!(
                        "Healthy after {} s ({})",
                        waited.as_secs(),
                        self.plan.health.describe()
                    ),
                )
                .await;
                match engine.remove(&kept, false).await {
                    Ok(()) => {
                        self.step("removed", format!("Removed the old container `{kept}`"))
                            .await
                    }
                    Err(e) => {
                        warn!(error = %e, kept, "old container not removed");
                        self.step(
                            "kept",
                            format!("Could not remove the old container `{kept}` ({e}); remove it by hand"),
                        )
                        .await
                    }
                }
                End {
                    status: Status::Succeeded,
                    phase: Phase::Done,
                }
            }
            Err(reason) => {
                let reason = format!("`{}` {reason}", target.reference);
                self.revert(engine, &name, &kept, reason).await
            }
        }
    }

    /// Puts the original back: new container removed, old one renamed back and started.
    async fn revert(&mut self, engine: &DockerClient, name: &str, kept: &str, reason: String) -> End {
        warn!(service = %self.plan.service, %reason, "reverting");
        self.phase(Phase::Reverting {
            reason: reason.clone(),
        });
        let result = async {
            engine.remove(name, true).await?;
            self.step("removed", format!("Removed the new `{name}`"))
                .await;
            engine.rename(kept, name).await?;
            engine.start(name).await?;
            Ok::<(), DockerError>(())
        }
        .await;
        match result {
            Ok(()) => {
                self.step(
                    "restored",
                    format!(
                        "Started the original `{name}` ({}) again",
                        self.plan.current.reference
                    ),
                )
                .await;
                End {
                    status: Status::Reverted,
                    phase: Phase::Reverted { reason },
                }
            }
            Err(e) => {
                error!(service = %self.plan.service, error = %e, kept, "revert failed");
                End {
                    status: Status::Failed,
                    phase: Phase::Failed {
                        reason: format!(
                            "{reason}, and putting the original back failed: {e}. The old container is kept as `{kept}`: rename it to `{name}` and start it."
                        ),
                    },
                }
            }
        }
    }

    async fn restart(&mut self, engine: &DockerClient) -> End {
        let name = self.plan.container.clone();
        let failed = |reason: String| End {
            status: Status::Failed,
            phase: Phase::Failed { reason },
        };
        self.phase(Phase::Restarting);
        let info = match engine.inspect(&name).await {
            Ok(i) => i,
            Err(e) => return failed(format!("{e}; nothing was changed.")),
        };
        let before = info.state.as_ref().and_then(|s| s.started_at.clone());
        if let Err(e) = engine.restart(&name, self.stop_secs(&info)).await {
            let state = engine
                .inspect(&name)
                .await
                .map(|i| state_text(&i))
                .unwrap_or_else(|_| "unknown".into());
            return failed(format!(
                "`docker restart {name}` failed: {e}; the container is {state} now."
            ));
        }
        self.step("restarted", format!("Restarted `{name}`")).await;
        match self.wait_healthy(engine, &name, before).await {
            Ok(waited) => {
                self.step(
                    "healthy",
                    format!(
                        "Healthy after {} s ({})",
                        waited.as_secs(),
                        self.plan.health.describe()
                    ),
                )
                .await;
                End {
                    status: Status::Succeeded,
                    phase: Phase::Done,
                }
            }
            Err(reason) => failed(format!(
                "`{name}` restarted but {reason}. It was left as it is."
            )),
        }
    }

    /// Waits until the container counts as healthy (see [`HealthWait`]), at most the
    /// health timeout. `not_started_at` is the start time before a restart: only a
    /// health result of the new run counts. The error says what was seen last.
    async fn wait_healthy(
        &self,
        engine: &DockerClient,
        name: &str,
        not_started_at: Option<String>,
    ) -> Result<Duration, String> {
        let begin = Instant::now();
        let timeout = self.plan.health_timeout;
        self.waiting(Duration::ZERO, None);
        // What the last look at the container saw, for the progress and the error.
        let mut last: String;
        // For `Running`: since when this run of the container was seen running.
        let mut running_since: Option<(String, Instant)> = None;
        loop {
            let waited = begin.elapsed();
            match engine.inspect(name).await {
                Err(DockerError::NotFound(_)) => return Err("disappeared".into()),
                Err(e) => last = e.to_string(),
                Ok(info) => {
                    let state = info.state.clone().unwrap_or_default();
                    let started_at = state.started_at.clone().unwrap_or_default();
                    let fresh = not_started_at.as_deref() != Some(started_at.as_str());
                    if !state.running.unwrap_or(false) {
                        let restarts = info
                            .host_config
                            .as_ref()
                            .and_then(|h| h.restart_policy.as_ref())
                            .and_then(|p| p.name)
                            .is_some_and(|n| {
                                !matches!(
                                    n,
                                    RestartPolicyNameEnum::NO | RestartPolicyNameEnum::EMPTY
                                )
                            });
                        let status = state_text(&info);
                        let exited = matches!(status.as_str(), "exited" | "dead");
                        if exited && fresh && !restarts {
                            return Err(format!(
                                "exited with code {} instead of becoming healthy",
                                state.exit_code.unwrap_or(-1)
                            ));
                        }
                        last = format!("container {status}");
                        running_since = None;
                    } else if fresh {
                        match &self.plan.health {
                            HealthWait::Docker => {
                                let health = state.health.clone().unwrap_or_default();
                                let status = health
                                    .status
                                    .map(|s| s.to_string())
                                    .unwrap_or_else(|| "none".into());
                                // Only a check that ran in this run of the container counts.
                                let started = crate::timefmt::parse_time(&started_at);
                                let checked = health
                                    .log
                                    .as_ref()
                                    .and_then(|l| l.last())
                                    .and_then(|r| r.start.as_ref().and_then(date_of));
                                let current = match (started, checked) {
                                    (Some(s), Some(c)) => c >= s,
                                    _ => true,
                                };
                                let output = health
                                    .log
                                    .as_ref()
                                    .and_then(|l| l.last())
                                    .and_then(|r| r.output.clone())
                                    .map(|o| o.trim().to_string())
                                    .filter(|o| !o.is_empty());
                                last = match output {
                                    Some(o) => format!(
                                        "health: {status}, check said {}",
                                        crate::chat::truncate(&o, 120)
                                    ),
                                    None => format!("health: {status}"),
                                };
                                if health.status == Some(HealthStatusEnum::HEALTHY) && current {
                                    return Ok(begin.elapsed());
                                }
                            }
                            HealthWait::Http(url) => {
                                let left = timeout
                                    .saturating_sub(waited)
                                    .max(Duration::from_millis(100));
                                let probe_timeout =
                                    Duration::from_millis(self.app.thresholds.probe_timeout_ms)
                                        .min(left);
                                let result = self.app.prober.probe(url, probe_timeout).await;
                                if result.ok() {
                                    return Ok(begin.elapsed());
                                }
                                last = match (result.status, result.error) {
                                    (_, Some(e)) => format!("HTTP check: {e}"),
                                    (Some(s), None) => format!("HTTP check answered {s}"),
                                    (None, None) => "HTTP check: no answer".into(),
                                };
                            }
                            HealthWait::Running(needed) => {
                                let since = match &running_since {
                                    Some((s, at)) if *s == started_at => *at,
                                    _ => {
                                        let now = Instant::now();
                                        running_since = Some((started_at.clone(), now));
                                        now
                                    }
                                };
                                let up = since.elapsed();
                                if up >= *needed {
                                    return Ok(begin.elapsed());
                                }
                                last = format!("running for {} s", up.as_secs());
                            }
                        }
                    } else {
                        last = "not restarted yet".into();
                    }
                }
            }
            let waited = begin.elapsed();
            if waited >= timeout {
                return Err(format!(
                    "was not healthy within {} s ({last})",
                    timeout.as_secs()
                ));
            }
            self.waiting(waited, Some(last.clone()));
            // Short polls: the time from healthy to "done" is part of the rollback's
            // overhead against doing it by hand.
            let poll = match self.plan.health {
                HealthWait::Docker => Duration::from_millis(100),
                HealthWait::Running(_) => Duration::from_millis(250),
                HealthWait::Http(_) => Duration::from_millis(500),
            };
            tokio::time::sleep(poll.min(timeout - waited)).await;
        }
    }
}

// ---------------------------------------------------------------------------
// Recovery at start-up
// ---------------------------------------------------------------------------

/// What start-up found for one operation a previous Klaxon left `in_progress`.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovery {
    pub deployment: i64,
    pub service: String,
    /// Whether the service's container runs now.
    pub running: bool,
    pub summary: String,
}

/// Fixes up operations a previous Klaxon left half done (it stopped or crashed in the
/// middle): makes sure one of the service's containers runs — the old one, put back,
/// if neither does — marks the rows `interrupted`, and posts what it found to
/// `alerts`. Every Docker call has its deadline, so a dead engine delays start-up by
/// seconds, not forever; its rows stay `in_progress` for the next start.
pub async fn recover(app: &App, alerts: Option<u64>) -> Vec<Recovery> {
    let rows = match deployments::in_progress(&app.store, None).await {
        Ok(rows) => rows,
        Err(e) => {
            error!(error = %e, "cannot read unfinished rollbacks");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for row in rows {
        let recovery = match app.docker.ready().await {
            Ok(()) => recover_one(&app.docker, &row).await,
            Err(e) => Err(e),
        };
        let (recovery, checked) = match recovery {
            Ok(r) => (r, true),
            Err(e) => {
                warn!(error = %e, deployment = row.id, "cannot check an unfinished {}", row.action);
                let summary = format!(
                    "Klaxon could not check `{}` ({e}); it will look again at its next start.",
                    row.container
                );
                let r = Recovery {
                    deployment: row.id,
                    service: row.service.clone(),
                    running: false,
                    summary,
                };
                (r, false)
            }
        };
        let now = Utc::now().timestamp_millis();
        if checked {
            let _ = deployments::add_step(&app.store, row.id, now, "recovered", &recovery.summary)
                .await;
            if let Err(e) = deployments::finish(
                &app.store,
                row.id,
                Status::Interrupted,
                now,
                &recovery.summary,
            )
            .await
            {
                error!(error = %e, deployment = row.id, "cannot close an unfinished deployment row");
            }
        }
        app.audit(AuditEntry {
            at_ms: now,
            guild_id: None,
            channel_id: alerts,
            user_id: 0,
            user_name: "klaxon".into(),
            command: row.action.clone(),
            arguments: format!("service={} recovery", row.service),
            outcome: if recovery.running {
                Outcome::Ok
            } else {
                Outcome::Failed
            },
            detail: recovery.summary.clone(),
            duration_ms: 0,
        })
        .await;
        if let Some(channel) = alerts {
            let started = DateTime::from_timestamp_millis(row.started_ms)
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default();
            let message = ChatMessage {
                embeds: vec![Embed {
                    title: format!(
                        "⚠️ Klaxon restarted during a {} of {}",
                        row.action, row.service
                    ),
                    description: recovery.summary.clone(),
                    color: if recovery.running {
                        crate::chat::YELLOW
                    } else {
                        crate::chat::RED
                    },
                    fields: Vec::new(),
                    footer: format!(
                        "{} → {} · started by {} at {started}",
                        row.from_image, row.to_image, row.requested_by_name
                    ),
                }
                .fit()],
                ..Default::default()
            };
            if let Err(e) = app.chat.send(channel, message).await {
                warn!(error = %e, channel, "recovery report not posted");
            }
        }
        out.push(recovery);
    }
    out
}

async fn recover_one(engine: &DockerClient, row: &Deployment) -> Result<Recovery, DockerError> {
    let name = row.container.as_str();
    let kept = (!row.kept_container.is_empty()).then_some(row.kept_container.as_str());
    let main = engine.inspect_opt(name).await?;
    let old = match kept {
        Some(k) => engine.inspect_opt(k).await?,
        None => None,
    };
    let image_of = |i: &ContainerInspectResponse| {
        i.config
            .as_ref()
            .and_then(|c| c.image.clone())
            .unwrap_or_else(|| "?".into())
    };
    let (running, summary) = match (&main, &old, kept) {
        (Some(m), old, _) if is_running(m) => {
            let mut s = format!("`{name}` is running `{}`.", image_of(m));
            if let (Some(o), Some(k)) = (old, kept) {
                s.push_str(&format!(
                    " The container it replaced (`{}`) is kept, {}, as `{k}`: remove it once `{name}` is fine, or put it back by hand.",
                    image_of(o),
                    state_text(o)
                ));
            }
            (true, s)
        }
        (main, Some(o), Some(k)) => {
            // Neither runs: the old container is the known good one.
            if let Some(m) = main {
                engine.remove(&container_name(m), true).await?;
            }
            engine.rename(k, name).await?;
            engine.start(name).await?;
            let running = engine
                .inspect(name)
                .await
                .map(|i| is_running(&i))
                .unwrap_or(false);
            (
                running,
                format!(
                    "Neither container was running: Klaxon removed the new one{} and put the old `{name}` (`{}`) back{}.",
                    main.as_ref().map(|m| format!(" (`{}`)", image_of(m))).unwrap_or_default(),
                    image_of(o),
                    if running { "; it is running" } else { ", but it does not stay up: look at it now" }
                ),
            )
        }
        (Some(m), _, _) => {
            engine.start(name).await?;
            let running = engine
                .inspect(name)
                .await
                .map(|i| is_running(&i))
                .unwrap_or(false);
            (
                running,
                format!(
                    "`{name}` (`{}`) was {}; Klaxon started it{}.",
                    image_of(m),
                    state_text(m),
                    if running {
                        ""
                    } else {
                        ", but it does not stay up: look at it now"
                    }
                ),
            )
        }
        (None, _, _) => (
            false,
            format!(
                "Neither `{name}`{} exists any more: nothing to start. Look at the engine now.",
                kept.map(|k| format!(" nor `{k}`")).unwrap_or_default()
            ),
        ),
    };
    info!(service = %row.service, deployment = row.id, running, "{summary}");
    Ok(Recovery {
        deployment: row.id,
        service: row.service.clone(),
        running,
        summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerConfig, HostConfig, MountPoint};

    #[test]
    fn repositories() {
        assert_eq!(repository("klaxon-test/app:v2"), "klaxon-test/app");
        assert_eq!(
            repository("registry:5000/team/app:v2"),
            "registry:5000/team/app"
        );
        assert_eq!(
            repository("registry:5000/team/app"),
            "registry:5000/team/app"
        );
        assert_eq!(repository("app@sha256:abc"), "app");
        assert_eq!(repository("app"), "app");
        assert!(is_image_id("sha256:725427537889aa"));
        assert!(!is_image_id("app:v1"));
        assert!(valid_reference("klaxon-test/app:v1"));
        assert!(valid_reference("sha256:725427537889"));
        assert!(!valid_reference("../containers/x"));
        assert!(!valid_reference("app v1"));
        assert!(!valid_reference(""));
    }

    #[test]
    fn rollback_to_a_foreign_image_is_refused() {
        let own = "klaxon-test/app";
        let none: &[String] = &[];
        let id = "sha256:0123456789abcdef0123456789abcdef";
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let v1 = names(&["klaxon-test/app:v1"]);
        // The service's own repository, by tag, in any spelling Docker accepts.
        assert_eq!(
            allowed_target("klaxon-test/app:v1", id, &v1, own, none),
            Ok(())
        );
        assert_eq!(
            allowed_target("docker.io/klaxon-test/app:v1", id, &v1, own, none),
            Ok(())
        );
        // Another repository: refused, naming it.
        let evil = names(&["evil/dump:1"]);
        assert_eq!(
            allowed_target("evil/dump:1", id, &evil, own, none),
            Err("evil/dump".to_string())
        );
        // A tag that merely looks like the repository is still another repository.
        assert_eq!(
            allowed_target(
                "klaxon-test/app-evil:1",
                id,
                &names(&["klaxon-test/app-evil:1"]),
                own,
                none
            ),
            Err("klaxon-test/app-evil".to_string())
        );
        // The own repository in front of a foreign image's digest: Docker resolves
        // it by id, so the engine's names decide.
        assert_eq!(
            allowed_target(
                "klaxon-test/app@sha256:0123456789abcdef0123456789abcdef",
                id,
                &evil,
                own,
                none
            ),
            Err("evil/dump".to_string())
        );
        // A real registry digest of the own repository is fine.
        let digested = names(&["klaxon-test/app:v1", "klaxon-test/app@sha256:feed"]);
        assert_eq!(
            allowed_target("klaxon-test/app@sha256:feed", id, &digested, own, none),
            Ok(())
        );
        // A repository the config allows.
        let allowed = vec!["registry:5000/team/app".to_string()];
        assert_eq!(
            allowed_target(
                "registry:5000/team/app:v9",
                id,
                &names(&["registry:5000/team/app:v9"]),
                own,
                &allowed
            ),
            Ok(())
        );
        // By image id: judged by the engine's names for it.
        assert_eq!(
            allowed_target("sha256:0123456789ab", id, &v1, own, none),
            Ok(())
        );
        assert_eq!(
            allowed_target("0123456789abcdef", id, &v1, own, none),
            Ok(())
        );
        assert_eq!(
            allowed_target("sha256:0123456789ab", id, &evil, own, none),
            Err("evil/dump".to_string())
        );
        assert!(allowed_target("sha256:0123456789ab", id, &[], own, none).is_err());
        // A container that runs an untagged image has no own repository.
        assert!(allowed_target("klaxon-test/app:v1", id, &v1, "", none).is_err());
        assert_eq!(
            allowed_list(own, &allowed),
            "`klaxon-test/app`, `registry:5000/team/app`"
        );
        assert!(valid_repository("registry:5000/team/app"));
        assert!(!valid_repository("team/app:v1"));
        assert!(!valid_repository("team/app@sha256:abc"));
    }

    fn image_config() -> ImageConfig {
        ImageConfig {
            env: Some(vec!["PATH=/bin".into()]),
            cmd: Some(vec!["sh".into(), "-c".into(), "v2".into()]),
            labels: Some(HashMap::from([
                ("org.opencontainers.image.version".into(), "v2".into()),
                ("shared".into(), "image".into()),
            ])),
            volumes: Some(vec!["/data".into()]),
            ..Default::default()
        }
    }

    fn container(cmd: &str) -> ContainerInspectResponse {
        ContainerInspectResponse {
            id: Some("0123456789abcdef".into()),
            config: Some(ContainerConfig {
                hostname: Some("0123456789ab".into()),
                env: Some(vec!["PATH=/bin".into(), "MODE=prod".into()]),
                cmd: Some(vec!["sh".into(), "-c".into(), cmd.into()]),
                labels: Some(HashMap::from([
                    ("org.opencontainers.image.version".into(), "v2".into()),
                    ("shared".into(), "mine".into()),
                    ("team".into(), "payments".into()),
                ])),
                volumes: Some(vec!["/data".into()]),
                image: Some("app:v2".into()),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                network_mode: Some("none".into()),
                binds: Some(vec!["/srv/conf:/conf:ro".into()]),
                ..Default::default()
            }),
            mounts: Some(vec![
                MountPoint {
                    typ: Some("volume".into()),
                    name: Some("abc123".into()),
                    destination: Some("/data".into()),
                    rw: Some(true),
                    ..Default::default()
                },
                MountPoint {
                    typ: Some("bind".into()),
                    source: Some("/srv/conf".into()),
                    destination: Some("/conf".into()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }
    }

    #[test]
    fn recreate_keeps_what_the_container_set_and_drops_what_the_image_gave() {
        let body = recreate_body(&container("v2"), Some(&image_config()), "app:v1");
        assert_eq!(body.image.as_deref(), Some("app:v1"));
        // Inherited from the old image: left to the new image.
        assert_eq!(body.cmd, None);
        assert_eq!(body.env, Some(vec!["MODE=prod".to_string()]));
        let labels = body.labels.clone().unwrap();
        assert!(!labels.contains_key("org.opencontainers.image.version"));
        assert_eq!(labels.get("shared").map(String::as_str), Some("mine"));
        assert_eq!(labels.get("team").map(String::as_str), Some("payments"));
        // The default hostname is the old container's id: not copied.
        assert_eq!(body.hostname, None);
        let hc = body.host_config.unwrap();
        assert_eq!(hc.network_mode.as_deref(), Some("none"));
        assert_eq!(hc.binds, Some(vec!["/srv/conf:/conf:ro".to_string()]));
        // The anonymous volume is mounted again, so its data survives.
        let mounts = hc.mounts.unwrap();
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].source.as_deref(), Some("abc123"));
        assert_eq!(mounts[0].target.as_deref(), Some("/data"));
        assert_eq!(body.networking_config, None);

        // A command of the container's own is kept.
        let body = recreate_body(&container("custom"), Some(&image_config()), "app:v1");
        assert_eq!(
            body.cmd,
            Some(vec!["sh".into(), "-c".into(), "custom".into()])
        );
    }

    #[test]
    fn health_wait_prefers_docker_then_url_then_running() {
        let cfg = RolloutConfig::default();
        let mut svc = ServiceConfig {
            name: "api".into(),
            container: Some("api".into()),
            health_url: Some("http://127.0.0.1:1/h".into()),
            maintenance_flag: None,
            allowed_images: Vec::new(),
        };
        let check = HealthConfig {
            test: Some(vec!["CMD-SHELL".into(), "true".into()]),
            ..Default::default()
        };
        let none = HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        };
        assert_eq!(health_of(Some(&check), &svc, &cfg), HealthWait::Docker);
        assert!(matches!(
            health_of(Some(&none), &svc, &cfg),
            HealthWait::Http(_)
        ));
        svc.health_url = None;
        assert_eq!(
            health_of(None, &svc, &cfg),
            HealthWait::Running(Duration::from_secs(10))
        );
    }

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
