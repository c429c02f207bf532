//! From Klaxon's platform-neutral messages to serenity builders.

use klaxon_core::chat::Embed;
use klaxon_core::health::{HealthReport, ServiceHealth, State};
use klaxon_core::timefmt::human_duration;

/// Lines within one embed description, with a count of what did not fit.
pub fn fit(lines: &[String]) -> String {
    let max = klaxon_core::chat::limits::EMBED_DESCRIPTION - 40;
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        if klaxon_core::chat::chars(&out) + klaxon_core::chat::chars(l) + 1 > max {
            out.push_str(&format!("\n… and {} more", lines.len() - i));
            break;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(l);
    }
    out
}

/// The `/health` embed: overall state first, then one short block per service,
/// worst first, so the answer is on the first screen of a phone.
pub fn health(report: &HealthReport) -> Embed {
    use klaxon_core::chat::{chars, limits, Field};

    let overall = report.overall();
    let total = report.services.len();
    let title = match overall {
        _ if total == 1 => format!(
            "{} {} is {}",
            overall.emoji(),
            report.services[0].name,
            overall.as_str()
        ),
        State::Healthy => format!("{} All {total} services healthy", overall.emoji()),
        _ => {
            let bad = total - report.count(State::Healthy);
            format!(
                "{} {bad} of {total} services {}",
                overall.emoji(),
                summary_word(report)
            )
        }
    };
    let mut services: Vec<&ServiceHealth> = report.services.iter().collect();
    services.sort_by_key(|s| std::cmp::Reverse(s.state));
    // Several engines: one heading per host, its services (worst first) below it.
    let grouped = by_host(report);
    let mut items: Vec<Field> = Vec::new();
    match &grouped {
        Some(groups) => {
            for (heading, members) in groups {
                items.push(heading.clone());
                items.extend(members.iter().map(|s| service_field(s)));
            }
        }
        None => items.extend(services.iter().map(|s| service_field(s))),
    }

    let mut fields = Vec::new();
    // Leave room for the title and footer inside the 6,000-character total.
    let mut budget = limits::EMBED_TOTAL - 300;
    let mut left_out = 0;
    for field in items {
        let size = chars(&field.name) + chars(&field.value).min(limits::FIELD_VALUE);
        if fields.len() == limits::EMBED_FIELDS - 1 || size > budget {
            left_out += 1;
            continue;
        }
        budget -= size;
        fields.push(field);
    }
    if left_out > 0 {
        fields.push(Field {
            name: format!("…and {left_out} more"),
            value: "Ask for one with `/health service:<name>`.".into(),
            inline: false,
        });
    }
    Embed {
        title,
        description: String::new(),
        color: overall.color(),
        fields,
        footer: format!("Checked {}", report.checked_at.format("%H:%M:%S UTC")),
    }
}

fn summary_word(report: &HealthReport) -> &'static str {
    let down = report.count(State::Down);
    let others = report.services.len() - report.count(State::Healthy) - down;
    match (down, others) {
        (d, 0) if d > 0 => "down",
        (0, _) => match report.overall() {
            State::Maintenance => "in maintenance",
            State::Unknown => "unknown",
            _ => "degraded",
        },
        _ => "down or degraded",
    }
}

fn service_field(s: &ServiceHealth) -> klaxon_core::chat::Field {
    klaxon_core::chat::Field {
        name: format!("{} {} — {}", s.state.emoji(), s.name, s.state.as_str()),
        value: service_lines(s),
        inline: false,
    }
}

/// The services grouped by the engine they run on, each group under a heading
/// saying whether its engine answered; `None` with a single engine (`default`).
#[allow(clippy::type_complexity)]
fn by_host(report: &HealthReport) -> Option<Vec<(klaxon_core::chat::Field, Vec<&ServiceHealth>)>> {
    use klaxon_core::docker::DEFAULT_HOST;
    let mut names: Vec<&str> = report.hosts.iter().map(|h| h.name.as_str()).collect();
    for s in &report.services {
        if !names.contains(&s.host.as_str()) {
            names.push(&s.host);
        }
    }
    if names.len() < 2 && names.iter().all(|n| *n == DEFAULT_HOST) {
        return None;
    }
    let groups = names
        .into_iter()
        .map(|name| {
            let mut members: Vec<&ServiceHealth> =
                report.services.iter().filter(|s| s.host == name).collect();
            members.sort_by_key(|s| std::cmp::Reverse(s.state));
            let worst = members
                .iter()
                .map(|s| s.state)
                .max()
                .unwrap_or(State::Healthy);
            let answer = report
                .hosts
                .iter()
                .find(|h| h.name == name)
                .map(|h| &h.answer);
            let n = members.len();
            let count = if n == 1 {
                "1 service".into()
            } else {
                format!("{n} services")
            };
            let heading = match answer {
                Some(Err(e)) => klaxon_core::chat::Field {
                    name: format!("🔴 host {name} — not answering"),
                    value: format!(
                        "⚠️ {}\n{count} on it",
                        klaxon_core::chat::neutralize(&e.to_string())
                    ),
                    inline: false,
                },
                _ => {
                    let bad = members.iter().filter(|s| s.state != State::Healthy).count();
                    klaxon_core::chat::Field {
                        name: format!("{} host {name}", worst.emoji()),
                        value: if bad == 0 {
                            format!("{count}, all healthy")
                        } else {
                            format!("{count}, {bad} not healthy")
                        },
                        inline: false,
                    }
                }
            };
            (heading, members)
        })
        .collect();
    Some(groups)
}

/// Two or three short lines; no tables, nothing wider than a phone.
fn service_lines(s: &ServiceHealth) -> String {
    let mut lines = Vec::new();
    if let Some(m) = &s.maintenance {
        lines.push(klaxon_core::chat::neutralize(m));
    }
    if let Some(r) = &s.replicas {
        lines.push(format!("replicas: {}", klaxon_core::chat::neutralize(r)));
    }
    for p in &s.problems {
        lines.push(format!("⚠️ {}", klaxon_core::chat::neutralize(p)));
    }
    if let Some(Ok(c)) = &s.container {
        let mut parts = Vec::new();
        if c.running {
            let up = c
                .started_at
                .map(|t| (chrono::Utc::now() - t).to_std().unwrap_or_default());
            parts.push(match up {
                Some(d) => format!("up {}", human_duration(d)),
                None => "running".into(),
            });
        } else {
            parts.push(c.state.clone());
        }
        if let Some(h) = c.health {
            parts.push(format!("health {}", h.as_str()));
        }
        parts.push(match c.restart_count {
            1 => "1 restart".into(),
            n => format!("{n} restarts"),
        });
        lines.push(parts.join(" · "));
        let mut usage = Vec::new();
        if let Some(cpu) = c.cpu_percent {
            usage.push(format!("CPU {cpu:.0}%"));
        }
        if let Some(mem) = c.memory_percent {
            match c.memory_bytes {
                Some(b) => usage.push(format!("mem {mem:.0}% ({})", bytes(b))),
                None => usage.push(format!("mem {mem:.0}%")),
            }
        }
        if !usage.is_empty() {
            lines.push(usage.join(" · "));
        }
    }
    if let Some(Ok(sw)) = &s.swarm {
        lines.extend(swarm_lines(sw));
    }
    // A failed probe is already among the problems; a good one shows its latency.
    if let Some((code, p)) = s
        .probe
        .as_ref()
        .and_then(|p| p.status.filter(|_| p.error.is_none()).map(|c| (c, p)))
    {
        lines.push(format!("HTTP {code} in {} ms", p.latency.as_millis()));
    }
    if lines.is_empty() {
        lines.push("no checks configured".into());
    }
    lines.join("\n")
}

/// A Swarm service (issue #16): replicas, then one short line per task slot
/// (state, node, since, last error): phone-width, no table.
pub fn swarm_lines(sw: &klaxon_core::swarm::SwarmStatus) -> Vec<String> {
    use klaxon_core::chat::{neutralize, truncate};
    // Within a field's 1,024 characters: 6 slots with an error each fit.
    const MAX_TASKS: usize = 6;
    let ago = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.and_then(|t| (chrono::Utc::now() - t).to_std().ok())
            .map(human_duration)
    };
    let mut lines = vec![format!(
        "Swarm `{}` · {}/{} running · `{}`",
        neutralize(&sw.service),
        sw.running,
        sw.desired,
        neutralize(&sw.image)
    )];
    for t in sw.tasks.iter().take(MAX_TASKS) {
        let mut line = match t.slot {
            Some(slot) => format!("`.{slot}` {}", neutralize(&t.state)),
            None => neutralize(&t.state),
        };
        line.push_str(&format!(" · {}", neutralize(&t.node)));
        if let Some(d) = ago(t.since) {
            line.push_str(&format!(" · {d}"));
        }
        if let Some((err, at)) = &t.error {
            line.push_str(&format!(
                "\n  last error: {}",
                neutralize(&truncate(err, 70))
            ));
            if let Some(d) = ago(*at) {
                line.push_str(&format!(" ({d} ago)"));
            }
        }
        lines.push(line);
    }
    if sw.tasks.len() > MAX_TASKS {
        lines.push(format!("… and {} more tasks", sw.tasks.len() - MAX_TASKS));
    }
    lines
}

fn bytes(b: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let mib = b as f64 / MIB;
    if mib >= 1024.0 {
        format!("{:.1} GiB", mib / 1024.0)
    } else {
        format!("{mib:.0} MiB")
    }
}

/// The heartbeats block of `/health`: one line per heartbeat, problems first, with
/// its last run as a relative time (each reader's own "3 hours ago").
pub fn heartbeats(
    list: &[klaxon_core::alerts::heartbeats::Status],
) -> Option<klaxon_core::chat::Field> {
    use klaxon_core::chat::{discord, Span, Text};
    use klaxon_core::store::heartbeats::BeatState;
    if list.is_empty() {
        return None;
    }
    let mut sorted: Vec<_> = list.iter().collect();
    sorted.sort_by_key(|h| h.state == BeatState::Ok);
    let lines: Vec<String> = sorted
        .iter()
        .map(|h| {
            let (emoji, word) = match h.state {
                BeatState::Ok if h.last_ok_ms.is_none() => ("⏳", "waiting for a first run"),
                BeatState::Ok => ("🟢", "on time"),
                BeatState::Missed => ("🔴", "missed"),
                BeatState::Failed => ("🔴", "failed"),
            };
            let mut t = Text::new().with(format!("{emoji} `{}` — {word}", h.name));
            if let Some(ms) = h.last_ok_ms {
                t.push(" · last run ");
                t.push(Span::RelativeTime(ms));
            }
            if h.state == BeatState::Failed {
                if let Some(ms) = h.last_fail_ms {
                    t.push(" · failed ");
                    t.push(Span::RelativeTime(ms));
                }
            }
            discord::text(&t)
        })
        .collect();
    let bad = list.iter().filter(|h| h.state != BeatState::Ok).count();
    let name = match bad {
        0 => format!("Heartbeats — all {} on time", list.len()),
        n => format!("Heartbeats — {n} of {} late or failed", list.len()),
    };
    let mut value = String::new();
    for (i, l) in lines.iter().enumerate() {
        if klaxon_core::chat::chars(&value) + klaxon_core::chat::chars(l) + 20
            > klaxon_core::chat::limits::FIELD_VALUE
        {
            value.push_str(&format!("\n… and {} more", lines.len() - i));
            break;
        }
        if !value.is_empty() {
            value.push('\n');
        }
        value.push_str(l);
    }
    Some(klaxon_core::chat::Field {
        name,
        value,
        inline: false,
    })
}

#[cfg(test)]
mod heartbeat_tests {
    use klaxon_core::alerts::heartbeats::Status;
    use klaxon_core::store::heartbeats::BeatState;

    fn status(name: &str, state: BeatState) -> Status {
        Status {
            name: name.into(),
            service: None,
            state,
            last_ok_ms: Some(1_700_000_000_000),
            last_fail_ms: Some(1_700_000_100_000),
            deadline_ms: None,
        }
    }

    #[test]
    fn heartbeats_show_problems_first_and_fit_one_field() {
        let mut list: Vec<Status> = (0..200)
            .map(|i| status(&format!("job-{i}"), BeatState::Ok))
            .collect();
        list.push(status("db-backup", BeatState::Missed));
        let Some(f) = super::heartbeats(&list) else {
            panic!("a field");
        };
        assert_eq!(f.name, "Heartbeats — 1 of 201 late or failed");
        assert!(f
            .value
            .starts_with("🔴 `db-backup` — missed · last run <t:1700000000:R>"));
        assert!(f.value.contains("… and "), "{}", f.value);
        assert!(klaxon_core::chat::chars(&f.value) <= klaxon_core::chat::limits::FIELD_VALUE);
        assert!(super::heartbeats(&[]).is_none());
    }
}
