//! Counts of sign-ins and of refused sign-ins by reason, for the operator's metrics: plain
//! atomics, so counting costs a sign-in nothing it would notice.

use crate::Error;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a sign-in was refused, as the metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// A wrong name, password or token.
    CredentialsInvalid,
    /// The password was right but a two-factor code (or an access token) was needed.
    TwoFactorRequired,
    /// Too many failed sign-ins from the account or the address.
    Throttled,
    /// Anything else (the store failed, ...).
    Other,
}

impl RefusalReason {
    pub const ALL: [RefusalReason; 4] = [
        RefusalReason::CredentialsInvalid,
        RefusalReason::TwoFactorRequired,
        RefusalReason::Throttled,
        RefusalReason::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::CredentialsInvalid => "credentials_invalid",
            RefusalReason::TwoFactorRequired => "two_factor_required",
            RefusalReason::Throttled => "throttled",
            RefusalReason::Other => "other",
        }
    }

    fn of(err: &Error) -> RefusalReason {
        match err {
            Error::CredentialsInvalid => RefusalReason::CredentialsInvalid,
            Error::TwoFactorRequired(_) => RefusalReason::TwoFactorRequired,
            Error::TooManyRequests { .. } => RefusalReason::Throttled,
            _ => RefusalReason::Other,
        }
    }
}

/// Sign-ins so far, by what proved them and by why they were refused.
#[derive(Debug, Default)]
pub struct SignInTally {
    with_password: AtomicU64,
    with_token: AtomicU64,
    refused: [AtomicU64; RefusalReason::ALL.len()],
}

/// A copy of the counts at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SignInCounts {
    pub with_password: u64,
    pub with_token: u64,
    /// Indexed like [`RefusalReason::ALL`].
    pub refused: [u64; RefusalReason::ALL.len()],
}

impl SignInCounts {
    pub fn refused(&self, reason: RefusalReason) -> u64 {
        self.refused[reason as usize]
    }
}

impl SignInTally {
    pub(super) fn record<T>(&self, is_token: bool, outcome: &Result<T, Error>) {
        match outcome {
            Ok(_) if is_token => self.signed_in(&self.with_token),
            Ok(_) => self.signed_in(&self.with_password),
            Err(err) => self.refused(err),
        }
    }

    fn signed_in(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn refused(&self, err: &Error) {
        self.refused[RefusalReason::of(err) as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn counts(&self) -> SignInCounts {
        SignInCounts {
            with_password: self.with_password.load(Ordering::Relaxed),
            with_token: self.with_token.load(Ordering::Relaxed),
            refused: std::array::from_fn(|i| self.refused[i].load(Ordering::Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_counted_by_method_and_reason() {
        let tally = SignInTally::default();
        tally.record(false, &Ok::<(), Error>(()));
        tally.record(true, &Ok::<(), Error>(()));
        tally.record(true, &Ok::<(), Error>(()));
        tally.record::<()>(false, &Err(Error::CredentialsInvalid));
        tally.record::<()>(
            false,
            &Err(Error::TooManyRequests {
                retry_after_secs: 3,
            }),
        );
        tally.record::<()>(false, &Err(Error::TwoFactorRequired("code".into())));
        let counts = tally.counts();
        assert_eq!((counts.with_password, counts.with_token), (1, 2));
        assert_eq!(counts.refused(RefusalReason::CredentialsInvalid), 1);
        assert_eq!(counts.refused(RefusalReason::Throttled), 1);
        assert_eq!(counts.refused(RefusalReason::TwoFactorRequired), 1);
        assert_eq!(counts.refused(RefusalReason::Other), 0);
        for (i, reason) in RefusalReason::ALL.into_iter().enumerate() {
            assert_eq!(reason as usize, i, "ALL is in declaration order");
        }
    }
}
