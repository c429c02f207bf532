//! From stored alerts to the outbox: the grouper renders each due group into
//! messages ([`super::render`]) and queues them ([`crate::store::outbox`]); groups
//! still firing and not acknowledged are announced again. The [`super::sender`]
//! delivers the outbox, one channel at a time in order, editing a group's messages
//! in place.
//!
//! Everything is in the database before it is sent, so a crash loses nothing; a
//! create carries a nonce Discord enforces, so a resend never shows a duplicate.

use tracing::warn;

use super::render::{self, buttons, render_group, Item, Look, Sizes};
use crate::app::App;
use crate::chat::{self, ChatMessage};
use crate::posts::{self, Kind, Post, To};
use crate::severity::Severity;
use crate::store::outbox::{self, Part};
use crate::store::StoreError;
use crate::timefmt::hhmm;

pub use super::groups::{acknowledge, group_firing, group_matchers, group_service};
pub use super::render::{preview, Preview, PREFIX};
pub use super::sender::{Delivered, Sender};

/// Renders every due group into the outbox. Returns how many groups it rendered.
pub async fn flush_due(app: &App, now_ms: i64) -> Result<usize, StoreError> {
    let store = &app.store;
    let mut n = 0;
    for g in outbox::due_groups(store, now_ms).await? {
        let id = g.id;
        let severity: Severity = g.severity.parse().unwrap_or(Severity::P3);
        let items: Vec<Item> = outbox::group_alerts(store, id)
            .await?
            .into_iter()
            .map(|(alert, first_ms, resolved_ms)| Item {
                alert,
                first_ms,
                resolved_ms,
            })
            .collect();
        let any_firing = items.iter().any(Item::firing);
        let service = group_service(store, id).await?;
        let logs = service
            .as_deref()
            .and_then(|s| app.service(s).ok())
            .is_some_and(|s| s.container.is_some());
        // A paging group whose route names an escalation policy: the policy's
        // first step pages, in place of the on-call role.
        let policy = if g.page != 0 {
            crate::oncall::escalate::group_policy(app, id).await
        } else {
            None
        };
        if let (Some(p), true, None) = (&policy, any_firing, &g.acked_by) {
            crate::oncall::escalate::start_group(
                app,
                id,
                g.generation,
                p,
                g.channel_id as u64,
                &g.title,
                severity.as_str(),
            )
            .await;
        }
        let look = Look {
            ping: (g.page != 0 && policy.is_none())
                .then_some(app.incidents.on_call_role)
                .flatten(),
            buttons: buttons(id, logs),
            note: g.acked_by.map(|by| {
                format!(
                    "👀 Acknowledged by {by} at {}",
                    g.acked_ms.map(hhmm).unwrap_or_default()
                )
            }),
        };
        let mut messages = render_group(
            &g.title,
            severity,
            &items,
            Sizes::of(&app.alerts.config),
            &look,
        );
        // Messages the group had beyond what it needs now: say so, rather than
        // leave stale alerts on screen.
        let had = g.message_ids.split(',').filter(|s| !s.is_empty()).count();
        for _ in messages.len()..had {
            messages.push(ChatMessage::text("⤴️ Merged into the message above."));
        }
        let parts: Vec<Part> = messages
            .into_iter()
            .enumerate()
            .map(|(part, mut m)| {
                m.nonce = Some(chat::truncate(
                    &format!("k{id}g{}p{part}", g.generation),
                    25,
                ));
                Part {
                    body: serde_json::to_string(&m).unwrap_or_default(),
                    nonce: m.nonce.clone().unwrap_or_default(),
                }
            })
            .collect();
        outbox::enqueue(
            store,
            id,
            g.channel_id,
            &parts,
            render::severity_rank(severity),
            any_firing,
            now_ms,
        )
        .await?;
        n += 1;
    }
    Ok(n)
}

/// Re-announces groups still firing and not acknowledged after `repeat_interval`:
/// a short new message (an edit notifies nobody). Each is claimed in the database
/// first, so replicas do not both send it.
pub async fn repeat_due(app: &App, now_ms: i64) -> Result<usize, StoreError> {
    let every = app.alerts.config.repeat_interval_secs as i64 * 1_000;
    if every == 0 {
        return Ok(0);
    }
    let store = &app.store;
    let mut sent = 0;
    for g in outbox::repeat_candidates(store, now_ms - every).await? {
        let id = g.id;
        if !outbox::claim_repeat(store, id, g.repeat_ms, now_ms).await? {
            continue;
        }
        // Planned work: a group whose firing alerts all belong to services in a
        // maintenance window is not announced again (it comes due after the window).
        let services = outbox::firing_services(store, id).await?;
        if !services.is_empty() {
            let windows = crate::store::maintenance::in_force(store, now_ms).await?;
            let held = services.iter().all(|s| {
                windows
                    .iter()
                    .any(|w| w.services.iter().any(|x| x.eq_ignore_ascii_case(s)))
            });
            if held {
                continue;
            }
        }
        let severity: Severity = g.severity.parse().unwrap_or(Severity::P3);
        let firing = outbox::firing_count(store, id).await?;
        // An escalating group is paged by its policy, not again by the role.
        let escalates = g.page != 0
            && crate::oncall::escalate::group_policy(app, id)
                .await
                .is_some();
        let ping = (g.page != 0 && !escalates)
            .then_some(app.incidents.on_call_role)
            .flatten();
        let m = render::repeat_message(id, &g.title, firing, now_ms - g.created_ms, severity, ping);
        // Through the posts outbox: claimed above, so stored once, and delivered
        // even if Discord fails right now.
        let channel = g.channel_id as u64;
        let post = Post::new(
            Kind::AlertRepeat,
            To::Channel(channel),
            m,
            format!("alert group {id}"),
        )
        .keyed(format!("kr{id}t{now_ms}"));
        match posts::post_with(app, post).await {
            Ok(_) => sent += 1,
            Err(e) => warn!(error = %e, group = id, "repeat notification not stored"),
        }
    }
    Ok(sent)
}
