//! The Discord side: transport (proxy + limiter) and the chat sink.

pub mod chat;
pub mod limiter;
pub mod proxy;
pub mod traced;
