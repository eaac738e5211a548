//! The pull rate limits port: plans per account, the facts attribution reads, and the ledger
//! through which nodes share what they spent.
//!
//! Contract for every backend:
//! - `set_plan` and `clear_plan` are single statements: a plan is there entirely or not at
//!   all; setting the same plan twice changes nothing.
//! - `pull_facts` reads one consistent view (one query or one read transaction).
//! - `exchange_spent` appends this node's rows and returns the rows other nodes (or earlier
//!   processes) appended after `after_seq`, in append order, with the highest sequence
//!   number seen; sequence numbers only grow, so no row is returned twice to a caller that
//!   passes back what it got. Rows older than `forget_before` may be deleted by the call.

use super::meta::MetaError;
use crate::ratelimit::{AccountFacts, Plan};

type Result<T> = std::result::Result<T, MetaError>;

/// A plan as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRecord {
    /// The account or organization (its namespace name).
    pub account: String,
    pub is_organization: bool,
    pub plan: Plan,
    pub updated_by: String,
    pub updated_at: i64,
}

/// What one node spent on one allowance, as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpentRow {
    pub key: String,
    /// When it was recorded (microseconds since the epoch).
    pub at_us: i64,
    /// How far the allowance's GCRA time moved on (microseconds).
    pub advance_us: i64,
}

#[async_trait::async_trait]
pub trait RateLimitStore: Send + Sync {
    /// The facts about `account` (a user's name, or `org/NAME` for an organization's token)
    /// that attribution reads; `None`: no such account.
    async fn pull_facts(&self, account: &str) -> Result<Option<AccountFacts>>;

    /// Sets the plan of the account or organization named `account`; false: no such
    /// account.
    async fn set_plan(&self, account: &str, plan: Plan, by: &str, now: i64) -> Result<bool>;

    /// Removes the plan of `account`, which goes back to its tier; false: it had none.
    async fn clear_plan(&self, account: &str) -> Result<bool>;

    /// Every plan, by account name.
    async fn plans(&self) -> Result<Vec<PlanRecord>>;

    /// Appends what `node` spent (`at_us` is now) and returns what others appended after
    /// `after_seq`, with the last sequence number seen.
    async fn exchange_spent(
        &self,
        node: &str,
        spent: &[(String, i64)],
        at_us: i64,
        after_seq: i64,
        forget_before_us: i64,
    ) -> Result<(Vec<SpentRow>, i64)>;
}
