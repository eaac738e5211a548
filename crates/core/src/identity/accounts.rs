//! User accounts: creating them (by a site admin, or by self-service sign-up when it is
//! open), passwords, the site-admin flag, reading them back without their secrets, and the
//! first administrator of an empty database.

use super::{check_password, hash_password, validate_username, Acting, Identity};
use crate::access::Principal;
use crate::auth::throttle::AddressAllowance;
use crate::error::{Error, Result};
use crate::ports::{IdentityStore, NewUser, UserRecord, Viewer, OWNERS_TEAM};
use berth_oci::RepoName;
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

/// A user as management shows it: never the password hash or the TOTP secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: i64,
    pub name: String,
    pub is_admin: bool,
    pub created_at: i64,
    pub totp_enabled: bool,
    /// A site admin disabled it: nothing signs it in until it is enabled again.
    pub disabled: bool,
}

impl From<UserRecord> for Account {
    fn from(user: UserRecord) -> Account {
        Account {
            id: user.id,
            name: user.name,
            is_admin: user.is_admin,
            created_at: user.created_at,
            totp_enabled: user.totp_enabled,
            disabled: user.disabled_at.is_some(),
        }
    }
}

/// What deleting an account removed besides it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeletedAccount {
    /// The repositories of its namespace, deleted first (only with `force`).
    pub repositories: Vec<String>,
}

impl Account {
    /// The account signed in with its password: who a session opened for it acts as.
    pub fn principal(&self) -> Principal {
        Principal::signed_in_user(self.id, self.name.clone(), self.is_admin)
    }
}

/// What a change to an account asks for; `None` leaves that part as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccountChange<'a> {
    /// A new password: the user or a site admin.
    pub password: Option<&'a str>,
    /// Whether the user is a site admin: site admins.
    pub is_admin: Option<bool>,
}

/// Accounts one client address (IPv6: one /64) may create by self-service sign-up within
/// [`SIGNUP_WINDOW`]: enough for a household or an office, too few for a script.
pub const SIGNUPS_PER_ADDRESS: u32 = 5;

/// The window [`SIGNUPS_PER_ADDRESS`] is counted over.
pub const SIGNUP_WINDOW: Duration = Duration::from_secs(3600);

/// Sign-ups whose client address is unknown all count against this one address.
const UNKNOWN_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// Self-service sign-up: whether the site admin opened it, and the accounts each client
/// address has made lately (in memory, like the sign-in throttle).
pub(super) struct SelfSignup {
    pub(super) allowed: bool,
    per_address: AddressAllowance,
}

impl SelfSignup {
    pub(super) fn new(allowed: bool) -> SelfSignup {
        SelfSignup {
            allowed,
            per_address: AddressAllowance::new(SIGNUPS_PER_ADDRESS, SIGNUP_WINDOW),
        }
    }
}

/// The account an empty database starts with.
pub const FIRST_ADMIN: &str = "admin";

/// Length of a generated first-admin password: about 143 bits from letters and digits.
const GENERATED_PASSWORD_LEN: usize = 24;

/// What the audit log names as the actor of changes Berth makes on its own.
const SERVER_ACTOR: &str = "berth";

impl<S: IdentityStore + ?Sized> Identity<S> {
    /// Creates a user with an argon2id-hashed password (site admins signed in with a
    /// password: an account with a known password would outlive a leaked token's
    /// revocation). `Conflict` when a user or organization already has the name.
    pub async fn create_user(
        &self,
        acting: &Acting<'_>,
        name: &str,
        password: &str,
        is_admin: bool,
    ) -> Result<Account> {
        acting.require_site_admin()?;
        acting.require_password_sign_in()?;
        let account = self.insert_user(name, password, is_admin).await?;
        self.audit
            .record_by(acting, "user.create", name, json!({ "admin": is_admin }))
            .await;
        Ok(account)
    }

    /// Self-service sign-up, when the site admin has opened it: creates a user that is never
    /// a site admin, under the same name and password rules as [`Identity::create_user`],
    /// audited as the new user from `address`. `SignupClosed` when sign-up is off,
    /// `Conflict` when a user or organization has the name (or it is reserved, as `library`
    /// is), `TooManyRequests` once `address` has made [`SIGNUPS_PER_ADDRESS`] accounts within
    /// [`SIGNUP_WINDOW`] (callers whose address is unknown share one allowance).
    pub async fn sign_up(
        &self,
        name: &str,
        password: &str,
        address: Option<IpAddr>,
    ) -> Result<Account> {
        if !self.signup.allowed {
            return Err(Error::SignupClosed);
        }
        // The free checks first: a mistyped form or a taken name neither costs an argon2id
        // hash nor uses up the address's allowance.
        check_new_account(name, password)?;
        if self.store.namespace(name).await?.is_some() {
            return Err(Error::Conflict(name.to_owned()));
        }
        self.signup
            .per_address
            .take(address.unwrap_or(UNKNOWN_ADDRESS), Instant::now())
            .map_err(|wait| Error::TooManyRequests {
                retry_after_secs: wait.as_secs().max(1),
            })?;
        let account = self.insert_user(name, password, false).await?;
        self.audit
            .record_from(
                name,
                address,
                "account.signup",
                name,
                serde_json::Value::Null,
            )
            .await;
        Ok(account)
    }

    async fn insert_user(&self, name: &str, password: &str, is_admin: bool) -> Result<Account> {
        check_new_account(name, password)?;
        let user = NewUser {
            name: name.to_owned(),
            password_hash: hash_password(password)?,
            is_admin,
            now: self.now_unix(),
        };
        let id = self.store.create_user(&user).await?;
        Ok(Account {
            id,
            name: user.name,
            is_admin,
            created_at: user.now,
            totp_enabled: false,
            disabled: false,
        })
    }

    /// Replaces a user's password (the user or a site admin, signed in with a password) and
    /// ends everything signed in with the old one: web UI sessions, API tokens and registry
    /// bearer tokens issued before (the store moves the user's credential generation on with
    /// the hash, so one signed in during the same second ends too), remembered Basic
    /// passwords, and the user's refresh tokens. Sign-ins with an access token are not
    /// ended; they end with that token.
    pub async fn set_password(
        &self,
        acting: &Acting<'_>,
        name: &str,
        password: &str,
    ) -> Result<()> {
        let change = AccountChange {
            password: Some(password),
            is_admin: None,
        };
        self.change_account(acting, name, change).await
    }

    /// Grants or revokes site administration (site admins signed in with a password, for the
    /// reason [`Identity::create_user`] gives); the last site admin cannot be demoted, so the
    /// instance always stays manageable.
    pub async fn set_admin(&self, acting: &Acting<'_>, name: &str, is_admin: bool) -> Result<()> {
        let change = AccountChange {
            password: None,
            is_admin: Some(is_admin),
        };
        self.change_account(acting, name, change).await
    }

    /// Changes an account's password and/or site-admin flag as one change: every part is
    /// authorized and checked before any is written, so a refused request changes nothing.
    /// Each part is audited on its own (`user.admin`, `user.password`); setting the flag it
    /// already has changes and records nothing.
    pub async fn change_account(
        &self,
        acting: &Acting<'_>,
        name: &str,
        change: AccountChange<'_>,
    ) -> Result<()> {
        if change.is_admin.is_some() {
            acting.require_site_admin()?;
            acting.require_password_sign_in()?;
        }
        if change.password.is_some() {
            acting.require_credentials_of(name)?;
        }
        if let Some(password) = change.password {
            check_password(password)?;
        }
        let user = self.user_record(name).await?;
        let admin = change
            .is_admin
            .filter(|&is_admin| is_admin != user.is_admin);
        if admin == Some(false) {
            let admins = self.store.list_users().await?;
            if admins.iter().filter(|u| u.is_admin).count() <= 1 {
                return Err(Error::AccountInvalid(format!(
                    "{name} is the last site admin; make another user admin first"
                )));
            }
        }
        let hash = change.password.map(hash_password).transpose()?;

        if let Some(is_admin) = admin {
            if !self.store.set_admin(name, is_admin).await? {
                return Err(Error::AccountUnknown(name.to_owned()));
            }
            self.audit
                .record_by(acting, "user.admin", name, json!({ "admin": is_admin }))
                .await;
        }
        if let Some(hash) = hash {
            if !self
                .store
                .set_password_hash(name, &hash, self.now_unix())
                .await?
            {
                return Err(Error::AccountUnknown(name.to_owned()));
            }
            self.store
                .revoke_refresh_tokens_of_user(user.id, self.now_unix())
                .await?;
            self.audit
                .record_by(acting, "user.password", name, serde_json::Value::Null)
                .await;
        }
        Ok(())
    }

    /// Disables an account (`disabled`) or enables it again (site admins signed in with a
    /// password). A disabled account's password, access tokens (organization tokens it made
    /// too), refresh tokens, web sessions and registry tokens all stop at their next use:
    /// its credential generation moves on and its refresh tokens are revoked. Enabling does
    /// not bring those sessions back, only the password and the unrevoked access tokens.
    /// Admins cannot disable themselves or the last enabled site admin. Returns whether
    /// anything changed (audited as `user.disable` / `user.enable`).
    pub async fn set_disabled(
        &self,
        acting: &Acting<'_>,
        name: &str,
        disabled: bool,
    ) -> Result<bool> {
        acting.require_site_admin()?;
        acting.require_password_sign_in()?;
        let user = self.user_record(name).await?;
        if disabled {
            self.check_removable(acting, &user, "disable").await?;
        }
        let now = self.now_unix();
        if !self
            .store
            .set_disabled(name, disabled.then_some(now))
            .await?
        {
            return Ok(false);
        }
        if disabled {
            self.store
                .revoke_refresh_tokens_of_user(user.id, now)
                .await?;
        }
        let action = if disabled {
            "user.disable"
        } else {
            "user.enable"
        };
        self.audit
            .record_by(acting, action, name, serde_json::Value::Null)
            .await;
        Ok(true)
    }

    /// Deletes an account (site admins signed in with a password). Its tokens, refresh
    /// tokens, sessions, team memberships, collaborations and stars go with it. Refused
    /// while it is the last owner of an organization (name another owner first), and while
    /// its namespace holds repositories unless `force`: then each repository is deleted
    /// first through [`Identity::delete_repository`] (its events and audit entry), so no
    /// later account of the same name inherits them. Admins cannot delete themselves or the
    /// last enabled site admin. Audited as `user.delete`.
    pub async fn delete_user(
        &self,
        acting: &Acting<'_>,
        name: &str,
        force: bool,
    ) -> Result<DeletedAccount> {
        acting.require_site_admin()?;
        acting.require_password_sign_in()?;
        let user = self.user_record(name).await?;
        self.check_removable(acting, &user, "delete").await?;
        for org in self.store.orgs_of_user(user.id).await? {
            let Some(owners) = self.store.team(org.id, OWNERS_TEAM).await? else {
                continue;
            };
            let owner_names = self.store.team_members(owners.id).await?;
            if owner_names.len() == 1 && owner_names[0] == user.name {
                return Err(Error::AccountInvalid(format!(
                    "{name} is the last owner of the organization {}; make someone else an \
                     owner first",
                    org.name
                )));
            }
        }
        let repositories: Vec<String> = self
            .store
            .repositories_in_namespace(name, Viewer::Everything)
            .await?
            .into_iter()
            .map(|repo| repo.name)
            .collect();
        if !repositories.is_empty() && !force {
            return Err(Error::Invalid(format!(
                "{name} owns {} repositories ({}); delete them first, or delete the account \
                 with force to delete them with it",
                repositories.len(),
                repositories.join(", ")
            )));
        }
        for repo in &repositories {
            let repo: RepoName = repo.parse().map_err(|_| Error::NameInvalid(repo.clone()))?;
            self.delete_repository(acting, &repo).await?;
        }
        if !self.store.delete_user(user.id).await? {
            return Err(Error::AccountUnknown(name.to_owned()));
        }
        self.audit
            .record_by(
                acting,
                "user.delete",
                name,
                json!({ "repositories_deleted": repositories.len() }),
            )
            .await;
        Ok(DeletedAccount { repositories })
    }

    /// The rules disabling and deleting share: not one's own account, and not the last
    /// enabled site admin, so the instance always stays manageable.
    async fn check_removable(
        &self,
        acting: &Acting<'_>,
        user: &UserRecord,
        verb: &str,
    ) -> Result<()> {
        let (caller_id, _) = acting.user()?;
        if caller_id == user.id {
            return Err(Error::AccountInvalid(format!(
                "you cannot {verb} your own account; ask another site admin"
            )));
        }
        if user.is_admin && !user.is_disabled() {
            let users = self.store.list_users().await?;
            let enabled_admins = users
                .iter()
                .filter(|u| u.is_admin && !u.is_disabled())
                .count();
            if enabled_admins <= 1 {
                return Err(Error::AccountInvalid(format!(
                    "{} is the last site admin; make another user admin first",
                    user.name
                )));
            }
        }
        Ok(())
    }

    /// Every user, by name (site admins only).
    pub async fn list_users(&self, acting: &Acting<'_>) -> Result<Vec<Account>> {
        acting.require_site_admin()?;
        let users = self.store.list_users().await?;
        Ok(users.into_iter().map(Account::from).collect())
    }

    /// One user (the user or a site admin).
    pub async fn user(&self, acting: &Acting<'_>, name: &str) -> Result<Account> {
        acting.require_self_or_site_admin(name)?;
        Ok(self.user_record(name).await?.into())
    }

    /// On an empty database, creates the site admin `admin` with `password_from_env` or a
    /// random password; returns the random one, which the caller shows once. `None` when the
    /// password came from the environment or users already exist.
    pub async fn first_start_admin(
        &self,
        password_from_env: Option<String>,
    ) -> Result<Option<String>> {
        if self.store.count_users().await? > 0 {
            return Ok(None);
        }
        let (password, generated) = match password_from_env {
            Some(password) => (password, false),
            None => (random_password()?, true),
        };
        match self.insert_user(FIRST_ADMIN, &password, true).await {
            Ok(_) => {}
            // Another node of the same database got there first.
            Err(Error::Conflict(_)) => return Ok(None),
            Err(err) => return Err(err),
        }
        self.audit
            .record(
                SERVER_ACTOR,
                None,
                "user.create",
                FIRST_ADMIN,
                json!({ "admin": true, "first_start": true }),
            )
            .await;
        Ok(generated.then_some(password))
    }

    pub(super) async fn user_record(&self, name: &str) -> Result<UserRecord> {
        self.store
            .user_by_name(name)
            .await?
            .ok_or_else(|| Error::AccountUnknown(name.to_owned()))
    }
}

/// The rules every new account meets, however it is made: a valid, unreserved name and a
/// long enough password.
fn check_new_account(name: &str, password: &str) -> Result<()> {
    validate_username(name)?;
    check_password(password)
}

/// Letters and digits chosen uniformly: bytes past the last whole multiple of the alphabet's
/// size are redrawn, so no character is more likely than another.
fn random_password() -> Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let limit = (256 / ALPHABET.len() * ALPHABET.len()) as u8;
    let mut password = String::with_capacity(GENERATED_PASSWORD_LEN);
    while password.len() < GENERATED_PASSWORD_LEN {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes).map_err(|e| Error::internal("password randomness", e))?;
        for byte in bytes.into_iter().filter(|&b| b < limit) {
            if password.len() < GENERATED_PASSWORD_LEN {
                password.push(char::from(ALPHABET[usize::from(byte) % ALPHABET.len()]));
            }
        }
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_alphanumeric_and_fresh() {
        let a = random_password().unwrap();
        let b = random_password().unwrap();
        assert_eq!(a.len(), GENERATED_PASSWORD_LEN);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, b);
        assert!(check_password(&a).is_ok());
    }

    #[test]
    fn accounts_carry_no_secrets() {
        let record = UserRecord {
            id: 1,
            name: "alice".into(),
            password_hash: "$argon2id$x".into(),
            is_admin: false,
            created_at: 5,
            totp_secret: Some("JBSWY3DP".into()),
            totp_enabled: true,
            sessions_valid_from: 7,
            credential_generation: 3,
            disabled_at: None,
        };
        let account = Account::from(record);
        assert_eq!(
            account,
            Account {
                id: 1,
                name: "alice".into(),
                is_admin: false,
                created_at: 5,
                totp_enabled: true,
                disabled: false,
            }
        );
    }
}
