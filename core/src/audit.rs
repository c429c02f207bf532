//! The audit log: every invocation, allowed or denied.
//!
//! The audit table keeps one row per invocation and per step of an operation. The
//! audit channel shows an operation (a `/rollback`, a `/restart`: the command,
//! its confirmation and each step) as ONE message edited step by step
//! ([`Operations`]), so that five steps are not five messages on a phone; denials
//! and one-shot commands stay one line each.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::chat::{Span, Text};
use serde::Serialize;
use tokio::sync::mpsc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Ran and succeeded.
    Ok,
    /// Refused by Klaxon's permission check.
    Denied,
    /// Ran, and the member got an explanation (bad input, unknown service...).
    UserError,
    /// Ran and failed inside Klaxon or a backend.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::UserError => "user_error",
            Outcome::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        [
            Outcome::Ok,
            Outcome::Denied,
            Outcome::UserError,
            Outcome::Failed,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// Milliseconds since the Unix epoch, UTC.
    pub at_ms: i64,
    pub guild_id: Option<u64>,
    pub channel_id: Option<u64>,
    pub user_id: u64,
    pub user_name: String,
    /// Qualified command name, e.g. `health` or `incident open`.
    pub command: String,
    /// Arguments as the member gave them, `name=value` separated by spaces.
    pub arguments: String,
    pub outcome: Outcome,
    /// A short reason for anything but `Ok`.
    pub detail: String,
    pub duration_ms: i64,
}

impl AuditEntry {
    /// The `service=` argument, for commands that act on one service.
    pub fn service(&self) -> Option<&str> {
        self.arguments
            .split(' ')
            .find_map(|a| a.strip_prefix("service="))
            .filter(|s| !s.is_empty())
    }

    /// One line for the audit channel, naming the member; the mention never pings,
    /// because the mirror allows no mentions. Cut to the content limit when shown.
    pub fn summary(&self) -> Text {
        let mark = match self.outcome {
            Outcome::Ok => "✅",
            Outcome::Denied => "⛔",
            Outcome::UserError => "⚠️",
            Outcome::Failed => "❌",
        };
        let args = if self.arguments.is_empty() {
            String::new()
        } else {
            format!(" {}", self.arguments)
        };
        let detail = if self.detail.is_empty() {
            String::new()
        } else {
            format!(": {}", self.detail)
        };
        Text::from(format!("{mark} "))
            .with(Span::User(self.user_id))
            .with(format!(
                " `/{}{}` {}{} ({} ms)",
                self.command,
                args.replace('`', "'"),
                self.outcome.as_str(),
                detail,
                self.duration_ms
            ))
    }
}

/// Commands whose runs are operations: the command, its confirmation and its steps
/// share one audit message.
pub const OPERATIONS: [&str; 2] = ["rollback", "restart"];

/// An operation's message takes steps this long after its last one (plans expire
/// sooner; Discord caps edits of messages older than an hour).
pub const OPEN_FOR_MS: i64 = 15 * 60 * 1_000;

/// Which operation an entry belongs to (`rollback api`): a command of
/// [`OPERATIONS`] against a service, not refused by the permission check.
pub fn operation_key(e: &AuditEntry) -> Option<String> {
    let top = e.command.split(' ').next().unwrap_or_default();
    if !OPERATIONS.contains(&top) || e.outcome == Outcome::Denied {
        return None;
    }
    e.service()
        .map(|s| format!("{top} {}", s.to_ascii_lowercase()))
}

/// Whether an entry is an operation's last: its end as the deployment history
/// records it (`succeeded:`, `reverted:`, `failed:`, `interrupted:`), a cancel or
/// an expiry.
pub fn ends_operation(e: &AuditEntry) -> bool {
    [
        "succeeded:",
        "reverted:",
        "failed:",
        "interrupted:",
        "expired",
    ]
    .iter()
    .any(|p| e.detail.starts_with(p))
        || e.detail == "cancelled"
}

/// An operation's audit message: the command's line, then one line per step (the
/// member named again only when another one acts), within Discord's content
/// limit: the middle steps give way first.
pub fn operation_text(entries: &[AuditEntry]) -> Text {
    const LIMIT: usize = crate::chat::limits::CONTENT - 100;
    let Some(first) = entries.first() else {
        return Text::new();
    };
    let steps: Vec<Text> = entries
        .windows(2)
        .map(|pair| {
            let (before, e) = (&pair[0], &pair[1]);
            let mark = mark(e.outcome);
            let mut t = Text::from(format!("↳ {mark} "));
            if e.user_id != before.user_id {
                t.push(Span::User(e.user_id));
                t.push(" ");
            }
            t.push(format!(
                "{} ({} ms)",
                crate::chat::truncate(&e.detail.replace('`', "'"), 200),
                e.duration_ms
            ));
            t
        })
        .collect();
    // Rough size: a mention is about 22 characters.
    let size = |t: &Text| {
        t.spans()
            .iter()
            .map(|s| match s {
                Span::Literal(l) => crate::chat::chars(l),
                _ => 22,
            })
            .sum::<usize>()
            + 1
    };
    let mut out = first.summary();
    let used = size(&out);
    let tail_room: usize = steps.iter().map(size).sum();
    let (mut head, mut skipped) = (steps.len(), 0);
    if used + tail_room > LIMIT {
        // Keep the last steps (where it stands now); say how many gave way.
        let mut room = LIMIT.saturating_sub(used + 40);
        head = steps.len();
        while head > 0 && size(&steps[head - 1]) <= room {
            room -= size(&steps[head - 1]);
            head -= 1;
        }
        skipped = head;
    }
    if skipped > 0 {
        out.push(format!(
            "\n↳ … {skipped} earlier steps (all in the audit log)"
        ));
    }
    for s in &steps[if skipped > 0 { head } else { 0 }..] {
        out.push("\n");
        for span in s.spans() {
            out.push(span.clone());
        }
    }
    out
}

fn mark(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "✅",
        Outcome::Denied => "⛔",
        Outcome::UserError => "⚠️",
        Outcome::Failed => "❌",
    }
}

/// What the audit channel does with an entry.
#[derive(Debug)]
pub enum Post {
    /// One line of its own.
    Alone,
    /// The first of an operation: post it, then edit in what the receiver brings
    /// (it closes when the operation ends).
    Opened(mpsc::UnboundedReceiver<AuditEntry>),
    /// Handed to the operation's open message.
    Joined,
}

struct Open {
    tx: mpsc::UnboundedSender<AuditEntry>,
    last_ms: i64,
}

/// The operations whose audit message is open, by [`operation_key`]. Held by the
/// `App`; the audit mirror posts and edits.
#[derive(Default)]
pub struct Operations {
    open: Mutex<HashMap<String, Open>>,
}

impl std::fmt::Debug for Operations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operations").finish_non_exhaustive()
    }
}

impl Operations {
    /// Where `entry` goes: into its operation's open message, a new operation's
    /// message (the command's own line opens one: it has no step detail yet), or a
    /// line of its own.
    pub fn add(&self, entry: AuditEntry, now_ms: i64) -> Post {
        let Some(key) = operation_key(&entry) else {
            return Post::Alone;
        };
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|_, o| now_ms - o.last_ms < OPEN_FOR_MS && !o.tx.is_closed());
        let end = ends_operation(&entry);
        if let Some(o) = open.get_mut(&key) {
            o.last_ms = now_ms;
            let sent = o.tx.send(entry).is_ok();
            if end || !sent {
                open.remove(&key);
            }
            return Post::Joined;
        }
        if entry.outcome != Outcome::Ok || !entry.detail.is_empty() {
            return Post::Alone;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(entry);
        open.insert(
            key,
            Open {
                tx,
                last_ms: now_ms,
            },
        );
        Post::Opened(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(command: &str, outcome: Outcome, detail: &str) -> AuditEntry {
        AuditEntry {
            at_ms: 0,
            guild_id: None,
            channel_id: None,
            user_id: 5,
            user_name: "bob".into(),
            command: command.into(),
            arguments: "service=api to=img:v1".into(),
            outcome,
            detail: detail.into(),
            duration_ms: 3,
        }
    }

    fn text(t: &Text) -> String {
        crate::chat::discord::content(&crate::chat::ChatMessage::text(t.clone()))
    }

    #[test]
    fn an_operation_is_one_message_and_denials_stay_alone() {
        let ops = Operations::default();
        let Post::Opened(mut rx) = ops.add(entry("rollback", Outcome::Ok, ""), 0) else {
            panic!("the command opens its operation");
        };
        assert!(matches!(
            ops.add(entry("rollback", Outcome::Denied, "no role"), 1),
            Post::Alone
        ));
        assert!(matches!(
            ops.add(entry("health", Outcome::Ok, ""), 1),
            Post::Alone
        ));
        for step in ["confirmed: by bob", "stopped: x", "succeeded: done in 3 s"] {
            assert!(matches!(
                ops.add(entry("rollback", Outcome::Ok, step), 2),
                Post::Joined
            ));
        }
        let mut got = Vec::new();
        while let Ok(e) = rx.try_recv() {
            got.push(e);
        }
        assert_eq!(got.len(), 4);
        assert!(rx.try_recv().is_err(), "closed once it ended");
        let shown = text(&operation_text(&got));
        assert_eq!(shown.lines().count(), 4, "{shown}");
        assert!(
            shown.contains("↳ ✅ succeeded: done in 3 s (3 ms)"),
            "{shown}"
        );
        // Ended: the next step line (a stale click) stands alone.
        assert!(matches!(
            ops.add(
                entry(
                    "rollback",
                    Outcome::UserError,
                    "click after the plan was gone"
                ),
                3
            ),
            Post::Alone
        ));
        // A stale plan nobody confirmed gives way to a new operation.
        assert!(matches!(
            ops.add(entry("restart", Outcome::Ok, ""), 4),
            Post::Opened(_)
        ));
        assert!(matches!(
            ops.add(entry("restart", Outcome::Ok, ""), 5 + OPEN_FOR_MS),
            Post::Opened(_)
        ));
    }

    #[test]
    fn a_long_operation_keeps_its_first_and_last_lines_within_the_limit() {
        let mut all = vec![entry("rollback", Outcome::Ok, "")];
        for i in 0..100 {
            all.push(entry(
                "rollback",
                Outcome::Ok,
                &format!("step {i}: {}", "x".repeat(150)),
            ));
        }
        let shown = text(&operation_text(&all));
        assert!(
            crate::chat::chars(&shown) <= crate::chat::limits::CONTENT - 50,
            "{}",
            shown.len()
        );
        assert!(shown.contains("`/rollback service=api to=img:v1`"));
        assert!(shown.contains("step 99:") && !shown.contains("step 0:"));
        assert!(shown.contains("earlier steps (all in the audit log)"));
    }
}
