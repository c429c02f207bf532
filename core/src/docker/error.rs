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
        | E::SocketNotFoundError(_) => unreachable(e, host),
        other => DockerError::Api(other.to_string()),
    }
}

/// The engine could not be reached. A socket this user may not open (EACCES) is
/// named with its fix: bollard's own text ("Error in the hyper legacy client:
/// client error (Connect)") hides it.
pub(crate) fn unreachable(e: bollard::errors::Error, host: &str) -> DockerError {
    let io_denied = matches!(&e, bollard::errors::Error::IOError { err }
        if err.kind() == std::io::ErrorKind::PermissionDenied);
    let reason = if io_denied || permission_denied(&e) {
        PERMISSION_DENIED.to_string()
    } else {
        e.to_string()
    };
    DockerError::Unreachable {
        host: host.to_string(),
        reason,
    }
}

/// The reason of a refused socket, with the fix.
pub const PERMISSION_DENIED: &str = "permission denied: this user may not open the Docker \
     socket; add it to the socket's group (the docker group: systemd \
     SupplementaryGroups=docker, or docker run --group-add $(stat -c %g /var/run/docker.sock))";

fn permission_denied(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
        {
            return true;
        }
        next = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_socket_is_named_with_its_fix() {
        let e = bollard::errors::Error::IOError {
            err: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        let text = classify(
            e,
            "api",
            "unix:///var/run/docker.sock",
            Duration::from_secs(5),
        )
        .to_string();
        assert!(
            text.starts_with(
                "Docker is unreachable at unix:///var/run/docker.sock: permission denied"
            ),
            "{text}"
        );
        assert!(text.contains("--group-add"), "{text}");
    }

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
