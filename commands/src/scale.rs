//! `/scale service replicas`: a compose service's replica count (or a Swarm
//! service's, through `rollout::swarm`), with the same
//! plan, Confirm, lock, progress and audit as `/rollback` (whose buttons and
//! progress edits it shares: [`crate::rollback::show_plan`]; its texts are in
//! [`crate::replica_texts`]).
//!
//! A count of 0 or above `[rollback] max_replicas`, or a service without replicas,
//! is refused privately before anything is asked of Docker.

use std::sync::Arc;

use klaxon_core::rollout::{self, RolloutError};

use crate::choices::autocomplete_service;
use crate::interaction;
use crate::{Context, Error, UserError};

/// Set how many replicas a compose or Swarm service runs, then check their health
#[poise::command(slash_command, rename = "scale")]
pub async fn scale(
    ctx: Context<'_>,
    #[description = "The compose or Swarm service to scale"]
    #[autocomplete = "autocomplete_service"]
    service: String,
    #[description = "How many replicas it should run"] replicas: i64,
) -> Result<(), Error> {
    let app = Arc::clone(ctx.data());
    // What memory can answer is answered before anything slow, privately.
    let svc = app.service(&service).map_err(UserError::from)?;
    let name = svc.name.clone();
    let refuse = |e: RolloutError| interaction::user_error(e, "planning a scale");
    rollout::scale::check_range(&app, &name, replicas).map_err(refuse)?;
    if svc.compose_parts().is_none() && svc.swarm_service.is_none() {
        return Err(refuse(RolloutError::NotScalable(name)));
    }
    if let Some(holder) = app.ops_locks.holder(&name) {
        return Err(refuse(RolloutError::Busy(holder)));
    }
    crate::rollback::show_plan(ctx, rollout::plan_scale(&app, &name, replicas)).await
}
