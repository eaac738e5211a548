//! The content lifecycle: online garbage collection (`gc`) and space usage with namespace
//! quotas (`usage`).

pub mod gc;
pub mod usage;

pub use gc::{Collector, GcOptions, GcReport, GC_JOB};
pub use usage::{format_size, parse_quota, UsageService};
