//! The one mapping from the engine's errors (bollard's) to [`DockerError`].
//!
//! Health, logs, rollouts, maintenance flags and events all see the same four
//! outcomes for the same failure: before, each area had its own copy of this
//! mapping, and the copies disagreed (only one treated the legacy hyper error as
//! "unreachable", only the others knew bollard's own request timeout).

use std::time::Duration;

/// What went wrong talking to the engine. The texts are written for the member.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DockerError {
    #[error("Docker is unreachable at {host}: {reason}")]
    Unreachable { host: String, reason: String },
    #[error("no container named `{0}`")]
    NotFound(String),
    #[error("Docker did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Docker error: {0}")]
    Api(String),
}

/// `what` is the object the call was about (a container, an image, a network):
/// a 404 names it. `host` and `timeout` are the client's, for the texts.
pub(crate) fn classify(
    e: bollard::errors::Error,
    what: &str,
    host: &str,
    timeout: Duration,
) -> DockerError {
    use bollard::errors::Error as E;
    match e {
        E::DockerResponseServerError {
            status_code: 404, ..
        } => DockerError::NotFound(what.to_string()),
        E::DockerResponseServerError { message, .. } => DockerError::Api(message),
        // bollard's own per-request timeout (the client's), as opposed to the
        // deadline around a call (see `DockerClient::call`).
        E::RequestTimeoutError => DockerError::Timeout(timeout),
        E::HyperResponseError { .. }
        | E::HyperLegacyError { .. }
        | E::IOError { .. }
        | E::SocketNotFoundError(_) => DockerError::Unreachable {
            host: host.to_string(),
            reason: e.to_string(),
        },
        other => DockerError::Api(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_mapping_for_every_caller() {
        let t = Duration::from_secs(5);
        let nf = bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            message: "No such container: api".into(),
        };
        assert!(
            matches!(classify(nf, "api", "unix:///x", t), DockerError::NotFound(n) if n == "api")
        );
        let api = bollard::errors::Error::DockerResponseServerError {
            status_code: 409,
            message: "conflict".into(),
        };
        assert_eq!(
            classify(api, "api", "unix:///x", t).to_string(),
            "Docker error: conflict"
        );
        assert!(matches!(
            classify(bollard::errors::Error::RequestTimeoutError, "api", "unix:///x", t),
            DockerError::Timeout(d) if d == t
        ));
        let io = bollard::errors::Error::IOError {
            err: std::io::Error::other("refused"),
        };
        assert!(matches!(
            classify(io, "api", "unix:///x", t),
            DockerError::Unreachable { host, .. } if host == "unix:///x"
        ));
    }
}
