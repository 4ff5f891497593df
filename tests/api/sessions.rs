//! Sessions (SPEC.md §11): refresh token families, reuse detection, signing out one device
//! or all, and a password change that ends every session.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{self, PASSWORD, Resp, SECRET, TestApp};
use crate::on_both_backends;

on_both_backends!(
    login_creates_a_session_with_the_user_agent,
    refresh_rotates_within_the_session,
    replaying_a_rotated_refresh_token_ends_the_session,
    ending_one_session_leaves_the_others,
    sessions_of_others_cannot_be_ended,
    logout_all_ends_every_session,
    blacklisting_a_refresh_token_ends_its_session,
    password_change_ends_every_session,
    wrong_old_password_changes_nothing,
    new_password_is_validated,
    concurrent_refreshes_of_one_token_succeed_once_in_a_session,
    long_user_agents_are_cut,
    tokens_from_before_sessions_keep_working_until_a_password_change,
);

const NEW_PASSWORD: &str = "Vb9#kQw4-new-rally";

/// Sends with a `User-Agent` of our choosing.
async fn send_as(
    app: &TestApp,
    agent: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Resp {
    let mut req = app
        .client
        .request(method, app.url(path))
        .header("User-Agent", agent);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    helpers::read(req.send().await.expect("request sent")).await
}

/// Logs `username` in from device `agent`: (access, refresh).
async fn login_as(app: &TestApp, username: &str, agent: &str) -> (String, String) {
    let r = send_as(
        app,
        agent,
        Method::POST,
        "/api/token/",
        None,
        Some(json!({"username": username, "password": PASSWORD})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    pair(&r)
}

fn pair(r: &Resp) -> (String, String) {
    (
        r.body["access"].as_str().expect("access").to_string(),
        r.body["refresh"].as_str().expect("refresh").to_string(),
    )
}

async fn refresh(app: &TestApp, token: &str) -> Resp {
    app.post("/api/token/refresh/", None, json!({"refresh": token}))
        .await
}

async fn sessions(app: &TestApp, access: &str) -> Vec<Value> {
    let r = app.get("/api/sessions/", Some(access)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body.as_array().expect("array").clone()
}

async fn me_status(app: &TestApp, access: &str) -> StatusCode {
    app.get("/api/users/me/", Some(access)).await.status
}

fn assert_revoked_access(r: &Resp) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert_eq!(r.body["code"], "token_not_valid", "{}", r.text);
    assert_eq!(
        r.body["messages"][0]["message"], "Token has been revoked",
        "{}",
        r.text
    );
}

async fn login_creates_a_session_with_the_user_agent(app: TestApp) {
    app.register("ada").await;
    let (access, _) = login_as(&app, "ada", "Firefox/140 on a laptop").await;
    let (phone, _) = login_as(&app, "ada", "Phone/1").await;
    let list = sessions(&app, &access).await;
    assert_eq!(list.len(), 2, "{list:?}");
    // Newest use first: the phone logged in last.
    assert_eq!(list[0]["user_agent"], "Phone/1");
    assert_eq!(list[0]["current"], false);
    assert_eq!(list[1]["user_agent"], "Firefox/140 on a laptop");
    assert_eq!(list[1]["current"], true);
    for s in &list {
        let keys: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys.len(),
            5,
            "id, created_at, last_used_at, user_agent, current: {s}"
        );
        assert!(s["created_at"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(sessions(&app, &phone).await[0]["current"], true);
    assert_eq!(app.count("sessions", "1 = 1"), 2);
    // Signed out: 401.
    assert_eq!(
        app.get("/api/sessions/", None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn refresh_rotates_within_the_session(app: TestApp) {
    app.register("ada").await;
    let (access, first) = login_as(&app, "ada", "Old/1").await;
    let before = sessions(&app, &access).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let r = send_as(
        &app,
        "New/2",
        Method::POST,
        "/api/token/refresh/",
        None,
        Some(json!({"refresh": first})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let (access2, second) = pair(&r);
    let after = sessions(&app, &access2).await;
    assert_eq!(after.len(), 1, "still one session: {after:?}");
    assert_eq!(after[0]["id"], before[0]["id"]);
    assert_eq!(after[0]["current"], true);
    assert_eq!(after[0]["user_agent"], "New/2");
    assert_eq!(after[0]["created_at"], before[0]["created_at"]);
    assert!(
        after[0]["last_used_at"].as_str() > before[0]["last_used_at"].as_str(),
        "{before:?} {after:?}"
    );
    // The old access token of the same session still works until it expires.
    assert_eq!(me_status(&app, &access).await, StatusCode::OK);
    assert_eq!(refresh(&app, &second).await.status, StatusCode::OK);
}

async fn replaying_a_rotated_refresh_token_ends_the_session(app: TestApp) {
    app.register("ada").await;
    let (_, other_refresh) = login_as(&app, "ada", "Other/1").await;
    let (access1, first) = login_as(&app, "ada", "Victim/1").await;
    let r = refresh(&app, &first).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let (access2, second) = pair(&r);
    // Someone replays the rotated token.
    let r = refresh(&app, &first).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"detail": "Token is blacklisted", "code": "token_not_valid"})
    );
    // The whole family is dead: the newest refresh token and every access token of it.
    let r = refresh(&app, &second).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"detail": "Session has ended", "code": "token_not_valid"})
    );
    assert_revoked_access(&app.get("/api/users/me/", Some(&access2)).await);
    assert_revoked_access(&app.get("/api/users/me/", Some(&access1)).await);
    assert_eq!(
        app.count("sessions", "ended_at IS NOT NULL"),
        1,
        "only the replayed session ended"
    );
    // The other session is untouched.
    assert_eq!(refresh(&app, &other_refresh).await.status, StatusCode::OK);
}

async fn ending_one_session_leaves_the_others(app: TestApp) {
    app.register("ada").await;
    let (laptop_access, laptop_refresh) = login_as(&app, "ada", "Laptop").await;
    let (phone_access, phone_refresh) = login_as(&app, "ada", "Phone").await;
    let list = sessions(&app, &laptop_access).await;
    let phone_id = list
        .iter()
        .find(|s| s["user_agent"] == "Phone")
        .expect("phone session")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/sessions/{phone_id}/");
    let r = app
        .send(Method::DELETE, &path, Some(&laptop_access), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_revoked_access(&app.get("/api/users/me/", Some(&phone_access)).await);
    assert_eq!(
        refresh(&app, &phone_refresh).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(me_status(&app, &laptop_access).await, StatusCode::OK);
    let list = sessions(&app, &laptop_access).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["user_agent"], "Laptop");
    // Ending it again: it is no longer there.
    let r = app
        .send(Method::DELETE, &path, Some(&laptop_access), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(refresh(&app, &laptop_refresh).await.status, StatusCode::OK);
}

async fn sessions_of_others_cannot_be_ended(app: TestApp) {
    app.register("ada").await;
    app.register("bob").await;
    let (ada, _) = login_as(&app, "ada", "A").await;
    let (bob, _) = login_as(&app, "bob", "B").await;
    let bob_session = sessions(&app, &bob).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    for id in [bob_session.as_str(), "not-a-session"] {
        let r = app
            .send(
                Method::DELETE,
                &format!("/api/sessions/{id}/"),
                Some(&ada),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
        assert_eq!(r.body, json!({"detail": "Not found."}));
    }
    assert_eq!(me_status(&app, &bob).await, StatusCode::OK);
    assert_eq!(sessions(&app, &ada).await.len(), 1, "ada sees only her own");
    let r = app
        .send(
            Method::DELETE,
            &format!("/api/sessions/{bob_session}/"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

async fn logout_all_ends_every_session(app: TestApp) {
    app.register("ada").await;
    app.register("bob").await;
    let (a1, r1) = login_as(&app, "ada", "One").await;
    let (a2, r2) = login_as(&app, "ada", "Two").await;
    let (bob, _) = login_as(&app, "bob", "Bob").await;
    let r = app
        .post("/api/token/logout_all/", Some(&a1), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, json!({"ended": 2}));
    for access in [&a1, &a2] {
        assert_revoked_access(&app.get("/api/users/me/", Some(access)).await);
    }
    for token in [&r1, &r2] {
        assert_eq!(refresh(&app, token).await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(me_status(&app, &bob).await, StatusCode::OK);
    // Signing in again works, in a new session.
    let (fresh, _) = login_as(&app, "ada", "Three").await;
    assert_eq!(sessions(&app, &fresh).await.len(), 1);
    assert_eq!(
        app.post("/api/token/logout_all/", None, json!({}))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

async fn blacklisting_a_refresh_token_ends_its_session(app: TestApp) {
    app.register("ada").await;
    let (access, refresh_token) = login_as(&app, "ada", "X").await;
    let (other, _) = login_as(&app, "ada", "Y").await;
    let r = app
        .post(
            "/api/token/blacklist/",
            None,
            json!({"refresh": refresh_token}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_revoked_access(&app.get("/api/users/me/", Some(&access)).await);
    let r = refresh(&app, &refresh_token).await;
    assert_eq!(
        r.body,
        json!({"detail": "Token is blacklisted", "code": "token_not_valid"})
    );
    assert_eq!(me_status(&app, &other).await, StatusCode::OK);
    assert_eq!(sessions(&app, &other).await.len(), 1);
}

async fn change_password(app: &TestApp, access: &str, old: &str, new: &str) -> Resp {
    app.post(
        "/api/users/me/password/",
        Some(access),
        json!({"old_password": old, "new_password": new}),
    )
    .await
}

async fn password_change_ends_every_session(app: TestApp) {
    app.register("ada").await;
    let (a1, r1) = login_as(&app, "ada", "One").await;
    let (a2, r2) = login_as(&app, "ada", "Two").await;
    // A token from before sessions existed (no `sid`) is cut off too, by its `iat`.
    let (_, legacy) = {
        let r = app
            .post(
                "/api/token/",
                None,
                json!({"username": "ada", "password": PASSWORD}),
            )
            .await;
        pair(&r)
    };
    let r = send_as(
        &app,
        "Two",
        Method::POST,
        "/api/users/me/password/",
        Some(&a2),
        Some(json!({"old_password": PASSWORD, "new_password": NEW_PASSWORD})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let (fresh_access, fresh_refresh) = pair(&r);
    // Issued in the same second as the change, before it: refused. Issued by it: accepted.
    for access in [&a1, &a2] {
        assert_revoked_access(&app.get("/api/users/me/", Some(access)).await);
    }
    for token in [&r1, &r2, &legacy] {
        assert_eq!(refresh(&app, token).await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(me_status(&app, &fresh_access).await, StatusCode::OK);
    let list = sessions(&app, &fresh_access).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["current"], true);
    assert_eq!(list[0]["user_agent"], "Two");
    let r = refresh(&app, &fresh_refresh).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(me_status(&app, &pair(&r).0).await, StatusCode::OK);
    // The new password signs in at once (in the same second), the old one no longer.
    let r = app
        .post(
            "/api/token/",
            None,
            json!({"username": "ada", "password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(me_status(&app, &pair(&r).0).await, StatusCode::OK);
    let r = app
        .post(
            "/api/token/",
            None,
            json!({"username": "ada", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

async fn wrong_old_password_changes_nothing(app: TestApp) {
    app.register("ada").await;
    let (access, refresh_token) = login_as(&app, "ada", "One").await;
    let r = change_password(&app, &access, "not my password", NEW_PASSWORD).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"old_password": ["Your old password was entered incorrectly. Please enter it again."]})
    );
    assert_eq!(me_status(&app, &access).await, StatusCode::OK);
    assert_eq!(app.count("sessions", "ended_at IS NOT NULL"), 0);
    assert_eq!(app.count("users", "tokens_valid_after IS NOT NULL"), 0);
    assert_eq!(refresh(&app, &refresh_token).await.status, StatusCode::OK);
    app.login("ada").await;
    let r = app.post("/api/users/me/password/", None, json!({})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

async fn new_password_is_validated(app: TestApp) {
    app.register("ada").await;
    let (access, _) = app.login("ada").await;
    let r = change_password(&app, &access, PASSWORD, "12345678").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.body.get("old_password").is_none(), "{}", r.text);
    assert!(
        r.body["new_password"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{}",
        r.text
    );
    let r = app
        .post("/api/users/me/password/", Some(&access), json!({}))
        .await;
    assert_eq!(
        r.body,
        json!({"old_password": ["This field is required."], "new_password": ["This field is required."]})
    );
    assert_eq!(me_status(&app, &access).await, StatusCode::OK);
    app.login("ada").await;
}

async fn concurrent_refreshes_of_one_token_succeed_once_in_a_session(app: TestApp) {
    app.register("ada").await;
    let (_, token) = app.login("ada").await;
    let requests = (0..10).map(|_| refresh(&app, &token));
    let responses = futures::future::join_all(requests).await;
    let ok = responses
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert_eq!(ok, 1, "{responses:#?}");
    for r in responses.iter().filter(|r| r.status != StatusCode::OK) {
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
        assert_eq!(r.body["code"], "token_not_valid");
    }
    assert_eq!(app.count("token_blacklist", "1 = 1"), 1);
}

async fn long_user_agents_are_cut(app: TestApp) {
    app.register("ada").await;
    let agent = "a".repeat(700);
    let (access, _) = login_as(&app, "ada", &agent).await;
    let list = sessions(&app, &access).await;
    assert_eq!(list[0]["user_agent"].as_str().unwrap().chars().count(), 500);
}

/// A token as rally signed them before sessions: no `sid`, issued `ago` seconds back.
fn legacy_token(token_type: &str, user_id: i64, ago: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "token_type": token_type,
        "exp": now + 3600,
        "iat": now - ago,
        "jti": uuid::Uuid::new_v4().simple().to_string(),
        "user_id": user_id.to_string(),
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("token signs")
}

async fn tokens_from_before_sessions_keep_working_until_a_password_change(app: TestApp) {
    let id = app.register("ada").await;
    let access = legacy_token("access", id, 10);
    assert_eq!(me_status(&app, &access).await, StatusCode::OK);
    // Refreshing one starts a session for its successor.
    let r = refresh(&app, &legacy_token("refresh", id, 10)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let (new_access, _) = pair(&r);
    let list = sessions(&app, &new_access).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["current"], true);
    // Sessions listed from a token without one: none is current.
    assert_eq!(sessions(&app, &access).await[0]["current"], false);

    let later_refresh = legacy_token("refresh", id, 0);
    let r = change_password(&app, &new_access, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_revoked_access(&app.get("/api/users/me/", Some(&access)).await);
    let r = refresh(&app, &later_refresh).await;
    assert_eq!(
        r.body,
        json!({"detail": "Token has been revoked", "code": "token_not_valid"})
    );
    // Public endpoints refuse a revoked token too, as any bad token.
    assert_revoked_access(&app.get("/api/events/", Some(&access)).await);
}
