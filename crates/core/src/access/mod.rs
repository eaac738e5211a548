//! The access seam: who is asking (principals), what they need, and the one place that
//! decides; no handler decides access on its own.

mod authorizer;
mod policy;

pub use authorizer::PolicyAuthorizer;
pub use policy::{
    owns_namespace, permission_actions, permission_of, personal_change_allowed,
    repository_permission,
};

use crate::identity::TokenScope;
use crate::ports::{Permission, UserRecord, Viewer};
use crate::Result;
use berth_oci::RepoName;

/// Who acts: nobody in particular, a user, or an organization (through its access token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Anonymous,
    User {
        id: i64,
        name: String,
        is_admin: bool,
    },
    Organization {
        id: i64,
        name: String,
    },
}

/// What an access token narrows its owner's rights to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenLimits {
    pub token_id: i64,
    pub scope: TokenScope,
    /// Repository patterns (`*` matches any run of characters); empty: every repository.
    pub repositories: Vec<String>,
}

impl TokenLimits {
    /// Whether the token may touch `repo` at all.
    pub fn covers(&self, repo: &RepoName) -> bool {
        self.repositories.is_empty()
            || self
                .repositories
                .iter()
                .any(|pattern| glob_matches(pattern, repo.as_str()))
    }
}

/// `*` matches any run of characters (including `/`); everything else matches itself.
pub(crate) fn glob_matches(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// An authenticated (or anonymous) caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub actor: Actor,
    /// Set when the caller authenticated with an access token.
    pub limits: Option<TokenLimits>,
    /// For a user read from the store: the account's credential generation at that moment.
    /// A session opened for this principal carries it, so a password change that lands
    /// between checking the password and opening the session still ends the session.
    /// `None`: not read from the store (the CLI, anonymous, an organization).
    pub credential_generation: Option<i64>,
}

/// By hand: the same caller is the same whatever credential generation it was read at, which
/// says when it was read, not who it is.
impl PartialEq for Principal {
    fn eq(&self, other: &Principal) -> bool {
        self.actor == other.actor && self.limits == other.limits
    }
}

impl Eq for Principal {}

impl Principal {
    /// A user signed in with their password (no token limits).
    pub fn user(user: UserRecord) -> Principal {
        let generation = user.credential_generation;
        Principal {
            credential_generation: Some(generation),
            ..Principal::signed_in_user(user.id, user.name, user.is_admin)
        }
    }

    /// The user `id` named `name` signed in with their password (no token limits).
    pub fn signed_in_user(id: i64, name: String, is_admin: bool) -> Principal {
        Principal {
            actor: Actor::User { id, name, is_admin },
            limits: None,
            credential_generation: None,
        }
    }

    /// The same caller, narrowed by a token.
    pub fn limited(self, limits: TokenLimits) -> Principal {
        Principal {
            limits: Some(limits),
            ..self
        }
    }

    pub fn anonymous() -> Principal {
        Principal {
            actor: Actor::Anonymous,
            limits: None,
            credential_generation: None,
        }
    }

    pub fn is_anonymous(&self) -> bool {
        self.actor == Actor::Anonymous
    }

    /// The error for not enough permission on something the caller may see: an anonymous
    /// caller is asked to sign in (credentials may help), anyone else is refused.
    pub fn refusal(&self) -> crate::Error {
        if self.is_anonymous() {
            crate::Error::Unauthorized
        } else {
            crate::Error::Denied
        }
    }

    /// A site admin using their password or an unrestricted admin-scoped token.
    pub fn is_site_admin(&self) -> bool {
        matches!(self.actor, Actor::User { is_admin: true, .. })
            && self
                .limits
                .as_ref()
                .is_none_or(|l| l.scope == TokenScope::Admin && l.repositories.is_empty())
    }

    pub fn user_id(&self) -> Option<i64> {
        match self.actor {
            Actor::User { id, .. } => Some(id),
            _ => None,
        }
    }

    /// The name the audit log and tokens' `sub` use.
    pub fn name(&self) -> String {
        match &self.actor {
            Actor::Anonymous => String::new(),
            Actor::User { name, .. } => name.clone(),
            Actor::Organization { name, .. } => format!("org/{name}"),
        }
    }

    /// Which repositories a listing may show this caller (token patterns are applied on top).
    pub fn viewer(&self) -> Viewer {
        let public_only = self
            .limits
            .as_ref()
            .is_some_and(|l| l.scope == TokenScope::PublicRead);
        match &self.actor {
            _ if public_only => Viewer::Public,
            Actor::Anonymous => Viewer::Public,
            Actor::User { is_admin: true, .. } => Viewer::Everything,
            Actor::User { id, .. } => Viewer::User(*id),
            Actor::Organization { id, .. } => Viewer::Organization(*id),
        }
    }
}

/// What is being touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// The `/v2/` version check.
    Registry,
    /// The repository listing (`_catalog`).
    Catalog,
    Repository(RepoName),
}

/// What is being done, in Docker token-scope terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pull,
    Push,
    Delete,
}

impl Action {
    pub const ALL: [Action; 3] = [Action::Pull, Action::Push, Action::Delete];

    /// The token-scope spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// A set of actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ActionSet(u8);

impl ActionSet {
    pub const NONE: ActionSet = ActionSet(0);
    pub const ALL: ActionSet = ActionSet(0b111);

    fn bit(action: Action) -> u8 {
        match action {
            Action::Pull => 1,
            Action::Push => 2,
            Action::Delete => 4,
        }
    }

    pub fn of(actions: &[Action]) -> ActionSet {
        ActionSet(actions.iter().fold(0, |bits, &a| bits | Self::bit(a)))
    }

    pub fn contains(self, action: Action) -> bool {
        self.0 & Self::bit(action) != 0
    }

    pub fn intersect(self, other: ActionSet) -> ActionSet {
        ActionSet(self.0 & other.0)
    }

    pub fn union(self, other: ActionSet) -> ActionSet {
        ActionSet(self.0 | other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The actions in token-scope order.
    pub fn actions(self) -> impl Iterator<Item = Action> {
        Action::ALL.into_iter().filter(move |&a| self.contains(a))
    }
}

/// One permission the caller needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub resource: Resource,
    pub action: Action,
}

impl Need {
    pub fn repo(name: &RepoName, action: Action) -> Need {
        Need {
            resource: Resource::Repository(name.clone()),
            action,
        }
    }
}

/// Decides what a principal may do.
#[async_trait::async_trait]
pub trait Authorizer: Send + Sync {
    /// Everything `principal` may do to `resource`.
    async fn actions(&self, principal: &Principal, resource: &Resource) -> Result<ActionSet>;

    /// The principal's permission level on `repo` (what [`Authorizer::actions`] amounts
    /// to). Namespace owners hold Admin even on names that do not exist yet, so callers that
    /// need the repository check that it exists too.
    async fn permission(
        &self,
        principal: &Principal,
        repo: &RepoName,
    ) -> Result<Option<Permission>> {
        let actions = self
            .actions(principal, &Resource::Repository(repo.clone()))
            .await?;
        Ok(permission_of(actions))
    }

    /// Which repositories listings show the principal (its token patterns apply on top).
    fn viewer(&self, principal: &Principal) -> Viewer {
        principal.viewer()
    }

    /// `Ok(())` when every need is granted; `Unauthorized` for an anonymous caller (asking
    /// for credentials may help) and `Denied` otherwise. A private repository and a missing
    /// one are refused alike.
    async fn authorize(&self, principal: &Principal, needs: &[Need]) -> Result<()> {
        for need in needs {
            if !self
                .actions(principal, &need.resource)
                .await?
                .contains(need.action)
            {
                return Err(principal.refusal());
            }
        }
        Ok(())
    }
}

/// Everything allowed to everyone: for tests of the protocol itself.
#[derive(Debug, Default, Clone, Copy)]
pub struct OpenAccess;

#[async_trait::async_trait]
impl Authorizer for OpenAccess {
    async fn actions(&self, _principal: &Principal, _resource: &Resource) -> Result<ActionSet> {
        Ok(ActionSet::ALL)
    }

    fn viewer(&self, _principal: &Principal) -> Viewer {
        Viewer::Everything
    }
}

/// Principals for unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub fn user(id: i64, name: &str, is_admin: bool) -> Principal {
        Principal::signed_in_user(id, name.to_owned(), is_admin)
    }

    pub fn with_token(principal: Principal, scope: TokenScope, repos: &[&str]) -> Principal {
        principal.limited(TokenLimits {
            token_id: 1,
            scope,
            repositories: repos.iter().map(|r| r.to_string()).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_names() {
        for (pattern, text, matches) in [
            ("team/*", "team/app", true),
            ("team/*", "team/a/b", true),
            ("team/*", "teams/app", false),
            ("team/app", "team/app", true),
            ("team/app", "team/app2", false),
            ("*/app", "x/app", true),
            ("*/app", "x/apps", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "acb", false),
            ("*", "anything/at/all", true),
            ("ab*ba", "aba", false),
        ] {
            assert_eq!(glob_matches(pattern, text), matches, "{pattern} vs {text}");
        }
    }

    #[test]
    fn action_sets() {
        let set = ActionSet::of(&[Action::Pull, Action::Delete]);
        assert!(set.contains(Action::Pull) && !set.contains(Action::Push));
        assert_eq!(
            set.actions().collect::<Vec<_>>(),
            [Action::Pull, Action::Delete]
        );
        assert_eq!(
            set.intersect(ActionSet::of(&[Action::Push, Action::Pull])),
            ActionSet::of(&[Action::Pull])
        );
        assert!(ActionSet::NONE.is_empty());
    }
}
