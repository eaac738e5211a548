//! The accounts, organization, repositories and tokens most access tests run against.
//!
//! Users (all with the password [`PASSWORD`]): `admin` (site admin), `alice` (owns the
//! `alice` namespace), `bob` (an outsider), `carol` (collaborator with write on
//! `alice/public` and `alice/secret`), `olivia` (owner of the organization `acme`), and the
//! `acme` team members `rita` (read), `walt` (write) and `ada` (admin) on `acme/public` and
//! `acme/secret`. `alice/hidden` is private and only alice's own. `library/nginx` is an
//! official image. Every repository holds an image tagged `v1` and a signature referring
//! to it, pushed by the site admin over HTTP.

use crate::support::{Creds, Image, Server, PASSWORD};
use berth_core::ports::{Organizations as _, Permission, RepositoryAccess as _};
use berth_core::time::now_unix;
use std::collections::HashMap;

pub const ALICE_PUBLIC: &str = "alice/public";
pub const ALICE_SECRET: &str = "alice/secret";
pub const ALICE_HIDDEN: &str = "alice/hidden";
pub const ACME_PUBLIC: &str = "acme/public";
pub const ACME_SECRET: &str = "acme/secret";
pub const LIBRARY_NGINX: &str = "library/nginx";

/// Every repository of the world, in the order of the matrix columns.
pub const REPOSITORIES: [&str; 6] = [
    ALICE_PUBLIC,
    ALICE_SECRET,
    ALICE_HIDDEN,
    ACME_PUBLIC,
    ACME_SECRET,
    LIBRARY_NGINX,
];

/// Whether a repository of the world is private.
pub fn is_private(name: &str) -> bool {
    [ALICE_SECRET, ALICE_HIDDEN, ACME_SECRET].contains(&name)
}

/// A repository that does not exist, in the namespace of `name` and with a name of the
/// same length, so the two answers can be compared byte for byte.
pub fn missing_twin(name: &str) -> &'static str {
    match name {
        ALICE_SECRET | ALICE_HIDDEN => "alice/absent",
        ACME_SECRET => "acme/absent",
        other => panic!("{other} has no missing twin"),
    }
}

/// The access tokens of the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pat {
    /// alice's, `repo:public_read`.
    PublicRead,
    /// alice's, `repo:read`.
    Read,
    /// alice's, `repo:write`.
    Write,
    /// alice's, `repo:admin`.
    Admin,
    /// alice's, `repo:admin` limited to `alice/hidden`.
    LimitedToHidden,
    /// alice's, `repo:public_read` limited to `alice/public`.
    PublicReadLimitedToPublic,
    /// alice's, `repo:read` limited to `alice/public`.
    ReadLimitedToPublic,
    /// alice's, `repo:write` limited to `alice/public`.
    WriteLimitedToPublic,
    /// The organization `acme`'s, `repo:admin`, created by olivia.
    Acme,
}

impl Pat {
    /// The one repository a limited token is limited to; `None` for one of every repository.
    pub fn limited_to(self) -> Option<&'static str> {
        match self {
            Pat::LimitedToHidden => Some(ALICE_HIDDEN),
            Pat::PublicReadLimitedToPublic
            | Pat::ReadLimitedToPublic
            | Pat::WriteLimitedToPublic => Some(ALICE_PUBLIC),
            Pat::PublicRead | Pat::Read | Pat::Write | Pat::Admin | Pat::Acme => None,
        }
    }
}

pub struct World {
    pub server: Server,
    /// Site admin credentials, for setting content up.
    pub admin: Creds,
    pub users: HashMap<&'static str, i64>,
    pub images: HashMap<&'static str, Image>,
    /// Token id and secret.
    pub pats: HashMap<Pat, (i64, String)>,
}

impl World {
    pub async fn build() -> World {
        let server = Server::start().await;
        let mut users = HashMap::new();
        for (name, is_admin) in [
            ("admin", true),
            ("alice", false),
            ("bob", false),
            ("carol", false),
            ("olivia", false),
            ("rita", false),
            ("walt", false),
            ("ada", false),
        ] {
            users.insert(name, server.user(name, is_admin).await);
        }
        let acme = server
            .meta
            .create_org("acme", users["olivia"], now_unix())
            .await
            .expect("organization")
            .id;
        let admin = Creds::basic("admin", PASSWORD);

        let mut images = HashMap::new();
        for (seed, name) in REPOSITORIES.into_iter().enumerate() {
            let image = server.push_image(&admin, name, "v1", seed as u32).await;
            images.insert(name, image);
        }
        // Pushing creates private repositories in user and organization namespaces; the
        // official namespace makes them public.
        server.set_private(ALICE_PUBLIC, false).await;
        server.set_private(ACME_PUBLIC, false).await;
        let official = server
            .meta
            .repository(&crate::support::repo(LIBRARY_NGINX))
            .await
            .expect("repository")
            .expect("library/nginx exists");
        assert!(!official.is_private, "official images are public");
        for (name, private) in [
            (ALICE_SECRET, true),
            (ALICE_HIDDEN, true),
            (ACME_SECRET, true),
        ] {
            let record = server
                .meta
                .repository(&crate::support::repo(name))
                .await
                .expect("repository")
                .expect("exists");
            assert_eq!(record.is_private, private, "{name} is private after a push");
        }

        let org_repositories = [ACME_PUBLIC, ACME_SECRET];
        for (team, member, permission) in [
            ("readers", "rita", Permission::Read),
            ("writers", "walt", Permission::Write),
            ("admins", "ada", Permission::Admin),
        ] {
            server
                .team(acme, team, &[users[member]], permission, &org_repositories)
                .await;
        }
        for name in [ALICE_PUBLIC, ALICE_SECRET] {
            server
                .collaborator(name, users["carol"], Permission::Write)
                .await;
        }

        let alice = users["alice"];
        let mut pats = HashMap::new();
        for (pat, scope) in [
            (Pat::PublicRead, "repo:public_read"),
            (Pat::Read, "repo:read"),
            (Pat::Write, "repo:write"),
            (Pat::Admin, "repo:admin"),
        ] {
            pats.insert(pat, server.token(alice, None, scope, &[], None).await);
        }
        for (pat, scope) in [
            (Pat::LimitedToHidden, "repo:admin"),
            (Pat::PublicReadLimitedToPublic, "repo:public_read"),
            (Pat::ReadLimitedToPublic, "repo:read"),
            (Pat::WriteLimitedToPublic, "repo:write"),
        ] {
            let only = pat.limited_to().into_iter().collect::<Vec<_>>();
            pats.insert(pat, server.token(alice, None, scope, &only, None).await);
        }
        pats.insert(
            Pat::Acme,
            server
                .token(users["olivia"], Some(acme), "repo:admin", &[], None)
                .await,
        );
        World {
            server,
            admin,
            users,
            images,
            pats,
        }
    }

    /// Basic credentials with a token of the world (the name is its owner's).
    pub fn pat(&self, pat: Pat) -> Creds {
        let owner = match pat {
            Pat::Acme => "acme",
            _ => "alice",
        };
        Creds::basic(owner, &self.pats[&pat].1)
    }

    pub fn image(&self, name: &str) -> &Image {
        &self.images[name]
    }
}
