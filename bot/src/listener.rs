//! The HTTP accept loop, written out instead of `axum::serve` because the intake
//! is open to senders Klaxon does not control, and `axum::serve` bounds nothing:
//! a few hundred connections that trickle a request head kept every descriptor,
//! until intake, `/healthz` and even the Docker and probe sockets of `/health`
//! failed (issue #12).
//!
//! What bounds a bad sender here:
//! - **Header read timeout** (`http.read_timeout_secs`, 10 s): hyper's, which also
//!   runs while a keep-alive connection waits for its next request, so it is the
//!   idle keep-alive limit too.
//! - **Body read timeout**: the intake handler reads the body under the same
//!   deadline (`server::receive_alerts`), and answers 408.
//! - **Connection cap** (`http.max_connections`, clamped below the process's
//!   descriptor limit): at the cap, the oldest connection without a request in
//!   progress (idle, or still sending its head) is closed
//!   for the new one, so slow senders cannot lock out Alertmanager or a health
//!   check. Only when every connection is inside a request is the new one
//!   refused, with `503 too many connections`.
//!
//! Graceful shutdown is as before: stop accepting, let requests in progress
//! finish, close idle connections, wait for them all.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{service_fn, Service as _};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, Semaphore};
use tracing::{debug, warn};

/// Descriptors kept free for the database pool, Docker, Discord and probes.
const FD_RESERVE: usize = 64;
/// Refusals being written at once; past this a refused connection is just closed.
const REFUSING_AT_ONCE: usize = 32;
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
content-length: 21\r\nretry-after: 1\r\nconnection: close\r\n\r\ntoo many connections\n";

/// The open connections, in the order they were accepted, and what they are doing.
pub struct Connections {
    max: usize,
    read_timeout: Duration,
    state: Mutex<State>,
    refused: AtomicU64,
    evicted: AtomicU64,
    last_warning_ms: AtomicI64,
}

#[derive(Default)]
struct State {
    next: u64,
    open: BTreeMap<u64, Slot>,
}

struct Slot {
    /// Requests in progress; a connection with none may be closed for a new one.
    busy: usize,
    evict: Option<oneshot::Sender<()>>,
}

impl Connections {
    pub fn new(max_connections: usize, read_timeout: Duration) -> Arc<Self> {
        let max = match open_files_limit() {
            Some(limit) if limit.saturating_sub(FD_RESERVE) < max_connections => {
                let max = limit.saturating_sub(FD_RESERVE).max(8);
                warn!(
                    max_connections,
                    descriptor_limit = limit,
                    using = max,
                    "http.max_connections is over what the descriptor limit leaves free; \
                     raise `ulimit -n` (LimitNOFILE) to use it"
                );
                max
            }
            _ => max_connections,
        };
        Arc::new(Connections {
            max,
            read_timeout,
            state: Mutex::new(State::default()),
            refused: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            last_warning_ms: AtomicI64::new(0),
        })
    }

    pub fn read_timeout(&self) -> Duration {
        self.read_timeout
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for a new connection, closing the oldest one not in a request at the
    /// cap; `None` when every connection is in a request.
    fn admit(&self) -> Option<(u64, oneshot::Receiver<()>)> {
        let mut s = self.state();
        if s.open.len() >= self.max {
            let idle = s.open.iter().find(|(_, c)| c.busy == 0).map(|(id, _)| *id);
            let slot = idle.and_then(|id| s.open.remove(&id))?;
            if let Some(tx) = slot.evict {
                let _ = tx.send(());
            }
            self.evicted.fetch_add(1, Ordering::Relaxed);
        }
        let id = s.next;
        s.next += 1;
        let (tx, rx) = oneshot::channel();
        s.open.insert(
            id,
            Slot {
                busy: 0,
                evict: Some(tx),
            },
        );
        Some((id, rx))
    }

    fn release(&self, id: u64) {
        self.state().open.remove(&id);
    }

    fn busy(self: &Arc<Self>, id: u64) -> Busy {
        if let Some(slot) = self.state().open.get_mut(&id) {
            slot.busy += 1;
        }
        Busy {
            conns: Arc::clone(self),
            id,
        }
    }

    /// For `/metrics`: the connection gauges and counters, as they are now.
    pub fn record(&self, m: &klaxon_core::metrics::Metrics) {
        let open = self.state().open.len();
        m.set("klaxon_http_connections_open", &[], open as f64);
        m.set("klaxon_http_connections_max", &[], self.max as f64);
        m.raise_to(
            "klaxon_http_connections_evicted_total",
            &[],
            self.evicted.load(Ordering::Relaxed),
        );
        m.raise_to(
            "klaxon_http_connections_refused_total",
            &[],
            self.refused.load(Ordering::Relaxed),
        );
    }

    /// One warning a minute at most: a flood must not flood the log too.
    fn warn_refused(&self) {
        let total = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let now = chrono::Utc::now().timestamp_millis();
        let last = self.last_warning_ms.load(Ordering::Relaxed);
        if now - last >= 60_000
            && self
                .last_warning_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            warn!(
                max_connections = self.max,
                refused_total = total,
                "HTTP connection refused (503): every connection is in a request"
            );
        }
    }
}

/// Marks a connection as inside a request while alive.
struct Busy {
    conns: Arc<Connections>,
    id: u64,
}

impl Drop for Busy {
    fn drop(&mut self) {
        if let Some(slot) = self.conns.state().open.get_mut(&self.id) {
            slot.busy = slot.busy.saturating_sub(1);
        }
    }
}

/// The soft `RLIMIT_NOFILE`, from /proc (Linux); `None` elsewhere or unlimited.
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Serves `router` on `listener` until `shutdown`, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    conns: Arc<Connections>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    // Every connection task holds a receiver; all dropped = all finished.
    let (done_tx, done_rx) = watch::channel(());
    let refusing = Arc::new(Semaphore::new(REFUSING_AT_ONCE));
    let mut stop = stop_rx.clone();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors (EMFILE) or a connection reset before it
                    // was taken: wait a little for descriptors to come back.
                    warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        let Some((id, evict)) = conns.admit() else {
            conns.warn_refused();
            if let Ok(permit) = Arc::clone(&refusing).try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream).await;
                    drop(permit);
                });
            }
            continue;
        };
        tokio::spawn(connection(
            stream,
            router.clone(),
            Arc::clone(&conns),
            id,
            evict,
            stop_rx.clone(),
            done_rx.clone(),
        ));
    }
    drop(listener);
    drop(done_rx);
    done_tx.closed().await;
}

/// Resolves once shutdown began (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// `503 too many connections`, then close; bounded to 1 s.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(REFUSAL).await?;
        stream.shutdown().await?;
        // Read what the client sent until it closes, so the close is not a reset
        // that discards the answer before the client reads it.
        let mut buf = [0u8; 1024];
        while stream.read(&mut buf).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

async fn connection(
    stream: TcpStream,
    router: Router,
    conns: Arc<Connections>,
    id: u64,
    mut evict: oneshot::Receiver<()>,
    mut stop: watch::Receiver<bool>,
    _done: watch::Receiver<()>,
) {
    let _ = stream.set_nodelay(true);
    // The client's address, for handlers that limit per client (the status
    // page's subscribe form).
    let peer = stream.peer_addr().ok();
    let tower = TowerToHyperService::new(router);
    let marks = Arc::clone(&conns);
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let busy = marks.busy(id);
        let mut req = req.map(Body::new) as Request;
        if let Some(peer) = peer {
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
        }
        let answer = tower.call(req);
        async move {
            let r: Result<_, Infallible> = answer.await;
            drop(busy);
            r
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(conns.read_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    debug!(error = %e, "HTTP connection ended");
                }
                break;
            }
            _ = &mut evict => {
                debug!("HTTP connection closed at the cap for a new one");
                break;
            }
            _ = stopped(&mut stop), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
    conns.release(id);
}
