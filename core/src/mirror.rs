//! The audit mirror: every command run, posted as one line to the audit channel.
//!
//! A subscriber of the [domain events](crate::events) (registered by
//! `App::builder()`), apart from `audit` because it needs the `App` (the channel,
//! the chat sink) and `app` imports `audit`. The post goes out in the background:
//! a member's reply never waits on the audit channel's rate limit.

use std::sync::Arc;

use tracing::warn;

use crate::app::App;
use crate::chat::ChatMessage;
use crate::events::{Event, Handling};

/// Posts a [`Event::CommandRun`] to the audit channel, if there is one.
pub fn audit_mirror<'a>(app: &'a App, event: &'a Event) -> Handling<'a> {
    if let (Event::CommandRun(entry), Some(channel)) = (event, app.audit_channel) {
        let chat = Arc::clone(&app.chat);
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
    Box::pin(std::future::ready(()))
}
