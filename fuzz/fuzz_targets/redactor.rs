//! The log redactor (`LogsConfig::default().redactor()`, `Redactor::redact`) on
//! arbitrary UTF-8 lines: it must never panic, and a secret it documents catching
//! never survives whatever text surrounds it on the line, nor whatever line came
//! before it.
//!
//! The secrets are the corpus of real log formats the unit tests pin
//! (`core/tests/data/redaction-corpus.txt`, every secret marked `S3CRET`): the first
//! input byte picks a corpus line, and the rest of the input is written before and
//! after it; plus three classic plants (`password=…`, `"api_key": "…"`,
//! `Bearer …`). The marker must never come out.
//!
//! The rest of the input is `prefix`, or `prefix NUL suffix`; newlines are dropped
//! (the redactor takes one line at a time). A corpus line marked `^ ` (a format that
//! only holds at the start of a line, an env dump) gets no text around it, only the
//! input as the line before.
#![no_main]

use std::sync::{Arc, OnceLock};

use klaxon_core::logs::{LogsConfig, RedactState, Redactor};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "hunter2secret";
const MARKER: &str = "S3CRET";
const CORPUS: &str = include_str!("../../core/tests/data/redaction-corpus.txt");

fn redactor() -> &'static Arc<Redactor> {
    static R: OnceLock<Arc<Redactor>> = OnceLock::new();
    R.get_or_init(|| LogsConfig::default().redactor().expect("built-in rules"))
}

/// The corpus's lines with their secrets in place: (whole-line format, line).
fn templates() -> &'static [(bool, String)] {
    static T: OnceLock<Vec<(bool, String)>> = OnceLock::new();
    T.get_or_init(|| {
        CORPUS
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| {
                let anchored = l.starts_with("^ ");
                let l = l.strip_prefix("^ ").unwrap_or(l);
                (anchored, l.replace(['«', '»'], ""))
            })
            .collect()
    })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Redacts `line` alone and after `before` (which may open a private key block),
/// and asserts `secret` survives neither.
fn check(r: &Redactor, before: &str, line: &str, secret: &str) {
    let out = r.redact(line.as_bytes(), false, &mut RedactState::default());
    assert!(
        !contains(&out, secret.as_bytes()),
        "leaked: {line:?} -> {:?}",
        String::from_utf8_lossy(&out)
    );
    let mut state = RedactState::default();
    let _ = r.redact(before.as_bytes(), false, &mut state);
    let out = r.redact(line.as_bytes(), false, &mut state);
    assert!(
        !contains(&out, secret.as_bytes()),
        "leaked after {before:?}: {line:?} -> {:?}",
        String::from_utf8_lossy(&out)
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, data)) = data.split_first() else {
        return;
    };
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let s: String = s.chars().filter(|&c| c != '\n').collect();
    let (prefix, suffix) = s.split_once('\0').unwrap_or((&s, ""));
    let r = redactor();

    // The line alone, on both streams.
    let mut state = RedactState::default();
    for stderr in [false, true] {
        let _ = r.redact(s.as_bytes(), stderr, &mut state);
    }

    if !contains(s.as_bytes(), MARKER.as_bytes()) {
        // A real log format's secret, with the input around it.
        let templates = templates();
        let (anchored, template) = &templates[usize::from(pick) % templates.len()];
        if *anchored {
            check(r, &s, template, MARKER);
        } else {
            check(r, &s, &format!("{prefix} {template} {suffix}"), MARKER);
        }
    }

    if contains(s.as_bytes(), SECRET.as_bytes()) {
        // The input wrote the secret itself, somewhere nothing has to catch it.
        return;
    }
    for planted in [
        format!("password={SECRET}"),
        format!("\"api_key\": \"{SECRET}\""),
        format!("Authorization: Bearer {SECRET}"),
    ] {
        check(r, &s, &format!("{prefix} {planted} {suffix}"), SECRET);
    }
});
