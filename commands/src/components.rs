//! The registry of buttons and forms: every custom-id prefix Klaxon makes, with the
//! family that reads it (verb and the command whose level it needs) and its handler.
//!
//! Clicks and submits are not slash commands, so poise does not dispatch them: the
//! bot's event handler hands every component and modal interaction here. Each one
//! goes through the same steps as a command ([`crate::interaction`]): who acted,
//! one permission check, one audit row for a refusal, a private answer; only then
//! does the family's handler run. A handler must answer within Discord's 3 s,
//! through [`Allowed::respond`]; when it fails, the member gets the error's answer
//! here (as the initial response, or as a follow-up if the handler had answered).
//!
//! The registry sits at the top of the crate: it imports the families, which never
//! import it (nor each other's click handling).

use std::future::Future;
use std::pin::Pin;

use klaxon_core::audit::Outcome;
use tracing::warn;

use crate::interaction::{self, reply_private, Allowed, Answered, Target};
use crate::serenity::{self, ComponentInteraction, ModalInteraction};
use crate::{Data, Error};

/// What a handler returns.
pub type Handled<'a> = Pin<Box<dyn Future<Output = Result<(), Error>> + Send + 'a>>;

/// What to do with an allowed member's action.
#[derive(Clone, Copy)]
pub enum Handler {
    Click(for<'a> fn(Allowed<'a, ComponentInteraction>) -> Handled<'a>),
    Form(for<'a> fn(Allowed<'a, ModalInteraction>) -> Handled<'a>),
}

/// One custom-id prefix and everything the pipeline needs to know about it.
pub struct Route {
    pub prefix: &'static str,
    /// Reads a custom id (`prefix:verb:…`) into the action and the command whose
    /// level it needs. `None`: not an id Klaxon makes (or an older version's).
    pub read: fn(&Data, &str) -> Option<Target>,
    /// The answer when the member is outside the server (no roles to check).
    /// `None`: the check runs with no roles, and refuses.
    pub outside_server: Option<&'static str>,
    /// A click from a DM (no roles in it) is checked with the member's roles in
    /// the server, looked up (the page's Acknowledge button).
    pub roles_from_server: bool,
    pub handler: Handler,
}

/// Every button and form Klaxon makes.
pub fn routes() -> [Route; 6] {
    [
        Route {
            prefix: crate::rollback::PREFIX,
            read: crate::rollback::read_click,
            outside_server: Some("These buttons work only inside the server."),
            roles_from_server: false,
            handler: Handler::Click(|a| Box::pin(crate::rollback::on_click(a))),
        },
        Route {
            prefix: crate::logs::PREFIX,
            read: crate::logs::read_click,
            outside_server: Some("This button works only inside the server."),
            roles_from_server: false,
            handler: Handler::Click(|a| Box::pin(crate::logs::on_click(a))),
        },
        Route {
            prefix: klaxon_core::incidents::PREFIX,
            read: |_, id| crate::incident::read(id, "click"),
            outside_server: None,
            roles_from_server: false,
            handler: Handler::Click(|a| Box::pin(crate::incident::on_click(a))),
        },
        Route {
            prefix: klaxon_core::incidents::PREFIX,
            read: |_, id| crate::incident::read(id, "form"),
            outside_server: None,
            roles_from_server: false,
            handler: Handler::Form(|a| Box::pin(crate::incident::on_modal(a))),
        },
        Route {
            prefix: klaxon_core::alerts::deliver::PREFIX,
            read: |_, id| crate::alerts::read_click(id),
            outside_server: None,
            roles_from_server: false,
            handler: Handler::Click(|a| Box::pin(crate::alerts::on_click(a))),
        },
        Route {
            prefix: klaxon_core::oncall::escalate::PREFIX,
            read: |_, id| crate::oncall::read_click(id),
            outside_server: Some(
                "You are not a member of the server; ask someone there to acknowledge.",
            ),
            roles_from_server: true,
            handler: Handler::Click(|a| Box::pin(crate::oncall::on_click(a))),
        },
    ]
}

fn prefix(custom_id: &str) -> &str {
    custom_id.split(':').next().unwrap_or_default()
}

/// A member's roles in the server, for a click from a DM (`None`: not a member,
/// or Discord could not tell: the click is then answered as from outside).
async fn server_roles(app: &Data, user: u64) -> Option<Vec<u64>> {
    let guild = app.guild_id?;
    match app.chat.member_roles(guild, user).await {
        Ok(roles) => roles,
        Err(e) => {
            warn!(user, error = %e, "member's roles not read for a click in a DM");
            None
        }
    }
}

/// Where the pipeline leaves a click or submit.
enum Gate {
    /// Answered privately, nothing audited: an id Klaxon no longer knows, or a
    /// member outside the server.
    Answer(&'static str),
    /// Refused at the member's level: answered privately and audited.
    Denied(klaxon_core::actor::Actor, Target, String),
    Allowed(klaxon_core::actor::Actor, Vec<u64>, Target),
}

/// The one permission check for clicks and forms, at the level of the command the
/// action stands for.
fn gate(
    app: &Data,
    route: &Route,
    custom_id: &str,
    by: klaxon_core::actor::Actor,
    member_roles: Option<Vec<u64>>,
    inactive: &'static str,
) -> Gate {
    let Some(target) = (route.read)(app, custom_id) else {
        return Gate::Answer(inactive);
    };
    let roles = match (member_roles, route.outside_server) {
        (Some(roles), _) => roles,
        (None, Some(text)) => return Gate::Answer(text),
        (None, None) => Vec::new(),
    };
    match interaction::permit(app, &target.command, &roles) {
        Ok(()) => Gate::Allowed(by, roles, target),
        Err(denied) => Gate::Denied(by, target, denied.to_string()),
    }
}

async fn refuse(app: &Data, by: &klaxon_core::actor::Actor, target: Target, text: String) {
    interaction::record(
        app,
        by,
        &target.command,
        target.arguments,
        Outcome::Denied,
        text,
        0,
    )
    .await;
}

/// A click on a button, routed by its custom id's prefix.
pub async fn dispatch(
    ctx: &serenity::Context,
    app: &Data,
    click: &ComponentInteraction,
) -> Result<(), Error> {
    run(ctx, app, click).await
}

/// A submitted form (modal), routed like clicks.
pub async fn dispatch_modal(
    ctx: &serenity::Context,
    app: &Data,
    modal: &ModalInteraction,
) -> Result<(), Error> {
    run(ctx, app, modal).await
}

/// What the pipeline reads off a click or a submit: the two differ only here.
trait Routed: interaction::Respond + Sized {
    /// The answer to an id Klaxon no longer knows.
    const INACTIVE: &'static str;
    /// For the log line about an unknown id.
    const KIND: &'static str;
    fn custom_id(&self) -> &str;
    fn actor(&self) -> klaxon_core::actor::Actor;
    fn roles(&self) -> Option<Vec<u64>>;
    fn handler(h: Handler) -> Option<for<'a> fn(Allowed<'a, Self>) -> Handled<'a>>;
}

impl Routed for ComponentInteraction {
    const INACTIVE: &'static str = "This button is no longer active.";
    const KIND: &'static str = "click on an unknown component";
    fn custom_id(&self) -> &str {
        &self.data.custom_id
    }
    fn actor(&self) -> klaxon_core::actor::Actor {
        interaction::actor(&self.user, self.guild_id, self.channel_id)
    }
    fn roles(&self) -> Option<Vec<u64>> {
        interaction::member_roles(self.member.as_ref())
    }
    fn handler(h: Handler) -> Option<for<'a> fn(Allowed<'a, Self>) -> Handled<'a>> {
        match h {
            Handler::Click(h) => Some(h),
            Handler::Form(_) => None,
        }
    }
}

impl Routed for ModalInteraction {
    const INACTIVE: &'static str = "This form is no longer active.";
    const KIND: &'static str = "submit of an unknown modal";
    fn custom_id(&self) -> &str {
        &self.data.custom_id
    }
    fn actor(&self) -> klaxon_core::actor::Actor {
        interaction::actor(&self.user, self.guild_id, self.channel_id)
    }
    fn roles(&self) -> Option<Vec<u64>> {
        interaction::member_roles(self.member.as_ref())
    }
    fn handler(h: Handler) -> Option<for<'a> fn(Allowed<'a, Self>) -> Handled<'a>> {
        match h {
            Handler::Form(h) => Some(h),
            Handler::Click(_) => None,
        }
    }
}

/// The one pipeline for clicks and submits: route, check, answer, run, and answer
/// a failure the handler left unanswered.
async fn run<I: Routed>(ctx: &serenity::Context, app: &Data, i: &I) -> Result<(), Error> {
    let custom_id = i.custom_id();
    let found = routes().into_iter().find_map(|r| {
        I::handler(r.handler)
            .filter(|_| r.prefix == prefix(custom_id))
            .map(|h| (r, h))
    });
    let Some((route, handler)) = found else {
        warn!(custom_id, "{}", I::KIND);
        return reply_private(ctx, i, I::INACTIVE).await;
    };
    let mut roles = i.roles();
    if roles.is_none() && route.roles_from_server {
        roles = server_roles(app, i.actor().user_id).await;
    }
    match gate(app, &route, custom_id, i.actor(), roles, I::INACTIVE) {
        Gate::Answer(text) => reply_private(ctx, i, text).await,
        Gate::Denied(by, target, text) => {
            reply_private(ctx, i, &text).await?;
            refuse(app, &by, target, text).await;
            Ok(())
        }
        Gate::Allowed(by, roles, target) => {
            let started = std::time::Instant::now();
            let answered = Answered::default();
            let done = handler(Allowed {
                ctx,
                app,
                interaction: i,
                by,
                roles,
                target,
                answered: answered.clone(),
            })
            .await;
            if let Err(e) = &done {
                interaction::answer_failure(ctx, i, &answered, e).await;
            }
            // By the button family (a fixed set), never the custom id.
            app.metrics.observe(
                "klaxon_command_duration_seconds",
                &[
                    ("command", &format!("button:{}", route.prefix)),
                    ("outcome", if done.is_ok() { "ok" } else { "failed" }),
                ],
                started.elapsed().as_secs_f64(),
            );
            done
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_click_needs_the_level_of_the_command_it_stands_for() {
        let command = |id: &str| crate::alerts::read_click(id).map(|t| t.command);
        assert_eq!(command("alerts:ack:7").as_deref(), Some("alerts silence"));
        assert_eq!(
            command("alerts:silence:7").as_deref(),
            Some("alerts silence")
        );
        assert_eq!(
            command("alerts:incident:7").as_deref(),
            Some("incident open")
        );
        assert_eq!(command("alerts:logs:7").as_deref(), Some("logs"));
        assert_eq!(command("alerts:ack:seven"), None);
        let form = crate::incident::read("incident:m-note:3", "form").expect("a form");
        assert_eq!(form.command, "incident note");
        assert_eq!(
            form.arguments,
            format!("id={} form=m-note", klaxon_core::incidents::IncidentId(3))
        );
        let click = crate::incident::read("incident:resolve:3", "click").expect("a click");
        assert_eq!(click.command, "incident resolve");
        assert_eq!(crate::incident::read("incident:ack", "click"), None);
    }

    #[test]
    fn every_prefix_has_one_route_per_kind() {
        let routes = routes();
        for (i, a) in routes.iter().enumerate() {
            for b in &routes[i + 1..] {
                let same_kind = matches!(
                    (a.handler, b.handler),
                    (Handler::Click(_), Handler::Click(_)) | (Handler::Form(_), Handler::Form(_))
                );
                assert!(!(same_kind && a.prefix == b.prefix), "{}", a.prefix);
            }
        }
    }
}
