//! The Hub service against the real SQLite store and the permission policy: search ranking
//! and privacy, repository pages, descriptions, stars, pull accounting, the verified mark
//! and the tags view.

use berth_core::access::{Actor, PolicyAuthorizer, Principal, TokenLimits};
use berth_core::hub::{Hub, Platform, SearchRequest, TagPage};
use berth_core::identity::{Acting, Identity, TokenScope};
use berth_core::ports::{
    Accounts, AuditLog, AuditQuery, BlobLinks, ManifestPlatform, Manifests, Namespaces,
    NewManifest, Permission, PullEvent, SearchSort, TagSort,
};
use berth_core::time::now_unix;
use berth_core::Error;
use berth_meta::SqliteMeta;
use berth_oci::manifest::{OCI_INDEX, OCI_MANIFEST};
use berth_oci::{Digest, RepoName};
use std::sync::Arc;

struct World {
    _dir: tempfile::TempDir,
    store: Arc<SqliteMeta>,
    identity: Identity<SqliteMeta>,
    hub: Hub,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteMeta::open(&dir.path().join("berth.db"))
            .await
            .unwrap(),
    );
    World {
        _dir: dir,
        identity: Identity::new(store.clone()),
        hub: Hub::new(
            store.clone(),
            Arc::new(PolicyAuthorizer::new(store.clone())),
        ),
        store,
    }
}

fn repo(name: &str) -> RepoName {
    name.parse().unwrap()
}

fn as_user(principal: &Principal) -> Acting<'_> {
    Acting::new(principal, Some("192.0.2.7".to_owned()))
}

fn with_token(principal: &Principal, scope: TokenScope, repos: &[&str]) -> Principal {
    Principal {
        actor: principal.actor.clone(),
        limits: Some(TokenLimits {
            token_id: 99,
            scope,
            repositories: repos.iter().map(|r| r.to_string()).collect(),
        }),
        credential_generation: None,
    }
}

fn search_for(text: &str) -> SearchRequest {
    SearchRequest {
        text: text.to_owned(),
        official_only: false,
        min_stars: 0,
        namespace: None,
        sort: SearchSort::Relevance,
        page: 1,
        page_size: 25,
    }
}

#[track_caller]
fn assert_name_unknown<T: std::fmt::Debug>(result: Result<T, Error>) {
    assert!(matches!(result, Err(Error::NameUnknown(_))), "{result:?}");
}

/// A manifest of `body` for `name`, referencing nothing yet.
fn manifest(name: &str, media_type: &str, body: String, tags: &[&str]) -> NewManifest {
    NewManifest {
        repo: repo(name),
        digest: Digest::sha256_of(body.as_bytes()),
        media_type: media_type.to_owned(),
        body: body.into_bytes(),
        blobs: vec![],
        children: vec![],
        subject: None,
        artifact_type: None,
        annotations_json: None,
        platform: ManifestPlatform::None,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        now: now_unix(),
        actor: None,
        events: Vec::new(),
    }
}

/// An image as the tests push one: a seed that makes its blobs distinct, and its layers' sizes.
struct Image<'a> {
    seed: &'a str,
    layer_sizes: &'a [u64],
}

impl World {
    /// The principal signing in as `name`, creating the user through the CLI first if
    /// there is none.
    async fn user(&self, name: &str, is_admin: bool) -> Principal {
        let id = match self.store.user_by_name(name).await.unwrap() {
            Some(record) => record.id,
            None => {
                self.identity
                    .create_user(&Acting::cli(), name, "long-password", is_admin)
                    .await
                    .unwrap()
                    .id
            }
        };
        Principal {
            actor: Actor::User {
                id,
                name: name.to_owned(),
                is_admin,
            },
            limits: None,
            credential_generation: None,
        }
    }

    /// Creates a repository through the CLI, and the user owning its namespace if need be.
    async fn repository(&self, name: &str, private: bool) {
        let namespace = repo(name).namespace().unwrap().to_owned();
        if self.store.namespace(&namespace).await.unwrap().is_none() {
            self.user(&namespace, false).await;
        }
        self.identity
            .create_repository(&Acting::cli(), &repo(name), Some(private))
            .await
            .unwrap();
    }

    async fn names(&self, principal: &Principal, request: &SearchRequest) -> (u64, Vec<String>) {
        let page = self.hub.search(principal, request).await.unwrap();
        (
            page.total,
            page.results.into_iter().map(|r| r.name).collect(),
        )
    }

    /// Stores a manifest as a push does once it is validated; returns its digest.
    async fn put(&self, manifest: NewManifest) -> Digest {
        self.store.put_manifest(&manifest).await.unwrap();
        manifest.digest
    }

    /// Pushes an OCI image (its blobs linked first, as a push does) under `tags`.
    async fn push_image(&self, name: &str, image: Image<'_>, tags: &[&str]) -> Digest {
        let config = Digest::sha256_of(format!("config {}", image.seed).as_bytes());
        self.store
            .link_blob(&repo(name), &config, 100, 0)
            .await
            .unwrap();
        let mut blobs = vec![config.clone()];
        let mut layers = Vec::new();
        for (i, size) in image.layer_sizes.iter().enumerate() {
            let layer = Digest::sha256_of(format!("layer {} {i}", image.seed).as_bytes());
            self.store
                .link_blob(&repo(name), &layer, *size, 0)
                .await
                .unwrap();
            layers.push(format!(
                r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{layer}","size":{size}}}"#
            ));
            blobs.push(layer);
        }
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":100}},"layers":[{}]}}"#,
            layers.join(",")
        );
        let mut image = manifest(name, OCI_MANIFEST, body, tags);
        image.blobs = blobs;
        self.put(image).await
    }

    /// Pushes an index of `children` (each with its os/architecture) under `tags`.
    async fn push_index(
        &self,
        name: &str,
        children: &[(&Digest, &str, &str)],
        tags: &[&str],
    ) -> Digest {
        let manifests: Vec<String> = children
            .iter()
            .map(|(digest, os, arch)| {
                format!(
                    r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{digest}","size":300,"platform":{{"os":"{os}","architecture":"{arch}"}}}}"#
                )
            })
            .collect();
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
            manifests.join(",")
        );
        let mut index = manifest(name, OCI_INDEX, body, tags);
        index.children = children.iter().map(|(d, _, _)| (*d).clone()).collect();
        self.put(index).await
    }

    /// Attaches an artifact (a signature, an SBOM) to `subject`.
    async fn push_referrer(&self, name: &str, subject: &Digest, artifact_type: &str) -> Digest {
        let empty = Digest::sha256_of(b"{}");
        self.store
            .link_blob(&repo(name), &empty, 2, 0)
            .await
            .unwrap();
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"{artifact_type}","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{empty}","size":2}},"layers":[],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{subject}","size":1}}}}"#
        );
        let mut artifact = manifest(name, OCI_MANIFEST, body, &[]);
        artifact.blobs = vec![empty];
        artifact.subject = Some(subject.clone());
        artifact.artifact_type = Some(artifact_type.to_owned());
        self.put(artifact).await
    }

    async fn audit_actions(&self, target: &str) -> Vec<String> {
        let records = self
            .store
            .audit_records(&AuditQuery {
                account: Some(target.to_owned()),
                limit: 100,
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        records.into_iter().map(|r| r.event.action).collect()
    }
}

#[tokio::test]
async fn search_ranks_exact_names_then_prefixes_then_words_and_stars_break_ties() {
    let w = world().await;
    for name in [
        "alice/redis",
        "bob/redis",
        "carol/redis-tools",
        "dave/cache",
        "erin/other",
    ] {
        w.repository(name, false).await;
    }
    let dave = w.user("dave", false).await;
    w.hub
        .set_descriptions(
            &as_user(&dave),
            &repo("dave/cache"),
            Some("A fast Redis compatible cache".into()),
            None,
        )
        .await
        .unwrap();
    let anonymous = Principal::anonymous();
    assert_eq!(
        w.names(&anonymous, &search_for("redis")).await.1,
        [
            "alice/redis",
            "bob/redis",
            "carol/redis-tools",
            "dave/cache"
        ]
    );
    // Two stars put bob's exact match ahead of alice's, and nothing ahead of an exact match.
    for fan in ["fan1", "fan2"] {
        let fan = w.user(fan, false).await;
        w.hub
            .star(&as_user(&fan), &repo("bob/redis"))
            .await
            .unwrap();
        w.hub
            .star(&as_user(&fan), &repo("carol/redis-tools"))
            .await
            .unwrap();
    }
    let page = w
        .hub
        .search(&anonymous, &search_for("redis"))
        .await
        .unwrap();
    let ranked: Vec<(&str, u64)> = page
        .results
        .iter()
        .map(|r| (r.name.as_str(), r.star_count))
        .collect();
    assert_eq!(
        ranked,
        [
            ("bob/redis", 2),
            ("alice/redis", 0),
            ("carol/redis-tools", 2),
            ("dave/cache", 0)
        ]
    );
    let mut by_stars = search_for("redis");
    by_stars.sort = SearchSort::Stars;
    assert_eq!(
        w.names(&anonymous, &by_stars).await.1[..2],
        ["bob/redis", "carol/redis-tools"]
    );
}

#[tokio::test]
async fn private_repositories_never_show_to_those_who_cannot_read_them() {
    let w = world().await;
    let alice = w.user("alice", false).await;
    let outsider = w.user("outsider", false).await;
    let admin = w.user("root", true).await;
    w.repository("alice/secret-app", true).await;
    w.repository("alice/open-app", false).await;
    w.repository("bob/open-app", false).await;

    // Pages of one leave the total to the count, which must not count the hidden one either.
    let mut one = search_for("app");
    one.page_size = 1;
    for (who, expected) in [
        (&Principal::anonymous(), 2),
        (&outsider, 2),
        (&alice, 3),
        (&admin, 3),
    ] {
        let (total, names) = w.names(who, &search_for("app")).await;
        assert_eq!(total, expected, "{who:?}");
        assert_eq!(
            names.contains(&"alice/secret-app".to_owned()),
            expected == 3
        );
        assert_eq!(w.names(who, &one).await.0, expected, "{who:?}");
        assert_eq!(w.names(who, &search_for("secret")).await.0, expected - 2);
        assert_eq!(w.names(who, &search_for("")).await.0, expected);
    }
    // A token limited to alice's repositories sees only those; a public-read token only
    // public ones.
    let limited = with_token(&alice, TokenScope::Read, &["alice/*"]);
    assert_eq!(
        w.names(&limited, &search_for("app")).await,
        (
            2,
            vec!["alice/open-app".to_owned(), "alice/secret-app".to_owned()]
        )
    );
    let public_read = with_token(&alice, TokenScope::PublicRead, &[]);
    assert_eq!(w.names(&public_read, &search_for("app")).await.0, 2);
    let mut second = search_for("app");
    second.page = 2;
    second.page_size = 1;
    assert_eq!(
        w.names(&limited, &second).await,
        (2, vec!["alice/secret-app".to_owned()])
    );
}

#[tokio::test]
async fn a_private_repository_page_looks_missing_to_outsiders() {
    let w = world().await;
    let alice = w.user("alice", false).await;
    let outsider = w.user("outsider", false).await;
    w.repository("alice/secret", true).await;
    w.repository("alice/open", false).await;

    assert_name_unknown(w.hub.repository(&outsider, &repo("alice/secret")).await);
    assert_name_unknown(
        w.hub
            .repository(&Principal::anonymous(), &repo("alice/secret"))
            .await,
    );
    assert_name_unknown(w.hub.repository(&outsider, &repo("alice/nothing")).await);
    // Her own namespace holds no repository by that name either.
    assert_name_unknown(w.hub.repository(&alice, &repo("alice/nothing")).await);

    let own = w
        .hub
        .repository(&alice, &repo("alice/secret"))
        .await
        .unwrap();
    assert_eq!(own.permission, Some(Permission::Admin));
    assert!(own.info.is_private && !own.starred);
    let public = w
        .hub
        .repository(&Principal::anonymous(), &repo("alice/open"))
        .await
        .unwrap();
    assert_eq!(public.permission, Some(Permission::Read));
    let read_token = with_token(&alice, TokenScope::Read, &[]);
    let narrowed = w
        .hub
        .repository(&read_token, &repo("alice/open"))
        .await
        .unwrap();
    assert_eq!(narrowed.permission, Some(Permission::Read));
}

#[tokio::test]
async fn descriptions_need_admin_and_are_bounded_and_audited() {
    let w = world().await;
    let alice = w.user("alice", false).await;
    let bob = w.user("bob", false).await;
    w.repository("alice/app", false).await;
    w.repository("alice/hidden", true).await;
    let app = repo("alice/app");

    let readme = "# App\n\n<script>alert(1)</script>\n\n[docs](javascript:alert(1))".to_owned();
    w.hub
        .set_descriptions(
            &as_user(&alice),
            &app,
            Some("Does things".into()),
            Some(readme.clone()),
        )
        .await
        .unwrap();
    let view = w.hub.repository(&bob, &app).await.unwrap();
    assert_eq!(view.info.description, "Does things");
    assert_eq!(view.info.full_description, readme);
    assert!(
        view.readme_html.contains("<h1>App</h1>"),
        "{}",
        view.readme_html
    );
    assert!(!view.readme_html.contains("<script") && !view.readme_html.contains("javascript:"));

    // Only the README: the short description stays.
    w.hub
        .set_descriptions(&as_user(&alice), &app, None, Some("new".into()))
        .await
        .unwrap();
    let view = w.hub.repository(&bob, &app).await.unwrap();
    assert_eq!(
        (
            view.info.description.as_str(),
            view.info.full_description.as_str()
        ),
        ("Does things", "new")
    );

    let too_long = "x".repeat(101);
    assert!(matches!(
        w.hub
            .set_descriptions(&as_user(&alice), &app, Some(too_long), None)
            .await,
        Err(Error::AccountInvalid(_))
    ));
    assert!(matches!(
        w.hub
            .set_descriptions(&as_user(&bob), &app, Some("mine".into()), None)
            .await,
        Err(Error::Denied)
    ));
    let anonymous = Principal::anonymous();
    assert!(matches!(
        w.hub
            .set_descriptions(&as_user(&anonymous), &app, Some("x".into()), None)
            .await,
        Err(Error::Unauthorized)
    ));
    assert_name_unknown(
        w.hub
            .set_descriptions(
                &as_user(&bob),
                &repo("alice/hidden"),
                Some("x".into()),
                None,
            )
            .await,
    );
    // A write token is not enough either.
    let write = with_token(&alice, TokenScope::Write, &[]);
    assert!(matches!(
        w.hub
            .set_descriptions(&as_user(&write), &app, Some("x".into()), None)
            .await,
        Err(Error::Denied)
    ));
    assert_eq!(
        w.hub.repository(&bob, &app).await.unwrap().info.description,
        "Does things"
    );
    assert_eq!(
        w.audit_actions("alice/app").await,
        [
            "repository.description",
            "repository.description",
            "repository.create"
        ]
    );
}

#[tokio::test]
async fn stars_belong_to_signed_in_users_who_can_read_the_repository() {
    let w = world().await;
    let alice = w.user("alice", false).await;
    let bob = w.user("bob", false).await;
    let acme = w
        .identity
        .create_org(&as_user(&alice), "acme", None)
        .await
        .unwrap();
    w.repository("alice/app", false).await;
    w.repository("alice/hidden", true).await;
    let app = repo("alice/app");

    w.hub.star(&as_user(&bob), &app).await.unwrap();
    w.hub.star(&as_user(&bob), &app).await.unwrap();
    w.hub.star(&as_user(&alice), &app).await.unwrap();
    let view = w.hub.repository(&bob, &app).await.unwrap();
    assert!(view.starred);
    assert_eq!(view.info.star_count, 2);
    w.hub.unstar(&as_user(&bob), &app).await.unwrap();
    w.hub.unstar(&as_user(&bob), &app).await.unwrap();
    let view = w.hub.repository(&bob, &app).await.unwrap();
    assert!(!view.starred);
    assert_eq!(view.info.star_count, 1);
    assert_eq!(
        w.hub
            .search(&bob, &search_for("app"))
            .await
            .unwrap()
            .results[0]
            .star_count,
        1
    );

    assert!(matches!(
        w.hub.star(&as_user(&Principal::anonymous()), &app).await,
        Err(Error::Unauthorized)
    ));
    let org_token = Principal {
        actor: Actor::Organization {
            id: acme.id,
            name: "acme".into(),
        },
        limits: None,
        credential_generation: None,
    };
    assert!(matches!(
        w.hub.star(&as_user(&org_token), &app).await,
        Err(Error::Denied)
    ));
    assert_name_unknown(w.hub.star(&as_user(&bob), &repo("alice/hidden")).await);
    assert_name_unknown(w.hub.star(&as_user(&bob), &repo("alice/missing")).await);
}

/// A star is a write: read-only tokens, and tokens for other repositories, make none, even
/// on a repository they may read; tokens that may write do, and the audit log keeps each
/// star that changed something.
#[tokio::test]
async fn read_only_tokens_do_not_star() {
    let w = world().await;
    let alice = w.user("alice", false).await;
    w.repository("alice/app", false).await;
    let app = repo("alice/app");
    for (scope, patterns) in [
        (TokenScope::PublicRead, &[][..]),
        (TokenScope::Read, &[][..]),
        (TokenScope::Read, &["alice/app"][..]),
        (TokenScope::Admin, &["alice/other"][..]),
    ] {
        let token = with_token(&alice, scope, patterns);
        for result in [
            w.hub.star(&as_user(&token), &app).await,
            w.hub.unstar(&as_user(&token), &app).await,
        ] {
            assert!(
                matches!(result, Err(Error::Denied)),
                "{scope} {patterns:?}: {result:?}"
            );
        }
        assert!(w.hub.repository(&token, &app).await.is_ok(), "it may read");
    }
    assert_eq!(
        w.hub
            .repository(&alice, &app)
            .await
            .unwrap()
            .info
            .star_count,
        0
    );
    let write = with_token(&alice, TokenScope::Write, &["alice/app"]);
    w.hub.star(&as_user(&write), &app).await.unwrap();
    w.hub.star(&as_user(&write), &app).await.unwrap();
    assert_eq!(
        w.hub
            .repository(&alice, &app)
            .await
            .unwrap()
            .info
            .star_count,
        1
    );
    w.hub.unstar(&as_user(&alice), &app).await.unwrap();
    let query = AuditQuery {
        account: Some("alice/app".into()),
        limit: 100,
        ..AuditQuery::default()
    };
    let mut actions: Vec<String> = w
        .store
        .audit_records(&query)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.event.action)
        .collect();
    actions.retain(|a| a.contains("star"));
    assert_eq!(actions, ["repository.unstar", "repository.star"]);
}

#[tokio::test]
async fn an_index_and_its_platform_manifest_count_as_one_pull() {
    let w = world().await;
    let alice = w.user("alice", false).await;
    let name = "alice/multi";
    let amd64 = w
        .push_image(
            name,
            Image {
                seed: "amd64",
                layer_sizes: &[1000],
            },
            &[],
        )
        .await;
    let arm64 = w
        .push_image(
            name,
            Image {
                seed: "arm64",
                layer_sizes: &[2000],
            },
            &[],
        )
        .await;
    let index = w
        .push_index(
            name,
            &[(&amd64, "linux", "amd64"), (&arm64, "linux", "arm64")],
            &["latest"],
        )
        .await;
    let single = w
        .push_image(
            name,
            Image {
                seed: "single",
                layer_sizes: &[5],
            },
            &["solo"],
        )
        .await;
    let event = |digest: &Digest, tag: Option<&str>, at: i64| PullEvent {
        repo: repo(name),
        tag: tag.map(str::to_owned),
        digest: digest.clone(),
        at,
        pulls: 1,
    };

    // docker pull: the index by tag, then the platform's manifest by digest.
    w.hub.record_pull(event(&index, Some("latest"), 1_000));
    w.hub.record_pull(event(&amd64, None, 1_001));
    // Recorded, but not written until the flush.
    assert_eq!(w.hub.pending_pulls(), 2);
    assert_eq!(
        w.hub
            .repository(&alice, &repo(name))
            .await
            .unwrap()
            .info
            .pull_count,
        0
    );
    assert_eq!(w.hub.flush_pulls().await.unwrap(), 2);
    assert_eq!(w.hub.flush_pulls().await.unwrap(), 0);
    let info = w.hub.repository(&alice, &repo(name)).await.unwrap().info;
    assert_eq!((info.pull_count, info.last_pulled_at), (1, Some(1_001)));

    // containerd: the index by digest, then the child; and a single image by tag.
    w.hub.record_pull(event(&index, None, 2_000));
    w.hub.record_pull(event(&arm64, None, 2_001));
    w.hub.record_pull(event(&single, Some("solo"), 1_500));
    w.hub.flush_pulls().await.unwrap();
    assert_eq!(
        w.hub
            .repository(&alice, &repo(name))
            .await
            .unwrap()
            .info
            .pull_count,
        3
    );

    let page = w
        .hub
        .tags(&alice, &repo(name), TagSort::Name, 1, 10)
        .await
        .unwrap();
    let pulled: Vec<(&str, Option<i64>)> = page
        .tags
        .iter()
        .map(|t| (t.name.as_str(), t.last_pulled_at))
        .collect();
    assert_eq!(pulled, [("latest", Some(2_001)), ("solo", Some(1_500))]);
}

#[tokio::test]
async fn the_tags_view_shows_sizes_platforms_and_referrers() {
    let w = world().await;
    let alice = w.user("alice", false).await;
    let outsider = w.user("outsider", false).await;
    w.repository("alice/app", true).await;
    let name = "alice/app";
    let amd64 = w
        .push_image(
            name,
            Image {
                seed: "amd64",
                layer_sizes: &[1000, 24],
            },
            &[],
        )
        .await;
    let arm64 = w
        .push_image(
            name,
            Image {
                seed: "arm64",
                layer_sizes: &[2000],
            },
            &[],
        )
        .await;
    let index = w
        .push_index(
            name,
            &[(&amd64, "linux", "amd64"), (&arm64, "linux", "arm64")],
            &["1.0", "latest"],
        )
        .await;
    let single = w
        .push_image(
            name,
            Image {
                seed: "old",
                layer_sizes: &[50],
            },
            &["0.9"],
        )
        .await;
    let signature = w
        .push_referrer(
            name,
            &index,
            "application/vnd.dev.cosign.artifact.sig.v1+json",
        )
        .await;
    w.push_referrer(name, &single, "application/spdx+json")
        .await;

    let TagPage { total, tags } = w
        .hub
        .tags(&alice, &repo(name), TagSort::Name, 1, 2)
        .await
        .unwrap();
    assert_eq!(total, 3);
    let names: Vec<&str> = tags.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["0.9", "1.0"]);
    let old = &tags[0];
    assert_eq!(
        (old.digest.clone(), old.media_type.as_str(), old.size),
        (single, OCI_MANIFEST, 50),
        "the size of its layers"
    );
    assert!(old.platforms.is_empty());
    assert_eq!(
        old.referrers[0].artifact_type.as_deref(),
        Some("application/spdx+json")
    );
    let multi = &tags[1];
    assert_eq!(multi.media_type, OCI_INDEX);
    // The layers of each platform: amd64 1024, arm64 2000 (configs are not counted).
    assert_eq!(multi.size, 1_024 + 2_000);
    assert_eq!(
        multi.platforms,
        [
            Platform {
                os: "linux".into(),
                architecture: "amd64".into(),
                variant: None
            },
            Platform {
                os: "linux".into(),
                architecture: "arm64".into(),
                variant: None
            },
        ]
    );
    assert_eq!(multi.referrers.len(), 1);
    assert_eq!(multi.referrers[0].digest, signature);
    assert_eq!(multi.referrers[0].media_type, OCI_MANIFEST);

    let rest = w
        .hub
        .tags(&alice, &repo(name), TagSort::Name, 2, 2)
        .await
        .unwrap();
    assert_eq!(
        (rest.total, rest.tags.len(), rest.tags[0].name.as_str()),
        (3, 1, "latest")
    );
    assert_name_unknown(
        w.hub
            .tags(&outsider, &repo(name), TagSort::Name, 1, 10)
            .await,
    );
}

#[tokio::test]
async fn site_admins_mark_verified_publishers_and_library_is_official() {
    let w = world().await;
    let root = w.user("root", true).await;
    let alice = w.user("alice", false).await;
    w.identity
        .create_org(&as_user(&alice), "acme", None)
        .await
        .unwrap();
    w.repository("acme/tool", false).await;
    w.repository("library/nginx", false).await;

    assert!(matches!(
        w.hub.set_verified(&as_user(&alice), "acme", true).await,
        Err(Error::Denied)
    ));
    let anonymous = Principal::anonymous();
    assert!(matches!(
        w.hub.set_verified(&as_user(&anonymous), "acme", true).await,
        Err(Error::Unauthorized)
    ));
    assert!(matches!(
        w.hub.set_verified(&as_user(&root), "nobody", true).await,
        Err(Error::AccountUnknown(_))
    ));
    w.hub
        .set_verified(&as_user(&root), "acme", true)
        .await
        .unwrap();
    w.hub
        .set_verified(&as_user(&root), "acme", true)
        .await
        .unwrap();
    assert_eq!(
        w.audit_actions("acme").await,
        ["org.verified", "org.create"]
    );

    let tool = w
        .hub
        .repository(&anonymous, &repo("acme/tool"))
        .await
        .unwrap()
        .info;
    assert!(tool.is_verified && !tool.is_official);
    let nginx = w
        .hub
        .search(&anonymous, &search_for("nginx"))
        .await
        .unwrap()
        .results;
    assert!(nginx[0].is_official && !nginx[0].is_verified);
    let mut official = search_for("");
    official.official_only = true;
    assert_eq!(w.names(&anonymous, &official).await.1, ["library/nginx"]);
}

#[tokio::test]
async fn a_namespace_lists_what_the_visitor_may_read_most_recently_pushed_first() {
    let w = world().await;
    let alice = w.user("alice", false).await;
    let outsider = w.user("outsider", false).await;
    for (name, private) in [
        ("alice/old", false),
        ("alice/new", false),
        ("alice/secret", true),
        ("alice/empty", false),
        ("bob/other", false),
    ] {
        w.repository(name, private).await;
    }
    for (name, at) in [
        ("alice/old", 1_000),
        ("alice/secret", 2_000),
        ("alice/new", 3_000),
        ("bob/other", 4_000),
    ] {
        let body = format!(r#"{{"schemaVersion":2,"seed":"{name}"}}"#);
        let mut pushed = manifest(name, OCI_MANIFEST, body, &["latest"]);
        pushed.now = at;
        w.put(pushed).await;
    }
    let listed = |principal: Principal, page: u32, page_size: u32| {
        let hub = w.hub.clone();
        async move {
            let found = hub
                .in_namespace(&principal, "alice", page, page_size)
                .await
                .unwrap();
            let names: Vec<String> = found.results.into_iter().map(|r| r.name).collect();
            (found.total, names)
        }
    };
    let everything = ["alice/new", "alice/secret", "alice/old", "alice/empty"];
    assert_eq!(
        listed(alice.clone(), 1, 25).await,
        (4, everything.map(String::from).to_vec())
    );
    let public = ["alice/new", "alice/old", "alice/empty"]
        .map(String::from)
        .to_vec();
    assert_eq!(listed(outsider.clone(), 1, 25).await, (3, public.clone()));
    assert_eq!(listed(Principal::anonymous(), 1, 25).await, (3, public));
    // Pages count the same repositories, and the total never includes hidden ones.
    assert_eq!(
        listed(alice.clone(), 2, 2).await,
        (4, vec!["alice/old".to_owned(), "alice/empty".to_owned()])
    );
    assert_eq!(
        listed(outsider, 2, 2).await,
        (3, vec!["alice/empty".to_owned()])
    );
    // A token limited to some repositories lists only those.
    let limited = with_token(&alice, TokenScope::Read, &["alice/s*"]);
    assert_eq!(
        listed(limited, 1, 25).await,
        (1, vec!["alice/secret".to_owned()])
    );
    let missing = w.hub.in_namespace(&alice, "nobody", 1, 25).await;
    assert!(
        matches!(missing, Err(Error::AccountUnknown(_))),
        "{missing:?}"
    );
}
