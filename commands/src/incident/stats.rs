//! `/incident stats [days]`: MTTA and MTTR, p50 and p90 per severity (issue #15).
//! A viewer's command (anyone may see how fast the team answers); the figures
//! come from `klaxon_core::incidents::stats`, one line per measure so the reply
//! reads on a phone.

use klaxon_core::chat;
use klaxon_core::incidents::stats;

use crate::{Context, Error, UserError};

/// The longest period asked for: a year (retention may keep less).
const MAX_DAYS: u32 = 366;

/// How fast incidents were acknowledged and resolved (MTTA, MTTR)
#[poise::command(slash_command, rename = "stats")]
pub(super) async fn stats_cmd(
    ctx: Context<'_>,
    #[description = "Over the last N days (default 30)"]
    #[min = 1]
    #[max = 366]
    days: Option<u32>,
) -> Result<(), Error> {
    let days = days.unwrap_or(30);
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(UserError::new(format!("Give between 1 and {MAX_DAYS} days.")).into());
    }
    let figures = stats::last_days(ctx.data(), days)
        .await
        .map_err(|e| crate::interaction::user_error(e, "incident stats"))?;
    let text = stats::render(&figures, days);
    ctx.say(chat::truncate(&text, chat::limits::CONTENT))
        .await?;
    Ok(())
}
