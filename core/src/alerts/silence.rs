//! Silences: matching alerts are stored and counted but not posted until the
//! silence ends (by itself, or by `/alerts unsilence`); alerts still firing then are
//! given back to their groups. Their SQL is in [`crate::store::alerts`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use super::Alert;
use crate::store::alerts::{self, SilenceRow};
use crate::store::{Store, StoreError};
use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

/// The whole `matcher` option, as typed.
pub const MAX_MATCHERS_TEXT: usize = 1_000;
/// One matcher's value (a label value or a regular expression).
pub const MAX_VALUE: usize = 200;
/// Matchers in one silence.
pub const MAX_MATCHERS: usize = 16;
/// Compiled program size of one regex: generous for real matchers
/// (`High.*|Slow(Query|Disk)`), far below what makes matching costly.
const REGEX_SIZE_LIMIT: usize = 64 * 1024;
/// Silences stored before the limit above existed keep working: compiled once per
/// process with the regex crate's own default limit, and matched in linear time.
const STORED_REGEX_SIZE_LIMIT: usize = 10 * (1 << 20);
/// The lazy DFA's cache per regex.
const REGEX_DFA_LIMIT: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "=")]
    Equal,
    #[serde(rename = "=~")]
    Regex,
}

/// One matcher as stored: structured, never a joined string, so no label value
/// can be read as another matcher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matcher {
    pub label: String,
    pub op: Op,
    pub value: String,
}

/// A matcher ready to test alerts: its regex compiled once.
#[derive(Debug, Clone)]
enum Test {
    Equal(String),
    Regex(Regex),
    /// Stored matchers that do not compile (any more): match nothing.
    Never,
}

/// A silence's matchers, compiled.
#[derive(Debug, Clone)]
pub struct Compiled(Vec<(String, Test)>);

impl Compiled {
    /// Compiles matchers (each regex with the size limits); the error names the
    /// matcher, for the member.
    pub fn new(matchers: &[Matcher]) -> Result<Compiled, String> {
        Compiled::with_limit(matchers, REGEX_SIZE_LIMIT)
    }

    fn with_limit(matchers: &[Matcher], size_limit: usize) -> Result<Compiled, String> {
        let mut out = Vec::with_capacity(matchers.len());
        for m in matchers {
            let test = match m.op {
                Op::Equal => Test::Equal(m.value.clone()),
                Op::Regex => Test::Regex(compile(&m.value, size_limit)?),
            };
            out.push((m.label.clone(), test));
        }
        Ok(Compiled(out))
    }

    pub fn matches(&self, a: &Alert) -> bool {
        self.0.iter().all(|(label, test)| {
            let v = a.label(label).unwrap_or_default();
            match test {
                Test::Equal(want) => v == want,
                Test::Regex(re) => re.is_match(v),
                Test::Never => false,
            }
        })
    }

    /// The compiled form of stored matchers (`matchers` as stored, JSON). Regexes
    /// are compiled once per process, not once per alert or per notification: the
    /// cache is keyed by the stored text, so it holds across databases and
    /// replicas. Stored matchers that no longer compile (a limit lowered since)
    /// match nothing.
    pub fn of_stored(json: &str) -> Arc<Compiled> {
        static CACHE: OnceLock<Mutex<HashMap<String, Arc<Compiled>>>> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        if let Some(c) = cache.lock().ok().and_then(|m| m.get(json).cloned()) {
            return c;
        }
        let matchers: Vec<Matcher> = serde_json::from_str(json).unwrap_or_default();
        let compiled = match Compiled::with_limit(&matchers, STORED_REGEX_SIZE_LIMIT) {
            Ok(c) if !matchers.is_empty() => Arc::new(c),
            _ => Arc::new(Compiled(vec![(String::new(), Test::Never)])),
        };
        if let Ok(mut m) = cache.lock() {
            // Silences are few; a bound keeps a years-long process from growing.
            if m.len() >= 4_096 {
                m.clear();
            }
            m.insert(json.to_string(), Arc::clone(&compiled));
        }
        compiled
    }
}

fn compile(value: &str, size_limit: usize) -> Result<Regex, String> {
    RegexBuilder::new(&format!("^(?:{value})$"))
        .size_limit(size_limit)
        .dfa_size_limit(REGEX_DFA_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => format!(
                "`{value}` is too large a regular expression for a silence: use fewer or shorter repetitions (e.g. `.*` instead of `\\w{{40}}`)."
            ),
            e => format!("`{value}` is not a regular expression: {e}"),
        })
}

/// Where a new matcher starts: a label name followed by `=` or `=~`.
fn starts_matcher(rest: &str) -> bool {
    let name_len = rest
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    name_len > 0 && rest[name_len..].starts_with('=')
}

/// Splits the option into matchers: at spaces and commas that stand *between*
/// matchers (the next text starts `label=`), never inside a quoted value, so
/// `alertname=~x{1,5}` and `summary="disk full, again"` stay whole.
fn split_matchers(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ' ' | ',' | '\t' | '\n' if !quoted => {
                let rest = s[i + 1..].trim_start_matches([' ', ',', '\t', '\n']);
                if cur.trim().is_empty() || rest.is_empty() || starts_matcher(rest) {
                    if !cur.trim().is_empty() {
                        parts.push(std::mem::take(&mut cur));
                    }
                    cur.clear();
                } else {
                    cur.push(c);
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        parts.push(cur);
    }
    parts
}

/// Matchers as members type them: `service=api alertname=~High.*`, separated by
/// spaces or commas. Every problem is named; regexes are compiled here, with their
/// size bounded, so a silence that exists can always be matched quickly.
pub fn parse_matchers(s: &str) -> Result<Vec<Matcher>, String> {
    if s.chars().count() > MAX_MATCHERS_TEXT {
        return Err(format!(
            "Matchers are at most {MAX_MATCHERS_TEXT} characters long."
        ));
    }
    let mut out = Vec::new();
    for part in split_matchers(s) {
        let part = part.trim();
        let (label, op, value) = if let Some((l, v)) = part.split_once("=~") {
            (l, Op::Regex, v)
        } else if let Some((l, v)) = part.split_once('=') {
            (l, Op::Equal, v)
        } else {
            return Err(format!(
                "`{part}` is not a matcher: write label=value or label=~regex"
            ));
        };
        let label = label.trim();
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        if label.is_empty() || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("`{label}` is not a label name"));
        }
        if value.chars().count() > MAX_VALUE {
            return Err(format!(
                "The value of `{label}` is longer than {MAX_VALUE} characters."
            ));
        }
        if op == Op::Regex {
            compile(value, REGEX_SIZE_LIMIT)?;
        }
        out.push(Matcher {
            label: label.to_string(),
            op,
            value: value.to_string(),
        });
    }
    if out.is_empty() {
        return Err("Give at least one matcher, e.g. `service=api`.".into());
    }
    if out.len() > MAX_MATCHERS {
        return Err(format!("A silence has at most {MAX_MATCHERS} matchers."));
    }
    Ok(out)
}

/// Whether every matcher matches `a` (compiles them: for one-off checks; intake
/// uses [`Compiled`]).
pub fn matches(matchers: &[Matcher], a: &Alert) -> bool {
    Compiled::new(matchers).is_ok_and(|c| c.matches(a))
}

pub fn describe(matchers: &[Matcher]) -> String {
    matchers
        .iter()
        .map(|m| {
            let op = match m.op {
                Op::Equal => "=",
                Op::Regex => "=~",
            };
            // Quoted only when it would not read back as this one matcher.
            let v = &m.value;
            let quote = v.is_empty()
                || v.contains('"')
                || v.starts_with(char::is_whitespace)
                || v.ends_with([' ', ',', '\t', '\n'])
                || split_matchers(&format!("x={v}")).len() != 1;
            if quote {
                format!("{}{op}\"{}\"", m.label, m.value)
            } else {
                format!("{}{op}{}", m.label, m.value)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Debug, Clone)]
pub struct Silence {
    pub id: i64,
    pub matchers: Vec<Matcher>,
    /// The matchers compiled (shared with every reader of the same silence).
    pub compiled: Arc<Compiled>,
    pub reason: String,
    pub created_by: String,
    pub created_ms: i64,
    pub ends_ms: i64,
    pub held: i64,
}

fn from_row(r: SilenceRow) -> Silence {
    Silence {
        id: r.id,
        matchers: serde_json::from_str(&r.matchers).unwrap_or_default(),
        compiled: Compiled::of_stored(&r.matchers),
        reason: r.reason,
        created_by: r.created_by,
        created_ms: r.created_ms,
        ends_ms: r.ends_ms,
        held: r.held,
    }
}

/// A new silence; with `until_resolved` it also ends once every alert it held has
/// resolved.
pub async fn create(
    store: &Store,
    matchers: &[Matcher],
    reason: &str,
    by: &str,
    now_ms: i64,
    ends_ms: i64,
    until_resolved: bool,
) -> Result<i64, StoreError> {
    let json = serde_json::to_string(matchers).unwrap_or_else(|_| "[]".into());
    // Compiled once, now; intake finds it in the cache.
    let _ = Compiled::of_stored(&json);
    alerts::insert_silence(store, json, reason, by, now_ms, ends_ms, until_resolved).await
}

/// Ends the escalation of every alert group whose firing alerts the new silence
/// all match, as the alert's own Silence button does: later steps never fire
/// after a silence (issue #14). The number of escalations ended.
pub async fn stop_escalations(
    app: &crate::app::App,
    silence_id: i64,
    matchers: &[Matcher],
    by: &crate::actor::Actor,
) -> Result<usize, StoreError> {
    use crate::oncall::escalate::{self, Subject};
    let json = serde_json::to_string(matchers).unwrap_or_else(|_| "[]".into());
    let compiled = Compiled::of_stored(&json);
    let why = format!("silenced by {} (silence #{silence_id})", by.name);
    let mut ended = 0;
    for group in crate::store::escalations::active_groups(&app.store).await? {
        let (_, firing) = alerts::group_firing(&app.store, group).await?;
        if !firing.is_empty() && firing.iter().all(|a| compiled.matches(a)) {
            ended += escalate::stop(app, Subject::Group(group), false, &why, by).await?;
        }
    }
    Ok(ended)
}

/// Silences in force now, the newest first.
pub async fn active(store: &Store, now_ms: i64) -> Result<Vec<Silence>, StoreError> {
    Ok(alerts::active_silences(store, now_ms)
        .await?
        .into_iter()
        .map(from_row)
        .collect())
}

/// Ends a silence early; false when there is no such active silence.
pub async fn end(store: &Store, id: i64, by: &str, now_ms: i64) -> Result<bool, StoreError> {
    alerts::end_silence(store, id, by, now_ms).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{AlertStatus, Source};

    #[test]
    fn matchers_parse_and_match() {
        let m = parse_matchers("service=api alertname=~High.*").unwrap();
        assert_eq!(describe(&m), "service=api alertname=~High.*");
        let mut a = Alert {
            source: Source::Generic,
            fingerprint: "f".into(),
            status: AlertStatus::Firing,
            labels: [("service", "api"), ("alertname", "HighLatency")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: Default::default(),
            starts_ms: None,
            ends_ms: None,
            url: None,
        };
        assert!(matches(&m, &a));
        a.labels.insert("service".into(), "api-gw".into());
        assert!(!matches(&m, &a), "exact");
        assert!(parse_matchers("").is_err());
        assert!(parse_matchers("service").is_err());
        assert!(parse_matchers("x=~(")
            .unwrap_err()
            .contains("not a regular expression"));
    }

    fn alert(labels: &[(&str, &str)]) -> Alert {
        Alert {
            source: Source::Generic,
            fingerprint: "f".into(),
            status: AlertStatus::Firing,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: Default::default(),
            starts_ms: None,
            ends_ms: None,
            url: None,
        }
    }

    /// #12 item 15: commas inside a value (a regex repetition, a quoted text) do
    /// not split it.
    #[test]
    fn silence_matchers_split_only_between_matchers() {
        let m = parse_matchers("alertname=~x{1,5}").unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].value, "x{1,5}");
        assert!(matches(&m, &alert(&[("alertname", "xxx")])));
        assert!(!matches(&m, &alert(&[("alertname", "xxxxxx")])));
        let m = parse_matchers("service=api, alertname=~x{1,5},instance=~db-[0-9]{2,3}").unwrap();
        assert_eq!(
            m.iter().map(|m| m.label.as_str()).collect::<Vec<_>>(),
            ["service", "alertname", "instance"]
        );
        assert_eq!(m[2].value, "db-[0-9]{2,3}");
        let m = parse_matchers(r#"summary="disk full, again" service=api"#).unwrap();
        assert_eq!(m[0].value, "disk full, again");
        assert_eq!(m[1].value, "api");
        // What describe writes reads back the same.
        assert_eq!(parse_matchers(&describe(&m)).unwrap(), m);
        assert!(parse_matchers("service=api foo").unwrap()[0].value == "api foo");
        assert!(parse_matchers("=x").is_err());
    }

    /// #12 item 2: regexes are bounded when the silence is made, and compiled once.
    #[test]
    fn a_silence_regex_cannot_stall_intake() {
        // Unicode `\w` forty times over compiles to a large program: refused, named.
        let err = parse_matchers(r"alertname=~\w{40}QQ").unwrap_err();
        assert!(err.contains("too large"), "{err}");
        assert!(
            parse_matchers(&format!("alertname={}", "a".repeat(MAX_VALUE + 1)))
                .unwrap_err()
                .contains("longer than")
        );
        assert!(parse_matchers(&"a=b ".repeat(300))
            .unwrap_err()
            .contains("at most"));
        assert!(parse_matchers(&"a=b ".repeat(MAX_MATCHERS + 1))
            .unwrap_err()
            .contains("at most 16 matchers"));
        // What is accepted matches in linear time, from one compilation.
        let m = parse_matchers(r"alertname=~(?-u)\w{40}QQ").unwrap();
        let json = serde_json::to_string(&m).unwrap();
        let c = Compiled::of_stored(&json);
        assert!(Arc::ptr_eq(&c, &Compiled::of_stored(&json)), "cached");
        let long = "a".repeat(4_000);
        assert!(!c.matches(&alert(&[("alertname", &long)])));
        assert!(c.matches(&alert(&[("alertname", &format!("{}QQ", "a".repeat(40)))])));
        // A silence stored before the limits existed still holds its alerts.
        let old = Compiled::of_stored(r#"[{"label":"alertname","op":"=~","value":"\\w{40}QQ"}]"#);
        assert!(old.matches(&alert(&[("alertname", &format!("{}QQ", "a".repeat(40)))])));
        // Stored matchers that do not compile match nothing.
        let bad = Compiled::of_stored(r#"[{"label":"a","op":"=~","value":"("}]"#);
        assert!(!bad.matches(&alert(&[("a", "(")])));
    }
}
