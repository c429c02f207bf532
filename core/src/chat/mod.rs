//! What Klaxon says to chat, independent of the chat platform.
//!
//! The bot implements [`ChatSink`] over Discord; the limits here are Discord's, so
//! every message the domain builds fits before it reaches the transport.
//!
//! A message's text says what it means ([`Text`]: literal pieces and typed
//! references to members, channels, roles and moments) and which role it pages;
//! [`discord`] is the one place that turns that into Discord's syntax.

pub mod discord;
mod text;

use async_trait::async_trait;
use serde::Serialize;

pub use text::{Span, Text};

/// Discord's limits on one message (see shared/discord-facts.md).
pub mod limits {
    pub const CONTENT: usize = 2_000;
    pub const EMBEDS: usize = 10;
    pub const EMBED_TITLE: usize = 256;
    pub const EMBED_DESCRIPTION: usize = 4_096;
    pub const EMBED_FIELDS: usize = 25;
    pub const FIELD_NAME: usize = 256;
    pub const FIELD_VALUE: usize = 1_024;
    pub const FOOTER: usize = 2_048;
    /// All embeds of one message together.
    pub const EMBED_TOTAL: usize = 6_000;
}

pub const GREEN: u32 = 0x2e_cc_71;
pub const YELLOW: u32 = 0xf1_c4_0f;
pub const RED: u32 = 0xe7_4c_3c;
pub const GREY: u32 = 0x95_a5_a6;

#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Field {
    pub name: String,
    pub value: String,
    pub inline: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Embed {
    pub title: String,
    pub description: String,
    pub color: u32,
    pub fields: Vec<Field>,
    pub footer: String,
}

impl Embed {
    /// Characters Discord counts toward the 6,000 total.
    pub fn size(&self) -> usize {
        chars(&self.title)
            + chars(&self.description)
            + chars(&self.footer)
            + self
                .fields
                .iter()
                .map(|f| chars(&f.name) + chars(&f.value))
                .sum::<usize>()
    }

    /// Cuts every part to its own limit (with an ellipsis), so a message built from
    /// untrusted text can never be refused by Discord.
    pub fn fit(mut self) -> Self {
        self.title = truncate(&self.title, limits::EMBED_TITLE);
        self.description = truncate(&self.description, limits::EMBED_DESCRIPTION);
        self.footer = truncate(&self.footer, limits::FOOTER);
        self.fields.truncate(limits::EMBED_FIELDS);
        for f in &mut self.fields {
            f.name = truncate(&f.name, limits::FIELD_NAME);
            f.value = truncate(&f.value, limits::FIELD_VALUE);
            if f.name.is_empty() {
                f.name = "\u{200b}".into();
            }
            if f.value.is_empty() {
                f.value = "\u{200b}".into();
            }
        }
        self
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum ButtonStyle {
    #[default]
    Secondary,
    Primary,
    Success,
    Danger,
}

/// A button under a message; clicks come back to the bot by `custom_id`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Button {
    pub custom_id: String,
    pub label: String,
    pub style: ButtonStyle,
}

/// A message to a channel. Serializable, so the alert outbox can store it before it
/// is sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ChatMessage {
    /// The text above the embeds. Shown after the paged role, cut to
    /// [`limits::CONTENT`] by the adapter ([`discord::content`]).
    pub content: Text,
    /// The on-call role this message pages: shown first, and the one role allowed
    /// to ping.
    pub page: Option<u64>,
    pub embeds: Vec<Embed>,
    /// Shown without a push notification (Discord's SUPPRESS_NOTIFICATIONS).
    pub silent: bool,
    /// One row of at most five buttons.
    pub buttons: Vec<Button>,
    /// Further roles this message may ping. Klaxon sets [`ChatMessage::page`]
    /// instead; outbox rows written before it existed carry the paged role here
    /// (its mention already in their content). Nothing else ever pings: other
    /// users, other roles and @everyone stay off.
    pub ping_roles: Vec<u64>,
    /// Members this message may ping (a reminder to the incident commander).
    pub ping_users: Vec<u64>,
    /// A text file under the message (the full list of a large alert group). On an
    /// edit it replaces the message's earlier file.
    pub attachment: Option<TextFile>,
    /// With a nonce Discord creates the message at most once (`enforce_nonce`), so
    /// a retry after a crash or a timeout never shows a duplicate. At most 25 chars.
    pub nonce: Option<String>,
}

impl ChatMessage {
    /// A message of text only (cut to Discord's limit when sent).
    pub fn text(content: impl Into<Text>) -> Self {
        ChatMessage {
            content: content.into(),
            ..Default::default()
        }
    }

    /// The message paging `role` (when there is one): its mention comes first.
    pub fn paging(mut self, role: Option<u64>) -> Self {
        self.page = role;
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("the channel does not exist or Klaxon cannot see it")]
    UnknownChannel,
    #[error("Discord refused Klaxon's token (401)")]
    Unauthorized,
    #[error("Discord refused the message: {0}")]
    Rejected(String),
    #[error("Discord is unavailable: {0}")]
    Unavailable(String),
}

/// What a refused direct message starts with: Discord's code 50007, "Cannot send
/// messages to this user" (the member closed DMs or shares no server with Klaxon).
/// Kept inside [`ChatError::Rejected`] so existing matches stay as they are.
pub const DM_CLOSED: &str = "50007";

impl ChatError {
    /// Whether Discord refused a direct message because the member does not take
    /// them (code 50007): nothing tells in advance, and a retry would fail the same.
    pub fn is_dm_closed(&self) -> bool {
        matches!(self, ChatError::Rejected(why) if why.starts_with(DM_CLOSED))
    }
}

/// Where Klaxon's messages go. Implemented over Discord by the bot.
#[async_trait]
pub trait ChatSink: Send + Sync {
    /// Posts a message and returns its id.
    async fn send(&self, channel_id: u64, message: ChatMessage) -> Result<u64, ChatError>;

    /// Replaces a message Klaxon posted earlier.
    async fn edit(
        &self,
        channel_id: u64,
        message_id: u64,
        message: ChatMessage,
    ) -> Result<(), ChatError>;

    /// Starts a public thread in a text channel and returns its id.
    async fn create_thread(&self, channel_id: u64, name: &str) -> Result<u64, ChatError>;

    /// Creates a text channel in a guild (under a category when given) and returns
    /// its id.
    async fn create_channel(
        &self,
        guild_id: u64,
        name: &str,
        category: Option<u64>,
    ) -> Result<u64, ChatError>;

    /// A message someone posted: its text, author and attachments, for the
    /// incident timeline.
    async fn fetch(&self, channel_id: u64, message_id: u64) -> Result<PostedMessage, ChatError>;

    /// Opens (or finds: the same user gives the same channel) the direct-message
    /// channel with a user and returns its id; post into it with [`ChatSink::send`].
    async fn open_dm(&self, user_id: u64) -> Result<u64, ChatError>;

    /// Whether the user is a member of the guild (`false`, not an error, when not).
    async fn is_member(&self, guild_id: u64, user_id: u64) -> Result<bool, ChatError>;

    /// A member's roles in the guild (`None`: not a member): for a click in a DM,
    /// where Discord sends no roles (the page's Acknowledge button).
    async fn member_roles(
        &self,
        _guild_id: u64,
        _user_id: u64,
    ) -> Result<Option<Vec<u64>>, ChatError> {
        Err(ChatError::Unavailable(
            "member roles are not available".into(),
        ))
    }

    /// Gives a member a role (on-call `sync_role`); `reason` goes to the server's
    /// audit log.
    async fn add_role(
        &self,
        guild_id: u64,
        user_id: u64,
        role_id: u64,
        reason: &str,
    ) -> Result<(), ChatError>;

    /// Takes a role from a member.
    async fn remove_role(
        &self,
        guild_id: u64,
        user_id: u64,
        role_id: u64,
        reason: &str,
    ) -> Result<(), ChatError>;

    /// The latest messages of a channel that Klaxon itself posted, newest first, at
    /// most `limit` (up to 100). Discord does not give a message's nonce back here,
    /// so a caller matches on what it can rely on (see the posts worker, `delivery`).
    async fn recent_own(
        &self,
        _channel_id: u64,
        _limit: u8,
    ) -> Result<Vec<PostedMessage>, ChatError> {
        Ok(Vec::new())
    }
}

/// A file of text attached to a message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct TextFile {
    pub name: String,
    pub content: String,
}

/// A chat message as read back from the platform.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PostedMessage {
    pub id: u64,
    pub channel_id: u64,
    pub author_id: u64,
    pub author_name: String,
    pub content: String,
    /// Milliseconds since the epoch, UTC.
    pub at_ms: i64,
    pub attachment_urls: Vec<String>,
    /// The titles of its embeds, in order.
    pub embed_titles: Vec<String>,
}

/// A sink that drops everything: for command-line tools and tests that do not chat.
pub struct NullSink;

#[async_trait]
impl ChatSink for NullSink {
    async fn send(&self, _channel_id: u64, _message: ChatMessage) -> Result<u64, ChatError> {
        Ok(0)
    }
    async fn edit(&self, _: u64, _: u64, _: ChatMessage) -> Result<(), ChatError> {
        Ok(())
    }
    async fn create_thread(&self, _: u64, _: &str) -> Result<u64, ChatError> {
        Ok(0)
    }
    async fn create_channel(&self, _: u64, _: &str, _: Option<u64>) -> Result<u64, ChatError> {
        Ok(0)
    }
    async fn fetch(&self, _: u64, _: u64) -> Result<PostedMessage, ChatError> {
        Err(ChatError::UnknownChannel)
    }
    async fn open_dm(&self, _: u64) -> Result<u64, ChatError> {
        Ok(0)
    }
    async fn is_member(&self, _: u64, _: u64) -> Result<bool, ChatError> {
        Ok(true)
    }
    async fn add_role(&self, _: u64, _: u64, _: u64, _: &str) -> Result<(), ChatError> {
        Ok(())
    }
    async fn remove_role(&self, _: u64, _: u64, _: u64, _: &str) -> Result<(), ChatError> {
        Ok(())
    }
}

pub fn chars(s: &str) -> usize {
    s.chars().count()
}

/// Cuts `s` to at most `max` characters, ending with `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if chars(s) <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Makes untrusted text (log lines, alert labels and annotations, incident titles,
/// member input) show literally in Discord markdown, in content, embeds and code
/// blocks alike:
/// - no run of three backticks survives, anywhere: a zero-width space after every
///   second backtick of a run, and before a leading or after a trailing backtick,
///   so neither the text alone nor the text next to a template's own backticks
///   can open or close a code block;
/// - no masked link: `](` becomes `]\u{200b}(` (templates never put `(` right
///   after untrusted text, so a trailing `]` cannot complete one either);
/// - no mention that could ping (even if allowed_mentions were ever
///   misconfigured): `@` is followed by a zero-width space.
///
/// The zero-width space is invisible and stays literal inside code blocks, where a
/// backslash escape would show.
pub fn neutralize(s: &str) -> String {
    const ZWSP: char = '\u{200b}';
    let mut out = String::with_capacity(s.len() + 8);
    if s.starts_with('`') {
        out.push(ZWSP);
    }
    let mut run = 0;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '`' {
            if run == 2 {
                out.push(ZWSP);
                run = 0;
            }
            run += 1;
        } else {
            run = 0;
        }
        out.push(c);
        match c {
            '@' => out.push(ZWSP),
            ']' if chars.peek() == Some(&'(') => out.push(ZWSP),
            _ => {}
        }
    }
    if s.ends_with('`') {
        out.push(ZWSP);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_counts_characters() {
        assert_eq!(truncate("héllo", 5), "héllo");
        assert_eq!(truncate("héllo!", 5), "héll…");
        assert_eq!(chars(&truncate(&"é".repeat(5000), 4096)), 4096);
    }

    #[test]
    fn fit_respects_every_limit() {
        let e = Embed {
            title: "t".repeat(300),
            description: "d".repeat(5000),
            fields: (0..30)
                .map(|_| Field {
                    name: "n".repeat(300),
                    value: "v".repeat(2000),
                    inline: false,
                })
                .collect(),
            ..Default::default()
        }
        .fit();
        assert_eq!(chars(&e.title), 256);
        assert_eq!(chars(&e.description), 4096);
        assert_eq!(e.fields.len(), 25);
        assert!(e
            .fields
            .iter()
            .all(|f| chars(&f.value) == 1024 && chars(&f.name) == 256));
    }

    /// Issue #12 item 8: untrusted text cannot close a code block, render a masked
    /// link or ping, whatever it holds and wherever a template puts it.
    #[test]
    fn output_escaping_keeps_untrusted_text_literal() {
        let mut attacks: Vec<String> = vec![
            "````".into(),
            "a````b".into(),
            "```\n[click](http://evil)\n```".into(),
            "[click](http://evil)".into(),
            "[click](<http://evil>)".into(),
            "[click]".into(),
            "[click](".into(),
            "@everyone".into(),
            "<@&123>".into(),
            "<@123> @here".into(),
            "``".into(),
            "`x`".into(),
        ];
        attacks.extend((3..=10).map(|n| "`".repeat(n)));
        attacks.extend((1..=10).map(|n| format!("log {} end", "`".repeat(n))));
        for attack in &attacks {
            let n = neutralize(attack);
            // Alone, and next to a template's own backticks and brackets.
            for shown in [
                n.clone(),
                format!("`{n}`"),
                format!("``{n}``"),
                format!("```\n{n}\n```"),
                format!("[{n}]"),
                format!("{n}{n}"),
            ] {
                assert!(
                    !shown.contains("```") || shown.starts_with("```\n"),
                    "{attack:?} -> {shown:?}"
                );
                if let Some(inner) = shown
                    .strip_prefix("```\n")
                    .and_then(|s| s.strip_suffix("\n```"))
                {
                    assert!(
                        !inner.contains("```"),
                        "{attack:?} closes the block: {shown:?}"
                    );
                }
                assert!(!shown.contains("]("), "{attack:?} -> {shown:?}");
                assert!(!shown.contains("@everyone") && !shown.contains("@here"));
                assert!(
                    !shown.contains("<@&") && !shown.contains("<@1"),
                    "{shown:?}"
                );
            }
            // Nothing is lost: without the zero-width spaces it is the same text.
            assert_eq!(n.replace('\u{200b}', ""), *attack);
        }
        assert_eq!(
            neutralize("plain text, 3 (ok) [x] y"),
            "plain text, 3 (ok) [x] y"
        );
    }

    #[test]
    fn neutralize_breaks_mentions_and_fences() {
        let s = neutralize("@everyone ```rm -rf```");
        assert!(!s.contains("@everyone"));
        assert!(!s.contains("```"));
    }
}
