//! The identity ports: accounts, access tokens, organizations and teams, repository access
//! settings, the audit log and the token-service keys, as the database stores them.

use super::meta::MetaError;
use berth_oci::RepoName;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, MetaError>;

/// A level of access to a repository, as teams and collaborators hold it; each includes the
/// ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    /// Pull.
    Read,
    /// Pull and push.
    Write,
    /// Pull, push, delete, and the repository's settings (visibility, collaborators).
    Admin,
}

impl Permission {
    pub const ALL: [Permission; 3] = [Permission::Read, Permission::Write, Permission::Admin];

    /// The wire and database spelling, as Docker Hub's API uses it.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Write => "write",
            Permission::Admin => "admin",
        }
    }
}

impl Permission {
    /// Its rank in the order read < write < admin (1, 2, 3), as a query computes the highest
    /// of several grants with `max`.
    pub fn rank(self) -> i64 {
        match self {
            Permission::Read => 1,
            Permission::Write => 2,
            Permission::Admin => 3,
        }
    }

    /// The permission of a [`rank`](Permission::rank); `None` for any other number.
    pub fn of_rank(rank: i64) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.rank() == rank)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Permission {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Permission::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown permission {s:?}: use read, write or admin"))
    }
}

/// A user account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: i64,
    pub name: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub created_at: i64,
    /// The base32 TOTP secret, once two-factor setup has started.
    pub totp_secret: Option<String>,
    /// Two-factor authentication is on (the secret was confirmed with a code).
    pub totp_enabled: bool,
    /// Unix seconds of the last password change (0: never changed); for reading only, what
    /// ends older sign-ins is `credential_generation`.
    pub sessions_valid_from: i64,
    /// Moves by one whenever every sign-in made before must end (a password change, the
    /// account disabled); sign-in tokens carry the value they were issued at.
    pub credential_generation: i64,
    /// When a site admin disabled the account; `None`: enabled.
    pub disabled_at: Option<i64>,
}

impl UserRecord {
    pub fn is_disabled(&self) -> bool {
        self.disabled_at.is_some()
    }
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub name: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub now: i64,
}

#[async_trait::async_trait]
pub trait Accounts: Send + Sync {
    /// Creates the user and its namespace; `Conflict` if the name is taken by a user or an
    /// organization.
    async fn create_user(&self, user: &NewUser) -> Result<i64>;
    async fn user_by_name(&self, name: &str) -> Result<Option<UserRecord>>;
    async fn user_by_id(&self, id: i64) -> Result<Option<UserRecord>>;
    /// Every user, by name.
    async fn list_users(&self) -> Result<Vec<UserRecord>>;
    async fn count_users(&self) -> Result<u64>;
    /// Replaces the password hash and, in the same statement, moves `credential_generation`
    /// on by one (and `sessions_valid_from` to `now`), so no sign-in with the old password
    /// outlives it. False if there is no such user.
    async fn set_password_hash(&self, name: &str, hash: &str, now: i64) -> Result<bool>;
    /// Disables the account (`Some(now)`), moving `credential_generation` on by one in the
    /// same statement, or enables it again (`None`). False if there is no such user or it
    /// already was in that state.
    async fn set_disabled(&self, name: &str, disabled_at: Option<i64>) -> Result<bool>;
    /// Deletes the account with its namespace, tokens, refresh tokens, memberships, grants,
    /// stars and recovery codes (its repositories must be gone first). False if there is no
    /// such user.
    async fn delete_user(&self, id: i64) -> Result<bool>;
    async fn set_admin(&self, name: &str, is_admin: bool) -> Result<bool>;
    /// Sets (or with `None` clears) the TOTP secret and whether two-factor is on. A different
    /// secret (or none) starts with no code used; the same one keeps its last used step, so
    /// the code that confirmed a secret cannot sign in again.
    async fn set_totp(&self, name: &str, secret: Option<&str>, enabled: bool) -> Result<bool>;
    /// Records `step` as the user's last used TOTP time step if it is later than the one
    /// recorded, in one compare-and-set; false when it is not (its code, or a later one, was
    /// used already), so of two sign-ins racing with one code only one gets true.
    async fn claim_totp_step(&self, user_id: i64, step: i64) -> Result<bool>;
    /// A number that moves after every change to an account's credentials (its password,
    /// site-admin flag or two-factor settings), made by this process or any other on the same
    /// data, and that is cheap to read (no database query): a sign-in remembered at one epoch
    /// is trusted without reading the account only while the epoch stays. `None`: not
    /// tracked, so callers read the account.
    fn credentials_epoch(&self) -> Option<u64> {
        None
    }
}

/// An access token as stored: never the secret, only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: i64,
    /// The user who created it; for a personal token, the user it acts for.
    pub user_id: i64,
    /// Set for an organization access token: it acts for the organization, not the user.
    pub org_id: Option<i64>,
    pub label: String,
    pub scope: String,
    pub repositories: Vec<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewToken {
    pub user_id: i64,
    pub org_id: Option<i64>,
    pub label: String,
    pub token_hash: String,
    pub scope: String,
    pub repositories: Vec<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

#[async_trait::async_trait]
pub trait AccessTokens: Send + Sync {
    async fn create_token(&self, token: &NewToken) -> Result<TokenRecord>;
    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenRecord>>;
    async fn token_by_id(&self, id: i64) -> Result<Option<TokenRecord>>;
    /// A user's personal tokens (not organization tokens), oldest first.
    async fn tokens_of_user(&self, user_id: i64) -> Result<Vec<TokenRecord>>;
    /// An organization's tokens, oldest first.
    async fn tokens_of_org(&self, org_id: i64) -> Result<Vec<TokenRecord>>;
    /// Marks the token revoked; false if it does not exist or was already revoked.
    async fn revoke_token(&self, id: i64, now: i64) -> Result<bool>;
    /// Records a use; true when this was the token's first use ever.
    async fn touch_token(&self, id: i64, now: i64) -> Result<bool>;
}

/// An offline (refresh) token of the token service, stored as the hash of its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    pub id: i64,
    pub user_id: i64,
    /// The access token the login used, whose limits the refresh keeps (and whose
    /// revocation ends it).
    pub access_token_id: Option<i64>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

#[async_trait::async_trait]
pub trait RefreshTokens: Send + Sync {
    async fn create_refresh_token(
        &self,
        user_id: i64,
        access_token_id: Option<i64>,
        token_hash: &str,
        now: i64,
    ) -> Result<RefreshTokenRecord>;
    async fn refresh_token_by_hash(&self, token_hash: &str) -> Result<Option<RefreshTokenRecord>>;
    /// Revokes every refresh token of the user (after a password change); returns how many.
    async fn revoke_refresh_tokens_of_user(&self, user_id: i64, now: i64) -> Result<u64>;
}

/// Web sessions ended before they expired (signed out).
#[async_trait::async_trait]
pub trait EndedSessions: Send + Sync {
    /// Records the session `jti` as ended until `expires_at` (when its token would expire
    /// anyway), and forgets ended sessions whose tokens expired before `now`. Idempotent.
    async fn end_session(&self, jti: &str, expires_at: i64, now: i64) -> Result<()>;
    /// Whether the session `jti` was ended.
    async fn session_ended(&self, jti: &str) -> Result<bool>;
}

/// Two-factor recovery codes, stored as hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryCodeCounts {
    pub unused: u64,
    pub total: u64,
}

#[async_trait::async_trait]
pub trait RecoveryCodes: Send + Sync {
    /// Replaces the user's codes (used or not) with `code_hashes`, in one transaction.
    async fn replace_recovery_codes(&self, user_id: i64, code_hashes: &[String]) -> Result<()>;
    /// Marks the unused code with `code_hash` used, in one compare-and-set: of two sign-ins
    /// racing with one code only one gets true.
    async fn use_recovery_code(&self, user_id: i64, code_hash: &str, now: i64) -> Result<bool>;
    async fn recovery_code_counts(&self, user_id: i64) -> Result<RecoveryCodeCounts>;
    /// Deletes every code of the user (two-factor turned off).
    async fn clear_recovery_codes(&self, user_id: i64) -> Result<()>;
}

/// Who owns a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceOwner {
    User(i64),
    Organization(i64),
}

/// The first component of repository names: a user's or an organization's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceRecord {
    pub name: String,
    pub owner: NamespaceOwner,
    /// Whether a repository created by a push is private.
    pub default_private: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgRecord {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
}

/// The team every organization has; its members own the organization.
pub const OWNERS_TEAM: &str = "owners";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamRecord {
    pub id: i64,
    pub org_id: i64,
    pub name: String,
    pub description: String,
    pub member_count: u64,
}

#[async_trait::async_trait]
pub trait Namespaces: Send + Sync {
    async fn namespace(&self, name: &str) -> Result<Option<NamespaceRecord>>;
    async fn set_default_private(&self, name: &str, private: bool) -> Result<bool>;
}

#[async_trait::async_trait]
pub trait Organizations: Send + Sync {
    /// Creates the organization, its namespace and its owners team with `owner` in it;
    /// `Conflict` if the name is taken by a user or an organization.
    async fn create_org(&self, name: &str, owner_user_id: i64, now: i64) -> Result<OrgRecord>;
    async fn org_by_name(&self, name: &str) -> Result<Option<OrgRecord>>;
    async fn org_by_id(&self, id: i64) -> Result<Option<OrgRecord>>;
    /// Every organization, by name.
    async fn list_orgs(&self) -> Result<Vec<OrgRecord>>;
    /// Organizations the user is a member of (through any team), by name.
    async fn orgs_of_user(&self, user_id: i64) -> Result<Vec<OrgRecord>>;
    /// `Conflict` if the organization already has a team of that name.
    async fn create_team(&self, org_id: i64, name: &str, description: &str) -> Result<TeamRecord>;
    async fn team(&self, org_id: i64, name: &str) -> Result<Option<TeamRecord>>;
    /// The organization's teams, by name.
    async fn teams(&self, org_id: i64) -> Result<Vec<TeamRecord>>;
    /// Deletes the team with its memberships and grants. Membership changes and deletions
    /// record `access.changed` by `actor` in the same transaction, one for each repository
    /// the team reaches (its grants; every repository of the organization for its owners).
    async fn delete_team(&self, team_id: i64, actor: Option<&str>) -> Result<bool>;
    /// False if the user already was a member.
    async fn add_team_member(
        &self,
        team_id: i64,
        user_id: i64,
        actor: Option<&str>,
    ) -> Result<bool>;
    /// False if the user was not a member.
    async fn remove_team_member(
        &self,
        team_id: i64,
        user_id: i64,
        actor: Option<&str>,
    ) -> Result<bool>;
    /// Member names, sorted.
    async fn team_members(&self, team_id: i64) -> Result<Vec<String>>;
    /// Whether the user is in the organization's owners team.
    async fn is_org_owner(&self, org_id: i64, user_id: i64) -> Result<bool>;
}

/// A repository's access settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryRecord {
    pub id: i64,
    pub name: String,
    pub namespace: String,
    pub is_private: bool,
    pub created_at: i64,
}

/// Who is asking for a listing: it only shows what they may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    /// Site admins: every repository.
    Everything,
    /// Anonymous callers and `repo:public_read` tokens: public repositories.
    Public,
    /// A user: public repositories and the ones their namespace, teams or collaborations
    /// give them.
    User(i64),
    /// An organization token: public repositories and the organization's.
    Organization(i64),
}

/// What decides one caller's access to one repository, read in one query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessFacts {
    /// `None` if the repository does not exist.
    pub is_private: Option<bool>,
    /// The namespace's owner, if the namespace is a user or an organization.
    pub namespace_owner: Option<NamespaceOwner>,
    /// The user is in the owners team of the namespace's organization.
    pub owns_org: bool,
    /// The highest permission the user's teams hold on the repository.
    pub team_permission: Option<Permission>,
    /// The user's permission as a collaborator on the repository.
    pub collaborator_permission: Option<Permission>,
}

#[async_trait::async_trait]
pub trait RepositoryAccess: Send + Sync {
    /// The facts for `user_id` (None: anonymous or an organization token) on `repo`.
    async fn access_facts(&self, user_id: Option<i64>, repo: &RepoName) -> Result<AccessFacts>;
    async fn repository(&self, repo: &RepoName) -> Result<Option<RepositoryRecord>>;
    /// Creates an empty repository; `private: None` takes the namespace's default (private
    /// when the namespace has no record). `Conflict` if it exists.
    /// Creates the repository, with its `repository.created` event by `actor`.
    async fn create_repository(
        &self,
        repo: &RepoName,
        private: Option<bool>,
        now: i64,
        actor: Option<&str>,
    ) -> Result<RepositoryRecord>;
    /// Sets the visibility, recording `repository.visibility_changed` by `actor` in the same
    /// transaction when it changed; false if there is no such repository.
    async fn set_repository_private(
        &self,
        repo: &RepoName,
        private: bool,
        actor: Option<&str>,
    ) -> Result<bool>;
    /// Removes the repository with its tags, manifest and blob links, grants and
    /// collaborators (stored bytes stay for garbage collection), recording
    /// `repository.deleted` by `actor` in the same transaction.
    async fn delete_repository(&self, repo: &RepoName, actor: Option<&str>) -> Result<bool>;
    /// Repositories of one namespace visible to `viewer`, by name.
    async fn repositories_in_namespace(
        &self,
        namespace: &str,
        viewer: Viewer,
    ) -> Result<Vec<RepositoryRecord>>;
    /// Repository names visible to `viewer`, in lexical order after `last`, at most `limit`.
    async fn visible_repositories(
        &self,
        viewer: Viewer,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>>;
    /// Sets a team's permission on a repository (replacing any earlier one).
    /// Grants and revocations record `access.changed` by `actor` in the same transaction.
    async fn grant_team(
        &self,
        team_id: i64,
        repo_id: i64,
        permission: Permission,
        actor: Option<&str>,
    ) -> Result<()>;
    async fn revoke_team(&self, team_id: i64, repo_id: i64, actor: Option<&str>) -> Result<bool>;
    /// (team name, permission) pairs on the repository, by team name.
    async fn team_grants(&self, repo_id: i64) -> Result<Vec<(String, Permission)>>;
    async fn set_collaborator(
        &self,
        repo_id: i64,
        user_id: i64,
        permission: Permission,
        actor: Option<&str>,
    ) -> Result<()>;
    async fn remove_collaborator(
        &self,
        repo_id: i64,
        user_id: i64,
        actor: Option<&str>,
    ) -> Result<bool>;
    /// (user name, permission) pairs, by user name.
    async fn collaborators(&self, repo_id: i64) -> Result<Vec<(String, Permission)>>;
}

/// One permission-relevant action, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub at: i64,
    /// Who did it: a user name, `org/<name>` for an organization token, or `anonymous`.
    pub actor: String,
    /// What was done, e.g. `login`, `token.create`, `repository.visibility`.
    pub action: String,
    /// What it was done to, e.g. a repository or account name.
    pub target: String,
    /// Details as a JSON object, if any.
    pub detail: Option<String>,
    /// The client address.
    pub address: Option<String>,
}

/// The longest actor stored: `org/` and an account name of the longest legal length.
pub const MAX_AUDIT_ACTOR_LEN: usize = 4 + crate::identity::MAX_ACCOUNT_NAME_LEN;
/// The longest target stored: a repository name and a tag (up to 128 characters), both of
/// the longest legal length.
pub const MAX_AUDIT_TARGET_LEN: usize = berth_oci::name::MAX_NAME_LEN + 1 + 128;
/// The longest action stored (actions are short fixed words such as `login.failure`).
pub const MAX_AUDIT_ACTION_LEN: usize = 64;
/// The longest free text stored (details; addresses are far shorter).
pub const MAX_AUDIT_TEXT_LEN: usize = 1024;

impl AuditEvent {
    /// Every field cut to its limit, so what a client sends (a made-up name of any length)
    /// cannot make rows large. Cut text is still what it was up to the cut.
    #[must_use]
    pub fn capped(mut self) -> AuditEvent {
        cut(&mut self.actor, MAX_AUDIT_ACTOR_LEN);
        cut(&mut self.action, MAX_AUDIT_ACTION_LEN);
        cut(&mut self.target, MAX_AUDIT_TARGET_LEN);
        if let Some(detail) = &mut self.detail {
            cut(detail, MAX_AUDIT_TEXT_LEN);
        }
        if let Some(address) = &mut self.address {
            cut(address, MAX_AUDIT_TEXT_LEN);
        }
        self
    }

    /// Whether repeats of this event are folded into one record with a count: failures,
    /// which a client can repeat as often as it likes, unlike the changes it is allowed.
    pub fn folds_repeats(&self) -> bool {
        self.action.ends_with(".failure")
    }
}

/// Cuts `text` to at most `max_bytes`, at a character boundary.
fn cut(text: &mut String, max_bytes: usize) {
    if text.len() > max_bytes {
        let end = text.floor_char_boundary(max_bytes);
        text.truncate(end);
    }
}

/// One stored audit record: an event, or identical repeats of it folded together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: i64,
    /// Its `at` is when it first happened.
    pub event: AuditEvent,
    /// How many times it happened (1 unless repeats were folded in).
    pub count: u32,
    /// When it last happened.
    pub last_at: i64,
}

/// Which audit records to read.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only records by this actor or about this target.
    pub account: Option<String>,
    /// Only records with an id below this (for paging back in time).
    pub before: Option<i64>,
    pub limit: u32,
}

/// How long after a failure an identical one is still folded into its record; a later
/// repeat starts a new record, so the log still shows roughly when failures happened.
pub const AUDIT_FOLD_WINDOW_SECS: i64 = 60 * 60;

#[async_trait::async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends `event` (already [`AuditEvent::capped`]). When the event
    /// [folds repeats](AuditEvent::folds_repeats) and the newest record with the same actor,
    /// action, target, detail and address last happened at most [`AUDIT_FOLD_WINDOW_SECS`]
    /// before it, that record's count goes up by one and its `last_at` becomes the event's
    /// `at` instead, atomically.
    async fn record_audit(&self, event: &AuditEvent) -> Result<()>;
    /// Newest first.
    async fn audit_records(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>>;
    /// Deletes the records that last happened before `before` (Unix seconds); returns how
    /// many. Idempotent.
    async fn prune_audit(&self, before: i64) -> Result<u64>;
}

#[async_trait::async_trait]
pub trait SigningKeys: Send + Sync {
    /// The token-service signing key; the first caller's `candidate` is stored and every
    /// node gets the same key back.
    async fn signing_key_or_insert(&self, candidate: &[u8], now: i64) -> Result<Vec<u8>>;
}

/// A failed sign-in as the sign-in throttle counts it, shared so that every node's throttle
/// counts it: guesses spread over several nodes get no more tries than guesses sent to one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInFailure {
    /// The throttle that counted it first (random per process), which skips it when it
    /// comes back.
    pub origin: u64,
    /// The account it was charged to, as the throttle keys accounts (lower case, cut);
    /// `None` for a failure charged to the address only (a wrong access token).
    pub account: Option<String>,
    /// The client address as the throttle keys addresses (an IPv6 /64).
    pub address: IpAddr,
}

/// A shared failure as a node received it.
#[derive(Debug, Clone)]
pub struct ReceivedSignInFailure {
    pub failure: SignInFailure,
    /// When it failed, on this node's clock (when it arrived, for a failure seen live).
    pub failed_at: Instant,
}

/// How much of a broadcast of shared failures a node buffers before it loses the oldest
/// (its throttle applies them at its next sign-in, and tracks at most 10,000 keys anyway).
pub const SIGN_IN_FAILURE_BACKLOG: usize = 4096;

/// The sign-in throttle's shared failures. A failure costs one write; a sign-in that does
/// not fail costs nothing here: failures reach the other nodes' throttles as they are
/// recorded (pushed, not read per sign-in).
#[async_trait::async_trait]
pub trait SignInFailures: Send + Sync {
    /// Records `failure` for every node on this data, this one included; it is kept for
    /// [`SignInFailures::recent_sign_in_failures`] for `keep`.
    async fn share_sign_in_failure(&self, failure: &SignInFailure, keep: Duration) -> Result<()>;
    /// The failures shared from now on, by any node, as they arrive. A receiver that falls
    /// more than [`SIGN_IN_FAILURE_BACKLOG`] behind loses the oldest.
    fn subscribe_sign_in_failures(&self)
        -> tokio::sync::broadcast::Receiver<ReceivedSignInFailure>;
    /// The failures shared within `within` before now, oldest first, for a throttle that
    /// starts after them.
    async fn recent_sign_in_failures(&self, within: Duration)
        -> Result<Vec<ReceivedSignInFailure>>;
}

/// Every identity port.
pub trait IdentityStore:
    Accounts
    + AccessTokens
    + RefreshTokens
    + EndedSessions
    + RecoveryCodes
    + Namespaces
    + Organizations
    + RepositoryAccess
    + AuditLog
    + SigningKeys
    + SignInFailures
{
}

impl<T> IdentityStore for T where
    T: Accounts
        + AccessTokens
        + RefreshTokens
        + EndedSessions
        + RecoveryCodes
        + Namespaces
        + Organizations
        + RepositoryAccess
        + AuditLog
        + SigningKeys
        + SignInFailures
{
}
