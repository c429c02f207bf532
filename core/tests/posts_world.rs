//! The posts outbox (issue #18) in the fast test world: what Klaxon posts on its own
//! initiative is stored first and delivered by the worker, in order per subject,
//! exactly once, whatever Discord does meanwhile.

use std::time::Duration;

use klaxon_core::actor::Actor;
use klaxon_core::chat::{ChatError, ChatMessage};
use klaxon_core::incidents::{self, OpenRequest, Severity, Status};
use klaxon_core::posts::{self, Kind, Post, To};
use klaxon_core::store::posts as db;
use klaxon_core::testing::{run_test, Failure, Recorded, World, INCIDENTS_CHANNEL};

fn alice() -> Actor {
    Actor::member(11, "alice")
}

fn unavailable() -> Failure {
    Failure::Before(ChatError::Unavailable("503 Service Unavailable".into()))
}

async fn open(w: &World, title: &str) -> anyhow::Result<incidents::lifecycle::Opened> {
    Ok(incidents::open(
        &w.app,
        OpenRequest {
            title: title.into(),
            severity: Severity::P1,
            service: None,
            summary: None,
            guild_id: Some(1),
            by: alice(),
            public: true,
        },
    )
    .await?)
}

/// Discord down as the incident opens: no thread, no card, no notice yet; the
/// incident is open. When Discord answers, the worker creates the thread, posts the
/// card there (and records its id), then the notice: in that order, once each.
#[test]
fn an_incident_opened_while_discord_is_down_gets_its_thread_card_and_notice_later() {
    run_test(|w| async move {
        w.chat.fail_next(unavailable()); // the thread
        let opened = open(&w, "Checkout down").await?;
        assert_eq!(opened.warnings.len(), 1, "{:?}", opened.warnings);
        assert!(opened.warnings[0].contains("thread could not be created yet"));
        let id = opened.incident.id;
        assert!(opened.incident.channel_id.is_none());

        // Still down for two more attempts (the thread, then the card).
        w.chat.fail_next(unavailable());
        assert_eq!(w.deliver().await?.retrying, 1);
        w.advance(Duration::from_secs(2));
        assert_eq!(w.deliver().await?.sent, 2, "card, then notice");
        let i = incidents::get(&w.app, id).await?;
        let thread = i.channel_id.expect("the worker created the thread");
        let records = w.chat.records();
        assert!(
            matches!(&records[0], Recorded::Thread { channel, .. } if *channel == INCIDENTS_CHANNEL)
        );
        let Recorded::Send {
            channel,
            id: card_id,
            ..
        } = &records[1]
        else {
            panic!("{records:?}");
        };
        assert_eq!((*channel, Some(*card_id)), (thread, i.card_message_id));
        assert!(
            matches!(&records[2], Recorded::Send { channel, .. } if *channel == INCIDENTS_CHANNEL)
        );
        assert_eq!(records.len(), 3);

        // A later change edits that card in place.
        incidents::set_status(
            &w.app,
            id,
            Status::Identified,
            "Bad deploy",
            &alice(),
            thread,
        )
        .await?;
        w.deliver().await?;
        assert_eq!(w.chat.edits().len(), 1);
        assert_eq!(w.chat.edits()[0].1, *card_id);
        assert_eq!(w.deliver().await?, Default::default(), "nothing twice");
        Ok(())
    });
}

/// A subject's posts keep their order through an outage: the notice waits behind
/// the card, and of several card edits only the newest goes out.
#[test]
fn posts_of_one_subject_keep_their_order_and_only_the_newest_edit_goes_out() {
    run_test(|w| async move {
        let opened = open(&w, "Search slow").await?;
        assert!(opened.warnings.is_empty());
        let id = opened.incident.id;
        w.chat.fail_next(unavailable()); // the card
        assert_eq!(w.deliver().await?.retrying, 1);
        assert!(w.chat.sent().is_empty(), "the notice waits behind the card");
        incidents::ack(&w.app, id, &alice()).await?;
        incidents::set_severity(&w.app, id, Severity::P2, &alice()).await?;
        w.advance(Duration::from_secs(1));
        let d = w.deliver().await?;
        assert_eq!((d.sent, d.superseded), (3, 1), "{d:?}");
        let sent = w.chat.sent();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[1].0, INCIDENTS_CHANNEL, "card first, then the notice");
        assert_eq!(w.chat.edits().len(), 1, "one edit: the newest card");
        Ok(())
    });
}

/// After Discord's nonce window a create whose answer was lost is looked for in the
/// channel before it is sent again: found, it is not posted twice.
#[test]
fn a_create_older_than_the_nonce_window_is_looked_for_before_it_is_sent_again() {
    run_test(|w| async move {
        let message = ChatMessage::text("🔧 Maintenance #1 (api) starts now.");
        posts::post(
            &w.app,
            Kind::Maintenance,
            INCIDENTS_CHANNEL,
            message.clone(),
            "maintenance 1",
        )
        .await?;
        // Posted, but the answer is lost (a timeout).
        w.chat
            .fail_next(Failure::AfterDelivery(ChatError::Unavailable(
                "timeout".into(),
            )));
        assert_eq!(w.deliver().await?.retrying, 1);
        assert_eq!(w.chat.sent().len(), 1);
        // Klaxon is down longer than the window; Discord forgets the nonce.
        w.advance(w.app.nonce_window + Duration::from_secs(1));
        w.chat.forget_nonces();
        let d = w.deliver().await?;
        assert_eq!((d.found, d.sent), (1, 0), "{d:?}");
        assert_eq!(w.chat.sent().len(), 1, "not posted twice");
        assert_eq!(db::count(&w.app.store, "sent").await?, 1);

        // A post that was never created is sent after the window as usual.
        posts::post_with(
            &w.app,
            Post::new(
                Kind::Ops,
                To::Channel(INCIDENTS_CHANNEL),
                ChatMessage::text("other"),
                "ops",
            ),
        )
        .await?;
        w.chat.fail_next(unavailable());
        assert_eq!(w.deliver().await?.retrying, 1);
        w.advance(w.app.nonce_window + Duration::from_secs(1));
        assert_eq!(w.deliver().await?.sent, 1);
        assert_eq!(w.chat.sent().len(), 2);
        Ok(())
    });
}

/// A keyed post is stored once, however often the step that stores it runs.
#[test]
fn a_keyed_post_is_stored_once() {
    run_test(|w| async move {
        for _ in 0..3 {
            let p = Post::new(
                Kind::Maintenance,
                To::Channel(INCIDENTS_CHANNEL),
                ChatMessage::text("start"),
                "maintenance 2",
            )
            .keyed("m2-start");
            posts::post_with(&w.app, p).await?;
        }
        assert_eq!(w.deliver().await?.sent, 1);
        let sent = w.chat.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].1.nonce.as_deref(), Some("m2-start"));
        Ok(())
    });
}
