//! Settings of the `oncall` area: `[[oncall.schedules]]`, `[[oncall.policies]]` and
//! `[[oncall.webhooks]]` as written in the config, and their validated form.
//!
//! Everything is parsed here, at the edge, into newtypes ([`Schedule`], [`Shift`],
//! [`Target`], ...): a schedule with no members, a zero shift, an unknown time zone,
//! steps that do not increase or a policy naming an unknown schedule never reach the
//! resolver or the escalation runtime. Every problem names its key, so start-up and
//! `check-config` say exactly what to fix.
//!
//! A leaf (see `settings`): `App` holds [`OnCall`] without importing the domain.

use std::time::Duration;

use chrono::NaiveDateTime;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// `[oncall]` in the config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OncallConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedules: Vec<ScheduleConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<PolicyConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<WebhookConfig>,
}

/// `[[oncall.schedules]]`: who is on call, in turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    pub name: String,
    /// IANA zone whose wall clock the hand-offs follow (`Europe/Berlin`).
    pub timezone: String,
    /// Discord user ids, in the order they take turns.
    pub members: Vec<u64>,
    /// Length of one shift: `12h`, `1d`, `1w`.
    pub shift: String,
    /// Local date-time of the first hand-off: `2026-12-07T09:00`.
    pub start: String,
    /// The role whoever is on call holds; moved at each hand-off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_role: Option<u64>,
    /// The channel each hand-off is announced in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announce: Option<u64>,
}

/// `[[oncall.policies]]`: who is paged, and when, until someone acknowledges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub name: String,
    pub steps: Vec<StepConfig>,
    /// How many times the whole chain runs again after its last step.
    #[serde(default)]
    pub repeat: u32,
}

/// One step: `{ after = "5m", notify = "schedule:primary" }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    /// Time since the escalation started.
    pub after: String,
    /// `schedule:NAME`, `user:ID`, `role:ID` or `webhook:NAME`.
    pub notify: String,
}

/// `[[oncall.webhooks]]`: an HTTP POST that wakes a phone (ntfy, an SMS gateway).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub name: String,
    /// May carry a token: shown masked by `check-config`, never logged.
    pub url: String,
    /// The request body; `{title}`, `{severity}`, `{link}` and `{target}` are
    /// replaced (literally, without interpretation).
    pub body: String,
}

/// Placeholders a webhook body may use.
pub const BODY_PLACEHOLDERS: [&str; 4] = ["title", "severity", "link", "target"];

/// Longest name of a schedule, policy or webhook (Discord's choice names allow 100;
/// short names stay readable on a phone).
const MAX_NAME: usize = 32;

/// A schedule, policy or webhook name: 1-32 letters, digits, `-` or `_`. Compared
/// without regard to case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

impl Name {
    pub fn parse(s: &str) -> Option<Name> {
        let ok = !s.is_empty()
            && s.chars().count() <= MAX_NAME
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        ok.then(|| Name(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn is(&self, other: &str) -> bool {
        self.0.eq_ignore_ascii_case(other.trim())
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A shift length: whole minutes, from 1 hour to 4 weeks. Hand-offs are counted on
/// the schedule's wall clock (see `oncall::resolve`), so `1d` keeps the hour of day
/// across DST changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shift(i64);

impl Shift {
    pub const MIN_MINUTES: i64 = 60;
    pub const MAX_MINUTES: i64 = 4 * 7 * 24 * 60;

    pub fn from_minutes(m: i64) -> Option<Shift> {
        (Self::MIN_MINUTES..=Self::MAX_MINUTES)
            .contains(&m)
            .then_some(Shift(m))
    }
    pub fn parse(s: &str) -> Option<Shift> {
        let d = crate::timefmt::parse_duration(s)?;
        if d.as_secs() % 60 != 0 {
            return None;
        }
        Shift::from_minutes(i64::try_from(d.as_secs() / 60).ok()?)
    }
    pub fn minutes(self) -> i64 {
        self.0
    }
}

/// A schedule, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub name: Name,
    pub tz: Tz,
    /// Never empty.
    pub members: Vec<u64>,
    pub shift: Shift,
    /// Local wall-clock time of the first hand-off (whole minutes).
    pub start: NaiveDateTime,
    pub sync_role: Option<u64>,
    pub announce: Option<u64>,
}

/// Whom a step pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Whoever is on call on that schedule when the step fires.
    Schedule(Name),
    User(u64),
    Role(u64),
    Webhook(Name),
}

impl Target {
    /// `schedule:primary`, `user:123`, `role:456`, `webhook:ntfy`.
    pub fn parse(s: &str) -> Result<Target, String> {
        let (kind, rest) = s.split_once(':').ok_or_else(|| {
            format!("`{s}` is not kind:value (schedule:NAME, user:ID, role:ID, webhook:NAME)")
        })?;
        let id = || {
            rest.trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("`{rest}` is not a Discord id"))
        };
        let name = || Name::parse(rest.trim()).ok_or_else(|| format!("`{rest}` is not a name"));
        match kind.trim() {
            "schedule" => Ok(Target::Schedule(name()?)),
            "webhook" => Ok(Target::Webhook(name()?)),
            "user" => Ok(Target::User(id()?)),
            "role" => Ok(Target::Role(id()?)),
            other => Err(format!(
                "`{other}` is not a target kind (schedule, user, role, webhook)"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Since the escalation started; strictly increasing within a policy.
    pub after: Duration,
    pub target: Target,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: Name,
    /// Never empty.
    pub steps: Vec<Step>,
    pub repeat: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub name: Name,
    pub url: String,
    pub body: String,
}

/// `[oncall]`, validated: what `App` holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OnCall {
    pub schedules: Vec<Schedule>,
    pub policies: Vec<Policy>,
    pub webhooks: Vec<Webhook>,
}

/// The longest `repeat`: a chain that runs more often than this pages nobody new.
const MAX_REPEAT: u32 = 10;

/// `2026-12-07T09:00`, `2026-12-07 09:00` (seconds allowed if zero).
pub fn parse_local(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .filter(|t| chrono::Timelike::second(t) == 0)
}

impl OnCall {
    /// Validates the section. `policy_refs` are the places outside `[oncall]` that
    /// name a policy (`alerts.routes[0].escalation`, ...) with the name they give.
    /// Every problem is returned, each naming its key.
    pub fn new(c: &OncallConfig, policy_refs: &[(String, String)]) -> Result<OnCall, Vec<String>> {
        let mut problems = Vec::new();
        let mut out = OnCall::default();

        for (i, s) in c.schedules.iter().enumerate() {
            let key = format!("oncall.schedules[{i}]");
            if let Some(x) = schedule(s, &key, &mut problems) {
                if out.schedules.iter().any(|o| o.name.is(x.name.as_str())) {
                    problems.push(format!("{key}.name: `{}` is configured twice", x.name));
                }
                out.schedules.push(x);
            }
        }
        for (i, w) in c.webhooks.iter().enumerate() {
            let key = format!("oncall.webhooks[{i}]");
            if let Some(x) = webhook(w, &key, &mut problems) {
                if out.webhooks.iter().any(|o| o.name.is(x.name.as_str())) {
                    problems.push(format!("{key}.name: `{}` is configured twice", x.name));
                }
                out.webhooks.push(x);
            }
        }
        for (i, p) in c.policies.iter().enumerate() {
            let key = format!("oncall.policies[{i}]");
            if let Some(x) = policy(p, &key, &out, &mut problems) {
                if out.policies.iter().any(|o| o.name.is(x.name.as_str())) {
                    problems.push(format!("{key}.name: `{}` is configured twice", x.name));
                }
                out.policies.push(x);
            }
        }
        for (key, name) in policy_refs {
            if out.policy(name).is_none() {
                problems.push(format!(
                    "{key}: no escalation policy `{name}` in [[oncall.policies]] (known: {})",
                    known(out.policies.iter().map(|p| &p.name))
                ));
            }
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems)
        }
    }

    pub fn schedule(&self, name: &str) -> Option<&Schedule> {
        self.schedules.iter().find(|s| s.name.is(name))
    }
    pub fn policy(&self, name: &str) -> Option<&Policy> {
        self.policies.iter().find(|s| s.name.is(name))
    }
    pub fn webhook(&self, name: &str) -> Option<&Webhook> {
        self.webhooks.iter().find(|s| s.name.is(name))
    }

    /// Schedule names starting with (then containing) `partial`, for autocomplete.
    pub fn schedule_names_matching(&self, partial: &str, limit: usize) -> Vec<String> {
        let p = partial.trim().to_lowercase();
        let names = self.schedules.iter().map(|s| s.name.as_str());
        let starts = names.clone().filter(|n| n.to_lowercase().starts_with(&p));
        let contains = names.filter(|n| {
            let l = n.to_lowercase();
            !l.starts_with(&p) && l.contains(&p)
        });
        starts
            .chain(contains)
            .take(limit)
            .map(String::from)
            .collect()
    }
}

fn known<'a>(names: impl Iterator<Item = &'a Name>) -> String {
    let v: Vec<&str> = names.map(Name::as_str).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn name(raw: &str, key: &str, problems: &mut Vec<String>) -> Option<Name> {
    let n = Name::parse(raw);
    if n.is_none() {
        problems.push(format!(
            "{key}.name: `{raw}` must be 1 to {MAX_NAME} letters, digits, `-` or `_`"
        ));
    }
    n
}

fn schedule(s: &ScheduleConfig, key: &str, problems: &mut Vec<String>) -> Option<Schedule> {
    let before = problems.len();
    let n = name(&s.name, key, problems);
    let tz = s.timezone.parse::<Tz>().ok();
    if tz.is_none() {
        problems.push(format!(
            "{key}.timezone: `{}` is not an IANA time zone (e.g. UTC, Europe/Berlin)",
            s.timezone
        ));
    }
    if s.members.is_empty() {
        problems.push(format!(
            "{key}.members: must list at least one Discord user id"
        ));
    }
    if s.members.contains(&0) {
        problems.push(format!("{key}.members: 0 is not a Discord user id"));
    }
    let shift = Shift::parse(&s.shift);
    if shift.is_none() {
        problems.push(format!(
            "{key}.shift: `{}` must be whole minutes from 1h to 4w (e.g. 12h, 1d, 1w)",
            s.shift
        ));
    }
    let start = parse_local(&s.start);
    if start.is_none() {
        problems.push(format!(
            "{key}.start: `{}` is not a local date-time such as 2026-12-07T09:00",
            s.start
        ));
    }
    if s.sync_role == Some(0) {
        problems.push(format!("{key}.sync_role: 0 is not a role id"));
    }
    if s.announce == Some(0) {
        problems.push(format!("{key}.announce: 0 is not a channel id"));
    }
    if problems.len() > before {
        return None;
    }
    Some(Schedule {
        name: n?,
        tz: tz?,
        members: s.members.clone(),
        shift: shift?,
        start: start?,
        sync_role: s.sync_role,
        announce: s.announce,
    })
}

fn webhook(w: &WebhookConfig, key: &str, problems: &mut Vec<String>) -> Option<Webhook> {
    let before = problems.len();
    let n = name(&w.name, key, problems);
    let url_ok = reqwest::Url::parse(&w.url)
        .map(|u| matches!(u.scheme(), "http" | "https"))
        .unwrap_or(false);
    if !url_ok {
        problems.push(format!(
            "{key}.url: `{}` is not an http(s) URL",
            crate::secret::redact_url(&w.url)
        ));
    }
    if w.body.trim().is_empty() {
        problems.push(format!("{key}.body: must not be empty"));
    }
    for piece in w.body.split('{').skip(1) {
        let Some((p, _)) = piece.split_once('}') else {
            continue;
        };
        if !BODY_PLACEHOLDERS.contains(&p) {
            problems.push(format!(
                "{key}.body: unknown placeholder `{{{p}}}` (known: {})",
                BODY_PLACEHOLDERS
                    .iter()
                    .map(|p| format!("{{{p}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    if problems.len() > before {
        return None;
    }
    Some(Webhook {
        name: n?,
        url: w.url.clone(),
        body: w.body.clone(),
    })
}

fn policy(
    p: &PolicyConfig,
    key: &str,
    so_far: &OnCall,
    problems: &mut Vec<String>,
) -> Option<Policy> {
    let before = problems.len();
    let n = name(&p.name, key, problems);
    if p.steps.is_empty() {
        problems.push(format!("{key}.steps: must list at least one step"));
    }
    if p.repeat > MAX_REPEAT {
        problems.push(format!("{key}.repeat: at most {MAX_REPEAT}"));
    }
    let mut steps: Vec<Step> = Vec::new();
    for (j, s) in p.steps.iter().enumerate() {
        let skey = format!("{key}.steps[{j}]");
        let after = crate::timefmt::parse_duration(&s.after);
        if after.is_none() {
            problems.push(format!(
                "{skey}.after: `{}` is not a duration such as 0m, 5m, 1h",
                s.after
            ));
        }
        let target = match Target::parse(&s.notify) {
            Ok(t) => Some(t),
            Err(e) => {
                problems.push(format!("{skey}.notify: {e}"));
                None
            }
        };
        match &target {
            Some(Target::Schedule(name)) if so_far.schedule(name.as_str()).is_none() => problems
                .push(format!(
                    "{skey}.notify: no schedule `{name}` in [[oncall.schedules]] (known: {})",
                    known(so_far.schedules.iter().map(|s| &s.name))
                )),
            Some(Target::Webhook(name)) if so_far.webhook(name.as_str()).is_none() => problems
                .push(format!(
                    "{skey}.notify: no webhook `{name}` in [[oncall.webhooks]] (known: {})",
                    known(so_far.webhooks.iter().map(|s| &s.name))
                )),
            _ => {}
        }
        if let (Some(a), Some(prev)) = (after, steps.last()) {
            if a <= prev.after {
                problems.push(format!(
                    "{skey}.after: `{}` overlaps the step before it; steps must come later and later",
                    s.after
                ));
            }
        }
        if let (Some(after), Some(target)) = (after, target) {
            steps.push(Step { after, target });
        }
    }
    if problems.len() > before {
        return None;
    }
    Some(Policy {
        name: n?,
        steps,
        repeat: p.repeat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> OncallConfig {
        toml::from_str(toml).expect("test TOML")
    }

    const GOOD: &str = r#"
[[schedules]]
name = "primary"
timezone = "Europe/Berlin"
members = [11, 12, 13]
shift = "1w"
start = "2026-12-07T09:00"
sync_role = 500

[[schedules]]
name = "secondary"
timezone = "America/New_York"
members = [21, 22]
shift = "12h"
start = "2026-12-07 08:00"

[[webhooks]]
name = "ntfy"
url = "https://ntfy.example/klaxon"
body = "{severity} {title} {link}"

[[policies]]
name = "runbook"
repeat = 1
steps = [
  { after = "0m", notify = "schedule:primary" },
  { after = "5m", notify = "schedule:primary" },
  { after = "15m", notify = "schedule:secondary" },
  { after = "30m", notify = "role:900" },
  { after = "31m", notify = "webhook:ntfy" },
]
"#;

    #[test]
    fn a_good_section_parses_into_types() {
        let refs = vec![(
            "alerts.routes[0].escalation".to_string(),
            "RUNBOOK".to_string(),
        )];
        let o = OnCall::new(&config(GOOD), &refs).expect("valid");
        let p = o.schedule("Primary").expect("case-insensitive");
        assert_eq!(p.tz, chrono_tz::Europe::Berlin);
        assert_eq!(p.shift.minutes(), 7 * 24 * 60);
        assert_eq!(
            o.schedule("secondary").map(|s| s.shift.minutes()),
            Some(720)
        );
        let pol = o.policy("runbook").expect("policy");
        assert_eq!(pol.steps.len(), 5);
        assert_eq!(
            pol.steps[2].target,
            Target::Schedule(Name("secondary".into()))
        );
        assert_eq!(pol.steps[3].target, Target::Role(900));
        assert_eq!(pol.steps[1].after, Duration::from_secs(300));
    }

    #[test]
    fn every_problem_names_its_key() {
        let bad = r#"
[[schedules]]
name = "primary"
timezone = "Mars/Olympus"
members = []
shift = "0h"
start = "tomorrow"

[[schedules]]
name = "week"
timezone = "UTC"
members = [1]
shift = "-1d"
start = "2026-12-07T09:00"

[[webhooks]]
name = "sms"
url = "ftp://x"
body = "{nope}"

[[policies]]
name = "p"
steps = [
  { after = "5m", notify = "schedule:ghost" },
  { after = "5m", notify = "webhook:none" },
  { after = "1m", notify = "pager:1" },
  { after = "-3m", notify = "user:abc" },
]
"#;
        let refs = vec![
            (
                "alerts.routes[2].escalation".to_string(),
                "missing".to_string(),
            ),
            (
                "incidents.severity.P1.escalation".to_string(),
                "p".to_string(),
            ),
        ];
        let e = OnCall::new(&config(bad), &refs)
            .expect_err("invalid")
            .join("\n");
        for needle in [
            "oncall.schedules[0].timezone: `Mars/Olympus`",
            "oncall.schedules[0].members: must list at least one",
            "oncall.schedules[0].shift: `0h`",
            "oncall.schedules[0].start: `tomorrow`",
            "oncall.schedules[1].shift: `-1d`",
            "oncall.webhooks[0].url",
            "oncall.webhooks[0].body: unknown placeholder `{nope}`",
            "oncall.policies[0].steps[0].notify: no schedule `ghost`",
            "oncall.policies[0].steps[1].notify: no webhook `none`",
            "oncall.policies[0].steps[1].after: `5m` overlaps",
            "oncall.policies[0].steps[2].notify: `pager` is not a target kind",
            "oncall.policies[0].steps[3].after: `-3m`",
            "oncall.policies[0].steps[3].notify: `abc` is not a Discord id",
            "alerts.routes[2].escalation: no escalation policy `missing`",
        ] {
            assert!(e.contains(needle), "missing {needle:?} in:\n{e}");
        }
        // The policy itself is invalid, so a reference to it is reported too.
        assert!(e.contains("incidents.severity.P1.escalation: no escalation policy `p`"));
    }

    #[test]
    fn steps_must_increase_and_names_must_be_unique() {
        let c = r#"
[[schedules]]
name = "a"
timezone = "UTC"
members = [1]
shift = "1d"
start = "2026-01-01T00:00"
[[schedules]]
name = "A"
timezone = "UTC"
members = [1]
shift = "90s"
start = "2026-01-01T00:00"
[[policies]]
name = "x"
steps = [{ after = "10m", notify = "user:1" }, { after = "5m", notify = "role:2" }]
"#;
        let e = OnCall::new(&config(c), &[])
            .expect_err("invalid")
            .join("\n");
        assert!(e.contains("oncall.schedules[1].shift: `90s`"), "{e}");
        assert!(
            e.contains("oncall.policies[0].steps[1].after: `5m` overlaps"),
            "{e}"
        );
        let c2 = c.replace("90s", "2h");
        let e = OnCall::new(&config(&c2), &[])
            .expect_err("invalid")
            .join("\n");
        assert!(
            e.contains("oncall.schedules[1].name: `A` is configured twice"),
            "{e}"
        );
    }

    #[test]
    fn local_times_parse_in_two_spellings() {
        assert!(parse_local("2026-03-29T02:30").is_some());
        assert!(parse_local("2026-03-29 02:30").is_some());
        assert!(parse_local("2026-03-29T02:30:15").is_none());
        assert!(parse_local("09:00").is_none());
    }
}
