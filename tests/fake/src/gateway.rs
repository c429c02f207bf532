//! The gateway: HELLO, IDENTIFY -> READY, heartbeats, RESUME with replay, and
//! dispatching events with per-session sequence numbers. Plain JSON text frames.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State as AxumState;
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::error::ViolationKind;
use crate::model;
use crate::state::State;
use crate::{Shared, APP_ID};

/// Dispatches kept per session for replay on RESUME.
const REPLAY_LOG: usize = 10_000;

pub(crate) fn gateway_url(api_url: &str) -> String {
    format!("{}/gateway", api_url.replacen("http://", "ws://", 1))
}

/// What the connection's writer task sends.
#[derive(Debug)]
pub(crate) enum WsOut {
    Text(String),
    Close(u16, &'static str),
}

#[derive(Debug)]
struct Conn {
    id: u64,
    tx: mpsc::UnboundedSender<WsOut>,
}

#[derive(Debug, Default)]
struct Session {
    seq: u64,
    log: VecDeque<(u64, String)>,
    /// The connection currently attached, if any.
    conn: Option<Conn>,
}

impl Session {
    fn send_dispatch(&mut self, name: &str, d: Value) {
        self.seq += 1;
        let frame = json!({ "op": 0, "s": self.seq, "t": name, "d": d }).to_string();
        if self.log.len() == REPLAY_LOG {
            self.log.pop_front();
        }
        self.log.push_back((self.seq, frame.clone()));
        if let Some(conn) = &self.conn {
            // A closed writer just means the connection is going away; the event
            // stays in the log for a resume.
            let _ = conn.tx.send(WsOut::Text(frame));
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct GatewayState {
    sessions: HashMap<String, Session>,
    /// The session events go to: the latest one identified.
    current: Option<String>,
    next_id: u64,
}

impl State {
    /// Dispatches an event to the current session (buffered for replay when the bot
    /// is between connections).
    pub fn dispatch(&mut self, name: &str, d: Value) -> anyhow::Result<()> {
        let gateway = &mut self.gateway;
        let session = gateway
            .current
            .as_ref()
            .and_then(|id| gateway.sessions.get_mut(id))
            .ok_or_else(|| anyhow::anyhow!("no gateway session: the bot has not identified"))?;
        session.send_dispatch(name, d);
        Ok(())
    }

    /// The current session has a live connection that got READY or RESUMED.
    pub fn gateway_ready(&self) -> bool {
        let gateway = &self.gateway;
        gateway
            .current
            .as_ref()
            .and_then(|id| gateway.sessions.get(id))
            .is_some_and(|s| s.conn.is_some())
    }

    /// Closes every connection; sessions stay resumable.
    pub fn close_gateway(&mut self, code: u16, reason: &'static str) {
        for session in self.gateway.sessions.values_mut() {
            if let Some(conn) = session.conn.take() {
                let _ = conn.tx.send(WsOut::Close(code, reason));
            }
        }
    }
}

pub(crate) async fn upgrade(
    AxumState(shared): AxumState<Arc<Shared>>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| connection(shared, socket))
}

/// One websocket connection.
struct Connection {
    shared: Arc<Shared>,
    id: u64,
    tx: mpsc::UnboundedSender<WsOut>,
    session: Option<String>,
}

impl Connection {
    fn send(&self, frame: Value) {
        let _ = self.tx.send(WsOut::Text(frame.to_string()));
    }

    fn close(&self, code: u16, reason: &'static str) {
        let _ = self.tx.send(WsOut::Close(code, reason));
    }

    /// Handles one client frame; `false` ends the connection.
    fn handle(&mut self, text: &str) -> bool {
        let Ok(frame) = serde_json::from_str::<Value>(text) else {
            self.close(4002, "Error while decoding payload.");
            return false;
        };
        match frame["op"].as_u64() {
            Some(1) => {
                self.send(json!({ "op": 11 }));
                true
            }
            Some(2) => self.identify(&frame["d"]),
            Some(6) => self.resume(&frame["d"]),
            // Presence, voice state, request members, soundboard: accepted, ignored.
            Some(3 | 4 | 8 | 31) if self.session.is_some() => true,
            Some(3 | 4 | 8 | 31) => {
                self.close(4003, "Not authenticated.");
                false
            }
            _ => {
                self.close(4001, "Unknown opcode.");
                false
            }
        }
    }

    /// Accepts the token with or without the `Bot ` prefix.
    fn token_ok(&self, d: &Value) -> bool {
        let token = d["token"].as_str().unwrap_or_default();
        token.strip_prefix("Bot ").unwrap_or(token) == self.shared.cfg.token
    }

    fn reject_token(&self, op: &str) -> bool {
        self.shared.lock().count(
            ViolationKind::Unauthorized,
            format!("gateway {op} with a wrong token"),
        );
        self.close(4004, "Authentication failed.");
        false
    }

    fn identify(&mut self, d: &Value) -> bool {
        if self.session.is_some() {
            self.close(4005, "Already authenticated.");
            return false;
        }
        if !self.token_ok(d) {
            return self.reject_token("IDENTIFY");
        }
        let mut state = self.shared.lock();
        let gateway = &mut state.gateway;
        gateway.next_id += 1;
        let session_id = format!("fake-session-{}", gateway.next_id);
        // A new identify replaces the previous session and its connection.
        if let Some(old) = gateway
            .current
            .take()
            .and_then(|id| gateway.sessions.remove(&id))
        {
            if let Some(conn) = old.conn.filter(|c| c.id != self.id) {
                let _ = conn
                    .tx
                    .send(WsOut::Close(4000, "fake: superseded by a new session"));
            }
        }
        let mut session = Session {
            conn: Some(Conn {
                id: self.id,
                tx: self.tx.clone(),
            }),
            ..Session::default()
        };
        let mut ready = json!({
            "v": 10,
            "user": model::bot_user(),
            "guilds": [],
            "session_id": session_id,
            "resume_gateway_url": gateway_url(&self.shared.api_url),
            "application": { "id": APP_ID.to_string(), "flags": 0 },
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "_trace": ["fake-discord"],
        });
        if d["shard"].is_array() {
            ready["shard"] = d["shard"].clone();
        }
        session.send_dispatch("READY", ready);
        gateway.sessions.insert(session_id.clone(), session);
        gateway.current = Some(session_id.clone());
        self.session = Some(session_id);
        drop(state);
        self.shared.changed.notify_waiters();
        true
    }

    fn resume(&mut self, d: &Value) -> bool {
        if !self.token_ok(d) {
            return self.reject_token("RESUME");
        }
        let session_id = d["session_id"].as_str().unwrap_or_default().to_string();
        let seq = d["seq"].as_u64().unwrap_or(0);
        let mut state = self.shared.lock();
        let Some(session) = state.gateway.sessions.get_mut(&session_id) else {
            drop(state);
            // Not resumable: the client must identify again.
            self.send(json!({ "op": 9, "d": false, "s": null, "t": null }));
            return true;
        };
        if let Some(old) = session.conn.take().filter(|c| c.id != self.id) {
            let _ = old.tx.send(WsOut::Close(4000, "fake: resumed elsewhere"));
        }
        session.conn = Some(Conn {
            id: self.id,
            tx: self.tx.clone(),
        });
        // Replay what the client missed, then RESUMED, as Discord does.
        for (_, frame) in session.log.iter().filter(|(s, _)| *s > seq) {
            let _ = self.tx.send(WsOut::Text(frame.clone()));
        }
        session.send_dispatch("RESUMED", json!({ "_trace": ["fake-discord"] }));
        state.gateway.current = Some(session_id.clone());
        self.session = Some(session_id);
        drop(state);
        self.shared.changed.notify_waiters();
        true
    }

    /// Detaches this connection from its session (which stays resumable).
    fn detach(&self) {
        let mut state = self.shared.lock();
        for session in state.gateway.sessions.values_mut() {
            if session.conn.as_ref().is_some_and(|c| c.id == self.id) {
                session.conn = None;
            }
        }
        drop(state);
        self.shared.changed.notify_waiters();
    }
}

async fn connection(shared: Arc<Shared>, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<WsOut>();
    let writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            let message = match out {
                WsOut::Text(text) => Message::Text(text.into()),
                WsOut::Close(code, reason) => {
                    let frame = CloseFrame {
                        code,
                        reason: reason.into(),
                    };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    break;
                }
            };
            if sink.send(message).await.is_err() {
                break;
            }
        }
    });
    let id = {
        let mut state = shared.lock();
        state.gateway.next_id += 1;
        state.gateway.next_id
    };
    let mut conn = Connection {
        shared,
        id,
        tx,
        session: None,
    };
    let interval = conn.shared.cfg.heartbeat_interval.as_millis() as u64;
    conn.send(json!({
        "op": 10,
        "d": { "heartbeat_interval": interval, "_trace": ["fake-discord"] },
        "s": null,
        "t": null,
    }));
    while let Some(message) = stream.next().await {
        let keep_going = match message {
            Ok(Message::Text(text)) => conn.handle(text.as_str()),
            // No compression is negotiated, so binary (zlib) frames are a decode error.
            Ok(Message::Binary(_)) => {
                conn.close(4002, "Error while decoding payload.");
                false
            }
            Ok(Message::Close(_)) | Err(_) => false,
            Ok(_) => true,
        };
        if !keep_going {
            break;
        }
    }
    conn.detach();
    // Let the writer flush a pending close frame, then stop it.
    drop(conn);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), writer).await;
}
