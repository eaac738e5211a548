//! The contract of the identity ports, run against every backend: SQLite, and a real
//! PostgreSQL (a private cluster from the test kit; skipped with a loud notice when
//! PostgreSQL is not installed, required under `CI=true`). Accounts and the shared name
//! space, organizations and teams, repository access, tokens, audit, signing keys. Where
//! two callers race, they are two stores ("nodes") on one database.

use berth_core::events::{AccessChangedData, EventKind};
use berth_core::ports::IdentityStore;
use berth_core::ports::{
    AccessFacts, Accounts, AuditEvent, AuditQuery, BlobLinks, EventLog, ManifestPlatform,
    Manifests, MetaError, NamespaceOwner, Namespaces, NewManifest, NewToken, NewUser,
    Organizations, Permission, Repositories, RepositoryAccess, Tags, UploadSession, UploadSessions,
    Viewer, AUDIT_FOLD_WINDOW_SECS, OWNERS_TEAM,
};
use berth_meta::SqliteMeta;
use berth_oci::{Digest, RepoName};
use std::path::Path;
use std::sync::Arc;

const NOW: i64 = 1_700_000_000;

/// Every port this suite uses, as one object.
trait Store:
    IdentityStore + BlobLinks + Manifests + Tags + UploadSessions + EventLog + Repositories
{
}
impl<T> Store for T where
    T: IdentityStore + BlobLinks + Manifests + Tags + UploadSessions + EventLog + Repositories
{
}

mod common;

type Backend = common::Backend<dyn Store>;

async fn backends(test: &str) -> Vec<Backend> {
    common::backends(
        test,
        |m| -> Arc<dyn Store> { Arc::new(m) },
        |m| -> Arc<dyn Store> { Arc::new(m) },
    )
    .await
}

fn repo(name: &str) -> RepoName {
    name.parse().unwrap()
}

async fn user(meta: &dyn Store, name: &str) -> i64 {
    meta.create_user(&NewUser {
        name: name.to_owned(),
        password_hash: format!("hash-of-{name}"),
        is_admin: false,
        now: NOW,
    })
    .await
    .unwrap()
}

/// Creates the repository the way a push does: by linking a blob into it.
async fn push(meta: &dyn Store, name: &str) -> i64 {
    let digest = Digest::sha256_of(name.as_bytes());
    meta.link_blob(&repo(name), &digest, 42, NOW).await.unwrap();
    meta.repository(&repo(name)).await.unwrap().unwrap().id
}

async fn is_private(meta: &dyn Store, name: &str) -> bool {
    meta.repository(&repo(name))
        .await
        .unwrap()
        .unwrap()
        .is_private
}

fn assert_conflict<T: std::fmt::Debug>(result: Result<T, MetaError>, what: &str) {
    match result {
        Err(MetaError::Conflict(name)) => assert_eq!(name, what),
        other => panic!("expected a conflict on {what}, got {other:?}"),
    }
}

#[tokio::test]
async fn users_and_organizations_share_one_name_space() {
    for backend in backends("users_and_organizations_share_one_name_space").await {
        eprintln!(
            "{}: users_and_organizations_share_one_name_space",
            backend.name
        );
        users_and_organizations_share_one_name_space_on(&backend).await;
    }
}

async fn users_and_organizations_share_one_name_space_on(backend: &Backend) {
    let meta: &dyn Store = &*backend.node;
    let alice = user(meta, "alice").await;
    let acme = meta.create_org("acme", alice, NOW).await.unwrap();

    let taken = |name: &str| NewUser {
        name: name.to_owned(),
        password_hash: "x".into(),
        is_admin: false,
        now: NOW,
    };
    assert_conflict(meta.create_user(&taken("alice")).await, "account alice");
    assert_conflict(meta.create_user(&taken("acme")).await, "account acme");
    assert_conflict(meta.create_user(&taken("library")).await, "account library");
    assert_conflict(meta.create_org("alice", alice, NOW).await, "account alice");
    assert_conflict(meta.create_org("acme", alice, NOW).await, "account acme");
    // A refused account leaves nothing behind.
    assert_eq!(meta.user_by_name("acme").await.unwrap(), None);
    assert_eq!(meta.user_by_name("library").await.unwrap(), None);
    assert_eq!(meta.org_by_name("alice").await.unwrap(), None);
    assert_eq!(meta.count_users().await.unwrap(), 1);

    let namespace = meta.namespace("alice").await.unwrap().unwrap();
    assert_eq!(namespace.owner, NamespaceOwner::User(alice));
    assert!(namespace.default_private);
    let namespace = meta.namespace("acme").await.unwrap().unwrap();
    assert_eq!(namespace.owner, NamespaceOwner::Organization(acme.id));
    assert!(namespace.default_private);
    let library = meta.org_by_name("library").await.unwrap().unwrap();
    let namespace = meta.namespace("library").await.unwrap().unwrap();
    assert_eq!(namespace.owner, NamespaceOwner::Organization(library.id));
    assert!(!namespace.default_private, "official images are public");
    assert_eq!(meta.namespace("ghost").await.unwrap(), None);

    assert!(meta.set_default_private("alice", false).await.unwrap());
    assert!(
        !meta
            .namespace("alice")
            .await
            .unwrap()
            .unwrap()
            .default_private
    );
    assert!(!meta.set_default_private("ghost", false).await.unwrap());
}

#[tokio::test]
async fn user_settings_change_only_existing_users() {
    for backend in backends("user_settings_change_only_existing_users").await {
        eprintln!("{}: user_settings_change_only_existing_users", backend.name);
        user_settings_change_only_existing_users_on(&backend).await;
    }
}

async fn user_settings_change_only_existing_users_on(backend: &Backend) {
    let meta: &dyn Store = &*backend.node;
    let bob = user(meta, "bob").await;
    let alice = user(meta, "alice").await;
    let names: Vec<_> = meta
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    assert_eq!(meta.count_users().await.unwrap(), 2);

    let stored = meta.user_by_id(alice).await.unwrap().unwrap();
    assert_eq!(stored.name, "alice");
    assert_eq!(stored.password_hash, "hash-of-alice");
    assert!(!stored.is_admin && !stored.totp_enabled && stored.totp_secret.is_none());
    assert_eq!(stored.sessions_valid_from, 0, "no password change yet");

    assert!(meta
        .set_password_hash("alice", "new", NOW + 5)
        .await
        .unwrap());
    assert!(meta.set_admin("alice", true).await.unwrap());
    assert!(meta
        .set_totp("alice", Some("JBSWY3DPEHPK3PXP"), false)
        .await
        .unwrap());
    let stored = meta.user_by_name("alice").await.unwrap().unwrap();
    assert_eq!(stored.password_hash, "new");
    assert_eq!(stored.sessions_valid_from, NOW + 5, "with the hash");
    assert!(stored.is_admin);
    assert_eq!(stored.totp_secret.as_deref(), Some("JBSWY3DPEHPK3PXP"));
    assert!(!stored.totp_enabled);
    assert!(meta
        .set_totp("alice", Some("JBSWY3DPEHPK3PXP"), true)
        .await
        .unwrap());
    assert!(meta.user_by_id(alice).await.unwrap().unwrap().totp_enabled);
    assert!(meta.set_totp("alice", None, false).await.unwrap());
    let stored = meta.user_by_id(alice).await.unwrap().unwrap();
    assert!(stored.totp_secret.is_none() && !stored.totp_enabled);
    assert!(!meta.user_by_id(bob).await.unwrap().unwrap().is_admin);

    assert!(!meta.set_password_hash("ghost", "x", NOW).await.unwrap());
    assert!(!meta.set_admin("ghost", true).await.unwrap());
    assert!(!meta.set_totp("ghost", None, false).await.unwrap());
    assert_eq!(meta.user_by_id(9999).await.unwrap(), None);
}

#[tokio::test]
async fn each_totp_step_is_claimed_once_and_a_new_secret_starts_over() {
    for backend in backends("each_totp_step_is_claimed_once_and_a_new_secret_starts_over").await {
        eprintln!(
            "{}: each_totp_step_is_claimed_once_and_a_new_secret_starts_over",
            backend.name
        );
        each_totp_step_is_claimed_once_and_a_new_secret_starts_over_on(&backend).await;
    }
}

async fn each_totp_step_is_claimed_once_and_a_new_secret_starts_over_on(backend: &Backend) {
    let meta: &dyn Store = &*backend.node;
    let alice = user(meta, "alice").await;
    let bob = user(meta, "bob").await;
    let step = NOW / 30;
    meta.set_totp("alice", Some("JBSWY3DPEHPK3PXP"), false)
        .await
        .unwrap();

    assert!(meta.claim_totp_step(alice, step).await.unwrap());
    assert!(!meta.claim_totp_step(alice, step).await.unwrap(), "used");
    assert!(
        !meta.claim_totp_step(alice, step - 1).await.unwrap(),
        "older than the last used"
    );
    assert!(meta.claim_totp_step(bob, step).await.unwrap(), "per user");
    assert!(!meta.claim_totp_step(9999, step).await.unwrap());

    // Confirming the same secret keeps what was used with it.
    meta.set_totp("alice", Some("JBSWY3DPEHPK3PXP"), true)
        .await
        .unwrap();
    assert!(!meta.claim_totp_step(alice, step).await.unwrap());
    assert!(meta.claim_totp_step(alice, step + 1).await.unwrap());
    // A different secret, or none, has no used codes.
    meta.set_totp("alice", Some("KRSXG5DSNFXGOIDB"), false)
        .await
        .unwrap();
    assert!(meta.claim_totp_step(alice, step).await.unwrap());
    meta.set_totp("alice", None, false).await.unwrap();
    assert!(meta.claim_totp_step(alice, step).await.unwrap());

    // Racing claims of one step: exactly one wins.
    meta.set_totp("bob", Some("JBSWY3DPEHPK3PXP"), true)
        .await
        .unwrap();
    let (first, second) = tokio::join!(
        meta.claim_totp_step(bob, step + 2),
        backend.other_node.claim_totp_step(bob, step + 2)
    );
    assert!(first.unwrap() ^ second.unwrap());
}

#[tokio::test]
async fn organizations_start_with_their_owner_and_manage_teams() {
    for backend in backends("organizations_start_with_their_owner_and_manage_teams").await {
        eprintln!(
            "{}: organizations_start_with_their_owner_and_manage_teams",
            backend.name
        );
        organizations_start_with_their_owner_and_manage_teams_on(&backend).await;
    }
}

async fn organizations_start_with_their_owner_and_manage_teams_on(backend: &Backend) {
    let meta: &dyn Store = &*backend.node;
    let alice = user(meta, "alice").await;
    let bob = user(meta, "bob").await;
    let acme = meta.create_org("acme", alice, NOW).await.unwrap();
    assert_eq!(acme.name, "acme");
    assert_eq!(meta.org_by_id(acme.id).await.unwrap(), Some(acme.clone()));
    let orgs: Vec<_> = meta
        .list_orgs()
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(orgs, ["acme", "library"]);

    let owners = meta.team(acme.id, OWNERS_TEAM).await.unwrap().unwrap();
    assert_eq!(owners.description, "Owners of the organization");
    assert_eq!(owners.member_count, 1);
    assert_eq!(meta.team_members(owners.id).await.unwrap(), ["alice"]);
    assert!(meta.is_org_owner(acme.id, alice).await.unwrap());
    assert!(!meta.is_org_owner(acme.id, bob).await.unwrap());
    assert_eq!(
        meta.orgs_of_user(alice).await.unwrap(),
        std::slice::from_ref(&acme)
    );
    assert!(meta.orgs_of_user(bob).await.unwrap().is_empty());

    // The built-in library organization has an owners team nobody is in yet.
    let library = meta.org_by_name("library").await.unwrap().unwrap();
    let library_owners = meta.team(library.id, OWNERS_TEAM).await.unwrap().unwrap();
    assert_eq!(library_owners.member_count, 0);

    let dev = meta
        .create_team(acme.id, "dev", "Developers")
        .await
        .unwrap();
    assert_eq!((dev.name.as_str(), dev.member_count), ("dev", 0));
    assert_conflict(meta.create_team(acme.id, "dev", "again").await, "team dev");
    assert!(meta.add_team_member(dev.id, bob, None).await.unwrap());
    assert!(!meta.add_team_member(dev.id, bob, None).await.unwrap());
    assert!(meta.add_team_member(dev.id, alice, None).await.unwrap());
    assert_eq!(meta.team_members(dev.id).await.unwrap(), ["alice", "bob"]);
    assert_eq!(
        meta.orgs_of_user(bob).await.unwrap(),
        std::slice::from_ref(&acme)
    );
    assert_eq!(
        meta.orgs_of_user(alice).await.unwrap(),
        std::slice::from_ref(&acme)
    );
    assert!(
        !meta.is_org_owner(acme.id, bob).await.unwrap(),
        "dev is not owners"
    );
    let teams: Vec<_> = meta
        .teams(acme.id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.name, t.member_count))
        .collect();
    assert_eq!(teams, [("dev".to_owned(), 2), ("owners".to_owned(), 1)]);

    assert!(meta.remove_team_member(dev.id, bob, None).await.unwrap());
    assert!(!meta.remove_team_member(dev.id, bob, None).await.unwrap());
    assert!(meta.orgs_of_user(bob).await.unwrap().is_empty());

    let api = meta
        .create_repository(&repo("acme/api"), None, NOW, None)
        .await
        .unwrap();
    meta.grant_team(dev.id, api.id, Permission::Write, None)
        .await
        .unwrap();
    assert!(meta.delete_team(dev.id, None).await.unwrap());
    assert!(!meta.delete_team(dev.id, None).await.unwrap());
    assert_eq!(meta.team(acme.id, "dev").await.unwrap(), None);
    assert!(meta.team_grants(api.id).await.unwrap().is_empty());
    assert!(meta.team_members(dev.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn pushed_repositories_take_their_namespace_default() {
    for backend in backends("pushed_repositories_take_their_namespace_default").await {
        eprintln!(
            "{}: pushed_repositories_take_their_namespace_default",
            backend.name
        );
        pushed_repositories_take_their_namespace_default_on(&backend).await;
    }
}

async fn pushed_repositories_take_their_namespace_default_on(backend: &Backend) {
    let meta: &dyn Store = &*backend.node;
    user(meta, "alice").await;
    push(meta, "alice/app").await;
    push(meta, "library/nginx").await;
    push(meta, "ghost/thing").await;
    push(meta, "alice").await;
    assert!(
        is_private(meta, "alice/app").await,
        "user namespaces default to private"
    );
    assert!(
        !is_private(meta, "library/nginx").await,
        "library defaults to public"
    );
    assert!(
        is_private(meta, "ghost/thing").await,
        "unknown namespaces are private"
    );
    assert!(is_private(meta, "alice").await);

    let record = meta.repository(&repo("alice/app")).await.unwrap().unwrap();
    assert_eq!(
        (record.name.as_str(), record.namespace.as_str()),
        ("alice/app", "alice")
    );
    assert_eq!(record.created_at, NOW);
    assert_eq!(
        meta.repository(&repo("alice"))
            .await
            .unwrap()
            .unwrap()
            .namespace,
        "alice"
    );

    meta.set_default_private("alice", false).await.unwrap();
    push(meta, "alice/open").await;
    assert!(!is_private(meta, "alice/open").await);
    assert!(
        is_private(meta, "alice/app").await,
        "existing repositories keep theirs"
    );
    // A second push into an existing repository leaves its visibility alone.
    meta.set_repository_private(&repo("library/nginx"), true, None)
        .await
        .unwrap();
    let digest = Digest::sha256_of(b"another layer");
    meta.link_blob(&repo("library/nginx"), &digest, 1, NOW)
        .await
        .unwrap();
    assert!(is_private(meta, "library/nginx").await);
}

#[tokio::test]
async fn created_repositories_honour_explicit_visibility() {
    for backend in backends("created_repositories_honour_explicit_visibility").await {
        eprintln!(
            "{}: created_repositories_honour_explicit_visibility",
            backend.name
        );
        created_repositories_honour_explicit_visibility_on(&backend).await;
    }
}

async fn created_repositories_honour_explicit_visibility_on(backend: &Backend) {
    let meta: &dyn Store = &*backend.node;
    user(meta, "alice").await;
    assert!(meta.list_repositories(None, 100).await.unwrap().is_empty());

    let open = meta
        .create_repository(&repo("alice/open"), Some(false), NOW, None)
        .await
        .unwrap();
    assert!(!open.is_private);
    assert_eq!(open.namespace, "alice");
    let default = meta
        .create_repository(&repo("alice/default"), None, NOW, None)
        .await
        .unwrap();
    assert!(default.is_private);
    let closed = meta
        .create_repository(&repo("library/closed"), Some(true), NOW, None)
        .await
        .unwrap();
    assert!(closed.is_private);
    let library = meta
        .create_repository(&repo("library/open"), None, NOW, None)
        .await
        .unwrap();
    assert!(!library.is_private);
    assert_conflict(
        meta.create_repository(&repo("alice/open"), Some(true), NOW, None)
            .await,
        "repository alice/open",
    );
    assert!(
        !is_private(meta, "alice/open").await,
        "a conflict changes nothing"
    );

    // The counter bump makes the cached catalog see the new repositories.
    assert_eq!(
        meta.visible_repositories(Viewer::Everything, None, 100)
            .await
            .unwrap(),
        [
            "alice/default",
            "alice/open",
            "library/closed",
            "library/open"
        ]
    );
    meta.create_repository(&repo("alice/later"), None, NOW, None)
        .await
        .unwrap();
    assert_eq!(
        meta.visible_repositories(Viewer::Everything, None, 2)
            .await
            .unwrap(),
        ["alice/default", "alice/later"]
    );
    assert!(meta.repository_exists(&repo("alice/later")).await.unwrap());

    assert!(meta
        .set_repository_private(&repo("alice/open"), true, None)
        .await
        .unwrap());
    assert!(is_private(meta, "alice/open").await);
    assert!(!meta
        .set_repository_private(&repo("ghost/x"), true, None)
        .await
        .unwrap());
    assert_eq!(meta.repository(&repo("ghost/x")).await.unwrap(), None);
}

#[tokio::test]
async fn access_facts_tell_who_may_do_what() {
    for backend in backends("access_facts_tell_who_may_do_what").await {
        eprintln!("{}: access_facts_tell_who_may_do_what", backend.name);
        access_facts_tell_who_may_do_what_on(&backend).await;
    }
}

async fn access_facts_tell_who_may_do_what_on(backend: &Backend) {
    let meta: &dyn Store = &*backend.node;
    let alice = user(meta, "alice").await;
    let olivia = user(meta, "olivia").await;
    let tom = user(meta, "tom").await;
    let carol = user(meta, "carol").await;
    let eve = user(meta, "eve").await;
    let acme = meta.create_org("acme", olivia, NOW).await.unwrap();
    let dev = meta.create_team(acme.id, "dev", "").await.unwrap();
    let ops = meta.create_team(acme.id, "ops", "").await.unwrap();
    meta.add_team_member(dev.id, tom, None).await.unwrap();
    push(meta, "alice/app").await;
    let api = push(meta, "acme/api").await;
    let facts = |user: Option<i64>, name: &'static str| async move {
        meta.access_facts(user, &repo(name)).await.unwrap()
    };
    let acme_owner = Some(NamespaceOwner::Organization(acme.id));

    // The namespace's own user.
    assert_eq!(
        facts(Some(alice), "alice/app").await,
        AccessFacts {
            is_private: Some(true),
            namespace_owner: Some(NamespaceOwner::User(alice)),
            ..Default::default()
        }
    );
    // An owner of the namespace's organization.
    assert_eq!(
        facts(Some(olivia), "acme/api").await,
        AccessFacts {
            is_private: Some(true),
            namespace_owner: acme_owner,
            owns_org: true,
            ..Default::default()
        }
    );
    // A team member: the highest grant of all their teams counts.
    assert_eq!(facts(Some(tom), "acme/api").await.team_permission, None);
    meta.grant_team(dev.id, api, Permission::Read, None)
        .await
        .unwrap();
    let tom_facts = facts(Some(tom), "acme/api").await;
    assert_eq!(tom_facts.team_permission, Some(Permission::Read));
    assert!(!tom_facts.owns_org);
    meta.grant_team(ops.id, api, Permission::Admin, None)
        .await
        .unwrap();
    meta.add_team_member(ops.id, tom, None).await.unwrap();
    assert_eq!(
        facts(Some(tom), "acme/api").await.team_permission,
        Some(Permission::Admin)
    );
    meta.grant_team(ops.id, api, Permission::Write, None)
        .await
        .unwrap();
    assert_eq!(
        facts(Some(tom), "acme/api").await.team_permission,
        Some(Permission::Write)
    );
    assert_eq!(
        meta.team_grants(api).await.unwrap(),
        [
            ("dev".to_owned(), Permission::Read),
            ("ops".to_owned(), Permission::Write)
        ]
    );
    assert!(meta.revoke_team(ops.id, api, None).await.unwrap());
    assert!(!meta.revoke_team(ops.id, api, None).await.unwrap());
    assert_eq!(
        facts(Some(tom), "acme/api").await.team_permission,
        Some(Permission::Read)
    );

    // A collaborator.
    meta.set_collaborator(api, carol, Permission::Write, None)
        .await
        .unwrap();
    assert_eq!(
        facts(Some(carol), "acme/api").await,
        AccessFacts {
            is_private: Some(true),
            namespace_owner: acme_owner,
            collaborator_permission: Some(Permission::Write),
            ..Default::default()
        }
    );
    meta.set_collaborator(api, carol, Permission::Admin, None)
        .await
        .unwrap();
    meta.set_collaborator(api, tom, Permission::Read, None)
        .await
        .unwrap();
    assert_eq!(
        meta.collaborators(api).await.unwrap(),
        [
            ("carol".to_owned(), Permission::Admin),
            ("tom".to_owned(), Permission::Read)
        ]
    );
    let tom_facts = facts(Some(tom), "acme/api").await;
    assert_eq!(
        (tom_facts.team_permission, tom_facts.collaborator_permission),
        (Some(Permission::Read), Some(Permission::Read))
    );
    assert!(meta.remove_collaborator(api, tom, None).await.unwrap());
    assert!(!meta.remove_collaborator(api, tom, None).await.unwrap());

    // An outsider and an anonymous caller only learn visibility and ownership.
    let outsider = AccessFacts {
        is_private: Some(true),
        namespace_owner: acme_owner,
        ..Default::default()
    };
    assert_eq!(facts(Some(eve), "acme/api").await, outsider);
    assert_eq!(facts(None, "acme/api").await, outsider);
    meta.set_repository_private(&repo("acme/api"), false, None)
        .await
        .unwrap();
    assert_eq!(facts(None, "acme/api").await.is_private, Some(false));

    // A repository not created yet, in a known namespace and in an unknown one.
    assert_eq!(
        facts(Some(olivia), "acme/next").await,
        AccessFacts {
            is_private: None,
            namespace_owner: acme_owner,
            owns_org: true,
            ..Default::default()
        }
    );
    assert_eq!(
        facts(Some(alice), "alice").await.namespace_owner,
        Some(NamespaceOwner::User(alice))
    );
    assert_eq!(
        facts(Some(eve), "ghost/thing").await,
        AccessFacts::default()
    );
    assert_eq!(facts(None, "ghost").await, AccessFacts::default());
}

/// Every page of `viewer`'s listing, `limit` names at a time.
async fn all_pages(meta: &dyn Store, viewer: Viewer, limit: u32) -> Vec<String> {
    let mut all = Vec::new();
    loop {
        let page = meta
            .visible_repositories(viewer, all.last().map(String::as_str), limit)
            .await
            .unwrap();
        assert!(page.len() <= limit as usize);
        let done = page.len() < limit as usize;
        all.extend(page);
        if done {
            return all;
        }
    }
}

fn names(records: Vec<berth_core::ports::RepositoryRecord>) -> Vec<String> {
    records.into_iter().map(|r| r.name).collect()
}

#[tokio::test]
async fn listings_show_each_viewer_what_they_may_read() {
    for backend in backends("listings_show_each_viewer_what_they_may_read").await {
        eprintln!(
            "{}: listings_show_each_viewer_what_they_may_read",
            backend.name
        );
        listings_show_each_viewer_what_they_may_read_on(&backend).await;
    }
}

async fn listings_show_each_viewer_what_they_may_read_on(backend: &Backend) {
    let meta: &dyn Store = &*backend.node;
    let alice = user(meta, "alice").await;
    let bob = user(meta, "bob").await;
    let dave = user(meta, "dave").await;
    let eve = user(meta, "eve").await;
    let acme = meta.create_org("acme", alice, NOW).await.unwrap();
    let dev = meta.create_team(acme.id, "dev", "").await.unwrap();
    meta.add_team_member(dev.id, dave, None).await.unwrap();
    for name in [
        "alice/a",
        "alice/b",
        "alice/pub",
        "acme/api",
        "acme/web",
        "bob/secret",
    ] {
        push(meta, name).await;
    }
    meta.set_repository_private(&repo("alice/pub"), false, None)
        .await
        .unwrap();
    let granted = push(meta, "acme/granted").await;
    meta.grant_team(dev.id, granted, Permission::Read, None)
        .await
        .unwrap();
    let shared = push(meta, "bob/shared").await;
    meta.set_collaborator(shared, dave, Permission::Read, None)
        .await
        .unwrap();
    // Reachable both as public and through a grant: listed once.
    let both = push(meta, "library/nginx").await;
    meta.set_collaborator(both, dave, Permission::Write, None)
        .await
        .unwrap();
    push(meta, "ghost/x").await;
    meta.create_repository(&repo("zzz/open"), Some(false), NOW, None)
        .await
        .unwrap();

    let public = ["alice/pub", "library/nginx", "zzz/open"];
    let expected: [(Viewer, Vec<&str>); 6] = [
        (
            Viewer::Everything,
            vec![
                "acme/api",
                "acme/granted",
                "acme/web",
                "alice/a",
                "alice/b",
                "alice/pub",
                "bob/secret",
                "bob/shared",
                "ghost/x",
                "library/nginx",
                "zzz/open",
            ],
        ),
        (Viewer::Public, public.to_vec()),
        (
            Viewer::User(alice),
            vec![
                "acme/api",
                "acme/granted",
                "acme/web",
                "alice/a",
                "alice/b",
                "alice/pub",
                "library/nginx",
                "zzz/open",
            ],
        ),
        (
            Viewer::User(dave),
            vec![
                "acme/granted",
                "alice/pub",
                "bob/shared",
                "library/nginx",
                "zzz/open",
            ],
        ),
        (Viewer::User(eve), public.to_vec()),
        (
            Viewer::Organization(acme.id),
            vec![
                "acme/api",
                "acme/granted",
                "acme/web",
                "alice/pub",
                "library/nginx",
                "zzz/open",
            ],
        ),
    ];
    for (viewer, want) in &expected {
        let all = meta
            .visible_repositories(*viewer, None, 1000)
            .await
            .unwrap();
        assert_eq!(&all, want, "{viewer:?}");
        for limit in [1, 2, 3] {
            assert_eq!(
                &all_pages(meta, *viewer, limit).await,
                want,
                "{viewer:?} by {limit}"
            );
        }
        // `last` need not be a listed name.
        let after_b: Vec<_> = want.iter().filter(|n| **n > "b").copied().collect();
        assert_eq!(
            meta.visible_repositories(*viewer, Some("b"), 1000)
                .await
                .unwrap(),
            after_b,
            "{viewer:?} after b"
        );
        assert!(meta
            .visible_repositories(*viewer, None, 0)
            .await
            .unwrap()
            .is_empty());
    }
    assert_eq!(
        meta.visible_repositories(Viewer::User(bob), Some("bob/secret"), 10)
            .await
            .unwrap(),
        ["bob/shared", "library/nginx", "zzz/open"]
    );

    let in_namespace = |namespace: &'static str, viewer: Viewer| async move {
        names(
            meta.repositories_in_namespace(namespace, viewer)
                .await
                .unwrap(),
        )
    };
    let acme_all = ["acme/api", "acme/granted", "acme/web"];
    assert_eq!(in_namespace("acme", Viewer::Everything).await, acme_all);
    assert_eq!(in_namespace("acme", Viewer::User(alice)).await, acme_all);
    assert_eq!(
        in_namespace("acme", Viewer::Organization(acme.id)).await,
        acme_all
    );
    assert_eq!(
        in_namespace("acme", Viewer::User(dave)).await,
        ["acme/granted"]
    );
    assert!(in_namespace("acme", Viewer::User(eve)).await.is_empty());
    assert!(in_namespace("acme", Viewer::Public).await.is_empty());
    assert_eq!(in_namespace("alice", Viewer::Public).await, ["alice/pub"]);
    assert_eq!(
        in_namespace("alice", Viewer::Organization(acme.id)).await,
        ["alice/pub"]
    );
    assert_eq!(
        in_namespace("bob", Viewer::User(dave)).await,
        ["bob/shared"]
    );
    assert_eq!(
        in_namespace("bob", Viewer::User(bob)).await,
        ["bob/secret", "bob/shared"]
    );
    assert_eq!(
        in_namespace("library", Viewer::User(eve)).await,
        ["library/nginx"]
    );
    assert!(in_namespace("nobody", Viewer::Everything).await.is_empty());
    let record = &meta
        .repositories_in_namespace("zzz", Viewer::Public)
        .await
        .unwrap()[0];
    assert_eq!(
        (record.namespace.as_str(), record.is_private),
        ("zzz", false)
    );
}

#[tokio::test]
async fn deleting_a_repository_removes_everything_attached() {
    for backend in backends("deleting_a_repository_removes_everything_attached").await {
        eprintln!(
            "{}: deleting_a_repository_removes_everything_attached",
            backend.name
        );
        deleting_a_repository_removes_everything_attached_on(&backend).await;
    }
}

async fn deleting_a_repository_removes_everything_attached_on(backend: &Backend) {
    let meta: &dyn Store = &*backend.node;
    let alice = user(meta, "alice").await;
    let bob = user(meta, "bob").await;
    let acme = meta.create_org("acme", alice, NOW).await.unwrap();
    let dev = meta.create_team(acme.id, "dev", "").await.unwrap();
    meta.add_team_member(dev.id, bob, None).await.unwrap();
    let name = repo("acme/app");
    let layer = Digest::sha256_of(b"layer");
    meta.link_blob(&name, &layer, 5, NOW).await.unwrap();
    let body = b"{\"manifest\":1}".to_vec();
    let manifest = Digest::sha256_of(&body);
    meta.put_manifest(&NewManifest {
        repo: name.clone(),
        digest: manifest.clone(),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        body,
        blobs: vec![layer.clone()],
        children: vec![],
        subject: None,
        artifact_type: None,
        annotations_json: None,
        platform: ManifestPlatform::None,
        tags: vec!["latest".into()],
        now: NOW,
        actor: None,
        events: Vec::new(),
    })
    .await
    .unwrap();
    let id = meta.repository(&name).await.unwrap().unwrap().id;
    meta.grant_team(dev.id, id, Permission::Write, None)
        .await
        .unwrap();
    meta.set_collaborator(id, bob, Permission::Admin, None)
        .await
        .unwrap();
    meta.create_upload_session(
        &UploadSession {
            id: "upload-1".into(),
            repo: name.clone(),
            size: 0,
            created_at: NOW,
            updated_at: NOW,
            owner: None,
        },
        None,
    )
    .await
    .unwrap();
    push(meta, "acme/other").await;
    // Fill the catalog cache, which must notice the deletion.
    assert_eq!(
        meta.visible_repositories(Viewer::Everything, None, 10)
            .await
            .unwrap(),
        ["acme/app", "acme/other"]
    );

    assert!(meta.delete_repository(&name, None).await.unwrap());
    assert!(!meta.delete_repository(&name, None).await.unwrap());
    assert_eq!(meta.repository(&name).await.unwrap(), None);
    assert!(!meta.repository_exists(&name).await.unwrap());
    assert_eq!(meta.list_tags(&name, None, 10).await.unwrap(), None);
    assert_eq!(
        meta.manifest_by_digest(&name, &manifest).await.unwrap(),
        None
    );
    assert_eq!(meta.linked_blob_size(&name, &layer).await.unwrap(), None);
    assert!(meta.team_grants(id).await.unwrap().is_empty());
    assert!(meta.collaborators(id).await.unwrap().is_empty());
    assert_eq!(meta.upload_session("upload-1").await.unwrap(), None);
    assert_eq!(
        meta.visible_repositories(Viewer::Everything, None, 10)
            .await
            .unwrap(),
        ["acme/other"]
    );
    assert_eq!(
        meta.list_repositories(None, 10).await.unwrap(),
        ["acme/other"]
    );
    assert!(meta
        .visible_repositories(Viewer::User(bob), None, 10)
        .await
        .unwrap()
        .is_empty());

    // Pushing the name again starts over, without the old grants.
    push(meta, "acme/app").await;
    let facts = meta.access_facts(Some(bob), &name).await.unwrap();
    assert_eq!(facts.is_private, Some(true));
    assert_eq!(
        (facts.team_permission, facts.collaborator_permission),
        (None, None)
    );
    assert_eq!(meta.list_tags(&name, None, 10).await.unwrap(), Some(vec![]));
    assert!(!meta
        .delete_repository(&repo("ghost/x"), None)
        .await
        .unwrap());
}

fn token(user_id: i64, org_id: Option<i64>, label: &str) -> NewToken {
    NewToken {
        user_id,
        org_id,
        label: label.to_owned(),
        token_hash: format!("hash-{label}"),
        scope: "repo:write".into(),
        repositories: vec![],
        created_at: NOW,
        expires_at: None,
    }
}

#[tokio::test]
async fn access_tokens_separate_personal_from_organization_and_record_use() {
    for backend in
        backends("access_tokens_separate_personal_from_organization_and_record_use").await
    {
        eprintln!(
            "{}: access_tokens_separate_personal_from_organization_and_record_use",
            backend.name
        );
        access_tokens_separate_personal_from_organization_and_record_use_on(&backend).await;
    }
}

async fn access_tokens_separate_personal_from_organization_and_record_use_on(backend: &Backend) {
    let meta: &dyn Store = &*backend.node;
    let alice = user(meta, "alice").await;
    let bob = user(meta, "bob").await;
    let acme = meta.create_org("acme", alice, NOW).await.unwrap();
    let ci = meta
        .create_token(&NewToken {
            repositories: vec!["alice/*".into(), "acme/api".into()],
            expires_at: Some(NOW + 3600),
            ..token(alice, None, "ci")
        })
        .await
        .unwrap();
    assert_eq!((ci.user_id, ci.org_id), (alice, None));
    assert_eq!(ci.repositories, ["alice/*", "acme/api"]);
    assert_eq!(ci.expires_at, Some(NOW + 3600));
    assert_eq!((ci.last_used_at, ci.revoked_at), (None, None));
    let laptop = meta
        .create_token(&token(alice, None, "laptop"))
        .await
        .unwrap();
    let deploy = meta
        .create_token(&token(alice, Some(acme.id), "deploy"))
        .await
        .unwrap();
    assert_eq!(deploy.org_id, Some(acme.id));
    assert!(deploy.repositories.is_empty());
    meta.create_token(&token(bob, None, "bob")).await.unwrap();

    assert_eq!(
        meta.tokens_of_user(alice).await.unwrap(),
        [ci.clone(), laptop.clone()]
    );
    assert_eq!(
        meta.tokens_of_org(acme.id).await.unwrap(),
        std::slice::from_ref(&deploy)
    );
    assert_eq!(
        meta.token_by_hash("hash-deploy").await.unwrap(),
        Some(deploy.clone())
    );
    assert_eq!(meta.token_by_id(ci.id).await.unwrap(), Some(ci.clone()));
    assert_eq!(meta.token_by_hash("hash-nothing").await.unwrap(), None);
    assert!(
        meta.create_token(&token(bob, None, "ci")).await.is_err(),
        "hashes are unique"
    );

    assert!(meta.touch_token(ci.id, NOW + 1).await.unwrap(), "first use");
    assert!(!meta.touch_token(ci.id, NOW + 2).await.unwrap());
    assert_eq!(
        meta.token_by_id(ci.id).await.unwrap().unwrap().last_used_at,
        Some(NOW + 2)
    );
    assert!(meta.touch_token(deploy.id, NOW + 3).await.unwrap());
    assert!(!meta.touch_token(9999, NOW).await.unwrap());

    assert!(meta.revoke_token(laptop.id, NOW + 5).await.unwrap());
    assert!(!meta.revoke_token(laptop.id, NOW + 6).await.unwrap());
    assert!(!meta.revoke_token(9999, NOW).await.unwrap());
    let revoked = meta.token_by_hash("hash-laptop").await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(NOW + 5));
    assert_eq!(
        meta.token_by_id(ci.id).await.unwrap().unwrap().revoked_at,
        None
    );
}

#[tokio::test]
async fn refresh_tokens_are_revoked_per_user() {
    for backend in backends("refresh_tokens_are_revoked_per_user").await {
        eprintln!("{}: refresh_tokens_are_revoked_per_user", backend.name);
        refresh_tokens_are_revoked_per_user_on(&backend).await;
    }
}

async fn refresh_tokens_are_revoked_per_user_on(backend: &Backend) {
    let meta: &dyn Store = &*backend.node;
    let alice = user(meta, "alice").await;
    let bob = user(meta, "bob").await;
    let ci = meta.create_token(&token(alice, None, "ci")).await.unwrap();
    let first = meta
        .create_refresh_token(alice, None, "r1", NOW)
        .await
        .unwrap();
    assert_eq!((first.user_id, first.access_token_id), (alice, None));
    assert_eq!((first.created_at, first.revoked_at), (NOW, None));
    let second = meta
        .create_refresh_token(alice, Some(ci.id), "r2", NOW)
        .await
        .unwrap();
    assert_eq!(second.access_token_id, Some(ci.id));
    meta.create_refresh_token(bob, None, "r3", NOW)
        .await
        .unwrap();

    assert_eq!(
        meta.refresh_token_by_hash("r2").await.unwrap(),
        Some(second)
    );
    assert_eq!(meta.refresh_token_by_hash("nope").await.unwrap(), None);
    assert_eq!(
        meta.revoke_refresh_tokens_of_user(alice, NOW + 9)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        meta.revoke_refresh_tokens_of_user(alice, NOW + 10)
            .await
            .unwrap(),
        0
    );
    let revoked = meta.refresh_token_by_hash("r1").await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(NOW + 9));
    assert_eq!(
        meta.refresh_token_by_hash("r3")
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );
}

fn event(at: i64, actor: &str, action: &str, target: &str) -> AuditEvent {
    AuditEvent {
        at,
        actor: actor.to_owned(),
        action: action.to_owned(),
        target: target.to_owned(),
        detail: None,
        address: None,
    }
}

#[tokio::test]
async fn audit_records_read_newest_first_and_filter_by_account() {
    for backend in backends("audit_records_read_newest_first_and_filter_by_account").await {
        eprintln!(
            "{}: audit_records_read_newest_first_and_filter_by_account",
            backend.name
        );
        audit_records_read_newest_first_and_filter_by_account_on(&backend).await;
    }
}

async fn audit_records_read_newest_first_and_filter_by_account_on(backend: &Backend) {
    let meta: &dyn Store = &*backend.node;
    let mut login = event(1, "alice", "login", "alice");
    login.detail = Some("{\"method\":\"password\"}".into());
    login.address = Some("192.0.2.7".into());
    meta.record_audit(&login).await.unwrap();
    meta.record_audit(&event(2, "admin", "user.create", "bob"))
        .await
        .unwrap();
    meta.record_audit(&event(3, "bob", "token.create", "bob"))
        .await
        .unwrap();
    meta.record_audit(&event(4, "alice", "repository.visibility", "alice/app"))
        .await
        .unwrap();
    meta.record_audit(&event(5, "org/acme", "push", "acme/api"))
        .await
        .unwrap();

    let read = |account: Option<&str>, before: Option<i64>, limit: u32| {
        let query = AuditQuery {
            account: account.map(str::to_owned),
            before,
            limit,
        };
        async move { meta.audit_records(&query).await.unwrap() }
    };
    let all = read(None, None, 100).await;
    let times: Vec<_> = all.iter().map(|r| r.event.at).collect();
    assert_eq!(times, [5, 4, 3, 2, 1]);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id));
    assert_eq!(all[4].event, login);

    let bob: Vec<_> = read(Some("bob"), None, 100)
        .await
        .iter()
        .map(|r| r.event.at)
        .collect();
    assert_eq!(bob, [3, 2], "as actor or as target");
    let alice: Vec<_> = read(Some("alice"), None, 100)
        .await
        .iter()
        .map(|r| r.event.at)
        .collect();
    assert_eq!(alice, [4, 1]);

    let page = read(None, None, 2).await;
    assert_eq!(page.iter().map(|r| r.event.at).collect::<Vec<_>>(), [5, 4]);
    let next = read(None, Some(page[1].id), 2).await;
    assert_eq!(next.iter().map(|r| r.event.at).collect::<Vec<_>>(), [3, 2]);
    let bob_before = read(Some("bob"), Some(next[0].id), 10).await;
    assert_eq!(
        bob_before.iter().map(|r| r.event.at).collect::<Vec<_>>(),
        [2]
    );
    assert!(read(Some("nobody"), None, 10).await.is_empty());

    for at in 0..1001 {
        meta.record_audit(&event(at, "bulk", "pull", "x"))
            .await
            .unwrap();
    }
    assert_eq!(
        read(None, None, u32::MAX).await.len(),
        1000,
        "pages are capped"
    );
}

#[tokio::test]
async fn repeated_identical_failures_fold_into_one_record_with_a_count() {
    for backend in backends("repeated_identical_failures_fold_into_one_record_with_a_count").await {
        eprintln!(
            "{}: repeated_identical_failures_fold_into_one_record_with_a_count",
            backend.name
        );
        repeated_identical_failures_fold_into_one_record_with_a_count_on(&backend).await;
    }
}

async fn repeated_identical_failures_fold_into_one_record_with_a_count_on(backend: &Backend) {
    let meta: &dyn Store = &*backend.node;
    let failure = |at: i64, address: &str, name: &str| AuditEvent {
        address: Some(address.to_owned()),
        ..event(at, name, "login.failure", name)
    };
    for at in [100, 110, 120] {
        meta.record_audit(&failure(at, "192.0.2.1", "alice"))
            .await
            .unwrap();
    }
    // Another address, another name, or a success are records of their own.
    meta.record_audit(&failure(130, "192.0.2.2", "alice"))
        .await
        .unwrap();
    meta.record_audit(&failure(140, "192.0.2.1", "bob"))
        .await
        .unwrap();
    meta.record_audit(&event(150, "alice", "login", "alice"))
        .await
        .unwrap();
    meta.record_audit(&event(160, "alice", "login", "alice"))
        .await
        .unwrap();
    // A repeat after the folding window starts a new record.
    let late = 120 + AUDIT_FOLD_WINDOW_SECS + 1;
    meta.record_audit(&failure(late, "192.0.2.1", "alice"))
        .await
        .unwrap();

    let records = meta
        .audit_records(&AuditQuery {
            account: None,
            before: None,
            limit: 100,
        })
        .await
        .unwrap();
    let seen: Vec<(i64, i64, u32, &str)> = records
        .iter()
        .map(|r| (r.event.at, r.last_at, r.count, r.event.actor.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (late, late, 1, "alice"),
            (160, 160, 1, "alice"),
            (150, 150, 1, "alice"),
            (140, 140, 1, "bob"),
            (130, 130, 1, "alice"),
            (100, 120, 3, "alice"),
        ]
    );
}

#[tokio::test]
async fn pruning_removes_records_that_last_happened_before_the_cut() {
    for backend in backends("pruning_removes_records_that_last_happened_before_the_cut").await {
        eprintln!(
            "{}: pruning_removes_records_that_last_happened_before_the_cut",
            backend.name
        );
        pruning_removes_records_that_last_happened_before_the_cut_on(&backend).await;
    }
}

async fn pruning_removes_records_that_last_happened_before_the_cut_on(backend: &Backend) {
    let meta: &dyn Store = &*backend.node;
    for at in 0..6_000 {
        meta.record_audit(&event(at, "bulk", "pull", "x"))
            .await
            .unwrap();
    }
    let failure = |at: i64| AuditEvent {
        address: Some("192.0.2.1".to_owned()),
        ..event(at, "mallory", "login.failure", "mallory")
    };
    // First seen before the cut, still happening after it: kept.
    meta.record_audit(&failure(5_000)).await.unwrap();
    meta.record_audit(&failure(6_500)).await.unwrap();

    assert_eq!(meta.prune_audit(5_500).await.unwrap(), 5_500);
    assert_eq!(meta.prune_audit(5_500).await.unwrap(), 0, "idempotent");
    let left = meta
        .audit_records(&AuditQuery {
            account: None,
            before: None,
            limit: 1000,
        })
        .await
        .unwrap();
    assert_eq!(left.len(), 501);
    assert!(left.iter().all(|r| r.last_at >= 5_500));
    assert!(left.iter().any(|r| r.event.at == 5_000 && r.count == 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_stored_signing_key_wins() {
    for backend in backends("the_first_stored_signing_key_wins").await {
        eprintln!("{}: the_first_stored_signing_key_wins", backend.name);
        the_first_stored_signing_key_wins_on(&backend).await;
    }
}

async fn the_first_stored_signing_key_wins_on(backend: &Backend) {
    let meta: &dyn Store = &*backend.node;
    let callers: Vec<_> = (0..8u8)
        .map(|i| {
            // Half the callers on each node.
            let meta = if i % 2 == 0 {
                backend.node.clone()
            } else {
                backend.other_node.clone()
            };
            tokio::spawn(async move { meta.signing_key_or_insert(&[i; 32], NOW).await.unwrap() })
        })
        .collect();
    let mut keys = Vec::new();
    for caller in callers {
        keys.push(caller.await.unwrap());
    }
    assert_eq!(keys[0].len(), 32);
    assert!(
        keys.iter().all(|k| *k == keys[0]),
        "every caller gets the same key"
    );
    assert_eq!(
        meta.signing_key_or_insert(&[99; 32], NOW).await.unwrap(),
        keys[0]
    );
}

/// A database as Berth left it before access control: schema version 3.
async fn version_3_database(path: &Path) {
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{ConnectOptions, Connection};
    let mut db = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    let schema = [
        include_str!("../migrations/sqlite/0001_registry.sql"),
        include_str!("../migrations/sqlite/0002_catalog_version.sql"),
        include_str!("../migrations/sqlite/0003_accounts.sql"),
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);
         INSERT INTO schema_migrations VALUES (1, 0), (2, 0), (3, 0);
         INSERT INTO users (name, password_hash, is_admin, created_at)
             VALUES ('library', 'x', 1, 10), ('alice', 'y', 0, 11);
         INSERT INTO repositories (name, created_at) VALUES ('alice/app', 12), ('nginx', 13);",
    ];
    for sql in schema {
        sqlx::raw_sql(sql).execute(&mut db).await.unwrap();
    }
    db.close().await.unwrap();
}

#[tokio::test]
async fn upgrading_keeps_existing_users_and_repositories_as_they_were() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    version_3_database(&path).await;
    let meta = SqliteMeta::open(&path).await.unwrap();

    let library = meta.user_by_name("library").await.unwrap().unwrap();
    assert!(!library.totp_enabled);
    assert_eq!(
        library.sessions_valid_from, 0,
        "existing sessions stay valid"
    );
    let namespace = meta.namespace("library").await.unwrap().unwrap();
    assert_eq!(
        namespace.owner,
        NamespaceOwner::User(library.id),
        "the user keeps the name"
    );
    assert_eq!(meta.org_by_name("library").await.unwrap(), None);
    let alice = meta.user_by_name("alice").await.unwrap().unwrap();
    let namespace = meta.namespace("alice").await.unwrap().unwrap();
    assert_eq!(
        (namespace.owner, namespace.created_at),
        (NamespaceOwner::User(alice.id), 11)
    );

    let app = meta.repository(&repo("alice/app")).await.unwrap().unwrap();
    assert_eq!((app.namespace.as_str(), app.is_private), ("alice", false));
    let nginx = meta.repository(&repo("nginx")).await.unwrap().unwrap();
    assert_eq!(
        (nginx.namespace.as_str(), nginx.is_private),
        ("nginx", false)
    );
    assert_eq!(
        meta.visible_repositories(Viewer::Public, None, 10)
            .await
            .unwrap(),
        ["alice/app", "nginx"]
    );
}

#[tokio::test]
async fn credential_generations_move_with_passwords_and_disabling_only() {
    for backend in backends("credential_generations_move_with_passwords_and_disabling_only").await {
        eprintln!(
            "{}: credential_generations_move_with_passwords_and_disabling_only",
            backend.name
        );
        credential_generations_move_with_passwords_and_disabling_only_on(&backend).await;
    }
}

async fn credential_generations_move_with_passwords_and_disabling_only_on(backend: &Backend) {
    let meta: &dyn Store = &*backend.node;
    let alice = user(meta, "alice").await;
    let generation = |_: &dyn Store| {
        let meta = backend.node.clone();
        async move {
            let user = meta.user_by_name("alice").await.unwrap().unwrap();
            (user.credential_generation, user.disabled_at)
        }
    };
    assert_eq!(generation(meta).await, (0, None));
    // Two changes within one second are two generations.
    meta.set_password_hash("alice", "a", NOW).await.unwrap();
    meta.set_password_hash("alice", "b", NOW).await.unwrap();
    assert_eq!(generation(meta).await, (2, None));
    meta.set_admin("alice", true).await.unwrap();
    assert_eq!(generation(meta).await, (2, None), "not every change");

    assert!(meta.set_disabled("alice", Some(NOW)).await.unwrap());
    assert!(
        !meta.set_disabled("alice", Some(NOW + 1)).await.unwrap(),
        "already"
    );
    assert_eq!(generation(meta).await, (3, Some(NOW)));
    assert!(meta.set_disabled("alice", None).await.unwrap());
    assert!(!meta.set_disabled("alice", None).await.unwrap());
    assert_eq!(generation(meta).await, (3, None), "enabling ends nothing");
    assert!(!meta.set_disabled("nobody", Some(NOW)).await.unwrap());

    assert!(meta.delete_user(alice).await.unwrap());
    assert!(!meta.delete_user(alice).await.unwrap());
    assert!(meta.user_by_name("alice").await.unwrap().is_none());
    assert!(
        meta.namespace("alice").await.unwrap().is_none(),
        "the name is free"
    );
}

#[tokio::test]
async fn ended_sessions_are_remembered_until_they_would_have_expired() {
    for backend in backends("ended_sessions_are_remembered_until_they_would_have_expired").await {
        eprintln!(
            "{}: ended_sessions_are_remembered_until_they_would_have_expired",
            backend.name
        );
        ended_sessions_are_remembered_until_they_would_have_expired_on(&backend).await;
    }
}

async fn ended_sessions_are_remembered_until_they_would_have_expired_on(backend: &Backend) {
    let meta: &dyn Store = &*backend.node;
    meta.end_session("a", NOW + 10, NOW).await.unwrap();
    meta.end_session("a", NOW + 10, NOW).await.unwrap();
    assert!(meta.session_ended("a").await.unwrap());
    assert!(!meta.session_ended("b").await.unwrap());
    // Ending another later forgets the ones whose tokens have expired by then.
    meta.end_session("b", NOW + 100, NOW + 11).await.unwrap();
    assert!(!meta.session_ended("a").await.unwrap());
    assert!(meta.session_ended("b").await.unwrap());
}

#[tokio::test]
async fn a_recovery_code_is_used_once_even_by_racing_sign_ins() {
    for backend in backends("a_recovery_code_is_used_once_even_by_racing_sign_ins").await {
        eprintln!(
            "{}: a_recovery_code_is_used_once_even_by_racing_sign_ins",
            backend.name
        );
        a_recovery_code_is_used_once_even_by_racing_sign_ins_on(&backend).await;
    }
}

async fn a_recovery_code_is_used_once_even_by_racing_sign_ins_on(backend: &Backend) {
    let meta: &dyn Store = &*backend.node;
    let alice = user(meta, "alice").await;
    let bob = user(meta, "bob").await;
    let hashes = vec!["h1".to_owned(), "h2".to_owned()];
    meta.replace_recovery_codes(alice, &hashes).await.unwrap();
    let counts = meta.recovery_code_counts(alice).await.unwrap();
    assert_eq!((counts.unused, counts.total), (2, 2));
    assert!(
        !meta.use_recovery_code(bob, "h1", NOW).await.unwrap(),
        "alice's"
    );
    let (first, second) = tokio::join!(
        meta.use_recovery_code(alice, "h1", NOW),
        backend.other_node.use_recovery_code(alice, "h1", NOW)
    );
    assert!(first.unwrap() ^ second.unwrap());
    assert_eq!(meta.recovery_code_counts(alice).await.unwrap().unused, 1);
    // A new set voids the old one, used or not.
    meta.replace_recovery_codes(alice, &["h3".to_owned()])
        .await
        .unwrap();
    assert!(!meta.use_recovery_code(alice, "h2", NOW).await.unwrap());
    assert!(meta.use_recovery_code(alice, "h3", NOW).await.unwrap());
    meta.clear_recovery_codes(alice).await.unwrap();
    assert_eq!(meta.recovery_code_counts(alice).await.unwrap().total, 0);
}

/// The `access.changed` events recorded after event `after`: (repository, action, subject,
/// permission, team, actor).
async fn access_events(
    meta: &dyn Store,
    after: i64,
) -> Vec<(
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
)> {
    meta.events_after(after, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EventKind::AccessChanged)
        .map(|e| {
            let data: AccessChangedData = serde_json::from_value(e.data).unwrap();
            (
                e.repository.unwrap(),
                data.action,
                data.subject,
                data.permission,
                data.team,
                e.actor,
            )
        })
        .collect()
}

fn changed(
    repo: &str,
    action: &str,
    subject: &str,
    permission: Option<&str>,
    team: &str,
) -> (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
) {
    (
        repo.to_owned(),
        action.to_owned(),
        subject.to_owned(),
        permission.map(str::to_owned),
        Some(team.to_owned()),
        Some("olivia".to_owned()),
    )
}

#[tokio::test]
async fn team_membership_changes_record_access_changed_for_each_repository_the_team_reaches() {
    for backend in backends(
        "team_membership_changes_record_access_changed_for_each_repository_the_team_reaches",
    )
    .await
    {
        eprintln!("{}: team_membership_changes_record_access_changed_for_each_repository_the_team_reaches", backend.name);
        team_membership_changes_record_access_changed_for_each_repository_the_team_reaches_on(
            &backend,
        )
        .await;
    }
}

async fn team_membership_changes_record_access_changed_for_each_repository_the_team_reaches_on(
    backend: &Backend,
) {
    let meta: &dyn Store = &*backend.node;
    let olivia = user(meta, "olivia").await;
    let tom = user(meta, "tom").await;
    let acme = meta.create_org("acme", olivia, NOW).await.unwrap();
    let dev = meta.create_team(acme.id, "dev", "").await.unwrap();
    let idle = meta.create_team(acme.id, "idle", "").await.unwrap();
    let api = push(meta, "acme/api").await;
    let web = push(meta, "acme/web").await;
    push(meta, "acmeco/other").await;
    meta.grant_team(dev.id, api, Permission::Write, None)
        .await
        .unwrap();
    meta.grant_team(dev.id, web, Permission::Read, None)
        .await
        .unwrap();
    let by = Some("olivia");

    // Joining a team with grants: one event per granted repository, with the permission.
    let start = meta.last_event_id().await.unwrap();
    assert!(meta.add_team_member(dev.id, tom, by).await.unwrap());
    assert_eq!(
        access_events(meta, start).await,
        [
            changed("acme/api", "team.member.add", "tom", Some("write"), "dev"),
            changed("acme/web", "team.member.add", "tom", Some("read"), "dev"),
        ]
    );
    // Joining again changes nothing and says nothing; a team without grants neither.
    let start = meta.last_event_id().await.unwrap();
    assert!(!meta.add_team_member(dev.id, tom, by).await.unwrap());
    assert!(meta.add_team_member(idle.id, tom, by).await.unwrap());
    assert_eq!(access_events(meta, start).await, []);

    // The owners team reaches every repository of the organization, as Admin, and no
    // repository of another namespace that merely starts with the same letters.
    let owners = meta.team(acme.id, OWNERS_TEAM).await.unwrap().unwrap();
    let start = meta.last_event_id().await.unwrap();
    assert!(meta.add_team_member(owners.id, tom, by).await.unwrap());
    assert_eq!(
        access_events(meta, start).await,
        [
            changed(
                "acme/api",
                "team.member.add",
                "tom",
                Some("admin"),
                OWNERS_TEAM
            ),
            changed(
                "acme/web",
                "team.member.add",
                "tom",
                Some("admin"),
                OWNERS_TEAM
            ),
        ]
    );
    let start = meta.last_event_id().await.unwrap();
    assert!(meta.remove_team_member(owners.id, tom, by).await.unwrap());
    assert_eq!(
        access_events(meta, start).await,
        [
            changed("acme/api", "team.member.remove", "tom", None, OWNERS_TEAM),
            changed("acme/web", "team.member.remove", "tom", None, OWNERS_TEAM),
        ]
    );

    // Leaving: the same repositories, without a permission.
    let start = meta.last_event_id().await.unwrap();
    assert!(meta.remove_team_member(dev.id, tom, by).await.unwrap());
    assert!(!meta.remove_team_member(dev.id, tom, by).await.unwrap());
    assert_eq!(
        access_events(meta, start).await,
        [
            changed("acme/api", "team.member.remove", "tom", None, "dev"),
            changed("acme/web", "team.member.remove", "tom", None, "dev"),
        ]
    );

    // Deleting a team takes its grants from its members: one event per granted repository.
    meta.add_team_member(dev.id, tom, by).await.unwrap();
    let start = meta.last_event_id().await.unwrap();
    assert!(meta.delete_team(dev.id, by).await.unwrap());
    assert_eq!(
        access_events(meta, start).await,
        [
            changed("acme/api", "team.delete", "dev", None, "dev"),
            changed("acme/web", "team.delete", "dev", None, "dev"),
        ]
    );
    let start = meta.last_event_id().await.unwrap();
    assert!(!meta.delete_team(dev.id, by).await.unwrap());
    assert_eq!(access_events(meta, start).await, []);
}

/// Waits (polling, with a deadline generous for a loaded machine) until `done` holds.
async fn eventually<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !done().await {
        assert!(
            std::time::Instant::now() < deadline,
            "gave up waiting: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_credentials_change_on_one_node_moves_the_epoch_on_every_node() {
    for backend in backends("a_credentials_change_on_one_node_moves_the_epoch_on_every_node").await
    {
        eprintln!(
            "{}: a_credentials_change_on_one_node_moves_the_epoch_on_every_node",
            backend.name
        );
        a_credentials_change_on_one_node_moves_the_epoch_on_every_node_on(&backend).await;
    }
}

/// Runs `change` on `here` and checks that `here` sees it at once and `there` soon.
async fn epoch_moves<Fut: std::future::Future>(
    here: &dyn Store,
    there: &dyn Store,
    what: &str,
    change: Fut,
) {
    let here_before = here.credentials_epoch().expect("the epoch is tracked");
    let there_before = there.credentials_epoch().expect("the epoch is tracked");
    change.await;
    assert_ne!(
        here.credentials_epoch(),
        Some(here_before),
        "{what}: the node that made it sees it at once"
    );
    eventually(&format!("{what} seen by the other node"), || async move {
        there
            .credentials_epoch()
            .is_some_and(|now| now != there_before)
    })
    .await;
}

async fn a_credentials_change_on_one_node_moves_the_epoch_on_every_node_on(backend: &Backend) {
    let (a, b): (&dyn Store, &dyn Store) = (&*backend.node, &*backend.other_node);
    let alice = user(a, "alice").await;
    epoch_moves(a, b, "a password change", async {
        assert!(a.set_password_hash("alice", "new", NOW).await.unwrap());
    })
    .await;
    epoch_moves(b, a, "a password change on the other node", async {
        assert!(b.set_password_hash("alice", "newer", NOW).await.unwrap());
    })
    .await;
    epoch_moves(a, b, "disabling", async {
        assert!(a.set_disabled("alice", Some(NOW)).await.unwrap());
    })
    .await;
    epoch_moves(a, b, "enabling", async {
        assert!(a.set_disabled("alice", None).await.unwrap());
    })
    .await;
    epoch_moves(a, b, "site admin", async {
        assert!(a.set_admin("alice", true).await.unwrap());
    })
    .await;
    epoch_moves(a, b, "two-factor on", async {
        assert!(a.set_totp("alice", Some("SECRET"), true).await.unwrap());
    })
    .await;
    let token = a.create_token(&token(alice, None, "ci")).await.unwrap();
    epoch_moves(a, b, "a token revoked", async {
        assert!(a.revoke_token(token.id, NOW).await.unwrap());
    })
    .await;
    epoch_moves(b, a, "the account deleted", async {
        assert!(b.delete_user(alice).await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn a_password_remembered_on_one_node_ends_with_a_change_on_another() {
    for backend in backends("a_password_remembered_on_one_node_ends_with_a_change_on_another").await
    {
        eprintln!(
            "{}: a_password_remembered_on_one_node_ends_with_a_change_on_another",
            backend.name
        );
        a_password_remembered_on_one_node_ends_with_a_change_on_another_on(&backend).await;
    }
}

async fn authenticator(store: &Arc<dyn Store>) -> berth_core::auth::Authenticator {
    let store: Arc<dyn IdentityStore> = store.clone();
    let authorizer = Arc::new(berth_core::access::PolicyAuthorizer::new(store.clone()));
    berth_core::auth::Authenticator::new(store, authorizer, Default::default())
        .await
        .unwrap()
}

async fn a_password_remembered_on_one_node_ends_with_a_change_on_another_on(backend: &Backend) {
    let (a, b) = (&backend.node, &backend.other_node);
    a.create_user(&NewUser {
        name: "alice".into(),
        password_hash: berth_core::identity::hash_password("old password").unwrap(),
        is_admin: false,
        now: NOW,
    })
    .await
    .unwrap();
    let on_b = authenticator(b).await;
    on_b.basic("alice", "old password", None).await.unwrap();
    on_b.basic("alice", "old password", None)
        .await
        .expect("remembered");
    let new_hash = berth_core::identity::hash_password("new password").unwrap();
    assert!(a.set_password_hash("alice", &new_hash, NOW).await.unwrap());
    let on_b = &on_b;
    eventually("node B refuses the old password", || async move {
        matches!(
            on_b.basic("alice", "old password", None).await,
            Err(berth_core::Error::CredentialsInvalid)
        )
    })
    .await;
    on_b.basic("alice", "new password", None).await.unwrap();
}

#[tokio::test]
async fn a_shared_sign_in_failure_reaches_every_node() {
    for backend in backends("a_shared_sign_in_failure_reaches_every_node").await {
        eprintln!(
            "{}: a_shared_sign_in_failure_reaches_every_node",
            backend.name
        );
        a_shared_sign_in_failure_reaches_every_node_on(&backend).await;
    }
}

/// The store that plays a second node for the sign-in throttle. On SQLite one process owns
/// the data (a second server on it is refused), so its nodes are throttles over one store.
fn throttle_peer(backend: &Backend) -> Arc<dyn Store> {
    match backend.database {
        common::Database::Sqlite(_) => backend.node.clone(),
        common::Database::Postgres(_) => backend.other_node.clone(),
    }
}

async fn a_shared_sign_in_failure_reaches_every_node_on(backend: &Backend) {
    use berth_core::ports::SignInFailure;
    use std::time::Duration;
    let (a, b) = (&backend.node, throttle_peer(backend));
    let mut on_b = b.subscribe_sign_in_failures();
    let failure = SignInFailure {
        origin: u64::MAX - 1,
        account: Some("alice".into()),
        address: "2001:db8::".parse().unwrap(),
    };
    a.share_sign_in_failure(&failure, Duration::from_secs(3600))
        .await
        .unwrap();
    let received = tokio::time::timeout(Duration::from_secs(30), on_b.recv())
        .await
        .expect("the failure reached the other node")
        .unwrap();
    assert_eq!(received.failure, failure);
    let recent = b
        .recent_sign_in_failures(Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(
        recent.iter().map(|r| &r.failure).collect::<Vec<_>>(),
        [&failure],
        "a node that starts later reads it"
    );
    assert!(b
        .recent_sign_in_failures(Duration::ZERO)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn sign_in_failures_on_one_node_count_on_another() {
    for backend in backends("sign_in_failures_on_one_node_count_on_another").await {
        eprintln!(
            "{}: sign_in_failures_on_one_node_count_on_another",
            backend.name
        );
        sign_in_failures_on_one_node_count_on_another_on(&backend).await;
    }
}

async fn right_password(
    auth: &berth_core::auth::Authenticator,
    address: Option<std::net::IpAddr>,
) -> berth_core::Result<berth_core::access::Principal> {
    let purpose = berth_core::auth::LoginPurpose::Registry;
    auth.login("alice", "right password", address, purpose)
        .await
}

async fn sign_in_failures_on_one_node_count_on_another_on(backend: &Backend) {
    use berth_core::auth::throttle::SignInPolicy;
    use berth_core::auth::{LoginPurpose, RefusalReason};
    use std::time::Duration;
    // One free failure per address, then a minute's wait: longer than a sign-in is held
    // back before it is refused, so the wait shows as `429`.
    let strict = SignInPolicy {
        address_free_failures: 1,
        first_delay: Duration::from_secs(60),
        ..SignInPolicy::default()
    };
    let (a, b) = (&backend.node, throttle_peer(backend));
    a.create_user(&NewUser {
        name: "alice".into(),
        password_hash: berth_core::identity::hash_password("right password").unwrap(),
        is_admin: false,
        now: NOW,
    })
    .await
    .unwrap();
    let node_a = authenticator(a).await.with_sign_in_policy(strict);
    let node_b = authenticator(&b).await.with_sign_in_policy(strict);
    let guesser = Some("192.0.2.7".parse().unwrap());
    let owner = Some("192.0.2.8".parse().unwrap());
    assert!(matches!(
        node_a
            .login("Alice", "wrong", guesser, LoginPurpose::Registry)
            .await,
        Err(berth_core::Error::CredentialsInvalid)
    ));
    // Node B has seen no failure of its own: only node A's make it answer `429` (even
    // with the right password, as node A would).
    let on_b = &node_b;
    eventually(
        "node B throttles the address node A saw fail",
        || async move {
            match right_password(on_b, guesser).await {
                Err(berth_core::Error::TooManyRequests { retry_after_secs }) => {
                    assert!((11..=60).contains(&retry_after_secs), "{retry_after_secs}");
                    true
                }
                other => {
                    assert!(other.is_ok(), "{other:?}");
                    false
                }
            }
        },
    )
    .await;
    assert_eq!(
        node_b.sign_in_counts().refused(RefusalReason::Throttled),
        1,
        "the refusal is counted as throttled"
    );
    assert!(
        right_password(&node_b, owner).await.is_ok(),
        "other addresses are not"
    );
    assert_eq!(
        b.recent_sign_in_failures(Duration::from_secs(3600))
            .await
            .unwrap()
            .len(),
        1,
        "only the failure was written: sign-ins that succeeded or were refused wrote nothing"
    );
    // A node that starts after the failure knows it from the start.
    let node_c = authenticator(&b).await.with_sign_in_policy(strict);
    assert!(matches!(
        right_password(&node_c, guesser).await,
        Err(berth_core::Error::TooManyRequests { .. })
    ));
}
