//! MTTA and MTTR, p50 and p90 per severity (issue #15): how fast the team
//! acknowledges and resolves incidents, for `/incident stats`, the weekly digest
//! and `/metrics`.
//!
//! Why percentiles and not means: one incident left open over a weekend would
//! swamp a mean; p50 says what usually happens, p90 what a bad day looks like.
//! Nearest-rank percentiles over the incidents' own times, so every figure shown
//! is one incident's real time (and a hand-computed fixture matches exactly).
//!
//! MTTA runs from the open (after the on-call escalation merge, from the first
//! page) to the first acknowledgement; MTTR from the open to the resolution. The
//! one place that defines them is `store::incident_times`.

use crate::app::App;
use crate::severity::Severity;
use crate::store::incident_times::{self as db, Times};
use crate::store::incidents::Incident;
use crate::store::StoreError;
use crate::timefmt::duration_text;

const DAY_MS: i64 = 86_400_000;

/// The histogram of times to acknowledge, by severity (seconds).
pub const ACK_SERIES: &str = "klaxon_incident_ack_seconds";
/// The histogram of times to resolve, by severity (seconds).
pub const RESOLVE_SERIES: &str = "klaxon_incident_resolve_seconds";

/// p50 and p90 of a set of durations, and how many there were.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Spread {
    pub count: usize,
    pub p50_ms: Option<i64>,
    pub p90_ms: Option<i64>,
}

/// One severity's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeverityStats {
    pub severity: Severity,
    /// Incidents opened in the period.
    pub opened: usize,
    /// Times to acknowledge of those acknowledged.
    pub mtta: Spread,
    /// Times to resolve of those resolved.
    pub mttr: Spread,
}

/// Nearest rank: the smallest value with at least `p`% of the values at or below
/// it. `None` for no values.
pub fn percentile(sorted: &[i64], p: u32) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = (u64::from(p) * n as u64).div_ceil(100).max(1) as usize;
    sorted.get(rank.min(n) - 1).copied()
}

fn spread(mut values: Vec<i64>) -> Spread {
    values.sort_unstable();
    Spread {
        count: values.len(),
        p50_ms: percentile(&values, 50),
        p90_ms: percentile(&values, 90),
    }
}

/// The figures per severity, P1 first; severities without incidents left out.
pub fn summarize(times: &[Times]) -> Vec<SeverityStats> {
    Severity::ALL
        .into_iter()
        .filter_map(|sev| {
            let mine: Vec<&Times> = times.iter().filter(|t| t.severity == sev).collect();
            (!mine.is_empty()).then(|| SeverityStats {
                severity: sev,
                opened: mine.len(),
                mtta: spread(mine.iter().filter_map(|t| t.to_ack_ms).collect()),
                mttr: spread(mine.iter().filter_map(|t| t.to_resolve_ms).collect()),
            })
        })
        .collect()
}

/// The figures of the incidents opened in the last `days` days.
pub async fn last_days(app: &App, days: u32) -> Result<Vec<SeverityStats>, StoreError> {
    let now = app.clock.now_ms();
    let times = db::opened_between(&app.store, now - i64::from(days) * DAY_MS, now + 1).await?;
    Ok(summarize(&times))
}

/// The figures of the incidents opened in `[since_ms, until_ms)` (the weekly digest).
pub async fn between(
    app: &App,
    since_ms: i64,
    until_ms: i64,
) -> Result<Vec<SeverityStats>, StoreError> {
    Ok(summarize(
        &db::opened_between(&app.store, since_ms, until_ms).await?,
    ))
}

fn fmt(ms: Option<i64>) -> String {
    ms.map(duration_text).unwrap_or_else(|| "–".into())
}

/// One line per measure, no table: it reads on a phone. Empty input says so.
pub fn render_lines(stats: &[SeverityStats]) -> Vec<String> {
    if stats.is_empty() {
        return vec!["No incidents.".into()];
    }
    let mut out = Vec::new();
    for s in stats {
        out.push(format!(
            "**{}** · {} incident{}",
            s.severity,
            s.opened,
            if s.opened == 1 { "" } else { "s" }
        ));
        out.push(format!(
            "  MTTA p50 {} · p90 {} ({} acked)",
            fmt(s.mtta.p50_ms),
            fmt(s.mtta.p90_ms),
            s.mtta.count
        ));
        out.push(format!(
            "  MTTR p50 {} · p90 {} ({} resolved)",
            fmt(s.mttr.p50_ms),
            fmt(s.mttr.p90_ms),
            s.mttr.count
        ));
    }
    out
}

/// `/incident stats [days]`'s reply.
pub fn render(stats: &[SeverityStats], days: u32) -> String {
    let total: usize = stats.iter().map(|s| s.opened).sum();
    let mut lines = vec![format!(
        "📊 **Incidents, last {days} day{}**: {total} opened",
        if days == 1 { "" } else { "s" }
    )];
    if total > 0 {
        lines.extend(render_lines(stats));
        lines.push("_MTTA: open to first ack · MTTR: open to resolved_".into());
    }
    lines.join("\n")
}

/// Records an acknowledgement's time on `/metrics` (called once, by the ack that won).
pub fn observe_ack(app: &App, i: &Incident) {
    if let Some(acked) = i.acked_ms {
        // The same start as `store::incident_times`: the first page, else the open.
        let start = i.first_page_ms.unwrap_or(i.opened_ms);
        let secs = (acked - start).max(0) as f64 / 1000.0;
        app.metrics
            .observe(ACK_SERIES, &[("severity", i.severity.as_str())], secs);
    }
}

/// Records a resolution's time on `/metrics`.
pub fn observe_resolve(app: &App, i: &Incident) {
    if let Some(resolved) = i.resolved_ms {
        let secs = (resolved - i.opened_ms).max(0) as f64 / 1000.0;
        app.metrics
            .observe(RESOLVE_SERIES, &[("severity", i.severity.as_str())], secs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn t(sev: Severity, ack_min: Option<i64>, resolve_min: Option<i64>) -> Times {
        Times {
            severity: sev,
            opened_ms: 0,
            to_ack_ms: ack_min.map(|m| m * MIN),
            to_resolve_ms: resolve_min.map(|m| m * MIN),
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 50), Some(7));
        assert_eq!(percentile(&[7], 90), Some(7));
        // 10 values: p50 is the 5th, p90 the 9th.
        let v: Vec<i64> = (1..=10).collect();
        assert_eq!(percentile(&v, 50), Some(5));
        assert_eq!(percentile(&v, 90), Some(9));
        // 4 values: p50 the 2nd, p90 the 4th (ceil(3.6)).
        assert_eq!(percentile(&[1, 2, 3, 4], 50), Some(2));
        assert_eq!(percentile(&[1, 2, 3, 4], 90), Some(4));
    }

    #[test]
    fn figures_per_severity_match_the_hand_computed_fixture() {
        // P1: acks 2, 5, 10, 30 min (one never acked); resolves 60, 90, 240 min.
        // p50 ack = 2nd of 4 = 5 min, p90 = 4th = 30 min; p50 resolve = 2nd of 3 =
        // 90 min, p90 = 3rd = 240 min. P3: one incident, acked at 1 min, open.
        let times = vec![
            t(Severity::P1, Some(10), Some(90)),
            t(Severity::P3, Some(1), None),
            t(Severity::P1, Some(2), Some(60)),
            t(Severity::P1, Some(30), None),
            t(Severity::P1, None, None),
            t(Severity::P1, Some(5), Some(240)),
        ];
        let s = summarize(&times);
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(s[0].severity, Severity::P1);
        assert_eq!(s[0].opened, 5);
        assert_eq!(
            s[0].mtta,
            Spread {
                count: 4,
                p50_ms: Some(5 * MIN),
                p90_ms: Some(30 * MIN)
            }
        );
        assert_eq!(
            s[0].mttr,
            Spread {
                count: 3,
                p50_ms: Some(90 * MIN),
                p90_ms: Some(240 * MIN)
            }
        );
        assert_eq!(s[1].severity, Severity::P3);
        assert_eq!(s[1].mttr, Spread::default());
        let text = render(&s, 30);
        assert!(text.contains("last 30 days**: 6 opened"), "{text}");
        assert!(text.contains("**P1** · 5 incidents"), "{text}");
        assert!(
            text.contains("MTTA p50 5m 0s · p90 30m 0s (4 acked)"),
            "{text}"
        );
        assert!(
            text.contains("MTTR p50 1h 30m · p90 4h 0m (3 resolved)"),
            "{text}"
        );
        assert!(text.contains("MTTR p50 – · p90 – (0 resolved)"), "{text}");
        // No line wider than a phone's screen wants.
        assert!(text.lines().all(|l| l.chars().count() <= 60), "{text}");
    }

    #[test]
    fn no_incidents_says_so() {
        assert_eq!(render(&[], 7), "📊 **Incidents, last 7 days**: 0 opened");
    }
}
