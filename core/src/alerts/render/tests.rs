//! The renderer on the fixtures of issue #17: every message fits one phone screen
//! and Discord's limits, shows what differs, and attaches every alert.

use std::collections::BTreeMap;

use super::*;
use crate::alert::{Alert, AlertStatus, Source};
use crate::chat::limits;

const T0: i64 = 1_796_043_200_000; // 2026-12-01 12:53 UTC

fn alert(labels: &[(&str, &str)], annotations: &[(&str, &str)], status: AlertStatus) -> Alert {
    let to_map = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    Alert {
        source: Source::Alertmanager,
        fingerprint: String::new(),
        status,
        labels: to_map(labels),
        annotations: to_map(annotations),
        starts_ms: None,
        ends_ms: None,
        url: None,
    }
}

fn item(a: Alert, first_ms: i64) -> Item {
    let resolved_ms = (a.status == AlertStatus::Resolved).then_some(first_ms + 60_000);
    Item {
        alert: a,
        first_ms,
        resolved_ms,
    }
}

fn look(ping: Option<u64>) -> Look {
    Look {
        ping,
        buttons: buttons(1, true),
        note: Some("👀 Acknowledged by bob at 14:05 UTC".into()),
    }
}

const SIZES: Sizes = Sizes {
    inline_max: 10,
    summarize_over: 100,
};

/// What a phone shows: the paged role, the title, the description, the footer.
fn screen(m: &ChatMessage) -> String {
    let mut parts = vec![chat::discord::content(m)];
    for e in &m.embeds {
        parts.extend([e.title.clone(), e.description.clone(), e.footer.clone()]);
    }
    parts.retain(|p| !p.is_empty());
    parts.join("\n")
}

/// One message within one phone screen and Discord's limits; returns what it shows.
fn fits(msgs: &[ChatMessage]) -> String {
    assert_eq!(msgs.len(), 1, "a group is one message");
    let m = &msgs[0];
    let shown = screen(m);
    assert!(
        shown.lines().count() <= PHONE_LINES,
        "{} lines:\n{shown}",
        shown.lines().count()
    );
    assert!(
        chat::chars(&shown) < PHONE_CHARS,
        "{} chars:\n{shown}",
        chat::chars(&shown)
    );
    assert!(m.embeds.len() <= limits::EMBEDS);
    assert!(m.embeds.iter().map(Embed::size).sum::<usize>() <= limits::EMBED_TOTAL);
    assert!(m.buttons.len() <= 5);
    shown
}

fn attachment(msgs: &[ChatMessage]) -> String {
    msgs[0]
        .attachment
        .as_ref()
        .map(|f| f.content.clone())
        .expect("the full list is attached")
}

#[test]
fn a_hundred_alerts_differing_by_instance_name_each_instance() {
    let items: Vec<Item> = (0..100)
        .map(|i| {
            item(
                alert(
                    &[
                        ("alertname", "AcceptBurst00"),
                        ("service", "api"),
                        ("severity", "critical"),
                        ("instance", &format!("i{i}")),
                    ],
                    &[("summary", "queue depth high")],
                    AlertStatus::Firing,
                ),
                T0 + i * 1_000,
            )
        })
        .collect();
    let msgs = render_group(
        "AcceptBurst00 · api",
        Severity::P1,
        &items,
        SIZES,
        &look(Some(7)),
    );
    let shown = fits(&msgs);
    assert!(shown.starts_with("<@&7>"), "{shown}");
    assert!(shown.contains("🔥 P1 FIRING · AcceptBurst00 · api (100)"));
    // Said once: the summary and the shared severity, not on every row.
    assert_eq!(shown.matches("queue depth high").count(), 1, "{shown}");
    assert!(shown.contains("severity=critical"), "{shown}");
    // Rows name only the instance, newest first.
    assert_eq!(shown.matches("🔴").count(), 10, "{shown}");
    assert!(shown.contains("🔴 instance=i99 · since"), "{shown}");
    assert!(shown.contains("instance=i90 ·") && !shown.contains("instance=i89 "));
    assert!(
        shown.contains("… and 90 more in the attached list"),
        "{shown}"
    );
    let list = attachment(&msgs);
    assert_eq!(list.lines().count(), 100);
    for i in 0..100 {
        assert!(
            list.contains(&format!("instance=i{i} ")),
            "i{i} in the list"
        );
    }
    assert_eq!(msgs[0].buttons.len(), 4);
}

#[test]
fn a_hundred_identical_alerts_collapse_into_one_row() {
    let items: Vec<Item> = (0..100)
        .map(|i| {
            item(
                alert(
                    &[
                        ("alertname", "DiskFull"),
                        ("service", "db"),
                        ("instance", "db-1"),
                    ],
                    &[("summary", "disk 95% full")],
                    AlertStatus::Firing,
                ),
                T0 + i,
            )
        })
        .collect();
    let msgs = render_group("DiskFull · db", Severity::P2, &items, SIZES, &look(None));
    let shown = fits(&msgs);
    assert_eq!(shown.matches("🔴").count(), 1, "{shown}");
    assert!(
        shown.contains("🔴 ×100 firing · since 12:53 UTC"),
        "{shown}"
    );
    assert!(
        shown.contains("instance=db-1"),
        "the shared instance in the header"
    );
    assert!(!shown.contains("more in the attached list"), "{shown}");
    let list = attachment(&msgs);
    assert_eq!(list.lines().count(), 100);
    assert!(list.lines().all(|l| l.contains("instance=db-1")));
}

#[test]
fn mixed_services_show_the_service_on_each_row() {
    let items: Vec<Item> = (0..40)
        .map(|i| {
            item(
                alert(
                    &[
                        ("alertname", "HighLatency"),
                        ("service", ["api", "web", "worker", "db"][i % 4]),
                        ("instance", &format!("h{}", i % 10)),
                    ],
                    &[("summary", &format!("p99 {} ms", 100 + i))],
                    AlertStatus::Firing,
                ),
                T0 + i as i64,
            )
        })
        .collect();
    let msgs = render_group("HighLatency", Severity::P1, &items, SIZES, &look(Some(7)));
    let shown = fits(&msgs);
    let rows: Vec<&str> = shown.lines().filter(|l| l.starts_with("🔴")).collect();
    assert_eq!(rows.len(), 10);
    assert!(rows.iter().all(|r| r.contains("service=")), "{shown}");
    assert!(rows[0].contains("p99 139 ms"), "newest first: {shown}");
    assert!(shown.contains("… and 30 more"), "{shown}");
    let list = attachment(&msgs);
    assert_eq!(list.lines().count(), 40);
    for s in ["api", "web", "worker", "db"] {
        assert_eq!(list.matches(&format!("service={s} ")).count(), 10);
    }
    for i in 0..10 {
        assert!(list.contains(&format!("instance=h{i} ")));
    }
}

#[test]
fn mixed_severities_put_the_worst_first_and_resolved_last() {
    let mut items = Vec::new();
    for (i, (sev, status)) in [
        ("warning", AlertStatus::Firing),
        ("critical", AlertStatus::Resolved),
        ("info", AlertStatus::Firing),
        ("critical", AlertStatus::Firing),
        ("error", AlertStatus::Firing),
    ]
    .into_iter()
    .enumerate()
    {
        items.push(item(
            alert(
                &[
                    ("alertname", "Errors"),
                    ("service", "api"),
                    ("severity", sev),
                    ("instance", &format!("n{i}")),
                ],
                &[("summary", "error rate up")],
                status,
            ),
            T0 + i as i64 * 60_000,
        ));
    }
    let msgs = render_group("Errors · api", Severity::P1, &items, SIZES, &look(Some(7)));
    let shown = fits(&msgs);
    let rows: Vec<&str> = shown
        .lines()
        .filter(|l| l.starts_with("🔴") || l.starts_with("✅"))
        .collect();
    let order: Vec<&str> = ["critical", "error", "warning", "info", "critical"].to_vec();
    assert_eq!(rows.len(), 5, "{shown}");
    for (r, sev) in rows.iter().zip(order) {
        assert!(
            r.contains(&format!("severity={sev}")),
            "{r} should be {sev}"
        );
    }
    assert!(rows[4].starts_with("✅ ~~") && rows[4].contains("resolved 12:55 UTC"));
    assert!(shown.contains("(4, 1 resolved)"), "{shown}");
    assert!(msgs[0].attachment.is_none(), "five alerts, all shown");
}

#[test]
fn markdown_in_labels_and_annotations_is_shown_literally() {
    let items: Vec<Item> = (0..30)
        .map(|i| {
            item(
                alert(
                    &[
                        ("alertname", "Weird"),
                        ("service", "api"),
                        ("path", &format!("**/v1/_x_{i}~~`|")),
                        ("owner", "@everyone <@&1> [x](http://e.vil)"),
                    ],
                    &[("summary", "*bold* __under__ `code`\nsecond line")],
                    AlertStatus::Firing,
                ),
                T0 + i,
            )
        })
        .collect();
    let msgs = render_group("Weird · api", Severity::P1, &items, SIZES, &look(None));
    let shown = fits(&msgs);
    assert!(
        shown.contains(r"\*bold\* \_\_under\_\_ \`code\` second line"),
        "{shown}"
    );
    assert!(shown.contains(r"path=\*\*/v1/\_x\_29\~\~\`\|"), "{shown}");
    assert!(
        !shown.contains("@everyone") && !shown.contains("<@&1>"),
        "{shown}"
    );
    assert!(shown.contains(r"\[x\]"), "no link: {shown}");
    assert!(chat::discord::content(&msgs[0]).is_empty(), "nothing pings");
    let list = attachment(&msgs);
    assert_eq!(
        list.lines().count(),
        30,
        "one line each: newlines flattened"
    );
    for i in 0..30 {
        assert!(
            list.contains(&format!("path=**/v1/_x_{i}~~`|")),
            "raw in the file"
        );
    }
}

#[test]
fn any_group_size_fits_one_phone_screen() {
    let long = "x".repeat(3_000);
    for (n, status) in [1, 9, 10, 11, 500]
        .into_iter()
        .flat_map(|n| [(n, AlertStatus::Firing), (n, AlertStatus::Resolved)])
    {
        let items: Vec<Item> = (0..n)
            .map(|i| {
                item(
                    alert(
                        &[
                            ("alertname", &long),
                            ("service", &long),
                            ("instance", &format!("{long}{i}")),
                        ],
                        &[("summary", &format!("{i}{long}")), ("runbook", &long)],
                        status,
                    ),
                    T0 + i,
                )
            })
            .collect();
        let title = format!("{long} · {long}");
        let msgs = render_group(&title, Severity::P1, &items, SIZES, &look(Some(7)));
        fits(&msgs);
        assert_eq!(msgs[0].attachment.is_some(), n > 10, "{n}");
    }
}

#[test]
fn a_resolved_group_reads_resolved_and_loses_its_buttons() {
    let items: Vec<Item> = (0..3)
        .map(|i| {
            item(
                alert(
                    &[
                        ("alertname", "Down"),
                        ("service", "api"),
                        ("instance", &format!("i{i}")),
                    ],
                    &[],
                    AlertStatus::Resolved,
                ),
                T0 + i * 60_000,
            )
        })
        .collect();
    let msgs = render_group("Down · api", Severity::P1, &items, SIZES, &look(Some(7)));
    let shown = fits(&msgs);
    let e = &msgs[0].embeds[0];
    assert_eq!(e.title, "✅ RESOLVED · Down · api (3)");
    assert_eq!(e.color, chat::GREEN);
    assert!(shown.contains("Resolved at 12:56 UTC"), "{shown}");
    assert!(
        shown.contains("✅ ~~instance=i2~~ · resolved 12:56 UTC"),
        "{shown}"
    );
    assert!(msgs[0].buttons.is_empty() && msgs[0].page.is_none());
}

#[test]
fn a_repeat_pings_only_when_paging_and_offers_acknowledge_only() {
    let m = repeat_message(
        7,
        "Disk <@1> · db",
        3,
        5 * 3_600_000,
        Severity::P1,
        Some(42),
    );
    let shown = chat::discord::content(&m);
    assert!(shown.starts_with("<@&42> 🔁 Still firing after"), "{shown}");
    assert!(!shown.contains("<@1>"), "titles are shown literally");
    assert_eq!(m.page, Some(42));
    assert!(!m.silent);
    assert_eq!(m.buttons.len(), 1);
    assert_eq!(m.buttons[0].custom_id, "alerts:ack:7");
    let quiet = repeat_message(7, "t", 1, 60_000, Severity::P4, None);
    assert!(quiet.page.is_none() && quiet.silent);
    let shown = chat::discord::content(&quiet);
    assert!(shown.starts_with("🔁"), "{shown}");
}
