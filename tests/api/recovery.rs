//! Account recovery and email verification (SPEC.md §13): mailed single-use tokens, read
//! back from the outbox as a mail client would see them.

use diesel::prelude::*;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{PASSWORD, Resp, TestApp};
use crate::on_both_backends;

on_both_backends!(
    reset_answers_alike_for_known_and_unknown_addresses,
    reset_sets_the_password_and_ends_every_session,
    reset_tokens_are_single_use_and_expire,
    weak_password_keeps_the_token,
    reset_request_validates_the_address,
    reset_mails_are_limited_per_address,
    a_new_reset_link_replaces_the_old,
    concurrent_confirms_succeed_once,
    registration_mails_a_verification_link,
    verification_can_be_resent,
    bad_verification_tokens_are_refused,
    reset_links_never_point_at_a_host_the_client_names,
    accounts_sharing_an_address_share_its_limit,
);

const NEW_PASSWORD: &str = "Vb9#kQw4-new-rally";
const RESET_SENT: &str = "If an account uses that address, a reset link has been sent.";
const RESET_SUBJECT: &str = "Reset your password";
const VERIFY_SUBJECT: &str = "Confirm your email address";

/// The token in the newest outbox mail to `to` with `subject`.
fn mailed_token(app: &TestApp, to: &str, subject: &str) -> String {
    #[derive(QueryableByName)]
    struct Body {
        #[diesel(sql_type = diesel::sql_types::Text)]
        body: String,
    }
    let mut conn = app.pool.get().expect("connection");
    let conn: &mut rally::db::DbConn = &mut conn;
    let row: Body = diesel::sql_query(format!(
        "SELECT body FROM outbox WHERE recipient = '{to}' AND subject = '{subject}' \
         ORDER BY id DESC LIMIT 1"
    ))
    .get_result(conn)
    .expect("a mail");
    let (_, after) = row.body.split_once("?token=").expect("a link");
    after.chars().take(43).collect()
}

fn mails(app: &TestApp, to: &str, subject: &str) -> i64 {
    app.count(
        "outbox",
        &format!("recipient = '{to}' AND subject = '{subject}'"),
    )
}

async fn request_reset(app: &TestApp, email: &str) -> Resp {
    app.post("/api/users/password_reset/", None, json!({"email": email}))
        .await
}

async fn confirm(app: &TestApp, token: &str, password: &str) -> Resp {
    app.post(
        "/api/users/password_reset/confirm/",
        None,
        json!({"token": token, "password": password}),
    )
    .await
}

async fn login_status(app: &TestApp, password: &str) -> StatusCode {
    app.post(
        "/api/token/",
        None,
        json!({"username": "ada", "password": password}),
    )
    .await
    .status
}

fn assert_bad_token(r: &Resp) {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"token": ["This reset link is invalid or has expired."]})
    );
}

async fn reset_answers_alike_for_known_and_unknown_addresses(app: TestApp) {
    app.register("ada").await;
    let known = request_reset(&app, "ADA@Example.com").await;
    let unknown = request_reset(&app, "nobody@example.com").await;
    for r in [&known, &unknown] {
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        assert_eq!(r.body, json!({"detail": RESET_SENT}));
    }
    assert_eq!(known.text, unknown.text);
    assert_eq!(mails(&app, "ada@example.com", RESET_SUBJECT), 1);
    assert_eq!(
        app.count("outbox", &format!("subject = '{RESET_SUBJECT}'")),
        1
    );
    assert_eq!(
        app.count(
            "outbox",
            "body LIKE '%/reset?token=%' AND body LIKE '%works once, for 1 hour.%'"
        ),
        1
    );
    assert_eq!(app.count("account_tokens", "purpose = 'password_reset'"), 1);
    // Only the hash is stored.
    let token = mailed_token(&app, "ada@example.com", RESET_SUBJECT);
    assert_eq!(
        app.count("account_tokens", &format!("token_sha256 = '{token}'")),
        0
    );
    // An inactive account gets nothing.
    let bob = app.register("bob").await;
    app.sql(&format!(
        "UPDATE users SET is_active = FALSE WHERE id = {bob}"
    ));
    let r = request_reset(&app, "bob@example.com").await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(mails(&app, "bob@example.com", RESET_SUBJECT), 0);
}

async fn reset_sets_the_password_and_ends_every_session(app: TestApp) {
    app.register("ada").await;
    let (access, refresh) = app.login("ada").await;
    request_reset(&app, "ada@example.com").await;
    let token = mailed_token(&app, "ada@example.com", RESET_SUBJECT);
    let r = confirm(&app, &token, NEW_PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, json!({"detail": "Your password has been reset."}));
    assert_eq!(login_status(&app, PASSWORD).await, StatusCode::UNAUTHORIZED);
    assert_eq!(login_status(&app, NEW_PASSWORD).await, StatusCode::OK);
    let r = app.get("/api/users/me/", Some(&access)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let r = app
        .post("/api/token/refresh/", None, json!({"refresh": refresh}))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert_eq!(
        app.count("sessions", "ended_at IS NULL"),
        1,
        "only the login with the new password"
    );
    // Single use.
    assert_bad_token(&confirm(&app, &token, "Another#Pass-99").await);
    assert_eq!(login_status(&app, NEW_PASSWORD).await, StatusCode::OK);
}

async fn reset_tokens_are_single_use_and_expire(app: TestApp) {
    app.register("ada").await;
    request_reset(&app, "ada@example.com").await;
    let token = mailed_token(&app, "ada@example.com", RESET_SUBJECT);
    app.sql(
        "UPDATE account_tokens SET expires_at = '2000-01-01 00:00:00' \
         WHERE purpose = 'password_reset'",
    );
    assert_bad_token(&confirm(&app, &token, NEW_PASSWORD).await);
    assert_eq!(login_status(&app, PASSWORD).await, StatusCode::OK);
    // Unknown and malformed tokens alike.
    assert_bad_token(&confirm(&app, &"A".repeat(43), NEW_PASSWORD).await);
    assert_bad_token(&confirm(&app, "not a token", NEW_PASSWORD).await);
    let r = app
        .post("/api/users/password_reset/confirm/", None, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["token"][0], "This field is required.");
    assert_eq!(r.body["password"][0], "This field is required.");
}

async fn weak_password_keeps_the_token(app: TestApp) {
    app.register("ada").await;
    request_reset(&app, "ada@example.com").await;
    let token = mailed_token(&app, "ada@example.com", RESET_SUBJECT);
    for weak in ["short", "12345678901", "password", "ada@example.com"] {
        let r = confirm(&app, &token, weak).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{weak}: {}", r.text);
        assert!(r.body["password"].is_array(), "{weak}: {}", r.text);
        assert!(r.body.get("token").is_none(), "{}", r.text);
    }
    let r = confirm(&app, &token, NEW_PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

async fn reset_request_validates_the_address(app: TestApp) {
    for (body, message) in [
        (json!({}), "This field is required."),
        (json!({"email": ""}), "This field may not be blank."),
        (json!({"email": "   "}), "This field may not be blank."),
        (
            json!({"email": "ada@example"}),
            "Enter a valid email address.",
        ),
        (
            json!({"email": "not an address"}),
            "Enter a valid email address.",
        ),
        (json!({"email": null}), "This field may not be null."),
    ] {
        let r = app
            .post("/api/users/password_reset/", None, body.clone())
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert_eq!(r.body["email"][0], message, "{body}: {}", r.text);
    }
}

async fn reset_mails_are_limited_per_address(app: TestApp) {
    app.register("ada").await;
    for _ in 0..5 {
        let r = request_reset(&app, "ada@example.com").await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        assert_eq!(r.body, json!({"detail": RESET_SENT}));
    }
    assert_eq!(mails(&app, "ada@example.com", RESET_SUBJECT), 3);
    // An hour later the address may be mailed again.
    app.sql(
        "UPDATE account_tokens SET created_at = '2000-01-01 00:00:00' \
         WHERE purpose = 'password_reset'",
    );
    request_reset(&app, "ada@example.com").await;
    assert_eq!(mails(&app, "ada@example.com", RESET_SUBJECT), 4);
}

/// Without PUBLIC_URL, a link built on a client-named host would send the victim's token
/// to whoever asked for it: such a mail carries the token alone.
async fn reset_links_never_point_at_a_host_the_client_names(app: TestApp) {
    app.register("ada").await;
    let r = app
        .client
        .post(app.url("/api/users/password_reset/"))
        .header("X-Forwarded-Host", "evil.example")
        .json(&json!({"email": "ada@example.com"}))
        .send()
        .await
        .expect("request sent");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(mails(&app, "ada@example.com", RESET_SUBJECT), 1);
    assert_eq!(app.count("outbox", "body LIKE '%evil.example%'"), 0);
    assert_eq!(
        app.count(
            "outbox",
            &format!("subject = '{RESET_SUBJECT}' AND body NOT LIKE '%?token=%' AND body LIKE '%Send this token%'")
        ),
        1
    );
}

async fn accounts_sharing_an_address_share_its_limit(app: TestApp) {
    for name in ["ada", "ada2", "ada3", "ada4", "ada5"] {
        app.register(name).await;
    }
    app.sql("UPDATE users SET email = 'shared@example.com'");
    let r = request_reset(&app, "shared@example.com").await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(mails(&app, "shared@example.com", RESET_SUBJECT), 3);
    request_reset(&app, "shared@example.com").await;
    assert_eq!(mails(&app, "shared@example.com", RESET_SUBJECT), 3);
}

async fn a_new_reset_link_replaces_the_old(app: TestApp) {
    app.register("ada").await;
    request_reset(&app, "ada@example.com").await;
    let first = mailed_token(&app, "ada@example.com", RESET_SUBJECT);
    request_reset(&app, "ada@example.com").await;
    let second = mailed_token(&app, "ada@example.com", RESET_SUBJECT);
    assert_ne!(first, second);
    assert_bad_token(&confirm(&app, &first, NEW_PASSWORD).await);
    let r = confirm(&app, &second, NEW_PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

async fn concurrent_confirms_succeed_once(app: TestApp) {
    app.register("ada").await;
    request_reset(&app, "ada@example.com").await;
    let token = mailed_token(&app, "ada@example.com", RESET_SUBJECT);
    let (a, b, c) = tokio::join!(
        confirm(&app, &token, NEW_PASSWORD),
        confirm(&app, &token, "Other#Pass-42x"),
        confirm(&app, &token, "Third#Pass-42y"),
    );
    let ok = [&a, &b, &c]
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert_eq!(ok, 1, "{} {} {}", a.text, b.text, c.text);
    for r in [&a, &b, &c] {
        if r.status != StatusCode::OK {
            assert_bad_token(r);
        }
    }
}

async fn me(app: &TestApp, access: &str) -> Resp {
    let r = app.get("/api/users/me/", Some(access)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r
}

async fn verify(app: &TestApp, token: &str) -> Resp {
    app.post(
        "/api/users/verify_email/confirm/",
        None,
        json!({"token": token}),
    )
    .await
}

async fn registration_mails_a_verification_link(app: TestApp) {
    let r = app
        .post(
            "/api/users/",
            None,
            json!({"username": "ada", "email": "ada@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["is_verified"], false);
    assert_eq!(mails(&app, "ada@example.com", VERIFY_SUBJECT), 1);
    let (access, _) = app.login("ada").await;
    assert_eq!(me(&app, &access).await.body["is_verified"], false);
    let token = mailed_token(&app, "ada@example.com", VERIFY_SUBJECT);
    let r = verify(&app, &token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(me(&app, &access).await.body["is_verified"], true);
    // Single use; verified already.
    assert_eq!(verify(&app, &token).await.status, StatusCode::BAD_REQUEST);
    let r = app
        .post("/api/users/me/verify_email/", Some(&access), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.body, json!({"detail": "Already verified."}));
    // A refused registration mails nothing.
    let r = app
        .post(
            "/api/users/",
            None,
            json!({"username": "ada", "email": "other@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(mails(&app, "other@example.com", VERIFY_SUBJECT), 0);
}

async fn verification_can_be_resent(app: TestApp) {
    let (_, access) = app.user("ada").await;
    let first = mailed_token(&app, "ada@example.com", VERIFY_SUBJECT);
    let r = app
        .post("/api/users/me/verify_email/", Some(&access), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(mails(&app, "ada@example.com", VERIFY_SUBJECT), 2);
    let second = mailed_token(&app, "ada@example.com", VERIFY_SUBJECT);
    // The older link stopped working.
    assert_eq!(verify(&app, &first).await.status, StatusCode::BAD_REQUEST);
    // Rate-limited as resets: registration's mail and two more in an hour.
    for _ in 0..3 {
        let r = app
            .post("/api/users/me/verify_email/", Some(&access), json!({}))
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
    }
    assert_eq!(mails(&app, "ada@example.com", VERIFY_SUBJECT), 3);
    let third = mailed_token(&app, "ada@example.com", VERIFY_SUBJECT);
    assert_eq!(verify(&app, &third).await.status, StatusCode::OK);
    assert_eq!(me(&app, &access).await.body["is_verified"], true);
    assert_ne!(second, third);
    // Signed out: 401.
    let r = app
        .post("/api/users/me/verify_email/", None, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

async fn bad_verification_tokens_are_refused(app: TestApp) {
    let (_, access) = app.user("ada").await;
    let token = mailed_token(&app, "ada@example.com", VERIFY_SUBJECT);
    let bad = json!({"token": ["This verification link is invalid or has expired."]});
    for t in ["", "nope", &"A".repeat(43)] {
        let r = verify(&app, t).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{t}: {}", r.text);
        if !t.is_empty() {
            assert_eq!(r.body, bad);
        }
    }
    // Expired: refused.
    app.sql("UPDATE account_tokens SET expires_at = '2000-01-01 00:00:00'");
    let r = verify(&app, &token).await;
    assert_eq!(r.body, bad, "{}", r.text);
    assert_eq!(me(&app, &access).await.body["is_verified"], false);
    app.sql("UPDATE account_tokens SET expires_at = '2999-01-01 00:00:00'");
    // A verification token resets no password.
    assert_bad_token(&confirm(&app, &token, NEW_PASSWORD).await);
    assert_eq!(verify(&app, &token).await.status, StatusCode::OK);
}
