//! Several Docker engines end to end (issue 16): the shared private engine as
//! `default`, the second private engine over TCP with TLS as `edge`, and a
//! throwaway engine a test stops and starts again (`DockerHostDown`).

use std::time::{Duration, Instant};

use klaxon_core::permissions::Level;
use klaxon_tests::docker::{Containers, Spec};
use klaxon_tests::engine::PrivateEngine;
use klaxon_tests::fake::Member;
use klaxon_tests::fake::{MessageRecord, Output, OutputKind};
use klaxon_tests::tester::ALERTS;
use klaxon_tests::{env, Tester};

fn operator() -> Member {
    Tester::member(Some(Level::Operator))
}

/// The text's position of `needle`, which must be there.
fn at(text: &str, needle: &str) -> usize {
    text.find(needle)
        .unwrap_or_else(|| panic!("no {needle:?} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_groups_services_by_engine_tls_included_and_a_dead_engine_waits_for_nobody() {
    let mut c1 = Containers::new().await;
    let mut c2 = Containers::second().await;
    let web = c1.run("eng-web", Spec::new("v1").health("true")).await;
    let api = c2.run("eng-api", Spec::new("v1").health("true")).await;
    let batch = c2.run("eng-batch", Spec::new("v1").cmd("exit 3")).await;
    c1.wait_health(&web, "healthy").await;
    c2.wait_health(&api, "healthy").await;
    c2.wait_exited(&batch).await;
    let t = Tester::builder()
        .docker_host(c1.host())
        .docker_engine("edge", &env::docker_host2(), Some(&env::docker_tls_dir()))
        // An engine whose socket nobody serves.
        .docker_engine("gone", "unix:///tmp/klaxon-eng-nobody.sock", None)
        .service("web", Some(&web), None)
        .service("api", Some(&api), None)
        .on_host("edge")
        .service("batch", Some(&batch), None)
        .on_host("edge")
        .service("ghost", Some("ghost"), None)
        .on_host("gone")
        .spawn()
        .await;
    let asked = Instant::now();
    let reply = t
        .slash("health")
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    let took = asked.elapsed();
    let text = reply.text();
    // One heading per engine, in the config's order, its services below it.
    let default = at(&text, "🟢 host default");
    let web_at = at(&text, "🟢 web — healthy");
    let edge = at(&text, "🔴 host edge");
    let batch_at = at(&text, "🔴 batch — down");
    let api_at = at(&text, "🟢 api — healthy");
    let gone = at(&text, "🔴 host gone — not answering");
    let ghost = at(&text, "ghost —");
    assert!(default < web_at && web_at < edge, "{text}");
    assert!(
        edge < batch_at && batch_at < api_at && api_at < gone,
        "{text}"
    );
    assert!(gone < ghost, "{text}");
    assert!(text.contains("2 services, 1 not healthy"), "{text}");
    assert!(text.contains("container exited (exit code 3)"), "{text}");
    assert!(
        text.contains("Docker is unreachable at unix:///tmp/klaxon-eng-nobody.sock"),
        "{text}"
    );
    // Phone-friendly: no wide table lines.
    assert!(text.lines().all(|l| l.chars().count() <= 120), "{text}");
    // Every engine at once: the answer is the stats sample, not a sum of engines.
    assert!(took < Duration::from_secs(4), "/health took {took:?}");
    eprintln!("/health across 3 engines (one dead) answered in {took:?}");
    t.finish().await;
    c1.cleanup().await;
    c2.cleanup().await;
}

fn button(message: &MessageRecord, verb: &str) -> String {
    let prefix = format!("rollback:{verb}:");
    message
        .custom_ids()
        .into_iter()
        .find(|id| id.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {verb} button in {:?}", message.custom_ids()))
}

async fn final_edit(t: &Tester, click_id: u64) -> MessageRecord {
    loop {
        let o: Output = t
            .take("a progress edit", |o| {
                matches!(o.kind, OutputKind::EditOriginal { interaction_id } if interaction_id == click_id)
            })
            .await;
        let text = o.message.text();
        if text.contains("Done in") || text.contains("Reverted:") || text.contains("❌") {
            return o.message;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_restart_on_the_tls_engine() {
    let mut c2 = Containers::second().await;
    let name = c2
        .run(
            "eng-logs",
            Spec::new("v1")
                .cmd("while true; do echo \"INFO hello from the edge engine\"; sleep 0.2; done")
                .health("true"),
        )
        .await;
    c2.wait_health(&name, "healthy").await;
    let t = Tester::builder()
        .docker_engine("edge", &env::docker_host2(), Some(&env::docker_tls_dir()))
        .service("api", Some(&name), None)
        .on_host("edge")
        .rollback(|r| r.stop_timeout_secs = 1)
        .spawn()
        .await;
    let logs = t
        .slash("logs")
        .opt("service", "api")
        .opt("lines", 5)
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await;
    logs.assert_contains("hello from the edge engine");

    let plan = t
        .slash("restart")
        .opt("service", "api")
        .as_level(Level::Operator)
        .send()
        .await
        .reply()
        .await;
    plan.assert_contains("Restart api?");
    let ix = t
        .fake
        .click(operator(), &plan.message, &button(&plan.message, "confirm"))
        .await
        .expect("click");
    let id = ix.id;
    t.take(
        "the click's callback",
        |o| matches!(o.kind, OutputKind::Callback { interaction_id, .. } if interaction_id == id),
    )
    .await;
    let done = final_edit(&t, id).await;
    assert!(done.text().contains("✅ api restarted"), "{}", done.text());
    t.finish().await;
    c2.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_the_second_engine_raise_a_container_death_alert() {
    use bollard::query_parameters::KillContainerOptions;
    let mut c2 = Containers::second().await;
    let name = c2.run("eng-ev", Spec::new("v1")).await;
    let t = Tester::builder()
        .docker_engine("edge", &env::docker_host2(), Some(&env::docker_tls_dir()))
        .service("api", Some(&name), None)
        .on_host("edge")
        .alerts(|a| {
            a.docker_events = true;
            a.group_wait_secs = 0;
            a.group_interval_secs = 1;
        })
        .spawn()
        .await;
    // Let the edge engine's event stream connect before the container dies.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    c2.docker
        .kill_container(&name, None::<KillContainerOptions>)
        .await
        .expect("kill");
    let died = t.channel_message(ALERTS).await;
    assert!(
        died.text().contains("FIRING · ContainerDied · api (1)"),
        "{}",
        died.text()
    );
    assert!(
        died.text().contains("exited with code 137"),
        "{}",
        died.text()
    );
    t.finish().await;
    c2.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_engine_is_one_docker_host_down_alert_resolved_when_it_returns() {
    let mut engine = tokio::task::spawn_blocking(PrivateEngine::start)
        .await
        .expect("engine");
    let mut c3 = Containers::on(&engine.host(), None).await;
    let alpha = c3.run("eng-alpha", Spec::new("v1")).await;
    let beta = c3.run("eng-beta", Spec::new("v1")).await;
    let t = Tester::builder()
        .docker_engine("spare", &engine.host(), None)
        .service("alpha", Some(&alpha), None)
        .on_host("spare")
        .service("beta", Some(&beta), None)
        .on_host("spare")
        .alerts(|a| {
            a.docker_events = true;
            a.group_wait_secs = 0;
            a.group_interval_secs = 1;
        })
        .spawn()
        .await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    // Its containers go down with it: one host alert, no container alerts.
    let stopped = Instant::now();
    engine = tokio::task::spawn_blocking(move || {
        engine.stop();
        engine
    })
    .await
    .expect("stop");
    let down = t.channel_message(ALERTS).await;
    let text = down.text();
    eprintln!(
        "DockerHostDown posted {:?} after the stop began",
        stopped.elapsed()
    );
    assert!(
        text.contains("FIRING · DockerHostDown · docker host spare (1)"),
        "{text}"
    );
    assert!(text.contains("services on it: alpha, beta"), "{text}");
    assert!(!text.contains("ContainerDied"), "{text}");
    engine = tokio::task::spawn_blocking(move || {
        engine.start_again();
        engine
    })
    .await
    .expect("start");
    let back = t.channel_edit(ALERTS).await;
    assert_eq!(back.id, down.id);
    assert!(
        back.text()
            .contains("RESOLVED · DockerHostDown · docker host spare (1)"),
        "{}",
        back.text()
    );
    // Nothing else: no ContainerDied for alpha or beta (finish fails on unread output).
    tokio::time::sleep(Duration::from_secs(6)).await;
    t.finish().await;
    c3.cleanup().await;
    drop(c3);
    tokio::task::spawn_blocking(move || drop(engine))
        .await
        .expect("drop");
}
