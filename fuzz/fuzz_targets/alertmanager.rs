//! `klaxon_core::alerts::parse::alertmanager` on arbitrary bodies: it must never panic, and
//! every alert it returns has a fingerprint and a name.
#![no_main]

use klaxon_core::alerts::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(alerts) = parse::alertmanager(data) {
        for a in &alerts {
            assert!(!a.fingerprint.trim().is_empty(), "blank fingerprint: {a:?}");
            assert!(!a.name().trim().is_empty(), "blank name: {a:?}");
        }
    }
});
