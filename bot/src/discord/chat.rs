//! [`ChatSink`] over serenity: how `klaxon-core` posts to Discord.
//!
//! Core's messages say what they mean (typed references, the role they page); the
//! content is written in Discord's syntax here, by [`discord::content`], the same
//! function the commands' replies and core's test world use.

use std::sync::Arc;

use async_trait::async_trait;
use klaxon_core::chat::{discord, ButtonStyle, ChatError, ChatMessage, ChatSink, PostedMessage};
use poise::serenity_prelude as serenity;
use serenity::{
    ChannelId, ChannelType, CreateActionRow, CreateAllowedMentions, CreateAttachment, CreateButton,
    CreateChannel, CreateMessage, CreateThread, EditAttachments, EditMessage, GuildId,
    MessageFlags, MessageId, RoleId, UserId,
};

pub struct DiscordChat {
    pub http: Arc<serenity::Http>,
}

/// Nobody is pinged but the role the message pages (and the members it names for
/// pinging).
fn mentions(message: &ChatMessage) -> CreateAllowedMentions {
    CreateAllowedMentions::new()
        .roles(discord::ping_roles(message).into_iter().map(RoleId::new))
        .users(message.ping_users.iter().map(|u| UserId::new(*u)))
}

fn rows(message: &ChatMessage) -> Vec<CreateActionRow> {
    if message.buttons.is_empty() {
        return Vec::new();
    }
    vec![CreateActionRow::Buttons(
        message
            .buttons
            .iter()
            .take(5)
            .map(|b| {
                CreateButton::new(b.custom_id.clone())
                    .label(b.label.clone())
                    .style(match b.style {
                        ButtonStyle::Primary => serenity::ButtonStyle::Primary,
                        ButtonStyle::Secondary => serenity::ButtonStyle::Secondary,
                        ButtonStyle::Success => serenity::ButtonStyle::Success,
                        ButtonStyle::Danger => serenity::ButtonStyle::Danger,
                    })
            })
            .collect(),
    )]
}

fn embeds(message: &ChatMessage) -> Vec<serenity::CreateEmbed> {
    message
        .embeds
        .iter()
        .map(klaxon_commands::discord::embed)
        .collect()
}

#[async_trait]
impl ChatSink for DiscordChat {
    async fn send(&self, channel_id: u64, message: ChatMessage) -> Result<u64, ChatError> {
        let content = discord::content(&message);
        let mut b = CreateMessage::new()
            .embeds(embeds(&message))
            .components(rows(&message))
            .allowed_mentions(mentions(&message));
        if !content.is_empty() {
            b = b.content(content);
        }
        if message.silent {
            b = b.flags(MessageFlags::SUPPRESS_NOTIFICATIONS);
        }
        if let Some(n) = message.nonce {
            b = b.nonce(serenity::Nonce::String(n)).enforce_nonce(true);
        }
        if let Some(f) = message.attachment {
            b = b.add_file(CreateAttachment::bytes(f.content.into_bytes(), f.name));
        }
        ChannelId::new(channel_id)
            .send_message(&self.http, b)
            .await
            .map(|m| m.id.get())
            .map_err(classify)
    }

    async fn edit(
        &self,
        channel_id: u64,
        message_id: u64,
        message: ChatMessage,
    ) -> Result<(), ChatError> {
        let mut b = EditMessage::new()
            .content(discord::content(&message))
            .embeds(embeds(&message))
            .components(rows(&message))
            .allowed_mentions(mentions(&message));
        // The new file replaces the old one; without one, the old one goes.
        b = match message.attachment {
            Some(f) => b.attachments(
                EditAttachments::new().add(CreateAttachment::bytes(f.content.into_bytes(), f.name)),
            ),
            None => b.attachments(EditAttachments::new()),
        };
        ChannelId::new(channel_id)
            .edit_message(&self.http, MessageId::new(message_id), b)
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn create_thread(&self, channel_id: u64, name: &str) -> Result<u64, ChatError> {
        let b = CreateThread::new(klaxon_core::chat::truncate(name, 100))
            .kind(ChannelType::PublicThread)
            .auto_archive_duration(serenity::AutoArchiveDuration::OneWeek);
        ChannelId::new(channel_id)
            .create_thread(&self.http, b)
            .await
            .map(|c| c.id.get())
            .map_err(classify)
    }

    async fn create_channel(
        &self,
        guild_id: u64,
        name: &str,
        category: Option<u64>,
    ) -> Result<u64, ChatError> {
        let mut b =
            CreateChannel::new(klaxon_core::chat::truncate(name, 100)).kind(ChannelType::Text);
        if let Some(c) = category {
            b = b.category(ChannelId::new(c));
        }
        GuildId::new(guild_id)
            .create_channel(&self.http, b)
            .await
            .map(|c| c.id.get())
            .map_err(classify)
    }

    async fn fetch(&self, channel_id: u64, message_id: u64) -> Result<PostedMessage, ChatError> {
        let m = ChannelId::new(channel_id)
            .message(&self.http, MessageId::new(message_id))
            .await
            .map_err(classify)?;
        Ok(klaxon_commands::discord::posted(&m))
    }

    async fn open_dm(&self, user_id: u64) -> Result<u64, ChatError> {
        UserId::new(user_id)
            .create_dm_channel(&self.http)
            .await
            .map(|c| c.id.get())
            .map_err(classify)
    }

    async fn is_member(&self, guild_id: u64, user_id: u64) -> Result<bool, ChatError> {
        match self
            .http
            .get_member(GuildId::new(guild_id), UserId::new(user_id))
            .await
        {
            Ok(_) => Ok(true),
            // 404 Unknown Member (10007) or Unknown User (10013).
            Err(e) if status_of(&e) == Some(404) => Ok(false),
            Err(e) => Err(classify(e)),
        }
    }

    async fn member_roles(
        &self,
        guild_id: u64,
        user_id: u64,
    ) -> Result<Option<Vec<u64>>, ChatError> {
        match self
            .http
            .get_member(GuildId::new(guild_id), UserId::new(user_id))
            .await
        {
            Ok(m) => Ok(Some(m.roles.iter().map(|r| r.get()).collect())),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(classify(e)),
        }
    }

    async fn add_role(
        &self,
        guild_id: u64,
        user_id: u64,
        role_id: u64,
        reason: &str,
    ) -> Result<(), ChatError> {
        self.http
            .add_member_role(
                GuildId::new(guild_id),
                UserId::new(user_id),
                RoleId::new(role_id),
                Some(reason),
            )
            .await
            .map_err(classify)
    }

    async fn remove_role(
        &self,
        guild_id: u64,
        user_id: u64,
        role_id: u64,
        reason: &str,
    ) -> Result<(), ChatError> {
        self.http
            .remove_member_role(
                GuildId::new(guild_id),
                UserId::new(user_id),
                RoleId::new(role_id),
                Some(reason),
            )
            .await
            .map_err(classify)
    }

    async fn recent_own(
        &self,
        channel_id: u64,
        limit: u8,
    ) -> Result<Vec<PostedMessage>, ChatError> {
        // Rare (a create retried after Discord's nonce window): one more request for
        // who Klaxon is costs nothing worth caching.
        let me = self.http.get_current_user().await.map_err(classify)?.id;
        let got = ChannelId::new(channel_id)
            .messages(
                &self.http,
                serenity::GetMessages::new().limit(limit.min(100)),
            )
            .await
            .map_err(classify)?;
        Ok(got
            .iter()
            .filter(|m| m.author.id == me)
            .map(klaxon_commands::discord::posted)
            .collect())
    }
}

fn status_of(e: &serenity::Error) -> Option<u16> {
    match e {
        serenity::Error::Http(serenity::HttpError::UnsuccessfulRequest(r)) => {
            Some(r.status_code.as_u16())
        }
        _ => None,
    }
}

fn classify(e: serenity::Error) -> ChatError {
    match &e {
        serenity::Error::Http(serenity::HttpError::UnsuccessfulRequest(r)) => {
            match r.status_code.as_u16() {
                // A DM refused: kept recognizable (`ChatError::is_dm_closed`).
                403 if r.error.code == 50007 => ChatError::Rejected(format!(
                    "{} {}",
                    klaxon_core::chat::DM_CLOSED,
                    r.error.message
                )),
                404 => ChatError::UnknownChannel,
                401 => ChatError::Unauthorized,
                400..=499 => ChatError::Rejected(format!("{} {}", r.status_code, r.error.message)),
                _ => ChatError::Unavailable(format!("{} {}", r.status_code, r.error.message)),
            }
        }
        _ => ChatError::Unavailable(e.to_string()),
    }
}
