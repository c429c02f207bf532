//! Maintenance windows in the fast world: scheduled, reminded, started and ended by
//! the clock, alerts held while they run and summarised afterwards, as the
//! incidents and alerts channels would show it.

use std::time::Duration;

use klaxon_core::actor::Actor;
use klaxon_core::alerts;
use klaxon_core::maintenance::{self, MaintenanceError, NewWindow, WindowState};
use klaxon_core::settings::services::ServiceConfig;
use klaxon_core::testing::{run_test_with, World, ALERTS_CHANNEL, INCIDENTS_CHANNEL};
use klaxon_core::AppBuilder;

const HOUR: Duration = Duration::from_secs(3_600);

fn services(b: AppBuilder) -> AppBuilder {
    let s = |name: &str| -> ServiceConfig {
        serde_json::from_value(serde_json::json!({ "name": name })).expect("a service")
    };
    b.services(vec![s("db"), s("api")])
}

fn carol() -> Actor {
    Actor::member(21, "carol")
}

fn window(w: &World, service: &str, in_: Duration, lasts: Duration) -> NewWindow {
    NewWindow {
        services: vec![service.into()],
        all: false,
        reason: "Upgrade to 16.2".into(),
        flag: false,
        starts_ms: w.now_ms() + in_.as_millis() as i64,
        duration: lasts,
        by: carol(),
    }
}

/// What the incidents channel was told, newest last.
fn told(w: &World) -> Vec<String> {
    w.chat.shown_to(INCIDENTS_CHANNEL)
}

#[test]
fn a_window_is_announced_reminded_started_and_ended_by_the_clock() {
    run_test_with(services, |w| async move {
        let done = maintenance::create(&w.app, window(&w, "db", 3 * HOUR, 2 * HOUR)).await?;
        assert_eq!(done.window.state, WindowState::Scheduled);
        assert!(
            told(&w).is_empty(),
            "the command's reply never waits on the channel"
        );
        maintenance::tick(&w.app).await?;
        w.deliver().await?;
        let t = told(&w);
        assert_eq!(t.len(), 1, "{t:?}");
        assert!(
            t[0].starts_with("🔧 **Planned maintenance: db**"),
            "{}",
            t[0]
        );
        assert!(t[0].contains("Upgrade to 16.2") && t[0].ends_with("maintenance #1"));

        maintenance::tick(&w.app).await?;
        w.deliver().await?;
        assert_eq!(told(&w).len(), 1, "nothing else due yet");

        w.advance(2 * HOUR + Duration::from_secs(1));
        maintenance::tick(&w.app).await?;
        w.deliver().await?;
        let t = told(&w);
        assert_eq!(t.len(), 2, "{t:?}");
        assert!(
            t[1].starts_with("⏰ **Reminder: maintenance on db starts"),
            "{}",
            t[1]
        );

        w.advance(HOUR);
        maintenance::tick(&w.app).await?;
        w.deliver().await?;
        let t = told(&w);
        assert_eq!(t.len(), 3, "{t:?}");
        assert!(
            t[2].starts_with("🔧 **Maintenance has started: db**"),
            "{}",
            t[2]
        );
        let now = maintenance::get(&w.app.store, 1).await?.expect("window");
        assert_eq!(now.state, WindowState::Active);
        let notes = maintenance::health_notes(&w.app).await;
        assert!(notes.iter().any(|(s, _)| s == "db"), "{notes:?}");

        w.advance(2 * HOUR);
        maintenance::tick(&w.app).await?;
        w.deliver().await?;
        let t = told(&w);
        assert_eq!(t.len(), 4, "{t:?}");
        assert!(
            t[3].starts_with("✅ **Maintenance is over: db**\nIt took 2 h."),
            "{}",
            t[3]
        );
        let over = maintenance::get(&w.app.store, 1).await?.expect("window");
        assert_eq!(over.state, WindowState::Ended);
        assert!(maintenance::health_notes(&w.app).await.is_empty());

        maintenance::tick(&w.app).await?;
        w.deliver().await?;
        assert_eq!(told(&w).len(), 4, "each step once");
        Ok(())
    });
}

#[test]
fn a_window_starting_now_is_announced_by_its_start() {
    run_test_with(services, |w| async move {
        let done = maintenance::create(&w.app, window(&w, "api", Duration::ZERO, HOUR)).await?;
        assert_eq!(done.window.state, WindowState::Active);
        maintenance::tick(&w.app).await?;
        w.deliver().await?;
        let t = told(&w);
        assert_eq!(t.len(), 1, "{t:?}");
        assert!(
            t[0].starts_with("🔧 **Maintenance has started: api**"),
            "{}",
            t[0]
        );
        Ok(())
    });
}

#[test]
fn windows_of_one_service_cannot_overlap() {
    run_test_with(services, |w| async move {
        maintenance::create(&w.app, window(&w, "db", HOUR, 2 * HOUR)).await?;
        let err = maintenance::create(&w.app, window(&w, "db", 2 * HOUR, HOUR))
            .await
            .expect_err("overlaps");
        assert!(matches!(err, MaintenanceError::Invalid(_)), "{err}");
        assert!(
            err.to_string()
                .starts_with("`db` already has maintenance #1 scheduled"),
            "{err}"
        );
        // Another service at the same time is fine.
        maintenance::create(&w.app, window(&w, "api", 2 * HOUR, HOUR)).await?;
        Ok(())
    });
}

#[test]
fn a_start_in_the_past_and_a_window_too_long_are_refused() {
    run_test_with(services, |w| async move {
        let mut past = window(&w, "db", Duration::ZERO, HOUR);
        past.starts_ms -= 10 * 60_000;
        let err = maintenance::create(&w.app, past).await.expect_err("past");
        assert!(err.to_string().contains("is in the past"), "{err}");
        let err = maintenance::create(&w.app, window(&w, "db", HOUR, 25 * HOUR))
            .await
            .expect_err("too long");
        assert_eq!(err.to_string(), "A window lasts between 1 minute and 1 d.");
        assert!(maintenance::list(&w.app.store).await?.is_empty());
        assert!(w.chat.sent().is_empty());
        Ok(())
    });
}

#[test]
fn a_cancelled_window_is_announced_as_cancelled_and_never_starts() {
    run_test_with(services, |w| async move {
        maintenance::create(&w.app, window(&w, "db", 3 * HOUR, HOUR)).await?;
        maintenance::tick(&w.app).await?;
        w.deliver().await?;
        maintenance::cancel(&w.app, 1, &carol()).await?;
        maintenance::tick(&w.app).await?;
        w.deliver().await?;
        let t = told(&w);
        assert!(
            t.last()
                .is_some_and(|m| m.starts_with("❎ **Planned maintenance cancelled: db**")),
            "{t:?}"
        );
        let before = t.len();
        w.advance(4 * HOUR);
        maintenance::tick(&w.app).await?;
        w.deliver().await?;
        assert_eq!(told(&w).len(), before, "no start, no end");
        let c = maintenance::get(&w.app.store, 1).await?.expect("window");
        assert_eq!(c.state, WindowState::Cancelled);
        Ok(())
    });
}

#[test]
fn alerts_are_held_during_the_window_and_summarised_at_its_end() {
    run_test_with(services, |w| async move {
        maintenance::create(&w.app, window(&w, "db", Duration::ZERO, HOUR)).await?;
        let body = serde_json::to_vec(&serde_json::json!({
            "version": "4", "status": "firing",
            "alerts": [{ "status": "firing", "fingerprint": "m1",
                "labels": { "alertname": "ReplicaLag", "service": "db" },
                "annotations": { "summary": "replica 30s behind" } }]
        }))?;
        let parsed = alerts::parse::alertmanager(&body)?;
        let got = alerts::intake::ingest(
            &w.app.store,
            &w.app.alerts,
            w.app.alerts_channel,
            &parsed,
            w.now_ms(),
        )
        .await?;
        assert_eq!(got.held, 1);
        w.advance(Duration::from_secs(60));
        alerts::deliver::flush_due(&w.app, w.now_ms()).await?;
        let mut sender = alerts::deliver::Sender::default();
        sender.tick(&w.app).await?;
        sender.drain().await;
        assert!(
            w.chat.sent_to(ALERTS_CHANNEL).is_empty(),
            "held, not posted"
        );

        let done = maintenance::end(&w.app, None, &carol()).await?;
        assert_eq!(done.window.state, WindowState::Ended);
        maintenance::tick(&w.app).await?;
        w.deliver().await?;
        let summary = w
            .chat
            .shown_to(ALERTS_CHANNEL)
            .into_iter()
            .find(|c| c.contains("held"))
            .expect("a summary");
        assert!(
            summary.starts_with(
                "🔕 **Maintenance #1 (db) held 1 alert notification** from 1 alert; 1 still firing."
            ),
            "{summary}"
        );
        let t = told(&w);
        let end = t.last().expect("end notice");
        assert!(
            end.starts_with("✅ **Maintenance is over: db**\nFinished early"),
            "{end}"
        );
        Ok(())
    });
}

#[test]
fn an_end_missed_while_klaxon_was_down_is_announced_late() {
    run_test_with(services, |w| async move {
        maintenance::create(&w.app, window(&w, "db", Duration::ZERO, HOUR)).await?;
        w.advance(HOUR + Duration::from_secs(600));
        maintenance::tick(&w.app).await?;
        w.deliver().await?;
        let t = told(&w);
        let end = t.last().expect("end notice");
        assert!(
            end.starts_with("✅ **Maintenance is over: db** (late notice)"),
            "{end}"
        );
        Ok(())
    });
}
