//! Reading the config so that every problem is reported in one run, and no
//! secret is ever part of a message.
//!
//! serde stops at the first error, and figment with it. To list all of them, the
//! merged TOML and environment are kept as a value tree: each time extraction
//! fails, the problem is noted with its full key (`services[1].health_url`), the
//! offending value is taken out of the tree (or, for a missing key, a placeholder
//! is put in) and extraction runs again, until it succeeds or nothing more can be
//! repaired. The repaired config then goes through the semantic checks, whose
//! findings about keys already reported are dropped (a placeholder is not the
//! operator's mistake).
//!
//! Environment values are taken as text: figment would read
//! `KLAXON_INTAKE__ALERTMANAGER_TOKEN=918273645546372819` as a number and the
//! token field would refuse it. Numeric and boolean keys still work from text
//! because extraction is lossy (`"8080"` is accepted for a port).

use std::collections::HashMap;

use figment::error::{Actual, Kind};
use figment::providers::Serialized;
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use klaxon_core::secret::{is_secret_name, redact_url};

use super::Config;

/// `KLAXON_<SECTION>__<KEY>` variables, as a figment provider whose values are
/// text (see the module docs), and a way to tell which variable set a key.
pub struct TextEnv {
    /// (dotted key, variable name, value)
    vars: Vec<(String, String, String)>,
}

impl TextEnv {
    /// Only names with `__` count: `KLAXON_LOG` and the test suite's
    /// `KLAXON_TEST_*` are not config keys.
    pub fn new(vars: impl IntoIterator<Item = (String, String)>) -> TextEnv {
        let vars = vars
            .into_iter()
            .filter_map(|(name, value)| {
                let trimmed = name.trim();
                let rest = trimmed
                    .get(..7)
                    .filter(|p| p.eq_ignore_ascii_case("KLAXON_"))
                    .map(|_| &trimmed[7..])?;
                if !rest.contains("__") {
                    return None;
                }
                let key = rest.to_ascii_lowercase().replace("__", ".");
                if key.split('.').any(|s| s.trim().is_empty()) {
                    return None;
                }
                Some((key, trimmed.to_string(), value))
            })
            .collect();
        TextEnv { vars }
    }

    /// The variable that set `key` or a table around it.
    fn source_of(&self, key: &[String]) -> Option<&str> {
        let dotted = key.join(".");
        self.vars
            .iter()
            .find(|(k, _, _)| covers(k, &dotted))
            .map(|(_, name, _)| name.as_str())
    }
}

impl Provider for TextEnv {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variable(s)")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut root = Dict::new();
        for (key, _, raw) in &self.vars {
            let segments: Vec<&str> = key.split('.').collect();
            let last = segments.last().copied().unwrap_or_default();
            let value = if is_secret_name(last) {
                // A secret is taken literally, whatever it looks like.
                Value::from(raw.clone())
            } else {
                match raw.parse::<Value>() {
                    Ok(Value::Num(..) | Value::Bool(..)) | Err(_) => Value::from(raw.clone()),
                    Ok(other) => other,
                }
            };
            insert_path(&mut root, &segments, value);
        }
        Ok(Profile::Default.collect(root))
    }
}

fn insert_path(dict: &mut Dict, segments: &[&str], value: Value) {
    match segments {
        [] => {}
        [last] => {
            dict.insert((*last).to_string(), value);
        }
        [first, rest @ ..] => {
            let entry = dict
                .entry((*first).to_string())
                .or_insert_with(|| Value::from(Dict::new()));
            if !matches!(entry, Value::Dict(..)) {
                *entry = Value::from(Dict::new());
            }
            if let Value::Dict(_, inner) = entry {
                insert_path(inner, rest, value);
            }
        }
    }
}

/// One problem: its key (segments) and the line the operator reads.
pub struct Problem {
    pub key: Vec<String>,
    pub line: String,
}

/// Extracts the config, repairing the tree after each error so that the next one
/// is found too. `None` when some problem could not be worked around.
pub fn extract(figment: &Figment, env: &TextEnv) -> (Option<Config>, Vec<Problem>) {
    let mut problems: Vec<Problem> = Vec::new();
    let mut tree: Value = match figment.extract::<Value>() {
        Ok(v) => v,
        Err(errs) => {
            for e in errs {
                problems.push(Problem {
                    key: Vec::new(),
                    line: scrub(&e.to_string()),
                });
            }
            return (None, problems);
        }
    };
    // For keys given a placeholder: which one was tried last.
    let mut placeholders: HashMap<Vec<String>, usize> = HashMap::new();
    for _ in 0..256 {
        let attempt = Figment::from(Serialized::defaults(&tree)).extract_lossy::<Config>();
        let err = match attempt {
            Ok(config) => return (Some(config), problems),
            Err(e) => e,
        };
        let key = key_of(&err);
        if key.is_empty() {
            problems.push(Problem {
                key,
                line: scrub(&err.kind.to_string()),
            });
            return (None, problems);
        }
        let known = problems.iter().any(|p| covers_key(&p.key, &key));
        if !known {
            problems.push(Problem {
                line: describe(&err.kind, &key, env),
                key: key.clone(),
            });
        }
        let repaired = match &err.kind {
            Kind::UnknownField(..) => remove_path(&mut tree, &key),
            Kind::MissingField(..) => next_placeholder(&mut tree, &key, &mut placeholders),
            _ if placeholders.contains_key(&key) => {
                next_placeholder(&mut tree, &key, &mut placeholders)
            }
            _ => remove_path(&mut tree, &key),
        };
        if !repaired {
            return (None, problems);
        }
    }
    (None, problems)
}

/// The full key an error is about: figment's path, plus the field for unknown and
/// missing keys (when the path does not already end with it).
fn key_of(e: &figment::Error) -> Vec<String> {
    let mut key = e.path.clone();
    let field = match &e.kind {
        Kind::UnknownField(f, _) => Some(f.as_str()),
        Kind::MissingField(f) => Some(f.as_ref()),
        _ => None,
    };
    if let Some(f) = field {
        if key.last().map(String::as_str) != Some(f) {
            key.push(f.to_string());
        }
    }
    key
}

/// `services[1].health_url` from `["services", "1", "health_url"]`.
pub fn display_key(key: &[String]) -> String {
    let mut out = String::new();
    for seg in key {
        if !seg.is_empty() && seg.chars().all(|c| c.is_ascii_digit()) && !out.is_empty() {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(seg);
        }
    }
    out
}

fn covers_key(outer: &[String], inner: &[String]) -> bool {
    inner.len() >= outer.len() && inner[..outer.len()] == *outer
}

/// Whether the dotted or displayed key `outer` is `inner` or a table around it.
pub fn covers(outer: &str, inner: &str) -> bool {
    inner == outer
        || inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.starts_with(['.', '[', ' ', ':']))
}

fn describe(kind: &Kind, key: &[String], env: &TextEnv) -> String {
    let shown = display_key(key);
    let src = env
        .source_of(key)
        .map(|v| format!(" (from {v})"))
        .unwrap_or_default();
    let secret = key.last().is_some_and(|k| is_secret_name(k));
    let what = match kind {
        Kind::UnknownField(..) if shown == "discord.token" => {
            "not read from the config (a file may be shared or committed); the token is \
             read from DISCORD_TOKEN or discord.token_file"
                .to_string()
        }
        Kind::UnknownField(field, expected) => {
            format!("unknown key{}", did_you_mean(field, expected))
        }
        Kind::MissingField(_) => "missing".to_string(),
        Kind::InvalidType(actual, expected) => {
            format!(
                "invalid type: found {}, expected {expected}",
                actual_text(actual, secret)
            )
        }
        Kind::InvalidValue(actual, expected) => {
            format!(
                "invalid value: found {}, expected {expected}",
                actual_text(actual, secret)
            )
        }
        Kind::UnknownVariant(v, expected) if !secret => format!(
            "unknown value `{}`, expected one of {}{}",
            v,
            expected
                .iter()
                .map(|e| format!("`{e}`"))
                .collect::<Vec<_>>()
                .join(", "),
            did_you_mean(v, expected)
        ),
        _ if secret => "invalid value (not shown: it is a secret)".to_string(),
        other => scrub(&other.to_string()),
    };
    format!("{shown}: {what}{src}")
}

/// What was found, without the value when it is a secret; a text value that is a
/// URL has its credentials masked.
fn actual_text(actual: &Actual, secret: bool) -> String {
    match actual {
        Actual::Str(_) if secret => "a string".into(),
        Actual::Str(s) => format!("string {:?}", redact_url(s)),
        Actual::Bool(_)
        | Actual::Unsigned(_)
        | Actual::Signed(_)
        | Actual::Float(_)
        | Actual::Char(_)
        | Actual::Bytes(_)
            if secret =>
        {
            "a value (not shown: it is a secret)".into()
        }
        other => other.to_string(),
    }
}

/// Masks URL credentials in a library message, word by word.
fn scrub(text: &str) -> String {
    text.split(' ')
        .map(|w| {
            if w.contains("://") || w.contains('@') {
                redact_url(w)
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `; did you mean `health_url`?` when one of `known` is a near miss.
pub fn did_you_mean(word: &str, known: &[&str]) -> String {
    let limit = match word.chars().count() {
        0..=4 => 1,
        5..=8 => 2,
        _ => 3,
    };
    known
        .iter()
        .map(|k| (edit_distance(&word.to_lowercase(), k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| format!("; did you mean `{k}`?"))
        .unwrap_or_default()
}

/// Optimal string alignment distance: insertions, deletions, substitutions and
/// swaps of two neighbours (`helath` → `health` is one edit).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The value at `key`'s parent, for editing.
fn parent_mut<'a>(tree: &'a mut Value, key: &[String]) -> Option<&'a mut Value> {
    let mut node = tree;
    for seg in &key[..key.len().saturating_sub(1)] {
        node = match node {
            Value::Dict(_, d) => d.get_mut(seg)?,
            Value::Array(_, a) => a.get_mut(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(node)
}

fn remove_path(tree: &mut Value, key: &[String]) -> bool {
    let Some(last) = key.last() else { return false };
    match parent_mut(tree, key) {
        Some(Value::Dict(_, d)) => d.remove(last).is_some(),
        Some(Value::Array(_, a)) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => {
                a.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

/// Puts the next placeholder (a table, 0, "", false, []) at `key`; false when
/// all were tried.
fn next_placeholder(
    tree: &mut Value,
    key: &[String],
    tried: &mut HashMap<Vec<String>, usize>,
) -> bool {
    let n = tried.entry(key.to_vec()).or_insert(0);
    let value = match *n {
        0 => Value::from(Dict::new()),
        1 => Value::from(0u64),
        2 => Value::from(String::new()),
        3 => Value::from(false),
        4 => Value::from(Vec::<Value>::new()),
        _ => return false,
    };
    *n += 1;
    let Some(last) = key.last() else { return false };
    match parent_mut(tree, key) {
        Some(Value::Dict(_, d)) => {
            d.insert(last.clone(), value);
            true
        }
        Some(Value::Array(_, a)) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => {
                a[i] = value;
                true
            }
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_are_suggested() {
        let known = &["name", "container", "health_url", "maintenance_flag"];
        assert_eq!(
            did_you_mean("helath_url", known),
            "; did you mean `health_url`?"
        );
        assert_eq!(
            did_you_mean("contianer", known),
            "; did you mean `container`?"
        );
        assert_eq!(did_you_mean("image", known), "");
        assert_eq!(edit_distance("gild", "guild_id"), 4);
    }

    #[test]
    fn keys_are_shown_as_written() {
        let k: Vec<String> = ["services", "1", "health_url"].map(String::from).to_vec();
        assert_eq!(display_key(&k), "services[1].health_url");
        assert!(covers("services[1]", "services[1].name: `x`"));
        assert!(!covers("services[1]", "services[10].name"));
    }
}
