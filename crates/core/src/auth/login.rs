//! Sign-in: a name with a password (argon2id, two-factor aware, throttled per account and
//! address) or with an access token (never throttled), answered alike whatever was wrong.

use super::cache::{key_of, Key};
use super::verifier::Lane;
use super::{Authenticator, PASSWORD_CACHE_TTL};
use crate::access::{Actor, Principal, TokenLimits};
use crate::identity::{hash_password, hash_token, use_second_factor, TOKEN_PREFIX};
use crate::ports::TokenRecord;
use crate::{Error, Result};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// What the sign-in is for: registry clients cannot answer a two-factor prompt, so with
/// two-factor on they must use an access token; interactive sign-ins give the code.
#[derive(Debug, Clone, Copy)]
pub enum LoginPurpose<'a> {
    Registry,
    Interactive { otp: Option<&'a str> },
}

/// A verified sign-in, with the stored password hash a password was checked against (none
/// for an access token): what the Basic-credentials cache remembers.
struct SignedIn {
    principal: Principal,
    password_hash: Option<Arc<str>>,
}

/// A verified password as the Basic-credentials cache keeps it.
#[derive(Clone)]
pub(super) struct RememberedPassword {
    principal: Principal,
    /// The stored hash the password matched.
    password_hash: Arc<str>,
    /// The store's credentials epoch read before the account was (see
    /// [`crate::ports::Accounts::credentials_epoch`]).
    epoch: Option<u64>,
    /// When argon2id checked the password.
    checked_at: Instant,
}

/// A remembered password is checked again this long after its check however often it is
/// used: a bound on trusting it should a credentials change fail to move the epoch.
const PASSWORD_RECHECK_AFTER: Duration = Duration::from_secs(15 * 60);

/// A token's last use is written at most this often.
const TOUCH_INTERVAL_SECS: i64 = 60;

/// Verifying against this when the account does not exist keeps the answer's timing the same.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password for unknown accounts").unwrap_or_default())
}

/// Why a password check was not run: the sign-in is answered "too many requests".
/// How long a password sign-in may be held back by the throttle before it is answered
/// `429` instead.
const SIGN_IN_PATIENCE: Duration = Duration::from_secs(10);

fn too_many(wait: Duration) -> Error {
    Error::TooManyRequests {
        retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
    }
}

impl Authenticator {
    /// Verifies a name with a password or an access token.
    pub async fn login(
        &self,
        name: &str,
        secret: &str,
        address: Option<IpAddr>,
        purpose: LoginPurpose<'_>,
    ) -> Result<Principal> {
        let signed_in = self.sign_in(name, secret, address, purpose).await?;
        Ok(signed_in.principal)
    }

    async fn sign_in(
        &self,
        name: &str,
        secret: &str,
        address: Option<IpAddr>,
        purpose: LoginPurpose<'_>,
    ) -> Result<SignedIn> {
        // Tokens carry 256 random bits: guessing one is hopeless, so a valid token is never
        // refused for what others did from the same address or against the same account.
        // It is checked first; only a wrong one meets the throttle.
        if secret.starts_with(TOKEN_PREFIX) {
            let outcome = self.token_login(name, secret, address).await;
            if let Err(Error::CredentialsInvalid) = &outcome {
                // Wrong tokens cost no argon2id, but each would be an audit record: they
                // slow their address down like wrong passwords do.
                if let Err(wait) = self.throttle.failed_without_check(address, Instant::now()) {
                    let err = too_many(wait);
                    self.tally.refused(&err);
                    return Err(err);
                }
                tokio::join!(
                    self.audit(name, "login.failure", name, address),
                    self.share_failure(None, address),
                );
            }
            self.tally.record(true, &outcome);
            return outcome.map(|principal| SignedIn {
                principal,
                password_hash: None,
            });
        }
        // Charged before the check, so concurrent guesses are counted one by one. A short
        // wait is served here rather than refused: registry clients do not retry a 429 from
        // the token service, and the address (shared behind NAT, or by parallel uploads) is
        // slowed down either way. Only a wait longer than the patience left is a 429.
        let patience_until = Instant::now() + SIGN_IN_PATIENCE;
        let attempt = loop {
            let now = Instant::now();
            match self.throttle.begin(name, address, now) {
                Ok(attempt) => break attempt,
                Err(wait) if now + wait <= patience_until => tokio::time::sleep(wait).await,
                Err(wait) => {
                    let err = too_many(wait);
                    self.tally.refused(&err);
                    return Err(err);
                }
            }
        };
        let lane = match attempt.trusted() {
            true => Lane::Trusted,
            false => Lane::Ordinary,
        };
        let outcome = self
            .password_login(name, secret, address, purpose, lane)
            .await;
        match &outcome {
            // A two-factor prompt means the password was right.
            Ok(_) | Err(Error::TwoFactorRequired(_)) => attempt.succeeded(Instant::now()),
            Err(Error::CredentialsInvalid) => {
                tokio::join!(
                    self.audit(name, "login.failure", name, address),
                    self.share_failure(Some(name), address),
                );
            }
            Err(_) => attempt.not_checked(Instant::now()),
        }
        self.tally.record(false, &outcome);
        outcome
    }

    /// Records a failure the throttle counted for the other nodes' throttles (a failure may
    /// cost a write; a success costs none). A store that cannot take it is logged, not
    /// returned: the caller's answer is the failure it already has.
    async fn share_failure(&self, account: Option<&str>, address: Option<IpAddr>) {
        let failure = self.throttle.failure(account, address);
        let keep = self.throttle.policy().forget_after;
        if let Err(err) = self.store.share_sign_in_failure(&failure, keep).await {
            tracing::warn!(%err, "cannot share a failed sign-in: the other nodes do not count it");
        }
    }

    /// Basic credentials sent with every request: a verified password is remembered briefly
    /// (by a hash of name and password) with who it signed in, the stored hash it matched and
    /// the store's credentials epoch at the check; tokens are checked every time, so revoking
    /// one takes effect at once.
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
        if let Some(principal) = self.remembered_password(&key, name).await? {
            return Ok(principal);
        }
        let _turn = self.sign_in_turns[usize::from(key[0]) % self.sign_in_turns.len()]
            .lock()
            .await;
        if let Some(principal) = self.remembered_password(&key, name).await? {
            return Ok(principal);
        }
        let now = Instant::now();
        // Read before the account is: a change committed after this read moves the epoch
        // past it, so what the check saw is not trusted after the change.
        let epoch = self.store.credentials_epoch();
        let signed_in = self
            .sign_in(name, secret, address, LoginPurpose::Registry)
            .await?;
        if let Some(hash) = signed_in.password_hash {
            let remembered = RememberedPassword {
                principal: signed_in.principal.clone(),
                password_hash: hash,
                epoch,
                checked_at: now,
            };
            self.passwords
                .insert(key, remembered, now + PASSWORD_CACHE_TTL, now);
        }
        Ok(signed_in.principal)
    }

    /// Who a remembered password signs in (remembered while used, forgotten after a minute
    /// without), only while the account still has the password hash and credential
    /// generation it was checked against, is enabled and has no two-factor authentication,
    /// so a changed password (here, from the CLI, or on another node), a disabled account or
    /// two-factor turned on applies at the next request. While the store's
    /// credentials epoch has not moved since the check, nothing of that can have changed and
    /// the remembered answer stands without a database read (as a bearer token's does);
    /// otherwise the account is read, and argon2id is not run. However often it is used, a
    /// password is checked again [`PASSWORD_RECHECK_AFTER`] after its check.
    async fn remembered_password(&self, key: &Key, name: &str) -> Result<Option<Principal>> {
        let now = Instant::now();
        let epoch = self.store.credentials_epoch();
        // An entry in use stays (argon2id runs again only after a minute without it): every
        // use is checked against the epoch, or the account, below.
        let Some(remembered) = self
            .passwords
            .get_extending(key, now, PASSWORD_CACHE_TTL)
            .filter(|r| now.duration_since(r.checked_at) < PASSWORD_RECHECK_AFTER)
        else {
            return Ok(None);
        };
        if epoch.is_some() && epoch == remembered.epoch {
            // Nothing about any account's credentials changed since the check.
            return Ok(Some(remembered.principal));
        }
        let Some(user) = self.store.user_by_name(name).await? else {
            return Ok(None);
        };
        let still_valid = *user.password_hash == *remembered.password_hash
            && remembered.principal.credential_generation == Some(user.credential_generation)
            && !user.is_disabled()
            && !user.totp_enabled;
        if !still_valid {
            return Ok(None);
        }
        let principal = Principal::user(user);
        // The account was read after `epoch`: the answer holds at that epoch from now on.
        if epoch.is_some() {
            let refreshed = RememberedPassword {
                principal: principal.clone(),
                password_hash: remembered.password_hash,
                epoch,
                checked_at: remembered.checked_at,
            };
            self.passwords
                .insert(*key, refreshed, now + PASSWORD_CACHE_TTL, now);
        }
        Ok(Some(principal))
    }

    async fn password_login(
        &self,
        name: &str,
        password: &str,
        address: Option<IpAddr>,
        purpose: LoginPurpose<'_>,
        lane: Lane,
    ) -> Result<SignedIn> {
        let busy = |_| too_many(Duration::from_secs(1));
        let Some(user) = self.store.user_by_name(name).await? else {
            self.password_checks
                .imitate(password, decoy_hash())
                .await
                .map_err(busy)?;
            return Err(Error::CredentialsInvalid);
        };
        let matches = self
            .password_checks
            .verify(password, &user.password_hash, lane)
            .await
            .map_err(busy)?;
        // A disabled account is refused like a wrong password: its password says nothing
        // about whether the account exists.
        if !matches || user.is_disabled() {
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
                    // Only after the password: someone without it cannot use codes up.
                    let now = self.now_unix();
                    if !use_second_factor(&*self.store, user.id, secret, code, now).await? {
                        return Err(Error::CredentialsInvalid);
                    }
                }
            }
        }
        self.audit(&user.name, "login", &user.name, address).await;
        let password_hash = Arc::from(user.password_hash.as_str());
        Ok(SignedIn {
            principal: Principal::user(user),
            password_hash: Some(password_hash),
        })
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
        let now = self.now_unix();
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
    /// whose owner is gone or disabled (for an organization token: whose creator), is
    /// refused like a wrong password.
    pub(crate) async fn token_principal(&self, token: &TokenRecord) -> Result<Principal> {
        let now = self.now_unix();
        if token.revoked_at.is_some() || token.expires_at.is_some_and(|at| at <= now) {
            return Err(Error::CredentialsInvalid);
        }
        let scope = token.scope.parse().map_err(|_| Error::CredentialsInvalid)?;
        let acting = match token.org_id {
            Some(org_id) => {
                let creator_enabled = self
                    .store
                    .user_by_id(token.user_id)
                    .await?
                    .is_some_and(|user| !user.is_disabled());
                if !creator_enabled {
                    return Err(Error::CredentialsInvalid);
                }
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
                    credential_generation: None,
                }
            }
            None => Principal::user(
                self.store
                    .user_by_id(token.user_id)
                    .await?
                    .filter(|user| !user.is_disabled())
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
