//! `maintenance::when::parse_start` on arbitrary text, at several "now"s and in
//! several time zones (DST gaps and folds, odd offsets): it must never panic (dates
//! near the end of the calendar, relative times that overflow), and `in <d>`
//! never starts before now.
#![no_main]

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use klaxon_core::maintenance::when;
use libfuzzer_sys::fuzz_target;

/// Zones with DST, a 45-minute offset, a 30-minute DST shift, +14 h and -11 h.
const ZONES: [Tz; 7] = [
    Tz::UTC,
    Tz::Europe__Berlin,
    Tz::America__New_York,
    Tz::Pacific__Chatham,
    Tz::Australia__Lord_Howe,
    Tz::Pacific__Kiritimati,
    Tz::Pacific__Pago_Pago,
];

/// An ordinary evening, Berlin's spring-forward and fall-back nights, the epoch,
/// and a leap day.
const NOWS: [i64; 5] = [
    1_796_166_000, // 2026-12-01T23:00:00Z
    1_774_744_200, // 2026-03-29T00:30:00Z
    1_792_888_200, // 2026-10-25T00:30:00Z
    0,
    1_709_164_800, // 2024-02-29T00:00:00Z
];

fn check(s: &str, now: DateTime<Utc>, tz: Tz) {
    let r = when::parse_start(s, now, tz);
    if let Ok(t) = r {
        if s.trim().to_lowercase().starts_with("in ") {
            assert!(t >= now, "{s:?} at {now} in {tz}: {t} is before now");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    for secs in NOWS {
        let now = Utc.timestamp_opt(secs, 0).unwrap();
        for tz in ZONES {
            check(s, now, tz);
        }
    }
    // One more "now" and zone picked from the input itself, so the fuzzer can
    // steer them too: any second from 1970 to about 2200, any zone.
    let h = data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let secs = (h % 7_258_118_400) as i64;
    let tz = chrono_tz::TZ_VARIANTS[(h >> 40) as usize % chrono_tz::TZ_VARIANTS.len()];
    check(s, Utc.timestamp_opt(secs, 0).unwrap(), tz);
});
