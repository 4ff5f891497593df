//! The outbox and its worker, against a real SMTP conversation with an in-process server.

use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, TestApp, spawn_app, spawn_app_with, test_mail_settings};
use crate::on_both_backends;
use crate::smtp::{Captured, MailSink, free_port};

/// The decoded text body of a captured message (quoted-printable or base64).
fn body_text(m: &Captured) -> String {
    let (_, raw) = m.data.split_once("\r\n\r\n").expect("headers end");
    match m.header("Content-Transfer-Encoding").as_deref() {
        Some("base64") => {
            let joined: String = raw.split_whitespace().collect();
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(joined)
                    .expect("base64 body"),
            )
            .expect("utf-8 body")
        }
        Some("quoted-printable") => {
            let mut bytes = Vec::new();
            let soft = raw.replace("=\r\n", "");
            let mut it = soft.bytes();
            while let Some(b) = it.next() {
                if b == b'=' {
                    let hex: String = [it.next().unwrap_or(b'0'), it.next().unwrap_or(b'0')]
                        .iter()
                        .map(|&c| c as char)
                        .collect();
                    bytes.push(u8::from_str_radix(&hex, 16).expect("qp hex"));
                } else {
                    bytes.push(b);
                }
            }
            String::from_utf8(bytes).expect("utf-8 body")
        }
        _ => raw.to_string(),
    }
    .replace("\r\n", "\n")
}

/// The subject, decoded from RFC 2047 base64 words when encoded.
fn subject(m: &Captured) -> String {
    let raw = m.header("Subject").expect("subject");
    raw.split_whitespace()
        .map(|word| {
            match word
                .strip_prefix("=?utf-8?b?")
                .and_then(|w| w.strip_suffix("?="))
            {
                Some(b64) => String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .expect("encoded word"),
                )
                .expect("utf-8"),
                None => format!("{word} "),
            }
        })
        .collect::<String>()
        .trim()
        .to_string()
}

on_both_backends!(smtp_down_create_is_fast_and_mail_arrives_once_after_restart);

#[actix_web::test]
async fn organizer_gets_the_mail_with_unicode_intact() {
    let sink = MailSink::start();
    let url = sink.url();
    let app = spawn_app_with(Backend::Sqlite, |s| s.mail = test_mail_settings(&url))
        .await
        .expect("app");
    let (_, ada) = app.user("ada").await;
    let name = "Café 🎉 Ünïcode";
    let r = app
        .post(
            "/api/events/",
            Some(&ada),
            json!({"name": name, "date": "2026-12-01"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.body["id"].as_str().unwrap().to_string();
    // Registration's verification mail, then the event's.
    let mails = sink.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 2);
    let m = mails
        .iter()
        .find(|m| subject(m) == "New event created")
        .expect("the event's mail");
    assert_eq!(m.to, vec!["ada@example.com".to_string()]);
    assert_eq!(subject(m), "New event created");
    assert!(
        m.header("Message-ID")
            .is_some_and(|v| v.ends_with("@rally>"))
    );
    assert_eq!(m.header("From").as_deref(), Some("rally@localhost"));
    assert!(m.data.is_ascii(), "the wire form is 7-bit: {}", m.data);
    let body = body_text(m);
    assert!(body.contains(&format!("Name: {name}\n")), "{body}");
    assert!(body.contains("Date: 2026-12-01\n"), "{body}");
    assert!(body.contains(&format!("Id: {id}\n")), "{body}");
    assert_eq!(
        app.count(
            "outbox",
            "sent_at IS NOT NULL AND attempts = 1 AND subject = 'New event created'"
        ),
        1
    );
}

#[actix_web::test]
async fn refused_create_writes_no_mail() {
    let app = spawn_app(Backend::Sqlite).await.expect("app");
    let (_, ada) = app.user("ada").await;
    let r = app
        .post("/api/events/", Some(&ada), json!({"name": ""}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.count("outbox", "subject = 'New event created'"), 0);
}

async fn smtp_down_create_is_fast_and_mail_arrives_once_after_restart(mut app: TestApp) {
    // A port nobody listens on yet: every attempt is refused until the sink starts.
    let port = free_port();
    let url = format!("smtp://127.0.0.1:{port}");
    app.restart(|s| s.mail = test_mail_settings(&url)).await;
    let (_, ada) = app.user("ada").await;
    app.drop_verification_mail();
    let mut ids = Vec::new();
    for i in 0..5 {
        let started = Instant::now();
        let r = app
            .post(
                "/api/events/",
                Some(&ada),
                json!({"name": format!("E{i}"), "date": "2026-12-01"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        // The request never waits on SMTP; a generous bound, not a benchmark.
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        ids.push(r.body["id"].as_str().unwrap().to_string());
    }
    // Wait until the worker has tried and failed each one.
    let start = Instant::now();
    while app.count("outbox", "attempts > 0 AND last_error IS NOT NULL") < 5
        && start.elapsed() < Duration::from_secs(10)
    {
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.count("outbox", "attempts > 0 AND sent_at IS NULL"), 5);

    // The process restarts; then the mail server comes up.
    app.restart(|_| {}).await;
    let sink = MailSink::start_on(port);
    let mails = sink.wait_for(5, Duration::from_secs(15)).await;
    actix_web::rt::time::sleep(Duration::from_millis(600)).await;
    let mails_after = sink.messages();
    assert_eq!(mails.len(), 5);
    assert_eq!(mails_after.len(), 5, "a mail was sent twice");
    for id in &ids {
        let n = mails_after
            .iter()
            .filter(|m| body_text(m).contains(&format!("Id: {id}\n")))
            .count();
        assert_eq!(n, 1, "event {id}");
    }
    assert_eq!(app.count("outbox", "sent_at IS NOT NULL"), 5);
}

#[actix_web::test]
async fn mail_fails_for_good_after_max_attempts_then_retry_requeues_it() {
    let port = free_port();
    let url = format!("smtp://127.0.0.1:{port}");
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.mail = test_mail_settings(&url);
        s.mail.max_attempts = 2;
    })
    .await
    .expect("app");
    let (_, ada) = app.user("ada").await;
    app.drop_verification_mail();
    app.post(
        "/api/events/",
        Some(&ada),
        json!({"name": "X", "date": "2026-12-01"}),
    )
    .await;
    let start = Instant::now();
    while app.count("outbox", "failed_at IS NOT NULL") == 0
        && start.elapsed() < Duration::from_secs(10)
    {
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.count(
            "outbox",
            "failed_at IS NOT NULL AND attempts = 2 AND last_error IS NOT NULL"
        ),
        1
    );
    let sink = MailSink::start_on(port);
    let requeued = {
        let mut conn = app.pool.get().expect("conn");
        rally::mail::outbox::retry_failed(&mut conn).expect("retry")
    };
    assert_eq!(requeued, 1);
    let mails = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 1);
}

/// Two rally processes on one PostgreSQL database: 200 mails, none sent twice.
#[actix_web::test]
async fn two_workers_on_postgres_send_each_mail_once() {
    let sink = MailSink::start();
    let url = sink.url();
    let Some(app) = spawn_app_with(Backend::Postgres, |s| {
        s.mail = test_mail_settings(&url);
        s.mail.batch_size = 8;
    })
    .await
    else {
        eprintln!("skipped: TEST_DATABASE_URL is not set");
        return;
    };
    let second = app.another(|_| {});
    app.sql(
        "INSERT INTO outbox (recipient, subject, body, message_id, created_at, attempts, next_attempt_at) \
         SELECT 'u' || g || '@example.com', 'New event created', 'mail ' || g, '<' || g || '@rally>', \
                now(), 0, now() FROM generate_series(1, 200) AS g",
    );
    let mails = sink.wait_for(200, Duration::from_secs(30)).await;
    actix_web::rt::time::sleep(Duration::from_millis(600)).await;
    let all = sink.messages();
    assert_eq!(mails.len(), 200);
    assert_eq!(all.len(), 200, "some mail was sent twice");
    let mut ids: Vec<String> = all.iter().filter_map(|m| m.header("Message-ID")).collect();
    ids.sort();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), 200, "duplicates: {ids:?}");
    assert_eq!(app.count("outbox", "sent_at IS NOT NULL"), 200);
    second.stop().await;
}
