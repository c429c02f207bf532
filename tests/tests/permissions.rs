//! Every command and subcommand, at every permission level: allowed when the
//! member's level reaches the command's minimum, denied (privately, naming the
//! level) otherwise. The list comes from the commands themselves, so a new command
//! is in the matrix without anyone adding it here.

use klaxon_core::permissions::Level;
use klaxon_tests::fake::OutputKind;
use klaxon_tests::tester::OPS;
use klaxon_tests::Tester;
use serde_json::Value;

/// A leaf of the command tree as members type it (`incident action add`), with a
/// value for each required option (typed as Discord would send it).
struct Leaf {
    path: String,
    options: Vec<(String, i64, Value)>,
}

fn leaves(prefix: &str, node: &Value, out: &mut Vec<Leaf>) {
    let options = node["options"].as_array().cloned().unwrap_or_default();
    let subs: Vec<&Value> = options
        .iter()
        .filter(|o| matches!(o["type"].as_i64(), Some(1 | 2)))
        .collect();
    if !subs.is_empty() {
        for s in subs {
            let name = s["name"].as_str().unwrap_or_default();
            leaves(&format!("{prefix} {name}"), s, out);
        }
        return;
    }
    let required = options
        .iter()
        .filter(|o| o["required"].as_bool() == Some(true))
        .map(|o| {
            let kind = o["type"].as_i64().unwrap_or(3);
            let value = match o["choices"].as_array().and_then(|c| c.first()) {
                Some(choice) => choice["value"].clone(),
                None => match kind {
                    4 => Value::from(999_999),
                    5 => Value::from(false),
                    6 => Value::from("4999"),
                    10 => Value::from(1.5),
                    // Strings: nothing any command knows, so nothing happens.
                    _ => Value::from("nosuch"),
                },
            };
            (
                o["name"].as_str().unwrap_or_default().to_string(),
                kind,
                value,
            )
        })
        .collect();
    out.push(Leaf {
        path: prefix.trim().to_string(),
        options: required,
    });
}

const LEVELS: [Option<Level>; 5] = [
    None,
    Some(Level::Viewer),
    Some(Level::Responder),
    Some(Level::Operator),
    Some(Level::Admin),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_at_every_level_is_allowed_or_denied() {
    let t = Tester::builder().spawn().await;
    let commands = klaxon_commands::all();
    let minimum: std::collections::BTreeMap<String, Level> =
        klaxon_commands::default_levels(&commands)
            .into_iter()
            .collect();
    let mut all = Vec::new();
    let mut menus = Vec::new();
    for c in &commands {
        match c.create_as_slash_command() {
            Some(slash) => {
                let json = serde_json::to_value(&slash).expect("command JSON");
                leaves(&c.name, &json, &mut all);
            }
            None => menus.push(
                c.context_menu_name
                    .as_deref()
                    .unwrap_or_default()
                    .to_string(),
            ),
        }
    }
    assert!(all.len() >= 25, "{} leaves", all.len());
    let mut checked = 0;
    for leaf in &all {
        // The level of the leaf, else of its nearest parent with one.
        let needed = (1..=leaf.path.split(' ').count())
            .rev()
            .find_map(|n| {
                let name: Vec<&str> = leaf.path.split(' ').take(n).collect();
                minimum.get(&name.join(" ")).copied()
            })
            .unwrap_or_else(|| panic!("{} has no level", leaf.path));
        for level in LEVELS {
            let mut s = t.slash(&leaf.path);
            for (name, kind, value) in &leaf.options {
                s = match kind {
                    6 => s.opt_user(name, value.as_str().unwrap_or("1").parse().unwrap_or(1)),
                    _ => s.opt(name, value.clone()),
                };
            }
            s = match level {
                None => s.without_role(),
                Some(l) => s.as_level(l),
            };
            let reply = s.send().await.reply().await;
            let denied = reply.text().contains("` needs the ");
            let allowed = level.is_some_and(|l| l >= needed);
            assert_eq!(
                !denied,
                allowed,
                "/{} as {level:?} (needs {needed}): {}",
                leaf.path,
                reply.text()
            );
            if denied {
                assert!(reply.ephemeral(), "/{}: a refusal is private", leaf.path);
                reply.assert_contains(&format!("needs the {needed} level"));
            }
            checked += 1;
        }
    }
    // The message context menu (Add to timeline).
    for menu in &menus {
        let needed = commands
            .iter()
            .find(|c| c.context_menu_name.as_deref() == Some(&menu[..]))
            .and_then(|c| minimum.get(&c.name.to_string()).copied())
            .expect("a level");
        for level in LEVELS {
            let who = Tester::member(level);
            let msg = t.user_message(OPS, &who, "something happened", &[]).await;
            let click = t
                .fake
                .message_command(who, menu, msg)
                .await
                .expect("message command");
            let id = click.id;
            let out = t
                .take("the context menu's answer", |o| {
                    matches!(o.kind, OutputKind::Callback { interaction_id, .. } if interaction_id == id)
                })
                .await;
            let denied = out.message.text().contains("` needs the ");
            assert_eq!(
                !denied,
                level.is_some_and(|l| l >= needed),
                "{menu} as {level:?}"
            );
            checked += 1;
        }
    }
    eprintln!(
        "{checked} invocations: {} commands and subcommands, {} context menus, 5 levels",
        all.len(),
        menus.len()
    );
    // What the allowed invocations posted besides their replies (incident threads,
    // notices) is not what this test is about.
    t.discard_unread().await;
    t.finish().await;
}

/// A member whose level does not reach a command still gets an answer while typing
/// its options: no choices (with no answer at all Discord shows "Loading options
/// failed"). Typing is not a command run, so the audit log records nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_autocomplete_is_answered_with_no_choices_and_not_audited() {
    let t = Tester::builder()
        .service("api", None, Some("http://127.0.0.1:9/health"))
        .spawn()
        .await;
    let denied = t
        .slash("health")
        .without_role()
        .autocomplete("service", "")
        .await;
    assert!(denied.is_empty(), "{denied:?}");
    let allowed = t
        .slash("health")
        .as_level(Level::Viewer)
        .autocomplete("service", "")
        .await;
    assert_eq!(allowed, vec!["api".to_string()]);
    // Audit rows are written after the answer: give a wrong one time to land.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let rows = t.bot().app.store.recent_audit(20).await.expect("audit");
    assert!(
        rows.is_empty(),
        "autocompletes are not command runs: {:?}",
        rows.iter()
            .map(|r| (r.command.as_str(), r.outcome.as_str()))
            .collect::<Vec<_>>()
    );
    t.finish().await;
}
