//! `/rollback service [to]` and `/restart service`: a plan with Confirm and Cancel
//! buttons, then the operation's progress, edited into the same message.
//!
//! Everything that touches Docker lives in `klaxon_core::rollout`; this module
//! renders plans and progress and answers the buttons (prefix `rollback:`, shared by
//! both commands), checking the clicking member's level itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use klaxon_core::actor::Actor;
use klaxon_core::audit::Outcome;
use klaxon_core::chat::{self, Embed, Field};
use klaxon_core::rollout::{
    self, Action, Approval, HealthWait, Pending, Phase, Plan, Progress, RolloutError, TargetSource,
};
use klaxon_core::timefmt::human_duration;
use poise::CreateReply;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::choices::autocomplete_service;
use crate::interaction::{self, Allowed, Target};
use crate::serenity::{
    self, AutocompleteChoice, ButtonStyle, CommandDataOptionValue, ComponentInteraction,
    CreateActionRow, CreateAutocompleteResponse, CreateButton, CreateInteractionResponse,
    CreateInteractionResponseMessage, EditInteractionResponse,
};
use crate::{Context, Data, Error, UserError};

/// The `custom_id` prefix of every button here (routed by `components`).
pub const PREFIX: &str = "rollback";
/// Progress edits at most this often: enough to see it move, far inside Discord's
/// edit budget.
const EDIT_EVERY: Duration = Duration::from_secs(2);
/// A plan this quick is answered directly (so refusals stay private); a slower
/// engine gets a deferred reply inside Discord's 3 s.
const PLAN_WITHIN: Duration = Duration::from_millis(2_000);
/// Autocomplete must answer inside the same 3 s.
const CHOICES_WITHIN: Duration = Duration::from_millis(2_000);

/// Roll a service back to an earlier image and check that it is healthy
#[poise::command(slash_command, rename = "rollback")]
pub async fn rollback(
    ctx: Context<'_>,
    #[description = "The service to roll back"]
    #[autocomplete = "autocomplete_service"]
    service: String,
    #[description = "The image to run (default: the one that ran before)"]
    #[autocomplete = "autocomplete_image"]
    to: Option<String>,
) -> Result<(), Error> {
    propose(ctx, Action::Rollback, &service, to.as_deref()).await
}

/// Restart a service's container and check that it is healthy
#[poise::command(slash_command, rename = "restart")]
pub async fn restart(
    ctx: Context<'_>,
    #[description = "The service to restart"]
    #[autocomplete = "autocomplete_service"]
    service: String,
) -> Result<(), Error> {
    propose(ctx, Action::Restart, &service, None).await
}

/// Autocomplete for `to`: the service's images on the engine and in Klaxon's
/// history, newest first, with their age.
async fn autocomplete_image(ctx: Context<'_>, partial: &str) -> CreateAutocompleteResponse {
    let service = match ctx {
        poise::Context::Application(a) => a
            .interaction
            .data
            .options
            .iter()
            .find(|o| o.name == "service")
            .and_then(|o| match &o.value {
                CommandDataOptionValue::String(s) => Some(s.clone()),
                CommandDataOptionValue::Autocomplete { value, .. } => Some(value.clone()),
                _ => None,
            }),
        poise::Context::Prefix(_) => None,
    };
    let Some(service) = service else {
        return CreateAutocompleteResponse::new();
    };
    // Discord refuses more than 25 choices.
    let choices = tokio::time::timeout(
        CHOICES_WITHIN,
        rollout::image_choices(ctx.data(), &service, partial, 25),
    )
    .await
    .unwrap_or_default();
    CreateAutocompleteResponse::new().set_choices(
        choices
            .into_iter()
            .map(|c| AutocompleteChoice::new(c.label, c.reference))
            .collect(),
    )
}

fn user_error(e: RolloutError) -> Error {
    interaction::user_error(e, "planning a rollback")
}

/// The plan, its buttons, and the timer that retires them.
async fn propose(
    ctx: Context<'_>,
    action: Action,
    service: &str,
    to: Option<&str>,
) -> Result<(), Error> {
    let app = Arc::clone(ctx.data());
    // What memory can answer is answered before anything slow, privately.
    let svc = app.service(service).map_err(UserError::from)?;
    let name = svc.name.clone();
    if !svc.has_containers() && svc.swarm_service.is_none() {
        return Err(user_error(RolloutError::NoContainer(name)));
    }
    if let Some(holder) = app.ops_locks.holder(&name) {
        return Err(user_error(RolloutError::Busy(holder)));
    }
    show_plan(ctx, rollout::plan(&app, action, &name, to)).await
}

/// Plans (answering privately when refused), shows the plan with its buttons, and
/// retires them when nobody confirms in time: `/rollback`, `/restart`, `/scale`.
pub(crate) async fn show_plan(
    ctx: Context<'_>,
    planning: impl std::future::Future<Output = Result<Plan, RolloutError>>,
) -> Result<(), Error> {
    let app = Arc::clone(ctx.data());
    let plan = {
        tokio::pin!(planning);
        tokio::select! {
            plan = &mut planning => plan,
            _ = tokio::time::sleep(PLAN_WITHIN) => {
                ctx.defer().await?;
                planning.await
            }
        }
    }
    .map_err(user_error)?;

    let ttl = Duration::from_secs(app.rollout.confirm_timeout_secs);
    let pending = Pending {
        plan,
        requested_by: interaction::actor(ctx.author(), ctx.guild_id(), ctx.channel_id()),
        approvals: Vec::new(),
        expires_at: Instant::now() + ttl,
    };
    let id = pending.plan.id;
    // Registered before the buttons exist, so that no click can come first.
    app.ops_locks.add_pending(pending.clone());
    ctx.send(
        CreateReply::default()
            .embed(crate::discord::embed(&plan_embed(&pending, ttl)))
            .components(buttons(&pending.plan)),
    )
    .await?;
    info!(service = %pending.plan.service, action = pending.plan.action.as_str(), plan = id, "plan shown");

    if let poise::Context::Application(a) = ctx {
        let http = Arc::clone(&ctx.serenity_context().http);
        let interaction = a.interaction.clone();
        let expires = pending.expires_at;
        tokio::spawn(async move {
            tokio::time::sleep_until(expires.into()).await;
            let Some(p) = app.ops_locks.expire(id, Instant::now()) else {
                return; // confirmed or cancelled in time
            };
            let edit = EditInteractionResponse::new()
                .content(expired_text(p.plan.action, ttl))
                .components(Vec::new())
                .allowed_mentions(serenity::CreateAllowedMentions::new());
            if let Err(e) = interaction.edit_response(&http, edit).await {
                // A late click still gets an answer and removes the buttons.
                warn!(error = %e, plan = id, "could not retire expired buttons");
            }
            audit(
                &app,
                &p.requested_by,
                p.plan.action,
                p.plan.arguments(),
                Outcome::UserError,
                "expired: nobody confirmed in time".into(),
            )
            .await;
        });
    }
    Ok(())
}

fn expired_text(action: Action, ttl: Duration) -> String {
    format!(
        "⌛ Nobody confirmed within {} s; nothing was changed. Run `/{}` again for a new plan.",
        ttl.as_secs(),
        action.as_str()
    )
}

fn buttons(plan: &Plan) -> Vec<serenity::CreateActionRow> {
    let confirm = match plan.action {
        Action::Rollback => "Confirm rollback",
        Action::Restart => "Confirm restart",
        Action::Scale => "Confirm scale",
    };
    vec![CreateActionRow::Buttons(vec![
        // The action rides along, so a click on a plan that is gone is answered in
        // the right command's words.
        CreateButton::new(format!(
            "{PREFIX}:confirm:{}:{}",
            plan.id,
            plan.action.as_str()
        ))
        .label(confirm)
        .style(ButtonStyle::Danger),
        CreateButton::new(format!(
            "{PREFIX}:cancel:{}:{}",
            plan.id,
            plan.action.as_str()
        ))
        .label("Cancel")
        .style(ButtonStyle::Secondary),
    ])]
}

fn ago(t: Option<chrono::DateTime<chrono::Utc>>) -> Option<String> {
    let d = (chrono::Utc::now() - t?).to_std().ok()?;
    Some(human_duration(d))
}

fn image_lines(img: &rollout::ImageInfo) -> String {
    let repository = if img.repository.is_empty() {
        "(untagged)"
    } else {
        img.repository.as_str()
    };
    // Repository and digest always: what will run is never only a tag's word.
    let mut s = format!(
        "`{}`\nrepository `{}` · digest `{}`",
        chat::neutralize(&img.reference),
        chat::neutralize(repository),
        chat::neutralize(&img.short_digest()),
    );
    if let Some(age) = ago(img.created) {
        s.push_str(&format!(" · built {age} ago"));
    }
    s
}

/// The plan as the member confirms it.
pub fn plan_embed(p: &Pending, ttl: Duration) -> Embed {
    let plan = &p.plan;
    let svc = chat::neutralize(&plan.service);
    let container = chat::neutralize(&plan.container);
    let wait = format!(
        "Wait up to {} s for health: {}",
        plan.health_timeout.as_secs(),
        plan.health.describe()
    );
    let mut now = image_lines(&plan.current);
    // A Swarm service (issue #16) is updated, not replaced: its own words.
    let swarm = plan.health == HealthWait::Swarm;
    let kind = if swarm { "Swarm service" } else { "container" };
    now.push_str(&format!("\n{kind} `{container}` {}", plan.container_state));
    if let Some(up) = ago(plan.started_at).filter(|_| plan.container_state == "running") {
        now.push_str(&format!(", up {up}"));
    }
    let mut fields = vec![Field {
        name: "Now".into(),
        value: now,
        inline: false,
    }];
    let (title, description, steps) = match (&plan.action, &plan.target) {
        (Action::Scale, _) => crate::replica_texts::plan_text(plan, &wait),
        (Action::Rollback, Some(target)) if !plan.replicas.is_empty() => {
            fields.push(Field {
                name: "Target".into(),
                value: image_lines(target),
                inline: false,
            });
            crate::replica_texts::rolling_text(plan, &svc, &target.reference, &wait)
        }
        (Action::Restart, _) if !plan.replicas.is_empty() => {
            crate::replica_texts::rolling_text(plan, &svc, "", &wait)
        }
        (Action::Rollback, Some(target)) => {
            let why = match plan.target_source {
                TargetSource::Asked => "as asked",
                TargetSource::History => "ran before the current image (Klaxon's history)",
                TargetSource::NewestOlder => "the newest older image of the repository",
            };
            fields.push(Field {
                name: "Target".into(),
                value: format!("{}\n{why}", image_lines(target)),
                inline: false,
            });
            let steps = if swarm {
                format!(
                    "1. Update Swarm service `{container}` to `{}` (Swarm replaces its tasks as its update config says)\n2. {wait}\n3. Converged: done. Not converged: Swarm's rollback to the previous spec.",
                    chat::neutralize(&target.reference)
                )
            } else {
                format!(
                    "1. Stop `{container}` and keep it as `{}`\n2. Start the same configuration on `{}`\n3. {wait}\n4. Healthy: remove the old container. Not healthy: put it back.",
                    chat::neutralize(&plan.kept_name()),
                    chat::neutralize(&target.reference)
                )
            };
            (
                format!("Roll back {svc}?"),
                format!(
                    "`{}` → `{}`",
                    chat::neutralize(&plan.current.reference),
                    chat::neutralize(&target.reference)
                ),
                steps,
            )
        }
        _ if swarm => (
            format!("Restart {svc}?"),
            format!("`docker service update --force {container}`"),
            format!("1. Force a rolling update of `{container}` (every task replaced)\n2. {wait}"),
        ),
        _ => (
            format!("Restart {svc}?"),
            format!("`docker restart {container}`"),
            format!("1. Restart `{container}`\n2. {wait}"),
        ),
    };
    fields.push(Field {
        name: "Steps".into(),
        value: steps,
        inline: false,
    });
    if plan.approvals_needed > 1 {
        let names: Vec<&str> = p.approvals.iter().map(|a| a.name.as_str()).collect();
        let value = if names.is_empty() {
            format!(
                "{} different operators must confirm.",
                plan.approvals_needed
            )
        } else {
            format!(
                "✅ Confirmed by {} ({} of {}). Waiting for another operator (not {}) to confirm.",
                chat::neutralize(&names.join(", ")),
                names.len(),
                plan.approvals_needed,
                chat::neutralize(&names.join(" or "))
            )
        };
        fields.push(Field {
            name: "Two-person rule".into(),
            value,
            inline: false,
        });
    }
    Embed {
        title,
        description,
        color: chat::YELLOW,
        fields,
        footer: format!(
            "Asked by {} · buttons expire after {} s · operators only",
            chat::neutralize(&p.requested_by.name),
            ttl.as_secs()
        ),
    }
}

/// The operation as it runs, then how it ended.
pub fn progress_embed(plan: &Plan, approvers: &str, p: &Progress) -> Embed {
    let svc = chat::neutralize(&plan.service);
    let container = chat::neutralize(&plan.container);
    let target = plan
        .target
        .as_ref()
        .map(|t| chat::neutralize(&t.reference))
        .unwrap_or_default();
    let rollback = plan.action == Action::Rollback;
    let title = match (&p.phase, rollback) {
        (phase, _) if plan.action == Action::Scale => {
            crate::replica_texts::progress_title(plan, phase)
        }
        (Phase::Done, true) => format!("✅ {svc} rolled back to `{target}`"),
        (Phase::Done, false) => format!("✅ {svc} restarted"),
        (Phase::Reverted { .. }, _) => format!("↩️ Rollback of {svc} reverted"),
        (Phase::Failed { .. }, true) => format!("❌ Rollback of {svc} failed"),
        (Phase::Failed { .. }, false) => format!("❌ Restart of {svc} failed"),
        (_, true) => format!("⏳ Rolling back {svc} to `{target}`"),
        (_, false) => format!("⏳ Restarting {svc}"),
    };
    let mut lines: Vec<String> = p
        .done
        .iter()
        .map(|l| format!("✅ {}", chat::neutralize(l)))
        .collect();
    let secs = p.elapsed.as_secs();
    let (now, color) = match &p.phase {
        Phase::Confirmed => ("⏳ Starting…".to_string(), chat::GREY),
        Phase::Stopping => (format!("⏳ Stopping `{container}`…"), chat::GREY),
        Phase::Starting if plan.health == HealthWait::Swarm => (
            format!("⏳ Updating Swarm service `{container}` to `{target}`…"),
            chat::GREY,
        ),
        Phase::Starting => (
            format!("⏳ Starting `{container}` on `{target}`…"),
            chat::GREY,
        ),
        Phase::Restarting => (format!("⏳ Restarting `{container}`…"), chat::GREY),
        Phase::WaitingHealth { waited } => {
            let mut s = format!(
                "⏳ Waiting for health ({}): {} s of {} s",
                p.health.describe(),
                waited.as_secs(),
                plan.health_timeout.as_secs()
            );
            if let Some(last) = &p.last_check {
                s.push_str(&format!(" — {}", chat::neutralize(last)));
            }
            (s, chat::GREY)
        }
        Phase::Reverting { reason } => (
            format!(
                "⚠️ {}\n⏳ Putting the original back…",
                chat::neutralize(reason)
            ),
            chat::YELLOW,
        ),
        Phase::Done => (format!("Done in {secs} s."), chat::GREEN),
        Phase::Reverted { reason } => (
            format!(
                "⚠️ {}\n↩️ Reverted: `{container}` runs `{}` again ({secs} s).",
                chat::neutralize(reason),
                chat::neutralize(&plan.current.reference)
            ),
            chat::YELLOW,
        ),
        Phase::Failed { reason } => (format!("❌ {}", chat::neutralize(reason)), chat::RED),
    };
    lines.push(now);
    Embed {
        title,
        description: lines.join("\n"),
        color,
        fields: Vec::new(),
        footer: format!("Confirmed by {approvers} · recorded in the deployment history"),
    }
}

async fn audit(
    app: &Data,
    by: &Actor,
    action: Action,
    arguments: String,
    outcome: Outcome,
    detail: String,
) {
    interaction::record(app, by, action.as_str(), arguments, outcome, detail, 0).await;
}

fn message(embed: &Embed) -> CreateInteractionResponseMessage {
    CreateInteractionResponseMessage::new()
        .embed(crate::discord::embed(embed))
        .allowed_mentions(serenity::CreateAllowedMentions::new())
}

/// Reads a click on a Confirm or Cancel button
/// (`rollback:<confirm|cancel>:<plan id>[:restart]`): it needs the level of the
/// operation the plan stands for.
pub fn read_click(app: &Data, custom_id: &str) -> Option<Target> {
    let mut parts = custom_id.split(':').skip(1);
    let verb = parts.next().unwrap_or_default();
    let id = parts.next().and_then(|s| s.parse::<u64>().ok())?;
    let named = match parts.next() {
        Some("restart") => Action::Restart,
        Some("scale") => Action::Scale,
        _ => Action::Rollback,
    };
    let pending = app.ops_locks.pending(id);
    let action = pending.as_ref().map(|p| p.plan.action).unwrap_or(named);
    let arguments = match &pending {
        Some(p) => format!("{} click={verb}", p.plan.arguments()),
        None => format!("click={verb}"),
    };
    Some(Target {
        verb: verb.to_string(),
        command: action.as_str().to_string(),
        arguments,
    })
}

/// A Confirm or Cancel click by a member whose level allows it.
pub async fn on_click(a: Allowed<'_, ComponentInteraction>) -> Result<(), Error> {
    let click = a.interaction;
    let Some(id) = click
        .data
        .custom_id
        .split(':')
        .nth(2)
        .and_then(|s| s.parse::<u64>().ok())
    else {
        return a.reply_private("This button is no longer active.").await;
    };
    let action = match a.target.command.as_str() {
        "restart" => Action::Restart,
        "scale" => Action::Scale,
        _ => Action::Rollback,
    };
    let by = a.by.clone();
    let arguments = a.target.arguments.clone();
    match a.target.verb.as_str() {
        "confirm" => confirm(&a, id, by, arguments, action).await,
        "cancel" => cancel(&a, id, by, arguments, action).await,
        _ => a.reply_private("This button is no longer active.").await,
    }
}

async fn cancel(
    a: &Allowed<'_, ComponentInteraction>,
    id: u64,
    by: Actor,
    arguments: String,
    action: Action,
) -> Result<(), Error> {
    let app = a.app;
    let Some(p) = app.ops_locks.cancel(id) else {
        if app.ops_locks.is_running(id) {
            return a.reply_private("It is already running; Klaxon puts the original back by itself if the new container is not healthy.",
            )
            .await;
        }
        return expired_click(a, by, arguments, action).await;
    };
    let ttl = Duration::from_secs(app.rollout.confirm_timeout_secs);
    let mut embed = plan_embed(&p, ttl);
    embed.title = format!("✖️ Cancelled: {}", embed.title.trim_end_matches('?'));
    embed.color = chat::GREY;
    embed.footer = format!(
        "Cancelled by {} · nothing was changed",
        chat::neutralize(&by.name)
    );
    a.respond(CreateInteractionResponse::UpdateMessage(
        message(&embed).components(Vec::new()),
    ))
    .await?;
    audit(
        app,
        &by,
        p.plan.action,
        arguments,
        Outcome::Ok,
        "cancelled".into(),
    )
    .await;
    Ok(())
}

/// A click on buttons whose plan is gone (expired, cancelled, finished, or from
/// before a restart of Klaxon): the member learns why, privately. The message is
/// left alone: it may show a finished operation's outcome, and the expiry timer
/// retires the buttons of plans nobody confirmed.
async fn expired_click(
    a: &Allowed<'_, ComponentInteraction>,
    by: Actor,
    arguments: String,
    action: Action,
) -> Result<(), Error> {
    let app = a.app;
    let ttl = Duration::from_secs(app.rollout.confirm_timeout_secs);
    let text = format!(
        "This plan is no longer active: it was confirmed, cancelled or expired (buttons work for {} s, and not across a restart of Klaxon). This click changed nothing. Run `/{}` again for a new plan.",
        ttl.as_secs(),
        action.as_str()
    );
    a.reply_private(&text).await?;
    audit(
        app,
        &by,
        action,
        arguments,
        Outcome::UserError,
        "click after the plan was gone".into(),
    )
    .await;
    Ok(())
}

async fn confirm(
    a: &Allowed<'_, ComponentInteraction>,
    id: u64,
    by: Actor,
    arguments: String,
    action: Action,
) -> Result<(), Error> {
    let (ctx, app, click) = (a.ctx, a.app, a.interaction);
    let ttl = Duration::from_secs(app.rollout.confirm_timeout_secs);
    match app.ops_locks.approve(id, &by, Instant::now()) {
        Approval::Unknown => expired_click(a, by, arguments, action).await,
        Approval::Expired(p) => {
            // This plan's own message, clicked as its time ran out: retire its
            // buttons as the expiry timer would have.
            let update = CreateInteractionResponseMessage::new()
                .content(expired_text(p.plan.action, ttl))
                .components(Vec::new())
                .allowed_mentions(serenity::CreateAllowedMentions::new());
            a.respond(CreateInteractionResponse::UpdateMessage(update))
                .await?;
            audit(
                app,
                &by,
                p.plan.action,
                arguments,
                Outcome::UserError,
                "expired: nobody confirmed in time".into(),
            )
            .await;
            Ok(())
        }
        Approval::Running => {
            a.reply_private("This was confirmed already and is running.")
                .await
        }
        Approval::AlreadyApproved(p) => {
            let text = format!(
                "You confirmed already; another operator must confirm too ({} needed).",
                p.plan.approvals_needed
            );
            a.reply_private(&text).await?;
            audit(
                app,
                &by,
                p.plan.action,
                arguments,
                Outcome::UserError,
                "second confirm by the same operator does not count".into(),
            )
            .await;
            Ok(())
        }
        Approval::NeedMore(p) => {
            a.respond(CreateInteractionResponse::UpdateMessage(
                message(&plan_embed(&p, ttl)).components(buttons(&p.plan)),
            ))
            .await?;
            let detail = format!(
                "approved ({} of {})",
                p.approvals.len(),
                p.plan.approvals_needed
            );
            audit(app, &by, p.plan.action, arguments, Outcome::Ok, detail).await;
            Ok(())
        }
        Approval::Busy(holder) => {
            let text = holder.to_string();
            a.reply_private(&text).await?;
            audit(app, &by, holder.action, arguments, Outcome::UserError, text).await;
            Ok(())
        }
        Approval::Ready(confirmed) => {
            let plan = confirmed.pending.plan.clone();
            let approvers = confirmed
                .pending
                .approvals
                .iter()
                .map(|a| chat::neutralize(&a.name))
                .collect::<Vec<_>>()
                .join(", ");
            let mut rx = rollout::start(Arc::clone(app), *confirmed);
            let first = rx.borrow_and_update().clone();
            // The answer inside 3 s: the plan turns into the progress, buttons gone.
            a.respond(CreateInteractionResponse::UpdateMessage(
                message(&progress_embed(&plan, &approvers, &first)).components(Vec::new()),
            ))
            .await?;
            tokio::spawn(follow(
                Arc::clone(&ctx.http),
                click.clone(),
                plan,
                approvers,
                rx,
            ));
            Ok(())
        }
    }
}

/// Edits the progress into the message, at most every [`EDIT_EVERY`], and always
/// the final state.
async fn follow(
    http: Arc<serenity::Http>,
    click: ComponentInteraction,
    plan: Plan,
    approvers: String,
    mut rx: watch::Receiver<Progress>,
) {
    let mut last_edit = Instant::now();
    loop {
        if rx.changed().await.is_err() {
            break; // the operation is gone without a word (aborted)
        }
        let done = rx.borrow().is_final();
        if !done {
            let until_final = async {
                loop {
                    let done = rx.borrow().is_final();
                    if done || rx.changed().await.is_err() {
                        break;
                    }
                }
            };
            tokio::select! {
                _ = tokio::time::sleep_until((last_edit + EDIT_EVERY).into()) => {}
                _ = until_final => {}
            }
        }
        let progress = rx.borrow_and_update().clone();
        if !progress.is_final() && rx.has_changed().is_err() {
            break; // aborted while waiting: nothing new to say
        }
        let edit = EditInteractionResponse::new()
            .embed(crate::discord::embed(&progress_embed(
                &plan, &approvers, &progress,
            )))
            .components(Vec::new())
            .allowed_mentions(serenity::CreateAllowedMentions::new());
        if let Err(e) = click.edit_response(&http, edit).await {
            warn!(error = %e, service = %plan.service, "progress edit failed");
        }
        last_edit = Instant::now();
        if progress.is_final() {
            break;
        }
    }
}
