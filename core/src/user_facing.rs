//! Which error text members may see (as triagebot's `UserError`): an error written
//! for the member is shown as it is; anything else gets a short generic reply and a
//! structured log line, so no internals leak to chat. A full database disk is the
//! one internal failure that is named, because whoever runs Klaxon can act on it.

use crate::store::says_disk_full;

/// Shown for anything that is not the member's to fix: no internals leak to chat.
pub const GENERIC: &str = "Something went wrong inside Klaxon; the details are in its logs.";
/// SQLite's "database or disk is full": the one storage failure members can act on
/// (tell whoever runs Klaxon), so it is named.
pub const DISK_FULL: &str = "Klaxon's database disk is full: nothing was saved. Whoever runs Klaxon needs to free space on its server; then try again.";

/// An error that knows whether its text is safe and useful to show the member.
pub trait UserFacing: std::fmt::Display {
    /// The text for the member, or `None` when the error is Klaxon's own (then the
    /// caller logs it and answers with [`internal_reply`]).
    fn user_text(&self) -> Option<String>;
}

impl UserFacing for crate::store::StoreError {
    fn user_text(&self) -> Option<String> {
        None
    }
}

/// The reply for an error that is not the member's: a full disk is named, anything
/// else is generic.
pub fn internal_reply(error: &anyhow::Error) -> &'static str {
    if error.chain().any(|e| says_disk_full(&e.to_string())) {
        DISK_FULL
    } else {
        GENERIC
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_named_anything_else_is_generic() {
        let full =
            anyhow::anyhow!("error returned from database: (code: 13) database or disk is full")
                .context("alert store");
        assert_eq!(internal_reply(&full), DISK_FULL);
        assert_eq!(
            internal_reply(&anyhow::anyhow!("connection reset")),
            GENERIC
        );
    }
}
