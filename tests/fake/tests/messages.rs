mod common;

use std::time::Duration;

use common::{fast_config, Bot, CHANNEL};
use klaxon_fake_discord::{FakeConfig, FaultRule, OutputKind};
use serde_json::json;

const RATE_HEADERS: [&str; 5] = [
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-ratelimit-reset-after",
    "x-ratelimit-bucket",
];

#[tokio::test]
async fn content_over_2000_chars_is_rejected() {
    let bot = Bot::start(fast_config()).await;
    let (status, body) = bot
        .say(CHANNEL, json!({ "content": "x".repeat(2001) }))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({
            "code": 50035,
            "errors": { "content": { "_errors": [
                { "code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length." }
            ]}},
            "message": "Invalid Form Body",
        })
    );
    // 2000 multi-byte characters are fine: characters are counted, not bytes.
    let (status, _) = bot
        .say(CHANNEL, json!({ "content": "é".repeat(2000) }))
        .await;
    assert_eq!(status, 200);
    let v = bot.fake.violations();
    assert_eq!((v.invalid_body, v.total()), (1, 1));
    assert!(v.details[0].contains("content"), "{:?}", v.details);
}

#[tokio::test]
async fn embeds_over_6000_chars_in_total_are_rejected() {
    let bot = Bot::start(fast_config()).await;
    let embed = json!({ "title": "t".repeat(200), "description": "d".repeat(4000) });
    let (status, body) = bot
        .say(CHANNEL, json!({ "embeds": [embed.clone(), embed.clone()] }))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"]["embeds"]["_errors"][0],
        json!({ "code": "MAX_EMBED_SIZE_EXCEEDED", "message": "Embed size exceeds maximum size of 6000" })
    );
    let (status, body) = bot
        .say(CHANNEL, json!({ "embeds": [{ "title": "t".repeat(257) }] }))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"]["embeds"]["0"]["title"]["_errors"][0]["code"],
        "BASE_TYPE_MAX_LENGTH"
    );
    let (status, message) = bot.say(CHANNEL, json!({ "embeds": [embed] })).await;
    assert_eq!(status, 200);
    assert_eq!(message["embeds"][0]["type"], "rich");
    assert_eq!(bot.fake.violations().invalid_body, 2);
}

#[tokio::test]
async fn empty_message_and_malformed_body_are_400() {
    let bot = Bot::start(fast_config()).await;
    let (status, body) = bot.say(CHANNEL, json!({ "content": "  " })).await;
    assert_eq!((status, body["code"].as_u64()), (400, Some(50006)));
    let response = bot
        .post(&format!("/channels/{CHANNEL}/messages"), &json!({}))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let (status, body) = bot.say(CHANNEL, json!({ "content": 5 })).await;
    assert_eq!((status, body["code"].as_u64()), (400, Some(50035)));
    assert_eq!(bot.fake.violations().invalid_body, 3);
}

#[tokio::test]
async fn sixth_message_in_window_is_rate_limited() {
    let cfg = FakeConfig {
        channel_window: Duration::from_secs(1),
        ..fast_config()
    };
    let bot = Bot::start(cfg).await;
    for i in 0..5 {
        let response = bot
            .post(
                &format!("/channels/{CHANNEL}/messages"),
                &json!({ "content": format!("m{i}") }),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        for header in RATE_HEADERS {
            assert!(response.headers().contains_key(header), "{header} missing");
        }
        assert_eq!(response.headers()["x-ratelimit-limit"], "5");
        assert_eq!(
            response.headers()["x-ratelimit-remaining"],
            (4 - i).to_string().as_str()
        );
    }
    let response = bot
        .post(
            &format!("/channels/{CHANNEL}/messages"),
            &json!({ "content": "m5" }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let headers = response.headers().clone();
    for header in RATE_HEADERS {
        assert!(headers.contains_key(header), "{header} missing");
    }
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(headers["x-ratelimit-scope"], "user");
    assert!(!headers.contains_key("x-ratelimit-global"));
    let reset_after: f64 = headers["x-ratelimit-reset-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(reset_after > 0.0 && reset_after <= 1.0, "{reset_after}");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["message"], "You are being rate limited.");
    assert_eq!(body["global"], false);
    assert!(body["retry_after"].as_f64().unwrap() <= 1.0);

    // Another channel has its own bucket; the same channel recovers after the window.
    assert_eq!(bot.say(222, json!({ "content": "other" })).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1020)).await;
    assert_eq!(bot.say(CHANNEL, json!({ "content": "again" })).await.0, 200);

    let v = bot.fake.violations();
    assert_eq!(
        (v.rate_limited, v.global_rate_limited, v.total()),
        (1, 0, 1)
    );
    assert_eq!(bot.fake.messages(CHANNEL).len(), 6);
    let bucket = |path: &str| {
        let r = bot.fake.requests();
        r.iter().filter(|r| r.path.ends_with(path)).count()
    };
    assert_eq!(bucket("/channels/111/messages"), 7);
}

#[tokio::test]
async fn global_limit_spans_routes_but_not_interactions() {
    let cfg = FakeConfig {
        global_limit: 4,
        global_window: Duration::from_secs(1),
        ..fast_config()
    };
    let bot = Bot::start(cfg).await;
    for path in [
        "/users/@me",
        "/channels/111",
        "/channels/222",
        "/guilds/123",
    ] {
        assert_eq!(Bot::call(bot.get(path)).await.0, 200, "{path}");
    }
    let response = bot.get("/oauth2/applications/@me").send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["x-ratelimit-global"], "true");
    assert_eq!(response.headers()["x-ratelimit-scope"], "global");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["global"], true);
    // Interaction callbacks are exempt (404 here: there is no such interaction).
    let (status, _) = bot.callback(1, "t", json!({ "type": 4 })).await;
    assert_eq!(status, 404);
    let v = bot.fake.violations();
    assert_eq!(v.global_rate_limited, 1);
    tokio::time::sleep(Duration::from_millis(1020)).await;
    assert_eq!(Bot::call(bot.get("/users/@me")).await.0, 200);
}

#[tokio::test]
async fn enforce_nonce_returns_the_original_message() {
    let bot = Bot::start(fast_config()).await;
    let body = json!({ "content": "alert", "nonce": "n-1", "enforce_nonce": true });
    let (status, first) = bot.say(CHANNEL, body.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(first["nonce"], "n-1");
    let (status, second) = bot.say(CHANNEL, body.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(second["id"], first["id"]);
    assert_eq!(bot.fake.messages(CHANNEL).len(), 1);
    assert_eq!(bot.fake.unread_outputs().len(), 1);
    // Same nonce, other channel: a new message. Without enforce_nonce: also new.
    assert_ne!(bot.say(222, body).await.1["id"], first["id"]);
    let (_, third) = bot
        .say(CHANNEL, json!({ "content": "alert", "nonce": "n-1" }))
        .await;
    assert_ne!(third["id"], first["id"]);
    assert_eq!(bot.fake.messages(CHANNEL)[0].nonce.as_deref(), Some("n-1"));
}

/// Discord forgets a nonce after its window (a few minutes), and never lists it back:
/// only the create's answer carries it.
#[tokio::test]
async fn a_nonce_is_forgotten_after_the_window_and_not_listed() {
    let bot = Bot::start(FakeConfig {
        nonce_window: Duration::from_millis(300),
        ..fast_config()
    })
    .await;
    let body = json!({ "content": "notice", "nonce": "n-2", "enforce_nonce": true });
    let (_, first) = bot.say(CHANNEL, body.clone()).await;
    assert_eq!(first["nonce"], "n-2");
    let (status, listed) =
        Bot::call(bot.get(&format!("/channels/{CHANNEL}/messages?limit=10"))).await;
    assert_eq!(status, 200);
    assert_eq!(listed[0]["id"], first["id"]);
    assert!(listed[0].get("nonce").is_none(), "{listed}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, again) = bot.say(CHANNEL, body).await;
    assert_ne!(
        again["id"], first["id"],
        "after the window the nonce is forgotten"
    );
    assert_eq!(bot.fake.messages(CHANNEL).len(), 2);
    bot.fake.discard_outputs();
}

fn multipart(payload: serde_json::Value, files: Vec<(&str, Vec<u8>)>) -> reqwest::multipart::Form {
    let mut form = reqwest::multipart::Form::new().text("payload_json", payload.to_string());
    for (i, (name, data)) in files.into_iter().enumerate() {
        form = form.part(
            format!("files[{i}]"),
            reqwest::multipart::Part::bytes(data).file_name(name.to_string()),
        );
    }
    form
}

#[tokio::test]
async fn multipart_with_files() {
    let bot = Bot::start(fast_config()).await;
    let payload = json!({
        "content": "report attached",
        "attachments": [{ "id": 0, "filename": "report.txt", "description": "The report" }],
    });
    let response = bot
        .http
        .post(format!("{}/channels/{CHANNEL}/messages", bot.api))
        .header("Authorization", "Bot fake-token")
        .multipart(multipart(
            payload,
            vec![("upload.bin", b"line 1\nline 2\n".to_vec())],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let message: serde_json::Value = response.json().await.unwrap();
    let attachment = &message["attachments"][0];
    assert_eq!(attachment["filename"], "report.txt");
    assert_eq!(attachment["size"], 14);
    // The attachment URL serves the bytes.
    let bytes = bot
        .http
        .get(attachment["url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&bytes[..], b"line 1\nline 2\n");
    let out = bot.fake.next_output(Duration::from_secs(1)).await.unwrap();
    assert!(matches!(
        out.kind,
        OutputKind::ChannelMessage {
            channel_id: CHANNEL
        }
    ));
    assert_eq!(out.message.attachments[0].filename, "report.txt");
    assert_eq!(&out.message.attachments[0].data[..], b"line 1\nline 2\n");

    // Editing with `attachments: []` removes them; an edit leaving nothing is refused.
    let id = message["id"].as_str().unwrap();
    let (status, edited) = Bot::call(bot.patch(
        &format!("/channels/{CHANNEL}/messages/{id}"),
        &json!({ "attachments": [] }),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(edited["attachments"], json!([]));
    assert!(edited["edited_timestamp"].is_string());
    let (status, body) = Bot::call(bot.patch(
        &format!("/channels/{CHANNEL}/messages/{id}"),
        &json!({ "content": "" }),
    ))
    .await;
    assert_eq!((status, body["code"].as_u64()), (400, Some(50006)));
    assert_eq!(bot.fake.messages(CHANNEL)[0].content, "report attached");
}

#[tokio::test]
async fn oversize_file_is_413() {
    let bot = Bot::start(fast_config()).await;
    let big = vec![b'x'; 10 * 1024 * 1024 + 1];
    let response = bot
        .http
        .post(format!("{}/channels/{CHANNEL}/messages", bot.api))
        .header("Authorization", "Bot fake-token")
        .multipart(multipart(
            json!({ "content": "big" }),
            vec![("big.log", big)],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({ "message": "Request entity too large", "code": 40005 })
    );
    let files: Vec<_> = (0..11).map(|_| ("a.txt", b"a".to_vec())).collect();
    let response = bot
        .http
        .post(format!("{}/channels/{CHANNEL}/messages", bot.api))
        .header("Authorization", "Bot fake-token")
        .multipart(multipart(json!({ "content": "many" }), files))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let v = bot.fake.violations();
    assert_eq!((v.too_large, v.invalid_body), (1, 1));
}

#[tokio::test]
async fn missing_or_wrong_auth_is_401() {
    let bot = Bot::start(fast_config()).await;
    let url = format!("{}/channels/{CHANNEL}/messages", bot.api);
    let response = bot
        .http
        .post(&url)
        .json(&json!({ "content": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("x-ratelimit-bucket"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body, json!({ "message": "401: Unauthorized", "code": 0 }));
    let response = bot
        .http
        .post(&url)
        .header("Authorization", "Bot other")
        .json(&json!({ "content": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(bot.fake.violations().unauthorized, 2);
    assert!(bot.fake.messages(CHANNEL).is_empty());
}

#[tokio::test]
async fn unknown_channel_and_unknown_route() {
    let bot = Bot::start(fast_config()).await;
    let (status, body) = bot.say(999, json!({ "content": "x" })).await;
    assert_eq!(
        (status, body),
        (404, json!({ "message": "Unknown Channel", "code": 10003 }))
    );
    let (status, _) = Bot::call(bot.get("/channels/111/pins")).await;
    assert_eq!(status, 404);
    let v = bot.fake.violations();
    assert_eq!(v.unknown_route, 1);
    assert!(
        v.details
            .iter()
            .any(|d| d.contains("GET /api/v10/channels/111/pins")),
        "{:?}",
        v.details
    );
    let requests = bot.fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        (requests[1].method.as_str(), requests[1].status),
        ("GET", 404)
    );
}

#[tokio::test]
async fn injected_faults() {
    let bot = Bot::start(fast_config()).await;
    bot.fake.inject(FaultRule::Status {
        path_contains: "/messages".into(),
        status: 503,
        times: 2,
    });
    assert_eq!(bot.say(CHANNEL, json!({ "content": "a" })).await.0, 503);
    assert_eq!(bot.say(CHANNEL, json!({ "content": "a" })).await.0, 503);
    assert_eq!(bot.say(CHANNEL, json!({ "content": "a" })).await.0, 200);
    bot.fake.inject(FaultRule::Status {
        path_contains: "/messages".into(),
        status: 429,
        times: 1,
    });
    let response = bot
        .post(
            &format!("/channels/{CHANNEL}/messages"),
            &json!({ "content": "b" }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["x-ratelimit-scope"], "shared");
    assert_eq!(
        bot.fake.violations().total(),
        0,
        "injected faults are not the bot's fault"
    );
    assert_eq!(bot.fake.messages(CHANNEL).len(), 1);
}

#[tokio::test]
async fn would_ping_is_noted() {
    let bot = Bot::start(fast_config()).await;
    bot.say(CHANNEL, json!({ "content": "paging <@&900>" }))
        .await;
    bot.say(
        CHANNEL,
        json!({ "content": "paging <@&900>", "allowed_mentions": { "parse": [] } }),
    )
    .await;
    let (_, pinged) = bot
        .say(
            CHANNEL,
            json!({ "content": "paging <@&900>", "allowed_mentions": { "roles": ["900"] } }),
        )
        .await;
    assert_eq!(pinged["mention_roles"], json!(["900"]));
    bot.say(CHANNEL, json!({ "content": "no mentions" })).await;
    let v = bot.fake.violations();
    assert_eq!(v.would_ping, 1, "{:?}", v.details);
    assert!(bot.fake.messages(CHANNEL)[1].allowed_mentions.is_some());
}

#[tokio::test]
async fn edits_deletes_threads_and_reactions() {
    let bot = Bot::start(fast_config()).await;
    let (_, message) = bot
        .say(CHANNEL, json!({ "content": "v1", "flags": 4096 | 64 }))
        .await;
    assert_eq!(
        message["flags"], 4096,
        "EPHEMERAL is dropped outside interactions"
    );
    let id = message["id"].as_str().unwrap().to_string();
    let path = format!("/channels/{CHANNEL}/messages/{id}");
    let (status, edited) = Bot::call(bot.patch(&path, &json!({ "content": "v2" }))).await;
    assert_eq!((status, edited["content"].as_str()), (200, Some("v2")));
    bot.fake.next_output(Duration::from_secs(1)).await.unwrap();
    let edit = bot.fake.next_output(Duration::from_secs(1)).await.unwrap();
    assert!(matches!(
        edit.kind,
        OutputKind::ChannelEdit {
            channel_id: CHANNEL
        }
    ));

    let (status, _) =
        Bot::call(bot.put(&format!("{path}/reactions/%E2%9C%85/@me"), &json!(null))).await;
    assert_eq!(status, 204);
    let (status, body) = Bot::call(bot.put(
        &format!("{path}/reactions/white_check_mark/@me"),
        &json!(null),
    ))
    .await;
    assert_eq!((status, body["code"].as_u64()), (400, Some(10014)));
    let (_, fetched) = Bot::call(bot.get(&path)).await;
    assert_eq!(fetched["reactions"][0]["emoji"]["name"], "✅");

    let (status, thread) = Bot::call(bot.post(
        &format!("{path}/threads"),
        &json!({ "name": "incident", "auto_archive_duration": 1440 }),
    ))
    .await;
    assert_eq!(status, 200, "{thread}");
    assert_eq!(
        (thread["id"].as_str(), thread["type"].as_u64()),
        (Some(id.as_str()), Some(11))
    );
    let (status, _) =
        Bot::call(bot.post(&format!("{path}/threads"), &json!({ "name": "again" }))).await;
    assert_eq!(status, 400);
    // The thread is a channel now.
    let thread_id: u64 = id.parse().unwrap();
    assert_eq!(
        bot.say(thread_id, json!({ "content": "in thread" }))
            .await
            .0,
        200
    );
    let (status, _) = Bot::call(bot.post(
        &format!("/channels/{CHANNEL}/threads"),
        &json!({ "name": "x", "auto_archive_duration": 5 }),
    ))
    .await;
    assert_eq!(status, 400);

    let (status, listed) =
        Bot::call(bot.get(&format!("/channels/{CHANNEL}/messages?limit=10"))).await;
    assert_eq!((status, listed.as_array().map(Vec::len)), (200, Some(1)));
    assert_eq!(Bot::call(bot.delete(&path)).await.0, 204);
    assert_eq!(Bot::call(bot.get(&path)).await.0, 404);
    assert!(bot.fake.messages(CHANNEL).is_empty());
}
