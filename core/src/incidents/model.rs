//! Incident vocabulary: severities, statuses, roles, ids, and the configuration.
//!
//! The types live in leaves so that `app` and the store name them without importing
//! this domain module: severity in `severity`, the configuration in
//! `settings::incidents`, the stored vocabulary in `store::incidents::record`.
//! They are re-exported here as the incident vocabulary callers name.

pub use crate::settings::incidents::*;
pub use crate::severity::Severity;
pub use crate::store::incidents::record::{IncidentId, Role, Status};

/// Longest note, summary or modal answer Klaxon takes: what a Discord modal's text
/// input allows.
pub const MAX_TEXT: usize = 4_000;
/// Longest title: it must fit a thread name with the `INC-n` prefix.
pub const MAX_TITLE: usize = 80;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_at_the_edge() {
        assert_eq!("INC-7".parse::<IncidentId>(), Ok(IncidentId(7)));
        assert_eq!(" inc-12 ".parse::<IncidentId>(), Ok(IncidentId(12)));
        assert_eq!("3".parse::<IncidentId>(), Ok(IncidentId(3)));
        assert!("INC-0".parse::<IncidentId>().is_err());
        assert!("INC-x".parse::<IncidentId>().is_err());
        assert_eq!(IncidentId(7).to_string(), "INC-7");
    }

    #[test]
    fn vocabulary_parses_case_insensitively() {
        assert_eq!("p1".parse::<Severity>(), Ok(Severity::P1));
        assert!("P5".parse::<Severity>().is_err());
        assert_eq!("Identified".parse::<Status>(), Ok(Status::Identified));
        assert_eq!("IC".parse::<Role>(), Ok(Role::Commander));
    }

    #[test]
    fn a_partial_override_keeps_the_levels_defaults() {
        let c: IncidentsConfig =
            toml::from_str("[severity.P1]\nack_minutes = 5\n").expect("parses");
        let p1 = c.severity.get(Severity::P1);
        assert_eq!(p1.ack_minutes, 5);
        assert!(p1.page, "paging stays on");
        assert_eq!(p1.update_minutes, 30);
    }

    #[test]
    fn defaults_follow_the_runbooks() {
        let c = IncidentsConfig::default();
        assert_eq!(c.severity.get(Severity::P1).ack_minutes, 15);
        assert_eq!(c.severity.get(Severity::P2).ack_minutes, 60);
        assert_eq!(c.severity.get(Severity::P3).ack_minutes, 240);
        assert!(c.severity.get(Severity::P2).page && !c.severity.get(Severity::P3).page);
        assert_eq!(c.severity.get(Severity::P1).update_minutes, 30);
        assert!(c.problems().is_empty());
    }
}
