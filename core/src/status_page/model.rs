//! What the public page shows, as plain data: built from the store and the health
//! checks by `gather`, rendered by `html`, `atom` and `json` without any I/O.
//!
//! Why a model of its own: only fields that are public by construction live here
//! (titles, the stakeholder notices' words, component names, times). Timeline notes,
//! member names, log lines, container names and alert labels have no field, so no
//! renderer can leak them.

use serde::Serialize;

/// A component's state, ordered from best to worst so the overall state is the max.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CompState {
    Operational,
    Maintenance,
    Degraded,
    Outage,
}

impl CompState {
    pub fn as_str(self) -> &'static str {
        match self {
            CompState::Operational => "operational",
            CompState::Maintenance => "maintenance",
            CompState::Degraded => "degraded",
            CompState::Outage => "outage",
        }
    }

    /// As stakeholders read it.
    pub fn label(self) -> &'static str {
        match self {
            CompState::Operational => "Operational",
            CompState::Maintenance => "Under maintenance",
            CompState::Degraded => "Degraded performance",
            CompState::Outage => "Outage",
        }
    }

    /// The overall line of the page.
    pub fn overall(self) -> &'static str {
        match self {
            CompState::Operational => "All systems operational",
            CompState::Maintenance => "Maintenance in progress",
            CompState::Degraded => "Some systems are degraded",
            CompState::Outage => "Major outage",
        }
    }
}

/// One day of a component's history bar.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Day {
    /// `2026-12-01` (UTC).
    pub date: String,
    pub state: CompState,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Component {
    pub name: String,
    pub description: String,
    pub state: CompState,
    /// Oldest first; empty in `status.json`.
    #[serde(skip)]
    pub days: Vec<Day>,
}

/// One public update: the words of a stakeholder notice.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PublicUpdate {
    pub at_ms: i64,
    /// `Investigating`, `Identified`, `Monitoring`, `Resolved`.
    pub status: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PublicIncident {
    /// `INC-7`.
    pub id: String,
    pub title: String,
    pub severity: String,
    pub status: String,
    /// The components it touches (public names, never service names).
    pub components: Vec<String>,
    pub opened_ms: i64,
    pub resolved_ms: Option<i64>,
    /// Oldest first.
    pub updates: Vec<PublicUpdate>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PublicWindow {
    pub components: Vec<String>,
    pub reason: String,
    pub starts_ms: i64,
    pub ends_ms: i64,
    pub active: bool,
}

/// Everything the page shows, at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    pub title: String,
    #[serde(skip)]
    pub base_url: String,
    pub generated_ms: i64,
    pub components: Vec<Component>,
    /// Open incidents, newest first.
    pub open: Vec<PublicIncident>,
    /// Resolved incidents within the history, newest first.
    #[serde(skip)]
    pub history: Vec<PublicIncident>,
    /// Active windows and those starting soon, the soonest first.
    pub maintenance: Vec<PublicWindow>,
    /// Email subscriptions are offered (`[status_page.smtp]` is set): the page
    /// shows the subscribe form.
    #[serde(skip)]
    pub subscribe: bool,
}

impl Snapshot {
    pub fn overall(&self) -> CompState {
        self.components
            .iter()
            .map(|c| c.state)
            .chain(self.open.iter().map(|_| CompState::Degraded))
            .max()
            .unwrap_or(CompState::Operational)
    }
}
