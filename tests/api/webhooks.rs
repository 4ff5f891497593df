//! Issue 9: webhooks, delivered to a real HTTP receiver on loopback: registration rules,
//! signatures, each event type's payload, retries, ordering per event, 410, redelivery.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::TestApp;
use crate::on_both_backends;

/// One request the receiver got, and what it answered.
#[derive(Debug, Clone)]
struct Hit {
    id: String,
    timestamp: String,
    signature: String,
    content_type: String,
    user_agent: String,
    body: String,
    json: Value,
    answered: u16,
}

#[derive(Default)]
struct Script {
    hits: Vec<Hit>,
    /// Answer 500 to this many more requests.
    fail_next: usize,
    /// Answer 410 to everything.
    gone: bool,
    /// Answer 500 to every delivery of this type.
    fail_type: Option<String>,
}

#[derive(Clone)]
struct Receiver {
    url: String,
    script: Arc<Mutex<Script>>,
}

impl Receiver {
    fn hits(&self) -> Vec<Hit> {
        self.script.lock().unwrap().hits.clone()
    }

    /// The requests answered 2xx, in arrival order.
    fn delivered(&self) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.answered == 200)
            .collect()
    }

    fn fail_next(&self, n: usize) {
        self.script.lock().unwrap().fail_next = n;
    }

    fn fail_type(&self, kind: Option<&str>) {
        self.script.lock().unwrap().fail_type = kind.map(str::to_string);
    }

    fn gone(&self) {
        self.script.lock().unwrap().gone = true;
    }
}

fn header(req: &HttpRequest, name: &str) -> String {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// An HTTP server on 127.0.0.1 that records every request and answers as scripted.
fn receiver() -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let script = Arc::new(Mutex::new(Script::default()));
    let shared = script.clone();
    let server = HttpServer::new(move || {
        let shared = shared.clone();
        App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
            let shared = shared.clone();
            async move {
                let mut script = shared.lock().unwrap();
                let body = String::from_utf8_lossy(&body).into_owned();
                let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let failing_type = script
                    .fail_type
                    .as_deref()
                    .is_some_and(|t| json["type"] == t);
                let answered = if script.gone {
                    410
                } else if failing_type {
                    500
                } else if script.fail_next > 0 {
                    script.fail_next -= 1;
                    500
                } else {
                    200
                };
                script.hits.push(Hit {
                    id: header(&req, "Rally-Webhook-Id"),
                    timestamp: header(&req, "Rally-Webhook-Timestamp"),
                    signature: header(&req, "Rally-Webhook-Signature"),
                    content_type: header(&req, "Content-Type"),
                    user_agent: header(&req, "User-Agent"),
                    json,
                    body,
                    answered,
                });
                HttpResponse::build(actix_web::http::StatusCode::from_u16(answered).unwrap())
                    .finish()
            }
        }))
    })
    .workers(1)
    .listen(listener)
    .expect("listen")
    .run();
    actix_web::rt::spawn(server);
    Receiver {
        url: format!("http://127.0.0.1:{port}/hook"),
        script,
    }
}

/// Waits until `f` holds, for at most ten seconds.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const ALL: [&str; 6] = [
    "event.created",
    "event.updated",
    "event.cancelled",
    "event.deleted",
    "attendance.changed",
    "waitlist.promoted",
];

/// Registers `url` for `events`; returns (id, secret).
async fn register(app: &TestApp, token: &str, url: &str, events: &[&str]) -> (String, String) {
    let r = app
        .post(
            "/api/webhooks/",
            Some(token),
            json!({"url": url, "events": events}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    (
        r.body["id"].as_str().unwrap().to_string(),
        r.body["secret"].as_str().unwrap().to_string(),
    )
}

fn verify(secret: &str, hit: &Hit) {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{}.{}", hit.timestamp, hit.body).as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        hit.signature,
        format!("v1={expected}"),
        "signature of {hit:?}"
    );
    let ts: i64 = hit.timestamp.parse().expect("unix seconds");
    assert!((chrono::Utc::now().timestamp() - ts).abs() < 60);
    assert_eq!(hit.content_type, "application/json");
    assert_eq!(hit.user_agent, "rally-webhooks/1");
    assert_eq!(hit.json["id"].as_str(), Some(hit.id.as_str()));
}

fn types(hits: &[Hit]) -> Vec<String> {
    hits.iter()
        .map(|h| h.json["type"].as_str().unwrap_or("?").to_string())
        .collect()
}

async fn registration_is_validated(mut app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (_, bob) = app.user("bob").await;
    let post = |body: Value| {
        let app = &app;
        let ada = ada.clone();
        async move { app.post("/api/webhooks/", Some(&ada), body).await }
    };
    let r = post(json!({"url": "http://hooks.example.com/x", "events": ["event.created"]})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body["url"].is_array(), "{}", r.text);
    let r = post(json!({"url": "https://10.1.2.3/x", "events": ["event.created"]})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = post(
        json!({"url": "https://hooks.example.com/x", "events": ["event.created", "event.nope"]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.contains("event.nope"), "{}", r.text);
    let r = post(json!({"url": "https://hooks.example.com/x", "events": []})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = post(json!({"url": "https://hooks.example.com/x"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = app
        .post(
            "/api/webhooks/",
            None,
            json!({"url": "https://hooks.example.com/x", "events": ["event.created"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // https anywhere public; http on loopback because the test settings allow it.
    let (id, secret) = register(&app, &ada, "https://hooks.example.com/x", &ALL).await;
    assert!(secret.len() >= 43, "{secret}");
    let (loopback, _) = register(&app, &ada, "http://127.0.0.1:9/hook", &["event.created"]).await;

    let list = app.get("/api/webhooks/", Some(&ada)).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body.as_array().unwrap().len(), 2);
    assert!(!list.text.contains(&secret), "secrets are shown once");
    let one = app.get(&format!("/api/webhooks/{id}/"), Some(&ada)).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.body["events"], json!(ALL));
    assert!(one.body.get("secret").is_none());

    // Someone else's webhook does not exist for them.
    assert!(
        app.get("/api/webhooks/", Some(&bob))
            .await
            .body
            .as_array()
            .unwrap()
            .is_empty()
    );
    for (method, path, body) in [
        (Method::GET, format!("/api/webhooks/{id}/"), None),
        (
            Method::PATCH,
            format!("/api/webhooks/{id}/"),
            Some(json!({"active": false})),
        ),
        (Method::DELETE, format!("/api/webhooks/{id}/"), None),
        (Method::GET, format!("/api/webhooks/{id}/deliveries/"), None),
        (
            Method::POST,
            format!("/api/webhooks/{id}/deliveries/1/redeliver/"),
            Some(json!({})),
        ),
        (Method::GET, "/api/webhooks/not-a-uuid/".to_string(), None),
    ] {
        let r = app.send(method.clone(), &path, Some(&bob), body).await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "{method} {path}: {}",
            r.text
        );
    }

    // PATCH: a bad type is named; pausing and resuming.
    let r = app
        .send(
            Method::PATCH,
            &format!("/api/webhooks/{id}/"),
            Some(&ada),
            Some(json!({"events": ["nope"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.contains("nope"));
    let r = app
        .send(
            Method::PATCH,
            &format!("/api/webhooks/{id}/"),
            Some(&ada),
            Some(json!({"active": false, "events": ["event.deleted"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["active"], json!(false));
    assert_eq!(r.body["events"], json!(["event.deleted"]));
    let r = app
        .send(
            Method::PATCH,
            &format!("/api/webhooks/{id}/"),
            Some(&ada),
            Some(json!({"active": true})),
        )
        .await;
    assert_eq!(r.body["active"], json!(true));
    assert_eq!(r.body["disabled_reason"], Value::Null);
    let r = app
        .send(
            Method::DELETE,
            &format!("/api/webhooks/{loopback}/"),
            Some(&ada),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    // Without the setting, loopback http is refused.
    app.restart(|s| s.webhooks.allow_http_loopback = false)
        .await;
    let r = app
        .post(
            "/api/webhooks/",
            Some(&ada),
            json!({"url": "http://127.0.0.1:9/hook", "events": ["event.created"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
}

async fn every_event_arrives_signed_and_in_order(app: TestApp) {
    let hook = receiver();
    let (ada_id, ada) = app.user("ada").await;
    let (bob_id, bob) = app.user("bob").await;
    let (carl_id, carl) = app.user("carl").await;
    let (_, secret) = register(&app, &ada, &hook.url, &ALL).await;

    let event = app
        .create_event(
            &ada,
            json!({"name": "Meetup", "date": "2026-12-01", "capacity": 1}),
        )
        .await;
    let id = event["id"].as_str().unwrap().to_string();
    assert_eq!(app.answer(&bob, &id, "Going").await.status, StatusCode::OK);
    assert_eq!(
        app.answer(&carl, &id, "Going").await.body["status"],
        "Waitlisted"
    );
    assert_eq!(
        app.answer(&bob, &id, "Not Going").await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.patch_event(&ada, &id, json!({"name": "Meetup 2"}))
            .await
            .status,
        StatusCode::OK
    );
    // A PATCH that changes nothing is not an update.
    assert_eq!(
        app.patch_event(&ada, &id, json!({"name": "Meetup 2"}))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.patch_event(&ada, &id, json!({"status": "cancelled"}))
            .await
            .status,
        StatusCode::OK
    );
    let r = app
        .send(
            Method::DELETE,
            &format!("/api/events/{id}/"),
            Some(&ada),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    eventually("nine deliveries", || hook.delivered().len() >= 9).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hits = hook.delivered();
    assert_eq!(
        types(&hits),
        [
            "event.created",
            "attendance.changed",
            "attendance.changed",
            "attendance.changed",
            "waitlist.promoted",
            "event.updated",
            "event.updated",
            "event.cancelled",
            "event.deleted",
        ]
    );
    for hit in &hits {
        verify(&secret, hit);
        assert!(hit.json["created_at"].as_str().is_some());
    }
    let data = |i: usize| hits[i].json["data"].clone();
    assert_eq!(data(0)["id"], json!(id));
    assert_eq!(data(0)["name"], "Meetup");
    assert_eq!(data(0)["organizer"]["id"], json!(ada_id));
    assert_eq!(
        data(1),
        json!({"event_id": id, "user": {"id": bob_id, "username": "bob"}, "old_status": null, "new_status": "Going"})
    );
    assert_eq!(data(2)["new_status"], "Waitlisted");
    assert_eq!(data(2)["user"]["id"], json!(carl_id));
    assert_eq!(data(3)["old_status"], "Going");
    assert_eq!(data(3)["new_status"], "Not Going");
    assert_eq!(
        data(4),
        json!({"event_id": id, "user": {"id": carl_id, "username": "carl"}, "old_status": "Waitlisted", "new_status": "Going"})
    );
    assert_eq!(data(5)["name"], "Meetup 2");
    assert_eq!(data(5)["going_count"], json!(1));
    assert_eq!(data(6)["status"], "cancelled");
    assert_eq!(data(7)["status"], "cancelled");
    assert_eq!(data(8)["id"], json!(id));
    assert_eq!(data(8)["name"], "Meetup 2");
    // Every delivery has its own id.
    let mut ids: Vec<_> = hits.iter().map(|h| h.id.clone()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 9);
}

async fn failed_attempts_are_retried_and_logged(app: TestApp) {
    let hook = receiver();
    hook.fail_next(2);
    let (_, ada) = app.user("ada").await;
    let (webhook, secret) = register(&app, &ada, &hook.url, &["event.created"]).await;
    app.create_event(&ada, json!({"name": "Retry me", "date": "2026-12-01"}))
        .await;
    eventually("delivered after two 500s", || hook.delivered().len() == 1).await;
    let hits = hook.hits();
    assert_eq!(
        hits.iter().map(|h| h.answered).collect::<Vec<_>>(),
        [500, 500, 200]
    );
    // The same delivery each time, signed afresh.
    assert!(
        hits.iter()
            .all(|h| h.id == hits[0].id && h.body == hits[0].body)
    );
    for hit in &hits {
        verify(&secret, hit);
    }
    let log = app
        .get(&format!("/api/webhooks/{webhook}/deliveries/"), Some(&ada))
        .await;
    assert_eq!(log.status, StatusCode::OK);
    assert_eq!(log.header("X-Total-Count"), Some("1"));
    let entry = &log.body[0];
    assert_eq!(entry["attempts"], json!(3));
    assert_eq!(entry["last_status"], json!(200));
    assert_eq!(entry["event_type"], "event.created");
    assert!(entry["delivered_at"].is_string());
    assert_eq!(entry["failed_at"], Value::Null);
    let r = app
        .get(
            &format!("/api/webhooks/{webhook}/deliveries/?limit=0"),
            Some(&ada),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

async fn updates_to_one_event_arrive_in_order(app: TestApp) {
    let hook = receiver();
    hook.fail_next(1);
    let (_, ada) = app.user("ada").await;
    register(&app, &ada, &hook.url, &["event.created", "event.updated"]).await;
    let event = app
        .create_event(&ada, json!({"name": "v0", "date": "2026-12-01"}))
        .await;
    let id = event["id"].as_str().unwrap().to_string();
    for name in ["v1", "v2", "v3"] {
        let r = app.patch_event(&ada, &id, json!({ "name": name })).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    eventually("four deliveries", || hook.delivered().len() == 4).await;
    let names: Vec<_> = hook
        .hits()
        .iter()
        .map(|h| {
            (
                h.json["data"]["name"].as_str().unwrap().to_string(),
                h.answered,
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("v0".to_string(), 500),
            ("v0".to_string(), 200),
            ("v1".to_string(), 200),
            ("v2".to_string(), 200),
            ("v3".to_string(), 200),
        ]
    );
}

async fn gone_disables_the_webhook(app: TestApp) {
    let hook = receiver();
    hook.gone();
    let (_, ada) = app.user("ada").await;
    let (webhook, _) = register(&app, &ada, &hook.url, &ALL).await;
    app.create_event(&ada, json!({"name": "Gone", "date": "2026-12-01"}))
        .await;
    let path = format!("/api/webhooks/{webhook}/");
    let start = Instant::now();
    loop {
        let r = app.get(&path, Some(&ada)).await;
        if r.body["active"] == json!(false) {
            assert!(r.body["disabled_reason"].as_str().unwrap().contains("410"));
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "not disabled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(hook.hits().len(), 1);
    let log = app.get(&format!("{path}deliveries/"), Some(&ada)).await;
    assert_eq!(log.body[0]["last_status"], json!(410));
    assert!(log.body[0]["failed_at"].is_string());
    // Nothing more is queued for it while it is disabled.
    app.create_event(&ada, json!({"name": "Later", "date": "2026-12-01"}))
        .await;
    assert_eq!(app.count("webhook_deliveries", "1 = 1"), 1);
    // Redelivery to a disabled endpoint is refused until it is activated again.
    let delivery = log.body[0]["id"].as_i64().unwrap();
    let redeliver = format!("{path}deliveries/{delivery}/redeliver/");
    assert_eq!(
        app.post(&redeliver, Some(&ada), json!({})).await.status,
        StatusCode::CONFLICT
    );
    let r = app
        .send(
            Method::PATCH,
            &path,
            Some(&ada),
            Some(json!({"active": true})),
        )
        .await;
    assert_eq!(r.body["disabled_reason"], Value::Null);
}

async fn redeliver_sends_the_same_payload_again(app: TestApp) {
    let hook = receiver();
    let (_, ada) = app.user("ada").await;
    let (webhook, secret) = register(&app, &ada, &hook.url, &["event.created"]).await;
    app.create_event(&ada, json!({"name": "Again", "date": "2026-12-01"}))
        .await;
    eventually("first delivery", || hook.delivered().len() == 1).await;
    let log = app
        .get(&format!("/api/webhooks/{webhook}/deliveries/"), Some(&ada))
        .await;
    let delivery = log.body[0]["id"].as_i64().unwrap();
    let r = app
        .post(
            &format!("/api/webhooks/{webhook}/deliveries/{delivery}/redeliver/"),
            Some(&ada),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_ne!(r.body["id"], json!(delivery));
    eventually("second delivery", || hook.delivered().len() == 2).await;
    let hits = hook.delivered();
    assert_eq!(hits[0].body, hits[1].body);
    assert_eq!(hits[0].id, hits[1].id);
    verify(&secret, &hits[1]);
    let r = app
        .post(
            &format!("/api/webhooks/{webhook}/deliveries/999999/redeliver/"),
            Some(&ada),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let log = app
        .get(
            &format!("/api/webhooks/{webhook}/deliveries/?limit=1"),
            Some(&ada),
        )
        .await;
    assert_eq!(log.body.as_array().unwrap().len(), 1);
    assert_eq!(log.header("X-Total-Count"), Some("2"));
}

async fn organizers_without_webhooks_cost_no_rows(mut app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (_, bob) = app.user("bob").await;
    // Subscribed to something else: still no rows for these changes.
    register(
        &app,
        &bob,
        "https://hooks.example.com/x",
        &["event.deleted"],
    )
    .await;
    let event = app
        .create_event(&ada, json!({"name": "Quiet", "date": "2026-12-01"}))
        .await;
    let id = event["id"].as_str().unwrap().to_string();
    app.patch_event(&ada, &id, json!({"name": "Quieter"})).await;
    app.answer(&bob, &id, "Going").await;
    let other = app
        .create_event(&bob, json!({"name": "Bob's", "date": "2026-12-01"}))
        .await;
    app.patch_event(
        &bob,
        other["id"].as_str().unwrap(),
        json!({"name": "Bob's 2"}),
    )
    .await;
    assert_eq!(app.count("webhook_deliveries", "1 = 1"), 0);

    // With the worker off, deliveries wait in the table; a process with it on sends them.
    let hook = receiver();
    app.restart(|s| s.webhooks.worker = false).await;
    register(&app, &ada, &hook.url, &["event.updated"]).await;
    app.patch_event(&ada, &id, json!({"name": "Loud"})).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(hook.hits().is_empty());
    assert_eq!(app.count("webhook_deliveries", "delivered_at IS NULL"), 1);
    app.restart(|s| s.webhooks.worker = true).await;
    eventually("sent after the restart", || hook.delivered().len() == 1).await;
}

/// A delivery that is not accepted within WEBHOOK_MAX_AGE fails, and then no longer holds
/// back the changes queued behind it.
async fn deliveries_give_up_after_max_age(mut app: TestApp) {
    app.restart(|s| s.webhooks.max_age = Duration::from_millis(250))
        .await;
    let hook = receiver();
    hook.fail_type(Some("event.created"));
    let (_, ada) = app.user("ada").await;
    let (webhook, _) = register(&app, &ada, &hook.url, &["event.created", "event.updated"]).await;
    let event = app
        .create_event(&ada, json!({"name": "v0", "date": "2026-12-01"}))
        .await;
    let id = event["id"].as_str().unwrap().to_string();
    app.patch_event(&ada, &id, json!({"name": "v1"})).await;
    eventually("the update after the failed create", || {
        hook.delivered().len() == 1
    })
    .await;
    let hits = hook.hits();
    assert!(hits.len() >= 2, "{hits:?}");
    // Every attempt at the create came before the update.
    assert!(
        hits[..hits.len() - 1]
            .iter()
            .all(|h| h.json["type"] == "event.created")
    );
    assert_eq!(hits.last().unwrap().json["data"]["name"], "v1");
    let log = app
        .get(&format!("/api/webhooks/{webhook}/deliveries/"), Some(&ada))
        .await;
    let created = &log.body[1];
    assert_eq!(created["event_type"], "event.created");
    assert!(created["failed_at"].is_string(), "{created}");
    assert_eq!(created["delivered_at"], Value::Null);
    assert_eq!(created["last_status"], json!(500));
    assert!(created["attempts"].as_i64().unwrap() >= 1);
}

/// A larger capacity promotes from the waitlist (in the update's transaction); a change
/// refused by If-Match writes no delivery.
async fn promotions_by_update_and_refused_changes(app: TestApp) {
    let hook = receiver();
    let (_, ada) = app.user("ada").await;
    let (_, bob) = app.user("bob").await;
    let (carl_id, carl) = app.user("carl").await;
    let event = app
        .create_event(
            &ada,
            json!({"name": "Small", "date": "2026-12-01", "capacity": 1}),
        )
        .await;
    let id = event["id"].as_str().unwrap().to_string();
    app.answer(&bob, &id, "Going").await;
    app.answer(&carl, &id, "Going").await;
    register(
        &app,
        &ada,
        &hook.url,
        &["waitlist.promoted", "event.updated"],
    )
    .await;
    let r = app
        .client
        .patch(app.url(&format!("/api/events/{id}/")))
        .bearer_auth(&ada)
        .header("If-Match", "\"stale\"")
        .json(&json!({"capacity": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(app.count("webhook_deliveries", "1 = 1"), 0);
    assert_eq!(
        app.patch_event(&ada, &id, json!({"capacity": 2}))
            .await
            .status,
        StatusCode::OK
    );
    eventually("promotion and update", || hook.delivered().len() == 2).await;
    let hits = hook.delivered();
    let promoted = hits
        .iter()
        .find(|h| h.json["type"] == "waitlist.promoted")
        .unwrap();
    assert_eq!(promoted.json["data"]["user"]["id"], json!(carl_id));
    let updated = hits
        .iter()
        .find(|h| h.json["type"] == "event.updated")
        .unwrap();
    assert_eq!(updated.json["data"]["capacity"], json!(2));
    assert_eq!(updated.json["data"]["going_count"], json!(2));
}

on_both_backends!(
    deliveries_give_up_after_max_age,
    promotions_by_update_and_refused_changes,
    registration_is_validated,
    every_event_arrives_signed_and_in_order,
    failed_attempts_are_retried_and_logged,
    updates_to_one_event_arrive_in_order,
    gone_disables_the_webhook,
    redeliver_sends_the_same_payload_again,
    organizers_without_webhooks_cost_no_rows,
);
