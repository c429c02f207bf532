//! Discord's REST API down for five minutes: two and a half minutes of 503s, then two
//! and a half of requests that are never answered (timeouts). Alerts keep arriving
//! and are stored; Klaxon backs off instead of hammering Discord; when Discord is back
//! every group is shown, once, within about a minute (the longest back-off).
//!
//! It runs in real time (about six minutes): the back-off is wall-clock behaviour.

use std::time::{Duration, Instant};

use klaxon::config::Secret;
use klaxon_core::permissions::Level;
use klaxon_tests::fake::FaultRule;
use klaxon_tests::tester::ALERTS;
use klaxon_tests::Tester;
use serde_json::json;

const TOKEN: &str = "generic-token";
const PHASE: Duration = Duration::from_secs(150);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_minutes_without_discord_lose_nothing_and_send_nothing_twice() {
    let t = Tester::builder()
        .request_timeout(2)
        .intake(|i| i.generic_token = Secret::new(TOKEN))
        .alerts(|a| {
            a.group_wait_secs = 1;
            a.group_interval_secs = 1;
        })
        .spawn()
        .await;
    let path = format!("/channels/{ALERTS}/messages");
    let began = Instant::now();
    t.fake.inject(FaultRule::Outage {
        path_contains: path.clone(),
        status: 503,
        until: began + PHASE,
    });
    let addr = t.bot().http_addr;
    let client = reqwest::Client::new();
    // A new group every 30 s of the outage.
    let mut names = Vec::new();
    for i in 0..10 {
        let name = format!("During{i:02}");
        let r = client
            .post(format!("http://{addr}/alerts/generic"))
            .bearer_auth(TOKEN)
            .json(&json!({"name": name, "service": "api", "severity": "warning", "summary": "x"}))
            .send()
            .await
            .expect("intake");
        assert_eq!(
            r.status().as_u16(),
            200,
            "intake works while Discord is down"
        );
        names.push(name);
        tokio::time::sleep_until((began + Duration::from_secs(30 * (i + 1))).into()).await;
        if i == 4 {
            // Second half: Discord stops answering at all.
            t.fake.inject(FaultRule::Hang {
                path_contains: path.clone(),
                until: began + 2 * PHASE,
            });
        }
    }
    let outage_over = began + 2 * PHASE;
    // The hung requests are recorded when they are finally handled, at the end.
    tokio::time::sleep_until((outage_over + Duration::from_secs(1)).into()).await;
    let during = t
        .fake
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with(&path))
        .count();
    // One channel, five minutes: a back-off that doubles to a minute makes about a
    // dozen attempts, not thousands.
    assert!(during <= 30, "{during} attempts during the outage");
    assert!(during >= 3, "it kept trying ({during})");

    let deadline = outage_over + Duration::from_secs(90);
    loop {
        let messages = t.fake.messages(ALERTS);
        let shown = names
            .iter()
            .filter(|n| {
                messages
                    .iter()
                    .any(|m| m.text().contains(&format!("{n} · api")))
            })
            .count();
        if shown == names.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{shown} of {} groups shown 90 s after the outage",
            names.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let recovered = outage_over.elapsed();
    let messages = t.fake.messages(ALERTS);
    for n in &names {
        let count = messages
            .iter()
            .filter(|m| m.text().contains(&format!("{n} · api")))
            .count();
        assert_eq!(count, 1, "{n} shown once");
    }
    eprintln!("after a 5-minute outage every group was shown within {recovered:?}; {during} attempts during it");
    // Commands work (the gateway was up all along).
    t.slash("alerts list")
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await
        .assert_contains("10 firing");
    t.discard_unread().await;
    t.finish().await;
}
