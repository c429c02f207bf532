//! A service's maintenance switch: what the runbooks use to make it answer 503 while
//! someone works on it. By default a file, `/app/MAINTENANCE`, inside the container;
//! per service a different path, or commands to switch it on and off (and to check).
//! Every change is verified, because an operator who is told "flag set" will act on
//! it.

use crate::docker::DockerClient;

pub const DEFAULT_PATH: &str = "/app/MAINTENANCE";

pub use crate::settings::services::FlagConfig;

impl FlagConfig {
    /// Problems with this service's flag settings, for the config check; `at` is
    /// the key they are under (`services[0].maintenance_flag`).
    pub fn problems(&self, at: &str) -> Vec<String> {
        let mut out = Vec::new();
        match (&self.on, &self.off) {
            (Some(_), None) | (None, Some(_)) => {
                out.push(format!("{at}: give both `on` and `off`, or neither"))
            }
            (Some(_), Some(_)) if self.path.is_some() => {
                out.push(format!("{at}: `path` or `on`/`off`, not both"))
            }
            _ => {}
        }
        if self.check.is_some() && self.on.is_none() {
            out.push(format!("{at}: `check` goes with `on`/`off`"));
        }
        if self.on.is_some() && self.check.is_none() {
            out.push(format!(
                "{at}: give `check` too (exit 0 while maintenance is on): Klaxon verifies \
                 every switch"
            ));
        }
        for (name, argv) in [("on", &self.on), ("off", &self.off), ("check", &self.check)] {
            if argv
                .as_ref()
                .is_some_and(|a| a.is_empty() || a[0].trim().is_empty())
            {
                out.push(format!("{at}.{name}: an empty command"));
            }
        }
        if let Some(p) = &self.path {
            if !p.starts_with('/') {
                out.push(format!(
                    "{at}.path: `{p}` must be an absolute path in the container"
                ));
            }
        }
        out
    }

    pub fn path(&self) -> &str {
        self.path.as_deref().unwrap_or(DEFAULT_PATH)
    }

    /// How an operator flips it by hand when Klaxon could not.
    pub fn by_hand(&self, container: &str, on: bool) -> String {
        match (&self.on, &self.off) {
            (Some(a), Some(b)) => {
                format!(
                    "docker exec {container} {}",
                    if on { a } else { b }.join(" ")
                )
            }
            _ if on => format!("docker exec {container} touch {}", self.path()),
            _ => format!("docker exec {container} rm -f {}", self.path()),
        }
    }
}

/// Switches the flag in `container` and checks that it took. `Ok` carries what was
/// done, `Err` why it did not work (both written for the operator).
pub async fn switch(
    docker: &DockerClient,
    container: &str,
    cfg: &FlagConfig,
    on: bool,
) -> Result<String, String> {
    let argv = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (change, check, what) = match (&cfg.on, &cfg.off) {
        (Some(a), Some(b)) => (
            if on { a.clone() } else { b.clone() },
            cfg.check.clone(),
            format!("`{}`", if on { a } else { b }.join(" ")),
        ),
        _ => {
            let path = cfg.path();
            (
                if on {
                    argv(&["touch", path])
                } else {
                    argv(&["rm", "-f", path])
                },
                Some(argv(&["test", "-e", path])),
                format!("{} `{path}`", if on { "created" } else { "removed" }),
            )
        }
    };
    let ran = docker
        .exec(container, &change)
        .await
        .map_err(|e| e.to_string())?;
    if ran.exit_code != 0 {
        return Err(format!(
            "`{}` exited with {}{}",
            change.join(" "),
            ran.exit_code,
            if ran.output.is_empty() {
                String::new()
            } else {
                format!(": {}", crate::chat::truncate(&ran.output, 200))
            }
        ));
    }
    let Some(check) = check else {
        return Ok(format!("{what} ran (exit 0)"));
    };
    let checked = docker
        .exec(container, &check)
        .await
        .map_err(|e| format!("{what}, but checking failed: {e}"))?;
    match (checked.exit_code, on) {
        (0, true) => Ok(format!("{what}, verified")),
        (0, false) => Err(format!(
            "{what}, but `{}` says it is still on",
            check.join(" ")
        )),
        (1, false) => Ok(format!("{what}, verified")),
        (1, true) => Err(format!(
            "{what}, but `{}` says it is not on",
            check.join(" ")
        )),
        (code, _) => Err(format!(
            "{what}, but `{}` could not tell (exit {code})",
            check.join(" ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        assert!(FlagConfig::default().problems("api").is_empty());
        let half = FlagConfig {
            on: Some(vec!["x".into()]),
            ..Default::default()
        };
        assert!(half.problems("api")[0].contains("both"));
        let unverified = FlagConfig {
            on: Some(vec!["a".into()]),
            off: Some(vec!["b".into()]),
            ..Default::default()
        };
        assert!(unverified.problems("api")[0].contains("give `check` too"));
        let both = FlagConfig {
            path: Some("/x".into()),
            on: Some(vec!["a".into()]),
            off: Some(vec!["b".into()]),
            ..Default::default()
        };
        assert!(both.problems("api")[0].contains("not both"));
        let rel = FlagConfig {
            path: Some("x".into()),
            ..Default::default()
        };
        assert!(rel.problems("api")[0].contains("absolute"));
        assert_eq!(
            FlagConfig::default().by_hand("api-1", false),
            "docker exec api-1 rm -f /app/MAINTENANCE"
        );
    }
}
