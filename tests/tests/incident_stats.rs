//! `/incident stats` end to end: a P1 opened, acknowledged after 5 minutes and
//! resolved after an hour (on the bot's moved clock); a viewer reads MTTA and
//! MTTR, and `/metrics` has both histograms.

use std::time::Duration;

use klaxon_core::permissions::Level;
use klaxon_tests::{both_databases, Db, Tester};

both_databases!(
    stats,
    a_viewer_reads_mtta_and_mttr_and_metrics_has_them_on_sqlite,
    a_viewer_reads_mtta_and_mttr_and_metrics_has_them_on_postgres,
);

async fn stats(db: Db) {
    let t = Tester::builder().db(db).spawn().await;
    t.slash("incident open")
        .opt("title", "Checkout down")
        .opt("severity", 0)
        .as_level(Level::Responder)
        .send()
        .await
        .reply()
        .await
        .assert_contains("INC-1");
    t.advance(Duration::from_secs(5 * 60));
    t.slash("incident ack")
        .opt("id", "INC-1")
        .as_level(Level::Responder)
        .send()
        .await
        .reply()
        .await;
    t.advance(Duration::from_secs(55 * 60));
    t.slash("incident status")
        .opt("id", "INC-1")
        .opt("status", 3) // resolved
        .opt("message", "Rolled back")
        .as_level(Level::Responder)
        .send()
        .await
        .reply()
        .await;
    t.discard_unread().await;

    // Responders only may resolve; anyone may read the figures.
    let reply = t
        .slash("incident stats")
        .opt("days", 7)
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    reply
        .assert_contains("last 7 days**: 1 opened")
        .assert_contains("**P1** · 1 incident")
        .assert_contains("MTTA p50 5m 0s · p90 5m 0s (1 acked)")
        .assert_contains("MTTR p50 1h 0m · p90 1h 0m (1 resolved)");

    let scrape = klaxon_tests::scrape::Scrape::get(t.bot().http_addr)
        .await
        .expect("/metrics");
    assert_eq!(
        scrape.value("klaxon_incident_ack_seconds_count", &[("severity", "P1")]),
        Some(1.0)
    );
    // The moved clock's 5 min and 1 h, plus the test's own real milliseconds.
    let ack = scrape
        .value("klaxon_incident_ack_seconds_sum", &[("severity", "P1")])
        .expect("ack sum");
    assert!((300.0..305.0).contains(&ack), "{ack}");
    let resolve = scrape
        .value("klaxon_incident_resolve_seconds_sum", &[("severity", "P1")])
        .expect("resolve sum");
    assert!((3600.0..3605.0).contains(&resolve), "{resolve}");
    t.discard_unread().await;
    t.finish().await;
}
