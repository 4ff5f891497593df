//! Issue 9: co-organizers (SPEC.md §16): who may add and remove them, and what they may
//! then do with the event.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Resp, TestApp};
use crate::on_both_backends;

on_both_backends!(
    organizer_adds_lists_and_removes,
    a_co_organizer_edits_and_attendees_are_mailed,
    a_co_organizer_sees_emails_in_detail_and_csv,
    a_co_organizer_sees_and_lists_a_draft,
    a_co_organizer_cannot_delete_or_add_but_can_leave,
    bad_user_ids_are_400_and_strangers_403,
    a_removed_co_organizer_loses_the_rights,
    staff_manage_co_organizers,
    deleting_the_account_removes_the_row,
    at_most_twenty,
    a_new_co_organizer_syncs_the_draft,
);

/// Becoming a co-organizer makes a draft listable: a sync from before must return it, as
/// a full list would.
async fn a_new_co_organizer_syncs_the_draft(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (bob_id, bob) = app.user("bob").await;
    let draft = app
        .create_event(
            &ada,
            json!({"name": "Plans", "date": "2026-12-01", "status": "draft"}),
        )
        .await;
    let id = draft["id"].as_str().unwrap().to_string();
    let since = (chrono::Utc::now() - chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let synced = |r: &Resp| -> Vec<String> {
        r.body
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect()
    };
    let before = app
        .get(&format!("/api/events/?updated_since={since}"), Some(&bob))
        .await;
    assert_eq!(before.status, StatusCode::OK, "{}", before.text);
    assert!(synced(&before).is_empty());
    let cursor = before.header("x-sync-cursor").unwrap().to_string();
    assert_eq!(
        add(&app, &ada, &id, bob_id).await.status,
        StatusCode::CREATED
    );
    let after = app
        .get(
            &format!("/api/events/?updated_since={}", cursor.replace('+', "%2B")),
            Some(&bob),
        )
        .await;
    assert_eq!(synced(&after), vec![id.clone()], "{}", after.text);
    // Deleted, it leaves a tombstone for the co-organizer, whose copy holds it.
    let cursor = after.header("x-sync-cursor").unwrap().to_string();
    let r = app
        .send(
            Method::DELETE,
            &format!("/api/events/{id}/"),
            Some(&ada),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let gone = app
        .get(
            &format!("/api/events/?updated_since={}", cursor.replace('+', "%2B")),
            Some(&bob),
        )
        .await;
    assert_eq!(gone.body.as_array().map(Vec::len), Some(1), "{}", gone.text);
    assert_eq!(gone.body[0]["id"], json!(id));
    assert_eq!(gone.body[0]["deleted"], json!(true));
    // Nobody else hears of the draft.
    let (_, carol) = app.user("carol").await;
    let other = app
        .get(
            &format!("/api/events/?updated_since={}", cursor.replace('+', "%2B")),
            Some(&carol),
        )
        .await;
    assert_eq!(other.body, json!([]), "{}", other.text);
}

fn path(id: &str) -> String {
    format!("/api/events/{id}/co_organizers/")
}

async fn add(app: &TestApp, token: &str, id: &str, user_id: i64) -> Resp {
    app.post(&path(id), Some(token), json!({ "user_id": user_id }))
        .await
}

async fn remove(app: &TestApp, token: &str, id: &str, user_id: i64) -> Resp {
    app.send(
        Method::DELETE,
        &format!("/api/events/{id}/co_organizers/{user_id}/"),
        Some(token),
        None,
    )
    .await
}

async fn event(app: &TestApp, token: &str, body: Value) -> String {
    app.create_event(token, body).await["id"]
        .as_str()
        .expect("id")
        .to_string()
}

async fn meetup(app: &TestApp, token: &str) -> String {
    event(app, token, json!({"name": "Meetup", "date": "2026-12-01"})).await
}

async fn organizer_adds_lists_and_removes(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (bob_id, _) = app.user("bob").await;
    let id = meetup(&app, &ada).await;

    let r = add(&app, &ada, &id, bob_id).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"id": bob_id, "username": "bob", "email": "bob@example.com"})
    );
    assert_eq!(
        app.count("co_organizers", &format!("user_id = {bob_id}")),
        1
    );

    // Anyone who can see the event sees the list; emails only as the email rules allow.
    let anon = app.get(&path(&id), None).await;
    assert_eq!(anon.status, StatusCode::OK, "{}", anon.text);
    assert_eq!(anon.body, json!([{"id": bob_id, "username": "bob"}]));
    let own = app.get(&path(&id), Some(&ada)).await;
    assert_eq!(
        own.body,
        json!([{"id": bob_id, "username": "bob", "email": "bob@example.com"}])
    );

    let r = remove(&app, &ada, &id, bob_id).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(app.get(&path(&id), None).await.body, json!([]));
    // Gone already: 404.
    let again = remove(&app, &ada, &id, bob_id).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

async fn a_co_organizer_edits_and_attendees_are_mailed(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (bob_id, bob) = app.user("bob").await;
    let (_, carl) = app.user("carl").await;
    let id = meetup(&app, &ada).await;
    assert_eq!(app.answer(&carl, &id, "Going").await.status, StatusCode::OK);
    // Before being added: 403.
    let r = app.patch_event(&bob, &id, json!({"name": "Bob's"})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    add(&app, &ada, &id, bob_id).await;
    let before = app.count("outbox", "recipient = 'carl@example.com'");
    let r = app
        .patch_event(&bob, &id, json!({"location": "Room 2"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["location"], "Room 2");
    assert_eq!(
        r.body["organizer"]["username"], "ada",
        "the organizer stays"
    );
    assert_eq!(
        app.count("outbox", "recipient = 'carl@example.com'"),
        before + 1,
        "the change mail goes out as for the organizer"
    );
    // PUT too; an `organizer` in the body changes nothing.
    let r = app
        .send(
            Method::PUT,
            &format!("/api/events/{id}/"),
            Some(&bob),
            Some(json!({"name": "Renamed", "date": "2026-12-02", "organizer": bob_id})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["organizer"]["username"], "ada");
}

async fn a_co_organizer_sees_emails_in_detail_and_csv(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (bob_id, bob) = app.user("bob").await;
    let (_, carl) = app.user("carl").await;
    let id = meetup(&app, &ada).await;
    app.answer(&carl, &id, "Going").await;

    let before = app.get(&format!("/api/events/{id}/"), Some(&bob)).await;
    assert!(before.body["attendances"][0]["user"].get("email").is_none());
    assert!(before.body["organizer"].get("email").is_none());
    let csv = app
        .get(&format!("/api/events/{id}/attendees.csv"), Some(&bob))
        .await;
    assert_eq!(csv.status, StatusCode::FORBIDDEN);

    add(&app, &ada, &id, bob_id).await;
    let detail = app.get(&format!("/api/events/{id}/"), Some(&bob)).await;
    assert_eq!(detail.status, StatusCode::OK);
    assert_eq!(
        detail.body["attendances"][0]["user"]["email"],
        "carl@example.com"
    );
    assert_eq!(detail.body["organizer"]["email"], "ada@example.com");
    let csv = app
        .get(&format!("/api/events/{id}/attendees.csv"), Some(&bob))
        .await;
    assert_eq!(csv.status, StatusCode::OK, "{}", csv.text);
    assert!(
        csv.text.contains("carl,carl@example.com,Going"),
        "{}",
        csv.text
    );
    // Carl, a plain attendee, still sees only his own email.
    let carls = app.get(&format!("/api/events/{id}/"), Some(&carl)).await;
    assert!(carls.body["organizer"].get("email").is_none());
}

async fn a_co_organizer_sees_and_lists_a_draft(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (bob_id, bob) = app.user("bob").await;
    let draft = event(
        &app,
        &ada,
        json!({"name": "Draft", "date": "2026-12-01", "status": "draft"}),
    )
    .await;
    let unlisted = event(
        &app,
        &ada,
        json!({"name": "Quiet", "date": "2026-12-02", "visibility": "unlisted"}),
    )
    .await;
    meetup(&app, &ada).await;
    let detail = format!("/api/events/{draft}/");
    assert_eq!(
        app.get(&detail, Some(&bob)).await.status,
        StatusCode::NOT_FOUND
    );
    let list = app.get("/api/events/", Some(&bob)).await;
    assert_eq!(list.header("x-total-count"), Some("1"));

    add(&app, &ada, &draft, bob_id).await;
    add(&app, &ada, &unlisted, bob_id).await;
    assert_eq!(app.get(&detail, Some(&bob)).await.status, StatusCode::OK);
    let ics = app
        .get(&format!("/api/events/{draft}/ics/"), Some(&bob))
        .await;
    assert_eq!(ics.status, StatusCode::OK, "{}", ics.text);
    assert!(ics.text.contains("mailto:ada@example.com"), "{}", ics.text);
    // A draft takes no answers: 409 for a co-organizer too, not 404.
    assert_eq!(
        app.answer(&bob, &draft, "Going").await.status,
        StatusCode::CONFLICT
    );
    let list = app.get("/api/events/", Some(&bob)).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.header("x-total-count"), Some("3"));
    let mut names: Vec<&str> = list
        .body
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["Draft", "Meetup", "Quiet"]);
    // Filtered lists count the same way.
    let filtered = app.get("/api/events/?search=t", Some(&bob)).await;
    assert_eq!(filtered.header("x-total-count"), Some("3"));
    assert_eq!(filtered.body.as_array().map(Vec::len), Some(3));
    // Others still do not see them.
    let (_, carl) = app.user("carl").await;
    let list = app.get("/api/events/", Some(&carl)).await;
    assert_eq!(list.header("x-total-count"), Some("1"));
    let filtered = app.get("/api/events/?search=t", Some(&carl)).await;
    assert_eq!(filtered.header("x-total-count"), Some("1"));
    assert_eq!(
        app.get(&detail, Some(&carl)).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&path(&draft), Some(&carl)).await.status,
        StatusCode::NOT_FOUND
    );
}

async fn a_co_organizer_cannot_delete_or_add_but_can_leave(app: TestApp) {
    let (ada_id, ada) = app.user("ada").await;
    let (bob_id, bob) = app.user("bob").await;
    let (carl_id, _) = app.user("carl").await;
    let id = meetup(&app, &ada).await;
    add(&app, &ada, &id, bob_id).await;
    add(&app, &ada, &id, carl_id).await;

    let r = app
        .send(
            Method::DELETE,
            &format!("/api/events/{id}/"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(app.count("events", "1 = 1"), 1);
    let (dave_id, _) = app.user("dave").await;
    assert_eq!(
        add(&app, &bob, &id, dave_id).await.status,
        StatusCode::FORBIDDEN
    );
    // Neither the organizer (not a co-organizer) nor another co-organizer.
    assert_eq!(
        remove(&app, &bob, &id, ada_id).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        remove(&app, &bob, &id, carl_id).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        remove(&app, &bob, &id, bob_id).await.status,
        StatusCode::NO_CONTENT
    );
    let left = app.get(&path(&id), None).await;
    assert_eq!(left.body, json!([{"id": carl_id, "username": "carl"}]));
}

async fn bad_user_ids_are_400_and_strangers_403(app: TestApp) {
    let (ada_id, ada) = app.user("ada").await;
    let (bob_id, bob) = app.user("bob").await;
    let id = meetup(&app, &ada).await;

    assert_eq!(
        add(&app, &bob, &id, bob_id).await.status,
        StatusCode::FORBIDDEN
    );
    let r = app.post(&path(&id), None, json!({"user_id": bob_id})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    for (body, why) in [
        (json!({"user_id": 999_999}), "unknown"),
        (json!({"user_id": ada_id}), "the organizer"),
        (json!({}), "missing"),
        (json!({"user_id": null}), "null"),
        (json!({"user_id": "x"}), "not a number"),
        (json!({"user_id": 0}), "not an id"),
    ] {
        let r = app.post(&path(&id), Some(&ada), body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{why}: {}", r.text);
        assert!(r.body["user_id"].is_array(), "{why}: {}", r.text);
    }
    add(&app, &ada, &id, bob_id).await;
    let twice = add(&app, &ada, &id, bob_id).await;
    assert_eq!(twice.status, StatusCode::BAD_REQUEST, "{}", twice.text);
    assert!(twice.body["user_id"].is_array());
    // An unknown event: 404, before the body.
    let unknown = "00000000-0000-4000-8000-000000000000";
    assert_eq!(
        add(&app, &ada, unknown, bob_id).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        remove(&app, &ada, &id, 0).await.status,
        StatusCode::NOT_FOUND
    );
    let r = app
        .send(
            Method::DELETE,
            &format!("/api/events/{id}/co_organizers/abc/"),
            Some(&ada),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

async fn a_removed_co_organizer_loses_the_rights(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (bob_id, bob) = app.user("bob").await;
    let id = event(
        &app,
        &ada,
        json!({"name": "Draft", "date": "2026-12-01", "status": "draft"}),
    )
    .await;
    add(&app, &ada, &id, bob_id).await;
    assert_eq!(
        app.patch_event(&bob, &id, json!({"name": "Mine"}))
            .await
            .status,
        StatusCode::OK
    );
    remove(&app, &ada, &id, bob_id).await;
    assert_eq!(
        app.patch_event(&bob, &id, json!({"name": "Again"}))
            .await
            .status,
        StatusCode::NOT_FOUND,
        "a draft again hidden from him"
    );
    app.patch_event(&ada, &id, json!({"status": "published"}))
        .await;
    assert_eq!(
        app.patch_event(&bob, &id, json!({"name": "Again"}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get(&format!("/api/events/{id}/attendees.csv"), Some(&bob))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

async fn staff_manage_co_organizers(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (bob_id, _) = app.user("bob").await;
    let (_, root) = app.staff("root").await;
    let id = meetup(&app, &ada).await;
    assert_eq!(
        add(&app, &root, &id, bob_id).await.status,
        StatusCode::CREATED
    );
    let list = app.get(&path(&id), Some(&root)).await;
    assert_eq!(list.body[0]["email"], "bob@example.com");
    assert_eq!(
        remove(&app, &root, &id, bob_id).await.status,
        StatusCode::NO_CONTENT
    );
}

async fn deleting_the_account_removes_the_row(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (bob_id, bob) = app.user("bob").await;
    let id = meetup(&app, &ada).await;
    add(&app, &ada, &id, bob_id).await;
    let r = app
        .send(
            Method::DELETE,
            "/api/users/me",
            Some(&bob),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(app.count("co_organizers", "1 = 1"), 0);
    assert_eq!(app.get(&path(&id), None).await.body, json!([]));
    // Deleting the event removes its rows too.
    let (carl_id, _) = app.user("carl").await;
    add(&app, &ada, &id, carl_id).await;
    app.send(
        Method::DELETE,
        &format!("/api/events/{id}/"),
        Some(&ada),
        None,
    )
    .await;
    assert_eq!(app.count("co_organizers", "1 = 1"), 0);
}

async fn at_most_twenty(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let id = meetup(&app, &ada).await;
    for n in 0..20 {
        let user_id = app.register(&format!("u{n}")).await;
        let r = add(&app, &ada, &id, user_id).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let extra = app.register("extra").await;
    let r = add(&app, &ada, &id, extra).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.body["user_id"].is_array());
}
