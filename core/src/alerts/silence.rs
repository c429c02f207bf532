//! Silences: matching alerts are stored and counted but not posted until the
//! silence ends (by itself, or by `/alerts unsilence`); alerts still firing then are
//! given back to their groups.

use regex::Regex;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::Alert;
use crate::store::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "=")]
    Equal,
    #[serde(rename = "=~")]
    Regex,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matcher {
    pub label: String,
    pub op: Op,
    pub value: String,
}

/// Matchers as members type them: `service=api alertname=~High.*`, separated by
/// spaces or commas. Every problem is named.
pub fn parse_matchers(s: &str) -> Result<Vec<Matcher>, String> {
    let mut out = Vec::new();
    for part in s.split([' ', ',']).filter(|p| !p.trim().is_empty()) {
        let (label, op, value) = if let Some((l, v)) = part.split_once("=~") {
            (l, Op::Regex, v)
        } else if let Some((l, v)) = part.split_once('=') {
            (l, Op::Equal, v)
        } else {
            return Err(format!(
                "`{part}` is not a matcher: write label=value or label=~regex"
            ));
        };
        let label = label.trim();
        let value = value.trim().trim_matches('"');
        if label.is_empty() || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("`{label}` is not a label name"));
        }
        if op == Op::Regex {
            Regex::new(&format!("^(?:{value})$"))
                .map_err(|e| format!("`{value}` is not a regular expression: {e}"))?;
        }
        out.push(Matcher {
            label: label.to_string(),
            op,
            value: value.to_string(),
        });
    }
    if out.is_empty() {
        return Err("Give at least one matcher, e.g. `service=api`.".into());
    }
    Ok(out)
}

pub fn matches(matchers: &[Matcher], a: &Alert) -> bool {
    matchers.iter().all(|m| {
        let v = a.label(&m.label).unwrap_or_default();
        match m.op {
            Op::Equal => v == m.value,
            Op::Regex => Regex::new(&format!("^(?:{})$", m.value)).is_ok_and(|r| r.is_match(v)),
        }
    })
}

pub fn describe(matchers: &[Matcher]) -> String {
    matchers
        .iter()
        .map(|m| {
            let op = match m.op {
                Op::Equal => "=",
                Op::Regex => "=~",
            };
            format!("{}{op}{}", m.label, m.value)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Debug, Clone, PartialEq)]
pub struct Silence {
    pub id: i64,
    pub matchers: Vec<Matcher>,
    pub reason: String,
    pub created_by: String,
    pub created_ms: i64,
    pub ends_ms: i64,
    pub held: i64,
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<Silence, StoreError> {
    let m: String = r.try_get("matchers")?;
    Ok(Silence {
        id: r.try_get("id")?,
        matchers: serde_json::from_str(&m).unwrap_or_default(),
        reason: r.try_get("reason")?,
        created_by: r.try_get("created_by")?,
        created_ms: r.try_get("created_ms")?,
        ends_ms: r.try_get("ends_ms")?,
        held: r.try_get("held")?,
    })
}

/// A new silence; with `until_resolved` it also ends once every alert it held has
/// resolved.
pub async fn create(
    store: &Store,
    matchers: &[Matcher],
    reason: &str,
    by: &str,
    now_ms: i64,
    ends_ms: i64,
    until_resolved: bool,
) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO silences (matchers, reason, created_by, created_ms, ends_ms, until_resolved) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(serde_json::to_string(matchers).unwrap_or_else(|_| "[]".into()))
    .bind(reason)
    .bind(by)
    .bind(now_ms)
    .bind(ends_ms)
    .bind(i64::from(until_resolved))
    .fetch_one(store.pool())
    .await?;
    Ok(row.try_get("id")?)
}

/// Silences in force now, the newest first.
pub async fn active(store: &Store, now_ms: i64) -> Result<Vec<Silence>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, matchers, reason, created_by, created_ms, ends_ms, held FROM silences \
         WHERE ended_ms IS NULL AND ends_ms > $1 ORDER BY id DESC",
    )
    .bind(now_ms)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// [`active`] inside a transaction (the intake's).
pub async fn active_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    now_ms: i64,
) -> Result<Vec<Silence>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, matchers, reason, created_by, created_ms, ends_ms, held FROM silences \
         WHERE ended_ms IS NULL AND ends_ms > $1 ORDER BY id DESC",
    )
    .bind(now_ms)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Ends a silence early; false when there is no such active silence.
pub async fn end(store: &Store, id: i64, by: &str, now_ms: i64) -> Result<bool, StoreError> {
    Ok(sqlx::query(
        "UPDATE silences SET ended_ms = $1, ended_by = $2 WHERE id = $3 AND ended_ms IS NULL \
         AND ends_ms > $4",
    )
    .bind(now_ms)
    .bind(by)
    .bind(id)
    .bind(now_ms)
    .execute(store.pool())
    .await?
    .rows_affected()
        > 0)
}

/// Silences that are over but whose held alerts were not given back yet.
pub async fn finished_unreleased(store: &Store, now_ms: i64) -> Result<Vec<i64>, StoreError> {
    let rows = sqlx::query(
        "SELECT id FROM silences WHERE released = 0 AND (ended_ms IS NOT NULL OR ends_ms <= $1)",
    )
    .bind(now_ms)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| r.try_get::<i64, _>("id").map_err(Into::into))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{AlertStatus, Source};

    #[test]
    fn matchers_parse_and_match() {
        let m = parse_matchers("service=api alertname=~High.*").unwrap();
        assert_eq!(describe(&m), "service=api alertname=~High.*");
        let mut a = Alert {
            source: Source::Generic,
            fingerprint: "f".into(),
            status: AlertStatus::Firing,
            labels: [("service", "api"), ("alertname", "HighLatency")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: Default::default(),
            starts_ms: None,
            ends_ms: None,
            url: None,
        };
        assert!(matches(&m, &a));
        a.labels.insert("service".into(), "api-gw".into());
        assert!(!matches(&m, &a), "exact");
        assert!(parse_matchers("").is_err());
        assert!(parse_matchers("service").is_err());
        assert!(parse_matchers("x=~(")
            .unwrap_err()
            .contains("not a regular expression"));
    }
}
