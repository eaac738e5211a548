//! The Docker token service: bearer tokens whose `access` claim is the intersection of what
//! was asked and what the caller may do, offline refresh tokens, and checking bearers.

use super::api_token::sign_in_is_current;
use super::cache::key_of;
use super::jwt::{Claims, ResourceAccess, MAX_TOKEN_LEN};
use super::Authenticator;
use crate::access::{Action, ActionSet, Actor, Need, Principal, Resource};
use crate::identity::hash_token;
use crate::ports::UserRecord;
use crate::time::rfc3339;
use crate::{Error, Result};
use berth_oci::{RepoName, Scope};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Refresh tokens are recognizable like access tokens.
pub const REFRESH_TOKEN_PREFIX: &str = "berth_rt_";

/// What the token endpoints answer.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub expires_in: u64,
    pub issued_at: String,
    /// The granted scopes, space-separated, as the OAuth2 answer lists them.
    pub scope: String,
    pub refresh_token: Option<String>,
}

/// The most distinct scopes one token request may ask for: docker asks for one to three
/// (a cross-repository mount), so this only stops requests no client makes.
pub const MAX_SCOPES: usize = 32;

const REPOSITORY: &str = "repository";
const REGISTRY: &str = "registry";
const CATALOG: &str = "catalog";

pub(super) fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).map_err(|e| Error::internal("randomness", e))?;
    Ok(hex::encode(buf))
}

fn wanted_actions(scope: &Scope) -> ActionSet {
    if scope.actions.iter().any(|a| a == "*") {
        return ActionSet::ALL;
    }
    let actions: Vec<Action> = scope
        .actions
        .iter()
        .filter_map(|a| Action::parse(a))
        .collect();
    ActionSet::of(&actions)
}

/// The requested scopes with repeats merged: one per resource, each action once. More than
/// [`MAX_SCOPES`] resources is refused.
fn distinct_scopes(requested: &[Scope]) -> Result<Vec<Scope>> {
    let mut distinct: Vec<Scope> = Vec::new();
    for scope in requested {
        let full = distinct.len() == MAX_SCOPES;
        let seen = distinct
            .iter_mut()
            .find(|s| s.resource_type == scope.resource_type && s.name == scope.name);
        match seen {
            Some(seen) => add_distinct(&mut seen.actions, &scope.actions),
            None if full => {
                return Err(Error::Unsupported(format!(
                    "a token request may ask for at most {MAX_SCOPES} distinct scopes"
                )))
            }
            None => {
                let mut actions = Vec::new();
                add_distinct(&mut actions, &scope.actions);
                distinct.push(Scope {
                    actions,
                    ..scope.clone()
                });
            }
        }
    }
    Ok(distinct)
}

/// Adds `more` to `actions`, each action once (sorted: thousands of repeats stay cheap).
fn add_distinct(actions: &mut Vec<String>, more: &[String]) {
    actions.extend_from_slice(more);
    actions.sort_unstable();
    actions.dedup();
}

/// Whether a verified bearer token covers one need. Any valid token passes the version check.
/// A bearer token as the cache keeps it: its verified claims, and the credentials epoch at
/// which what it was issued to was last found standing, until when.
#[derive(Clone)]
pub(super) struct VerifiedBearer {
    claims: Arc<Claims>,
    stood_at: Option<u64>,
    stands_until: i64,
}

pub fn bearer_grants(claims: &Claims, need: &Need) -> bool {
    let (kind, name, action) = match &need.resource {
        Resource::Registry => return true,
        Resource::Catalog => (REGISTRY, CATALOG, "*"),
        Resource::Repository(repo) => (REPOSITORY, repo.as_str(), need.action.as_str()),
    };
    claims.access.iter().any(|access| {
        access.kind == kind
            && access.name == name
            && access.actions.iter().any(|a| a == action || a == "*")
    })
}

impl Authenticator {
    /// Grants what was asked for and is allowed (asking for more is not an error) in a
    /// signed token; with `offline`, also a refresh token for signed-in callers.
    pub async fn issue(
        &self,
        principal: &Principal,
        requested: &[Scope],
        offline: bool,
    ) -> Result<IssuedToken> {
        let mut access: Vec<ResourceAccess> = Vec::new();
        for scope in distinct_scopes(requested)? {
            if let Some(granted) = self.grant(principal, &scope).await? {
                // `a` and `library/a` are one repository: one entry with both grants.
                match access
                    .iter_mut()
                    .find(|a| a.kind == granted.kind && a.name == granted.name)
                {
                    Some(seen) => add_distinct(&mut seen.actions, &granted.actions),
                    None => access.push(granted),
                }
            }
        }
        let scope = access
            .iter()
            .map(|a| format!("{}:{}:{}", a.kind, a.name, a.actions.join(",")))
            .collect::<Vec<_>>()
            .join(" ");
        let (uid, gen) = self.account_stamp(principal).await?;
        let now = self.now_unix();
        let ttl = self.settings.token_ttl.as_secs();
        let claims = Claims {
            iss: self.settings.issuer.clone(),
            sub: principal.name(),
            aud: self.settings.service.clone(),
            exp: now + ttl as i64,
            nbf: now,
            iat: now,
            jti: random_hex(16)?,
            access,
            tid: principal.limits.as_ref().map(|l| l.token_id),
            uid,
            gen,
        };
        let token = self
            .signer
            .sign(&claims)
            .map_err(|e| Error::internal("sign token", e))?;
        if token.len() > MAX_TOKEN_LEN {
            // The registry would refuse it: say so now rather than fail every request later.
            return Err(Error::Unsupported(format!(
                "the token for these scopes would be {} bytes, more than the {MAX_TOKEN_LEN} \
                 the registry accepts: ask for fewer scopes",
                token.len()
            )));
        }
        let refresh_token = match (offline, principal.is_anonymous()) {
            (true, false) => Some(self.new_refresh_token(principal).await?),
            _ => None,
        };
        Ok(IssuedToken {
            token,
            expires_in: ttl,
            issued_at: rfc3339(now),
            scope,
            refresh_token,
        })
    }

    /// One requested scope, narrowed to what is allowed; None when nothing is.
    async fn grant(&self, principal: &Principal, scope: &Scope) -> Result<Option<ResourceAccess>> {
        let wanted = wanted_actions(scope);
        let (resource, name) = match (scope.resource_type.as_str(), scope.name.as_str()) {
            (REPOSITORY, name) => match name.parse::<RepoName>() {
                Ok(repo) => {
                    let repo = repo.with_default_namespace();
                    (Resource::Repository(repo.clone()), repo.to_string())
                }
                Err(_) => return Ok(None),
            },
            (REGISTRY, CATALOG) if wanted == ActionSet::ALL => (Resource::Catalog, CATALOG.into()),
            _ => return Ok(None),
        };
        let allowed = self.authorizer.actions(principal, &resource).await?;
        let granted = wanted.intersect(allowed);
        if granted.is_empty() {
            return Ok(None);
        }
        let actions = match resource {
            Resource::Catalog => vec!["*".to_owned()],
            _ => granted.actions().map(|a| a.as_str().to_owned()).collect(),
        };
        Ok(Some(ResourceAccess {
            kind: scope.resource_type.clone(),
            name,
            actions,
        }))
    }

    async fn new_refresh_token(&self, principal: &Principal) -> Result<String> {
        let (user_id, token_id) = match (&principal.actor, &principal.limits) {
            (_, Some(limits)) => {
                let token = self
                    .store
                    .token_by_id(limits.token_id)
                    .await?
                    .ok_or(Error::CredentialsInvalid)?;
                (token.user_id, Some(token.id))
            }
            (Actor::User { id, .. }, None) => (*id, None),
            _ => return Err(Error::CredentialsInvalid),
        };
        let secret = format!("{REFRESH_TOKEN_PREFIX}{}", random_hex(32)?);
        self.store
            .create_refresh_token(user_id, token_id, &hash_token(&secret), self.now_unix())
            .await?;
        Ok(secret)
    }

    /// Signs in with a refresh token: it acts with the limits of the access token it came
    /// from, and ends after `refresh_token_ttl`, when that token is revoked, when the
    /// password changes or two-factor authentication is turned on (both revoke it), and
    /// while the account is disabled. Like access tokens, refresh tokens carry 256 random
    /// bits and are not throttled.
    pub async fn refresh_login(&self, refresh_token: &str) -> Result<Principal> {
        let ttl = i64::try_from(self.settings.refresh_token_ttl.as_secs()).unwrap_or(i64::MAX);
        let now = self.now_unix();
        let record = match self
            .store
            .refresh_token_by_hash(&hash_token(refresh_token))
            .await?
        {
            Some(record)
                if record.revoked_at.is_none() && record.created_at.saturating_add(ttl) > now =>
            {
                record
            }
            _ => return Err(Error::CredentialsInvalid),
        };
        match record.access_token_id {
            Some(token_id) => {
                let token = self
                    .store
                    .token_by_id(token_id)
                    .await?
                    .ok_or(Error::CredentialsInvalid)?;
                self.token_principal(&token).await
            }
            None => {
                let user = self
                    .store
                    .user_by_id(record.user_id)
                    .await?
                    .filter(|user| !user.is_disabled())
                    .ok_or(Error::CredentialsInvalid)?;
                Ok(Principal::user(user))
            }
        }
    }

    /// Checks a bearer token's signature, audience and lifetime (verified signatures are
    /// remembered until the token expires), then that what it was issued to still stands:
    /// for a password sign-in, the account enabled at the same credential generation; for
    /// an access-token sign-in, the token unrevoked and unexpired and its owner enabled. So a
    /// password change, a disabled account or a revoked token ends the account's registry
    /// tokens at the next request rather than when they run out.
    ///
    /// While the store's credentials epoch (moved by every password, admin, two-factor,
    /// disable, delete and token-revoke change, in any process) stays where it was when the
    /// token was last found standing, nothing it depends on can have changed, and the answer
    /// is given from memory: a bearer costs no database read then, as a remembered Basic
    /// password does not.
    pub async fn verify_bearer(&self, token: &str) -> Result<Arc<Claims>> {
        let key = key_of(&[token]);
        let now = Instant::now();
        let unix_now = self.now_unix();
        let epoch = self.store.credentials_epoch();
        let cached = self
            .bearers
            .get(&key, now)
            .filter(|entry| unix_now < entry.claims.exp);
        if let Some(entry) = &cached {
            let unchanged = epoch.is_some() && entry.stood_at == epoch;
            if unchanged && unix_now < entry.stands_until {
                return Ok(entry.claims.clone());
            }
        }
        let claims = match cached {
            Some(entry) => entry.claims,
            None => Arc::new(
                self.signer
                    .verify(token, &self.settings.service, unix_now)
                    .map_err(|_| Error::Unauthorized)?,
            ),
        };
        let (_, stands_until) = self.standing_principal(&claims).await?;
        let left = Duration::from_secs((claims.exp - unix_now).max(0) as u64);
        let entry = VerifiedBearer {
            claims: claims.clone(),
            stood_at: epoch,
            stands_until: stands_until.min(claims.exp),
        };
        self.bearers.insert(key, entry, now + left, now);
        Ok(claims)
    }

    /// The principal a bearer token was issued to, for what its claims alone cannot answer
    /// (which repositories a catalog shows); refused once it no longer stands (see
    /// [`Authenticator::verify_bearer`]).
    pub async fn principal_of(&self, claims: &Claims) -> Result<Principal> {
        self.standing_principal(claims)
            .await
            .map(|(principal, _)| principal)
    }

    /// Who the bearer was issued to, if that still stands, and until when it does if nothing
    /// changes (an access token's own expiry), as Unix seconds.
    async fn standing_principal(&self, claims: &Claims) -> Result<(Principal, i64)> {
        if let Some(token_id) = claims.tid {
            let token = self
                .store
                .token_by_id(token_id)
                .await?
                .ok_or(Error::Unauthorized)?;
            let principal = self
                .token_principal(&token)
                .await
                .map_err(|_| Error::Unauthorized)?;
            return Ok((principal, token.expires_at.unwrap_or(i64::MAX)));
        }
        if claims.sub.is_empty() {
            return Ok((Principal::anonymous(), i64::MAX));
        }
        let user = self.signed_in_user(&claims.sub).await?;
        if !sign_in_is_current(claims, &user) {
            return Err(Error::Unauthorized);
        }
        Ok((Principal::user(user), i64::MAX))
    }

    /// The account a password sign-in names, as stored now; `Unauthorized` once it is gone.
    pub(super) async fn signed_in_user(&self, name: &str) -> Result<UserRecord> {
        self.store
            .user_by_name(name)
            .await?
            .ok_or(Error::Unauthorized)
    }
}
