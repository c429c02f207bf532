//! On-call: who is on call for a schedule (the pure resolver in [`resolve`]), and
//! overrides (`/oncall override`, `/oncall cover`) kept as rows in the database.
//!
//! A domain module: it takes `&App` as its context. The settings it reads are
//! validated at start-up in `settings::oncall`.

pub mod resolve;
