//! Errors a client can provoke without any data: unknown routes, wrong methods, bodies
//! that are not JSON objects, oversized bodies. Always JSON in DRF's shape.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{self, Resp, TestApp};
use crate::on_both_backends;

const REQUIRED: &str = "This field is required.";

on_both_backends!(
    unknown_routes_get_a_json_404,
    wrong_method_gets_405_naming_it_with_an_allow_header,
    non_json_content_type_with_a_body_is_415,
    body_over_64_kib_is_413,
    chunked_body_over_64_kib_is_413,
    body_of_exactly_64_kib_is_read,
    malformed_json_is_400_with_the_parse_error,
    json_that_is_not_an_object_is_400,
    empty_body_reports_the_required_fields,
    every_path_answers_with_and_without_the_trailing_slash,
    health_and_readiness_probes_answer,
    every_response_carries_the_security_headers,
);

/// Sends a request with a raw body and content type.
async fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> Resp {
    let mut req = app.client.request(method, app.url(path)).body(body);
    if let Some(ct) = content_type {
        req = req.header("Content-Type", ct);
    }
    helpers::read(req.send().await.expect("request sent")).await
}

/// A JSON error body in DRF's shape that leaks nothing of the implementation.
fn assert_clean_json(r: &Resp) {
    assert!(
        r.header("content-type")
            .is_some_and(|ct| ct.starts_with("application/json")),
        "not JSON: {:?} {}",
        r.header("content-type"),
        r.text
    );
    assert!(r.body.is_object(), "not a JSON object: {}", r.text);
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let lower = r.text.to_lowercase();
    for leak in [
        "panicked",
        "backtrace",
        "src/",
        ".rs:",
        "select ",
        "insert ",
        "diesel",
        "sqlite",
        "postgres",
        "actix",
        "serde",
    ] {
        assert!(!lower.contains(leak), "body leaks {leak:?}: {}", r.text);
    }
}

fn assert_detail(r: &Resp, status: StatusCode, detail: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.body, json!({ "detail": detail }));
    assert_clean_json(r);
}

async fn unknown_routes_get_a_json_404(app: TestApp) {
    for (method, path) in [
        (Method::GET, "/nope"),
        (Method::GET, "/api/"),
        (Method::GET, "/api/users/me/extra/"),
        (Method::POST, "/api/unknown/"),
        (Method::DELETE, "/api/token/nope/"),
        (Method::GET, "/healthz/extra"),
    ] {
        let r = app
            .send(method.clone(), path, None, Some(json!({"x": 1})))
            .await;
        assert_detail(&r, StatusCode::NOT_FOUND, "Not found.");
    }
}

async fn wrong_method_gets_405_naming_it_with_an_allow_header(app: TestApp) {
    app.register("ada").await;
    for (method, path, allow) in [
        (Method::PUT, "/api/users/", "GET, POST"),
        (Method::DELETE, "/api/users", "GET, POST"),
        (Method::GET, "/api/users/7/", "PATCH"),
        (Method::GET, "/api/outbox/retry/", "POST"),
        (Method::DELETE, "/api/outbox", "GET"),
        (Method::PATCH, "/api/users/me/", "GET, DELETE"),
        (Method::POST, "/api/users/me", "GET, DELETE"),
        (Method::GET, "/api/token/", "POST"),
        (Method::DELETE, "/api/token/refresh/", "POST"),
        (Method::PUT, "/api/token/verify", "POST"),
        (Method::GET, "/api/token/blacklist/", "POST"),
        (Method::POST, "/healthz", "GET"),
        (Method::DELETE, "/readyz", "GET"),
    ] {
        let r = app
            .send(method.clone(), path, None, Some(json!({"username": "x"})))
            .await;
        assert_detail(
            &r,
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("Method \"{method}\" not allowed."),
        );
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
    }
    assert_eq!(app.count("users", "1 = 1"), 1, "a 405 writes nothing");
}

async fn non_json_content_type_with_a_body_is_415(app: TestApp) {
    let cases = [
        (Some("text/plain"), "username=ada", "text/plain"),
        (
            Some("application/x-www-form-urlencoded"),
            "username=ada&email=ada%40example.com&password=Xq7%21mVz2pL-rally",
            "application/x-www-form-urlencoded",
        ),
        (Some("application/xml"), "<user/>", "application/xml"),
        (None, "{\"username\": \"ada\"}", ""),
    ];
    for (content_type, body, named) in cases {
        let r = raw(&app, Method::POST, "/api/users/", content_type, body).await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text);
        assert_clean_json(&r);
        let detail = r.body["detail"].as_str().expect("detail");
        assert!(detail.starts_with("Unsupported media type"), "{detail}");
        assert_eq!(
            detail,
            format!("Unsupported media type \"{named}\" in request.")
        );
    }
    // A JSON media type with parameters, or a +json suffix, is JSON.
    let r = raw(
        &app,
        Method::POST,
        "/api/token/",
        Some("application/json; charset=utf-8"),
        "{}",
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(app.count("users", "1 = 1"), 0);
}

async fn body_over_64_kib_is_413(app: TestApp) {
    let body = json!({
        "username": "ada",
        "email": "ada@example.com",
        "password": "x".repeat(64 * 1024),
    })
    .to_string();
    assert!(body.len() > 64 * 1024);
    for path in ["/api/users/", "/api/token/", "/api/token/verify/"] {
        let r = raw(
            &app,
            Method::POST,
            path,
            Some("application/json"),
            body.clone(),
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{path}: {}",
            r.text
        );
        assert_clean_json(&r);
        assert!(r.body["detail"].is_string(), "{}", r.text);
    }
    assert_eq!(app.count("users", "1 = 1"), 0);
}

/// Sends `head` and then `body` in chunked encoding over a plain socket; returns the
/// status code and the raw response.
fn send_chunked(address: &str, head: &str, body: &[u8]) -> (u16, String) {
    let host = address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(head.as_bytes()).expect("head");
    // The server may answer and close before the whole body is written: ignore that.
    for chunk in body.chunks(8 * 1024) {
        let frame = format!("{:x}\r\n", chunk.len());
        if stream.write_all(frame.as_bytes()).is_err()
            || stream.write_all(chunk).is_err()
            || stream.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

async fn chunked_body_over_64_kib_is_413(app: TestApp) {
    // No Content-Length: the limit must hold while the body streams in.
    let body = format!(
        "{{\"username\": \"ada\", \"email\": \"ada@example.com\", \"password\": \"{}\"}}",
        "x".repeat(80 * 1024)
    );
    let head = "POST /api/users/ HTTP/1.1\r\nHost: localhost\r\n\
                Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\
                Connection: close\r\n\r\n";
    let address = app.address.clone();
    let (status, text) =
        actix_web::rt::task::spawn_blocking(move || send_chunked(&address, head, body.as_bytes()))
            .await
            .expect("chunked request");
    assert_eq!(status, 413, "{text}");
    let json_body: Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap_or(""))
        .unwrap_or_else(|_| panic!("JSON body expected: {text}"));
    assert!(json_body["detail"].is_string(), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    assert_eq!(app.count("users", "1 = 1"), 0);
}

async fn body_of_exactly_64_kib_is_read(app: TestApp) {
    // Padded with whitespace to the limit: read and validated, not refused for its size.
    let mut body = json!({"username": "ada", "email": "nope"}).to_string();
    body.push_str(&" ".repeat(64 * 1024 - body.len()));
    assert_eq!(body.len(), 64 * 1024);
    let r = raw(
        &app,
        Method::POST,
        "/api/users/",
        Some("application/json"),
        body,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"email": ["Enter a valid email address."], "password": [REQUIRED]})
    );
}

async fn malformed_json_is_400_with_the_parse_error(app: TestApp) {
    for body in [
        "{\"username\": ",
        "{'username': 'ada'}",
        "{\"username\": \"ada\",}",
        "not json",
        "\u{1}",
    ] {
        for path in ["/api/users/", "/api/token/", "/api/token/refresh/"] {
            let r = raw(&app, Method::POST, path, Some("application/json"), body).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
            assert_clean_json(&r);
            let detail = r.body["detail"].as_str().expect("detail");
            assert!(detail.starts_with("JSON parse error - "), "{detail}");
            assert_eq!(r.body.as_object().unwrap().len(), 1, "{}", r.text);
        }
    }
    // Not UTF-8 at all.
    let r = raw(
        &app,
        Method::POST,
        "/api/users/",
        Some("application/json"),
        vec![0xff, 0xfe, 0x7b, 0x7d],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(
        r.body["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("JSON parse error - ")),
        "{}",
        r.text
    );
    assert_eq!(app.count("users", "1 = 1"), 0);
}

async fn json_that_is_not_an_object_is_400(app: TestApp) {
    for (body, expected) in [
        ("[]", "Invalid data. Expected a dictionary, but got list."),
        (
            "[{\"username\": \"ada\"}]",
            "Invalid data. Expected a dictionary, but got list.",
        ),
        (
            "\"ada\"",
            "Invalid data. Expected a dictionary, but got str.",
        ),
        ("42", "Invalid data. Expected a dictionary, but got int."),
        ("4.2", "Invalid data. Expected a dictionary, but got float."),
        ("true", "Invalid data. Expected a dictionary, but got bool."),
        // DRF's serializer for `data=None`.
        ("null", "No data provided"),
    ] {
        for path in ["/api/users/", "/api/token/", "/api/token/verify/"] {
            let r = raw(&app, Method::POST, path, Some("application/json"), body).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
            assert_eq!(r.body, json!({ "non_field_errors": [expected] }), "{body}");
            assert_clean_json(&r);
        }
    }
    assert_eq!(app.count("users", "1 = 1"), 0);
}

async fn empty_body_reports_the_required_fields(app: TestApp) {
    for content_type in [None, Some("application/json"), Some("text/plain")] {
        let r = raw(&app, Method::POST, "/api/users/", content_type, "").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        assert_eq!(
            r.body,
            json!({"username": [REQUIRED], "email": [REQUIRED], "password": [REQUIRED]})
        );
        assert_clean_json(&r);
        let r = raw(&app, Method::POST, "/api/token/", content_type, "").await;
        assert_eq!(
            r.body,
            json!({"username": [REQUIRED], "password": [REQUIRED]})
        );
        let r = raw(&app, Method::POST, "/api/token/refresh/", content_type, "").await;
        assert_eq!(r.body, json!({"refresh": [REQUIRED]}));
        let r = raw(&app, Method::POST, "/api/token/verify/", content_type, "").await;
        assert_eq!(r.body, json!({"token": [REQUIRED]}));
        let r = raw(
            &app,
            Method::POST,
            "/api/token/blacklist/",
            content_type,
            "",
        )
        .await;
        assert_eq!(r.body, json!({"refresh": [REQUIRED]}));
    }
    assert_eq!(app.count("users", "1 = 1"), 0);
}

async fn every_path_answers_with_and_without_the_trailing_slash(app: TestApp) {
    let (_, access) = app.user("ada").await;
    let cases: [(Method, &str, Option<&str>, StatusCode); 8] = [
        (Method::POST, "/api/users/", None, StatusCode::BAD_REQUEST),
        (Method::GET, "/api/users/me/", Some(&access), StatusCode::OK),
        (Method::POST, "/api/token/", None, StatusCode::BAD_REQUEST),
        (
            Method::POST,
            "/api/token/refresh/",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/api/token/verify/",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/api/token/blacklist/",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (Method::GET, "/healthz/", None, StatusCode::OK),
        (Method::GET, "/readyz/", None, StatusCode::OK),
    ];
    for (method, path, token, status) in cases {
        let without = path.trim_end_matches('/');
        let body = (method == Method::POST).then(|| json!({}));
        let with_slash = app.send(method.clone(), path, token, body.clone()).await;
        let no_slash = app.send(method.clone(), without, token, body).await;
        for (p, r) in [(path, &with_slash), (without, &no_slash)] {
            assert!(
                !r.status.is_redirection(),
                "{method} {p} redirects: {:?}",
                r.header("location")
            );
            assert_eq!(r.status, status, "{method} {p}: {}", r.text);
            assert!(r.header("location").is_none());
        }
        assert_eq!(with_slash.body, no_slash.body, "{method} {path}");
    }
}

async fn health_and_readiness_probes_answer(app: TestApp) {
    let r = app.get("/healthz", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "ok");
    let r = app.get("/readyz", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, json!({"status": "ok", "database": "ok"}));
}

async fn every_response_carries_the_security_headers(app: TestApp) {
    let (_, access) = app.user("ada").await;
    let responses = [
        app.get("/healthz", None).await,
        app.get("/api/users/me/", Some(&access)).await,
        app.get("/api/users/me/", None).await,
        app.get("/nope", None).await,
        app.send(Method::PUT, "/api/users/", None, None).await,
        app.post("/api/users/", None, json!({})).await,
        raw(&app, Method::POST, "/api/users/", Some("text/plain"), "x").await,
    ];
    for r in &responses {
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{} {}",
            r.status,
            r.text
        );
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{}", r.status);
    }
}
