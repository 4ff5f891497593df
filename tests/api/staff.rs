//! Staff administration (beyond the Django app, for the admin console): the user list,
//! staff and active flags, and the mail outbox. Every operation is staff-only.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, TestApp, spawn_app_with, test_mail_settings};
use crate::on_both_backends;
use crate::smtp::{MailSink, free_port};

on_both_backends!(
    staff_list_and_search_users_a_page_at_a_time,
    user_list_is_staff_only,
    bad_user_list_parameters_are_named,
    staff_make_and_unmake_staff,
    deactivated_users_are_locked_out_until_reactivated,
    user_patch_refusals_leave_the_user_unchanged,
    staff_cannot_demote_or_deactivate_themselves,
    outbox_is_staff_only,
    retry_as_non_staff_requeues_nothing,
);

fn usernames(r: &crate::helpers::Resp) -> Vec<String> {
    r.body
        .as_array()
        .expect("a list")
        .iter()
        .map(|u| u["username"].as_str().expect("username").to_string())
        .collect()
}

/// (is_staff, is_active) as stored.
fn flags(app: &TestApp, id: i64) -> (i64, i64) {
    (
        app.count("users", &format!("id = {id} AND is_staff")),
        app.count("users", &format!("id = {id} AND is_active")),
    )
}

async fn patch(
    app: &TestApp,
    token: Option<&str>,
    path: &str,
    body: Value,
) -> crate::helpers::Resp {
    app.send(Method::PATCH, path, token, Some(body)).await
}

async fn staff_list_and_search_users_a_page_at_a_time(app: TestApp) {
    let (boss_id, boss) = app.staff("boss").await;
    for name in ["carol", "Alice", "bob", "dave"] {
        app.register(name).await;
    }
    let r = app.get("/api/users/", Some(&boss)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        usernames(&r),
        vec!["Alice", "bob", "boss", "carol", "dave"],
        "by username"
    );
    assert_eq!(r.header("x-total-count"), Some("5"));
    let boss_row = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == boss_id)
        .expect("boss listed");
    assert_eq!(boss_row["email"], "boss@example.com");
    assert_eq!(boss_row["is_staff"], true);
    assert_eq!(boss_row["is_active"], true);
    assert!(boss_row["date_joined"].as_str().unwrap().ends_with('Z'));
    assert!(boss_row.get("password").is_none());

    // Search: each term in the username or the email, case-insensitively.
    let r = app.get("/api/users/?search=ALICE", Some(&boss)).await;
    assert_eq!(usernames(&r), vec!["Alice"]);
    let r = app
        .get("/api/users/?search=example.com%20bo", Some(&boss))
        .await;
    assert_eq!(usernames(&r), vec!["bob", "boss"]);
    let r = app.get("/api/users/?search=%25", Some(&boss)).await;
    assert_eq!(r.body, json!([]), "LIKE metacharacters match literally");
    assert_eq!(r.header("x-total-count"), Some("0"));

    // Paging as the event list pages.
    let r = app.get("/api/users/?limit=2&offset=2", Some(&boss)).await;
    assert_eq!(usernames(&r), vec!["boss", "carol"]);
    assert_eq!(r.header("x-total-count"), Some("5"));
    let link = r.header("link").expect("link");
    assert!(link.contains("offset=4>; rel=\"next\""), "{link}");
    assert!(link.contains("limit=2>; rel=\"prev\""), "{link}");
}

async fn user_list_is_staff_only(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let r = app.get("/api/users/", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.body["detail"],
        "Authentication credentials were not provided."
    );
    assert!(r.header("www-authenticate").is_some());
    let r = app.get("/api/users/?search=ada", Some(&ada)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.body,
        json!({"detail": "You do not have permission to perform this action."})
    );
    // Permission comes before the parameters, as in DRF.
    let r = app.get("/api/users/?limit=x", Some(&ada)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

async fn bad_user_list_parameters_are_named(app: TestApp) {
    let (_, boss) = app.staff("boss").await;
    let r = app
        .get("/api/users/?limit=0&offset=-1&search=a%00b", Some(&boss))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    for name in ["limit", "offset", "search"] {
        assert!(r.body.get(name).is_some_and(Value::is_array), "{}", r.text);
    }
}

async fn staff_make_and_unmake_staff(app: TestApp) {
    let (_, boss) = app.staff("boss").await;
    let (ada_id, ada) = app.user("ada").await;
    let path = format!("/api/users/{ada_id}/");
    let r = patch(&app, Some(&boss), &path, json!({"is_staff": true})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["id"], ada_id);
    assert_eq!(r.body["username"], "ada");
    assert_eq!(r.body["is_staff"], true);
    assert_eq!(r.body["is_active"], true);
    assert_eq!(flags(&app, ada_id), (1, 1));
    // Her token is the same; what it may do follows the stored flag at once.
    assert_eq!(
        app.get("/api/users/", Some(&ada)).await.status,
        StatusCode::OK
    );
    // Without the slash too, and with Django's spellings of a boolean.
    let r = patch(
        &app,
        Some(&boss),
        &format!("/api/users/{ada_id}"),
        json!({"is_staff": "false"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["is_staff"], false);
    assert_eq!(flags(&app, ada_id), (0, 1));
    assert_eq!(
        app.get("/api/users/", Some(&ada)).await.status,
        StatusCode::FORBIDDEN
    );
    // Nothing to change is no change.
    let r = patch(&app, Some(&boss), &path, json!({"username": "eve"})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["username"], "ada", "other fields are read-only");
    assert_eq!(app.count("users", "username = 'eve'"), 0);
}

async fn deactivated_users_are_locked_out_until_reactivated(app: TestApp) {
    let (_, boss) = app.staff("boss").await;
    let bob_id = app.register("bob").await;
    let (bob_access, bob_refresh) = app.login("bob").await;
    let path = format!("/api/users/{bob_id}/");
    let r = patch(&app, Some(&boss), &path, json!({"is_active": false})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["is_active"], false);
    assert_eq!(flags(&app, bob_id), (0, 0));
    let r = app.get("/api/users/me/", Some(&bob_access)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["code"], "user_inactive");
    let r = app
        .post("/api/token/refresh/", None, json!({"refresh": bob_refresh}))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app
        .post(
            "/api/token/",
            None,
            json!({"username": "bob", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Inactive users still show in the list, so staff can bring them back.
    let r = app.get("/api/users/?search=bob", Some(&boss)).await;
    assert_eq!(r.body[0]["is_active"], false);

    let r = patch(&app, Some(&boss), &path, json!({"is_active": true})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(flags(&app, bob_id), (0, 1));
    let (access, _) = app.login("bob").await;
    assert_eq!(
        app.get("/api/users/me/", Some(&access)).await.status,
        StatusCode::OK
    );
}

async fn user_patch_refusals_leave_the_user_unchanged(app: TestApp) {
    let (_, boss) = app.staff("boss").await;
    let (ada_id, ada) = app.user("ada").await;
    let path = format!("/api/users/{ada_id}/");
    let promote = json!({"is_staff": true});

    let r = patch(&app, None, &path, promote.clone()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Not staff: refused, whether the user exists or not, and whatever the body.
    for target in [
        path.clone(),
        "/api/users/999999/".into(),
        "/api/users/x/".into(),
    ] {
        let r = patch(&app, Some(&ada), &target, promote.clone()).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{target}");
    }
    let r = patch(&app, Some(&ada), &path, json!({"is_staff": "maybe"})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    for missing in [
        "/api/users/999999/",
        "/api/users/abc/",
        "/api/users/1.5/",
        "/api/users/99999999999999999999/",
    ] {
        let r = patch(&app, Some(&boss), missing, promote.clone()).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{missing}");
        assert_eq!(r.body, json!({"detail": "Not found."}));
    }
    // A missing user is reported before a bad body, as DRF does.
    let r = patch(
        &app,
        Some(&boss),
        "/api/users/999999/",
        json!({"is_staff": 7}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let r = patch(
        &app,
        Some(&boss),
        &path,
        json!({"is_staff": "maybe", "is_active": null}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body,
        json!({"is_staff": ["Must be a valid boolean."], "is_active": ["This field may not be null."]})
    );
    // One good field and one bad: nothing is stored.
    let r = patch(
        &app,
        Some(&boss),
        &path,
        json!({"is_staff": true, "is_active": [false]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body, json!({"is_active": ["Must be a valid boolean."]}));
    let r = patch(&app, Some(&boss), &path, json!([true])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.get("non_field_errors").is_some());
    assert_eq!(
        flags(&app, ada_id),
        (0, 1),
        "every refusal left ada as she was"
    );
}

async fn staff_cannot_demote_or_deactivate_themselves(app: TestApp) {
    let (boss_id, boss) = app.staff("boss").await;
    let path = format!("/api/users/{boss_id}/");
    let r = patch(
        &app,
        Some(&boss),
        &path,
        json!({"is_staff": false, "is_active": false}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.body,
        json!({
            "is_staff": ["You cannot remove your own staff status."],
            "is_active": ["You cannot deactivate your own account."],
        })
    );
    assert_eq!(flags(&app, boss_id), (1, 1));
    // Keeping what they have is fine.
    let r = patch(
        &app,
        Some(&boss),
        &path,
        json!({"is_staff": true, "is_active": true}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // Another staff member may demote them.
    let (_, other) = app.staff("other").await;
    let r = patch(&app, Some(&other), &path, json!({"is_staff": false})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(flags(&app, boss_id), (0, 1));
}

async fn outbox_is_staff_only(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    for (method, path) in [
        (Method::GET, "/api/outbox/"),
        (Method::POST, "/api/outbox/retry/"),
    ] {
        let r = app.send(method.clone(), path, None, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        let r = app.send(method.clone(), path, Some(&ada), None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert!(r.body.get("pending").is_none());
    }
}

async fn retry_as_non_staff_requeues_nothing(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    app.sql(
        "INSERT INTO outbox (recipient, subject, body, message_id, created_at, attempts, \
         next_attempt_at, failed_at, last_error) VALUES ('x@example.com', 'S', 'B', '<f@rally>', \
         '2026-01-01 00:00:00', 12, '2026-01-01 00:00:00', '2026-01-01 00:00:00', 'refused')",
    );
    let r = app.post("/api/outbox/retry/", Some(&ada), json!({})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.count("outbox", "failed_at IS NOT NULL AND attempts = 12"),
        1
    );
}

/// Runs `name(backend)` as `name::sqlite` and `name::postgres`, for tests that need
/// settings of their own (`on_both_backends!` starts the default app).
macro_rules! with_settings_on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[actix_web::test]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }

                #[actix_web::test]
                async fn postgres() {
                    super::$name($crate::helpers::Backend::Postgres).await;
                }
            }
        )*
    };
}

with_settings_on_both_backends!(
    staff_see_outbox_counts_and_failed_mail,
    retry_wakes_the_sender
);

/// The outbox as staff see it: counts by state, the failed mails with their last error.
async fn staff_see_outbox_counts_and_failed_mail(backend: Backend) {
    // No sender in this process: the rows stay exactly as written.
    let Some(app) = spawn_app_with(backend, |s| s.mail.worker = false).await else {
        eprintln!("skipped: TEST_DATABASE_URL is not set");
        return;
    };
    let (_, boss) = app.staff("boss").await;
    app.drop_verification_mail();
    let r = app.get("/api/outbox/", Some(&boss)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"pending": 0, "sent": 0, "failed": 0, "oldest_pending_age_seconds": null, "failed_mails": []})
    );
    for (name, date) in [
        ("A", "2026-12-01"),
        ("B", "2026-12-02"),
        ("C", "2026-12-03"),
    ] {
        let r = app
            .post(
                "/api/events/",
                Some(&boss),
                json!({"name": name, "date": date}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    app.sql("UPDATE outbox SET sent_at = created_at, attempts = 1 WHERE body LIKE '%Name: B%'");
    app.sql(
        "UPDATE outbox SET failed_at = created_at, attempts = 12, \
         last_error = '550 mailbox <unavailable>' WHERE body LIKE '%Name: C%'",
    );
    let r = app.get("/api/outbox/", Some(&boss)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        (
            r.body["pending"].as_i64(),
            r.body["sent"].as_i64(),
            r.body["failed"].as_i64()
        ),
        (Some(1), Some(1), Some(1)),
        "{}",
        r.text
    );
    assert!(
        r.body["oldest_pending_age_seconds"]
            .as_i64()
            .is_some_and(|s| (0..60).contains(&s))
    );
    let failed = &r.body["failed_mails"];
    assert_eq!(failed.as_array().unwrap().len(), 1);
    assert_eq!(failed[0]["recipient"], "boss@example.com");
    assert_eq!(failed[0]["subject"], "New event created");
    assert_eq!(failed[0]["attempts"], 12);
    assert_eq!(failed[0]["last_error"], "550 mailbox <unavailable>");
    assert!(failed[0]["id"].is_i64());
    assert!(failed[0]["created_at"].as_str().unwrap().ends_with('Z'));

    let r = app.post("/api/outbox/retry/", Some(&boss), json!({})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, json!({"requeued": 1}));
    assert_eq!(
        app.count(
            "outbox",
            "failed_at IS NULL AND sent_at IS NULL AND attempts = 0"
        ),
        2
    );
    let r = app.post("/api/outbox/retry/", Some(&boss), json!({})).await;
    assert_eq!(r.body, json!({"requeued": 0}));
}

/// A retry wakes the sender: the mail goes out at once, not at the next poll a minute on.
async fn retry_wakes_the_sender(backend: Backend) {
    let port = free_port();
    let url = format!("smtp://127.0.0.1:{port}");
    let Some(app) = spawn_app_with(backend, |s| {
        s.mail = test_mail_settings(&url);
        s.mail.max_attempts = 1;
        s.mail.poll_interval = Duration::from_secs(60);
    })
    .await
    else {
        eprintln!("skipped: TEST_DATABASE_URL is not set");
        return;
    };
    let (_, boss) = app.staff("boss").await;
    app.drop_verification_mail();
    app.post(
        "/api/events/",
        Some(&boss),
        json!({"name": "X", "date": "2026-12-01"}),
    )
    .await;
    let start = Instant::now();
    while app.count("outbox", "failed_at IS NOT NULL") == 0
        && start.elapsed() < Duration::from_secs(10)
    {
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let r = app.get("/api/outbox/", Some(&boss)).await;
    assert_eq!(r.body["failed"], 1, "{}", r.text);
    assert!(
        r.body["failed_mails"][0]["last_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty())
    );
    let sink = MailSink::start_on(port);
    let r = app.post("/api/outbox/retry/", Some(&boss), json!({})).await;
    assert_eq!(r.body, json!({"requeued": 1}));
    let mails = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 1);
    assert!(
        start.elapsed() < Duration::from_secs(50),
        "delivered by the poll, not the wake"
    );
}
