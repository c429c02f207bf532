//! The audit mirror: every command run posted to the audit channel; an operation
//! (`/rollback`, `/restart`) as ONE message edited step by step
//! ([`crate::audit::Operations`]), denials and one-shot commands one line each.
//!
//! A subscriber of the [domain events](crate::events) (registered by
//! `App::builder()`), apart from `audit` because it needs the `App` (the channel,
//! the chat sink) and `app` imports `audit`. The posts go out in the background:
//! a member's reply never waits on the audit channel's rate limit. An operation's
//! steps that arrive while its message is being sent are edited in together: one
//! edit, not one per step.

use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::warn;

use crate::app::App;
use crate::audit::{self, AuditEntry, Post};
use crate::chat::{ChatMessage, ChatSink};
use crate::events::{Event, Handling};

/// Posts a [`Event::CommandRun`] to the audit channel, if there is one.
pub fn audit_mirror<'a>(app: &'a App, event: &'a Event) -> Handling<'a> {
    if let (Event::CommandRun(entry), Some(channel)) = (event, app.audit_channel) {
        let chat = Arc::clone(&app.chat);
        match app.audit_operations.add(entry.clone(), app.clock.now_ms()) {
            Post::Joined => {}
            Post::Opened(rx) => {
                tokio::spawn(operation(chat, channel, rx));
            }
            Post::Alone => {
                let message = ChatMessage {
                    silent: true,
                    ..ChatMessage::text(entry.summary())
                };
                tokio::spawn(async move {
                    if let Err(e) = chat.send(channel, message).await {
                        warn!(error = %e, channel, "audit mirror to Discord failed");
                    }
                });
            }
        }
    }
    Box::pin(std::future::ready(()))
}

/// One operation's message: posted with its first line, edited as steps arrive
/// (all that arrived meanwhile in one edit), until the operation ends.
async fn operation(
    chat: Arc<dyn ChatSink>,
    channel: u64,
    mut rx: mpsc::UnboundedReceiver<AuditEntry>,
) {
    let mut entries = Vec::new();
    let mut id = None;
    while let Some(e) = rx.recv().await {
        entries.push(e);
        while let Ok(e) = rx.try_recv() {
            entries.push(e);
        }
        let message = ChatMessage {
            silent: true,
            ..ChatMessage::text(audit::operation_text(&entries))
        };
        match id {
            None => match chat.send(channel, message).await {
                Ok(posted) => id = Some(posted),
                Err(e) => warn!(error = %e, channel, "audit mirror to Discord failed"),
            },
            Some(posted) => {
                if let Err(e) = chat.edit(channel, posted, message).await {
                    warn!(error = %e, channel, message = posted, "audit step not edited into its message");
                }
            }
        }
    }
}
