//! A real single-node Docker Swarm for the Swarm service tests (issue #16).
//!
//! `scripts/test.sh` turns its private engine into a one-node swarm and exports
//! `KLAXON_TEST_SWARM_HOST`; services are made with the docker CLI (as a team
//! would), run with `--network host` (the private engine has no bridge) and are
//! removed when the guard drops, so a failing test leaves nothing behind.

use std::process::Command;
use std::time::{Duration, Instant};

/// The engine that is a swarm manager.
pub fn swarm_host() -> String {
    match std::env::var("KLAXON_TEST_SWARM_HOST") {
        Ok(v) if !v.trim().is_empty() => v,
        _ => panic!(
            "KLAXON_TEST_SWARM_HOST is not set: this test needs a Docker engine in swarm mode; \
             run it with `scripts/test.sh` (it inits a single-node swarm on its private engine), \
             or `eval \"$(scripts/test.sh --env-only)\"` and rerun cargo test"
        ),
    }
}

/// `docker -H <swarm> ARGS`, its stdout; panics with stderr on failure.
pub fn docker(args: &[&str]) -> String {
    let host = swarm_host();
    let out = Command::new("docker")
        .arg("-H")
        .arg(&host)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running docker {args:?}: {e}"));
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A Swarm service that is removed when dropped.
pub struct SwarmService {
    pub name: String,
}

impl SwarmService {
    /// `docker service create --name <unique> --network host --no-resolve-image
    /// EXTRA... IMAGE [CMD...]`, waiting until it converges unless `--detach` is
    /// among `extra`.
    pub async fn create(prefix: &str, extra: &[&str], image: &str, cmd: &[&str]) -> SwarmService {
        let name = crate::env::unique(prefix).replace('_', "-");
        let mut args: Vec<String> = ["service", "create", "--quiet", "--name", &name]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(
            [
                "--network",
                "host",
                "--no-resolve-image",
                "--update-monitor",
                "1s",
                "--rollback-monitor",
                "1s",
                // The test images' shell ignores SIGTERM: every stop would cost 10 s.
                "--stop-grace-period",
                "1s",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        if !extra.contains(&"--detach") {
            args.push("--detach=false".into());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(image.to_string());
        args.extend(cmd.iter().map(|s| s.to_string()));
        let svc = SwarmService { name };
        tokio::task::spawn_blocking(move || {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            docker(&a)
        })
        .await
        .expect("docker service create");
        svc
    }

    /// `docker service inspect -f FORMAT`.
    pub fn format(&self, format: &str) -> String {
        docker(&["service", "inspect", "-f", format, &self.name])
    }

    /// The image of the service's spec (without a pinned digest).
    pub fn image(&self) -> String {
        let i = self.format("{{.Spec.TaskTemplate.ContainerSpec.Image}}");
        i.split('@').next().unwrap_or_default().to_string()
    }

    /// The images of the tasks Swarm means to run and that run.
    pub fn running_images(&self) -> Vec<String> {
        let out = docker(&[
            "service",
            "ps",
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Image}} {{.CurrentState}}",
            &self.name,
        ]);
        out.lines()
            .filter(|l| l.contains(" Running "))
            .map(|l| l.split(' ').next().unwrap_or_default().to_string())
            .collect()
    }

    /// Waits until `n` tasks run `image`, at most `within`.
    pub async fn wait_running(&self, image: &str, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let imgs = self.running_images();
            if imgs.len() == n && imgs.iter().all(|i| i.starts_with(image)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: not {n} tasks running {image} within {within:?}: {imgs:?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for SwarmService {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .arg("-H")
            .arg(swarm_host())
            .args(["service", "rm", &self.name])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}
