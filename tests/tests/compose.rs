//! Compose replicas end to end (issue #16): `/health` n/m, `/logs` merged with
//! replica prefixes, rolling `/rollback` (with put-back) and `/restart`, and
//! `/scale` 2 → 4 → 1 with its private refusals; fake Discord, the real bot, the
//! private test engine. The replicas are created here with compose's labels (no
//! compose CLI needed: the labels are the whole contract), `--network none`, and
//! a busybox health check.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, ContainerInspectResponse, HealthConfig, HostConfig};
use bollard::query_parameters::{CreateContainerOptions, ListContainersOptions};
use bollard::Docker;
use klaxon_core::permissions::Level;
use klaxon_core::store::deployments::{self, Status};
use klaxon_tests::fake::{Member, MessageRecord, OutputKind};
use klaxon_tests::{env, Reply, Tester};

const PROJECT_LABEL: &str = "com.docker.compose.project";
const SERVICE_LABEL: &str = "com.docker.compose.service";
const NUMBER_LABEL: &str = "com.docker.compose.container-number";

/// Healthy unless the file /tmp/sick exists, or the replica runs v3 and its
/// REPLICA number is in BAD_ON_V3 (a release that fails on some replicas only).
const HEALTH: &str =
    "test ! -f /tmp/sick && ! { grep -q v3 /VERSION && echo \" $BAD_ON_V3 \" | grep -q \" $REPLICA \"; }";

/// One compose project in the test engine; every container with its label is
/// removed when it is dropped (those Klaxon made too).
struct Project {
    docker: Docker,
    host: String,
    project: String,
}

impl Project {
    async fn new() -> Self {
        let host = env::docker_host();
        let path = host.trim_start_matches("unix://");
        let docker = Docker::connect_with_unix(path, 30, bollard::API_DEFAULT_VERSION)
            .unwrap_or_else(|e| panic!("cannot use the test engine at {host}: {e}"));
        let docker = docker.negotiate_version().await.unwrap_or_else(|e| {
            panic!("the test engine at {host} does not answer: {e}; is scripts/test.sh running it?")
        });
        Project {
            docker,
            host,
            project: env::unique("cmp").replace('_', "-").to_lowercase(),
        }
    }

    fn compose(&self) -> String {
        format!("{}/api", self.project)
    }

    /// Replica `n` of service `api` on `tag`, as `docker compose` would run it.
    async fn replica(&self, n: u32, tag: &str, bad_on_v3: &str) -> String {
        let name = format!("{}-api-{n}", self.project);
        let labels = HashMap::from([
            (PROJECT_LABEL.to_string(), self.project.clone()),
            (SERVICE_LABEL.to_string(), "api".to_string()),
            (NUMBER_LABEL.to_string(), n.to_string()),
        ]);
        let body = ContainerCreateBody {
            image: Some(env::image(tag)),
            env: Some(vec![
                format!("REPLICA={n}"),
                format!("BAD_ON_V3={bad_on_v3}"),
            ]),
            labels: Some(labels),
            healthcheck: Some(HealthConfig {
                test: Some(vec!["CMD-SHELL".into(), HEALTH.into()]),
                interval: Some(500_000_000),
                timeout: Some(1_000_000_000),
                retries: Some(1),
                start_period: None,
                start_interval: None,
            }),
            host_config: Some(HostConfig {
                network_mode: Some("none".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await
            .unwrap_or_else(|e| {
                panic!("creating {name}: {e} (images are built by scripts/test.sh)")
            });
        self.docker
            .start_container(&name, None)
            .await
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        name
    }

    /// Every container of the project: (name, number, configured image, running).
    async fn containers(&self) -> Vec<(String, u32, String, bool)> {
        let opts = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![format!("{PROJECT_LABEL}={}", self.project)],
            )])),
            ..Default::default()
        };
        let mut out: Vec<(String, u32, String, bool)> = self
            .docker
            .list_containers(Some(opts))
            .await
            .expect("listing containers")
            .into_iter()
            .map(|c| {
                let labels = c.labels.unwrap_or_default();
                (
                    c.names
                        .unwrap_or_default()
                        .first()
                        .map(|n| n.trim_start_matches('/').to_string())
                        .unwrap_or_default(),
                    labels
                        .get(NUMBER_LABEL)
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0),
                    c.image.unwrap_or_default(),
                    c.state.map(|s| s.to_string()).as_deref() == Some("running"),
                )
            })
            .collect();
        out.sort_by_key(|c| c.1);
        out
    }

    async fn inspect(&self, name: &str) -> ContainerInspectResponse {
        self.docker
            .inspect_container(name, None)
            .await
            .unwrap_or_else(|e| panic!("inspecting {name}: {e}"))
    }

    async fn wait_health(&self, name: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = self
                .inspect(name)
                .await
                .state
                .and_then(|s| s.health)
                .and_then(|h| h.status)
                .map(|s| s.to_string())
                .unwrap_or_default();
            if status == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never became {want} (last: {status})"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn docker_cli(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("docker")
            .arg("-H")
            .arg(&self.host)
            .args(args)
            .output()
            .expect("docker CLI");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let filter = format!("label={PROJECT_LABEL}={}", self.project);
        let ids = self.docker_cli(&["ps", "-aq", "--filter", &filter]);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            self.docker_cli(&args);
        }
    }
}

fn operator() -> Member {
    Tester::member(Some(Level::Operator))
}

async fn tester(p: &Project) -> Tester {
    Tester::builder()
        .docker_host(&p.host)
        .compose_service("api", &p.compose())
        .rollback(|r| {
            r.stop_timeout_secs = 1;
            r.health_timeout_secs = 6;
            r.max_replicas = 6;
        })
        .spawn()
        .await
}

async fn ask(t: &Tester, command: &str, opts: &[(&str, serde_json::Value)]) -> Reply {
    let mut slash = t.slash(command).opt("service", "api");
    for (k, v) in opts {
        slash = slash.opt(k, v.clone());
    }
    slash.as_level(Level::Operator).send().await.reply().await
}

/// Confirms a plan and returns the final progress text.
async fn confirm(t: &Tester, plan: &MessageRecord) -> String {
    let id = plan
        .custom_ids()
        .into_iter()
        .find(|id| id.starts_with("rollback:confirm:"))
        .unwrap_or_else(|| panic!("no confirm button in {:?}", plan.custom_ids()));
    let ix = t.fake.click(operator(), plan, &id).await.expect("click");
    let click_id = ix.id;
    t.take("the click's callback", |o| {
        matches!(o.kind, OutputKind::Callback { interaction_id, .. } if interaction_id == click_id)
    })
    .await;
    loop {
        let o = t
            .take("a progress edit", |o| {
                matches!(o.kind, OutputKind::EditOriginal { interaction_id } if interaction_id == click_id)
            })
            .await;
        let text = o.message.text();
        if text.contains("Done in") || text.contains("Reverted:") || text.contains("❌") {
            return text;
        }
    }
}

async fn history(t: &Tester) -> (Status, Vec<String>) {
    let rows = deployments::recent(&t.bot().app.store, "api", 1)
        .await
        .expect("history");
    let row = rows.first().expect("a deployment row");
    let steps = deployments::steps(&t.bot().app.store, row.id)
        .await
        .expect("steps")
        .into_iter()
        .map(|s| format!("{} {}", s.step, s.detail))
        .collect();
    (row.status, steps)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_counts_replicas_and_logs_merge_them() {
    let p = Project::new().await;
    let mut names = Vec::new();
    for n in 1..=3 {
        names.push(p.replica(n, "v2", "").await);
    }
    p.docker_cli(&["exec", &names[2], "touch", "/tmp/sick"]);
    p.wait_health(&names[0], "healthy").await;
    p.wait_health(&names[2], "unhealthy").await;
    let t = tester(&p).await;

    let reply = t
        .slash("health")
        .opt("service", "api")
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    reply
        .assert_contains("2/3 healthy")
        .assert_contains(&format!("worst: #3 `{}`", names[2]))
        .assert_contains("Docker health check failing");

    // Each image prints a line a second: three replicas, merged, numbered.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let reply = t
        .slash("logs")
        .opt("service", "api")
        .opt("lines", 30)
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    let text = reply.text();
    for n in 1..=3 {
        assert!(
            text.contains(&format!("[{n}] ")) && text.contains("INFO app v2 ok"),
            "replica {n} in {text}"
        );
    }
    // Time order: the HH:MM:SS stamps never go back.
    let stamps: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("] ") && l.len() > 8 && l.as_bytes()[2] == b':')
        .map(|l| &l[..8])
        .collect();
    assert!(stamps.len() >= 6, "{text}");
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{text}");
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_rollback_puts_every_replica_back_then_converges() {
    let p = Project::new().await;
    let mut names = Vec::new();
    for n in 1..=3 {
        // v3 fails its health check on replica 3 only: replicas 1 and 2 roll first.
        names.push(p.replica(n, "v2", "3").await);
    }
    for n in &names {
        p.wait_health(n, "healthy").await;
    }
    let ids_before: Vec<Option<String>> = {
        let mut v = Vec::new();
        for n in &names {
            v.push(p.inspect(n).await.id);
        }
        v
    };
    let t = tester(&p).await;

    let plan = ask(&t, "rollback", &[("to", env::image("v3").into())]).await;
    plan.assert_contains("3 replicas of compose")
        .assert_contains("one at a time");
    let text = confirm(&t, &plan.message).await;
    assert!(text.contains("↩️ Rollback of api reverted"), "{text}");
    assert!(
        text.contains(&format!("`{}` healthy after", names[1])),
        "{text}"
    );
    assert!(
        text.contains("3 replica(s) changed so far put back"),
        "{text}"
    );
    for (i, n) in names.iter().enumerate() {
        let info = p.inspect(n).await;
        assert_eq!(
            info.config.and_then(|c| c.image).as_deref(),
            Some(env::image("v2").as_str()),
            "{n} is on the old image"
        );
        assert_eq!(info.id, ids_before[i], "{n} is the original container");
        assert_eq!(info.state.and_then(|s| s.running), Some(true));
    }
    let left = p.containers().await;
    assert_eq!(left.len(), 3, "no kept container left: {left:?}");
    let (status, steps) = history(&t).await;
    assert_eq!(status, Status::Reverted);
    let restored: Vec<&String> = steps.iter().filter(|s| s.starts_with("restored")).collect();
    assert_eq!(restored.len(), 3, "{steps:#?}");
    assert!(restored[0].contains(&names[2]) && restored[2].contains(&names[0]));

    // A good target converges, one replica at a time.
    let plan = ask(&t, "rollback", &[("to", env::image("v1").into())]).await;
    let text = confirm(&t, &plan.message).await;
    assert!(text.contains("rolled back to"), "{text}");
    assert!(text.contains("Done in"), "{text}");
    let now = p.containers().await;
    assert_eq!(now.len(), 3, "{now:?}");
    for (name, n, image, running) in &now {
        assert_eq!(image, &env::image("v1"), "{name}");
        assert!(*running, "{name}");
        assert_eq!(name, &format!("{}-api-{n}", p.project));
    }
    let (status, steps) = history(&t).await;
    assert_eq!(status, Status::Succeeded);
    // Replica 1 is healthy before replica 2 is stopped.
    let pos = |prefix: &str, name: &str| {
        steps
            .iter()
            .position(|s| s.starts_with(prefix) && s.contains(&format!("`{name}`")))
            .unwrap_or_else(|| panic!("no {prefix} of {name}: {steps:#?}"))
    };
    assert!(pos("healthy", &names[0]) < pos("stopped", &names[1]));
    assert!(pos("healthy", &names[1]) < pos("stopped", &names[2]));

    // Rolling restart: every replica restarted, one after the other.
    let started: Vec<Option<String>> = {
        let mut v = Vec::new();
        for n in &names {
            v.push(p.inspect(n).await.state.and_then(|s| s.started_at));
        }
        v
    };
    let plan = ask(&t, "restart", &[]).await;
    plan.assert_contains("one at a time");
    let text = confirm(&t, &plan.message).await;
    assert!(
        text.contains("api restarted") && text.contains("Done in"),
        "{text}"
    );
    for (i, n) in names.iter().enumerate() {
        let after = p.inspect(n).await.state.and_then(|s| s.started_at);
        assert_ne!(after, started[i], "{n} was restarted");
    }
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_two_to_four_to_one_and_refusals() {
    let p = Project::new().await;
    for n in 1..=2 {
        let name = p.replica(n, "v2", "").await;
        p.wait_health(&name, "healthy").await;
    }
    let t = tester(&p).await;

    // 0 and past max_replicas: private refusals, nothing asked of Docker.
    for bad in [0, 7] {
        let reply = ask(&t, "scale", &[("replicas", bad.into())]).await;
        assert!(reply.ephemeral(), "{}", reply.text());
        reply.assert_contains("can run 1 to 6 replicas");
    }

    let plan = ask(&t, "scale", &[("replicas", 4.into())]).await;
    plan.assert_contains("Scale api to 4 replicas?")
        .assert_contains("2 → 4 replicas");
    let text = confirm(&t, &plan.message).await;
    assert!(text.contains("api scaled to 4 replicas"), "{text}");
    let now = p.containers().await;
    let numbers: Vec<u32> = now.iter().map(|c| c.1).collect();
    assert_eq!(numbers, [1, 2, 3, 4], "{now:?}");
    for (name, n, image, running) in &now {
        assert_eq!(name, &format!("{}-api-{n}", p.project));
        assert_eq!(image, &env::image("v2"));
        assert!(*running, "{name}");
    }
    // Cloned: the environment, labels and health check of a running replica.
    let new = p.inspect(&now[3].0).await;
    let cfg = new.config.unwrap_or_default();
    assert!(cfg
        .env
        .unwrap_or_default()
        .contains(&"REPLICA=1".to_string()));
    let labels = cfg.labels.unwrap_or_default();
    assert_eq!(labels.get(SERVICE_LABEL).map(String::as_str), Some("api"));
    assert_eq!(labels.get(NUMBER_LABEL).map(String::as_str), Some("4"));
    assert!(cfg.healthcheck.is_some());
    assert_eq!(
        new.host_config.and_then(|h| h.network_mode).as_deref(),
        Some("none")
    );
    let (status, _) = history(&t).await;
    assert_eq!(status, Status::Succeeded);

    let plan = ask(&t, "scale", &[("replicas", 1.into())]).await;
    plan.assert_contains("4 → 1 replicas");
    let text = confirm(&t, &plan.message).await;
    assert!(text.contains("api scaled to 1 replicas"), "{text}");
    let now = p.containers().await;
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(now[0].1, 1, "the highest numbers went first");
    let (_, steps) = history(&t).await;
    let removed: Vec<&String> = steps.iter().filter(|s| s.starts_with("removed")).collect();
    assert_eq!(removed.len(), 3, "{steps:#?}");
    assert!(removed[0].contains("replica 4") && removed[2].contains("replica 2"));

    // The same count: refused.
    let reply = ask(&t, "scale", &[("replicas", 1.into())]).await;
    reply.assert_contains("already runs 1 replicas");
    t.finish().await;
}

/// A compose project that matches nothing: a start-up warning naming the key (not
/// an error), `/health` says so, and `/rollback` / `/scale` answer privately.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_matching_nothing_is_a_warning_and_a_private_answer() {
    let p = Project::new().await;
    let t = tester(&p).await;
    let warnings = klaxon_core::rollout::replicas::unmatched(&t.bot().app).await;
    assert_eq!(
        warnings,
        [format!(
            "services[0].compose: `{}` (service `api`) matches no container on the engine yet",
            p.compose()
        )]
    );
    let reply = t
        .slash("health")
        .opt("service", "api")
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    reply
        .assert_contains("0 replicas of compose")
        .assert_contains(&format!("no container of compose `{}` found", p.compose()));
    for (command, opts) in [
        ("rollback", vec![("to", env::image("v1").into())]),
        ("scale", vec![("replicas", 2.into())]),
    ] {
        let reply = ask(&t, command, &opts).await;
        assert!(reply.ephemeral(), "{command}: {}", reply.text());
        reply.assert_contains("No container of compose");
    }
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_dies_raises_a_container_death_alert() {
    use bollard::query_parameters::KillContainerOptions;
    let p = Project::new().await;
    let mut names = Vec::new();
    for n in 1..=2 {
        let name = p.replica(n, "v2", "").await;
        p.wait_health(&name, "healthy").await;
        names.push(name);
    }
    let t = Tester::builder()
        .docker_host(&p.host)
        .compose_service("api", &p.compose())
        .alerts(|a| {
            a.docker_events = true;
            a.group_wait_secs = 0;
            a.group_interval_secs = 1;
        })
        .spawn()
        .await;
    // Let the event stream connect before the replica dies.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    p.docker
        .kill_container(&names[1], None::<KillContainerOptions>)
        .await
        .expect("kill");
    // The death, from the replica's labels (a health check slowed by a busy
    // machine may also report the replica unhealthy: that message is not read).
    let died = t
        .take("the ContainerDied alert", |o| {
            matches!(o.kind, OutputKind::ChannelMessage { channel_id } if channel_id == klaxon_tests::tester::ALERTS)
                && o.message.text().contains("ContainerDied")
        })
        .await
        .message;
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
    t.discard_unread().await;
    t.finish().await;
}
