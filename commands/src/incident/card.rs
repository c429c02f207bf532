//! The incident card's buttons and the forms they open (prefix `incident:`): each
//! reaches here through the interaction pipeline, which has checked the member's
//! level for the subcommand the button stands for.

use klaxon_core::audit::Outcome;
use klaxon_core::chat;
use klaxon_core::incidents::{
    self, Incident, IncidentError, IncidentId, Resolution, Status, MAX_TEXT, PREFIX,
};
use tracing::warn;

use super::{ack_text, may_resolve, resolved_text, status_text};
use crate::interaction::{private_message, who, Allowed, Target};
use crate::serenity::{
    self, ComponentInteraction, CreateActionRow, CreateAllowedMentions, CreateInputText,
    CreateInteractionResponse, CreateInteractionResponseMessage, CreateModal,
    EditInteractionResponse, InputTextStyle, ModalInteraction,
};
use crate::Error;

fn input(
    id: &str,
    label: &str,
    style: InputTextStyle,
    required: bool,
    value: &str,
) -> CreateActionRow {
    let mut i = CreateInputText::new(style, label, id)
        .required(required)
        .max_length(MAX_TEXT as u16);
    if !value.is_empty() {
        i = i.value(chat::truncate(value, MAX_TEXT));
    }
    CreateActionRow::InputText(i)
}

pub(super) fn resolve_modal(i: &Incident) -> CreateModal {
    CreateModal::new(
        format!("{PREFIX}:m-resolve:{}", i.id.0),
        chat::truncate(&format!("Resolve {}", i.id), 45),
    )
    .components(vec![
        input(
            "summary",
            "Summary",
            InputTextStyle::Paragraph,
            false,
            &i.summary,
        ),
        input(
            "root_cause",
            "Root cause",
            InputTextStyle::Paragraph,
            false,
            &i.root_cause,
        ),
        input(
            "resolution",
            "Resolution",
            InputTextStyle::Paragraph,
            false,
            &i.resolution,
        ),
        input(
            "impact",
            "Impact",
            InputTextStyle::Paragraph,
            false,
            &i.impact,
        ),
    ])
}

fn update_modal(i: &Incident) -> CreateModal {
    CreateModal::new(
        format!("{PREFIX}:m-update:{}", i.id.0),
        chat::truncate(&format!("Update {}", i.id), 45),
    )
    .components(vec![
        CreateActionRow::InputText(
            // Labels fit 45 characters; the choices go in the placeholder.
            CreateInputText::new(InputTextStyle::Short, "Status", "status")
                .placeholder("investigating, identified or monitoring")
                .value(i.status.as_str())
                .max_length(20),
        ),
        input(
            "message",
            "What changed",
            InputTextStyle::Paragraph,
            true,
            "",
        ),
    ])
}

fn note_modal(i: &Incident) -> CreateModal {
    CreateModal::new(
        format!("{PREFIX}:m-note:{}", i.id.0),
        chat::truncate(&format!("Note for {}", i.id), 45),
    )
    .components(vec![input(
        "text",
        "Note",
        InputTextStyle::Paragraph,
        true,
        "",
    )])
}

/// The level a click or modal needs: the same as the subcommand it stands for.
fn command_of(verb: &str) -> &'static str {
    match verb {
        "ack" => "incident ack",
        "update" | "m-update" => "incident status",
        "note" | "m-note" => "incident note",
        _ => "incident resolve",
    }
}

fn parse_custom_id(custom_id: &str) -> Option<(&str, IncidentId)> {
    let mut parts = custom_id.split(':').skip(1);
    let verb = parts.next()?;
    let id = parts.next()?.parse::<i64>().ok()?;
    Some((verb, IncidentId(id)))
}

/// Reads a click on the card or a submitted form (`kind` is `click` or `form`):
/// each needs the level of the subcommand it stands for.
pub fn read(custom_id: &str, kind: &str) -> Option<Target> {
    let (verb, id) = parse_custom_id(custom_id)?;
    Some(Target {
        verb: verb.to_string(),
        command: command_of(verb).to_string(),
        arguments: format!("id={id} {kind}={verb}"),
    })
}

/// A click on the incident card (`incident:<ack|update|note|resolve>:<id>`) by a
/// member whose level allows it.
pub async fn on_click(a: Allowed<'_, ComponentInteraction>) -> Result<(), Error> {
    let (ctx, app, click) = (a.ctx, a.app, a.interaction);
    let Some((verb, id)) = parse_custom_id(&click.data.custom_id) else {
        click
            .create_response(ctx, private_message("This button is no longer active."))
            .await?;
        return Ok(());
    };
    let by = who(&a.by);
    let incident = match incidents::get(app, id).await {
        Ok(i) if i.is_open() => i,
        Ok(_) => {
            let text = IncidentError::Resolved(id).to_string();
            click.create_response(ctx, private_message(&text)).await?;
            a.audit(Outcome::UserError, text).await;
            return Ok(());
        }
        Err(e) => {
            warn!(error = %e, incident = %id, "incident click failed");
            click.create_response(ctx, private_message(GENERIC)).await?;
            a.audit(Outcome::Failed, e.to_string()).await;
            return Ok(());
        }
    };
    match verb {
        "ack" => {
            // A deferred update keeps the card; the card itself is edited by core.
            click
                .create_response(
                    ctx,
                    CreateInteractionResponse::Defer(CreateInteractionResponseMessage::new()),
                )
                .await?;
            let (text, outcome) = match incidents::ack(app, id, &by).await {
                Ok(i) => (ack_text(&i), Outcome::Ok),
                Err(e) if e.is_user_facing() => (e.to_string(), Outcome::UserError),
                Err(e) => {
                    warn!(error = %e, incident = %id, "acknowledgement failed");
                    (GENERIC.to_string(), Outcome::Failed)
                }
            };
            click
                .edit_response(
                    ctx,
                    EditInteractionResponse::new()
                        .content(text.clone())
                        .allowed_mentions(CreateAllowedMentions::new()),
                )
                .await?;
            a.audit(outcome, text).await;
        }
        "update" => {
            click
                .create_response(
                    ctx,
                    CreateInteractionResponse::Modal(update_modal(&incident)),
                )
                .await?;
        }
        "note" => {
            click
                .create_response(ctx, CreateInteractionResponse::Modal(note_modal(&incident)))
                .await?;
        }
        "resolve" => {
            click
                .create_response(
                    ctx,
                    CreateInteractionResponse::Modal(resolve_modal(&incident)),
                )
                .await?;
        }
        _ => {
            click
                .create_response(ctx, private_message("This button is no longer active."))
                .await?;
        }
    }
    Ok(())
}

/// For anything that is not the member's mistake: the details are in the logs.
const GENERIC: &str = klaxon_core::user_facing::GENERIC;

fn field<'a>(m: &'a ModalInteraction, id: &str) -> &'a str {
    m.data
        .components
        .iter()
        .flat_map(|row| row.components.iter())
        .find_map(|c| match c {
            serenity::ActionRowComponent::InputText(t) if t.custom_id == id => t.value.as_deref(),
            _ => None,
        })
        .unwrap_or_default()
}

/// A submitted modal (`incident:<m-update|m-note|m-resolve>:<id>`) by a member
/// whose level allows it.
pub async fn on_modal(a: Allowed<'_, ModalInteraction>) -> Result<(), Error> {
    let (ctx, app, modal) = (a.ctx, a.app, a.interaction);
    let Some((verb, id)) = parse_custom_id(&modal.data.custom_id) else {
        modal
            .create_response(ctx, private_message("This form is no longer active."))
            .await?;
        return Ok(());
    };
    let by = who(&a.by);
    // Input is checked before anything is shown, so a mistake stays private.
    enum Form {
        Update(Status, String),
        Note(String),
        Resolve(Resolution),
    }
    let form = match verb {
        "m-update" => match field(modal, "status").parse::<Status>() {
            Ok(Status::Resolved) => may_resolve(app, &a.roles)
                .map(|_| Form::Update(Status::Resolved, field(modal, "message").to_string())),
            Ok(status) => Ok(Form::Update(status, field(modal, "message").to_string())),
            Err(e) => Err(e),
        },
        "m-note" => incidents::check_text("note", field(modal, "text"), MAX_TEXT)
            .map(Form::Note)
            .map_err(|e| e.to_string()),
        _ => {
            let r = Resolution {
                summary: field(modal, "summary").into(),
                root_cause: field(modal, "root_cause").into(),
                resolution: field(modal, "resolution").into(),
                impact: field(modal, "impact").into(),
            };
            let too_long = [&r.summary, &r.root_cause, &r.resolution, &r.impact]
                .into_iter()
                .any(|v| chat::chars(v) > MAX_TEXT);
            if too_long {
                Err(format!("Each answer fits at most {MAX_TEXT} characters."))
            } else {
                Ok(Form::Resolve(r))
            }
        }
    };
    let form = match form {
        Ok(Form::Update(status, message)) => {
            incidents::check_text("status message", &message, MAX_TEXT)
                .map(|m| Form::Update(status, m))
                .map_err(|e| e.to_string())
        }
        other => other,
    };
    let form = match form {
        Ok(f) => f,
        Err(text) => {
            modal.create_response(ctx, private_message(&text)).await?;
            a.audit(Outcome::UserError, text).await;
            return Ok(());
        }
    };
    // The change posts to the thread and to stakeholders, which may take longer
    // than Discord's 3 s: answer "thinking" first.
    modal
        .create_response(
            ctx,
            CreateInteractionResponse::Defer(CreateInteractionResponseMessage::new()),
        )
        .await?;
    let result = match form {
        Form::Update(status, message) => {
            incidents::set_status(app, id, status, &message, &by, modal.channel_id.get())
                .await
                .map(|i| status_text(&i, &message))
        }
        Form::Note(text) => incidents::note(app, id, &text, &by)
            .await
            .map(|i| format!("📝 {}: {}", i.id, chat::neutralize(&text))),
        Form::Resolve(r) => incidents::resolve(app, id, r, &by)
            .await
            .map(|i| resolved_text(&i)),
    };
    let (text, outcome) = match result {
        Ok(t) => (t, Outcome::Ok),
        Err(e) if e.is_user_facing() => (format!("⚠️ {e}"), Outcome::UserError),
        Err(e) => {
            warn!(error = %e, incident = %id, "incident form failed");
            (GENERIC.into(), Outcome::Failed)
        }
    };
    modal
        .edit_response(
            ctx,
            EditInteractionResponse::new()
                .content(chat::truncate(&text, chat::limits::CONTENT))
                .allowed_mentions(CreateAllowedMentions::new()),
        )
        .await?;
    a.audit(outcome, text).await;
    Ok(())
}
