//! On-call needs: direct messages (open the DM channel, post into it, 50007 for a
//! member who closed DMs or shares no server) and the guild member role routes with
//! Discord's permission and hierarchy checks.

mod common;

use common::{alice, fast_config, Bot, GUILD};
use klaxon_fake_discord::Member;
use serde_json::json;

fn bob() -> Member {
    Member {
        user_id: 43,
        username: "bob".into(),
        roles: vec![],
    }
}

#[tokio::test]
async fn a_dm_channel_is_opened_once_and_takes_posts() {
    let bot = Bot::start(fast_config()).await;
    bot.fake.add_member(alice());
    let (status, dm) =
        Bot::call(bot.post("/users/@me/channels", &json!({ "recipient_id": "42" }))).await;
    assert_eq!(status, 200);
    assert_eq!(dm["type"], 1);
    let id: u64 = dm["id"].as_str().and_then(|s| s.parse().ok()).expect("id");
    let (_, again) =
        Bot::call(bot.post("/users/@me/channels", &json!({ "recipient_id": "42" }))).await;
    assert_eq!(
        again["id"], dm["id"],
        "the same user gives the same channel"
    );
    let (status, m) = bot.say(id, json!({ "content": "You are paged" })).await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(bot.fake.messages(id).len(), 1);
    // Discord's limits hold in DMs too.
    let (status, _) = bot.say(id, json!({ "content": "x".repeat(2001) })).await;
    assert_eq!(status, 400);
    bot.fake.discard_outputs();
}

#[tokio::test]
async fn a_member_who_closed_dms_or_a_stranger_answers_50007() {
    let bot = Bot::start(fast_config()).await;
    bot.fake.add_member(alice());
    bot.fake.close_dms(42);
    for user in ["42", "77"] {
        let (_, dm) =
            Bot::call(bot.post("/users/@me/channels", &json!({ "recipient_id": user }))).await;
        let id: u64 = dm["id"].as_str().and_then(|s| s.parse().ok()).expect("id");
        let (status, body) = bot.say(id, json!({ "content": "You are paged" })).await;
        assert_eq!(status, 403);
        assert_eq!(
            body,
            json!({ "code": 50007, "message": "Cannot send messages to this user" })
        );
    }
}

#[tokio::test]
async fn member_roles_need_manage_roles_and_a_higher_bot_role() {
    let bot = Bot::start(fast_config()).await;
    bot.fake.add_member(alice());
    bot.fake.add_member(bob());
    bot.fake.add_roles(&[700, 800]);
    let path = |u: u64, r: u64| format!("/guilds/{GUILD}/members/{u}/roles/{r}");
    // Invited without Manage Roles.
    let (status, body) = Bot::call(bot.put(&path(43, 700), &json!({}))).await;
    assert_eq!((status, body["code"].clone()), (403, json!(50013)));
    // Roles count up from 1 in id order: 700 is 1, 800 is 2, 900 (alice's) is 3.
    bot.fake.grant_manage_roles(3);
    let (status, _) = Bot::call(bot.put(&path(43, 700), &json!({}))).await;
    assert_eq!(status, 204);
    assert_eq!(bot.fake.member_roles(43), vec![700]);
    let (status, _) = Bot::call(bot.put(&path(43, 700), &json!({}))).await;
    assert_eq!(status, 204, "giving a held role again is fine");
    assert_eq!(bot.fake.member_roles(43), vec![700]);
    let (status, body) = Bot::call(bot.put(&path(43, 900), &json!({}))).await;
    assert_eq!(
        (status, body["code"].clone()),
        (403, json!(50013)),
        "not above the bot's role"
    );
    let (status, body) = Bot::call(bot.put(&path(43, 555), &json!({}))).await;
    assert_eq!((status, body["code"].clone()), (404, json!(10011)));
    let (status, body) = Bot::call(bot.put(&path(99, 700), &json!({}))).await;
    assert_eq!((status, body["code"].clone()), (404, json!(10007)));
    let (status, _) = Bot::call(bot.delete(&path(43, 700))).await;
    assert_eq!(status, 204);
    assert!(bot.fake.member_roles(43).is_empty());
    let (status, member) = Bot::call(bot.get(&format!("/guilds/{GUILD}/members/43"))).await;
    assert_eq!(status, 200);
    assert_eq!(member["roles"], json!([]));
    assert_eq!(bot.fake.violations().total(), 0);
}
