//! The duration parsers on arbitrary text: `logs::parse_duration` (`/logs since:`)
//! and `maintenance::when::parse_duration` (window lengths). Neither may panic
//! (digits that overflow a u64, units that multiply past it); a window length
//! that parses is positive and at most the maximum given.
#![no_main]

use std::time::Duration;

use klaxon_core::{logs, maintenance::when};
use libfuzzer_sys::fuzz_target;

const MAXES: [Duration; 4] = [
    Duration::from_secs(86_400),
    Duration::from_secs(7 * 86_400),
    Duration::from_secs(u64::MAX),
    Duration::MAX,
];

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = logs::parse_duration(s);
    for max in MAXES {
        if let Ok(d) = when::parse_duration(s, max) {
            assert!(!d.is_zero(), "{s:?} parsed as zero");
            assert!(d <= max, "{s:?} parsed as {d:?}, above {max:?}");
        }
    }
});
