//! The public status page (issue #15): what is broken and when it will be fixed,
//! for stakeholders outside Discord.
//!
//! Why rendered once per change: the page faces customers and may be hit hard, so a
//! request never touches the database. [`Published`] holds the last rendering;
//! `gather` rebuilds the [`Snapshot`] when an incident or maintenance window changes
//! (the [`on_event`] subscriber wakes the refresher) and every few seconds for the
//! health state, and the pure renderers (`html`, `atom`) turn it into bytes.
//!
//! Public means what stakeholders already get: the stakeholder notices' words and
//! the maintenance announcements, under component names from `[status_page]`.

pub mod atom;
pub mod gather;
pub mod html;
pub mod model;
pub mod rollup;

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use crate::app::App;
use crate::events::{Event, Handling};
use model::Snapshot;

/// One rendering of every path the page serves.
#[derive(Debug, Default)]
pub struct Rendered {
    pub page: String,
    pub feed: String,
    pub json: String,
    /// `INC-7` → its page.
    pub incidents: BTreeMap<String, String>,
}

/// Renders every path from one snapshot. Pure.
pub fn render(s: &Snapshot) -> Rendered {
    let incidents = s
        .open
        .iter()
        .chain(&s.history)
        .map(|i| (i.id.clone(), html::incident_page(s, i)))
        .collect();
    Rendered {
        page: html::page(s),
        feed: atom::feed(s),
        json: atom::json(s),
        incidents,
    }
}

/// The rendering being served; swapped whole, read without waiting on a refresh.
#[derive(Debug, Default)]
pub struct Published(RwLock<Arc<Rendered>>);

impl Published {
    pub fn get(&self) -> Arc<Rendered> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn set(&self, r: Rendered) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(r);
    }
}

/// Subscriber of the domain events: an incident command or a maintenance step
/// wakes the page's refresher (it rebuilds in the background; nothing waits here).
pub fn on_event<'a>(app: &'a App, e: &'a Event) -> Handling<'a> {
    Box::pin(async move {
        // Any command: incident buttons and modals are audited under names of
        // their own, and a spare rebuild costs little.
        let relevant = matches!(e, Event::CommandRun(_) | Event::Maintenance(_));
        if relevant {
            app.status_page_wake.notify_one();
        }
    })
}

#[cfg(test)]
mod tests;
