//! `/oncall`: who is on call now and in the coming shifts, overrides and covers as
//! rows in the database (on SQLite and PostgreSQL), the private errors a member
//! gets for an override in the past or for someone outside the server, and the
//! levels each subcommand needs. Every run is audited by the pipeline.

use klaxon_core::oncall::resolve;
use klaxon_core::permissions::Level;
use klaxon_core::settings::oncall::{OnCall, ScheduleConfig};
use klaxon_tests::fake::Member;
use klaxon_tests::{both_databases, Db, Tester};

const MEMBERS: [u64; 3] = [7001, 7002, 7003];
const CAROL: u64 = 7009;
/// The responder the test world's `as_level(Responder)` speaks as.
const RESPONDER: u64 = 5000 + 1002;

fn primary() -> ScheduleConfig {
    ScheduleConfig {
        name: "primary".into(),
        timezone: "Europe/Berlin".into(),
        members: MEMBERS.to_vec(),
        shift: "1d".into(),
        start: "2026-01-05T09:00".into(),
        sync_role: None,
        announce: None,
    }
}

/// Who the rotation says is on call now: the resolver (tested minute by minute in
/// core) over the same schedule.
fn rotation_now(t: &Tester) -> u64 {
    let app = &t.bot().app;
    let s = app.oncall.schedule("primary").expect("configured");
    resolve::resolve(s, &[], app.clock.now_ms())
        .member
        .expect("the rotation has started")
}

async fn commands_overrides_and_errors(db: Db) {
    let t = Tester::builder()
        .db(db)
        .oncall(|o| o.schedules.push(primary()))
        .spawn()
        .await;
    t.fake.add_member(Member {
        user_id: CAROL,
        username: "carol".into(),
        roles: vec![],
    });
    let on_call = rotation_now(&t);

    // Anyone may look: who, until when in the team's zone, and relative.
    let now = t
        .slash("oncall now")
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    assert!(!now.ephemeral());
    now.assert_contains(&format!("📟 **primary**: <@{on_call}> until"))
        .assert_contains("Europe/Berlin")
        .assert_contains(":R>");
    assert_eq!(
        t.slash("oncall now").autocomplete("schedule", "PR").await,
        vec!["primary".to_string()]
    );
    let unknown = t
        .slash("oncall now")
        .opt("schedule", "nope")
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    assert!(unknown.ephemeral());
    unknown.assert_contains("No on-call schedule `nope`. Known: primary.");

    // An operator puts carol on call in an hour, for two hours.
    let made = t
        .slash("oncall override")
        .opt("schedule", "primary")
        .opt_user("member", CAROL)
        .opt("start", "in 1h")
        .opt("duration", "2h")
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await;
    assert!(!made.ephemeral());
    made.assert_contains(&format!(
        "✋ Override #1 on **primary**: <@{CAROL}> is on call"
    ));

    // A responder may not override, only cover.
    let refused = t
        .slash("oncall override")
        .opt("schedule", "primary")
        .opt_user("member", CAROL)
        .opt("start", "now")
        .opt("duration", "2h")
        .as_level(Level::Responder)
        .send()
        .await
        .reply()
        .await;
    assert!(refused.ephemeral());
    refused.assert_contains("operator");

    // Mistakes get a private answer and store nothing.
    let past = t
        .slash("oncall override")
        .opt("schedule", "primary")
        .opt_user("member", CAROL)
        .opt("start", "2026-01-01 09:00")
        .opt("duration", "2h")
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await;
    assert!(past.ephemeral());
    past.assert_contains("starts in the past");
    let stranger = t
        .slash("oncall override")
        .opt("schedule", "primary")
        .opt_user("member", 7777)
        .opt("start", "now")
        .opt("duration", "2h")
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await;
    assert!(stranger.ephemeral());
    stranger.assert_contains("User 7777 is not a member of this server");
    let zero = t
        .slash("oncall cover")
        .opt("schedule", "primary")
        .opt("duration", "0m")
        .as_level(Level::Responder)
        .send()
        .await
        .reply()
        .await;
    assert!(zero.ephemeral());

    // A responder covers from now: the newest override wins.
    let covered = t
        .slash("oncall cover")
        .opt("schedule", "primary")
        .opt("duration", "30m")
        .as_level(Level::Responder)
        .send()
        .await
        .reply()
        .await;
    covered.assert_contains(&format!(
        "✋ Override #2 on **primary**: <@{RESPONDER}> is on call"
    ));
    t.slash("oncall now")
        .opt("schedule", "primary")
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await
        .assert_contains(&format!("<@{RESPONDER}> (override #2) until"));

    // The coming shifts mark both overrides; one line per shift, no table.
    let shifts = t
        .slash("oncall shifts")
        .opt("schedule", "primary")
        .opt("days", 2)
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    shifts
        .assert_contains("🗓️ **primary**, next 2 days (Europe/Berlin):")
        .assert_contains(&format!("<@{RESPONDER}> ✋ override #2"))
        .assert_contains(&format!("<@{CAROL}> ✋ override #1"));
    assert!(!shifts.text().contains('|'), "{}", shifts.text());

    let listed = t
        .slash("oncall overrides")
        .opt("schedule", "primary")
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    assert!(listed.ephemeral());
    listed
        .assert_contains(&format!("• #2 <@{RESPONDER}>"))
        .assert_contains(&format!("• #1 <@{CAROL}>"));

    // Cancelled, the rotation is back.
    t.slash("oncall override-cancel")
        .opt("id", 2)
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await
        .assert_contains("🗑️ Override #2 cancelled");
    t.slash("oncall now")
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await
        .assert_contains(&format!("<@{on_call}> until"));
    for (id, says) in [(2, "already cancelled"), (99, "There is no override #99")] {
        let r = t
            .slash("oncall override-cancel")
            .opt("id", id)
            .as_level(Level::Operator)
            .send()
            .await
            .reply()
            .await;
        assert!(r.ephemeral());
        r.assert_contains(says);
    }

    // Every run, allowed, refused or mistaken, is in the audit log.
    // (The row is written after the reply, so the last one may take a moment.)
    let mut runs = 0;
    for _ in 0..50 {
        let audit = t.bot().app.store.recent_audit(100).await.expect("audit");
        runs = audit
            .iter()
            .filter(|a| a.command.starts_with("oncall"))
            .count();
        if runs >= 15 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(runs, 15);
    t.finish().await;
}

both_databases!(
    commands_overrides_and_errors,
    commands_overrides_and_errors_on_sqlite,
    commands_overrides_and_errors_on_postgres
);

/// Bad `[oncall]` input stops start-up, each problem named by its key.
#[test]
fn bad_schedules_and_unknown_policies_are_named() {
    let mut bad = primary();
    bad.timezone = "Europe/Atlantis".into();
    bad.members.clear();
    let mut c = klaxon_core::settings::oncall::OncallConfig::default();
    c.schedules.push(bad);
    let refs = vec![(
        "alerts.routes[0].escalation".to_string(),
        "tiers".to_string(),
    )];
    let e = OnCall::new(&c, &refs).expect_err("refused").join("\n");
    assert!(
        e.contains("oncall.schedules[0].timezone: `Europe/Atlantis`"),
        "{e}"
    );
    assert!(e.contains("oncall.schedules[0].members"), "{e}");
    assert!(
        e.contains("alerts.routes[0].escalation: no escalation policy `tiers`"),
        "{e}"
    );
}

/// The override rows on both databases: ended and cancelled ones drop out, the
/// schedule is matched without regard to case, a second cancel changes nothing.
async fn override_rows(db: Db) {
    use klaxon_core::store::oncall::{self as rows, NewOverride};
    let t = Tester::builder().db(db).spawn().await;
    let store = &t.bot().app.store;
    let new = |member, starts_ms, ends_ms| NewOverride {
        schedule: "Primary",
        member_id: member,
        starts_ms,
        ends_ms,
        created_by: "op",
        created_by_id: 1,
        created_ms: 0,
    };
    let a = rows::insert(store, &new(CAROL, 1_000, 5_000))
        .await
        .expect("insert");
    let b = rows::insert(store, &new(u64::MAX >> 1, 2_000, 9_000))
        .await
        .expect("insert");
    let c = rows::insert(store, &new(7002, 0, 1_500))
        .await
        .expect("insert");
    assert!(a < b && b < c, "ids grow: newest wins");
    let ids = |v: Vec<rows::OverrideRow>| v.iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(rows::active(store, "primary", 1_500).await.expect("active")),
        vec![a, b]
    );
    assert_eq!(
        rows::active(store, "PRIMARY", 0).await.expect("active")[1].member_id,
        u64::MAX >> 1,
        "a snowflake round-trips"
    );
    assert!(rows::cancel(store, a, "op", 3_000).await.expect("cancel"));
    assert!(!rows::cancel(store, a, "op", 3_001).await.expect("cancel"));
    assert_eq!(
        ids(rows::active(store, "primary", 0).await.expect("active")),
        vec![b, c]
    );
    let got = rows::get(store, a).await.expect("get").expect("kept");
    assert_eq!(got.cancelled_ms, Some(3_000));
    assert!(rows::active(store, "secondary", 0)
        .await
        .expect("active")
        .is_empty());
    t.finish().await;
}

both_databases!(
    override_rows,
    override_rows_on_sqlite,
    override_rows_on_postgres
);

/// The bot's chat sink over the real transport: a DM channel is opened once and
/// takes posts; a member who closed DMs gives a recognizable 50007; roles are
/// given and taken within Discord's permission and hierarchy rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_messages_and_member_roles_through_the_transport() {
    use klaxon_core::chat::ChatMessage;
    let t = Tester::builder().spawn().await;
    let chat = &t.bot().app.chat;
    let guild = t.fake.config().guild_id;
    for (id, name) in [(CAROL, "carol"), (7002, "dave")] {
        t.fake.add_member(Member {
            user_id: id,
            username: name.into(),
            roles: vec![],
        });
    }
    let dm = chat.open_dm(CAROL).await.expect("DM channel");
    assert_eq!(chat.open_dm(CAROL).await.expect("again"), dm);
    chat.send(dm, ChatMessage::text("You are paged: Checkout down"))
        .await
        .expect("posted");
    let got = t.channel_message(dm).await;
    assert_eq!(got.text(), "You are paged: Checkout down");

    t.fake.close_dms(7002);
    let closed = chat.open_dm(7002).await.expect("DM channel");
    let e = chat
        .send(closed, ChatMessage::text("You are paged"))
        .await
        .expect_err("refused");
    assert!(e.is_dm_closed(), "{e}");

    assert!(chat.is_member(guild, CAROL).await.expect("lookup"));
    assert!(!chat.is_member(guild, 7777).await.expect("lookup"));

    // Without Manage Roles Discord refuses; with it, roles below the bot's move.
    t.fake.add_roles(&[1]);
    assert!(chat.add_role(guild, CAROL, 1, "on call").await.is_err());
    t.fake.grant_manage_roles(100);
    chat.add_role(guild, CAROL, 1, "on call")
        .await
        .expect("given");
    assert_eq!(t.fake.member_roles(CAROL), vec![1]);
    chat.remove_role(guild, CAROL, 1, "shift over")
        .await
        .expect("taken");
    assert!(t.fake.member_roles(CAROL).is_empty());
    t.finish().await;
}

/// Hand-offs with the controllable clock: the leader moves `sync_role` to whoever
/// takes over within a tick (well inside 60 s) and announces each hand-off once,
/// naming who hands over and who takes over, with the open incidents and firing
/// alerts. Overrides count: a cover is a hand-off too.
async fn handoffs_move_the_role_and_are_announced_once(db: Db) {
    use klaxon_tests::tester::INCIDENTS;
    const ROLE: u64 = 1;
    let hour_ago = (chrono::Utc::now() - chrono::Duration::hours(3)).format("%Y-%m-%dT%H:00");
    let t = Tester::builder()
        .db(db)
        .oncall(|o| {
            o.schedules.push(ScheduleConfig {
                name: "primary".into(),
                timezone: "UTC".into(),
                members: vec![CAROL, 7002],
                shift: "1h".into(),
                start: hour_ago.to_string(),
                sync_role: Some(ROLE),
                announce: Some(INCIDENTS),
            })
        })
        .spawn()
        .await;
    // Klaxon's first look is a hand-off from nobody.
    let first = rotation_now(&t);
    let other = if first == CAROL { 7002 } else { CAROL };
    let notice = t.channel_message(INCIDENTS).await;
    let text = notice.text();
    assert!(
        text.contains(&format!(
            "🔁 On-call hand-off, **primary**: nobody hands over to <@{first}>"
        )),
        "{text}"
    );
    assert!(
        text.contains("No open incidents.") && text.contains("No alerts firing."),
        "{text}"
    );

    for (id, name) in [(CAROL, "carol"), (7002, "dave")] {
        t.fake.add_member(Member {
            user_id: id,
            username: name.into(),
            roles: vec![],
        });
    }
    t.fake.add_roles(&[ROLE]);
    t.fake.grant_manage_roles(100);
    let opened = t
        .slash("incident open")
        .opt("title", "Checkout down")
        .opt("severity", 1)
        .as_level(Level::Responder)
        .send()
        .await
        .reply()
        .await;
    opened.assert_contains("INC-1");
    t.discard_unread().await;

    // The clock passes the next hand-off: the role and the notice follow.
    let app = &t.bot().app;
    let s = app.oncall.schedule("primary").expect("configured");
    let until = resolve::resolve(s, &[], app.clock.now_ms())
        .until_ms
        .expect("a hand-off ahead");
    let started = std::time::Instant::now();
    t.advance(std::time::Duration::from_millis(
        (until - app.clock.now_ms() + 1_000) as u64,
    ));
    let notice = t.channel_message(INCIDENTS).await;
    let text = notice.text();
    assert!(
        text.contains(&format!(
            "**primary**: <@{first}> hands over to <@{other}> until <t:"
        )),
        "{text}"
    );
    assert!(
        text.contains("Open incidents (1):")
            && text.contains("• INC-1 P")
            && text.contains("Checkout down"),
        "{text}"
    );
    let mut roles = Vec::new();
    for _ in 0..100 {
        roles = t.fake.member_roles(other);
        if roles == vec![ROLE] {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(roles, vec![ROLE], "the one taking over holds the role");
    assert!(t.fake.member_roles(first).is_empty());
    assert!(started.elapsed() < std::time::Duration::from_secs(60));

    // A cover is a hand-off too; it moves the role back. Nothing is sent twice.
    t.slash("oncall cover")
        .opt("schedule", "primary")
        .opt("duration", "10m")
        .as_member(Member {
            user_id: first,
            username: "first".into(),
            roles: vec![1002],
        })
        .send()
        .await
        .reply()
        .await
        .assert_contains("✋ Override #1");
    let notice = t.channel_message(INCIDENTS).await;
    assert!(
        notice
            .text()
            .contains(&format!("<@{other}> hands over to <@{first}>")),
        "{}",
        notice.text()
    );
    // (The cover's interaction shows `first` with the responder role as well.)
    for _ in 0..100 {
        if t.fake.member_roles(first).contains(&ROLE) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(t.fake.member_roles(first).contains(&ROLE));
    assert!(t.fake.member_roles(other).is_empty());
    // Two more ticks: no second notice (finish fails on any unread message).
    tokio::time::sleep(klaxon_core::oncall::handoff::TICK * 2).await;
    t.finish().await;
}

both_databases!(
    handoffs_move_the_role_and_are_announced_once,
    handoffs_move_the_role_and_are_announced_once_on_sqlite,
    handoffs_move_the_role_and_are_announced_once_on_postgres
);
