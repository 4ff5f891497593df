//! Hostile input: forged tokens, timing of unknown usernames, injection strings and
//! oversized values in every field and parameter.

use std::time::{Duration, Instant};

use base64::Engine;
use rally::accounts::throttle::Limit;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, Resp, TestApp, spawn_app_with};
use crate::on_both_backends;

on_both_backends!(
    tampered_token_payload_is_refused,
    injection_and_huge_values_never_reach_sql_or_leak_internals,
);

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

async fn tampered_token_payload_is_refused(app: TestApp) {
    app.register("ada").await;
    let (bob_id, _) = app.user("bob").await;
    let (access, _) = app.login("ada").await;
    let parts: Vec<&str> = access.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    claims["user_id"] = json!(bob_id.to_string());
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(claims.to_string()),
        parts[2]
    );
    let r = app.get("/api/users/me/", Some(&forged)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["code"], "token_not_valid");
    // A longer lifetime, same trick.
    let mut claims: Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    claims["exp"] = json!(4_102_444_800i64);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(claims.to_string()),
        parts[2]
    );
    assert_eq!(
        app.get("/api/users/me/", Some(&forged)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// The body must be JSON and must not carry internals.
fn assert_clean(r: &Resp, what: &str) {
    assert!(r.status.as_u16() < 500, "{what}: {} {}", r.status, r.text);
    if !r.text.is_empty() {
        assert!(
            r.body.is_object() || r.body.is_array(),
            "{what}: not JSON: {}",
            r.text
        );
    }
    let lower = r.text.to_lowercase();
    // Markers of internals; none occurs in the hostile values themselves (which a
    // validation message may quote back, as DRF does).
    for leak in [
        "panicked",
        "diesel",
        "sqlite",
        "postgres",
        "syntax error",
        "from events",
        "from \"events\"",
        "from users",
        "backtrace",
        "src/",
        "rally::",
    ] {
        assert!(!lower.contains(leak), "{what}: leaks {leak:?}: {}", r.text);
    }
}

async fn injection_and_huge_values_never_reach_sql_or_leak_internals(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let event = app
        .post(
            "/api/events/",
            Some(&ada),
            json!({"name": "Target", "date": "2026-12-01"}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let hostile = [
        "'; DROP TABLE users; --".to_string(),
        "\" OR 1=1 --".to_string(),
        "%' OR '1'='1".to_string(),
        "\\'; SELECT pg_sleep(5); --".to_string(),
        "x".repeat(10_000),
        "é🎉".repeat(5_000),
        "\u{0}".to_string(),
    ];
    for value in &hostile {
        let v = json!(value);
        let cases: Vec<(Method, String, Option<&str>, Value)> = vec![
            (
                Method::POST,
                "/api/users/".into(),
                None,
                json!({"username": v, "email": v, "password": v}),
            ),
            (
                Method::POST,
                "/api/token/".into(),
                None,
                json!({"username": v, "password": v}),
            ),
            (
                Method::POST,
                "/api/token/refresh/".into(),
                None,
                json!({"refresh": v}),
            ),
            (
                Method::POST,
                "/api/token/verify/".into(),
                None,
                json!({"token": v}),
            ),
            (
                Method::POST,
                "/api/token/blacklist/".into(),
                None,
                json!({"refresh": v}),
            ),
            (
                Method::POST,
                "/api/events/".into(),
                Some(&ada),
                json!({"name": v, "date": v}),
            ),
            (
                Method::POST,
                "/api/events/".into(),
                Some(&ada),
                json!({"name": v, "date": "2026-12-01"}),
            ),
            (
                Method::PATCH,
                format!("/api/events/{event}/"),
                Some(&ada),
                json!({"name": v}),
            ),
            (
                Method::PUT,
                format!("/api/events/{event}/"),
                Some(&ada),
                json!({"name": v, "date": v}),
            ),
            (
                Method::POST,
                format!("/api/events/{event}/change_attendee_status/"),
                Some(&ada),
                json!({"status": v}),
            ),
            (
                Method::DELETE,
                "/api/users/me/".into(),
                Some(&ada),
                json!({"password": v}),
            ),
        ];
        for (method, path, token, body) in cases {
            let r = app.send(method.clone(), &path, token, Some(body)).await;
            assert_clean(&r, &format!("{method} {path}"));
        }
        // URLs stay under the 64 KiB an HTTP client can send: 2,000 characters of it.
        let in_url: String = value.chars().take(2_000).collect();
        let encoded: String = url::form_urlencoded::byte_serialize(in_url.as_bytes()).collect();
        for param in [
            "search",
            "organizer",
            "date_after",
            "date_before",
            "ordering",
            "limit",
            "offset",
        ] {
            let r = app
                .get(&format!("/api/events/?{param}={encoded}"), Some(&ada))
                .await;
            assert_clean(&r, &format!("?{param}="));
        }
        for path in [
            format!("/api/events/{encoded}/"),
            format!("/api/events/{encoded}/change_attendee_status/"),
        ] {
            let r = app.get(&path, None).await;
            assert_clean(&r, &path);
        }
        // A bearer token is a header value: visible ASCII only can be sent at all.
        if value.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
            let r = app.get("/api/users/me/", Some(value)).await;
            assert_clean(&r, "bearer");
        }
    }
    // Nothing was dropped by any of it, and quotes are stored as the text they are.
    assert_eq!(app.count("users", "username = 'ada'"), 1);
    let literal = "Robert'); DROP TABLE events; --";
    let r = app
        .send(
            Method::PATCH,
            &format!("/api/events/{event}/"),
            Some(&ada),
            Some(json!({"name": literal})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let detail = app.get(&format!("/api/events/{event}/"), None).await;
    assert_eq!(detail.body["name"], literal);
    assert!(app.count("events", "1 = 1") >= 1);
    // Long values that are valid where they land are stored intact.
    let long = "x".repeat(100);
    let r = app
        .post(
            "/api/events/",
            Some(&ada),
            json!({"name": long, "date": "2026-12-01"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
}

async fn failed_login_time(app: &TestApp, username: &str) -> Duration {
    let started = Instant::now();
    let r = app
        .post(
            "/api/token/",
            None,
            json!({"username": username, "password": "not-the-password"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    started.elapsed()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// An unknown username costs the same password hash as a wrong password: the time of a
/// failed login does not tell whether the account exists.
#[actix_web::test]
async fn login_timing_does_not_reveal_whether_a_user_exists() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.login_failures_per_username = Limit::parse("1000/1m").unwrap();
        s.login_failures_per_address = Limit::parse("1000/1m").unwrap();
    })
    .await
    .expect("app");
    app.register("ada").await;
    // Alternate the two kinds, so both see the same load on the machine.
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..30 {
        known.push(failed_login_time(&app, "ada").await);
        unknown.push(failed_login_time(&app, &format!("ghost{i}")).await);
    }
    let (known_t, unknown_t) = (median(known), median(unknown));
    let ratio = unknown_t.as_secs_f64() / known_t.as_secs_f64();
    assert!(
        (0.7..=1.43).contains(&ratio),
        "unknown {unknown_t:?} vs known {known_t:?} (ratio {ratio:.2})"
    );
    assert!(
        known_t > Duration::from_millis(2),
        "no hash was checked: {known_t:?}"
    );
}
