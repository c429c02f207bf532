//! What a `/logs` answer looks like: the lines as an inline code block, or as a
//! `.log` attachment when they do not fit, under a header naming the window and
//! the filters. Pure: the command and the follow loop send what this renders.

use std::time::Duration;

use chrono::{DateTime, Utc};
use klaxon_core::chat::{chars, limits, neutralize, truncate};
use klaxon_core::logs::{Bound, LogLine, Query, Snapshot, Streams};

use super::MAX_FILE_BYTES;

/// What a `/logs` answer looks like.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub content: String,
    /// `(filename, bytes)` when the lines do not fit inline.
    pub file: Option<(String, Vec<u8>)>,
}

/// `1,234`.
pub(super) fn count(n: u64) -> String {
    let digits: Vec<char> = n.to_string().chars().collect();
    let groups: Vec<String> = digits
        .rchunks(3)
        .rev()
        .map(|g| g.iter().collect())
        .collect();
    groups.join(",")
}

fn size(bytes: usize) -> String {
    match bytes {
        b if b >= 1024 * 1024 => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
        b if b >= 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} bytes"),
    }
}

/// `10m`, `1h30m`, `2d`.
pub(super) fn compact(d: Duration) -> String {
    let mut s = d.as_secs();
    if s == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if s >= len {
            out.push_str(&format!("{}{unit}", s / len));
            s %= len;
        }
    }
    out
}

fn when(b: &Bound) -> String {
    match b.ago {
        Some(d) if d.is_zero() => "now".into(),
        Some(d) => format!("{} ago", compact(d)),
        None => b.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    }
}

/// `last 10m`, `from … to …`, `whole log`.
pub fn window(q: &Query) -> String {
    match (&q.since, &q.until) {
        (None, None) => "whole log".into(),
        (Some(s), None) => match s.ago {
            Some(d) if !d.is_zero() => format!("last {}", compact(d)),
            _ => format!("since {}", when(s)),
        },
        (None, Some(u)) => format!("until {}", when(u)),
        (Some(s), Some(u)) => format!("from {} to {}", when(s), when(u)),
    }
}

/// Inline code that survives any text: a span delimited by double backticks.
fn code(s: &str) -> String {
    format!(
        "`` {} ``",
        neutralize(&truncate(s, 100)).replace("``", "`\u{200b}`")
    )
}

/// `grep ``ERROR`` · level ≥ warn · stderr only`, empty without filters.
pub fn filters(q: &Query) -> String {
    let mut parts = Vec::new();
    if let Some(g) = &q.grep {
        parts.push(format!("grep {}", code(&g.text)));
    }
    if let Some(l) = q.level {
        parts.push(format!("level ≥ {}", l.as_str()));
    }
    if q.streams != Streams::Both {
        parts.push(format!("{} only", q.streams.as_str()));
    }
    parts.join(" · ")
}

pub(super) fn header(service: &str, q: &Query) -> String {
    let mut h = format!("📜 **{}** · {}", neutralize(service), window(q));
    let f = filters(q);
    if !f.is_empty() {
        h.push_str(" · ");
        h.push_str(&f);
    }
    h
}

/// `19:41:43 text`, made safe for a code block.
fn inline_line(l: &LogLine) -> String {
    let ts =
        l.at.map(|t| t.format("%H:%M:%S ").to_string())
            .unwrap_or_default();
    // Code blocks need no other escaping; fences and mentions are neutralised.
    neutralize(&format!("{ts}{}", l.text))
}

/// The timestamp a file line starts with: `2026-11-23T19:41:43.123Z `.
fn file_ts(l: &LogLine) -> String {
    l.at.map(|t| {
        format!(
            "{} ",
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        )
    })
    .unwrap_or_default()
}

/// The lines at the end that fit into `budget` characters, as a code block
/// (without the fences), and how many that is. Only those lines are rendered.
pub(super) fn tail_block<'a>(
    lines: impl DoubleEndedIterator<Item = &'a LogLine>,
    budget: usize,
) -> (String, usize) {
    let mut used = 0;
    let mut tail = Vec::new();
    for l in lines.rev() {
        let line = inline_line(l);
        let c = chars(&line) + 1;
        if used + c > budget {
            break;
        }
        used += c;
        tail.push(line);
    }
    tail.reverse();
    let n = tail.len();
    (tail.join("\n"), n)
}

/// The answer to a read: header, then the lines inline when they fit in one
/// message, else as a `.log` file with the last lines previewed inline.
pub fn render(service: &str, q: &Query, snap: &Snapshot, now: DateTime<Utc>) -> Rendered {
    let shown = snap.lines.len() as u64;
    let mut head = header(service, q);
    head.push('\n');
    head.push_str(&match snap.matched {
        _ if shown == 0 => "No matching lines.".to_string(),
        Some(m) => format!(
            "{} of {} matching line{}",
            count(shown),
            count(m),
            if m == 1 { "" } else { "s" }
        ),
        None => format!("the last {} lines", count(shown)),
    });
    if let Some(d) = snap.cut_short {
        let upto = snap
            .read_up_to
            .map(|t| format!(", at the lines of {}", t.format("%Y-%m-%d %H:%M:%S UTC")))
            .unwrap_or_default();
        head.push_str(&format!(
            "\n⚠️ Stopped reading after {} s{upto}: these are the last matches up to there. Narrow the window with `since` / `until`.",
            d.as_secs()
        ));
    }
    if shown == 0 {
        return Rendered {
            content: truncate(&head, limits::CONTENT),
            file: None,
        };
    }
    // A character takes at most four bytes: lines with more than four times a
    // message's characters cannot fit, and are not rendered inline at all (5,000
    // long lines would be copied once more for nothing).
    let bytes: usize = snap.lines.iter().map(|l| l.text.len() + 1).sum();
    if bytes <= 4 * limits::CONTENT {
        let inline: Vec<String> = snap.lines.iter().map(inline_line).collect();
        let fences = "\n```\n".len() + "\n```".len();
        let total: usize = inline.iter().map(|l| chars(l) + 1).sum();
        if chars(&head) + fences + total <= limits::CONTENT {
            return Rendered {
                content: format!("{head}\n```\n{}\n```", inline.join("\n")),
                file: None,
            };
        }
    }

    // Too long for a message: the whole answer goes into a file, newest lines kept
    // when even that is too big for Discord.
    let file_head = format!(
        "# Klaxon /logs {service} · {} {}\n# {} line(s) shown{}\n",
        window(q),
        plain_filters(q),
        count(shown),
        snap.matched
            .map(|m| format!(" of {} matching", count(m)))
            .unwrap_or_default()
    );
    // Written straight into the file's bytes: the lines are not copied into an
    // intermediate list first.
    let stamps: Vec<String> = snap.lines.iter().map(file_ts).collect();
    let len = |i: usize| stamps[i].len() + snap.lines[i].text.len() + 1;
    let mut budget = MAX_FILE_BYTES - file_head.len() - 200;
    let mut first = snap.lines.len();
    while first > 0 && len(first - 1) <= budget {
        budget -= len(first - 1);
        first -= 1;
    }
    let left_out_bytes: usize = (0..first).map(len).sum();
    let kept_bytes: usize = (first..snap.lines.len()).map(len).sum();
    let mut data = Vec::with_capacity(file_head.len() + 300 + kept_bytes);
    data.extend_from_slice(file_head.as_bytes());
    let mut note = String::new();
    if first > 0 {
        note = format!(
            "{} earlier line(s) ({}) left out: Discord takes files up to 10 MiB.",
            count(first as u64),
            size(left_out_bytes)
        );
        data.extend_from_slice(format!("# {note}\n").as_bytes());
    }
    for (stamp, l) in stamps[first..].iter().zip(&snap.lines[first..]) {
        data.extend_from_slice(stamp.as_bytes());
        data.extend_from_slice(l.text.as_bytes());
        data.push(b'\n');
    }
    let filename = format!(
        "{}-{}.log",
        service
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            })
            .collect::<String>(),
        now.format("%Y%m%d-%H%M%S")
    );
    let mut content = format!(
        "{head}\nAll of them are in `{filename}` ({}).",
        size(data.len())
    );
    if !note.is_empty() {
        content.push_str(&format!("\n⚠️ {note}"));
    }
    // A preview for phones: the newest lines that fit.
    let fences = "\n```\n".len() + "\n```".len();
    let budget = limits::CONTENT.saturating_sub(chars(&content) + fences + 20);
    let (preview, n) = tail_block(snap.lines.iter(), budget.min(1_500));
    if n > 0 {
        content.push_str(&format!("\nThe last {n}:\n```\n{preview}\n```"));
    }
    Rendered {
        content: truncate(&content, limits::CONTENT),
        file: Some((filename, data)),
    }
}

/// The filters for the file's header, without Discord markdown.
fn plain_filters(q: &Query) -> String {
    let mut parts = Vec::new();
    if let Some(g) = &q.grep {
        parts.push(format!("grep {}", g.text));
    }
    if let Some(l) = q.level {
        parts.push(format!("level >= {}", l.as_str()));
    }
    if q.streams != Streams::Both {
        parts.push(format!("{} only", q.streams.as_str()));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("· {}", parts.join(" · "))
    }
}
