//! Incremental sync (SPEC.md §15): `GET /api/events/?updated_since=` returns the
//! changes since a cursor, with tombstones, and never skips a change that commits
//! while a sync reads.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Resp, TestApp};
use crate::on_both_backends;

on_both_backends!(
    changes_come_in_change_order_with_tombstones,
    paging_by_change_time_visits_every_change,
    others_drafts_and_their_tombstones_stay_hidden,
    deleting_an_attendee_changes_the_event,
    tombstones_expire_and_old_cursors_are_refused,
    sync_parameters_are_checked,
    cursor_is_never_ahead_of_an_uncommitted_writer,
    racing_writes_are_never_skipped,
);

fn id_of(event: &Value) -> String {
    event["id"].as_str().expect("id").to_string()
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse(t: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(t)
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

async fn sync_resp(app: &TestApp, token: Option<&str>, query: &[(&str, &str)]) -> Resp {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in query {
        s.append_pair(k, v);
    }
    app.get(&format!("/api/events/?{}", s.finish()), token)
        .await
}

/// One sync call: its items and the cursor for the next.
async fn sync(app: &TestApp, token: Option<&str>, since: &str, limit: i64) -> (Vec<Value>, String) {
    let r = sync_resp(
        app,
        token,
        &[("updated_since", since), ("limit", &limit.to_string())],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "sync: {}", r.text);
    let cursor = r
        .header("x-sync-cursor")
        .expect("X-Sync-Cursor")
        .to_string();
    // The cursor is RFC 3339 in UTC with microseconds.
    assert!(cursor.ends_with('Z') && cursor.len() == 27, "{cursor}");
    let items = r.body.as_array().expect("array").clone();
    (items, cursor)
}

/// A client's replica: events by id, as the list shows them.
#[derive(Default)]
struct Replica(BTreeMap<String, Value>);

impl Replica {
    /// Applies a sync's items in order; returns how many changed the replica.
    fn apply(&mut self, items: &[Value]) -> usize {
        let mut changed = 0;
        for item in items {
            let id = id_of(item);
            if item["deleted"] == true {
                changed += usize::from(self.0.remove(&id).is_some());
            } else {
                let mut event = item.clone();
                event
                    .as_object_mut()
                    .expect("object")
                    .remove("updated_at")
                    .expect("updated_at in a sync item");
                if self.0.get(&id) != Some(&event) {
                    changed += 1;
                }
                self.0.insert(id, event);
            }
        }
        changed
    }
}

/// Syncs until a page is not full; returns the last cursor.
async fn drain(
    app: &TestApp,
    token: Option<&str>,
    mut cursor: String,
    replica: &mut Replica,
) -> String {
    for _ in 0..1000 {
        let (items, next) = sync(app, token, &cursor, 50).await;
        replica.apply(&items);
        cursor = next;
        if items.len() < 50 {
            return cursor;
        }
    }
    panic!("sync did not finish paging");
}

async fn full_list(app: &TestApp, token: Option<&str>) -> BTreeMap<String, Value> {
    let r = app.get("/api/events/?limit=1000", token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
        .as_array()
        .expect("array")
        .iter()
        .map(|e| (id_of(e), e.clone()))
        .collect()
}

async fn delete(app: &TestApp, token: &str, id: &str) {
    let r = app
        .send(
            Method::DELETE,
            &format!("/api/events/{id}/"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "delete: {}", r.text);
}

async fn changes_come_in_change_order_with_tombstones(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (_, bob) = app.user("bob").await;
    let untouched = id_of(
        &app.create_event(&ada, json!({"name": "Old", "date": "2026-12-01"}))
            .await,
    );
    let (_, start) = sync(&app, Some(&bob), &now(), 100).await;
    let a = id_of(
        &app.create_event(&ada, json!({"name": "A", "date": "2026-12-02"}))
            .await,
    );
    let b = id_of(
        &app.create_event(&ada, json!({"name": "B", "date": "2026-12-03"}))
            .await,
    );
    let c = id_of(
        &app.create_event(&ada, json!({"name": "C", "date": "2026-12-04"}))
            .await,
    );
    assert_eq!(
        app.patch_event(&ada, &a, json!({"name": "A2"}))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(app.answer(&bob, &b, "Going").await.status, StatusCode::OK);
    delete(&app, &ada, &c).await;

    let (items, cursor) = sync(&app, Some(&bob), &start, 100).await;
    let mut replica = Replica::default();
    replica.apply(&items);
    let mut items = items;
    if app.backend == crate::helpers::Backend::Postgres {
        // The start cursor may lag behind the event made before it while other
        // transactions (the other tests') are open: a repeat, which is allowed.
        items.retain(|i| id_of(i) != untouched);
    }
    let ids: Vec<String> = items.iter().map(id_of).collect();
    assert_eq!(ids, vec![a.clone(), b.clone(), c.clone()], "{items:#?}");
    assert_eq!(items[0]["name"], "A2");
    assert_eq!(items[1]["going_count"], 1);
    assert_eq!(
        items[2],
        json!({"id": c, "deleted": true, "deleted_at": items[2]["deleted_at"]})
    );
    let times: Vec<DateTime<Utc>> = items
        .iter()
        .map(|i| {
            parse(
                i["updated_at"]
                    .as_str()
                    .or(i["deleted_at"].as_str())
                    .expect("time"),
            )
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    if app.backend == crate::helpers::Backend::Sqlite {
        // On PostgreSQL the cursor may lag while other transactions are open.
        assert!(parse(&cursor) > times[2]);
    }

    // From the returned cursor, nothing new: at most a repeat of what the client has.
    let (again, _) = sync(&app, Some(&bob), &cursor, 100).await;
    assert_eq!(replica.apply(&again), 0, "{again:#?}");
    if app.backend == crate::helpers::Backend::Sqlite {
        assert!(again.is_empty(), "{again:#?}");
    }
}

async fn paging_by_change_time_visits_every_change(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (_, start) = sync(&app, Some(&ada), &now(), 100).await;
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(id_of(
            &app.create_event(&ada, json!({"name": format!("E{i}"), "date": "2026-12-01"}))
                .await,
        ));
    }
    // Two events stamped at the same instant: a page of one must still move on.
    app.sql(&format!(
        "UPDATE events SET updated_at = (SELECT updated_at FROM events WHERE id = '{}') WHERE id = '{}'",
        made[1], made[2]
    ));
    let mut seen = Vec::new();
    let mut cursor = start;
    for _ in 0..100 {
        let (items, next) = sync(&app, Some(&ada), &cursor, 1).await;
        for item in &items {
            if !seen.contains(&id_of(item)) {
                seen.push(id_of(item));
            }
        }
        cursor = next;
        if items.is_empty() {
            break;
        }
    }
    let mut sorted_seen = seen.clone();
    sorted_seen.sort();
    let mut sorted_made = made.clone();
    sorted_made.sort();
    assert_eq!(sorted_seen, sorted_made);
    assert_eq!(seen[0], made[0]);
}

async fn others_drafts_and_their_tombstones_stay_hidden(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (_, bob) = app.user("bob").await;
    let (_, staff) = app.staff("root").await;
    let start = now();
    let draft = id_of(
        &app.create_event(
            &ada,
            json!({"name": "D", "date": "2026-12-01", "status": "draft"}),
        )
        .await,
    );
    let unlisted = id_of(
        &app.create_event(
            &ada,
            json!({"name": "U", "date": "2026-12-01", "visibility": "unlisted"}),
        )
        .await,
    );
    let public = id_of(
        &app.create_event(&ada, json!({"name": "P", "date": "2026-12-01"}))
            .await,
    );
    let ids = |items: &[Value]| {
        let mut ids: Vec<String> = items.iter().map(id_of).collect();
        ids.sort();
        ids
    };
    let mut all = vec![draft.clone(), unlisted.clone(), public.clone()];
    all.sort();
    for (token, expected) in [
        (Some(bob.as_str()), vec![public.clone()]),
        (None, vec![public.clone()]),
        (Some(ada.as_str()), all.clone()),
        (Some(staff.as_str()), all.clone()),
    ] {
        let (items, _) = sync(&app, token, &start, 100).await;
        assert_eq!(ids(&items), expected);
        assert!(items.iter().all(|i| i.get("deleted").is_none()));
    }
    for id in [&draft, &unlisted, &public] {
        delete(&app, &ada, id).await;
    }
    for (token, expected) in [
        (Some(bob.as_str()), vec![public.clone()]),
        (None, vec![public.clone()]),
        (Some(ada.as_str()), all.clone()),
        (Some(staff.as_str()), all.clone()),
    ] {
        let (items, _) = sync(&app, token, &start, 100).await;
        assert_eq!(ids(&items), expected);
        assert!(items.iter().all(|i| i["deleted"] == true));
    }
}

async fn deleting_an_attendee_changes_the_event(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let (_, bob) = app.user("bob").await;
    let event = id_of(
        &app.create_event(&ada, json!({"name": "E", "date": "2026-12-01"}))
            .await,
    );
    assert_eq!(
        app.answer(&bob, &event, "Going").await.status,
        StatusCode::OK
    );
    let (_, cursor) = sync(&app, Some(&ada), &now(), 100).await;
    let r = app
        .send(
            Method::DELETE,
            "/api/users/me/",
            Some(&bob),
            Some(json!({"password": crate::helpers::PASSWORD})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let (items, _) = sync(&app, Some(&ada), &cursor, 100).await;
    assert_eq!(items.len(), 1, "{items:#?}");
    assert_eq!(items[0]["going_count"], 0);
}

async fn tombstones_expire_and_old_cursors_are_refused(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let old = id_of(
        &app.create_event(&ada, json!({"name": "Old", "date": "2026-12-01"}))
            .await,
    );
    let new = id_of(
        &app.create_event(&ada, json!({"name": "New", "date": "2026-12-01"}))
            .await,
    );
    delete(&app, &ada, &old).await;
    // Deleted long ago, past the 30 days kept: the next delete prunes it.
    app.sql(&format!(
        "UPDATE event_tombstones SET deleted_at = '2020-01-01 00:00:00' WHERE event_id = '{old}'"
    ));
    delete(&app, &ada, &new).await;
    assert_eq!(
        app.count("event_tombstones", &format!("event_id = '{old}'")),
        0
    );
    assert_eq!(
        app.count("event_tombstones", &format!("event_id = '{new}'")),
        1
    );
    let r = sync_resp(
        &app,
        Some(&ada),
        &[("updated_since", "2020-01-01T00:00:00Z")],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(
        r.body["updated_since"][0]
            .as_str()
            .expect("message")
            .starts_with("Too old")
    );
    let recent = (Utc::now() - chrono::Duration::days(29)).to_rfc3339();
    let r = sync_resp(&app, Some(&ada), &[("updated_since", &recent)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body,
        json!([{"id": new, "deleted": true, "deleted_at": r.body[0]["deleted_at"]}])
    );
}

async fn sync_parameters_are_checked(app: TestApp) {
    for (query, param) in [
        (vec![("updated_since", "yesterday")], "updated_since"),
        (vec![("updated_since", "2026-11-22")], "updated_since"),
        (
            vec![("updated_since", &*now()), ("ordering", "name")],
            "ordering",
        ),
        (vec![("updated_since", &*now()), ("offset", "10")], "offset"),
        (vec![("updated_since", &*now()), ("search", "x")], "search"),
        (vec![("updated_since", &*now()), ("limit", "0")], "limit"),
    ] {
        let r = sync_resp(&app, None, &query).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query:?}: {}", r.text);
        assert!(r.body.get(param).is_some(), "{query:?}: {}", r.text);
    }
    // A plain list is unchanged: no cursor, the paging headers.
    let r = app.get("/api/events/", None).await;
    assert!(r.header("x-sync-cursor").is_none());
    assert!(r.header("x-total-count").is_some());
}

/// A writer holds its transaction open after stamping an event while a sync reads:
/// either the sync waits and sees the change (SQLite: BEGIN IMMEDIATE), or its cursor is
/// not after the change's stamp, so the next sync returns it.
async fn cursor_is_never_ahead_of_an_uncommitted_writer(app: TestApp) {
    let (_, ada) = app.user("ada").await;
    let event = id_of(
        &app.create_event(&ada, json!({"name": "E", "date": "2026-12-01"}))
            .await,
    );
    let (_, cursor) = sync(&app, Some(&ada), &now(), 100).await;
    let pool = app.pool.clone();
    let (stamped_tx, stamped_rx) = std::sync::mpsc::channel();
    let id = event.clone();
    let writer = std::thread::spawn(move || {
        let mut conn = pool.get().expect("connection");
        rally::db::write_tx(&mut conn, |conn| {
            rally::events::sync::touch(conn, &[&id])?;
            stamped_tx.send(()).expect("signal");
            std::thread::sleep(Duration::from_millis(700));
            Ok::<_, diesel::result::Error>(())
        })
        .expect("writer commits");
    });
    stamped_rx.recv().expect("stamped");
    let (first, first_cursor) = sync(&app, Some(&ada), &cursor, 100).await;
    writer.join().expect("writer");
    let (second, _) = sync(&app, Some(&ada), &first_cursor, 100).await;
    let found_first = first.iter().any(|i| id_of(i) == event);
    let found_second = second.iter().any(|i| id_of(i) == event);
    assert!(found_first || found_second, "the change was skipped");
    if !found_first {
        let stamp = second
            .iter()
            .find(|i| id_of(i) == event)
            .and_then(|i| i["updated_at"].as_str())
            .map(parse)
            .expect("stamp");
        assert!(parse(&first_cursor) <= stamp);
    }
    if app.backend == crate::helpers::Backend::Sqlite {
        // The sync waited for the writer's lock, so it saw the change.
        assert!(found_first);
    }
}

/// Writers create, edit, answer and delete while a reader syncs from each returned
/// cursor: replaying every sync equals the final full list.
async fn racing_writes_are_never_skipped(app: TestApp) {
    let mut writers = Vec::new();
    for w in 0..3 {
        writers.push(app.user(&format!("writer{w}")).await.1);
    }
    let (_, reader) = app.user("reader").await;
    let (_, mut cursor) = sync(&app, Some(&reader), &now(), 10).await;
    let done = std::cell::Cell::new(false);
    let write = |token: String, w: usize| {
        let app = &app;
        let writers = &writers;
        async move {
            let mut mine: Vec<String> = Vec::new();
            for i in 0..12 {
                let e = app
                    .create_event(
                        &token,
                        json!({"name": format!("w{w}-{i}"), "date": "2026-12-01", "capacity": 1}),
                    )
                    .await;
                mine.push(id_of(&e));
                let target = mine[i / 2].clone();
                let r = app
                    .patch_event(&token, &target, json!({"name": format!("w{w}-{i}-edited")}))
                    .await;
                assert!(
                    r.status == StatusCode::OK || r.status == StatusCode::NOT_FOUND,
                    "{}",
                    r.text
                );
                let other = &writers[(w + 1) % writers.len()];
                let status = ["Going", "Maybe", "Not Going"][i % 3];
                let r = app.answer(other, &mine[i], status).await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.text);
                if i % 4 == 3 {
                    let victim = mine.remove(i % mine.len());
                    delete(app, &token, &victim).await;
                    mine.push(victim.clone()); // keeps indexes stable; edits of it are 404
                }
            }
        }
    };
    let mut replica = Replica::default();
    let syncer = async {
        let mut rounds = 0;
        while !done.get() {
            let (items, next) = sync(&app, Some(&reader), &cursor, 7).await;
            replica.apply(&items);
            cursor = next;
            rounds += 1;
        }
        rounds
    };
    let writes = async {
        futures::future::join_all(
            writers
                .iter()
                .cloned()
                .enumerate()
                .map(|(w, t)| write(t, w)),
        )
        .await;
        done.set(true);
    };
    let (rounds, ()) = futures::join!(syncer, writes);
    assert!(
        rounds > 3,
        "the sync ran only {rounds} times during the writes"
    );
    drain(&app, Some(&reader), cursor, &mut replica).await;
    let expected = full_list(&app, Some(&reader)).await;
    assert_eq!(replica.0.len(), expected.len());
    assert_eq!(replica.0, expected);
}
