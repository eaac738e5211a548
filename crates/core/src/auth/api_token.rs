//! Management API sign-in tokens: short-lived JWTs for `/api/`, signed with the token
//! service's key but for their own audience, so neither kind is accepted in place of the other.

use super::jwt::Claims;
use super::token_service::random_hex;
use super::Authenticator;
use crate::access::{Actor, Principal};
use crate::ports::UserRecord;
use crate::{Error, Result};
use std::time::Duration;

/// How long an API token signs its holder in; then the client signs in again.
pub const API_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// Appended to the service name to form API tokens' `aud`: registry bearer tokens carry the
/// bare service name, so each verifier refuses the other's tokens.
const API_AUDIENCE_SUFFIX: &str = ":api";

impl Authenticator {
    /// The `aud` of API tokens.
    pub fn api_audience(&self) -> String {
        format!("{}{API_AUDIENCE_SUFFIX}", self.settings.service)
    }

    /// An API token for a caller who just signed in. A sign-in with an access token keeps
    /// that token's limits (and ends with its revocation): the JWT names it in `tid`.
    pub async fn issue_api_token(&self, principal: &Principal) -> Result<String> {
        self.issue_sign_in(principal, self.api_audience(), API_TOKEN_TTL)
            .await
    }

    /// Who an API token signs in. The account (or access token) is read again on every
    /// request, so a changed admin flag, a revoked token, a removed account or a changed
    /// password (for a password sign-in) applies at once.
    pub async fn verify_api_token(&self, token: &str) -> Result<Principal> {
        let (principal, _) = self.verify_sign_in(token, &self.api_audience()).await?;
        Ok(principal)
    }

    /// A sign-in JWT for `audience`, valid for `ttl`, without registry grants. A password
    /// sign-in carries the account's id and credential generation: the one read when the
    /// password was checked, or, for a principal not read from the store, the current one.
    pub(super) async fn issue_sign_in(
        &self,
        principal: &Principal,
        audience: String,
        ttl: Duration,
    ) -> Result<String> {
        if principal.is_anonymous() {
            return Err(Error::Unauthorized);
        }
        let (uid, gen) = self.account_stamp(principal).await?;
        let now = self.now_unix();
        let claims = Claims {
            iss: self.settings.issuer.clone(),
            sub: principal.name(),
            aud: audience,
            exp: now + ttl.as_secs() as i64,
            nbf: now,
            iat: now,
            jti: random_hex(16)?,
            access: Vec::new(),
            tid: principal.limits.as_ref().map(|l| l.token_id),
            uid,
            gen,
        };
        self.signer
            .sign(&claims)
            .map_err(|e| Error::internal("sign a sign-in token", e))
    }

    /// The account id and credential generation a token issued to `principal` carries:
    /// set for a user signed in with a password, none for access-token sign-ins (they end
    /// with their token) and anonymous callers.
    pub(super) async fn account_stamp(
        &self,
        principal: &Principal,
    ) -> Result<(Option<i64>, Option<i64>)> {
        let (Actor::User { id, .. }, None) = (&principal.actor, &principal.limits) else {
            return Ok((None, None));
        };
        let generation = match principal.credential_generation {
            Some(generation) => generation,
            None => {
                self.store
                    .user_by_id(*id)
                    .await?
                    .ok_or(Error::Unauthorized)?
                    .credential_generation
            }
        };
        Ok((Some(*id), Some(generation)))
    }

    /// Who a sign-in JWT for `audience` signs in, read again from the store, with its claims.
    /// A sign-in with an access token (`tid`) lasts as long as that token; a sign-in with a
    /// password ends when the account's credential generation moves on (the password
    /// changed, the account was disabled) or the account is disabled or replaced.
    pub(super) async fn verify_sign_in(
        &self,
        token: &str,
        audience: &str,
    ) -> Result<(Principal, Claims)> {
        let claims = self
            .signer
            .verify(token, audience, self.now_unix())
            .map_err(|_| Error::Unauthorized)?;
        if claims.sub.is_empty() {
            return Err(Error::Unauthorized);
        }
        if claims.tid.is_some() {
            let principal = self.principal_of(&claims).await?;
            return Ok((principal, claims));
        }
        // The row read anyway to learn the user's current admin flag holds the generation.
        let user = self.signed_in_user(&claims.sub).await?;
        if !sign_in_is_current(&claims, &user) {
            return Err(Error::Unauthorized);
        }
        Ok((Principal::user(user), claims))
    }
}

/// Whether a password sign-in's token still stands for `user`: the same account, enabled,
/// at the credential generation the token was issued at.
pub(super) fn sign_in_is_current(claims: &Claims, user: &UserRecord) -> bool {
    !user.is_disabled()
        && claims.uid.is_none_or(|uid| uid == user.id)
        && claims.gen.unwrap_or(0) == user.credential_generation
}
