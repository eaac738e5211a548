//! The permission rules, as pure functions of a principal and the stored facts about one
//! repository: namespace owners and site admins hold everything, teams and collaborators
//! what they were granted, everyone may read public repositories, and tokens narrow it all.

use super::{Action, ActionSet, Actor, Principal};
use crate::identity::TokenScope;
use crate::ports::{AccessFacts, NamespaceOwner, Permission};
use berth_oci::RepoName;

/// The actions a permission level allows.
pub fn permission_actions(permission: Option<Permission>) -> ActionSet {
    match permission {
        None => ActionSet::NONE,
        Some(Permission::Read) => ActionSet::of(&[Action::Pull]),
        Some(Permission::Write) => ActionSet::of(&[Action::Pull, Action::Push]),
        Some(Permission::Admin) => ActionSet::ALL,
    }
}

/// The permission level a set of actions amounts to (the inverse of [`permission_actions`]).
pub fn permission_of(actions: ActionSet) -> Option<Permission> {
    if !actions.contains(Action::Pull) {
        None
    } else if actions.contains(Action::Delete) {
        Some(Permission::Admin)
    } else if actions.contains(Action::Push) {
        Some(Permission::Write)
    } else {
        Some(Permission::Read)
    }
}

/// Whether the principal's credentials allow a change it makes for itself about `repo`
/// (a star) rather than to the repository: a password sign-in, or a token that may write
/// (`repo:write` and up) and covers `repo`. A read-only token makes no writes of any kind.
pub fn personal_change_allowed(principal: &Principal, repo: &RepoName) -> bool {
    principal
        .limits
        .as_ref()
        .is_none_or(|l| l.scope.includes(TokenScope::Write) && l.covers(repo))
}

/// Whether the actor owns a namespace owned by `owner`: the user it belongs to, an owner of
/// the organization it belongs to (`owns_org`, a fact from the store: the user is in its
/// owners team), or that organization itself (its token). Namespace owners hold Admin on
/// every repository in it and manage its settings.
pub fn owns_namespace(actor: &Actor, owner: Option<NamespaceOwner>, owns_org: bool) -> bool {
    match actor {
        Actor::Anonymous => false,
        Actor::User { id, .. } => owner == Some(NamespaceOwner::User(*id)) || owns_org,
        Actor::Organization { id, .. } => owner == Some(NamespaceOwner::Organization(*id)),
    }
}

/// The actor's own permission on a repository, before any token limits.
fn actor_permission(actor: &Actor, facts: &AccessFacts) -> Option<Permission> {
    let public_read = (facts.is_private == Some(false)).then_some(Permission::Read);
    let owned =
        owns_namespace(actor, facts.namespace_owner, facts.owns_org).then_some(Permission::Admin);
    let granted = match actor {
        Actor::Anonymous => None,
        Actor::User { is_admin: true, .. } => Some(Permission::Admin),
        Actor::User { .. } => owned
            .max(facts.team_permission)
            .max(facts.collaborator_permission),
        Actor::Organization { .. } => owned,
    };
    granted.max(public_read)
}

/// The principal's permission on `repo` given the stored facts, token limits applied.
/// A repository that does not exist is only open to its namespace's owners and site admins,
/// so outsiders cannot tell a private repository from a missing one.
pub fn repository_permission(
    principal: &Principal,
    repo: &RepoName,
    facts: &AccessFacts,
) -> Option<Permission> {
    let permission = actor_permission(&principal.actor, facts);
    let Some(limits) = &principal.limits else {
        return permission;
    };
    if !limits.covers(repo) {
        // Outside its repositories a token is worth what no credentials are: public pulls.
        return (facts.is_private == Some(false)).then_some(Permission::Read);
    }
    let cap = match limits.scope {
        TokenScope::PublicRead if facts.is_private == Some(false) => Some(Permission::Read),
        TokenScope::PublicRead => None,
        TokenScope::Read => Some(Permission::Read),
        TokenScope::Write => Some(Permission::Write),
        TokenScope::Admin => Some(Permission::Admin),
    };
    permission.min(cap)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{self, with_token};
    use super::*;

    fn repo() -> RepoName {
        "alice/app".parse().unwrap()
    }

    fn user(id: i64) -> Principal {
        testing::user(id, &format!("u{id}"), false)
    }

    fn facts(private: Option<bool>) -> AccessFacts {
        AccessFacts {
            is_private: private,
            namespace_owner: Some(NamespaceOwner::User(1)),
            ..AccessFacts::default()
        }
    }

    #[test]
    fn owners_admins_and_the_public() {
        let admin = Principal {
            actor: Actor::User {
                id: 9,
                name: "root".into(),
                is_admin: true,
            },
            limits: None,
            credential_generation: None,
        };
        for private in [None, Some(true), Some(false)] {
            let f = facts(private);
            assert_eq!(
                repository_permission(&user(1), &repo(), &f),
                Some(Permission::Admin)
            );
            assert_eq!(
                repository_permission(&admin, &repo(), &f),
                Some(Permission::Admin)
            );
            let public = (private == Some(false)).then_some(Permission::Read);
            assert_eq!(repository_permission(&user(2), &repo(), &f), public);
            assert_eq!(
                repository_permission(&Principal::anonymous(), &repo(), &f),
                public
            );
        }
    }

    #[test]
    fn teams_and_collaborators_take_the_highest_grant() {
        let mut f = facts(Some(true));
        f.team_permission = Some(Permission::Read);
        f.collaborator_permission = Some(Permission::Write);
        assert_eq!(
            repository_permission(&user(2), &repo(), &f),
            Some(Permission::Write)
        );
        f.owns_org = true;
        assert_eq!(
            repository_permission(&user(2), &repo(), &f),
            Some(Permission::Admin)
        );
    }

    #[test]
    fn tokens_narrow_by_scope_and_pattern() {
        let f = facts(Some(true));
        let owner = user(1);
        let cases = [
            (TokenScope::PublicRead, None),
            (TokenScope::Read, Some(Permission::Read)),
            (TokenScope::Write, Some(Permission::Write)),
            (TokenScope::Admin, Some(Permission::Admin)),
        ];
        for (scope, expected) in cases {
            let p = with_token(owner.clone(), scope, &[]);
            assert_eq!(repository_permission(&p, &repo(), &f), expected, "{scope}");
        }
        let public = facts(Some(false));
        let p = with_token(owner.clone(), TokenScope::PublicRead, &[]);
        assert_eq!(
            repository_permission(&p, &repo(), &public),
            Some(Permission::Read)
        );
        let elsewhere = with_token(owner.clone(), TokenScope::Admin, &["alice/other", "bob/*"]);
        assert_eq!(repository_permission(&elsewhere, &repo(), &f), None);
        assert_eq!(
            repository_permission(&elsewhere, &repo(), &public),
            Some(Permission::Read),
            "public repositories stay pullable"
        );
        let matching = with_token(owner, TokenScope::Write, &["alice/*"]);
        assert_eq!(
            repository_permission(&matching, &repo(), &f),
            Some(Permission::Write)
        );
    }

    #[test]
    fn namespaces_are_owned_by_their_user_their_organization_and_its_owners() {
        let alice = NamespaceOwner::User(1);
        let acme = NamespaceOwner::Organization(5);
        assert!(owns_namespace(&user(1).actor, Some(alice), false));
        assert!(!owns_namespace(&user(2).actor, Some(alice), false));
        assert!(owns_namespace(&user(2).actor, Some(acme), true));
        assert!(!owns_namespace(&user(2).actor, Some(acme), false));
        let org = |id| Actor::Organization {
            id,
            name: "acme".into(),
        };
        assert!(owns_namespace(&org(5), Some(acme), false));
        assert!(!owns_namespace(&org(6), Some(acme), false));
        assert!(
            !owns_namespace(&org(1), Some(alice), false),
            "ids of users are not orgs'"
        );
        assert!(!owns_namespace(&Actor::Anonymous, Some(alice), true));
        assert!(!owns_namespace(&user(1).actor, None, false));
    }

    #[test]
    fn permissions_round_trip_through_actions() {
        for permission in [
            None,
            Some(Permission::Read),
            Some(Permission::Write),
            Some(Permission::Admin),
        ] {
            assert_eq!(permission_of(permission_actions(permission)), permission);
        }
        assert_eq!(permission_of(ActionSet::of(&[Action::Push])), None);
    }

    #[test]
    fn read_only_tokens_change_nothing_even_for_themselves() {
        let owner = user(1);
        assert!(personal_change_allowed(&owner, &repo()));
        for (scope, patterns, allowed) in [
            (TokenScope::PublicRead, &[][..], false),
            (TokenScope::Read, &[][..], false),
            (TokenScope::Read, &["alice/app"][..], false),
            (TokenScope::Write, &[][..], true),
            (TokenScope::Write, &["alice/*"][..], true),
            (TokenScope::Write, &["alice/other"][..], false),
            (TokenScope::Admin, &[][..], true),
            (TokenScope::Admin, &["bob/*"][..], false),
        ] {
            let p = with_token(owner.clone(), scope, patterns);
            assert_eq!(
                personal_change_allowed(&p, &repo()),
                allowed,
                "{scope} {patterns:?}"
            );
        }
    }

    #[test]
    fn organization_tokens_act_for_their_namespace() {
        let org = |id| Principal {
            actor: Actor::Organization {
                id,
                name: "acme".into(),
            },
            limits: None,
            credential_generation: None,
        };
        let mut f = facts(Some(true));
        f.namespace_owner = Some(NamespaceOwner::Organization(5));
        assert_eq!(
            repository_permission(&org(5), &repo(), &f),
            Some(Permission::Admin)
        );
        assert_eq!(repository_permission(&org(6), &repo(), &f), None);
    }
}
