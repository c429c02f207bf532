//! Starting while Discord is down (#20): Klaxon takes alerts over HTTP at once,
//! retries Discord with back-off, and connects, registers its commands and posts
//! what it stored once Discord answers. A refusal (401) still stops it at once.

use std::time::{Duration, Instant};

use klaxon::config::Secret;
use klaxon_tests::both_databases;
use klaxon_tests::fake::OutputKind;
use klaxon_tests::tester::{ALERTS, GUILD};
use klaxon_tests::{Db, Tester};
use serde_json::{json, Value};

const TOKEN: &str = "generic-token";
const OUTAGE: Duration = Duration::from_secs(60);

async fn readyz(t: &Tester) -> (u16, Value) {
    let r = reqwest::get(format!("http://{}/readyz", t.bot().http_addr))
        .await
        .expect("readyz answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn starting_while_discord_is_down(db: Db) {
    let began = Instant::now();
    let t = Tester::builder()
        .db(db)
        .outage_at_start(OUTAGE)
        .intake(|i| i.generic_token = Secret::new(TOKEN))
        .alerts(|a| {
            a.group_wait_secs = 0;
            a.group_interval_secs = 1;
        })
        .spawn()
        .await;
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "start-up does not wait for Discord: {:?}",
        began.elapsed()
    );

    // The HTTP server is up at once: alive, not ready, and it takes alerts.
    let health = reqwest::get(format!("http://{}/healthz", t.bot().http_addr))
        .await
        .expect("healthz answers");
    assert_eq!(health.status().as_u16(), 200);
    let (status, body) = readyz(&t).await;
    assert_eq!(status, 503, "{body}");
    let discord = body["discord"].as_str().unwrap_or_default();
    assert!(
        discord.starts_with("unreachable (retrying)") && discord.contains("503"),
        "{body}"
    );
    let r = reqwest::Client::new()
        .post(format!("http://{}/alerts/generic", t.bot().http_addr))
        .bearer_auth(TOKEN)
        .json(&json!({"alerts": [
            {"name": "DiskFull", "service": "db", "summary": "stored during the outage"},
            {"name": "DiskFull", "service": "web", "summary": "this one too"}
        ]}))
        .send()
        .await
        .expect("the intake answers");
    assert_eq!(r.status().as_u16(), 200);
    let reply: Value = r.json().await.expect("json");
    assert_eq!(reply["stored"]["firing"], 2, "{reply}");

    // Discord comes back: commands are registered, the alerts posted exactly once,
    // and /readyz turns 200.
    let commands = t
        .fake
        .wait_commands(GUILD, OUTAGE + Duration::from_secs(60))
        .await
        .expect("commands registered once Discord answers");
    assert!(commands.iter().any(|c| c["name"] == "health"));
    assert!(began.elapsed() >= OUTAGE, "not before the outage ended");
    let first = t.channel_message(ALERTS).await;
    let second = t.channel_message(ALERTS).await;
    let text = format!("{}\n{}", first.text(), second.text());
    assert!(text.contains("stored during the outage"), "{text}");
    assert!(text.contains("this one too"), "{text}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = readyz(&t).await;
        if status == 200 {
            assert_eq!(body["discord"], "ok", "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "readyz stays {status}: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Exactly once: nothing else reaches the alerts channel (`finish` fails on
    // unread output).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let posts = t
        .fake
        .unread_outputs()
        .into_iter()
        .filter(
            |o| matches!(o.kind, OutputKind::ChannelMessage { channel_id } if channel_id == ALERTS),
        )
        .count();
    assert_eq!(posts, 0, "the stored alerts were posted exactly once");
    t.finish().await;
}

both_databases!(
    starting_while_discord_is_down,
    starting_while_discord_is_down_on_sqlite,
    starting_while_discord_is_down_on_postgres
);
