//! Simple JWT's four token views and bearer authentication, as a client meets them.

use base64::Engine;
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{self, PASSWORD, Resp, SECRET, TestApp};
use crate::on_both_backends;

const BAD_LOGIN: &str = "No active account found with the given credentials";
const NOT_AUTHENTICATED: &str = "Authentication credentials were not provided.";
const NOT_VALID_FOR_ANY: &str = "Given token not valid for any token type";

on_both_backends!(
    obtain_returns_an_uncacheable_access_and_refresh_pair,
    wrong_password_and_unknown_user_get_the_same_401,
    inactive_user_cannot_obtain_tokens,
    obtain_requires_username_and_password,
    refresh_rotates_the_pair,
    replayed_refresh_token_is_refused,
    concurrent_refreshes_of_one_token_succeed_once,
    access_token_is_refused_by_refresh,
    refresh_token_is_refused_as_bearer,
    refresh_requires_a_token,
    verify_accepts_valid_access_and_refresh_tokens,
    verify_refuses_garbage,
    verify_refuses_a_blacklisted_refresh_token,
    blacklisted_refresh_token_never_works_again,
    blacklist_refuses_an_access_token,
    expired_tokens_are_refused,
    token_signed_like_simple_jwt_is_accepted,
    token_signed_with_another_key_is_refused,
    token_with_another_algorithm_is_refused,
    unsigned_alg_none_token_is_refused,
    bearer_header_without_a_token_is_refused,
    other_authorization_schemes_are_ignored,
    tokens_of_a_deleted_user_stop_working,
    tokens_of_an_inactive_user_stop_working,
    bad_token_is_refused_even_on_a_public_endpoint,
);

fn blacklisted(app: &TestApp) -> i64 {
    app.count("token_blacklist", "1 = 1")
}

/// The claims of a token rally issued, checked against its signature.
fn claims(token: &str) -> Value {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    jsonwebtoken::decode::<Value>(
        token,
        &DecodingKey::from_secret(SECRET.as_bytes()),
        &validation,
    )
    .expect("rally's token verifies with the test secret")
    .claims
}

/// Signs `claims` with `key` and `alg`.
fn sign(alg: Algorithm, key: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(key))
        .expect("token signs")
}

/// Simple JWT's claims for `user_id`, valid from `iat` to `exp` (seconds from now).
fn simple_jwt_claims(token_type: &str, user_id: i64, iat: i64, exp: i64) -> Value {
    let now = Utc::now().timestamp();
    json!({
        "token_type": token_type,
        "exp": now + exp,
        "iat": now + iat,
        "jti": uuid::Uuid::new_v4().simple().to_string(),
        "user_id": user_id.to_string(),
    })
}

/// GET /api/users/me/ with a raw `Authorization` header.
async fn me_with_header(app: &TestApp, authorization: &str) -> Resp {
    let req = app
        .client
        .get(app.url("/api/users/me/"))
        .header("Authorization", authorization);
    helpers::read(req.send().await.expect("request sent")).await
}

fn assert_401(r: &Resp, expected: Value) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert_eq!(r.body, expected);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"api\""),
        "401 without WWW-Authenticate"
    );
}

/// A bearer token refused with one Simple JWT message for the access token class.
fn assert_bad_bearer(r: &Resp, message: &str) {
    assert_401(
        r,
        json!({
            "detail": NOT_VALID_FOR_ANY,
            "code": "token_not_valid",
            "messages": [{
                "token_class": "AccessToken",
                "token_type": "access",
                "message": message,
            }],
        }),
    );
}

fn token_not_valid(detail: &str) -> Value {
    json!({"detail": detail, "code": "token_not_valid"})
}

async fn obtain_returns_an_uncacheable_access_and_refresh_pair(app: TestApp) {
    let id = app.register("ada").await;
    let r = app
        .post(
            "/api/token/",
            None,
            json!({"username": "ada", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let body = r.body.as_object().expect("object");
    assert_eq!(body.len(), 2, "only access and refresh: {}", r.text);
    let access = claims(body["access"].as_str().expect("access"));
    let refresh = claims(body["refresh"].as_str().expect("refresh"));

    assert_eq!(access["token_type"], "access");
    assert_eq!(refresh["token_type"], "refresh");
    // Simple JWT 5.5 writes the user id as a string.
    assert_eq!(access["user_id"], json!(id.to_string()));
    assert_eq!(refresh["user_id"], json!(id.to_string()));
    assert_ne!(access["jti"], refresh["jti"]);
    assert!(access["jti"].as_str().is_some_and(|j| !j.is_empty()));
    let lifetime = |c: &Value| c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap();
    assert_eq!(lifetime(&access), 300);
    assert_eq!(lifetime(&refresh), 86_400);
    let now = Utc::now().timestamp();
    assert!((access["iat"].as_i64().unwrap() - now).abs() <= 5);

    let me = app.get("/api/users/me/", body["access"].as_str()).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["id"], json!(id));
}

async fn wrong_password_and_unknown_user_get_the_same_401(app: TestApp) {
    app.register("ada").await;
    for body in [
        json!({"username": "ada", "password": format!("{PASSWORD}x")}),
        json!({"username": "ada", "password": PASSWORD.to_uppercase()}),
        json!({"username": "nobody", "password": PASSWORD}),
        json!({"username": "ADA", "password": PASSWORD}),
    ] {
        let r = app.post("/api/token/", None, body.clone()).await;
        assert_401(&r, json!({"detail": BAD_LOGIN}));
        assert!(!r.text.contains("access"), "{body}: {}", r.text);
    }
}

async fn inactive_user_cannot_obtain_tokens(app: TestApp) {
    let id = app.register("ada").await;
    app.sql(&format!(
        "UPDATE users SET is_active = FALSE WHERE id = {id}"
    ));
    let r = app
        .post(
            "/api/token/",
            None,
            json!({"username": "ada", "password": PASSWORD}),
        )
        .await;
    assert_401(&r, json!({"detail": BAD_LOGIN}));
}

async fn obtain_requires_username_and_password(app: TestApp) {
    let r = app.post("/api/token/", None, json!({})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"username": ["This field is required."], "password": ["This field is required."]})
    );
    let r = app
        .post("/api/token/", None, json!({"username": "", "password": ""}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"username": ["This field may not be blank."], "password": ["This field may not be blank."]})
    );
}

async fn refresh_rotates_the_pair(app: TestApp) {
    let id = app.register("ada").await;
    let (access, refresh) = app.login("ada").await;
    let r = app
        .post("/api/token/refresh/", None, json!({"refresh": refresh}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let new_access = r.body["access"].as_str().expect("access").to_string();
    let new_refresh = r.body["refresh"].as_str().expect("refresh").to_string();
    assert_ne!(new_access, access);
    assert_ne!(new_refresh, refresh);
    let (a, rf) = (claims(&new_access), claims(&new_refresh));
    assert_eq!(a["token_type"], "access");
    assert_eq!(rf["token_type"], "refresh");
    assert_eq!(a["user_id"], json!(id.to_string()));
    assert_ne!(rf["jti"], claims(&refresh)["jti"]);

    // The old refresh token is blacklisted by its jti; the new pair works.
    let old_jti = claims(&refresh)["jti"].as_str().unwrap().to_string();
    assert_eq!(
        app.count("token_blacklist", &format!("jti = '{old_jti}'")),
        1
    );
    let me = app.get("/api/users/me/", Some(&new_access)).await;
    assert_eq!(me.status, StatusCode::OK);
    let again = app
        .post("/api/token/refresh", None, json!({"refresh": new_refresh}))
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
}

async fn replayed_refresh_token_is_refused(app: TestApp) {
    app.register("ada").await;
    let (_, refresh) = app.login("ada").await;
    let first = app
        .post("/api/token/refresh/", None, json!({"refresh": refresh}))
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(blacklisted(&app), 1);

    let replay = app
        .post("/api/token/refresh/", None, json!({"refresh": refresh}))
        .await;
    assert_401(&replay, token_not_valid("Token is blacklisted"));
    assert!(replay.body.get("access").is_none());
    assert_eq!(blacklisted(&app), 1, "a refused refresh writes nothing");

    // Unlike Simple JWT, the replay ends the token's session (reuse detection, SPEC.md
    // §11): the token it was rotated into is refused too.
    let rotated = first.body["refresh"].as_str().unwrap();
    let r = app
        .post("/api/token/refresh/", None, json!({"refresh": rotated}))
        .await;
    assert_401(&r, token_not_valid("Session has ended"));
}

async fn concurrent_refreshes_of_one_token_succeed_once(app: TestApp) {
    app.register("ada").await;
    let (_, refresh) = app.login("ada").await;
    let requests = (0..6).map(|_| {
        app.post(
            "/api/token/refresh/",
            None,
            json!({"refresh": refresh.clone()}),
        )
    });
    let responses = futures::future::join_all(requests).await;
    let ok = responses
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert_eq!(ok, 1, "{responses:#?}");
    for r in responses.iter().filter(|r| r.status != StatusCode::OK) {
        assert_401(r, token_not_valid("Token is blacklisted"));
    }
    assert_eq!(blacklisted(&app), 1);
}

async fn access_token_is_refused_by_refresh(app: TestApp) {
    app.register("ada").await;
    let (access, _) = app.login("ada").await;
    let r = app
        .post("/api/token/refresh/", None, json!({"refresh": access}))
        .await;
    assert_401(&r, token_not_valid("Token has wrong type"));
    assert_eq!(blacklisted(&app), 0);
}

async fn refresh_token_is_refused_as_bearer(app: TestApp) {
    app.register("ada").await;
    let (_, refresh) = app.login("ada").await;
    let r = app.get("/api/users/me/", Some(&refresh)).await;
    assert_bad_bearer(&r, "Token has wrong type");
}

async fn refresh_requires_a_token(app: TestApp) {
    for path in ["/api/token/refresh/", "/api/token/blacklist/"] {
        let r = app.post(path, None, json!({})).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.text);
        assert_eq!(r.body, json!({"refresh": ["This field is required."]}));
    }
    let r = app.post("/api/token/verify/", None, json!({})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.body, json!({"token": ["This field is required."]}));
}

async fn verify_accepts_valid_access_and_refresh_tokens(app: TestApp) {
    app.register("ada").await;
    let (access, refresh) = app.login("ada").await;
    for token in [access, refresh] {
        let r = app
            .post("/api/token/verify/", None, json!({"token": token}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body, json!({}));
    }
    assert_eq!(blacklisted(&app), 0, "verifying uses nothing up");
}

async fn verify_refuses_garbage(app: TestApp) {
    for garbage in ["garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.c2ln"] {
        let r = app
            .post("/api/token/verify/", None, json!({"token": garbage}))
            .await;
        assert_401(&r, token_not_valid("Token is invalid"));
    }
    // Simple JWT's `token` is a CharField: blank is a field error, not a bad token.
    let r = app
        .post("/api/token/verify/", None, json!({"token": ""}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.body, json!({"token": ["This field may not be blank."]}));
}

async fn verify_refuses_a_blacklisted_refresh_token(app: TestApp) {
    app.register("ada").await;
    let (_, refresh) = app.login("ada").await;
    let r = app
        .post("/api/token/blacklist/", None, json!({"refresh": refresh}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .post("/api/token/verify/", None, json!({"token": refresh}))
        .await;
    assert_401(&r, token_not_valid("Token is blacklisted"));
}

async fn blacklisted_refresh_token_never_works_again(app: TestApp) {
    let id = app.register("ada").await;
    let (access, refresh) = app.login("ada").await;
    let r = app
        .post("/api/token/blacklist/", None, json!({"refresh": refresh}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, json!({}));
    let jti = claims(&refresh)["jti"].as_str().unwrap().to_string();
    assert_eq!(
        app.count(
            "token_blacklist",
            &format!("jti = '{jti}' AND user_id = {id}")
        ),
        1
    );

    let r = app
        .post("/api/token/refresh/", None, json!({"refresh": refresh}))
        .await;
    assert_401(&r, token_not_valid("Token is blacklisted"));
    let r = app
        .post("/api/token/blacklist", None, json!({"refresh": refresh}))
        .await;
    assert_401(&r, token_not_valid("Token is blacklisted"));
    assert_eq!(blacklisted(&app), 1);

    // Unlike Simple JWT, blacklisting a refresh token ends its session (SPEC.md §11), so
    // the access token of the pair stops working too.
    let me = app.get("/api/users/me/", Some(&access)).await;
    assert_bad_bearer(&me, "Token has been revoked");
}

async fn blacklist_refuses_an_access_token(app: TestApp) {
    app.register("ada").await;
    let (access, _) = app.login("ada").await;
    let r = app
        .post("/api/token/blacklist/", None, json!({"refresh": access}))
        .await;
    assert_401(&r, token_not_valid("Token has wrong type"));
    assert_eq!(blacklisted(&app), 0);
}

async fn expired_tokens_are_refused(app: TestApp) {
    let id = app.register("ada").await;
    let key = SECRET.as_bytes();
    let access = sign(
        Algorithm::HS256,
        key,
        &simple_jwt_claims("access", id, -400, -10),
    );
    let refresh = sign(
        Algorithm::HS256,
        key,
        &simple_jwt_claims("refresh", id, -90_000, -10),
    );

    assert_bad_bearer(
        &app.get("/api/users/me/", Some(&access)).await,
        "Token is expired",
    );
    let r = app
        .post("/api/token/refresh/", None, json!({"refresh": refresh}))
        .await;
    assert_401(&r, token_not_valid("Token is expired"));
    for token in [&access, &refresh] {
        let r = app
            .post("/api/token/verify/", None, json!({"token": token}))
            .await;
        assert_401(&r, token_not_valid("Token is expired"));
    }
    let r = app
        .post("/api/token/blacklist/", None, json!({"refresh": refresh}))
        .await;
    assert_401(&r, token_not_valid("Token is expired"));
    assert_eq!(blacklisted(&app), 0);
}

async fn token_signed_like_simple_jwt_is_accepted(app: TestApp) {
    // The control for the refusals below: the same claims, signed correctly, work.
    let id = app.register("ada").await;
    let access = sign(
        Algorithm::HS256,
        SECRET.as_bytes(),
        &simple_jwt_claims("access", id, 0, 300),
    );
    let me = app.get("/api/users/me/", Some(&access)).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.body["id"], json!(id));
}

async fn token_signed_with_another_key_is_refused(app: TestApp) {
    let id = app.register("ada").await;
    let key = b"another-secret-another-secret-another-secret";
    let access = sign(
        Algorithm::HS256,
        key,
        &simple_jwt_claims("access", id, 0, 300),
    );
    let refresh = sign(
        Algorithm::HS256,
        key,
        &simple_jwt_claims("refresh", id, 0, 300),
    );
    assert_bad_bearer(
        &app.get("/api/users/me/", Some(&access)).await,
        "Token is invalid",
    );
    let r = app
        .post("/api/token/refresh/", None, json!({"refresh": refresh}))
        .await;
    assert_401(&r, token_not_valid("Token is invalid"));
    let r = app
        .post("/api/token/verify/", None, json!({"token": access}))
        .await;
    assert_401(&r, token_not_valid("Token is invalid"));
    assert_eq!(blacklisted(&app), 0);
}

async fn token_with_another_algorithm_is_refused(app: TestApp) {
    // Right key, wrong algorithm: only HS256 is accepted.
    let id = app.register("ada").await;
    let access = sign(
        Algorithm::HS512,
        SECRET.as_bytes(),
        &simple_jwt_claims("access", id, 0, 300),
    );
    assert_bad_bearer(
        &app.get("/api/users/me/", Some(&access)).await,
        "Token is invalid",
    );
}

async fn unsigned_alg_none_token_is_refused(app: TestApp) {
    let id = app.register("ada").await;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = |token_type| {
        b64.encode(
            simple_jwt_claims(token_type, id, 0, 300)
                .to_string()
                .as_bytes(),
        )
    };
    let access = format!("{header}.{}.", claims("access"));
    let refresh = format!("{header}.{}.", claims("refresh"));
    assert_bad_bearer(
        &app.get("/api/users/me/", Some(&access)).await,
        "Token is invalid",
    );
    let r = app
        .post("/api/token/refresh/", None, json!({"refresh": refresh}))
        .await;
    assert_401(&r, token_not_valid("Token is invalid"));
    let r = app
        .post("/api/token/verify/", None, json!({"token": access}))
        .await;
    assert_401(&r, token_not_valid("Token is invalid"));
    assert_eq!(blacklisted(&app), 0);
}

async fn bearer_header_without_a_token_is_refused(app: TestApp) {
    app.register("ada").await;
    let (access, _) = app.login("ada").await;
    for header in [
        "Bearer".to_string(),
        "Bearer ".to_string(),
        format!("Bearer {access} extra"),
    ] {
        let r = me_with_header(&app, &header).await;
        assert_401(
            &r,
            json!({
                "detail": "Authorization header must contain two space-delimited values",
                "code": "bad_authorization_header",
            }),
        );
    }
}

async fn other_authorization_schemes_are_ignored(app: TestApp) {
    app.register("ada").await;
    let (access, _) = app.login("ada").await;
    // Only `Bearer`, spelled so, is Simple JWT's; anything else means no credentials.
    for header in [
        "Basic xyz".to_string(),
        "Token abc".to_string(),
        format!("bearer {access}"),
    ] {
        let r = me_with_header(&app, &header).await;
        assert_401(&r, json!({"detail": NOT_AUTHENTICATED}));
    }
    let r = me_with_header(&app, &format!("Bearer {access}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

async fn tokens_of_a_deleted_user_stop_working(app: TestApp) {
    let id = app.register("ada").await;
    let (access, refresh) = app.login("ada").await;
    app.sql(&format!("DELETE FROM users WHERE id = {id}"));

    let r = app.get("/api/users/me/", Some(&access)).await;
    assert_401(
        &r,
        json!({"detail": "User not found", "code": "user_not_found"}),
    );
    let r = app
        .post("/api/token/refresh/", None, json!({"refresh": refresh}))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert_eq!(r.body["code"], "token_not_valid");
    assert!(r.body.get("access").is_none());
    assert_eq!(blacklisted(&app), 0);
}

async fn tokens_of_an_inactive_user_stop_working(app: TestApp) {
    let id = app.register("ada").await;
    let (access, refresh) = app.login("ada").await;
    app.sql(&format!(
        "UPDATE users SET is_active = FALSE WHERE id = {id}"
    ));

    let r = app.get("/api/users/me/", Some(&access)).await;
    assert_401(
        &r,
        json!({"detail": "User is inactive", "code": "user_inactive"}),
    );
    let r = app
        .post("/api/token/refresh/", None, json!({"refresh": refresh}))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert_eq!(r.body["code"], "token_not_valid");
    assert!(r.body.get("access").is_none());
    assert_eq!(blacklisted(&app), 0, "a refused refresh uses nothing up");

    // Reactivated, the same tokens work again: nothing was consumed.
    app.sql(&format!(
        "UPDATE users SET is_active = TRUE WHERE id = {id}"
    ));
    let r = app.get("/api/users/me/", Some(&access)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .post("/api/token/refresh/", None, json!({"refresh": refresh}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

async fn bad_token_is_refused_even_on_a_public_endpoint(app: TestApp) {
    // As in Simple JWT: a token that is present is checked, whatever the route needs.
    let id = app.register("ada").await;
    let (_, refresh) = app.login("ada").await;
    let public = app.get("/api/events/", None).await;
    assert_eq!(public.status, StatusCode::OK, "{}", public.text);
    assert_bad_bearer(
        &app.get("/api/events/", Some("garbage")).await,
        "Token is invalid",
    );
    assert_bad_bearer(
        &app.get("/api/events/", Some(&refresh)).await,
        "Token has wrong type",
    );
    let expired = sign(
        Algorithm::HS256,
        SECRET.as_bytes(),
        &simple_jwt_claims("access", id, -400, -10),
    );
    assert_bad_bearer(
        &app.get("/api/events/", Some(&expired)).await,
        "Token is expired",
    );
}
