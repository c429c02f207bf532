//! `/rollback` and `/restart` end to end: fake Discord, the real bot, a real dockerd.
//!
//! Timeouts are short (`stop_timeout_secs = 1`: the test images' shell ignores
//! SIGTERM, so every stop costs the whole stop timeout).

use std::time::{Duration, Instant};

use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{ListContainersOptions, StopContainerOptions};
use klaxon_core::audit::Outcome;
use klaxon_core::permissions::Level;
use klaxon_core::store::deployments::{self, Status};
use klaxon_tests::both_databases;
use klaxon_tests::docker::{Containers, Spec};
use klaxon_tests::fake::{FaultRule, Member, MessageRecord, Output, OutputKind};
use klaxon_tests::tester::{role_of, ALERTS, AUDIT};
use klaxon_tests::{env, Db, Reply, Tester};

fn operator() -> Member {
    Tester::member(Some(Level::Operator))
}

fn second_operator() -> Member {
    Member {
        user_id: 7_003,
        username: "second-operator".into(),
        roles: vec![role_of(Level::Operator)],
    }
}

fn viewer() -> Member {
    Tester::member(Some(Level::Viewer))
}

fn image(tag: &str) -> String {
    env::image(tag)
}

/// `/rollback` or `/restart` as an operator; the plan reply.
async fn ask(t: &Tester, command: &str, to: Option<&str>) -> Reply {
    let mut slash = t.slash(command).opt("service", "api");
    if let Some(to) = to {
        slash = slash.opt("to", to);
    }
    slash.as_level(Level::Operator).send().await.reply().await
}

fn button(message: &MessageRecord, verb: &str) -> String {
    let prefix = format!("rollback:{verb}:");
    message
        .custom_ids()
        .into_iter()
        .find(|id| id.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {verb} button in {:?}", message.custom_ids()))
}

/// Clicks a button and returns the click's interaction id and its callback.
async fn click(t: &Tester, who: Member, message: &MessageRecord, verb: &str) -> (u64, Output) {
    let ix = t
        .fake
        .click(who, message, &button(message, verb))
        .await
        .expect("click");
    let id = ix.id;
    let cb = t
        .take("the click's callback", |o| {
            matches!(o.kind, OutputKind::Callback { interaction_id, .. } if interaction_id == id)
        })
        .await;
    (id, cb)
}

fn callback_type(o: &Output) -> u8 {
    match o.kind {
        OutputKind::Callback { callback_type, .. } => callback_type,
        _ => panic!("not a callback: {o:?}"),
    }
}

/// Reads the progress edits of a confirmed operation, in order, until one
/// satisfies `stop`; returns it and how many edits there were.
async fn edits_until(
    t: &Tester,
    click_id: u64,
    stop: impl Fn(&str) -> bool,
) -> (MessageRecord, usize) {
    let mut n = 0;
    loop {
        let o = t
            .take("a progress edit", |o| {
                matches!(o.kind, OutputKind::EditOriginal { interaction_id } if interaction_id == click_id)
            })
            .await;
        n += 1;
        if o.message.custom_ids().iter().any(|_| true) {
            panic!("progress keeps no buttons: {:?}", o.message.custom_ids());
        }
        if stop(&o.message.text()) {
            return (o.message, n);
        }
    }
}

fn is_final(text: &str) -> bool {
    text.contains("Done in") || text.contains("Reverted:") || text.contains("❌")
}

async fn until_final(t: &Tester, click_id: u64) -> MessageRecord {
    edits_until(t, click_id, is_final).await.0
}

async fn inspect(c: &Containers, name: &str) -> ContainerInspectResponse {
    c.docker
        .inspect_container(name, None)
        .await
        .unwrap_or_else(|e| panic!("inspecting {name}: {e}"))
}

/// Containers a rollback kept aside (`<name>-klaxon-<id>`); removes them so that a
/// failing test does not leak them, and returns their names.
async fn kept_containers(c: &Containers, name: &str) -> Vec<String> {
    let opts = ListContainersOptions {
        all: true,
        filters: Some(std::collections::HashMap::from([(
            "name".to_string(),
            vec![format!("{name}-klaxon-")],
        )])),
        ..Default::default()
    };
    let found: Vec<String> = c
        .docker
        .list_containers(Some(opts))
        .await
        .expect("listing containers")
        .into_iter()
        .flat_map(|s| s.names.unwrap_or_default())
        .map(|n| n.trim_start_matches('/').to_string())
        .collect();
    for n in &found {
        let _ = std::process::Command::new("docker")
            .args(["-H", c.host(), "rm", "-f", n])
            .output();
    }
    found
}

/// Polls the audit table until a row matches (the audit is written after the reply).
async fn audit_row(t: &Tester, what: &str, pred: impl Fn(&klaxon_core::audit::AuditEntry) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let rows = t.bot().app.store.recent_audit(100).await.expect("audit");
        if rows.iter().any(&pred) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no audit row for {what}: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn history(t: &Tester) -> Vec<deployments::Deployment> {
    deployments::recent(&t.bot().app.store, "api", 10)
        .await
        .expect("history")
}

fn labels(info: &ContainerInspectResponse) -> std::collections::HashMap<String, String> {
    info.config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .unwrap_or_default()
}

async fn happy_path(db: Db) {
    let mut c = Containers::new().await;
    let custom = "echo started; while true; do sleep 1; done";
    let name = c
        .run(
            "api",
            Spec::new("v2")
                .health("true")
                .cmd(custom)
                .env("MODE=prod")
                .label("team", "payments"),
        )
        .await;
    c.wait_health(&name, "healthy").await;
    let t = Tester::builder()
        .db(db)
        .docker_host(c.host())
        .service("api", Some(&name), None)
        .rollback(|r| {
            r.stop_timeout_secs = 1;
            r.health_timeout_secs = 20;
        })
        .spawn()
        .await;

    // `to` offers the repository's other images, newest first, with their age.
    let choices = t
        .slash("rollback")
        .opt("service", "api")
        .as_level(Level::Operator)
        .autocomplete("to", "")
        .await;
    let (v1, v3) = (
        choices.iter().position(|c| *c == image("v1")),
        choices.iter().position(|c| *c == image("v3")),
    );
    assert!(v1.is_some() && v3.is_some(), "{choices:?}");
    assert!(v3 < v1, "newest first: {choices:?}");
    assert!(
        !choices.contains(&image("v2")),
        "not the running one: {choices:?}"
    );

    // Without `to`: the newest image older than the running one.
    let plan = ask(&t, "rollback", None).await;
    assert!(!plan.deferred && !plan.ephemeral());
    plan.assert_contains("Roll back api?")
        .assert_contains(&format!("`{}` → `{}`", image("v2"), image("v1")))
        .assert_contains("the newest older image of the repository")
        .assert_contains("repository `klaxon-test/app` · digest `sha256:")
        .assert_contains("Docker health check");
    let started = Instant::now();
    let (id, cb) = click(&t, operator(), &plan.message, "confirm").await;
    assert_eq!(callback_type(&cb), 7, "the plan turns into the progress");
    assert!(cb.message.custom_ids().is_empty(), "buttons gone");
    assert!(cb.at.saturating_duration_since(started) < Duration::from_secs(3));
    let done = until_final(&t, id).await;
    let text = done.text();
    assert!(
        text.contains(&format!("api rolled back to `{}`", image("v1"))),
        "{text}"
    );
    assert!(text.contains("✅ Stopped `"), "{text}");
    assert!(text.contains("✅ Healthy after"), "{text}");
    assert!(text.contains("Done in"), "{text}");

    // Same name, same configuration, the target image.
    let info = inspect(&c, &name).await;
    let cfg = info.config.clone().unwrap_or_default();
    assert_eq!(cfg.image.as_deref(), Some(image("v1").as_str()));
    assert_eq!(
        cfg.cmd,
        Some(vec!["sh".into(), "-c".into(), custom.into()]),
        "the container's own command is kept"
    );
    assert!(cfg
        .env
        .unwrap_or_default()
        .contains(&"MODE=prod".to_string()));
    let l = labels(&info);
    assert_eq!(l.get("team").map(String::as_str), Some("payments"));
    assert_eq!(
        l.get("org.opencontainers.image.version")
            .map(String::as_str),
        Some("v1"),
        "the image's own label, not v2's"
    );
    assert_eq!(
        info.host_config.and_then(|h| h.network_mode).as_deref(),
        Some("none")
    );
    let state = info.state.unwrap_or_default();
    assert_eq!(state.running, Some(true));
    assert!(
        kept_containers(&c, &name).await.is_empty(),
        "the old container is removed"
    );

    let rows = history(&t).await;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.status, Status::Succeeded);
    assert_eq!(
        (row.from_image.as_str(), row.to_image.as_str()),
        (image("v2").as_str(), image("v1").as_str())
    );
    assert_eq!(row.approved_by, "operator-member");
    let steps: Vec<String> = deployments::steps(&t.bot().app.store, row.id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.step)
        .collect();
    assert_eq!(
        steps,
        [
            "confirmed",
            "stopped",
            "kept",
            "started",
            "healthy",
            "removed",
            "succeeded"
        ]
    );
    audit_row(&t, "the confirmation", |a| {
        a.command == "rollback"
            && a.detail
                .starts_with("confirmed: confirmed by operator-member")
    })
    .await;
    audit_row(&t, "the success", |a| {
        a.command == "rollback"
            && a.outcome == Outcome::Ok
            && a.detail.starts_with("succeeded: done in")
    })
    .await;

    // #12 item 11: a stale Confirm (a client still showing the plan) on the finished
    // operation's message is answered privately, and the message keeps its outcome.
    let stale = t
        .fake
        .click_stale(operator(), &plan.message, &button(&plan.message, "confirm"))
        .await
        .expect("stale click");
    let stale_id = stale.id;
    let cb = t
        .take("the stale click's callback", |o| {
            matches!(o.kind, OutputKind::Callback { interaction_id, .. } if interaction_id == stale_id)
        })
        .await;
    assert_eq!(callback_type(&cb), 4, "a private answer, not an edit");
    assert!(cb.message.ephemeral());
    assert!(
        cb.message
            .text()
            .starts_with("This plan is no longer active"),
        "{}",
        cb.message.text()
    );
    // (Any edit of the message would be unread output, which fails `finish`.)

    // Next time, the default comes from the history: what ran before (v2).
    let again = ask(&t, "rollback", None).await;
    again
        .assert_contains(&format!("`{}` → `{}`", image("v1"), image("v2")))
        .assert_contains("Klaxon's history");
    let (_, cb) = click(&t, operator(), &again.message, "cancel").await;
    assert_eq!(callback_type(&cb), 7);
    assert!(
        cb.message.text().contains("Cancelled"),
        "{}",
        cb.message.text()
    );
    t.finish().await;
    c.cleanup().await;
}

both_databases!(
    happy_path,
    rollback_v2_to_v1_keeps_the_configuration,
    rollback_happy_path_on_postgres
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_to_a_broken_release_reverts_automatically() {
    let mut c = Containers::new().await;
    // No health check of its own: v3 brings its image's (failing) one.
    let name = c.run("api", Spec::new("v2").env("MODE=prod")).await;
    let before = inspect(&c, &name).await;
    let t = Tester::builder()
        .docker_host(c.host())
        .service("api", Some(&name), None)
        .rollback(|r| {
            r.stop_timeout_secs = 1;
            r.health_timeout_secs = 5;
        })
        .spawn()
        .await;
    let plan = ask(&t, "rollback", Some("v3")).await;
    plan.assert_contains(&format!("`{}` → `{}`", image("v2"), image("v3")))
        .assert_contains("as asked")
        .assert_contains("Wait up to 5 s for health: Docker health check");
    let (id, _) = click(&t, operator(), &plan.message, "confirm").await;
    let (done, edits) = edits_until(&t, id, is_final).await;
    let text = done.text();
    assert!(text.contains("↩️ Rollback of api reverted"), "{text}");
    assert!(
        text.contains(&format!(
            "`{}` was not healthy within 5 s (health: unhealthy",
            image("v3")
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("Reverted: `{name}` runs `{}` again", image("v2"))),
        "{text}"
    );
    assert!(
        edits >= 3,
        "progress was shown while waiting ({edits} edits)"
    );

    let after = inspect(&c, &name).await;
    assert_eq!(after.id, before.id, "the original container itself is back");
    assert_eq!(after.state.and_then(|s| s.running), Some(true));
    assert!(kept_containers(&c, &name).await.is_empty());
    let row = &history(&t).await[0];
    assert_eq!(row.status, Status::Reverted);
    assert!(
        row.detail.contains("not healthy within 5 s"),
        "{}",
        row.detail
    );
    audit_row(&t, "the revert", |a| {
        a.command == "rollback" && a.outcome == Outcome::Failed && a.detail.starts_with("reverted:")
    })
    .await;
    t.finish().await;
    c.cleanup().await;
}

/// #12 item 1: `/rollback to:` cannot run an image of another repository with the
/// service's environment, mounts and networks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_to_a_foreign_image_is_refused() {
    let mut c = Containers::new().await;
    let name = c
        .run("api", Spec::new("v2").env("DB_PASSWORD=hunter2"))
        .await;
    let before = inspect(&c, &name).await;
    let foreign = "klaxon-test/base:latest";
    let t = Tester::builder()
        .docker_host(c.host())
        .service("api", Some(&name), None)
        .service("vault", Some(&name), None)
        .allowed_images(&["klaxon-test/base"])
        .spawn()
        .await;

    // By name, and by image id: both refused privately, naming the repository allowed.
    let base_id = c
        .docker
        .inspect_image(foreign)
        .await
        .expect("the test script builds klaxon-test/base")
        .id
        .expect("image id");
    for to in [foreign.to_string(), base_id.clone()] {
        let refused = ask(&t, "rollback", Some(&to)).await;
        assert!(refused.ephemeral(), "refused privately: {}", refused.text());
        assert!(refused.message.custom_ids().is_empty(), "no Confirm button");
        refused
            .assert_contains("is from `klaxon-test/base`")
            .assert_contains("`api` may only run images of `klaxon-test/app`")
            .assert_contains("allowed_images");
    }
    audit_row(&t, "the refusal", |a| {
        a.command == "rollback"
            && a.outcome == Outcome::UserError
            && a.detail.contains("klaxon-test/base")
    })
    .await;

    // A service whose config allows that repository gets a plan that shows it.
    let plan = t
        .slash("rollback")
        .opt("service", "vault")
        .opt("to", foreign)
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await;
    plan.assert_contains("Roll back vault?")
        .assert_contains("repository `klaxon-test/base` · digest `sha256:");
    let (_, cb) = click(&t, operator(), &plan.message, "cancel").await;
    assert_eq!(callback_type(&cb), 7);

    let after = inspect(&c, &name).await;
    assert_eq!(after.id, before.id, "the container was not touched");
    assert!(history(&t).await.is_empty(), "nothing ran");
    t.finish().await;
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_are_refused_and_cancel_changes_nothing() {
    let mut c = Containers::new().await;
    let name = c.run("api", Spec::new("v2")).await;
    let before = inspect(&c, &name).await;
    let t = Tester::builder()
        .docker_host(c.host())
        .service("api", Some(&name), None)
        .spawn()
        .await;

    let refused = t
        .slash("rollback")
        .opt("service", "api")
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    assert!(refused.ephemeral());
    refused.assert_contains("`/rollback` needs the operator level; you have viewer.");
    audit_row(&t, "the refused command", |a| {
        a.command == "rollback" && a.outcome == Outcome::Denied && a.user_name == "viewer-member"
    })
    .await;

    let plan = ask(&t, "rollback", Some(&image("v1"))).await;
    let (_, cb) = click(&t, viewer(), &plan.message, "confirm").await;
    assert_eq!(callback_type(&cb), 4);
    assert!(cb.message.ephemeral());
    assert_eq!(
        cb.message.text(),
        "`/rollback` needs the operator level; you have viewer."
    );
    audit_row(&t, "the refused click", |a| {
        a.outcome == Outcome::Denied && a.arguments.ends_with("click=confirm")
    })
    .await;

    let (_, cb) = click(&t, operator(), &plan.message, "cancel").await;
    assert_eq!(callback_type(&cb), 7);
    assert!(cb.message.custom_ids().is_empty());
    let text = cb.message.text();
    assert!(text.contains("✖️ Cancelled: Roll back api"), "{text}");
    assert!(
        text.contains("Cancelled by operator-member · nothing was changed"),
        "{text}"
    );
    audit_row(&t, "the cancel", |a| a.detail == "cancelled").await;
    let after = inspect(&c, &name).await;
    assert_eq!(after.id, before.id);
    assert_eq!(after.state.and_then(|s| s.running), Some(true));
    assert!(history(&t).await.is_empty(), "nothing ran");
    t.finish().await;
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_buttons_are_retired_and_late_clicks_answered() {
    let mut c = Containers::new().await;
    let name = c.run("api", Spec::new("v2")).await;
    let t = Tester::builder()
        .docker_host(c.host())
        .service("api", Some(&name), None)
        .rollback(|r| r.confirm_timeout_secs = 1)
        .spawn()
        .await;

    // Nobody clicks: the buttons go away by themselves.
    let plan = t
        .slash("restart")
        .opt("service", "api")
        .as_level(Level::Operator)
        .send()
        .await;
    let slash_id = plan.interaction.id;
    plan.reply().await.assert_contains("Restart api?");
    let retired = t
        .take("the expiry edit", |o| {
            matches!(o.kind, OutputKind::EditOriginal { interaction_id } if interaction_id == slash_id)
        })
        .await;
    assert!(retired.message.custom_ids().is_empty());
    assert!(
        retired
            .message
            .text()
            .contains("⌛ Nobody confirmed within 1 s; nothing was changed."),
        "{}",
        retired.message.text()
    );

    // Discord fails that edit: a late click still gets a clear, private answer, in
    // the words of the plan's own command.
    t.fake.inject(FaultRule::Status {
        path_contains: "/messages/@original".into(),
        status: 500,
        times: 1,
    });
    let plan = ask(&t, "restart", None).await;
    tokio::time::sleep(Duration::from_millis(1_800)).await;
    let (_, cb) = click(&t, operator(), &plan.message, "confirm").await;
    assert_eq!(
        callback_type(&cb),
        4,
        "answered privately, message left alone"
    );
    assert!(cb.message.ephemeral());
    let why = cb.message.text();
    assert!(
        why.starts_with("This plan is no longer active") && why.contains("Run `/restart` again"),
        "{why}"
    );
    audit_row(&t, "the late click", |a| {
        a.detail == "click after the plan was gone"
    })
    .await;
    assert!(history(&t).await.is_empty(), "nothing ran");
    t.finish().await;
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_operation_is_refused_naming_the_holder() {
    let mut c = Containers::new().await;
    // No health check and no URL: healthy means running for `running_secs`.
    let name = c.run("api", Spec::new("v2")).await;
    let t = Tester::builder()
        .docker_host(c.host())
        .service("api", Some(&name), None)
        .rollback(|r| {
            r.stop_timeout_secs = 1;
            r.running_secs = 4;
        })
        .spawn()
        .await;
    let plan = ask(&t, "restart", None).await;
    plan.assert_contains("Wait up to 60 s for health: running for 4 s");
    let (id, _) = click(&t, operator(), &plan.message, "confirm").await;

    for command in ["rollback", "restart"] {
        let refused = t
            .slash(command)
            .opt("service", "api")
            .as_level(Level::Admin)
            .send()
            .await
            .reply()
            .await;
        assert!(refused.ephemeral());
        let text = refused.text();
        assert!(
            text.starts_with("A restart of `api` started by operator-member")
                && text.ends_with("is still running; try again when it has finished."),
            "{text}"
        );
    }
    let (done, _) = edits_until(&t, id, is_final).await;
    let text = done.text();
    assert!(text.contains("✅ api restarted"), "{text}");
    assert!(
        text.contains("Healthy after 4 s (running for 4 s)"),
        "{text}"
    );
    t.finish().await;
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_person_rule_needs_a_second_operator() {
    let mut c = Containers::new().await;
    let name = c.run("api", Spec::new("v2").health("true")).await;
    let t = Tester::builder()
        .docker_host(c.host())
        .service("api", Some(&name), None)
        .rollback(|r| {
            r.stop_timeout_secs = 1;
            r.two_person = vec!["api".into()];
        })
        .spawn()
        .await;
    let plan = ask(&t, "rollback", Some("v1")).await;
    plan.assert_contains("2 different operators must confirm.");

    let (_, cb) = click(&t, operator(), &plan.message, "confirm").await;
    assert_eq!(callback_type(&cb), 7);
    let text = cb.message.text();
    assert!(
        text.contains("✅ Confirmed by operator-member (1 of 2). Waiting for another operator (not operator-member) to confirm."),
        "{text}"
    );
    assert_eq!(cb.message.custom_ids().len(), 2, "buttons stay");
    assert_eq!(
        inspect(&c, &name).await.config.and_then(|c| c.image),
        Some(image("v2")),
        "one approval changes nothing"
    );

    // The same operator again does not count.
    let (_, cb) = click(&t, operator(), &cb.message, "confirm").await;
    assert_eq!(callback_type(&cb), 4);
    assert!(cb.message.ephemeral());
    assert!(cb.message.text().starts_with("You confirmed already"));

    let (id, cb) = click(&t, second_operator(), &plan.message, "confirm").await;
    assert_eq!(callback_type(&cb), 7);
    let done = until_final(&t, id).await;
    assert!(done.text().contains("Done in"), "{}", done.text());
    assert!(
        done.text()
            .contains("Confirmed by operator-member, second-operator"),
        "{}",
        done.text()
    );
    assert_eq!(
        inspect(&c, &name).await.config.and_then(|c| c.image),
        Some(image("v1"))
    );
    let row = &history(&t).await[0];
    assert_eq!(row.approved_by, "operator-member, second-operator");
    assert_eq!(row.status, Status::Succeeded);
    t.finish().await;
    c.cleanup().await;
}

/// #12 item 11: a Confirm clicked from a stale view of a finished restart is
/// answered privately, in `/restart`'s words, and the outcome message stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_confirm_leaves_a_finished_operation_alone() {
    let mut c = Containers::new().await;
    let name = c.run("api", Spec::new("v2").health("true")).await;
    c.wait_health(&name, "healthy").await;
    let t = Tester::builder()
        .docker_host(c.host())
        .service("api", Some(&name), None)
        .rollback(|r| r.stop_timeout_secs = 1)
        .spawn()
        .await;
    let plan = ask(&t, "restart", None).await;
    let (id, _) = click(&t, operator(), &plan.message, "confirm").await;
    let done = until_final(&t, id).await;
    assert!(done.text().contains("✅ api restarted"), "{}", done.text());

    let stale = t
        .fake
        .click_stale(operator(), &plan.message, &button(&plan.message, "confirm"))
        .await
        .expect("stale click");
    let stale_id = stale.id;
    let cb = t
        .take("the stale click's callback", |o| {
            matches!(o.kind, OutputKind::Callback { interaction_id, .. } if interaction_id == stale_id)
        })
        .await;
    assert_eq!(callback_type(&cb), 4, "a private answer, not an edit");
    assert!(cb.message.ephemeral());
    let why = cb.message.text();
    assert!(
        why.starts_with("This plan is no longer active") && why.contains("`/restart`"),
        "{why}"
    );
    assert!(!why.contains("/rollback"), "{why}");
    // Any edit of the outcome message would be unread output, which fails `finish`.
    assert_eq!(history(&t).await.len(), 1, "nothing ran again");
    t.finish().await;
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_waits_for_health() {
    let mut c = Containers::new().await;
    let name = c.run("api", Spec::new("v2").health("true")).await;
    c.wait_health(&name, "healthy").await;
    let before = inspect(&c, &name).await;
    let t = Tester::builder()
        .docker_host(c.host())
        .service("api", Some(&name), None)
        .audit_channel(AUDIT)
        .rollback(|r| r.stop_timeout_secs = 1)
        .spawn()
        .await;
    let plan = ask(&t, "restart", None).await;
    plan.assert_contains("Restart api?")
        .assert_contains("Wait up to 60 s for health: Docker health check");
    let audit = t.channel_message(AUDIT).await;
    assert!(
        audit.content.contains("`/restart service=api`"),
        "{}",
        audit.content
    );
    let (id, _) = click(&t, operator(), &plan.message, "confirm").await;
    let done = until_final(&t, id).await;
    // #17: the restart's steps are edited into its one audit message.
    loop {
        let e = t.channel_edit(AUDIT).await;
        assert_eq!(e.id, audit.id, "{}", e.content);
        if e.content.contains("succeeded: done in") {
            assert!(
                e.content.contains("↳ ✅ restarted: Restarted"),
                "{}",
                e.content
            );
            break;
        }
    }
    let text = done.text();
    assert!(text.contains("✅ api restarted"), "{text}");
    assert!(text.contains(&format!("✅ Restarted `{name}`")), "{text}");
    let after = inspect(&c, &name).await;
    assert_eq!(after.id, before.id, "the same container");
    let started =
        |i: &ContainerInspectResponse| i.state.as_ref().and_then(|s| s.started_at.clone());
    assert_ne!(started(&after), started(&before), "it was restarted");
    let row = &history(&t).await[0];
    assert_eq!(
        (row.action.as_str(), row.status),
        ("restart", Status::Succeeded)
    );
    audit_row(&t, "the restart", |a| {
        a.command == "restart" && a.detail.starts_with("restarted: Restarted")
    })
    .await;
    t.finish().await;
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_of_klaxon_mid_rollback_is_reported_and_the_service_put_back() {
    let mut c = Containers::new().await;
    let name = c.run("api", Spec::new("v2")).await;
    let mut t = Tester::builder()
        .docker_host(c.host())
        .service("api", Some(&name), None)
        .rollback(|r| {
            r.stop_timeout_secs = 1;
            r.running_secs = 60;
            r.health_timeout_secs = 120;
        })
        .spawn()
        .await;
    let plan = ask(&t, "rollback", Some("v1")).await;
    let (id, _) = click(&t, operator(), &plan.message, "confirm").await;
    edits_until(&t, id, |text| text.contains("Waiting for health")).await;

    // Klaxon dies here; then the new container dies too: nothing runs.
    assert_eq!(t.bot().app.ops_locks.abort_all(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Some(o) = t.fake.next_output(Duration::from_millis(100)).await {
        assert!(
            matches!(o.kind, OutputKind::EditOriginal { interaction_id } if interaction_id == id),
            "only progress edits before the crash: {o:?}"
        );
    }
    c.docker
        .stop_container(
            &name,
            Some(StopContainerOptions {
                t: Some(0),
                ..Default::default()
            }),
        )
        .await
        .expect("stopping the new container");
    let row = &history(&t).await[0];
    assert_eq!(row.status, Status::InProgress);
    assert!(!row.kept_container.is_empty());

    let old = t.bot.take().expect("bot");
    old.shutdown().await;
    t.bot = Some(
        klaxon::start(t.config.clone())
            .await
            .expect("Klaxon starts again"),
    );
    let report = t.channel_message(ALERTS).await;
    let text = report.text();
    assert!(
        text.contains("⚠️ Klaxon restarted during a rollback of api"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "Neither container was running: Klaxon removed the new one (`{}`) and put the old `{name}` (`{}`) back; it is running.",
            image("v1"),
            image("v2")
        )),
        "{text}"
    );
    let info = inspect(&c, &name).await;
    assert_eq!(info.config.and_then(|c| c.image), Some(image("v2")));
    assert_eq!(info.state.and_then(|s| s.running), Some(true));
    assert!(kept_containers(&c, &name).await.is_empty());
    let row = &history(&t).await[0];
    assert_eq!(row.status, Status::Interrupted);
    assert!(row.detail.contains("put the old"), "{}", row.detail);
    // The service is free again.
    let plan = ask(&t, "restart", None).await;
    plan.assert_contains("Restart api?");
    let (_, cb) = click(&t, operator(), &plan.message, "cancel").await;
    assert_eq!(callback_type(&cb), 7);
    t.finish().await;
    c.cleanup().await;
}

/// #17: a `/rollback` is ONE message in the audit channel, edited step by step;
/// the audit table keeps a row per step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_is_one_audit_message_edited_step_by_step() {
    let mut c = Containers::new().await;
    let name = c.run("api", Spec::new("v2").health("true")).await;
    c.wait_health(&name, "healthy").await;
    let t = Tester::builder()
        .docker_host(c.host())
        .service("api", Some(&name), None)
        .audit_channel(AUDIT)
        .rollback(|r| {
            r.stop_timeout_secs = 1;
            r.health_timeout_secs = 20;
        })
        .spawn()
        .await;
    let plan = ask(&t, "rollback", Some(&image("v1"))).await;
    // The command's own line opens the operation's message.
    let first = t.channel_message(AUDIT).await;
    assert!(
        first.content.contains("`/rollback service=api"),
        "{}",
        first.content
    );
    assert_eq!(first.content.lines().count(), 1, "{}", first.content);
    let (id, _) = click(&t, operator(), &plan.message, "confirm").await;
    until_final(&t, id).await;
    // Every step is edited into that message; the last edit shows them all.
    let mut edits = 0;
    let last = loop {
        let e = t.channel_edit(AUDIT).await;
        assert_eq!(e.id, first.id, "edits of the one audit message");
        assert!(e.content.chars().count() <= 2_000);
        assert_eq!(
            e.flags & 4096,
            4096,
            "the audit channel does not buzz phones"
        );
        edits += 1;
        if e.content.contains("succeeded: done in") {
            break e;
        }
    };
    let text = &last.content;
    let steps = [
        "confirmed:",
        "stopped:",
        "kept:",
        "started:",
        "healthy:",
        "removed:",
        "succeeded:",
    ];
    let mut at = 0;
    for step in steps {
        let found = text[at..]
            .find(step)
            .unwrap_or_else(|| panic!("{step} after the previous step in {text}"));
        at += found;
    }
    assert_eq!(text.lines().count(), 1 + steps.len(), "{text}");
    assert!(edits >= 1 && edits <= steps.len(), "{edits} edits");
    // The table keeps one row per step, as before.
    let rows = t.bot().app.store.recent_audit(100).await.expect("audit");
    let rollback_rows = rows.iter().filter(|a| a.command == "rollback").count();
    assert_eq!(rollback_rows, 1 + steps.len(), "{rows:#?}");
    // finish() fails on any further (unread) audit message.
    t.finish().await;
    c.cleanup().await;
}
