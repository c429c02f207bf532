//! Rolling operations over the replicas of a compose service: one replica at a
//! time, each healthy before the next is touched, so the service keeps serving.
//!
//! The order and the put-back are one pure loop ([`roll`]) over a [`Roll`]: what
//! one step does to one replica is the implementation's (Docker here, a recording
//! fake in the tests). A replica that does not become healthy puts itself and every
//! replica changed before it back, newest first; the old containers of a rollback
//! are kept (stopped, renamed aside) until every replica is healthy, so putting one
//! back is a rename, not a rebuild. Each step is shown, recorded in the deployment
//! history and audited through [`Run::step`].

use tracing::warn;

use crate::docker::images::short_id;
use crate::docker::{DockerClient, DockerError, ImageInfo};
use crate::store::deployments::{self, Status};

use super::model::Phase;
use super::run::{End, Run};
use super::spec::{extra_networks, recreate_body, state_text};

/// How changing one replica failed.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum ChangeError {
    /// Nothing of this replica changed: it runs as before.
    Untouched(String),
    /// It changed part way: it is put back too.
    Partial(String),
}

/// One replica's steps, as [`roll`] drives them.
pub(super) trait Roll {
    /// Changes replica `i` (stop, replace, start; or restart).
    async fn change(&mut self, i: usize) -> Result<(), ChangeError>;
    /// Waits until replica `i` is healthy.
    async fn healthy(&mut self, i: usize) -> Result<(), String>;
    /// Puts replica `i` back as it was.
    async fn put_back(&mut self, i: usize) -> Result<(), String>;
    /// Every replica is healthy: drops what was kept of replica `i`.
    async fn finish(&mut self, i: usize);
}

/// How a rolling operation ended.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Rolled {
    Done,
    /// Replica `failed` did not make it (`reason`); `put_back` lists the replicas
    /// put back, in the order it happened; `errors` those that could not be.
    Reverted {
        failed: usize,
        reason: String,
        put_back: Vec<usize>,
        errors: Vec<(usize, String)>,
    },
}

/// Replicas `0..n`, one at a time; see the module docs.
pub(super) async fn roll<R: Roll>(r: &mut R, n: usize) -> Rolled {
    for i in 0..n {
        // How many replicas (from the first) were changed when it failed.
        let failure = match r.change(i).await {
            Err(ChangeError::Untouched(reason)) => Some((reason, i)),
            Err(ChangeError::Partial(reason)) => Some((reason, i + 1)),
            Ok(()) => r.healthy(i).await.err().map(|reason| (reason, i + 1)),
        };
        if let Some((reason, changed)) = failure {
            let mut put_back = Vec::new();
            let mut errors = Vec::new();
            for j in (0..changed).rev() {
                match r.put_back(j).await {
                    Ok(()) => put_back.push(j),
                    Err(e) => errors.push((j, e)),
                }
            }
            return Rolled::Reverted {
                failed: i,
                reason,
                put_back,
                errors,
            };
        }
    }
    for i in 0..n {
        r.finish(i).await;
    }
    Rolled::Done
}

/// A rolling rollback: each replica recreated on the target image.
struct RollBack<'a> {
    run: &'a Run,
    engine: &'a DockerClient,
    target: ImageInfo,
    names: Vec<String>,
    /// Per replica: where its original container waits while the new one starts.
    kept: Vec<Option<String>>,
    /// Per replica: the image it ran (as configured), for the put-back line.
    was: Vec<String>,
    /// Per replica: it ran the target already, so nothing was done to it.
    skipped: Vec<bool>,
}

impl Roll for RollBack<'_> {
    async fn change(&mut self, i: usize) -> Result<(), ChangeError> {
        let (engine, run) = (self.engine, self.run);
        let name = self.names[i].clone();
        let target = self.target.reference.clone();
        run.phase(Phase::Stopping);
        let info = engine
            .inspect(&name)
            .await
            .map_err(|e| ChangeError::Untouched(format!("`{name}`: {e}")))?;
        self.was[i] = info
            .config
            .as_ref()
            .and_then(|c| c.image.clone())
            .unwrap_or_else(|| short_id(info.image.as_deref().unwrap_or("?")).to_string());
        if info.image.as_deref() == Some(self.target.id.as_str()) {
            self.skipped[i] = true;
            run.step(
                "skipped",
                format!("`{name}` runs `{target}` already; left as it is"),
            )
            .await;
            return Ok(());
        }
        let old_image = match &info.image {
            Some(id) => engine.inspect_image(id).await.ok(),
            None => None,
        };
        let body = recreate_body(
            &info,
            old_image.as_ref().and_then(|i| i.config.as_ref()),
            &target,
        );
        let networks = extra_networks(&info);
        if let Err(e) = engine.stop(&name, run.stop_secs(&info)).await {
            let _ = engine.start(&name).await;
            return Err(ChangeError::Untouched(format!(
                "could not stop `{name}`: {e}; it was left running"
            )));
        }
        run.step("stopped", format!("Stopped `{name}` ({})", self.was[i]))
            .await;
        let kept = format!("{name}-klaxon-{}", run.plan.id);
        if let Some(id) = run.row {
            if let Err(e) = deployments::set_kept(&run.app.store, id, &kept).await {
                warn!(error = %e, "kept name not recorded");
            }
        }
        if let Err(e) = engine.rename(&name, &kept).await {
            let _ = engine.start(&name).await;
            return Err(ChangeError::Untouched(format!(
                "could not rename `{name}` out of the way: {e}"
            )));
        }
        self.kept[i] = Some(kept.clone());
        run.step("kept", format!("Kept the old `{name}` as `{kept}`"))
            .await;
        run.phase(Phase::Starting);
        let started = async {
            engine.create(&name, body).await?;
            for (network, endpoint) in networks {
                engine.connect(&network, &name, endpoint).await?;
            }
            engine.start(&name).await
        }
        .await;
        if let Err(e) = started {
            return Err(ChangeError::Partial(format!(
                "`{name}` did not start on `{target}`: {e}"
            )));
        }
        run.step("started", format!("Started `{name}` on `{target}`"))
            .await;
        Ok(())
    }

    async fn healthy(&mut self, i: usize) -> Result<(), String> {
        if self.skipped[i] {
            return Ok(());
        }
        let name = &self.names[i];
        match self.run.wait_healthy(self.engine, name, None).await {
            Ok(waited) => {
                self.run
                    .step(
                        "healthy",
                        format!("`{name}` healthy after {} s", waited.as_secs()),
                    )
                    .await;
                Ok(())
            }
            Err(reason) => Err(format!("`{name}` on `{}` {reason}", self.target.reference)),
        }
    }

    async fn put_back(&mut self, i: usize) -> Result<(), String> {
        let Some(kept) = self.kept[i].clone() else {
            return Ok(());
        };
        let name = self.names[i].clone();
        let engine = self.engine;
        let result = async {
            engine.remove(&name, true).await?;
            engine.rename(&kept, &name).await?;
            engine.start(&name).await?;
            Ok::<(), DockerError>(())
        }
        .await;
        match result {
            Ok(()) => {
                self.kept[i] = None;
                self.run
                    .step(
                        "restored",
                        format!("Put `{name}` back on `{}`", self.was[i]),
                    )
                    .await;
                Ok(())
            }
            Err(e) => Err(format!(
                "`{name}`: {e} (its original is kept as `{kept}`: rename it to `{name}` and start it)"
            )),
        }
    }

    async fn finish(&mut self, i: usize) {
        let Some(kept) = self.kept[i].take() else {
            return;
        };
        match self.engine.remove(&kept, false).await {
            Ok(()) => {
                self.run
                    .step("removed", format!("Removed the old container `{kept}`"))
                    .await
            }
            Err(e) => {
                warn!(error = %e, kept, "old container not removed");
                self.run
                    .step(
                        "kept",
                        format!(
                            "Could not remove the old container `{kept}` ({e}); remove it by hand"
                        ),
                    )
                    .await
            }
        }
    }
}

/// A rolling restart: nothing to put back (a restart changes neither image nor
/// configuration), so a replica that is not healthy stops the roll there.
struct Restart<'a> {
    run: &'a Run,
    engine: &'a DockerClient,
    names: Vec<String>,
    /// Per replica: when its run before the restart started.
    before: Vec<Option<String>>,
}

impl Roll for Restart<'_> {
    async fn change(&mut self, i: usize) -> Result<(), ChangeError> {
        let (engine, run) = (self.engine, self.run);
        let name = self.names[i].clone();
        run.phase(Phase::Restarting);
        let info = engine
            .inspect(&name)
            .await
            .map_err(|e| ChangeError::Untouched(format!("`{name}`: {e}")))?;
        self.before[i] = info.state.as_ref().and_then(|s| s.started_at.clone());
        if let Err(e) = engine.restart(&name, run.stop_secs(&info)).await {
            let state = engine
                .inspect(&name)
                .await
                .map(|i| state_text(&i))
                .unwrap_or_else(|_| "unknown".into());
            return Err(ChangeError::Partial(format!(
                "`docker restart {name}` failed: {e}; the container is {state} now"
            )));
        }
        run.step("restarted", format!("Restarted `{name}`")).await;
        Ok(())
    }

    async fn healthy(&mut self, i: usize) -> Result<(), String> {
        let name = &self.names[i];
        match self
            .run
            .wait_healthy(self.engine, name, self.before[i].clone())
            .await
        {
            Ok(waited) => {
                self.run
                    .step(
                        "healthy",
                        format!("`{name}` healthy after {} s", waited.as_secs()),
                    )
                    .await;
                Ok(())
            }
            Err(reason) => Err(format!("`{name}` restarted but {reason}")),
        }
    }

    async fn put_back(&mut self, _i: usize) -> Result<(), String> {
        Ok(())
    }

    async fn finish(&mut self, _i: usize) {}
}

impl Run {
    pub(super) async fn rolling_rollback(&mut self, engine: &DockerClient) -> End {
        let Some(target) = self.plan.target.clone() else {
            return End {
                status: Status::Failed,
                phase: Phase::Failed {
                    reason: "no target image; nothing was changed.".into(),
                },
            };
        };
        let n = self.plan.replicas.len();
        let mut r = RollBack {
            run: self,
            engine,
            target,
            names: self.plan.replicas.clone(),
            kept: vec![None; n],
            was: vec![String::new(); n],
            skipped: vec![false; n],
        };
        match roll(&mut r, n).await {
            Rolled::Done => End {
                status: Status::Succeeded,
                phase: Phase::Done,
            },
            Rolled::Reverted {
                reason,
                put_back,
                errors,
                ..
            } => {
                if errors.is_empty() {
                    End {
                        status: Status::Reverted,
                        phase: Phase::Reverted {
                            reason: format!(
                                "{reason}; {} replica(s) changed so far put back on the old image",
                                put_back.len()
                            ),
                        },
                    }
                } else {
                    let failed: Vec<String> = errors.into_iter().map(|(_, e)| e).collect();
                    End {
                        status: Status::Failed,
                        phase: Phase::Failed {
                            reason: format!(
                                "{reason}, and putting replicas back failed: {}",
                                failed.join("; ")
                            ),
                        },
                    }
                }
            }
        }
    }

    pub(super) async fn rolling_restart(&mut self, engine: &DockerClient) -> End {
        let n = self.plan.replicas.len();
        let mut r = Restart {
            run: self,
            engine,
            names: self.plan.replicas.clone(),
            before: vec![None; n],
        };
        match roll(&mut r, n).await {
            Rolled::Done => End {
                status: Status::Succeeded,
                phase: Phase::Done,
            },
            Rolled::Reverted { failed, reason, .. } => {
                let rest = &self.plan.replicas[failed + 1..];
                let untouched = if rest.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; not restarted: {}",
                        rest.iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                End {
                    status: Status::Failed,
                    phase: Phase::Failed {
                        reason: format!("{reason}. It was left as it is{untouched}."),
                    },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the calls; replica `fail_health` is never healthy, `fail_change`
    /// fails to change (`partial`: half way).
    #[derive(Default)]
    struct Fake {
        calls: Vec<String>,
        fail_health: Option<usize>,
        fail_change: Option<(usize, bool)>,
    }

    impl Roll for Fake {
        async fn change(&mut self, i: usize) -> Result<(), ChangeError> {
            self.calls.push(format!("change {i}"));
            match self.fail_change {
                Some((f, false)) if f == i => Err(ChangeError::Untouched("stop failed".into())),
                Some((f, true)) if f == i => Err(ChangeError::Partial("start failed".into())),
                _ => Ok(()),
            }
        }
        async fn healthy(&mut self, i: usize) -> Result<(), String> {
            self.calls.push(format!("healthy {i}"));
            if self.fail_health == Some(i) {
                Err("unhealthy".into())
            } else {
                Ok(())
            }
        }
        async fn put_back(&mut self, i: usize) -> Result<(), String> {
            self.calls.push(format!("put back {i}"));
            Ok(())
        }
        async fn finish(&mut self, i: usize) {
            self.calls.push(format!("finish {i}"));
        }
    }

    fn calls(f: &Fake) -> String {
        f.calls.join(", ")
    }

    #[tokio::test]
    async fn one_at_a_time_each_healthy_before_the_next() {
        let mut f = Fake::default();
        assert_eq!(roll(&mut f, 3).await, Rolled::Done);
        assert_eq!(
            calls(&f),
            "change 0, healthy 0, change 1, healthy 1, change 2, healthy 2, finish 0, finish 1, finish 2"
        );
    }

    #[tokio::test]
    async fn an_unhealthy_replica_puts_itself_and_every_earlier_one_back() {
        let mut f = Fake {
            fail_health: Some(2),
            ..Default::default()
        };
        let end = roll(&mut f, 3).await;
        assert_eq!(
            calls(&f),
            "change 0, healthy 0, change 1, healthy 1, change 2, healthy 2, put back 2, put back 1, put back 0"
        );
        assert_eq!(
            end,
            Rolled::Reverted {
                failed: 2,
                reason: "unhealthy".into(),
                put_back: vec![2, 1, 0],
                errors: Vec::new()
            }
        );
        // The first replica failing: only itself, and nothing is finished.
        let mut f = Fake {
            fail_health: Some(0),
            ..Default::default()
        };
        roll(&mut f, 3).await;
        assert_eq!(calls(&f), "change 0, healthy 0, put back 0");
    }

    #[tokio::test]
    async fn a_failed_change_puts_back_what_changed() {
        // Nothing of replica 1 changed: only replica 0 goes back.
        let mut f = Fake {
            fail_change: Some((1, false)),
            ..Default::default()
        };
        roll(&mut f, 3).await;
        assert_eq!(calls(&f), "change 0, healthy 0, change 1, put back 0");
        // Replica 1 half changed: it goes back first.
        let mut f = Fake {
            fail_change: Some((1, true)),
            ..Default::default()
        };
        roll(&mut f, 3).await;
        assert_eq!(
            calls(&f),
            "change 0, healthy 0, change 1, put back 1, put back 0"
        );
    }
}
