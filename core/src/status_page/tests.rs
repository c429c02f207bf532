//! The renderers against planted secrets, hostile titles and a big history.

use super::gather::build;
use super::*;
use crate::actor::Actor;
use crate::health::State;
use crate::settings::status_page::{ComponentConfig, StatusPageConfig};
use crate::severity::Severity;
use crate::store::incidents::{Entry, EntryKind, Incident, IncidentId, Status};
use crate::store::maintenance::{Window, WindowState};

const NOW: i64 = 1_796_000_000_000;
const NOTE: &str = "internal note: db password rotated by hand";
const MEMBER: u64 = 987_654_321_012_345_678;
const MEMBER_NAME: &str = "alice-oncall";
const LABEL: &str = "pod=api-7f9c4-xk2lp";
const LOG_LINE: &str = "ERROR pq: connection refused at 10.0.3.7:5432";
const CONTAINER: &str = "prod-api-container-1";

fn cfg(components: usize) -> StatusPageConfig {
    StatusPageConfig {
        title: "Acme status".into(),
        base_url: "https://status.example.com".into(),
        components: (0..components)
            .map(|k| ComponentConfig {
                name: if k == 0 {
                    "API".into()
                } else {
                    format!("Component {k}")
                },
                services: vec![if k == 0 {
                    "api".into()
                } else {
                    format!("svc{k}")
                }],
                description: format!("What component {k} does"),
            })
            .collect(),
        ..Default::default()
    }
}

fn actor() -> Actor {
    Actor {
        user_id: MEMBER,
        name: MEMBER_NAME.into(),
        guild_id: Some(1),
        channel_id: Some(2),
    }
}

fn incident(n: i64, title: &str, service: &str, opened: i64, resolved: Option<i64>) -> Incident {
    Incident {
        id: IncidentId(n),
        title: title.into(),
        severity: Severity::P1,
        status: if resolved.is_some() {
            Status::Resolved
        } else {
            Status::Investigating
        },
        service: Some(service.into()),
        summary: format!("Alert {LABEL} fired; see {CONTAINER}"),
        guild_id: Some(1),
        channel_id: Some(55),
        card_message_id: None,
        commander: actor(),
        comms: None,
        scribe: None,
        opened_ms: opened,
        acked_ms: None,
        acked_by: Some(MEMBER_NAME.into()),
        first_page_ms: None,
        resolved_ms: resolved,
        last_update_ms: opened,
        next_page_ms: None,
        next_update_ms: None,
        root_cause: LOG_LINE.into(),
        resolution: if resolved.is_some() {
            "Fixed the config.".into()
        } else {
            String::new()
        },
        impact: "Checkout is failing for some customers".into(),
        lessons: NOTE.into(),
        postmortem: Some(NOTE.into()),
    }
}

fn entry(id: i64, kind: EntryKind, at: i64, text: &str) -> Entry {
    Entry {
        id,
        at_ms: at,
        kind,
        actor_id: Some(MEMBER),
        actor_name: MEMBER_NAME.into(),
        text: text.into(),
        message_id: None,
        permalink: String::new(),
        attachments: vec![],
        edited_ms: None,
        deleted: false,
    }
}

fn planted_timeline(at: i64) -> Vec<Entry> {
    vec![
        entry(1, EntryKind::Note, at, NOTE),
        entry(2, EntryKind::Alert, at, LABEL),
        entry(3, EntryKind::Message, at, LOG_LINE),
        entry(4, EntryKind::Command, at, CONTAINER),
        entry(
            5,
            EntryKind::Ack,
            at,
            &format!("Acknowledged by <@{MEMBER}> {MEMBER_NAME}"),
        ),
        entry(
            6,
            EntryKind::Status,
            at + 60_000,
            "Status Identified: A bad config was rolled back",
        ),
    ]
}

fn window() -> Window {
    Window {
        id: 3,
        services: vec!["api".into()],
        all_services: false,
        reason: "Database upgrade".into(),
        flag: false,
        created_by: MEMBER_NAME.into(),
        created_ms: NOW,
        starts_ms: NOW + 3_600_000,
        ends_ms: NOW + 7_200_000,
        state: WindowState::Scheduled,
        started_ms: None,
        ended_ms: None,
        ended_by: None,
        late: false,
        leads_done: vec![],
        scheduled_announced: true,
        start_announced: false,
        end_announced: false,
        summary_posted: false,
        flag_state: String::new(),
        flag_detail: String::new(),
        flag_tried_ms: 0,
        held: 0,
        retry_ms: 0,
        extended_from_ms: None,
    }
}

fn rendered_with(title: &str) -> (Snapshot, Rendered) {
    let open = incident(7, title, "api", NOW - 600_000, None);
    let old = incident(
        6,
        "Slow logins",
        "api",
        NOW - 3 * 86_400_000,
        Some(NOW - 3 * 86_400_000 + 3_600_000),
    );
    let s = build(
        &cfg(2),
        NOW,
        &[
            ("api".into(), State::Healthy),
            ("svc1".into(), State::Unknown),
        ],
        &[
            (open, planted_timeline(NOW - 500_000)),
            (old, planted_timeline(NOW - 3 * 86_400_000)),
        ],
        &[window()],
    );
    let r = render(&s);
    (s, r)
}

#[test]
fn an_open_p1_puts_its_component_in_outage_with_its_public_updates() {
    let (s, r) = rendered_with("Checkout errors");
    assert_eq!(s.components[0].state, model::CompState::Outage);
    assert_eq!(s.components[1].state, model::CompState::Operational);
    assert!(
        r.page
            .contains("data-component=\"API\" data-state=\"outage\""),
        "{}",
        r.page
    );
    assert!(r.page.contains("Checkout is failing for some customers"));
    assert!(r.page.contains("A bad config was rolled back"));
    assert!(
        r.page.contains("Database upgrade"),
        "upcoming maintenance shown"
    );
    assert!(r.incidents["INC-7"].contains("A bad config was rolled back"));
    assert!(r.incidents["INC-6"].contains("Fixed the config."));
    let bar = &s.components[0].days;
    assert_eq!(bar.len(), 90);
    assert_eq!(bar[86].state, model::CompState::Outage, "the day of INC-6");
    assert_eq!(bar[85].state, model::CompState::Operational);
}

#[test]
fn a_script_title_renders_as_text_in_every_format() {
    let (_, r) = rendered_with("<script>alert(1)</script>");
    for (name, body) in [
        ("html", &r.page),
        ("incident", &r.incidents["INC-7"]),
        ("atom", &r.feed),
    ] {
        assert!(!body.contains("<script>"), "{name}: {body}");
        assert!(
            body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{name}"
        );
    }
    let v: serde_json::Value = serde_json::from_str(&r.json).unwrap();
    assert_eq!(v["incidents"][0]["title"], "<script>alert(1)</script>");
    assert!(!r.page.contains("<script"), "no script element at all");
}

#[test]
fn nothing_internal_reaches_the_page_the_feed_or_the_json() {
    let (_, r) = rendered_with("Checkout errors");
    let mut bodies = vec![
        ("html", r.page.clone()),
        ("atom", r.feed.clone()),
        ("json", r.json.clone()),
    ];
    bodies.extend(
        r.incidents
            .iter()
            .map(|(k, v)| ("incident", format!("{k}{v}"))),
    );
    for (name, body) in &bodies {
        for secret in [
            NOTE,
            &MEMBER.to_string(),
            MEMBER_NAME,
            LABEL,
            LOG_LINE,
            CONTAINER,
            "api-7f9c4",
        ] {
            assert!(!body.contains(secret), "{name} shows `{secret}`");
        }
    }
}

#[test]
fn the_page_stays_under_50_kb_with_many_incidents_and_components() {
    let incidents: Vec<_> = (1..=200)
        .map(|n| {
            let opened = NOW - n * 10 * 3_600_000;
            let resolved = (n > 20).then_some(opened + 3_600_000);
            let mut i = incident(
                n,
                &"A long incident title that goes on and on ".repeat(3),
                &format!("svc{}", n % 12),
                opened,
                resolved,
            );
            i.impact = "x".repeat(300);
            let t: Vec<_> = (0..15)
                .map(|k| {
                    entry(
                        k,
                        EntryKind::Status,
                        opened + k * 60_000,
                        &format!("Status Monitoring: {}", "y".repeat(200)),
                    )
                })
                .collect();
            (i, t)
        })
        .collect();
    let s = build(&cfg(12), NOW, &[], &incidents, &[window()]);
    let r = render(&s);
    println!(
        "front page with 200 incidents, 12 components: {} bytes",
        r.page.len()
    );
    assert!(r.page.len() < 50 * 1024, "page is {} bytes", r.page.len());
    assert_eq!(r.incidents.len(), 200);
}

#[test]
fn the_feed_is_atom_and_the_json_parses() {
    let (_, r) = rendered_with("Checkout & <friends>");
    assert!(r.feed.starts_with(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">"
    ));
    for tag in [
        "<id>",
        "<title>",
        "<updated>",
        "<entry>",
        "<content type=\"text\">",
    ] {
        assert!(r.feed.contains(tag), "{tag}");
    }
    assert!(r.feed.contains("Checkout &amp; &lt;friends&gt;"));
    assert!(r
        .feed
        .contains("<id>https://status.example.com/incidents/INC-7#"));
    assert_eq!(well_formed(&r.feed), Ok(()));
    let v: serde_json::Value = serde_json::from_str(&r.json).unwrap();
    assert_eq!(v["overall"], "outage");
    assert_eq!(v["components"][0]["state"], "outage");
}

/// A strict check that tags nest and close and every `&` starts a known entity.
pub(crate) fn well_formed(xml: &str) -> Result<(), String> {
    let body = xml
        .strip_prefix("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n")
        .ok_or("no declaration")?;
    let mut stack: Vec<String> = Vec::new();
    let mut rest = body;
    while let Some(lt) = rest.find('<') {
        check_text(&rest[..lt])?;
        let gt = rest[lt..].find('>').ok_or("unclosed tag")? + lt;
        let tag = &rest[lt + 1..gt];
        if let Some(name) = tag.strip_prefix('/') {
            if stack.pop().as_deref() != Some(name) {
                return Err(format!("</{name}> closes nothing open"));
            }
        } else if !tag.ends_with('/') {
            let name = tag.split_whitespace().next().ok_or("empty tag")?;
            stack.push(name.to_string());
        }
        if tag.contains('<') {
            return Err(format!("`<` inside tag {tag}"));
        }
        rest = &rest[gt + 1..];
    }
    check_text(rest)?;
    if stack.is_empty() {
        Ok(())
    } else {
        Err(format!("unclosed {stack:?}"))
    }
}

fn check_text(t: &str) -> Result<(), String> {
    if t.contains('>') {
        return Err(format!("raw `>` in {t}"));
    }
    for (k, _) in t.match_indices('&') {
        let ok = ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
            .iter()
            .any(|e| t[k..].starts_with(e));
        if !ok {
            return Err(format!("bare & in {t}"));
        }
    }
    Ok(())
}
