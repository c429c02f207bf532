//! `GET /feed.atom` (Atom 1.0, RFC 4287) and `GET /status.json`: one entry per
//! public update, newest first. Escaped here like the HTML.

use std::fmt::Write as _;

use chrono::{TimeZone, Utc};

use super::html::esc;
use super::model::Snapshot;

/// Entries in the feed.
const ENTRIES: usize = 50;

fn rfc3339(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn feed_id(s: &Snapshot) -> String {
    if s.base_url.is_empty() {
        "urn:klaxon:status-page".into()
    } else {
        format!("{}/", s.base_url.trim_end_matches('/'))
    }
}

pub fn feed(s: &Snapshot) -> String {
    let mut entries: Vec<_> = s
        .open
        .iter()
        .chain(&s.history)
        .flat_map(|i| i.updates.iter().map(move |u| (i, u)))
        .collect();
    entries.sort_by_key(|(i, u)| std::cmp::Reverse((u.at_ms, i.id.clone())));
    entries.truncate(ENTRIES);
    let updated = entries
        .first()
        .map(|(_, u)| u.at_ms)
        .unwrap_or(s.generated_ms);
    let base = s.base_url.trim_end_matches('/');
    let mut out = String::with_capacity(8 * 1024);
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\
<id>{}</id><title>{}</title><updated>{}</updated><author><name>{}</name></author>",
        esc(&feed_id(s)),
        esc(&s.title),
        rfc3339(updated),
        esc(&s.title)
    );
    if !base.is_empty() {
        let _ = write!(
            out,
            "<link rel=\"self\" href=\"{}/feed.atom\"/><link href=\"{}/\"/>",
            esc(base),
            esc(base)
        );
    }
    for (i, u) in entries {
        let id = if base.is_empty() {
            format!("urn:klaxon:status-page:{}:{}", i.id, u.at_ms)
        } else {
            format!("{base}/incidents/{}#{}", i.id, u.at_ms)
        };
        let _ = write!(
            out,
            "<entry><id>{}</id><title>[{}] {}</title><updated>{}</updated>",
            esc(&id),
            esc(&u.status),
            esc(&i.title),
            rfc3339(u.at_ms)
        );
        if !base.is_empty() {
            let _ = write!(
                out,
                "<link href=\"{}/incidents/{}\"/>",
                esc(base),
                esc(&i.id)
            );
        }
        let _ = write!(
            out,
            "<content type=\"text\">{}</content></entry>",
            esc(&u.text)
        );
    }
    out.push_str("</feed>\n");
    out
}

/// `GET /status.json`: the overall state, the components, the open incidents with
/// their public updates and the maintenance shown.
pub fn json(s: &Snapshot) -> String {
    let v = serde_json::json!({
        "title": s.title,
        "overall": s.overall(),
        "updated": rfc3339(s.generated_ms),
        "components": s.components,
        "incidents": s.open,
        "maintenance": s.maintenance,
    });
    v.to_string()
}
