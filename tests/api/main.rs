//! The API test suite: one binary, one module per area, every test through HTTP.

mod helpers;
mod security;
mod smtp;
mod surface;

mod accounts;
mod admin;
mod calendar;
mod co_organizers;
mod errors;
mod events;
mod exports;
mod idempotency;
mod mail;
mod plans;
mod recovery;
mod sessions;
mod staff;
mod sync;
mod tokens;
mod webhooks;
