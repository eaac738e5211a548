//! Identities: user accounts and personal access tokens. Registry requests are not yet
//! authenticated with them (the access seam still runs `OpenAccess`); this is the account
//! and token model the identity capability builds on.

mod names;
mod passwords;
mod tokens;

pub use names::validate_username;
pub use passwords::{hash_password, verify_password};
pub use tokens::{hash_token, new_token_secret, TokenScope, TOKEN_PREFIX};

use crate::error::{Error, Result};
use crate::ports::{AccessTokens, Accounts, NewToken, NewUser, TokenRecord};
use crate::time::now_unix;
use std::sync::Arc;

/// Account and token administration over the metadata store.
#[derive(Clone)]
pub struct Identity<S: ?Sized> {
    store: Arc<S>,
}

/// A token just created: its record, and the secret, which is never stored or shown again.
#[derive(Debug)]
pub struct CreatedToken {
    pub record: TokenRecord,
    pub secret: String,
}

/// What a new personal access token may do.
#[derive(Debug, Clone)]
pub struct TokenRequest<'a> {
    pub user: &'a str,
    pub label: &'a str,
    pub scope: TokenScope,
    pub repositories: Vec<String>,
    pub expires_in_days: Option<u32>,
}

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 8;

impl<S: Accounts + AccessTokens + ?Sized> Identity<S> {
    pub fn new(store: Arc<S>) -> Self {
        Identity { store }
    }

    /// Creates a user with an argon2id-hashed password.
    pub async fn create_user(&self, name: &str, password: &str, is_admin: bool) -> Result<i64> {
        validate_username(name)?;
        check_password(password)?;
        let user = NewUser {
            name: name.to_owned(),
            password_hash: hash_password(password)?,
            is_admin,
            now: now_unix(),
        };
        Ok(self.store.create_user(&user).await?)
    }

    /// Replaces a user's password.
    pub async fn set_password(&self, name: &str, password: &str) -> Result<()> {
        check_password(password)?;
        let hash = hash_password(password)?;
        if self.store.set_password_hash(name, &hash).await? {
            Ok(())
        } else {
            Err(Error::AccountUnknown(name.to_owned()))
        }
    }

    /// Creates a personal access token for a user; the secret is returned once.
    pub async fn create_token(&self, request: TokenRequest<'_>) -> Result<CreatedToken> {
        let user = self
            .store
            .user_by_name(request.user)
            .await?
            .ok_or_else(|| Error::AccountUnknown(request.user.to_owned()))?;
        for pattern in &request.repositories {
            tokens::validate_repository_pattern(pattern)?;
        }
        let secret = new_token_secret()?;
        let now = now_unix();
        let token = NewToken {
            user_id: user.id,
            label: request.label.to_owned(),
            token_hash: hash_token(&secret),
            scope: request.scope.as_str().to_owned(),
            repositories: request.repositories,
            created_at: now,
            expires_at: request
                .expires_in_days
                .map(|days| now + i64::from(days) * 86_400),
        };
        let record = self.store.create_token(&token).await?;
        Ok(CreatedToken { record, secret })
    }
}

fn check_password(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(Error::AccountInvalid(format!(
            "a password needs at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    Ok(())
}
