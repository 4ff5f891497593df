//! The writable fields of an event: read from a request body field by field (each problem
//! named, as DRF does), then merged with the stored event, where the rules that span
//! fields are checked: `ends_at` after `starts_at`, `date` derived from `starts_at`, and
//! which status changes are allowed.

use chrono::{DateTime, FixedOffset, NaiveDate};
use chrono_tz::Tz;
use serde_json::Value;

use super::types::{CANCELLED, DRAFT, EVENT_STATUSES, EventRow, PUBLIC, PUBLISHED, VISIBILITIES};
use crate::error::{ApiError, FieldErrors};
use crate::reminders::duration;
use crate::validation::{Input, Text};

pub const NAME_MAX: usize = 100;
pub const DESCRIPTION_MAX: usize = 10_000;
pub const LOCATION_MAX: usize = 500;
pub const URL_MAX: usize = 2_000;
pub const CAPACITY_MAX: i64 = 1_000_000;
pub const REMINDERS_MAX: usize = 5;
/// Reminders reach at most this far ahead of the start (a year).
pub const REMINDER_MAX_SECONDS: i64 = 366 * 86_400;
const INVALID_URL: &str = "Enter a valid URL.";

/// What a body asks to change. `None`: not given. `Some(None)`: set to null.
#[derive(Debug, Clone, Default)]
pub struct EventInput {
    pub name: Option<String>,
    pub date: Option<NaiveDate>,
    pub starts_at: Option<Option<DateTime<FixedOffset>>>,
    pub ends_at: Option<Option<DateTime<FixedOffset>>>,
    pub timezone: Option<Option<Tz>>,
    pub description: Option<String>,
    pub location: Option<String>,
    pub online_url: Option<Option<String>>,
    pub capacity: Option<Option<i32>>,
    pub status: Option<&'static str>,
    pub visibility: Option<&'static str>,
    /// Canonical ISO 8601 durations.
    pub reminders: Option<Vec<String>>,
}

/// Reads every writable field; `name` is required unless `partial` (PATCH). `date` is
/// required on create unless `starts_at` is given; on PUT that depends on the stored
/// event too, so `merge` checks it there.
pub fn read(input: &mut Input, partial: bool, creating: bool) -> EventInput {
    if creating && !input.is_present("date") && !input.is_present("starts_at") {
        input.error("date", crate::validation::REQUIRED);
    }
    let name_rules = if partial {
        Text::optional(NAME_MAX)
    } else {
        Text::required(NAME_MAX)
    };
    EventInput {
        name: input.text("name", name_rules),
        date: input.date("date", false),
        starts_at: input.nullable("starts_at", |i, v| i.read_datetime("starts_at", v)),
        ends_at: input.nullable("ends_at", |i, v| i.read_datetime("ends_at", v)),
        timezone: input.nullable("timezone", read_timezone),
        description: not_null(input, "description", DESCRIPTION_MAX),
        location: not_null(input, "location", LOCATION_MAX),
        online_url: input.nullable("online_url", read_url),
        capacity: input.nullable("capacity", |i, v| {
            i.read_integer("capacity", v, 1, CAPACITY_MAX)
                .and_then(|n| i32::try_from(n).ok())
        }),
        status: input
            .is_present("status")
            .then(|| input.choice("status", &EVENT_STATUSES))
            .flatten(),
        visibility: input
            .is_present("visibility")
            .then(|| input.choice("visibility", &VISIBILITIES))
            .flatten(),
        reminders: read_reminders(input),
    }
}

/// Free text that may be blank but not null.
fn not_null(input: &mut Input, field: &str, max: usize) -> Option<String> {
    match input.nullable(field, |i, v| i.read_text(field, v, Text::blank_ok(max))) {
        Some(Some(text)) => Some(text),
        Some(None) => {
            input.error(field, crate::validation::NULL);
            None
        }
        None => None,
    }
}

fn read_timezone(input: &mut Input, value: &Value) -> Option<Tz> {
    let name = input.read_text("timezone", value, Text::optional(64))?;
    match name.parse::<Tz>() {
        Ok(tz) => Some(tz),
        Err(_) => {
            input.error(
                "timezone",
                format!("\"{name}\" is not a known time zone; use an IANA name such as \"Europe/Berlin\"."),
            );
            None
        }
    }
}

/// An absolute http or https URL with a host, as Django's `URLValidator` wants.
fn read_url(input: &mut Input, value: &Value) -> Option<String> {
    let text = input.read_text("online_url", value, Text::optional(URL_MAX))?;
    match url::Url::parse(&text) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some_and(|h| !h.is_empty()) =>
        {
            Some(text)
        }
        _ => {
            input.error("online_url", INVALID_URL);
            None
        }
    }
}

fn read_reminders(input: &mut Input) -> Option<Vec<String>> {
    const FIELD: &str = "reminders";
    let value = input.nullable(FIELD, |_, v| Some(v.clone()))?;
    let Some(Value::Array(items)) = value else {
        input.error(
            FIELD,
            "Expected a list of durations, e.g. [\"P1D\", \"PT1H\"].",
        );
        return None;
    };
    if items.len() > REMINDERS_MAX {
        input.error(
            FIELD,
            format!("Ensure this field has no more than {REMINDERS_MAX} elements."),
        );
        return None;
    }
    let mut seconds: Vec<i64> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let parsed = match item.as_str().map(duration::parse) {
            Some(Ok(n)) if !(60..=REMINDER_MAX_SECONDS).contains(&n) => {
                Err("Ensure the reminder is between one minute (PT1M) and 366 days (P366D).")
            }
            Some(Ok(n)) if seconds.contains(&n) => Err("This reminder is given twice."),
            Some(other) => other,
            None => Err("Not a valid string."),
        };
        match parsed {
            Ok(n) => seconds.push(n),
            Err(why) => input.error(FIELD, format!("Item {i}: {why}")),
        }
    }
    if input.has_error(FIELD) {
        return None;
    }
    // Stored from the longest to the shortest: the order in which they fall due.
    seconds.sort_unstable_by(|a, b| b.cmp(a));
    Some(seconds.into_iter().map(duration::format).collect())
}

/// The event as it is to be stored: `base` (the stored event; `None` on create) with
/// `input` applied, or the problems, named by field. `partial` is PATCH.
pub fn merge(
    base: Option<&EventRow>,
    input: EventInput,
    partial: bool,
) -> Result<EventRow, ApiError> {
    let mut errors = FieldErrors::new();
    let mut fail = |field: &str, message: String| {
        errors.insert(field.to_string(), serde_json::json!([message]));
    };
    let creating = base.is_none();
    let timezone = match input.timezone {
        Some(tz) => tz,
        None => base.and_then(|b| b.timezone.as_deref()?.parse::<Tz>().ok()),
    };
    let starts_at = match input.starts_at {
        Some(t) => t.map(|t| t.naive_utc()),
        None => base.and_then(|b| b.starts_at),
    };
    let ends_at = match input.ends_at {
        Some(t) => t.map(|t| t.naive_utc()),
        None => base.and_then(|b| b.ends_at),
    };
    match (starts_at, ends_at) {
        (None, Some(_)) => fail("ends_at", "Set starts_at too: an end needs a start.".into()),
        (Some(s), Some(e)) if e < s => {
            fail("ends_at", "Ensure ends_at is not before starts_at.".into())
        }
        _ => {}
    }
    // `date` follows `starts_at`: in the event's time zone, else in the offset the start
    // was written with.
    let derived = starts_at.and_then(|s| match (timezone, input.starts_at) {
        (Some(tz), _) => Some(s.and_utc().with_timezone(&tz).date_naive()),
        (None, Some(Some(given))) => Some(given.date_naive()),
        (None, _) => base.map(|b| b.date),
    });
    let date = match (derived, input.date) {
        (Some(d), Some(given)) if given != d => {
            fail(
                "date",
                format!("This event's date follows from starts_at: {d}. Change starts_at instead."),
            );
            None
        }
        (Some(d), _) => Some(d),
        (None, Some(given)) => Some(given),
        (None, None) if partial => base.map(|b| b.date),
        (None, None) => {
            fail("date", crate::validation::REQUIRED.into());
            None
        }
    };
    let status = input
        .status
        .map(str::to_string)
        .or_else(|| base.map(|b| b.status.clone()))
        .unwrap_or_else(|| PUBLISHED.into());
    if creating && status == CANCELLED {
        fail("status", "An event cannot be created cancelled.".into());
    }
    if base.is_some_and(|b| b.status != DRAFT) && status == DRAFT {
        fail(
            "status",
            "A published event cannot go back to draft.".into(),
        );
    }
    let name = input.name.or_else(|| base.map(|b| b.name.clone()));
    let (Some(name), Some(date)) = (name, date) else {
        if errors.is_empty() {
            errors.insert(
                "name".into(),
                serde_json::json!([crate::validation::REQUIRED]),
            );
        }
        return Err(ApiError::Validation(errors));
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let keep = |field: Option<String>, old: Option<&String>| {
        field.or_else(|| old.cloned()).unwrap_or_default()
    };
    Ok(EventRow {
        id: base.map(|b| b.id.clone()).unwrap_or_default(),
        name,
        date,
        organizer_id: base.and_then(|b| b.organizer_id),
        starts_at,
        ends_at,
        timezone: timezone.map(|tz| tz.name().to_string()),
        description: keep(input.description, base.map(|b| &b.description)),
        location: keep(input.location, base.map(|b| &b.location)),
        online_url: input
            .online_url
            .unwrap_or_else(|| base.and_then(|b| b.online_url.clone())),
        capacity: input
            .capacity
            .unwrap_or_else(|| base.and_then(|b| b.capacity)),
        status,
        visibility: input
            .visibility
            .map(str::to_string)
            .or_else(|| base.map(|b| b.visibility.clone()))
            .unwrap_or_else(|| PUBLIC.into()),
        reminders: match input.reminders {
            Some(list) => serde_json::to_string(&list).unwrap_or_else(|_| "[]".into()),
            None => base.map_or_else(|| "[]".into(), |b| b.reminders.clone()),
        },
        sequence: base.map_or(0, |b| b.sequence),
    })
}

/// A UTC time as people read it: in the event's time zone when it has one.
pub fn local_time(t: chrono::NaiveDateTime, timezone: Option<&str>) -> String {
    match timezone.and_then(|n| n.parse::<Tz>().ok()) {
        Some(tz) => t
            .and_utc()
            .with_timezone(&tz)
            .format(&format!("%Y-%m-%d %H:%M %Z ({})", tz.name()))
            .to_string(),
        None => t.and_utc().format("%Y-%m-%d %H:%M UTC").to_string(),
    }
}

/// One important change, for the change mail: the field, and its old and new values as
/// people read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub field: &'static str,
    pub old: String,
    pub new: String,
}

/// What changed among the fields people plan around: `starts_at`, `ends_at`, `date`,
/// `location` and `status`. Each such save bumps the iCalendar SEQUENCE and mails the
/// attendees; nothing else does.
pub fn important_changes(old: &EventRow, new: &EventRow) -> Vec<Change> {
    let when = |t: Option<chrono::NaiveDateTime>| match t {
        None => "not set".to_string(),
        Some(t) => local_time(t, new.timezone.as_deref()),
    };
    let text = |s: &str| {
        if s.is_empty() {
            "not set".to_string()
        } else {
            s.to_string()
        }
    };
    let mut changes = Vec::new();
    let mut note = |field, old: String, new: String| {
        if old != new {
            changes.push(Change { field, old, new });
        }
    };
    note("date", old.date.to_string(), new.date.to_string());
    note("starts_at", when(old.starts_at), when(new.starts_at));
    note("ends_at", when(old.ends_at), when(new.ends_at));
    note("location", text(&old.location), text(&new.location));
    note("status", old.status.clone(), new.status.clone());
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read_body(body: Value, partial: bool) -> Result<EventInput, ApiError> {
        let mut input = Input::new(body)?;
        let fields = read(&mut input, partial, !partial);
        input.finish().map(|()| fields)
    }

    fn create(body: Value) -> Result<EventRow, ApiError> {
        merge(None, read_body(body, false)?, false)
    }

    fn errors(result: Result<EventRow, ApiError>) -> FieldErrors {
        match result {
            Err(ApiError::Validation(e)) => e,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn date_alone_works_as_before() {
        let row = create(json!({"name": "Meetup", "date": "2026-12-01"})).unwrap();
        assert_eq!(row.date.to_string(), "2026-12-01");
        assert_eq!(
            (row.status.as_str(), row.visibility.as_str()),
            ("published", "public")
        );
        assert_eq!(row.reminders, "[]");
    }

    #[test]
    fn date_is_derived_in_the_time_zone_or_the_given_offset() {
        let row =
            create(json!({"name": "Late", "starts_at": "2026-12-01T23:30:00-05:00"})).unwrap();
        assert_eq!(row.date.to_string(), "2026-12-01");
        assert_eq!(row.starts_at.unwrap().to_string(), "2026-12-02 04:30:00");
        let row = create(json!({
            "name": "Late", "starts_at": "2026-12-01T23:30:00Z", "timezone": "Europe/Berlin"
        }))
        .unwrap();
        assert_eq!(row.date.to_string(), "2026-12-02");
        let e = errors(create(json!({
            "name": "Late", "date": "2026-12-01", "starts_at": "2026-12-01T23:30:00Z",
            "timezone": "Asia/Tokyo"
        })));
        assert!(e.contains_key("date"), "{e:?}");
    }

    #[test]
    fn cross_field_rules_name_their_field() {
        let e = errors(create(json!({
            "name": "x", "starts_at": "2026-12-01T10:00:00Z", "ends_at": "2026-12-01T09:59:59Z"
        })));
        assert!(e.contains_key("ends_at"), "{e:?}");
        let e = errors(create(
            json!({"name": "x", "date": "2026-12-01", "ends_at": "2026-12-01T09:00:00Z"}),
        ));
        assert!(e.contains_key("ends_at"), "{e:?}");
        let e = errors(create(json!({"name": "x"})));
        assert!(e.contains_key("date"), "{e:?}");
        let e = errors(create(
            json!({"name": "x", "date": "2026-12-01", "status": "cancelled"}),
        ));
        assert!(e.contains_key("status"), "{e:?}");
    }

    #[test]
    fn field_problems_are_all_reported() {
        let Err(ApiError::Validation(e)) = read_body(
            json!({
                "name": "x", "timezone": "Mars/Olympus", "online_url": "javascript:alert(1)",
                "capacity": 0, "starts_at": "2026-12-01T10:00:00", "reminders": ["P1Y", "PT1H", "PT60M"],
                "status": "open", "visibility": "secret", "description": null
            }),
            false,
        ) else {
            panic!("expected errors")
        };
        for field in [
            "timezone",
            "online_url",
            "capacity",
            "starts_at",
            "reminders",
            "status",
            "visibility",
            "description",
        ] {
            assert!(e.contains_key(field), "{field} missing from {e:?}");
        }
        assert_eq!(e["reminders"].as_array().unwrap().len(), 2, "{e:?}");
    }

    #[test]
    fn reminders_are_canonical_longest_first() {
        let row = create(
            json!({"name": "x", "date": "2026-12-01", "reminders": ["pt30m", "P1D", "PT90M"]}),
        )
        .unwrap();
        assert_eq!(row.reminders, r#"["P1D","PT1H30M","PT30M"]"#);
    }

    #[test]
    fn a_published_event_stays_out_of_draft() {
        let base = create(json!({"name": "x", "date": "2026-12-01"})).unwrap();
        let patch = read_body(json!({"status": "draft"}), true).unwrap();
        assert!(errors(merge(Some(&base), patch, true)).contains_key("status"));
        let patch = read_body(json!({"status": "cancelled"}), true).unwrap();
        assert_eq!(merge(Some(&base), patch, true).unwrap().status, "cancelled");
    }

    #[test]
    fn only_planning_fields_are_important() {
        let base = create(json!({"name": "x", "date": "2026-12-01"})).unwrap();
        let renamed = EventRow {
            name: "y".into(),
            description: "more".into(),
            ..base.clone()
        };
        assert!(important_changes(&base, &renamed).is_empty());
        let moved = EventRow {
            location: "Hall B".into(),
            ..base.clone()
        };
        assert_eq!(
            important_changes(&base, &moved),
            vec![Change {
                field: "location",
                old: "not set".into(),
                new: "Hall B".into()
            }]
        );
    }
}
