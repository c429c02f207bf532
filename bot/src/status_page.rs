//! The public status page's listener (`[status_page] listen`, issue #15): its own
//! address, apart from `[http] listen`, which keeps the intake, `/metrics` and
//! `/readyz` private.
//!
//! Requests are answered from the last rendering in memory
//! ([`klaxon_core::status_page::Published`]); they never reach the database. The
//! refresher renders again when the domain events wake it (an incident command, a
//! maintenance step) and every [`REFRESH`] for the health state. It uses the same
//! bounded accept loop as the private listener (`listener::serve`).
//!
//! Subscriptions (`[status_page.smtp]`, `[[status_page.webhooks]]`) hang on the
//! refresher: on the leader, each new snapshot goes to
//! [`klaxon_core::subscriptions::Publisher`], which queues the updates it has not
//! seen, and a delivery worker here sends them (leader only). The forms are in
//! `status_forms`.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use klaxon_core::app::App;
use klaxon_core::settings::status_page::StatusPageConfig;
use klaxon_core::status_page::{gather, render, Published};
use klaxon_core::store::incidents::IncidentId;
use klaxon_core::subscriptions::{deliver, Publisher};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::HttpConfig;
use crate::listener::{self, Connections};

/// How often the page is rendered again for the health state without an event.
pub const REFRESH: Duration = Duration::from_secs(10);
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";
const CACHE: &str = "public, max-age=5";

/// Binds `[status_page] listen` (when set), renders once, and serves until
/// `stop` turns true. The task runs the listener and the refresher together.
pub async fn spawn(
    cfg: &StatusPageConfig,
    http: &HttpConfig,
    app: Arc<App>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<(SocketAddr, tokio::task::JoinHandle<()>)>> {
    let Some(listen) = cfg.listen else {
        return Ok(None);
    };
    let tcp = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("status_page.listen: cannot listen on {listen}: {e}"))?;
    let addr = tcp.local_addr()?;
    let published = Arc::new(Published::default());
    refresh(
        &app,
        cfg,
        &published,
        &gather::live_health(&app).await,
        None,
    )
    .await;
    let subs = Publisher::wanted(cfg)
        .then(|| deliver::Senders::new(cfg))
        .transpose()?;
    let forms = crate::status_forms::router(Arc::clone(&app), cfg)?;
    let conns = Connections::new(
        http.max_connections,
        Duration::from_secs(http.read_timeout_secs),
    );
    let mut router = router(Arc::clone(&published));
    if let Some(forms) = forms {
        router = router.merge(forms);
    }
    let cfg = cfg.clone();
    let mut stop_serve = stop.clone();
    let wake = Arc::new(tokio::sync::Notify::new());
    let task = tokio::spawn(async move {
        let serve = listener::serve(tcp, router, conns, async move {
            let _ = stop_serve.wait_for(|s| *s).await;
        });
        let deliveries = deliverer(
            Arc::clone(&app),
            cfg.clone(),
            subs,
            Arc::clone(&wake),
            stop.clone(),
        );
        tokio::join!(
            serve,
            refresher(app, cfg, published, wake, stop),
            deliveries
        );
    });
    info!(%addr, "status page listening");
    Ok(Some((addr, task)))
}

/// Renders the page again; on the leader, hands the snapshot to the subscriptions
/// (`publisher`) and wakes their worker when something new was queued.
async fn refresh(
    app: &App,
    cfg: &StatusPageConfig,
    published: &Published,
    health: &[(String, klaxon_core::health::State)],
    publisher: Option<(&mut Publisher, &tokio::sync::Notify)>,
) {
    let s = match gather::snapshot_with(app, cfg, health).await {
        Ok(s) => s,
        Err(e) => return warn!(error = %e, "status page not refreshed"),
    };
    published.set(render(&s));
    // The leader keeps the history bar's daily roll-ups.
    if app.leader.load(Ordering::Relaxed) {
        if let Err(e) = klaxon_core::status_page::rollup::record(app, &s).await {
            warn!(error = %e, "status page roll-up not recorded");
        }
    }
    let Some((publisher, wake)) = publisher else {
        return;
    };
    if !Publisher::wanted(cfg) || !app.leader.load(Ordering::Relaxed) {
        return;
    }
    match publisher.publish(app, cfg, &s).await {
        Ok(0) => {}
        Ok(_) => wake.notify_one(),
        Err(e) => {
            warn!(error = %e, "status page updates not queued for subscribers; next refresh retries")
        }
    }
}

/// Sends the subscriptions' outbox, on the leader only: when the refresher queued
/// something, else when the next retry is due.
async fn deliverer(
    app: Arc<App>,
    cfg: StatusPageConfig,
    senders: Option<deliver::Senders>,
    wake: Arc<tokio::sync::Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(senders) = senders else {
        let _ = stop.wait_for(|s| *s).await;
        return;
    };
    loop {
        let wait = if app.leader.load(Ordering::Relaxed) {
            if let Err(e) = deliver::deliver_due(&app, &cfg, &senders).await {
                warn!(error = %e, "status update delivery failed; retrying");
            }
            deliver::next_pass_in(&app, Duration::from_secs(5)).await
        } else {
            Duration::from_secs(1)
        };
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn refresher(
    app: Arc<App>,
    cfg: StatusPageConfig,
    published: Arc<Published>,
    wake: Arc<tokio::sync::Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let mut publisher = Publisher::default();
    let mut health: Option<(tokio::time::Instant, gather::Health)> = None;
    loop {
        let event = tokio::select! {
            _ = app.status_page_wake.notified() => true,
            _ = tokio::time::sleep(REFRESH) => false,
            _ = stop.wait_for(|s| *s) => return,
        };
        // An event (an incident, a notice) shows at once, with the services'
        // states of the last pass while they are younger than REFRESH; the timer's
        // pass (or a stale state) runs the live checks, which take seconds.
        let h = match &health {
            Some((at, h)) if event && at.elapsed() < REFRESH => h.clone(),
            _ => {
                let h = gather::live_health(&app).await;
                health = Some((tokio::time::Instant::now(), h.clone()));
                h
            }
        };
        refresh(&app, &cfg, &published, &h, Some((&mut publisher, &wake))).await;
    }
}

fn router(published: Arc<Published>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/index.html", get(page))
        .route("/feed.atom", get(feed))
        .route("/status.json", get(json))
        .route("/incidents/{id}", get(incident))
        .fallback(|| async { respond(StatusCode::NOT_FOUND, TEXT, "not found\n".into()) })
        .with_state(published)
}

const HTML: &str = "text/html; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(CACHE));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

async fn page(State(p): State<Arc<Published>>) -> Response {
    respond(StatusCode::OK, HTML, p.get().page.clone())
}

async fn feed(State(p): State<Arc<Published>>) -> Response {
    respond(
        StatusCode::OK,
        "application/atom+xml; charset=utf-8",
        p.get().feed.clone(),
    )
}

async fn json(State(p): State<Arc<Published>>) -> Response {
    respond(StatusCode::OK, "application/json", p.get().json.clone())
}

async fn incident(State(p): State<Arc<Published>>, Path(id): Path<String>) -> Response {
    let rendered = p.get();
    let page = IncidentId::from_str(&id)
        .ok()
        .and_then(|id| rendered.incidents.get(&id.to_string()));
    match page {
        Some(html) => respond(StatusCode::OK, HTML, html.clone()),
        None => respond(
            StatusCode::NOT_FOUND,
            TEXT,
            "no such public incident\n".into(),
        ),
    }
}
