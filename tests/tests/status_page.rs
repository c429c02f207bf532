//! The public status page end to end: the real bot, the fake Discord, and a real
//! headless browser (Debian's chromium) reading the page after each step of a P1.

use std::time::{Duration, Instant};

use klaxon_core::permissions::Level;
use klaxon_tests::browser;
use klaxon_tests::tester::INCIDENTS;
use klaxon_tests::{both_databases, Db, Tester};

fn choice(name: &str) -> i64 {
    ["investigating", "identified", "monitoring", "resolved"]
        .iter()
        .position(|n| *n == name)
        .unwrap_or_else(|| panic!("no choice {name}")) as i64
}

/// Polls `GET /` until `pred` holds; how long it took from `since`.
async fn page_until(
    base: &str,
    since: Instant,
    what: &str,
    pred: impl Fn(&str) -> bool,
) -> Duration {
    let client = reqwest::Client::new();
    loop {
        let body = client
            .get(format!("{base}/"))
            .send()
            .await
            .expect("the status page answers")
            .text()
            .await
            .expect("a body");
        if pred(&body) {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "{what}: not on the page within 5 s:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn component(dom: &str, state: &str) -> bool {
    dom.contains(&format!(
        "data-component=\"Checkout API\" data-state=\"{state}\""
    ))
}

/// The browser's DOM and the two screenshots of one step.
fn look(base: &str, db: &str, step: &str) -> String {
    let dom = browser::dump_dom(&format!("{base}/"));
    browser::screenshot(
        &format!("{base}/"),
        390,
        844,
        &format!("status-page-{db}-{step}-390x844.png"),
    );
    browser::screenshot(
        &format!("{base}/"),
        1280,
        800,
        &format!("status-page-{db}-{step}-1280x800.png"),
    );
    dom
}

/// A health endpoint that always answers 200: the service itself is fine, so the
/// component's state comes from the incident.
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

both_databases!(
    p1_open_update_resolve,
    a_p1_shows_in_a_real_browser_from_open_to_resolved_on_sqlite,
    a_p1_shows_in_a_real_browser_from_open_to_resolved_on_postgres,
);

async fn p1_open_update_resolve(db: Db) {
    let health = healthy_endpoint().await;
    let t = Tester::builder()
        .db(db)
        .service("api", None, Some(&health))
        .status_page(|c| {
            c.listen = Some("127.0.0.1:0".parse().expect("an address"));
            c.title = "Acme status".into();
            c.base_url = "https://status.example.com".into();
            c.components = vec![klaxon_core::settings::status_page::ComponentConfig {
                name: "Checkout API".into(),
                services: vec!["api".into()],
                description: "Payments and orders".into(),
            }];
        })
        .spawn()
        .await;
    let addr = t.bot().status_page_addr.expect("the status page listens");
    let base = format!("http://{addr}");
    let tag = format!("{db:?}").to_lowercase();

    let dom = look(&base, &tag, "0-calm");
    assert!(component(&dom, "operational"), "{dom}");
    assert!(dom.contains("All systems operational"), "{dom}");

    // Open a P1: the stakeholder notice, then the page within 5 s.
    t.slash("incident open")
        .opt("title", "<script>alert(1)</script> checkout down")
        .opt("severity", 0)
        .opt("summary", "Checkout fails for every customer")
        .opt("service", "api")
        .as_level(Level::Responder)
        .send()
        .await
        .reply()
        .await
        .assert_contains("INC-1");
    let notice = t.channel_message(INCIDENTS).await;
    let since = Instant::now();
    assert!(notice.text().contains("[P1 INCIDENT]"), "{}", notice.text());
    let took = page_until(&base, since, "the P1", |b| component(b, "outage")).await;
    println!("open shown on the page after {took:?}");
    let dom = look(&base, &tag, "1-open");
    assert!(component(&dom, "outage"), "{dom}");
    assert!(dom.contains("Major outage"));
    assert!(dom.contains("Checkout fails for every customer"));
    assert!(
        dom.contains("&lt;script&gt;alert(1)&lt;/script&gt; checkout down"),
        "{dom}"
    );
    assert!(!dom.contains("<script>"), "the title stays text");
    let one = browser::dump_dom(&format!("{base}/incidents/INC-1"));
    assert!(one.contains("Checkout fails for every customer"), "{one}");
    // The leader rolled the outage up into today's row of the history bar.
    let store = &t.bot().app.store;
    let mut rows = Vec::new();
    for _ in 0..50 {
        rows = klaxon_core::store::status_days::since(store, 0)
            .await
            .expect("roll-ups read");
        if rows
            .iter()
            .any(|r| r.component == "Checkout API" && r.worst == 3)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        rows.iter()
            .any(|r| r.component == "Checkout API" && r.worst == 3),
        "{rows:?}"
    );

    // An update: the words of the [P1 UPDATE] notice.
    t.slash("incident status")
        .opt("id", "INC-1")
        .opt("status", choice("identified"))
        .opt("message", "A bad release; rolling back")
        .as_level(Level::Responder)
        .send()
        .await
        .reply()
        .await
        .assert_contains("INC-1 is **Identified**");
    let since = Instant::now();
    let took = page_until(&base, since, "the update", |b| {
        b.contains("A bad release; rolling back")
    })
    .await;
    println!("update shown on the page after {took:?}");
    let dom = look(&base, &tag, "2-update");
    assert!(component(&dom, "outage"), "{dom}");
    assert!(dom.contains("Identified"));

    // Resolved: the component is operational again, the incident in the history.
    t.slash("incident status")
        .opt("id", "INC-1")
        .opt("status", choice("resolved"))
        .opt("message", "Rolled back to v1; checkout works")
        .as_level(Level::Responder)
        .send()
        .await
        .reply()
        .await;
    let since = Instant::now();
    let took = page_until(&base, since, "the resolution", |b| {
        component(b, "operational")
    })
    .await;
    println!("resolution shown on the page after {took:?}");
    let dom = look(&base, &tag, "3-resolved");
    assert!(component(&dom, "operational"), "{dom}");
    assert!(dom.contains("All systems operational"), "{dom}");
    assert!(
        dom.contains("Past incidents") && dom.contains("INC-1"),
        "{dom}"
    );
    let one = browser::dump_dom(&format!("{base}/incidents/INC-1"));
    for words in [
        "A bad release; rolling back",
        "Rolled back to v1; checkout works",
        "Resolved",
    ] {
        assert!(one.contains(words), "{words} in {one}");
    }

    // The feed, the JSON, the headers.
    let client = reqwest::Client::new();
    let r = client
        .get(format!("{base}/feed.atom"))
        .send()
        .await
        .expect("feed");
    assert_eq!(
        r.headers()["content-type"],
        "application/atom+xml; charset=utf-8"
    );
    let feed = r.text().await.expect("feed body");
    let root = browser::well_formed(&feed).unwrap_or_else(|e| panic!("{e}: {feed}"));
    assert_eq!(root, "feed xmlns=\"http://www.w3.org/2005/Atom\"");
    assert!(feed.contains("<entry>") && feed.contains("A bad release; rolling back"));
    let r = client
        .get(format!("{base}/status.json"))
        .send()
        .await
        .expect("json");
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: serde_json::Value = r.json().await.expect("status.json parses");
    assert_eq!(v["overall"], "operational");
    assert_eq!(v["components"][0]["name"], "Checkout API");
    let r = client.get(format!("{base}/")).send().await.expect("page");
    let h = r.headers();
    assert_eq!(
        h["content-security-policy"],
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h["cache-control"]
        .to_str()
        .unwrap_or_default()
        .contains("max-age="));
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    let size = r.bytes().await.expect("page").len();
    assert!(size < 50 * 1024, "{size} bytes");

    t.discard_unread().await;
    t.finish().await;
}

both_databases!(
    private_incident,
    an_incident_opened_with_public_false_stays_off_the_page_on_sqlite,
    an_incident_opened_with_public_false_stays_off_the_page_on_postgres,
);

/// `public:false` keeps an incident off the page, its own page, the feed and
/// status.json; a public one opened after it shows, so the page was refreshed.
async fn private_incident(db: Db) {
    let health = healthy_endpoint().await;
    let t = Tester::builder()
        .db(db)
        .service("api", None, Some(&health))
        .status_page(|c| {
            c.listen = Some("127.0.0.1:0".parse().expect("an address"));
            c.components = vec![klaxon_core::settings::status_page::ComponentConfig {
                name: "Checkout API".into(),
                services: vec!["api".into()],
                description: String::new(),
            }];
        })
        .spawn()
        .await;
    let addr = t.bot().status_page_addr.expect("the status page listens");
    let base = format!("http://{addr}");

    t.slash("incident open")
        .opt("title", "Secret database migration gone wrong")
        .opt("severity", 0)
        .opt("service", "api")
        .opt("public", false)
        .as_level(Level::Responder)
        .send()
        .await
        .reply()
        .await
        .assert_contains("INC-1");
    let notice = t.channel_message(INCIDENTS).await;
    assert!(notice.text().contains("[P1 INCIDENT]"), "{}", notice.text());
    t.slash("incident open")
        .opt("title", "Slow search")
        .opt("severity", 3)
        .as_level(Level::Responder)
        .send()
        .await
        .reply()
        .await
        .assert_contains("INC-2");
    let since = Instant::now();
    page_until(&base, since, "the public P4", |b| b.contains("Slow search")).await;

    let client = reqwest::Client::new();
    let get = |path: &'static str| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let r = client
                .get(format!("{base}{path}"))
                .send()
                .await
                .expect("the status page answers");
            (r.status().as_u16(), r.text().await.expect("a body"))
        }
    };
    let (_, page) = get("/").await;
    assert!(!page.contains("Secret database migration"), "{page}");
    assert!(!page.contains("INC-1"), "{page}");
    assert!(
        page.contains("data-component=\"Checkout API\" data-state=\"operational\""),
        "the private P1 does not turn its component red: {page}"
    );
    let (status, one) = get("/incidents/INC-1").await;
    assert_eq!(status, 404, "{one}");
    assert!(!one.contains("Secret database migration"), "{one}");
    let (_, feed) = get("/feed.atom").await;
    assert!(feed.contains("Slow search"), "{feed}");
    assert!(!feed.contains("Secret database migration"), "{feed}");
    let (_, json) = get("/status.json").await;
    assert!(json.contains("Slow search"), "{json}");
    assert!(!json.contains("Secret database migration"), "{json}");

    t.discard_unread().await;
    t.finish().await;
}
