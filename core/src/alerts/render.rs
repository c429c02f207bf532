//! An alert group as chat messages: pure, no I/O and no SQL. The grouper
//! ([`super::deliver`]) feeds it what is stored; `klaxon alerts test` previews
//! with it; the messages it makes fit Discord's limits.

use super::{Alert, AlertStatus};
use crate::chat::{self, limits, Button, ButtonStyle, ChatMessage, Embed, TextFile};
use crate::incidents::{hhmm, Severity};
use crate::routing::Router;

/// What a message's embeds may hold together, with room for titles and footers.
const MESSAGE_BUDGET: usize = limits::EMBED_TOTAL - 100;

pub struct Line {
    pub firing: bool,
    pub text: String,
    /// The same, as plain text for the attached full list.
    pub plain: String,
}

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

/// A group's messages from all its lines: past `limit`, the first `limit` lines,
/// the counts, and the full list attached to the first message.
pub fn render_group(
    title: &str,
    severity: Severity,
    mut lines: Vec<Line>,
    limit: usize,
    look: &Look,
) -> Vec<ChatMessage> {
    let firing = lines.iter().filter(|l| l.firing).count();
    let counts = (firing, lines.len() - firing);
    let file = (lines.len() > limit).then(|| TextFile {
        name: format!("{}-alerts.txt", file_slug(title)),
        content: lines.iter().map(|l| format!("{}\n", l.plain)).collect(),
    });
    let hidden = lines.len().saturating_sub(limit);
    lines.truncate(limit);
    let mut messages = render(title, severity, &lines, hidden, counts, look);
    if let (Some(f), Some(first)) = (file, messages.first_mut()) {
        first.attachment = Some(f);
    }
    messages
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

/// A group's messages: the first with the title, the rest continuing it; every one
/// within Discord's embed and message limits.
fn render(
    title: &str,
    severity: Severity,
    lines: &[Line],
    hidden: usize,
    (firing, resolved): (usize, usize),
    look: &Look,
) -> Vec<ChatMessage> {
    let head = if firing > 0 {
        format!(
            "🔥 {severity} FIRING · {} ({firing}{})",
            chat::neutralize(title),
            if resolved > 0 {
                format!(", {resolved} resolved")
            } else {
                String::new()
            }
        )
    } else {
        format!("✅ RESOLVED · {} ({resolved})", chat::neutralize(title))
    };
    let mut all: Vec<String> = lines.iter().map(|l| chat::truncate(&l.text, 500)).collect();
    if hidden > 0 {
        all.push(format!("… and {hidden} more in the attached list"));
    }
    // Fill each message up to Discord's 6,000 characters across up to 10 embeds (each
    // description at most 4,096): as few messages, and so requests, as the limits
    // allow.
    let title_len = chat::chars(&head);
    let mut messages: Vec<Vec<String>> = vec![Vec::new()];
    let mut current = String::new();
    let mut used = title_len; // characters the current message holds already
    for l in all {
        let room = limits::EMBED_DESCRIPTION.min(MESSAGE_BUDGET.saturating_sub(used));
        let need = chat::chars(&l) + usize::from(!current.is_empty());
        if need > room.saturating_sub(chat::chars(&current)) {
            if !current.is_empty() {
                used += chat::chars(&current);
                if let Some(m) = messages.last_mut() {
                    m.push(std::mem::take(&mut current));
                }
            }
            let full = messages.last().is_some_and(|m| m.len() >= limits::EMBEDS);
            let left = MESSAGE_BUDGET.saturating_sub(used);
            if full || left < chat::chars(&l) + 1 {
                messages.push(Vec::new());
                used = 0;
            }
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(&l);
    }
    if let Some(m) = messages.last_mut() {
        if !current.is_empty() || m.is_empty() {
            m.push(current);
        }
    }
    let total: usize = messages.iter().map(Vec::len).sum();
    let mut index = 0;
    let messages: Vec<Vec<Embed>> = messages
        .into_iter()
        .map(|descriptions| {
            descriptions
                .into_iter()
                .map(|d| {
                    index += 1;
                    Embed {
                        title: if index == 1 {
                            head.clone()
                        } else {
                            String::new()
                        },
                        description: d,
                        color: color(severity, firing > 0),
                        // Short, and counted in the budget's margin.
                        footer: match (&look.note, total > 1 && index == total) {
                            (Some(n), _) if index == 1 => chat::neutralize(n),
                            (_, true) => format!("{total} parts"),
                            _ => String::new(),
                        },
                        ..Default::default()
                    }
                    .fit()
                })
                .collect()
        })
        .collect();
    messages
        .into_iter()
        .enumerate()
        .map(|(i, embeds)| {
            let mut m = ChatMessage {
                embeds,
                // Low severities inform without waking phones.
                silent: matches!(severity, Severity::P3 | Severity::P4),
                ..Default::default()
            };
            if let (0, Some(role), true) = (i, look.ping, firing > 0) {
                m.content = format!("<@&{role}>");
                m.ping_roles.push(role);
            }
            if i == 0 && firing > 0 {
                m.buttons = look.buttons.clone();
            }
            m
        })
        .collect()
}

/// One alert's line: who, what, since when.
pub fn line(a: &Alert, first_ms: i64, resolved_ms: Option<i64>) -> Line {
    let who = ["service", "instance", "host"]
        .iter()
        .find_map(|k| a.label(k).filter(|v| !v.is_empty()))
        .unwrap_or_else(|| a.name());
    let plain = match a.status {
        AlertStatus::Firing => format!(
            "FIRING    {who}  {}  since {}",
            a.summary(),
            crate::incidents::date_time(first_ms)
        ),
        AlertStatus::Resolved => format!(
            "RESOLVED  {who}  {}  at {}",
            a.summary(),
            resolved_ms
                .map(crate::incidents::date_time)
                .unwrap_or_default()
        ),
    };
    let (who, what) = (chat::neutralize(who), chat::neutralize(a.summary()));
    match a.status {
        AlertStatus::Firing => Line {
            firing: true,
            text: format!("🔴 **{who}** {what} · since {}", hhmm(first_ms)),
            plain,
        },
        AlertStatus::Resolved => Line {
            firing: false,
            text: format!(
                "✅ **{who}** {what} · resolved {}",
                resolved_ms.map(hhmm).unwrap_or_default()
            ),
            plain,
        },
    }
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
    let mut groups: Vec<(Preview, String, Vec<Line>)> = Vec::new();
    for a in alerts {
        let routed = router.route(a);
        let (key, title) = router.group(a, &routed);
        let l = line(a, a.starts_ms.unwrap_or(now_ms), Some(now_ms));
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
        .map(|(mut p, title, mut lines)| {
            // Firing first, as the grouper orders them.
            lines.sort_by_key(|l| !l.firing);
            let look = Look {
                ping: on_call_role.filter(|_| p.page),
                buttons: buttons(0, false),
                note: None,
            };
            p.messages = render_group(
                &title,
                p.severity,
                lines,
                router.config.summarize_over,
                &look,
            );
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
        crate::incidents::duration_text(age_ms),
        chat::neutralize(title)
    ));
    m.silent = matches!(severity, Severity::P3 | Severity::P4);
    if let Some(role) = ping {
        m.content = chat::truncate(&format!("<@&{role}> {}", m.content), limits::CONTENT);
        m.ping_roles.push(role);
    }
    m.buttons = buttons(group_id, false);
    m.buttons.truncate(1); // Acknowledge only: the rest is on the group's message
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(n: usize, len: usize) -> Vec<Line> {
        (0..n)
            .map(|i| Line {
                firing: i % 3 != 1,
                text: format!("{i} {}", "x".repeat(len)),
                plain: String::new(),
            })
            .collect()
    }

    #[test]
    fn every_message_fits_discord() {
        for (n, len) in [(1, 10), (40, 100), (200, 400), (200, 3000)] {
            let look = Look {
                ping: Some(7),
                buttons: buttons(1, true),
                note: None,
            };
            let ls = lines(n, len);
            let f = ls.iter().filter(|l| l.firing).count();
            let msgs = render("HighLatency · api", Severity::P2, &ls, 0, (f, n - f), &look);
            for m in &msgs {
                assert!(m.embeds.len() <= limits::EMBEDS);
                let total: usize = m.embeds.iter().map(Embed::size).sum();
                assert!(total <= limits::EMBED_TOTAL, "{n}x{len}: {total}");
                assert!(m
                    .embeds
                    .iter()
                    .all(|e| chat::chars(&e.description) <= limits::EMBED_DESCRIPTION));
            }
            let shown: usize = msgs
                .iter()
                .flat_map(|m| &m.embeds)
                .map(|e| e.description.lines().count())
                .sum();
            assert_eq!(shown, n, "every line shown once");
            assert_eq!(msgs[0].ping_roles, [7], "only the first message pages");
            assert!(msgs.iter().skip(1).all(|m| m.ping_roles.is_empty()));
            assert_eq!(
                msgs[0].buttons.len(),
                4,
                "buttons on the first message only"
            );
            assert!(msgs.iter().skip(1).all(|m| m.buttons.is_empty()));
        }
    }

    #[test]
    fn packing_is_close_to_the_minimum() {
        let ls = lines(200, 400);
        let chars: usize = ls.iter().map(|l| chat::chars(&l.text) + 1).sum();
        let look = Look {
            ping: None,
            buttons: Vec::new(),
            note: None,
        };
        let f = ls.iter().filter(|l| l.firing).count();
        let msgs = render("t", Severity::P3, &ls, 0, (f, ls.len() - f), &look);
        let minimum = chars.div_ceil(limits::EMBED_TOTAL);
        assert!(
            msgs.len() as f64 <= minimum as f64 * 1.25 + 1.0,
            "{} messages for a minimum of {minimum}",
            msgs.len()
        );
        assert!(msgs.iter().all(|m| m.silent), "P3 does not buzz phones");
    }

    #[test]
    fn a_repeat_pings_only_when_paging_and_offers_acknowledge_only() {
        let m = repeat_message(
            7,
            "Disk <@1> · db",
            3,
            5 * 3_600_000,
            Severity::P1,
            Some(42),
        );
        assert!(
            m.content.starts_with("<@&42> 🔁 Still firing after"),
            "{}",
            m.content
        );
        assert!(!m.content.contains("<@1>"), "titles are shown literally");
        assert_eq!(m.ping_roles, [42]);
        assert!(!m.silent);
        assert_eq!(m.buttons.len(), 1);
        assert_eq!(m.buttons[0].custom_id, "alerts:ack:7");
        let quiet = repeat_message(7, "t", 1, 60_000, Severity::P4, None);
        assert!(quiet.ping_roles.is_empty() && quiet.silent);
        assert!(quiet.content.starts_with("🔁"), "{}", quiet.content);
    }
}
