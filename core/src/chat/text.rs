//! The text of a message as core means it: literal pieces and typed references
//! (a member, a channel, a role, a moment), never the chat platform's markup.
//!
//! Core says "the commander" or "in two hours"; the chat adapter decides how the
//! platform shows it ([`super::discord`] for Discord). A reference is a typed
//! [`Span`], not a placeholder inside the literal text, so nothing an alert label,
//! incident title or member's input holds can turn into a mention: literal pieces are
//! shown exactly as they are (templates still run untrusted parts through
//! [`super::neutralize`] for markdown).

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One piece of a message's text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Span {
    /// Shown as it is: the template's own markdown and (neutralized) untrusted text.
    Literal(String),
    /// A member, shown by name. Pings only if the message lists them in `ping_users`.
    User(u64),
    /// A channel or thread, shown as a link to it.
    Channel(u64),
    /// A role, shown by name. Never pings: a message pages through its `page` field.
    Role(u64),
    /// A moment (milliseconds since the epoch), shown relative to each reader's
    /// now ("in 2 hours", "5 minutes ago").
    RelativeTime(i64),
}

impl From<String> for Span {
    fn from(s: String) -> Self {
        Span::Literal(s)
    }
}

impl From<&str> for Span {
    fn from(s: &str) -> Self {
        Span::Literal(s.to_string())
    }
}

/// A message's text: literal pieces and references, in order. Adjacent literals are
/// kept merged, so two texts that read the same compare equal.
///
/// Stored (in the alert outbox) as a plain string when it holds no reference, as a
/// list of spans otherwise; a plain string always reads back as one literal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text(Vec<Span>);

impl Text {
    pub fn new() -> Self {
        Text::default()
    }

    /// Appends a piece (a literal `String`/`&str` or a reference).
    pub fn push(&mut self, span: impl Into<Span>) {
        match (span.into(), self.0.last_mut()) {
            (Span::Literal(s), _) if s.is_empty() => {}
            (Span::Literal(s), Some(Span::Literal(last))) => last.push_str(&s),
            (span, _) => self.0.push(span),
        }
    }

    /// [`Text::push`] for building in one expression.
    pub fn with(mut self, span: impl Into<Span>) -> Self {
        self.push(span);
        self
    }

    pub fn spans(&self) -> &[Span] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The text when it holds no reference.
    pub fn as_literal(&self) -> Option<Cow<'_, str>> {
        match self.0.as_slice() {
            [] => Some(Cow::Borrowed("")),
            [Span::Literal(s)] => Some(Cow::Borrowed(s)),
            _ => None,
        }
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Text::new().with(s)
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text::new().with(s)
    }
}

impl From<Span> for Text {
    fn from(s: Span) -> Self {
        Text::new().with(s)
    }
}

impl<S: Into<Span>> FromIterator<S> for Text {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut t = Text::new();
        for s in iter {
            t.push(s);
        }
        t
    }
}

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.as_literal() {
            Some(l) => s.serialize_str(&l),
            None => self.0.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Stored {
            Plain(String),
            Spans(Vec<Span>),
        }
        Ok(match Stored::deserialize(d)? {
            Stored::Plain(s) => Text::from(s),
            Stored::Spans(spans) => spans.into_iter().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_merge_and_empty_ones_vanish() {
        let t = Text::from("a")
            .with("")
            .with(String::from("b"))
            .with(Span::User(1));
        assert_eq!(t.spans(), [Span::Literal("ab".into()), Span::User(1)]);
        assert!(Text::from("").is_empty());
    }

    #[test]
    fn stored_as_a_string_without_references_and_read_back_alike() {
        let plain = Text::from("🔁 <@&1> stays literal");
        let json = serde_json::to_string(&plain).unwrap_or_default();
        assert_eq!(json, r#""🔁 <@&1> stays literal""#);
        let back: Text = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(back, plain);

        let refs = Text::from("by ")
            .with(Span::User(7))
            .with(Span::RelativeTime(5));
        let json = serde_json::to_string(&refs).unwrap_or_default();
        let back: Text = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(back, refs);
    }
}
