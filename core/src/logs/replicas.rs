//! `/logs` of a compose service: every replica read alike (same window, filters
//! and redaction), the lines merged in time order, each prefixed with its
//! replica's number (`[2] ...`), and the last N of the merge kept.
//!
//! A replica that cannot be read (removed meanwhile) is left out, as long as one
//! can be read; the prefix is added after redaction and matching, so it neither
//! matches a filter nor hides a secret.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use tokio::sync::mpsc;

use super::{follow_one, read_one, LogLine, LogsError, Query, Redactor, Snapshot, MAX_LINES};
use crate::docker::DockerClient;

fn one(q: &Query, container: &str) -> Query {
    let mut q = q.clone();
    q.container = container.to_string();
    q.replicas = Vec::new();
    q
}

fn prefixed(number: u32, mut line: LogLine) -> LogLine {
    line.text = format!("[{number}] {}", line.text);
    line
}

pub(super) async fn read(
    docker: &DockerClient,
    redactor: Arc<Redactor>,
    q: &Query,
    deadline: Duration,
) -> Result<Snapshot, LogsError> {
    let reads = q.replicas.iter().map(|(number, name)| {
        let q = one(q, name);
        let redactor = Arc::clone(&redactor);
        async move { (*number, read_one(docker, redactor, &q, deadline).await) }
    });
    let mut parts = Vec::new();
    let mut first_error = None;
    for (number, result) in join_all(reads).await {
        match result {
            Ok(snap) => parts.push((number, snap)),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match (parts.is_empty(), first_error) {
        (true, Some(e)) => Err(e),
        _ => Ok(merge(parts, q.lines.clamp(1, MAX_LINES))),
    }
}

/// The replicas' snapshots as one: lines in time order (a stable sort, so lines of
/// one replica keep their order), the last `want` kept.
pub(super) fn merge(parts: Vec<(u32, Snapshot)>, want: usize) -> Snapshot {
    let mut out = Snapshot {
        matched: Some(0),
        ..Default::default()
    };
    let mut lines = Vec::new();
    for (number, snap) in parts {
        out.matched = match (out.matched, snap.matched) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        out.scanned_lines += snap.scanned_lines;
        out.scanned_bytes += snap.scanned_bytes;
        if snap.cut_short.is_some() {
            out.cut_short = snap.cut_short;
            out.read_up_to = match (out.read_up_to, snap.read_up_to) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        lines.extend(snap.lines.into_iter().map(|l| prefixed(number, l)));
    }
    lines.sort_by_key(|l| l.at);
    let skip = lines.len().saturating_sub(want);
    out.lines = lines.split_off(skip);
    out
}

/// Every replica followed at once; lines arrive as the replicas write them.
pub(super) async fn follow(
    docker: DockerClient,
    redactor: Arc<Redactor>,
    q: Query,
    tx: mpsc::Sender<LogLine>,
) -> Result<(), LogsError> {
    let follows = q.replicas.iter().map(|(number, name)| {
        let (inner, mut rx) = mpsc::channel::<LogLine>(256);
        let reader = follow_one(docker.clone(), Arc::clone(&redactor), one(&q, name), inner);
        let tx = tx.clone();
        let number = *number;
        async move {
            let forward = async {
                while let Some(line) = rx.recv().await {
                    if tx.send(prefixed(number, line)).await.is_err() {
                        break;
                    }
                }
            };
            let (result, ()) = tokio::join!(reader, forward);
            result
        }
    });
    let results = join_all(follows).await;
    let ok = results.iter().any(|r| r.is_ok());
    match results.into_iter().find_map(Result::err) {
        Some(e) if !ok => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn line(secs: i64, text: &str) -> LogLine {
        LogLine {
            at: Utc.timestamp_opt(1_800_000_000 + secs, 0).single(),
            stderr: false,
            text: text.into(),
        }
    }

    #[test]
    fn lines_merge_in_time_order_with_their_replica_number() {
        let a = Snapshot {
            lines: vec![line(1, "a1"), line(4, "a4")],
            matched: Some(2),
            ..Default::default()
        };
        let b = Snapshot {
            lines: vec![line(2, "b2"), line(3, "b3"), line(5, "b5")],
            matched: Some(3),
            ..Default::default()
        };
        let m = merge(vec![(1, a.clone()), (2, b.clone())], 100);
        let texts: Vec<&str> = m.lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["[1] a1", "[2] b2", "[2] b3", "[1] a4", "[2] b5"]);
        assert_eq!(m.matched, Some(5));
        // The last N of the merge.
        let m = merge(vec![(1, a), (2, b)], 2);
        let texts: Vec<&str> = m.lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["[1] a4", "[2] b5"]);
    }
}
