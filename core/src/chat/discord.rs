//! How Discord shows a [`Text`] and a [`ChatMessage`]'s content: the one place that
//! writes Discord's mention and timestamp syntax (`<@…>`, `<@&…>`, `<#…>`,
//! `<t:…:R>`).
//!
//! Domain modules say what they mean ([`Span`]s, [`ChatMessage::page`]); the Discord
//! adapter (`bot/src/discord/chat.rs`), the slash commands' replies and the fast test
//! world all render through these functions, so they show the very same strings. It
//! lives beside the chat model, not in the bot, because commands and core's test world
//! need it too and neither may depend on the bot.

use super::{limits, truncate, ChatMessage, Span, Text};

/// One piece as Discord shows it.
pub fn span(s: &Span) -> String {
    match s {
        Span::Literal(s) => s.clone(),
        Span::User(id) => format!("<@{id}>"),
        Span::Channel(id) => format!("<#{id}>"),
        Span::Role(id) => format!("<@&{id}>"),
        Span::RelativeTime(ms) => format!("<t:{}:R>", ms.div_euclid(1_000)),
    }
}

/// A whole text as Discord shows it (not cut to any limit).
pub fn text(t: &Text) -> String {
    t.spans().iter().map(span).collect()
}

/// A message's content as Discord gets it: the paged role's mention first, then the
/// text, cut to Discord's content limit.
pub fn content(m: &ChatMessage) -> String {
    let body = text(&m.content);
    let full = match m.page {
        Some(role) if body.is_empty() => span(&Span::Role(role)),
        Some(role) => format!("{} {body}", span(&Span::Role(role))),
        None => body,
    };
    truncate(&full, limits::CONTENT)
}

/// The roles a message may ping: the one it pages (and, for outbox rows written
/// before `page` existed, the roles they listed).
pub fn ping_roles(m: &ChatMessage) -> Vec<u64> {
    m.page
        .into_iter()
        .chain(m.ping_roles.iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_render_as_discord_syntax_and_literals_stay_literal() {
        let t = Text::from("⏰ ")
            .with(Span::User(11))
            .with(" in ")
            .with(Span::Channel(5))
            .with(", ")
            .with(Span::Role(7))
            .with(" starts ")
            .with(Span::RelativeTime(1_999))
            .with(" <@1> as typed");
        assert_eq!(
            text(&t),
            "⏰ <@11> in <#5>, <@&7> starts <t:1:R> <@1> as typed"
        );
        assert_eq!(text(&Span::RelativeTime(-1).into()), "<t:-1:R>");
    }

    #[test]
    fn the_paged_role_comes_first_and_the_content_fits() {
        let mut m = ChatMessage::text("x".repeat(3_000));
        m.page = Some(42);
        let shown = content(&m);
        assert!(shown.starts_with("<@&42> xxx"), "{shown}");
        assert_eq!(shown.chars().count(), limits::CONTENT);
        assert_eq!(ping_roles(&m), [42]);

        let bare = ChatMessage {
            page: Some(42),
            ..Default::default()
        };
        assert_eq!(content(&bare), "<@&42>");
        assert_eq!(content(&ChatMessage::default()), "");
    }

    /// An outbox row written before `page` existed carries the mention in its
    /// content and the role in `ping_roles`: it is sent exactly as before.
    #[test]
    fn an_older_outbox_row_reads_and_renders_as_before() {
        let m: ChatMessage =
            serde_json::from_str(r#"{"content":"<@&42>","ping_roles":[42],"silent":false}"#)
                .unwrap_or_default();
        assert_eq!(content(&m), "<@&42>");
        assert_eq!(ping_roles(&m), [42]);
    }
}
