//! [`ChatSink`] over serenity: how `klaxon-core` posts to Discord.

use std::sync::Arc;

use async_trait::async_trait;
use klaxon_core::chat::{ChatError, ChatMessage, ChatSink};
use poise::serenity_prelude as serenity;
use serenity::{ChannelId, CreateAllowedMentions, CreateMessage, MessageFlags};

pub struct DiscordChat {
    pub http: Arc<serenity::Http>,
}

#[async_trait]
impl ChatSink for DiscordChat {
    async fn send(&self, channel_id: u64, message: ChatMessage) -> Result<u64, ChatError> {
        let mut b = CreateMessage::new()
            .embeds(
                message
                    .embeds
                    .iter()
                    .map(klaxon_commands::render::embed)
                    .collect(),
            )
            .allowed_mentions(CreateAllowedMentions::new());
        if !message.content.is_empty() {
            b = b.content(message.content);
        }
        if message.silent {
            b = b.flags(MessageFlags::SUPPRESS_NOTIFICATIONS);
        }
        ChannelId::new(channel_id)
            .send_message(&self.http, b)
            .await
            .map(|m| m.id.get())
            .map_err(classify)
    }
}

fn classify(e: serenity::Error) -> ChatError {
    match &e {
        serenity::Error::Http(serenity::HttpError::UnsuccessfulRequest(r)) => {
            match r.status_code.as_u16() {
                404 => ChatError::UnknownChannel,
                400..=499 => ChatError::Rejected(format!("{} {}", r.status_code, r.error.message)),
                _ => ChatError::Unavailable(format!("{} {}", r.status_code, r.error.message)),
            }
        }
        _ => ChatError::Unavailable(e.to_string()),
    }
}
