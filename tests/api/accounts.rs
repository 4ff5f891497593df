//! Registration, the caller's account, and Simple JWT's token endpoints.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Resp, TestApp};
use crate::on_both_backends;

const REQUIRED: &str = "This field is required.";
const BLANK: &str = "This field may not be blank.";
const USERNAME_INVALID: &str = "Enter a valid username. This value may contain only letters, \
     numbers, and @/./+/-/_ characters.";
const USERNAME_TAKEN: &str = "A user with that username already exists.";
const EMAIL_INVALID: &str = "Enter a valid email address.";
const TOO_SHORT: &str = "This password is too short. It must contain at least 8 characters.";
const TOO_COMMON: &str = "This password is too common.";
const NUMERIC: &str = "This password is entirely numeric.";
const NOT_AUTHENTICATED: &str = "Authentication credentials were not provided.";

on_both_backends!(
    register_then_login_then_me,
    registration_returns_the_user_with_a_normalized_email_and_no_password,
    registration_requires_every_field,
    blank_fields_are_refused,
    null_and_non_string_fields_are_refused,
    username_longer_than_150_characters_is_refused,
    username_with_forbidden_characters_is_refused,
    username_with_unicode_letters_is_accepted,
    invalid_email_is_refused,
    taken_username_is_refused_and_not_duplicated,
    weak_passwords_get_each_django_validator_message,
    several_bad_fields_are_reported_in_one_response,
    me_without_a_token_is_401_with_www_authenticate,
    me_shows_the_callers_own_account,
    delete_me_without_a_token_is_401,
    delete_me_with_a_wrong_password_keeps_the_account,
    delete_me_without_a_password_is_refused,
    delete_me_with_the_right_password_removes_the_account,
);

/// POST /api/users/ with `body`.
async fn register_raw(app: &TestApp, body: Value) -> Resp {
    app.post("/api/users/", None, body).await
}

fn users(app: &TestApp) -> i64 {
    app.count("users", "1 = 1")
}

/// A 400 whose body is exactly `expected`, with nothing stored.
async fn assert_refused(app: &TestApp, body: Value, expected: Value) {
    let before = users(app);
    let r = register_raw(app, body.clone()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
    assert_eq!(r.body, expected, "{body}");
    assert_eq!(users(app), before, "{body} must not create a user");
}

async fn register_then_login_then_me(app: TestApp) {
    let id = app.register("ada").await;
    let (access, _) = app.login("ada").await;
    let me = app.get("/api/users/me/", Some(&access)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["id"], json!(id));
    assert_eq!(me.body["username"], "ada");
    assert_eq!(me.body["email"], "ada@example.com");
    assert!(me.body.get("password").is_none());
    let bad = app
        .post(
            "/api/token/",
            None,
            json!({"username": "ada", "password": format!("{PASSWORD}x")}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
}

async fn registration_returns_the_user_with_a_normalized_email_and_no_password(app: TestApp) {
    let r = register_raw(
        &app,
        json!({"username": "  ada  ", "email": "Ada.Lovelace@Example.COM", "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(
        r.header("content-type")
            .is_some_and(|ct| ct.starts_with("application/json"))
    );
    let id = r.body["id"].as_i64().expect("integer id");
    // Surrounding whitespace is trimmed as DRF's CharField does; only the domain is
    // lower-cased, as Django's normalize_email.
    assert_eq!(r.body["username"], "ada");
    assert_eq!(r.body["email"], "Ada.Lovelace@example.com");
    assert_eq!(r.body["is_staff"], false);
    assert!(r.body.get("password").is_none(), "{}", r.text);
    assert!(!r.text.contains("argon2"), "{}", r.text);
    assert!(!r.text.contains(PASSWORD), "{}", r.text);
    assert!(r.body["date_joined"].is_string(), "{}", r.text);

    assert_eq!(
        app.count(
            "users",
            &format!(
                "id = {id} AND username = 'ada' AND email = 'Ada.Lovelace@example.com' \
                 AND is_staff = FALSE AND is_active = TRUE"
            )
        ),
        1
    );
    // The password is stored hashed, never as given.
    assert_eq!(
        app.count("users", &format!("password = '{PASSWORD}'")),
        0,
        "plain-text password stored"
    );
    assert_eq!(
        app.count("users", "password LIKE '$argon2id$%'"),
        1,
        "password not stored as an argon2id hash"
    );
}

async fn registration_requires_every_field(app: TestApp) {
    assert_refused(
        &app,
        json!({}),
        json!({"username": [REQUIRED], "email": [REQUIRED], "password": [REQUIRED]}),
    )
    .await;
    assert_refused(
        &app,
        json!({"username": "ada"}),
        json!({"email": [REQUIRED], "password": [REQUIRED]}),
    )
    .await;
    assert_refused(
        &app,
        json!({"username": "ada", "email": "ada@example.com"}),
        json!({"password": [REQUIRED]}),
    )
    .await;
}

async fn blank_fields_are_refused(app: TestApp) {
    assert_refused(
        &app,
        json!({"username": "   ", "email": "", "password": ""}),
        json!({"username": [BLANK], "email": [BLANK], "password": [BLANK]}),
    )
    .await;
}

async fn null_and_non_string_fields_are_refused(app: TestApp) {
    assert_refused(
        &app,
        json!({"username": ["ada"], "email": null, "password": PASSWORD}),
        json!({
            "username": ["Not a valid string."],
            "email": ["This field may not be null."],
        }),
    )
    .await;
}

async fn username_longer_than_150_characters_is_refused(app: TestApp) {
    assert_refused(
        &app,
        json!({"username": "a".repeat(151), "email": "ada@example.com", "password": PASSWORD}),
        json!({"username": ["Ensure this field has no more than 150 characters."]}),
    )
    .await;
    // 150 is still fine, counted in characters, not bytes.
    let longest = "é".repeat(150);
    let r = register_raw(
        &app,
        json!({"username": longest, "email": "ada@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["username"], json!(longest));
}

async fn username_with_forbidden_characters_is_refused(app: TestApp) {
    for username in ["ada lovelace", "ada!", "<b>ada</b>", "ada;DROP TABLE users"] {
        assert_refused(
            &app,
            json!({"username": username, "email": "ada@example.com", "password": PASSWORD}),
            json!({"username": [USERNAME_INVALID]}),
        )
        .await;
    }
}

async fn username_with_unicode_letters_is_accepted(app: TestApp) {
    for username in ["José", "zoë_1.+-@", "名前"] {
        let r = register_raw(
            &app,
            json!({"username": username, "email": "user@example.com", "password": PASSWORD}),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{username}: {}", r.text);
        assert_eq!(r.body["username"], username);
    }
    assert_eq!(users(&app), 3);
}

async fn invalid_email_is_refused(app: TestApp) {
    for email in [
        "not-an-email",
        "ada@",
        "@example.com",
        "ada@@example.com",
        "ada example@example.com",
        "ada@example",
    ] {
        assert_refused(
            &app,
            json!({"username": "ada", "email": email, "password": PASSWORD}),
            json!({"email": [EMAIL_INVALID]}),
        )
        .await;
    }
}

async fn taken_username_is_refused_and_not_duplicated(app: TestApp) {
    let id = app.register("ada").await;
    assert_refused(
        &app,
        json!({"username": "ada", "email": "other@example.com", "password": PASSWORD}),
        json!({"username": [USERNAME_TAKEN]}),
    )
    .await;
    assert_eq!(app.count("users", "username = 'ada'"), 1);
    assert_eq!(
        app.count("users", &format!("id = {id} AND email = 'ada@example.com'")),
        1,
        "the first account must be unchanged"
    );
}

async fn weak_passwords_get_each_django_validator_message(app: TestApp) {
    // Expected lists as Django 5.2's default validators give them, in settings order.
    let cases: &[(&str, &str, &str, &[&str])] = &[
        ("zQ9!xw", "ada", "ada@example.com", &[TOO_SHORT]),
        ("qwertyuiop", "ada", "ada@example.com", &[TOO_COMMON]),
        ("iloveyou", "ada", "ada@example.com", &[TOO_COMMON]),
        ("472918365021", "ada", "ada@example.com", &[NUMERIC]),
        ("12345678", "ada", "ada@example.com", &[TOO_COMMON, NUMERIC]),
        (
            "123",
            "ada",
            "ada@example.com",
            &[TOO_SHORT, TOO_COMMON, NUMERIC],
        ),
        (
            "margaret.hamilton",
            "margaret.hamilton1",
            "mh@example.com",
            &["The password is too similar to the username."],
        ),
        (
            "hamilton.margaret",
            "mh",
            "hamilton.margaret@nasa.gov",
            &["The password is too similar to the email address."],
        ),
    ];
    for (password, username, email, expected) in cases {
        assert_refused(
            &app,
            json!({"username": username, "email": email, "password": password}),
            json!({ "password": expected }),
        )
        .await;
    }
}

async fn several_bad_fields_are_reported_in_one_response(app: TestApp) {
    assert_refused(
        &app,
        json!({"username": "bad name!", "email": "nope", "password": "123"}),
        json!({
            "username": [USERNAME_INVALID],
            "email": [EMAIL_INVALID],
            "password": [TOO_SHORT, TOO_COMMON, NUMERIC],
        }),
    )
    .await;
    // A taken username is reported together with the other fields' problems.
    app.register("ada").await;
    assert_refused(
        &app,
        json!({"username": "ada", "email": "nope", "password": PASSWORD}),
        json!({"username": [USERNAME_TAKEN], "email": [EMAIL_INVALID]}),
    )
    .await;
}

async fn me_without_a_token_is_401_with_www_authenticate(app: TestApp) {
    for path in ["/api/users/me/", "/api/users/me"] {
        let r = app.get(path, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(r.body, json!({"detail": NOT_AUTHENTICATED}), "{path}");
        assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"api\""));
    }
}

async fn me_shows_the_callers_own_account(app: TestApp) {
    let (ada, ada_token) = app.user("ada").await;
    let (bob, bob_token) = app.staff("bob").await;
    let me = app.get("/api/users/me/", Some(&ada_token)).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.body["id"], json!(ada));
    assert_eq!(me.body["username"], "ada");
    assert_eq!(me.body["email"], "ada@example.com");
    assert_eq!(me.body["is_staff"], false);
    assert!(me.body.get("password").is_none());
    let me = app.get("/api/users/me", Some(&bob_token)).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.body["id"], json!(bob));
    assert_eq!(me.body["username"], "bob");
    assert_eq!(me.body["is_staff"], true);
}

async fn delete_me_without_a_token_is_401(app: TestApp) {
    app.register("ada").await;
    let r = app
        .send(
            Method::DELETE,
            "/api/users/me/",
            None,
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body, json!({"detail": NOT_AUTHENTICATED}));
    assert_eq!(users(&app), 1);
}

async fn delete_me_with_a_wrong_password_keeps_the_account(app: TestApp) {
    let (id, token) = app.user("ada").await;
    let r = app
        .send(
            Method::DELETE,
            "/api/users/me/",
            Some(&token),
            Some(json!({"password": format!("{PASSWORD}x")})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.body, json!({"password": ["Incorrect password."]}));
    assert_eq!(app.count("users", &format!("id = {id}")), 1);
    let me = app.get("/api/users/me/", Some(&token)).await;
    assert_eq!(me.status, StatusCode::OK, "the token must still work");
}

async fn delete_me_without_a_password_is_refused(app: TestApp) {
    let (id, token) = app.user("ada").await;
    // A JSON body without the field, and no body at all, both name the missing field.
    let r = app
        .send(
            Method::DELETE,
            "/api/users/me/",
            Some(&token),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.body, json!({"password": [REQUIRED]}));
    let r = app
        .send(Method::DELETE, "/api/users/me/", Some(&token), None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.body, json!({"password": [REQUIRED]}));
    assert_eq!(app.count("users", &format!("id = {id}")), 1);
}

async fn delete_me_with_the_right_password_removes_the_account(app: TestApp) {
    let (id, token) = app.user("ada").await;
    let (bob, _) = app.user("bob").await;
    let r = app
        .send(
            Method::DELETE,
            "/api/users/me",
            Some(&token),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert!(r.text.is_empty(), "204 with a body: {}", r.text);
    assert_eq!(app.count("users", &format!("id = {id}")), 0);
    assert_eq!(
        app.count("users", &format!("id = {bob}")),
        1,
        "only the caller goes"
    );

    let me = app.get("/api/users/me/", Some(&token)).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        me.body,
        json!({"detail": "User not found", "code": "user_not_found"})
    );
    let login = app
        .post(
            "/api/token/",
            None,
            json!({"username": "ada", "password": PASSWORD}),
        )
        .await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED);
    // The username is free again.
    let again = app.register("ada").await;
    assert_ne!(again, id, "ids are never reused");
}
