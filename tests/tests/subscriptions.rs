//! Status page subscriptions end to end (issue #15): the real bot, the fake
//! Discord, an SMTP sink and a webhook receiver on 127.0.0.1, on both databases.
//!
//! Email: double opt-in (nothing stored before the link is followed), one mail per
//! public update of a P1 (open, update, resolve), an unsubscribe that stops them,
//! a malformed address refused with its reason, the per-client rate limit.
//! Webhooks: each update POSTed once, signed, including after the receiver was down
//! (retries with back-off) and across a restart of Klaxon.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use klaxon_core::permissions::Level;
use klaxon_core::settings::status_page::{ComponentConfig, StatusPageConfig};
use klaxon_core::settings::subscriptions::{SecretText, SmtpConfig, SmtpTls, WebhookConfig};
use klaxon_core::store::subscriptions as db;
use klaxon_tests::smtp_sink::{Mail, SmtpSink};
use klaxon_tests::{both_databases, Db, Tester};
use sha2::Sha256;

const BASE: &str = "https://status.example.com";

fn choice(name: &str) -> i64 {
    ["investigating", "identified", "monitoring", "resolved"]
        .iter()
        .position(|n| *n == name)
        .unwrap_or_else(|| panic!("no choice {name}")) as i64
}

fn page_cfg(c: &mut StatusPageConfig) {
    c.listen = Some("127.0.0.1:0".parse().expect("an address"));
    c.title = "Acme status".into();
    c.base_url = BASE.into();
    c.components = vec![ComponentConfig {
        name: "Checkout API".into(),
        services: vec!["api".into()],
        description: String::new(),
    }];
}

async fn open_p1(t: &Tester, title: &str) {
    t.slash("incident open")
        .opt("title", title)
        .opt("severity", 0)
        .opt("summary", "Checkout fails for every customer")
        .opt("service", "api")
        .as_level(Level::Responder)
        .send()
        .await
        .reply()
        .await;
}

async fn set_status(t: &Tester, id: &str, status: &str, message: &str) {
    t.slash("incident status")
        .opt("id", id)
        .opt("status", choice(status))
        .opt("message", message)
        .as_level(Level::Responder)
        .send()
        .await
        .reply()
        .await;
}

async fn post_form(base: &str, path: &str, form: &[(&str, &str)]) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .form(form)
        .send()
        .await
        .expect("the status page answers");
    let status = r.status().as_u16();
    (status, r.text().await.expect("a body"))
}

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.expect("the status page answers");
    let status = r.status().as_u16();
    (status, r.text().await.expect("a body"))
}

/// A link of a mail, pointed at the listener the test talks to.
fn local(link: &str, base: &str) -> String {
    link.replacen(BASE, base, 1)
}

/// A health endpoint that always answers 200 (the component's state comes from
/// the incidents).
async fn healthy_endpoint() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = c.read(&mut buf).await;
                let _ = c
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    format!("http://{addr}/health")
}

fn subjects(mails: &[Mail]) -> Vec<String> {
    mails.iter().map(Mail::subject).collect()
}

both_databases!(
    email_subscription,
    email_double_opt_in_one_mail_per_update_and_unsubscribe_on_sqlite,
    email_double_opt_in_one_mail_per_update_and_unsubscribe_on_postgres,
);

async fn email_subscription(db: Db) {
    let sink = SmtpSink::start().await;
    let port = sink.port;
    let t = Tester::builder()
        .db(db)
        .service("api", None, Some(&healthy_endpoint().await))
        .status_page(|c| {
            page_cfg(c);
            c.smtp = Some(SmtpConfig {
                host: "127.0.0.1".into(),
                port: Some(port),
                tls: SmtpTls::None,
                username: String::new(),
                password: SecretText::default(),
                from: "Acme status <status@example.com>".into(),
            });
        })
        .spawn()
        .await;
    let addr = t.bot().status_page_addr.expect("the status page listens");
    let base = format!("http://{addr}");
    let store = t.bot().app.store.clone();

    // The form is on the page, which stays small.
    let (_, page) = get(&format!("{base}/")).await;
    assert!(page.contains("action=\"/subscribe\""), "{page}");
    assert!(page.len() < 50 * 1024);

    // Subscribe: a confirmation mail, and nothing stored yet.
    let (status, body) = post_form(&base, "/subscribe", &[("email", "Ann@Example.com")]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Check your inbox"), "{body}");
    let mails = sink.wait_for(1).await;
    assert_eq!(mails[0].to, ["Ann@example.com"]);
    assert_eq!(
        mails[0].subject(),
        "Confirm your subscription to Acme status"
    );
    assert!(!db::has_address(&store, "Ann@example.com")
        .await
        .expect("db"));
    assert_eq!(db::subscriber_count(&store).await.expect("db"), 0);
    let confirm = mails[0]
        .link(&format!("{BASE}/confirm?token="))
        .unwrap_or_else(|| panic!("a confirmation link in {}", mails[0].body));
    // A forged token is refused; the real one confirms (twice is harmless).
    let (status, body) = get(&format!("{}x", local(&confirm, &base))).await;
    assert_eq!(status, 400, "{body}");
    for _ in 0..2 {
        let (status, body) = get(&local(&confirm, &base)).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("You are subscribed"), "{body}");
    }
    assert!(db::has_address(&store, "Ann@example.com")
        .await
        .expect("db"));
    assert_eq!(db::subscriber_count(&store).await.expect("db"), 1);

    // A malformed address: refused, saying why.
    let (status, body) = post_form(&base, "/subscribe", &[("email", "ann.example.com")]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("An email address has an @"), "{body}");

    // A P1 from open to resolved: one mail per public update.
    let since = Instant::now();
    open_p1(&t, "Checkout <down>").await;
    let mails = sink.wait_for(2).await;
    println!("open mailed after {:?}", since.elapsed());
    let m = &mails[1];
    assert_eq!(m.subject(), "[P1 INCIDENT] Checkout <down>");
    assert!(
        m.body
            .contains("Investigating: Checkout fails for every customer"),
        "{}",
        m.body
    );
    assert!(
        m.body.contains(&format!("Details: {BASE}/incidents/INC-1")),
        "{}",
        m.body
    );
    let unsubscribe = m
        .link(&format!("{BASE}/unsubscribe?token="))
        .unwrap_or_else(|| panic!("an unsubscribe link in {}", m.body));
    assert_eq!(
        m.header("List-Unsubscribe"),
        Some(format!("<{unsubscribe}>").as_str())
    );
    assert_eq!(
        m.header("List-Unsubscribe-Post"),
        Some("List-Unsubscribe=One-Click")
    );

    set_status(&t, "INC-1", "identified", "A bad release; rolling back").await;
    let mails = sink.wait_for(3).await;
    assert_eq!(mails[2].subject(), "[P1 UPDATE] Checkout <down>");
    assert!(
        mails[2]
            .body
            .contains("Identified: A bad release; rolling back"),
        "{}",
        mails[2].body
    );

    set_status(&t, "INC-1", "resolved", "Rolled back to v1; checkout works").await;
    let mails = sink.wait_for(4).await;
    assert_eq!(mails[3].subject(), "[RESOLVED] Checkout <down>");
    assert!(
        mails[3].body.contains("Rolled back to v1; checkout works"),
        "{}",
        mails[3].body
    );
    // Exactly one per update: nothing more comes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sink.mails().len(), 4, "{:#?}", subjects(&sink.mails()));
    assert!(sink.mails()[1..]
        .iter()
        .all(|m| m.to == ["Ann@example.com"]));

    // Unsubscribe: a button first (a link scanner unsubscribes nobody), then gone.
    let (status, body) = get(&local(&unsubscribe, &base)).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("<form method=\"post\" action=\"/unsubscribe\">"),
        "{body}"
    );
    assert!(db::has_address(&store, "Ann@example.com")
        .await
        .expect("db"));
    let token = unsubscribe.rsplit('=').next().expect("a token");
    let (status, body) = post_form(&base, "/unsubscribe", &[("token", token)]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Unsubscribed"), "{body}");
    assert!(!db::has_address(&store, "Ann@example.com")
        .await
        .expect("db"));
    let (status, _) = get(&local(&unsubscribe, &base)).await;
    assert_eq!(status, 404);

    // No mail after it.
    open_p1(&t, "Search slow").await;
    let since = Instant::now();
    loop {
        let (_, page) = get(&format!("{base}/")).await;
        if page.contains("Search slow") {
            break;
        }
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "INC-2 not on the page"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sink.mails().len(), 4, "{:#?}", subjects(&sink.mails()));

    // The rate limit: 5 posts an hour from one client (2 so far), then 429.
    for k in 0..3 {
        let (status, _) = post_form(&base, "/subscribe", &[("email", &format!("x{k}@"))]).await;
        assert_eq!(status, 400);
    }
    let (status, body) = post_form(&base, "/subscribe", &[("email", "bob@example.com")]).await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("Too many subscription requests"), "{body}");
    assert_eq!(sink.mails().len(), 4, "no confirmation mailed when limited");

    let m = &t.bot().app.metrics;
    assert_eq!(
        m.get(
            "klaxon_status_deliveries_total",
            &[("channel", "email"), ("outcome", "sent")]
        ),
        3.0
    );
    t.discard_unread().await;
    t.finish().await;
}

/// Records what the webhook receiver was sent.
#[derive(Clone, Default)]
struct Hooks(Arc<Mutex<Vec<(String, String, String)>>>);

impl Hooks {
    fn got(&self) -> Vec<(String, String, String)> {
        self.0.lock().expect("hooks").clone()
    }

    async fn wait_for(&self, n: usize, within: Duration) -> Vec<(String, String, String)> {
        let since = Instant::now();
        loop {
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            assert!(
                since.elapsed() < within,
                "expected {n} webhook posts, got {got:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A webhook receiver on `port`: records (delivery id, signature, body).
async fn receiver(port: u16, hooks: Hooks) {
    use axum::http::HeaderMap;
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |h: HeaderMap, body: String| {
            let hooks = hooks.clone();
            async move {
                let header = |n: &str| {
                    h.get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                };
                hooks.0.lock().expect("hooks").push((
                    header("x-klaxon-delivery"),
                    header("x-klaxon-signature"),
                    body,
                ));
                "ok"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("the receiver binds its port again");
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
}

both_databases!(
    webhook_subscription,
    webhooks_get_each_update_once_after_an_outage_and_a_restart_on_sqlite,
    webhooks_get_each_update_once_after_an_outage_and_a_restart_on_postgres,
);

async fn webhook_subscription(db: Db) {
    // A port with nobody listening yet: the receiver is down at first.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        l.local_addr().expect("its address").port()
    };
    let mut t = Tester::builder()
        .db(db)
        .service("api", None, Some(&healthy_endpoint().await))
        .status_page(|c| {
            page_cfg(c);
            c.webhooks = vec![WebhookConfig {
                name: "ops".into(),
                url: format!("http://127.0.0.1:{port}/hook"),
                secret: SecretText::new("s3cret"),
                header: SecretText::default(),
            }];
        })
        .spawn()
        .await;
    open_p1(&t, "Checkout down").await;
    // Down: the open is tried, fails, and waits with back-off.
    let since = Instant::now();
    let m = Arc::clone(&t.bot().app.metrics);
    let retries = || {
        m.get(
            "klaxon_status_deliveries_total",
            &[("channel", "webhook"), ("outcome", "retry")],
        )
    };
    while retries() < 1.0 {
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "no attempt while the receiver is down"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Up: delivered once.
    let hooks = Hooks::default();
    receiver(port, hooks.clone()).await;
    let got = hooks.wait_for(1, Duration::from_secs(20)).await;
    println!(
        "open delivered {:?} after the receiver came up",
        since.elapsed()
    );

    set_status(&t, "INC-1", "identified", "A bad release; rolling back").await;
    hooks.wait_for(2, Duration::from_secs(10)).await;
    // A restart of Klaxon between two updates re-sends nothing.
    t.restart(Duration::from_secs(1)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(hooks.got().len(), 2, "{:#?}", hooks.got());
    set_status(&t, "INC-1", "resolved", "Rolled back to v1; checkout works").await;
    let got_all = hooks.wait_for(3, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(hooks.got().len(), 3, "{:#?}", hooks.got());
    assert_eq!(got_all[0], got[0]);

    let mut ids = Vec::new();
    let mut events = Vec::new();
    for (id, sig, body) in &got_all {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"s3cret").expect("a key");
        mac.update(body.as_bytes());
        let want: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(sig, &format!("sha256={want}"));
        let v: serde_json::Value = serde_json::from_str(body).expect("JSON");
        assert_eq!(v["incident"], "INC-1");
        assert_eq!(v["url"], format!("{BASE}/incidents/INC-1"));
        events.push(v["event"].as_str().unwrap_or_default().to_string());
        ids.push(id.clone());
    }
    assert_eq!(
        events,
        ["incident.opened", "incident.updated", "incident.resolved"]
    );
    ids.dedup();
    assert_eq!(ids.len(), 3, "distinct deliveries");
    let store = t.bot().app.store.clone();
    assert_eq!(db::count(&store, "sent").await.expect("db"), 3);
    assert_eq!(db::count(&store, "pending").await.expect("db"), 0);
    t.discard_unread().await;
    t.finish().await;
}
