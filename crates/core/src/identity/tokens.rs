//! Personal access tokens: Docker Hub's scopes, recognizable secrets, stored only as hashes.

use crate::error::{Error, Result};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::str::FromStr;

/// Every secret starts with this, so leaked tokens are easy to recognize and scan for.
pub const TOKEN_PREFIX: &str = "berth_pat_";

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
    fn repository_patterns() {
        assert!(validate_repository_pattern("team/*").is_ok());
        assert!(validate_repository_pattern("team/app").is_ok());
        assert!(validate_repository_pattern("Team/*").is_err());
    }
}
