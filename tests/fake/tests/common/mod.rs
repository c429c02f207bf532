//! A minimal "bot" that drives the fake the way serenity does: REST with
//! `Authorization: Bot <token>` under `/api/v10`, gateway HELLO/IDENTIFY/READY.
#![allow(dead_code)] // Each test file uses a different part of this.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use klaxon_fake_discord::{FakeConfig, FakeDiscord, Member};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub const TOKEN: &str = "fake-token";
pub const GUILD: u64 = 123;
pub const CHANNEL: u64 = 111;

/// Short windows so that limit tests run fast.
pub fn fast_config() -> FakeConfig {
    FakeConfig {
        channel_limit: 5,
        channel_window: Duration::from_millis(500),
        global_limit: 50,
        global_window: Duration::from_millis(500),
        ..FakeConfig::default()
    }
}

pub fn alice() -> Member {
    Member {
        user_id: 42,
        username: "alice".into(),
        roles: vec![900],
    }
}

pub struct Bot {
    pub fake: FakeDiscord,
    pub http: reqwest::Client,
    pub api: String,
}

impl Bot {
    pub async fn start(cfg: FakeConfig) -> Bot {
        let fake = FakeDiscord::start(cfg).await.expect("fake starts");
        let api = format!("{}/api/v10", fake.api_url());
        Bot {
            fake,
            http: reqwest::Client::new(),
            api,
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.api))
            .header("Authorization", format!("Bot {TOKEN}"))
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::GET, path)
    }

    pub fn post(&self, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::POST, path).json(body)
    }

    pub fn patch(&self, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::PATCH, path).json(body)
    }

    pub fn put(&self, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::PUT, path).json(body)
    }

    pub fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::DELETE, path)
    }

    /// Sends a request and returns (status, JSON body or Null).
    pub async fn call(req: reqwest::RequestBuilder) -> (u16, Value) {
        let response = req.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn say(&self, channel: u64, body: Value) -> (u16, Value) {
        Self::call(self.post(&format!("/channels/{channel}/messages"), &body)).await
    }

    /// Connects to the gateway as serenity does (URL from `GET /gateway`, `?v=10`),
    /// reads HELLO, identifies and returns the socket with READY's `d`.
    pub async fn connect(&self) -> (Ws, Value) {
        let (status, gateway) = Self::call(self.http.get(format!("{}/gateway", self.api))).await;
        assert_eq!(status, 200);
        let url = format!("{}?v=10", gateway["url"].as_str().expect("gateway url"));
        let (mut ws, _) = connect_async(url).await.expect("gateway connects");
        let hello = recv(&mut ws).await;
        assert_eq!(hello["op"], 10);
        send(
            &mut ws,
            json!({ "op": 2, "d": {
                "token": TOKEN, "intents": 513, "compress": true, "large_threshold": 250,
                "shard": [0, 1],
                "properties": { "os": "linux", "browser": "serenity", "device": "serenity" },
            }}),
        )
        .await;
        let ready = recv(&mut ws).await;
        assert_eq!(ready["t"], "READY", "{ready}");
        (ws, ready["d"].clone())
    }

    /// Registers guild commands with these names (each with one string option).
    pub async fn register(&self, names: &[&str]) -> Vec<Value> {
        let commands: Vec<Value> = names
            .iter()
            .map(|name| json!({
                "name": name, "description": format!("The {name} command"), "type": 1,
                "options": [{ "type": 3, "name": "arg", "description": "An argument", "autocomplete": true }],
            }))
            .collect();
        let (status, body) = Self::call(self.put(
            &format!("/applications/2/guilds/{GUILD}/commands"),
            &json!(commands),
        ))
        .await;
        assert_eq!(status, 200, "{body}");
        body.as_array().cloned().expect("commands array")
    }

    pub async fn callback(&self, id: u64, token: &str, body: Value) -> (u16, Value) {
        // Interaction routes need no Authorization header.
        Self::call(
            self.http
                .post(format!("{}/interactions/{id}/{token}/callback", self.api))
                .json(&body),
        )
        .await
    }

    pub async fn followup(&self, token: &str, body: Value) -> (u16, Value) {
        Self::call(
            self.http
                .post(format!("{}/webhooks/2/{token}", self.api))
                .json(&body),
        )
        .await
    }

    pub async fn edit_original(&self, token: &str, body: Value) -> (u16, Value) {
        Self::call(
            self.http
                .patch(format!(
                    "{}/webhooks/2/{token}/messages/@original",
                    self.api
                ))
                .json(&body),
        )
        .await
    }
}

pub async fn send(ws: &mut Ws, frame: Value) {
    ws.send(Message::text(frame.to_string()))
        .await
        .expect("ws send");
}

/// The next JSON text frame (panics on close or after 5 s).
pub async fn recv(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a gateway frame within 5 s")
            .expect("gateway open")
            .expect("gateway frame");
        match message {
            Message::Text(text) => return serde_json::from_str(text.as_str()).expect("JSON frame"),
            Message::Close(frame) => panic!("gateway closed: {frame:?}"),
            _ => continue,
        }
    }
}

/// The next dispatch named `event` (skipping others).
pub async fn recv_event(ws: &mut Ws, event: &str) -> Value {
    loop {
        let frame = recv(ws).await;
        if frame["op"] == 0 && frame["t"] == event {
            return frame;
        }
    }
}

/// Asserts that serenity (the bot's client library) accepts an INTERACTION_CREATE
/// payload; it would silently drop one it cannot parse.
pub fn assert_serenity_parses(event: &Value) {
    let d = event["d"].clone();
    if let Err(e) = serde_json::from_value::<serenity::all::Interaction>(d) {
        panic!("serenity cannot parse the interaction: {e}\n{event}");
    }
}
