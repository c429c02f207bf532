//! `/oncall page`: a page by hand, through the same path as a policy's step (the
//! escalation runtime in [`super::escalate`]): the target is checked here, then the
//! page is a one-step escalation, so its DM carries the Acknowledge button and its
//! sends go through the posts outbox like every other step.

use crate::actor::Actor;
use crate::app::App;
use crate::settings::oncall::Target;

use super::escalate::{link, start, Start, Subject};
use super::OncallError;

/// The longest message of a page by hand.
pub const MAX_PAGE_TEXT: usize = 200;

/// `/oncall page`: pages a person, a schedule's on-call member, a role or a
/// webhook by hand, through the same path as a policy's step (DM with the
/// Acknowledge button, mention in `channel`). Returns the escalation's id.
pub async fn page(
    app: &App,
    target: &str,
    message: &str,
    by: &Actor,
    channel: u64,
) -> Result<i64, OncallError> {
    let raw = target.trim();
    // `<@123>` as Discord fills a mention in, `user:123`, or a schedule's name.
    let mention = raw
        .strip_prefix("<@")
        .and_then(|r| r.strip_suffix('>'))
        .map(|r| r.trim_start_matches('!'));
    let target = match mention {
        Some(id) => Target::parse(&format!("user:{id}")),
        None if raw.contains(':') => Target::parse(raw),
        None => Ok(Target::Schedule(super::schedule(app, raw)?.name.clone())),
    }
    .map_err(|e| OncallError::Invalid(format!("Not a target: {e}. Give a member, `schedule:NAME`, `user:ID`, `role:ID` or `webhook:NAME`.")))?;
    match &target {
        Target::Schedule(n) => {
            super::schedule(app, n.as_str())?;
        }
        Target::Webhook(n) if app.oncall.webhook(n.as_str()).is_none() => {
            return Err(OncallError::Invalid(format!(
                "No webhook `{n}` in `[[oncall.webhooks]]`."
            )));
        }
        Target::User(u) => {
            if let Some(guild) = by.guild_id.or(app.guild_id) {
                if !app.chat.is_member(guild, *u).await? {
                    return Err(OncallError::Invalid(format!(
                        "User {u} is not a member of this server."
                    )));
                }
            }
        }
        _ => {}
    }
    let text = message.trim();
    if text.is_empty() || text.chars().count() > MAX_PAGE_TEXT {
        return Err(OncallError::Invalid(format!(
            "The message must be 1 to {MAX_PAGE_TEXT} characters."
        )));
    }
    let now = app.clock.now_ms();
    let page = Start {
        subject: Subject::Page,
        key: format!("page {now} {}", by.user_id),
        policy: None,
        target: Some(target),
        title: format!("{text} (from {})", by.name),
        severity: "page".into(),
        channel,
        link: link(app, channel, None),
    };
    match start(app, page).await? {
        Some(id) => Ok(id),
        None => Err(OncallError::Invalid(
            "You paged a moment ago; try again in a second.".into(),
        )),
    }
}
