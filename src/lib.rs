//! rally: an event-management backend (events, RSVPs, JWT accounts, mail).

pub mod accounts;
pub mod admin;
pub mod calendar;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod health;
pub mod http;
pub mod idempotency;
pub mod mail;
pub mod openapi;
pub mod reminders;
pub mod secrets;
pub mod seed;
pub mod startup;
pub mod telemetry;
pub mod validation;
pub mod webhooks;
