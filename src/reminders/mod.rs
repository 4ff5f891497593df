//! Reminders: offsets before an event's start, scheduled when the event is saved and
//! turned into outbox mails to its Going attendees when due.

pub mod dispatch;
pub mod duration;
pub mod schedule;
