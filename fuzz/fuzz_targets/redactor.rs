//! The log redactor (`LogsConfig::default().redactor()`, `Redactor::redact`) on
//! arbitrary UTF-8 lines: it must never panic, and a secret it documents catching
//! (`password=…` and `"api_key": "…"` pairs, `Bearer …`) never survives whatever
//! text surrounds it on the line, nor whatever line came before it.
//!
//! The input is `prefix`, or `prefix NUL suffix`; newlines are dropped (the
//! redactor takes one line at a time).
#![no_main]

use std::sync::{Arc, OnceLock};

use klaxon_core::logs::{LogsConfig, RedactState, Redactor};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "hunter2secret";

fn redactor() -> &'static Arc<Redactor> {
    static R: OnceLock<Arc<Redactor>> = OnceLock::new();
    R.get_or_init(|| LogsConfig::default().redactor().expect("built-in rules"))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fuzz_target!(|data: &[u8]| {
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

    if contains(s.as_bytes(), SECRET.as_bytes()) {
        // The input wrote the secret itself, somewhere nothing has to catch it.
        return;
    }
    for planted in [
        format!("password={SECRET}"),
        format!("\"api_key\": \"{SECRET}\""),
        format!("Authorization: Bearer {SECRET}"),
    ] {
        let line = format!("{prefix} {planted} {suffix}");
        let out = r.redact(line.as_bytes(), false, &mut RedactState::default());
        assert!(
            !contains(&out, SECRET.as_bytes()),
            "leaked: {line:?} -> {:?}",
            String::from_utf8_lossy(&out)
        );
        // After the input as a line of its own (it may open a key block).
        let mut state = RedactState::default();
        let _ = r.redact(s.as_bytes(), false, &mut state);
        let out = r.redact(line.as_bytes(), false, &mut state);
        assert!(
            !contains(&out, SECRET.as_bytes()),
            "leaked after {s:?}: {line:?} -> {:?}",
            String::from_utf8_lossy(&out)
        );
    }
});
