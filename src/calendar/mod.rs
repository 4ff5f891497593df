//! iCalendar (RFC 5545) feeds **(beyond)**: one event as a file, a user's private feed
//! of the events they are going to, and an organizer's public feed.

pub mod ics;
pub mod routes;
pub mod store;
