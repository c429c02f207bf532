//! Incident and alert severity (P1..P4): shared vocabulary, imported by every area.
