//! `[docker]` and `[[docker.hosts]]`: the engines Klaxon talks to.
//!
//! Why a list: a team past one machine runs services on several engines, each
//! named so a service can say where it runs (`[[services]] host = "edge"`). The
//! single `[docker] host` stays valid as the engine named `default` (and is the
//! engine of every service that names none), so existing configs keep working.
//! A `tcp://` engine normally requires TLS (`dockerd --tlsverify`): `tls` names
//! the CA, client certificate and key, read against the config file's directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use klaxon_core::docker::{DockerClient, Tls, DEFAULT_HOST};
use klaxon_core::settings::services::ServiceConfig;
use serde::{Deserialize, Serialize};

/// `[docker]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerConfig {
    /// The engine named `default`.
    pub host: String,
    /// Deadline for one Docker API call (of the `default` engine).
    #[serde(default = "default_docker_timeout")]
    pub timeout_secs: u64,
    /// `[[docker.hosts]]`: more engines, by name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<DockerHostConfig>,
}

fn default_docker_timeout() -> u64 {
    5
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            host: "unix:///var/run/docker.sock".into(),
            timeout_secs: default_docker_timeout(),
            hosts: Vec::new(),
        }
    }
}

/// `[[docker.hosts]]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerHostConfig {
    pub name: String,
    /// `unix:///path/docker.sock`, or `tcp://HOST:PORT` (with `tls`, or plain).
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    #[serde(default = "default_docker_timeout")]
    pub timeout_secs: u64,
}

/// `tls = { ca, cert, key }`: PEM files.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// One engine, resolved: `default` first, then `[[docker.hosts]]` in order.
#[derive(Debug, Clone)]
pub struct Engine {
    pub name: String,
    pub host: String,
    pub tls: Option<TlsConfig>,
    pub timeout_secs: u64,
}

impl DockerConfig {
    /// Every engine: `default` (`[docker] host`) first.
    pub fn engines(&self) -> Vec<Engine> {
        let mut out = vec![Engine {
            name: DEFAULT_HOST.to_string(),
            host: self.host.clone(),
            tls: None,
            timeout_secs: self.timeout_secs,
        }];
        out.extend(self.hosts.iter().map(|h| Engine {
            name: h.name.clone(),
            host: h.host.clone(),
            tls: h.tls.clone(),
            timeout_secs: h.timeout_secs,
        }));
        out
    }

    /// The clients, by name, for `App`.
    pub fn clients(&self) -> Vec<(String, DockerClient)> {
        self.engines()
            .into_iter()
            .map(|e| {
                let mut c = DockerClient::new(&e.host, Duration::from_secs(e.timeout_secs));
                if let Some(t) = e.tls {
                    c = c.with_tls(Tls {
                        ca: t.ca,
                        cert: t.cert,
                        key: t.key,
                    });
                }
                (e.name, c)
            })
            .collect()
    }

    /// TLS files are the config file's neighbours (see `paths`).
    pub(super) fn resolve_paths(&mut self, base: &Path) {
        for h in &mut self.hosts {
            if let Some(t) = &mut h.tls {
                t.ca = super::paths::against(base, &t.ca);
                t.cert = super::paths::against(base, &t.cert);
                t.key = super::paths::against(base, &t.key);
            }
        }
    }

    /// What is wrong, each line naming its key.
    pub fn problems(&self, services: &[ServiceConfig]) -> Vec<String> {
        let mut errs = Vec::new();
        if !has_scheme(&self.host) {
            errs.push(format!(
                "docker.host: `{}` must start with unix://, tcp:// or http://",
                klaxon_core::secret::redact_url(&self.host)
            ));
        }
        if self.timeout_secs == 0 {
            errs.push("docker.timeout_secs: must be at least 1".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, h) in self.hosts.iter().enumerate() {
            let key = format!("docker.hosts[{i}]");
            let name = h.name.trim();
            if name.is_empty() {
                errs.push(format!("{key}.name: must not be empty"));
            } else if name == DEFAULT_HOST {
                errs.push(format!(
                    "{key}.name: `default` is the engine of `docker.host`; name this one otherwise"
                ));
            } else if !seen.insert(name.to_string()) {
                errs.push(format!("{key}.name: `{name}` is configured twice"));
            }
            let shown = klaxon_core::secret::redact_url(&h.host);
            if !has_scheme(&h.host) {
                errs.push(format!(
                    "{key}.host: `{shown}` must start with unix://, tcp:// or http://"
                ));
            }
            if h.timeout_secs == 0 {
                errs.push(format!("{key}.timeout_secs: must be at least 1"));
            }
            if let Some(t) = &h.tls {
                if !h.host.starts_with("tcp://") {
                    errs.push(format!(
                        "{key}.tls: only a tcp:// host speaks TLS (`{shown}` does not)"
                    ));
                }
                for (field, path) in [("ca", &t.ca), ("cert", &t.cert), ("key", &t.key)] {
                    if let Err(e) = std::fs::metadata(path) {
                        errs.push(format!(
                            "{key}.tls.{field}: cannot read {}: {e}",
                            path.display()
                        ));
                    }
                }
            }
        }
        let known: Vec<String> = self.engines().into_iter().map(|e| e.name).collect();
        for (i, s) in services.iter().enumerate() {
            if let Some(host) = &s.host {
                if !known.iter().any(|k| k == host) {
                    errs.push(format!(
                        "services[{i}].host: no Docker host named `{host}` (known: {})",
                        known.join(", ")
                    ));
                }
            }
        }
        errs
    }
}

fn has_scheme(host: &str) -> bool {
    ["unix://", "tcp://", "http://"]
        .iter()
        .any(|p| host.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> DockerConfig {
        #[derive(Deserialize)]
        struct Wrap {
            docker: DockerConfig,
        }
        toml::from_str::<Wrap>(toml_text)
            .expect("valid TOML")
            .docker
    }

    fn service(name: &str, host: Option<&str>) -> ServiceConfig {
        let mut v = serde_json::json!({ "name": name, "container": name });
        if let Some(h) = host {
            v["host"] = h.into();
        }
        serde_json::from_value(v).expect("a service")
    }

    #[test]
    fn the_single_host_is_the_engine_named_default() {
        let d = parse("[docker]\nhost = \"unix:///run/d.sock\"\n");
        let e = d.engines();
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].name.as_str(), e[0].host.as_str()),
            ("default", "unix:///run/d.sock")
        );
        assert!(d.problems(&[service("api", None)]).is_empty());
    }

    #[test]
    fn hosts_parse_with_tls_and_timeouts() {
        let dir = std::env::temp_dir().join(format!("klaxon-docker-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        for f in ["ca.pem", "cert.pem", "key.pem"] {
            std::fs::write(dir.join(f), "x").expect("write");
        }
        let d = parse(&format!(
            r#"
[docker]
host = "unix:///var/run/docker.sock"
[[docker.hosts]]
name = "edge"
host = "tcp://127.0.0.1:2376"
timeout_secs = 3
tls = {{ ca = "{0}/ca.pem", cert = "{0}/cert.pem", key = "{0}/key.pem" }}
[[docker.hosts]]
name = "batch"
host = "unix:///run/batch.sock"
"#,
            dir.display()
        ));
        let names: Vec<String> = d.engines().into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["default", "edge", "batch"]);
        assert_eq!(d.hosts[0].timeout_secs, 3);
        assert_eq!(d.hosts[1].timeout_secs, 5);
        assert!(d.hosts[0].tls.is_some());
        let services = [
            service("api", Some("edge")),
            service("db", Some("batch")),
            service("web", None),
        ];
        assert_eq!(d.problems(&services), Vec::<String>::new());
        let clients = d.clients();
        assert_eq!(clients[1].1.timeout(), Duration::from_secs(3));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn bad_hosts_are_named_by_their_key() {
        let d = parse(
            r#"
[docker]
[[docker.hosts]]
name = "default"
host = "unix:///a"
[[docker.hosts]]
name = "edge"
host = "ssh://box"
timeout_secs = 0
[[docker.hosts]]
name = "edge"
host = "unix:///b"
tls = { ca = "/nonexistent/ca.pem", cert = "/nonexistent/c.pem", key = "/nonexistent/k.pem" }
"#,
        );
        let errs = d.problems(&[service("api", Some("edg"))]);
        let has = |p: &str| errs.iter().any(|e| e.starts_with(p));
        assert!(
            has("docker.hosts[0].name: `default` is the engine"),
            "{errs:?}"
        );
        assert!(
            has("docker.hosts[1].host: `ssh://box` must start with"),
            "{errs:?}"
        );
        assert!(
            has("docker.hosts[1].timeout_secs: must be at least 1"),
            "{errs:?}"
        );
        assert!(
            has("docker.hosts[2].name: `edge` is configured twice"),
            "{errs:?}"
        );
        assert!(
            has("docker.hosts[2].tls: only a tcp:// host speaks TLS"),
            "{errs:?}"
        );
        assert!(
            has("docker.hosts[2].tls.ca: cannot read /nonexistent/ca.pem"),
            "{errs:?}"
        );
        assert!(
            has("services[0].host: no Docker host named `edg`"),
            "{errs:?}"
        );
    }

    #[test]
    fn a_service_naming_an_unknown_host_is_refused() {
        let d =
            parse("[docker]\n[[docker.hosts]]\nname = \"edge\"\nhost = \"tcp://127.0.0.1:2375\"\n");
        assert_eq!(
            d.problems(&[service("api", Some("edge")), service("db", Some("nope"))]),
            vec![
                "services[1].host: no Docker host named `nope` (known: default, edge)".to_string()
            ]
        );
    }
}
