//! JSON bodies, as `rally::http::JsonBody` reads them (an all-whitespace body is `{}`, anything
//! else goes through `serde_json::from_slice::<Value>`), then every form the API validates:
//! the event form (create/PUT, and PATCH's partial one), the attendance status, and the
//! account form (`read_new_account`, which runs the password validators), plus
//! `passwords::validate` on the raw text. `passwords::hash` is never called (too slow).
//!
//! Checked beyond "no panic":
//! - only a JSON object is accepted as a form, anything else is a 400 `non_field_errors`;
//! - a validated event name is 1..=100 chars, trimmed, NUL-free, and is the field's text; a
//!   validated date is the field's `parse_date`, and prints back to itself;
//! - a form finishes `Ok` exactly when each of its fields was read, and a refused one is a
//!   400 naming only its own fields, each with messages, that serialises back to itself;
//! - a status is one of `STATUSES`; an accepted account has a valid username (1..=150),
//!   a valid normalised email (<= 254) and an untrimmed password the validators pass.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rally::accounts::passwords;
use rally::accounts::routes::{normalize_email, read_new_account, valid_email, valid_username};
use rally::error::ApiError;
use rally::events::types::STATUSES;
use rally::validation::{Input, Text, parse_date};
use serde_json::{Map, Value};

const NAME_MAX: usize = 100;

fn form(body: &Value) -> Input {
    Input::new(body.clone()).expect("an object is a form")
}

/// `finish` is `Ok` exactly when `ok`; a refusal is a 400 naming only `fields`.
fn finish(input: Input, ok: bool, fields: &[&str]) {
    match input.finish() {
        Ok(()) => assert!(ok, "form finished Ok with a field refused"),
        Err(ApiError::Validation(errors)) => {
            assert!(!ok, "form refused with every field read: {errors:?}");
            assert!(!errors.is_empty());
            for (name, messages) in &errors {
                assert!(
                    fields.contains(&name.as_str()),
                    "error on {name:?}, not one of {fields:?}"
                );
                let messages = messages.as_array().expect("messages are a list");
                assert!(!messages.is_empty() && messages.iter().all(Value::is_string));
            }
            let body = Value::Object(errors);
            let bytes = serde_json::to_vec(&body).expect("a 400 body serialises");
            assert_eq!(serde_json::from_slice::<Value>(&bytes).unwrap(), body);
        }
        Err(other) => panic!("a form gave {other:?}, not a 400"),
    }
}

/// The text DRF's CharField reads from a field: strings, and numbers as text.
fn field_text(fields: &Map<String, Value>, name: &str) -> Option<String> {
    match fields.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn check_name(fields: &Map<String, Value>, name: &Option<String>) {
    if let Some(name) = name {
        let chars = name.chars().count();
        assert!((1..=NAME_MAX).contains(&chars), "name of {chars} chars");
        assert_eq!(name.as_str(), name.trim(), "name not trimmed");
        assert!(!name.contains('\0'));
        assert_eq!(
            field_text(fields, "name").as_deref().map(str::trim),
            Some(name.as_str())
        );
    }
}

/// A validated date is the field's `parse_date` and prints back to itself (compared as
/// text, which keeps chrono out of this crate's dependencies).
fn check_date(fields: &Map<String, Value>, date: Option<impl std::fmt::Display>) {
    if let Some(d) = date.map(|d| d.to_string()) {
        let raw = fields
            .get("date")
            .and_then(Value::as_str)
            .expect("a date from a string");
        assert_eq!(
            parse_date(raw.trim()).map(|p| p.to_string()),
            Some(d.clone())
        );
        // Printed as `YYYY-MM-DD`, it reads back.
        assert_eq!(parse_date(&d).map(|p| p.to_string()), Some(d));
    }
}

fn event_forms(body: &Value, fields: &Map<String, Value>) {
    // POST and PUT: both fields required.
    let mut input = form(body);
    let name = input.text("name", Text::required(NAME_MAX));
    let date = input.date("date", true);
    check_name(fields, &name);
    check_date(fields, date);
    assert_eq!(name.is_none(), input.has_error("name"));
    assert_eq!(date.is_none(), input.has_error("date"));
    finish(input, name.is_some() && date.is_some(), &["name", "date"]);

    // PATCH: each optional, but not null, blank or malformed when present.
    let mut input = form(body);
    let name = input.text("name", Text::optional(NAME_MAX));
    let date = input.date("date", false);
    check_name(fields, &name);
    check_date(fields, date);
    let name_ok = name.is_some() || !fields.contains_key("name");
    let date_ok = date.is_some() || !fields.contains_key("date");
    finish(input, name_ok && date_ok, &["name", "date"]);
}

fn attendance_form(body: &Value, fields: &Map<String, Value>) {
    let mut input = form(body);
    let status = input.choice("status", &STATUSES);
    if let Some(s) = status {
        assert!(STATUSES.contains(&s));
        assert_eq!(fields.get("status").and_then(Value::as_str), Some(s));
    }
    finish(input, status.is_some(), &["status"]);
}

fn account_form(body: &Value, fields: &Map<String, Value>) {
    let mut input = form(body);
    let account = read_new_account(&mut input);
    if let Some(a) = &account {
        let chars = a.username.chars().count();
        assert!((1..=150).contains(&chars), "username of {chars} chars");
        assert!(valid_username(&a.username), "username {:?}", a.username);
        assert_eq!(a.username.as_str(), a.username.trim());
        assert!(
            a.email.chars().count() <= 254 && valid_email(&a.email),
            "email {:?}",
            a.email
        );
        assert_eq!(normalize_email(&a.email), a.email, "email not normalised");
        assert_eq!(
            field_text(fields, "password").as_deref(),
            Some(a.password.as_str())
        );
        assert!(!a.password.is_empty() && !a.password.contains('\0'));
        let problems = passwords::validate(&a.password, &a.username, &a.email);
        assert!(problems.is_empty(), "accepted a password with {problems:?}");
    }
    finish(input, account.is_some(), &["username", "email", "password"]);
}

fn password_rules(password: &str, username: &str, email: &str) {
    let problems = passwords::validate(password, username, email);
    assert_eq!(problems, passwords::validate(password, username, email));
    let short = password.chars().count() < passwords::MIN_LENGTH;
    assert_eq!(short, problems.iter().any(|p| p.contains("too short")));
    let numeric = !password.is_empty() && password.chars().all(char::is_numeric);
    assert_eq!(
        numeric,
        problems.iter().any(|p| p.contains("entirely numeric"))
    );
}

fuzz_target!(|data: &[u8]| {
    let body = if data.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Map::new())
    } else {
        match serde_json::from_slice::<Value>(data) {
            Ok(v) => v,
            Err(_) => {
                // Not JSON: the raw text still reaches the password validators in a body.
                if let Ok(text) = std::str::from_utf8(data) {
                    password_rules(text, "ada", "ada@example.com");
                }
                return;
            }
        }
    };
    let Value::Object(fields) = &body else {
        match Input::new(body) {
            Err(ApiError::Validation(errors)) => {
                assert_eq!(errors.keys().collect::<Vec<_>>(), ["non_field_errors"]);
            }
            Err(other) => panic!("a non-object body gave {other:?}"),
            Ok(_) => panic!("a non-object body was accepted as a form"),
        }
        return;
    };
    event_forms(&body, fields);
    attendance_form(&body, fields);
    account_form(&body, fields);
    if let Some(Value::String(pw)) = fields.get("password") {
        let text = |k: &str| fields.get(k).and_then(Value::as_str).unwrap_or("");
        password_rules(pw, text("username"), text("email"));
    }
});
