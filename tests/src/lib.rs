//! Klaxon's test world: the real bot, in-process, against the fake Discord, a real
//! dockerd and a real PostgreSQL.
//!
//! In the style of bors' `BorsTester`: tests speak in domain verbs
//! (`tester.slash("health").as_level(Level::Viewer).send()`), every read has a
//! timeout, and [`Tester::finish`] fails the test if the bot said anything the
//! test did not read or broke any Discord limit.

pub mod bench;
pub mod browser;
pub mod databases;
pub mod docker;
pub mod engine;
pub mod env;
pub mod faults;
pub mod scrape;
pub mod smtp_sink;
pub mod swarm;
pub mod tester;
pub mod year;

pub use klaxon_fake_discord as fake;
pub use tester::{Db, Reply, Tester, TesterBuilder};
