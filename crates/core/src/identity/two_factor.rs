//! Turning TOTP two-factor authentication on and off: a secret is stored pending, becomes
//! active once the user proves their authenticator app has it, and is removed again; and
//! the recovery codes that stand in for the app once each. Every code is accepted once
//! only, wherever it is given.

use super::totp::{new_totp_secret, otpauth_url, verify_totp};
use super::{hash_token, Acting, Identity};
use crate::error::{Error, Result};
use crate::ports::{Accounts, IdentityStore, RecoveryCodeCounts, RecoveryCodes};

/// How many recovery codes a set has.
pub const RECOVERY_CODE_COUNT: usize = 10;

/// Characters of a recovery code (shown as two groups of five).
const RECOVERY_CODE_LEN: usize = 10;

/// Lower-case letters and digits without look-alikes (no 0/o, 1/l/i): 31 symbols, so a
/// code carries about 49 bits, far beyond guessing behind the sign-in throttle.
const RECOVERY_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

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

    /// Turns two-factor authentication on when `code` matches the pending secret, and
    /// returns a fresh set of recovery codes, shown this once (only their hashes are kept).
    /// The account's refresh tokens end: they were signed in without the second factor.
    pub async fn confirm_totp(
        &self,
        acting: &Acting<'_>,
        name: &str,
        code: &str,
    ) -> Result<Vec<String>> {
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
        if !use_totp_code(&*self.store, user.id, secret, code, self.now_unix()).await? {
            return Err(invalid_code());
        }
        let codes = self.replace_recovery_codes(user.id).await?;
        if !self.store.set_totp(name, Some(secret), true).await? {
            return Err(Error::AccountUnknown(name.to_owned()));
        }
        self.store
            .revoke_refresh_tokens_of_user(user.id, self.now_unix())
            .await?;
        self.audit
            .record_by(acting, "user.2fa.enable", name, serde_json::Value::Null)
            .await;
        Ok(codes)
    }

    /// A new set of recovery codes for the caller's own account, voiding every earlier one
    /// (used or not); shown this once. Two-factor authentication must be on.
    pub async fn regenerate_recovery_codes(
        &self,
        acting: &Acting<'_>,
        name: &str,
    ) -> Result<Vec<String>> {
        acting.require_own_credentials(name)?;
        let user = self.user_record(name).await?;
        if !user.totp_enabled {
            return Err(Error::AccountInvalid(
                "two-factor authentication is not on; recovery codes come with it".to_owned(),
            ));
        }
        let codes = self.replace_recovery_codes(user.id).await?;
        self.audit
            .record_by(
                acting,
                "user.2fa.recovery_codes",
                name,
                serde_json::Value::Null,
            )
            .await;
        Ok(codes)
    }

    /// How many of the account's recovery codes are left (the user or a site admin).
    pub async fn recovery_code_counts(
        &self,
        acting: &Acting<'_>,
        name: &str,
    ) -> Result<RecoveryCodeCounts> {
        acting.require_self_or_site_admin(name)?;
        let user = self.user_record(name).await?;
        Ok(self.store.recovery_code_counts(user.id).await?)
    }

    async fn replace_recovery_codes(&self, user_id: i64) -> Result<Vec<String>> {
        let codes = (0..RECOVERY_CODE_COUNT)
            .map(|_| new_recovery_code())
            .collect::<Result<Vec<_>>>()?;
        let hashes: Vec<String> = codes
            .iter()
            .map(|code| hash_token(&normalize_recovery_code(code)))
            .collect();
        self.store.replace_recovery_codes(user_id, &hashes).await?;
        Ok(codes)
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
                Some(code) => {
                    let now = self.now_unix();
                    use_second_factor(&*self.store, user.id, secret, code, now).await?
                }
                None => false,
            };
            if !accepted {
                return Err(invalid_code());
            }
        }
        if !self.store.set_totp(name, None, false).await? {
            return Err(Error::AccountUnknown(name.to_owned()));
        }
        self.store.clear_recovery_codes(user.id).await?;
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
    now: i64,
) -> Result<bool> {
    let Some(step) = verify_totp(secret, code, now) else {
        return Ok(false);
    };
    Ok(store.claim_totp_step(user_id, step).await?)
}

/// Whether `code` is an unused second factor of the account: a current TOTP code (six
/// digits) or one of its recovery codes, either used up by accepting it. A recovery code
/// is marked used with a compare-and-set, so of two sign-ins racing with one, one passes.
pub(crate) async fn use_second_factor<S: Accounts + RecoveryCodes + ?Sized>(
    store: &S,
    user_id: i64,
    secret: &str,
    code: &str,
    now: i64,
) -> Result<bool> {
    let compact: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.bytes().all(|b| b.is_ascii_digit()) {
        return use_totp_code(store, user_id, secret, &compact, now).await;
    }
    let normalized = normalize_recovery_code(code);
    if normalized.len() != RECOVERY_CODE_LEN {
        return Ok(false);
    }
    Ok(store
        .use_recovery_code(user_id, &hash_token(&normalized), now)
        .await?)
}

/// A recovery code as typed, without the dash, spaces or capitals people add or drop.
fn normalize_recovery_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// A fresh recovery code, `xxxxx-xxxxx`, its characters chosen uniformly (bytes past the
/// last whole multiple of the alphabet are redrawn).
fn new_recovery_code() -> Result<String> {
    let limit = (256 / RECOVERY_ALPHABET.len() * RECOVERY_ALPHABET.len()) as u8;
    let mut chars = Vec::with_capacity(RECOVERY_CODE_LEN);
    while chars.len() < RECOVERY_CODE_LEN {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes).map_err(|e| Error::internal("recovery codes", e))?;
        for byte in bytes.into_iter().filter(|&b| b < limit) {
            if chars.len() < RECOVERY_CODE_LEN {
                chars.push(RECOVERY_ALPHABET[usize::from(byte) % RECOVERY_ALPHABET.len()]);
            }
        }
    }
    let (first, second) = chars.split_at(RECOVERY_CODE_LEN / 2);
    Ok(format!(
        "{}-{}",
        String::from_utf8_lossy(first),
        String::from_utf8_lossy(second)
    ))
}

fn invalid_code() -> Error {
    Error::AccountInvalid(
        "the two-factor code is not valid, or was used already: each code works once".to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_are_fresh_and_survive_how_people_type_them() {
        let code = new_recovery_code().unwrap();
        assert_eq!(code.len(), RECOVERY_CODE_LEN + 1, "{code}");
        assert_eq!(&code[5..6], "-");
        assert_ne!(code, new_recovery_code().unwrap());
        let typed = format!(" {} ", code.to_uppercase().replace('-', " "));
        assert_eq!(normalize_recovery_code(&typed), code.replace('-', ""));
    }
}
