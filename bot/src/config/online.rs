//! `klaxon check-config --online`: what a valid file cannot tell, asked of the
//! real thing. A new team's first start fails on one of these more often than on
//! the file: a token from the wrong application, a bot that was never invited, a
//! channel the bot cannot see or write to, a role id from another server, a Docker
//! socket the service user may not open, a `health_url` that only answers inside a
//! container network. Each check is one line, with the fix when Klaxon knows it.
//!
//! The Discord calls are the documented REST routes (`GET /users/@me`,
//! `/guilds/{id}`, `/guilds/{id}/roles`, `/guilds/{id}/members/{bot}`,
//! `/channels/{id}`), sent directly: nothing here starts a gateway session or
//! registers commands.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use serde_json::Value;

use super::Config;

/// What the bot needs in every configured channel, as Discord's permission bits:
/// View Channel, Send Messages, Embed Links, Attach Files, Read Message History,
/// Create Public Threads, Send Messages in Threads.
const NEEDED: [(u64, &str); 7] = [
    (1 << 10, "View Channel"),
    (1 << 11, "Send Messages"),
    (1 << 14, "Embed Links"),
    (1 << 15, "Attach Files"),
    (1 << 16, "Read Message History"),
    (1 << 35, "Create Public Threads"),
    (1 << 38, "Send Messages in Threads"),
];
const ADMINISTRATOR: u64 = 1 << 3;

/// The permissions integer of the invite URL (the operator guide's list).
pub const INVITE_PERMISSIONS: u64 = 309_237_763_072;

/// The URL that adds the bot with the permissions Klaxon needs.
pub fn invite_url(application_id: &str) -> String {
    format!(
        "https://discord.com/oauth2/authorize?client_id={application_id}\
         &scope=bot+applications.commands&permissions={INVITE_PERMISSIONS}"
    )
}

/// One line of the report.
pub struct Check {
    pub ok: bool,
    pub what: String,
    pub detail: String,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = if self.ok { "ok  " } else { "FAIL" };
        write!(f, "{mark} {}: {}", self.what, self.detail)
    }
}

fn ok(what: impl Into<String>, detail: impl Into<String>) -> Check {
    Check {
        ok: true,
        what: what.into(),
        detail: detail.into(),
    }
}

fn fail(what: impl Into<String>, detail: impl Into<String>) -> Check {
    Check {
        ok: false,
        what: what.into(),
        detail: detail.into(),
    }
}

struct Discord {
    http: reqwest::Client,
    base: String,
    auth: String,
    timeout_secs: u64,
}

enum Answer {
    Json(Value),
    Status(u16, String),
    Failed(String),
}

impl Discord {
    async fn get(&self, path: &str) -> Answer {
        let url = format!("{}/api/v10{path}", self.base);
        let sent = self
            .http
            .get(&url)
            .header("Authorization", &self.auth)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => match r.json::<Value>().await {
                Ok(v) => Answer::Json(v),
                Err(e) => Answer::Failed(format!("not Discord's JSON: {}", chain(&e))),
            },
            Ok(r) => {
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap_or_default();
                let message = body["message"].as_str().unwrap_or("").to_string();
                Answer::Status(status, message)
            }
            Err(e) if e.is_timeout() => Answer::Failed(format!(
                "timed out after {} s (discord.request_timeout_secs)",
                self.timeout_secs
            )),
            Err(e) => Answer::Failed(chain(&e)),
        }
    }
}

/// An error with all its causes: "error sending request: client error (Connect):
/// dns error: failed to lookup address", not just the first words.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

fn id_of(v: &Value) -> Option<u64> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_u64())
}

/// Every check, in order; later Discord checks are skipped when the token or the
/// guild fails (their answers would only repeat it).
pub async fn run(config: &Config) -> Vec<Check> {
    let mut out = Vec::new();
    discord_checks(config, &mut out).await;
    out.push(docker_check(&config.docker.host, config.docker.timeout_secs).await);
    // `[[docker.hosts]]`: each engine at once, through the client Klaxon uses (TLS).
    let others = config.docker.clients().into_iter().skip(1);
    out.extend(futures::future::join_all(others.map(|(name, c)| engine_check(name, c))).await);
    out.extend(health_checks(config).await);
    out
}

async fn discord_checks(config: &Config, out: &mut Vec<Check>) {
    let timeout = Duration::from_secs(config.discord.request_timeout_secs);
    let http = match reqwest::Client::builder().timeout(timeout).build() {
        Ok(h) => h,
        Err(e) => {
            out.push(fail("discord", chain(&e)));
            return;
        }
    };
    if config.discord.token.is_empty() {
        out.push(fail(
            "token",
            "not set: set DISCORD_TOKEN or discord.token_file",
        ));
        return;
    }
    let d = Discord {
        http,
        base: config.discord.api_url.trim_end_matches('/').to_string(),
        auth: format!("Bot {}", config.discord.token.expose()),
        timeout_secs: config.discord.request_timeout_secs,
    };
    let bot_id = match d.get("/users/@me").await {
        Answer::Json(me) => {
            let name = me["username"].as_str().unwrap_or("?").to_string();
            let id = id_of(&me["id"]).unwrap_or(0);
            out.push(ok(
                "token",
                format!("accepted: the bot is {name} (id {id})"),
            ));
            id
        }
        Answer::Status(401, _) => {
            out.push(fail(
                "token",
                "refused by Discord (401): copy a new one from the Developer Portal \
                 (Bot → Reset Token)",
            ));
            return;
        }
        Answer::Status(s, m) => {
            out.push(fail("token", format!("Discord answered {s} {m}")));
            return;
        }
        Answer::Failed(e) => {
            out.push(fail("token", format!("cannot reach {}: {e}", d.base)));
            return;
        }
    };
    let guild = config.discord.guild_id;
    let invite = invite_url(&bot_id.to_string());
    match d.get(&format!("/guilds/{guild}")).await {
        Answer::Json(g) => out.push(ok(
            "guild",
            format!(
                "the bot is in {} ({guild})",
                g["name"].as_str().unwrap_or("the server")
            ),
        )),
        Answer::Status(403 | 404, _) => {
            out.push(fail(
                "guild",
                format!(
                    "the bot is not in this server ({guild}); invite it with {invite} \
                     (or fix discord.guild_id)"
                ),
            ));
            return;
        }
        Answer::Status(s, m) => {
            out.push(fail("guild", format!("Discord answered {s} {m}")));
            return;
        }
        Answer::Failed(e) => {
            out.push(fail("guild", e));
            return;
        }
    }
    let roles: HashMap<u64, u64> = match d.get(&format!("/guilds/{guild}/roles")).await {
        Answer::Json(Value::Array(list)) => list
            .iter()
            .filter_map(|r| {
                let perms = r["permissions"].as_str().and_then(|p| p.parse().ok());
                Some((id_of(&r["id"])?, perms.unwrap_or(0)))
            })
            .collect(),
        Answer::Json(_) => HashMap::new(),
        Answer::Status(s, m) => {
            out.push(fail(
                "roles",
                format!("cannot list them: Discord answered {s} {m}"),
            ));
            return;
        }
        Answer::Failed(e) => {
            out.push(fail("roles", format!("cannot list them: {e}")));
            return;
        }
    };
    out.extend(role_checks(config, &roles));
    let bot_roles: Vec<u64> = match d.get(&format!("/guilds/{guild}/members/{bot_id}")).await {
        Answer::Json(m) => m["roles"]
            .as_array()
            .map(|a| a.iter().filter_map(id_of).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    // The guild's base permissions of the bot: @everyone (the role with the
    // guild's id) and its own roles.
    let base = bot_roles
        .iter()
        .chain(std::iter::once(&guild))
        .filter_map(|r| roles.get(r))
        .fold(0u64, |acc, p| acc | p);
    for (key, channel) in channels(config) {
        out.push(channel_check(&d, &key, channel, guild, bot_id, &bot_roles, base).await);
    }
}

fn channels(config: &Config) -> Vec<(String, u64)> {
    let c = &config.channels;
    let mut out: Vec<(String, u64)> = [
        ("alerts", c.alerts),
        ("incidents", c.incidents),
        ("audit", c.audit),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((format!("channels.{k}"), v?)))
    .collect();
    for (i, r) in config.alerts.routes.iter().enumerate() {
        if let Some(ch) = r.channel {
            out.push((format!("alerts.routes[{i}].channel"), ch));
        }
    }
    out
}

fn role_checks(config: &Config, roles: &HashMap<u64, u64>) -> Vec<Check> {
    let r = &config.roles;
    let mut wanted: Vec<(String, u64)> = Vec::new();
    for (k, list) in [
        ("viewer", &r.viewer),
        ("responder", &r.responder),
        ("operator", &r.operator),
        ("admin", &r.admin),
    ] {
        wanted.extend(list.iter().map(|&id| (format!("roles.{k}"), id)));
    }
    if let Some(id) = config.incidents.on_call_role {
        wanted.push(("incidents.on_call_role".into(), id));
    }
    wanted
        .into_iter()
        .map(|(key, id)| {
            if roles.contains_key(&id) {
                ok(key, format!("role {id} exists"))
            } else {
                fail(
                    key,
                    format!("no role {id} in this server (right-click the role → Copy ID)"),
                )
            }
        })
        .collect()
}

async fn channel_check(
    d: &Discord,
    key: &str,
    channel: u64,
    guild: u64,
    bot_id: u64,
    bot_roles: &[u64],
    base: u64,
) -> Check {
    let c = match d.get(&format!("/channels/{channel}")).await {
        Answer::Json(c) => c,
        Answer::Status(403, _) => {
            return fail(
                key,
                format!("channel {channel}: the bot cannot see it (give it View Channel there)"),
            )
        }
        Answer::Status(404, _) => return fail(key, format!("channel {channel} does not exist")),
        Answer::Status(s, m) => {
            return fail(key, format!("channel {channel}: Discord answered {s} {m}"))
        }
        Answer::Failed(e) => return fail(key, format!("channel {channel}: {e}")),
    };
    if id_of(&c["guild_id"]) != Some(guild) {
        return fail(key, format!("channel {channel} is not in server {guild}"));
    }
    let perms = effective(base, &c["permission_overwrites"], guild, bot_id, bot_roles);
    let missing: Vec<&str> = NEEDED
        .iter()
        .filter(|(bit, _)| perms & bit == 0)
        .map(|(_, name)| *name)
        .collect();
    let name = c["name"].as_str().unwrap_or("?");
    if missing.is_empty() {
        ok(
            key,
            format!("#{name} ({channel}): the bot can see and write"),
        )
    } else {
        fail(
            key,
            format!("#{name} ({channel}): the bot lacks {}", missing.join(", ")),
        )
    }
}

/// Discord's permission computation for one channel: base, then the @everyone
/// overwrite, the role overwrites together, the member's own overwrite.
fn effective(base: u64, overwrites: &Value, guild: u64, bot_id: u64, bot_roles: &[u64]) -> u64 {
    if base & ADMINISTRATOR != 0 {
        return u64::MAX;
    }
    let list: Vec<(u64, u64, u64)> = overwrites
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|o| {
                    let bits = |k: &str| o[k].as_str().and_then(|s| s.parse().ok()).unwrap_or(0u64);
                    Some((id_of(&o["id"])?, bits("allow"), bits("deny")))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut p = base;
    if let Some((_, allow, deny)) = list.iter().find(|(id, _, _)| *id == guild) {
        p = (p & !deny) | allow;
    }
    let (mut allow, mut deny) = (0, 0);
    for (_, a, d) in list.iter().filter(|(id, _, _)| bot_roles.contains(id)) {
        allow |= a;
        deny |= d;
    }
    p = (p & !deny) | allow;
    if let Some((_, allow, deny)) = list.iter().find(|(id, _, _)| *id == bot_id) {
        p = (p & !deny) | allow;
    }
    p
}

/// The Docker engine answers `/_ping`, and this user may open its socket.
/// One `[[docker.hosts]]` engine: whether it answers `/_ping` within its timeout.
async fn engine_check(name: String, client: klaxon_core::docker::DockerClient) -> Check {
    let label = format!("docker {name}");
    let shown = klaxon_core::secret::redact_url(client.host());
    match tokio::time::timeout(client.timeout(), client.ping()).await {
        Ok(Ok(())) => ok(&label, format!("{shown} answers")),
        Ok(Err(e)) => fail(&label, e.to_string()),
        Err(_) => fail(
            &label,
            format!(
                "{shown} did not answer within {} s (timeout_secs)",
                client.timeout().as_secs()
            ),
        ),
    }
}

async fn docker_check(host: &str, timeout_secs: u64) -> Check {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let timeout = Duration::from_secs(timeout_secs.max(1));
    let request = b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n";
    let attempt = async {
        let mut reply = Vec::new();
        if let Some(path) = host.strip_prefix("unix://") {
            let mut s = tokio::net::UnixStream::connect(path).await?;
            s.write_all(request).await?;
            s.read_to_end(&mut reply).await?;
        } else {
            let addr = host
                .trim_start_matches("tcp://")
                .trim_start_matches("http://")
                .trim_end_matches('/');
            let mut s = tokio::net::TcpStream::connect(addr).await?;
            s.write_all(request).await?;
            s.read_to_end(&mut reply).await?;
        }
        Ok::<_, std::io::Error>(reply)
    };
    let shown = klaxon_core::secret::redact_url(host);
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(reply)) if reply.starts_with(b"HTTP/1.") && reply.ends_with(b"OK") => {
            ok("docker", format!("{shown} answers"))
        }
        Ok(Ok(reply)) => fail(
            "docker",
            format!(
                "{shown} is not a Docker engine (it answered {:?})",
                String::from_utf8_lossy(&reply[..reply.len().min(60)])
            ),
        ),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            fail("docker", docker_permission_hint(&shown))
        }
        Ok(Err(e)) => fail("docker", format!("{shown}: {e}")),
        Err(_) => fail(
            "docker",
            format!("{shown} did not answer within {timeout_secs} s (docker.timeout_secs)"),
        ),
    }
}

/// The fix for EACCES on the Docker socket, named once.
pub fn docker_permission_hint(host: &str) -> String {
    format!(
        "{host}: permission denied: this user may not open the Docker socket; add it to \
         the socket's group (`usermod -aG docker klaxon`, systemd \
         `SupplementaryGroups=docker`, or `docker run --group-add $(stat -c %g \
         /var/run/docker.sock)`)"
    )
}

async fn health_checks(config: &Config) -> Vec<Check> {
    let timeout = Duration::from_millis(config.health.probe_timeout_ms.max(1));
    let mut builder = reqwest::Client::builder().timeout(timeout);
    // The same extra CA as the probes (health.ca_file), checked when loading.
    if let Some(pem) = config
        .health
        .ca_file
        .as_ref()
        .and_then(|f| std::fs::read(f).ok())
    {
        for cert in reqwest::Certificate::from_pem_bundle(&pem).unwrap_or_default() {
            builder = builder.add_root_certificate(cert);
        }
    }
    let http = match builder.build() {
        Ok(h) => h,
        Err(e) => return vec![fail("health_url", chain(&e))],
    };
    let mut out = Vec::new();
    for (i, s) in config.services.iter().enumerate() {
        let Some(url) = &s.health_url else { continue };
        let key = format!("services[{i}].health_url ({})", s.name);
        let shown = klaxon_core::secret::redact_url(url);
        out.push(match http.get(url).send().await {
            Ok(r) if r.status().is_success() => ok(key, format!("{shown} answers {}", r.status())),
            Ok(r) => fail(key, format!("{shown} answers {}", r.status())),
            Err(e) if e.is_timeout() => fail(
                key,
                format!(
                    "{shown} did not answer within {} ms (health.probe_timeout_ms)",
                    config.health.probe_timeout_ms
                ),
            ),
            Err(e) => fail(key, format!("{shown}: {}", chain(&e))),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overwrites_deny_then_allow_in_discords_order() {
        let view_send = (1 << 10) | (1 << 11);
        let ow = serde_json::json!([
            { "id": "9", "type": 0, "allow": "0", "deny": (1u64 << 11).to_string() },
            { "id": "5", "type": 0, "allow": (1u64 << 11).to_string(), "deny": "0" },
        ]);
        // @everyone (9) denies Send; the bot's role 5 allows it again.
        assert_eq!(effective(view_send, &ow, 9, 1, &[5]), view_send);
        assert_eq!(effective(view_send, &ow, 9, 1, &[]), 1 << 10);
        assert_eq!(effective(ADMINISTRATOR, &ow, 9, 1, &[]), u64::MAX);
        assert!(invite_url("42")
            .contains("client_id=42&scope=bot+applications.commands&permissions=309237763072"));
    }
}
