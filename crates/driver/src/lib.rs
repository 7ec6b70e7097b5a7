//! Shared by every driver crate: the error type and its one mapping to libvirt error codes,
//! the atomic on-disk store for persistent objects and the journaled store for definitions,
//! the event bus, and facts about the host.

pub mod error;
pub mod events;
pub mod host;
pub mod journal;
pub mod store;

pub use error::{DriverError, Result};
