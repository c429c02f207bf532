//! Backends failing under Klaxon: the Docker engine going away and coming back,
//! PostgreSQL restarting under load, the SQLite disk filling up. The real engine and
//! database keep running for the other tests; a cuttable proxy in front of them (or
//! a small disk of the test's own) makes the fault.

use std::time::{Duration, Instant};

use bollard::query_parameters::KillContainerOptions;
use klaxon::config::Secret;
use klaxon_core::permissions::Level;
use klaxon_tests::docker::{Containers, Spec};
use klaxon_tests::faults::Cuttable;
use klaxon_tests::tester::ALERTS;
use klaxon_tests::{env, Tester};
use serde_json::{json, Value};

const TOKEN: &str = "generic-token";

async fn post(addr: std::net::SocketAddr, body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/alerts/generic"))
        .bearer_auth(TOKEN)
        .timeout(Duration::from_secs(15))
        .json(body)
        .send()
        .await
        .expect("the intake answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The engine stops: /health says Docker is unreachable (and answers in time) and
/// one DockerHostDown alert fires; it comes back: /health is green again, the alert
/// resolves, and the event stream has reconnected by itself (a container killed
/// after the engine settled is reported).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docker_engine_stopping_and_coming_back() {
    let mut c = Containers::new().await;
    let name = c.run("fault-api", Spec::new("v1")).await;
    let dir = tempfile::tempdir().expect("dir");
    let proxy = Cuttable::docker(c.host(), dir.path()).await;
    let t = Tester::builder()
        .docker_host(&proxy.docker_host())
        .service("api", Some(&name), None)
        .alerts(|a| {
            a.docker_events = true;
            a.group_wait_secs = 0;
        })
        .spawn()
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    proxy.cut();
    let down = t
        .slash("health")
        .opt("service", "api")
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    down.assert_contains("Docker is unreachable");
    assert!(down.ack_latency < Duration::from_secs(3));
    // The outage is one alert for the host, not one per container.
    let host_down = t.channel_message(ALERTS).await;
    assert!(
        host_down
            .text()
            .contains("FIRING · DockerHostDown · docker host default (1)"),
        "{}",
        host_down.text()
    );

    proxy.restore().await;
    let up = t
        .slash("health")
        .opt("service", "api")
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    up.assert_contains("api is healthy");
    let back = t.channel_edit(ALERTS).await;
    assert!(
        back.text()
            .contains("RESOLVED · DockerHostDown · docker host default (1)"),
        "{}",
        back.text()
    );
    // The stream reconnects on its own (backing off while the engine was gone);
    // an event from after the engine settled (events within SETTLE_SECS of its
    // return are the outage's, see `alerts::hosts`) is seen, even one from before
    // the stream reconnects.
    tokio::time::sleep(Duration::from_secs(6)).await;
    c.docker
        .kill_container(&name, None::<KillContainerOptions>)
        .await
        .expect("kill");
    let died = t.channel_message(ALERTS).await;
    assert!(
        died.text().contains("ContainerDied · api"),
        "{}",
        died.text()
    );
    t.finish().await;
    c.cleanup().await;
}

/// PostgreSQL goes away for a few seconds under a steady stream of alerts: the intake
/// answers 503 meanwhile (so senders retry), and every alert it accepted, before,
/// during and after, is stored and shown once the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarting_under_load_loses_no_accepted_alert() {
    let real = env::fresh_pg_database().await;
    // postgres://user@127.0.0.1:PORT/db -> through the proxy.
    let hostport = real
        .split('@')
        .nth(1)
        .and_then(|r| r.split('/').next())
        .expect("host:port in KLAXON_TEST_PG_URL");
    let upstream: std::net::SocketAddr = hostport.parse().expect("127.0.0.1:port");
    let proxy = Cuttable::tcp(upstream).await;
    let url = real.replace(hostport, &proxy.addr().to_string());
    let t = Tester::builder()
        .database_url(&url)
        .intake(|i| i.generic_token = Secret::new(TOKEN))
        .alerts(|a| {
            a.group_wait_secs = 1;
            a.group_interval_secs = 1;
        })
        .spawn()
        .await;
    let addr = t.bot().http_addr;

    // 30 notifications, one every 200 ms; each retried on 503 like Alertmanager.
    let sender = tokio::spawn(async move {
        let mut refused = 0;
        for i in 0..30 {
            let body = json!({"name": "Load", "service": "api", "severity": "warning",
                              "summary": "steady", "labels": {"instance": format!("i-{i:02}")}});
            let deadline = Instant::now() + Duration::from_secs(40);
            loop {
                let (status, reply) = post(addr, &body).await;
                if status == 200 {
                    break;
                }
                assert_eq!(status, 503, "{reply}");
                assert_eq!(
                    reply["error"],
                    "storage unavailable; nothing was stored, retry"
                );
                refused += 1;
                assert!(Instant::now() < deadline, "the intake never recovered");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        refused
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.cut();
    let ready = reqwest::get(format!("http://{addr}/readyz"))
        .await
        .expect("readyz");
    assert_eq!(
        ready.status().as_u16(),
        503,
        "not ready without its database"
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    proxy.restore().await;
    let refused = sender.await.expect("sender");
    assert!(refused > 0, "the outage was felt by the intake");

    // Every accepted alert is stored and, once delivered, shown: one group of 30.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let shown = t
            .fake
            .messages(ALERTS)
            .iter()
            .any(|m| m.text().contains("Load · api (30)"));
        if shown {
            break;
        }
        assert!(Instant::now() < deadline, "{:#?}", t.fake.messages(ALERTS));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let firing = klaxon_core::store::alerts::firing(&t.bot().app.store)
        .await
        .expect("the database is back");
    assert_eq!(firing.len(), 30);
    assert_eq!(t.fake.messages(ALERTS).len(), 1, "one message, edited");
    t.discard_unread().await;
    t.finish().await;
}

/// A small disk of the test's own: mounted tmpfs (needs root, as scripts/test.sh runs).
struct SmallDisk {
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(megabytes: u32) -> SmallDisk {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).expect("mount point");
        let size = format!("size={megabytes}m");
        let mut args = vec!["mount", "-t", "tmpfs", "-o", &size, "tmpfs"];
        let p = path.display().to_string();
        args.push(&p);
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let status = if root {
            std::process::Command::new(args[0])
                .args(&args[1..])
                .status()
        } else {
            std::process::Command::new("sudo")
                .arg("-n")
                .args(&args)
                .status()
        };
        match status {
            Ok(s) if s.success() => {}
            other => panic!(
                "this test mounts a {megabytes} MiB tmpfs to fill a disk and needs root (or \
                 passwordless sudo): run the suite with scripts/test.sh as root ({other:?})"
            ),
        }
        SmallDisk { path, _dir: dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let p = self.path.display().to_string();
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&p)
            .status();
        let _ = std::process::Command::new("sudo")
            .args(["-n", "umount", "-l", &p])
            .status();
    }
}

/// The SQLite disk fills up: the intake answers 503 naming the cause (a command that
/// cannot write says so in words: `hooks::generic_reply`), nothing half-written is
/// left; with space again everything works and
/// the database checks clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_sqlite_is_reported_and_recovered_from() {
    let disk = SmallDisk::mount(8);
    let db = disk.path.join("klaxon.db");
    let t = Tester::builder()
        .database_url(&format!("sqlite://{}", db.display()))
        .intake(|i| i.generic_token = Secret::new(TOKEN))
        .alerts(|a| a.group_wait_secs = 3_600)
        .spawn()
        .await;
    let addr = t.bot().http_addr;
    let (status, _) = post(addr, &json!({"name": "Before", "summary": "x"})).await;
    assert_eq!(status, 200);

    // Fill the disk to the last byte.
    let filler = disk.path.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).expect("filler");
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.flush();
    }
    // Big notifications until the database cannot grow.
    let big = "x".repeat(20_000);
    let mut full = None;
    for i in 0..200 {
        let alerts: Vec<Value> = (0..40)
            .map(|j| json!({"name": format!("Fill{i}-{j}"), "summary": big}))
            .collect();
        let (status, reply) = post(addr, &json!({ "alerts": alerts })).await;
        if status != 200 {
            full = Some((status, reply));
            break;
        }
    }
    let (status, reply) = full.expect("the disk filled up");
    assert_eq!(status, 503, "{reply}");
    assert_eq!(reply["reason"], "the database's disk is full", "{reply}");
    // /readyz still answers: reads work on a full disk.
    let ready = reqwest::get(format!("http://{addr}/readyz"))
        .await
        .expect("readyz");
    assert_eq!(ready.status().as_u16(), 200);

    // Space again: writes work, and nothing is corrupt.
    std::fs::remove_file(&filler).expect("free the disk");
    let (status, reply) = post(addr, &json!({"name": "After", "summary": "x"})).await;
    assert_eq!(status, 200, "{reply}");
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(t.bot().app.store.pool())
        .await
        .expect("integrity_check");
    assert_eq!(check, "ok");
    let firing = klaxon_core::store::alerts::firing(&t.bot().app.store)
        .await
        .expect("firing");
    assert!(firing.iter().any(|a| a.name == "Before"));
    assert!(firing.iter().any(|a| a.name == "After"));
    t.finish().await;
}
