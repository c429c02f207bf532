//! An incident's room (its thread, or its channel with `room = "channel"`) and its
//! card's message id, for the posts worker (the `delivery` module).
//!
//! Opening creates the room directly (the reply links to it); when Discord is down
//! at that moment the incident opens anyway, without a room, and the worker creates
//! the room before it delivers the first post that goes there (the card), so the
//! card and what follows arrive once Discord answers.

use super::model::IncidentId;
use super::model::Room;
use super::render::channel_name;
use crate::app::App;
use crate::chat::ChatError;
use crate::store::incidents as db;
use crate::store::incidents::Incident;
use crate::store::StoreError;

/// Creates the room of `incident` in chat (nothing is stored).
pub async fn create_room(app: &App, incident: &Incident) -> Result<u64, ChatError> {
    match (app.incidents.room, incident.guild_id) {
        (Room::Channel, Some(guild)) => {
            let name = channel_name(incident.id, &incident.title);
            app.chat
                .create_channel(guild, &name, app.incidents.category_id)
                .await
        }
        _ => {
            let Some(parent) = app.incidents_channel else {
                return Err(ChatError::Rejected(
                    "no incidents channel configured".into(),
                ));
            };
            let name = format!("{} {}", incident.id, incident.title);
            app.chat.create_thread(parent, &name).await
        }
    }
}

/// Stores the room of an incident that had none (an earlier room wins).
pub async fn record_room(app: &App, id: IncidentId, room: u64) -> Result<(), StoreError> {
    let change = db::Change {
        set: "channel_id = COALESCE(channel_id, $2)",
        binds: vec![Some(room as i64).into()],
        entry: None,
        allow_resolved: true,
        only_unacked: false,
    };
    db::change(&app.store, id, change).await?;
    Ok(())
}

/// The incident's room, created now when it has none. The outer error is the
/// database's; the inner one Discord's (the caller retries or parks the post).
pub async fn ensure_room(app: &App, id: IncidentId) -> Result<Result<u64, ChatError>, StoreError> {
    let Some(incident) = db::get(&app.store, id).await? else {
        return Ok(Err(ChatError::Rejected(format!("no incident {id}"))));
    };
    if let Some(room) = incident.channel_id {
        return Ok(Ok(room));
    }
    match create_room(app, &incident).await {
        Ok(room) => {
            record_room(app, id, room).await?;
            // Another replica may have stored one first: that one is the room.
            Ok(Ok(db::get(&app.store, id)
                .await?
                .and_then(|i| i.channel_id)
                .unwrap_or(room)))
        }
        Err(e) => Ok(Err(e)),
    }
}

/// Where the incident's card is: (room, message id), once it was posted.
pub async fn card_message(app: &App, id: IncidentId) -> Result<Option<(u64, u64)>, StoreError> {
    Ok(db::get(&app.store, id)
        .await?
        .and_then(|i| Some((i.channel_id?, i.card_message_id?))))
}

/// Records the card's message id, which later edits of the card need.
pub async fn record_card(app: &App, id: IncidentId, message: u64) -> Result<(), StoreError> {
    let change = db::Change {
        set: "card_message_id = $2",
        binds: vec![Some(message as i64).into()],
        entry: None,
        allow_resolved: true,
        only_unacked: false,
    };
    db::change(&app.store, id, change).await?;
    Ok(())
}
