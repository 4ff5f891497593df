//! Mail that is never lost: an outbox written in the same transaction as the change,
//! and a background worker that sends it with lettre.

pub mod message;
pub mod outbox;
pub mod routes;
pub mod worker;
