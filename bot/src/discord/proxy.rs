//! A loopback HTTP proxy in front of Discord's REST API.
//!
//! serenity sends every REST call (poise's replies included) to this proxy
//! (`HttpBuilder::proxy`), which passes it through Klaxon's [`Limiter`] to the
//! configured upstream. Putting the limiter here rather than around each call
//! site means no request can bypass it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use tokio::net::TcpListener;
use tracing::warn;

use super::limiter::{self, Limiter};

/// Discord's per-request maximum is 25 MiB; leave room for the multipart framing.
const MAX_BODY: usize = 26 * 1024 * 1024;

/// REST access to Discord through the limiter; also used directly by Klaxon (the
/// `GET /gateway` start-up check).
pub struct DiscordRest {
    client: reqwest::Client,
    upstream: String,
    /// `discord.request_timeout_secs`, named when a request times out.
    timeout: std::time::Duration,
    pub limiter: Limiter,
}

impl DiscordRest {
    pub fn new(
        upstream: &str,
        timeout: std::time::Duration,
        limiter: Limiter,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(16)
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(timeout)
            .build()?;
        Ok(DiscordRest {
            client,
            upstream: upstream.trim_end_matches('/').to_string(),
            timeout,
            limiter,
        })
    }

    /// Forwards one request; `path_and_query` starts with `/api/v10/`.
    pub async fn forward(
        &self,
        method: http::Method,
        path_and_query: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<limiter::Response, reqwest::Error> {
        let url = format!("{}{}", self.upstream, path_and_query);
        let path = path_and_query.to_string();
        self.limiter
            .execute(&method, &path, || {
                let mut req = self.client.request(method.clone(), &url).body(body.clone());
                for (name, value) in headers.iter() {
                    if !is_hop_by_hop(name) {
                        req = req.header(name, value);
                    }
                }
                async move {
                    let resp = req.send().await?;
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    let body = resp.bytes().await?;
                    Ok(limiter::Response {
                        status,
                        headers,
                        body,
                    })
                }
            })
            .await
    }

    async fn get(&self, path: &str, token: &str) -> anyhow::Result<limiter::Response> {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, format!("Bot {token}").parse()?);
        self.forward(http::Method::GET, path, headers, Bytes::new())
            .await
            .map_err(|e| anyhow::anyhow!("GET {}{path} failed: {}", self.upstream, self.cause(&e)))
    }

    /// The whole cause (a DNS failure, a refused connection), not reqwest's first
    /// words; a request that hung names the setting that bounds it.
    fn cause(&self, e: &reqwest::Error) -> String {
        if e.is_timeout() {
            return format!(
                "timed out after {} s (discord.request_timeout_secs)",
                self.timeout.as_secs()
            );
        }
        crate::config::online::chain(e)
    }

    /// `GET /gateway` then `GET /users/@me`: Discord (or the configured `api_url`)
    /// answers as Discord, and the token works. Returns the gateway URL and the bot's
    /// user name. An outage (no connection, a timeout, 5xx, 429) is [`Reach::NotYet`]:
    /// start-up waits it out. Anything that will not change by waiting (401, a 404
    /// or a body that is not Discord's) is [`Reach::Refused`].
    pub async fn reach(&self, token: &str) -> Result<(String, String), Reach> {
        #[derive(serde::Deserialize)]
        struct Gateway {
            url: String,
        }
        #[derive(serde::Deserialize)]
        struct User {
            username: String,
        }
        let gateway: Gateway = self.get_json("/api/v10/gateway", token).await?;
        let user: User = self.get_json("/api/v10/users/@me", token).await?;
        Ok((gateway.url, user.username))
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
    ) -> Result<T, Reach> {
        let resp = self
            .get(path, token)
            .await
            .map_err(|e| Reach::NotYet(format!("{e:#}")))?;
        let status = resp.status.as_u16();
        let body = || {
            String::from_utf8_lossy(&resp.body)
                .chars()
                .take(200)
                .collect::<String>()
        };
        match status {
            200..=299 => serde_json::from_slice(&resp.body).map_err(|e| {
                Reach::Refused(anyhow::anyhow!(
                    "GET {}{path} returned a body that is not Discord's ({e}); check discord.api_url",
                    self.upstream
                ))
            }),
            401 => Err(Reach::Refused(anyhow::anyhow!(
                "Discord refused the token (401 Unauthorized); check DISCORD_TOKEN"
            ))),
            429 | 500..=599 => Err(Reach::NotYet(format!(
                "GET {}{path} answered {status}",
                self.upstream
            ))),
            _ => Err(Reach::Refused(anyhow::anyhow!(
                "GET {}{path} answered {status}: {}; check discord.api_url",
                self.upstream,
                body()
            ))),
        }
    }
}

/// Why Discord could not be used at start-up.
#[derive(Debug)]
pub enum Reach {
    /// An outage: worth waiting for. The text names the cause.
    NotYet(String),
    /// A wrong token or `api_url`: waiting will not help.
    Refused(anyhow::Error),
}

fn is_hop_by_hop(name: &http::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "host"
            | "connection"
            | "content-length"
            | "transfer-encoding"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "upgrade"
    )
}

/// Serves the proxy on 127.0.0.1 (never another interface: it relays requests
/// carrying the bot token). Returns the address and the server task.
pub async fn spawn(
    rest: Arc<DiscordRest>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let app = Router::new().fallback(handle).with_state(rest);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            warn!(error = %e, "Discord proxy stopped");
        }
    });
    Ok((addr, task))
}

async fn handle(State(rest): State<Arc<DiscordRest>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return (StatusCode::PAYLOAD_TOO_LARGE, "request body over 26 MiB").into_response()
        }
    };
    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    match rest.forward(parts.method, pq, parts.headers, body).await {
        Ok(resp) => {
            let mut out = Response::builder().status(resp.status);
            for (name, value) in resp.headers.iter() {
                if !is_hop_by_hop(name) {
                    out = out.header(name, value);
                }
            }
            out.body(Body::from(resp.body))
                .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
        }
        Err(e) => {
            warn!(error = %e, path = pq, "Discord request failed");
            (StatusCode::BAD_GATEWAY, format!("Discord unreachable: {e}")).into_response()
        }
    }
}
