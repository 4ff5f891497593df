//! iCalendar feeds: one event, the private feed and its token, the organizer's feed.
//! Every feed is parsed back with the `icalendar` crate and checked against the JSON API.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use icalendar::{
    Calendar, CalendarDateTime, Component, DatePerhapsTime, Event, EventLike, EventStatus, PartStat,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Resp, TestApp};
use crate::on_both_backends;

on_both_backends!(
    event_file_matches_the_event,
    sequence_and_status_follow_changes,
    caller_answer_is_the_attendee,
    date_only_event_is_all_day,
    awkward_text_round_trips_exactly,
    drafts_are_seen_by_their_organizer_and_staff_only,
    private_feed_has_the_going_and_maybe_events,
    rotating_the_token_kills_the_old_url,
    organizer_feed_has_listed_events_only,
    unknown_tokens_and_users_are_404,
    feeds_cost_a_fixed_number_of_queries,
);

async fn patch(app: &TestApp, token: &str, id: &str, body: Value) -> Value {
    let r = app.patch_event(token, id, body).await;
    assert_eq!(r.status, StatusCode::OK, "patch: {}", r.text);
    r.body
}

async fn answer(app: &TestApp, token: &str, id: &str, status: &str) -> String {
    let r = app.answer(token, id, status).await;
    assert_eq!(r.status, StatusCode::OK, "answer: {}", r.text);
    r.body["status"].as_str().unwrap_or_default().to_string()
}

/// A calendar response, checked for its media type and parsed.
fn parse(r: &Resp) -> Calendar {
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.header("content-type"),
        Some("text/calendar; charset=utf-8")
    );
    assert!(r.text.starts_with("BEGIN:VCALENDAR\r\n"), "{}", r.text);
    assert!(r.text.ends_with("END:VCALENDAR\r\n"), "{}", r.text);
    // Folded: no content line is over 75 octets.
    for line in r.text.split("\r\n") {
        assert!(line.len() <= 75, "{line:?}");
    }
    let cal: Calendar = r.text.parse().expect("the feed parses");
    assert_eq!(cal.property_value("PRODID"), Some("-//rally//events//EN"));
    assert_eq!(cal.property_value("VERSION"), Some("2.0"));
    assert_eq!(cal.property_value("METHOD"), Some("PUBLISH"));
    cal
}

async fn ics(app: &TestApp, id: &str, token: Option<&str>) -> Resp {
    app.get(&format!("/api/events/{id}/ics/"), token).await
}

/// The only VEVENT of a one-event file.
fn single(cal: &Calendar) -> Event {
    let events: Vec<&Event> = cal.events().collect();
    assert_eq!(events.len(), 1);
    events[0].clone()
}

/// VEVENTs by event id (their UID without `@rally`).
fn by_id(cal: &Calendar) -> BTreeMap<String, Event> {
    cal.events()
        .map(|e| {
            let uid = e.get_uid().expect("UID");
            let id = uid.strip_suffix("@rally").expect("UID@rally");
            (id.to_string(), e.clone())
        })
        .collect()
}

fn utc(v: &Value) -> DatePerhapsTime {
    let t: DateTime<Utc> = v.as_str().unwrap().parse().unwrap();
    DatePerhapsTime::DateTime(CalendarDateTime::Utc(t))
}

fn param(e: &Event, property: &str, name: &str) -> Option<String> {
    e.properties()
        .get(property)?
        .params()
        .get(name)
        .map(|p| p.value().to_string())
}

fn partstat(e: &Event) -> Option<PartStat> {
    let attendees = e.get_attendees();
    assert!(attendees.len() <= 1, "{attendees:?}");
    attendees.first().and_then(|a| a.part_stat)
}

async fn event_file_matches_the_event(app: TestApp) {
    let (ada_id, ada) = app.user("ada").await;
    let (_, bob) = app.user("bob").await;
    let event = app
        .create_event(
            &ada,
            json!({
                "name": "Rust meetup",
                "starts_at": "2026-12-01T18:00:00+01:00",
                "ends_at": "2026-12-01T21:30:00+01:00",
                "timezone": "Europe/Berlin",
                "location": "Hall A",
                "description": "Talks, then pizza.",
                "online_url": "https://meet.example.com/rust",
            }),
        )
        .await;
    let id = event["id"].as_str().unwrap();
    let r = ics(&app, id, None).await;
    assert_eq!(
        r.header("content-disposition"),
        Some(format!("inline; filename=\"event-{id}.ics\"").as_str())
    );
    let e = single(&parse(&r));
    assert_eq!(e.get_uid(), Some(format!("{id}@rally").as_str()));
    assert_eq!(e.get_summary(), event["name"].as_str());
    assert_eq!(e.get_start(), Some(utc(&event["starts_at"])));
    assert_eq!(e.get_end(), Some(utc(&event["ends_at"])));
    assert!(
        r.text.contains("DTSTART:20261201T170000Z\r\n"),
        "{}",
        r.text
    );
    assert!(r.text.contains("DTEND:20261201T203000Z\r\n"), "{}", r.text);
    assert_eq!(e.get_location(), Some("Hall A"));
    assert_eq!(e.get_description(), Some("Talks, then pizza."));
    assert_eq!(e.get_url(), Some("https://meet.example.com/rust"));
    assert_eq!(e.get_sequence(), Some(0));
    assert_eq!(e.get_status(), Some(EventStatus::Confirmed));
    assert!(e.get_timestamp().is_some(), "DTSTAMP");
    assert!(e.get_attendees().is_empty());
    // The organizer is named; their email only to those the API shows it to.
    assert_eq!(param(&e, "ORGANIZER", "CN").as_deref(), Some("ada"));
    assert_eq!(
        e.property_value("ORGANIZER"),
        Some(
            app.url(&format!("/api/users/{ada_id}/calendar.ics"))
                .as_str()
        )
    );
    assert!(!r.text.contains("ada@example.com"));
    let e = single(&parse(&ics(&app, id, Some(&bob)).await));
    assert!(e.property_value("ORGANIZER").unwrap().starts_with("http"));
    let e = single(&parse(&ics(&app, id, Some(&ada)).await));
    assert_eq!(
        e.property_value("ORGANIZER"),
        Some("mailto:ada@example.com")
    );
    // The trailing slash is optional, as everywhere.
    let r = app.get(&format!("/api/events/{id}/ics"), None).await;
    assert_eq!(r.status, StatusCode::OK);
    // Without the organizer (account deleted), there is no ORGANIZER.
    app.sql(&format!("DELETE FROM users WHERE id = {ada_id}"));
    let e = single(&parse(&ics(&app, id, None).await));
    assert!(e.property_value("ORGANIZER").is_none());
}

async fn sequence_and_status_follow_changes(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let event = app
        .create_event(
            &ada,
            json!({"name": "Meetup", "starts_at": "2026-12-01T18:00:00Z", "location": "Hall A"}),
        )
        .await;
    let id = event["id"].as_str().unwrap();
    let sequence = |r: Resp| single(&parse(&r)).get_sequence();
    assert_eq!(sequence(ics(&app, id, None).await), Some(0));
    patch(&app, &ada, id, json!({"location": "Hall B"})).await;
    assert_eq!(sequence(ics(&app, id, None).await), Some(1));
    // A new name is not a change people must plan around.
    patch(&app, &ada, id, json!({"name": "x"})).await;
    let e = single(&parse(&ics(&app, id, None).await));
    assert_eq!(e.get_sequence(), Some(1));
    assert_eq!(e.get_summary(), Some("x"));
    assert_eq!(e.get_location(), Some("Hall B"));
    patch(
        &app,
        &ada,
        id,
        json!({"starts_at": "2026-12-02T18:00:00Z", "ends_at": "2026-12-02T20:00:00Z"}),
    )
    .await;
    let e = single(&parse(&ics(&app, id, None).await));
    assert_eq!(e.get_sequence(), Some(2));
    let expected: DateTime<Utc> = "2026-12-02T18:00:00Z".parse().unwrap();
    assert_eq!(
        e.get_start(),
        Some(DatePerhapsTime::DateTime(CalendarDateTime::Utc(expected)))
    );
    patch(&app, &ada, id, json!({"status": "cancelled"})).await;
    let e = single(&parse(&ics(&app, id, None).await));
    assert_eq!(e.get_status(), Some(EventStatus::Cancelled));
    assert_eq!(e.get_sequence(), Some(3));
}

async fn caller_answer_is_the_attendee(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (_, bob) = app.user("bob").await;
    let (_, carol) = app.user("carol").await;
    let event = app
        .create_event(
            &ada,
            json!({"name": "Meetup", "date": "2026-12-01", "capacity": 1}),
        )
        .await;
    let id = event["id"].as_str().unwrap();
    // Not answered: no ATTENDEE, signed in or not.
    assert!(
        single(&parse(&ics(&app, id, Some(&bob)).await))
            .get_attendees()
            .is_empty()
    );
    for (status, expected) in [
        ("Maybe", PartStat::Tentative),
        ("Not Going", PartStat::Declined),
        ("Going", PartStat::Accepted),
    ] {
        answer(&app, &bob, id, status).await;
        let e = single(&parse(&ics(&app, id, Some(&bob)).await));
        assert_eq!(partstat(&e), Some(expected), "{status}");
        let attendee = &e.get_attendees()[0];
        assert_eq!(attendee.cn.as_deref(), Some("bob"));
        assert_eq!(attendee.cal_address, "mailto:bob@example.com");
    }
    // The one seat is bob's: carol waits.
    assert_eq!(answer(&app, &carol, id, "Going").await, "Waitlisted");
    let e = single(&parse(&ics(&app, id, Some(&carol)).await));
    assert_eq!(partstat(&e), Some(PartStat::NeedsAction));
    // Anonymous callers see nobody's answer.
    let r = ics(&app, id, None).await;
    assert!(single(&parse(&r)).get_attendees().is_empty());
    assert!(!r.text.contains("ATTENDEE"));
}

async fn date_only_event_is_all_day(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let event = app
        .create_event(
            &ada,
            json!({"name": "New Year's Eve", "date": "2026-12-31"}),
        )
        .await;
    let id = event["id"].as_str().unwrap();
    let r = ics(&app, id, None).await;
    let e = single(&parse(&r));
    let date = |s| DatePerhapsTime::Date(NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap());
    assert_eq!(e.get_start(), Some(date(event["date"].as_str().unwrap())));
    assert_eq!(e.get_end(), Some(date("2027-01-01")));
    assert!(
        r.text.contains("DTSTART;VALUE=DATE:20261231\r\n"),
        "{}",
        r.text
    );
    assert!(
        r.text.contains("DTEND;VALUE=DATE:20270101\r\n"),
        "{}",
        r.text
    );
    // Nothing empty is written.
    for absent in ["LOCATION", "DESCRIPTION", "URL:"] {
        assert!(!r.text.contains(absent), "{absent}: {}", r.text);
    }
}

async fn awkward_text_round_trips_exactly(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let name = "Café, Bar; «Straße» \\ 東京\nsecond line — ünïcödé ✓ and some more to fold";
    let description = format!(
        "Line one, with commas; and semicolons.\nLine two: ☕ {}\n\nEnd \\n literal",
        "ß".repeat(120)
    );
    let location = "Hall A, 2nd floor; room \"7\"";
    let event = app.create_event(&ada,
        json!({"name": name, "date": "2026-12-01", "description": description, "location": location}),
    )
    .await;
    assert_eq!(event["name"], name);
    let id = event["id"].as_str().unwrap();
    let e = single(&parse(&ics(&app, id, None).await));
    assert_eq!(e.get_summary(), event["name"].as_str());
    assert_eq!(e.get_description(), Some(description.as_str()));
    assert_eq!(e.get_location(), Some(location));
}

async fn drafts_are_seen_by_their_organizer_and_staff_only(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (_, bob) = app.user("bob").await;
    let (_, staff) = app.staff("root").await;
    let event = app
        .create_event(
            &ada,
            json!({"name": "Plans", "date": "2026-12-01", "status": "draft"}),
        )
        .await;
    let id = event["id"].as_str().unwrap();
    for token in [None, Some(bob.as_str())] {
        let r = ics(&app, id, token).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(r.body, json!({"detail": "Not found."}));
    }
    for token in [&ada, &staff] {
        let e = single(&parse(&ics(&app, id, Some(token)).await));
        assert_eq!(e.get_status(), Some(EventStatus::Tentative));
    }
    for path in [
        format!("/api/events/{}/ics/", uuid::Uuid::new_v4()),
        "/api/events/not-a-uuid/ics/".to_string(),
    ] {
        let r = app.get(&path, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.body, json!({"detail": "Not found."}));
    }
}

/// Creates bob's feed token: (token, path of the feed URL).
async fn feed_token(app: &TestApp, token: &str) -> (String, String) {
    let r = app
        .post("/api/users/me/calendar_token/", Some(token), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let feed_token = r.body["token"].as_str().unwrap().to_string();
    assert_eq!(feed_token.len(), 43);
    let url = r.body["url"].as_str().unwrap();
    assert_eq!(url, app.url(&format!("/api/calendar/{feed_token}.ics")));
    let path = url.strip_prefix(&app.address).unwrap().to_string();
    (feed_token, path)
}

async fn private_feed_has_the_going_and_maybe_events(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (bob_id, bob) = app.user("bob").await;
    let (_, carol) = app.user("carol").await;
    let mut ids = Vec::new();
    for (i, extra) in [
        json!({}),
        json!({}),
        json!({}),
        json!({"capacity": 1}),
        json!({}),
        json!({}),
        json!({"visibility": "unlisted"}),
    ]
    .into_iter()
    .enumerate()
    {
        let mut body = json!({"name": format!("E{i}"), "date": format!("2026-12-0{}", i + 1)});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        ids.push(
            app.create_event(&ada, body).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    answer(&app, &bob, &ids[0], "Going").await;
    answer(&app, &bob, &ids[1], "Maybe").await;
    answer(&app, &bob, &ids[2], "Not Going").await;
    answer(&app, &carol, &ids[3], "Going").await;
    assert_eq!(answer(&app, &bob, &ids[3], "Going").await, "Waitlisted");
    // ids[4]: no answer.
    answer(&app, &bob, &ids[5], "Going").await;
    patch(&app, &ada, &ids[5], json!({"status": "cancelled"})).await;
    answer(&app, &bob, &ids[6], "Maybe").await;
    // Someone else's answers are not in bob's feed.
    answer(&app, &carol, &ids[4], "Going").await;

    let r = app
        .post("/api/users/me/calendar_token/", None, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let (_, path) = feed_token(&app, &bob).await;
    // Only its hash is stored.
    assert_eq!(
        app.count("calendar_tokens", &format!("user_id = {bob_id}")),
        1
    );
    let r = app.get(&path, None).await;
    assert_eq!(r.header("cache-control"), Some("private, max-age=300"));
    let cal = parse(&r);
    assert_eq!(cal.property_value("X-WR-CALNAME"), Some("rally — bob"));
    let events = by_id(&cal);
    let expected: Vec<&str> = vec![&ids[0], &ids[1], &ids[5], &ids[6]];
    let mut expected: Vec<String> = expected.into_iter().map(String::from).collect();
    expected.sort();
    assert_eq!(events.keys().cloned().collect::<Vec<_>>(), expected);
    assert_eq!(partstat(&events[&ids[0]]), Some(PartStat::Accepted));
    assert_eq!(partstat(&events[&ids[1]]), Some(PartStat::Tentative));
    assert_eq!(partstat(&events[&ids[6]]), Some(PartStat::Tentative));
    assert_eq!(events[&ids[5]].get_status(), Some(EventStatus::Cancelled));
    assert_eq!(events[&ids[0]].get_status(), Some(EventStatus::Confirmed));
    assert_eq!(events[&ids[0]].get_summary(), Some("E0"));
    // Each event as the API shows it.
    for (id, e) in &events {
        let detail = app.get(&format!("/api/events/{id}/"), None).await.body;
        assert_eq!(e.get_summary(), detail["name"].as_str());
        let date = NaiveDate::parse_from_str(detail["date"].as_str().unwrap(), "%Y-%m-%d").unwrap();
        assert_eq!(e.get_start(), Some(DatePerhapsTime::Date(date)));
    }
    // The feed is read in calendar order.
    let order: Vec<String> = cal
        .events()
        .map(|e| e.get_summary().unwrap().to_string())
        .collect();
    assert_eq!(order, ["E0", "E1", "E5", "E6"]);
}

async fn rotating_the_token_kills_the_old_url(app: TestApp) {
    let (bob_id, bob) = app.user("bob").await;
    let (old_token, old) = feed_token(&app, &bob).await;
    assert_eq!(app.get(&old, None).await.status, StatusCode::OK);
    let (new_token, new) = feed_token(&app, &bob).await;
    assert_ne!(old_token, new_token);
    let r = app.get(&old, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body, json!({"detail": "Not found."}));
    assert_eq!(parse(&app.get(&new, None).await).events().count(), 0);
    assert_eq!(app.count("calendar_tokens", "1 = 1"), 1);
    assert_eq!(
        app.count(
            "calendar_tokens",
            &format!(
                "user_id = {bob_id} AND token_sha256 <> '{new_token}' AND LENGTH(token_sha256) = 64"
            )
        ),
        1
    );
    // Deactivating the account stops its feed; reactivating brings it back.
    app.sql(&format!(
        "UPDATE users SET is_active = FALSE WHERE id = {bob_id}"
    ));
    assert_eq!(app.get(&new, None).await.status, StatusCode::NOT_FOUND);
    app.sql(&format!(
        "UPDATE users SET is_active = TRUE WHERE id = {bob_id}"
    ));
    assert_eq!(app.get(&new, None).await.status, StatusCode::OK);
    // Deleting the account deletes its token.
    let r = app
        .send(
            Method::DELETE,
            "/api/users/me/",
            Some(&bob),
            Some(json!({"password": crate::helpers::PASSWORD})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(app.get(&new, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.count("calendar_tokens", "1 = 1"), 0);
}

async fn organizer_feed_has_listed_events_only(app: TestApp) {
    let (ada_id, ada) = app.user("ada").await;
    let (_, bob) = app.user("bob").await;
    let published = app
        .create_event(&ada, json!({"name": "Open", "date": "2026-12-01"}))
        .await;
    let cancelled = app
        .create_event(&ada, json!({"name": "Off", "date": "2026-12-02"}))
        .await;
    let cancelled_id = cancelled["id"].as_str().unwrap();
    patch(&app, &ada, cancelled_id, json!({"status": "cancelled"})).await;
    app.create_event(
        &ada,
        json!({"name": "Draft", "date": "2026-12-03", "status": "draft"}),
    )
    .await;
    app.create_event(
        &ada,
        json!({"name": "Hidden", "date": "2026-12-04", "visibility": "unlisted"}),
    )
    .await;
    app.create_event(&bob, json!({"name": "Bob's", "date": "2026-12-05"}))
        .await;
    // Signed in as ada or not: the feed is the same public one.
    for token in [None, Some(ada.as_str())] {
        let r = app
            .get(&format!("/api/users/{ada_id}/calendar.ics"), token)
            .await;
        assert_eq!(r.header("cache-control"), Some("public, max-age=300"));
        assert!(!r.text.contains("ada@example.com"), "{}", r.text);
        let cal = parse(&r);
        assert_eq!(cal.property_value("X-WR-CALNAME"), Some("rally — ada"));
        let events = by_id(&cal);
        let mut expected = vec![
            published["id"].as_str().unwrap().to_string(),
            cancelled_id.to_string(),
        ];
        expected.sort();
        assert_eq!(events.keys().cloned().collect::<Vec<_>>(), expected);
        assert_eq!(
            events[cancelled_id].get_status(),
            Some(EventStatus::Cancelled)
        );
        assert_eq!(events[cancelled_id].get_sequence(), Some(1));
        for e in events.values() {
            assert_eq!(param(e, "ORGANIZER", "CN").as_deref(), Some("ada"));
            assert!(e.get_attendees().is_empty());
        }
    }
}

async fn unknown_tokens_and_users_are_404(app: TestApp) {
    let (_, bob) = app.user("bob").await;
    let (token, _) = feed_token(&app, &bob).await;
    let well_formed_unknown = "A".repeat(43);
    for path in [
        format!("/api/calendar/{well_formed_unknown}.ics"),
        "/api/calendar/short.ics".to_string(),
        format!("/api/calendar/{token}"),
        format!("/api/calendar/{token}.ical"),
        format!("/api/calendar/{}.ics", token.to_uppercase()),
        "/api/users/999999/calendar.ics".to_string(),
        "/api/users/abc/calendar.ics".to_string(),
        "/api/users/me/calendar.ics".to_string(),
    ] {
        let r = app.get(&path, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.body, json!({"detail": "Not found."}), "{path}");
    }
    let r = app
        .send(
            Method::GET,
            "/api/users/me/calendar_token/",
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

async fn feeds_cost_a_fixed_number_of_queries(app: TestApp) {
    let (ada_id, ada) = app.user("ada").await;
    let (bob_id, bob) = app.user("bob").await;
    let (_, path) = feed_token(&app, &bob).await;
    let organizer = format!("/api/users/{ada_id}/calendar.ics");
    let queries = |r: Resp| -> u32 {
        assert_eq!(r.status, StatusCode::OK);
        r.header("x-query-count").unwrap().parse().unwrap()
    };
    let mut costs = Vec::new();
    for round in 0..2 {
        let n = if round == 0 { 1 } else { 6 };
        for i in 0..n {
            let id = app
                .create_event(
                    &ada,
                    json!({"name": format!("E{round}{i}"), "date": "2026-12-01"}),
                )
                .await["id"]
                .as_str()
                .unwrap()
                .to_string();
            answer(&app, &bob, &id, "Going").await;
        }
        costs.push((
            queries(app.get(&path, None).await),
            queries(app.get(&organizer, None).await),
        ));
    }
    assert_eq!(costs[0], costs[1], "{costs:?}");
    assert_eq!(app.count("attendances", &format!("user_id = {bob_id}")), 7);
}
