mod common;

use std::time::Duration;

use common::{fast_config, recv, recv_event, send, Bot, TOKEN};
use futures::StreamExt;
use klaxon_fake_discord::{FakeConfig, APP_ID, BOT_USER_ID};
use serde_json::json;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn hello_identify_ready_and_heartbeat_ack() {
    let cfg = FakeConfig {
        heartbeat_interval: Duration::from_millis(1234),
        ..fast_config()
    };
    let bot = Bot::start(cfg).await;
    // GET /gateway needs no auth and points back at the fake.
    let (status, body) = Bot::call(bot.http.get(format!("{}/gateway", bot.api))).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["url"],
        format!("{}/gateway", bot.fake.api_url().replace("http", "ws"))
    );

    let (mut ws, _) = connect_async(format!("{}?v=10&encoding=json", bot.fake.gateway_url()))
        .await
        .unwrap();
    let hello = recv(&mut ws).await;
    assert_eq!(hello["op"], 10);
    assert_eq!(hello["d"]["heartbeat_interval"], 1234);
    assert!(hello["s"].is_null() && hello["t"].is_null());

    // A heartbeat before identifying is acknowledged too.
    send(&mut ws, json!({ "op": 1, "d": null })).await;
    assert_eq!(recv(&mut ws).await["op"], 11);

    send(
        &mut ws,
        json!({ "op": 2, "d": { "token": TOKEN, "intents": 0, "properties": {} } }),
    )
    .await;
    let ready = recv(&mut ws).await;
    assert_eq!(
        (
            ready["op"].as_u64(),
            ready["t"].as_str(),
            ready["s"].as_u64()
        ),
        (Some(0), Some("READY"), Some(1))
    );
    let d = &ready["d"];
    assert_eq!(d["v"], 10);
    assert_eq!(d["user"]["id"], BOT_USER_ID.to_string());
    assert_eq!(d["application"]["id"], APP_ID.to_string());
    assert_eq!(d["resume_gateway_url"], bot.fake.gateway_url());
    bot.fake.wait_ready(Duration::from_secs(1)).await.unwrap();

    send(&mut ws, json!({ "op": 1, "d": 1 })).await;
    assert_eq!(recv(&mut ws).await, json!({ "op": 11 }));

    // Dispatches carry increasing sequence numbers.
    bot.fake
        .dispatch("TYPING_START", json!({ "channel_id": "111" }))
        .await
        .unwrap();
    bot.fake
        .dispatch("TYPING_START", json!({ "channel_id": "222" }))
        .await
        .unwrap();
    assert_eq!(recv(&mut ws).await["s"], 2);
    assert_eq!(recv(&mut ws).await["s"], 3);
    assert_eq!(bot.fake.violations().total(), 0);
}

#[tokio::test]
async fn trailing_slash_and_bot_prefixed_token_are_accepted() {
    let bot = Bot::start(fast_config()).await;
    let (mut ws, _) = connect_async(format!("{}/?v=10", bot.fake.gateway_url()))
        .await
        .unwrap();
    recv(&mut ws).await;
    send(
        &mut ws,
        json!({ "op": 2, "d": { "token": format!("Bot {TOKEN}"), "intents": 0 } }),
    )
    .await;
    assert_eq!(recv(&mut ws).await["t"], "READY");
}

#[tokio::test]
async fn wrong_token_closes_with_4004() {
    let bot = Bot::start(fast_config()).await;
    let (mut ws, _) = connect_async(bot.fake.gateway_url()).await.unwrap();
    recv(&mut ws).await;
    send(
        &mut ws,
        json!({ "op": 2, "d": { "token": "nope", "intents": 0 } }),
    )
    .await;
    let close = loop {
        match ws.next().await.expect("a frame").expect("frame ok") {
            Message::Close(frame) => break frame.expect("close frame"),
            _ => continue,
        }
    };
    assert_eq!(u16::from(close.code), 4004);
    assert_eq!(bot.fake.violations().unauthorized, 1);
    assert!(bot
        .fake
        .wait_ready(Duration::from_millis(100))
        .await
        .is_err());
}

#[tokio::test]
async fn dispatch_without_session_fails() {
    let bot = Bot::start(fast_config()).await;
    assert!(bot.fake.dispatch("TYPING_START", json!({})).await.is_err());
}

#[tokio::test]
async fn resume_replays_missed_events() {
    let bot = Bot::start(fast_config()).await;
    let (mut ws, ready) = bot.connect().await;
    let session_id = ready["session_id"].as_str().unwrap().to_string();
    let resume_url = ready["resume_gateway_url"].as_str().unwrap().to_string();

    bot.fake
        .dispatch("TYPING_START", json!({ "n": 1 }))
        .await
        .unwrap();
    assert_eq!(recv(&mut ws).await["s"], 2);

    bot.fake.drop_gateway().await;
    let close = loop {
        match ws.next().await {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(close.map(|f| u16::from(f.code)), Some(4000));
    assert!(bot
        .fake
        .wait_ready(Duration::from_millis(50))
        .await
        .is_err());

    // Events while disconnected are kept for the resume.
    bot.fake
        .dispatch("TYPING_START", json!({ "n": 2 }))
        .await
        .unwrap();

    let (mut ws, _) = connect_async(format!("{resume_url}?v=10")).await.unwrap();
    assert_eq!(recv(&mut ws).await["op"], 10);
    send(
        &mut ws,
        json!({ "op": 6, "d": { "token": TOKEN, "session_id": session_id, "seq": 2 } }),
    )
    .await;
    let replayed = recv(&mut ws).await;
    assert_eq!(
        (replayed["s"].as_u64(), replayed["d"]["n"].as_u64()),
        (Some(3), Some(2))
    );
    let resumed = recv_event(&mut ws, "RESUMED").await;
    assert_eq!(resumed["s"], 4);
    bot.fake.wait_ready(Duration::from_secs(1)).await.unwrap();

    // An unknown session cannot be resumed: op 9, d false.
    let (mut other, _) = connect_async(bot.fake.gateway_url()).await.unwrap();
    recv(&mut other).await;
    send(
        &mut other,
        json!({ "op": 6, "d": { "token": TOKEN, "session_id": "nope", "seq": 1 } }),
    )
    .await;
    assert_eq!(
        recv(&mut other).await,
        json!({ "op": 9, "d": false, "s": null, "t": null })
    );
}
