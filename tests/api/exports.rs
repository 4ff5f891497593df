//! Issue 9: conditional requests on events (ETag, If-None-Match, If-Match) and the
//! organizer's attendee export as CSV.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Resp, TestApp, read};
use crate::on_both_backends;

on_both_backends!(
    etags_are_stable_and_follow_every_change,
    if_none_match_answers_304_without_a_body,
    two_organizers_editing_at_once_the_second_gets_412,
    if_match_comes_after_404_and_403_and_before_400,
    attendee_csv_round_trips_with_quoting_and_formula_guard,
    attendee_csv_is_for_organizer_and_staff_only,
    attendee_csv_costs_the_same_queries_for_1_or_600_attendees,
);

/// A request with extra headers.
async fn send_with(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Resp {
    let mut req = app.client.request(method, app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    read(req.send().await.expect("request sent")).await
}

async fn create(app: &TestApp, token: &str, body: Value) -> String {
    let r = app.post("/api/events/", Some(token), body).await;
    assert_eq!(r.status, StatusCode::CREATED, "create: {}", r.text);
    r.body["id"].as_str().expect("id").to_string()
}

async fn answer(app: &TestApp, token: &str, id: &str, status: &str) {
    let r = app
        .post(
            &format!("/api/events/{id}/change_attendee_status/"),
            Some(token),
            json!({"status": status}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

fn etag(r: &Resp) -> String {
    r.header("etag").expect("an ETag").to_string()
}

async fn etag_of(app: &TestApp, path: &str, token: Option<&str>) -> String {
    let r = app.get(path, token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    etag(&r)
}

async fn etags_are_stable_and_follow_every_change(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (_, bob) = app.user("bob").await;
    let id = create(&app, &ada, json!({"name": "Meetup", "date": "2026-12-01"})).await;
    let path = format!("/api/events/{id}/");

    let first = etag_of(&app, &path, Some(&ada)).await;
    // A strong tag: quoted, no W/ prefix.
    assert!(
        first.len() == 34 && first.starts_with('"') && first.ends_with('"'),
        "{first}"
    );
    assert_eq!(etag_of(&app, &path, Some(&ada)).await, first);

    answer(&app, &bob, &id, "Going").await;
    let after_answer = etag_of(&app, &path, Some(&ada)).await;
    assert_ne!(after_answer, first);

    let r = app
        .send(
            Method::PATCH,
            &path,
            Some(&ada),
            Some(json!({"location": "Hall 2"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let after_edit = etag_of(&app, &path, Some(&ada)).await;
    assert_ne!(after_edit, after_answer);
    // The PATCH answer carries the tag of the new detail, ready for the next If-Match.
    assert_eq!(etag(&r), after_edit);

    // The list has its own tag, which moves when an event is added.
    let list = etag_of(&app, "/api/events/", None).await;
    assert_eq!(etag_of(&app, "/api/events/", None).await, list);
    create(&app, &bob, json!({"name": "Second", "date": "2026-12-02"})).await;
    assert_ne!(etag_of(&app, "/api/events/", None).await, list);
}

async fn if_none_match_answers_304_without_a_body(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let id = create(&app, &ada, json!({"name": "Meetup", "date": "2026-12-01"})).await;
    for path in [
        format!("/api/events/{id}/"),
        "/api/events/?limit=5".to_string(),
    ] {
        let current = etag_of(&app, &path, None).await;
        let weak = format!("W/{current}");
        let listed = format!("\"0123\", {current}");
        for held in [current.as_str(), weak.as_str(), listed.as_str(), "*"] {
            let r = send_with(
                &app,
                Method::GET,
                &path,
                None,
                &[("If-None-Match", held)],
                None,
            )
            .await;
            assert_eq!(r.status, StatusCode::NOT_MODIFIED, "{path} {held}");
            assert_eq!(r.text, "", "a 304 has no body");
            assert_eq!(etag(&r), current);
        }
        let r = send_with(
            &app,
            Method::GET,
            &path,
            None,
            &[("If-None-Match", "\"stale\"")],
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(etag(&r), current);
        assert!(!r.text.is_empty());
    }
}

async fn two_organizers_editing_at_once_the_second_gets_412(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (_, root) = app.staff("root").await;
    let id = create(&app, &ada, json!({"name": "Meetup", "date": "2026-12-01"})).await;
    let path = format!("/api/events/{id}/");

    // Both read the same version (staff and organizer see the same emails).
    let seen_by_ada = etag_of(&app, &path, Some(&ada)).await;
    let seen_by_root = etag_of(&app, &path, Some(&root)).await;
    assert_eq!(seen_by_ada, seen_by_root);

    let first = send_with(
        &app,
        Method::PATCH,
        &path,
        Some(&ada),
        &[("If-Match", &seen_by_ada)],
        Some(json!({"name": "Ada's name"})),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let second = send_with(
        &app,
        Method::PATCH,
        &path,
        Some(&root),
        &[("If-Match", &seen_by_root)],
        Some(json!({"name": "Root's name"})),
    )
    .await;
    assert_eq!(
        second.status,
        StatusCode::PRECONDITION_FAILED,
        "{}",
        second.text
    );
    assert_eq!(
        second.body,
        json!({"detail": "The event has changed since you read it; GET it again and reapply your change."})
    );
    let stored = app.get(&path, Some(&ada)).await;
    assert_eq!(stored.body["name"], "Ada's name");

    // PUT too; and the tag from ada's PATCH chains into her next change.
    let r = send_with(
        &app,
        Method::PUT,
        &path,
        Some(&root),
        &[("If-Match", &seen_by_root)],
        Some(json!({"name": "Root's PUT", "date": "2026-12-01"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    let r = send_with(
        &app,
        Method::PUT,
        &path,
        Some(&ada),
        &[("If-Match", &etag(&first))],
        Some(json!({"name": "Ada again", "date": "2026-12-01"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // A weak tag never passes the strong comparison If-Match asks for.
    let weak = format!("W/{}", etag(&r));
    let w = send_with(
        &app,
        Method::PATCH,
        &path,
        Some(&ada),
        &[("If-Match", &weak)],
        Some(json!({"name": "Weak"})),
    )
    .await;
    assert_eq!(w.status, StatusCode::PRECONDITION_FAILED);
    // `*`: any current version.
    let r = send_with(
        &app,
        Method::PATCH,
        &path,
        Some(&root),
        &[("If-Match", "*")],
        Some(json!({"name": "Any"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // DELETE with a stale tag: 412 and the event stays; with the current one: gone.
    let r = send_with(
        &app,
        Method::DELETE,
        &path,
        Some(&ada),
        &[("If-Match", &seen_by_ada)],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(app.count("events", &format!("id = '{id}'")), 1);
    let current = etag_of(&app, &path, Some(&ada)).await;
    let r = send_with(
        &app,
        Method::DELETE,
        &path,
        Some(&ada),
        &[("If-Match", &current)],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(app.count("events", &format!("id = '{id}'")), 0);
}

async fn if_match_comes_after_404_and_403_and_before_400(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (_, bob) = app.user("bob").await;
    let id = create(&app, &ada, json!({"name": "Meetup", "date": "2026-12-01"})).await;
    let path = format!("/api/events/{id}/");
    let unknown = format!("/api/events/{}/", uuid::Uuid::new_v4());
    for method in [Method::PATCH, Method::PUT, Method::DELETE] {
        for held in ["\"stale\"", "*"] {
            let r = send_with(
                &app,
                method.clone(),
                &unknown,
                Some(&ada),
                &[("If-Match", held)],
                Some(json!({"name": "x"})),
            )
            .await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {held}");
        }
        let r = send_with(
            &app,
            method.clone(),
            &path,
            Some(&bob),
            &[("If-Match", "\"stale\"")],
            Some(json!({"name": "x"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{method}");
    }
    let r = send_with(
        &app,
        Method::PATCH,
        &path,
        Some(&ada),
        &[("If-Match", "\"stale\"")],
        Some(json!({"name": ""})),
    )
    .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    let current = etag_of(&app, &path, Some(&ada)).await;
    let r = send_with(
        &app,
        Method::PATCH,
        &path,
        Some(&ada),
        &[("If-Match", &current)],
        Some(json!({"name": ""})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    // Without If-Match, changes go ahead as they always did.
    let r = app
        .send(
            Method::PATCH,
            &path,
            Some(&ada),
            Some(json!({"name": "Plain"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

/// RFC 4180, strictly: every line ends with CRLF, a bare LF or CR is an error.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            '"' => {
                assert!(field.is_empty(), "a quote inside an unquoted field");
                quoted = true;
            }
            ',' => row.push(std::mem::take(&mut field)),
            '\r' => {
                assert_eq!(chars.next(), Some('\n'), "CR without LF");
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            '\n' => panic!("a bare LF"),
            c => field.push(c),
        }
    }
    assert!(
        !quoted && field.is_empty() && row.is_empty(),
        "the last line ends with CRLF"
    );
    rows
}

/// The file without its BOM, which it must start with.
fn csv_body(r: &Resp) -> &str {
    r.text
        .strip_prefix('\u{feff}')
        .expect("starts with a UTF-8 BOM")
}

/// A cell as the export writes a value: formulas defused with a leading `'`.
fn cell(value: &str) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_string()
    }
}

async fn attendee_csv_round_trips_with_quoting_and_formula_guard(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let id = create(
        &app,
        &ada,
        json!({"name": "Meetup", "date": "2026-12-01", "capacity": 1}),
    )
    .await;
    let mut people = Vec::new();
    for (name, status) in [
        ("dave", "Not Going"),
        ("bob", "Going"),
        ("carol", "Maybe"),
        ("eve", "Going"),
        ("frank", "Going"),
    ] {
        let (uid, token) = app.user(name).await;
        answer(&app, &token, &id, status).await;
        people.push(uid);
    }
    // Names a spreadsheet must not mangle: quotes and commas, non-ASCII, and a formula.
    app.sql(&format!(
        "UPDATE users SET username = 'O\"Brien, Ada' WHERE id = {}",
        people[1]
    ));
    app.sql(&format!(
        "UPDATE users SET username = 'Zoë Ångström', email = 'zoë@exämple.com' WHERE id = {}",
        people[0]
    ));
    app.sql(&format!(
        "UPDATE users SET username = '=1+2', email = '@SUM(A1)@example.com' WHERE id = {}",
        people[3]
    ));
    app.sql(&format!(
        "UPDATE users SET email = 'line\nbreak@example.com' WHERE id = {}",
        people[4]
    ));

    let r = app
        .get(&format!("/api/events/{id}/attendees.csv"), Some(&ada))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"));
    assert_eq!(
        r.header("content-disposition"),
        Some(format!("attachment; filename=\"attendees-{id}.csv\"").as_str())
    );
    let rows = parse_csv(csv_body(&r));
    assert_eq!(
        rows[0],
        ["username", "email", "status", "waitlist_position"]
    );

    // The same people as the detail shows the organizer, in the export's order.
    let detail = app.get(&format!("/api/events/{id}/"), Some(&ada)).await;
    let rank = |s: &str| {
        ["Going", "Maybe", "Waitlisted", "Not Going"]
            .iter()
            .position(|x| *x == s)
    };
    let mut expected: Vec<(usize, Vec<String>)> = detail.body["attendances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let status = a["status"].as_str().unwrap();
            (
                rank(status).unwrap(),
                vec![
                    cell(a["user"]["username"].as_str().unwrap()),
                    cell(a["user"]["email"].as_str().unwrap()),
                    status.to_string(),
                ],
            )
        })
        .collect();
    // Stable: within a status, answer order (the detail's order).
    expected.sort_by_key(|(rank, _)| *rank);
    let mut position = 0;
    let expected: Vec<Vec<String>> = expected
        .into_iter()
        .map(|(_, mut row)| {
            let waitlisted = row[2] == "Waitlisted";
            position += i32::from(waitlisted);
            row.push(if waitlisted {
                position.to_string()
            } else {
                String::new()
            });
            row
        })
        .collect();
    assert_eq!(rows[1..], expected[..]);
    assert_eq!(
        rows[1..].iter().map(|r| r[2].as_str()).collect::<Vec<_>>(),
        ["Going", "Maybe", "Waitlisted", "Waitlisted", "Not Going"]
    );
    assert_eq!(rows[1][0], "O\"Brien, Ada");
    assert_eq!(rows[3][0], "'=1+2");
    assert_eq!(rows[3][1], "'@SUM(A1)@example.com");
    assert_eq!(rows[3][3], "1");
    assert_eq!(rows[4][1], "line\nbreak@example.com");
    assert_eq!(rows[4][3], "2");
    assert_eq!(rows[5][0], "Zoë Ångström");
    // The raw bytes: quoting, doubled quotes, CRLF.
    assert!(
        r.text
            .contains("\r\n\"O\"\"Brien, Ada\",bob@example.com,Going,\r\n"),
        "{}",
        r.text
    );
}

async fn attendee_csv_is_for_organizer_and_staff_only(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (_, bob) = app.user("bob").await;
    let (_, root) = app.staff("root").await;
    let id = create(&app, &ada, json!({"name": "Meetup", "date": "2026-12-01"})).await;
    let draft = create(
        &app,
        &ada,
        json!({"name": "Draft", "date": "2026-12-01", "status": "draft"}),
    )
    .await;
    answer(&app, &bob, &id, "Going").await;
    let path = format!("/api/events/{id}/attendees.csv");

    let r = app.get(&path, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app.get(&path, Some(&bob)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.body,
        json!({"detail": "You do not have permission to perform this action."})
    );
    for missing in [
        format!("/api/events/{}/attendees.csv", uuid::Uuid::new_v4()),
        "/api/events/not-a-uuid/attendees.csv".to_string(),
        format!("/api/events/{draft}/attendees.csv"),
    ] {
        let r = app.get(&missing, Some(&bob)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{missing}");
        assert_eq!(r.body, json!({"detail": "Not found."}));
    }
    let r = app.get(&path, Some(&root)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        parse_csv(csv_body(&r))[1],
        ["bob", "bob@example.com", "Going", ""]
    );
    let r = app
        .get(&format!("/api/events/{draft}/attendees.csv"), Some(&ada))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(parse_csv(csv_body(&r)).len(), 1, "the header only");
}

async fn attendee_csv_costs_the_same_queries_for_1_or_600_attendees(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (_, bob) = app.user("bob").await;
    let small = create(&app, &ada, json!({"name": "Small", "date": "2026-12-01"})).await;
    let big = create(&app, &ada, json!({"name": "Big", "date": "2026-12-01"})).await;
    answer(&app, &bob, &small, "Going").await;
    let mut users = String::from(
        "INSERT INTO users (username, email, password, is_staff, is_active, date_joined) VALUES ",
    );
    users += &(0..600)
        .map(|i| format!("('q{i}', 'q{i}@example.com', 'x', FALSE, TRUE, '2026-01-01 00:00:00')"))
        .collect::<Vec<_>>()
        .join(", ");
    app.sql(&users);
    app.sql(&format!(
        "INSERT INTO attendances (event_id, user_id, status) SELECT '{big}', id, 'Maybe' FROM users WHERE username LIKE 'q%' ORDER BY id"
    ));
    let queries = |r: &Resp| -> u32 {
        r.header("x-query-count")
            .expect("query count")
            .parse()
            .expect("a number")
    };
    let one = app
        .get(&format!("/api/events/{small}/attendees.csv"), Some(&ada))
        .await;
    let many = app
        .get(&format!("/api/events/{big}/attendees.csv"), Some(&ada))
        .await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(many.status, StatusCode::OK);
    assert_eq!(parse_csv(csv_body(&one)).len(), 2);
    let rows = parse_csv(csv_body(&many));
    // More than one streamed block, every row once, in answer order.
    assert_eq!(rows.len(), 601);
    assert_eq!(rows[1][0], "q0");
    assert_eq!(rows[600][0], "q599");
    assert_eq!(queries(&one), queries(&many));
}
