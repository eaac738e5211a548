//! The management API's authorization matrix: the callers of the registry matrix, tokens of
//! every scope limited to one repository, and an expired and a revoked token, × the
//! `/api/v1/` endpoints for repositories (with their groups, collaborators, stars and
//! descriptions), namespaces, the organization (with its tokens), accounts (with two-factor
//! setup), access tokens and the audit log × the world's repositories and namespaces. Access
//! tokens stay within their scope here too: a read-only one makes no writes of any kind, and
//! as on Docker Hub no access token manages access tokens or credentials. Each cell states what the caller
//! must get and checks what the request changed: a refused change leaves everything as it
//! was, and an allowed one is undone before the next cell. A refusal about a private
//! repository the caller cannot read is byte-identical to the same request about a
//! repository that does not exist.

use crate::matrix::{creds_of, row, Level, Row, Who, ROWS};
use crate::support::{client, fresh_loopback, repo, unique, Creds, Snapshot, PASSWORD};
use crate::world::{
    is_private, missing_twin, Pat, World, ACME_PUBLIC, ACME_SECRET, ALICE_HIDDEN, ALICE_PUBLIC,
    ALICE_SECRET, REPOSITORIES,
};
use berth_core::identity::TOKEN_PREFIX;
use berth_core::ports::{
    AccessTokens as _, Accounts as _, HubStore as _, Namespaces as _, Organizations as _,
    Permission, RepositoryAccess as _,
};
use berth_core::time::now_unix;
use reqwest::{Client, Method};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fmt;

const NAMESPACES: [&str; 3] = ["alice", "acme", "library"];
const ORG_REPOSITORIES: [&str; 2] = [ACME_PUBLIC, ACME_SECRET];
const PERSONAL_REPOSITORIES: [&str; 3] = [ALICE_PUBLIC, ALICE_SECRET, ALICE_HIDDEN];
/// Everyone in a team of `acme`.
const ACME_MEMBERS: [&str; 4] = ["olivia", "rita", "walt", "ada"];
/// A user who is no row of the matrix: the one cells add to teams and collaborations.
const SAM: &str = "sam";
/// A team of `acme` without members or grants: the one cells grant and fill.
const SPARE: &str = "spare";
/// The site admin whose expired and revoked tokens make the stale rows.
const STALE_ADMIN: &str = "stale-admin";

/// The short description and README the description cells set.
const DESCRIPTION: &str = "set by the matrix";
const README: &str = "# Set by the matrix";

/// alice's tokens limited to `alice/public`, with the scopes below admin (the registry
/// matrix's limited token is admin-scoped): outside `alice/public` each is worth what no
/// credentials are, and inside it what its scope allows.
#[rustfmt::skip]
const LIMITED_ROWS: [Row; 3] = [
    row("owner's repo:public_read token limited to alice/public", Who::Token(Pat::PublicReadLimitedToPublic), [Level::Read, Level::No, Level::No, Level::Read, Level::No, Level::Read], "alice/public", false),
    row("owner's repo:read token limited to alice/public",        Who::Token(Pat::ReadLimitedToPublic),       [Level::Read, Level::No, Level::No, Level::Read, Level::No, Level::Read], "alice/public", false),
    row("owner's repo:write token limited to alice/public",       Who::Token(Pat::WriteLimitedToPublic),      [Level::Write, Level::No, Level::No, Level::Read, Level::No, Level::Read], "alice/public", true),
];

/// The teams of `acme` and what they hold on each of its repositories, by team name.
const ACME_GRANTS: [(&str, Permission); 3] = [
    ("admins", Permission::Admin),
    ("readers", Permission::Read),
    ("writers", Permission::Write),
];
const CAROL_WRITES: [(&str, Permission); 1] = [("carol", Permission::Write)];

/// The team grants a repository of the world holds.
fn team_grants(name: &str) -> &'static [(&'static str, Permission)] {
    if name.starts_with("acme/") {
        &ACME_GRANTS
    } else {
        &[]
    }
}

/// The collaborators a repository of the world has.
fn collaborators(name: &str) -> &'static [(&'static str, Permission)] {
    if [ALICE_PUBLIC, ALICE_SECRET].contains(&name) {
        &CAROL_WRITES
    } else {
        &[]
    }
}

/// Who owns a namespace: its user, or the organization's owners team (the official
/// namespace's is empty: only site admins manage it).
fn namespace_owners(namespace: &str) -> &'static [&'static str] {
    match namespace {
        "alice" => &["alice"],
        "acme" => &["olivia"],
        _ => &[],
    }
}

fn namespace_kind(namespace: &str) -> &'static str {
    match namespace {
        "alice" => "user",
        _ => "organization",
    }
}

/// Whether pushes create private repositories there: yes, except for official images.
fn default_private(namespace: &str) -> bool {
    namespace != "library"
}

/// What the API matrix adds to the world: `sam`, the team `spare`, and a site admin's
/// expired and revoked tokens.
struct Extras {
    acme: i64,
    /// The ids of acme's teams, by name.
    teams: HashMap<&'static str, i64>,
    sam: i64,
    expired: Creds,
    revoked: Creds,
}

impl Extras {
    async fn build(world: &World) -> Extras {
        let server = &world.server;
        let meta = &server.meta;
        let acme = meta
            .org_by_name("acme")
            .await
            .expect("organization")
            .expect("acme exists")
            .id;
        let sam = server.user(SAM, false).await;
        meta.create_team(acme, SPARE, "").await.expect("team");
        let mut teams = HashMap::new();
        for name in ["readers", "writers", "admins", SPARE] {
            let team = meta.team(acme, name).await.expect("team").expect("exists");
            teams.insert(name, team.id);
        }

        // The stale tokens are a site admin's `repo:admin` tokens, which could do anything;
        // the one to be revoked is seen to work first.
        let stale = server.user(STALE_ADMIN, true).await;
        let expires = Some(now_unix() - 60);
        let (_, expired) = server.token(stale, None, "repo:admin", &[], expires).await;
        let (id, revoked) = server.token(stale, None, "repo:admin", &[], None).await;
        let revoked = Creds::basic(STALE_ADMIN, &revoked);
        let resp = server.get(&revoked, "/api/v1/users").await;
        assert_eq!(resp.status(), 200, "the token works before it is revoked");
        server.revoke(id).await;
        Extras {
            acme,
            teams,
            sam,
            expired: Creds::basic(STALE_ADMIN, &expired),
            revoked,
        }
    }
}

/// Whose credentials a row of the API matrix sends.
#[derive(Clone, Copy)]
enum Subject {
    Row(&'static Row),
    /// A site admin's `repo:admin` token past its expiry or revoked: it signs no one in.
    Stale,
}

/// One row of the API matrix.
struct Caller {
    label: String,
    subject: Subject,
    creds: Creds,
}

impl Caller {
    fn who(&self) -> Option<Who> {
        match self.subject {
            Subject::Row(row) => Some(row.who),
            Subject::Stale => None,
        }
    }

    fn is_stale(&self) -> bool {
        matches!(self.subject, Subject::Stale)
    }

    fn is_anonymous(&self) -> bool {
        matches!(self.who(), Some(Who::Anonymous))
    }

    /// The user account it acts as: none for anonymous callers and organization tokens.
    fn account(&self) -> Option<&'static str> {
        match self.who() {
            None => Some(STALE_ADMIN),
            Some(Who::Anonymous | Who::Token(Pat::Acme)) => None,
            Some(Who::User(name)) => Some(name),
            Some(Who::Token(_)) => Some("alice"),
        }
    }

    /// Whose account "my account" addresses: the caller's, an organization token's
    /// organization, and for anonymous callers alice's.
    fn own(&self) -> &'static str {
        match self.who() {
            Some(Who::Token(Pat::Acme)) => "acme",
            _ => self.account().unwrap_or("alice"),
        }
    }

    /// Acting with the account's full authority: a password, or a `repo:admin` token not
    /// limited to some repositories.
    fn has_full_authority(&self) -> bool {
        matches!(self.who(), Some(Who::User(_) | Who::Token(Pat::Admin)))
    }

    fn is_token(&self) -> bool {
        matches!(self.who(), Some(Who::Token(_)))
    }

    /// Whether it signs in with a token that may write (`repo:write` and up).
    fn token_may_write(&self) -> bool {
        matches!(
            self.who(),
            Some(Who::Token(
                Pat::Write
                    | Pat::Admin
                    | Pat::LimitedToHidden
                    | Pat::WriteLimitedToPublic
                    | Pat::Acme
            ))
        )
    }

    fn is_site_admin(&self) -> bool {
        self.account() == Some("admin") && self.has_full_authority()
    }

    /// Whether its token's repository patterns (if any) take in `name`.
    fn covers(&self, name: &str) -> bool {
        match self.who() {
            Some(Who::Token(pat)) => pat.limited_to().is_none_or(|only| only == name),
            _ => true,
        }
    }

    /// Its access to `name`, a repository of the world or one made in the likeness of the
    /// one in `column`.
    fn level(&self, column: usize, name: &str) -> Level {
        let Subject::Row(row) = self.subject else {
            return Level::No;
        };
        if !self.covers(name) {
            // Outside its repositories a limited token is worth no credentials.
            return match is_private(REPOSITORIES[column]) {
                true => Level::No,
                false => Level::Read,
            };
        }
        row.access[column]
    }

    /// The repositories of the world in `namespace` a listing must show it.
    fn listed_in(&self, namespace: &str) -> Vec<String> {
        let mut names: Vec<String> = REPOSITORIES
            .iter()
            .enumerate()
            .filter(|(column, name)| {
                name.starts_with(&format!("{namespace}/"))
                    && self.covers(name)
                    && self.level(*column, name) >= Level::Read
            })
            .map(|(_, name)| name.to_string())
            .collect();
        names.sort();
        names
    }
}

/// What a cell must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The endpoint's success.
    Allowed,
    /// `401 UNAUTHORIZED` with the API's challenge: no credentials, or ones that sign no one in.
    Unauthorized,
    /// `403 DENIED`.
    Denied,
    /// `404 NAME_UNKNOWN`, exactly as for a repository that does not exist.
    Hidden,
}

/// Who an endpoint that is not about one repository lets in.
#[derive(Debug, Clone, Copy)]
enum Gate {
    /// Anyone, even without credentials.
    Anyone,
    SiteAdmin,
    /// This user (with any credentials of theirs) and site admins.
    UserOrSiteAdmin(&'static str),
    /// Users signed in without an access token: a token must not mint credentials that
    /// outlive its revocation.
    PasswordUser,
    /// This user and site admins, signed in without an access token: access tokens do not
    /// manage (or see) access tokens.
    CredentialsOf(&'static str),
    /// This user alone, signed in without an access token.
    OwnCredentials(&'static str),
    /// Members of `acme` (through any team) and site admins.
    OrgMember,
    /// Owners of `acme` and site admins, with the account's full authority.
    OrgOwner,
    /// Owners of `acme` and site admins, signed in without an access token.
    OrgTokenManager,
    /// Users with the account's full authority: a password, or an unrestricted `repo:admin`
    /// token.
    FullAuthority,
    /// The namespace's owners and site admins, with the account's full authority.
    NamespaceOwner(&'static str),
}

/// The endpoints of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    RepositoryGet,
    /// Flipping the visibility.
    RepositoryPatch,
    /// Deleting a repository made for the cell in the likeness of the column's.
    RepositoryDelete,
    GroupsList,
    /// Granting `spare` read.
    GroupGrant,
    GroupRevoke,
    CollaboratorsList,
    /// Making `sam` a reader.
    CollaboratorAdd,
    CollaboratorRemove,
    /// Starring (as the caller's account).
    Star,
    /// Taking away a star the caller's account gave.
    Unstar,
    /// Setting the short description and the README.
    DescriptionPatch,
    NamespaceRepositories,
    /// Creating a repository in the namespace (`POST /repositories`).
    RepositoryCreate,
    NamespaceGet,
    /// Flipping the default visibility.
    NamespacePatch,
    OrgGroups,
    OrgGroupCreate,
    /// Putting `sam` in `spare`.
    OrgMemberAdd,
    OrgMemberRemove,
    OrgTokens,
    /// Creating an organization of one's own.
    OrgCreate,
    /// A `repo:read` token of `acme`.
    OrgTokenCreate,
    /// Revoking a token of `acme`, made for the cell.
    OrgTokenRevoke,
    Users,
    /// `sam`'s account.
    OtherUser,
    OwnUser,
    OwnTokens,
    /// `?username=alice`.
    AlicesTokens,
    /// A `repo:read` token for oneself.
    TokenCreate,
    /// Revoking a token of one's own, made for the cell.
    TokenRevoke,
    /// One's own token, made for the cell.
    TokenShow,
    /// `{"is_active": false}` on one's own token, made for the cell.
    TokenDeactivate,
    /// Starting two-factor setup for one's own account.
    TwoFactorBegin,
    /// Setting one's own password (to the same one: the cell puts the old hash back).
    PasswordChange,
    AuditLogs,
}

/// In the order the cells run: listings before the changes that would add to them.
const OPS: [Op; 36] = [
    Op::RepositoryGet,
    Op::RepositoryPatch,
    Op::RepositoryDelete,
    Op::GroupsList,
    Op::GroupGrant,
    Op::GroupRevoke,
    Op::CollaboratorsList,
    Op::CollaboratorAdd,
    Op::CollaboratorRemove,
    Op::Star,
    Op::Unstar,
    Op::DescriptionPatch,
    Op::NamespaceRepositories,
    Op::RepositoryCreate,
    Op::NamespaceGet,
    Op::NamespacePatch,
    Op::OrgGroups,
    Op::OrgGroupCreate,
    Op::OrgMemberAdd,
    Op::OrgMemberRemove,
    Op::OrgTokens,
    Op::OrgCreate,
    Op::OrgTokenCreate,
    Op::OrgTokenRevoke,
    Op::Users,
    Op::OtherUser,
    Op::OwnUser,
    Op::OwnTokens,
    Op::AlicesTokens,
    Op::TokenCreate,
    Op::TokenRevoke,
    Op::TokenShow,
    Op::TokenDeactivate,
    Op::TwoFactorBegin,
    Op::AuditLogs,
    // Last: it ends the sign-ins made with the password (putting the old hash back moves
    // the account's credential generation on again), so later cells would find them gone.
    Op::PasswordChange,
];

impl Op {
    /// The repositories, namespaces or organizations the endpoint is tried on.
    fn targets(self) -> &'static [&'static str] {
        match self {
            Op::RepositoryGet
            | Op::RepositoryPatch
            | Op::RepositoryDelete
            | Op::Star
            | Op::Unstar
            | Op::DescriptionPatch => &REPOSITORIES,
            Op::GroupsList | Op::GroupGrant | Op::GroupRevoke => &ORG_REPOSITORIES,
            Op::CollaboratorsList | Op::CollaboratorAdd | Op::CollaboratorRemove => {
                &PERSONAL_REPOSITORIES
            }
            Op::NamespaceRepositories
            | Op::RepositoryCreate
            | Op::NamespaceGet
            | Op::NamespacePatch => &NAMESPACES,
            Op::OrgGroups
            | Op::OrgGroupCreate
            | Op::OrgMemberAdd
            | Op::OrgMemberRemove
            | Op::OrgTokens
            | Op::OrgTokenCreate
            | Op::OrgTokenRevoke => &["acme"],
            Op::Users
            | Op::OrgCreate
            | Op::OtherUser
            | Op::OwnUser
            | Op::OwnTokens
            | Op::AlicesTokens
            | Op::TokenCreate
            | Op::TokenRevoke
            | Op::TokenShow
            | Op::TokenDeactivate
            | Op::TwoFactorBegin
            | Op::PasswordChange
            | Op::AuditLogs => &[""],
        }
    }

    /// For endpoints about one repository: the access to it they need.
    fn needs(self) -> Option<Level> {
        match self {
            Op::RepositoryGet => Some(Level::Read),
            Op::RepositoryPatch
            | Op::RepositoryDelete
            | Op::DescriptionPatch
            | Op::GroupsList
            | Op::GroupGrant
            | Op::GroupRevoke
            | Op::CollaboratorsList
            | Op::CollaboratorAdd
            | Op::CollaboratorRemove => Some(Level::Admin),
            _ => None,
        }
    }

    /// For the other endpoints: who they let in.
    fn gate(self, target: &'static str, caller: &Caller) -> Gate {
        match self {
            Op::NamespaceRepositories => Gate::Anyone,
            Op::NamespaceGet | Op::NamespacePatch => Gate::NamespaceOwner(target),
            Op::OrgGroups => Gate::OrgMember,
            Op::OrgGroupCreate | Op::OrgMemberAdd | Op::OrgMemberRemove => Gate::OrgOwner,
            Op::OrgTokens | Op::OrgTokenCreate | Op::OrgTokenRevoke => Gate::OrgTokenManager,
            Op::OrgCreate => Gate::FullAuthority,
            Op::Users | Op::AuditLogs => Gate::SiteAdmin,
            Op::OtherUser => Gate::UserOrSiteAdmin(SAM),
            Op::OwnUser => Gate::UserOrSiteAdmin(caller.own()),
            Op::OwnTokens => Gate::CredentialsOf(caller.own()),
            Op::AlicesTokens => Gate::CredentialsOf("alice"),
            Op::TokenCreate | Op::TokenRevoke | Op::TokenShow | Op::TokenDeactivate => {
                Gate::PasswordUser
            }
            Op::TwoFactorBegin => Gate::OwnCredentials(caller.own()),
            Op::PasswordChange => Gate::CredentialsOf(caller.own()),
            repository => unreachable!("{repository:?} is about one repository"),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::RepositoryGet => "GET /repositories/{name}",
            Op::RepositoryPatch => "PATCH /repositories/{name} (visibility)",
            Op::RepositoryDelete => "DELETE /repositories/{name} (one like it)",
            Op::GroupsList => "GET /repositories/{name}/-/groups",
            Op::GroupGrant => "POST /repositories/{name}/-/groups",
            Op::GroupRevoke => "DELETE /repositories/{name}/-/groups/spare",
            Op::CollaboratorsList => "GET /repositories/{name}/-/collaborators",
            Op::CollaboratorAdd => "POST /repositories/{name}/-/collaborators",
            Op::CollaboratorRemove => "DELETE /repositories/{name}/-/collaborators/sam",
            Op::Star => "PUT /repositories/{name}/-/star",
            Op::Unstar => "DELETE /repositories/{name}/-/star",
            Op::DescriptionPatch => "PATCH /repositories/{name} (description and README)",
            Op::NamespaceRepositories => "GET /namespaces/{ns}/repositories",
            Op::RepositoryCreate => "POST /repositories (in {ns})",
            Op::NamespaceGet => "GET /namespaces/{ns}",
            Op::NamespacePatch => "PATCH /namespaces/{ns} (default visibility)",
            Op::OrgGroups => "GET /orgs/{org}/groups",
            Op::OrgGroupCreate => "POST /orgs/{org}/groups",
            Op::OrgMemberAdd => "POST /orgs/{org}/groups/spare/members",
            Op::OrgMemberRemove => "DELETE /orgs/{org}/groups/spare/members/sam",
            Op::OrgTokens => "GET /orgs/{org}/access-tokens",
            Op::OrgCreate => "POST /orgs",
            Op::OrgTokenCreate => "POST /orgs/{org}/access-tokens",
            Op::OrgTokenRevoke => "DELETE /orgs/{org}/access-tokens/{id}",
            Op::Users => "GET /users",
            Op::OtherUser => "GET /users/sam",
            Op::OwnUser => "GET /users/{own name}",
            Op::OwnTokens => "GET /access-tokens",
            Op::AlicesTokens => "GET /access-tokens?username=alice",
            Op::TokenCreate => "POST /access-tokens",
            Op::TokenRevoke => "DELETE /access-tokens/{id}",
            Op::TokenShow => "GET /access-tokens/{id}",
            Op::TokenDeactivate => "PATCH /access-tokens/{id} (is_active: false)",
            Op::TwoFactorBegin => "POST /users/{own name}/2fa",
            Op::PasswordChange => "PATCH /users/{own name} (password)",
            Op::AuditLogs => "GET /auditlogs",
        })
    }
}

/// What `caller` must get from `op` on `target` (a column's repository, a namespace or an
/// organization), addressing `name` (the target, or for deletes one made like it).
fn expected(caller: &Caller, op: Op, target: &'static str, name: &str) -> Expect {
    if caller.is_stale() {
        return Expect::Unauthorized;
    }
    if matches!(op, Op::Star | Op::Unstar) {
        // Stars are the account's: anonymous callers are asked to sign in, organizations
        // have none; then the repository must be readable, and a star is a write that a
        // read-only token (or one for other repositories) does not make.
        if caller.is_anonymous() {
            return Expect::Unauthorized;
        }
        if caller.account().is_none() {
            return Expect::Denied;
        }
        if caller.level(column_of(target), name) == Level::No {
            return Expect::Hidden;
        }
        let token_may = caller.token_may_write() && caller.covers(name);
        return match !caller.is_token() || token_may {
            true => Expect::Allowed,
            false => Expect::Denied,
        };
    }
    if op == Op::RepositoryCreate {
        // Admin on a repository of the namespace that does not exist yet: its owners and
        // site admins, and tokens of theirs that are admin-scoped and not limited elsewhere.
        let admin = match caller.who() {
            Some(Who::User(name)) => name == "admin" || namespace_owners(target).contains(&name),
            Some(Who::Token(Pat::Admin)) => target == "alice",
            Some(Who::Token(Pat::Acme)) => target == "acme",
            _ => false,
        };
        return match admin {
            true => Expect::Allowed,
            false if caller.is_anonymous() => Expect::Unauthorized,
            false => Expect::Denied,
        };
    }
    if let Some(needed) = op.needs() {
        let column = column_of(target);
        return match caller.level(column, name) {
            level if level >= needed => Expect::Allowed,
            Level::No => Expect::Hidden,
            _ if caller.is_anonymous() => Expect::Unauthorized,
            _ => Expect::Denied,
        };
    }
    let gate = op.gate(target, caller);
    if matches!(gate, Gate::Anyone) {
        return Expect::Allowed;
    }
    if caller.is_anonymous() {
        return Expect::Unauthorized;
    }
    // Organizations (their tokens) manage nothing of this.
    let Some(account) = caller.account() else {
        return Expect::Denied;
    };
    let site_admin = caller.is_site_admin();
    let full = caller.has_full_authority();
    let allowed = match gate {
        Gate::Anyone => true,
        Gate::SiteAdmin => site_admin,
        Gate::UserOrSiteAdmin(user) => account == user || site_admin,
        Gate::PasswordUser => !caller.is_token(),
        Gate::CredentialsOf(user) => !caller.is_token() && (account == user || site_admin),
        Gate::OwnCredentials(user) => !caller.is_token() && account == user,
        Gate::OrgMember => site_admin || ACME_MEMBERS.contains(&account),
        Gate::OrgOwner => full && (site_admin || namespace_owners("acme").contains(&account)),
        Gate::FullAuthority => full,
        Gate::OrgTokenManager => {
            !caller.is_token() && (site_admin || namespace_owners("acme").contains(&account))
        }
        Gate::NamespaceOwner(namespace) => {
            full && (site_admin || namespace_owners(namespace).contains(&account))
        }
    };
    match allowed {
        true => Expect::Allowed,
        false => Expect::Denied,
    }
}

fn column_of(name: &str) -> usize {
    REPOSITORIES
        .iter()
        .position(|r| *r == name)
        .unwrap_or_else(|| panic!("{name} is no column"))
}

/// What a cell set up before its request.
#[derive(Default)]
struct Prepared {
    /// What the request addresses: the target, or the repository made to be deleted.
    name: String,
    /// A repository that does not exist, for the same request when the target is private.
    twin: Option<String>,
    /// The team the cell creates.
    team: String,
    /// How many personal tokens the caller's account had.
    tokens_before: usize,
    /// The token the cell revokes or shows.
    token_id: i64,
    /// The repository's short description and README before the cell.
    descriptions: (String, String),
    /// The caller's password hash and `sessions_valid_from` before the cell.
    password: (String, i64),
}

async fn repo_id(world: &World, name: &str) -> i64 {
    world.server.repo_id(name).await
}

async fn user_id(world: &World, name: &str) -> i64 {
    world
        .server
        .meta
        .user_by_name(name)
        .await
        .expect("user")
        .unwrap_or_else(|| panic!("no user {name}"))
        .id
}

async fn prepare(
    world: &World,
    extras: &Extras,
    caller: &Caller,
    op: Op,
    target: &'static str,
) -> Prepared {
    let meta = &world.server.meta;
    let mut prepared = Prepared {
        name: target.to_owned(),
        twin: is_private(target).then(|| missing_twin(target).to_owned()),
        ..Prepared::default()
    };
    match op {
        Op::RepositoryDelete => {
            // A repository like the column's: same namespace, visibility, teams and
            // collaborators; its missing twin has a name of the same length.
            let namespace = target.split('/').next().expect("namespace");
            let name = format!("{namespace}/doomed-{:05}", unique());
            let record = meta
                .create_repository(&repo(&name), Some(is_private(target)), now_unix(), None)
                .await
                .expect("repository");
            for (team, permission) in team_grants(target) {
                meta.grant_team(extras.teams[team], record.id, *permission, None)
                    .await
                    .expect("grant");
            }
            for (user, permission) in collaborators(target) {
                meta.set_collaborator(record.id, world.users[user], *permission, None)
                    .await
                    .expect("collaborator");
            }
            prepared.twin = is_private(target).then(|| name.replace("doomed", "absent"));
            prepared.name = name;
        }
        Op::GroupRevoke => {
            let id = repo_id(world, target).await;
            meta.grant_team(extras.teams[SPARE], id, Permission::Read, None)
                .await
                .expect("grant");
        }
        Op::CollaboratorRemove => {
            let id = repo_id(world, target).await;
            meta.set_collaborator(id, extras.sam, Permission::Read, None)
                .await
                .expect("collaborator");
        }
        Op::OrgGroupCreate => prepared.team = format!("new-{}", unique()),
        Op::OrgMemberRemove => {
            meta.add_team_member(extras.teams[SPARE], extras.sam, None)
                .await
                .expect("member");
        }
        Op::OwnUser | Op::TwoFactorBegin => prepared.name = caller.own().to_owned(),
        Op::PasswordChange => {
            prepared.name = caller.own().to_owned();
            if let Some(account) = caller.account() {
                let user = meta.user_by_name(account).await.expect("user");
                let user = user.expect("exists");
                prepared.password = (user.password_hash, user.sessions_valid_from);
            }
        }
        Op::RepositoryCreate => prepared.name = format!("{target}/made-{:05}", unique()),
        Op::OrgCreate => prepared.name = format!("made{:05}", unique()),
        Op::TokenRevoke | Op::TokenShow | Op::TokenDeactivate => {
            // The caller's own; anonymous callers and organizations have none: alice's.
            let owner = user_id(world, caller.account().unwrap_or("alice")).await;
            let (id, _) = world
                .server
                .token(owner, None, "repo:read", &[], None)
                .await;
            prepared.token_id = id;
        }
        Op::TokenCreate => {
            if let Some(account) = caller.account() {
                let id = user_id(world, account).await;
                prepared.tokens_before = meta.tokens_of_user(id).await.expect("tokens").len();
            }
        }
        Op::OrgTokenCreate => {
            let tokens = meta.tokens_of_org(extras.acme).await.expect("tokens");
            prepared.tokens_before = tokens.len();
        }
        Op::OrgTokenRevoke => {
            let olivia = world.users["olivia"];
            let (id, _) = world
                .server
                .token(olivia, Some(extras.acme), "repo:read", &[], None)
                .await;
            prepared.token_id = id;
        }
        Op::Unstar => {
            if let Some(account) = caller.account() {
                let id = user_id(world, account).await;
                meta.star(id, &repo(target), now_unix())
                    .await
                    .expect("star");
            }
        }
        Op::DescriptionPatch => {
            let info = meta.repository_info(&repo(target)).await.expect("info");
            let info = info.expect("exists");
            prepared.descriptions = (info.description, info.full_description);
        }
        _ => {}
    }
    prepared
}

/// The request of a cell about `name` (the prepared one or its twin): method, path, body.
fn request(
    op: Op,
    target: &str,
    name: &str,
    prepared: &Prepared,
) -> (Method, String, Option<Value>) {
    let repository = format!("/api/v1/repositories/{name}");
    let namespace = format!("/api/v1/namespaces/{name}");
    let org = format!("/api/v1/orgs/{name}");
    match op {
        Op::RepositoryGet => (Method::GET, repository, None),
        Op::RepositoryPatch => (
            Method::PATCH,
            repository,
            Some(json!({ "is_private": !is_private(target) })),
        ),
        Op::RepositoryDelete => (Method::DELETE, repository, None),
        Op::GroupsList => (Method::GET, format!("{repository}/-/groups"), None),
        Op::GroupGrant => (
            Method::POST,
            format!("{repository}/-/groups"),
            Some(json!({ "group_name": SPARE, "permission": "read" })),
        ),
        Op::GroupRevoke => (
            Method::DELETE,
            format!("{repository}/-/groups/{SPARE}"),
            None,
        ),
        Op::CollaboratorsList => (Method::GET, format!("{repository}/-/collaborators"), None),
        Op::CollaboratorAdd => (
            Method::POST,
            format!("{repository}/-/collaborators"),
            Some(json!({ "user": SAM, "permission": "read" })),
        ),
        Op::CollaboratorRemove => (
            Method::DELETE,
            format!("{repository}/-/collaborators/{SAM}"),
            None,
        ),
        Op::Star => (Method::PUT, format!("{repository}/-/star"), None),
        Op::Unstar => (Method::DELETE, format!("{repository}/-/star"), None),
        Op::DescriptionPatch => (
            Method::PATCH,
            repository,
            Some(json!({ "description": DESCRIPTION, "full_description": README })),
        ),
        Op::NamespaceRepositories => (
            Method::GET,
            format!("{namespace}/repositories?page_size=100"),
            None,
        ),
        Op::RepositoryCreate => {
            let (namespace, short) = name.split_once('/').expect("a full name");
            (
                Method::POST,
                "/api/v1/repositories".into(),
                Some(json!({ "namespace": namespace, "name": short })),
            )
        }
        Op::NamespaceGet => (Method::GET, namespace, None),
        Op::NamespacePatch => (
            Method::PATCH,
            namespace,
            Some(json!({ "default_private": !default_private(name) })),
        ),
        Op::OrgGroups => (Method::GET, format!("{org}/groups?page_size=100"), None),
        Op::OrgGroupCreate => (
            Method::POST,
            format!("{org}/groups"),
            Some(json!({ "name": prepared.team })),
        ),
        Op::OrgMemberAdd => (
            Method::POST,
            format!("{org}/groups/{SPARE}/members"),
            Some(json!({ "member": SAM })),
        ),
        Op::OrgMemberRemove => (
            Method::DELETE,
            format!("{org}/groups/{SPARE}/members/{SAM}"),
            None,
        ),
        Op::OrgTokens => (Method::GET, format!("{org}/access-tokens"), None),
        Op::OrgCreate => (
            Method::POST,
            "/api/v1/orgs".into(),
            Some(json!({ "orgname": name })),
        ),
        Op::OrgTokenCreate => (
            Method::POST,
            format!("{org}/access-tokens"),
            Some(json!({ "token_label": "made by the matrix", "scopes": ["repo:read"] })),
        ),
        Op::OrgTokenRevoke => (
            Method::DELETE,
            format!("{org}/access-tokens/{}", prepared.token_id),
            None,
        ),
        Op::Users => (Method::GET, "/api/v1/users?page_size=100".into(), None),
        Op::OtherUser => (Method::GET, format!("/api/v1/users/{SAM}"), None),
        Op::OwnUser => (Method::GET, format!("/api/v1/users/{name}"), None),
        Op::OwnTokens => (Method::GET, "/api/v1/access-tokens".into(), None),
        Op::AlicesTokens => (
            Method::GET,
            "/api/v1/access-tokens?username=alice".into(),
            None,
        ),
        Op::TokenCreate => (
            Method::POST,
            "/api/v1/access-tokens".into(),
            Some(json!({ "token_label": "made by the matrix", "scopes": ["repo:read"] })),
        ),
        Op::TokenRevoke => (
            Method::DELETE,
            format!("/api/v1/access-tokens/{}", prepared.token_id),
            None,
        ),
        Op::TokenShow => (
            Method::GET,
            format!("/api/v1/access-tokens/{}", prepared.token_id),
            None,
        ),
        Op::TokenDeactivate => (
            Method::PATCH,
            format!("/api/v1/access-tokens/{}", prepared.token_id),
            Some(json!({ "is_active": false })),
        ),
        Op::TwoFactorBegin => (Method::POST, format!("/api/v1/users/{name}/2fa"), None),
        Op::PasswordChange => (
            Method::PATCH,
            format!("/api/v1/users/{name}"),
            Some(json!({ "password": PASSWORD })),
        ),
        Op::AuditLogs => (
            Method::GET,
            "/api/v1/auditlogs?account=alice&limit=1000".into(),
            None,
        ),
    }
}

async fn send(
    world: &World,
    http: &Client,
    creds: &Creds,
    (method, path, body): (Method, String, Option<Value>),
) -> Snapshot {
    let mut request = creds.apply(http.request(method, world.server.url(&path)));
    if let Some(body) = body {
        request = request.json(&body);
    }
    Snapshot::of(request.send().await.expect("request failed")).await
}

fn status(answer: &Snapshot, want: u16) -> Result<(), String> {
    match answer.status == want {
        true => Ok(()),
        false => Err(format!(
            "expected {want}, got {} {}",
            answer.status, answer.body
        )),
    }
}

/// A page's results.
fn results(answer: &Snapshot) -> Result<Vec<Value>, String> {
    let body = answer.json();
    let results = body["results"]
        .as_array()
        .cloned()
        .ok_or_else(|| format!("not a page: {}", answer.body))?;
    if body["count"].as_u64() != Some(results.len() as u64) {
        return Err(format!("count does not match the results: {}", answer.body));
    }
    Ok(results)
}

/// The `field` of every result as text, sorted (numbers as written).
fn field_of(results: &[Value], field: &str) -> Vec<String> {
    let mut values: Vec<String> = results
        .iter()
        .map(|r| match &r[field] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    values.sort();
    values
}

/// `(a, b)` of every result, sorted.
fn pairs_of(results: &[Value], a: &str, b: &str) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = results
        .iter()
        .map(|r| {
            let text = |v: &Value| v.as_str().map(str::to_owned).unwrap_or(v.to_string());
            (text(&r[a]), text(&r[b]))
        })
        .collect();
    pairs.sort();
    pairs
}

fn expected_pairs(grants: &[(&str, Permission)]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = grants
        .iter()
        .map(|(name, permission)| (name.to_string(), permission.as_str().to_owned()))
        .collect();
    pairs.sort();
    pairs
}

fn same<T: PartialEq + fmt::Debug>(what: &str, got: T, want: T) -> Result<(), String> {
    match got == want {
        true => Ok(()),
        false => Err(format!("{what}: got {got:?}, expected {want:?}")),
    }
}

/// The ids of alice's personal tokens in the world.
fn alices_token_ids(world: &World) -> Vec<String> {
    let mut ids: Vec<String> = [
        Pat::PublicRead,
        Pat::Read,
        Pat::Write,
        Pat::Admin,
        Pat::LimitedToHidden,
        Pat::PublicReadLimitedToPublic,
        Pat::ReadLimitedToPublic,
        Pat::WriteLimitedToPublic,
    ]
    .iter()
    .map(|pat| world.pats[pat].0.to_string())
    .collect();
    ids.sort();
    ids
}

/// A list of tokens never shows their secrets.
fn no_secrets(results: &[Value]) -> Result<(), String> {
    match results.iter().any(|r| r.get("token").is_some()) {
        true => Err(format!("a listed token shows its secret: {results:?}")),
        false => Ok(()),
    }
}

/// Checks an allowed cell's answer.
fn check_allowed(
    world: &World,
    caller: &Caller,
    op: Op,
    target: &str,
    prepared: &Prepared,
    answer: &Snapshot,
) -> Result<(), String> {
    let body = answer.json();
    match op {
        Op::RepositoryGet | Op::RepositoryPatch => {
            status(answer, 200)?;
            same("full_name", body["full_name"].as_str(), Some(target))?;
            let private = is_private(target) != (op == Op::RepositoryPatch);
            same("is_private", body["is_private"].as_bool(), Some(private))?;
            if op == Op::RepositoryGet {
                // What the caller may do, as the repository's page shows it.
                let level = caller.level(column_of(target), target);
                let permissions = json!({
                    "read": level >= Level::Read,
                    "write": level >= Level::Write,
                    "admin": level >= Level::Admin,
                });
                same("permissions", &body["permissions"], &permissions)?;
            }
        }
        Op::RepositoryDelete
        | Op::GroupRevoke
        | Op::CollaboratorRemove
        | Op::OrgMemberRemove
        | Op::OrgTokenRevoke
        | Op::Star
        | Op::Unstar
        | Op::TokenRevoke => status(answer, 204)?,
        Op::DescriptionPatch => {
            status(answer, 200)?;
            same(
                "description",
                body["description"].as_str(),
                Some(DESCRIPTION),
            )?;
            same(
                "full_description",
                body["full_description"].as_str(),
                Some(README),
            )?;
        }
        Op::TokenShow | Op::TokenDeactivate => {
            status(answer, 200)?;
            same("id", body["id"].as_i64(), Some(prepared.token_id))?;
            let active = op == Op::TokenShow;
            same("is_active", body["is_active"].as_bool(), Some(active))?;
            if body.get("token").is_some() {
                return Err(format!("a token shows its secret again: {}", answer.body));
            }
        }
        Op::TwoFactorBegin => {
            status(answer, 200)?;
            let url = body["otpauth_url"].as_str().unwrap_or_default();
            if !url.starts_with("otpauth://totp/") || body["secret"].as_str().is_none() {
                return Err(format!("not a two-factor setup: {}", answer.body));
            }
        }
        Op::GroupsList => {
            status(answer, 200)?;
            let results = results(answer)?;
            same(
                "groups",
                pairs_of(&results, "group_name", "permission"),
                expected_pairs(team_grants(target)),
            )?;
        }
        Op::GroupGrant => {
            status(answer, 201)?;
            same(
                "group",
                &body,
                &json!({"group_name": SPARE, "permission": "read"}),
            )?;
        }
        Op::CollaboratorsList => {
            status(answer, 200)?;
            let results = results(answer)?;
            same(
                "collaborators",
                pairs_of(&results, "user", "permission"),
                expected_pairs(collaborators(target)),
            )?;
        }
        Op::CollaboratorAdd => {
            status(answer, 201)?;
            same(
                "collaborator",
                &body,
                &json!({"user": SAM, "permission": "read"}),
            )?;
        }
        Op::NamespaceRepositories => {
            status(answer, 200)?;
            let results = results(answer)?;
            same(
                "repositories",
                field_of(&results, "full_name"),
                caller.listed_in(target),
            )?;
        }
        Op::NamespaceGet | Op::NamespacePatch => {
            status(answer, 200)?;
            let private = default_private(target) != (op == Op::NamespacePatch);
            same("name", body["name"].as_str(), Some(target))?;
            same("kind", body["kind"].as_str(), Some(namespace_kind(target)))?;
            same(
                "default_private",
                body["default_private"].as_bool(),
                Some(private),
            )?;
        }
        Op::OrgGroups => {
            status(answer, 200)?;
            let results = results(answer)?;
            let groups = pairs_of(&results, "name", "member_count");
            let want = [
                ("admins", "1"),
                ("owners", "1"),
                ("readers", "1"),
                ("spare", "0"),
                ("writers", "1"),
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()));
            same("groups", groups, want.to_vec())?;
        }
        Op::RepositoryCreate => {
            status(answer, 201)?;
            same(
                "full_name",
                body["full_name"].as_str(),
                Some(prepared.name.as_str()),
            )?;
        }
        Op::OrgCreate => {
            status(answer, 201)?;
            same(
                "orgname",
                body["orgname"].as_str(),
                Some(prepared.name.as_str()),
            )?;
        }
        Op::OrgGroupCreate => {
            status(answer, 201)?;
            same("name", body["name"].as_str(), Some(prepared.team.as_str()))?;
            same("member_count", body["member_count"].as_u64(), Some(0))?;
        }
        Op::OrgMemberAdd => {
            status(answer, 201)?;
            same("username", body["username"].as_str(), Some(SAM))?;
        }
        Op::OrgTokens => {
            status(answer, 200)?;
            let results = results(answer)?;
            no_secrets(&results)?;
            let acme = world.pats[&Pat::Acme].0.to_string();
            same("token ids", field_of(&results, "id"), vec![acme])?;
        }
        Op::Users => {
            status(answer, 200)?;
            let results = results(answer)?;
            let listed = field_of(&results, "username");
            for name in world.users.keys().copied().chain([SAM]) {
                if !listed.iter().any(|n| n == name) {
                    return Err(format!("{name} is not listed: {listed:?}"));
                }
            }
            let mut admins: Vec<String> = results
                .iter()
                .filter(|u| u["is_admin"] == true)
                .map(|u| u["username"].as_str().unwrap_or_default().to_owned())
                .collect();
            admins.sort();
            same(
                "site admins",
                admins,
                vec!["admin".into(), STALE_ADMIN.into()],
            )?;
        }
        Op::OtherUser | Op::OwnUser | Op::PasswordChange => {
            status(answer, 200)?;
            let name = match op {
                Op::OtherUser => SAM,
                _ => prepared.name.as_str(),
            };
            same("username", body["username"].as_str(), Some(name))?;
            let is_admin = caller.is_site_admin() && op != Op::OtherUser;
            same("is_admin", body["is_admin"].as_bool(), Some(is_admin))?;
            same("type", body["type"].as_str(), Some("User"))?;
        }
        Op::OwnTokens | Op::AlicesTokens => {
            status(answer, 200)?;
            let results = results(answer)?;
            no_secrets(&results)?;
            let alices = op == Op::AlicesTokens || caller.account() == Some("alice");
            let want = if alices {
                alices_token_ids(world)
            } else {
                Vec::new()
            };
            same("token ids", field_of(&results, "id"), want)?;
        }
        Op::TokenCreate | Op::OrgTokenCreate => {
            status(answer, 201)?;
            let secret = body["token"].as_str().unwrap_or_default();
            if !secret.starts_with(TOKEN_PREFIX) {
                return Err(format!("no token secret in {}", answer.body));
            }
            same("scopes", &body["scopes"], &json!(["repo:read"]))?;
            same("is_active", body["is_active"].as_bool(), Some(true))?;
        }
        Op::AuditLogs => {
            status(answer, 200)?;
            // The visibility changes alice made earlier in the matrix are on record.
            let recorded = body["logs"].as_array().is_some_and(|logs| {
                logs.iter().any(|entry| {
                    entry["action"] == "repository.visibility"
                        && entry["name"] == ALICE_PUBLIC
                        && entry["account"] == "alice"
                })
            });
            if !recorded {
                return Err(format!(
                    "alice's visibility change is not listed: {}",
                    answer.body
                ));
            }
        }
    }
    Ok(())
}

/// Checks a refusal: status, code, and the challenge exactly when asking for credentials.
fn check_refused(world: &World, expect: Expect, answer: &Snapshot) -> Result<(), String> {
    let (want, code) = match expect {
        Expect::Unauthorized => (401, "UNAUTHORIZED"),
        Expect::Denied => (403, "DENIED"),
        Expect::Hidden => (404, "NAME_UNKNOWN"),
        Expect::Allowed => unreachable!("not a refusal"),
    };
    if answer.status != want || answer.error_code().as_deref() != Some(code) {
        return Err(format!(
            "expected {want} {code}, got {} {}",
            answer.status, answer.body
        ));
    }
    let challenge = format!(
        "Bearer realm=\"{}\"",
        world.server.url("/api/v1/users/login")
    );
    let want_challenge = (expect == Expect::Unauthorized).then_some(challenge.as_str());
    same(
        "WWW-Authenticate",
        answer.header("www-authenticate"),
        want_challenge,
    )
}

/// Whether the change the cell asked for is in place (None: the cell changes nothing).
async fn observe(
    world: &World,
    extras: &Extras,
    caller: &Caller,
    op: Op,
    target: &str,
    prepared: &Prepared,
) -> Option<bool> {
    let meta = &world.server.meta;
    let spare = extras.teams[SPARE];
    Some(match op {
        Op::RepositoryPatch => {
            let record = meta.repository(&repo(target)).await.expect("repository");
            record.expect("exists").is_private != is_private(target)
        }
        Op::RepositoryDelete => {
            let record = meta.repository(&repo(&prepared.name)).await;
            record.expect("repository").is_none()
        }
        Op::GroupGrant | Op::GroupRevoke => {
            let id = repo_id(world, target).await;
            let grants = meta.team_grants(id).await.expect("grants");
            let granted = grants.contains(&(SPARE.to_owned(), Permission::Read));
            granted == (op == Op::GroupGrant)
        }
        Op::CollaboratorAdd | Op::CollaboratorRemove => {
            let id = repo_id(world, target).await;
            let listed = meta.collaborators(id).await.expect("collaborators");
            let there = listed.contains(&(SAM.to_owned(), Permission::Read));
            there == (op == Op::CollaboratorAdd)
        }
        Op::NamespacePatch => {
            let record = meta.namespace(target).await.expect("namespace");
            record.expect("exists").default_private != default_private(target)
        }
        Op::OrgGroupCreate => {
            let team = meta.team(extras.acme, &prepared.team).await;
            team.expect("team").is_some()
        }
        Op::OrgMemberAdd | Op::OrgMemberRemove => {
            let members = meta.team_members(spare).await.expect("members");
            members.iter().any(|m| m == SAM) == (op == Op::OrgMemberAdd)
        }
        Op::TokenCreate => {
            let account = caller.account()?;
            let id = user_id(world, account).await;
            let tokens = meta.tokens_of_user(id).await.expect("tokens");
            tokens.len() > prepared.tokens_before
        }
        Op::TokenRevoke | Op::TokenDeactivate | Op::OrgTokenRevoke => {
            let token = meta.token_by_id(prepared.token_id).await.expect("token");
            token.expect("exists").revoked_at.is_some()
        }
        Op::OrgTokenCreate => {
            let tokens = meta.tokens_of_org(extras.acme).await.expect("tokens");
            tokens.len() > prepared.tokens_before
        }
        Op::RepositoryCreate => {
            let record = meta.repository(&repo(&prepared.name)).await;
            record.expect("repository").is_some()
        }
        Op::OrgCreate => {
            let org = meta.org_by_name(&prepared.name).await;
            org.expect("organization").is_some()
        }
        Op::Star | Op::Unstar => {
            let id = user_id(world, caller.account()?).await;
            let starred = meta.has_starred(id, &repo(target)).await.expect("star");
            starred == (op == Op::Star)
        }
        Op::DescriptionPatch => {
            let info = meta.repository_info(&repo(target)).await.expect("info");
            let info = info.expect("exists");
            (info.description.as_str(), info.full_description.as_str()) == (DESCRIPTION, README)
        }
        Op::TwoFactorBegin => {
            let account = caller.account()?;
            let user = meta.user_by_name(account).await.expect("user");
            user.expect("exists").totp_secret.is_some()
        }
        Op::PasswordChange => {
            let account = caller.account()?;
            let user = meta.user_by_name(account).await.expect("user");
            user.expect("exists").password_hash != prepared.password.0
        }
        _ => return None,
    })
}

/// Puts back what the cell set up or changed.
async fn restore(
    world: &World,
    extras: &Extras,
    caller: &Caller,
    op: Op,
    target: &str,
    prepared: &Prepared,
) {
    let meta = &world.server.meta;
    let spare = extras.teams[SPARE];
    match op {
        Op::RepositoryPatch => {
            meta.set_repository_private(&repo(target), is_private(target), None)
                .await
                .expect("visibility");
        }
        Op::RepositoryDelete | Op::RepositoryCreate => {
            meta.delete_repository(&repo(&prepared.name), None)
                .await
                .expect("delete");
        }
        Op::GroupGrant | Op::GroupRevoke => {
            let id = repo_id(world, target).await;
            meta.revoke_team(spare, id, None).await.expect("revoke");
        }
        Op::CollaboratorAdd | Op::CollaboratorRemove => {
            let id = repo_id(world, target).await;
            meta.remove_collaborator(id, extras.sam, None)
                .await
                .expect("collaborator");
        }
        Op::NamespacePatch => {
            meta.set_default_private(target, default_private(target))
                .await
                .expect("default visibility");
        }
        Op::OrgGroupCreate => {
            if let Some(team) = meta.team(extras.acme, &prepared.team).await.expect("team") {
                meta.delete_team(team.id, None).await.expect("delete team");
            }
        }
        Op::OrgMemberAdd | Op::OrgMemberRemove => {
            meta.remove_team_member(spare, extras.sam, None)
                .await
                .expect("member");
        }
        Op::Star | Op::Unstar => {
            if let Some(account) = caller.account() {
                let id = user_id(world, account).await;
                meta.unstar(id, &repo(target)).await.expect("unstar");
            }
        }
        Op::DescriptionPatch => {
            let (description, readme) = &prepared.descriptions;
            meta.set_descriptions(&repo(target), Some(description), Some(readme))
                .await
                .expect("descriptions");
        }
        Op::TwoFactorBegin => {
            if let Some(account) = caller.account() {
                meta.set_totp(account, None, false)
                    .await
                    .expect("two-factor");
            }
        }
        Op::PasswordChange => {
            // The old hash back: the caller's password signs in again.
            if let Some(account) = caller.account() {
                let (hash, valid_from) = &prepared.password;
                meta.set_password_hash(account, hash, *valid_from)
                    .await
                    .expect("password");
            }
        }
        _ => {}
    }
}

/// Runs one cell: its answer, what it changed, and for a private repository the caller
/// cannot read, the same request about a missing one.
async fn run_cell(
    world: &World,
    extras: &Extras,
    caller: &Caller,
    op: Op,
    target: &'static str,
) -> Result<(), String> {
    // Stale credentials count as failed sign-ins against the client address: each cell
    // comes from an address of its own, so the answers stay refusals and not 429s.
    let http = match caller.is_stale() {
        true => client(Some(fresh_loopback())),
        false => world.server.client.clone(),
    };
    let prepared = prepare(world, extras, caller, op, target).await;
    let expect = expected(caller, op, target, &prepared.name);
    let answer = send(
        world,
        &http,
        &caller.creds,
        request(op, target, &prepared.name, &prepared),
    )
    .await;
    let changed = observe(world, extras, caller, op, target, &prepared).await;
    restore(world, extras, caller, op, target, &prepared).await;

    let outcome = match expect {
        Expect::Allowed => check_allowed(world, caller, op, target, &prepared, &answer),
        refusal => check_refused(world, refusal, &answer),
    };
    outcome.map_err(|e| format!("(expected {expect:?}) {e}"))?;
    same(
        "Cache-Control",
        answer.header("cache-control"),
        Some("no-store"),
    )?;
    if let Some(changed) = changed {
        if changed != (expect == Expect::Allowed) {
            return Err(format!(
                "answered {} but the change {} made",
                answer.status,
                if changed { "was" } else { "was not" }
            ));
        }
    }

    let cannot_read = caller.is_stale() || expect == Expect::Hidden;
    if let Some(twin) = prepared.twin.as_deref().filter(|_| cannot_read) {
        let missing = send(
            world,
            &http,
            &caller.creds,
            request(op, target, twin, &prepared),
        )
        .await;
        let missing = missing.renamed(twin, &prepared.name);
        let real = answer.renamed(twin, &prepared.name);
        if real != missing {
            return Err(format!(
                "LEAK: {} answers differently from the missing {twin}:\n  private: {real:?}\n  missing: {missing:?}",
                prepared.name
            ));
        }
    }
    Ok(())
}

/// Every cell of every caller, endpoint by endpoint; returns (cells, failures).
async fn run_matrix(world: &World, extras: &Extras, callers: &[Caller]) -> (usize, Vec<String>) {
    let mut cells = 0;
    let mut failures = Vec::new();
    for op in OPS {
        for &target in op.targets() {
            for caller in callers {
                cells += 1;
                if let Err(e) = run_cell(world, extras, caller, op, target).await {
                    failures.push(format!("{} × {op} {target}: {e}", caller.label));
                }
            }
        }
    }
    (cells, failures)
}

fn cells_per_caller() -> usize {
    OPS.iter().map(|op| op.targets().len()).sum()
}

fn report(cells: usize, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} of {cells} cells failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The registry matrix's rows and the API matrix's limited tokens, to be referred to by
/// every cell.
fn rows() -> impl Iterator<Item = &'static Row> {
    ROWS.iter().chain(LIMITED_ROWS.iter())
}

/// Every caller of the registry matrix and every scope of token limited to one repository,
/// with its password or token as Basic credentials, and a site admin's expired and revoked
/// tokens (refused everywhere, alike on private and missing repositories).
#[tokio::test]
async fn every_caller_of_the_api_with_basic_credentials_gets_exactly_its_access() {
    let world = World::build().await;
    let extras = Extras::build(&world).await;
    let mut callers: Vec<Caller> = rows()
        .map(|row| Caller {
            label: row.label.to_owned(),
            subject: Subject::Row(row),
            creds: creds_of(&world, row.who),
        })
        .collect();
    for (label, creds) in [
        ("site admin's expired token", &extras.expired),
        ("site admin's revoked token", &extras.revoked),
    ] {
        callers.push(Caller {
            label: label.to_owned(),
            subject: Subject::Stale,
            creds: creds.clone(),
        });
    }
    let (cells, failures) = run_matrix(&world, &extras, &callers).await;
    assert_eq!(
        cells,
        (ROWS.len() + LIMITED_ROWS.len() + 2) * cells_per_caller()
    );
    println!("{cells} cells");
    report(cells, &failures);
}

/// Signing in to the API (`POST /api/v1/users/login`) gives a bearer token worth exactly
/// what signed in: a password's account, or an access token with its scope and limits.
#[tokio::test]
async fn api_sign_in_tokens_carry_exactly_the_access_of_what_signed_in() {
    let world = World::build().await;
    let extras = Extras::build(&world).await;
    let chosen = |who: Who| {
        matches!(
            who,
            Who::User("alice" | "admin" | "rita")
                | Who::Token(
                    Pat::Read | Pat::LimitedToHidden | Pat::ReadLimitedToPublic | Pat::Acme
                )
        )
    };
    let mut callers = Vec::new();
    for row in rows().filter(|row| chosen(row.who)) {
        let Creds::Basic(name, secret) = creds_of(&world, row.who) else {
            unreachable!("every chosen row signs in");
        };
        let resp = world
            .server
            .send(
                world
                    .server
                    .request(&Creds::Anonymous, Method::POST, "/api/v1/users/login")
                    .json(&json!({ "username": name, "password": secret })),
            )
            .await;
        let answer = Snapshot::of(resp).await;
        assert_eq!(
            answer.status, 200,
            "{} signs in: {}",
            row.label, answer.body
        );
        let token = answer.json()["token"]
            .as_str()
            .expect("an API token")
            .to_owned();
        callers.push(Caller {
            label: format!("{} (API sign-in)", row.label),
            subject: Subject::Row(row),
            creds: Creds::Bearer(token),
        });
    }
    assert_eq!(callers.len(), 7);
    let (cells, failures) = run_matrix(&world, &extras, &callers).await;
    assert_eq!(cells, callers.len() * cells_per_caller());
    println!("{cells} cells");
    report(cells, &failures);
}
