//! Sign-in: a name with a password (argon2id, two-factor aware) or with an access token,
//! throttled per account and address, and answered alike whatever was wrong.

use super::cache::key_of;
use super::{Authenticator, PASSWORD_CACHE_TTL};
use crate::access::{Actor, Principal, TokenLimits};
use crate::identity::{hash_password, hash_token, totp, verify_password, TOKEN_PREFIX};
use crate::ports::TokenRecord;
use crate::time::now_unix;
use crate::{Error, Result};
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Instant;

/// What the sign-in is for: registry clients cannot answer a two-factor prompt, so with
/// two-factor on they must use an access token; interactive sign-ins give the code.
#[derive(Debug, Clone, Copy)]
pub enum LoginPurpose<'a> {
    Registry,
    Interactive { otp: Option<&'a str> },
}

/// A token's last use is written at most this often.
const TOUCH_INTERVAL_SECS: i64 = 60;

/// Verifying against this when the account does not exist keeps the answer's timing the same.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password for unknown accounts").unwrap_or_default())
}

impl Authenticator {
    /// argon2id is deliberately slow and memory-hard: keep it off the async workers and
    /// run only as many at once as there are cores.
    async fn password_matches(&self, password: &str, hash: &str) -> bool {
        let Ok(_permit) = self.password_checks.acquire().await else {
            return false;
        };
        let (password, hash) = (password.to_owned(), hash.to_owned());
        tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .unwrap_or(false)
    }

    /// `TooManyRequests` while the account or the address has used up its failed sign-ins.
    pub(super) fn not_throttled(
        &self,
        account: Option<&str>,
        address: Option<IpAddr>,
        now: Instant,
    ) -> Result<()> {
        self.throttle
            .check(account, address, now)
            .map_err(|wait| Error::TooManyRequests {
                retry_after_secs: wait.as_secs().max(1),
            })
    }

    /// Verifies a name with a password or an access token.
    pub async fn login(
        &self,
        name: &str,
        secret: &str,
        address: Option<IpAddr>,
        purpose: LoginPurpose<'_>,
    ) -> Result<Principal> {
        let started = Instant::now();
        // Tokens carry 256 random bits, so they are throttled per address only: failed
        // password guesses against an account must not lock its CI tokens out.
        let is_token = secret.starts_with(TOKEN_PREFIX);
        let account = (!is_token).then_some(name);
        self.not_throttled(account, address, started)?;
        let outcome = if is_token {
            self.token_login(name, secret, address).await
        } else {
            self.password_login(name, secret, address, purpose).await
        };
        match &outcome {
            Ok(_) if !is_token => self.throttle.record_success(name),
            Ok(_) => {}
            Err(Error::CredentialsInvalid) => {
                self.throttle.record_failure(account, address, started);
                self.audit(name, "login.failure", name, address).await;
            }
            Err(_) => {}
        }
        outcome
    }

    /// Basic credentials sent with every request: a verified password is remembered briefly
    /// (by a hash of name and password); tokens are checked every time, so revoking one
    /// takes effect at once.
    pub async fn basic(
        &self,
        name: &str,
        secret: &str,
        address: Option<IpAddr>,
    ) -> Result<Principal> {
        if secret.starts_with(TOKEN_PREFIX) {
            return self
                .login(name, secret, address, LoginPurpose::Registry)
                .await;
        }
        let key = key_of(&[name, secret]);
        if let Some(principal) = self.passwords.get(&key, Instant::now()) {
            return Ok(principal);
        }
        let _turn = self.sign_in_turns[usize::from(key[0]) % self.sign_in_turns.len()]
            .lock()
            .await;
        let now = Instant::now();
        if let Some(principal) = self.passwords.get(&key, now) {
            return Ok(principal);
        }
        let principal = self
            .login(name, secret, address, LoginPurpose::Registry)
            .await?;
        self.passwords
            .insert(key, principal.clone(), now + PASSWORD_CACHE_TTL, now);
        Ok(principal)
    }

    async fn password_login(
        &self,
        name: &str,
        password: &str,
        address: Option<IpAddr>,
        purpose: LoginPurpose<'_>,
    ) -> Result<Principal> {
        let Some(user) = self.store.user_by_name(name).await? else {
            self.password_matches(password, decoy_hash()).await;
            return Err(Error::CredentialsInvalid);
        };
        if !self.password_matches(password, &user.password_hash).await {
            return Err(Error::CredentialsInvalid);
        }
        if user.totp_enabled {
            let secret = user.totp_secret.as_deref().unwrap_or_default();
            match purpose {
                LoginPurpose::Registry => {
                    return Err(Error::TwoFactorRequired(
                        "two-factor authentication is on for this account: sign in with a personal access token instead of the password".into(),
                    ))
                }
                LoginPurpose::Interactive { otp: None } => {
                    return Err(Error::TwoFactorRequired("two-factor code required".into()))
                }
                LoginPurpose::Interactive { otp: Some(code) } => {
                    if !totp::verify_totp(secret, code, now_unix()) {
                        return Err(Error::CredentialsInvalid);
                    }
                }
            }
        }
        self.audit(&user.name, "login", &user.name, address).await;
        Ok(Principal::user(user))
    }

    async fn token_login(
        &self,
        name: &str,
        secret: &str,
        address: Option<IpAddr>,
    ) -> Result<Principal> {
        let token = self
            .store
            .token_by_hash(&hash_token(secret))
            .await?
            .ok_or(Error::CredentialsInvalid)?;
        let principal = self.token_principal(&token).await?;
        let owner = match &principal.actor {
            Actor::User { name, .. } | Actor::Organization { name, .. } => name.as_str(),
            Actor::Anonymous => "",
        };
        if !owner.eq_ignore_ascii_case(name) {
            return Err(Error::CredentialsInvalid);
        }
        let now = now_unix();
        if token
            .last_used_at
            .is_none_or(|used| used + TOUCH_INTERVAL_SECS <= now)
            && self.store.touch_token(token.id, now).await?
        {
            self.audit(
                &principal.name(),
                "token.first_use",
                &format!("token/{}", token.id),
                address,
            )
            .await;
        }
        Ok(principal)
    }

    /// Who a stored token acts for, with its limits; a revoked or expired token, or one
    /// whose owner is gone, is refused like a wrong password.
    pub(crate) async fn token_principal(&self, token: &TokenRecord) -> Result<Principal> {
        if token.revoked_at.is_some() || token.expires_at.is_some_and(|at| at <= now_unix()) {
            return Err(Error::CredentialsInvalid);
        }
        let scope = token.scope.parse().map_err(|_| Error::CredentialsInvalid)?;
        let acting = match token.org_id {
            Some(org_id) => {
                let org = self
                    .store
                    .org_by_id(org_id)
                    .await?
                    .ok_or(Error::CredentialsInvalid)?;
                Principal {
                    actor: Actor::Organization {
                        id: org.id,
                        name: org.name,
                    },
                    limits: None,
                }
            }
            None => Principal::user(
                self.store
                    .user_by_id(token.user_id)
                    .await?
                    .ok_or(Error::CredentialsInvalid)?,
            ),
        };
        Ok(acting.limited(TokenLimits {
            token_id: token.id,
            scope,
            repositories: token.repositories.clone(),
        }))
    }
}
