//! Klaxon's own HTTP server: `/healthz`, `/readyz`, `/metrics`, alert intake
//! (`POST /alerts/{alertmanager,grafana,generic}`) and heartbeat pings
//! (`GET|POST /heartbeat/NAME[/fail]`, taken on every replica).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use klaxon_core::alerts::{self, parse::ParseError};
use klaxon_core::events::{AlertChange, Event};
use klaxon_core::App;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tracing::{info, warn, Instrument};

use crate::config::{HttpConfig, IntakeConfig, Secret};
use crate::listener::{self, Connections};

/// Alertmanager batches stay far below this; anything larger is refused (413)
/// before it is read into memory.
pub const MAX_ALERT_BODY: usize = 1024 * 1024;
/// A database slower than this answers 503, so the sender retries elsewhere or later.
const STORE_WITHIN: Duration = Duration::from_secs(5);
/// How far a Grafana signature's timestamp may be from now, either way.
const SIGNATURE_MAX_AGE_SECS: i64 = 300;
/// Where Grafana puts the timestamp it signs, when its contact point names one.
const GRAFANA_TIMESTAMP: &str = "x-grafana-alerting-signature-timestamp";

#[derive(Clone)]
struct Server {
    app: Arc<App>,
    intake: Arc<IntakeConfig>,
    conns: Arc<Connections>,
}

fn router(app: Arc<App>, intake: IntakeConfig, conns: Arc<Connections>) -> Router {
    let state = Server {
        app,
        intake: Arc::new(intake),
        conns,
    };
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/heartbeat/{name}", get(heartbeat_ran).post(heartbeat_ran))
        .route(
            "/heartbeat/{name}/fail",
            get(heartbeat_failed).post(heartbeat_failed),
        )
        .route(
            "/alerts/{source}",
            post(receive_alerts).layer(DefaultBodyLimit::max(MAX_ALERT_BODY)),
        )
        .with_state(state)
}

fn error(status: StatusCode, text: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": text.into() }))).into_response()
}

/// Whether `Authorization: Bearer <token>` matches, in constant time. The scheme
/// is case-insensitive (RFC 7235), so `bearer x` is the same as `Bearer x`.
fn bearer_ok(headers: &HeaderMap, token: &Secret) -> bool {
    let Some((scheme, got)) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim_start().split_once(' '))
    else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer")
        && bool::from(got.trim().as_bytes().ct_eq(token.expose().as_bytes()))
}

/// Grafana's `X-Grafana-Alerting-Signature`: hex HMAC-SHA256 of the body, or,
/// when Grafana's contact point names a timestamp header, of `timestamp:body`
/// (Grafana's scheme; Unix seconds). A valid signature whose timestamp is more
/// than 5 minutes from now is refused as a replay. Without a timestamp the
/// signature can be replayed, so `intake.grafana_require_timestamp` refuses it.
/// The error is the reason given to the sender.
fn check_signature(
    headers: &HeaderMap,
    secret: &Secret,
    require_timestamp: bool,
    body: &[u8],
    now_secs: i64,
) -> Result<(), String> {
    let wrong = || "missing or wrong X-Grafana-Alerting-Signature".to_string();
    let timestamp = match headers.get(GRAFANA_TIMESTAMP) {
        None if require_timestamp => {
            return Err(
                "missing X-Grafana-Alerting-Signature-Timestamp: set Grafana's \
                 HMAC Timestamp Header to it (intake.grafana_require_timestamp is on)"
                    .into(),
            )
        }
        None => None,
        Some(v) => {
            let text = v.to_str().unwrap_or_default().trim();
            let ts: i64 = text.parse().map_err(|_| {
                "X-Grafana-Alerting-Signature-Timestamp is not a Unix time in seconds".to_string()
            })?;
            Some((text, ts))
        }
    };
    let hex = headers
        .get("x-grafana-alerting-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(wrong)?;
    let sig = decode_hex(hex.trim()).ok_or_else(wrong)?;
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret.expose().as_bytes()).map_err(|_| wrong())?;
    if let Some((text, _)) = timestamp {
        mac.update(text.as_bytes());
        mac.update(b":");
    }
    mac.update(body);
    mac.verify_slice(&sig).map_err(|_| wrong())?;
    if let Some((_, ts)) = timestamp {
        // Saturating: the timestamp is the sender's, any i64.
        let age = now_secs.saturating_sub(ts);
        if age > SIGNATURE_MAX_AGE_SECS {
            return Err(format!(
                "X-Grafana-Alerting-Signature-Timestamp is {age} s old; signatures older \
                 than 5 minutes are refused as replays (or the clocks differ)"
            ));
        }
        if age < -SIGNATURE_MAX_AGE_SECS {
            return Err(format!(
                "X-Grafana-Alerting-Signature-Timestamp is {} s ahead; signatures more \
                 than 5 minutes ahead are refused (the clocks differ)",
                age.unsigned_abs()
            ));
        }
    }
    Ok(())
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

type Parser = fn(&[u8]) -> Result<Vec<alerts::Alert>, ParseError>;

/// `POST /alerts/{source}`: authenticated, parsed, stored, then 200. The 2xx comes
/// only after the alerts are committed, so a sender retries anything not stored.
/// A correlation id for one notification: in every log line about it (span field),
/// in the answer (`X-Request-Id`, `request_id`), and, with each alert's
/// fingerprint, in the lines about its alerts.
fn request_id() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let ms = chrono::Utc::now().timestamp_millis();
    format!("{ms:x}-{n:04x}")
}

async fn receive_alerts(
    State(s): State<Server>,
    Path(source): Path<String>,
    req: Request,
) -> Response {
    let headers = req.headers().clone();
    let started = std::time::Instant::now();
    // The path is the sender's: only the three sources become a label value.
    let label = match source.as_str() {
        "alertmanager" | "grafana" | "generic" => source.clone(),
        _ => "other".to_string(),
    };
    // The body under a deadline too: hyper's header timeout ends with the head.
    let read = tokio::time::timeout(s.conns.read_timeout(), Bytes::from_request(req, &()));
    let body = match read.await {
        Ok(Ok(body)) => body,
        Ok(Err(rejected)) => return rejected.into_response(),
        Err(_) => {
            s.app.metrics.inc(
                "klaxon_alert_intake_total",
                &[("source", &label), ("result", "timeout")],
            );
            s.app.metrics.observe(
                "klaxon_intake_request_duration_seconds",
                &[("source", &label), ("status", "408")],
                started.elapsed().as_secs_f64(),
            );
            let mut r = error(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s",
                    s.conns.read_timeout().as_secs()
                ),
            );
            r.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            return r;
        }
    };
    let id = request_id();
    let span = tracing::info_span!("intake", correlation_id = %id, source = %source);
    let app = Arc::clone(&s.app);
    let mut r = receive(s, source, headers, body, &id)
        .instrument(span)
        .await;
    app.metrics.observe(
        "klaxon_intake_request_duration_seconds",
        &[("source", &label), ("status", r.status().as_str())],
        started.elapsed().as_secs_f64(),
    );
    if let Ok(v) = header::HeaderValue::from_str(&id) {
        r.headers_mut().insert("x-request-id", v);
    }
    r
}

async fn receive(
    s: Server,
    source: String,
    headers: HeaderMap,
    body: Bytes,
    request_id: &str,
) -> Response {
    let (token, key, parse): (&Secret, &str, Parser) = match source.as_str() {
        "alertmanager" => (
            &s.intake.alertmanager_token,
            "intake.alertmanager_token",
            alerts::parse::alertmanager,
        ),
        "grafana" => (
            &s.intake.grafana_token,
            "intake.grafana_token",
            alerts::parse::grafana,
        ),
        "generic" => (
            &s.intake.generic_token,
            "intake.generic_token",
            alerts::parse::generic,
        ),
        other => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no alert source `{other}`: use alertmanager, grafana or generic"),
            )
        }
    };
    if token.is_empty() {
        return error(
            StatusCode::NOT_FOUND,
            format!("alert intake from {source} is not configured ({key})"),
        );
    }
    let m = &s.app.metrics;
    if !bearer_ok(&headers, token) {
        m.inc(
            "klaxon_alert_intake_total",
            &[("source", &source), ("result", "unauthorized")],
        );
        let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return r;
    }
    if source == "grafana" && !s.intake.grafana_signing_secret.is_empty() {
        if let Err(reason) = check_signature(
            &headers,
            &s.intake.grafana_signing_secret,
            s.intake.grafana_require_timestamp,
            &body,
            s.app.clock.now_ms().div_euclid(1000),
        ) {
            m.inc(
                "klaxon_alert_intake_total",
                &[("source", &source), ("result", "bad_signature")],
            );
            warn!(reason, "Grafana signature refused");
            return error(StatusCode::UNAUTHORIZED, reason);
        }
    }
    let parsed = match parse(&body) {
        Ok(a) => a,
        Err(e) => {
            m.inc(
                "klaxon_alert_intake_total",
                &[("source", &source), ("result", "invalid")],
            );
            return error(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let now = s.app.clock.now_ms();
    let store = alerts::intake::ingest(
        &s.app.store,
        &s.app.alerts,
        s.app.alerts_channel,
        &parsed,
        now,
    );
    match tokio::time::timeout(STORE_WITHIN, store).await {
        Ok(Ok(done)) => {
            let changed = AlertChange::picked(&parsed, &done.changed);
            s.app.publish(Event::AlertsChanged(changed)).await;
            m.inc(
                "klaxon_alert_intake_total",
                &[("source", &source), ("result", "stored")],
            );
            m.add(
                "klaxon_alerts_received_total",
                &[("source", &source)],
                parsed.len() as f64,
            );
            m.observe(
                "klaxon_intake_alerts_per_request",
                &[("source", &source)],
                parsed.len() as f64,
            );
            info!(
                alerts = parsed.len(),
                firing = done.firing,
                resolved = done.resolved,
                duplicates = done.duplicates,
                held = done.held,
                "alerts stored"
            );
            for i in &done.changed {
                if let Some(a) = parsed.get(*i) {
                    tracing::debug!(
                        alert_id = %format!("{}:{}", a.source.as_str(), a.fingerprint),
                        alert = a.name(),
                        status = a.status.as_str(),
                        "alert changed"
                    );
                }
            }
            (
                StatusCode::OK,
                Json(serde_json::json!({
                    "accepted": parsed.len(), "stored": done, "request_id": request_id
                })),
            )
                .into_response()
        }
        Ok(Err(e)) => {
            warn!(source, error = %e, "alerts not stored");
            m.inc(
                "klaxon_alert_intake_total",
                &[("source", &source), ("result", "unavailable")],
            );
            // The one cause worth naming to whoever reads the sender's logs.
            let reason = if e.is_disk_full() {
                "the database's disk is full"
            } else {
                "the database did not take the write"
            };
            unavailable(reason)
        }
        Err(_) => {
            warn!(
                source,
                "alerts not stored: the database did not answer in time"
            );
            m.inc(
                "klaxon_alert_intake_total",
                &[("source", &source), ("result", "unavailable")],
            );
            unavailable("the database did not answer in time")
        }
    }
}

/// The configured heartbeat `name`, when the request carries its token. Without an
/// `Authorization` header the answer is 401; with a wrong token or an unknown name
/// it is 404, the same for both, so the answer never tells which names exist.
fn heartbeat_of<'a>(
    app: &'a App,
    name: &str,
    headers: &HeaderMap,
) -> Result<&'a klaxon_core::settings::heartbeats::Heartbeat, Refused> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim_start().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    let Some(token) = token else {
        return Err(Refused::NoToken);
    };
    let found = alerts::heartbeats::find(app, name);
    // Compared even for an unknown name, so the time taken tells nothing either.
    let dummy = klaxon_core::settings::heartbeats::Token::default();
    let ok = found.map_or(&dummy, |h| &h.token).matches(token);
    match found {
        Some(hb) if ok => Ok(hb),
        _ => Err(Refused::Wrong),
    }
}

/// Why a heartbeat ping was refused (see [`heartbeat_of`]).
enum Refused {
    NoToken,
    Wrong,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::NoToken => {
                let mut r = error(StatusCode::UNAUTHORIZED, "missing bearer token");
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
                r
            }
            Refused::Wrong => error(
                StatusCode::NOT_FOUND,
                "no such heartbeat, or a wrong bearer token",
            ),
        }
    }
}

/// `GET|POST /heartbeat/{name}`: a successful run of the job.
async fn heartbeat_ran(
    State(s): State<Server>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let hb = match heartbeat_of(&s.app, &name, &headers) {
        Ok(hb) => hb,
        Err(r) => return r.into_response(),
    };
    let span = tracing::info_span!("heartbeat", heartbeat = %hb.name);
    let ran = tokio::time::timeout(STORE_WITHIN, alerts::heartbeats::ran(&s.app, hb));
    match ran.instrument(span).await {
        Ok(Ok(deadline_ms)) => {
            info!(heartbeat = %hb.name, "heartbeat: run recorded");
            (
                StatusCode::OK,
                Json(serde_json::json!({ "heartbeat": hb.name, "next_deadline_ms": deadline_ms })),
            )
                .into_response()
        }
        Ok(Err(e)) => {
            warn!(heartbeat = %hb.name, error = %e, "heartbeat not stored");
            unavailable("the database did not take the write")
        }
        Err(_) => unavailable("the database did not answer in time"),
    }
}

/// `GET|POST /heartbeat/{name}/fail`: the job failed; `HeartbeatFailed` fires now.
async fn heartbeat_failed(
    State(s): State<Server>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let hb = match heartbeat_of(&s.app, &name, &headers) {
        Ok(hb) => hb,
        Err(r) => return r.into_response(),
    };
    let span = tracing::info_span!("heartbeat", heartbeat = %hb.name);
    let failed = tokio::time::timeout(STORE_WITHIN, alerts::heartbeats::failed(&s.app, hb));
    match failed.instrument(span).await {
        Ok(Ok(())) => {
            warn!(heartbeat = %hb.name, "heartbeat: failed run reported");
            (
                StatusCode::OK,
                Json(serde_json::json!({ "heartbeat": hb.name, "failed": true })),
            )
                .into_response()
        }
        Ok(Err(e)) => {
            warn!(heartbeat = %hb.name, error = %e, "heartbeat failure not stored");
            unavailable("the database did not take the write")
        }
        Err(_) => unavailable("the database did not answer in time"),
    }
}

fn unavailable(reason: &str) -> Response {
    let mut r = (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({
            "error": "storage unavailable; nothing was stored, retry",
            "reason": reason,
        })),
    )
        .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
    r
}

/// Ready when the database answers and the gateway session is up: a load balancer
/// or systemd watchdog should not route to a replica that cannot do either.
async fn readyz(State(Server { app, .. }): State<Server>) -> impl IntoResponse {
    let db = matches!(
        tokio::time::timeout(Duration::from_secs(2), app.store.ping()).await,
        Ok(Ok(()))
    );
    let leader = app.leader.load(Ordering::Relaxed);
    // Holding the lease, the gateway not up yet: not a follower, and not ready.
    let connecting = !leader && app.leader_connecting.load(Ordering::Relaxed);
    // A follower has no gateway session by design: ready when it can store alerts.
    let gateway = !connecting && (!leader || app.chat_connected.load(Ordering::Relaxed));
    let token = !app.chat_unauthorized.load(Ordering::Relaxed);
    // Discord did not answer at start-up: alerts are stored, nothing is posted yet.
    let outage = app
        .discord_outage
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    // Said, not counted against readiness: without Docker, alerts are still taken.
    // A team whose services name no container does not use the engine at all.
    // Every engine a container runs on, at once; with several, `name: answer; ...`.
    let used: Vec<(&str, &klaxon_core::docker::DockerClient)> = app
        .engines
        .iter()
        .filter(|(name, _)| {
            app.services_on(name)
                .any(|s| s.container.is_some() || s.compose.is_some() || s.swarm_service.is_some())
        })
        .collect();
    let docker = if used.is_empty() {
        "not used (no [[services]] names a container)".to_string()
    } else {
        let answers = futures::future::join_all(used.iter().map(|(name, engine)| async move {
            let answer = match tokio::time::timeout(Duration::from_secs(2), engine.ping()).await {
                Ok(Ok(())) => "ok".to_string(),
                Ok(Err(e)) => e.to_string(),
                Err(_) => "Docker is unreachable: no answer within 2 s".to_string(),
            };
            (*name, answer)
        }))
        .await;
        match answers.as_slice() {
            [(_, one)] => one.clone(),
            many => many
                .iter()
                .map(|(n, a)| format!("{n}: {a}"))
                .collect::<Vec<_>>()
                .join("; "),
        }
    };
    let body = serde_json::json!({
        "role": if leader { "leader" } else if connecting { "leader (connecting)" } else { "follower" },
        "docker": docker,
        "database": if db { "ok" } else { "unreachable" },
        "gateway": if connecting { "connecting" } else if !leader { "not needed (follower)" } else if gateway { "connected" } else { "disconnected" },
        "discord_token": if token { "ok" } else { "refused (401): alert delivery stopped" },
        "discord": match &outage {
            None => "ok".to_string(),
            Some(cause) => format!("unreachable (retrying): {cause}"),
        },
    });
    let status = if db && gateway && token && outage.is_none() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

async fn metrics(State(Server { app, conns, .. }): State<Server>) -> impl IntoResponse {
    klaxon_core::observe::refresh(&app).await;
    conns.record(&app.metrics);
    (
        [(header::CONTENT_TYPE, klaxon_core::metrics::CONTENT_TYPE)],
        app.metrics.render(),
    )
}

pub async fn spawn(
    http: &HttpConfig,
    app: Arc<App>,
    intake: IntakeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listen = http.listen;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("http.listen: cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    let conns = Connections::new(
        http.max_connections,
        Duration::from_secs(http.read_timeout_secs),
    );
    let router = router(app, intake, Arc::clone(&conns));
    let task = tokio::spawn(listener::serve(listener, router, conns, shutdown));
    Ok((addr, task))
}
