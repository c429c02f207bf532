//! What a group's alerts share and what tells them apart, as Alertmanager's own
//! templates put it (`CommonLabels`, `CommonAnnotations`): the header says the
//! shared things once, each row shows only the labels that differ, identical rows
//! collapse into one with a count, the worst and newest come first. Pure.
//!
//! Why: a group of 100 alerts differing only by `instance` used to show 100
//! identical lines that never named an instance; on a phone that was two screens
//! of noise hiding the one thing a responder needs.

use std::collections::BTreeMap;

use super::super::{Alert, AlertStatus};
use crate::routing::severity_of_label;
use crate::severity::Severity;

/// One stored alert of a group, with the times the grouper keeps for it.
#[derive(Debug, Clone)]
pub struct Item {
    pub alert: Alert,
    /// When Klaxon first saw it firing.
    pub first_ms: i64,
    pub resolved_ms: Option<i64>,
}

impl Item {
    pub fn firing(&self) -> bool {
        self.alert.status == AlertStatus::Firing
    }

    /// The alert's own severity (its `severity` label), for "worst first".
    fn severity(&self) -> Severity {
        severity_of_label(self.alert.label("severity"))
    }
}

/// Rows of identical alerts, collapsed: what one line of the message shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub firing: bool,
    pub severity: Severity,
    /// Only the labels that differ within the group, in label order.
    pub labels: Vec<(String, String)>,
    /// The alert's summary, when the alerts do not all share one.
    pub summary: Option<String>,
    /// How many alerts this row stands for (`×37`).
    pub count: usize,
    /// The earliest start among them ("since").
    pub since_ms: i64,
    /// The newest start among them (ordering: newest first).
    pub newest_ms: i64,
    /// The latest resolution among them.
    pub resolved_ms: Option<i64>,
}

/// A group said once: what all its alerts share, then the rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Digest {
    /// Labels every alert has with the same value, in label order.
    pub common_labels: Vec<(String, String)>,
    /// The summary every alert shares, if they do.
    pub common_summary: Option<String>,
    /// Annotations (other than the summary) every alert shares.
    pub common_annotations: Vec<(String, String)>,
    pub rows: Vec<Row>,
}

/// Labels or annotations every map has with one value.
fn common<'a>(maps: impl Iterator<Item = &'a BTreeMap<String, String>>) -> Vec<(String, String)> {
    let mut maps = maps.peekable();
    let Some(first) = maps.next() else {
        return Vec::new();
    };
    let mut shared: BTreeMap<&str, &str> = first
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for m in maps {
        shared.retain(|k, v| m.get(*k).is_some_and(|x| x == v));
    }
    shared
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The annotations that make an alert's summary ([`Alert::summary`]).
const SUMMARY_KEYS: [&str; 3] = ["summary", "description", "message"];

pub fn digest(items: &[Item]) -> Digest {
    let common_labels = common(items.iter().map(|i| &i.alert.labels));
    let shared_summary = items
        .first()
        .map(|i| i.alert.summary())
        .filter(|s| items.iter().all(|i| i.alert.summary() == *s))
        .map(str::to_string);
    let common_annotations: Vec<(String, String)> =
        common(items.iter().map(|i| &i.alert.annotations))
            .into_iter()
            .filter(|(k, _)| !SUMMARY_KEYS.contains(&k.as_str()))
            .collect();
    let mut rows: Vec<Row> = Vec::new();
    for item in items {
        let labels: Vec<(String, String)> = item
            .alert
            .labels
            .iter()
            .filter(|(k, v)| !common_labels.iter().any(|(ck, cv)| ck == *k && cv == *v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let summary = shared_summary
            .is_none()
            .then(|| item.alert.summary().to_string());
        let (firing, severity) = (item.firing(), item.severity());
        match rows.iter_mut().find(|r| {
            r.firing == firing
                && r.severity == severity
                && r.labels == labels
                && r.summary == summary
        }) {
            Some(r) => {
                r.count += 1;
                r.since_ms = r.since_ms.min(item.first_ms);
                r.newest_ms = r.newest_ms.max(item.first_ms);
                r.resolved_ms = r.resolved_ms.max(item.resolved_ms);
            }
            None => rows.push(Row {
                firing,
                severity,
                labels,
                summary,
                count: 1,
                since_ms: item.first_ms,
                newest_ms: item.first_ms,
                resolved_ms: item.resolved_ms,
            }),
        }
    }
    rows.sort_by(|a, b| {
        (
            !a.firing,
            a.severity,
            std::cmp::Reverse(a.newest_ms),
            &a.labels,
        )
            .cmp(&(
                !b.firing,
                b.severity,
                std::cmp::Reverse(b.newest_ms),
                &b.labels,
            ))
    });
    Digest {
        common_labels,
        common_summary: shared_summary,
        common_annotations,
        rows,
    }
}

/// The items in the order of the rows (worst and newest first), for the attached
/// full list.
pub fn ordered(items: &[Item]) -> Vec<&Item> {
    let mut v: Vec<&Item> = items.iter().collect();
    v.sort_by(|a, b| {
        (
            !a.firing(),
            a.severity(),
            std::cmp::Reverse(a.first_ms),
            &a.alert.labels,
        )
            .cmp(&(
                !b.firing(),
                b.severity(),
                std::cmp::Reverse(b.first_ms),
                &b.alert.labels,
            ))
    });
    v
}
