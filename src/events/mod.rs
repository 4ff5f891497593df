//! Events, attendance, permissions and listing.

pub mod listing;
pub mod permissions;
pub mod routes;
pub mod store;
pub mod types;
