//! Turning TOTP two-factor authentication on and off: a secret is stored pending, becomes
//! active once the user proves their authenticator app has it, and is removed again. Every
//! code is accepted once only, wherever it is given.

use super::totp::{new_totp_secret, otpauth_url, verify_totp};
use super::{Acting, Identity};
use crate::error::{Error, Result};
use crate::ports::{Accounts, IdentityStore};
use crate::time::now_unix;

/// The issuer authenticator apps show next to the account name.
pub const TOTP_ISSUER: &str = "Berth";

/// A pending two-factor setup: what the user enters into (or scans with) their app.
#[derive(Debug, Clone)]
pub struct TotpSetup {
    pub secret: String,
    pub otpauth_url: String,
}

impl<S: IdentityStore + ?Sized> Identity<S> {
    /// Starts two-factor setup for the caller's own account: stores a fresh secret, not yet
    /// enabled, replacing any earlier pending one.
    pub async fn begin_totp(&self, acting: &Acting<'_>, name: &str) -> Result<TotpSetup> {
        acting.require_own_credentials(name)?;
        let user = self.user_record(name).await?;
        if user.totp_enabled {
            return Err(Error::AccountInvalid(
                "two-factor authentication is already on; turn it off first".to_owned(),
            ));
        }
        let secret = new_totp_secret()?;
        if !self.store.set_totp(name, Some(&secret), false).await? {
            return Err(Error::AccountUnknown(name.to_owned()));
        }
        let otpauth_url = otpauth_url(TOTP_ISSUER, name, &secret);
        Ok(TotpSetup {
            secret,
            otpauth_url,
        })
    }

    /// Turns two-factor authentication on when `code` matches the pending secret.
    pub async fn confirm_totp(&self, acting: &Acting<'_>, name: &str, code: &str) -> Result<()> {
        acting.require_own_credentials(name)?;
        let user = self.user_record(name).await?;
        let secret = match (&user.totp_secret, user.totp_enabled) {
            (_, true) => {
                return Err(Error::AccountInvalid(
                    "two-factor authentication is already on".to_owned(),
                ))
            }
            (None, false) => {
                return Err(Error::AccountInvalid(
                    "two-factor setup has not been started".to_owned(),
                ))
            }
            (Some(secret), false) => secret,
        };
        if !use_totp_code(&*self.store, user.id, secret, code).await? {
            return Err(invalid_code());
        }
        if !self.store.set_totp(name, Some(secret), true).await? {
            return Err(Error::AccountUnknown(name.to_owned()));
        }
        self.audit
            .record_by(acting, "user.2fa.enable", name, serde_json::Value::Null)
            .await;
        Ok(())
    }

    /// Turns two-factor authentication off (or abandons a pending setup): the user with a
    /// current code, or a site admin (for a lost device) without one.
    pub async fn disable_totp(
        &self,
        acting: &Acting<'_>,
        name: &str,
        code: Option<&str>,
    ) -> Result<()> {
        acting.require_credentials_of(name)?;
        let (_, caller) = acting.user()?;
        let user = self.user_record(name).await?;
        let Some(secret) = &user.totp_secret else {
            return Err(Error::AccountInvalid(
                "two-factor authentication is not on".to_owned(),
            ));
        };
        // A site admin acting on someone else needs no code; the user always does once it is on.
        let needs_code = user.totp_enabled && caller == name;
        if needs_code {
            let accepted = match code {
                Some(code) => use_totp_code(&*self.store, user.id, secret, code).await?,
                None => false,
            };
            if !accepted {
                return Err(invalid_code());
            }
        }
        if !self.store.set_totp(name, None, false).await? {
            return Err(Error::AccountUnknown(name.to_owned()));
        }
        if user.totp_enabled {
            self.audit
                .record_by(acting, "user.2fa.disable", name, serde_json::Value::Null)
                .await;
        }
        Ok(())
    }
}

/// Whether `code` is a current code of `secret` that has not been used yet; accepting it
/// uses it up. Its time step must be later than the user's last accepted one, recorded with
/// a compare-and-set, so a code seen over someone's shoulder, or sent by two sign-ins at
/// once, passes only once; and once a code has passed, the older ones still inside the
/// ±30 s window do not either.
pub(crate) async fn use_totp_code<S: Accounts + ?Sized>(
    store: &S,
    user_id: i64,
    secret: &str,
    code: &str,
) -> Result<bool> {
    let Some(step) = verify_totp(secret, code, now_unix()) else {
        return Ok(false);
    };
    Ok(store.claim_totp_step(user_id, step).await?)
}

fn invalid_code() -> Error {
    Error::AccountInvalid(
        "the two-factor code is not valid, or was used already: each code works once".to_owned(),
    )
}
