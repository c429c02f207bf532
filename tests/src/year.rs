//! A year (and a bit) of running, simulated: rows spread over [`SPAN_DAYS`] days
//! of a clock that is then moved forward, the real pruner run over them, and what
//! must be left computed independently from how the rows were made.
//!
//! Why: `[retention]` is only trustworthy if its rules hold at scale, including the
//! rows it must never delete (firing alerts, alerts held by a silence, undelivered
//! messages, deployments in progress, incidents). `bench-retention` runs this at a
//! million alerts; `tests/tests/retention.rs` at a few thousand, on both databases.
//!
//! The shape of the history, for `n` alerts spread evenly over the span:
//! - one group per 50 alerts; 1 alert in 1,000 still firing (its group firing); of
//!   those, every other one held by a silence;
//! - one delivered outbox row per group (sent as the group last changed), one
//!   pending row per 100 groups and one parked per 250 (never delivered: kept);
//! - 200 silences and 100 maintenance windows (a tenth cancelled, the last two
//!   scheduled in the future);
//! - `audit` audit rows; 500 deployments with two steps each, one still in
//!   progress; `incidents` incidents with two timeline entries each, 1 in 50 open.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use klaxon_core::clock::Clock;
use klaxon_core::retention::{Pacer, Report};
use klaxon_core::settings::retention::{RetentionConfig, DAY_MS};
use klaxon_core::store::seed::{self, Value};
use klaxon_core::store::Store;

/// The simulated history covers this many days: past every default retention.
pub const SPAN_DAYS: i64 = 400;
const ALERTS_PER_GROUP: usize = 50;
const SILENCES: usize = 200;
const WINDOWS: usize = 100;
const DEPLOYMENTS: usize = 500;
/// Rows generated and written at a time (memory stays flat at a million).
const CHUNK: usize = 20_000;

/// How big a history.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub alerts: usize,
    pub incidents: usize,
    pub audit: usize,
    /// Also undelivered (pending) outbox rows; off under a running bot, which
    /// would send them.
    pub pending: bool,
}

/// Rows per table: before pruning, after, and what the settings leave.
#[derive(Debug, Default)]
pub struct Outcome {
    /// table -> (before, after, expected)
    pub tables: BTreeMap<&'static str, (i64, i64, i64)>,
    pub report: Report,
    pub pruning: Duration,
    pub filling: Duration,
    /// The longest write lock a batch or vacuum step held.
    pub longest_batch: Duration,
    pub steps: u64,
}

impl Outcome {
    /// Tables whose rows after pruning are not what the settings leave.
    pub fn mismatches(&self) -> Vec<String> {
        self.tables
            .iter()
            .filter(|(_, (_, after, expected))| after != expected)
            .map(|(t, (_, after, expected))| format!("{t}: {after} left, expected {expected}"))
            .collect()
    }
}

/// What the generator decided, to compute the expected counts from.
#[derive(Default)]
struct Expect {
    counts: BTreeMap<&'static str, i64>,
}

impl Expect {
    fn keep(&mut self, table: &'static str, kept: bool) {
        let e = self.counts.entry(table).or_insert(0);
        if kept {
            *e += 1;
        }
    }
}

const TABLES: [&str; 12] = [
    "alerts",
    "alert_groups",
    "outbox",
    "posts",
    "silences",
    "maintenance_windows",
    "audit_log",
    "deployments",
    "deployment_steps",
    "incidents",
    "incident_timeline",
    "incident_actions",
];

async fn counts(store: &Store) -> anyhow::Result<BTreeMap<&'static str, i64>> {
    let mut out = BTreeMap::new();
    for t in TABLES {
        out.insert(t, seed::count(store, t).await?);
    }
    Ok(out)
}

/// A filled database, before pruning.
#[derive(Debug)]
pub struct Filled {
    /// The end of the simulated span: the pruner's "now".
    pub now_ms: i64,
    pub filling: Duration,
    pub before: BTreeMap<&'static str, i64>,
    /// Rows each table must keep under the settings given to [`fill`].
    pub expected: BTreeMap<&'static str, i64>,
}

/// Fills a fresh, migrated database and prunes it: [`fill`] then [`prune`].
pub async fn simulate(
    store: &Store,
    clock: &Clock,
    size: Size,
    settings: &RetentionConfig,
    pacer: &mut Pacer,
) -> anyhow::Result<Outcome> {
    let filled = fill(store, clock.now_ms(), size, settings).await?;
    clock.advance(Duration::from_millis(
        (filled.now_ms - clock.now_ms()).max(0) as u64,
    ));
    prune(store, filled, settings, pacer).await
}

/// Moves `clock` to the end of the span and runs the real pruner once, counting
/// the rows before and after.
pub async fn prune(
    store: &Store,
    filled: Filled,
    settings: &RetentionConfig,
    pacer: &mut Pacer,
) -> anyhow::Result<Outcome> {
    let pruned = Instant::now();
    let report = klaxon_core::retention::prune(store, settings, filled.now_ms, pacer).await?;
    let pruning = pruned.elapsed();
    let after = counts(store).await?;
    let tables = TABLES
        .iter()
        .map(|t| {
            (
                *t,
                (
                    filled.before.get(t).copied().unwrap_or(0),
                    after.get(t).copied().unwrap_or(0),
                    filled.expected.get(t).copied().unwrap_or(0),
                ),
            )
        })
        .collect();
    Ok(Outcome {
        tables,
        report,
        pruning,
        filling: filled.filling,
        longest_batch: pacer.longest,
        steps: pacer.steps,
    })
}

/// Fills a fresh, migrated database with the history over the span starting at
/// `t0`; what must be left at its end is computed for `settings`.
pub async fn fill(
    store: &Store,
    t0: i64,
    size: Size,
    settings: &RetentionConfig,
) -> anyhow::Result<Filled> {
    let span = SPAN_DAYS * DAY_MS;
    let now = t0 + span;
    let cut = |days: i64| now - days * DAY_MS;
    let cut_alerts = cut(settings.alerts_days);
    let at = |i: usize, n: usize| t0 + (span as f64 * i as f64 / n as f64) as i64;
    let mut expect = Expect::default();
    let filled = Instant::now();

    // Alerts and their groups; the groups' ids are 1.. in order (fresh database).
    let n = size.alerts;
    let groups = n.div_ceil(ALERTS_PER_GROUP);
    let mut group_kept = vec![false; groups];
    let mut group_firing = vec![false; groups];
    let mut group_updated = vec![0i64; groups];
    let mut held_silences = HashSet::new();
    let mut start = 0;
    while start < n {
        let end = (start + CHUNK).min(n);
        let mut rows = Vec::with_capacity(end - start);
        for i in start..end {
            let t = at(i, n);
            let g = i / ALERTS_PER_GROUP;
            let firing = i % 1_000 == 7;
            let resolved = (!firing).then_some(t + 600_000);
            let held = (firing && i % 2_000 == 7).then(|| {
                let s = 1 + (i / 2_000) % SILENCES;
                held_silences.insert(s);
                format!("silence:{s}")
            });
            let kept = firing || resolved.is_some_and(|r| r >= cut_alerts);
            expect.keep("alerts", kept);
            group_kept[g] |= kept;
            group_firing[g] |= firing;
            group_updated[g] = group_updated[g].max(resolved.unwrap_or(t));
            rows.push(vec![
                Value::from("alertmanager"),
                Value::from(format!("fp{i:08}")),
                Value::from(if firing { "firing" } else { "resolved" }),
                Value::from(format!("DiskFull{:03}", g % 1_000)),
                Value::from(format!(
                    r#"{{"alertname":"DiskFull{:03}","instance":"host-{i:07}"}}"#,
                    g % 1_000
                )),
                Value::from(r#"{"summary":"disk usage at 91%"}"#),
                Value::Int(t),
                Value::Int(resolved.unwrap_or(t)),
                Value::from(resolved),
                Value::Int(g as i64 + 1),
                held.map_or(Value::NullText, Value::Text),
            ]);
        }
        // Every group before the first alerts (keeps the history realistic).
        if start == 0 {
            let mut grows = Vec::with_capacity(groups);
            for g in 0..groups {
                let last = ((g + 1) * ALERTS_PER_GROUP).min(n) - 1;
                grows.push(vec![
                    Value::from(format!("alertmanager|DiskFull{g:06}")),
                    Value::Int(111),
                    Value::from("P3"),
                    Value::from(format!("DiskFull{:03}", g % 1_000)),
                    Value::from(if (g * ALERTS_PER_GROUP..=last).any(|i| i % 1_000 == 7) {
                        "firing"
                    } else {
                        "resolved"
                    }),
                    Value::Int(at(g * ALERTS_PER_GROUP, n)),
                    Value::Int(at(last, n) + 600_000),
                    Value::from(format!("{}", 900_000_000_000_000_000i64 + g as i64)),
                ]);
            }
            for chunk in grows.chunks(CHUNK) {
                seed::insert(
                    store,
                    "alert_groups",
                    &[
                        "group_key",
                        "channel_id",
                        "severity",
                        "title",
                        "status",
                        "created_ms",
                        "updated_ms",
                        "message_ids",
                    ],
                    chunk,
                )
                .await?;
            }
        }
        seed::insert(
            store,
            "alerts",
            &[
                "source",
                "fingerprint",
                "status",
                "name",
                "labels",
                "annotations",
                "first_seen_ms",
                "last_seen_ms",
                "resolved_ms",
                "group_id",
                "held_by",
            ],
            &rows,
        )
        .await?;
        start = end;
    }

    // The outbox: one delivered row per group, some never delivered.
    let cut_outbox = cut(settings.outbox_days);
    let mut rows = Vec::new();
    let mut group_has_outbox = vec![false; groups];
    for g in 0..groups {
        let sent = group_updated[g];
        let mut push = |state: &str, sent_ms: Option<i64>| {
            let kept = match sent_ms {
                Some(s) => s >= cut_outbox,
                None => true,
            };
            expect.keep("outbox", kept);
            rows.push(vec![
                Value::Int(g as i64 + 1),
                Value::Int(0),
                Value::Int(111),
                Value::from(r#"{"content":"DiskFull resolved"}"#),
                Value::from(format!("n{g}-{state}")),
                Value::Int(3),
                Value::Int(sent - 1_000),
                Value::Int(sent - 1_000),
                Value::from(state),
                Value::from(sent_ms),
            ]);
            kept
        };
        group_has_outbox[g] |= push("sent", Some(sent));
        if size.pending && g % 100 == 3 {
            group_has_outbox[g] |= push("pending", None);
        }
        if g % 250 == 5 {
            group_has_outbox[g] |= push("parked", None);
        }
    }
    for chunk in rows.chunks(CHUNK) {
        seed::insert(
            store,
            "outbox",
            &[
                "group_id",
                "part",
                "channel_id",
                "body",
                "nonce",
                "priority",
                "created_ms",
                "next_try_ms",
                "state",
                "sent_ms",
            ],
            chunk,
        )
        .await?;
    }
    drop(rows);

    // The posts outbox: one notice per group's time, closed as sent (some parked or
    // superseded), a few still pending: closed ones older than outbox_days go.
    let mut rows = Vec::new();
    for (g, &sent) in group_updated.iter().enumerate().take(groups) {
        let (state, sent_ms) = match g % 50 {
            7 if size.pending => ("pending", None),
            11 => ("parked", Some(sent)),
            13 => ("superseded", Some(sent)),
            _ => ("sent", Some(sent)),
        };
        expect.keep("posts", sent_ms.is_none_or(|s| s >= cut_outbox));
        rows.push(vec![
            Value::from("incident.notice"),
            Value::from(format!("incident INC-{g}")),
            Value::Int(111),
            Value::from(r#"{"content":"[RESOLVED] INC"}"#),
            Value::from(format!("p{g}")),
            Value::Int(sent - 1_000),
            Value::Int(sent - 1_000),
            Value::from(state),
            Value::from(sent_ms),
        ]);
    }
    for chunk in rows.chunks(CHUNK) {
        seed::insert(
            store,
            "posts",
            &[
                "kind",
                "subject",
                "channel_id",
                "body",
                "nonce",
                "created_ms",
                "next_try_ms",
                "state",
                "sent_ms",
            ],
            chunk,
        )
        .await?;
    }
    drop(rows);
    for g in 0..groups {
        let prunable = !group_firing[g]
            && group_updated[g] < cut_alerts
            && !group_kept[g]
            && !group_has_outbox[g];
        expect.keep("alert_groups", !prunable);
    }

    // Silences and maintenance windows.
    let mut rows = Vec::new();
    for k in 1..=SILENCES {
        let ends = at(k - 1, SILENCES) + 3_600_000;
        expect.keep("silences", ends >= cut_alerts || held_silences.contains(&k));
        rows.push(vec![
            Value::from(r#"[["alertname","=","DiskFull001"]]"#),
            Value::from("noisy"),
            Value::from("ops"),
            Value::Int(ends - 3_600_000),
            Value::Int(ends),
        ]);
    }
    seed::insert(
        store,
        "silences",
        &["matchers", "reason", "created_by", "created_ms", "ends_ms"],
        &rows,
    )
    .await?;
    let mut rows = Vec::new();
    for k in 0..WINDOWS {
        let (state, starts) = if k >= WINDOWS - 2 {
            ("scheduled", now + DAY_MS * (k as i64 + 1))
        } else if k % 10 == 0 {
            ("cancelled", at(k, WINDOWS))
        } else {
            ("ended", at(k, WINDOWS))
        };
        let ends = starts + 3_600_000;
        let ended = (state == "ended").then_some(ends);
        expect.keep(
            "maintenance_windows",
            state == "scheduled" || ends >= cut_alerts,
        );
        rows.push(vec![
            Value::from(r#"["api"]"#),
            Value::from("upgrade"),
            Value::from("ops"),
            Value::Int(starts - DAY_MS),
            Value::Int(starts),
            Value::Int(ends),
            Value::from(state),
            Value::from(ended),
        ]);
    }
    seed::insert(
        store,
        "maintenance_windows",
        &[
            "services",
            "reason",
            "created_by",
            "created_ms",
            "starts_ms",
            "ends_ms",
            "state",
            "ended_ms",
        ],
        &rows,
    )
    .await?;

    // Audit rows.
    let cut_audit = cut(settings.audit_days);
    let mut start = 0;
    while start < size.audit {
        let end = (start + CHUNK).min(size.audit);
        let rows: Vec<_> = (start..end)
            .map(|i| {
                let t = at(i, size.audit);
                expect.keep("audit_log", t >= cut_audit);
                vec![
                    Value::Int(t),
                    Value::Int(1_234_567_890_123_456_789),
                    Value::from("responder"),
                    Value::from("health"),
                    Value::from("service=api"),
                    Value::from("ok"),
                    Value::from(""),
                    Value::Int(12),
                ]
            })
            .collect();
        seed::insert(
            store,
            "audit_log",
            &[
                "at_ms",
                "user_id",
                "user_name",
                "command",
                "arguments",
                "outcome",
                "detail",
                "duration_ms",
            ],
            &rows,
        )
        .await?;
        start = end;
    }

    // Deployments (ids 1.. in order), two steps each; the first is still in progress.
    let cut_deploy = cut(settings.deployments_days);
    let mut rows = Vec::new();
    let mut steps = Vec::new();
    for k in 0..DEPLOYMENTS {
        let started = at(k, DEPLOYMENTS);
        let in_progress = k == 0;
        let finished = (!in_progress).then_some(started + 60_000);
        let kept = in_progress || finished.is_some_and(|f| f >= cut_deploy);
        expect.keep("deployments", kept);
        rows.push(vec![
            Value::from(format!("svc{}", k % 10)),
            Value::from(format!("svc{}-1", k % 10)),
            Value::from("rollback"),
            Value::from(if in_progress {
                "in_progress"
            } else {
                "succeeded"
            }),
            Value::from("app:v2"),
            Value::from("sha256:2"),
            Value::from("app:v1"),
            Value::from("sha256:1"),
            Value::from(""),
            Value::Int(42),
            Value::from("ops"),
            Value::from(""),
            Value::Int(started),
            Value::from(finished),
            Value::from(""),
        ]);
        for s in 0..2 {
            expect.keep("deployment_steps", kept);
            steps.push(vec![
                Value::Int(k as i64 + 1),
                Value::Int(started + s * 1_000),
                Value::from(if s == 0 { "pull" } else { "swap" }),
                Value::from(""),
            ]);
        }
    }
    seed::insert(
        store,
        "deployments",
        &[
            "service",
            "container",
            "action",
            "status",
            "from_image",
            "from_image_id",
            "to_image",
            "to_image_id",
            "kept_container",
            "requested_by",
            "requested_by_name",
            "approved_by",
            "started_ms",
            "finished_ms",
            "detail",
        ],
        &rows,
    )
    .await?;
    seed::insert(
        store,
        "deployment_steps",
        &["deployment_id", "at_ms", "step", "detail"],
        &steps,
    )
    .await?;

    // Incidents (ids 1.. in order) with two timeline entries each.
    let cut_incidents = settings.incidents_days.map(cut);
    let mut start = 0;
    while start < size.incidents {
        let end = (start + CHUNK / 2).min(size.incidents);
        let mut rows = Vec::new();
        let mut timeline = Vec::new();
        for k in start..end {
            let opened = at(k, size.incidents);
            let open = k % 50 == 0;
            let resolved = (!open).then_some(opened + 3_600_000);
            let kept = match (cut_incidents, resolved) {
                (Some(c), Some(r)) => r >= c,
                _ => true,
            };
            expect.keep("incidents", kept);
            rows.push(vec![
                Value::from(format!("Checkout errors {k}")),
                Value::from("P2"),
                Value::from(if open { "investigating" } else { "resolved" }),
                Value::from(""),
                Value::Int(42),
                Value::from("ops"),
                Value::Int(opened),
                Value::from(resolved),
                Value::Int(resolved.unwrap_or(opened)),
            ]);
            for (j, kind) in ["opened", "resolved"].iter().enumerate() {
                expect.keep("incident_timeline", kept);
                timeline.push(vec![
                    Value::Int(k as i64 + 1),
                    Value::Int(opened + j as i64),
                    Value::from(*kind),
                    Value::from("ops"),
                    Value::from("checkout 5xx"),
                ]);
            }
        }
        seed::insert(
            store,
            "incidents",
            &[
                "title",
                "severity",
                "status",
                "summary",
                "commander_id",
                "commander_name",
                "opened_ms",
                "resolved_ms",
                "last_update_ms",
            ],
            &rows,
        )
        .await?;
        seed::insert(
            store,
            "incident_timeline",
            &["incident_id", "at_ms", "kind", "actor_name", "text"],
            &timeline,
        )
        .await?;
        start = end;
    }
    expect.counts.entry("incident_actions").or_insert(0);
    let filling = filled.elapsed();

    let before = counts(store).await?;
    Ok(Filled {
        now_ms: now,
        filling,
        before,
        expected: expect.counts,
    })
}
