//! The digests with a moved clock: when each is due, each posted once, a restart
//! posting nothing twice, and only the latest one after a long downtime.

use super::*;
use crate::actor::Actor;
use crate::incidents::{self, OpenRequest};
use crate::settings::digests::Digests;
use crate::severity::Severity;
use crate::testing::{run_test_with, INCIDENTS_CHANNEL};

fn at(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap_or_default()
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .map(|t| t.timestamp_millis())
        .unwrap_or_default()
}

#[test]
fn the_latest_occurrence_is_read_in_the_team_zone() {
    let berlin: Tz = "Europe/Berlin".parse().unwrap_or(Tz::UTC);
    // 07:59 UTC is 08:59 in Berlin: today's 09:00 is still ahead.
    let d = latest_daily(berlin, at(9, 0), utc(2026, 12, 8, 7, 59));
    assert_eq!(d.period(), "2026-12-07");
    assert_eq!(d.due_ms, utc(2026, 12, 7, 8, 0));
    let d = latest_daily(berlin, at(9, 0), utc(2026, 12, 8, 8, 0));
    assert_eq!(
        (d.period(), d.due_ms),
        ("2026-12-08".into(), utc(2026, 12, 8, 8, 0))
    );
    // 2026-12-07 is a Monday.
    let w = latest_weekly(berlin, Weekday::Mon, at(9, 0), utc(2026, 12, 8, 8, 0));
    assert_eq!(w.period(), "2026-12-07");
    let w = latest_weekly(berlin, Weekday::Mon, at(9, 0), utc(2026, 12, 7, 7, 59));
    assert_eq!(w.period(), "2026-11-30");
    let w = latest_weekly(Tz::UTC, Weekday::Fri, at(17, 30), utc(2026, 12, 8, 8, 0));
    assert_eq!(w.period(), "2026-12-04");
}

fn settings() -> Digests {
    Digests {
        daily: Some(at(9, 0)),
        weekly: Some((Weekday::Mon, at(9, 0))),
        channel: None,
    }
}

fn ms(v: i64) -> Duration {
    Duration::from_millis(v.max(0) as u64)
}

#[test]
fn each_digest_is_posted_once_across_a_restart_and_only_the_latest_after_downtime() {
    run_test_with(
        |b| b.digests(settings()),
        |w| async move {
            // The next 09:00:30 UTC.
            let now = w.now_ms();
            let nine = latest_daily(Tz::UTC, at(9, 0), now).due_ms + DAY_MS;
            w.advance(ms(nine + 30_000 - now));
            incidents::open(
                &w.app,
                OpenRequest {
                    title: "Checkout <b>down</b> @everyone".into(),
                    severity: Severity::P1,
                    service: None,
                    summary: None,
                    guild_id: Some(1),
                    by: Actor::member(7, "alice"),
                    public: true,
                },
            )
            .await?;
            w.deliver().await?;
            w.chat.clear();

            // Daily due now; weekly enabled for the first time: its latest week.
            assert_eq!(tick(&w.app).await?, 2);
            assert_eq!(tick(&w.app).await?, 0, "claimed: nothing twice");
            w.deliver().await?;
            let shown = w.chat.shown_to(INCIDENTS_CHANNEL);
            assert_eq!(shown.len(), 2, "{shown:?}");
            let daily = shown
                .iter()
                .find(|m| m.contains("Morning health check"))
                .ok_or_else(|| anyhow::anyhow!("no daily digest in {shown:?}"))?;
            assert!(daily.contains("Open incidents (1)"), "{daily}");
            assert!(daily.contains("INC-1 P1"), "{daily}");
            assert!(daily.contains("Checkout <b>down</b>"), "literal: {daily}");
            assert!(!daily.contains("@everyone"), "pings nobody: {daily}");
            assert!(daily.contains("No alerts firing"), "{daily}");
            assert!(daily.contains("No maintenance today"), "{daily}");
            let weekly = shown
                .iter()
                .find(|m| m.contains("The week in review"))
                .ok_or_else(|| anyhow::anyhow!("no weekly digest in {shown:?}"))?;
            assert!(weekly.contains("Incidents:"), "{weekly}");

            // A restart: a new App on the same database posts nothing again.
            let restarted = App::builder()
                .clock(w.clock.clone())
                .chat(w.app.chat.clone())
                .incidents_channel(Some(INCIDENTS_CHANNEL))
                .digests(settings())
                .build(w.app.store.clone());
            assert_eq!(tick(&restarted).await?, 0);

            // Down for three days, back at 15:00: the latest daily, once, not three.
            let before = w.now_ms();
            w.advance(ms(3 * DAY_MS + 6 * 3_600_000));
            let weekly_due = latest_weekly(Tz::UTC, Weekday::Mon, at(9, 0), w.now_ms())
                != latest_weekly(Tz::UTC, Weekday::Mon, at(9, 0), before);
            let expected = 1 + usize::from(weekly_due);
            assert_eq!(tick(&restarted).await?, expected);
            assert_eq!(tick(&w.app).await?, 0, "another replica's tick: nothing");
            w.chat.clear();
            w.deliver().await?;
            let shown = w.chat.shown_to(INCIDENTS_CHANNEL);
            let dailies: Vec<&String> = shown
                .iter()
                .filter(|m| m.contains("Morning health check"))
                .collect();
            assert_eq!(dailies.len(), 1, "{shown:?}");
            let today = latest_daily(Tz::UTC, at(9, 0), w.now_ms());
            let heading = today.date.format("%a %-d %b %Y").to_string();
            assert!(dailies[0].contains(&heading), "{heading} in {}", dailies[0]);
            Ok(())
        },
    );
}

#[test]
fn no_digest_without_a_channel() {
    crate::testing::run_test_with(
        |b| {
            b.digests(settings())
                .incidents_channel(None)
                .alerts_channel(None)
        },
        |w| async move {
            assert_eq!(tick(&w.app).await?, 0);
            Ok(())
        },
    );
}
