//! The texts of operations on the replicas of a compose service: the `/scale` plan
//! and progress title, and the plan of a rolling `/rollback` or `/restart`. Apart
//! from `rollback` (which renders every plan) and `scale` (which proposes one), so
//! that neither imports the other.

use klaxon_core::chat;
use klaxon_core::rollout::{Phase, Plan};

fn names(list: &[String]) -> String {
    list.iter()
        .map(|n| format!("`{}`", chat::neutralize(n)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Title, description and steps of a `/scale` plan.
pub(crate) fn plan_text(plan: &Plan, wait: &str) -> (String, String, String) {
    let svc = chat::neutralize(&plan.service);
    let now = plan.replicas.len();
    let want = plan.scale_to.unwrap_or(0) as usize;
    let title = format!("Scale {svc} to {want} replicas?");
    if matches!(plan.health, klaxon_core::ops_locks::HealthWait::Swarm) {
        let description = format!(
            "Swarm service `{}`: {} → {want} replicas",
            chat::neutralize(&plan.container),
            chat::neutralize(&plan.container_state),
        );
        let steps = format!(
            "1. Set the service's replica count to {want} (Swarm starts or stops tasks)\n2. {wait}"
        );
        return (title, description, steps);
    }
    let description = format!(
        "compose `{}`: {now} → {want} replicas",
        chat::neutralize(&plan.container)
    );
    let steps = if want > now {
        format!(
            "1. Start {} new replica(s) cloned from `{}` (same image `{}`, environment, labels, health check, network), numbered after the highest\n2. {wait}\n3. One not healthy: every replica added is removed again.",
            want - now,
            chat::neutralize(plan.replicas.first().map(String::as_str).unwrap_or("?")),
            chat::neutralize(&plan.current.reference),
        )
    } else {
        // The highest numbers go first: the list is by number.
        let gone: Vec<String> = plan
            .replicas
            .iter()
            .rev()
            .take(now - want)
            .cloned()
            .collect();
        format!(
            "1. Stop and remove {} (the highest numbers first)",
            names(&gone)
        )
    };
    (title, description, steps)
}

/// Title, description and steps of a rolling `/rollback` (a target) or `/restart`.
pub(crate) fn rolling_text(
    plan: &Plan,
    svc: &str,
    target: &str,
    wait: &str,
) -> (String, String, String) {
    let list = names(&plan.replicas);
    let n = plan.replicas.len();
    if target.is_empty() {
        return (
            format!("Restart {svc}?"),
            format!("{n} replicas of compose `{}`, one at a time", chat::neutralize(&plan.container)),
            format!("For {list}, one at a time:\n1. Restart it\n2. {wait}\n3. Not healthy: stop there, leave the rest as they are."),
        );
    }
    (
        format!("Roll back {svc}?"),
        format!(
            "{n} replicas of compose `{}`: `{}` → `{}`, one at a time",
            chat::neutralize(&plan.container),
            chat::neutralize(&plan.current.reference),
            chat::neutralize(target)
        ),
        format!(
            "For {list}, one at a time:\n1. Stop it and keep it aside\n2. Start the same configuration on `{}`\n3. {wait}\n4. Not healthy: put it and every replica changed before it back on the old image. All healthy: remove the old containers.",
            chat::neutralize(target)
        ),
    )
}

/// The progress title of a `/scale`.
pub(crate) fn progress_title(plan: &Plan, phase: &Phase) -> String {
    let svc = chat::neutralize(&plan.service);
    let want = plan.scale_to.unwrap_or(0);
    match phase {
        Phase::Done => format!("✅ {svc} scaled to {want} replicas"),
        Phase::Reverted { .. } => format!("↩️ Scaling of {svc} reverted"),
        Phase::Failed { .. } => format!("❌ Scaling of {svc} failed"),
        _ => format!("⏳ Scaling {svc} to {want} replicas"),
    }
}
