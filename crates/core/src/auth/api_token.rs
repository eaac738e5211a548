//! Management API sign-in tokens: short-lived JWTs for `/api/`, signed with the token
//! service's key but for their own audience, so neither kind is accepted in place of the other.

use super::jwt::Claims;
use super::token_service::random_hex;
use super::Authenticator;
use crate::access::Principal;
use crate::time::now_unix;
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
    pub fn issue_api_token(&self, principal: &Principal) -> Result<String> {
        self.issue_sign_in(principal, self.api_audience(), API_TOKEN_TTL)
    }

    /// Who an API token signs in. The account (or access token) is read again on every
    /// request, so a changed admin flag, a revoked token, a removed account or a changed
    /// password (for a password sign-in) applies at once.
    pub async fn verify_api_token(&self, token: &str) -> Result<Principal> {
        self.verify_sign_in(token, &self.api_audience()).await
    }

    /// A sign-in JWT for `audience`, valid for `ttl`, without registry grants.
    pub(super) fn issue_sign_in(
        &self,
        principal: &Principal,
        audience: String,
        ttl: Duration,
    ) -> Result<String> {
        if principal.is_anonymous() {
            return Err(Error::Unauthorized);
        }
        let now = now_unix();
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
        };
        self.signer
            .sign(&claims)
            .map_err(|e| Error::internal("sign a sign-in token", e))
    }

    /// Who a sign-in JWT for `audience` signs in, read again from the store. A sign-in with
    /// an access token (`tid`) lasts as long as that token; a sign-in with a password ends
    /// when the password changes: issued before the user's `sessions_valid_from`, it is
    /// refused. Issued in the same second counts as after, so the session a password change
    /// opens for the browser that made it is valid (and the one in flight with it may be).
    pub(super) async fn verify_sign_in(&self, token: &str, audience: &str) -> Result<Principal> {
        let claims = self
            .signer
            .verify(token, audience, now_unix())
            .map_err(|_| Error::Unauthorized)?;
        if claims.sub.is_empty() {
            return Err(Error::Unauthorized);
        }
        if claims.tid.is_some() {
            return self.principal_of(&claims).await;
        }
        // The row read anyway to learn the user's current admin flag holds the timestamp.
        let user = self.signed_in_user(&claims.sub).await?;
        if claims.iat < user.sessions_valid_from {
            return Err(Error::Unauthorized);
        }
        Ok(Principal::user(user))
    }
}
