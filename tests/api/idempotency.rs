//! Issue 9: `Idempotency-Key` on POST and PATCH (SPEC.md §12).

use rally::accounts::throttle::Limit;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, Resp, TestApp, read, spawn_app_with};
use crate::on_both_backends;

/// Sends `body` with an `Idempotency-Key`.
async fn keyed(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    key: &str,
    body: Value,
) -> Resp {
    let mut req = app
        .client
        .request(method, app.url(path))
        .header("Idempotency-Key", key)
        .json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    read(req.send().await.expect("request sent")).await
}

fn events_named(app: &TestApp, name: &str) -> i64 {
    app.count("events", &format!("name = '{name}'"))
}

async fn a_repeat_replays_the_first_response(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let body = json!({"name": "Once", "date": "2026-12-01"});
    let first = keyed(
        &app,
        Method::POST,
        "/api/events/",
        Some(&ada),
        "k-1",
        body.clone(),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    assert_eq!(first.header("idempotent-replayed"), None);
    let second = keyed(&app, Method::POST, "/api/events/", Some(&ada), "k-1", body).await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(second.text, first.text);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(second.header("content-type"), first.header("content-type"));
    assert_eq!(second.header("location"), first.header("location"));
    // The app's own headers are still there on a replay.
    assert_eq!(second.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(events_named(&app, "Once"), 1);

    // The same key with another body: 422, and nothing created.
    let other = keyed(
        &app,
        Method::POST,
        "/api/events/",
        Some(&ada),
        "k-1",
        json!({"name": "Twice", "date": "2026-12-01"}),
    )
    .await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        other.body,
        json!({"detail": "This Idempotency-Key was used with a different request."})
    );
    assert_eq!(events_named(&app, "Twice"), 0);

    // Another caller's key of the same name is their own.
    let (_, bob) = app.user("bob").await;
    let bobs = keyed(
        &app,
        Method::POST,
        "/api/events/",
        Some(&bob),
        "k-1",
        json!({"name": "Once", "date": "2026-12-01"}),
    )
    .await;
    assert_eq!(bobs.status, StatusCode::CREATED);
    assert_eq!(bobs.header("idempotent-replayed"), None);
    assert_ne!(bobs.body["id"], first.body["id"]);
    assert_eq!(events_named(&app, "Once"), 2);

    // Without the header, nothing changes: two requests, two events.
    for _ in 0..2 {
        let r = app
            .post(
                "/api/events/",
                Some(&ada),
                json!({"name": "Plain", "date": "2026-12-01"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    assert_eq!(events_named(&app, "Plain"), 2);
}

async fn patch_and_answers_replay(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (_, bob) = app.user("bob").await;
    let event = app
        .post(
            "/api/events/",
            Some(&ada),
            json!({"name": "E", "date": "2026-12-01"}),
        )
        .await;
    let id = event.body["id"].as_str().expect("id").to_string();
    let path = format!("/api/events/{id}/");
    let first = keyed(
        &app,
        Method::PATCH,
        &path,
        Some(&ada),
        "p",
        json!({"name": "F"}),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    // Renamed out of band: a replay still shows the first response, not the event now.
    app.sql(&format!("UPDATE events SET name = 'G' WHERE id = '{id}'"));
    let again = keyed(
        &app,
        Method::PATCH,
        &path,
        Some(&ada),
        "p",
        json!({"name": "F"}),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.text, first.text);
    assert_eq!(again.header("etag"), first.header("etag"));
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(events_named(&app, "G"), 1);

    let answer = format!("/api/events/{id}/change_attendee_status/");
    let going = json!({"status": "Going"});
    let a = keyed(&app, Method::POST, &answer, Some(&bob), "a", going.clone()).await;
    let b = keyed(&app, Method::POST, &answer, Some(&bob), "a", going).await;
    assert_eq!(a.status, b.status);
    assert_eq!(a.text, b.text);
    assert_eq!(b.header("idempotent-replayed"), Some("true"));
}

async fn client_errors_are_stored_too(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    // 400: stored, and replayed even once the request would now pass.
    let bad = keyed(
        &app,
        Method::POST,
        "/api/events/",
        Some(&ada),
        "e",
        json!({}),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let again = keyed(
        &app,
        Method::POST,
        "/api/events/",
        Some(&ada),
        "e",
        json!({}),
    )
    .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(again.text, bad.text);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    // 404.
    let path = "/api/events/00000000-0000-0000-0000-000000000000/";
    let missing = keyed(
        &app,
        Method::PATCH,
        path,
        Some(&ada),
        "m",
        json!({"name": "x"}),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let again = keyed(
        &app,
        Method::PATCH,
        path,
        Some(&ada),
        "m",
        json!({"name": "x"}),
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
}

async fn bad_keys_are_400(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let long = "k".repeat(256);
    for key in ["", "has space", long.as_str()] {
        let r = keyed(
            &app,
            Method::POST,
            "/api/events/",
            Some(&ada),
            key,
            json!({"name": "Bad", "date": "2026-12-01"}),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{key:?}");
        assert!(r.body["Idempotency-Key"].is_array(), "{}", r.text);
    }
    assert_eq!(events_named(&app, "Bad"), 0);
    // GET ignores the header.
    let r = app
        .client
        .get(app.url("/api/events/"))
        .header("Idempotency-Key", "has space")
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), StatusCode::OK);
}

async fn concurrent_repeats_run_once(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let body = json!({"name": "Race", "date": "2026-12-01"});
    let sends = (0..5).map(|_| {
        keyed(
            &app,
            Method::POST,
            "/api/events/",
            Some(&ada),
            "race",
            body.clone(),
        )
    });
    let all = futures::future::join_all(sends).await;
    assert_eq!(events_named(&app, "Race"), 1);
    let created: Vec<&Resp> = all
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .collect();
    assert!(!created.is_empty());
    for r in &all {
        match r.status {
            StatusCode::CREATED => assert_eq!(r.text, created[0].text),
            StatusCode::CONFLICT => {
                assert_eq!(r.header("retry-after"), Some("1"));
                assert_eq!(
                    r.body,
                    json!({"detail": "A request with this Idempotency-Key is still in progress."})
                );
            }
            other => panic!("unexpected {other}: {}", r.text),
        }
    }
}

async fn expired_keys_run_again(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let body = json!({"name": "Daily", "date": "2026-12-01"});
    let first = keyed(
        &app,
        Method::POST,
        "/api/events/",
        Some(&ada),
        "d",
        body.clone(),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED);
    app.sql("UPDATE idempotency_keys SET expires_at = created_at");
    let second = keyed(&app, Method::POST, "/api/events/", Some(&ada), "d", body).await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(second.header("idempotent-replayed"), None);
    assert_ne!(second.body["id"], first.body["id"]);
    assert_eq!(events_named(&app, "Daily"), 2);
}

async fn anonymous_keys_are_scoped_to_the_path(app: TestApp) {
    let body = json!({"username": "eve", "email": "eve@example.com", "password": PASSWORD});
    let a = keyed(&app, Method::POST, "/api/users/", None, "reg", body.clone()).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let b = keyed(&app, Method::POST, "/api/users/", None, "reg", body).await;
    assert_eq!(b.status, StatusCode::CREATED);
    assert_eq!(b.text, a.text);
    assert_eq!(b.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.count("users", "username = 'eve'"), 1);
    // The same key on another path is another key.
    let login = json!({"username": "eve", "password": PASSWORD});
    let t = keyed(&app, Method::POST, "/api/token/", None, "reg", login).await;
    assert_eq!(t.status, StatusCode::OK);
    assert_eq!(t.header("idempotent-replayed"), None);
}

async fn the_schema_documents_the_header(app: TestApp) {
    let doc = app.get("/api/schema/", None).await.body;
    for (path, method) in [
        ("/api/events/", "post"),
        ("/api/events/{id}/", "patch"),
        ("/api/events/{id}/change_attendee_status/", "post"),
        ("/api/users/", "post"),
    ] {
        let op = &doc["paths"][path][method];
        let params = op["parameters"].as_array().expect("parameters");
        assert!(
            params
                .iter()
                .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"),
            "{path} {method}"
        );
        assert!(op["responses"].get("422").is_some(), "{path} {method}");
        let conflict = op["responses"]["409"]["description"].as_str().expect("409");
        assert!(conflict.contains("Idempotency-Key"), "{path} {method}");
    }
    // The event's own 409 is kept beside it.
    let answer = &doc["paths"]["/api/events/{id}/change_attendee_status/"]["post"];
    let conflict = answer["responses"]["409"]["description"]
        .as_str()
        .expect("409");
    assert!(conflict.contains("cancelled"), "{conflict}");
    assert!(
        doc["paths"]["/api/events/"]["get"]
            .get("parameters")
            .is_none_or(|p| {
                p.as_array()
                    .is_some_and(|ps| ps.iter().all(|p| p["name"] != "Idempotency-Key"))
            })
    );
}

async fn running_and_abandoned_claims(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let body = json!({"name": "Held", "date": "2026-12-01"});
    let first = keyed(
        &app,
        Method::POST,
        "/api/events/",
        Some(&ada),
        "h",
        body.clone(),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED);
    // As if the first request were still running: 409, and nothing runs.
    app.sql("UPDATE idempotency_keys SET state = 'in_progress'");
    let r = keyed(
        &app,
        Method::POST,
        "/api/events/",
        Some(&ada),
        "h",
        body.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(events_named(&app, "Held"), 1);
    // A claim left long ago by a process that died is taken over.
    app.sql("UPDATE idempotency_keys SET created_at = '2000-01-01 00:00:00'");
    let r = keyed(&app, Method::POST, "/api/events/", Some(&ada), "h", body).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(events_named(&app, "Held"), 2);
    assert_eq!(app.count("idempotency_keys", "state = 'done'"), 1);
}

async fn oversized_bodies_and_repeated_headers(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let big = json!({"name": "x".repeat(70 * 1024), "date": "2026-12-01"});
    let r = keyed(&app, Method::POST, "/api/events/", Some(&ada), "big", big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(app.count("idempotency_keys", "1 = 1"), 0);
    let r = app
        .client
        .post(app.url("/api/events/"))
        .bearer_auth(&ada)
        .header("Idempotency-Key", "a")
        .header("Idempotency-Key", "b")
        .json(&json!({"name": "Two", "date": "2026-12-01"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(events_named(&app, "Two"), 0);
}

/// A method the route does not serve is the router's 405, whatever the key has seen:
/// found by schemathesis (PATCH to a POST-only route after the key was used elsewhere).
async fn unrouted_methods_are_405_and_claim_nothing(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let body = json!({"email": "ada@example.com"});
    let first = keyed(
        &app,
        Method::POST,
        "/api/users/password_reset/",
        Some(&ada),
        "k-405",
        body.clone(),
    )
    .await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text);
    for path in ["/api/users/password_reset/", "/api/token/", "/api/events/"] {
        let r = keyed(&app, Method::PATCH, path, Some(&ada), "k-405", body.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "PATCH {path}: {}",
            r.text
        );
    }
    let r = keyed(
        &app,
        Method::POST,
        "/api/nowhere/",
        Some(&ada),
        "k-404",
        body.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(app.count("idempotency_keys", "idem_key IN ('k-404')"), 0);
    // The staff PATCH on /api/users/{id}/ is still a route: a keyed PATCH there is claimed.
    let r = keyed(
        &app,
        Method::PATCH,
        "/api/users/1/",
        Some(&ada),
        "k-staff",
        json!({}),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(app.count("idempotency_keys", "idem_key = 'k-staff'"), 1);
}

on_both_backends!(
    unrouted_methods_are_405_and_claim_nothing,
    the_schema_documents_the_header,
    running_and_abandoned_claims,
    oversized_bodies_and_repeated_headers,
    a_repeat_replays_the_first_response,
    patch_and_answers_replay,
    client_errors_are_stored_too,
    bad_keys_are_400,
    concurrent_repeats_run_once,
    expired_keys_run_again,
    anonymous_keys_are_scoped_to_the_path,
);

/// A 429 is not stored: once the throttle lets go, the same key runs.
async fn throttled_responses_are_not_stored(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| {
        s.login_failures_per_username = Limit::parse("1/1h").expect("limit");
    })
    .await
    else {
        return eprintln!("skipped: TEST_DATABASE_URL is not set");
    };
    app.register("ada").await;
    let wrong = json!({"username": "ada", "password": "wrong-password"});
    let r = app.post("/api/token/", None, wrong).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let login = json!({"username": "ada", "password": PASSWORD});
    let r = keyed(&app, Method::POST, "/api/token/", None, "t", login.clone()).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert_eq!(app.count("idempotency_keys", "1 = 1"), 0);
    let r = keyed(&app, Method::POST, "/api/token/", None, "t", login).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.header("idempotent-replayed"), None);
}

mod throttled_responses_are_not_stored {
    use crate::helpers::Backend;

    #[actix_web::test]
    async fn sqlite() {
        super::throttled_responses_are_not_stored(Backend::Sqlite).await;
    }

    #[actix_web::test]
    async fn postgres() {
        super::throttled_responses_are_not_stored(Backend::Postgres).await;
    }
}
