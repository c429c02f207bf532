//! A throwaway private Docker engine a test (or a bench) starts, stops and starts
//! again itself: the `DockerHostDown` test stops an engine, which must not be the
//! shared ones other tests are using at the same time.
//!
//! Same options as `scripts/test.sh` (`--bridge=none --iptables=false
//! --ip-forward=false`, its own socket, data root, exec root and pidfile under
//! `/tmp/klaxon-eng-*`); the test images are copied in from the shared engine
//! (`docker save | docker load`). Dropping it removes its containers, stops it
//! and removes its directory.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::env;

pub struct PrivateEngine {
    dir: PathBuf,
    child: Option<Child>,
}

impl PrivateEngine {
    /// Starts a new engine and loads the test images into it.
    pub fn start() -> Self {
        let dir = PathBuf::from(format!(
            "/tmp/klaxon-eng-{}",
            env::unique("e").replace('_', "")
        ));
        let dir = PathBuf::from(
            dir.display()
                .to_string()
                .chars()
                .take(40)
                .collect::<String>(),
        );
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        // dockerd < 23 writes its trust key to /etc/docker unless told otherwise.
        std::fs::write(
            dir.join("daemon.json"),
            format!(
                "{{ \"deprecated-key-path\": \"{}\" }}\n",
                dir.join("key.json").display()
            ),
        )
        .expect("daemon.json");
        let mut e = PrivateEngine { dir, child: None };
        e.start_again();
        e.load_images();
        e
    }

    /// `unix:///tmp/klaxon-eng-*/docker.sock`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.join("docker.sock").display())
    }

    fn docker(&self) -> Command {
        let mut c = Command::new("docker");
        c.args(["-H", &self.host()]);
        c
    }

    fn answers(&self) -> bool {
        self.docker()
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Starts the engine (again, after [`stop`](Self::stop)) and waits until it answers.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the engine is running");
        let d = |p: &str| self.dir.join(p).display().to_string();
        let log = std::fs::File::create(self.dir.join("dockerd.log")).expect("dockerd.log");
        let child = Command::new("dockerd")
            .args(["--host", &self.host()])
            .args(["--data-root", &d("root")])
            .args(["--exec-root", &d("exec")])
            .args(["--pidfile", &d("docker.pid")])
            .args(["--config-file", &d("daemon.json")])
            .args(["--bridge=none", "--iptables=false", "--ip-forward=false"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start dockerd ({e}): a test engine needs dockerd and root; {}",
                    "run the suite with scripts/test.sh"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.answers() {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!(
                        "dockerd exited ({status}); see {}",
                        self.dir.join("dockerd.log").display()
                    );
                }
            }
            assert!(Instant::now() < deadline, "dockerd not ready after 60 s");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops the engine (SIGTERM, as `systemctl stop docker`) and waits until it is gone.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn load_images(&self) {
        let tags = ["v1", "v2", "v3"].map(env::image);
        let mut save = Command::new("docker")
            .args(["-H", &env::docker_host(), "save"])
            .args(&tags)
            .stdout(Stdio::piped())
            .spawn()
            .expect("docker save");
        let out = save.stdout.take().expect("save's output");
        let load = self
            .docker()
            .arg("load")
            .stdin(out)
            .stdout(Stdio::null())
            .status()
            .expect("docker load");
        let saved = save.wait().expect("docker save");
        assert!(
            saved.success() && load.success(),
            "copying the test images into {} failed",
            self.host()
        );
    }
}

impl Drop for PrivateEngine {
    fn drop(&mut self) {
        if self.child.is_some() {
            if let Ok(out) = self.docker().args(["ps", "-aq"]).output() {
                let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .map(String::from)
                    .collect();
                if !ids.is_empty() {
                    let _ = self
                        .docker()
                        .args(["rm", "-f"])
                        .args(&ids)
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                }
            }
            self.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
