//! Events and attendance: the Django clients' API, permissions, validation, privacy,
//! listing and the query budget.

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Resp, TestApp};
use crate::on_both_backends;

on_both_backends!(
    anonymous_list_shows_organizer_username_and_date,
    create_makes_caller_organizer_and_id_matches_stored_row,
    another_users_put_is_forbidden,
    permission_table,
    orphaned_event_is_editable_by_staff_only,
    validation_messages_match_drf,
    put_needs_every_field_and_patch_takes_any,
    client_sent_id_and_organizer_are_ignored,
    attendance_is_created_then_updated,
    invalid_attendance_status_is_refused,
    attendance_on_unknown_or_malformed_event_is_404,
    concurrent_answers_by_one_user_leave_one_row,
    emails_are_shown_only_to_owner_staff_and_organizer,
    search_and_filters_narrow_the_list,
    ordering_and_paging_with_headers,
    bad_list_parameters_are_named,
    list_and_detail_cost_a_fixed_number_of_queries,
    deleting_a_user_keeps_their_events_and_drops_their_answers,
    delete_removes_event_and_attendances,
    attendance_counts_are_in_lists_detail_and_updates,
    ordering_by_organizer_and_by_attendance_counts,
);

async fn create_event(app: &TestApp, token: &str, name: &str, date: &str) -> String {
    let r = app
        .post(
            "/api/events/",
            Some(token),
            json!({"name": name, "date": date}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "create: {}", r.text);
    r.body["id"].as_str().expect("id").to_string()
}

/// The stored state of an event as an anonymous client reads it.
async fn snapshot(app: &TestApp, id: &str) -> Resp {
    app.get(&format!("/api/events/{id}/"), None).await
}

async fn anonymous_list_shows_organizer_username_and_date(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    create_event(&app, &ada, "Rust meetup", "2026-12-01").await;
    let r = app.get("/api/events/", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body[0]["organizer"]["username"], "ada");
    assert_eq!(r.body[0]["date"], "2026-12-01");
    assert_eq!(r.body[0]["name"], "Rust meetup");
    assert!(r.body[0]["organizer"].get("email").is_none());
    assert_eq!(r.header("x-total-count"), Some("1"));
}

async fn create_makes_caller_organizer_and_id_matches_stored_row(app: TestApp) {
    let (ada_id, ada) = app.user("ada").await;
    let r = app
        .post(
            "/api/events/",
            Some(&ada),
            json!({"name": "Launch", "date": "2026-12-24"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.body["id"].as_str().unwrap();
    assert_eq!(r.body["organizer"]["id"], json!(ada_id));
    assert_eq!(r.body["organizer"]["email"], "ada@example.com");
    assert_eq!(
        app.count(
            "events",
            &format!("id = '{id}' AND organizer_id = {ada_id} AND name = 'Launch'")
        ),
        1
    );
    let anonymous = app
        .post(
            "/api/events/",
            None,
            json!({"name": "X", "date": "2026-12-24"}),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        anonymous.header("www-authenticate"),
        Some("Bearer realm=\"api\"")
    );
    assert_eq!(app.count("events", "1 = 1"), 1);
}

async fn another_users_put_is_forbidden(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (_, bob) = app.user("bob").await;
    let id = create_event(&app, &ada, "Mine", "2026-12-01").await;
    let before = snapshot(&app, &id).await;
    let r = app
        .send(
            Method::PUT,
            &format!("/api/events/{id}/"),
            Some(&bob),
            Some(json!({"name": "Stolen", "date": "2027-01-01"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.body,
        json!({"detail": "You do not have permission to perform this action."})
    );
    assert_eq!(snapshot(&app, &id).await.body, before.body);
}

async fn permission_table(app: TestApp) {
    let (_, organizer) = app.user("org").await;
    let (_, other) = app.user("other").await;
    let (_, staff) = app.staff("staff").await;
    let who: [(&str, Option<&str>); 4] = [
        ("anonymous", None),
        ("other", Some(&other)),
        ("organizer", Some(&organizer)),
        ("staff", Some(&staff)),
    ];
    for (label, token) in who {
        let id = create_event(&app, &organizer, "Table", "2026-12-01").await;
        let path = format!("/api/events/{id}/");
        let before = snapshot(&app, &id).await;
        let allowed_write = matches!(label, "organizer" | "staff");
        let refused = if token.is_none() {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::FORBIDDEN
        };
        // Reads are open to everyone.
        assert_eq!(
            app.get("/api/events/", token).await.status,
            StatusCode::OK,
            "{label} list"
        );
        assert_eq!(
            app.get(&path, token).await.status,
            StatusCode::OK,
            "{label} detail"
        );
        // Create and answer need a signed-in user.
        let create = app
            .post(
                "/api/events/",
                token,
                json!({"name": "New", "date": "2026-12-02"}),
            )
            .await;
        let answer = app
            .post(
                &format!("{path}change_attendee_status/"),
                token,
                json!({"status": "Going"}),
            )
            .await;
        if token.is_none() {
            assert_eq!(create.status, StatusCode::UNAUTHORIZED, "{label} create");
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{label} answer");
        } else {
            assert_eq!(create.status, StatusCode::CREATED, "{label} create");
            assert_eq!(answer.status, StatusCode::OK, "{label} answer");
        }
        let after_answer = snapshot(&app, &id).await;
        for (method, body) in [
            (
                Method::PUT,
                json!({"name": "Changed", "date": "2027-01-01"}),
            ),
            (Method::PATCH, json!({"name": "Patched"})),
        ] {
            let r = app.send(method.clone(), &path, token, Some(body)).await;
            if allowed_write {
                assert_eq!(r.status, StatusCode::OK, "{label} {method}");
            } else {
                assert_eq!(r.status, refused, "{label} {method}");
                assert_eq!(
                    snapshot(&app, &id).await.body,
                    after_answer.body,
                    "{label} {method}"
                );
            }
        }
        let r = app.send(Method::DELETE, &path, token, None).await;
        if allowed_write {
            assert_eq!(r.status, StatusCode::NO_CONTENT, "{label} delete");
            assert_eq!(snapshot(&app, &id).await.status, StatusCode::NOT_FOUND);
        } else {
            assert_eq!(r.status, refused, "{label} delete");
            assert_eq!(snapshot(&app, &id).await.status, StatusCode::OK);
            assert_eq!(before.body["name"], "Table");
        }
    }
}

async fn orphaned_event_is_editable_by_staff_only(app: TestApp) {
    let (org_id, org) = app.user("org").await;
    let (_, other) = app.user("other").await;
    let (_, staff) = app.staff("staff").await;
    let id = create_event(&app, &org, "Orphan", "2026-12-01").await;
    app.sql(&format!("DELETE FROM users WHERE id = {org_id}"));
    let detail = snapshot(&app, &id).await;
    assert_eq!(detail.status, StatusCode::OK);
    assert_eq!(detail.body["organizer"], Value::Null);
    let path = format!("/api/events/{id}/");
    let r = app
        .send(
            Method::PATCH,
            &path,
            Some(&other),
            Some(json!({"name": "Mine now"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(snapshot(&app, &id).await.body["name"], "Orphan");
    let r = app
        .send(
            Method::PATCH,
            &path,
            Some(&staff),
            Some(json!({"name": "Adopted"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["name"], "Adopted");
    assert_eq!(r.body["organizer"], Value::Null);
}

async fn validation_messages_match_drf(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let cases = [
        (
            json!({}),
            json!({"name": ["This field is required."], "date": ["This field is required."]}),
        ),
        (
            json!({"name": "   ", "date": "01/12/2026"}),
            json!({
                "name": ["This field may not be blank."],
                "date": ["Date has wrong format. Use one of these formats instead: YYYY-MM-DD."]
            }),
        ),
        (
            json!({"name": "x".repeat(101), "date": "2026-02-30"}),
            json!({
                "name": ["Ensure this field has no more than 100 characters."],
                "date": ["Date has wrong format. Use one of these formats instead: YYYY-MM-DD."]
            }),
        ),
        (
            json!({"name": null, "date": 20261201}),
            json!({
                "name": ["This field may not be null."],
                "date": ["Date has wrong format. Use one of these formats instead: YYYY-MM-DD."]
            }),
        ),
        (
            json!({"name": ["a"], "date": "2026-12-01"}),
            json!({"name": ["Not a valid string."]}),
        ),
    ];
    for (body, expected) in cases {
        let r = app.post("/api/events/", Some(&ada), body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.body, expected, "{body}");
    }
    assert_eq!(app.count("events", "1 = 1"), 0);
    // 100 characters, multi-byte ones included, is the limit, not past it.
    let name: String = "é".repeat(100);
    let r = app
        .post(
            "/api/events/",
            Some(&ada),
            json!({"name": name, "date": "2026-12-01"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["name"], json!(name));
}

async fn put_needs_every_field_and_patch_takes_any(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let id = create_event(&app, &ada, "Original", "2026-12-01").await;
    let path = format!("/api/events/{id}/");
    let r = app
        .send(
            Method::PUT,
            &path,
            Some(&ada),
            Some(json!({"name": "Only name"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body, json!({"date": ["This field is required."]}));
    assert_eq!(snapshot(&app, &id).await.body["name"], "Original");

    let r = app
        .send(
            Method::PATCH,
            &path,
            Some(&ada),
            Some(json!({"date": "2027-03-04"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["name"], "Original");
    assert_eq!(r.body["date"], "2027-03-04");
    assert!(r.body.get("attendances").is_none());

    let r = app
        .send(Method::PATCH, &path, Some(&ada), Some(json!({"name": ""})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body, json!({"name": ["This field may not be blank."]}));

    let r = app
        .send(
            Method::PUT,
            &path,
            Some(&ada),
            Some(json!({"name": "Renamed", "date": "2027-05-06", "colour": "red"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let stored = snapshot(&app, &id).await.body;
    assert_eq!(stored["name"], "Renamed");
    assert_eq!(stored["date"], "2027-05-06");

    // 404 comes before a bad body, and a malformed id is a 404 too.
    let missing = format!("/api/events/{}/", uuid::Uuid::new_v4());
    let r = app
        .send(
            Method::PATCH,
            &missing,
            Some(&ada),
            Some(json!({"name": ""})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body, json!({"detail": "Not found."}));
    let r = app.get("/api/events/not-a-uuid/", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

async fn client_sent_id_and_organizer_are_ignored(app: TestApp) {
    let (ada_id, ada) = app.user("ada").await;
    let (bob_id, _) = app.user("bob").await;
    let forced = uuid::Uuid::new_v4().to_string();
    let r = app
        .post(
            "/api/events/",
            Some(&ada),
            json!({
                "id": forced, "name": "Mine", "date": "2026-12-01",
                "organizer": bob_id, "organizer_id": bob_id,
                "created_at": "2000-01-01T00:00:00Z"
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_ne!(r.body["id"], json!(forced));
    assert_eq!(r.body["organizer"]["id"], json!(ada_id));
    let id = r.body["id"].as_str().unwrap().to_string();
    let r = app
        .send(
            Method::PATCH,
            &format!("/api/events/{id}/"),
            Some(&ada),
            Some(json!({"organizer": {"id": bob_id}, "id": forced})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["organizer"]["id"], json!(ada_id));
    assert_eq!(r.body["id"], json!(id));
    assert_eq!(app.count("events", &format!("organizer_id = {bob_id}")), 0);
}

async fn attendance_is_created_then_updated(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (bob_id, bob) = app.user("bob").await;
    let id = create_event(&app, &ada, "Party", "2026-12-31").await;
    let path = format!("/api/events/{id}/change_attendee_status/");
    for status in ["Going", "Maybe", "Not Going"] {
        let r = app.post(&path, Some(&bob), json!({"status": status})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["status"], status);
        assert_eq!(r.body["user"]["id"], json!(bob_id));
        assert_eq!(r.body["user"]["username"], "bob");
    }
    assert_eq!(app.count("attendances", &format!("user_id = {bob_id}")), 1);
    let detail = snapshot(&app, &id).await;
    assert_eq!(
        detail.body["attendances"],
        json!([{"user": {"id": bob_id, "username": "bob"}, "status": "Not Going"}])
    );
    // Without the trailing slash too.
    let r = app
        .post(
            path.trim_end_matches('/'),
            Some(&bob),
            json!({"status": "Going"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

async fn invalid_attendance_status_is_refused(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let id = create_event(&app, &ada, "Party", "2026-12-31").await;
    let path = format!("/api/events/{id}/change_attendee_status/");
    app.post(&path, Some(&ada), json!({"status": "Maybe"}))
        .await;
    for (body, expected) in [
        (
            json!({"status": "Perhaps"}),
            json!({"status": ["\"Perhaps\" is not a valid choice."]}),
        ),
        (
            json!({"status": "going"}),
            json!({"status": ["\"going\" is not a valid choice."]}),
        ),
        (json!({}), json!({"status": ["This field is required."]})),
        (
            json!({"status": null}),
            json!({"status": ["This field may not be null."]}),
        ),
    ] {
        let r = app.post(&path, Some(&ada), body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.body, expected, "{body}");
    }
    assert_eq!(
        snapshot(&app, &id).await.body["attendances"][0]["status"],
        "Maybe"
    );
}

async fn attendance_on_unknown_or_malformed_event_is_404(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    for id in [uuid::Uuid::new_v4().to_string(), "nope".to_string()] {
        let path = format!("/api/events/{id}/change_attendee_status/");
        let r = app
            .post(&path, Some(&ada), json!({"status": "Going"}))
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{id}");
        let r = app
            .post(&path, Some(&ada), json!({"status": "Bogus"}))
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{id}");
    }
    assert_eq!(app.count("attendances", "1 = 1"), 0);
}

async fn concurrent_answers_by_one_user_leave_one_row(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (bob_id, bob) = app.user("bob").await;
    let id = create_event(&app, &ada, "Busy", "2026-12-31").await;
    let path = format!("/api/events/{id}/change_attendee_status/");
    let statuses = ["Going", "Maybe", "Not Going"];
    let requests = (0..24).map(|i| app.post(&path, Some(&bob), json!({"status": statuses[i % 3]})));
    let responses = join_all(requests).await;
    for r in &responses {
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    assert_eq!(
        app.count(
            "attendances",
            &format!("user_id = {bob_id} AND event_id = '{id}'")
        ),
        1
    );
}

async fn emails_are_shown_only_to_owner_staff_and_organizer(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (_, bob) = app.user("bob").await;
    let (_, carol) = app.user("carol").await;
    let (_, staff) = app.staff("staff").await;
    let id = create_event(&app, &ada, "Private", "2026-12-01").await;
    let path = format!("/api/events/{id}/");
    for t in [&bob, &carol] {
        app.post(
            &format!("{path}change_attendee_status/"),
            Some(t),
            json!({"status": "Going"}),
        )
        .await;
    }
    let emails = |r: &Resp| -> Vec<Option<String>> {
        let mut out = vec![r.body["organizer"]["email"].as_str().map(String::from)];
        for a in r.body["attendances"].as_array().unwrap() {
            out.push(a["user"]["email"].as_str().map(String::from));
        }
        out
    };
    let s = |x: &str| Some(x.to_string());
    // anonymous: nobody's email
    assert_eq!(emails(&app.get(&path, None).await), vec![None, None, None]);
    // organizer: everyone's, for this event
    assert_eq!(
        emails(&app.get(&path, Some(&ada)).await),
        vec![
            s("ada@example.com"),
            s("bob@example.com"),
            s("carol@example.com")
        ]
    );
    // an attendee: only their own
    assert_eq!(
        emails(&app.get(&path, Some(&bob)).await),
        vec![None, s("bob@example.com"), None]
    );
    // staff: all
    assert_eq!(
        emails(&app.get(&path, Some(&staff)).await),
        vec![
            s("ada@example.com"),
            s("bob@example.com"),
            s("carol@example.com")
        ]
    );
    // in lists, the organizer's email only to the organizer and staff
    let list = app.get("/api/events/", Some(&bob)).await;
    assert!(list.body[0]["organizer"].get("email").is_none());
    let list = app.get("/api/events/", Some(&ada)).await;
    assert_eq!(list.body[0]["organizer"]["email"], "ada@example.com");
}

async fn names(r: &Resp) -> Vec<String> {
    r.body
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

async fn search_and_filters_narrow_the_list(app: TestApp) {
    let (ada_id, ada) = app.user("ada").await;
    let (_, bob) = app.user("bob").await;
    create_event(&app, &ada, "Rust Meetup Berlin", "2026-01-10").await;
    create_event(&app, &ada, "Go meetup", "2026-02-10").await;
    create_event(&app, &bob, "RUST workshop", "2026-03-10").await;
    create_event(&app, &bob, "100% off_sale", "2026-04-10").await;
    let cases: [(&str, Vec<&str>); 9] = [
        ("search=rust", vec!["Rust Meetup Berlin", "RUST workshop"]),
        ("search=rust,meetup", vec!["Rust Meetup Berlin"]),
        ("search=meetup%20berlin", vec!["Rust Meetup Berlin"]),
        ("search=%25", vec!["100% off_sale"]),
        ("search=_", vec!["100% off_sale"]),
        (
            &*format!("organizer={ada_id}"),
            vec!["Rust Meetup Berlin", "Go meetup"],
        ),
        (
            "date_after=2026-02-10&date_before=2026-03-10",
            vec!["Go meetup", "RUST workshop"],
        ),
        ("search=%27%20OR%201=1%20--", vec![]),
        ("organizer=999999", vec![]),
    ];
    for (query, expected) in cases {
        let r = app.get(&format!("/api/events/?{query}"), None).await;
        assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.text);
        assert_eq!(names(&r).await, expected, "{query}");
        assert_eq!(
            r.header("x-total-count"),
            Some(&*expected.len().to_string()),
            "{query}"
        );
    }
}

async fn ordering_and_paging_with_headers(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    for (name, date) in [
        ("b", "2026-01-03"),
        ("a", "2026-01-02"),
        ("c", "2026-01-01"),
        ("d", "2026-01-02"),
    ] {
        create_event(&app, &ada, name, date).await;
    }
    let r = app.get("/api/events/", None).await;
    assert_eq!(names(&r).await[0], "c");
    assert_eq!(names(&r).await[3], "b");
    assert!(r.header("link").is_none());
    let r = app.get("/api/events/?ordering=-name", None).await;
    assert_eq!(names(&r).await, vec!["d", "c", "b", "a"]);
    let r = app.get("/api/events/?ordering=-date,name", None).await;
    assert_eq!(names(&r).await, vec!["b", "a", "d", "c"]);

    let r = app.get("/api/events/?ordering=name&limit=2", None).await;
    assert_eq!(names(&r).await, vec!["a", "b"]);
    assert_eq!(r.header("x-total-count"), Some("4"));
    let link = r.header("link").expect("link").to_string();
    assert!(link.contains("rel=\"next\""), "{link}");
    assert!(!link.contains("rel=\"prev\""), "{link}");
    let next = link
        .split(';')
        .next()
        .unwrap()
        .trim_matches(|c| c == '<' || c == '>')
        .to_string();
    assert!(next.starts_with(&app.address), "{next}");
    let r2 = crate::helpers::read(app.client.get(&next).send().await.unwrap()).await;
    assert_eq!(names(&r2).await, vec!["c", "d"]);
    let link = r2.header("link").expect("link");
    assert!(
        link.contains("rel=\"prev\"") && !link.contains("rel=\"next\""),
        "{link}"
    );

    let r = app.get("/api/events/?offset=10", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, json!([]));
    assert_eq!(r.header("x-total-count"), Some("4"));
    let r = app.get("/api/events/?limit=100000", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.as_array().unwrap().len(), 4);
}

async fn bad_list_parameters_are_named(app: TestApp) {
    for (query, param) in [
        ("limit=abc", "limit"),
        ("limit=-1", "limit"),
        ("limit=0", "limit"),
        ("offset=-5", "offset"),
        ("offset=1.5", "offset"),
        ("ordering=organizer_id", "ordering"),
        ("ordering=-size", "ordering"),
        ("date_after=2026-13-01", "date_after"),
        ("date_before=yesterday", "date_before"),
        ("organizer=ada", "organizer"),
    ] {
        let r = app.get(&format!("/api/events/?{query}"), None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(
            r.body.get(param).is_some_and(Value::is_array),
            "{query}: {}",
            r.text
        );
    }
}

async fn list_and_detail_cost_a_fixed_number_of_queries(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let id = create_event(&app, &ada, "First", "2026-01-01").await;
    let queries = |r: &Resp| {
        r.header("x-query-count")
            .expect("query count")
            .parse::<u32>()
            .unwrap()
    };
    let list_one = queries(&app.get("/api/events/?limit=1000", None).await);
    let detail_empty = queries(&snapshot(&app, &id).await);

    // 999 more events by 999 organizers, and 1000 attendances on the first event.
    let mut users = String::from(
        "INSERT INTO users (username, email, password, is_staff, is_active, date_joined) VALUES ",
    );
    users += &(0..999)
        .map(|i| format!("('u{i}', 'u{i}@example.com', 'x', FALSE, TRUE, '2026-01-01 00:00:00')"))
        .collect::<Vec<_>>()
        .join(", ");
    app.sql(&users);
    let mut events = String::from(
        "INSERT INTO events (id, name, date, organizer_id, created_at, updated_at) SELECT ",
    );
    events += match app.backend {
        crate::helpers::Backend::Sqlite => {
            "lower(hex(randomblob(4))) || '-0000-4000-8000-' || substr('000000000000' || id, -12, 12)"
        }
        crate::helpers::Backend::Postgres => {
            "'00000000-0000-4000-8000-' || lpad(id::text, 12, '0')"
        }
    };
    events += ", 'Event ' || username, '2026-02-01', id, '2026-01-01 00:00:00', '2026-01-01 00:00:00' FROM users WHERE username LIKE 'u%'";
    app.sql(&events);
    app.sql(&format!(
        "INSERT INTO attendances (event_id, user_id, status) SELECT '{id}', id, 'Going' FROM users"
    ));
    assert_eq!(app.count("events", "1 = 1"), 1000);

    let full = app.get("/api/events/?limit=1000", None).await;
    assert_eq!(full.body.as_array().unwrap().len(), 1000);
    assert_eq!(full.body[0]["going_count"], 1000);
    assert_eq!(full.body[1]["going_count"], 0);
    assert_eq!(
        queries(&full),
        list_one,
        "list query count grew with the page"
    );
    let detail = snapshot(&app, &id).await;
    assert_eq!(detail.body["attendances"].as_array().unwrap().len(), 1000);
    assert_eq!(
        queries(&detail),
        detail_empty,
        "detail query count grew with attendances"
    );
    // List: the page, the total, the page's attendance counts (one grouped query).
    assert!(
        list_one <= 3 && detail_empty <= 2,
        "list {list_one}, detail {detail_empty}"
    );
}

async fn deleting_a_user_keeps_their_events_and_drops_their_answers(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (bob_id, bob) = app.user("bob").await;
    let ada_event = create_event(&app, &ada, "Ada's", "2026-12-01").await;
    let bob_event = create_event(&app, &bob, "Bob's", "2026-12-02").await;
    app.post(
        &format!("/api/events/{ada_event}/change_attendee_status/"),
        Some(&bob),
        json!({"status": "Going"}),
    )
    .await;
    let r = app
        .send(
            Method::DELETE,
            "/api/users/me/",
            Some(&bob),
            Some(json!({"password": crate::helpers::PASSWORD})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let kept = snapshot(&app, &bob_event).await;
    assert_eq!(kept.status, StatusCode::OK);
    assert_eq!(kept.body["organizer"], Value::Null);
    assert_eq!(
        snapshot(&app, &ada_event).await.body["attendances"],
        json!([])
    );
    assert_eq!(app.count("attendances", &format!("user_id = {bob_id}")), 0);
}

async fn delete_removes_event_and_attendances(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (_, bob) = app.user("bob").await;
    let id = create_event(&app, &ada, "Gone soon", "2026-12-01").await;
    app.post(
        &format!("/api/events/{id}/change_attendee_status/"),
        Some(&bob),
        json!({"status": "Maybe"}),
    )
    .await;
    let r = app
        .send(
            Method::DELETE,
            &format!("/api/events/{id}"),
            Some(&ada),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.text, "");
    assert_eq!(app.count("attendances", &format!("event_id = '{id}'")), 0);
    let again = app
        .send(
            Method::DELETE,
            &format!("/api/events/{id}/"),
            Some(&ada),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

async fn answer(app: &TestApp, token: &str, event: &str, status: &str) {
    let r = app
        .post(
            &format!("/api/events/{event}/change_attendee_status/"),
            Some(token),
            json!({"status": status}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

fn counts(event: &Value) -> (i64, i64, i64) {
    (
        event["going_count"].as_i64().expect("going_count"),
        event["maybe_count"].as_i64().expect("maybe_count"),
        event["not_going_count"].as_i64().expect("not_going_count"),
    )
}

async fn attendance_counts_are_in_lists_detail_and_updates(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (_, bob) = app.user("bob").await;
    let (_, cy) = app.user("cy").await;
    let r = app
        .post(
            "/api/events/",
            Some(&ada),
            json!({"name": "Busy", "date": "2026-05-01"}),
        )
        .await;
    assert_eq!(counts(&r.body), (0, 0, 0), "a new event has no answers");
    let busy = r.body["id"].as_str().unwrap().to_string();
    let quiet = create_event(&app, &ada, "Quiet", "2026-05-02").await;
    answer(&app, &ada, &busy, "Going").await;
    answer(&app, &bob, &busy, "Going").await;
    answer(&app, &cy, &busy, "Maybe").await;
    answer(&app, &bob, &quiet, "Not Going").await;
    // An answer changed counts once, under its new status.
    answer(&app, &cy, &quiet, "Going").await;
    answer(&app, &cy, &quiet, "Not Going").await;

    let r = app.get("/api/events/", None).await;
    assert_eq!(counts(&r.body[0]), (2, 1, 0));
    assert_eq!(counts(&r.body[1]), (0, 0, 2));
    let r = app.get(&format!("/api/events/{busy}/"), None).await;
    assert_eq!(counts(&r.body), (2, 1, 0));
    assert_eq!(r.body["attendances"].as_array().unwrap().len(), 3);
    let r = app
        .send(
            Method::PATCH,
            &format!("/api/events/{quiet}/"),
            Some(&ada),
            Some(json!({"name": "Quieter"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(counts(&r.body), (0, 0, 2));
    // The counts are documented on the event.
    let doc = app.get("/api/schema/", None).await.body;
    let props = &doc["components"]["schemas"]["EventOut"]["properties"];
    for field in ["going_count", "maybe_count", "not_going_count"] {
        assert!(props.get(field).is_some(), "{field} undocumented");
    }
}

async fn ordering_by_organizer_and_by_attendance_counts(app: TestApp) {
    let (_, bob) = app.user("bob").await;
    let (_, ada) = app.user("ada").await;
    let (_, zed) = app.user("zed").await;
    let by_bob = create_event(&app, &bob, "by bob", "2026-01-01").await;
    let by_ada = create_event(&app, &ada, "by ada", "2026-01-02").await;
    let orphan = create_event(&app, &zed, "orphan", "2026-01-03").await;
    let r = app
        .send(
            Method::DELETE,
            "/api/users/me/",
            Some(&zed),
            Some(json!({"password": crate::helpers::PASSWORD})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // An event without an organizer comes last, in either direction, on both backends.
    let r = app.get("/api/events/?ordering=organizer", None).await;
    assert_eq!(names(&r).await, vec!["by ada", "by bob", "orphan"]);
    let r = app.get("/api/events/?ordering=-organizer", None).await;
    assert_eq!(names(&r).await, vec!["by bob", "by ada", "orphan"]);

    answer(&app, &ada, &by_bob, "Going").await;
    answer(&app, &bob, &by_bob, "Going").await;
    answer(&app, &ada, &orphan, "Going").await;
    answer(&app, &bob, &orphan, "Maybe").await;
    answer(&app, &ada, &by_ada, "Not Going").await;
    let r = app.get("/api/events/?ordering=-going_count", None).await;
    assert_eq!(names(&r).await, vec!["by bob", "orphan", "by ada"]);
    let r = app
        .get("/api/events/?ordering=going_count,-date", None)
        .await;
    assert_eq!(names(&r).await, vec!["by ada", "orphan", "by bob"]);
    let r = app
        .get("/api/events/?ordering=-maybe_count,date", None)
        .await;
    assert_eq!(names(&r).await, vec!["orphan", "by bob", "by ada"]);
    let r = app
        .get("/api/events/?ordering=-not_going_count&limit=1", None)
        .await;
    assert_eq!(names(&r).await, vec!["by ada"]);
    assert_eq!(r.header("x-total-count"), Some("3"));
}
