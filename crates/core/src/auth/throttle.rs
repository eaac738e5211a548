//! Slowing down password guessing (failed sign-ins counted per account and per client
//! address) and rationing actions per client address (accounts made by self-service sign-up).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Keys tracked per kind before expired ones are pruned; the cap on memory under a flood.
const MAX_TRACKED_KEYS: usize = 10_000;

/// When pruning expired keys is not enough, the oldest are dropped down to this many, so the
/// next few thousand new keys do not each pay for another pass over the map.
const KEYS_AFTER_EVICTION: usize = MAX_TRACKED_KEYS * 9 / 10;

/// Account keys are cut to this many characters so long made-up names cannot inflate memory.
/// Far above the longest valid account name, so names cut alike are never real accounts.
const MAX_ACCOUNT_KEY_CHARS: usize = 64;

/// How many failures are allowed within a window, counted from the first of them.
#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    pub max_failures: u32,
    pub window: Duration,
}

/// Failed logins in memory; a restart forgets them, which only gives an attacker one more
/// window.
pub struct LoginThrottle {
    per_account: FailureCounts<String>,
    per_address: FailureCounts<IpAddr>,
}

impl LoginThrottle {
    pub fn new(per_account: ThrottlePolicy, per_address: ThrottlePolicy) -> Self {
        LoginThrottle {
            per_account: FailureCounts::new(per_account),
            per_address: FailureCounts::new(per_address),
        }
    }

    /// Err(retry_after) when either the account or the address has used up its failures
    /// within the window.
    pub fn check(
        &self,
        account: Option<&str>,
        address: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), Duration> {
        let account_wait =
            account.and_then(|name| self.per_account.blocked(&account_key(name), now));
        let address_wait = address.and_then(|ip| self.per_address.blocked(&address_key(ip), now));
        match account_wait.max(address_wait) {
            Some(retry_after) => Err(retry_after),
            None => Ok(()),
        }
    }

    pub fn record_failure(&self, account: Option<&str>, address: Option<IpAddr>, now: Instant) {
        if let Some(name) = account {
            self.per_account.record(account_key(name), now);
        }
        if let Some(ip) = address {
            self.per_address.record(address_key(ip), now);
        }
    }

    /// A success clears the account's failures (not the address's).
    pub fn record_success(&self, account: &str) {
        self.per_account.clear(&account_key(account));
    }
}

impl Default for LoginThrottle {
    /// 5 failures per account and 30 per address within 15 minutes.
    fn default() -> Self {
        let window = Duration::from_secs(15 * 60);
        LoginThrottle::new(
            ThrottlePolicy {
                max_failures: 5,
                window,
            },
            ThrottlePolicy {
                max_failures: 30,
                window,
            },
        )
    }
}

/// A ration of one kind of action per client address (IPv6: per /64) within a window, such
/// as accounts created by self-service sign-up. Unlike failed sign-ins, an action is counted
/// when it is allowed, so a burst of them cannot slip past the check together.
pub struct AddressAllowance {
    taken: FailureCounts<IpAddr>,
}

impl AddressAllowance {
    /// `per_window` actions per address within `window`, counted from the first of them.
    pub fn new(per_window: u32, window: Duration) -> Self {
        AddressAllowance {
            taken: FailureCounts::new(ThrottlePolicy {
                max_failures: per_window,
                window,
            }),
        }
    }

    /// Takes one action from `address`'s allowance; Err(retry_after) when it is used up.
    pub fn take(&self, address: IpAddr, now: Instant) -> Result<(), Duration> {
        self.taken.take(address_key(address), now)
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

#[derive(Debug, Clone, Copy)]
struct Failures {
    first: Instant,
    count: u32,
}

/// Failures of one kind of key under one policy.
struct FailureCounts<K> {
    policy: ThrottlePolicy,
    entries: Mutex<HashMap<K, Failures>>,
}

impl<K: Eq + Hash + Clone> FailureCounts<K> {
    fn new(policy: ThrottlePolicy) -> Self {
        FailureCounts {
            policy,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Failures>> {
        // Counts stay meaningful even if a holder of the lock panicked.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn expired(&self, failures: &Failures, now: Instant) -> bool {
        now.saturating_duration_since(failures.first) >= self.policy.window
    }

    /// How long until these failures' key may try again, if it has used them up.
    fn wait(&self, failures: &Failures, now: Instant) -> Option<Duration> {
        if self.expired(failures, now) || failures.count < self.policy.max_failures {
            return None;
        }
        Some(self.policy.window - now.saturating_duration_since(failures.first))
    }

    /// How long until `key` may try again, if it has used up its failures.
    fn blocked(&self, key: &K, now: Instant) -> Option<Duration> {
        let entries = self.lock();
        self.wait(entries.get(key)?, now)
    }

    fn record(&self, key: K, now: Instant) {
        let mut entries = self.lock();
        self.count(&mut entries, key, now);
    }

    /// Counts one more for `key` unless it is blocked: the check and the count under one
    /// lock, so concurrent callers cannot all pass the check before any of them counts.
    fn take(&self, key: K, now: Instant) -> Result<(), Duration> {
        let mut entries = self.lock();
        if let Some(wait) = entries.get(&key).and_then(|f| self.wait(f, now)) {
            return Err(wait);
        }
        self.count(&mut entries, key, now);
        Ok(())
    }

    fn count(&self, entries: &mut HashMap<K, Failures>, key: K, now: Instant) {
        if !entries.contains_key(&key) {
            self.make_room(entries, now);
        }
        let failures = entries.entry(key).or_insert(Failures {
            first: now,
            count: 0,
        });
        if self.expired(failures, now) {
            *failures = Failures {
                first: now,
                count: 0,
            };
        }
        failures.count = failures.count.saturating_add(1);
    }

    fn clear(&self, key: &K) {
        self.lock().remove(key);
    }

    fn make_room(&self, entries: &mut HashMap<K, Failures>, now: Instant) {
        if entries.len() < MAX_TRACKED_KEYS {
            return;
        }
        entries.retain(|_, failures| !self.expired(failures, now));
        if entries.len() <= KEYS_AFTER_EVICTION {
            return;
        }
        let excess = entries.len() - KEYS_AFTER_EVICTION;
        let mut by_age: Vec<(Instant, K)> = entries
            .iter()
            .map(|(key, failures)| (failures.first, key.clone()))
            .collect();
        by_age.select_nth_unstable_by_key(excess - 1, |(first, _)| *first);
        for (_, key) in &by_age[..excess] {
            entries.remove(key);
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const MINUTE: Duration = Duration::from_secs(60);

    fn throttle(per_account: u32, per_address: u32) -> LoginThrottle {
        LoginThrottle::new(
            ThrottlePolicy {
                max_failures: per_account,
                window: 10 * MINUTE,
            },
            ThrottlePolicy {
                max_failures: per_address,
                window: 10 * MINUTE,
            },
        )
    }

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    #[test]
    fn blocks_after_the_allowed_failures() {
        let throttle = throttle(3, 100);
        let start = Instant::now();
        for n in 0..3 {
            assert_eq!(throttle.check(Some("alice"), None, start), Ok(()));
            throttle.record_failure(Some("alice"), None, start + Duration::from_secs(n));
        }
        assert_eq!(
            throttle.check(Some("alice"), None, start + MINUTE),
            Err(9 * MINUTE)
        );
        assert_eq!(throttle.check(Some("bob"), None, start + MINUTE), Ok(()));
        assert_eq!(throttle.check(None, None, start + MINUTE), Ok(()));
    }

    #[test]
    fn window_expiry_unblocks_and_starts_a_new_count() {
        let throttle = throttle(2, 100);
        let start = Instant::now();
        throttle.record_failure(Some("alice"), None, start);
        throttle.record_failure(Some("alice"), None, start);
        let later = start + 10 * MINUTE;
        assert!(throttle
            .check(Some("alice"), None, later - Duration::from_secs(1))
            .is_err());
        assert_eq!(throttle.check(Some("alice"), None, later), Ok(()));

        throttle.record_failure(Some("alice"), None, later);
        assert_eq!(throttle.check(Some("alice"), None, later), Ok(()));
        throttle.record_failure(Some("alice"), None, later);
        assert_eq!(throttle.check(Some("alice"), None, later), Err(10 * MINUTE));
    }

    #[test]
    fn account_names_are_case_insensitive() {
        let throttle = throttle(2, 100);
        let now = Instant::now();
        throttle.record_failure(Some("Alice"), None, now);
        throttle.record_failure(Some("ALICE"), None, now);
        assert!(throttle.check(Some("alice"), None, now).is_err());
    }

    #[test]
    fn long_account_names_are_stored_cut() {
        let key = account_key(&"X".repeat(100_000));
        assert_eq!(key, "x".repeat(MAX_ACCOUNT_KEY_CHARS));
    }

    #[test]
    fn success_resets_the_account_but_not_the_address() {
        let throttle = throttle(2, 2);
        let now = Instant::now();
        throttle.record_failure(Some("alice"), Some(v4(1)), now);
        throttle.record_failure(Some("alice"), Some(v4(1)), now);
        assert!(throttle.check(Some("alice"), None, now).is_err());

        throttle.record_success("Alice");
        assert_eq!(throttle.check(Some("alice"), None, now), Ok(()));
        assert!(throttle.check(Some("alice"), Some(v4(1)), now).is_err());
        assert_eq!(throttle.check(Some("alice"), Some(v4(2)), now), Ok(()));
    }

    #[test]
    fn an_address_is_blocked_across_accounts() {
        let throttle = throttle(100, 3);
        let now = Instant::now();
        for name in ["a", "b", "c"] {
            throttle.record_failure(Some(name), Some(v4(7)), now);
        }
        assert!(throttle.check(Some("d"), Some(v4(7)), now).is_err());
        assert!(throttle.check(None, Some(v4(7)), now).is_err());
        assert_eq!(throttle.check(Some("d"), Some(v4(8)), now), Ok(()));
    }

    #[test]
    fn the_longer_wait_is_reported() {
        let throttle = throttle(1, 1);
        let start = Instant::now();
        throttle.record_failure(Some("alice"), None, start);
        throttle.record_failure(None, Some(v4(1)), start + 4 * MINUTE);
        assert_eq!(
            throttle.check(Some("alice"), Some(v4(1)), start + 5 * MINUTE),
            Err(9 * MINUTE)
        );
    }

    #[test]
    fn ipv6_is_counted_per_64() {
        let throttle = throttle(100, 2);
        let now = Instant::now();
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        throttle.record_failure(None, Some(ip("2001:db8:1:2::1")), now);
        throttle.record_failure(None, Some(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")), now);
        assert!(throttle
            .check(None, Some(ip("2001:db8:1:2:abcd::9")), now)
            .is_err());
        assert_eq!(
            throttle.check(None, Some(ip("2001:db8:1:3::1")), now),
            Ok(())
        );
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_ipv4() {
        let throttle = throttle(100, 2);
        let now = Instant::now();
        let mapped = |last: u8| IpAddr::V6(Ipv4Addr::new(192, 0, 2, last).to_ipv6_mapped());
        throttle.record_failure(None, Some(mapped(1)), now);
        throttle.record_failure(None, Some(v4(1)), now);
        assert!(throttle.check(None, Some(v4(1)), now).is_err());
        assert_eq!(throttle.check(None, Some(mapped(2)), now), Ok(()));
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

    #[test]
    fn memory_stays_bounded_under_a_flood() {
        let throttle = LoginThrottle::default();
        let start = Instant::now();
        for n in 0..50_000u32 {
            let now = start + Duration::from_millis(u64::from(n));
            let address = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n));
            throttle.record_failure(Some(&format!("user{n}")), Some(address), now);
            assert!(throttle.per_address.tracked() <= MAX_TRACKED_KEYS);
        }
        assert!(throttle.per_account.tracked() <= MAX_TRACKED_KEYS);

        // The newest keys are the ones kept.
        let last = start + Duration::from_millis(49_999);
        let newest = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + 49_999));
        for _ in 0..29 {
            throttle.record_failure(None, Some(newest), last);
        }
        assert!(throttle.check(None, Some(newest), last).is_err());
    }

    #[test]
    fn expired_keys_are_pruned_before_live_ones_are_dropped() {
        let throttle = throttle(1, 1);
        let start = Instant::now();
        throttle.record_failure(Some("victim"), None, start + 9 * MINUTE);
        for n in 0..MAX_TRACKED_KEYS - 1 {
            throttle.record_failure(Some(&format!("old{n}")), None, start);
        }
        // The flood has expired; the victim's failure is still live and must survive.
        let now = start + 10 * MINUTE;
        throttle.record_failure(Some("new"), None, now);
        assert_eq!(throttle.per_account.tracked(), 2);
        assert!(throttle.check(Some("victim"), None, now).is_err());
    }
}
