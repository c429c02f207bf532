//! Docker Swarm services end to end (issue #16): fake Discord, the real bot, a real
//! single-node swarm (`KLAXON_TEST_SWARM_HOST`, see `klaxon_tests::swarm`).
//!
//! Services run the offline test images with `--network host`, a Docker health
//! check where the test needs one, and `--update-monitor 1s` so that an update
//! is judged quickly.

use std::time::Duration;

use klaxon_core::permissions::Level;
use klaxon_core::store::deployments::{self, Status};
use klaxon_tests::fake::{Member, MessageRecord, Output, OutputKind};
use klaxon_tests::swarm::{swarm_host, SwarmService};
use klaxon_tests::tester::ALERTS;
use klaxon_tests::{env, Tester};

const HEALTH: [&str; 6] = [
    "--health-cmd",
    "test ! -f /tmp/sick",
    "--health-interval",
    "1s",
    "--health-retries",
    "1",
];

fn operator() -> Member {
    Tester::member(Some(Level::Operator))
}

/// A 2-replica service on `v2`, with a health check of its own or (`health`
/// false) the image's (v2 has none; v3's always fails).
async fn two_replicas(prefix: &str, health: bool) -> SwarmService {
    let mut extra = vec!["--replicas", "2"];
    if health {
        extra.extend(HEALTH);
    }
    SwarmService::create(prefix, &extra, &env::image("v2"), &[]).await
}

async fn tester(svc: &SwarmService) -> Tester {
    Tester::builder()
        .docker_host(&swarm_host())
        .swarm_service("web", &svc.name)
        .rollback(|r| r.health_timeout_secs = 60)
        .spawn()
        .await
}

fn button(message: &MessageRecord, verb: &str) -> String {
    let prefix = format!("rollback:{verb}:");
    message
        .custom_ids()
        .into_iter()
        .find(|id| id.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {verb} button in {:?}", message.custom_ids()))
}

/// Confirms a plan; the id of the click, whose edits carry the progress.
async fn confirm(t: &Tester, message: &MessageRecord) -> u64 {
    let ix = t
        .fake
        .click(operator(), message, &button(message, "confirm"))
        .await
        .expect("click");
    let id = ix.id;
    let _cb: Output = t
        .take("the click's callback", |o| {
            matches!(o.kind, OutputKind::Callback { interaction_id, .. } if interaction_id == id)
        })
        .await;
    id
}

/// The progress edits until the final one; all of them, in order.
async fn until_final(t: &Tester, click_id: u64) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let o = t
            .take("a progress edit", |o| {
                matches!(o.kind, OutputKind::EditOriginal { interaction_id } if interaction_id == click_id)
            })
            .await;
        let text = o.message.text();
        seen.push(text.clone());
        if text.contains("Done in") || text.contains("Reverted:") || text.contains("❌") {
            return seen;
        }
    }
}

async fn ask(t: &Tester, command: &str, to: Option<&str>) -> MessageRecord {
    let mut slash = t.slash(command).opt("service", "web");
    if let Some(to) = to {
        slash = slash.opt("to", to);
    }
    slash
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await
        .message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_health_logs_and_scale() {
    let svc = two_replicas("sw-health", true).await;
    let t = tester(&svc).await;

    // /health: replicas, one line per task with its node, no table.
    let reply = t
        .slash("health")
        .opt("service", "web")
        .send()
        .await
        .reply()
        .await;
    let text = reply.text();
    assert!(
        text.contains(&format!("Swarm `{}` · 2/2 running", svc.name)),
        "{text}"
    );
    assert!(text.contains("`.1` running · "), "{text}");
    assert!(text.contains("`.2` running · "), "{text}");
    assert!(!text.contains("nothing to check"), "{text}");

    // /logs: the lines of the service's tasks.
    let reply = t
        .slash("logs")
        .opt("service", "web")
        .opt("lines", 5)
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    assert!(reply.text().contains("INFO app v2 ok"), "{}", reply.text());

    // Scale 1 → 3 → 1 through the core function, following convergence.
    let app = std::sync::Arc::clone(&t.bot().app);
    for n in [1u64, 3, 1] {
        let mut looks = Vec::new();
        let took = klaxon_core::swarm::scale(
            &app,
            "web",
            n,
            Duration::from_secs(60),
            &mut |_, text: &str| looks.push(text.to_string()),
        )
        .await
        .unwrap_or_else(|e| panic!("scale to {n}: {e}"));
        // Converged: n tasks run (a health check slowed by a busy machine may
        // have Swarm replace one meanwhile, so the count is awaited).
        svc.wait_running(&env::image("v2"), n as usize, Duration::from_secs(30))
            .await;
        println!("scaled to {n} in {took:?} ({} progress looks)", looks.len());
    }
    let reply = t
        .slash("health")
        .opt("service", "web")
        .send()
        .await
        .reply()
        .await;
    assert!(reply.text().contains("· 1/1 running"), "{}", reply.text());

    // A global service cannot be scaled; an unknown or non-Swarm one neither.
    let e = klaxon_core::swarm::scale(
        &app,
        "nope",
        2,
        Duration::from_secs(1),
        &mut |_, _: &str| {},
    )
    .await
    .expect_err("unknown service");
    assert!(e.to_string().starts_with("No service named `nope`"), "{e}");
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scale_command_sets_a_swarm_services_replicas() {
    let svc = two_replicas("sw-scale", true).await;
    let t = tester(&svc).await;
    let scale = |n: i64| {
        t.slash("scale")
            .opt("service", "web")
            .opt("replicas", n)
            .as_level(Level::Operator)
            .send()
    };

    // What already runs, and 0: private refusals, nothing asked of Swarm.
    for n in [2, 0] {
        let reply = scale(n).await.reply().await;
        assert!(reply.ephemeral(), "/scale {n}: {}", reply.text());
    }
    assert_eq!(svc.running_images().len(), 2);

    // 2 → 3 → 1 through /scale: Confirm, progress, Swarm converges each time.
    for n in [3i64, 1] {
        let plan = scale(n).await.reply().await;
        let text = plan.text();
        assert!(
            text.contains(&format!("Scale web to {n} replicas?")),
            "{text}"
        );
        assert!(text.contains("Swarm service"), "{text}");
        let id = confirm(&t, &plan.message).await;
        let edits = until_final(&t, id).await;
        let last = edits.last().cloned().unwrap_or_default();
        assert!(
            last.contains(&format!("web scaled to {n} replicas")) && last.contains("Done in"),
            "{edits:#?}"
        );
        svc.wait_running(&env::image("v2"), n as usize, Duration::from_secs(30))
            .await;
    }
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_rollback_converges_then_restart() {
    let svc = two_replicas("sw-roll", true).await;
    let t = tester(&svc).await;

    let plan = ask(&t, "rollback", None).await;
    let text = plan.text();
    assert!(text.contains("Roll back web?"), "{text}");
    assert!(
        text.contains(&format!("`{}` → `{}`", env::image("v2"), env::image("v1"))),
        "{text}"
    );
    assert!(text.contains("Swarm service"), "{text}");
    let id = confirm(&t, &plan).await;
    let edits = until_final(&t, id).await;
    let done = edits.last().cloned().unwrap_or_default();
    assert!(
        done.contains(&format!("web rolled back to `{}`", env::image("v1"))),
        "{done}"
    );
    assert!(done.contains("✅ Updated Swarm service"), "{done}");
    assert!(done.contains("✅ Converged after"), "{done}");
    assert!(
        edits.iter().any(|e| e.contains("Waiting for health")),
        "progress shown while Swarm rolls: {edits:#?}"
    );
    assert_eq!(svc.image(), env::image("v1"));
    assert_eq!(svc.running_images().len(), 2);
    assert!(svc
        .running_images()
        .iter()
        .all(|i| i.starts_with(&env::image("v1"))));

    // /restart: a forced rolling update, every task replaced.
    let plan = ask(&t, "restart", None).await;
    assert!(
        plan.text().contains("docker service update --force"),
        "{}",
        plan.text()
    );
    let id = confirm(&t, &plan).await;
    let done = until_final(&t, id).await.pop().unwrap_or_default();
    assert!(
        done.contains("web restarted") && done.contains("Done in"),
        "{done}"
    );
    assert_eq!(svc.format("{{.Spec.TaskTemplate.ForceUpdate}}"), "1");
    assert_eq!(svc.running_images().len(), 2);

    let rows = deployments::recent(&t.bot().app.store, "web", 10)
        .await
        .expect("history");
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert!(
        rows.iter().all(|r| r.status == Status::Succeeded),
        "{rows:#?}"
    );
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_rollback_reverts_when_the_target_is_unhealthy() {
    let svc = two_replicas("sw-revert", false).await;
    let t = tester(&svc).await;

    // v3's health check always fails: Swarm pauses the update, Klaxon rolls back.
    let plan = ask(&t, "rollback", Some(&env::image("v3"))).await;
    let id = confirm(&t, &plan).await;
    let edits = until_final(&t, id).await;
    let end = edits.last().cloned().unwrap_or_default();
    assert!(end.contains("Rollback of web reverted"), "{end}");
    assert!(end.contains("Reverted:"), "{end}");
    assert!(end.contains("✅ Rolled"), "{end}");
    assert!(end.contains("runs `klaxon-test/app:v2` again"), "{end}");
    assert_eq!(svc.image(), env::image("v2"));
    svc.wait_running(&env::image("v2"), 2, Duration::from_secs(30))
        .await;
    let rows = deployments::recent(&t.bot().app.store, "web", 10)
        .await
        .expect("history");
    assert_eq!(rows[0].status, Status::Reverted, "{rows:#?}");
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_task_failure_raises_one_alert() {
    let name = env::unique("sw-batch").replace('_', "-");
    let t = Tester::builder()
        .docker_host(&swarm_host())
        .swarm_service("batch", &name)
        .alerts(|a| {
            a.docker_events = true;
            a.group_wait_secs = 0;
            a.group_interval_secs = 1;
        })
        .spawn()
        .await;
    // Let the watcher look once (it learns the history) before the task fails.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let svc = SwarmService { name: name.clone() };
    klaxon_tests::swarm::docker(&[
        "service",
        "create",
        "--quiet",
        "--detach",
        "--name",
        &name,
        "--network",
        "host",
        "--no-resolve-image",
        "--restart-condition",
        "none",
        &env::image("v1"),
        "sh",
        "-c",
        "sleep 1; exit 3",
    ]);
    let alert = t.channel_message(ALERTS).await;
    let text = alert.text();
    assert!(text.contains("SwarmTaskFailed · batch"), "{text}");
    assert!(text.contains("non-zero exit (3)"), "{text}");
    // Seen again at every poll, raised once.
    tokio::time::sleep(Duration::from_secs(8)).await;
    drop(svc);
    t.finish().await;
}
