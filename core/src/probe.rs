//! HTTP health probes.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult {
    /// The probed URL with its credentials masked: safe to show.
    pub url: String,
    /// The HTTP status, when a response arrived.
    pub status: Option<u16>,
    pub latency: Duration,
    /// Why the probe failed without a response (refused, timed out, TLS...).
    pub error: Option<String>,
}

impl ProbeResult {
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

#[derive(Clone)]
pub struct Prober {
    client: reqwest::Client,
}

impl From<reqwest::Client> for Prober {
    fn from(client: reqwest::Client) -> Self {
        Prober { client }
    }
}

impl Default for Prober {
    fn default() -> Self {
        Self::new()
    }
}

impl Prober {
    pub fn new() -> Self {
        Self::builder().build().unwrap_or_default().into()
    }

    /// As [`Prober::new`], also trusting the CA certificates of `pem` (one or more
    /// PEM blocks) for HTTPS probes: services behind an internal CA.
    pub fn with_extra_ca(pem: &[u8]) -> Result<Self, String> {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("not a PEM certificate bundle: {e}"))?;
        if certs.is_empty() {
            return Err("no PEM certificate in it".into());
        }
        let builder = certs
            .into_iter()
            .fold(Self::builder(), |b, c| b.add_root_certificate(c));
        builder.build().map(Into::into).map_err(|e| e.to_string())
    }

    fn builder() -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .user_agent(concat!(
                "klaxon/",
                env!("CARGO_PKG_VERSION"),
                " health-probe"
            ))
            // A health endpoint that redirects is misconfigured; report what it said.
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(2)
    }

    /// One GET with a deadline covering connect, headers and body.
    pub async fn probe(&self, url: &str, timeout: Duration) -> ProbeResult {
        let start = Instant::now();
        let result = tokio::time::timeout(timeout, async {
            let resp = self.client.get(url).send().await?;
            let status = resp.status().as_u16();
            // Read (and discard) the body so the latency includes it, as a load
            // balancer's check would; cap what we read.
            let _ = resp.bytes().await;
            Ok::<u16, reqwest::Error>(status)
        })
        .await;
        let latency = start.elapsed();
        let (status, error) = match result {
            Ok(Ok(status)) => (Some(status), None),
            // A library message may quote the URL; it reaches /health and alerts.
            Ok(Err(e)) => (None, Some(crate::secret::scrub_url_in(&describe(&e), url))),
            Err(_) => (
                None,
                Some(format!(
                    "timed out after {}",
                    crate::timefmt::human_duration(timeout)
                )),
            ),
        };
        ProbeResult {
            url: crate::secret::redact_url(url),
            status,
            latency,
            error,
        }
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_connect() {
        "connection refused".into()
    } else if e.is_timeout() {
        "timed out".into()
    } else if e.is_builder() {
        "invalid URL".into()
    } else {
        // The innermost cause is the useful part ("dns error", "tls handshake").
        let mut src: &dyn std::error::Error = e;
        while let Some(next) = src.source() {
            src = next;
        }
        src.to_string()
    }
}
