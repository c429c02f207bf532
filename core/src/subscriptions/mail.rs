//! The mails of the subscriptions: the confirmation of a subscription and one mail
//! per public update, plain text, sent through `[status_page.smtp]` with lettre.
//!
//! Every update mail names its unsubscribe link in the text and in
//! `List-Unsubscribe` with `List-Unsubscribe-Post: List-Unsubscribe=One-Click`
//! (RFC 8058), so mail clients offer their own button. Titles and texts are
//! untrusted: in a plain-text body they are shown literally, and control
//! characters are dropped from the subject.

use std::time::Duration;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::Notice;
use crate::settings::subscriptions::{SmtpConfig, SmtpTls};
use crate::timefmt::date_time;

/// How long one SMTP conversation may take.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a mail did not go out.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The server refused it for good (5xx): retrying will not help.
    #[error("refused by the mail server: {0}")]
    Refused(String),
    /// The server is down, slow or said "later" (4xx): try again.
    #[error("mail server unavailable: {0}")]
    Unavailable(String),
    /// The mail could not be built (an address lettre does not take).
    #[error("mail not built: {0}")]
    Build(String),
}

/// The configured SMTP transport and sender.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The domain of `from`, for Message-IDs.
    domain: String,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .finish()
    }
}

impl Mailer {
    /// The transport of `[status_page.smtp]` (validated at load).
    pub fn new(c: &SmtpConfig) -> anyhow::Result<Mailer> {
        use anyhow::Context as _;
        let builder = match c.tls {
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&c.host)
                .context("status_page.smtp.host")?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&c.host)
                .context("status_page.smtp.host")?,
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&c.host),
        };
        let mut builder = builder.port(c.port()).timeout(Some(SMTP_TIMEOUT));
        if !c.username.is_empty() {
            builder = builder.credentials(Credentials::new(
                c.username.clone(),
                c.password.expose().to_string(),
            ));
        }
        let from: Mailbox = c.from.parse().context("status_page.smtp.from")?;
        let domain = from.email.domain().to_string();
        Ok(Mailer {
            transport: builder.build(),
            from,
            domain,
        })
    }

    /// Sends one mail.
    pub async fn send(&self, m: Message) -> Result<(), MailError> {
        match self.transport.send(m).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(MailError::Refused(e.to_string())),
            Err(e) => Err(MailError::Unavailable(e.to_string())),
        }
    }

    fn base(
        &self,
        to: &str,
        subject: &str,
        id: String,
    ) -> Result<lettre::message::MessageBuilder, MailError> {
        let to: Mailbox = to.parse().map_err(|e| MailError::Build(format!("{e}")))?;
        Ok(Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(format!("<{id}@{}>", self.domain)))
            .header(ContentType::TEXT_PLAIN))
    }

    /// The double opt-in mail: the link that confirms the subscription.
    pub fn confirmation(
        &self,
        page_title: &str,
        to: &str,
        confirm_url: &str,
        nonce: &str,
    ) -> Result<Message, MailError> {
        let body = format!(
            "Someone, hopefully you, asked to get an email for every update of\n\
             {page_title}.\n\n\
             Confirm your subscription (the link works for 24 hours):\n{confirm_url}\n\n\
             If you did not ask for this, ignore this mail: nothing was stored and\n\
             you will get nothing more.\n"
        );
        self.base(
            to,
            &format!("Confirm your subscription to {page_title}").replace(['\r', '\n'], " "),
            format!("confirm.{nonce}"),
        )?
        .body(body)
        .map_err(|e| MailError::Build(e.to_string()))
    }

    /// One public update, with the subscriber's unsubscribe link.
    pub fn update(
        &self,
        page_title: &str,
        to: &str,
        n: &Notice,
        unsubscribe_url: &str,
        delivery_id: i64,
    ) -> Result<Message, MailError> {
        let body = update_text(page_title, n, unsubscribe_url);
        self.base(to, &n.subject(), format!("update.{delivery_id}"))?
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                format!("<{unsubscribe_url}>"),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".into(),
            ))
            .body(body)
            .map_err(|e| MailError::Build(e.to_string()))
    }
}

/// The text of an update mail. Pure.
pub fn update_text(page_title: &str, n: &Notice, unsubscribe_url: &str) -> String {
    let mut out = String::new();
    out.push_str(&n.title);
    out.push('\n');
    if !n.incident.is_empty() {
        out.push_str(&format!("{} · {}\n", n.incident, n.severity));
    }
    out.push_str(&format!("\n{}: {}\n", n.status, n.text));
    if !n.components.is_empty() {
        out.push_str(&format!("\nAffected: {}\n", n.components.join(", ")));
    }
    out.push_str(&format!(
        "Posted: {}\n\nDetails: {}\n",
        date_time(n.at_ms),
        n.url
    ));
    out.push_str(&format!(
        "\n-- \nYou get this mail because you subscribed to {page_title}.\n\
         Unsubscribe: {unsubscribe_url}\n"
    ));
    out
}
