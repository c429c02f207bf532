//! `/maintenance`: windows started now and scheduled, with the real Docker engine
//! for the maintenance flag, a moved clock for schedules, restarts of the bot, and
//! alerts held back while a window runs.

use std::time::Duration;

use klaxon::config::Secret;
use klaxon_core::docker::DockerClient;
use klaxon_core::incidents::{self, IncidentId};
use klaxon_core::maintenance::flag::FlagConfig;
use klaxon_core::permissions::Level;
use klaxon_tests::both_databases;
use klaxon_tests::docker::{Containers, Spec};
use klaxon_tests::tester::{ALERTS, INCIDENTS};
use klaxon_tests::{Db, Tester};
use serde_json::{json, Value};

const GENERIC_TOKEN: &str = "generic-token";
const HOUR: Duration = Duration::from_secs(3_600);

async fn post_alerts(t: &Tester, alerts: Value) -> Value {
    let r = reqwest::Client::new()
        .post(format!("http://{}/alerts/generic", t.bot().http_addr))
        .bearer_auth(GENERIC_TOKEN)
        .json(&json!({ "alerts": alerts }))
        .send()
        .await
        .expect("the intake answers");
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.expect("json")
}

/// Whether a file exists in the container, asked through the engine.
async fn exists(docker: &DockerClient, container: &str, path: &str) -> bool {
    let out = docker
        .exec(container, &["test".into(), "-e".into(), path.into()])
        .await
        .expect("docker exec works");
    out.exit_code == 0
}

/// Real dockerd: `flag:true` creates /app/MAINTENANCE in one container and runs the
/// configured commands in another; alerts for the services are held, `/health`
/// says "in maintenance", and the end clears both flags (verified), posts what was
/// held and writes it all to the open incident's timeline.
async fn flag_and_held_alerts(db: Db) {
    let mut c = Containers::new().await;
    let api = c.run("maint-api", Spec::new("v1")).await;
    let worker = c.run("maint-worker", Spec::new("v1")).await;
    let t = Tester::builder()
        .db(db)
        .docker_host(c.host())
        .service("api", Some(&api), None)
        .service("worker", Some(&worker), None)
        .flag(FlagConfig {
            on: Some(vec![
                "sh".into(),
                "-c".into(),
                "echo on > /tmp/drain".into(),
            ]),
            off: Some(vec!["rm".into(), "-f".into(), "/tmp/drain".into()]),
            check: Some(vec!["test".into(), "-e".into(), "/tmp/drain".into()]),
            ..Default::default()
        })
        .service("web", None, Some("http://127.0.0.1:9/health"))
        .intake(|i| i.generic_token = Secret::new(GENERIC_TOKEN))
        .alerts(|a| {
            a.group_wait_secs = 1;
            a.group_interval_secs = 1;
        })
        .spawn()
        .await;
    let docker = DockerClient::new(c.host(), Duration::from_secs(10));

    // An incident about api is open: the window's steps join its timeline.
    let opened = t
        .slash("incident open")
        .opt("title", "Slow checkout")
        .opt("severity", 2)
        .opt("service", "api")
        .as_level(Level::Responder)
        .send()
        .await
        .reply()
        .await;
    opened.assert_contains("INC-1");
    let inc = incidents::get(&t.bot().app, IncidentId(1))
        .await
        .expect("INC-1");
    t.channel_message(inc.channel_id.expect("a thread")).await;
    t.channel_message(INCIDENTS).await;

    let started = t
        .slash("maintenance start")
        .opt("services", "api, worker")
        .opt("duration", "2h")
        .opt("reason", "Database upgrade to 16")
        .opt("flag", true)
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await;
    assert!(started.deferred, "the flag runs in containers: deferred");
    assert!(!started.ephemeral());
    started
        .assert_contains("🔧 Maintenance #1 started: **api, worker** until")
        .assert_contains("(2 h)")
        .assert_contains("api: created `/app/MAINTENANCE`, verified")
        .assert_contains("worker: `sh -c echo on > /tmp/drain`, verified");
    let notice = t.channel_message(INCIDENTS).await;
    let text = notice.text();
    assert!(
        text.contains("🔧 **Maintenance has started: api, worker**"),
        "{text}"
    );
    assert!(text.contains("Database upgrade to 16"), "{text}");
    assert!(text.contains("may be unavailable"), "{text}");
    assert!(exists(&docker, &api, "/app/MAINTENANCE").await);
    assert!(exists(&docker, &worker, "/tmp/drain").await);

    // api's alert is held; web's is posted.
    let stored = post_alerts(
        &t,
        json!([
            {"name": "HighLatency", "service": "api", "summary": "p99 over 2 s"},
            {"name": "HighLatency", "service": "web", "summary": "p99 over 3 s"}
        ]),
    )
    .await;
    assert_eq!(stored["stored"]["held"], 1, "{stored}");
    let web = t.channel_message(ALERTS).await;
    assert!(web.text().contains("HighLatency · web"), "{}", web.text());

    // /health: in maintenance, not failing.
    let health = t
        .slash("health")
        .opt("service", "api")
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    health
        .assert_contains("api is in maintenance")
        .assert_contains("maintenance #1 until");

    // More while it runs: api resolves, a new one fires.
    let stored = post_alerts(
        &t,
        json!([
            {"name": "HighLatency", "service": "api", "status": "resolved"},
            {"name": "DiskFull", "service": "api", "summary": "/var at 97%"}
        ]),
    )
    .await;
    assert_eq!(stored["stored"]["held"], 2, "{stored}");

    let list = t
        .slash("maintenance list")
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await;
    assert!(list.ephemeral());
    list.assert_contains("1 maintenance window")
        .assert_contains("**#1** api, worker · until")
        .assert_contains("flag on · 3 held");

    let ended = t
        .slash("maintenance end")
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await;
    ended
        .assert_contains("✅ Maintenance #1 ended: **api, worker**.")
        .assert_contains("It held 3 alert notifications")
        .assert_contains("api: removed `/app/MAINTENANCE`, verified")
        .assert_contains("worker: `rm -f /tmp/drain`, verified");
    assert!(!exists(&docker, &api, "/app/MAINTENANCE").await);
    assert!(!exists(&docker, &worker, "/tmp/drain").await);

    // The summary of what was held, then the alert still firing, posted now.
    let summary = t.channel_message(ALERTS).await;
    let text = summary.text();
    assert!(
        text.contains("Maintenance #1 (api, worker) held 3 alert notifications** from 2 alerts; 1 still firing"),
        "{text}"
    );
    assert!(
        text.contains("🔴 DiskFull (api) · still firing, posted now"),
        "{text}"
    );
    assert!(
        text.contains("✅ HighLatency (api) · resolved during the window"),
        "{text}"
    );
    let disk = t.channel_message(ALERTS).await;
    assert!(disk.text().contains("DiskFull · api"), "{}", disk.text());
    let over = t.channel_message(INCIDENTS).await;
    let text = over.text();
    assert!(
        text.contains("✅ **Maintenance is over: api, worker**"),
        "{text}"
    );
    assert!(text.contains("Finished early, after"), "{text}");

    // The incident's timeline has the window's start, flag changes and end.
    let entries = incidents::timeline(&t.bot().app, IncidentId(1))
        .await
        .expect("timeline")
        .1;
    let lines: Vec<&str> = entries
        .iter()
        .filter(|e| e.kind == incidents::EntryKind::Maintenance)
        .map(|e| e.text.as_str())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Maintenance #1 started on api, worker")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Maintenance #1 flag on: api: created")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Maintenance #1 ended early by")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Maintenance #1 flag off: api: removed")),
        "{lines:#?}"
    );

    // The audit log has the flag's changes beside the commands.
    let audit = t.bot().app.store.recent_audit(50).await.expect("audit");
    for command in [
        "maintenance start",
        "maintenance end",
        "maintenance flag on",
        "maintenance flag off",
    ] {
        assert!(
            audit.iter().any(|a| a.command == command),
            "{command}: {audit:#?}"
        );
    }
    t.finish().await;
    c.cleanup().await;
}

both_databases!(
    flag_and_held_alerts,
    a_window_sets_the_flag_holds_alerts_and_summarises_them_on_sqlite,
    a_window_sets_the_flag_holds_alerts_and_summarises_them_on_postgres
);

/// A flag that cannot be set is reported, with the command to run by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flag_that_cannot_be_set_is_reported_with_the_manual_step() {
    let mut c = Containers::new().await;
    // No /srv in the image: touch fails.
    let api = c.run("maint-fail", Spec::new("v1")).await;
    let t = Tester::builder()
        .docker_host(c.host())
        .service("api", Some(&api), None)
        .flag(FlagConfig {
            path: Some("/srv/missing/MAINTENANCE".into()),
            ..Default::default()
        })
        .spawn()
        .await;
    let r = t
        .slash("maintenance start")
        .opt("services", "api")
        .opt("duration", "30m")
        .opt("reason", "Replacing the disk")
        .opt("flag", true)
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await;
    r.assert_contains("⚠️ Maintenance flag:")
        .assert_contains("exited with 1")
        .assert_contains("by hand: `docker exec")
        .assert_contains("touch /srv/missing/MAINTENANCE`");
    t.channel_message(INCIDENTS).await;
    t.finish().await;
    c.cleanup().await;
}

async fn scheduling(db: Db) {
    let t = Tester::builder()
        .db(db)
        .service("api", None, Some("http://127.0.0.1:9/health"))
        .service("web", None, Some("http://127.0.0.1:9/health"))
        .maintenance(|m| m.timezone = "Europe/Berlin".into())
        .spawn()
        .await;
    let scheduled = t
        .slash("maintenance schedule")
        .opt("services", "api")
        .opt("start", "in 3h")
        .opt("duration", "2h")
        .opt("reason", "Kernel upgrade")
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await;
    scheduled
        .assert_contains("🗓️ Maintenance #1 scheduled: **api**")
        .assert_contains("Europe/Berlin (")
        .assert_contains("UTC)")
        .assert_contains(&format!("Announced in <#{INCIDENTS}> now, 1 h before"));
    let planned = t.channel_message(INCIDENTS).await;
    let text = planned.text();
    assert!(text.contains("🔧 **Planned maintenance: api**"), "{text}");
    assert!(text.contains("about 2 h"), "{text}");
    assert!(text.contains("Kernel upgrade"), "{text}");
    assert!(
        text.contains("We will post here when the work starts"),
        "{text}"
    );

    // Overlapping the same service, or in the past: refused with the reason.
    let overlap = t
        .slash("maintenance schedule")
        .opt("services", "web, api")
        .opt("start", "in 4h")
        .opt("duration", "1h")
        .opt("reason", "x")
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await;
    assert!(overlap.ephemeral());
    overlap.assert_contains("`api` already has maintenance #1 scheduled");
    let past = t
        .slash("maintenance schedule")
        .opt("services", "web")
        .opt("start", "2020-01-01T00:00:00Z")
        .opt("duration", "1h")
        .opt("reason", "x")
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await;
    past.assert_contains("is in the past");
    // web right after api's window is fine.
    t.slash("maintenance schedule")
        .opt("services", "web")
        .opt("start", "in 5h")
        .opt("duration", "30m")
        .opt("reason", "Certificate rotation")
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await
        .assert_contains("Maintenance #2 scheduled: **web**");
    t.channel_message(INCIDENTS).await;

    // Two days and more ahead: it gets the 48 h reminder too.
    t.slash("maintenance schedule")
        .opt("services", "web")
        .opt("start", "in 50h")
        .opt("duration", "1h")
        .opt("reason", "Storage migration")
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await
        .assert_contains("now, 2 d and 1 h before");
    t.channel_message(INCIDENTS).await;
    // api again, later: extending #1 into it is refused below.
    t.slash("maintenance schedule")
        .opt("services", "api")
        .opt("start", "in 6h")
        .opt("duration", "30m")
        .opt("reason", "Follow-up")
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await
        .assert_contains("Maintenance #4 scheduled");
    t.channel_message(INCIDENTS).await;

    // 1 h before #1: its reminder (48 h was never ahead, so none for that), and
    // #3's 48 h reminder.
    t.advance(2 * HOUR + Duration::from_secs(60));
    // (In either order: the jump of the clock can land between two windows of one
    // scheduler round.)
    let mut reminders = [
        t.channel_message(INCIDENTS).await.text(),
        t.channel_message(INCIDENTS).await.text(),
    ];
    reminders.sort_by_key(|r| r.contains("maintenance #3"));
    let [api, web] = reminders;
    assert!(
        api.contains("⏰ **Reminder: maintenance on api starts <t:"),
        "{api}"
    );
    assert!(api.contains("Planned until"), "{api}");
    assert!(api.contains("maintenance #1"), "{api}");
    assert!(web.contains("Reminder: maintenance on web starts"), "{web}");
    assert!(web.contains("Storage migration · maintenance #3"), "{web}");

    let into_next = t
        .slash("maintenance extend")
        .opt("id", 1)
        .opt("duration", "2h")
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await;
    assert!(into_next.ephemeral());
    into_next.assert_contains("Extended, #1 would overlap: `api` already has maintenance #4");
    t.slash("maintenance cancel")
        .opt("id", 4)
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await
        .assert_contains("Maintenance #4 (api,");
    t.channel_message(INCIDENTS).await;

    // Extended before it starts: the stakeholders are told the new end.
    t.slash("maintenance extend")
        .opt("id", 1)
        .opt("duration", "30m")
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await
        .assert_contains("Maintenance #1 (api) now ends at");
    let ext = t.channel_message(INCIDENTS).await;
    assert!(
        ext.text()
            .contains("**Maintenance on api extended** by 30 min"),
        "{}",
        ext.text()
    );
    // Extended into web's window it would not overlap (other service): fine; but a
    // window over the maximum is refused.
    let long = t
        .slash("maintenance extend")
        .opt("id", 1)
        .opt("duration", "23h")
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await;
    long.assert_contains("would then last");

    // The start, on time.
    t.advance(HOUR);
    let start = t.channel_message(INCIDENTS).await;
    assert!(
        start.text().contains("🔧 **Maintenance has started: api**"),
        "{}",
        start.text()
    );
    let list = t
        .slash("maintenance list")
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await;
    list.assert_contains("3 maintenance windows")
        .assert_contains("🔧 **#1** api · until")
        .assert_contains("🗓️ **#2** web ·")
        .assert_contains("🗓️ **#3** web ·")
        .assert_contains("Times in Europe/Berlin");

    // web's is called off before it starts; stakeholders were told, so they hear.
    t.slash("maintenance cancel")
        .opt("id", 2)
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await
        .assert_contains("Maintenance #2 (web,");
    let cancelled = t.channel_message(INCIDENTS).await;
    assert!(
        cancelled
            .text()
            .contains("❎ **Planned maintenance cancelled: web**"),
        "{}",
        cancelled.text()
    );

    // The end, on time (2 h 30 min after the start).
    t.advance(2 * HOUR + Duration::from_secs(30 * 60));
    let end = t.channel_message(INCIDENTS).await;
    let text = end.text();
    assert!(text.contains("✅ **Maintenance is over: api**"), "{text}");
    assert!(text.contains("It took 2 h 30 min."), "{text}");
    assert!(!text.contains("late"), "{text}");
    t.finish().await;
}

both_databases!(
    scheduling,
    scheduled_windows_are_announced_started_and_ended_on_sqlite,
    scheduled_windows_are_announced_started_and_ended_on_postgres
);

/// Restarts: one in the middle of a window changes nothing; after one that lasted
/// past the end, the end is applied at start-up and announced as late, and a window
/// that should have started meanwhile starts.
async fn restarts(db: Db) {
    let mut t = Tester::builder()
        .db(db)
        .service("api", None, Some("http://127.0.0.1:9/health"))
        .service("web", None, Some("http://127.0.0.1:9/health"))
        .service("db", None, Some("http://127.0.0.1:9/health"))
        .spawn()
        .await;
    t.slash("maintenance start")
        .opt("services", "api")
        .opt("duration", "1h")
        .opt("reason", "Index rebuild")
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await
        .assert_contains("Maintenance #1 started");
    t.channel_message(INCIDENTS).await;
    t.slash("maintenance schedule")
        .opt("services", "web")
        .opt("start", "in 30m")
        .opt("duration", "3h")
        .opt("reason", "Moving to the new cluster")
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await
        .assert_contains("Maintenance #2 scheduled");
    t.channel_message(INCIDENTS).await;
    // One that will pass entirely while the bot is down.
    t.slash("maintenance schedule")
        .opt("services", "db")
        .opt("start", "in 50m")
        .opt("duration", "30m")
        .opt("reason", "Quick patch")
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await
        .assert_contains("Maintenance #3 scheduled");
    t.channel_message(INCIDENTS).await;

    // Down for 10 minutes in the middle: nothing is announced again.
    t.restart(Duration::from_secs(600)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let list = t
        .slash("maintenance list")
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await;
    list.assert_contains("🔧 **#1** api")
        .assert_contains("🗓️ **#2** web");

    // Down past api's end and web's start: both applied at start-up.
    t.restart(2 * HOUR).await;
    let over = t.channel_message(INCIDENTS).await;
    let text = over.text();
    assert!(
        text.contains("✅ **Maintenance is over: api** (late notice)"),
        "{text}"
    );
    assert!(text.contains("Klaxon was offline then"), "{text}");
    let started = t.channel_message(INCIDENTS).await;
    assert!(
        started
            .text()
            .contains("🔧 **Maintenance has started: web**"),
        "{}",
        started.text()
    );
    // The one that passed entirely: closed, announced late, never "started".
    let missed = t.channel_message(INCIDENTS).await;
    let text = missed.text();
    assert!(
        text.contains("Maintenance is over: db** (late notice)"),
        "{text}"
    );
    assert!(text.contains("maintenance #3"), "{text}");
    let audit = t.bot().app.store.recent_audit(50).await.expect("audit");
    assert!(
        audit
            .iter()
            .any(|a| a.command == "maintenance end" && a.detail.contains("ended late")),
        "{audit:#?}"
    );
    // web's ends on time: 3 h after its planned start, 2 h 10 min from "now".
    t.advance(Duration::from_secs(80 * 60 + 30));
    let end = t.channel_message(INCIDENTS).await;
    assert!(
        end.text().contains("Maintenance is over: web**\n"),
        "{}",
        end.text()
    );
    t.finish().await;
}

both_databases!(
    restarts,
    restarts_resume_windows_on_sqlite,
    restarts_resume_windows_on_postgres
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_permissions_get_clear_private_answers() {
    let t = Tester::builder()
        .service("api", None, Some("http://127.0.0.1:9/health"))
        .spawn()
        .await;
    let denied = t
        .slash("maintenance start")
        .opt("services", "api")
        .opt("duration", "1h")
        .opt("reason", "x")
        .as_level(Level::Responder)
        .send()
        .await
        .reply()
        .await;
    assert!(denied.ephemeral());
    denied.assert_contains("operator");
    for (services, duration, why) in [
        ("billing", "1h", "No service named `billing`"),
        ("api", "0m", "cannot last zero time"),
        ("api", "-1h", "is negative"),
        (
            "api",
            "25h",
            "longer than the longest window allowed here (1 d",
        ),
        ("api", "soon", "is not a duration"),
        ("all, api", "1h", "`all` already means every service"),
    ] {
        let r = t
            .slash("maintenance start")
            .opt("services", services)
            .opt("duration", duration)
            .opt("reason", "x")
            .as_level(Level::Operator)
            .send()
            .await
            .reply()
            .await;
        assert!(r.ephemeral(), "{services} {duration}");
        r.assert_contains(why);
    }
    let r = t
        .slash("maintenance start")
        .opt("services", "api")
        .opt("duration", "1h")
        .opt("reason", "x")
        .opt("flag", true)
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await;
    assert!(r.ephemeral(), "checked before the reply is deferred");
    r.assert_contains("`api` has no container");
    let r = t
        .slash("maintenance schedule")
        .opt("services", "api")
        .opt("start", "whenever")
        .opt("duration", "1h")
        .opt("reason", "x")
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await;
    assert!(r.ephemeral());
    r.assert_contains("is not a time Klaxon understands");
    for (cmd, id, why) in [
        ("maintenance end", None, "No maintenance window is active."),
        (
            "maintenance end",
            Some(99),
            "There is no maintenance window #99.",
        ),
        (
            "maintenance cancel",
            Some(99),
            "There is no maintenance window #99.",
        ),
    ] {
        let mut s = t.slash(cmd).as_level(Level::Operator);
        if let Some(id) = id {
            s = s.opt("id", id);
        }
        let r = s.send().await.reply().await;
        assert!(r.ephemeral(), "{cmd}");
        r.assert_contains(why);
    }
    // Its start has come: it cannot be cancelled any more, only ended.
    t.slash("maintenance schedule")
        .opt("services", "api")
        .opt("start", "in 1h")
        .opt("duration", "1h")
        .opt("reason", "x")
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await
        .assert_contains("Maintenance #1 scheduled");
    t.channel_message(INCIDENTS).await;
    t.advance(HOUR);
    let r = t
        .slash("maintenance cancel")
        .opt("id", 1)
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await;
    assert!(r.ephemeral());
    r.assert_contains("Maintenance #1 has already started; `/maintenance end id:1` ends it.");
    t.channel_message(INCIDENTS).await; // its start
                                        // Autocomplete offers `all` and completes the last name of a list.
    let choices = t
        .slash("maintenance start")
        .as_level(Level::Operator)
        .autocomplete("services", "")
        .await;
    assert_eq!(choices.first().map(String::as_str), Some("all"));
    t.finish().await;
}
