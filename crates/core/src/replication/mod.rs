//! Replication: rules that copy repositories to other registries (push rules) or import them
//! from other registries (pull rules), faithfully (byte for byte,
//! with index children and referrers, skipping what the destination has), as jobs on the
//! backbone — on push (an event), on a schedule, or when asked — with a history per rule.

mod copy;
mod destination;
mod feed;
mod import;
mod pacing;
mod rule;
mod service;

pub use copy::{ItemResult, Tally};
pub use destination::{
    BlobSource, Connector, Destination, ManifestPut, Origin, RemoteManifest, RemoteSpec,
};
pub use feed::{ReplicationFeed, ReplicationRunJob, ReplicationScheduler};
pub use pacing::{format_bandwidth, parse_bandwidth, Pacer, MAX_BURST as PACER_BURST};
pub use rule::{
    check_remote_url, destination_name, import_name, RemotePattern, SourcePattern, Trigger,
};
pub use service::{
    ReplicationRequest, ReplicationView, Replications, RunSummary, RunView, MAX_HISTORY,
};

use crate::jobs::Backoff;
use std::time::Duration;

/// The job that runs a rule (all of it, or the tags an event named).
pub const REPLICATION_RUN_JOB: &str = "replication.run";
/// The recurring job that queues scheduled runs.
pub const REPLICATION_SCHEDULE_JOB: &str = "replication.schedule";
/// The event cursor push-triggered replication reads from.
pub const REPLICATION_CURSOR: &str = "replication";
/// Attempts of a run whose items keep failing: with [`REPLICATION_BACKOFF`], about four
/// days of a destination being down before the run is given up (the next push or schedule
/// starts another).
pub const REPLICATION_MAX_ATTEMPTS: u32 = 100;
/// Quick at first (a destination restarting), then every 15 minutes at most.
pub const REPLICATION_BACKOFF: Backoff = Backoff {
    first: Duration::from_secs(2),
    factor: 2.0,
    max: Duration::from_secs(900),
    jitter: 0.2,
};

/// What one run job does.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunPayload {
    pub rule: String,
    /// `manual`, `push`, `schedule` or `delete`.
    pub trigger: String,
    /// None: the whole rule. Some: only these tags of this repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The tags were deleted here: delete them there.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete: bool,
}

impl RunPayload {
    pub fn full(rule: &str, trigger: &str) -> RunPayload {
        RunPayload {
            rule: rule.to_owned(),
            trigger: trigger.to_owned(),
            repository: None,
            tags: Vec::new(),
            delete: false,
        }
    }
}
