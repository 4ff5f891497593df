//! What client developers and operators meet: the OpenAPI document and docs page, CORS,
//! the login throttle, and the hardening headers.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rally::accounts::throttle::Limit;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, TestApp, read, spawn_app, spawn_app_with};
use crate::on_both_backends;

on_both_backends!(
    schema_documents_every_served_route_and_nothing_else,
    docs_page_is_served_from_the_binary_with_no_external_url,
    security_headers_are_on_every_response,
);

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// A concrete URL for a documented path template.
fn concrete(path: &str) -> String {
    path.replace("{id}", &uuid::Uuid::new_v4().to_string())
}

async fn schema_documents_every_served_route_and_nothing_else(app: TestApp) {
    let r = app.get("/api/schema/", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let doc = r.body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let documented: BTreeMap<String, BTreeSet<String>> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, ops)| {
            let methods = ops
                .as_object()
                .unwrap()
                .keys()
                .filter(|m| METHODS.contains(&m.as_str()))
                .cloned()
                .collect();
            (path.clone(), methods)
        })
        .collect();
    // What the router registered (every `resource`), against what is documented.
    let registered: BTreeMap<String, BTreeSet<String>> = rally::http::registered_routes()
        .into_iter()
        .map(|(path, methods)| (path, methods.into_iter().collect()))
        .collect();
    assert_eq!(registered, documented, "router and document disagree");
    // Operation ids are unique (OpenAPI requires it; generators name methods by them).
    let mut ids = BTreeSet::new();
    for ops in doc["paths"].as_object().unwrap().values() {
        for op in ops.as_object().unwrap().values() {
            if let Some(id) = op.get("operationId").and_then(|v| v.as_str()) {
                assert!(ids.insert(id.to_string()), "operationId {id} is used twice");
            }
        }
    }
    // And what the server actually answers: a documented method is routed, any other
    // method on that path is a 405.
    for (path, methods) in &documented {
        let url = concrete(path);
        for method in METHODS {
            let r = app
                .send(
                    Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                    &url,
                    None,
                    None,
                )
                .await;
            if methods.contains(method) {
                assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            } else {
                assert_eq!(
                    r.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is served but not documented"
                );
            }
        }
    }
    // Operations that need a user say so; public ones do not demand it.
    let op = |path: &str, method: &str| doc["paths"][path][method].clone();
    assert_eq!(
        op("/api/events/", "post")["security"],
        json!([{"bearer": []}])
    );
    assert_eq!(
        op("/api/events/", "get")["security"],
        json!([{}, {"bearer": []}])
    );
    assert!(op("/api/token/", "post").get("security").is_none());
    assert!(op("/api/token/", "post")["responses"].get("429").is_some());
    assert!(
        op("/api/events/{id}/", "patch")["responses"]
            .get("403")
            .is_some()
    );
}

async fn docs_page_is_served_from_the_binary_with_no_external_url(app: TestApp) {
    let page = app.get("/api/docs/", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text.contains("swagger-ui"));
    assert!(
        !page.text.contains("http://") && !page.text.contains("https://"),
        "{}",
        page.text
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("http"),
        "{csp}"
    );
    for asset in [
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
        "swagger-initializer.js",
        "index.css",
    ] {
        assert!(page.text.contains(asset), "page does not load {asset}");
        let r = app.get(&format!("/api/docs/{asset}"), None).await;
        assert_eq!(r.status, StatusCode::OK, "{asset}");
        assert!(r.text.len() > 100, "{asset} is empty");
    }
    let init = app.get("/api/docs/swagger-initializer.js", None).await.text;
    assert!(init.contains("\"/api/schema/\""), "{init}");
    assert!(
        !init.contains("http://") && !init.contains("https://"),
        "{init}"
    );
    // Without the slash, the page redirects to itself (its assets are relative).
    let r = app.get("/api/docs", None).await;
    assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
}

async fn security_headers_are_on_every_response(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    for r in [
        app.get("/api/events/", None).await,
        app.get("/api/users/me/", Some(&ada)).await,
        app.get("/nowhere", None).await,
    ] {
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        assert_eq!(
            r.header("content-security-policy"),
            Some("default-src 'none'; frame-ancestors 'none'")
        );
        assert!(
            r.header("server").is_none(),
            "the Server header leaks: {:?}",
            r.header("server")
        );
    }
    let r = app
        .post(
            "/api/token/",
            None,
            json!({"username": "ada", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let refresh = r.body["refresh"].as_str().unwrap();
    let r = app
        .post("/api/token/refresh/", None, json!({"refresh": refresh}))
        .await;
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

#[actix_web::test]
async fn deeply_nested_json_is_a_clean_400() {
    let app = spawn_app(Backend::Sqlite).await.expect("app");
    let (_, ada) = app.user("ada").await;
    let body = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    let r = read(
        app.client
            .post(app.url("/api/events/"))
            .bearer_auth(&ada)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .starts_with("JSON parse error - ")
    );
    assert_eq!(app.count("events", "1 = 1"), 0);
}

async fn preflight(app: &TestApp, origin: &str) -> crate::helpers::Resp {
    read(
        app.client
            .request(Method::OPTIONS, app.url("/api/events/"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[actix_web::test]
async fn cors_allows_configured_origins_only() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.cors_origins = vec!["https://app.example".into()];
    })
    .await
    .expect("app");
    let ok = preflight(&app, "https://app.example").await;
    assert!(ok.status.is_success(), "{:?} {}", ok.status, ok.text);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let allowed_headers = ok
        .header("access-control-allow-headers")
        .unwrap()
        .to_lowercase();
    assert!(allowed_headers.contains("authorization") && allowed_headers.contains("content-type"));
    assert!(
        ok.header("access-control-allow-methods")
            .unwrap()
            .contains("PATCH")
    );

    let refused = preflight(&app, "https://evil.example").await;
    assert!(refused.header("access-control-allow-origin").is_none());

    let r = read(
        app.client
            .get(app.url("/api/events/"))
            .header("origin", "https://app.example")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let exposed = r
        .header("access-control-expose-headers")
        .unwrap()
        .to_lowercase();
    assert!(
        exposed.contains("x-total-count") && exposed.contains("link"),
        "{exposed}"
    );

    // With no origins configured (the default), no origin gets CORS headers.
    let closed = spawn_app(Backend::Sqlite).await.expect("app");
    let r = preflight(&closed, "https://app.example").await;
    assert!(r.header("access-control-allow-origin").is_none());
    // and a same-origin or non-browser request carrying an Origin still works.
    let r = read(
        closed
            .client
            .get(closed.url("/api/events/"))
            .header("origin", "https://app.example")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
}

async fn login(
    app: &TestApp,
    username: &str,
    password: &str,
    forwarded: Option<&str>,
) -> crate::helpers::Resp {
    let mut req = app
        .client
        .post(app.url("/api/token/"))
        .json(&json!({"username": username, "password": password}));
    if let Some(f) = forwarded {
        req = req.header("x-forwarded-for", f);
    }
    read(req.send().await.unwrap()).await
}

#[actix_web::test]
async fn failed_logins_are_throttled_per_username_then_recover() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.login_failures_per_username = Limit::parse("3/2s").unwrap();
    })
    .await
    .expect("app");
    app.register("ada").await;
    // Successful logins never count.
    for _ in 0..5 {
        assert_eq!(
            login(&app, "ada", PASSWORD, None).await.status,
            StatusCode::OK
        );
    }
    for _ in 0..3 {
        assert_eq!(
            login(&app, "ada", "wrong-password", None).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // Blocked: even the right password is refused until the window has passed.
    let r = login(&app, "ada", PASSWORD, None).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3).contains(&wait), "{wait}");
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .starts_with("Request was throttled."),
        "{}",
        r.text
    );
    assert!(r.body.get("access").is_none());
    // Another username is not affected.
    app.register("bob").await;
    assert_eq!(
        login(&app, "bob", PASSWORD, None).await.status,
        StatusCode::OK
    );
    actix_web::rt::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(
        login(&app, "ada", PASSWORD, None).await.status,
        StatusCode::OK
    );
}

#[actix_web::test]
async fn failed_logins_are_throttled_per_address_across_usernames() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.login_failures_per_address = Limit::parse("4/1h").unwrap();
    })
    .await
    .expect("app");
    app.register("ada").await;
    for name in ["u1", "u2", "u3", "u4"] {
        assert_eq!(
            login(&app, name, "nope-nope", None).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login(&app, "ada", PASSWORD, None).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // X-Forwarded-For is not believed from an untrusted peer.
    assert_eq!(
        login(&app, "ada", PASSWORD, Some("203.0.113.9"))
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[actix_web::test]
async fn forwarded_for_is_used_behind_a_trusted_proxy() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.login_failures_per_address = Limit::parse("2/1h").unwrap();
        s.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await
    .expect("app");
    app.register("ada").await;
    for name in ["u1", "u2"] {
        let r = login(&app, name, "nope-nope", Some("198.51.100.1, 203.0.113.7")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    // The client (right-most untrusted entry) is blocked; another client is not.
    let blocked = login(&app, "ada", PASSWORD, Some("203.0.113.7")).await;
    assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS);
    let other = login(&app, "ada", PASSWORD, Some("203.0.113.8")).await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.text);
}

#[actix_web::test]
async fn rally_openapi_prints_the_served_document() {
    let app = spawn_app(Backend::Sqlite).await.expect("app");
    let served = app.get("/api/schema/", None).await.body;
    let printed = std::process::Command::new(env!("CARGO_BIN_EXE_rally"))
        .arg("openapi")
        .output()
        .expect("rally openapi runs");
    assert!(printed.status.success());
    let printed: Value = serde_json::from_slice(&printed.stdout).expect("json");
    assert_eq!(printed, served);
}
