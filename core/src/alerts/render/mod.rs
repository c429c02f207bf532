//! An alert group as chat messages: pure, no I/O and no SQL. The grouper
//! ([`super::deliver`]) feeds it what is stored; `klaxon alerts test` previews
//! with it; the messages it makes fit Discord's limits.
//!
//! A group is one message a responder reads on a phone: the title, one header
//! line with what every alert shares ([`digest`]), at most `inline_max` rows with
//! only what tells alerts apart (identical ones collapsed, `×37`), "and N more",
//! and the full list attached. Whatever the group's size, the message stays within
//! [`PHONE_LINES`] lines and [`PHONE_CHARS`] characters.

mod digest;
#[cfg(test)]
mod tests;

pub use digest::{digest, Digest, Item, Row};

use super::Alert;

use crate::chat::{self, Button, ButtonStyle, ChatMessage, Embed, TextFile};
use crate::routing::Router;
use crate::severity::Severity;
use crate::timefmt::hhmm;

/// One phone screen: what a group's message may take at most, in lines (content,
/// title, description, footer) and characters.
pub const PHONE_LINES: usize = 15;
pub const PHONE_CHARS: usize = 1_500;

/// Characters per part, so that any group fits [`PHONE_CHARS`]: title, header
/// line, each row, the "and N more" line, the footer.
const TITLE_CHARS: usize = 120;
const HEADER_CHARS: usize = 180;
const ROW_CHARS: usize = 96;
const FOOTER_CHARS: usize = 100;

fn color(severity: Severity, firing: bool) -> u32 {
    match (firing, severity) {
        (false, _) => chat::GREEN,
        (true, Severity::P1 | Severity::P2) => chat::RED,
        (true, _) => chat::YELLOW,
    }
}

/// The buttons under a firing group's first message, for a responder on a phone.
pub fn buttons(group_id: i64, logs: bool) -> Vec<Button> {
    let b = |verb: &str, label: &str, style| Button {
        custom_id: format!("{PREFIX}:{verb}:{group_id}"),
        label: label.into(),
        style,
    };
    let mut v = vec![
        b("ack", "Acknowledge", ButtonStyle::Primary),
        b("silence", "Silence 1 h", ButtonStyle::Secondary),
        b("incident", "Open incident", ButtonStyle::Danger),
    ];
    if logs {
        v.push(b("logs", "Logs", ButtonStyle::Secondary));
    }
    v
}

/// The `custom_id` prefix of alert message buttons.
pub const PREFIX: &str = "alerts";

/// How a group is shown besides its alerts.
pub struct Look {
    pub ping: Option<u64>,
    pub buttons: Vec<Button>,
    /// "👀 Acknowledged by bob at 14:05 UTC".
    pub note: Option<String>,
}

/// How much a message shows: `[alerts] inline_max` rows inline; past
/// `summarize_over` alerts (or past what the rows show one by one) the full list
/// is attached.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub inline_max: usize,
    pub summarize_over: usize,
}

impl Sizes {
    pub fn of(config: &crate::routing::AlertsConfig) -> Sizes {
        Sizes {
            inline_max: config.inline_max,
            summarize_over: config.summarize_over,
        }
    }
}

/// Untrusted text shown literally: markdown characters escaped, mentions and
/// links defused, one line.
pub fn literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' | '*' | '_' | '~' | '`' | '|' | '[' | ']' | '<' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' | '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    chat::neutralize(&out)
}

/// Cuts escaped text without leaving a lone escape at the end.
fn cut(s: &str, max: usize) -> String {
    if chat::chars(s) <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    let trailing = out.chars().rev().take_while(|c| *c == '\\').count();
    if trailing % 2 == 1 {
        out.pop();
    }
    out.push('…');
    out
}

fn pairs(labels: &[(String, String)]) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{}={}", literal(k), literal(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One row: `🔴 instance=i17 · since 12:44 UTC`, `✅ ~~instance=i3~~ · resolved
/// 12:50 UTC`, `🔴 ×37 firing · since 12:44 UTC` (identical alerts).
fn row_text(r: &Row) -> String {
    let mut what = pairs(&r.labels);
    if let Some(s) = &r.summary {
        if !what.is_empty() {
            what.push(' ');
        }
        what.push_str(&literal(s));
    }
    let count = if r.count > 1 {
        format!("×{} ", r.count)
    } else {
        String::new()
    };
    let text = match (r.firing, what.is_empty()) {
        (true, true) => format!("🔴 {count}firing · since {}", hhmm(r.since_ms)),
        (true, false) => format!("🔴 {count}{what} · since {}", hhmm(r.since_ms)),
        (false, empty) => format!(
            "✅ {count}{}resolved {}",
            if empty {
                String::new()
            } else {
                format!("~~{what}~~ · ")
            },
            r.resolved_ms.map(hhmm).unwrap_or_default()
        ),
    };
    cut(&text, ROW_CHARS)
}

/// The header line: the shared summary and the shared labels and annotations not
/// in the title already.
fn header(d: &Digest, title: &str) -> String {
    let in_title: Vec<&str> = title.split(" · ").collect();
    let mut parts = Vec::new();
    if let Some(s) = d
        .common_summary
        .as_ref()
        .filter(|s| !in_title.contains(&s.as_str()))
    {
        parts.push(format!("**{}**", cut(&literal(s), HEADER_CHARS / 2)));
    }
    let shared: Vec<(String, String)> = d
        .common_labels
        .iter()
        .chain(&d.common_annotations)
        .filter(|(k, v)| k != "alertname" && !in_title.contains(&v.as_str()))
        .cloned()
        .collect();
    if !shared.is_empty() {
        parts.push(pairs(&shared));
    }
    cut(&parts.join(" · "), HEADER_CHARS)
}

/// The attached list: every alert, one line each with all its labels, worst and
/// newest first.
fn full_list(items: &[Item]) -> String {
    digest::ordered(items)
        .into_iter()
        .map(|i| {
            let labels: Vec<String> = i
                .alert
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.replace(['\n', '\r'], " ")))
                .collect();
            let when = if i.firing() {
                format!("since {}", crate::timefmt::date_time(i.first_ms))
            } else {
                format!(
                    "resolved {}",
                    i.resolved_ms
                        .map(crate::timefmt::date_time)
                        .unwrap_or_default()
                )
            };
            format!(
                "{:<9} {}  {}  {when}\n",
                if i.firing() { "FIRING" } else { "RESOLVED" },
                labels.join(" "),
                i.alert.summary().replace(['\n', '\r'], " "),
            )
        })
        .collect()
}

/// A group's message: title, header, the first `inline_max` rows, "and N more",
/// the full list attached when the rows do not show every alert one by one or the
/// group has more than `summarize_over` alerts. One message, one phone screen.
pub fn render_group(
    title: &str,
    severity: Severity,
    items: &[Item],
    sizes: Sizes,
    look: &Look,
) -> Vec<ChatMessage> {
    let d = digest(items);
    let firing = items.iter().filter(|i| i.firing()).count();
    let resolved = items.len() - firing;
    let inline = sizes.inline_max.clamp(1, crate::routing::INLINE_MAX_LIMIT);
    let head = if firing > 0 {
        format!(
            "🔥 {severity} FIRING · {} ({firing}{})",
            cut(&chat::neutralize(title), TITLE_CHARS - 30),
            if resolved > 0 {
                format!(", {resolved} resolved")
            } else {
                String::new()
            }
        )
    } else {
        format!(
            "✅ RESOLVED · {} ({resolved})",
            cut(&chat::neutralize(title), TITLE_CHARS - 30)
        )
    };
    let mut lines = Vec::new();
    if firing == 0 {
        let at = items.iter().filter_map(|i| i.resolved_ms).max();
        lines.push(format!(
            "Resolved at {}",
            at.map(hhmm).unwrap_or_else(|| "—".into())
        ));
    }
    let h = header(&d, title);
    if !h.is_empty() {
        lines.push(h);
    }
    let shown = d.rows.len().min(inline);
    lines.extend(d.rows[..shown].iter().map(row_text));
    let hidden: usize = d.rows[shown..].iter().map(|r| r.count).sum();
    let attach = items.len() > inline.min(sizes.summarize_over);
    if hidden > 0 {
        lines.push(format!("… and {hidden} more in the attached list"));
    } else if attach {
        lines.push("Every alert is in the attached list.".into());
    }
    let embed = Embed {
        title: head,
        description: lines.join("\n"),
        color: color(severity, firing > 0),
        footer: look
            .note
            .as_deref()
            .map(|n| cut(&chat::neutralize(n), FOOTER_CHARS))
            .unwrap_or_default(),
        ..Default::default()
    }
    .fit();
    let mut m = ChatMessage {
        embeds: vec![embed],
        // Low severities inform without waking phones.
        silent: matches!(severity, Severity::P3 | Severity::P4),
        ..Default::default()
    };
    if firing > 0 {
        m.page = look.ping;
        m.buttons = look.buttons.clone();
    }
    if attach {
        m.attachment = Some(TextFile {
            name: format!("{}-alerts.txt", file_slug(title)),
            content: full_list(items),
        });
    }
    vec![m]
}

fn file_slug(title: &str) -> String {
    let s: String = title
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let s = s
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    chat::truncate(if s.is_empty() { "group" } else { &s }, 60)
}

/// What a notification would post, for `klaxon alerts test`: per group, the route
/// that matched and the exact messages of a new group made of these alerts.
#[derive(Debug, Clone)]
pub struct Preview {
    pub route: Option<usize>,
    pub channel: Option<u64>,
    pub severity: Severity,
    pub page: bool,
    pub group_key: String,
    pub messages: Vec<ChatMessage>,
}

pub fn preview(
    router: &Router,
    default_channel: Option<u64>,
    on_call_role: Option<u64>,
    alerts: &[Alert],
    now_ms: i64,
) -> Vec<Preview> {
    let mut groups: Vec<(Preview, String, Vec<Item>)> = Vec::new();
    for a in alerts {
        let routed = router.route(a);
        let (key, title) = router.group(a, &routed);
        let l = Item {
            alert: a.clone(),
            first_ms: a.starts_ms.unwrap_or(now_ms),
            resolved_ms: Some(now_ms),
        };
        match groups.iter_mut().find(|(p, _, _)| p.group_key == key) {
            Some((_, _, lines)) => lines.push(l),
            None => groups.push((
                Preview {
                    route: routed.route,
                    channel: routed.channel.or(default_channel),
                    severity: routed.severity,
                    page: routed.page,
                    group_key: key,
                    messages: Vec::new(),
                },
                title,
                vec![l],
            )),
        }
    }
    groups
        .into_iter()
        .map(|(mut p, title, items)| {
            let look = Look {
                ping: on_call_role.filter(|_| p.page),
                buttons: buttons(0, false),
                note: None,
            };
            p.messages = render_group(&title, p.severity, &items, Sizes::of(&router.config), &look);
            p
        })
        .collect()
}

/// The outbox priority of a group's messages: P1 first.
pub fn severity_rank(s: Severity) -> i64 {
    match s {
        Severity::P1 => 1,
        Severity::P2 => 2,
        Severity::P3 => 3,
        Severity::P4 => 4,
    }
}

/// The short new message that announces a group still firing after
/// `repeat_interval` (an edit notifies nobody), with its Acknowledge button.
pub fn repeat_message(
    group_id: i64,
    title: &str,
    firing: i64,
    age_ms: i64,
    severity: Severity,
    ping: Option<u64>,
) -> ChatMessage {
    let mut m = ChatMessage::text(format!(
        "🔁 Still firing after {}, not acknowledged: **{}** ({firing}) — its message above has the details and buttons.",
        crate::timefmt::duration_text(age_ms),
        chat::neutralize(title)
    ));
    m.silent = matches!(severity, Severity::P3 | Severity::P4);
    m.page = ping;
    m.buttons = buttons(group_id, false);
    m.buttons.truncate(1); // Acknowledge only: the rest is on the group's message
    m
}
