//! Incident rules in the fast world: opening, acknowledging, the timeline, status
//! updates, resolving, reminders by the clock and the post-mortem, asserted on what
//! chat shows and what the timeline keeps. No dockerd, no Discord: milliseconds each.

use std::time::Duration;

use klaxon_core::actor::Actor;
use klaxon_core::chat::{self, ChatError, ChatMessage, Span};
use klaxon_core::events::{AlertChange, Event, Handling};
use klaxon_core::incidents::{
    self, postmortem, EntryKind, IncidentError, IncidentsConfig, OpenRequest, Resolution, Severity,
    Status,
};
use klaxon_core::settings::services::ServiceConfig;
use klaxon_core::testing::{run_test, run_test_with, Failure, World, INCIDENTS_CHANNEL};
use klaxon_core::AppBuilder;

const ON_CALL: u64 = 777;

/// A message's content as Discord shows it.
fn shown(m: &ChatMessage) -> String {
    chat::discord::content(m)
}

fn alice() -> Actor {
    Actor::member(11, "alice")
}

fn bob() -> Actor {
    Actor::member(12, "bob")
}

fn service(name: &str) -> ServiceConfig {
    serde_json::from_value(serde_json::json!({ "name": name })).expect("a service")
}

/// On-call paging on, one service `api`.
fn paging(b: AppBuilder) -> AppBuilder {
    b.incidents(IncidentsConfig {
        on_call_role: Some(ON_CALL),
        ..Default::default()
    })
    .services(vec![service("api")])
}

async fn open(w: &World, title: &str, severity: Severity) -> anyhow::Result<incidents::Incident> {
    let opened = incidents::open(
        &w.app,
        OpenRequest {
            title: title.into(),
            severity,
            service: Some("api".into()),
            summary: None,
            guild_id: Some(1),
            by: alice(),
            public: true,
        },
    )
    .await?;
    assert!(opened.warnings.is_empty(), "{:?}", opened.warnings);
    // The card and the notice go through the posts outbox: the worker delivers them
    // (and records the card's id on the incident).
    w.deliver().await?;
    Ok(incidents::get(&w.app, opened.incident.id).await?)
}

async fn kinds(w: &World, i: &incidents::Incident) -> anyhow::Result<Vec<EntryKind>> {
    let (_, timeline) = incidents::timeline(&w.app, i.id).await?;
    Ok(timeline.into_iter().map(|e| e.kind).collect())
}

#[test]
fn opening_starts_a_thread_with_the_card_and_pages_on_call_for_a_p1() {
    run_test_with(paging, |w| async move {
        let i = open(&w, "Checkout down", Severity::P1).await?;
        assert_eq!(i.id.to_string(), "INC-1");
        let threads = w.chat.threads();
        assert_eq!(threads.len(), 1);
        let (parent, thread, name) = &threads[0];
        assert_eq!(
            (*parent, name.as_str()),
            (INCIDENTS_CHANNEL, "INC-1 Checkout down")
        );
        assert_eq!(i.channel_id, Some(*thread));

        let card = w.chat.sent_to(*thread);
        assert_eq!(card.len(), 1, "one card in the thread");
        assert!(!card[0].buttons.is_empty(), "the card has its buttons");
        assert!(i.card_message_id.is_some());

        let notices = w.chat.sent_to(INCIDENTS_CHANNEL);
        assert_eq!(notices.len(), 1);
        let n = &notices[0];
        assert!(
            shown(n).starts_with(&format!(
                "<@&{ON_CALL}> **[P1 INCIDENT] Checkout down** (INC-1)"
            )),
            "{}",
            shown(n)
        );
        assert_eq!(n.page, Some(ON_CALL));
        assert!(!n.silent);
        assert_eq!(kinds(&w, &i).await?, vec![EntryKind::Opened]);
        Ok(())
    });
}

#[test]
fn a_p3_informs_silently_without_paging() {
    run_test_with(paging, |w| async move {
        open(&w, "Search slow", Severity::P3).await?;
        let n = &w.chat.sent_to(INCIDENTS_CHANNEL)[0];
        assert!(
            shown(n).starts_with("**[P3 INCIDENT] Search slow**"),
            "{}",
            shown(n)
        );
        assert!(n.page.is_none());
        assert!(n.silent);
        Ok(())
    });
}

#[test]
fn without_an_incidents_channel_nothing_opens() {
    run_test_with(
        |b| b.incidents_channel(None),
        |w| async move {
            let err = incidents::open(
                &w.app,
                OpenRequest {
                    title: "x".into(),
                    severity: Severity::P2,
                    service: None,
                    summary: None,
                    guild_id: Some(1),
                    by: alice(),
                    public: true,
                },
            )
            .await
            .expect_err("refused");
            assert!(matches!(err, IncidentError::NoChannel), "{err}");
            assert!(w.chat.records().is_empty());
            assert!(incidents::list_open(&w.app).await?.is_empty());
            Ok(())
        },
    );
}

#[test]
fn an_unknown_service_is_refused_with_the_known_ones() {
    run_test_with(paging, |w| async move {
        let err = incidents::open(
            &w.app,
            OpenRequest {
                title: "x".into(),
                severity: Severity::P2,
                service: Some("nope".into()),
                summary: None,
                guild_id: Some(1),
                by: alice(),
                public: true,
            },
        )
        .await
        .expect_err("refused");
        assert_eq!(
            err.to_string(),
            "No service named `nope`. Known services: api."
        );
        Ok(())
    });
}

#[test]
fn the_first_acknowledgement_wins_and_stops_the_pages() {
    run_test_with(paging, |w| async move {
        let i = open(&w, "Checkout down", Severity::P1).await?;
        w.advance(Duration::from_secs(125));
        let acked = incidents::ack(&w.app, i.id, &bob()).await?;
        assert_eq!(acked.acked_by.as_deref(), Some("bob"));
        assert_eq!(acked.next_page_ms, None);
        w.deliver().await?;
        let err = incidents::ack(&w.app, i.id, &alice())
            .await
            .expect_err("second");
        assert_eq!(err.to_string(), "INC-1 was already acknowledged by bob.");

        let (_, timeline) = incidents::timeline(&w.app, i.id).await?;
        let ack = timeline
            .iter()
            .find(|e| e.kind == EntryKind::Ack)
            .expect("ack entry");
        assert_eq!(ack.text, "Acknowledged by bob after 2m 5s");
        // The card was edited in place to show it.
        assert!(!w.chat.edits().is_empty());

        w.advance(Duration::from_secs(3_600));
        w.chat.clear();
        // P1 still owes status updates, but no re-page once acknowledged.
        incidents::remind(&w.app).await?;
        w.deliver().await?;
        assert!(w.chat.sent_to(INCIDENTS_CHANNEL).is_empty());
        Ok(())
    });
}

#[test]
fn a_status_update_reaches_the_thread_the_stakeholders_and_the_timeline() {
    run_test_with(paging, |w| async move {
        let i = open(&w, "Checkout down", Severity::P2).await?;
        let thread = i.channel_id.expect("thread");
        w.chat.clear();
        let after = incidents::set_status(
            &w.app,
            i.id,
            Status::Identified,
            "Bad deploy of api",
            &bob(),
            555,
        )
        .await?;
        assert_eq!(after.status, Status::Identified);
        w.deliver().await?;
        let in_thread = w.chat.sent_to(thread);
        assert_eq!(
            in_thread.len(),
            1,
            "posted from elsewhere: the thread hears it"
        );
        assert!(shown(&in_thread[0]).contains("Bad deploy of api"));
        let notice = &w.chat.sent_to(INCIDENTS_CHANNEL)[0];
        assert!(
            shown(notice).starts_with("**[P2 UPDATE] Checkout down**"),
            "{}",
            shown(notice)
        );
        assert!(shown(notice).contains("Update: Bad deploy of api"));
        assert!(notice.page.is_none(), "updates do not page");
        let (_, timeline) = incidents::timeline(&w.app, i.id).await?;
        let last = timeline.last().expect("entries");
        assert_eq!(last.kind, EntryKind::Status);
        assert_eq!(last.text, "Status Identified: Bad deploy of api");
        assert_eq!(last.actor_name, "bob");
        Ok(())
    });
}

#[test]
fn an_update_posted_in_the_thread_is_not_repeated_there() {
    run_test_with(paging, |w| async move {
        let i = open(&w, "Checkout down", Severity::P2).await?;
        let thread = i.channel_id.expect("thread");
        w.chat.clear();
        incidents::set_status(&w.app, i.id, Status::Monitoring, "Fix out", &bob(), thread).await?;
        w.deliver().await?;
        assert!(w.chat.sent_to(thread).is_empty());
        assert_eq!(w.chat.sent_to(INCIDENTS_CHANNEL).len(), 1);
        Ok(())
    });
}

#[test]
fn notes_and_actions_land_on_the_timeline_quietly() {
    run_test_with(paging, |w| async move {
        let i = open(&w, "Checkout down", Severity::P2).await?;
        w.chat.clear();
        incidents::note(&w.app, i.id, "Rolled back api to 1.4", &bob()).await?;
        let n = incidents::add_action(&w.app, i.id, "Add a canary stage", &bob()).await?;
        assert_eq!(n, 1);
        let (number, text) = incidents::finish_action(&w.app, i.id, "canary", &alice()).await?;
        assert_eq!((number, text.as_str()), (1, "Add a canary stage"));
        let err = incidents::finish_action(&w.app, i.id, "#1", &alice())
            .await
            .expect_err("already done");
        assert_eq!(err.to_string(), "INC-1 has no open action #1.");
        w.deliver().await?;
        assert!(w.chat.sent().is_empty(), "a note posts nothing");
        let (_, timeline) = incidents::timeline(&w.app, i.id).await?;
        assert!(timeline
            .iter()
            .any(|e| e.kind == EntryKind::Note && e.text == "Rolled back api to 1.4"));
        let err = incidents::note(&w.app, i.id, "   ", &bob())
            .await
            .expect_err("empty");
        assert!(err.is_user_facing());
        Ok(())
    });
}

#[test]
fn resolving_tells_the_stakeholders_and_closes_the_incident() {
    run_test_with(paging, |w| async move {
        let i = open(&w, "Checkout down", Severity::P1).await?;
        w.advance(Duration::from_secs(72 * 60));
        w.chat.clear();
        let r = incidents::resolve(
            &w.app,
            i.id,
            Resolution {
                summary: "Rolled back".into(),
                root_cause: "A bad migration".into(),
                ..Default::default()
            },
            &bob(),
        )
        .await?;
        assert_eq!(r.status, Status::Resolved);
        assert_eq!(r.root_cause, "A bad migration");
        w.deliver().await?;
        let notice = &w.chat.sent_to(INCIDENTS_CHANNEL)[0];
        assert!(
            shown(notice).starts_with("**[RESOLVED] Checkout down**"),
            "{}",
            shown(notice)
        );
        assert!(shown(notice).contains("Duration: 1h 12m"));
        assert!(shown(notice).contains("Root cause: A bad migration"));
        assert!(notice.page.is_none(), "a resolution pages nobody");
        let (_, timeline) = incidents::timeline(&w.app, i.id).await?;
        assert_eq!(
            timeline.last().map(|e| e.text.as_str()),
            Some("Resolved after 1h 12m: Rolled back")
        );
        assert!(incidents::list_open(&w.app).await?.is_empty());
        let err = incidents::note(&w.app, i.id, "late", &bob())
            .await
            .expect_err("closed");
        assert!(matches!(err, IncidentError::Resolved(_)), "{err}");
        let err = incidents::ack(&w.app, i.id, &bob())
            .await
            .expect_err("closed");
        assert!(matches!(err, IncidentError::Resolved(_)), "{err}");
        Ok(())
    });
}

#[test]
fn an_unacknowledged_p1_is_paged_again_at_its_target() {
    run_test_with(paging, |w| async move {
        let i = open(&w, "Checkout down", Severity::P1).await?;
        w.chat.clear();
        w.advance(Duration::from_secs(14 * 60));
        assert_eq!(incidents::remind(&w.app).await?, 0, "not yet");
        w.advance(Duration::from_secs(61));
        assert_eq!(incidents::remind(&w.app).await?, 1);
        w.deliver().await?;
        let page = &w.chat.sent_to(INCIDENTS_CHANNEL)[0];
        assert!(
            shown(page).starts_with(&format!(
                "<@&{ON_CALL}> 🔔 **INC-1 (P1) is not acknowledged** after 15m 1s"
            )),
            "{}",
            shown(page)
        );
        assert_eq!(page.page, Some(ON_CALL));
        assert_eq!(incidents::remind(&w.app).await?, 0, "claimed: not twice");
        let (_, timeline) = incidents::timeline(&w.app, i.id).await?;
        let last = timeline.last().expect("entry");
        assert_eq!(last.kind, EntryKind::Reminder);
        assert_eq!(
            last.text,
            "Not acknowledged after 15m 1s: on-call paged again"
        );
        Ok(())
    });
}

#[test]
fn a_commander_who_owes_an_update_is_reminded_in_the_thread() {
    run_test_with(paging, |w| async move {
        let i = open(&w, "Checkout down", Severity::P1).await?;
        incidents::ack(&w.app, i.id, &alice()).await?;
        w.chat.clear();
        w.advance(Duration::from_secs(31 * 60));
        assert_eq!(incidents::remind(&w.app).await?, 1);
        w.deliver().await?;
        let thread = i.channel_id.expect("thread");
        let nudge = &w.chat.sent_to(thread)[0];
        assert!(
            shown(nudge).starts_with("⏰ <@11> INC-1 has had no status update for 31m 0s."),
            "{}",
            shown(nudge)
        );
        assert_eq!(
            nudge.content.spans()[1],
            Span::User(11),
            "names the commander"
        );
        assert_eq!(nudge.ping_users, vec![11]);
        Ok(())
    });
}

/// Issue #18: a reminder Discord does not take at once is kept and delivered when it
/// answers again, exactly once, and the timeline has it from the start.
#[test]
fn a_reminder_discord_refuses_for_a_while_arrives_once_later() {
    run_test_with(paging, |w| async move {
        let i = open(&w, "Checkout down", Severity::P1).await?;
        w.advance(Duration::from_secs(15 * 60 + 1));
        w.chat.clear();
        for _ in 0..3 {
            w.chat
                .fail_next(Failure::Before(ChatError::Unavailable("503".into())));
        }
        assert_eq!(incidents::remind(&w.app).await?, 1, "claimed and stored");
        assert!(kinds(&w, &i).await?.contains(&EntryKind::Reminder));
        for _ in 0..3 {
            assert_eq!(w.deliver().await?.retrying, 1);
            assert!(w.chat.sent().is_empty());
            w.advance(Duration::from_secs(10));
        }
        assert_eq!(
            incidents::remind(&w.app).await?,
            0,
            "not paged twice meanwhile"
        );
        assert_eq!(w.deliver().await?.sent, 1);
        assert_eq!(w.chat.sent_to(INCIDENTS_CHANNEL).len(), 1);
        assert_eq!(w.deliver().await?.sent, 0);
        Ok(())
    });
}

#[test]
fn a_higher_severity_pages_now() {
    run_test_with(paging, |w| async move {
        let i = open(&w, "Search slow", Severity::P3).await?;
        w.chat.clear();
        let raised = incidents::set_severity(&w.app, i.id, Severity::P1, &bob()).await?;
        assert_eq!(raised.severity, Severity::P1);
        w.deliver().await?;
        let page = &w.chat.sent_to(INCIDENTS_CHANNEL)[0];
        assert_eq!(page.page, Some(ON_CALL));
        let (_, timeline) = incidents::timeline(&w.app, i.id).await?;
        assert_eq!(
            timeline.last().map(|e| e.text.as_str()),
            Some("Severity P3 → P1")
        );
        let err = incidents::set_severity(&w.app, i.id, Severity::P1, &bob())
            .await
            .expect_err("same");
        assert_eq!(err.to_string(), "INC-1 is already P1.");
        Ok(())
    });
}

#[test]
fn alerts_for_the_service_join_its_open_incident() {
    run_test_with(paging, |w| async move {
        let i = open(&w, "Checkout down", Severity::P2).await?;
        let body = br#"{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"HighLatency","service":"api"},
            "annotations":{"summary":"p99 over 2s"},"fingerprint":"f1"}]}"#;
        let alerts = klaxon_core::alerts::parse::alertmanager(body)?;
        let refs: Vec<&klaxon_core::alerts::Alert> = alerts.iter().collect();
        incidents::record_alerts(&w.app, &refs).await?;
        let (_, timeline) = incidents::timeline(&w.app, i.id).await?;
        let last = timeline.last().expect("entry");
        assert_eq!(last.kind, EntryKind::Alert);
        assert_eq!(
            last.text,
            "Alert HighLatency firing (alertmanager): p99 over 2s"
        );
        assert_eq!(last.actor_name, "Klaxon");
        Ok(())
    });
}

/// What the extra subscriber of the test below heard: the alert names, each with
/// the number of timeline entries of INC-1 at that moment.
static HEARD: std::sync::Mutex<Vec<(String, usize)>> = std::sync::Mutex::new(Vec::new());

fn listener<'a>(app: &'a klaxon_core::App, event: &'a Event) -> Handling<'a> {
    Box::pin(async move {
        if let Event::AlertsChanged(alerts) = event {
            let id = incidents::IncidentId(1);
            let entries = incidents::timeline(app, id)
                .await
                .map_or(0, |(_, t)| t.len());
            for a in alerts {
                HEARD
                    .lock()
                    .expect("not poisoned")
                    .push((a.name.clone(), entries));
            }
        }
    })
}

#[test]
fn a_published_alert_change_reaches_the_timeline_before_later_subscribers() {
    run_test_with(
        |b| paging(b).subscribe("test listener", listener),
        |w| async move {
            let i = open(&w, "Checkout down", Severity::P2).await?;
            let before = incidents::timeline(&w.app, i.id).await?.1.len();
            let change = AlertChange {
                name: "HighLatency".into(),
                status: "resolved".into(),
                source: "probe".into(),
                service: Some("api".into()),
                summary: "p99 back under 2s".into(),
            };
            w.app.publish(Event::AlertsChanged(vec![change])).await;
            let (_, timeline) = incidents::timeline(&w.app, i.id).await?;
            assert_eq!(timeline.len(), before + 1);
            let last = timeline.last().expect("entry");
            assert_eq!(last.kind, EntryKind::Alert);
            assert_eq!(
                last.text,
                "Alert HighLatency resolved (probe): p99 back under 2s"
            );
            assert_eq!(
                *HEARD.lock().expect("not poisoned"),
                [("HighLatency".to_string(), before + 1)],
                "the test listener runs after the timeline wrote its entry"
            );
            Ok(())
        },
    );
}

#[test]
fn the_post_mortem_is_written_from_the_timeline() {
    run_test_with(paging, |w| async move {
        let i = open(&w, "Checkout down", Severity::P1).await?;
        incidents::ack(&w.app, i.id, &bob()).await?;
        incidents::note(&w.app, i.id, "Rolled back api", &bob()).await?;
        incidents::add_action(&w.app, i.id, "Add a canary stage", &bob()).await?;
        w.advance(Duration::from_secs(600));
        incidents::resolve(
            &w.app,
            i.id,
            Resolution {
                summary: "Checkout failed for 10 minutes".into(),
                ..Default::default()
            },
            &bob(),
        )
        .await?;
        let (_, md) = postmortem::generate(&w.app, i.id).await?;
        assert!(
            md.starts_with("# Post-mortem: INC-1 · Checkout down"),
            "{md}"
        );
        assert!(md.contains("| Owner (commander) | alice |"));
        assert!(md.contains("Checkout failed for 10 minutes"));
        let positions: Vec<usize> = ["· opened ·", "· ack ·", "Rolled back api", "· resolved ·"]
            .iter()
            .map(|s| md.find(s).unwrap_or_else(|| panic!("`{s}` missing:\n{md}")))
            .collect();
        assert!(positions.windows(2).all(|p| p[0] < p[1]), "in order:\n{md}");
        assert!(md.contains("Add a canary stage"));
        let stored = incidents::get(&w.app, i.id).await?;
        assert_eq!(stored.postmortem.as_deref(), Some(md.as_str()));
        Ok(())
    });
}

#[test]
fn an_untrusted_title_shows_literally_and_pings_nobody() {
    run_test(|w| async move {
        let i = incidents::open(
            &w.app,
            OpenRequest {
                title: "@everyone [x](http://evil)".into(),
                severity: Severity::P2,
                service: None,
                summary: None,
                guild_id: Some(1),
                by: alice(),
                public: true,
            },
        )
        .await?
        .incident;
        assert_eq!(i.title, "@everyone [x](http://evil)", "stored as typed");
        w.deliver().await?;
        let n = &w.chat.sent_to(INCIDENTS_CHANNEL)[0];
        assert!(!shown(n).contains("@everyone"), "{}", shown(n));
        assert!(!shown(n).contains("](http"), "{}", shown(n));
        assert!(n.page.is_none() && n.ping_users.is_empty());
        Ok(())
    });
}
