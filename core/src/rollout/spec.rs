//! Spec copy: the create body that gives a new container (on another image) the
//! settings of the one it replaces, and what rollouts read of an inspected
//! container.

use std::collections::{HashMap, HashSet};

use crate::docker::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointSettings, ImageConfig, Mount, MountType,
    NetworkingConfig,
};

/// The create body for `target` that reproduces the container described by `info`:
/// everything the container set itself (env, labels, command, mounts, ports,
/// network, restart policy, health check...) is kept; what it only inherited from
/// its old image (`old_image`) is left out, so that the target image's own defaults
/// apply — rolling back from v2 must not keep v2's command or version label.
pub fn recreate_body(
    info: &ContainerInspectResponse,
    old_image: Option<&ImageConfig>,
    target: &str,
) -> ContainerCreateBody {
    let cfg = info.config.clone().unwrap_or_default();
    let img = old_image.cloned().unwrap_or_default();
    let known = old_image.is_some();
    // A value the container shares with its old image came from that image.
    fn own<T: PartialEq>(value: Option<T>, image: &Option<T>, known: bool) -> Option<T> {
        if known && value.as_ref() == image.as_ref() {
            None
        } else {
            value
        }
    }
    fn minus(value: Option<Vec<String>>, image: &Option<Vec<String>>) -> Option<Vec<String>> {
        value.map(|v| {
            v.into_iter()
                .filter(|x| !image.as_ref().is_some_and(|i| i.contains(x)))
                .collect()
        })
    }
    let id = info.id.clone().unwrap_or_default();
    let mut host_config = info.host_config.clone().unwrap_or_default();

    // Anonymous volumes (an image's VOLUME, `-v /path`) would be replaced by empty
    // new ones: mount the same volumes again, as `docker compose` does.
    let bound: HashSet<String> = host_config
        .binds
        .iter()
        .flatten()
        .filter_map(|b| b.split(':').nth(1).map(String::from))
        .chain(
            host_config
                .mounts
                .iter()
                .flatten()
                .filter_map(|m| m.target.clone()),
        )
        .collect();
    let anonymous: Vec<Mount> = info
        .mounts
        .iter()
        .flatten()
        .filter(|m| m.typ.as_deref() == Some("volume"))
        .filter_map(|m| {
            let target = m.destination.clone()?;
            let name = m.name.clone()?;
            (!bound.contains(&target)).then(|| Mount {
                target: Some(target),
                source: Some(name),
                typ: Some(MountType::VOLUME),
                read_only: m.rw.map(|rw| !rw),
                ..Default::default()
            })
        })
        .collect();
    if !anonymous.is_empty() {
        host_config
            .mounts
            .get_or_insert_with(Vec::new)
            .extend(anonymous);
    }

    // A user-defined network is joined at creation; the others after (see
    // `extra_networks`). Built-in modes need nothing beyond network_mode.
    let mode = host_config.network_mode.clone().unwrap_or_default();
    let networking_config = (!builtin_network(&mode))
        .then(|| {
            let settings = info
                .network_settings
                .as_ref()
                .and_then(|n| n.networks.as_ref())
                .and_then(|n| n.get(&mode))?;
            Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    mode.clone(),
                    endpoint_copy(settings, &id),
                )])),
            })
        })
        .flatten();

    ContainerCreateBody {
        hostname: cfg
            .hostname
            .filter(|h| !h.is_empty() && !id.starts_with(h.as_str())),
        domainname: cfg.domainname.filter(|d| !d.is_empty()),
        user: own(cfg.user, &img.user, known).filter(|u| !u.is_empty()),
        attach_stdin: cfg.attach_stdin,
        attach_stdout: cfg.attach_stdout,
        attach_stderr: cfg.attach_stderr,
        exposed_ports: minus(cfg.exposed_ports, &img.exposed_ports),
        tty: cfg.tty,
        open_stdin: cfg.open_stdin,
        stdin_once: cfg.stdin_once,
        env: minus(cfg.env, &img.env),
        cmd: own(cfg.cmd, &img.cmd, known),
        healthcheck: own(cfg.healthcheck, &img.healthcheck, known),
        args_escaped: None,
        image: Some(target.to_string()),
        volumes: minus(cfg.volumes, &img.volumes),
        working_dir: own(cfg.working_dir, &img.working_dir, known).filter(|w| !w.is_empty()),
        entrypoint: own(cfg.entrypoint, &img.entrypoint, known),
        network_disabled: cfg.network_disabled,
        on_build: None,
        labels: cfg.labels.map(|labels| {
            labels
                .into_iter()
                .filter(|(k, v)| img.labels.as_ref().and_then(|l| l.get(k)) != Some(v))
                .collect()
        }),
        stop_signal: own(cfg.stop_signal, &img.stop_signal, known),
        stop_timeout: cfg.stop_timeout,
        shell: own(cfg.shell, &img.shell, known),
        host_config: Some(host_config),
        networking_config,
    }
}

fn builtin_network(mode: &str) -> bool {
    matches!(mode, "" | "default" | "bridge" | "host" | "none") || mode.starts_with("container:")
}

/// The parts of an endpoint a member chose (aliases, static addresses, links); the
/// rest belongs to the old container.
fn endpoint_copy(s: &EndpointSettings, old_id: &str) -> EndpointSettings {
    EndpointSettings {
        ipam_config: s.ipam_config.clone(),
        links: s.links.clone(),
        aliases: s.aliases.as_ref().map(|a| {
            a.iter()
                .filter(|alias| alias.len() < 12 || !old_id.starts_with(alias.as_str()))
                .cloned()
                .collect()
        }),
        driver_opts: s.driver_opts.clone(),
        ..Default::default()
    }
}

/// User-defined networks besides the primary one, to connect after creation
/// (API 1.41 takes one network at creation).
pub(super) fn extra_networks(info: &ContainerInspectResponse) -> Vec<(String, EndpointSettings)> {
    let id = info.id.clone().unwrap_or_default();
    let mode = info
        .host_config
        .as_ref()
        .and_then(|h| h.network_mode.clone())
        .unwrap_or_default();
    if builtin_network(&mode) {
        return Vec::new();
    }
    let mut out: Vec<(String, EndpointSettings)> = info
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .into_iter()
        .flatten()
        .filter(|(name, _)| **name != mode && !builtin_network(name))
        .map(|(name, s)| (name.clone(), endpoint_copy(s, &id)))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

pub(super) fn container_name(info: &ContainerInspectResponse) -> String {
    info.name
        .as_deref()
        .unwrap_or_default()
        .trim_start_matches('/')
        .to_string()
}

pub(super) fn is_running(info: &ContainerInspectResponse) -> bool {
    info.state.as_ref().and_then(|s| s.running).unwrap_or(false)
}

pub(super) fn state_text(info: &ContainerInspectResponse) -> String {
    info.state
        .as_ref()
        .and_then(|s| s.status)
        .map(|s| s.to_string())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::models::{ContainerConfig, HostConfig, MountPoint};

    fn image_config() -> ImageConfig {
        ImageConfig {
            env: Some(vec!["PATH=/bin".into()]),
            cmd: Some(vec!["sh".into(), "-c".into(), "v2".into()]),
            labels: Some(HashMap::from([
                ("org.opencontainers.image.version".into(), "v2".into()),
                ("shared".into(), "image".into()),
            ])),
            volumes: Some(vec!["/data".into()]),
            ..Default::default()
        }
    }

    fn container(cmd: &str) -> ContainerInspectResponse {
        ContainerInspectResponse {
            id: Some("0123456789abcdef".into()),
            config: Some(ContainerConfig {
                hostname: Some("0123456789ab".into()),
                env: Some(vec!["PATH=/bin".into(), "MODE=prod".into()]),
                cmd: Some(vec!["sh".into(), "-c".into(), cmd.into()]),
                labels: Some(HashMap::from([
                    ("org.opencontainers.image.version".into(), "v2".into()),
                    ("shared".into(), "mine".into()),
                    ("team".into(), "payments".into()),
                ])),
                volumes: Some(vec!["/data".into()]),
                image: Some("app:v2".into()),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                network_mode: Some("none".into()),
                binds: Some(vec!["/srv/conf:/conf:ro".into()]),
                ..Default::default()
            }),
            mounts: Some(vec![
                MountPoint {
                    typ: Some("volume".into()),
                    name: Some("abc123".into()),
                    destination: Some("/data".into()),
                    rw: Some(true),
                    ..Default::default()
                },
                MountPoint {
                    typ: Some("bind".into()),
                    source: Some("/srv/conf".into()),
                    destination: Some("/conf".into()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }
    }

    #[test]
    fn recreate_keeps_what_the_container_set_and_drops_what_the_image_gave() {
        let body = recreate_body(&container("v2"), Some(&image_config()), "app:v1");
        assert_eq!(body.image.as_deref(), Some("app:v1"));
        // Inherited from the old image: left to the new image.
        assert_eq!(body.cmd, None);
        assert_eq!(body.env, Some(vec!["MODE=prod".to_string()]));
        let labels = body.labels.clone().unwrap();
        assert!(!labels.contains_key("org.opencontainers.image.version"));
        assert_eq!(labels.get("shared").map(String::as_str), Some("mine"));
        assert_eq!(labels.get("team").map(String::as_str), Some("payments"));
        // The default hostname is the old container's id: not copied.
        assert_eq!(body.hostname, None);
        let hc = body.host_config.unwrap();
        assert_eq!(hc.network_mode.as_deref(), Some("none"));
        assert_eq!(hc.binds, Some(vec!["/srv/conf:/conf:ro".to_string()]));
        // The anonymous volume is mounted again, so its data survives.
        let mounts = hc.mounts.unwrap();
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].source.as_deref(), Some("abc123"));
        assert_eq!(mounts[0].target.as_deref(), Some("/data"));
        assert_eq!(body.networking_config, None);

        // A command of the container's own is kept.
        let body = recreate_body(&container("custom"), Some(&image_config()), "app:v1");
        assert_eq!(
            body.cmd,
            Some(vec!["sh".into(), "-c".into(), "custom".into()])
        );
    }
}
