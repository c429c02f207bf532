//! The escalation runtime's step logic in milliseconds, with the recorded chat and
//! the controllable clock: the runbooks' tiers on a P1 incident (an ack at 7 min
//! stops the rest), a closed DM and an empty schedule falling through at once, and
//! a webhook target receiving its body on a local listener.

use std::time::Duration;

use klaxon_core::actor::Actor;
use klaxon_core::incidents::{self, OpenRequest};
use klaxon_core::oncall::escalate::{self, next_step, read_dm_key, send_key};
use klaxon_core::settings::incidents::IncidentsConfig;
use klaxon_core::settings::oncall::{
    OnCall, OncallConfig, PolicyConfig, ScheduleConfig, StepConfig, WebhookConfig,
};
use klaxon_core::settings::oncall::{Policy, Step, Target};
use klaxon_core::severity::Severity;
use klaxon_core::store::escalations as db;
use klaxon_core::testing::{run_test_with, World, INCIDENTS_CHANNEL};

const ANN: u64 = 7001;
const BOB: u64 = 7002;
const ROLE: u64 = 4242;

fn schedule(name: &str, member: u64, start: &str) -> ScheduleConfig {
    ScheduleConfig {
        name: name.into(),
        timezone: "UTC".into(),
        members: vec![member],
        shift: "1w".into(),
        start: start.into(),
        sync_role: None,
        announce: None,
    }
}

fn step(after: &str, notify: &str) -> StepConfig {
    StepConfig {
        after: after.into(),
        notify: notify.into(),
    }
}

/// The runbooks' tiers: primary at 0 and 5 min, secondary at 15, the role at 30.
fn oncall(extra: impl FnOnce(&mut OncallConfig)) -> OnCall {
    let mut c = OncallConfig::default();
    c.schedules
        .push(schedule("primary", ANN, "2026-01-05T09:00"));
    c.schedules
        .push(schedule("secondary", BOB, "2026-01-05T09:00"));
    c.policies.push(PolicyConfig {
        name: "tiers".into(),
        steps: vec![
            step("0m", "schedule:primary"),
            step("5m", "schedule:primary"),
            step("15m", "schedule:secondary"),
            step("30m", &format!("role:{ROLE}")),
        ],
        repeat: 0,
    });
    extra(&mut c);
    OnCall::new(&c, &[]).expect("valid")
}

fn p1_escalates(policy: &str) -> IncidentsConfig {
    let mut i = IncidentsConfig::default();
    i.severity.p1.escalation = Some(policy.into());
    i
}

async fn open_p1(
    w: &World,
    title: &str,
) -> anyhow::Result<klaxon_core::store::incidents::Incident> {
    let opened = incidents::open(
        &w.app,
        OpenRequest {
            title: title.into(),
            severity: Severity::P1,
            service: None,
            summary: None,
            guild_id: None,
            by: Actor::member(5001, "op"),
            public: true,
        },
    )
    .await?;
    Ok(opened.incident)
}

/// Fires what is due and delivers the posts; returns the steps fired.
async fn pass(w: &World) -> anyhow::Result<usize> {
    let n = escalate::tick(&w.app).await?;
    w.deliver().await?;
    Ok(n)
}

fn dm_texts(w: &World, dm: u64) -> Vec<String> {
    w.chat.shown_to(dm)
}

#[test]
fn the_runbooks_tiers_page_in_turn_until_an_ack_at_7_minutes() {
    run_test_with(
        |b| b.oncall(oncall(|_| {})).incidents(p1_escalates("tiers")),
        |w| async move {
            let i = open_p1(&w, "Checkout down").await?;
            let ann_dm = w.app.chat.open_dm(ANN).await?;
            let bob_dm = w.app.chat.open_dm(BOB).await?;
            let room = i.channel_id.expect("a room");
            assert_eq!(pass(&w).await?, 1, "step 1 at 0 min");
            let dms = dm_texts(&w, ann_dm);
            assert_eq!(dms.len(), 1, "{dms:?}");
            assert!(
                dms[0].contains("You are paged") && dms[0].contains("Checkout down"),
                "{dms:?}"
            );
            let dm = &w.chat.sent_to(ann_dm)[0];
            assert_eq!(dm.buttons[0].label, "Acknowledge");
            let mention = w.chat.sent_to(room);
            let last = mention.last().expect("a mention");
            assert_eq!(last.ping_users, vec![ANN], "pings exactly the primary");
            assert!(
                klaxon_core::store::escalations::incident_first_page(&w.app.store, i.id.0)
                    .await?
                    .is_some()
            );

            w.advance(Duration::from_secs(4 * 60));
            assert_eq!(pass(&w).await?, 0, "nothing before 5 min");
            w.advance(Duration::from_secs(60));
            assert_eq!(pass(&w).await?, 1, "step 2 at 5 min");
            assert_eq!(dm_texts(&w, ann_dm).len(), 2);
            assert!(dm_texts(&w, bob_dm).is_empty());

            // An ack at 7 min stops the rest: nothing at 15 or 30 min.
            w.advance(Duration::from_secs(2 * 60));
            incidents::ack(&w.app, i.id, &Actor::member(ANN, "ann")).await?;
            let rows = db::of_subject(&w.app.store, "incident", i.id.0).await?;
            assert_eq!(rows[0].state, "acked");
            for _ in 0..3 {
                w.advance(Duration::from_secs(12 * 60));
                assert_eq!(pass(&w).await?, 0);
            }
            assert!(dm_texts(&w, bob_dm).is_empty());
            let timeline = klaxon_core::store::incidents::timeline(&w.app.store, i.id).await?;
            let pages = timeline
                .iter()
                .filter(|e| e.text.starts_with("Paged <@"))
                .count();
            assert_eq!(pages, 2, "{timeline:?}");
            assert!(timeline
                .iter()
                .any(|e| e.text.contains("Escalation `tiers` ended (acked")));
            Ok(())
        },
    );
}

#[test]
fn without_an_ack_the_secondary_then_the_role_are_paged() {
    run_test_with(
        |b| b.oncall(oncall(|_| {})).incidents(p1_escalates("tiers")),
        |w| async move {
            let i = open_p1(&w, "Checkout down").await?;
            let room = i.channel_id.expect("a room");
            let bob_dm = w.app.chat.open_dm(BOB).await?;
            for minutes in [0, 5, 10, 15] {
                w.advance(Duration::from_secs(minutes * 60));
                assert_eq!(pass(&w).await?, 1, "a step after {minutes} more minutes");
            }
            assert_eq!(dm_texts(&w, bob_dm).len(), 1, "the secondary at 15 min");
            let role_page = w.chat.sent_to(room).into_iter().last().expect("posted");
            assert_eq!(role_page.page, Some(ROLE), "the whole role at 30 min");
            let rows = db::of_subject(&w.app.store, "incident", i.id.0).await?;
            assert_eq!(rows[0].state, "done");
            Ok(())
        },
    );
}

#[test]
fn a_closed_dm_falls_through_to_the_next_step_at_once() {
    run_test_with(
        |b| b.oncall(oncall(|_| {})).incidents(p1_escalates("tiers")),
        |w| async move {
            w.chat.close_dms(ANN);
            let i = open_p1(&w, "Checkout down").await?;
            let room = i.channel_id.expect("a room");
            assert_eq!(pass(&w).await?, 1);
            // The mention went out; the DM was refused, so step 2 is due now.
            assert_eq!(
                w.chat.sent_to(room).last().map(|m| m.ping_users.clone()),
                Some(vec![ANN])
            );
            assert_eq!(pass(&w).await?, 1, "step 2 without waiting 5 min");
            let timeline = klaxon_core::store::incidents::timeline(&w.app.store, i.id).await?;
            assert!(
                timeline
                    .iter()
                    .any(|e| e.text.starts_with("DM refused by Discord")),
                "{timeline:?}"
            );
            let audit = w.app.store.recent_audit(50).await?;
            assert!(
                audit.iter().any(|a| a.detail.starts_with("DM refused")),
                "{audit:?}"
            );
            Ok(())
        },
    );
}

#[test]
fn an_empty_schedule_falls_through_and_says_so() {
    let on_call = oncall(|c| {
        // A rotation that starts next year: nobody is on call yet.
        c.schedules.push(schedule("later", ANN, "2099-01-01T09:00"));
        c.policies.push(PolicyConfig {
            name: "thin".into(),
            steps: vec![step("0m", "schedule:later"), step("10m", "user:7002")],
            repeat: 0,
        });
    });
    run_test_with(
        |b| b.oncall(on_call).incidents(p1_escalates("thin")),
        |w| async move {
            let i = open_p1(&w, "Checkout down").await?;
            let room = i.channel_id.expect("a room");
            let bob_dm = w.app.chat.open_dm(BOB).await?;
            assert_eq!(escalate::tick(&w.app).await?, 2, "both steps in one pass");
            w.deliver().await?;
            let said = w.chat.shown_to(room);
            assert!(
                said.iter().any(|t| t.contains(
                    "schedule `later` has nobody on call; escalating to the next step now"
                )),
                "{said:?}"
            );
            assert_eq!(dm_texts(&w, bob_dm).len(), 1);
            Ok(())
        },
    );
}

/// A page by hand goes the same way: DM with the button, mention in the channel.
#[test]
fn a_page_by_hand_reaches_the_schedule_and_stops_on_ack() {
    run_test_with(
        |b| b.oncall(oncall(|_| {})),
        |w| async move {
            let by = Actor::member(5001, "op");
            let id = klaxon_core::oncall::page::page(
                &w.app,
                "primary",
                "Disk almost full",
                &by,
                INCIDENTS_CHANNEL,
            )
            .await?;
            assert_eq!(pass(&w).await?, 1);
            let dm = w.app.chat.open_dm(ANN).await?;
            assert!(dm_texts(&w, dm)[0].contains("Disk almost full (from op)"));
            assert_eq!(
                w.chat
                    .sent_to(INCIDENTS_CHANNEL)
                    .last()
                    .map(|m| m.ping_users.clone()),
                Some(vec![ANN])
            );
            assert!(
                escalate::stop_one(
                    &w.app,
                    id,
                    "acknowledged by ann",
                    &Actor::member(ANN, "ann")
                )
                .await?
            );
            assert!(!escalate::stop_one(&w.app, id, "again", &by).await?);
            let e = klaxon_core::oncall::page::page(
                &w.app,
                "schedule:nope",
                "x",
                &by,
                INCIDENTS_CHANNEL,
            )
            .await;
            assert!(e.is_err());
            Ok(())
        },
    );
}

/// A webhook step stores its send and the worker POSTs the filled body.
#[test]
fn a_webhook_target_receives_its_body() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = listener.local_addr().expect("addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let on_call = oncall(|c| {
        c.webhooks.push(WebhookConfig {
            name: "ntfy".into(),
            url: format!("http://127.0.0.1:{port}/klaxon"),
            body: r#"{"title":"{title}","priority":"{severity}"}"#.into(),
        });
        c.policies.push(PolicyConfig {
            name: "phone".into(),
            steps: vec![step("0m", "webhook:ntfy")],
            repeat: 0,
        });
    });
    run_test_with(
        |b| b.oncall(on_call).incidents(p1_escalates("phone")),
        |w| async move {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let server = tokio::spawn(async move {
                let (mut s, _) = listener.accept().await?;
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = s.read(&mut chunk).await?;
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if body.len() >= len || n == 0 {
                            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                                .await?;
                            return Ok::<String, std::io::Error>(body.to_string());
                        }
                    }
                }
            });
            let _ = open_p1(&w, "Checkout \"down\"").await?;
            assert_eq!(escalate::tick(&w.app).await?, 1);
            let body = tokio::time::timeout(Duration::from_secs(10), server).await???;
            let v: serde_json::Value = serde_json::from_str(&body)?;
            assert_eq!(v["title"], "INC-1 Checkout \"down\"");
            assert_eq!(v["priority"], "P1");
            assert_eq!(db::webhook_count(&w.app.store, "sent").await?, 1);
            Ok(())
        },
    );
}

// The step arithmetic and the send keys.

fn policy(afters: &[u64], repeat: u32) -> Policy {
    Policy {
        name: klaxon_core::settings::oncall::Name::parse("tiers").expect("name"),
        steps: afters
            .iter()
            .map(|a| Step {
                after: Duration::from_secs(*a * 60),
                target: Target::User(1),
            })
            .collect(),
        repeat,
    }
}

#[test]
fn steps_follow_the_policy_then_repeat() {
    let p = policy(&[0, 5, 15, 30], 1);
    let m = 60_000;
    assert_eq!(next_step(&p, 0, 0, 0), Some((0, 1, 5 * m)));
    assert_eq!(next_step(&p, 0, 0, 2), Some((0, 3, 30 * m)));
    // The second round starts a first gap after the last step.
    assert_eq!(next_step(&p, 0, 0, 3), Some((1, 0, 35 * m)));
    assert_eq!(next_step(&p, 0, 1, 1), Some((1, 2, 50 * m)));
    assert_eq!(next_step(&p, 0, 1, 3), None);
    assert_eq!(next_step(&policy(&[0], 0), 0, 0, 0), None);
}

#[test]
fn dm_keys_read_back_and_fit_a_nonce() {
    let k = send_key(123_456_789, 10, 3, "dm");
    assert!(k.len() <= 25, "{k}");
    assert_eq!(read_dm_key(&k), Some((123_456_789, 10, 3)));
    assert_eq!(read_dm_key(&send_key(1, 0, 0, "ch")), None);
}
