//! Opening the backends the configuration names, for `serve` and the administration commands.

pub mod blobs;
pub mod metadata;
