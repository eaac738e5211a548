//! Identities and their management: the one service every account, organization, team,
//! repository-setting and token change goes through (from the CLI or the API), checking
//! the caller's permission itself and writing the audit log.

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

pub use accounts::{Account, FIRST_ADMIN};
pub use acting::{Acting, CLI_ACTOR};
pub use audit::{DEFAULT_AUDIT_PAGE, MAX_AUDIT_PAGE};
pub use names::{validate_team_name, validate_username, RESERVED_NAMES};
pub use passwords::{hash_password, verify_password};
pub use repositories::RepositorySettings;
pub use tokens::{
    hash_token, new_token_secret, validate_repository_pattern, CreatedToken, OrgTokenRequest,
    TokenRequest, TokenScope, TOKEN_PREFIX,
};
pub use two_factor::{TotpSetup, TOTP_ISSUER};

use crate::error::{Error, Result};
use std::sync::Arc;

/// Account, organization, repository-setting and token management over the identity store.
pub struct Identity<S: ?Sized> {
    store: Arc<S>,
}

// By hand: a derive would require the store itself to be `Clone`, but only the `Arc` is cloned.
impl<S: ?Sized> Clone for Identity<S> {
    fn clone(&self) -> Self {
        Identity {
            store: self.store.clone(),
        }
    }
}

impl<S: ?Sized> Identity<S> {
    pub fn new(store: Arc<S>) -> Self {
        Identity { store }
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
