//! What the buttons under a group's message read and write: who acknowledged it,
//! its identity as silence matchers, its firing alerts, its service. The SQL is in
//! [`crate::store::alerts`].

use super::silence::{Matcher, Op};
use super::Alert;
use crate::incidents::Severity;
use crate::store::{alerts, Store, StoreError};

pub use crate::store::alerts::{acknowledge, group_service};

/// A group's identity as silence matchers: its grouping labels, each with its
/// exact value (stored as structured matchers when the group was created). `None`
/// when there is no such group; no matchers for a group made by an older Klaxon
/// whose key cannot be read unambiguously.
pub async fn group_matchers(
    store: &Store,
    group_id: i64,
) -> Result<Option<(String, Vec<Matcher>)>, StoreError> {
    let Some((key, title, stored)) = alerts::group_identity(store, group_id).await? else {
        return Ok(None);
    };
    let matchers = match stored {
        Some(json) => serde_json::from_str(&json).unwrap_or_default(),
        None => legacy_matchers(&key),
    };
    Ok(Some((title, matchers)))
}

/// Matchers from a group key written before groups stored their matchers: only
/// when every part reads one way (no value held `|` or `=`).
fn legacy_matchers(key: &str) -> Vec<Matcher> {
    let mut out = Vec::new();
    for part in key.split('|').skip(1) {
        match part.split_once('=') {
            Some((k, v)) if !k.is_empty() && !v.contains('=') => out.push(Matcher {
                label: k.to_string(),
                op: Op::Equal,
                value: v.to_string(),
            }),
            _ => return Vec::new(),
        }
    }
    out
}

/// A group's severity and the summaries of its firing alerts (Open incident).
pub async fn group_firing(
    store: &Store,
    group_id: i64,
) -> Result<(Severity, Vec<Alert>), StoreError> {
    let (sev, firing) = alerts::group_firing(store, group_id).await?;
    Ok((sev.parse().unwrap_or(Severity::P3), firing))
}
