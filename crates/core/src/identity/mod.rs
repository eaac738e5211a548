//! Identities and their management: the one service every account, organization, team,
//! repository-setting and token change goes through (from the API, the web UI or the CLI).
//! Each change is one call that authorizes (repository permissions through the
//! [`Authorizer`], whose rules are `access/policy.rs`), applies the domain rules, then
//! writes the audit entry through the one [`Audit`] writer — in that order. The store is
//! private to the service, so no surface can reach a change without those steps.

mod accounts;
mod acting;
mod audit;
mod names;
mod orgs;
mod passwords;
mod repositories;
mod tokens;
pub mod totp;
mod two_factor;

pub use accounts::DeletedAccount;
pub use accounts::{Account, AccountChange, FIRST_ADMIN, SIGNUPS_PER_ADDRESS, SIGNUP_WINDOW};
pub use acting::{Acting, CLI_ACTOR};
pub use audit::{DEFAULT_AUDIT_PAGE, MAX_AUDIT_PAGE};
pub use names::{
    validate_team_name, validate_username, MAX_ACCOUNT_NAME_LEN, NAME_RULE, RESERVED_NAMES,
};
pub use passwords::{hash_password, verify_password};
pub use repositories::RepositorySettings;
pub use tokens::{
    hash_token, new_token_secret, validate_repository_pattern, CreatedToken, OrgTokenRequest,
    TokenRequest, TokenScope, MAX_TOKEN_LABEL_CHARS, TOKEN_PREFIX,
};
pub(crate) use two_factor::use_second_factor;
pub use two_factor::{TotpSetup, RECOVERY_CODE_COUNT, TOTP_ISSUER};

use crate::access::{Authorizer, PolicyAuthorizer};
use crate::audit::Audit;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::ports::IdentityStore;
use accounts::SelfSignup;
use std::sync::Arc;

/// Account, organization, repository-setting and token management over the identity store.
pub struct Identity<S: ?Sized> {
    store: Arc<S>,
    /// Decides repository permissions, as it does for the registry.
    authorizer: Arc<dyn Authorizer>,
    /// Records every change this service makes.
    audit: Audit,
    /// Whether people may create their own accounts, and how many per address; shared by
    /// every clone, so the allowance holds across requests.
    signup: Arc<SelfSignup>,
    /// What two-factor checks and the times changes record read the time from.
    clock: Arc<dyn Clock>,
}

// By hand: a derive would require the store itself to be `Clone`, but only the `Arc` is cloned.
impl<S: ?Sized> Clone for Identity<S> {
    fn clone(&self) -> Self {
        Identity {
            store: self.store.clone(),
            authorizer: self.authorizer.clone(),
            audit: self.audit.clone(),
            signup: self.signup.clone(),
            clock: self.clock.clone(),
        }
    }
}

impl<S: IdentityStore + ?Sized + 'static> Identity<S> {
    /// The service with self-service sign-up closed (see [`Identity::with_signup`]), deciding
    /// repository permissions with the policy over `store` (see [`Identity::with_authorizer`]).
    pub fn new(store: Arc<S>) -> Self {
        Identity {
            authorizer: Arc::new(PolicyAuthorizer::new(store.clone())),
            audit: Audit::over(store.clone()),
            store,
            signup: Arc::new(SelfSignup::new(false)),
            clock: crate::clock::system(),
        }
    }
}

impl<S: ?Sized> Identity<S> {
    /// The same service asking `authorizer` about repositories: the one the registry asks,
    /// so both surfaces decide alike.
    pub fn with_authorizer(self, authorizer: Arc<dyn Authorizer>) -> Self {
        Identity { authorizer, ..self }
    }

    /// The same service reading the time from `clock` (tests move a manual one).
    #[must_use]
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        Identity { clock, ..self }
    }

    fn now_unix(&self) -> i64 {
        self.clock.now_unix()
    }

    /// The audit log's writer, for callers outside the management service (the registry).
    pub fn audit_log(&self) -> &Audit {
        &self.audit
    }

    /// The same service with self-service sign-up open or closed (the `allow_signup`
    /// setting), and a fresh per-address allowance.
    pub fn with_signup(self, allowed: bool) -> Self {
        Identity {
            signup: Arc::new(SelfSignup::new(allowed)),
            ..self
        }
    }

    /// Whether people may create their own accounts here.
    pub fn signup_allowed(&self) -> bool {
        self.signup.allowed
    }
}

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 8;

fn check_password(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(Error::AccountInvalid(format!(
            "a password needs at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    Ok(())
}
