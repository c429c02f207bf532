//! Escalations end to end (issue #14), against the fake Discord, on SQLite and
//! PostgreSQL: the runbooks' tiers on a P1 alert driven by the controllable clock
//! (the primary gets a DM and a mention at 0 and 5 min; the DM's Acknowledge at
//! 7 min stops the rest), a closed DM falling through at once, an incident whose
//! severity escalates, and `/oncall page`.

use std::time::Duration;

use klaxon::config::Secret;
use klaxon_core::permissions::Level;
use klaxon_core::routing::RouteConfig;
use klaxon_core::settings::oncall::{PolicyConfig, ScheduleConfig, StepConfig};
use klaxon_tests::fake::{Member, MessageRecord, OutputKind};
use klaxon_tests::tester::TesterBuilder;
use klaxon_tests::tester::{role_of, ALERTS};
use klaxon_tests::{both_databases, Db, Tester};
use serde_json::{json, Value};

const TOKEN: &str = "generic-token";
const ANN: u64 = 7001;
const BOB: u64 = 7002;
const ROLE: u64 = 4242;

fn schedule(name: &str, member: u64) -> ScheduleConfig {
    ScheduleConfig {
        name: name.into(),
        timezone: "Europe/Berlin".into(),
        members: vec![member],
        shift: "1w".into(),
        start: "2026-01-05T09:00".into(),
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

/// The runbooks' tiers, as `klaxon.example.toml` ships them; P1 alerts of the
/// `api` service and P1 incidents start it.
fn world(db: Db) -> TesterBuilder {
    world_with(
        db,
        vec![
            step("0m", "schedule:primary"),
            step("5m", "schedule:primary"),
            step("15m", "schedule:secondary"),
            step("30m", &format!("role:{ROLE}")),
        ],
    )
}

/// [`world`] with other steps for the `tiers` policy.
fn world_with(db: Db, steps: Vec<StepConfig>) -> TesterBuilder {
    Tester::builder()
        .db(db)
        .intake(|i| i.generic_token = Secret::new(TOKEN))
        .incidents(|c| {
            c.on_call_role = Some(ROLE);
            c.severity.p1.escalation = Some("tiers".into());
        })
        .alerts(|a| {
            a.routes.push(RouteConfig {
                matchers: [("service".to_string(), "api".to_string())]
                    .into_iter()
                    .collect(),
                severity: Some(klaxon_core::severity::Severity::P1),
                escalation: Some("tiers".into()),
                ..Default::default()
            })
        })
        .oncall(|o| {
            o.schedules.push(schedule("primary", ANN));
            o.schedules.push(schedule("secondary", BOB));
            o.policies.push(PolicyConfig {
                name: "tiers".into(),
                steps,
                repeat: 0,
            });
        })
}

fn members(t: &Tester) {
    for (id, name) in [(ANN, "ann"), (BOB, "bob")] {
        t.fake.add_member(Member {
            user_id: id,
            username: name.into(),
            roles: vec![role_of(Level::Responder)],
        });
    }
}

fn ann() -> Member {
    Member {
        user_id: ANN,
        username: "ann".into(),
        roles: vec![role_of(Level::Responder)],
    }
}

async fn fire_alert(t: &Tester) {
    let body = json!({ "alerts": [{"name": "CheckoutDown", "status": "firing", "service": "api",
        "severity": "critical", "summary": "5xx over 50 %", "labels": {"instance": "api-1"}}]});
    let r = reqwest::Client::new()
        .post(format!("http://{}/alerts/generic", t.bot().http_addr))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .expect("the intake answers");
    assert_eq!(r.status().as_u16(), 200);
}

/// The next message in `channel` whose text contains `needle`.
async fn message(t: &Tester, channel: u64, needle: &str) -> MessageRecord {
    let needle = needle.to_string();
    t.take(
        &format!("a message with {needle:?} in {channel}"),
        move |o| {
            matches!(o.kind, OutputKind::ChannelMessage { channel_id } if channel_id == channel)
                && o.message.text().contains(&needle)
        },
    )
    .await
    .message
}

fn pinged_users(m: &MessageRecord) -> Vec<u64> {
    m.allowed_mentions
        .as_ref()
        .and_then(|a| a["users"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().and_then(|s| s.parse().ok()).or(v.as_u64()))
        .collect()
}

fn pinged_roles(m: &MessageRecord) -> Vec<u64> {
    m.allowed_mentions
        .as_ref()
        .and_then(|a| a["roles"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().and_then(|s| s.parse().ok()).or(v.as_u64()))
        .collect()
}

/// The primary's DM and the mention that pings exactly them.
async fn paged(t: &Tester, channel: u64, user: u64) -> MessageRecord {
    let dm = t.bot().app.chat.open_dm(user).await.expect("DM channel");
    paged_in(t, dm, channel, user).await
}

/// [`paged`], with the user's DM channel known (no bot to ask after a kill).
async fn paged_in(t: &Tester, dm: u64, channel: u64, user: u64) -> MessageRecord {
    let d = message(t, dm, "You are paged").await;
    assert!(
        d.custom_ids().iter().any(|i| i.starts_with("oncall:ack:")),
        "{:?}",
        d.custom_ids()
    );
    let m = message(t, channel, &format!("<@{user}> paged")).await;
    assert_eq!(pinged_users(&m), vec![user], "{:?}", m.allowed_mentions);
    assert!(pinged_roles(&m).is_empty(), "{:?}", m.allowed_mentions);
    d
}

async fn tiers_on_a_p1_alert(db: Db) {
    let t = world(db).spawn().await;
    members(&t);
    fire_alert(&t).await;
    let group = message(&t, ALERTS, "CheckoutDown").await;
    assert!(
        pinged_roles(&group).is_empty(),
        "the policy's first step replaces the role ping: {:?}",
        group.allowed_mentions
    );
    paged(&t, ALERTS, ANN).await;

    t.advance(Duration::from_secs(5 * 60));
    let dm = paged(&t, ALERTS, ANN).await;

    // At 7 min the primary acknowledges from the DM: the rest never fires.
    t.advance(Duration::from_secs(2 * 60));
    let button = dm
        .custom_ids()
        .into_iter()
        .find(|i| i.starts_with("oncall:ack:"))
        .expect("button");
    let click = t.fake.click(ann(), &dm, &button).await.expect("click");
    let reply = t
        .take("the click's answer", |o| {
            matches!(o.kind, OutputKind::Callback { interaction_id, .. } if interaction_id == click.id)
        })
        .await;
    assert!(
        reply.message.text().contains("You acknowledged the alert"),
        "{}",
        reply.message.text()
    );
    let edited = t.channel_edit(ALERTS).await;
    assert!(
        edited.text().contains("Acknowledged by ann"),
        "{}",
        edited.text()
    );
    for _ in 0..2 {
        t.advance(Duration::from_secs(12 * 60));
        tokio::time::sleep(Duration::from_millis(1_500)).await;
    }
    let audit = t.bot().app.store.recent_audit(100).await.expect("audit");
    let pages = audit
        .iter()
        .filter(|a| a.command == "oncall page" && a.user_id == 0)
        .count();
    assert_eq!(pages, 2, "two pages in the audit log");
    assert!(
        audit
            .iter()
            .any(|a| a.command == "oncall page" && a.user_id == ANN),
        "the click is audited"
    );
    assert!(audit
        .iter()
        .any(|a| a.command == "oncall escalation" && a.detail.contains("acked")));
    t.finish().await;
}

both_databases!(
    tiers_on_a_p1_alert,
    tiers_on_a_p1_alert_on_sqlite,
    tiers_on_a_p1_alert_on_postgres
);

/// `/alerts silence` over a paging group ends its escalation: nothing more comes.
async fn a_silence_stops_the_chain(db: Db) {
    let t = world(db).spawn().await;
    members(&t);
    fire_alert(&t).await;
    message(&t, ALERTS, "CheckoutDown").await;
    paged(&t, ALERTS, ANN).await;

    t.advance(Duration::from_secs(2 * 60));
    let quiet = t
        .slash("alerts silence")
        .opt("matcher", "service=api")
        .opt("duration", "1h")
        .opt("reason", "known, fixing")
        .as_level(Level::Responder)
        .send()
        .await
        .reply()
        .await;
    quiet.assert_contains("🔕 Silence #1: `service=api` until");
    // 5, 15 and 30 minutes pass: no DM, no mention (finish fails on unread output).
    for _ in 0..3 {
        t.advance(Duration::from_secs(12 * 60));
        tokio::time::sleep(Duration::from_millis(1_500)).await;
    }
    let audit = t.bot().app.store.recent_audit(100).await.expect("audit");
    assert!(
        audit
            .iter()
            .any(|a| a.command == "oncall escalation" && a.detail.contains("silenced by")),
        "the end of the chain is audited: {:?}",
        audit
            .iter()
            .map(|a| (&a.command, &a.detail))
            .collect::<Vec<_>>()
    );
    t.finish().await;
}

both_databases!(
    a_silence_stops_the_chain,
    a_silence_stops_the_chain_on_sqlite,
    a_silence_stops_the_chain_on_postgres
);

async fn a_closed_dm_falls_through_at_once(db: Db) {
    let t = world(db).spawn().await;
    members(&t);
    t.fake.close_dms(ANN);
    fire_alert(&t).await;
    message(&t, ALERTS, "CheckoutDown").await;
    // The mentions still go out; each refused DM fires the next step at once, so
    // the secondary is paged without the clock moving 15 minutes.
    for _ in 0..2 {
        let m = message(&t, ALERTS, &format!("<@{ANN}> paged")).await;
        assert_eq!(pinged_users(&m), vec![ANN]);
    }
    paged(&t, ALERTS, BOB).await;
    let audit = t.bot().app.store.recent_audit(100).await.expect("audit");
    assert!(
        audit
            .iter()
            .filter(|a| a.detail.starts_with("DM refused by Discord"))
            .count()
            >= 1,
        "refusals in the audit log"
    );
    t.finish().await;
}

both_databases!(
    a_closed_dm_falls_through_at_once,
    a_closed_dm_falls_through_at_once_on_sqlite,
    a_closed_dm_falls_through_at_once_on_postgres
);

/// An incident raised to a severity with `escalation`: paged (in its room),
/// `/incident ack` stops it, MTTA's start is kept with the incident.
async fn incident_severity_escalates(db: Db) {
    use klaxon_tests::tester::INCIDENTS;
    let t = world(db).spawn().await;
    members(&t);
    // Opened as P2 (no policy): the role is paged as before.
    let opened = t
        .slash("incident open")
        .opt("title", "Checkout down")
        .opt("severity", 1)
        .as_member(ann())
        .send()
        .await
        .reply()
        .await;
    opened.assert_contains("INC-1");
    let notice = message(&t, INCIDENTS, "Checkout down").await;
    assert_eq!(
        pinged_roles(&notice),
        vec![ROLE],
        "{:?}",
        notice.allowed_mentions
    );
    // Raised to P1, whose severity has `escalation`: the policy starts.
    t.slash("incident severity")
        .opt("id", "INC-1")
        .opt("severity", 0)
        .as_member(ann())
        .send()
        .await
        .reply()
        .await;
    let incident = klaxon_core::store::incidents::get(
        &t.bot().app.store,
        klaxon_core::incidents::IncidentId(1),
    )
    .await
    .expect("read")
    .expect("stored");
    let room = incident.channel_id.expect("a room");
    message(&t, room, "INC-1").await; // the card
    paged(&t, room, ANN).await;
    t.slash("incident ack")
        .opt("id", "INC-1")
        .as_member(ann())
        .send()
        .await
        .reply()
        .await;
    t.advance(Duration::from_secs(6 * 60));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let first_page = klaxon_core::store::escalations::incident_first_page(&t.bot().app.store, 1)
        .await
        .expect("read");
    assert!(first_page.is_some(), "MTTA counts from the first page");
    let (_, timeline) =
        klaxon_core::incidents::timeline(&t.bot().app, klaxon_core::incidents::IncidentId(1))
            .await
            .expect("timeline");
    assert!(
        timeline
            .iter()
            .any(|e| e.text.starts_with(&format!("Paged <@{ANN}>"))),
        "{timeline:?}"
    );
    assert!(
        timeline.iter().any(|e| e.text.contains("ended (acked")),
        "{timeline:?}"
    );
    t.discard_unread().await; // the card's edit and the ack's notices
    t.finish().await;
}

both_databases!(
    incident_severity_escalates,
    incident_severity_escalates_on_sqlite,
    incident_severity_escalates_on_postgres
);

/// `/oncall page`: a responder pages the primary by hand; the DM and a mention in
/// the channel where they asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oncall_page_by_hand() {
    let t = world(Db::Sqlite).spawn().await;
    members(&t);
    let r = t
        .slash("oncall page")
        .opt("target", "primary")
        .opt("message", "Disk almost full on db-1")
        .as_level(Level::Responder)
        .send()
        .await
        .reply()
        .await;
    assert!(r.ephemeral());
    r.assert_contains("📟 Page #1 sent to `primary`");
    let dm = t.bot().app.chat.open_dm(ANN).await.expect("DM");
    let d = message(&t, dm, "Disk almost full on db-1").await;
    assert!(d.custom_ids().contains(&"oncall:ack:1".to_string()));
    let v: Value = d.raw.clone();
    assert!(v.is_object());
    let viewer = t
        .slash("oncall page")
        .opt("target", "primary")
        .opt("message", "x")
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    assert!(viewer.ephemeral());
    viewer.assert_contains("responder");
    t.discard_unread().await; // the mention in the invoking channel
    t.finish().await;
}

/// Fail-over mid-chain on PostgreSQL, against the real clock (steps in seconds):
/// the leader pages the primary and dies; the follower takes the lease and fires
/// the next steps within the lease's TTL + 5 s of their due time, and nothing is
/// sent twice (every DM and mention once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_continues_the_chain_and_sends_nothing_twice() {
    use std::time::Instant;
    let mut t = world_with(
        Db::Postgres,
        vec![
            step("0s", "schedule:primary"),
            step("8s", "schedule:primary"),
            step("16s", "schedule:secondary"),
        ],
    )
    .spawn()
    .await;
    members(&t);
    let follower = klaxon::start(t.config.clone())
        .await
        .expect("a second replica starts as a follower");
    assert!(t.bot().is_leader() && !follower.is_leader());
    let ann_dm = t.bot().app.chat.open_dm(ANN).await.expect("DM");
    let bob_dm = t.bot().app.chat.open_dm(BOB).await.expect("DM");
    let started = Instant::now();
    fire_alert(&t).await;
    message(&t, ALERTS, "CheckoutDown").await;
    paged(&t, ALERTS, ANN).await;

    t.bot.take().expect("leader").kill().await;
    let killed = Instant::now();
    let ttl = Duration::from_millis(klaxon_core::store::lease::TTL_MS as u64);
    paged_in(&t, ann_dm, ALERTS, ANN).await;
    let second = started.elapsed();
    paged_in(&t, bob_dm, ALERTS, BOB).await;
    let third = started.elapsed();
    assert!(follower.is_leader(), "the follower took over");
    // Due at 8 s and 16 s; the new leader may start at most TTL + 5 s after the kill.
    let limit =
        |due: u64| Duration::from_secs(due).max(killed - started + ttl) + Duration::from_secs(5);
    assert!(second <= limit(8), "step 2 at {second:?}");
    assert!(third <= limit(16), "step 3 at {third:?}");
    eprintln!("fail-over: step 2 at {second:?} (due 8 s), step 3 at {third:?} (due 16 s)");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let count = |channel: u64, needle: &str| {
        t.fake
            .messages(channel)
            .iter()
            .filter(|m| m.text().contains(needle))
            .count()
    };
    assert_eq!(count(ann_dm, "You are paged"), 2, "each step's DM once");
    assert_eq!(count(bob_dm, "You are paged"), 1);
    assert_eq!(
        count(ALERTS, &format!("<@{ANN}> paged")),
        2,
        "each mention once"
    );
    assert_eq!(count(ALERTS, &format!("<@{BOB}> paged")), 1);
    t.bot = Some(follower);
    t.finish().await;
}
