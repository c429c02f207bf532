//! Klaxon's Discord transport against the fake's real limits: bursts stay at zero
//! 429s, start-up fails loudly, and the bot's own HTTP endpoints answer.

use std::time::{Duration, Instant};

use klaxon_core::chat::{ChatMessage, Embed};
use klaxon_core::permissions::Level;
use klaxon_tests::tester::{ALERTS, INCIDENTS};
use klaxon_tests::Tester;

/// The number: 200 messages to one channel, all at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_200_messages_to_one_channel_gets_no_429() {
    // Discord's shape (5 per window per channel, 50/s global) with a shorter
    // window so the test takes seconds, not 200 s; the limiter learns the window
    // from the headers, as it must from the real Discord.
    let t = Tester::builder()
        .fake(|f| {
            f.channel_limit = 5;
            f.channel_window = Duration::from_millis(200);
        })
        .spawn()
        .await;
    let chat = t.bot().app.chat.clone();
    let start = Instant::now();
    let sends: Vec<_> = (0..200)
        .map(|i| {
            let chat = chat.clone();
            tokio::spawn(async move {
                chat.send(ALERTS, ChatMessage::text(format!("burst message {i}")))
                    .await
            })
        })
        .collect();
    for s in sends {
        s.await.unwrap().expect("every message is delivered");
    }
    let elapsed = start.elapsed();
    for _ in 0..200 {
        t.channel_message(ALERTS).await;
    }
    let v = t.fake.violations();
    assert_eq!((v.rate_limited, v.global_rate_limited), (0, 0), "{v:#?}");
    let mut seen: Vec<String> = t
        .fake
        .messages(ALERTS)
        .into_iter()
        .map(|m| m.content)
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 200, "all 200 arrive once");
    // 40 windows of 200 ms: the limiter paces instead of failing, and not much slower.
    assert!(elapsed >= Duration::from_millis(7_600), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    let m = &t.bot().app.metrics;
    assert_eq!(m.get("klaxon_discord_invalid_requests_total", &[]), 0.0);
    assert!(m.get("klaxon_limiter_waits_total", &[]) >= 30.0);
    t.finish().await;
}

/// Several channels at once: the global 50/s holds too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_across_channels_respect_the_global_limit() {
    let t = Tester::builder()
        .fake(|f| {
            f.channel_limit = 50;
            f.channel_window = Duration::from_millis(100);
        })
        .spawn()
        .await;
    let chat = t.bot().app.chat.clone();
    let sends: Vec<_> = (0..120)
        .map(|i| {
            let chat = chat.clone();
            let channel = if i % 2 == 0 { ALERTS } else { INCIDENTS };
            tokio::spawn(
                async move { chat.send(channel, ChatMessage::text(format!("m{i}"))).await },
            )
        })
        .collect();
    for s in sends {
        s.await.unwrap().expect("delivered");
    }
    for i in 0..120 {
        t.channel_message(if i % 2 == 0 { ALERTS } else { INCIDENTS })
            .await;
    }
    assert_eq!(t.fake.violations().global_rate_limited, 0);
    t.finish().await;
}

/// A message over Discord's limits is cut by the domain, never refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_messages_are_fitted_not_refused() {
    let t = Tester::builder().spawn().await;
    let huge = Embed {
        title: "t".repeat(400),
        description: "d".repeat(5_000),
        ..Default::default()
    };
    let msg = ChatMessage {
        embeds: vec![huge],
        ..ChatMessage::text("x".repeat(3_000))
    };
    t.bot().app.chat.send(ALERTS, msg).await.expect("accepted");
    let m = t.channel_message(ALERTS).await;
    assert_eq!(m.content.chars().count(), 2_000);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_readyz_and_metrics() {
    let t = Tester::builder()
        .service("api", None, Some("http://127.0.0.1:9/health"))
        .spawn()
        .await;
    let base = format!("http://{}", t.bot().http_addr);
    let client = reqwest::Client::new();
    let r = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"role": "leader", "database": "ok", "gateway": "connected", "discord_token": "ok", "discord": "ok",
            "docker": "not used (no [[services]] names a container)"})
    );

    t.slash("health")
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    t.slash("health").without_role().send().await.reply().await;
    // The audit row and the counter are written just after the member's reply.
    let deadline = Instant::now() + Duration::from_secs(5);
    let text = loop {
        let r = client.get(format!("{base}/metrics")).send().await.unwrap();
        let text = r.text().await.unwrap();
        // Both runs are counted after their replies, in either order.
        let both = text.contains("outcome=\"denied\"") && text.contains("outcome=\"ok\"");
        if both || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        text.contains("klaxon_commands_total{command=\"health\",outcome=\"ok\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("klaxon_commands_total{command=\"health\",outcome=\"denied\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("klaxon_discord_requests_total{status=\"204\"}"),
        "{text}"
    );
    // OpenMetrics names the family without `_total`; the sample keeps the name.
    assert!(
        text.contains("# TYPE klaxon_limiter_waits counter\n"),
        "{text}"
    );
    assert!(text.contains("\nklaxon_limiter_waits_total 0\n"), "{text}");

    // The gateway drops: /readyz says so, then the session resumes and commands work.
    t.fake.drop_gateway().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = client.get(format!("{base}/readyz")).send().await.unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the gateway never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    t.slash("health")
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await
        .assert_contains("api is down");
    t.finish().await;
}

/// Nothing listens at `api_url`: that is an outage to wait out (#20), not a reason
/// to exit; `/readyz` names the cause meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_waits_when_discord_is_unreachable() {
    let t = Tester::builder().spawn().await;
    let mut config = t.config.clone();
    t.finish().await;
    let dir = tempfile::tempdir().unwrap();
    config.database.url = klaxon_tests::env::sqlite_url(dir.path());
    // Port 9 on loopback: nothing listens.
    config.discord.api_url = "http://127.0.0.1:9".into();
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    let bot = klaxon::start(config)
        .await
        .expect("start-up waits for Discord instead of failing");
    let r = reqwest::get(format!("http://{}/readyz", bot.http_addr))
        .await
        .expect("readyz answers");
    assert_eq!(r.status().as_u16(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    let discord = body["discord"].as_str().unwrap_or_default();
    assert!(
        discord.starts_with("unreachable (retrying)") && discord.contains("/api/v10/gateway"),
        "{body}"
    );
    bot.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_fails_on_a_wrong_token() {
    let t = Tester::builder().spawn().await;
    let mut config = t.config.clone();
    let fake = t.fake.clone();
    t.finish().await;
    let dir = tempfile::tempdir().unwrap();
    config.database.url = klaxon_tests::env::sqlite_url(dir.path());
    config.discord.token = klaxon::config::Secret::new("wrong");
    let err = match klaxon::start(config).await {
        Ok(_) => panic!("start-up must fail"),
        Err(e) => format!("{e:#}"),
    };
    assert_eq!(
        err,
        "discord token: Discord refused the token (401 Unauthorized); check DISCORD_TOKEN"
    );
    // One refused request, then it stops: no storm of 401s toward a Cloudflare ban.
    assert_eq!(fake.violations().unauthorized, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_fails_on_an_unreachable_database() {
    let t = Tester::builder().spawn().await;
    let mut config = t.config.clone();
    t.finish().await;
    config.database.url = "postgres://k:hunter2@127.0.0.1:9/k".into();
    let err = match klaxon::start(config).await {
        Ok(_) => panic!("start-up must fail"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.starts_with("database.url: cannot open postgres://k:****@127.0.0.1:9/k"),
        "{err}"
    );
}
