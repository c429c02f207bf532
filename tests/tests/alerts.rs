//! Alert intake over HTTP, against the real bot's server and both databases.

use hmac::{Hmac, Mac};
use klaxon::config::Secret;
use std::time::{Duration, Instant};

use klaxon_core::alerts::AlertStatus;
use klaxon_core::incidents::Severity;
use klaxon_core::routing::RouteConfig;
use klaxon_tests::both_databases;
use klaxon_tests::fake::{FaultRule, MessageRecord};
use klaxon_tests::tester::ALERTS;
use klaxon_tests::{Db, Tester};
use serde_json::{json, Value};

const AM_TOKEN: &str = "am-secret-token";
const GRAFANA_TOKEN: &str = "grafana-token";
const SIGNING: &str = "grafana-signing-secret";

fn alertmanager(status_api: &str, status_web: &str) -> Value {
    json!({
        "version": "4", "groupKey": "{}:{alertname=\"HighLatency\"}", "truncatedAlerts": 0,
        "status": "firing", "receiver": "klaxon", "groupLabels": {"alertname": "HighLatency"},
        "commonLabels": {"alertname": "HighLatency"}, "commonAnnotations": {},
        "externalURL": "http://am:9093", "notification_reason": "new", "routeLabels": {},
        "alerts": [
            {"status": status_api, "labels": {"alertname": "HighLatency", "service": "api", "severity": "critical"},
             "annotations": {"summary": "p99 over 2 s"}, "startsAt": "2026-12-01T14:03:00Z",
             "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom/graph", "fingerprint": "abc123",
             "somethingNew": {"nested": true}},
            {"status": status_web, "labels": {"alertname": "HighLatency", "service": "web"},
             "annotations": {}, "startsAt": "2026-12-01T13:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
             "generatorURL": "", "fingerprint": "def456"}
        ]
    })
}

async fn spawn(db: Db) -> Tester {
    Tester::builder()
        .db(db)
        // Intake only: every group waits an hour, so nothing is posted during it.
        .alerts(|a| {
            a.group_wait_secs = 3_600;
            a.routes.push(RouteConfig {
                severity: Some(Severity::P4),
                ..Default::default()
            });
        })
        .intake(|i| {
            i.alertmanager_token = Secret::new(AM_TOKEN);
            i.grafana_token = Secret::new(GRAFANA_TOKEN);
            i.grafana_signing_secret = Secret::new(SIGNING);
        })
        .spawn()
        .await
}

fn url(t: &Tester, source: &str) -> String {
    format!("http://{}/alerts/{source}", t.bot().http_addr)
}

async fn post(
    t: &Tester,
    source: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = reqwest::Client::new()
        .post(url(t, source))
        .header("content-type", "application/json")
        .body(body);
    if let Some(tok) = token {
        req = req.bearer_auth(tok);
    }
    let r = req.send().await.expect("the intake answers");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (status, body, headers)
}

async fn intake(db: Db) {
    let t = spawn(db).await;
    let body = serde_json::to_vec(&alertmanager("firing", "firing")).unwrap();

    // Stored, then answered; the same notification again is two duplicates.
    let (status, reply, _) = post(&t, "alertmanager", Some(AM_TOKEN), body.clone()).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["accepted"], 2);
    assert_eq!(reply["stored"]["firing"], 2);
    let (_, reply, _) = post(&t, "alertmanager", Some(AM_TOKEN), body.clone()).await;
    assert_eq!(reply["stored"]["duplicates"], 2, "{reply}");
    let firing = klaxon_core::store::alerts::firing(&t.bot().app.store)
        .await
        .expect("firing");
    assert_eq!(firing.len(), 2);
    assert_eq!(firing[0].fingerprint, "abc123");
    assert_eq!(firing[0].summary, "p99 over 2 s");
    assert_eq!(firing[0].received, 2);

    // A resolved alert closes its firing one.
    let resolved = serde_json::to_vec(&alertmanager("resolved", "firing")).unwrap();
    let (_, reply, _) = post(&t, "alertmanager", Some(AM_TOKEN), resolved).await;
    assert_eq!(reply["stored"]["resolved"], 1, "{reply}");
    assert_eq!(reply["stored"]["duplicates"], 1, "{reply}");
    let firing = klaxon_core::store::alerts::firing(&t.bot().app.store)
        .await
        .expect("firing");
    assert_eq!(firing.len(), 1);
    assert_eq!(firing[0].fingerprint, "def456");
    assert_eq!(firing[0].status, AlertStatus::Firing);

    // What cannot be read is refused with the reason.
    let (status, reply, _) = post(
        &t,
        "alertmanager",
        Some(AM_TOKEN),
        b"[FIRING:1] HighLatency (api critical)".to_vec(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        reply["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("the body is not JSON"),
        "{reply}"
    );
    let (status, reply, _) = post(
        &t,
        "alertmanager",
        Some(AM_TOKEN),
        br#"{"text": "HighLatency firing on api"}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        reply["error"],
        "version: missing (is this a templated body?)"
    );

    // Authentication.
    let (status, _, headers) = post(&t, "alertmanager", None, body.clone()).await;
    assert_eq!(status, 401);
    assert_eq!(
        headers.get("www-authenticate").map(|v| v.to_str().unwrap()),
        Some("Bearer")
    );
    let (status, _, _) = post(&t, "alertmanager", Some("am-secret-tokem"), body.clone()).await;
    assert_eq!(status, 401);
    let (status, reply, _) = post(&t, "generic", Some("anything"), body.clone()).await;
    assert_eq!(status, 404, "no token configured: switched off");
    assert!(
        reply["error"]
            .as_str()
            .unwrap_or_default()
            .contains("intake.generic_token"),
        "{reply}"
    );

    // Over 1 MiB: 413 before the body is read.
    let (status, _, _) = post(
        &t,
        "alertmanager",
        Some(AM_TOKEN),
        vec![b' '; 1024 * 1024 + 1],
    )
    .await;
    assert_eq!(status, 413);

    // Grafana with its HMAC signature.
    let grafana = serde_json::to_vec(&json!({
        "version": "1", "orgId": 1, "title": "[FIRING:1] DiskFull", "state": "alerting",
        "message": "disk", "status": "firing", "receiver": "klaxon", "groupKey": "g",
        "alerts": [{"status": "firing", "labels": {"alertname": "DiskFull", "instance": "db1"},
            "annotations": {"description": "disk at 97%"}, "startsAt": "2026-12-01T14:03:00Z",
            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://g/a", "fingerprint": "",
            "silenceURL": "http://g/s", "dashboardURL": "http://g/d", "panelURL": "http://g/p",
            "values": {"A": 97}, "valueString": "A=97"}]
    }))
    .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SIGNING.as_bytes()).unwrap();
    mac.update(&grafana);
    let sig: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let signed = |sig: &str| {
        reqwest::Client::new()
            .post(url(&t, "grafana"))
            .bearer_auth(GRAFANA_TOKEN)
            .header("X-Grafana-Alerting-Signature", sig.to_string())
            .body(grafana.clone())
            .send()
    };
    assert_eq!(signed(&sig).await.unwrap().status().as_u16(), 200);
    let wrong = format!("{}0", &sig[..sig.len() - 1]);
    assert_eq!(signed(&wrong).await.unwrap().status().as_u16(), 401);

    // Storage down: 503 and nothing claimed stored, so the sender retries.
    t.bot().app.store.close().await;
    let (status, reply, headers) = post(&t, "alertmanager", Some(AM_TOKEN), body).await;
    assert_eq!(status, 503, "{reply}");
    assert_eq!(
        headers.get("retry-after").map(|v| v.to_str().unwrap()),
        Some("5")
    );
    t.finish().await;
}

both_databases!(intake, intake_on_sqlite, intake_on_postgres);

const GENERIC_TOKEN: &str = "generic-token";
const ON_CALL: u64 = 1005;

async fn delivering(db: Db) -> Tester {
    Tester::builder()
        .db(db)
        .intake(|i| i.generic_token = Secret::new(GENERIC_TOKEN))
        .incidents(|c| c.on_call_role = Some(ON_CALL))
        .alerts(|a| {
            a.group_wait_secs = 1;
            a.group_interval_secs = 1;
            a.routes.push(RouteConfig {
                matchers: [("team".to_string(), "payments".to_string())]
                    .into_iter()
                    .collect(),
                severity: Some(Severity::P1),
                page: Some(true),
                ..Default::default()
            });
        })
        .spawn()
        .await
}

fn alert(name: &str, instance: &str, status: &str, summary: &str) -> Value {
    json!({"name": name, "status": status, "service": "api", "severity": "warning",
           "summary": summary, "labels": {"instance": instance}})
}

async fn send(t: &Tester, alerts: Vec<Value>) {
    let (status, reply, _) = post(
        t,
        "generic",
        Some(GENERIC_TOKEN),
        serde_json::to_vec(&json!({ "alerts": alerts })).unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
}

fn embeds_text(m: &MessageRecord) -> String {
    m.text()
}

async fn grouped(db: Db) {
    let t = delivering(db).await;
    send(
        &t,
        (1..=3)
            .map(|i| alert("HighLatency", &format!("api-{i}"), "firing", "p99 over 2 s"))
            .collect(),
    )
    .await;
    // One message for the group, after group_wait, quiet (P3).
    let first = t.channel_message(ALERTS).await;
    let text = embeds_text(&first);
    assert!(
        text.contains("🔥 P3 FIRING · HighLatency · api (3)"),
        "{text}"
    );
    // Said once in the header; each row names what tells it apart (#17).
    assert_eq!(text.matches("p99 over 2 s").count(), 1, "{text}");
    for i in 1..=3 {
        assert!(
            text.contains(&format!("🔴 instance=api-{i} · since")),
            "{text}"
        );
    }
    assert_eq!(first.flags & 4096, 4096, "P3 does not buzz phones");
    assert!(first.nonce.is_some(), "creates carry a nonce");

    // A fourth alert of the group edits the same message.
    send(
        &t,
        vec![alert("HighLatency", "api-4", "firing", "p99 over 2 s")],
    )
    .await;
    let edit = t.channel_edit(ALERTS).await;
    assert_eq!(edit.id, first.id, "edited in place");
    assert!(embeds_text(&edit).contains("(4)"), "{}", embeds_text(&edit));

    // All resolved: the same message says so.
    send(
        &t,
        (1..=4)
            .map(|i| {
                alert(
                    "HighLatency",
                    &format!("api-{i}"),
                    "resolved",
                    "p99 over 2 s",
                )
            })
            .collect(),
    )
    .await;
    let done = t.channel_edit(ALERTS).await;
    assert_eq!(done.id, first.id);
    assert!(
        embeds_text(&done).contains("✅ RESOLVED · HighLatency · api (4)"),
        "{}",
        embeds_text(&done)
    );
    assert!(
        embeds_text(&done).contains("Resolved at "),
        "{}",
        embeds_text(&done)
    );
    assert!(
        done.custom_ids().is_empty(),
        "a resolved group has no buttons"
    );

    // A P1 route skips group_wait and pages the on-call role on its first message.
    let sent = Instant::now();
    send(
        &t,
        vec![
            json!({"name": "CheckoutDown", "service": "checkout", "summary": "checkout 5xx at 80%",
                    "labels": {"team": "payments"}}),
        ],
    )
    .await;
    let page = t.channel_message(ALERTS).await;
    let waited = sent.elapsed();
    assert!(waited < Duration::from_secs(1), "P1 took {waited:?}");
    assert!(
        page.text().starts_with(&format!("<@&{ON_CALL}>")),
        "{}",
        page.text()
    );
    assert!(
        page.text()
            .contains("🔥 P1 FIRING · CheckoutDown · checkout (1)"),
        "{}",
        page.text()
    );
    t.finish().await;
}

both_databases!(
    grouped,
    alerts_are_grouped_and_edited_in_place_on_sqlite,
    alerts_are_grouped_and_edited_in_place_on_postgres
);

async fn a_large_group_is_one_phone_sized_message_and_survives_a_5xx_on(db: Db) {
    let t = Tester::builder()
        .db(db)
        .intake(|i| i.generic_token = Secret::new(GENERIC_TOKEN))
        .alerts(|a| {
            a.group_wait_secs = 1;
            a.summarize_over = 500;
        })
        .spawn()
        .await;
    // Discord fails the first create: the outbox retries it, with the same nonce.
    t.fake.inject(FaultRule::Status {
        path_contains: format!("/channels/{ALERTS}/messages"),
        status: 502,
        times: 1,
    });
    let long = "a long summary of what is wrong with this instance ".repeat(6);
    send(
        &t,
        (0..150)
            .map(|i| alert("DiskFull", &format!("db-{i:03}"), "firing", &long))
            .collect(),
    )
    .await;
    // One phone-sized message (#17): the shared summary once, ten rows naming
    // their instance, the count of the rest, every alert in the attached list.
    let m = t.channel_message(ALERTS).await;
    let text = m.text();
    assert!(
        text.contains("🔥 P3 FIRING · DiskFull · api (150)"),
        "{text}"
    );
    assert!(
        text.lines()
            .filter(|l| l.starts_with("🔴"))
            .all(|l| !l.contains("a long summary")),
        "the summary is in the header only: {text}"
    );
    assert_eq!(text.matches("🔴 instance=db-").count(), 10, "{text}");
    assert!(
        text.contains("… and 140 more in the attached list"),
        "{text}"
    );
    assert!(
        text.lines().count() <= 15 && text.chars().count() < 1_500,
        "{text}"
    );
    let list = String::from_utf8(m.attachments[0].data.to_vec()).unwrap();
    assert_eq!(list.lines().count(), 150, "every alert shown once");
    for i in 0..150 {
        assert!(list.contains(&format!("instance=db-{i:03} ")), "db-{i:03}");
    }
    // finish() fails on any Discord limit broken (400s) or 429.
    t.finish().await;
}

both_databases!(
    a_large_group_is_one_phone_sized_message_and_survives_a_5xx_on,
    a_large_group_is_one_phone_sized_message_and_survives_a_5xx,
    a_large_group_is_one_phone_sized_message_and_survives_a_5xx_on_postgres
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silences_hold_alerts_back_until_they_end() {
    use klaxon_core::permissions::Level;
    let t = delivering(Db::Sqlite).await;
    let quiet = t
        .slash("alerts silence")
        .opt("matcher", "service=api")
        .opt("duration", "1h")
        .opt("reason", "deploying the new index")
        .as_level(Level::Responder)
        .send()
        .await
        .reply()
        .await;
    quiet.assert_contains("🔕 Silence #1: `service=api` until");

    // The api alert is held (stored, counted, not posted); web's is posted.
    let (_, reply, _) = post(
        &t,
        "generic",
        Some(GENERIC_TOKEN),
        serde_json::to_vec(&json!({"alerts": [
            alert("HighLatency", "api-1", "firing", "p99 over 2 s"),
            {"name": "HighLatency", "service": "web", "summary": "p99 over 3 s"}
        ]}))
        .unwrap(),
    )
    .await;
    assert_eq!(reply["stored"]["held"], 1, "{reply}");
    let web = t.channel_message(ALERTS).await;
    assert!(web.text().contains("HighLatency · web"), "{}", web.text());

    let list = t
        .slash("alerts list")
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    assert!(list.ephemeral());
    let text = list.text();
    assert!(text.contains("2 firing"), "{text}");
    assert!(
        text.contains("🔕 **api** HighLatency · p99 over 2 s"),
        "{text}"
    );
    assert!(
        text.contains("🔴 **web** HighLatency · p99 over 3 s"),
        "{text}"
    );
    assert!(text.contains("#1 `service=api` until"), "{text}");
    assert!(text.contains("1 held · deploying the new index"), "{text}");

    // Viewers look; responders silence. Bad input is a private error.
    let denied = t
        .slash("alerts silence")
        .opt("matcher", "service=web")
        .opt("duration", "1h")
        .opt("reason", "x")
        .as_level(Level::Viewer)
        .send()
        .await
        .reply()
        .await;
    assert!(denied.ephemeral());
    denied.assert_contains("responder");
    for (matcher, duration, why) in [
        ("service", "1h", "is not a matcher"),
        ("service=api", "soon", "is not a duration"),
        ("service=api", "30d", "at most 7 days"),
    ] {
        let r = t
            .slash("alerts silence")
            .opt("matcher", matcher)
            .opt("duration", duration)
            .opt("reason", "x")
            .as_level(Level::Responder)
            .send()
            .await
            .reply()
            .await;
        assert!(r.ephemeral());
        r.assert_contains(why);
    }

    // Ended early: the held alert, still firing, is posted now.
    t.slash("alerts unsilence")
        .opt("id", 1)
        .as_level(Level::Responder)
        .send()
        .await
        .reply()
        .await
        .assert_contains("Silence #1 ended");
    let api = t.channel_message(ALERTS).await;
    assert!(
        api.text().contains("HighLatency · api (1)"),
        "{}",
        api.text()
    );
    let again = t
        .slash("alerts unsilence")
        .opt("id", 1)
        .as_level(Level::Responder)
        .send()
        .await
        .reply()
        .await;
    assert!(again.ephemeral());
    again.assert_contains("There is no active silence #1.");
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_buttons_acknowledge_silence_and_open_an_incident() {
    use klaxon_core::incidents::{EntryKind, IncidentId};
    use klaxon_core::permissions::Level;
    use klaxon_tests::fake::OutputKind;
    use klaxon_tests::tester::INCIDENTS;
    let t = Tester::builder()
        .intake(|i| i.generic_token = Secret::new(GENERIC_TOKEN))
        .alerts(|a| {
            a.group_wait_secs = 0;
            a.group_interval_secs = 1;
        })
        .service("api", None, Some("http://127.0.0.1:9/health"))
        .spawn()
        .await;
    send(
        &t,
        vec![alert("HighLatency", "api-1", "firing", "p99 over 2 s")],
    )
    .await;
    let m = t.channel_message(ALERTS).await;
    let ids = m.custom_ids();
    let id_of = |verb: &str| {
        ids.iter()
            .find(|i| i.starts_with(&format!("alerts:{verb}:")))
            .cloned()
            .unwrap_or_else(|| panic!("no {verb} button in {ids:?}"))
    };
    assert!(
        !ids.iter().any(|i| i.starts_with("alerts:logs:")),
        "no container, no Logs"
    );
    let responder = Tester::member(Some(Level::Responder));
    let callback = |id: u64| {
        t.take("a callback", move |o| {
            matches!(o.kind, OutputKind::Callback { interaction_id, .. } if interaction_id == id)
        })
    };

    // Acknowledge: no reply of its own; the message says who.
    let c = t
        .fake
        .click(responder.clone(), &m, &id_of("ack"))
        .await
        .unwrap();
    let cb = callback(c.id).await;
    assert!(matches!(
        cb.kind,
        OutputKind::Callback {
            callback_type: 6,
            ..
        }
    ));
    let edited = t.channel_edit(ALERTS).await;
    assert!(
        edited
            .text()
            .contains("👀 Acknowledged by responder-member at"),
        "{}",
        edited.text()
    );

    // Silence 1 h: viewers may not; responders get the group's labels silenced.
    let c = t
        .fake
        .click(Tester::member(Some(Level::Viewer)), &m, &id_of("silence"))
        .await
        .unwrap();
    let cb = callback(c.id).await;
    assert!(cb.message.ephemeral() && cb.message.text().contains("responder"));
    let c = t
        .fake
        .click(responder.clone(), &m, &id_of("silence"))
        .await
        .unwrap();
    let cb = callback(c.id).await;
    assert!(cb.message.ephemeral());
    assert!(
        cb.message
            .text()
            .contains("🔕 Silence #1: `alertname=HighLatency service=api` until"),
        "{}",
        cb.message.text()
    );

    // Open incident: pre-filled, and the alert is on its timeline.
    let c = t
        .fake
        .click(responder.clone(), &m, &id_of("incident"))
        .await
        .unwrap();
    let cb = callback(c.id).await;
    assert!(matches!(
        cb.kind,
        OutputKind::Callback {
            callback_type: 5,
            ..
        }
    ));
    let done = t
        .take("the answer", |o| {
            matches!(o.kind, OutputKind::EditOriginal { interaction_id } if interaction_id == c.id)
        })
        .await;
    assert!(
        done.message
            .text()
            .contains("Opened **INC-1** (P3) from these alerts"),
        "{}",
        done.message.text()
    );
    let inc = klaxon_core::incidents::get(&t.bot().app, IncidentId(1))
        .await
        .unwrap();
    assert_eq!(inc.title, "HighLatency · api");
    assert_eq!(inc.service.as_deref(), Some("api"));
    assert_eq!(inc.summary, "p99 over 2 s");
    t.channel_message(inc.channel_id.unwrap()).await;
    t.channel_message(INCIDENTS).await;
    let (_, entries) = klaxon_core::incidents::timeline(&t.bot().app, IncidentId(1))
        .await
        .unwrap();
    assert!(entries
        .iter()
        .any(|e| e.kind == EntryKind::Alert && e.text.contains("HighLatency firing")));
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_raise_and_resolve_service_down() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let up = Arc::new(AtomicBool::new(true));
    let flag = Arc::clone(&up);
    let app = axum::Router::new().route(
        "/health",
        axum::routing::get(move || {
            let flag = Arc::clone(&flag);
            async move {
                if flag.load(Ordering::Relaxed) {
                    (axum::http::StatusCode::OK, "ok")
                } else {
                    (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down")
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let t = Tester::builder()
        .service("api", None, Some(&format!("http://{addr}/health")))
        .alerts(|a| {
            a.probe_interval_secs = 1;
            a.probe_failures = 2;
            a.group_interval_secs = 1;
        })
        .spawn()
        .await;
    // Healthy: two rounds, nothing posted.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(t.fake.messages(ALERTS).is_empty());
    up.store(false, Ordering::Relaxed);
    let down = t.channel_message(ALERTS).await;
    assert!(
        down.text().contains("🔥 P1 FIRING · ServiceDown · api (1)"),
        "{}",
        down.text()
    );
    assert!(
        down.text().contains("failed 2 times in a row: HTTP 503"),
        "{}",
        down.text()
    );
    up.store(true, Ordering::Relaxed);
    let back = t.channel_edit(ALERTS).await;
    assert_eq!(back.id, down.id);
    assert!(
        back.text().contains("✅ RESOLVED · ServiceDown · api (1)"),
        "{}",
        back.text()
    );
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_events_raise_and_resolve_container_died() {
    use bollard::query_parameters::{KillContainerOptions, StartContainerOptions};
    use klaxon_tests::docker::{Containers, Spec};
    let mut c = Containers::new().await;
    let name = c.run("ev-api", Spec::new("v1")).await;
    let t = Tester::builder()
        .docker_host(c.host())
        .service("api", Some(&name), None)
        .alerts(|a| {
            a.docker_events = true;
            a.group_wait_secs = 0;
            a.group_interval_secs = 1;
        })
        .spawn()
        .await;
    // Let the event stream connect before the container dies.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    c.docker
        .kill_container(&name, None::<KillContainerOptions>)
        .await
        .expect("kill");
    let died = t.channel_message(ALERTS).await;
    assert!(
        died.text()
            .contains("🔥 P2 FIRING · ContainerDied · api (1)"),
        "{}",
        died.text()
    );
    assert!(
        died.text().contains("exited with code 137"),
        "{}",
        died.text()
    );
    c.docker
        .start_container(&name, None::<StartContainerOptions>)
        .await
        .expect("start");
    let back = t.channel_edit(ALERTS).await;
    assert_eq!(back.id, died.id);
    assert!(
        back.text()
            .contains("✅ RESOLVED · ContainerDied · api (1)"),
        "{}",
        back.text()
    );
    t.finish().await;
    c.cleanup().await;
}

async fn a_p1_goes_out_within_a_second_behind_a_burst_on(db: Db) {
    let t = delivering(db).await;
    // 20 groups of P3, one message each: at 5 messages per 5 s that is 20 s of sending.
    send(
        &t,
        (0..20)
            .map(|i| alert(&format!("Burst{i}"), "api-1", "firing", "noise"))
            .collect(),
    )
    .await;
    let first = t.channel_message(ALERTS).await;
    assert!(first.text().contains("P3 FIRING"), "{}", first.text());
    let sent = Instant::now();
    send(
        &t,
        vec![
            json!({"name": "CheckoutDown", "service": "checkout", "summary": "checkout 5xx",
                    "labels": {"team": "payments"}}),
        ],
    )
    .await;
    let p1 = t
        .take("the P1", |o| {
            matches!(o.kind, klaxon_tests::fake::OutputKind::ChannelMessage { channel_id } if channel_id == ALERTS)
                && o.message.text().contains("P1 FIRING")
        })
        .await;
    let took = p1.at.saturating_duration_since(sent);
    assert!(
        took < Duration::from_millis(1_500),
        "the P1 took {took:?} behind the burst"
    );
    // The rest of the burst still arrives, in full, with no 429.
    let mut seen = 1;
    while seen < 20 {
        t.channel_message(ALERTS).await;
        seen += 1;
    }
    t.finish().await;
}

both_databases!(
    a_p1_goes_out_within_a_second_behind_a_burst_on,
    a_p1_goes_out_within_a_second_behind_a_burst,
    a_p1_goes_out_within_a_second_behind_a_burst_on_postgres
);

async fn a_refused_token_stops_delivery_and_shows_in_readyz_on(db: Db) {
    let t = delivering(db).await;
    t.fake.inject(FaultRule::Status {
        path_contains: format!("/channels/{ALERTS}/messages"),
        status: 401,
        times: 1,
    });
    send(
        &t,
        vec![
            json!({"name": "CheckoutDown", "service": "checkout", "summary": "x",
                          "labels": {"team": "payments"}}),
        ],
    )
    .await;
    let ready = format!("http://{}/readyz", t.bot().http_addr);
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let r = reqwest::get(&ready).await.expect("readyz");
        if r.status().as_u16() == 503 {
            break r.json::<Value>().await.unwrap();
        }
        assert!(Instant::now() < deadline, "readyz never noticed the 401");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        body["discord_token"],
        "refused (401): alert delivery stopped"
    );
    // Nothing more is tried (each try would count toward Cloudflare's ban), and
    // nothing is dropped: the message waits in the outbox.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let tries = t
        .fake
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with(&format!("/channels/{ALERTS}/messages")))
        .count();
    assert_eq!(tries, 1);
    let pending: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE state = 'pending'")
        .fetch_one(t.bot().app.store.pool())
        .await
        .unwrap();
    assert_eq!(pending, 1);
    t.finish().await;
}

both_databases!(
    a_refused_token_stops_delivery_and_shows_in_readyz_on,
    a_refused_token_stops_delivery_and_shows_in_readyz,
    a_refused_token_stops_delivery_and_shows_in_readyz_on_postgres
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_logs_button_shows_the_last_15_minutes_privately() {
    use klaxon_core::permissions::Level;
    use klaxon_tests::docker::{Containers, Spec};
    use klaxon_tests::fake::OutputKind;
    let mut c = Containers::new().await;
    let name = c
        .run(
            "alert-logs",
            Spec::new("v1").cmd("echo 'ERROR payment declined token=abc123'; sleep 3600"),
        )
        .await;
    let t = Tester::builder()
        .docker_host(c.host())
        .service("api", Some(&name), None)
        .intake(|i| i.generic_token = Secret::new(GENERIC_TOKEN))
        .alerts(|a| a.group_wait_secs = 0)
        .spawn()
        .await;
    send(
        &t,
        vec![alert("HighErrorRate", "api-1", "firing", "5xx at 40%")],
    )
    .await;
    let m = t.channel_message(ALERTS).await;
    let logs = m
        .custom_ids()
        .into_iter()
        .find(|i| i.starts_with("alerts:logs:"))
        .expect("a Logs button: the service has a container");
    let click = t
        .fake
        .click(Tester::member(Some(Level::Viewer)), &m, &logs)
        .await
        .unwrap();
    let cb = t
        .take("the defer", |o| {
            matches!(o.kind, OutputKind::Callback { interaction_id, .. } if interaction_id == click.id)
        })
        .await;
    assert!(cb.message.ephemeral(), "logs are private");
    let answer = t
        .take("the logs", |o| {
            matches!(o.kind, OutputKind::EditOriginal { interaction_id } if interaction_id == click.id)
        })
        .await;
    let text = answer.message.text();
    assert!(text.contains("ERROR payment declined"), "{text}");
    assert!(
        text.contains("[redacted]") && !text.contains("abc123"),
        "secrets redacted: {text}"
    );
    t.finish().await;
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_can_end_when_its_alerts_resolve() {
    use klaxon_core::alerts::silence;
    use klaxon_core::permissions::Level;
    for db in Db::BOTH {
        let t = delivering(db).await;
        t.slash("alerts silence")
            .opt("matcher", "alertname=Flapping")
            .opt("duration", "4h")
            .opt("reason", "known flapper")
            .opt("until_resolved", true)
            .as_level(Level::Responder)
            .send()
            .await
            .reply()
            .await
            .assert_contains("or until its alerts resolve");
        send(&t, vec![alert("Flapping", "api-1", "firing", "x")]).await;
        let now = t.bot().app.clock.now_ms();
        assert_eq!(
            silence::active(&t.bot().app.store, now)
                .await
                .unwrap()
                .len(),
            1
        );
        send(&t, vec![alert("Flapping", "api-1", "resolved", "x")]).await;
        assert!(
            silence::active(&t.bot().app.store, now)
                .await
                .unwrap()
                .is_empty(),
            "ended with its alerts"
        );
        // Nothing was posted: the alert fired and resolved under the silence.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert!(t.fake.messages(ALERTS).is_empty());
        t.finish().await;
    }
}

async fn a_group_still_firing_is_announced_again_until_acknowledged_on(db: Db) {
    use klaxon_core::permissions::Level;
    let t = Tester::builder()
        .db(db)
        .intake(|i| i.generic_token = Secret::new(GENERIC_TOKEN))
        .alerts(|a| {
            a.group_wait_secs = 0;
            a.repeat_interval_secs = 2;
        })
        .spawn()
        .await;
    send(
        &t,
        vec![alert("QueueBacklog", "worker-1", "firing", "backlog 50k")],
    )
    .await;
    let first = t.channel_message(ALERTS).await;
    let again = t.channel_message(ALERTS).await;
    assert_ne!(again.id, first.id, "a new message: edits notify nobody");
    assert!(
        again.text().starts_with("🔁 Still firing after"),
        "{}",
        again.text()
    );
    assert!(
        again.text().contains("**QueueBacklog · api** (1)"),
        "{}",
        again.text()
    );
    let ack = again
        .custom_ids()
        .into_iter()
        .find(|i| i.starts_with("alerts:ack:"))
        .expect("Acknowledge on the reminder");
    let c = t
        .fake
        .click(Tester::member(Some(Level::Responder)), &again, &ack)
        .await
        .unwrap();
    t.take("the ack", |o| {
        matches!(o.kind, klaxon_tests::fake::OutputKind::Callback { interaction_id, .. } if interaction_id == c.id)
    })
    .await;
    let edited = t.channel_edit(ALERTS).await;
    assert_eq!(edited.id, first.id);
    assert!(edited
        .text()
        .contains("👀 Acknowledged by responder-member"));
    // Acknowledged: no more reminders (finish() fails on anything unread).
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    t.finish().await;
}

both_databases!(
    a_group_still_firing_is_announced_again_until_acknowledged_on,
    a_group_still_firing_is_announced_again_until_acknowledged,
    a_group_still_firing_is_announced_again_until_acknowledged_on_postgres
);

async fn past_summarize_over_the_full_list_is_attached_on(db: Db) {
    let t = Tester::builder()
        .db(db)
        .intake(|i| i.generic_token = Secret::new(GENERIC_TOKEN))
        .alerts(|a| {
            a.group_wait_secs = 0;
            a.summarize_over = 20;
        })
        .spawn()
        .await;
    send(
        &t,
        (0..60)
            .map(|i| {
                alert(
                    "DiskFull",
                    &format!("db-{i:02}"),
                    "firing",
                    &format!("disk {i}"),
                )
            })
            .collect(),
    )
    .await;
    let m = t.channel_message(ALERTS).await;
    let text = m.text();
    assert!(
        text.contains("🔥 P3 FIRING · DiskFull · api (60)"),
        "{text}"
    );
    assert_eq!(text.matches("🔴").count(), 10, "inline_max rows: {text}");
    assert!(
        text.contains("… and 50 more in the attached list"),
        "{text}"
    );
    assert_eq!(m.attachments.len(), 1);
    assert_eq!(m.attachments[0].filename, "diskfull-api-alerts.txt");
    let list = String::from_utf8(m.attachments[0].data.to_vec()).unwrap();
    assert_eq!(list.lines().count(), 60);
    assert!(
        list.lines().all(
            |l| l.starts_with("FIRING    alertname=DiskFull instance=db-")
                && l.contains(" service=api ")
                && l.contains("  disk ")
        ),
        "{list}"
    );
    t.finish().await;
}

both_databases!(
    past_summarize_over_the_full_list_is_attached_on,
    past_summarize_over_the_full_list_is_attached,
    past_summarize_over_the_full_list_is_attached_on_postgres
);

/// Discord answers 503 to every alert post for six seconds: the outbox backs off and
/// retries with the same nonces; after the outage every group is shown exactly
/// once, later changes edit those messages in place, and Klaxon stayed ready.
async fn a_discord_outage_of_several_seconds_loses_and_duplicates_nothing_on(db: Db) {
    let t = delivering(db).await;
    let path = format!("/channels/{ALERTS}/messages");
    let outage = Duration::from_secs(6);
    let began = Instant::now();
    t.fake.inject(FaultRule::Outage {
        path_contains: path.clone(),
        status: 503,
        until: began + outage,
    });
    for name in ["DiskFull", "HighLatency", "QueueBacklog"] {
        send(&t, vec![alert(name, "i-1", "firing", "during the outage")]).await;
    }
    let ready = format!("http://{}/readyz", t.bot().http_addr);
    assert_eq!(reqwest::get(&ready).await.expect("readyz").status(), 200);

    let mut titles = Vec::new();
    for _ in 0..3 {
        let m = t.channel_message(ALERTS).await;
        let text = m.text();
        let title = ["DiskFull", "HighLatency", "QueueBacklog"]
            .into_iter()
            .find(|n| text.contains(&format!("{n} · api (1)")))
            .unwrap_or_else(|| panic!("an alert group message: {text}"));
        titles.push(title);
    }
    assert!(
        began.elapsed() >= outage,
        "nothing got through during the outage"
    );
    titles.sort();
    assert_eq!(
        titles,
        ["DiskFull", "HighLatency", "QueueBacklog"],
        "each once"
    );
    let refused = t
        .fake
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with(&path) && r.status == 503)
        .count();
    assert!(refused >= 3, "the outage was hit ({refused} refused posts)");
    assert_eq!(t.fake.messages(ALERTS).len(), 3, "no duplicates");

    // After it: a change edits its group's message in place.
    send(
        &t,
        vec![alert("DiskFull", "i-1", "resolved", "during the outage")],
    )
    .await;
    let edit = t.channel_edit(ALERTS).await;
    assert!(edit.text().contains("RESOLVED"), "{}", edit.text());
    assert_eq!(t.fake.messages(ALERTS).len(), 3);
    assert_eq!(reqwest::get(&ready).await.expect("readyz").status(), 200);
    t.finish().await;
}

both_databases!(
    a_discord_outage_of_several_seconds_loses_and_duplicates_nothing_on,
    a_discord_outage_of_several_seconds_loses_and_duplicates_nothing,
    a_discord_outage_of_several_seconds_loses_and_duplicates_nothing_on_postgres
);

/// Discord accepts the requests but does not answer for a while: each one times out
/// (`discord.request_timeout_secs`), the outbox retries with the same nonce, and the
/// late-handled duplicates are not shown: one message.
async fn a_discord_that_stops_answering_is_timed_out_and_retried_without_duplicates_on(db: Db) {
    let t = Tester::builder()
        .db(db)
        .request_timeout(1)
        .intake(|i| i.generic_token = Secret::new(GENERIC_TOKEN))
        .alerts(|a| a.group_wait_secs = 0)
        .spawn()
        .await;
    let path = format!("/channels/{ALERTS}/messages");
    let began = Instant::now();
    t.fake.inject(FaultRule::Hang {
        path_contains: path.clone(),
        until: began + Duration::from_secs(4),
    });
    send(
        &t,
        vec![alert("Stalled", "i-1", "firing", "Discord is slow")],
    )
    .await;
    let m = t.channel_message(ALERTS).await;
    assert!(m.text().contains("Stalled · api (1)"), "{}", m.text());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let posts = t
        .fake
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with(&path))
        .count();
    assert!(posts >= 2, "retried after timing out ({posts} posts)");
    assert_eq!(t.fake.messages(ALERTS).len(), 1, "shown once");
    t.finish().await;
}

both_databases!(
    a_discord_that_stops_answering_is_timed_out_and_retried_without_duplicates_on,
    a_discord_that_stops_answering_is_timed_out_and_retried_without_duplicates,
    a_discord_that_stops_answering_is_timed_out_and_retried_without_duplicates_on_postgres
);

/// #17: a P1 pages the on-call role without a route; a route can opt out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_p1_pages_on_call_by_default_and_a_route_with_page_false_does_not() {
    let t = Tester::builder()
        .db(Db::Sqlite)
        .intake(|i| i.generic_token = Secret::new(GENERIC_TOKEN))
        .incidents(|c| c.on_call_role = Some(ON_CALL))
        .alerts(|a| {
            a.group_wait_secs = 1;
            a.routes.push(RouteConfig {
                matchers: [("team".to_string(), "quiet".to_string())]
                    .into_iter()
                    .collect(),
                page: Some(false),
                ..Default::default()
            });
        })
        .spawn()
        .await;
    send(
        &t,
        vec![
            json!({"name": "CheckoutDown", "service": "checkout", "severity": "critical",
                    "summary": "checkout 5xx at 80%"}),
        ],
    )
    .await;
    let page = t.channel_message(ALERTS).await;
    assert_eq!(page.content, format!("<@&{ON_CALL}>"), "exactly that role");
    assert!(page
        .text()
        .contains("🔥 P1 FIRING · CheckoutDown · checkout (1)"));
    assert!(page.text().contains("🔴 firing · since"), "{}", page.text());
    let allowed = page.allowed_mentions.clone().expect("allowed_mentions set");
    assert_eq!(allowed["roles"], json!([ON_CALL.to_string()]), "{allowed}");
    assert!(
        allowed["parse"].as_array().is_none_or(|p| p.is_empty()),
        "nothing else pings: {allowed}"
    );
    assert!(
        allowed["users"].as_array().is_none_or(|u| u.is_empty()),
        "{allowed}"
    );
    assert_eq!(page.flags & 4096, 0, "a page buzzes phones");

    send(
        &t,
        vec![
            json!({"name": "BatchLate", "service": "batch", "severity": "critical",
                    "summary": "nightly batch late", "labels": {"team": "quiet"}}),
        ],
    )
    .await;
    let quiet = t.channel_message(ALERTS).await;
    assert!(
        quiet
            .text()
            .contains("🔥 P1 FIRING · BatchLate · batch (1)"),
        "{}",
        quiet.text()
    );
    assert!(!quiet.content.contains("<@&"), "{}", quiet.content);
    let allowed = quiet
        .allowed_mentions
        .clone()
        .expect("allowed_mentions set");
    assert!(
        allowed["roles"].as_array().is_none_or(|r| r.is_empty()),
        "page = false pings nobody: {allowed}"
    );
    t.finish().await;
}
