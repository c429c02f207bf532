//! Notices from a snapshot, mails' words, and the outbox's once-only key on a real
//! database (SQLite here; the end-to-end tests run both databases).

use super::*;
use crate::settings::subscriptions::WebhookConfig;
use crate::status_page::model::{PublicIncident, PublicUpdate, PublicWindow};

const T0: i64 = 1_796_000_000_000;

fn snapshot(updates: usize, resolved: bool) -> Snapshot {
    let statuses = ["Investigating", "Identified", "Monitoring"];
    let mut ups: Vec<PublicUpdate> = (0..updates)
        .map(|k| PublicUpdate {
            at_ms: T0 + k as i64 * 60_000,
            status: statuses[k % 3].into(),
            text: format!("words {k} <b>"),
        })
        .collect();
    if resolved {
        ups.push(PublicUpdate {
            at_ms: T0 + 3_600_000,
            status: "Resolved".into(),
            text: "fixed".into(),
        });
    }
    let inc = PublicIncident {
        id: "INC-7".into(),
        title: "Checkout down\r\nBcc: x@y.com".into(),
        severity: "P1".into(),
        status: if resolved { "Resolved" } else { "Identified" }.into(),
        components: vec!["Checkout API".into()],
        opened_ms: T0,
        resolved_ms: resolved.then_some(T0 + 3_600_000),
        updates: ups,
    };
    Snapshot {
        title: "Acme status".into(),
        base_url: "https://status.example.com/".into(),
        generated_ms: T0 + 3_600_000,
        components: vec![],
        open: if resolved { vec![] } else { vec![inc.clone()] },
        history: if resolved { vec![inc] } else { vec![] },
        maintenance: vec![PublicWindow {
            components: vec!["Checkout API".into()],
            reason: "Database upgrade".into(),
            starts_ms: T0 + 7_200_000,
            ends_ms: T0 + 9_000_000,
            active: false,
        }],
        subscribe: true,
    }
}

#[test]
fn every_public_update_is_one_notice_with_a_stable_key() {
    let open = notices(&snapshot(2, false));
    let events: Vec<&str> = open.iter().map(|n| n.event.as_str()).collect();
    assert_eq!(
        events,
        [
            "incident.opened",
            "incident.updated",
            "maintenance.scheduled"
        ]
    );
    assert_eq!(open[0].url, "https://status.example.com/incidents/INC-7");
    assert_eq!(open[1].key, format!("INC-7@{}/Identified", T0 + 60_000));
    // The same updates after the resolution keep their keys; one more is new.
    let done = notices(&snapshot(2, true));
    assert_eq!(done[0].key, open[0].key);
    assert_eq!(done[1].key, open[1].key);
    assert_eq!(done[2].event, "incident.resolved");
    assert_eq!(done[2].subject(), "[RESOLVED] Checkout downBcc: x@y.com");
    assert_eq!(open[0].subject(), "[P1 INCIDENT] Checkout downBcc: x@y.com");
    assert_eq!(open[1].subject(), "[P1 UPDATE] Checkout downBcc: x@y.com");
    let json = serde_json::to_value(&open[1]).expect("json");
    assert_eq!(json["status"], "Identified");
    assert_eq!(json["text"], "words 1 <b>");
    assert!(json.get("key").is_none());
}

#[test]
fn an_update_mail_shows_text_literally_with_its_unsubscribe_link() {
    let n = &notices(&snapshot(2, false))[1];
    let text = mail::update_text(
        "Acme status",
        n,
        "https://status.example.com/unsubscribe?token=ab",
    );
    assert!(text.contains("Identified: words 1 <b>"), "{text}");
    assert!(text.contains("Details: https://status.example.com/incidents/INC-7"));
    assert!(text.ends_with("Unsubscribe: https://status.example.com/unsubscribe?token=ab\n"));
}

fn cfg() -> StatusPageConfig {
    StatusPageConfig {
        base_url: "https://status.example.com".into(),
        webhooks: vec![WebhookConfig {
            name: "ops".into(),
            url: "http://127.0.0.1:9/hook".into(),
            secret: Default::default(),
            header: Default::default(),
        }],
        smtp: Some(crate::settings::subscriptions::SmtpConfig {
            host: "127.0.0.1".into(),
            port: Some(9),
            tls: crate::settings::subscriptions::SmtpTls::None,
            username: String::new(),
            password: Default::default(),
            from: "status@example.com".into(),
        }),
        ..Default::default()
    }
}

#[test]
fn each_subscriber_gets_each_update_once_and_old_history_is_not_sent() {
    crate::testing::run_test(|w| async move {
        let store = &w.app.store;
        db::add_subscriber(store, "ann@example.com", "tok-ann", w.now_ms()).await?;
        assert!(!db::add_subscriber(store, "ann@example.com", "other", w.now_ms()).await?);
        // The history is older than FRESH_MS: recorded, sent to nobody.
        let mut s = snapshot(2, false);
        s.generated_ms = w.now_ms();
        let window = s.maintenance.pop().expect("a window");
        let mut p = Publisher::default();
        assert_eq!(p.publish(&w.app, &cfg(), &s).await?, 2);
        assert_eq!(db::count(store, "pending").await?, 0);
        // A fresh update: one mail and one webhook post, however often it is seen.
        let mut s = s.clone();
        s.open[0].updates.push(PublicUpdate {
            at_ms: w.now_ms(),
            status: "Monitoring".into(),
            text: "recovering".into(),
        });
        assert_eq!(p.publish(&w.app, &cfg(), &s).await?, 1);
        assert_eq!(p.publish(&w.app, &cfg(), &s).await?, 0);
        // A new publisher (a restart, a new leader) queues nothing again either.
        assert_eq!(Publisher::default().publish(&w.app, &cfg(), &s).await?, 0);
        assert_eq!(db::count(store, "pending").await?, 2);
        // Unsubscribing drops what was queued for the address, and the address.
        assert!(db::remove_subscriber(store, "tok-ann").await?);
        assert!(!db::has_address(store, "ann@example.com").await?);
        assert_eq!(db::count(store, "pending").await?, 1);
        assert!(!db::remove_subscriber(store, "tok-ann").await?);
        // A window announced now is fresh: queued for the webhook (no subscriber
        // left).
        s.maintenance.push(window);
        assert_eq!(p.publish(&w.app, &cfg(), &s).await?, 1);
        assert_eq!(db::count(store, "pending").await?, 2);
        Ok(())
    });
}
