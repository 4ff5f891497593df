//! Users, passwords, tokens and the identity extractors.

pub mod extract;
pub mod passwords;
pub mod recovery;
pub mod routes;
pub mod sessions;
pub mod store;
pub mod throttle;
pub mod tokens;
pub mod types;
