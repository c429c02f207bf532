//! `/incident` end to end: fake Discord, the real bot, both databases, and a real
//! dockerd for the rollback the incident's timeline records.

use std::time::Duration;

use klaxon_core::actor::Actor;
use klaxon_core::audit::Outcome;
use klaxon_core::incidents::{self, EntryKind, IncidentId};
use klaxon_core::permissions::Level;
use klaxon_tests::both_databases;
use klaxon_tests::docker::{Containers, Spec};
use klaxon_tests::fake::{FaultRule, Member, MessageRecord, Output, OutputKind};
use klaxon_tests::tester::{role_of, INCIDENTS};
use klaxon_tests::{env, Db, Reply, Tester};

const ON_CALL: u64 = 1005;

/// Discord sends a choice's value: poise numbers its choices in declaration order.
fn choice(name: &str) -> i64 {
    let all = [
        ["P1", "P2", "P3", "P4"],
        ["investigating", "identified", "monitoring", "resolved"],
    ];
    all.iter()
        .find_map(|set| set.iter().position(|n| *n == name))
        .unwrap_or_else(|| panic!("no choice {name}")) as i64
}

fn responder() -> Member {
    Tester::member(Some(Level::Responder))
}

fn second_responder() -> Member {
    Member {
        user_id: 7_002,
        username: "bob".into(),
        roles: vec![role_of(Level::Responder)],
    }
}

async fn builder(db: Db) -> klaxon_tests::tester::TesterBuilder {
    Tester::builder().db(db).incidents(|c| {
        c.on_call_role = Some(ON_CALL);
        c.reminder_tick_secs = 1;
    })
}

/// `/incident open` as a responder; the reply.
async fn open(t: &Tester, title: &str, severity: &str, service: Option<&str>) -> Reply {
    let mut s = t
        .slash("incident open")
        .opt("title", title)
        .opt("severity", choice(severity))
        .opt("summary", "Checkout fails for every customer");
    if let Some(svc) = service {
        s = s.opt("service", svc);
    }
    s.as_member(responder()).send().await.reply().await
}

async fn incident(t: &Tester, n: i64) -> incidents::Incident {
    incidents::get(&t.bot().app, IncidentId(n))
        .await
        .expect("the incident exists")
}

async fn timeline(t: &Tester, n: i64) -> Vec<incidents::Entry> {
    incidents::timeline(&t.bot().app, IncidentId(n))
        .await
        .expect("timeline")
        .1
}

/// Waits until the timeline satisfies `pred` (gateway events are handled in the
/// background), failing with the timeline after 10 s.
async fn timeline_until(
    t: &Tester,
    n: i64,
    what: &str,
    pred: impl Fn(&[incidents::Entry]) -> bool,
) -> Vec<incidents::Entry> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let entries = timeline(t, n).await;
        if pred(&entries) {
            return entries;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}; timeline: {entries:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn button(message: &MessageRecord, verb: &str) -> String {
    let prefix = format!("incident:{verb}:");
    message
        .custom_ids()
        .into_iter()
        .find(|id| id.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {verb} button in {:?}", message.custom_ids()))
}

async fn callback(t: &Tester, id: u64) -> Output {
    t.take(
        "a callback",
        |o| matches!(o.kind, OutputKind::Callback { interaction_id, .. } if interaction_id == id),
    )
    .await
}

async fn edit_original(t: &Tester, id: u64) -> Output {
    t.take(
        "the deferred answer",
        |o| matches!(o.kind, OutputKind::EditOriginal { interaction_id } if interaction_id == id),
    )
    .await
}

fn callback_type(o: &Output) -> u8 {
    match o.kind {
        OutputKind::Callback { callback_type, .. } => callback_type,
        _ => panic!("not a callback: {o:?}"),
    }
}

fn pinged_roles(m: &MessageRecord) -> Vec<String> {
    m.allowed_mentions
        .as_ref()
        .and_then(|a| a.get("roles"))
        .and_then(|r| r.as_array())
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn parse_none(m: &MessageRecord) -> bool {
    m.allowed_mentions
        .as_ref()
        .and_then(|a| a.get("parse"))
        .and_then(|p| p.as_array())
        .is_some_and(|p| p.is_empty())
}

/// The whole life of a P1.
async fn p1_life(db: Db) {
    let mut c = Containers::new().await;
    let name = c.run("inc-api", Spec::new("v2").health("true")).await;
    c.wait_health(&name, "healthy").await;
    let t = builder(db)
        .await
        .docker_host(c.host())
        .service("api", Some(&name), None)
        .rollback(|r| {
            r.stop_timeout_secs = 1;
            r.health_timeout_secs = 20;
        })
        .intake(|i| i.generic_token = klaxon::config::Secret::new("alerts-token"))
        // The alert below goes to the timeline; its channel message is not this test's.
        .alerts(|a| a.group_wait_secs = 3_600)
        .spawn()
        .await;

    // Open: the reply, the card in a new thread, the stakeholder notice with the page.
    let reply = open(&t, "Checkout API down", "P1", Some("api")).await;
    assert!(reply.deferred, "opening posts several messages: it defers");
    reply.assert_contains("Opened **INC-1** (P1)");
    let inc = incident(&t, 1).await;
    let thread = inc.channel_id.expect("a thread");
    reply.assert_contains(&format!("<#{thread}>"));
    assert_eq!(
        inc.commander.name, "responder-member",
        "the opener commands"
    );
    let card = t.channel_message(thread).await;
    let card_text = card.text();
    assert!(
        card_text.contains("INC-1 · Checkout API down"),
        "{card_text}"
    );
    assert!(
        card_text.contains("Not acknowledged yet (target 15 min)"),
        "{card_text}"
    );
    for verb in ["ack", "update", "note", "resolve"] {
        button(&card, verb);
    }
    let notice = t.channel_message(INCIDENTS).await;
    let n = notice.text();
    assert!(
        n.starts_with(&format!(
            "<@&{ON_CALL}> **[P1 INCIDENT] Checkout API down** (INC-1)"
        )),
        "{n}"
    );
    for line in [
        "Status: Investigating",
        "Impact: Checkout fails for every customer",
        "Started: ",
        &format!("Updates: <#{thread}>"),
    ] {
        assert!(n.contains(line), "{line:?} in {n}");
    }
    assert_eq!(
        pinged_roles(&notice),
        [ON_CALL.to_string()],
        "only the on-call role"
    );
    assert!(parse_none(&notice), "nothing else can ping");

    // Acknowledge from the card (a phone): the card loses its Acknowledge button.
    let click = t
        .fake
        .click(second_responder(), &card, &button(&card, "ack"))
        .await
        .expect("click");
    assert_eq!(callback_type(&callback(&t, click.id).await), 5);
    let acked = edit_original(&t, click.id).await;
    assert!(
        acked.message.text().contains("INC-1 acknowledged by bob"),
        "{}",
        acked.message.text()
    );
    let card = t.channel_edit(thread).await;
    assert!(
        card.text().contains("Acknowledged by bob"),
        "{}",
        card.text()
    );
    assert!(!card
        .custom_ids()
        .iter()
        .any(|i| i.starts_with("incident:ack:")));

    // Bob takes communications.
    t.slash("incident assign")
        .opt("role", 1) // commander, comms, scribe
        .opt_user("member", second_responder().user_id)
        .in_channel(thread)
        .as_member(responder())
        .send()
        .await
        .reply()
        .await
        .assert_contains("bob is now comms of INC-1");
    let card = t.channel_edit(thread).await;
    assert!(
        card.text().contains("Comms\nbob") || card.text().contains("bob"),
        "{}",
        card.text()
    );

    // A status update inside the thread: the id is implied; stakeholders get it too.
    let reply = t
        .slash("incident status")
        .opt("status", choice("identified"))
        .opt("message", "Bad release v2; rolling back to v1")
        .in_channel(thread)
        .as_member(responder())
        .send()
        .await
        .reply()
        .await;
    reply.assert_contains("INC-1 is **Identified**");
    t.channel_edit(thread).await;
    let update = t.channel_message(INCIDENTS).await;
    let u = update.text();
    assert!(u.starts_with("**[P1 UPDATE] Checkout API down**"), "{u}");
    assert!(
        u.contains("Update: Bad release v2; rolling back to v1"),
        "{u}"
    );
    assert!(pinged_roles(&update).is_empty(), "updates do not page");

    // An alert for the service joins the timeline.
    let r = reqwest::Client::new()
        .post(format!("http://{}/alerts/generic", t.bot().http_addr))
        .bearer_auth("alerts-token")
        .json(
            &serde_json::json!({"name": "HighErrorRate", "service": "api",
                                  "summary": "5xx at 40%"}),
        )
        .send()
        .await
        .expect("intake");
    assert_eq!(r.status().as_u16(), 200);
    timeline_until(&t, 1, "the linked alert", |e| {
        e.iter().any(|e| {
            e.kind == EntryKind::Alert
                && e.text == "Alert HighErrorRate firing (generic): 5xx at 40%"
        })
    })
    .await;

    // The rollback the team runs lands in the timeline with its outcome.
    let plan = t
        .slash("rollback")
        .opt("service", "api")
        .opt("to", env::image("v1"))
        .in_channel(thread)
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await;
    let confirm = plan
        .message
        .custom_ids()
        .into_iter()
        .find(|i| i.starts_with("rollback:confirm:"))
        .expect("confirm button");
    let click = t
        .fake
        .click(
            Tester::member(Some(Level::Operator)),
            &plan.message,
            &confirm,
        )
        .await
        .expect("click");
    callback(&t, click.id).await;
    loop {
        let edit = edit_original(&t, click.id).await;
        if edit.message.text().contains("Done in") {
            break;
        }
        assert!(
            !edit.message.text().contains("❌"),
            "{}",
            edit.message.text()
        );
    }
    timeline_until(&t, 1, "the rollback's success", |e| {
        e.iter().any(|e| {
            e.kind == EntryKind::Command
                && e.text.starts_with("/rollback service=api")
                && e.text.contains("succeeded")
        })
    })
    .await;

    // A message pinned with 📌 becomes an entry; its edit follows; "Add to timeline"
    // on the same message does not add it twice.
    let graph = "https://cdn.example/graph.png";
    let msg = t
        .user_message(
            thread,
            &responder(),
            "Error rate back to 0.1% after the rollback",
            &[graph],
        )
        .await;
    t.react(thread, msg, &responder(), "📌").await;
    let entries = timeline_until(&t, 1, "the pinned message", |e| {
        e.iter().any(|e| e.kind == EntryKind::Message)
    })
    .await;
    let pinned = entries
        .iter()
        .find(|e| e.kind == EntryKind::Message)
        .expect("entry");
    assert_eq!(pinned.actor_name, "responder-member", "the original author");
    assert_eq!(pinned.attachments, [graph]);
    assert!(
        pinned.permalink.ends_with(&format!("/{thread}/{msg}")),
        "{}",
        pinned.permalink
    );
    t.edit_user_message(thread, msg, "Error rate back to 0.05% after the rollback")
        .await;
    timeline_until(&t, 1, "the edit", |e| {
        e.iter().any(|e| {
            e.text == "Error rate back to 0.05% after the rollback" && e.edited_ms.is_some()
        })
    })
    .await;
    let again = t
        .fake
        .message_command(responder(), "Add to timeline", msg)
        .await
        .expect("message command");
    let r = callback(&t, again.id).await;
    assert!(r.message.ephemeral());
    assert!(
        r.message.text().contains("already in INC-1's timeline"),
        "{}",
        r.message.text()
    );
    // Another message by context menu, then deleted: the entry stays, marked.
    let wrong = t
        .user_message(thread, &second_responder(), "DB failover started", &[])
        .await;
    let add = t
        .fake
        .message_command(second_responder(), "Add to timeline", wrong)
        .await
        .expect("message command");
    let r = callback(&t, add.id).await;
    assert!(
        r.message.text().contains("Added to INC-1's timeline"),
        "{}",
        r.message.text()
    );
    t.delete_user_message(thread, wrong).await;
    timeline_until(&t, 1, "the deletion", |e| {
        e.iter()
            .any(|e| e.text == "DB failover started" && e.deleted)
    })
    .await;
    let entries = timeline(&t, 1).await;
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.kind == EntryKind::Message)
            .count(),
        2,
        "no duplicates"
    );

    // A note and a follow-up action.
    t.slash("incident note")
        .opt("text", "Status page updated for customers")
        .in_channel(thread)
        .as_member(responder())
        .send()
        .await
        .reply()
        .await
        .assert_contains("Noted in INC-1's timeline");
    t.slash("incident action add")
        .opt("text", "Add a canary stage to deploys")
        .in_channel(thread)
        .as_member(responder())
        .send()
        .await
        .reply()
        .await
        .assert_contains("Action #1 of INC-1");

    t.slash("incident action add")
        .opt("text", "Alert when an index is dropped")
        .in_channel(thread)
        .as_member(responder())
        .send()
        .await
        .reply()
        .await
        .assert_contains("Action #2 of INC-1");
    // Done by its words; an ambiguous or unknown one is a private error.
    t.slash("incident action done")
        .opt("text", "index")
        .in_channel(thread)
        .as_member(second_responder())
        .send()
        .await
        .reply()
        .await
        .assert_contains("Action #2 of INC-1 done: Alert when an index is dropped");
    let missing = t
        .slash("incident action done")
        .opt("text", "#7")
        .in_channel(thread)
        .as_member(responder())
        .send()
        .await
        .reply()
        .await;
    assert!(missing.ephemeral());
    missing.assert_contains("INC-1 has no open action #7.");

    // Resolve through the modal.
    let ask = t
        .slash("incident resolve")
        .in_channel(thread)
        .as_member(responder())
        .send()
        .await;
    let modal = callback(&t, ask.interaction.id).await;
    assert_eq!(callback_type(&modal), 9, "resolve asks in a modal");
    let submit = t
        .fake
        .submit_modal(
            responder(),
            thread,
            "incident:m-resolve:1",
            vec![
                (
                    "summary".into(),
                    "Release v2 broke checkout; rolled back.".into(),
                ),
                ("root_cause".into(), "A migration dropped an index".into()),
                ("resolution".into(), "Rolled back to v1".into()),
                (
                    "impact".into(),
                    "All checkouts failed for 20 minutes".into(),
                ),
            ],
        )
        .await
        .expect("modal submit");
    assert_eq!(callback_type(&callback(&t, submit.id).await), 5);
    let done = edit_original(&t, submit.id).await;
    assert!(
        done.message.text().contains("INC-1 resolved after"),
        "{}",
        done.message.text()
    );
    let card = t.channel_edit(thread).await;
    assert!(
        card.custom_ids().is_empty(),
        "a resolved card has no buttons"
    );
    let resolved = t.channel_message(INCIDENTS).await;
    let r = resolved.text();
    assert!(
        r.starts_with("**[RESOLVED] Checkout API down** (INC-1)"),
        "{r}"
    );
    for line in [
        "Duration: ",
        "Impact: All checkouts failed for 20 minutes",
        "Root cause: A migration dropped an index",
        "Resolution: Rolled back to v1",
    ] {
        assert!(r.contains(line), "{line:?} in {r}");
    }
    assert!(pinged_roles(&resolved).is_empty());

    // A resolved incident takes no more status changes.
    let late = t
        .slash("incident status")
        .opt("status", choice("monitoring"))
        .opt("message", "still watching")
        .in_channel(thread)
        .as_member(responder())
        .send()
        .await
        .reply()
        .await;
    assert!(late.ephemeral());
    late.assert_contains("INC-1 is resolved");

    // The post-mortem, section by section.
    let pm = t
        .slash("incident postmortem")
        .in_channel(thread)
        .as_member(responder())
        .send()
        .await
        .reply()
        .await;
    assert_eq!(pm.message.attachments.len(), 1);
    let file = &pm.message.attachments[0];
    assert_eq!(file.filename, "INC-1-postmortem.md");
    let md = String::from_utf8(file.data.to_vec()).expect("UTF-8");
    assert!(
        md.starts_with("# Post-mortem: INC-1 · Checkout API down\n"),
        "{md}"
    );
    for needle in [
        "| Severity | P1 |",
        "| Owner (commander) | responder-member |",
        "| Service | api |",
        "| Duration | ",
        "## Summary\n\nRelease v2 broke checkout; rolled back.",
        "## Root cause\n\nA migration dropped an index",
        "## Impact\n\nAll checkouts failed for 20 minutes",
        "## Resolution\n\nRolled back to v1",
        "- [ ] #1 Add a canary stage to deploys (open; added by responder-member)",
        "- [x] #2 Alert when an index is dropped (done ",
        "## Lessons learned\n\n> _TODO:",
        "opened · responder-member: Opened as P1: Checkout API down (service api)",
        "ack · bob: Acknowledged by bob",
        "status · responder-member: Status Identified: Bad release v2; rolling back to v1",
        "message · responder-member: Error rate back to 0.05% after the rollback (edited)",
        "~~DB failover started~~ (message deleted)",
        "note · responder-member: Status page updated for customers",
        "alert · Klaxon: Alert HighErrorRate firing (generic): 5xx at 40%",
        "role · responder-member: bob is now comms",
        "resolved · responder-member: Resolved after",
    ] {
        assert!(md.contains(needle), "{needle:?} missing in:\n{md}");
    }
    assert!(
        md.contains("command · operator-member: /rollback service=api"),
        "{md}"
    );
    // Timeline lines are in time order.
    let opened = md.find("opened ·").expect("opened");
    let resolved_at = md.find("resolved ·").expect("resolved");
    assert!(opened < resolved_at);
    // Stored, so it can be fetched again.
    assert_eq!(
        incident(&t, 1).await.postmortem.as_deref(),
        Some(md.as_str())
    );

    t.finish().await;
    c.cleanup().await;
}

both_databases!(
    p1_life,
    a_p1_from_open_to_postmortem_on_sqlite,
    a_p1_from_open_to_postmortem_on_postgres
);

both_databases!(reminders, reminders_on_sqlite, reminders_on_postgres);

/// Reminders from the database with a controllable clock: re-page, retry of a page
/// Discord failed, the commander's nudge, and none once things are up to date.
async fn reminders(db: Db) {
    let mut t = builder(db).await.spawn().await;
    open(&t, "Search is slow", "P1", None).await;
    let inc = incident(&t, 1).await;
    let thread = inc.channel_id.expect("thread");
    t.channel_message(thread).await; // the card
    t.channel_message(INCIDENTS).await; // the first page

    // Klaxon restarts: the reminders live in the database, not in the old process.
    let old = t.bot.take().expect("bot");
    old.shutdown().await;
    t.bot = Some(
        klaxon::start(t.config.clone())
            .await
            .expect("Klaxon starts again"),
    );

    // 16 minutes later, still nobody acknowledged: the on-call role is paged again.
    // Discord fails the first try; the page is not lost: the posts worker tries it
    // again after a second's back-off (issue #18: the page is in the timeline from
    // the moment it is stored).
    t.fake.inject(FaultRule::Status {
        path_contains: format!("/channels/{INCIDENTS}/messages"),
        status: 500,
        times: 1,
    });
    t.bot().app.clock.advance(Duration::from_secs(16 * 60));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !t
        .fake
        .requests()
        .iter()
        .any(|r| r.status == 500 && r.path.ends_with(&format!("/channels/{INCIDENTS}/messages")))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the page was never tried"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let page = t.channel_message(INCIDENTS).await;
    let p = page.text();
    assert!(
        p.starts_with(&format!(
            "<@&{ON_CALL}> 🔔 **INC-1 (P1) is not acknowledged**"
        )),
        "{p}"
    );
    assert_eq!(pinged_roles(&page), [ON_CALL.to_string()]);
    timeline_until(&t, 1, "the reminder entry", |e| {
        e.iter()
            .any(|e| e.kind == EntryKind::Reminder && e.text.contains("on-call paged again"))
    })
    .await;

    // Acknowledged: no more pages. 31 minutes after opening, no status update yet:
    // the commander is reminded in the thread, and only the commander is pinged.
    t.slash("incident ack")
        .in_channel(thread)
        .as_member(second_responder())
        .send()
        .await
        .reply()
        .await
        .assert_contains("acknowledged by bob");
    t.channel_edit(thread).await;
    let twice = t
        .slash("incident ack")
        .in_channel(thread)
        .as_member(responder())
        .send()
        .await
        .reply()
        .await;
    assert!(twice.ephemeral(), "a second ack is told privately");
    twice.assert_contains("INC-1 was already acknowledged by bob.");
    t.bot().app.clock.advance(Duration::from_secs(15 * 60));
    let nudge = t.channel_message(thread).await;
    let n = nudge.text();
    assert!(
        n.starts_with(&format!(
            "⏰ <@{}> INC-1 has had no status update",
            inc.commander.user_id
        )),
        "{n}"
    );
    let users = nudge
        .allowed_mentions
        .as_ref()
        .and_then(|a| a.get("users"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        users,
        serde_json::json!([inc.commander.user_id.to_string()])
    );

    // An update resets the clock: five minutes later nothing is due.
    t.slash("incident status")
        .opt("status", choice("monitoring"))
        .opt("message", "Index rebuilt; watching latency")
        .in_channel(thread)
        .as_member(responder())
        .send()
        .await
        .reply()
        .await;
    t.channel_edit(thread).await;
    t.channel_message(INCIDENTS).await;
    t.bot().app.clock.advance(Duration::from_secs(5 * 60));
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let reminders = timeline(&t, 1)
        .await
        .into_iter()
        .filter(|e| e.kind == EntryKind::Reminder)
        .count();
    assert_eq!(reminders, 2, "one page and one nudge");
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_is_denied_and_bad_input_is_a_private_error() {
    let t = builder(Db::Sqlite)
        .await
        .permission("incident resolve", Level::Operator)
        .spawn()
        .await;
    let denied = t
        .slash("incident open")
        .opt("title", "x")
        .opt("severity", choice("P3"))
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    assert!(denied.ephemeral());
    denied.assert_contains("responder");
    // The audit row is written right after the reply.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let audit = t.bot().app.store.recent_audit(10).await.expect("audit");
        if audit
            .iter()
            .any(|a| a.command == "incident open" && a.outcome == Outcome::Denied)
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{audit:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let unknown = t
        .slash("incident note")
        .opt("text", "hello")
        .opt("id", "INC-99")
        .as_member(responder())
        .send()
        .await
        .reply()
        .await;
    assert!(unknown.ephemeral());
    unknown.assert_contains("There is no incident INC-99.");

    let outside = t
        .slash("incident ack")
        .as_member(responder())
        .send()
        .await
        .reply()
        .await;
    assert!(outside.ephemeral());
    outside.assert_contains("name the incident");

    // A P3 opens without a page; a note over what a modal allows is refused privately.
    open(&t, "Avatars load slowly", "P3", None).await;
    let inc = incident(&t, 1).await;
    let thread = inc.channel_id.expect("thread");
    let card = t.channel_message(thread).await;
    let notice = t.channel_message(INCIDENTS).await;
    assert!(
        notice.text().starts_with("**[P3 INCIDENT]"),
        "{}",
        notice.text()
    );
    assert!(pinged_roles(&notice).is_empty(), "P3 pages nobody");
    assert_eq!(notice.flags & 4096, 4096, "P3 notices do not buzz phones");

    // Raised to P1: the card changes and the on-call role is paged now.
    t.slash("incident severity")
        .opt("severity", choice("P1"))
        .in_channel(thread)
        .as_member(responder())
        .send()
        .await
        .reply()
        .await
        .assert_contains("INC-1 is now P1");
    let card_now = t.channel_edit(thread).await;
    assert!(
        card_now.text().contains("P1 · Service down"),
        "{}",
        card_now.text()
    );
    let page = t.channel_message(INCIDENTS).await;
    assert!(
        page.text().starts_with(&format!(
            "<@&{ON_CALL}> **[P1 INCIDENT] Avatars load slowly**"
        )),
        "{}",
        page.text()
    );
    assert_eq!(pinged_roles(&page), [ON_CALL.to_string()]);

    // A status posted from elsewhere (with its id) also lands in the thread.
    t.slash("incident status")
        .opt("status", choice("identified"))
        .opt("message", "CDN cache misconfigured")
        .opt("id", "INC-1")
        .as_member(responder())
        .send()
        .await
        .reply()
        .await
        .assert_contains("INC-1 is **Identified**");
    let in_thread = t.channel_message(thread).await;
    assert_eq!(
        in_thread.text(),
        "📣 **Identified** by responder-member: CDN cache misconfigured"
    );
    t.channel_edit(thread).await;
    let update = t.channel_message(INCIDENTS).await;
    assert!(
        update.text().starts_with("**[P1 UPDATE]"),
        "{}",
        update.text()
    );

    let click = t
        .fake
        .click(responder(), &card, &button(&card, "note"))
        .await
        .expect("click");
    assert_eq!(callback_type(&callback(&t, click.id).await), 9);
    let submit = t
        .fake
        .submit_modal(
            responder(),
            thread,
            "incident:m-note:1",
            vec![("text".into(), "x".repeat(4_001))],
        )
        .await
        .expect("submit");
    let r = callback(&t, submit.id).await;
    assert!(r.message.ephemeral());
    assert!(
        r.message.text().contains("at most 4000 fit"),
        "{}",
        r.message.text()
    );
    assert!(
        !timeline(&t, 1)
            .await
            .iter()
            .any(|e| e.kind == EntryKind::Note),
        "nothing written"
    );
    // Post update from the card: a wrong status is a private error, a good one posts.
    for (status, private) in [("bogus", true), ("monitoring", false)] {
        let click = t
            .fake
            .click(responder(), &card, &button(&card, "update"))
            .await
            .expect("click");
        assert_eq!(callback_type(&callback(&t, click.id).await), 9);
        let submit = t
            .fake
            .submit_modal(
                responder(),
                thread,
                "incident:m-update:1",
                vec![
                    ("status".into(), status.into()),
                    ("message".into(), "Cache purged; watching".into()),
                ],
            )
            .await
            .expect("submit");
        let r = callback(&t, submit.id).await;
        if private {
            assert!(r.message.ephemeral());
            assert!(
                r.message.text().contains("is not a status"),
                "{}",
                r.message.text()
            );
        } else {
            assert_eq!(callback_type(&r), 5);
            let done = edit_original(&t, submit.id).await;
            assert!(
                done.message.text().contains("INC-1 is **Monitoring**"),
                "{}",
                done.message.text()
            );
            t.channel_edit(thread).await;
            let update = t.channel_message(INCIDENTS).await;
            assert!(
                update.text().contains("Update: Cache purged; watching"),
                "{}",
                update.text()
            );
        }
    }
    // Resolving needs the resolve level, by whatever path.
    let resolve = t
        .slash("incident status")
        .opt("status", choice("resolved"))
        .opt("message", "fixed")
        .in_channel(thread)
        .as_member(responder())
        .send()
        .await
        .reply()
        .await;
    assert!(resolve.ephemeral());
    resolve.assert_contains("operator");
    assert!(incident(&t, 1).await.is_open());

    // A viewer can neither pin nor use "Add to timeline".
    let msg = t
        .user_message(
            thread,
            &Tester::member(Some(Level::Viewer)),
            "looks fine to me",
            &[],
        )
        .await;
    t.react(thread, msg, &Tester::member(Some(Level::Viewer)), "📌")
        .await;
    let menu = t
        .fake
        .message_command(Tester::member(Some(Level::Viewer)), "Add to timeline", msg)
        .await
        .expect("message command");
    let r = callback(&t, menu.id).await;
    assert!(r.message.ephemeral());
    assert!(
        r.message.text().contains("responder"),
        "{}",
        r.message.text()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !timeline(&t, 1)
            .await
            .iter()
            .any(|e| e.kind == EntryKind::Message),
        "nothing captured"
    );

    // A viewer's click on the card is refused and audited.
    let click = t
        .fake
        .click(
            Tester::member(Some(Level::Viewer)),
            &card,
            &button(&card, "resolve"),
        )
        .await
        .expect("click");
    let r = callback(&t, click.id).await;
    assert!(r.message.ephemeral());
    assert!(
        r.message
            .text()
            .contains("needs the operator level; you have viewer"),
        "{}",
        r.message.text()
    );
    t.finish().await;
}

/// Many responders at once: every change recorded, in order, numbers never repeat.
async fn concurrent(db: Db) {
    let t = builder(db).await.spawn().await;
    let app = &t.bot().app;
    let opens = (0..8).map(|n| async move {
        klaxon_core::store::incidents::insert(
            &app.store,
            &klaxon_core::store::incidents::NewIncident {
                title: format!("incident {n}"),
                severity: incidents::Severity::P3,
                service: None,
                summary: String::new(),
                guild_id: None,
                commander: Actor::member(1, "a"),
                opened_ms: 0,
                next_page_ms: None,
                next_update_ms: None,
                public: true,
            },
        )
        .await
    });
    let mut ids: Vec<i64> = futures::future::join_all(opens)
        .await
        .into_iter()
        .map(|r| r.expect("insert").id.0)
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 8, "distinct numbers");
    let target = IncidentId(ids[0]);
    let notes = (0..20).map(|n| {
        let who = Actor::member(100 + n, format!("r{n}"));
        async move {
            incidents::note(app, target, &format!("note {n}"), &who).await?;
            incidents::add_action(app, target, &format!("action {n}"), &who).await
        }
    });
    let numbers: Vec<i64> = futures::future::join_all(notes)
        .await
        .into_iter()
        .map(|r| r.expect("change"))
        .collect();
    let mut sorted = numbers.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        (1..=20).collect::<Vec<_>>(),
        "action numbers 1..=20"
    );
    let entries = incidents::timeline(app, target).await.expect("timeline").1;
    assert_eq!(
        entries.iter().filter(|e| e.kind == EntryKind::Note).count(),
        20
    );
    assert!(
        entries
            .windows(2)
            .all(|w| (w[0].at_ms, w[0].id) <= (w[1].at_ms, w[1].id)),
        "in order"
    );
    t.finish().await;
}

both_databases!(
    concurrent,
    concurrent_changes_are_all_recorded_on_sqlite,
    concurrent_changes_are_all_recorded_on_postgres
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dedicated_channel_when_configured() {
    let t = builder(Db::Sqlite)
        .await
        .incidents(|c| c.room = incidents::Room::Channel)
        .spawn()
        .await;
    let reply = open(&t, "Disk full on db1", "P2", None).await;
    let inc = incident(&t, 1).await;
    let room = inc.channel_id.expect("a channel");
    reply.assert_contains(&format!("<#{room}>"));
    let created = t
        .fake
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path.ends_with("/guilds/123/channels"))
        .expect("a channel was created");
    assert_eq!(created.status, 200, "{created:?}");
    let card = t.channel_message(room).await;
    assert!(
        card.text().contains("INC-1 · Disk full on db1"),
        "{}",
        card.text()
    );
    let notice = t.channel_message(INCIDENTS).await;
    assert!(
        notice.text().contains(&format!("Updates: <#{room}>")),
        "{}",
        notice.text()
    );
    // Inside the channel the incident is implied.
    t.slash("incident note")
        .opt("text", "Rotated logs on db1")
        .in_channel(room)
        .as_member(responder())
        .send()
        .await
        .reply()
        .await
        .assert_contains("Noted in INC-1's timeline");
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_timeline_is_attached_whole() {
    let t = builder(Db::Sqlite).await.spawn().await;
    open(&t, "Queue backlog", "P3", None).await;
    let thread = incident(&t, 1).await.channel_id.expect("thread");
    t.channel_message(thread).await;
    t.channel_message(INCIDENTS).await;
    let who = Actor::member(9, "scribe");
    for n in 0..400 {
        let e = incidents::NewEntry::new(
            EntryKind::Note,
            1_796_133_780_000 + n * 1_000,
            &who,
            format!("backlog at {n}k messages"),
        );
        klaxon_core::store::incidents::add_entry(&t.bot().app.store, IncidentId(1), &e)
            .await
            .expect("entry");
    }
    let reply = t
        .slash("incident timeline")
        .in_channel(thread)
        .as_member(responder())
        .send()
        .await
        .reply()
        .await;
    let text = reply.text();
    assert!(
        text.contains("INC-1 timeline · 401 entries (UTC)"),
        "{text}"
    );
    assert!(
        text.contains("backlog at 399k messages"),
        "the newest inline: {text}"
    );
    assert!(text.contains("the whole timeline is attached"), "{text}");
    assert_eq!(reply.message.attachments.len(), 1);
    let file = &reply.message.attachments[0];
    assert_eq!(file.filename, "INC-1-timeline.txt");
    let data = String::from_utf8(file.data.to_vec()).expect("UTF-8");
    assert_eq!(data.lines().count(), 401);
    assert!(data.contains("2026-12-01 14:03 UTC scribe [note] backlog at 0k messages"));
    t.finish().await;
}

/// #12 item 10: "Open incident" on an alert whose summary is longer than an
/// incident's summary takes: the summary is cut to fit, with an ellipsis, and the
/// full text is on the timeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_incident_from_an_alert_with_a_long_summary() {
    use klaxon::config::Secret;
    use klaxon_tests::tester::ALERTS;
    let t = Tester::builder()
        .intake(|i| i.generic_token = Secret::new("generic-token"))
        .alerts(|a| {
            a.group_wait_secs = 0;
            a.group_interval_secs = 1;
        })
        .spawn()
        .await;
    let long = format!("{} END-OF-SUMMARY", "disk filling fast; ".repeat(300));
    let r = reqwest::Client::new()
        .post(format!("http://{}/alerts/generic", t.bot().http_addr))
        .bearer_auth("generic-token")
        .json(&serde_json::json!({"alerts": [
            {"name": "DiskFull", "service": "db", "severity": "critical", "summary": long}
        ]}))
        .send()
        .await
        .expect("intake answers");
    assert_eq!(r.status().as_u16(), 200);
    let m = t.channel_message(ALERTS).await;
    let button = m
        .custom_ids()
        .into_iter()
        .find(|i| i.starts_with("alerts:incident:"))
        .expect("an Open incident button");
    let click = t
        .fake
        .click(Tester::member(Some(Level::Responder)), &m, &button)
        .await
        .expect("click");
    let id = click.id;
    let cb = t
        .take("the click's callback", |o| {
            matches!(o.kind, OutputKind::Callback { interaction_id, .. } if interaction_id == id)
        })
        .await;
    assert!(
        matches!(
            cb.kind,
            OutputKind::Callback {
                callback_type: 5,
                ..
            }
        ),
        "deferred, not refused: {}",
        cb.message.text()
    );
    let done = t
        .take("the answer", |o| {
            matches!(o.kind, OutputKind::EditOriginal { interaction_id } if interaction_id == id)
        })
        .await;
    assert!(
        done.message.text().contains("Opened **INC-1**"),
        "{}",
        done.message.text()
    );
    let inc = incidents::get(&t.bot().app, IncidentId(1)).await.unwrap();
    assert_eq!(
        inc.summary.chars().count(),
        klaxon_core::incidents::MAX_TEXT
    );
    assert!(inc.summary.ends_with('…'), "cut with an ellipsis");
    let (_, entries) = incidents::timeline(&t.bot().app, IncidentId(1))
        .await
        .unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e.text.contains("END-OF-SUMMARY") && e.text.contains(long.trim())),
        "the full summary is on the timeline"
    );
    t.channel_message(inc.channel_id.unwrap()).await;
    t.channel_message(INCIDENTS).await;
    t.finish().await;
}
