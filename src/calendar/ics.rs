//! Events as iCalendar (RFC 5545) text, built with the `icalendar` crate, which escapes
//! TEXT values and folds long lines.

use chrono::{DateTime, Days, Utc};
use icalendar::{Attendee, Calendar, Component, Event, EventLike, EventStatus, PartStat, Property};

use crate::accounts::types::UserRef;
use crate::events::types::{CANCELLED, DRAFT, EventRow, WAITLISTED};

pub const PRODID: &str = "-//rally//events//EN";
/// The media type of every feed.
pub const CONTENT_TYPE: &str = "text/calendar; charset=utf-8";
/// Feeds hold at most this many events, the most recent by date.
pub const FEED_LIMIT: i64 = 2000;

/// An empty VCALENDAR with the headers every rally feed has; `name` becomes
/// `X-WR-CALNAME` (and RFC 7986 `NAME`), the title clients show for a subscription.
pub fn calendar(name: Option<&str>) -> Calendar {
    let mut cal = Calendar::empty();
    cal.append_property(Property::new("PRODID", PRODID))
        .append_property(Property::new("VERSION", "2.0"))
        .append_property(Property::new("CALSCALE", "GREGORIAN"))
        .append_property(Property::new("METHOD", "PUBLISH"));
    if let Some(name) = name {
        let name = clean_text(name);
        cal.append_property(Property::new("NAME", name.as_str()))
            .append_property(Property::new("X-WR-CALNAME", name.as_str()));
    }
    cal
}

/// The ATTENDEE participation status of a stored answer; `None` for an unknown one.
pub fn partstat(answer: &str) -> Option<PartStat> {
    match answer {
        "Going" => Some(PartStat::Accepted),
        "Maybe" => Some(PartStat::Tentative),
        "Not Going" => Some(PartStat::Declined),
        WAITLISTED => Some(PartStat::NeedsAction),
        _ => None,
    }
}

/// How the organizer is named in a VEVENT.
pub enum OrganizerAddress {
    /// `mailto:` their email: only for viewers the API shows that email to.
    Email,
    /// Their public feed's URL: a calendar address that does not give the email away.
    Feed { base: String },
}

/// One event as a VEVENT. `attendee` is a user and their stored answer, written as an
/// ATTENDEE with its PARTSTAT.
pub fn vevent(
    event: &EventRow,
    organizer: Option<(&UserRef, OrganizerAddress)>,
    attendee: Option<(&UserRef, &str)>,
    stamp: DateTime<Utc>,
) -> Event {
    let mut e = Event::new();
    e.uid(&format!("{}@rally", event.id))
        .timestamp(stamp)
        // SEQUENCE is never negative: the server only counts it up from 0.
        .sequence(u32::try_from(event.sequence).unwrap_or(0))
        .summary(&clean_text(&event.name))
        .status(match event.status.as_str() {
            CANCELLED => EventStatus::Cancelled,
            DRAFT => EventStatus::Tentative,
            _ => EventStatus::Confirmed,
        });
    if !event.description.is_empty() {
        e.description(&clean_text(&event.description));
    }
    if !event.location.is_empty() {
        e.location(&clean_text(&event.location));
    }
    if let Some(url) = &event.online_url {
        e.url(url);
    }
    match event.starts_at {
        Some(start) => {
            e.starts(start.and_utc());
            if let Some(end) = event.ends_at {
                e.ends(end.and_utc());
            }
        }
        None => {
            // An all-day event: DTEND is exclusive, so the next day.
            e.starts(event.date);
            if let Some(next) = event.date.checked_add_days(Days::new(1)) {
                e.ends(next);
            }
        }
    }
    if let Some((user, address)) = organizer {
        let value = match address {
            OrganizerAddress::Email => format!("mailto:{}", user.email),
            OrganizerAddress::Feed { base } => format!("{base}/api/users/{}/calendar.ics", user.id),
        };
        e.append_property(
            Property::new("ORGANIZER", value)
                .add_parameter("CN", &user.username)
                .done(),
        );
    }
    if let Some((user, answer)) = attendee
        && let Some(status) = partstat(answer)
    {
        e.attendee(
            Attendee::new(format!("mailto:{}", user.email))
                .cn(user.username.clone())
                .partstat(status),
        );
    }
    e.done()
}

/// The calendar as the bytes served.
pub fn render(cal: &Calendar) -> String {
    cal.to_string()
}

/// TEXT as RFC 5545 allows it: line breaks become LF (written as `\n`), other control
/// characters, which a TEXT value may not hold, are dropped. A lone CR would otherwise
/// end the content line early.
fn clean_text(s: &str) -> String {
    s.replace("\r\n", "\n")
        .replace('\r', "\n")
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn row() -> EventRow {
        EventRow {
            id: "0b6f0000-0000-4000-8000-000000000000".into(),
            name: "Rust, meetup; part\n2 — ünïcode".into(),
            date: NaiveDate::from_ymd_opt(2026, 12, 31).unwrap(),
            organizer_id: Some(1),
            starts_at: None,
            ends_at: None,
            timezone: None,
            description: "a\r\nb\rc\u{7}".into(),
            location: String::new(),
            online_url: None,
            capacity: None,
            status: "published".into(),
            visibility: "public".into(),
            reminders: "[]".into(),
            sequence: 3,
        }
    }

    #[test]
    fn all_day_event_ends_the_next_day_and_text_is_escaped() {
        let mut cal = calendar(Some("rally — ada"));
        cal.push(vevent(&row(), None, None, Utc::now()));
        let text = render(&cal);
        assert!(text.contains("DTSTART;VALUE=DATE:20261231\r\n"), "{text}");
        assert!(text.contains("DTEND;VALUE=DATE:20270101\r\n"), "{text}");
        assert!(text.contains("SEQUENCE:3\r\n"), "{text}");
        assert!(text.contains("STATUS:CONFIRMED\r\n"), "{text}");
        assert!(text.contains("DESCRIPTION:a\\nb\\nc\r\n"), "{text}");
        assert!(!text.contains("LOCATION"), "{text}");
        let parsed: Calendar = text.parse().unwrap();
        let event = parsed.events().next().unwrap();
        assert_eq!(event.get_summary(), Some("Rust, meetup; part\n2 — ünïcode"));
    }

    #[test]
    fn answers_map_to_partstat() {
        assert_eq!(partstat("Going"), Some(PartStat::Accepted));
        assert_eq!(partstat("Maybe"), Some(PartStat::Tentative));
        assert_eq!(partstat("Not Going"), Some(PartStat::Declined));
        assert_eq!(partstat("Waitlisted"), Some(PartStat::NeedsAction));
        assert_eq!(partstat("?"), None);
    }
}
