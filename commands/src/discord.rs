//! Klaxon's platform-neutral chat types as Discord (serenity) takes and gives them:
//! what the commands' replies and the bot's chat adapter share. It knows nothing of
//! commands, so the bot's `ChatSink` can use it without depending on them.

use klaxon_core::chat::{Embed, PostedMessage};

use crate::serenity::{self, CreateEmbed, CreateEmbedFooter};

pub fn embed(e: &Embed) -> CreateEmbed {
    let e = e.clone().fit();
    let mut out = CreateEmbed::new().color(e.color);
    if !e.title.is_empty() {
        out = out.title(e.title);
    }
    if !e.description.is_empty() {
        out = out.description(e.description);
    }
    if !e.fields.is_empty() {
        out = out.fields(e.fields.into_iter().map(|f| (f.name, f.value, f.inline)));
    }
    if !e.footer.is_empty() {
        out = out.footer(CreateEmbedFooter::new(e.footer));
    }
    out
}

/// The message as the timeline keeps it.
pub fn posted(m: &serenity::Message) -> PostedMessage {
    PostedMessage {
        id: m.id.get(),
        channel_id: m.channel_id.get(),
        author_id: m.author.id.get(),
        author_name: m.author.name.clone(),
        content: m.content.clone(),
        at_ms: m.timestamp.unix_timestamp() * 1000
            + i64::from(chrono::Timelike::nanosecond(&*m.timestamp) / 1_000_000),
        attachment_urls: m.attachments.iter().map(|a| a.url.clone()).collect(),
        embed_titles: m
            .embeds
            .iter()
            .map(|e| e.title.clone().unwrap_or_default())
            .collect(),
    }
}
