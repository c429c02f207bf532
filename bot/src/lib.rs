//! The `klaxon` binary's library: configuration, start-up, the Discord client and
//! transport, and the HTTP server. `main.rs` only parses the command line.

pub mod cli;
pub mod config;
pub mod discord;
mod listener;
pub mod run;
pub mod server;
pub mod status_forms;
pub mod status_page;

pub use config::Config;
pub use run::{start, start_with_clock, Bot};
