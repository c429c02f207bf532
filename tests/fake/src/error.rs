//! Discord's error answers, and which of them count against the bot.

use http::StatusCode;
use serde_json::{json, Map, Value};

/// The violation counter an error answer increments (see [`crate::Violations`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ViolationKind {
    TooLarge,
    InvalidBody,
    RateLimited,
    GlobalRateLimited,
    LateInteraction,
    DoubleAck,
    Unauthorized,
    UnknownRoute,
    WouldPing,
}

/// An error response exactly as Discord would send it, plus the bookkeeping the fake
/// does for it.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub body: Value,
    pub violation: Option<(ViolationKind, String)>,
}

impl ApiError {
    /// Discord's plain `{"message", "code"}` error body.
    pub fn new(status: StatusCode, code: u32, message: &str) -> Self {
        ApiError {
            status,
            body: json!({ "message": message, "code": code }),
            violation: None,
        }
    }

    /// Marks this answer as something the bot did wrong.
    pub fn counted(mut self, kind: ViolationKind, detail: impl Into<String>) -> Self {
        self.violation = Some((kind, detail.into()));
        self
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, 0, "401: Unauthorized")
    }

    pub fn not_found_route() -> Self {
        Self::new(StatusCode::NOT_FOUND, 0, "404: Not Found")
    }

    pub fn unknown_channel() -> Self {
        Self::new(StatusCode::NOT_FOUND, 10003, "Unknown Channel")
    }

    pub fn unknown_guild() -> Self {
        Self::new(StatusCode::NOT_FOUND, 10004, "Unknown Guild")
    }

    pub fn unknown_member() -> Self {
        Self::new(StatusCode::NOT_FOUND, 10007, "Unknown Member")
    }

    pub fn unknown_role() -> Self {
        Self::new(StatusCode::NOT_FOUND, 10011, "Unknown Role")
    }

    pub fn missing_permissions() -> Self {
        Self::new(StatusCode::FORBIDDEN, 50013, "Missing Permissions")
    }

    /// A DM to a user who closed DMs or shares no server with the bot.
    pub fn cannot_message_user() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            50007,
            "Cannot send messages to this user",
        )
    }

    pub fn unknown_message() -> Self {
        Self::new(StatusCode::NOT_FOUND, 10008, "Unknown Message")
    }

    pub fn unknown_webhook() -> Self {
        Self::new(StatusCode::NOT_FOUND, 10015, "Unknown Webhook")
    }

    pub fn unknown_interaction() -> Self {
        Self::new(StatusCode::NOT_FOUND, 10062, "Unknown interaction")
    }

    pub fn missing_access() -> Self {
        Self::new(StatusCode::FORBIDDEN, 50001, "Missing Access")
    }

    pub fn already_acknowledged() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            40060,
            "Interaction has already been acknowledged.",
        )
    }

    pub fn empty_message() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            50006,
            "Cannot send an empty message",
        )
    }

    pub fn not_author() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            50005,
            "Cannot edit a message authored by another user",
        )
    }

    pub fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            40005,
            "Request entity too large",
        )
    }

    pub fn invalid_json() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            50109,
            "The request body contains invalid JSON.",
        )
    }
}

/// Collects field errors and renders Discord's nested `50035 Invalid Form Body` shape:
/// `{"errors": {"embeds": {"0": {"title": {"_errors": [{code, message}]}}}}}`.
#[derive(Debug, Default)]
pub(crate) struct FormErrors {
    errors: Vec<(String, &'static str, String)>,
}

impl FormErrors {
    /// `path` is dot separated (`embeds.0.title`); an empty path is the body itself.
    pub fn add(&mut self, path: impl Into<String>, code: &'static str, message: impl Into<String>) {
        self.errors.push((path.into(), code, message.into()));
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// `Ok` when nothing was collected, else the 400 answer (counted as invalid body).
    pub fn into_result(self, what: &str) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.into_error(what))
        }
    }

    /// The 400 answer for the collected errors (counted as invalid body).
    pub fn into_error(self, what: &str) -> ApiError {
        let detail = self
            .errors
            .iter()
            .map(|(path, code, message)| format!("{path}: {code} ({message})"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut root = Map::new();
        for (path, code, message) in self.errors {
            let mut node = &mut root;
            for segment in path.split('.').filter(|s| !s.is_empty()) {
                node = node
                    .entry(segment.to_string())
                    .or_insert_with(|| Value::Object(Map::new()))
                    .as_object_mut()
                    .expect("error tree nodes are always objects");
            }
            let list = node
                .entry("_errors".to_string())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(list) = list {
                list.push(json!({ "code": code, "message": message }));
            }
        }
        ApiError {
            status: StatusCode::BAD_REQUEST,
            body: json!({ "code": 50035, "errors": root, "message": "Invalid Form Body" }),
            violation: Some((ViolationKind::InvalidBody, format!("{what}: {detail}"))),
        }
    }

    /// A single field error as a 400 answer.
    pub fn one(path: &str, code: &'static str, message: &str, what: &str) -> ApiError {
        let mut errors = FormErrors::default();
        errors.add(path, code, message);
        errors.into_error(what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nests_errors_by_path() {
        let mut errors = FormErrors::default();
        errors.add(
            "content",
            "BASE_TYPE_MAX_LENGTH",
            "Must be 2000 or fewer in length.",
        );
        errors.add(
            "embeds.0.title",
            "BASE_TYPE_MAX_LENGTH",
            "Must be 256 or fewer in length.",
        );
        let err = errors.into_result("test").unwrap_err();
        assert_eq!(
            err.body["errors"]["content"]["_errors"][0]["code"],
            "BASE_TYPE_MAX_LENGTH"
        );
        assert_eq!(
            err.body["errors"]["embeds"]["0"]["title"]["_errors"][0]["message"],
            "Must be 256 or fewer in length."
        );
        assert_eq!(err.body["code"], 50035);
    }
}
