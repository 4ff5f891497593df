//! The admin console's delivery: pages and assets from the binary, under a strict
//! Content-Security-Policy. (The console itself is tested in a browser: tests/browser.)

use reqwest::{Method, StatusCode};

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(console_is_served_from_the_binary_under_a_strict_csp);

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

async fn console_is_served_from_the_binary_under_a_strict_csp(app: TestApp) {
    let page = app.get("/admin/", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("content-security-policy"), Some(CSP));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert!(
        page.text
            .contains(r#"<script type="module" src="app.js"></script>"#)
    );
    for (asset, content_type) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("api.js", "text/javascript; charset=utf-8"),
        ("admin.css", "text/css; charset=utf-8"),
    ] {
        let r = app.get(&format!("/admin/{asset}"), None).await;
        assert_eq!(r.status, StatusCode::OK, "{asset}");
        assert_eq!(r.header("content-type"), Some(content_type), "{asset}");
        assert_eq!(r.header("content-security-policy"), Some(CSP), "{asset}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert!(r.text.len() > 500, "{asset}");
    }
    // Without the slash, the page redirects to itself (its assets are relative).
    let r = app.get("/admin", None).await;
    assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(r.header("location"), Some("/admin/"));
    for missing in [
        "/admin/nope.js",
        "/admin/../Cargo.toml",
        "/admin/%2e%2e%2fCargo.toml",
    ] {
        let r = app.get(missing, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{missing}");
        assert_eq!(r.body["detail"], "Not found.");
    }
    let r = app.send(Method::POST, "/admin/", None, None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    // The API keeps its own policy: nothing may load.
    let r = app.get("/api/events/", None).await;
    assert_eq!(
        r.header("content-security-policy"),
        Some("default-src 'none'; frame-ancestors 'none'")
    );
}
