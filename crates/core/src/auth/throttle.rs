//! Slowing down password guessing (failures charged before each check, per client address
//! and per account, with delays that grow instead of locks, and counted on every node
//! through the shared failures of [`crate::ports::SignInFailures`]) and rationing actions
//! per client address (accounts made by self-service sign-up).

use crate::ports::{ReceivedSignInFailure, SignInFailure};
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::broadcast::{self, error::TryRecvError};

/// Keys tracked per kind before expired ones are pruned; the cap on memory under a flood.
const MAX_TRACKED_KEYS: usize = 10_000;

/// When pruning expired keys is not enough, the oldest are dropped down to this many, so the
/// next few thousand new keys do not each pay for another pass over the map.
const KEYS_AFTER_EVICTION: usize = MAX_TRACKED_KEYS * 9 / 10;

/// Account keys are cut to this many characters so long made-up names cannot inflate memory.
/// Far above the longest valid account name, so names cut alike are never real accounts.
const MAX_ACCOUNT_KEY_CHARS: usize = 64;

/// Addresses remembered per account as ones it signed in from.
const MAX_TRUSTED_ADDRESSES: usize = 8;

/// How password sign-ins are slowed down. Every attempt is charged as a failure before its
/// password is checked (and refunded if it was right), so a burst of concurrent guesses
/// cannot pass a check that none of them has counted in yet.
#[derive(Debug, Clone, Copy)]
pub struct SignInPolicy {
    /// Failures one address (IPv6: one /64) may make before each further attempt from it
    /// waits: `first_delay` after the last failure, doubling with each failure beyond these.
    pub address_free_failures: u32,
    /// The longest an address is made to wait between attempts.
    pub address_max_delay: Duration,
    /// Distinct addresses that may fail against one account before the account's attempts
    /// from addresses it has not signed in from are rationed: one per delay, doubling from
    /// `first_delay` up to `account_max_delay`. One stranger's failures alone never ration
    /// the account: they only slow the stranger down.
    pub account_free_addresses: usize,
    /// The longest gap between two rationed attempts on an account: rationing slows a
    /// distributed guesser down, it never locks the account.
    pub account_max_delay: Duration,
    /// The first wait, for an address or an account; each further one doubles.
    pub first_delay: Duration,
    /// Failures are forgotten this long after the last one.
    pub forget_after: Duration,
    /// How long an address an account signed in from stays exempt from that account's
    /// rationing.
    pub trust_for: Duration,
    /// Password checks one address may have under way at once.
    pub address_in_flight: u32,
}

/// When to try again while an address has all its checks under way.
pub const BUSY_RETRY: Duration = Duration::from_millis(25);

impl Default for SignInPolicy {
    fn default() -> Self {
        SignInPolicy {
            address_free_failures: 5,
            address_max_delay: Duration::from_secs(15 * 60),
            account_free_addresses: 10,
            account_max_delay: Duration::from_secs(60),
            first_delay: Duration::from_secs(1),
            forget_after: Duration::from_secs(60 * 60),
            trust_for: Duration::from_secs(30 * 24 * 60 * 60),
            address_in_flight: 2,
        }
    }
}

impl SignInPolicy {
    /// `first_delay` doubled `beyond` times, at most `max`.
    fn delay(&self, beyond: u32, max: Duration) -> Duration {
        self.first_delay
            .checked_mul(1u32.checked_shl(beyond.min(31)).unwrap_or(u32::MAX))
            .map_or(max, |delay| delay.min(max))
    }
}

#[derive(Debug, Clone, Copy)]
struct AddressRecord {
    /// Failures charged, including attempts still being checked.
    failures: u32,
    last_failure: Instant,
    in_flight: u32,
}

#[derive(Debug, Clone, Default)]
struct AccountRecord {
    /// Distinct addresses with failures, up to the policy's free count.
    failing: Vec<IpAddr>,
    failures: u32,
    last_failure: Option<Instant>,
    /// When the next rationed attempt may start.
    next_slot: Option<Instant>,
    /// Addresses the account signed in from, with when.
    trusted: Vec<(IpAddr, Instant)>,
}

/// Failed sign-ins in memory, with those other nodes shared (see [`SignInThrottle::listen`]).
/// Attempts are charged here before their check and shared only once they fail, so a
/// sign-in that succeeds costs no database round trip; checks under way on several nodes
/// at one moment (at most `address_in_flight` per node and address) are counted
/// everywhere once they fail.
pub struct SignInThrottle {
    policy: SignInPolicy,
    /// Names this throttle's failures, so it does not count them again when they come back.
    origin: u64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    addresses: HashMap<IpAddr, AddressRecord>,
    accounts: HashMap<String, AccountRecord>,
    /// Failures shared by every node, applied before each decision.
    shared: Option<broadcast::Receiver<ReceivedSignInFailure>>,
}

/// A password check that was allowed to start, charged as a failure until
/// [`SignInAttempt::succeeded`]; dropping it ends the check.
pub struct SignInAttempt<'a> {
    throttle: &'a SignInThrottle,
    account: String,
    address: IpAddr,
    trusted: bool,
    /// Whether this attempt put its address on the account's list of failing addresses.
    listed_address: bool,
}

impl SignInAttempt<'_> {
    /// Whether the account has signed in from this address lately: such attempts skip the
    /// account's rationing and get the verification lane kept for them.
    pub fn trusted(&self) -> bool {
        self.trusted
    }

    /// The password was right: the charge is refunded and the address is trusted by the
    /// account. The account's other failures stay, so the owner signing in does not hand a
    /// distributed guesser a fresh set of free failures.
    pub fn succeeded(&self, now: Instant) {
        self.settle(now, true);
    }

    /// The password was never checked (the queue was full, the store failed): the charge
    /// is refunded.
    pub fn not_checked(&self, now: Instant) {
        self.settle(now, false);
    }

    fn settle(&self, now: Instant, trust: bool) {
        let throttle = self.throttle;
        let policy = throttle.policy;
        let mut state = throttle.lock();
        if let Some(record) = state.addresses.get_mut(&self.address) {
            record.failures = record.failures.saturating_sub(1);
        }
        if !state.accounts.contains_key(&self.account) {
            if !trust {
                return;
            }
            make_room(
                &mut state.accounts,
                |r| account_active(&policy, r, now),
                account_last_seen,
            );
        }
        let record = state.accounts.entry(self.account.clone()).or_default();
        forget_stale(&policy, record, now);
        record.failures = record.failures.saturating_sub(1);
        if self.listed_address {
            record.failing.retain(|ip| *ip != self.address);
        }
        if trust {
            record.trusted.retain(|(ip, _)| *ip != self.address);
            if record.trusted.len() >= MAX_TRUSTED_ADDRESSES {
                record.trusted.remove(0);
            }
            record.trusted.push((self.address, now));
        }
    }
}

impl Drop for SignInAttempt<'_> {
    fn drop(&mut self) {
        if let Some(record) = self.throttle.lock().addresses.get_mut(&self.address) {
            record.in_flight = record.in_flight.saturating_sub(1);
        }
    }
}

impl SignInThrottle {
    pub fn new(policy: SignInPolicy) -> Self {
        SignInThrottle {
            policy,
            origin: uuid::Uuid::new_v4().as_u64_pair().0,
            state: Mutex::new(State::default()),
        }
    }

    /// The same throttle under `policy` (what it counted so far stays).
    #[must_use]
    pub fn with_policy(mut self, policy: SignInPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub fn policy(&self) -> &SignInPolicy {
        &self.policy
    }

    /// Counts, from now on, the failures every node shares (this one's own are skipped),
    /// each applied at the next decision.
    pub fn listen(&self, shared: broadcast::Receiver<ReceivedSignInFailure>) {
        self.lock().shared = Some(shared);
    }

    /// A failure of this throttle, keyed as it keys them, to share with the other nodes.
    pub fn failure(&self, account: Option<&str>, address: Option<IpAddr>) -> SignInFailure {
        SignInFailure {
            origin: self.origin,
            account: account.map(account_key),
            address: address.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), address_key),
        }
    }

    /// Counts a failure another node shared (one of this throttle's own is skipped), as if
    /// it had been charged here when it failed.
    pub fn count_shared(&self, received: &ReceivedSignInFailure, now: Instant) {
        if received.failure.origin == self.origin {
            return;
        }
        let mut state = self.lock();
        let state = &mut *state;
        count_shared_into(
            &self.policy,
            &mut state.addresses,
            &mut state.accounts,
            received,
            now,
        );
    }

    /// Applies what other nodes shared since the last decision.
    fn take_shared(&self, state: &mut State, now: Instant) {
        let State {
            addresses,
            accounts,
            shared,
        } = state;
        let Some(receiver) = shared.as_mut() else {
            return;
        };
        loop {
            match receiver.try_recv() {
                Ok(received) if received.failure.origin == self.origin => {}
                Ok(received) => {
                    count_shared_into(&self.policy, addresses, accounts, &received, now);
                }
                Err(TryRecvError::Lagged(lost)) => {
                    tracing::warn!(lost, "sign-in failures shared by other nodes arrived faster than they were applied; the oldest were dropped");
                }
                Err(TryRecvError::Empty | TryRecvError::Closed) => return,
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Counts stay meaningful even if a holder of the lock panicked.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a password check of `account` from `address`, charged as a failure, or
    /// Err(retry_after) when the address must wait, the account is rationed and its next
    /// slot is not yet due, or the address has too many checks under way. Checking and
    /// charging happen under one lock, so concurrent attempts are counted one by one.
    pub fn begin(
        &self,
        account: &str,
        address: Option<IpAddr>,
        now: Instant,
    ) -> Result<SignInAttempt<'_>, Duration> {
        let policy = &self.policy;
        // Callers without a known address share one: they are not exempt.
        let address = address.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), address_key);
        let account = account_key(account);
        let mut state = self.lock();
        self.take_shared(&mut state, now);
        let State {
            addresses,
            accounts,
            ..
        } = &mut *state;

        if let Some(wait) = address_wait(policy, addresses.get(&address), now) {
            return Err(wait);
        }
        if addresses
            .get(&address)
            .is_some_and(|r| r.in_flight >= policy.address_in_flight)
        {
            // A check of this address is under way: one will be over in well under this.
            return Err(BUSY_RETRY);
        }

        let mut took_slot = None;
        let mut trusted = false;
        if let Some(record) = accounts.get_mut(&account) {
            forget_stale(policy, record, now);
            trusted = record.trusted.iter().any(|(ip, _)| *ip == address);
            let rationed = record.failing.len() >= policy.account_free_addresses;
            if rationed && !trusted {
                if let Some(due) = record.next_slot.filter(|due| *due > now) {
                    return Err(due - now);
                }
                let beyond = record
                    .failures
                    .saturating_sub(policy.account_free_addresses as u32);
                took_slot = Some(now + policy.delay(beyond, policy.account_max_delay));
            }
        }

        // Allowed: charge the attempt to both.
        charge_address(policy, addresses, address, now, now).in_flight += 1;

        if !accounts.contains_key(&account) {
            make_room(
                accounts,
                |r| account_active(policy, r, now),
                account_last_seen,
            );
        }
        let record = accounts.entry(account.clone()).or_default();
        let listed_address = record.failing.len() < policy.account_free_addresses
            && !record.failing.contains(&address);
        if listed_address {
            record.failing.push(address);
        }
        record.failures = record.failures.saturating_add(1);
        record.last_failure = Some(now);
        if took_slot.is_some() {
            record.next_slot = took_slot;
        }
        Ok(SignInAttempt {
            throttle: self,
            account,
            address,
            trusted,
            listed_address,
        })
    }

    /// Counts a failure that needed no password check (a wrong access token) against
    /// `address` only, or Err(retry_after) when the address must wait anyway: then the
    /// failure is answered as throttled and not recorded again.
    pub fn failed_without_check(
        &self,
        address: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), Duration> {
        let policy = &self.policy;
        let address = address.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), address_key);
        let mut state = self.lock();
        self.take_shared(&mut state, now);
        if let Some(wait) = address_wait(policy, state.addresses.get(&address), now) {
            return Err(wait);
        }
        charge_address(policy, &mut state.addresses, address, now, now);
        Ok(())
    }

    #[cfg(test)]
    fn tracked(&self) -> (usize, usize) {
        let state = self.lock();
        (state.addresses.len(), state.accounts.len())
    }
}

impl Default for SignInThrottle {
    fn default() -> Self {
        SignInThrottle::new(SignInPolicy::default())
    }
}

/// How long an address must wait before its next attempt, if it has used up its free
/// failures and the last one was too recent.
fn address_wait(
    policy: &SignInPolicy,
    record: Option<&AddressRecord>,
    now: Instant,
) -> Option<Duration> {
    let record = record.filter(|r| address_active(policy, r, now))?;
    let beyond = record.failures.checked_sub(policy.address_free_failures)?;
    let due = record.last_failure + policy.delay(beyond, policy.address_max_delay);
    (due > now).then(|| due - now)
}

/// Counts one failure of `address` at `at` (starting over if its old ones are forgotten).
fn charge_address<'a>(
    policy: &SignInPolicy,
    addresses: &'a mut HashMap<IpAddr, AddressRecord>,
    address: IpAddr,
    at: Instant,
    now: Instant,
) -> &'a mut AddressRecord {
    if !addresses.contains_key(&address) {
        make_room(
            addresses,
            |r| address_active(policy, r, now),
            |r| r.last_failure,
        );
    }
    let record = addresses.entry(address).or_insert(AddressRecord {
        failures: 0,
        last_failure: at,
        in_flight: 0,
    });
    if !address_active(policy, record, now) {
        record.failures = 0;
    }
    record.failures = record.failures.saturating_add(1);
    record.last_failure = record.last_failure.max(at);
    record
}

/// Charges a failure another node shared to its address and account as a local one that
/// failed at the same moment would be: a rationed account's next slot moves past it too,
/// so the account's rate holds across nodes. Which addresses an account signed in from
/// stays each node's own (successes are not shared).
fn count_shared_into(
    policy: &SignInPolicy,
    addresses: &mut HashMap<IpAddr, AddressRecord>,
    accounts: &mut HashMap<String, AccountRecord>,
    received: &ReceivedSignInFailure,
    now: Instant,
) {
    let at = received.failed_at;
    if now.saturating_duration_since(at) >= policy.forget_after {
        return;
    }
    let address = received.failure.address;
    charge_address(policy, addresses, address, at, now);
    let Some(account) = &received.failure.account else {
        return;
    };
    if !accounts.contains_key(account) {
        make_room(
            accounts,
            |r| account_active(policy, r, now),
            account_last_seen,
        );
    }
    let record = accounts.entry(account.clone()).or_default();
    forget_stale(policy, record, now);
    let trusted = record.trusted.iter().any(|(ip, _)| *ip == address);
    if record.failing.len() >= policy.account_free_addresses && !trusted {
        let beyond = record
            .failures
            .saturating_sub(policy.account_free_addresses as u32);
        let due = at + policy.delay(beyond, policy.account_max_delay);
        record.next_slot = Some(record.next_slot.map_or(due, |slot| slot.max(due)));
    }
    if record.failing.len() < policy.account_free_addresses && !record.failing.contains(&address) {
        record.failing.push(address);
    }
    record.failures = record.failures.saturating_add(1);
    record.last_failure = Some(record.last_failure.map_or(at, |last| last.max(at)));
}

/// Whether an address record still matters: failures not yet forgotten, or a check running.
fn address_active(policy: &SignInPolicy, record: &AddressRecord, now: Instant) -> bool {
    record.in_flight > 0 || now.saturating_duration_since(record.last_failure) < policy.forget_after
}

/// Whether an account record still matters: failures not yet forgotten, or a trusted address.
fn account_active(policy: &SignInPolicy, record: &AccountRecord, now: Instant) -> bool {
    record
        .last_failure
        .is_some_and(|at| now.saturating_duration_since(at) < policy.forget_after)
        || record
            .trusted
            .iter()
            .any(|(_, at)| now.saturating_duration_since(*at) < policy.trust_for)
}

/// Forgets an account's failures once the last is old enough, and trust that has lapsed.
fn forget_stale(policy: &SignInPolicy, record: &mut AccountRecord, now: Instant) {
    let failures_live = record
        .last_failure
        .is_some_and(|at| now.saturating_duration_since(at) < policy.forget_after);
    if !failures_live {
        record.failing.clear();
        record.failures = 0;
        record.next_slot = None;
    }
    record
        .trusted
        .retain(|(_, at)| now.saturating_duration_since(*at) < policy.trust_for);
}

fn account_last_seen(record: &AccountRecord) -> Instant {
    record
        .trusted
        .iter()
        .map(|(_, at)| *at)
        .chain(record.last_failure)
        .max()
        .unwrap_or_else(Instant::now)
}

/// Keeps a map under [`MAX_TRACKED_KEYS`] before a new key goes in: records that no longer
/// matter go first, then the least recently seen down to [`KEYS_AFTER_EVICTION`].
fn make_room<K: Eq + Hash + Clone, V>(
    entries: &mut HashMap<K, V>,
    live: impl Fn(&V) -> bool,
    last_seen: impl Fn(&V) -> Instant,
) {
    if entries.len() < MAX_TRACKED_KEYS {
        return;
    }
    entries.retain(|_, record| live(record));
    if entries.len() <= KEYS_AFTER_EVICTION {
        return;
    }
    let excess = entries.len() - KEYS_AFTER_EVICTION;
    let mut by_age: Vec<(Instant, K)> = entries
        .iter()
        .map(|(key, record)| (last_seen(record), key.clone()))
        .collect();
    by_age.select_nth_unstable_by_key(excess - 1, |(seen, _)| *seen);
    for (_, key) in &by_age[..excess] {
        entries.remove(key);
    }
}

/// How many actions are allowed within a window, counted from the first of them.
#[derive(Debug, Clone, Copy)]
struct AllowancePolicy {
    per_window: u32,
    window: Duration,
}

/// A ration of one kind of action per client address (IPv6: per /64) within a window, such
/// as accounts created by self-service sign-up. An action is counted when it is allowed, so
/// a burst of them cannot slip past the check together.
pub struct AddressAllowance {
    policy: AllowancePolicy,
    taken: Mutex<HashMap<IpAddr, Taken>>,
}

#[derive(Debug, Clone, Copy)]
struct Taken {
    first: Instant,
    count: u32,
}

impl AddressAllowance {
    /// `per_window` actions per address within `window`, counted from the first of them.
    pub fn new(per_window: u32, window: Duration) -> Self {
        AddressAllowance {
            policy: AllowancePolicy { per_window, window },
            taken: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one action from `address`'s allowance; Err(retry_after) when it is used up.
    /// The check and the count happen under one lock.
    pub fn take(&self, address: IpAddr, now: Instant) -> Result<(), Duration> {
        let AllowancePolicy { per_window, window } = self.policy;
        let expired = |taken: &Taken| now.saturating_duration_since(taken.first) >= window;
        let key = address_key(address);
        let mut entries = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(taken) = entries.get(&key).filter(|t| !expired(t)) {
            if taken.count >= per_window {
                return Err(window - now.saturating_duration_since(taken.first));
            }
        }
        if !entries.contains_key(&key) {
            make_room(&mut entries, |t| !expired(t), |t| t.first);
        }
        let taken = entries.entry(key).or_insert(Taken {
            first: now,
            count: 0,
        });
        if expired(taken) {
            *taken = Taken {
                first: now,
                count: 0,
            };
        }
        taken.count = taken.count.saturating_add(1);
        Ok(())
    }
}

/// Account names are case-insensitive, so `Alice` and `alice` share one budget.
fn account_key(name: &str) -> String {
    name.chars()
        .take(MAX_ACCOUNT_KEY_CHARS)
        .flat_map(char::to_lowercase)
        .collect()
}

/// One client usually holds a whole IPv6 /64, so that is what is counted. IPv4 clients seen
/// through a dual-stack socket arrive IPv4-mapped and are counted as the IPv4 address;
/// masking them would put every IPv4 client in one bucket.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);
    const MINUTE: Duration = Duration::from_secs(60);
    const HOUR: Duration = Duration::from_secs(60 * 60);

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    /// `count` wrong passwords for `account` from `address`, each finished before the next.
    fn fail(throttle: &SignInThrottle, account: &str, address: IpAddr, count: u32, now: Instant) {
        for n in 0..count {
            let attempt = throttle.begin(account, Some(address), now);
            assert!(attempt.is_ok(), "failure {} of {count} was refused", n + 1);
        }
    }

    #[test]
    fn an_address_waits_longer_after_each_failure_beyond_the_free_ones() {
        let throttle = SignInThrottle::default();
        let start = Instant::now();
        fail(&throttle, "alice", v4(1), 5, start);
        assert_eq!(
            throttle.begin("alice", Some(v4(1)), start).err(),
            Some(SECOND)
        );
        let later = start + SECOND;
        fail(&throttle, "alice", v4(1), 1, later);
        assert_eq!(
            throttle.begin("bob", Some(v4(1)), later).err(),
            Some(2 * SECOND),
            "the address is slowed down for every account"
        );
        fail(&throttle, "bob", v4(1), 1, later + 2 * SECOND);
        assert_eq!(
            throttle
                .begin("alice", Some(v4(1)), later + 2 * SECOND)
                .err(),
            Some(4 * SECOND)
        );
    }

    #[test]
    fn a_strangers_failures_do_not_touch_the_owner_elsewhere() {
        let throttle = SignInThrottle::default();
        let start = Instant::now();
        fail(&throttle, "alice", v4(66), 5, start);
        for n in 0..20 {
            let now = start + Duration::from_secs(1 << n.min(10));
            let _ = throttle.begin("alice", Some(v4(66)), now);
        }
        let attempt = throttle.begin("alice", Some(v4(1)), start + SECOND);
        assert!(attempt.is_ok(), "the owner's address is not held");
    }

    #[test]
    fn a_success_refunds_its_charge_but_not_earlier_failures() {
        let throttle = SignInThrottle::default();
        let now = Instant::now();
        fail(&throttle, "alice", v4(1), 4, now);
        throttle
            .begin("alice", Some(v4(1)), now)
            .unwrap()
            .succeeded(now);
        fail(&throttle, "alice", v4(1), 1, now);
        assert!(throttle.begin("alice", Some(v4(1)), now).is_err());
    }

    #[test]
    fn an_attempt_that_was_never_checked_costs_nothing() {
        let throttle = SignInThrottle::default();
        let now = Instant::now();
        for _ in 0..10 {
            throttle
                .begin("alice", Some(v4(1)), now)
                .unwrap()
                .not_checked(now);
        }
        fail(&throttle, "alice", v4(1), 5, now);
        assert!(throttle.begin("alice", Some(v4(1)), now).is_err());
    }

    #[test]
    fn many_addresses_ration_the_account_except_where_it_signed_in_before() {
        let throttle = SignInThrottle::default();
        let start = Instant::now();
        throttle
            .begin("alice", Some(v4(200)), start)
            .unwrap()
            .succeeded(start);
        for n in 0..10 {
            fail(&throttle, "alice", v4(n), 1, start);
        }
        // A slot for the next unknown address, then one per growing delay.
        fail(&throttle, "alice", v4(20), 1, start);
        assert_eq!(
            throttle.begin("alice", Some(v4(21)), start).err(),
            Some(SECOND)
        );
        fail(&throttle, "alice", v4(21), 1, start + SECOND);
        assert_eq!(
            throttle.begin("ALICE", Some(v4(22)), start + SECOND).err(),
            Some(2 * SECOND),
            "names are case-insensitive"
        );
        // Never more than a minute: a slowdown, not a lock.
        let mut now = start + 3 * SECOND;
        for n in 30..60 {
            if let Err(wait) = throttle.begin("alice", Some(v4(n)), now) {
                assert!(wait <= MINUTE, "{wait:?}");
                now += wait;
                fail(&throttle, "alice", v4(n), 1, now);
            }
        }
        assert!(throttle.begin("alice", Some(v4(61)), now).is_err());
        assert!(
            throttle.begin("alice", Some(v4(200)), now).is_ok(),
            "the address she signed in from is not rationed"
        );
        assert!(throttle.begin("bob", Some(v4(62)), now).is_ok());
        // An hour without failures forgets them.
        assert!(throttle
            .begin("alice", Some(v4(63)), now + 60 * MINUTE)
            .is_ok());
    }

    #[test]
    fn concurrent_checks_per_address_are_bounded() {
        let throttle = SignInThrottle::default();
        let now = Instant::now();
        let first = throttle.begin("a", Some(v4(1)), now).unwrap();
        let second = throttle.begin("b", Some(v4(1)), now).unwrap();
        assert!(throttle.begin("c", Some(v4(1)), now).is_err());
        assert!(throttle.begin("c", Some(v4(2)), now).is_ok());
        drop(first);
        let third = throttle.begin("c", Some(v4(1)), now).unwrap();
        second.succeeded(now);
        third.succeeded(now);
    }

    #[test]
    fn wrong_tokens_count_against_the_address_only() {
        let throttle = SignInThrottle::default();
        let now = Instant::now();
        for _ in 0..5 {
            assert_eq!(throttle.failed_without_check(Some(v4(1)), now), Ok(()));
        }
        assert_eq!(throttle.failed_without_check(Some(v4(1)), now), Err(SECOND));
        assert!(throttle.begin("alice", Some(v4(1)), now).is_err());
        assert!(throttle.begin("alice", Some(v4(2)), now).is_ok());
    }

    #[test]
    fn long_account_names_are_stored_cut() {
        let key = account_key(&"X".repeat(100_000));
        assert_eq!(key, "x".repeat(MAX_ACCOUNT_KEY_CHARS));
    }

    #[test]
    fn ipv6_is_counted_per_64_and_mapped_ipv4_as_ipv4() {
        let throttle = SignInThrottle::default();
        let now = Instant::now();
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        for n in 0..5 {
            let _ = throttle.begin("a", Some(ip(&format!("2001:db8:1:2::{n}"))), now);
        }
        assert!(throttle
            .begin("a", Some(ip("2001:db8:1:2:abcd::9")), now)
            .is_err());
        assert!(throttle
            .begin("a", Some(ip("2001:db8:1:3::1")), now)
            .is_ok());

        let mapped = |last: u8| IpAddr::V6(Ipv4Addr::new(192, 0, 2, last).to_ipv6_mapped());
        fail(&throttle, "a", mapped(1), 3, now);
        fail(&throttle, "a", v4(1), 2, now);
        assert!(throttle.begin("a", Some(v4(1)), now).is_err());
        assert!(throttle.begin("a", Some(mapped(2)), now).is_ok());
    }

    #[test]
    fn memory_stays_bounded_under_a_flood() {
        let throttle = SignInThrottle::default();
        let start = Instant::now();
        for n in 0..50_000u32 {
            let now = start + Duration::from_millis(u64::from(n));
            let address = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n));
            drop(throttle.begin(&format!("user{n}"), Some(address), now));
            let (addresses, accounts) = throttle.tracked();
            assert!(addresses <= MAX_TRACKED_KEYS && accounts <= MAX_TRACKED_KEYS);
        }
        // The newest keys are the ones kept.
        let last = start + Duration::from_millis(49_999);
        let newest = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + 49_999));
        fail(&throttle, "x", newest, 4, last);
        assert!(throttle.begin("x", Some(newest), last).is_err());
    }

    /// Two nodes' throttles joined as the store joins them: what one shares reaches both.
    fn two_nodes() -> (
        SignInThrottle,
        SignInThrottle,
        broadcast::Sender<ReceivedSignInFailure>,
    ) {
        let (sender, _) = broadcast::channel(64);
        let (a, b) = (SignInThrottle::default(), SignInThrottle::default());
        a.listen(sender.subscribe());
        b.listen(sender.subscribe());
        (a, b, sender)
    }

    fn share(
        sender: &broadcast::Sender<ReceivedSignInFailure>,
        from: &SignInThrottle,
        account: Option<&str>,
        address: IpAddr,
        at: Instant,
    ) {
        let failure = from.failure(account, Some(address));
        sender
            .send(ReceivedSignInFailure {
                failure,
                failed_at: at,
            })
            .unwrap();
    }

    #[test]
    fn failures_on_one_node_make_the_address_wait_on_another() {
        let (a, b, sender) = two_nodes();
        let now = Instant::now();
        for _ in 0..5 {
            let attempt = a.begin("alice", Some(v4(1)), now).unwrap();
            drop(attempt);
            share(&sender, &a, Some("Alice"), v4(1), now);
        }
        // Node A charged them before each check and does not count them twice.
        assert_eq!(a.begin("bob", Some(v4(1)), now).err(), Some(SECOND));
        assert_eq!(
            b.begin("carol", Some(v4(1)), now).err(),
            Some(SECOND),
            "node B counts A's five failures"
        );
        assert!(
            b.begin("carol", Some(v4(2)), now).is_ok(),
            "other addresses"
        );
    }

    #[test]
    fn wrong_tokens_on_one_node_count_against_the_address_only() {
        let (a, b, sender) = two_nodes();
        let now = Instant::now();
        for _ in 0..5 {
            a.failed_without_check(Some(v4(1)), now).unwrap();
            share(&sender, &a, None, v4(1), now);
        }
        assert!(b.failed_without_check(Some(v4(1)), now).is_err());
        assert_eq!(b.tracked(), (1, 0), "no account was charged");
    }

    #[test]
    fn an_account_rationed_by_failures_on_several_nodes_is_rationed_on_each() {
        let (a, b, sender) = two_nodes();
        let now = Instant::now();
        // Ten strangers fail against alice, half through each node.
        for n in 0..10u8 {
            let node = if n % 2 == 0 { &a } else { &b };
            drop(node.begin("alice", Some(v4(n + 10)), now).unwrap());
            share(&sender, node, Some("alice"), v4(n + 10), now);
        }
        for node in [&a, &b] {
            let first = node.begin("alice", Some(v4(100)), now);
            assert!(first.is_ok(), "the account is rationed, not locked");
            drop(first);
            assert!(node.begin("alice", Some(v4(101)), now).is_err());
        }
    }

    #[test]
    fn shared_failures_older_than_the_memory_are_not_counted() {
        let throttle = SignInThrottle::default();
        let now = Instant::now() + 2 * HOUR;
        let failure = SignInFailure {
            origin: 7,
            account: Some("alice".into()),
            address: v4(1),
        };
        for age in [2 * HOUR, 2 * HOUR, 2 * HOUR, 2 * HOUR, 2 * HOUR, MINUTE] {
            throttle.count_shared(
                &ReceivedSignInFailure {
                    failure: failure.clone(),
                    failed_at: now - age,
                },
                now,
            );
        }
        assert!(throttle.begin("alice", Some(v4(1)), now).is_ok());
        assert_eq!(throttle.tracked(), (1, 1));
    }

    #[test]
    fn an_allowance_is_taken_per_address_until_the_window_passes() {
        let allowance = AddressAllowance::new(2, 10 * MINUTE);
        let start = Instant::now();
        assert_eq!(allowance.take(v4(1), start), Ok(()));
        assert_eq!(allowance.take(v4(1), start + MINUTE), Ok(()));
        assert_eq!(allowance.take(v4(1), start + MINUTE), Err(9 * MINUTE));
        assert_eq!(
            allowance.take(v4(1), start + 2 * MINUTE),
            Err(8 * MINUTE),
            "a refused action is not counted, so the wait does not grow"
        );
        assert_eq!(allowance.take(v4(2), start + MINUTE), Ok(()));
        assert_eq!(allowance.take(v4(1), start + 10 * MINUTE), Ok(()));

        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        allowance.take(ip("2001:db8::1"), start).unwrap();
        allowance.take(ip("2001:db8::2"), start).unwrap();
        assert!(
            allowance.take(ip("2001:db8::3"), start).is_err(),
            "one /64 is one client"
        );
    }
}
