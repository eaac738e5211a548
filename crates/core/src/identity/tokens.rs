//! Access tokens: Docker Hub's scopes, recognizable secrets stored only as hashes, the rules
//! a new token meets (label, expiry, repository patterns) whichever surface asks for it, and
//! creating, listing and revoking personal and organization tokens. As on Docker Hub, access
//! tokens cannot manage access tokens: all of it needs a password sign-in.

use super::{Acting, Identity};
use crate::error::{Error, Result};
use crate::ports::{IdentityStore, NewToken, TokenRecord, OWNERS_TEAM};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::str::FromStr;

/// Every secret starts with this, so leaked tokens are easy to recognize and scan for.
pub const TOKEN_PREFIX: &str = "berth_pat_";

/// Longest label accepted; labels name a token in lists, they are not documents.
pub const MAX_TOKEN_LABEL_CHARS: usize = 100;

/// Docker Hub's access-token scopes; each includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TokenScope {
    /// `repo:public_read`: pull public repositories only.
    PublicRead,
    /// `repo:read`: pull what the user may pull.
    Read,
    /// `repo:write`: also push.
    Write,
    /// `repo:admin`: also delete.
    Admin,
}

impl TokenScope {
    pub const ALL: [TokenScope; 4] = [
        TokenScope::PublicRead,
        TokenScope::Read,
        TokenScope::Write,
        TokenScope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::PublicRead => "repo:public_read",
            TokenScope::Read => "repo:read",
            TokenScope::Write => "repo:write",
            TokenScope::Admin => "repo:admin",
        }
    }

    /// Whether a token of this scope may do what `needed` allows.
    pub fn includes(self, needed: TokenScope) -> bool {
        self >= needed
    }
}

impl fmt::Display for TokenScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TokenScope {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        TokenScope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| {
                Error::AccountInvalid(format!(
                    "unknown token scope {s:?}: use repo:public_read, repo:read, repo:write or repo:admin"
                ))
            })
    }
}

/// A new random secret: the prefix and 32 random bytes in hex.
pub fn new_token_secret() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| Error::internal("token randomness", e))?;
    Ok(format!("{TOKEN_PREFIX}{}", hex::encode(bytes)))
}

/// What is stored of a token: its SHA-256. The secret has 256 random bits, so a fast hash
/// is enough; a slow one would only slow every request down.
pub fn hash_token(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A repository restriction: a repository name where `*` may stand for any characters.
pub fn validate_repository_pattern(pattern: &str) -> Result<()> {
    let probe = pattern.replace('*', "x");
    probe
        .parse::<berth_oci::RepoName>()
        .map(|_| ())
        .map_err(|e| Error::AccountInvalid(format!("invalid repository pattern {pattern:?}: {e}")))
}

/// The label a new token is stored with: trimmed, and 1 to [`MAX_TOKEN_LABEL_CHARS`]
/// characters long.
fn token_label(label: &str) -> Result<&str> {
    let label = label.trim();
    if (1..=MAX_TOKEN_LABEL_CHARS).contains(&label.chars().count()) {
        Ok(label)
    } else {
        Err(Error::AccountInvalid(format!(
            "a token label needs 1 to {MAX_TOKEN_LABEL_CHARS} characters"
        )))
    }
}

/// A token that expires does so after at least a day; `None` is a token that does not.
fn token_expiry(expires_in_days: Option<u32>, now: i64) -> Result<Option<i64>> {
    match expires_in_days {
        Some(0) => Err(Error::AccountInvalid(
            "a token expires after at least 1 day (leave the expiry out for a token that does not expire)"
                .to_owned(),
        )),
        days => Ok(days.map(|days| now + i64::from(days) * 86_400)),
    }
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

/// What a new organization access token may do; it acts for the organization.
#[derive(Debug, Clone)]
pub struct OrgTokenRequest<'a> {
    pub org: &'a str,
    pub label: &'a str,
    pub scope: TokenScope,
    pub repositories: Vec<String>,
    pub expires_in_days: Option<u32>,
}

impl<S: IdentityStore + ?Sized> Identity<S> {
    /// Creates a personal access token (for oneself or, as a site admin, for anyone); the
    /// secret is returned once.
    pub async fn create_token(
        &self,
        acting: &Acting<'_>,
        request: TokenRequest<'_>,
    ) -> Result<CreatedToken> {
        acting.require_credentials_of(request.user)?;
        let user = self.user_record(request.user).await?;
        let created = self
            .insert_token(
                user.id,
                None,
                request.label,
                request.scope,
                request.repositories,
                request.expires_in_days,
            )
            .await?;
        self.audit
            .record_by(
                acting,
                "token.create",
                request.user,
                token_detail(&created.record),
            )
            .await;
        Ok(created)
    }

    /// A user's personal tokens, oldest first (the user or a site admin, signed in with a
    /// password: a token must not learn what other tokens exist and may do).
    pub async fn list_tokens(&self, acting: &Acting<'_>, user: &str) -> Result<Vec<TokenRecord>> {
        acting.require_credentials_of(user)?;
        let user = self.user_record(user).await?;
        Ok(self.store.tokens_of_user(user.id).await?)
    }

    /// Revokes one of `user`'s personal tokens; false if it already was. A token id that is
    /// not theirs is `TokenUnknown`, whether or not it exists.
    pub async fn revoke_token(&self, acting: &Acting<'_>, user: &str, id: i64) -> Result<bool> {
        acting.require_credentials_of(user)?;
        let owner = self.user_record(user).await?;
        let token = self
            .store
            .token_by_id(id)
            .await?
            .filter(|t| t.user_id == owner.id && t.org_id.is_none())
            .ok_or(Error::TokenUnknown(id))?;
        self.mark_revoked(acting, &token, user).await
    }

    /// Creates an organization access token (organization owners and site admins).
    pub async fn create_org_token(
        &self,
        acting: &Acting<'_>,
        request: OrgTokenRequest<'_>,
    ) -> Result<CreatedToken> {
        let org = self.org_tokens_for(acting, request.org).await?;
        let creator = self.token_creator(acting, org.id).await?;
        let created = self
            .insert_token(
                creator,
                Some(org.id),
                request.label,
                request.scope,
                request.repositories,
                request.expires_in_days,
            )
            .await?;
        self.audit
            .record_by(
                acting,
                "token.create",
                &org.name,
                token_detail(&created.record),
            )
            .await;
        Ok(created)
    }

    /// An organization's tokens, oldest first (organization owners and site admins).
    pub async fn list_org_tokens(
        &self,
        acting: &Acting<'_>,
        org: &str,
    ) -> Result<Vec<TokenRecord>> {
        let org = self.org_tokens_for(acting, org).await?;
        Ok(self.store.tokens_of_org(org.id).await?)
    }

    /// Revokes an organization token; false if it already was.
    pub async fn revoke_org_token(&self, acting: &Acting<'_>, org: &str, id: i64) -> Result<bool> {
        let org = self.org_tokens_for(acting, org).await?;
        let token = self
            .store
            .token_by_id(id)
            .await?
            .filter(|t| t.org_id == Some(org.id))
            .ok_or(Error::TokenUnknown(id))?;
        self.mark_revoked(acting, &token, &org.name).await
    }

    /// The organization, when the caller may manage its tokens: an owner or a site admin,
    /// signed in with a password (an owner's token manages the organization, not its tokens).
    async fn org_tokens_for(
        &self,
        acting: &Acting<'_>,
        org: &str,
    ) -> Result<crate::ports::OrgRecord> {
        let org = self.org_for_owner(acting, org).await?;
        acting.require_password_sign_in()?;
        Ok(org)
    }

    async fn mark_revoked(
        &self,
        acting: &Acting<'_>,
        token: &TokenRecord,
        target: &str,
    ) -> Result<bool> {
        if token.revoked_at.is_some() || !self.store.revoke_token(token.id, self.now_unix()).await?
        {
            return Ok(false);
        }
        self.audit
            .record_by(
                acting,
                "token.revoke",
                target,
                json!({ "id": token.id, "label": token.label }),
            )
            .await;
        Ok(true)
    }

    /// Who an organization token is recorded as created by: the caller, or for the CLI
    /// (which has no account) the organization's first owner, else the first site admin.
    async fn token_creator(&self, acting: &Acting<'_>, org_id: i64) -> Result<i64> {
        let (id, _) = acting.user()?;
        if !acting.is_cli() {
            return Ok(id);
        }
        if let Some(owners) = self.store.team(org_id, OWNERS_TEAM).await? {
            if let Some(first) = self.store.team_members(owners.id).await?.first() {
                return Ok(self.user_record(first).await?.id);
            }
        }
        let users = self.store.list_users().await?;
        users
            .into_iter()
            .find(|u| u.is_admin)
            .map(|u| u.id)
            .ok_or_else(|| {
                Error::AccountInvalid(
                    "no owner or site admin account to record as the token's creator".to_owned(),
                )
            })
    }

    async fn insert_token(
        &self,
        user_id: i64,
        org_id: Option<i64>,
        label: &str,
        scope: TokenScope,
        repositories: Vec<String>,
        expires_in_days: Option<u32>,
    ) -> Result<CreatedToken> {
        let label = token_label(label)?;
        let now = self.now_unix();
        let expires_at = token_expiry(expires_in_days, now)?;
        for pattern in &repositories {
            validate_repository_pattern(pattern)?;
        }
        let secret = new_token_secret()?;
        let token = NewToken {
            user_id,
            org_id,
            label: label.to_owned(),
            token_hash: hash_token(&secret),
            scope: scope.as_str().to_owned(),
            repositories,
            created_at: now,
            expires_at,
        };
        let record = self.store.create_token(&token).await?;
        Ok(CreatedToken { record, secret })
    }
}

/// What the audit log keeps about a new token: everything but the secret.
fn token_detail(token: &TokenRecord) -> serde_json::Value {
    json!({
        "id": token.id,
        "label": token.label,
        "scope": token.scope,
        "repositories": token.repositories,
        "expires_at": token.expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_nest() {
        for scope in TokenScope::ALL {
            assert_eq!(scope.as_str().parse::<TokenScope>().unwrap(), scope);
        }
        assert!(TokenScope::Admin.includes(TokenScope::Write));
        assert!(TokenScope::Write.includes(TokenScope::Read));
        assert!(!TokenScope::Read.includes(TokenScope::Write));
        assert!(!TokenScope::PublicRead.includes(TokenScope::Read));
        assert!("repo:delete".parse::<TokenScope>().is_err());
    }

    #[test]
    fn secrets_are_prefixed_random_and_hashed() {
        let a = new_token_secret().unwrap();
        let b = new_token_secret().unwrap();
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 64);
        assert_ne!(a, b);
        assert_eq!(hash_token(&a), hash_token(&a));
        assert!(!hash_token(&a).contains(&a[TOKEN_PREFIX.len()..]));
    }

    #[test]
    fn labels_are_trimmed_and_bounded() {
        assert_eq!(token_label("  ci  ").unwrap(), "ci");
        let longest = "é".repeat(MAX_TOKEN_LABEL_CHARS);
        assert_eq!(token_label(&longest).unwrap(), longest);
        for bad in ["", "   ", &format!("{longest}x")] {
            assert!(
                matches!(token_label(bad), Err(Error::AccountInvalid(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn expiries_are_at_least_a_day() {
        assert_eq!(token_expiry(None, 1000).unwrap(), None);
        assert_eq!(
            token_expiry(Some(2), 1000).unwrap(),
            Some(1000 + 2 * 86_400)
        );
        let longest = token_expiry(Some(u32::MAX), i64::from(u32::MAX)).unwrap();
        assert!(longest.is_some_and(|at| at > 0), "no overflow");
        assert!(matches!(
            token_expiry(Some(0), 1000),
            Err(Error::AccountInvalid(_))
        ));
    }

    #[test]
    fn repository_patterns() {
        assert!(validate_repository_pattern("team/*").is_ok());
        assert!(validate_repository_pattern("team/app").is_ok());
        assert!(validate_repository_pattern("Team/*").is_err());
    }
}
