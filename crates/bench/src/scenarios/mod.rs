//! Scenario groups; each module holds the setup and measured run of one group.

pub mod big;
pub mod catalog;
pub mod manifest;
pub mod manifest_push;
pub mod mirror;
pub mod search;
pub mod small;
pub mod soak;
