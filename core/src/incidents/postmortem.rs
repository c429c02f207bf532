//! The post-mortem, written from the incident's record in the usual template. What
//! nobody filled in is left as a marked prompt, so the document is an outline the
//! team completes rather than a page of invented prose.

use std::fmt::Write as _;

use super::{IncidentError, IncidentId};
use crate::app::App;
use crate::store::incidents::{Action, Entry, EntryKind, Incident};
use crate::store::Store;
use crate::timefmt::{date_time, duration_text};

/// Marks a section for the team to write.
fn prompt(what: &str) -> String {
    format!("> _TODO: {what}_")
}

/// Text as Markdown body: kept as written, with no raw HTML and no headings that
/// would break the document's structure.
fn body(s: &str) -> String {
    s.lines()
        .map(|l| {
            let l = l.replace('<', "&lt;");
            if l.trim_start().starts_with('#') {
                format!("\\{}", l.trim_start())
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One line of a table cell: no pipes or newlines.
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
        .replace('<', "&lt;")
        .split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn section(out: &mut String, title: &str, text: &str, ask: &str) {
    let _ = writeln!(out, "## {title}\n");
    if text.trim().is_empty() {
        let _ = writeln!(out, "{}\n", prompt(ask));
    } else {
        let _ = writeln!(out, "{}\n", body(text.trim()));
    }
}

/// The file name members download: `INC-7-postmortem.md`.
pub fn file_name(id: IncidentId) -> String {
    format!("{id}-postmortem.md")
}

/// The Markdown document.
pub fn render(i: &Incident, timeline: &[Entry], actions: &[Action]) -> String {
    let mut out = String::with_capacity(256 + timeline.len() * 96);
    let _ = writeln!(out, "# Post-mortem: {} · {}\n", i.id, cell(&i.title));
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| Date | {} |", date_time(i.opened_ms));
    let duration = match i.resolved_ms {
        Some(r) => format!(
            "{} ({} to {})",
            duration_text(r - i.opened_ms),
            date_time(i.opened_ms),
            date_time(r)
        ),
        None => "ongoing (not resolved yet)".into(),
    };
    let _ = writeln!(out, "| Duration | {duration} |");
    let _ = writeln!(out, "| Severity | {} |", i.severity);
    let _ = writeln!(out, "| Owner (commander) | {} |", cell(&i.commander.name));
    if let Some(s) = &i.service {
        let _ = writeln!(out, "| Service | {} |", cell(s));
    }
    if let (Some(t), Some(by)) = (i.acked_ms, &i.acked_by) {
        let _ = writeln!(
            out,
            "| Acknowledged | {} by {} (after {}) |",
            date_time(t),
            cell(by),
            duration_text(t - i.opened_ms)
        );
    }
    let _ = writeln!(out, "| Status | {} |\n", i.status.title());

    section(
        &mut out,
        "Summary",
        &i.summary,
        "what happened, in two or three sentences a stakeholder understands",
    );

    let _ = writeln!(out, "## Timeline (UTC)\n");
    if timeline.is_empty() {
        let _ = writeln!(out, "{}\n", prompt("no entries were recorded"));
    }
    for e in timeline {
        let mut text = cell(&e.text);
        if e.kind == EntryKind::Message {
            if e.deleted {
                text = format!("~~{text}~~ (message deleted)");
            } else if e.edited_ms.is_some() {
                text.push_str(" (edited)");
            }
            if !e.permalink.is_empty() {
                let _ = write!(text, " [link]({})", e.permalink);
            }
            for a in &e.attachments {
                let _ = write!(text, " [attachment]({a})");
            }
        }
        let _ = writeln!(
            out,
            "- **{}** · {} · {}: {}",
            date_time(e.at_ms),
            e.kind.as_str(),
            cell(&e.actor_name),
            text
        );
    }
    out.push('\n');

    section(
        &mut out,
        "Root cause",
        &i.root_cause,
        "the underlying cause, not only the trigger (five whys)",
    );
    section(
        &mut out,
        "Impact",
        &i.impact,
        "who was affected, how many, for how long; SLOs and revenue touched",
    );
    section(
        &mut out,
        "Resolution",
        &i.resolution,
        "what fixed it, and what was tried first",
    );

    let _ = writeln!(out, "## Action items\n");
    if actions.is_empty() {
        let _ = writeln!(
            out,
            "{}\n",
            prompt("follow-ups that stop this from happening again (`/incident action add`)")
        );
    } else {
        for a in actions {
            let state = match (&a.done_ms, &a.done_by) {
                (Some(t), Some(by)) => format!("done {} by {}", date_time(*t), cell(by)),
                _ => "open".into(),
            };
            let mark = if a.done_ms.is_some() { "x" } else { " " };
            let _ = writeln!(
                out,
                "- [{mark}] #{} {} ({state}; added by {})",
                a.number,
                cell(&a.text),
                cell(&a.created_by)
            );
        }
        out.push('\n');
    }
    section(
        &mut out,
        "Lessons learned",
        &i.lessons,
        "what went well, what went badly, where we got lucky",
    );
    out
}

/// Writes the post-mortem from the record and keeps it with the incident.
pub async fn generate(app: &App, id: IncidentId) -> Result<(Incident, String), IncidentError> {
    generate_in(&app.store, id, app.clock.now_ms()).await
}

/// [`generate`] from the database alone, for `klaxon postmortem` in a shell.
pub async fn generate_in(
    store: &Store,
    id: IncidentId,
    now_ms: i64,
) -> Result<(Incident, String), IncidentError> {
    let incident = crate::store::incidents::get(store, id)
        .await?
        .ok_or(IncidentError::Unknown(id))?;
    let timeline = crate::store::incidents::timeline(store, id).await?;
    let actions = crate::store::incidents::actions(store, id).await?;
    let markdown = render(&incident, &timeline, &actions);
    crate::store::incidents::store_postmortem(store, id, &markdown, now_ms).await?;
    Ok((incident, markdown))
}

#[cfg(test)]
mod tests {
    use super::super::model::{Severity, Status};
    use super::*;
    use crate::actor::Actor;

    fn incident() -> Incident {
        Incident {
            id: IncidentId(7),
            title: "API | down".into(),
            severity: Severity::P1,
            status: Status::Resolved,
            service: Some("api".into()),
            summary: String::new(),
            guild_id: None,
            channel_id: None,
            card_message_id: None,
            commander: Actor::member(1, "alice"),
            comms: None,
            scribe: None,
            opened_ms: 1_796_133_780_000,
            acked_ms: None,
            acked_by: None,
            first_page_ms: None,
            resolved_ms: Some(1_796_133_780_000 + 72 * 60_000),
            last_update_ms: 0,
            next_page_ms: None,
            next_update_ms: None,
            root_cause: "# a bad <script> migration".into(),
            resolution: String::new(),
            impact: String::new(),
            lessons: String::new(),
            postmortem: None,
        }
    }

    #[test]
    fn unfilled_sections_are_prompts_and_text_cannot_break_structure() {
        let md = render(&incident(), &[], &[]);
        assert!(md.starts_with("# Post-mortem: INC-7 · API \\| down\n"));
        assert!(md.contains("| Duration | 1h 12m (2026-12-01 14:03 UTC to 2026-12-01 15:15 UTC) |"));
        assert!(md.contains("## Summary\n\n> _TODO:"));
        assert!(md.contains("## Root cause\n\n\\# a bad &lt;script> migration"));
        assert!(md.contains("## Resolution\n\n> _TODO:"));
        assert!(md.contains("## Lessons learned\n\n> _TODO:"));
        assert_eq!(md.matches("\n## ").count(), 7, "{md}");
    }
}
