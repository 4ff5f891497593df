//! Issue 8: times and places, capacity and the waitlist, lifecycle, change mail and
//! reminders, through HTTP, with the outbox rows they write checked in the database.

use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Resp, SECRET, TestApp};
use crate::on_both_backends;

fn id_of(event: &Value) -> String {
    event["id"].as_str().expect("id").to_string()
}

/// RFC 3339 for `now + offset`, whole seconds.
fn at(offset: chrono::Duration) -> String {
    (Utc::now() + offset).to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn mails(app: &TestApp, to: &str, subject_like: &str) -> i64 {
    app.count(
        "outbox",
        &format!("recipient = '{to}@example.com' AND subject LIKE '{subject_like}'"),
    )
}

/// Waits until `f` holds, for at most ten seconds.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn times_and_places_round_trip(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let event = app
        .create_event(
            &ada,
            json!({
                "name": "Rust meetup",
                "starts_at": "2026-12-01T18:00:00+01:00",
                "ends_at": "2026-12-01T21:30:00+01:00",
                "timezone": "Europe/Berlin",
                "description": "Talks, then pizza.\nBring a laptop.",
                "location": "Hall 1, Café Zürich",
                "online_url": "https://meet.example.com/rust?room=1",
                "capacity": 40,
                "reminders": ["PT1H", "P1D"]
            }),
        )
        .await;
    let id = id_of(&event);
    let detail = app.get(&format!("/api/events/{id}/"), None).await.body;
    for shown in [&event, &detail] {
        assert_eq!(shown["starts_at"], "2026-12-01T17:00:00Z");
        assert_eq!(shown["ends_at"], "2026-12-01T20:30:00Z");
        assert_eq!(shown["date"], "2026-12-01");
        assert_eq!(shown["timezone"], "Europe/Berlin");
        assert_eq!(shown["location"], "Hall 1, Café Zürich");
        assert_eq!(shown["online_url"], "https://meet.example.com/rust?room=1");
        assert_eq!(shown["capacity"], 40);
        assert_eq!(shown["status"], "published");
        assert_eq!(shown["visibility"], "public");
        assert_eq!(shown["reminders"], json!(["P1D", "PT1H"]));
        assert_eq!(shown["waitlist_count"], 0);
    }
    // A Django-era client's event: the new fields are there with their defaults.
    let plain = app
        .create_event(&ada, json!({"name": "Plain", "date": "2026-12-05"}))
        .await;
    for (field, value) in [
        ("starts_at", Value::Null),
        ("ends_at", Value::Null),
        ("timezone", Value::Null),
        ("description", json!("")),
        ("location", json!("")),
        ("online_url", Value::Null),
        ("capacity", Value::Null),
        ("status", json!("published")),
        ("visibility", json!("public")),
        ("reminders", json!([])),
    ] {
        assert_eq!(plain[field], value, "{field}");
    }
    // A late start west of UTC keeps its own day when no zone is named.
    let late = app
        .create_event(
            &ada,
            json!({"name": "Late", "starts_at": "2026-12-01T23:30:00-05:00"}),
        )
        .await;
    assert_eq!(late["date"], "2026-12-01");
    assert_eq!(late["starts_at"], "2026-12-02T04:30:00Z");

    // Cross-field rules: a 400 on the field concerned, and nothing stored.
    let before = app.get(&format!("/api/events/{id}/"), None).await.body;
    let r = app
        .patch_event(&ada, &id, json!({"ends_at": "2026-12-01T16:59:59Z"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.body["ends_at"].is_array(), "{}", r.text);
    let r = app
        .patch_event(&ada, &id, json!({"date": "2026-12-02"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.body["date"].is_array(), "{}", r.text);
    assert_eq!(
        app.get(&format!("/api/events/{id}/"), None).await.body,
        before
    );
    // A client that only knows name and date can PUT back what it read.
    let r = app
        .send(
            Method::PUT,
            &format!("/api/events/{id}/"),
            Some(&ada),
            Some(json!({"name": "Rust meetup #2", "date": "2026-12-01"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["starts_at"], "2026-12-01T17:00:00Z");
    // Moving the start across midnight in Berlin moves the date with it.
    let r = app
        .patch_event(
            &ada,
            &id,
            json!({"starts_at": "2026-12-02T23:30:00Z", "ends_at": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["date"], "2026-12-03");
    assert_eq!(r.body["ends_at"], Value::Null);
    // Cleared times leave the date as it was.
    let r = app
        .patch_event(&ada, &id, json!({"starts_at": null, "timezone": null}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (r.body["date"].clone(), r.body["starts_at"].clone()),
        (json!("2026-12-03"), Value::Null)
    );
}

async fn bad_fields_are_named_and_nothing_is_stored(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let r = app
        .post(
            "/api/events/",
            Some(&ada),
            json!({
                "name": "x", "date": "2026-12-01", "timezone": "Mars/Olympus",
                "online_url": "javascript:alert(1)", "capacity": 0,
                "starts_at": "2026-12-01T10:00:00", "reminders": ["P1Y"],
                "status": "open", "visibility": "secret", "location": "x".repeat(501),
                "description": null
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    for field in [
        "timezone",
        "online_url",
        "capacity",
        "starts_at",
        "reminders",
        "status",
        "visibility",
        "location",
        "description",
    ] {
        assert!(r.body[field].is_array(), "{field} not named: {}", r.text);
    }
    let r = app
        .post(
            "/api/events/",
            Some(&ada),
            json!({"name": "x", "date": "2026-12-01", "status": "cancelled"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.body["status"].is_array());
    assert_eq!(app.count("events", "1 = 1"), 0);
    assert_eq!(
        app.count("outbox", "subject <> 'Confirm your email address'"),
        0
    );
}

async fn start_filters_and_ordering(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    for (name, starts) in [
        ("morning", Some("2026-12-01T09:00:00Z")),
        ("evening", Some("2026-12-01T19:00:00+01:00")),
        ("next day", Some("2026-12-02T09:00:00Z")),
        ("no time", None),
    ] {
        let mut body = json!({"name": name, "date": "2026-12-01"});
        if let Some(s) = starts {
            body = json!({"name": name, "starts_at": s});
        }
        app.create_event(&ada, body).await;
    }
    let names = |r: &Resp| -> Vec<String> {
        r.body
            .as_array()
            .expect("list")
            .iter()
            .map(|e| e["name"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let r = app
        .get(
            "/api/events/?starts_after=2026-12-01T10:00:00%2B00:00&starts_before=2026-12-01T23:59:59Z&ordering=starts_at",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(names(&r), ["evening"]);
    assert_eq!(r.header("x-total-count"), Some("1"));
    let r = app.get("/api/events/?ordering=-starts_at", None).await;
    assert_eq!(names(&r), ["next day", "evening", "morning", "no time"]);
    let r = app.get("/api/events/?starts_after=tomorrow", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body["starts_after"].is_array(), "{}", r.text);
}

async fn drafts_and_unlisted_events_are_seen_by_the_right_people(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (_, bob) = app.user("bob").await;
    let (_, boss) = app.staff("boss").await;
    let public = id_of(
        &app.create_event(&ada, json!({"name": "Public", "date": "2026-12-01"}))
            .await,
    );
    let draft = id_of(
        &app.create_event(
            &ada,
            json!({"name": "Draft", "date": "2026-12-02", "status": "draft"}),
        )
        .await,
    );
    let unlisted = id_of(
        &app.create_event(
            &ada,
            json!({"name": "Unlisted", "date": "2026-12-03", "visibility": "unlisted"}),
        )
        .await,
    );
    for (who, token, total) in [
        ("anonymous", None, 1),
        ("bob", Some(bob.as_str()), 1),
        ("ada", Some(ada.as_str()), 3),
        ("staff", Some(boss.as_str()), 3),
    ] {
        let r = app.get("/api/events/", token).await;
        assert_eq!(r.body.as_array().unwrap().len(), total, "{who}: {}", r.text);
        assert_eq!(
            r.header("x-total-count"),
            Some(total.to_string().as_str()),
            "{who}"
        );
    }
    let r = app.get("/api/events/?search=Draft", Some(&bob)).await;
    assert_eq!(r.body, json!([]));
    for (token, status) in [
        (None, StatusCode::NOT_FOUND),
        (Some(bob.as_str()), StatusCode::NOT_FOUND),
        (Some(ada.as_str()), StatusCode::OK),
        (Some(boss.as_str()), StatusCode::OK),
    ] {
        assert_eq!(
            app.get(&format!("/api/events/{draft}/"), token)
                .await
                .status,
            status
        );
    }
    assert_eq!(
        app.get(&format!("/api/events/{unlisted}/"), None)
            .await
            .status,
        StatusCode::OK
    );
    // Someone else's draft does not exist for them; the organizer's own takes no answers yet.
    assert_eq!(
        app.answer(&bob, &draft, "Going").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.patch_event(&bob, &draft, json!({"name": "x"}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = app.answer(&ada, &draft, "Going").await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert!(r.body["detail"].is_string());
    assert_eq!(
        app.answer(&bob, &unlisted, "Maybe").await.status,
        StatusCode::OK
    );
    // Published, it is listed; it cannot go back.
    let r = app
        .patch_event(&ada, &draft, json!({"status": "published"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        app.get("/api/events/", None).await.header("x-total-count"),
        Some("2")
    );
    let r = app
        .patch_event(&ada, &draft, json!({"status": "draft"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body["status"].is_array());
    let r = app
        .patch_event(&ada, &unlisted, json!({"visibility": "public"}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        app.get("/api/events/", None).await.header("x-total-count"),
        Some("3")
    );
    let _ = public;
}

async fn capacity_fills_then_the_waitlist_moves_up_in_order(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let mut tokens = Vec::new();
    for name in ["bob", "carol", "dave", "erin", "fay"] {
        tokens.push(app.user(name).await.1);
    }
    let [bob, carol, dave, erin, fay] = &tokens[..] else {
        unreachable!()
    };
    let id = id_of(
        &app.create_event(
            &ada,
            json!({"name": "Small room", "date": "2026-12-01", "capacity": 2}),
        )
        .await,
    );
    for (token, expected, position) in [
        (bob, "Going", None),
        (carol, "Going", None),
        (dave, "Waitlisted", Some(1)),
        (erin, "Waitlisted", Some(2)),
        (fay, "Waitlisted", Some(3)),
    ] {
        let r = app.answer(token, &id, "Going").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["status"], expected);
        assert_eq!(r.body["waitlist_position"].as_i64(), position, "{}", r.text);
    }
    // Asking again keeps one's place; the status is the server's to set.
    let r = app.answer(dave, &id, "Going").await;
    assert_eq!(
        (
            r.body["status"].clone(),
            r.body["waitlist_position"].clone()
        ),
        (json!("Waitlisted"), json!(1))
    );
    let r = app.answer(dave, &id, "Waitlisted").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let detail = app.get(&format!("/api/events/{id}/"), None).await.body;
    assert_eq!(
        (
            detail["going_count"].clone(),
            detail["waitlist_count"].clone()
        ),
        (json!(2), json!(3))
    );

    // A seat frees: the first in the queue gets it, with a mail, in the same request.
    assert_eq!(
        app.answer(bob, &id, "Not Going").await.body["status"],
        "Not Going"
    );
    assert_eq!(mails(&app, "dave", "You have a place:%"), 1);
    assert_eq!(mails(&app, "erin", "You have a place:%"), 0);
    let r = app.answer(erin, &id, "Going").await;
    assert_eq!(r.body["waitlist_position"], 1, "erin moved up: {}", r.text);
    // Leaving the queue frees no seat and promotes nobody.
    assert_eq!(app.answer(erin, &id, "Maybe").await.body["status"], "Maybe");
    // More seats: the queue moves up at once.
    let r = app.patch_event(&ada, &id, json!({"capacity": 5})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (
            r.body["going_count"].clone(),
            r.body["waitlist_count"].clone()
        ),
        (json!(3), json!(0))
    );
    assert_eq!(mails(&app, "fay", "You have a place:%"), 1);
    assert_eq!(mails(&app, "erin", "You have a place:%"), 0);
    assert_eq!(app.count("attendances", "status = 'Waitlisted'"), 0);
}

async fn a_deleted_account_frees_its_seat(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (_, bob) = app.user("bob").await;
    let (_, carol) = app.user("carol").await;
    let id = id_of(
        &app.create_event(
            &ada,
            json!({"name": "One seat", "date": "2026-12-01", "capacity": 1}),
        )
        .await,
    );
    app.answer(&bob, &id, "Going").await;
    assert_eq!(
        app.answer(&carol, &id, "Going").await.body["status"],
        "Waitlisted"
    );
    let r = app
        .send(
            Method::DELETE,
            "/api/users/me/",
            Some(&bob),
            Some(json!({"password": crate::helpers::PASSWORD})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let detail = app.get(&format!("/api/events/{id}/"), None).await.body;
    assert_eq!(detail["attendances"][0]["status"], "Going", "{detail}");
    assert_eq!(detail["attendances"][0]["user"]["username"], "carol");
    assert_eq!(mails(&app, "carol", "You have a place:%"), 1);
}

async fn two_hundred_clients_race_for_fifty_seats(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let id = id_of(
        &app.create_event(
            &ada,
            json!({"name": "Hot ticket", "date": "2026-12-01", "capacity": 50}),
        )
        .await,
    );
    // 200 users written directly, with tokens minted by the test's key: 200 password
    // hashes would take most of the test's time.
    let mut users = String::from(
        "INSERT INTO users (username, email, password, is_staff, is_active, date_joined) VALUES ",
    );
    users += &(0..200)
        .map(|i| {
            format!("('racer{i}', 'racer{i}@example.com', 'x', FALSE, TRUE, '2026-01-01 00:00:00')")
        })
        .collect::<Vec<_>>()
        .join(", ");
    app.sql(&users);
    let tokens = rally::accounts::tokens::TokenService::new(
        SECRET.as_bytes(),
        Duration::from_secs(300),
        Duration::from_secs(300),
    );
    let racers = app.count("users", "username LIKE 'racer%'");
    assert_eq!(racers, 200);
    let first_id = app.count("users", "1 = 1") - 200 + 1; // ids follow insertion order
    let requests = (0..200).map(|i| {
        let token = tokens
            .issue(rally::accounts::tokens::TokenType::Access, first_id + i)
            .expect("token");
        let id = id.clone();
        let app = &app;
        async move { app.answer(&token, &id, "Going").await }
    });
    let answers = futures::future::join_all(requests).await;
    let mut positions = Vec::new();
    let mut going = 0;
    for r in &answers {
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        match r.body["status"].as_str() {
            Some("Going") => going += 1,
            Some("Waitlisted") => {
                positions.push(r.body["waitlist_position"].as_i64().expect("position"))
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(going, 50);
    positions.sort_unstable();
    // Every place on the queue was handed out once, in the order the answers were decided.
    assert_eq!(positions, (1..=150).collect::<Vec<_>>());
    assert_eq!(app.count("attendances", "status = 'Going'"), 50);
    assert_eq!(app.count("attendances", "status = 'Waitlisted'"), 150);
    assert_eq!(
        app.count(
            "attendances",
            "status = 'Waitlisted' AND waitlist_seq BETWEEN 1 AND 150"
        ),
        150
    );
    let detail = app.get(&format!("/api/events/{id}/"), None).await.body;
    assert_eq!(
        (
            detail["going_count"].clone(),
            detail["waitlist_count"].clone()
        ),
        (json!(50), json!(150))
    );
}

async fn cancelling_mails_everyone_concerned_and_closes_answers(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (_, bob) = app.user("bob").await;
    let (_, carol) = app.user("carol").await;
    let (_, dave) = app.user("dave").await;
    let (_, erin) = app.user("erin").await;
    let id = id_of(
        &app.create_event(
            &ada,
            json!({"name": "Picnic", "date": "2026-12-01", "capacity": 1}),
        )
        .await,
    );
    app.answer(&bob, &id, "Going").await;
    app.answer(&carol, &id, "Maybe").await;
    app.answer(&dave, &id, "Not Going").await;
    assert_eq!(
        app.answer(&erin, &id, "Going").await.body["status"],
        "Waitlisted"
    );
    let r = app
        .patch_event(&ada, &id, json!({"status": "cancelled"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "cancelled");
    for (who, n) in [("bob", 1), ("carol", 1), ("erin", 1), ("dave", 0)] {
        assert_eq!(mails(&app, who, "Cancelled: Picnic"), n, "{who}");
    }
    assert_eq!(app.count("outbox", "subject LIKE 'You have a place%'"), 0);
    let r = app.answer(&dave, &id, "Going").await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"detail": "This event is cancelled; it takes no new answers."})
    );
    // Kept, readable and listed.
    assert_eq!(
        app.get(&format!("/api/events/{id}/"), None).await.body["status"],
        "cancelled"
    );
    assert_eq!(
        app.get("/api/events/", None).await.header("x-total-count"),
        Some("1")
    );
}

async fn important_changes_mail_each_attendee_once(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (_, bob) = app.user("bob").await;
    let (_, carol) = app.user("carol").await;
    let (_, dave) = app.user("dave").await;
    let id = id_of(
        &app.create_event(
            &ada,
            json!({
                "name": "Talk", "starts_at": "2026-12-01T18:00:00Z", "timezone": "UTC",
                "location": "Room 1"
            }),
        )
        .await,
    );
    app.answer(&bob, &id, "Going").await;
    app.answer(&carol, &id, "Maybe").await;
    app.answer(&dave, &id, "Not Going").await;
    let r = app
        .patch_event(
            &ada,
            &id,
            json!({"location": "Hall B", "starts_at": "2026-12-01T19:00:00Z"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(mails(&app, "bob", "Changed: Talk"), 1);
    assert_eq!(mails(&app, "carol", "Changed: Talk"), 1);
    assert_eq!(mails(&app, "dave", "Changed: Talk"), 0);
    assert_eq!(
        app.count(
            "outbox",
            "recipient = 'bob@example.com' AND body LIKE '%location: Room 1 -> Hall B%' \
             AND body LIKE '%starts_at: 2026-12-01 18:00 UTC (UTC) -> 2026-12-01 19:00 UTC (UTC)%'"
        ),
        1
    );
    // Nothing people plan around: no mail. The same values again: no mail.
    let mail_before = app.count("outbox", "1 = 1");
    for body in [
        json!({"name": "Talk (renamed)", "description": "Slides online."}),
        json!({"location": "Hall B", "starts_at": "2026-12-01T20:00:00+01:00"}),
        json!({"capacity": 10, "reminders": ["PT1H"]}),
    ] {
        let r = app.patch_event(&ada, &id, body).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    assert_eq!(app.count("outbox", "1 = 1"), mail_before);
    // A refused change writes no mail either.
    let r = app
        .patch_event(&ada, &id, json!({"location": "Elsewhere", "capacity": -1}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.count("outbox", "1 = 1"), mail_before);
}

async fn reminders_go_out_once_even_after_downtime(mut app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (_, bob) = app.user("bob").await;
    let (_, carol) = app.user("carol").await;
    // rally is "down" for mail: no worker runs while the reminders fall due.
    app.restart(|s| s.mail.worker = false).await;
    let soon = id_of(
        &app.create_event(&ada,
            json!({"name": "Soon", "starts_at": at(chrono::Duration::minutes(30)), "reminders": ["PT1H", "P1D"]}),
        )
        .await,
    );
    let started = id_of(
        &app.create_event(&ada,
            json!({"name": "Started", "starts_at": at(chrono::Duration::minutes(-5)), "reminders": ["PT1H"]}),
        )
        .await,
    );
    let later = id_of(
        &app.create_event(&ada,
            json!({"name": "Later", "starts_at": at(chrono::Duration::days(3)), "reminders": ["P1D"]}),
        )
        .await,
    );
    for id in [&soon, &started, &later] {
        app.answer(&bob, id, "Going").await;
    }
    app.answer(&carol, &soon, "Maybe").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.count("outbox", "subject LIKE 'Reminder:%'"), 0);

    // Back up: each reminder that fell due goes out late, once, to those Going.
    app.restart(|s| s.mail.worker = true).await;
    eventually("the late reminders", || {
        app.count("outbox", "subject LIKE 'Reminder: Soon%'") == 2
    })
    .await;
    assert_eq!(mails(&app, "bob", "Reminder: Soon starts in 1 hour"), 1);
    assert_eq!(mails(&app, "bob", "Reminder: Soon starts in 1 day"), 1);
    assert_eq!(mails(&app, "carol", "Reminder:%"), 0);
    assert_eq!(app.count("outbox", "subject LIKE 'Reminder: Started%'"), 0);
    assert_eq!(app.count("outbox", "subject LIKE 'Reminder: Later%'"), 0);
    // Restarts do not send them again.
    app.restart(|_| {}).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.count("outbox", "subject LIKE 'Reminder:%'"), 2);

    // Moving the start reschedules what is pending: "Later" now starts within a day.
    let r = app
        .patch_event(
            &ada,
            &later,
            json!({"starts_at": at(chrono::Duration::hours(2))}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    eventually("the rescheduled reminder", || {
        mails(&app, "bob", "Reminder: Later starts in 1 day") == 1
    })
    .await;
    // Cancelled events remind nobody.
    let r = app
        .patch_event(
            &ada,
            &soon,
            json!({"reminders": ["PT2H"], "status": "cancelled"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.count("outbox", "subject LIKE 'Reminder: Soon%'"), 2);
}

on_both_backends!(
    times_and_places_round_trip,
    bad_fields_are_named_and_nothing_is_stored,
    start_filters_and_ordering,
    drafts_and_unlisted_events_are_seen_by_the_right_people,
    capacity_fills_then_the_waitlist_moves_up_in_order,
    two_hundred_clients_race_for_fifty_seats,
    a_deleted_account_frees_its_seat,
    cancelling_mails_everyone_concerned_and_closes_answers,
    important_changes_mail_each_attendee_once,
    reminders_go_out_once_even_after_downtime,
);
