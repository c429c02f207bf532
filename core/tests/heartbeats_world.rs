//! Heartbeat deadline rules in the fast world, on the controllable clock: on time,
//! missed (once, then resolved by a ping), failed, and across a restart (Klaxon's
//! own downtime is no missed run, but a deadline that passed while it was down
//! still fires one grace period after start-up).

use std::time::Duration;

use klaxon_core::alerts::heartbeats;
use klaxon_core::settings::heartbeats::{Heartbeat, Token};
use klaxon_core::store::heartbeats::BeatState;
use klaxon_core::testing::{run_test_with, World};
use klaxon_core::AppBuilder;

const HOUR: Duration = Duration::from_secs(3_600);

fn with_backup(b: AppBuilder) -> AppBuilder {
    b.heartbeats(vec![Heartbeat {
        name: "db-backup".into(),
        period: 24 * HOUR,
        grace: HOUR,
        service: Some("db".into()),
        token: Token::new("t0ken"),
    }])
}

fn hb(w: &World) -> Heartbeat {
    w.app.heartbeats[0].clone()
}

/// (alertname, service, source) of what fires now.
async fn firing(w: &World) -> anyhow::Result<Vec<(String, String, String)>> {
    Ok(klaxon_core::store::alerts::firing(&w.app.store)
        .await?
        .into_iter()
        .map(|a| (a.name, a.service, a.source))
        .collect())
}

async fn state(w: &World) -> anyhow::Result<BeatState> {
    Ok(heartbeats::statuses(&w.app).await?[0].state)
}

#[test]
fn a_run_on_time_raises_nothing() {
    run_test_with(with_backup, |w| async move {
        heartbeats::start(&w.app).await?;
        w.advance(20 * HOUR);
        heartbeats::ran(&w.app, &hb(&w)).await?;
        // Just inside period + grace of the last run.
        w.advance(25 * HOUR - Duration::from_secs(1));
        assert_eq!(heartbeats::check(&w.app).await?, 0);
        assert!(firing(&w).await?.is_empty());
        assert_eq!(state(&w).await?, BeatState::Ok);
        Ok(())
    });
}

#[test]
fn a_missed_run_fires_once_and_the_next_ping_resolves_it() {
    run_test_with(with_backup, |w| async move {
        heartbeats::start(&w.app).await?;
        heartbeats::ran(&w.app, &hb(&w)).await?;
        w.advance(25 * HOUR - Duration::from_secs(1));
        assert_eq!(heartbeats::check(&w.app).await?, 0);
        w.advance(Duration::from_secs(1));
        assert_eq!(heartbeats::check(&w.app).await?, 1);
        assert_eq!(heartbeats::check(&w.app).await?, 0, "raised once");
        assert_eq!(
            firing(&w).await?,
            vec![("HeartbeatMissed".into(), "db".into(), "heartbeat".into())]
        );
        assert_eq!(state(&w).await?, BeatState::Missed);
        w.advance(Duration::from_secs(30));
        heartbeats::ran(&w.app, &hb(&w)).await?;
        assert!(firing(&w).await?.is_empty(), "the ping resolves it");
        let s = &heartbeats::statuses(&w.app).await?[0];
        assert_eq!(s.state, BeatState::Ok);
        // The world's clock runs on from the test's offset: a few ms pass.
        let ago = w.now_ms() - s.last_ok_ms.unwrap_or_default();
        assert!((0..1_000).contains(&ago), "last run {ago} ms ago");
        Ok(())
    });
}

#[test]
fn a_failed_run_fires_at_once_and_a_good_run_resolves_it() {
    run_test_with(with_backup, |w| async move {
        heartbeats::start(&w.app).await?;
        heartbeats::failed(&w.app, &hb(&w)).await?;
        assert_eq!(
            firing(&w).await?,
            vec![("HeartbeatFailed".into(), "db".into(), "heartbeat".into())]
        );
        assert_eq!(state(&w).await?, BeatState::Failed);
        // A failed heartbeat is not also "missed" later: one alert says it.
        w.advance(30 * HOUR);
        assert_eq!(heartbeats::check(&w.app).await?, 0);
        heartbeats::ran(&w.app, &hb(&w)).await?;
        assert!(firing(&w).await?.is_empty());
        Ok(())
    });
}

#[test]
fn a_restart_gives_one_grace_period_and_forgets_no_deadline() {
    run_test_with(with_backup, |w| async move {
        heartbeats::start(&w.app).await?;
        heartbeats::ran(&w.app, &hb(&w)).await?;
        // Klaxon is down for two days: the deadline passes meanwhile.
        w.advance(48 * HOUR);
        heartbeats::start(&w.app).await?; // the restart
        assert_eq!(
            heartbeats::check(&w.app).await?,
            0,
            "no false alarm at start-up"
        );
        w.advance(HOUR - Duration::from_secs(1));
        assert_eq!(heartbeats::check(&w.app).await?, 0);
        w.advance(Duration::from_secs(1));
        assert_eq!(heartbeats::check(&w.app).await?, 1, "fires after the grace");
        // A raised alert survives another restart and is not raised twice.
        heartbeats::start(&w.app).await?;
        assert_eq!(heartbeats::check(&w.app).await?, 0);
        assert_eq!(firing(&w).await?.len(), 1);
        Ok(())
    });
}

#[test]
fn a_restart_never_shortens_a_deadline() {
    run_test_with(with_backup, |w| async move {
        heartbeats::start(&w.app).await?;
        heartbeats::ran(&w.app, &hb(&w)).await?;
        w.advance(HOUR);
        heartbeats::start(&w.app).await?;
        // Still the deadline of the run: 25 h after it, not 1 h after the restart.
        w.advance(23 * HOUR);
        assert_eq!(heartbeats::check(&w.app).await?, 0);
        w.advance(HOUR);
        assert_eq!(heartbeats::check(&w.app).await?, 1);
        Ok(())
    });
}

#[test]
fn a_heartbeat_never_pinged_gets_a_period_and_grace_from_start_up() {
    run_test_with(with_backup, |w| async move {
        heartbeats::start(&w.app).await?;
        let s = &heartbeats::statuses(&w.app).await?[0];
        assert_eq!(s.last_ok_ms, None);
        w.advance(25 * HOUR - Duration::from_secs(1));
        assert_eq!(heartbeats::check(&w.app).await?, 0);
        w.advance(Duration::from_secs(1));
        assert_eq!(heartbeats::check(&w.app).await?, 1);
        Ok(())
    });
}
