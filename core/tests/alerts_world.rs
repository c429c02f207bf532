//! Alert grouping and the outbox in the fast world: Alertmanager payloads go in
//! through the same intake calls the HTTP server makes, the grouper renders, and the
//! sender delivers to a recording chat sink that can fail on cue.

use std::time::Duration;

use klaxon_core::alerts::{self, db::Ingested, deliver};
use klaxon_core::chat::{self, ChatError, ChatMessage};
use klaxon_core::testing::{run_test, Failure, Recorded, World, ALERTS_CHANNEL};
use sqlx::Row;

/// An Alertmanager (version 4) notification of `alerts`: (status, alertname,
/// service, summary, fingerprint).
fn alertmanager(alerts: &[(&str, &str, &str, &str, &str)]) -> Vec<u8> {
    let alerts: Vec<serde_json::Value> = alerts
        .iter()
        .map(|(status, name, service, summary, fp)| {
            serde_json::json!({
                "status": status,
                "labels": { "alertname": name, "service": service, "severity": "warning" },
                "annotations": { "summary": summary },
                "startsAt": "2026-12-01T14:03:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prom/graph",
                "fingerprint": fp,
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "version": "4",
        "status": "firing",
        "receiver": "klaxon",
        "groupKey": "{}:{}",
        "alerts": alerts,
    }))
    .expect("json")
}

/// What the HTTP intake does with a notification body.
async fn intake(w: &World, body: &[u8]) -> anyhow::Result<Ingested> {
    let parsed = alerts::parse::alertmanager(body)?;
    Ok(alerts::db::ingest(
        &w.app.store,
        &w.app.alerts,
        w.app.alerts_channel,
        &parsed,
        w.now_ms(),
    )
    .await?)
}

/// One round of the alert worker: render what is due, deliver the outbox.
async fn deliver(w: &World, sender: &mut deliver::Sender) -> anyhow::Result<usize> {
    let n = deliver::flush_due(&w.app, w.now_ms()).await?;
    sender.tick(&w.app).await?;
    sender.drain().await;
    Ok(n)
}

/// Past the default group wait (10 s).
const WAIT: Duration = Duration::from_secs(11);

async fn pending(w: &World) -> anyhow::Result<i64> {
    Ok(
        sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE state = 'pending'")
            .fetch_one(w.app.store.pool())
            .await?
            .try_get("n")?,
    )
}

fn head(m: &ChatMessage) -> &str {
    m.embeds
        .first()
        .map(|e| e.title.as_str())
        .unwrap_or_default()
}

#[test]
fn alerts_of_one_name_and_service_share_one_message_after_the_group_wait() {
    run_test(|w| async move {
        let mut sender = deliver::Sender::default();
        let got = intake(
            &w,
            &alertmanager(&[
                ("firing", "HighLatency", "api", "p99 over 2s", "a1"),
                ("firing", "HighLatency", "api", "p95 over 1s", "a2"),
            ]),
        )
        .await?;
        assert_eq!((got.firing, got.duplicates), (2, 0));
        assert_eq!(deliver(&w, &mut sender).await?, 0, "the group waits first");
        assert!(w.chat.records().is_empty());
        w.advance(WAIT);
        assert_eq!(deliver(&w, &mut sender).await?, 1);
        let sent = w.chat.sent_to(ALERTS_CHANNEL);
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert!(
            head(&sent[0]).starts_with("🔥 P3 FIRING · "),
            "{}",
            head(&sent[0])
        );
        assert!(head(&sent[0]).ends_with("(2)"), "{}", head(&sent[0]));
        let text = &sent[0].embeds[0].description;
        assert!(
            text.contains("p99 over 2s") && text.contains("p95 over 1s"),
            "{text}"
        );
        assert_eq!(sent[0].embeds[0].color, chat::YELLOW);
        assert!(sent[0].silent, "a P3 wakes nobody");
        let ids: Vec<&str> = sent[0]
            .buttons
            .iter()
            .map(|b| b.custom_id.as_str())
            .collect();
        assert!(
            ids.iter().any(|id| id.starts_with("alerts:ack:")),
            "{ids:?}"
        );
        Ok(())
    });
}

#[test]
fn different_services_get_their_own_groups() {
    run_test(|w| async move {
        let mut sender = deliver::Sender::default();
        intake(
            &w,
            &alertmanager(&[
                ("firing", "HighLatency", "api", "slow api", "a1"),
                ("firing", "HighLatency", "web", "slow web", "b1"),
            ]),
        )
        .await?;
        w.advance(WAIT);
        assert_eq!(deliver(&w, &mut sender).await?, 2);
        assert_eq!(w.chat.sent_to(ALERTS_CHANNEL).len(), 2);
        Ok(())
    });
}

#[test]
fn a_repeated_notification_is_a_duplicate_and_posts_nothing_new() {
    run_test(|w| async move {
        let mut sender = deliver::Sender::default();
        let body = alertmanager(&[("firing", "DiskFull", "db", "95% used", "d1")]);
        intake(&w, &body).await?;
        w.advance(WAIT);
        deliver(&w, &mut sender).await?;
        w.chat.clear();
        let again = intake(&w, &body).await?;
        assert_eq!((again.firing, again.duplicates), (0, 1));
        assert!(again.changed.is_empty());
        w.advance(Duration::from_secs(600));
        assert_eq!(deliver(&w, &mut sender).await?, 0);
        assert!(w.chat.records().is_empty(), "{:?}", w.chat.records());
        Ok(())
    });
}

#[test]
fn a_resolved_alert_turns_its_group_message_green_in_place() {
    run_test(|w| async move {
        let mut sender = deliver::Sender::default();
        intake(
            &w,
            &alertmanager(&[("firing", "DiskFull", "db", "95% used", "d1")]),
        )
        .await?;
        w.advance(WAIT);
        deliver(&w, &mut sender).await?;
        let (first, title) = match w.chat.records().as_slice() {
            [Recorded::Send { id, message, .. }] => (
                *id,
                head(message)
                    .trim_start_matches("🔥 P3 FIRING · ")
                    .trim_end_matches(" (1)")
                    .to_string(),
            ),
            other => panic!("one message expected: {other:?}"),
        };
        let got = intake(
            &w,
            &alertmanager(&[("resolved", "DiskFull", "db", "95% used", "d1")]),
        )
        .await?;
        assert_eq!(got.resolved, 1);
        // A change to a group already posted waits for the group interval (120 s).
        w.advance(Duration::from_secs(121));
        deliver(&w, &mut sender).await?;
        let edits = w.chat.edits();
        assert_eq!(edits.len(), 1, "{:?}", w.chat.records());
        let (channel, id, m) = &edits[0];
        assert_eq!((*channel, *id), (ALERTS_CHANNEL, first));
        assert_eq!(head(m), format!("✅ RESOLVED · {title} (1)"));
        assert_eq!(m.embeds[0].color, chat::GREEN);
        assert!(m.buttons.is_empty(), "nothing to click on a resolved group");
        assert_eq!(w.chat.sent().len(), 1, "edited, not posted again");
        Ok(())
    });
}

#[test]
fn a_resolved_notification_for_an_unknown_alert_is_counted_and_ignored() {
    run_test(|w| async move {
        let mut sender = deliver::Sender::default();
        let got = intake(
            &w,
            &alertmanager(&[("resolved", "Ghost", "api", "gone", "g1")]),
        )
        .await?;
        assert_eq!(got.unknown_resolved, 1);
        w.advance(WAIT);
        assert_eq!(deliver(&w, &mut sender).await?, 0);
        assert!(w.chat.records().is_empty());
        Ok(())
    });
}

#[test]
fn a_message_discord_could_not_take_stays_queued_and_is_retried_once() {
    run_test(|w| async move {
        let mut sender = deliver::Sender::default();
        intake(
            &w,
            &alertmanager(&[("firing", "DiskFull", "db", "95% used", "d1")]),
        )
        .await?;
        w.advance(WAIT);
        w.chat
            .fail_next(Failure::Before(ChatError::Unavailable("502".into())));
        deliver(&w, &mut sender).await?;
        assert!(w.chat.sent().is_empty());
        assert_eq!(pending(&w).await?, 1, "kept in the outbox");
        deliver(&w, &mut sender).await?;
        assert!(w.chat.sent().is_empty(), "backs off before the retry");
        w.advance(Duration::from_secs(2));
        deliver(&w, &mut sender).await?;
        assert_eq!(w.chat.sent_to(ALERTS_CHANNEL).len(), 1);
        assert_eq!(pending(&w).await?, 0);
        w.advance(Duration::from_secs(60));
        deliver(&w, &mut sender).await?;
        assert_eq!(w.chat.sent().len(), 1, "sent once");
        Ok(())
    });
}

#[test]
fn a_lost_answer_is_retried_with_the_same_nonce_and_shows_one_message() {
    run_test(|w| async move {
        let mut sender = deliver::Sender::default();
        intake(
            &w,
            &alertmanager(&[("firing", "DiskFull", "db", "95% used", "d1")]),
        )
        .await?;
        w.advance(WAIT);
        w.chat
            .fail_next(Failure::AfterDelivery(ChatError::Unavailable(
                "timed out".into(),
            )));
        deliver(&w, &mut sender).await?;
        assert_eq!(pending(&w).await?, 1, "Klaxon does not know it was posted");
        w.advance(Duration::from_secs(2));
        deliver(&w, &mut sender).await?;
        assert_eq!(pending(&w).await?, 0);
        let sent = w.chat.sent();
        assert_eq!(sent.len(), 1, "the nonce kept it to one: {sent:?}");
        let nonce = sent[0].1.nonce.clone().unwrap_or_default();
        assert!(nonce.starts_with('k') && nonce.ends_with("g0p0"), "{nonce}");
        assert!(chat::chars(&nonce) <= 25);

        // The group's later changes edit that one message.
        intake(
            &w,
            &alertmanager(&[("resolved", "DiskFull", "db", "95% used", "d1")]),
        )
        .await?;
        w.advance(Duration::from_secs(121));
        deliver(&w, &mut sender).await?;
        let id = match &w.chat.records()[0] {
            Recorded::Send { id, .. } => *id,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            w.chat.edits().iter().map(|e| e.1).collect::<Vec<_>>(),
            vec![id]
        );
        Ok(())
    });
}

#[test]
fn a_refused_message_is_parked_not_retried() {
    run_test(|w| async move {
        let mut sender = deliver::Sender::default();
        intake(
            &w,
            &alertmanager(&[("firing", "DiskFull", "db", "95% used", "d1")]),
        )
        .await?;
        w.advance(WAIT);
        w.chat.fail_next(Failure::Before(ChatError::Rejected(
            "400 invalid form body".into(),
        )));
        deliver(&w, &mut sender).await?;
        assert_eq!(pending(&w).await?, 0);
        w.advance(Duration::from_secs(120));
        deliver(&w, &mut sender).await?;
        assert!(w.chat.sent().is_empty());
        Ok(())
    });
}

#[test]
fn a_refused_token_stops_delivery_and_keeps_every_message() {
    run_test(|w| async move {
        let mut sender = deliver::Sender::default();
        intake(
            &w,
            &alertmanager(&[("firing", "DiskFull", "db", "95% used", "d1")]),
        )
        .await?;
        w.advance(WAIT);
        w.chat.fail_next(Failure::Before(ChatError::Unauthorized));
        deliver(&w, &mut sender).await?;
        assert!(w
            .app
            .chat_unauthorized
            .load(std::sync::atomic::Ordering::Relaxed));
        w.advance(Duration::from_secs(120));
        deliver(&w, &mut sender).await?;
        assert!(w.chat.sent().is_empty());
        assert_eq!(pending(&w).await?, 1, "nothing is lost");
        Ok(())
    });
}

#[test]
fn untrusted_labels_show_literally() {
    run_test(|w| async move {
        let mut sender = deliver::Sender::default();
        intake(
            &w,
            &alertmanager(&[(
                "firing",
                "X",
                "api",
                "@everyone ```rm -rf``` [x](http://evil)",
                "u1",
            )]),
        )
        .await?;
        w.advance(WAIT);
        deliver(&w, &mut sender).await?;
        let m = &w.chat.sent()[0].1;
        let text = &m.embeds[0].description;
        assert!(!text.contains("@everyone"), "{text}");
        assert!(!text.contains("```"), "{text}");
        assert!(!text.contains("](http"), "{text}");
        assert!(m.ping_roles.is_empty());
        Ok(())
    });
}
