mod common;

use std::time::Duration;

use common::{alice, assert_serenity_parses, fast_config, recv_event, Bot, CHANNEL, GUILD};
use klaxon_fake_discord::{FakeConfig, OutputKind, SlashInvocation};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(2);

fn ping() -> SlashInvocation {
    SlashInvocation::guild("ping", CHANNEL, alice())
        .with_options(vec![json!({ "name": "arg", "type": 3, "value": "x" })])
}

#[tokio::test]
async fn slash_callback_then_followup() {
    let bot = Bot::start(fast_config()).await;
    let (mut ws, _) = bot.connect().await;
    let commands = bot.register(&["ping"]).await;
    let registered = bot.fake.wait_commands(GUILD, WAIT).await.unwrap();
    assert_eq!(registered, commands);

    let ix = bot.fake.slash(ping()).await.unwrap();
    let event = recv_event(&mut ws, "INTERACTION_CREATE").await;
    assert_serenity_parses(&event);
    let d = &event["d"];
    assert_eq!(d["id"], ix.id.to_string());
    assert_eq!(d["token"], ix.token);
    assert_eq!(d["type"], 2);
    assert_eq!(d["guild_id"], GUILD.to_string());
    assert_eq!(d["member"]["user"]["id"], "42");
    assert_eq!(d["member"]["roles"], json!(["900"]));
    assert_eq!(d["data"]["name"], "ping");
    assert_eq!(d["data"]["id"], commands[0]["id"]);
    assert_eq!(d["entitlements"], json!([]));

    let (status, _) = bot
        .callback(
            ix.id,
            &ix.token,
            json!({ "type": 4, "data": { "content": "pong", "flags": 64 } }),
        )
        .await;
    assert_eq!(status, 204);
    let out = bot.fake.next_output(WAIT).await.unwrap();
    assert!(
        matches!(out.kind, OutputKind::Callback { interaction_id, callback_type: 4 } if interaction_id == ix.id)
    );
    assert_eq!(out.message.text(), "pong");
    assert!(out.message.ephemeral());

    let (status, message) = bot.followup(&ix.token, json!({ "content": "more" })).await;
    assert_eq!(status, 200, "{message}");
    assert_eq!(message["content"], "more");
    assert_eq!(message["channel_id"], CHANNEL.to_string());
    assert_eq!(message["author"]["id"], "1");
    let out = bot.fake.next_output(WAIT).await.unwrap();
    assert!(matches!(out.kind, OutputKind::Followup { interaction_id } if interaction_id == ix.id));
    assert_eq!(out.message.content, "more");
    assert!(bot
        .fake
        .next_output(Duration::from_millis(50))
        .await
        .is_none());

    // GET @original is the first response.
    let url = format!("{}/webhooks/2/{}/messages/@original", bot.api, ix.token);
    let (status, original) = Bot::call(bot.http.get(url)).await;
    assert_eq!((status, original["content"].as_str()), (200, Some("pong")));
    assert_eq!(
        bot.fake.violations().total(),
        0,
        "{:?}",
        bot.fake.violations()
    );
    assert_eq!(bot.fake.messages(CHANNEL).len(), 2);
}

#[tokio::test]
async fn late_callback_is_unknown_interaction() {
    let cfg = FakeConfig {
        interaction_deadline: Duration::from_millis(200),
        ..fast_config()
    };
    let bot = Bot::start(cfg).await;
    let _gateway = bot.connect().await;
    bot.register(&["ping"]).await;
    let ix = bot.fake.slash(ping()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (status, body) = bot
        .callback(
            ix.id,
            &ix.token,
            json!({ "type": 4, "data": { "content": "pong" } }),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({ "message": "Unknown interaction", "code": 10062 })
    );
    let v = bot.fake.violations();
    assert_eq!((v.late_interaction, v.total()), (1, 1));
    // No initial response, so no followups either.
    let (status, body) = bot.followup(&ix.token, json!({ "content": "late" })).await;
    assert_eq!((status, body["code"].as_u64()), (404, Some(10015)));
    assert!(bot.fake.unread_outputs().is_empty());
}

#[tokio::test]
async fn double_ack_is_rejected() {
    let bot = Bot::start(fast_config()).await;
    let _gateway = bot.connect().await;
    bot.register(&["ping"]).await;
    let ix = bot.fake.slash(ping()).await.unwrap();
    let (status, _) = bot
        .callback(
            ix.id,
            &ix.token,
            json!({ "type": 5, "data": { "flags": 64 } }),
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = bot
        .callback(
            ix.id,
            &ix.token,
            json!({ "type": 4, "data": { "content": "x" } }),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], 40060);
    assert_eq!(bot.fake.violations().double_ack, 1);
}

#[tokio::test]
async fn wrong_token_and_bad_callback_types() {
    let bot = Bot::start(fast_config()).await;
    let _gateway = bot.connect().await;
    bot.register(&["ping"]).await;
    let ix = bot.fake.slash(ping()).await.unwrap();
    let (status, body) = bot
        .callback(
            ix.id,
            "forged",
            json!({ "type": 4, "data": { "content": "x" } }),
        )
        .await;
    assert_eq!((status, body["code"].as_u64()), (404, Some(10062)));
    // Autocomplete results are only for autocomplete interactions.
    let (status, body) = bot
        .callback(
            ix.id,
            &ix.token,
            json!({ "type": 8, "data": { "choices": [] } }),
        )
        .await;
    assert_eq!((status, body["code"].as_u64()), (400, Some(50035)));
    // A defer carries flags only.
    let (status, _) = bot
        .callback(
            ix.id,
            &ix.token,
            json!({ "type": 5, "data": { "content": "x" } }),
        )
        .await;
    assert_eq!(status, 400);
    // Not counted as acknowledged: a valid response still works.
    let (status, _) = bot
        .callback(
            ix.id,
            &ix.token,
            json!({ "type": 4, "data": { "content": "ok" } }),
        )
        .await;
    assert_eq!(status, 204);
    let v = bot.fake.violations();
    assert_eq!((v.late_interaction, v.invalid_body), (1, 2), "{v:?}");
}

#[tokio::test]
async fn defer_then_edit_original_and_followups() {
    let bot = Bot::start(fast_config()).await;
    let _gateway = bot.connect().await;
    bot.register(&["ping"]).await;

    // Defer + PATCH @original: the deferred reply.
    let ix = bot.fake.slash(ping()).await.unwrap();
    let (status, _) = bot
        .callback(
            ix.id,
            &ix.token,
            json!({ "type": 5, "data": { "flags": 64, "attachments": [] } }),
        )
        .await;
    assert_eq!(status, 204);
    let deferred = bot.fake.next_output(WAIT).await.unwrap();
    assert!(matches!(
        deferred.kind,
        OutputKind::Callback {
            callback_type: 5,
            ..
        }
    ));
    assert!(deferred.message.content.is_empty());
    let (status, message) = bot
        .edit_original(&ix.token, json!({ "content": "done" }))
        .await;
    assert_eq!(status, 200, "{message}");
    assert_eq!(
        message["flags"], 64,
        "keeps the ephemeral flag of the defer"
    );
    let edit = bot.fake.next_output(WAIT).await.unwrap();
    assert!(
        matches!(edit.kind, OutputKind::EditOriginal { interaction_id } if interaction_id == ix.id)
    );
    assert_eq!(
        (edit.message.text().as_str(), edit.message.id),
        ("done", deferred.message.id)
    );

    // Defer + followup: the first followup replaces the thinking message.
    let ix = bot.fake.slash(ping()).await.unwrap();
    bot.callback(ix.id, &ix.token, json!({ "type": 5 })).await;
    let deferred = bot.fake.next_output(WAIT).await.unwrap();
    let (_, first) = bot.followup(&ix.token, json!({ "content": "first" })).await;
    let (_, second) = bot
        .followup(&ix.token, json!({ "content": "second" }))
        .await;
    assert_eq!(first["id"], deferred.message.id.to_string());
    assert_ne!(second["id"], first["id"]);
    let texts: Vec<String> = bot
        .fake
        .messages(CHANNEL)
        .iter()
        .map(|m| m.text())
        .collect();
    assert_eq!(texts, ["done", "first", "second"]);
    assert_eq!(
        bot.fake.violations().total(),
        0,
        "{:?}",
        bot.fake.violations()
    );
}

#[tokio::test]
async fn autocomplete_choices_are_limited() {
    let bot = Bot::start(fast_config()).await;
    let _gateway = bot.connect().await;
    bot.register(&["ping"]).await;
    let inv = SlashInvocation::guild("ping", CHANNEL, alice()).with_options(vec![
        json!({ "name": "arg", "type": 3, "value": "a", "focused": true }),
    ]);
    let choices = |n: usize| -> Vec<serde_json::Value> {
        (0..n)
            .map(|i| json!({ "name": format!("c{i}"), "value": format!("v{i}") }))
            .collect()
    };
    let ix = bot.fake.autocomplete(inv.clone()).await.unwrap();
    let (status, body) = bot
        .callback(
            ix.id,
            &ix.token,
            json!({ "type": 8, "data": { "choices": choices(26) } }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = bot
        .callback(
            ix.id,
            &ix.token,
            json!({ "type": 8, "data": { "choices": choices(25) } }),
        )
        .await;
    assert_eq!(status, 204);
    let out = bot.fake.next_output(WAIT).await.unwrap();
    assert!(matches!(
        out.kind,
        OutputKind::Callback {
            callback_type: 8,
            ..
        }
    ));
    assert_eq!(
        out.message.raw["choices"].as_array().map(Vec::len),
        Some(25)
    );
    // A message response is not allowed for autocomplete.
    let ix = bot.fake.autocomplete(inv).await.unwrap();
    let (status, _) = bot
        .callback(
            ix.id,
            &ix.token,
            json!({ "type": 4, "data": { "content": "x" } }),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(bot.fake.violations().invalid_body, 2);
}

#[tokio::test]
async fn button_click_update_and_modal_submit() {
    let bot = Bot::start(fast_config()).await;
    let (mut ws, _) = bot.connect().await;
    let button = |id: &str| json!({ "type": 2, "style": 1, "label": id, "custom_id": id });
    let (status, _) = bot
        .say(
            CHANNEL,
            json!({
                "content": "alert firing",
                "allowed_mentions": { "parse": [] },
                "components": [{ "type": 1, "components": [button("ack:1"), button("note:1")] }],
            }),
        )
        .await;
    assert_eq!(status, 200);
    let posted = bot.fake.next_output(WAIT).await.unwrap().message;
    assert_eq!(posted.custom_ids(), ["ack:1", "note:1"]);

    assert!(bot.fake.click(alice(), &posted, "missing").await.is_err());
    let ix = bot.fake.click(alice(), &posted, "ack:1").await.unwrap();
    let event = recv_event(&mut ws, "INTERACTION_CREATE").await;
    assert_serenity_parses(&event);
    assert_eq!(event["d"]["type"], 3);
    assert_eq!(
        event["d"]["data"],
        json!({ "custom_id": "ack:1", "component_type": 2 })
    );
    assert_eq!(event["d"]["message"]["id"], posted.id.to_string());
    let (status, _) = bot
        .callback(
            ix.id,
            &ix.token,
            json!({ "type": 7, "data": { "content": "acknowledged", "components": [] } }),
        )
        .await;
    assert_eq!(status, 204);
    let update = bot.fake.next_output(WAIT).await.unwrap();
    assert!(matches!(
        update.kind,
        OutputKind::Callback {
            callback_type: 7,
            ..
        }
    ));
    assert_eq!(
        (update.message.id, update.message.text().as_str()),
        (posted.id, "acknowledged")
    );
    assert_eq!(bot.fake.messages(CHANNEL)[0].content, "acknowledged");
    // The button is gone now.
    assert!(bot.fake.click(alice(), &posted, "note:1").await.is_err());

    // A modal, then its submission.
    bot.say(
        CHANNEL,
        json!({ "components": [{ "type": 1, "components": [button("note:2")] }] }),
    )
    .await;
    let posted = bot.fake.next_output(WAIT).await.unwrap().message;
    assert!(bot
        .fake
        .submit_modal(alice(), CHANNEL, "note-modal", vec![])
        .await
        .is_err());
    let ix = bot.fake.click(alice(), &posted, "note:2").await.unwrap();
    recv_event(&mut ws, "INTERACTION_CREATE").await;
    let modal = json!({ "custom_id": "note-modal", "title": "Add a note", "components": [
        { "type": 1, "components": [{ "type": 4, "custom_id": "text", "label": "Note", "style": 2 }] }
    ]});
    let (status, body) = bot
        .callback(ix.id, &ix.token, json!({ "type": 9, "data": modal }))
        .await;
    assert_eq!(status, 204, "{body}");
    let shown = bot.fake.next_output(WAIT).await.unwrap();
    assert_eq!(shown.message.raw["title"], "Add a note");
    let ix = bot
        .fake
        .submit_modal(
            alice(),
            CHANNEL,
            "note-modal",
            vec![("text".into(), "disk full".into())],
        )
        .await
        .unwrap();
    let event = recv_event(&mut ws, "INTERACTION_CREATE").await;
    assert_serenity_parses(&event);
    assert_eq!(event["d"]["type"], 5);
    assert!(event["d"]["message"].is_object(), "opened from a component");
    assert_eq!(
        event["d"]["data"]["components"][0]["components"][0]["value"],
        "disk full"
    );
    // A modal cannot answer a modal submit.
    let (status, _) = bot
        .callback(ix.id, &ix.token, json!({ "type": 9, "data": modal }))
        .await;
    assert_eq!(status, 400);
    let (status, _) = bot.callback(ix.id, &ix.token, json!({ "type": 6 })).await;
    assert_eq!(
        status, 204,
        "a modal opened from a component may update that message"
    );
}

#[tokio::test]
async fn dm_invocation_uses_user_and_no_guild() {
    let bot = Bot::start(fast_config()).await;
    let (mut ws, _) = bot.connect().await;
    let (status, _) = Bot::call(bot.put(
        "/applications/2/commands",
        &json!([
            { "name": "ping", "description": "Ping", "type": 1 }
        ]),
    ))
    .await;
    assert_eq!(status, 200);
    let inv = SlashInvocation {
        name: "ping".into(),
        options: vec![],
        member: None,
        user_for_dm: Some((7, "bob".into())),
        channel_id: 9_000,
        guild_id: None,
    };
    let ix = bot.fake.slash(inv).await.unwrap();
    let event = recv_event(&mut ws, "INTERACTION_CREATE").await;
    assert_serenity_parses(&event);
    let d = event["d"].clone();
    assert!(d.get("guild_id").is_none() && d.get("member").is_none());
    assert_eq!(d["user"]["id"], "7");
    bot.callback(
        ix.id,
        &ix.token,
        json!({ "type": 4, "data": { "content": "hi bob" } }),
    )
    .await;
    assert_eq!(bot.fake.messages(9_000)[0].content, "hi bob");
}

#[tokio::test]
async fn unregistered_command_cannot_be_invoked() {
    let bot = Bot::start(fast_config()).await;
    let _gateway = bot.connect().await;
    bot.register(&["ping"]).await;
    let err = bot
        .fake
        .slash(SlashInvocation::guild("nope", CHANNEL, alice()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not registered"), "{err}");
}

#[tokio::test]
async fn command_registration_is_validated() {
    let bot = Bot::start(fast_config()).await;
    let path = format!("/applications/2/guilds/{GUILD}/commands");
    let (status, body) =
        Bot::call(bot.put(&path, &json!([{ "name": "Bad Name", "description": "x" }]))).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"]["0"]["name"]["_errors"][0]["code"],
        "APPLICATION_COMMAND_INVALID_NAME"
    );
    let many: Vec<_> = (0..101)
        .map(|i| json!({ "name": format!("c{i}"), "description": "x" }))
        .collect();
    let (status, _) = Bot::call(bot.put(&path, &json!(many))).await;
    assert_eq!(status, 400);
    let huge = json!([{ "name": "big", "description": "x", "options": (0..25).map(|i| json!({
        "type": 3, "name": format!("o{i}"), "description": "d".repeat(100),
        "choices": (0..25).map(|j| json!({ "name": format!("{j}").repeat(10), "value": "v".repeat(10) })).collect::<Vec<_>>(),
    })).collect::<Vec<_>>() }]);
    let (status, body) = Bot::call(bot.put(&path, &huge)).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"]["0"]["_errors"][0]["code"],
        "APPLICATION_COMMAND_TOO_LARGE"
    );
    // Another guild: the bot is not in it.
    let (status, _) = Bot::call(bot.put("/applications/2/guilds/999/commands", &json!([]))).await;
    assert_eq!(status, 403);
    assert_eq!(bot.fake.violations().invalid_body, 4);
    // An overwrite keeps ids of commands with the same name.
    let first = bot.register(&["ping", "ack"]).await;
    let second = bot.register(&["ack"]).await;
    assert_eq!(first[1]["id"], second[0]["id"]);
    let (status, listed) = Bot::call(bot.get(&path)).await;
    assert_eq!((status, listed), (200, json!(second)));
}
