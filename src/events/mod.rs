//! Events, attendance, permissions and listing.

pub mod attendance;
pub mod co_organizers;
pub mod conditional;
pub mod export;
pub mod fields;
pub mod listing;
pub mod permissions;
pub mod routes;
pub mod store;
pub mod sync;
pub mod types;
