//! A container's log as a stream of frames (`docker logs --timestamps`).
//!
//! The adapter only reads: filtering, redaction and the ring buffer are
//! the `logs` module's. Frames are handed over as bollard produced them, without a
//! copy, since a large log is millions of them.

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use futures::{Stream, StreamExt};

use super::{DockerClient, DockerError};

/// What part of the log to read, in Docker's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRequest {
    pub follow: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// Unix seconds.
    pub since: Option<i32>,
    /// Unix seconds.
    pub until: Option<i32>,
    /// A line count, or `all`.
    pub tail: String,
}

/// One entry of the log: a line (with `timestamps`, an RFC 3339 time and a space
/// in front) from stdout or stderr.
#[derive(Debug)]
pub struct LogFrame(LogOutput);

impl LogFrame {
    /// A frame of a Swarm service's log (same framing as a container's).
    pub(super) fn from_output(output: LogOutput) -> Self {
        LogFrame(output)
    }

    pub fn is_stderr(&self) -> bool {
        matches!(self.0, LogOutput::StdErr { .. })
    }

    pub fn bytes(&self) -> &[u8] {
        self.0.as_ref()
    }
}

impl DockerClient {
    /// The log of `container`: connecting fails here; reading fails in the stream
    /// (a 404 there is [`DockerError::NotFound`] naming `container`). The stream has
    /// no deadline of its own: a read or a follow sets its own.
    pub async fn logs(
        &self,
        container: &str,
        req: &LogRequest,
    ) -> Result<impl Stream<Item = Result<LogFrame, DockerError>> + '_, DockerError> {
        let docker = self.client().await?;
        let mut b = LogsOptionsBuilder::default()
            .follow(req.follow)
            .timestamps(true)
            .stdout(req.stdout)
            .stderr(req.stderr);
        if let Some(s) = req.since {
            b = b.since(s);
        }
        if let Some(u) = req.until {
            b = b.until(u);
        }
        let options = b.tail(&req.tail).build();
        let name = container.to_string();
        Ok(docker
            .logs(container, Some(options))
            .map(move |r| r.map(LogFrame).map_err(|e| self.classify(e, &name))))
    }
}
