//! The Stop button of a follow (`logs:stop:<id>`), as the interaction pipeline
//! hands it over: the click only tells the running follow who stopped it.

use klaxon_core::audit::Outcome;

use crate::interaction::{Allowed, Target};
use crate::serenity::{ComponentInteraction, CreateInteractionResponse};
use crate::{Data, Error};

/// Reads a click on a Stop button (`logs:stop:<id>`): viewers may stop any follow.
pub fn read_click(_app: &Data, custom_id: &str) -> Option<Target> {
    let id = follow_of(custom_id)?;
    Some(Target {
        verb: "stop".into(),
        command: "logs".into(),
        arguments: format!("click=stop follow={id}"),
    })
}

fn follow_of(custom_id: &str) -> Option<u64> {
    let mut parts = custom_id.split(':').skip(1);
    let verb = parts.next().unwrap_or_default();
    let id = parts.next().and_then(|s| s.parse::<u64>().ok());
    match (id, verb) {
        (Some(id), "stop") => Some(id),
        _ => None,
    }
}

/// A Stop click by a member whose level allows it.
pub async fn on_click(a: Allowed<'_, ComponentInteraction>) -> Result<(), Error> {
    let (app, click) = (a.app, a.interaction);
    let Some(id) = follow_of(&click.data.custom_id) else {
        return a.reply_private("This button is no longer active.").await;
    };
    let Some(stop) = app.follows.remove(id) else {
        return a.reply_private("This follow has already stopped.").await;
    };
    // The follow edits its message itself (keeping its edit pace); the click only
    // needs acknowledging.
    let _ = stop.send(click.user.name.clone());
    a.respond(CreateInteractionResponse::Acknowledge).await?;
    a.audit(Outcome::Ok, "follow stopped".into()).await;
    Ok(())
}
