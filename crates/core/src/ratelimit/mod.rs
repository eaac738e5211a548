//! Pull rate limits, the way Docker Hub sets them: tiers and plans (`rate.rs`), whose
//! allowance a pull spends (`subject.rs`, pure), the in-memory GCRA counters of one node
//! (`buckets.rs`), and the service that ties them to the store and the other nodes
//! (`service.rs`).

mod buckets;
mod rate;
mod service;
mod subject;

pub use buckets::{Buckets, Quota, Verdict, DEFAULT_CAPACITY};
pub use rate::{Plan, Rate, MAX_WINDOW_SECS};
pub use service::{PullDecisions, PullLimits, PullOutcome, INDEX_CHILD_GRACE_SECS};
pub use subject::{attribute, client_group, AccountFacts, Attribution, Puller, Tier, Tiers};
