//! What an incident looks like in chat: the card at the top of its thread, the
//! stakeholder notice, and the name of its channel. Pure: built from the incident
//! and the settings, posted by the lifecycle.

use super::model::IncidentId;
use super::model::Severity;
use super::model::Status;
use super::PREFIX;
use crate::store::incidents::Incident;
use crate::timefmt::duration_text;
use crate::timefmt::hhmm;

use crate::app::App;
use crate::chat;
use crate::chat::Button;
use crate::chat::ButtonStyle;
use crate::chat::ChatMessage;
use crate::chat::Embed;
use crate::chat::Field;
use crate::chat::Span;
use crate::chat::Text;

/// Characters of one free-text field in a stakeholder notice (impact, root cause,
/// resolution, update): four of them and the fixed lines fit Discord's 2,000.
const NOTICE_FIELD: usize = 400;

/// A Discord text channel name: `inc-7-checkout-api-down`.
pub fn channel_name(id: IncidentId, title: &str) -> String {
    let mut out = format!("inc-{}", id.0);
    let mut dash = true;
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            if dash {
                out.push('-');
            }
            out.push(c);
            dash = false;
        } else {
            dash = true;
        }
        if out.chars().count() >= 90 {
            break;
        }
    }
    out
}

/// The card at the top of the incident's thread: the state now, and its buttons.
pub fn card(app: &App, i: &Incident) -> ChatMessage {
    let sev = app.severity_config(i.severity);
    let mut fields = vec![
        Field {
            name: "Severity".into(),
            value: format!("{} · {}", i.severity, chat::neutralize(&sev.description)),
            inline: true,
        },
        Field {
            name: "Status".into(),
            value: i.status.title().into(),
            inline: true,
        },
        Field {
            name: "Commander".into(),
            value: chat::neutralize(&i.commander.name),
            inline: true,
        },
    ];
    if let Some(s) = &i.service {
        fields.push(Field {
            name: "Service".into(),
            value: chat::neutralize(s),
            inline: true,
        });
    }
    for (name, holder) in [("Comms", &i.comms), ("Scribe", &i.scribe)] {
        if let Some(h) = holder {
            fields.push(Field {
                name: name.into(),
                value: chat::neutralize(&h.name),
                inline: true,
            });
        }
    }
    let ack = match (&i.acked_ms, &i.acked_by) {
        (Some(t), Some(by)) => format!("Acknowledged by {} at {}", chat::neutralize(by), hhmm(*t)),
        _ => format!("Not acknowledged yet (target {} min)", sev.ack_minutes),
    };
    fields.push(Field {
        name: "Acknowledged".into(),
        value: ack,
        inline: false,
    });
    let mut description = String::new();
    if !i.summary.is_empty() {
        description.push_str(&chat::neutralize(&i.summary));
        description.push_str("\n\n");
    }
    description.push_str(&format!("Started {}", hhmm(i.opened_ms)));
    if let Some(r) = i.resolved_ms {
        description.push_str(&format!(
            " · resolved {} after {}",
            hhmm(r),
            duration_text(r - i.opened_ms)
        ));
    }
    let color = match (i.status, i.severity) {
        (Status::Resolved, _) => chat::GREEN,
        (_, Severity::P1 | Severity::P2) => chat::RED,
        _ => chat::YELLOW,
    };
    let buttons = if i.is_open() {
        let b = |verb: &str, label: &str, style| Button {
            custom_id: format!("{PREFIX}:{verb}:{}", i.id.0),
            label: label.into(),
            style,
        };
        let mut v = Vec::new();
        if i.acked_ms.is_none() {
            v.push(b("ack", "Acknowledge", ButtonStyle::Primary));
        }
        v.push(b("update", "Post update", ButtonStyle::Secondary));
        v.push(b("note", "Add note", ButtonStyle::Secondary));
        v.push(b("resolve", "Resolve", ButtonStyle::Success));
        v
    } else {
        Vec::new()
    };
    ChatMessage {
        embeds: vec![Embed {
            title: format!("{} · {}", i.id, chat::neutralize(&i.title)),
            description,
            color,
            fields,
            footer: "Pin 📌 a message or use “Add to timeline” to record it".into(),
        }
        .fit()],
        buttons,
        ..Default::default()
    }
}

/// The stakeholder notice in the incidents channel: plain words, no internals.
/// `update` is the status message for an update; `None` for the opening notice.
pub fn notice(app: &App, i: &Incident, update: Option<&str>) -> ChatMessage {
    // Each free-text field has its own budget, so a long impact never pushes out the
    // root cause or the line that says where updates go.
    let field = |s: &str| chat::neutralize(&chat::truncate(s.trim(), NOTICE_FIELD));
    let tag = match (i.status, update) {
        (Status::Resolved, _) => "RESOLVED".to_string(),
        (_, None) => format!("{} INCIDENT", i.severity),
        (_, Some(_)) => format!("{} UPDATE", i.severity),
    };
    let mut lines = vec![format!(
        "**[{tag}] {}** ({})",
        chat::neutralize(&i.title),
        i.id
    )];
    lines.push(format!("Status: {}", i.status.title()));
    let impact = if !i.impact.is_empty() {
        i.impact.clone()
    } else if !i.summary.is_empty() {
        i.summary.clone()
    } else {
        "Being assessed".into()
    };
    match i.resolved_ms {
        Some(r) => {
            lines.push(format!(
                "Duration: {} ({} to {})",
                duration_text(r - i.opened_ms),
                hhmm(i.opened_ms),
                hhmm(r)
            ));
            lines.push(format!("Impact: {}", field(&impact)));
            if !i.root_cause.is_empty() {
                lines.push(format!("Root cause: {}", field(&i.root_cause)));
            }
            if !i.resolution.is_empty() {
                lines.push(format!("Resolution: {}", field(&i.resolution)));
            }
        }
        None => {
            lines.push(format!("Impact: {}", field(&impact)));
            if let Some(u) = update {
                lines.push(format!("Update: {}", field(u)));
            }
            lines.push(format!("Started: {}", hhmm(i.opened_ms)));
            if let Some(next) = i.next_update_ms {
                lines.push(format!("Next update by: {}", hhmm(next)));
            }
        }
    }
    let mut content = Text::from(lines.join("\n"));
    if let Some(t) = i.channel_id {
        content.push("\nUpdates: ");
        content.push(Span::Channel(t));
    }
    let page = if update.is_none() && i.is_open() {
        app.pages(i.severity)
    } else {
        None
    };
    ChatMessage {
        content,
        page,
        // P3/P4 updates inform without waking anybody.
        silent: matches!(i.severity, Severity::P3 | Severity::P4),
        ..Default::default()
    }
}
