//! Berth's domain: the registry and the access seam, talking to the world only through ports.

pub mod access;
pub mod audit;
pub mod auth;
pub mod builds;
pub mod clock;
pub mod error;
pub mod events;
pub mod hub;
pub mod identity;
pub mod jobs;
pub mod lifecycle;
pub mod mirror;
pub mod ports;
pub mod ratelimit;
pub mod registry;
pub mod replication;
pub mod scan;
pub mod signatures;
pub mod time;
pub mod webhooks;

pub use error::{Error, Result};
pub use registry::Registry;
