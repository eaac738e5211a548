//! The backends `serve` and the administration commands open, chosen by configuration.

pub mod metadata;
