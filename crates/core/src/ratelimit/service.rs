//! The pull rate limits service: decides for each manifest pull whose allowance it spends
//! and whether it may go ahead, manages plans (site admins, audited), and exchanges this
//! node's spending with the other nodes through the store.

use super::buckets::{Buckets, Verdict};
use super::rate::{Plan, Rate};
use super::subject::{attribute, AccountFacts, Attribution, Puller, Tier, Tiers};
use crate::audit::Audit;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::identity::Acting;
use crate::ports::{MetaStore, PlanRecord};
use berth_oci::manifest::{ManifestKind, ParsedManifest};
use berth_oci::Digest;
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// How long a platform manifest pulled through its index stays free for the allowance that
/// paid for the index: clients fetch the platform's manifest right after the index, long
/// before this ends, and a later pull of the same image is a new pull.
pub const INDEX_CHILD_GRACE_SECS: i64 = 300;

/// How long this node believes what it read about an account (plans set on this node take
/// effect at once; on other nodes within this time).
const FACTS_TTL_MS: i64 = 30_000;

/// Accounts whose facts are remembered at most.
const FACTS_CAPACITY: usize = 4_096;

/// What a manifest request learns about its caller's allowance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullOutcome {
    /// Not counted: no rate-limit headers.
    Free,
    /// Allowed: `ratelimit-limit`, `ratelimit-remaining` and `docker-ratelimit-source`.
    Allowed {
        rate: Rate,
        remaining: u32,
        source: String,
    },
}

/// Counted pulls this node allowed and refused, by tier, since it started (for `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PullDecisions {
    allowed: [u64; 4],
    refused: [u64; 4],
}

impl PullDecisions {
    pub fn allowed(&self, tier: Tier) -> u64 {
        self.allowed[tier_index(tier)]
    }

    pub fn refused(&self, tier: Tier) -> u64 {
        self.refused[tier_index(tier)]
    }
}

fn tier_index(tier: Tier) -> usize {
    match tier {
        Tier::Anonymous => 0,
        Tier::Authenticated => 1,
        Tier::Organization => 2,
        Tier::Plan => 3,
    }
}

/// Relaxed atomics: each figure is independent, read at a scrape.
#[derive(Default)]
struct DecisionCounters {
    allowed: [AtomicU64; 4],
    refused: [AtomicU64; 4],
}

/// The rate-limit service; cheap to clone.
#[derive(Clone)]
pub struct PullLimits {
    shared: Arc<Shared>,
}

struct Shared {
    tiers: Tiers,
    store: Arc<dyn MetaStore>,
    clock: Arc<dyn Clock>,
    audit: Audit,
    buckets: Buckets,
    facts: Mutex<HashMap<String, (Option<AccountFacts>, i64)>>,
    /// Whether any plan is stored (read at each exchange, set when one is set here): with
    /// no tiers and no plans, pulls skip attribution entirely.
    plans_exist: AtomicBool,
    /// The longest window of any tier or plan: older ledger rows cannot matter.
    longest_window_secs: AtomicI64,
    /// This process in the ledger: random, so a restarted node reads its own earlier rows.
    node: String,
    last_seq: AtomicI64,
    decisions: DecisionCounters,
}

impl PullLimits {
    pub fn new(store: Arc<dyn MetaStore>, clock: Arc<dyn Clock>, tiers: Tiers) -> PullLimits {
        let mut id = [0u8; 8];
        // Without randomness, a clock reading tells processes apart well enough.
        if getrandom::getrandom(&mut id).is_err() {
            id = clock.now_ms().to_be_bytes();
        }
        let longest = [tiers.anonymous, tiers.authenticated, tiers.organization]
            .iter()
            .flatten()
            .map(|r| i64::from(r.window_secs))
            .max()
            .unwrap_or(0);
        PullLimits {
            shared: Arc::new(Shared {
                tiers,
                audit: Audit::over(store.clone()),
                store,
                clock,
                buckets: Buckets::default(),
                facts: Mutex::new(HashMap::new()),
                plans_exist: AtomicBool::new(true),
                longest_window_secs: AtomicI64::new(longest),
                node: hex::encode(id),
                last_seq: AtomicI64::new(0),
                decisions: DecisionCounters::default(),
            }),
        }
    }

    /// The configured tiers.
    pub fn tiers(&self) -> Tiers {
        self.shared.tiers
    }

    /// Counted manifest `GET`s allowed and refused so far, by tier (`HEAD`s and free pulls
    /// are not in it).
    pub fn decisions(&self) -> PullDecisions {
        let read =
            |counters: &[AtomicU64; 4]| counters.each_ref().map(|c| c.load(Ordering::Relaxed));
        PullDecisions {
            allowed: read(&self.shared.decisions.allowed),
            refused: read(&self.shared.decisions.refused),
        }
    }

    /// How many allowances this node tracks (for metrics and tests).
    pub fn tracked(&self) -> usize {
        self.shared.buckets.len()
    }

    fn now_us(&self) -> i64 {
        self.shared.clock.now_ms() * 1_000
    }

    async fn facts(&self, account: &str) -> Result<Option<AccountFacts>> {
        let now = self.shared.clock.now_ms();
        if let Some((facts, read_at)) = self.lock_facts().get(account) {
            if now - read_at < FACTS_TTL_MS {
                return Ok(facts.clone());
            }
        }
        let facts = self.shared.store.pull_facts(account).await?;
        let mut cache = self.lock_facts();
        if cache.len() >= FACTS_CAPACITY {
            cache.retain(|_, (_, read_at)| now - *read_at < FACTS_TTL_MS);
            if cache.len() >= FACTS_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(account.to_owned(), (facts.clone(), now));
        Ok(facts)
    }

    fn lock_facts(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (Option<AccountFacts>, i64)>> {
        self.shared.facts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whose allowance a pull of a repository in `namespace` by `puller` spends.
    pub async fn attribution(&self, puller: Puller<'_>, namespace: &str) -> Result<Attribution> {
        let tiers = &self.shared.tiers;
        if !tiers.any() && !self.shared.plans_exist.load(Ordering::Relaxed) {
            return Ok(Attribution::Free);
        }
        let facts = match puller {
            Puller::Anonymous(_) => None,
            Puller::Account(name) => self.facts(name).await?,
        };
        Ok(attribute(puller, facts.as_ref(), namespace, tiers))
    }

    /// A manifest `HEAD`: what the allowance has left, spending nothing.
    pub async fn check(&self, puller: Puller<'_>, namespace: &str) -> Result<PullOutcome> {
        Ok(match self.attribution(puller, namespace).await? {
            Attribution::Free => PullOutcome::Free,
            Attribution::Counted {
                key, source, rate, ..
            } => PullOutcome::Allowed {
                remaining: self
                    .shared
                    .buckets
                    .peek(&key, &rate, self.now_us())
                    .remaining,
                rate,
                source,
            },
        })
    }

    /// A manifest `GET` of `digest` (with its media type and body, to learn an index's
    /// children): spends one pull, or refuses with [`Error::PullRateLimited`].
    pub async fn pull(
        &self,
        puller: Puller<'_>,
        namespace: &str,
        digest: &Digest,
        media_type: &str,
        body: &[u8],
    ) -> Result<PullOutcome> {
        let (key, source, rate, tier) = match self.attribution(puller, namespace).await? {
            Attribution::Free => return Ok(PullOutcome::Free),
            Attribution::Counted {
                key,
                source,
                rate,
                tier,
            } => (key, source, rate, tier),
        };
        let now = self.now_us();
        let decisions = &self.shared.decisions;
        match self.shared.buckets.take(&key, &rate, now, digest) {
            Verdict::Allowed { remaining, charged } => {
                if charged {
                    decisions.allowed[tier_index(tier)].fetch_add(1, Ordering::Relaxed);
                    let children = index_children(media_type, body);
                    if !children.is_empty() {
                        let until = now + INDEX_CHILD_GRACE_SECS * 1_000_000;
                        self.shared.buckets.free_children(&key, &children, until);
                    }
                }
                Ok(PullOutcome::Allowed {
                    rate,
                    remaining,
                    source,
                })
            }
            Verdict::Refused {
                retry_after_us,
                full_at_us,
            } => {
                decisions.refused[tier_index(tier)].fetch_add(1, Ordering::Relaxed);
                let retry_after_secs = u64::try_from((retry_after_us + 999_999) / 1_000_000)
                    .unwrap_or(1)
                    .max(1);
                // Both instants rounded up the same way, so they agree when they coincide.
                let ceil_secs = |us: i64| (us + 999_999).div_euclid(1_000_000);
                Err(Error::PullRateLimited {
                    limit: rate.to_string(),
                    charged_to: source,
                    retry_after_secs,
                    next_at: crate::time::rfc3339(ceil_secs(now + retry_after_us)),
                    full_at: crate::time::rfc3339(ceil_secs(full_at_us)),
                })
            }
        }
    }

    /// Sets the plan of a user or organization; site admins only, audited.
    pub async fn set_plan(&self, acting: &Acting<'_>, account: &str, plan: Plan) -> Result<()> {
        acting.require_site_admin()?;
        let now = self.shared.clock.now_unix();
        if !self
            .shared
            .store
            .set_plan(account, plan, &acting.actor_name(), now)
            .await?
        {
            return Err(Error::AccountUnknown(account.to_owned()));
        }
        self.shared.plans_exist.store(true, Ordering::Relaxed);
        if let Some(rate) = plan.rate() {
            self.shared
                .longest_window_secs
                .fetch_max(i64::from(rate.window_secs), Ordering::Relaxed);
        }
        self.lock_facts().clear();
        self.shared
            .audit
            .record_by(
                acting,
                "rate_plan.set",
                account,
                json!({ "plan": plan.to_string() }),
            )
            .await;
        Ok(())
    }

    /// Removes a plan: the account goes back to its tier; site admins only, audited.
    /// False: it had none.
    pub async fn clear_plan(&self, acting: &Acting<'_>, account: &str) -> Result<bool> {
        acting.require_site_admin()?;
        if !self.shared.store.clear_plan(account).await? {
            return Ok(false);
        }
        self.lock_facts().clear();
        self.shared
            .audit
            .record_by(acting, "rate_plan.clear", account, json!({}))
            .await;
        Ok(true)
    }

    /// Every plan; site admins only.
    pub async fn plans(&self, acting: &Acting<'_>) -> Result<Vec<PlanRecord>> {
        acting.require_site_admin()?;
        Ok(self.shared.store.plans().await?)
    }

    /// Hands what this node spent since the last call to the store and applies what other
    /// nodes spent (and, on the first call, what this node spent before a restart). Returns
    /// how many rows of others it applied. `serve` calls it every second.
    pub async fn exchange(&self) -> Result<usize> {
        let shared = &self.shared;
        let plans = shared.store.plans().await?;
        shared
            .plans_exist
            .store(!plans.is_empty(), Ordering::Relaxed);
        if let Some(longest) = plans
            .iter()
            .filter_map(|p| p.plan.rate())
            .map(|r| i64::from(r.window_secs))
            .max()
        {
            shared
                .longest_window_secs
                .fetch_max(longest, Ordering::Relaxed);
        }
        let spent = shared.buckets.drain_spent();
        let now = self.now_us();
        let window_us = shared.longest_window_secs.load(Ordering::Relaxed) * 1_000_000;
        let after = shared.last_seq.load(Ordering::Relaxed);
        let (rows, last) = match shared
            .store
            .exchange_spent(&shared.node, &spent, now, after, now - window_us)
            .await
        {
            Ok(found) => found,
            Err(err) => {
                // Kept for the next exchange, so other nodes still learn of these pulls.
                for (key, advance) in spent {
                    shared.buckets.apply_unsent(&key, advance);
                }
                return Err(err.into());
            }
        };
        for row in &rows {
            shared
                .buckets
                .apply_spent(&row.key, row.at_us, row.advance_us, now);
        }
        shared.last_seq.fetch_max(last, Ordering::Relaxed);
        Ok(rows.len())
    }
}

/// The manifests an index lists (nothing for any other manifest, or a body that does not
/// parse: then its children are simply counted).
fn index_children(media_type: &str, body: &[u8]) -> Vec<Digest> {
    match ParsedManifest::parse(Some(media_type), body) {
        Ok(parsed) if parsed.kind == ManifestKind::Index => {
            parsed.manifests.into_iter().map(|d| d.digest).collect()
        }
        _ => Vec::new(),
    }
}
