//! The log redactor: secrets out of every line `/logs` shows or matches.
//!
//! Log lines come in every format a service can print (JSON, escaped JSON inside
//! JSON, logfmt, access logs, Ruby and Python reprs, Java `toString`, XML, curl
//! headers, env dumps, URLs, URL-encoded forms), so the rules describe a secret by
//! its key and by how each format quotes a value, not by one format's syntax. The
//! table of real formats they must handle is the corpus in
//! `core/tests/data/redaction-corpus.txt` (every line carries a marked secret; the
//! tests below and the fuzz target `fuzz/fuzz_targets/redactor.rs` check none
//! survives), and `redaction-clean.txt` holds lines that must pass unchanged.
//!
//! Where a value's end is ambiguous the rules take the side of the secret: a quoted
//! value runs to its closing quote (spaces included), a header whose value is a
//! parameter list (`Cookie:`, `Authorization: Digest …`) is redacted to the end of
//! the line, and a URL password runs to the last `@` before the host.
//!
//! Speed: every line of a gigabyte log goes through [`Redactor::redact`], so one
//! `RegexSet` pass decides whether a line needs any work; only lines with a secret
//! pay for the replacements. All built-in patterns are ASCII (`(?-u)`): no Unicode
//! tables in the hot path, and the DFA never gives up on non-ASCII input.

use std::borrow::Cow;

use regex::bytes::{Regex, RegexSet, RegexSetBuilder};

use super::{compile_user, one_line, LogsError, REDACTED, REGEX_SIZE_LIMIT};

/// A key naming a secret, as a regex over the characters keys are made of (`\w.-`
/// for most formats, `\w` for environment variables). `pass`, `sid` only as a whole
/// part of the key (`DB_PASS`, `pass`, `connect.sid`), never inside a word
/// (`bypass`, `passenger`, `inside`).
fn key(chars: &str) -> String {
    format!(
        r"\b(?:{chars}*(?:passw(?:or)?d|passphrase|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?|session|sessid){chars}*|(?:{chars}*[_.-])?(?:pass|sid)(?:[_.-]{chars}*)?)"
    )
}

/// What may close a key before its separator: a quote (plain, JSON-escaped,
/// URL-encoded, HTML entity) or a form's bracket (`user[password]=`).
const KEY_CLOSE: &str = r#"(?:\\?["']|%2[27]|&quot;|&#39;|\]|%5[dD])?"#;
/// `=`, `:`, Ruby's `=>`, Go's `:=`, and their URL-encoded forms.
const SEP: &str = r"\s*(?:=>|:=|[=:]|%3[aAdD])\s*";
/// An unquoted value: up to whitespace or a delimiter; `%xx` escapes are part of it
/// except an encoded quote or `&`.
const BARE: &str = r#"(?:[^\s"'&,;%\\]|%(?:[013-9a-fA-F][0-9a-fA-F]|2[013-58-9a-fA-F])|\\[^"'])+"#;

/// When what follows a value is a separator and another value (`secret= "api_key":
/// "…"`, a key whose value is itself a pair), the value runs on to that value:
/// otherwise the second key would be taken as the first one's value and its own
/// value left as is.
fn cont() -> String {
    format!(
        r#"(?:(?:\\?["']|%2[27])?{SEP}(?:\\"(?:[^"\\]|\\[^"])*|"(?:[^"\\]|\\.)*|'(?:[^'\\]|\\.)*|{BARE}))*"#
    )
}

/// Built-in rules, in the order they run. Each redacts the capture groups that took
/// part in a match, or the whole match when it has none, so `password=hunter2`
/// shows as `password=[redacted]`. Rules that keep a scheme word (`Bearer`) run
/// before rules that would take it for the value.
fn builtin() -> Vec<(&'static str, String)> {
    let key_any = key(r"[\w.-]");
    // Environment variables are upper case: `password=…` at the start of a line is
    // a pair, not an env dump that runs to the end of the line.
    let key_env = r"\b(?:[A-Z0-9_]*(?:PASSW(?:OR)?D|PASSPHRASE|PWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIALS?|SESSION)[A-Z0-9_]*|(?:[A-Z0-9_]*_)?PASS(?:_[A-Z0-9_]*)?)";
    let cont = cont();
    vec![
        // Header values that are parameter lists: Digest, OAuth 1, AWS SigV4.
        (
            "auth params",
            r"(?i-u)\b(?:digest|oauth|aws4-hmac-sha256)\s+((?:username|realm|nonce|uri|response|cnonce|qop|nc|opaque|algorithm|userhash|oauth_\w+|credential)\s*=[^\r\n]*)".into(),
        ),
        // Authorization / Proxy-Authorization: the credentials after the scheme.
        (
            "authorization",
            format!(
                r#"(?i-u)\b(?:proxy-)?authori[sz]ation{KEY_CLOSE}{SEP}(?:\\?["']|%2[27]|\[)?\s*(?:(?:bearer|basic|token|digest|oauth|aws4-hmac-sha256|negotiate|ntlm|apikey|api-key|dpop|key|sso-key|otp)(?:\s+|%20|\+))?((?:[^\s"'\\,&%]|%[0-9a-fA-F]{{2}})+)"#
            ),
        ),
        // Cookie / Set-Cookie: every cookie is a session until proven otherwise.
        (
            "cookie",
            format!(
                r#"(?i-u)\b(?:set-)?cookie2?{KEY_CLOSE}{SEP}(?:\\?["'])?((?:[^"\\\r\n]|\\[^"])+)"#
            ),
        ),
        // Authorization: Bearer <token> (and any other "Bearer <token>").
        (
            "bearer",
            r"(?i-u)\bbearer\s+([A-Za-z0-9._~+/=-]{8,})".into(),
        ),
        // Base64 with `=` anywhere, not only as padding: `Basic password=hunter2` must not
        // redact just `password=` and leave the value the secret-pair rule would have taken.
        (
            "basic",
            r"(?i-u)\bbasic\s+([A-Za-z0-9+/]{8,}[A-Za-z0-9+/=]*)".into(),
        ),
        // scheme://user:password@host, the password running to the last `@` before
        // the host (a password may hold `@`); also JSON-escaped (`:\/\/`) and
        // URL-encoded (`%3A%2F%2F…%40`).
        (
            "url password",
            r"(?i-u)\b[a-z][a-z0-9+.-]*(?:://|:\\/\\/)[^\s:/@]*:([^\s/?#]+)@|\b[a-z][a-z0-9+.-]*%3a%2f%2f[^\s%:/@&]*%3a((?:[^\s%&]|%(?:[0-35-9a-f][0-9a-f]|4[1-9a-f]))+)%40".into(),
        ),
        // An environment dump (`env`, `export`, `docker inspect`'s `"Env"`): the
        // value is the rest of the line, or of the quoted string, spaces included.
        (
            "env",
            format!(
                r#"(?-u)^\s*(?:export\s+|declare\s+-x\s+|ENV\s+|-\s+)?{key_env}=([^\r\n]+)|["']{key_env}=([^"'\r\n]+)"#
            ),
        ),
        // key=value, "key": "value", key: 'value', :key => "value", {\"key\":\"value\"},
        // key%3Dvalue, key%22%3A%22value, user[key]=value, … whose key names a
        // secret. A quoted value runs to its closing quote.
        (
            "secret pair",
            format!(
                r#"(?i-u){key_any}{KEY_CLOSE}{SEP}(?:\\"((?:[^"\\]|\\[^"])*{cont})|"((?:[^"\\]|\\.)*{cont})|'((?:[^'\\]|\\.)*{cont})|%22((?:[^%&\s"]|%(?:[013-9a-fA-F][0-9a-fA-F]|2[013-9a-fA-F]))*{cont})|&quot;([^&<"\r\n]*)|&#39;([^&<'\r\n]*)|({BARE}{cont}))"#
            ),
        ),
        // The key and the value in fields of their own: Kubernetes and Spring
        // `{"name":"DB_PASSWORD","value":"…"}`, .NET `<add key="Password" value="…"/>`.
        (
            "name and value",
            format!(
                r#"(?i-u)\b(?:name|key)\\?["']?\s*[:=]\s*\\?["']{key_any}\\?["']\s*,?\s*\\?["']?value\\?["']?\s*[:=]\s*(?:\\"((?:[^"\\]|\\[^"])*)|"((?:[^"\\]|\\.)*)|'([^'\r\n]*))"#
            ),
        ),
        // <password>…</password>, <wsse:Password Type="…">…<, and the same escaped.
        (
            "xml element",
            format!(
                r"(?i-u)<(?:[\w.-]+:)?{key_any}(?:\s[^>]*)?>([^<]+)|&lt;(?:[\w.-]+:)?{key_any}(?:\s(?:[^&]|&quot;)*)?&gt;([^&]+)"
            ),
        ),
        // SQL (`PASSWORD 'x'`, `IDENTIFIED BY 'x'`), command lines (`--password x`,
        // `--token "x y"`) and Redis MONITOR (`"AUTH" "x"`).
        (
            "sql and flags",
            r#"(?i-u)\b(?:password|identified\s+by)\s+'([^'\r\n]*)|(?:^|\s)--?[\w-]*(?:passw(?:or)?d|pass|passphrase|token|secret|api-key)[\w-]*\s+(?:"([^"\r\n]*)|'([^'\r\n]*)|([^\s"'-][^\s"']*))|"AUTH"\s+(?:"[^"\r\n]*"\s+)?"((?:[^"\\]|\\.)*)"#.into(),
        ),
        // JSON Web Tokens: base64url header `{"…` (eyJ), payload, signature.
        (
            "jwt",
            r"(?-u)\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*".into(),
        ),
        (
            "aws access key",
            r"(?-u)\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA|ASCA)[A-Z0-9]{16}\b".into(),
        ),
        // Discord bot tokens: base64 user id, timestamp, HMAC.
        (
            "discord token",
            r"(?-u)\b[A-Za-z0-9_-]{23,28}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,40}\b".into(),
        ),
        // GitHub and Slack tokens: common in CI and bot logs.
        (
            "github token",
            r"(?-u)\b(?:gh[pousr]|github_pat)_[A-Za-z0-9_]{20,}".into(),
        ),
        ("slack token", r"(?-u)\bxox[abposr]-[A-Za-z0-9-]{10,}".into()),
        // A private key on one line (escaped newlines in JSON).
        (
            "private key",
            r"(?-u)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)".into(),
        ),
        // The body of a PEM block printed line by line, even when the read starts in
        // the middle of it (a `tail` can).
        ("pem body", r"(?-u)^\s*([A-Za-z0-9+/]{40,}={0,2})\s*$".into()),
    ]
}

struct Rule {
    re: Regex,
    /// The groups to redact (those of them that take part in a match); none means
    /// the whole match.
    groups: Vec<usize>,
}

/// Redacts secrets from log lines. One `RegexSet` pass decides whether a line
/// needs any work; only lines with a secret pay for the replacements.
pub struct Redactor {
    any: RegexSet,
    rules: Vec<Rule>,
    key_begin: Regex,
    key_end: Regex,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("rules", &self.rules.len())
            .finish()
    }
}

/// Per-stream state across lines: a private key block spans many lines.
#[derive(Debug, Default, Clone, Copy)]
pub struct RedactState {
    in_key: [bool; 2],
}

impl Redactor {
    /// Built-in patterns plus `extra` (the config's `redact`).
    pub fn new(extra: &[String]) -> Result<Self, LogsError> {
        let mut rules = Vec::new();
        let mut patterns: Vec<String> = Vec::new();
        let compile = |p: &str| {
            Regex::new(p).map_err(|e| LogsError::BadRegex {
                pattern: p.to_string(),
                reason: one_line(&e.to_string()),
            })
        };
        for (_, p) in builtin() {
            let re = compile(&p)?;
            let groups = (1..re.captures_len()).collect();
            rules.push(Rule { re, groups });
            patterns.push(p);
        }
        for p in extra {
            let re = compile_user(p, false).map_err(|e| LogsError::BadRegex {
                pattern: p.clone(),
                reason: one_line(&e.to_string()),
            })?;
            let groups = re
                .capture_names()
                .position(|n| n == Some("secret"))
                .into_iter()
                .collect();
            rules.push(Rule { re, groups });
            patterns.push(p.clone());
        }
        let key_begin = r"(?-u)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----";
        patterns.push(key_begin.to_string());
        let any = RegexSetBuilder::new(&patterns)
            .size_limit(REGEX_SIZE_LIMIT * 8)
            .dfa_size_limit(REGEX_SIZE_LIMIT * 8)
            .build()
            .map_err(|e| LogsError::BadRegex {
                pattern: "(redaction patterns together)".into(),
                reason: one_line(&e.to_string()),
            })?;
        Ok(Redactor {
            any,
            rules,
            key_begin: compile(key_begin)?,
            key_end: compile(r"(?-u)-----END [A-Z0-9 ]*PRIVATE KEY-----")?,
        })
    }

    /// Redacts one line (no trailing newline). `stderr` picks the stream whose
    /// key-block state applies.
    pub fn redact<'a>(
        &self,
        line: &'a [u8],
        stderr: bool,
        state: &mut RedactState,
    ) -> Cow<'a, [u8]> {
        let in_key = &mut state.in_key[usize::from(stderr)];
        if !*in_key && !self.any.is_match(line) {
            return Cow::Borrowed(line);
        }
        let mut out: Vec<u8>;
        if *in_key {
            // Inside a private key block: everything up to its END line is secret.
            match self.key_end.find(line) {
                Some(end) => {
                    *in_key = false;
                    out = REDACTED.as_bytes().to_vec();
                    out.extend_from_slice(&line[end.end()..]);
                }
                None => return Cow::Owned(REDACTED.as_bytes().to_vec()),
            }
        } else {
            out = line.to_vec();
        }
        if let Some(begin) = self.key_begin.find(&out) {
            if self.key_end.find_at(&out, begin.end()).is_none() {
                *in_key = true;
                out.truncate(begin.start());
                out.extend_from_slice(REDACTED.as_bytes());
            }
        }
        // Which rules to run: one more pass of the set over the (rare) line with a
        // secret instead of one per rule. What a rule writes (`[redacted]`) is no
        // secret a later rule could newly match.
        let hits = self.any.matches(&out);
        for (i, rule) in self.rules.iter().enumerate() {
            if !hits.matched(i) {
                continue;
            }
            let replaced = rule
                .re
                .replace_all(&out, |caps: &regex::bytes::Captures<'_>| {
                    let whole = caps.get(0).map(|m| m.range()).unwrap_or_default();
                    let spans: Vec<_> = rule
                        .groups
                        .iter()
                        .filter_map(|&g| caps.get(g))
                        .filter(|m| !m.is_empty())
                        .map(|m| m.range())
                        .collect();
                    // A pattern without groups, or none of whose groups took part,
                    // redacts the whole match.
                    if !rule.groups.iter().any(|&g| caps.get(g).is_some()) {
                        return REDACTED.as_bytes().to_vec();
                    }
                    let mut r = Vec::with_capacity(whole.len() + REDACTED.len());
                    let mut at = whole.start;
                    for s in spans {
                        r.extend_from_slice(&out[at..s.start]);
                        r.extend_from_slice(REDACTED.as_bytes());
                        at = s.end;
                    }
                    r.extend_from_slice(&out[at..whole.end]);
                    r
                })
                .into_owned();
            out = replaced;
        }
        Cow::Owned(out)
    }

    /// Redacts text that is not a log line (for tests and one-off strings).
    pub fn redact_str(&self, s: &str) -> String {
        let mut state = RedactState::default();
        s.lines()
            .map(|l| {
                String::from_utf8_lossy(&self.redact(l.as_bytes(), false, &mut state)).into_owned()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[cfg(test)]
mod tests;
