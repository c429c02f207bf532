//! docs/configuration.md is checked against the config structs: every key the
//! structs accept (defaults serialised, optional keys filled in below) must be
//! documented there as `` `key` ``. A new key without documentation fails here.

use klaxon::Config;

/// The keys that have no default, so serialising the defaults would not show them.
const OPTIONAL: &str = r#"
[discord]
guild_id = 123
token_file = "/run/secrets/discord_token"
[channels]
alerts = 1
incidents = 2
audit = 3
[incidents]
category_id = 4
on_call_role = 5
[incidents.severity.P1]
description = "down"
ack_minutes = 5
update_minutes = 15
page = true
[[alerts.routes]]
match = { team = "payments" }
match_re = { service = "api|web" }
channel = 6
severity = "P1"
page = true
[[services]]
name = "api"
container = "api"
health_url = "http://127.0.0.1:8080/health"
[services.maintenance_flag]
path = "/app/MAINTENANCE"
on = ["on"]
off = ["off"]
check = ["check"]
"#;

fn keys(prefix: &str, v: &toml::Value, out: &mut Vec<String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                // Tables of user-chosen names (label matchers, [permissions]).
                if !matches!(k.as_str(), "match" | "match_re") {
                    out.push(format!("{prefix}{k}"));
                }
                if !matches!(k.as_str(), "match" | "match_re" | "permissions") {
                    keys(&format!("{prefix}{k}."), v, out);
                }
            }
        }
        toml::Value::Array(a) => {
            if let Some(first) = a.first().filter(|f| f.is_table()) {
                keys(prefix, first, out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_config_key_is_in_the_reference() {
    let config: Config = toml::from_str(OPTIONAL).expect("the sample parses");
    let value = toml::Value::try_from(&config).expect("serialises");
    let mut all = Vec::new();
    keys("", &value, &mut all);
    assert!(all.len() > 60, "{all:?}");
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/configuration.md"
    ))
    .expect("docs/configuration.md");
    let missing: Vec<&String> = all
        .iter()
        .filter(|path| {
            let key = path.rsplit('.').next().unwrap_or_default();
            !doc.contains(&format!("`{key}`")) && !doc.contains(&format!("[{path}]"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "keys of the config structs missing from docs/configuration.md: {missing:?}"
    );
}
