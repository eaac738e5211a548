//! Who performs a management operation, from where, and the checks every operation shares.

use crate::access::{Actor, Principal};
use crate::error::{Error, Result};
use crate::identity::TokenScope;
use std::sync::LazyLock;

/// The caller of a management operation: the principal it acts as, and the client address
/// the audit log records.
#[derive(Debug, Clone)]
pub struct Acting<'a> {
    pub principal: &'a Principal,
    pub address: Option<String>,
}

/// The name the administration CLI acts and is audited under.
pub const CLI_ACTOR: &str = "cli";

/// The CLI runs with access to the data directory, which is already full control, so it acts
/// as a site admin. It has no account: id 0 matches no user, so nothing is ever granted to it
/// as a member, owner or collaborator, only as a site admin.
static CLI_PRINCIPAL: LazyLock<Principal> = LazyLock::new(|| Principal {
    actor: Actor::User {
        id: 0,
        name: CLI_ACTOR.to_owned(),
        is_admin: true,
    },
    limits: None,
    credential_generation: None,
});

impl<'a> Acting<'a> {
    pub fn new(principal: &'a Principal, address: Option<String>) -> Acting<'a> {
        Acting { principal, address }
    }

    /// The administration CLI: a synthetic site admin named `cli` (see [`CLI_ACTOR`]).
    pub fn cli() -> Acting<'static> {
        Acting {
            principal: &CLI_PRINCIPAL,
            address: None,
        }
    }

    /// Whether this is the CLI's synthetic principal rather than a stored account.
    pub(super) fn is_cli(&self) -> bool {
        *self.principal == *CLI_PRINCIPAL
    }

    pub(crate) fn actor_name(&self) -> String {
        match self.principal.name() {
            name if name.is_empty() => "anonymous".to_owned(),
            name => name,
        }
    }

    /// The signed-in user's id and name; organizations (their tokens) manage nothing here.
    pub(super) fn user(&self) -> Result<(i64, &str)> {
        match &self.principal.actor {
            Actor::Anonymous => Err(Error::Unauthorized),
            Actor::Organization { .. } => Err(Error::Denied),
            Actor::User { id, name, .. } => Ok((*id, name)),
        }
    }

    /// Refuses unless the caller is a site admin.
    pub(crate) fn require_site_admin(&self) -> Result<()> {
        self.user()?;
        if self.principal.is_site_admin() {
            Ok(())
        } else {
            Err(Error::Denied)
        }
    }

    /// The signed-in user, when acting with the account's full authority: a password sign-in
    /// or a `repo:admin` token not limited to some repositories.
    pub(super) fn user_with_full_authority(&self) -> Result<(i64, &str)> {
        let user = self.user()?;
        let full = self
            .principal
            .limits
            .as_ref()
            .is_none_or(|l| l.scope == TokenScope::Admin && l.repositories.is_empty());
        if full {
            Ok(user)
        } else {
            Err(Error::Denied)
        }
    }

    /// Refuses changes to `account`'s credentials (password, two-factor, personal tokens)
    /// unless the caller is that user or a site admin, signed in without an access token: a
    /// leaked token must not be able to mint or replace credentials and outlive its revocation.
    pub(super) fn require_credentials_of(&self, account: &str) -> Result<()> {
        let (_, name) = self.user()?;
        if self.principal.limits.is_some() {
            return Err(Error::Denied);
        }
        if name == account || self.principal.is_site_admin() {
            Ok(())
        } else {
            Err(Error::Denied)
        }
    }

    /// Refuses callers signed in with an access token (anonymous ones are asked to sign in).
    pub(super) fn require_password_sign_in(&self) -> Result<()> {
        self.user()?;
        match self.principal.limits {
            None => Ok(()),
            Some(_) => Err(Error::Denied),
        }
    }

    /// Like [`Acting::require_credentials_of`], for the user's own credentials only.
    pub(super) fn require_own_credentials(&self, account: &str) -> Result<()> {
        let (_, name) = self.user()?;
        if self.principal.limits.is_none() && name == account {
            Ok(())
        } else {
            Err(Error::Denied)
        }
    }

    /// Refuses reading `account`'s details unless the caller is that user or a site admin.
    pub(super) fn require_self_or_site_admin(&self, account: &str) -> Result<()> {
        let (_, name) = self.user()?;
        if name == account || self.principal.is_site_admin() {
            Ok(())
        } else {
            Err(Error::Denied)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::testing::{self, with_token};

    fn user(name: &str, is_admin: bool) -> Principal {
        testing::user(7, name, is_admin)
    }

    fn org() -> Principal {
        Principal {
            actor: Actor::Organization {
                id: 3,
                name: "acme".into(),
            },
            limits: None,
            credential_generation: None,
        }
    }

    #[test]
    fn the_cli_is_a_site_admin_without_an_account() {
        let cli = Acting::cli();
        assert!(cli.principal.is_site_admin());
        assert!(cli.is_cli());
        assert_eq!(cli.actor_name(), "cli");
        assert_eq!(cli.user().unwrap(), (0, "cli"));
        assert!(cli.require_credentials_of("anyone").is_ok());
        let alice = user("alice", true);
        assert!(!Acting::new(&alice, None).is_cli());
    }

    #[test]
    fn anonymous_callers_are_asked_to_sign_in_and_organizations_are_refused() {
        let anonymous = Principal::anonymous();
        let acting = Acting::new(&anonymous, None);
        assert_eq!(acting.actor_name(), "anonymous");
        assert!(matches!(acting.user(), Err(Error::Unauthorized)));
        assert!(matches!(
            acting.require_site_admin(),
            Err(Error::Unauthorized)
        ));
        let org = org();
        let acting = Acting::new(&org, None);
        assert!(matches!(acting.user(), Err(Error::Denied)));
        assert!(matches!(
            acting.user_with_full_authority(),
            Err(Error::Denied)
        ));
    }

    #[test]
    fn credentials_change_only_without_a_token() {
        let alice = user("alice", false);
        let acting = Acting::new(&alice, None);
        assert!(acting.require_credentials_of("alice").is_ok());
        assert!(acting.require_own_credentials("alice").is_ok());
        assert!(matches!(
            acting.require_credentials_of("bob"),
            Err(Error::Denied)
        ));
        let admin = user("root", true);
        let acting = Acting::new(&admin, None);
        assert!(acting.require_credentials_of("bob").is_ok());
        assert!(matches!(
            acting.require_own_credentials("bob"),
            Err(Error::Denied)
        ));
        for scope in TokenScope::ALL {
            let tokened = with_token(user("alice", true), scope, &[]);
            let acting = Acting::new(&tokened, None);
            assert!(matches!(
                acting.require_credentials_of("alice"),
                Err(Error::Denied)
            ));
            assert!(matches!(
                acting.require_password_sign_in(),
                Err(Error::Denied)
            ));
        }
        assert!(acting.require_password_sign_in().is_ok());
        let anonymous = Principal::anonymous();
        assert!(matches!(
            Acting::new(&anonymous, None).require_password_sign_in(),
            Err(Error::Unauthorized)
        ));
    }

    #[test]
    fn full_authority_needs_an_unrestricted_admin_token() {
        let cases = [
            (TokenScope::PublicRead, &[][..], false),
            (TokenScope::Read, &[][..], false),
            (TokenScope::Write, &[][..], false),
            (TokenScope::Admin, &["alice/*"][..], false),
            (TokenScope::Admin, &[][..], true),
        ];
        for (scope, repos, allowed) in cases {
            let p = with_token(user("alice", false), scope, repos);
            assert_eq!(
                Acting::new(&p, None).user_with_full_authority().is_ok(),
                allowed,
                "{scope} {repos:?}"
            );
        }
        let p = user("alice", false);
        assert!(Acting::new(&p, None).user_with_full_authority().is_ok());
    }

    #[test]
    fn reading_an_account_takes_its_owner_or_a_site_admin() {
        let alice = user("alice", false);
        let acting = Acting::new(&alice, None);
        assert!(acting.require_self_or_site_admin("alice").is_ok());
        assert!(acting.require_self_or_site_admin("bob").is_err());
        assert!(acting.require_site_admin().is_err());
        let admin = user("root", true);
        assert!(Acting::new(&admin, None)
            .require_self_or_site_admin("bob")
            .is_ok());
    }
}
