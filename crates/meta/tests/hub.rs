//! The Hub ports of the SQLite backend against a real database file: descriptions and the
//! search index, stars, pull accounting, search ranking, filters and privacy, the tags view.

use berth_core::ports::{
    Accounts, BlobLinks, HubStore, ManifestPlatform, Manifests, NewManifest, NewUser,
    Organizations, PullEvent, RepositoryAccess, RepositoryInfo, SearchQuery, SearchSort, TagSort,
    Viewer,
};
use berth_meta::SqliteMeta;
use berth_oci::{Digest, RepoName};
use tempfile::TempDir;

const NOW: i64 = 1_700_000_000;
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const IMAGE: &str = "application/vnd.oci.image.manifest.v1+json";

async fn open() -> (TempDir, SqliteMeta) {
    let dir = tempfile::tempdir().unwrap();
    let meta = SqliteMeta::open(&dir.path().join("berth.db"))
        .await
        .unwrap();
    (dir, meta)
}

fn repo(name: &str) -> RepoName {
    name.parse().unwrap()
}

async fn user(meta: &SqliteMeta, name: &str) -> i64 {
    meta.create_user(&NewUser {
        name: name.to_owned(),
        password_hash: format!("hash-of-{name}"),
        is_admin: false,
        now: NOW,
    })
    .await
    .unwrap()
}

async fn create(meta: &SqliteMeta, name: &str, private: bool) {
    meta.create_repository(&repo(name), Some(private), NOW, None)
        .await
        .unwrap();
}

async fn describe(meta: &SqliteMeta, name: &str, description: &str) {
    assert!(meta
        .set_descriptions(&repo(name), Some(description), None)
        .await
        .unwrap());
}

/// Pushes an image manifest (with one layer) under `tags`; returns its digest.
async fn push_image(meta: &SqliteMeta, name: &str, seed: &str, tags: &[&str], at: i64) -> Digest {
    let layer = Digest::sha256_of(seed.as_bytes());
    meta.link_blob(&repo(name), &layer, 5, at).await.unwrap();
    let body = format!("{{\"image\":\"{seed}\"}}").into_bytes();
    let digest = Digest::sha256_of(&body);
    meta.put_manifest(&NewManifest {
        repo: repo(name),
        digest: digest.clone(),
        media_type: IMAGE.into(),
        body,
        blobs: vec![layer],
        children: vec![],
        subject: None,
        artifact_type: None,
        annotations_json: None,
        platform: ManifestPlatform::None,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        now: at,
        actor: None,
        events: Vec::new(),
    })
    .await
    .unwrap();
    digest
}

async fn push_index(
    meta: &SqliteMeta,
    name: &str,
    children: &[Digest],
    tags: &[&str],
    at: i64,
) -> Digest {
    let body = format!("{{\"index\":{children:?}}}").into_bytes();
    let digest = Digest::sha256_of(&body);
    meta.put_manifest(&NewManifest {
        repo: repo(name),
        digest: digest.clone(),
        media_type: INDEX.into(),
        body,
        blobs: vec![],
        children: children.to_vec(),
        subject: None,
        artifact_type: None,
        annotations_json: None,
        platform: ManifestPlatform::None,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        now: at,
        actor: None,
        events: Vec::new(),
    })
    .await
    .unwrap();
    digest
}

fn pull(name: &str, digest: &Digest, tag: Option<&str>, at: i64) -> PullEvent {
    PullEvent {
        repo: repo(name),
        tag: tag.map(str::to_owned),
        digest: digest.clone(),
        at,
        pulls: 1,
    }
}

fn query(text: &str, viewer: Viewer) -> SearchQuery {
    SearchQuery {
        text: text.to_owned(),
        viewer,
        name_patterns: vec![],
        official_only: false,
        min_stars: 0,
        namespace: None,
        sort: SearchSort::Relevance,
        offset: 0,
        limit: 25,
    }
}

async fn search(meta: &SqliteMeta, query: &SearchQuery) -> (u64, Vec<String>) {
    let page = meta.search(query).await.unwrap();
    (
        page.total,
        page.results.into_iter().map(|r| r.name).collect(),
    )
}

async fn names(meta: &SqliteMeta, text: &str, viewer: Viewer) -> Vec<String> {
    search(meta, &query(text, viewer)).await.1
}

async fn info(meta: &SqliteMeta, name: &str) -> RepositoryInfo {
    meta.repository_info(&repo(name)).await.unwrap().unwrap()
}

/// Stars `name` by `count` fresh users.
async fn star_by(meta: &SqliteMeta, name: &str, count: usize) {
    for i in 0..count {
        let fan = user(meta, &format!("fan{i}-{}", name.replace('/', "-"))).await;
        assert!(meta.star(fan, &repo(name), NOW).await.unwrap());
    }
}

#[tokio::test]
async fn repository_details_start_empty_and_pushes_record_the_time() {
    let (_dir, meta) = open().await;
    create(&meta, "library/nginx", false).await;
    let fresh = info(&meta, "library/nginx").await;
    assert_eq!(fresh.description, "");
    assert_eq!((fresh.star_count, fresh.pull_count), (0, 0));
    assert_eq!((fresh.last_pushed_at, fresh.last_pulled_at), (None, None));
    assert!(fresh.is_official && !fresh.is_verified && !fresh.is_private);

    push_image(&meta, "library/nginx", "one", &["1.0"], NOW + 60).await;
    assert_eq!(
        info(&meta, "library/nginx").await.last_pushed_at,
        Some(NOW + 60)
    );
    assert_eq!(
        meta.repository_info(&repo("nobody/here")).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn descriptions_are_set_separately_and_feed_the_search_index() {
    let (_dir, meta) = open().await;
    create(&meta, "alice/edge", false).await;
    assert!(meta
        .set_descriptions(
            &repo("alice/edge"),
            Some("Fast reverse proxy"),
            Some("# Edge")
        )
        .await
        .unwrap());
    assert_eq!(names(&meta, "proxy", Viewer::Public).await, ["alice/edge"]);

    // Only the README changes: the short description stays.
    meta.set_descriptions(&repo("alice/edge"), None, Some("# Edge v2"))
        .await
        .unwrap();
    let edge = info(&meta, "alice/edge").await;
    assert_eq!(edge.description, "Fast reverse proxy");
    assert_eq!(edge.full_description, "# Edge v2");

    describe(&meta, "alice/edge", "Load balancer").await;
    assert!(names(&meta, "proxy", Viewer::Public).await.is_empty());
    assert_eq!(
        names(&meta, "balancer", Viewer::Public).await,
        ["alice/edge"]
    );

    assert!(meta
        .delete_repository(&repo("alice/edge"), None)
        .await
        .unwrap());
    assert!(names(&meta, "balancer", Viewer::Public).await.is_empty());
    assert!(!meta
        .set_descriptions(&repo("alice/edge"), Some("x"), None)
        .await
        .unwrap());
}

#[tokio::test]
async fn stars_are_counted_once_per_user() {
    let (_dir, meta) = open().await;
    let alice = user(&meta, "alice").await;
    let bob = user(&meta, "bob").await;
    create(&meta, "alice/app", false).await;
    assert!(meta.star(alice, &repo("alice/app"), NOW).await.unwrap());
    assert!(!meta.star(alice, &repo("alice/app"), NOW).await.unwrap());
    assert!(meta.star(bob, &repo("alice/app"), NOW).await.unwrap());
    assert_eq!(info(&meta, "alice/app").await.star_count, 2);
    assert!(meta.has_starred(bob, &repo("alice/app")).await.unwrap());

    assert!(meta.unstar(bob, &repo("alice/app")).await.unwrap());
    assert!(!meta.unstar(bob, &repo("alice/app")).await.unwrap());
    assert!(!meta.has_starred(bob, &repo("alice/app")).await.unwrap());
    assert_eq!(info(&meta, "alice/app").await.star_count, 1);
    assert!(!meta.star(bob, &repo("alice/missing"), NOW).await.unwrap());
}

#[tokio::test]
async fn an_index_and_its_platform_manifest_are_one_pull() {
    let (_dir, meta) = open().await;
    let name = "alice/multi";
    let amd64 = push_image(&meta, name, "amd64", &[], NOW).await;
    let arm64 = push_image(&meta, name, "arm64", &[], NOW).await;
    let index = push_index(
        &meta,
        name,
        &[amd64.clone(), arm64.clone()],
        &["latest"],
        NOW,
    )
    .await;
    let single = push_image(&meta, name, "single", &["solo"], NOW).await;

    // docker pull by tag: the index by tag, then its platform's manifest by digest.
    meta.record_pulls(&[
        pull(name, &index, Some("latest"), NOW + 10),
        pull(name, &amd64, None, NOW + 11),
    ])
    .await
    .unwrap();
    let after = info(&meta, name).await;
    assert_eq!(after.pull_count, 1);
    assert_eq!(after.last_pulled_at, Some(NOW + 11));

    // A single image by digest counts; a child fetched by digest alone does not, but still
    // marks the tags of its index as pulled.
    meta.record_pulls(&[
        pull(name, &single, None, NOW + 20),
        pull(name, &arm64, None, NOW + 30),
    ])
    .await
    .unwrap();
    assert_eq!(info(&meta, name).await.pull_count, 2);
    let (_, tags) = meta
        .tag_records(&repo(name), TagSort::Name, 0, 10)
        .await
        .unwrap();
    let pulled: Vec<(&str, Option<i64>)> = tags
        .iter()
        .map(|t| (t.name.as_str(), t.last_pulled_at))
        .collect();
    assert_eq!(
        pulled,
        [("latest", Some(NOW + 30)), ("solo", Some(NOW + 20))]
    );

    // Times only move forward, and repositories deleted since are skipped.
    meta.record_pulls(&[
        pull(name, &index, Some("latest"), NOW),
        pull("alice/gone", &index, Some("latest"), NOW),
    ])
    .await
    .unwrap();
    let later = info(&meta, name).await;
    assert_eq!(
        (later.pull_count, later.last_pulled_at),
        (3, Some(NOW + 30))
    );
}

#[tokio::test]
async fn a_pull_by_tag_marks_only_that_tag() {
    let (_dir, meta) = open().await;
    let name = "alice/app";
    let digest = push_image(&meta, name, "x", &["v1", "latest"], NOW).await;
    meta.record_pulls(&[pull(name, &digest, Some("v1"), NOW + 5)])
        .await
        .unwrap();
    let (_, tags) = meta
        .tag_records(&repo(name), TagSort::Name, 0, 10)
        .await
        .unwrap();
    let pulled: Vec<(&str, Option<i64>)> = tags
        .iter()
        .map(|t| (t.name.as_str(), t.last_pulled_at))
        .collect();
    assert_eq!(pulled, [("latest", None), ("v1", Some(NOW + 5))]);

    // By digest: every tag pointing at it.
    meta.record_pulls(&[pull(name, &digest, None, NOW + 9)])
        .await
        .unwrap();
    let (_, tags) = meta
        .tag_records(&repo(name), TagSort::Name, 0, 10)
        .await
        .unwrap();
    assert!(tags.iter().all(|t| t.last_pulled_at == Some(NOW + 9)));
}

#[tokio::test]
async fn exact_names_beat_prefixes_which_beat_words() {
    let (_dir, meta) = open().await;
    for name in [
        "carol/cache",
        "bob/redis-cache",
        "alice/redis",
        "dave/myredis",
        "erin/tools",
    ] {
        create(&meta, name, false).await;
    }
    describe(&meta, "carol/cache", "A Redis compatible store").await;
    describe(&meta, "erin/tools", "Nothing to see").await;

    assert_eq!(
        names(&meta, "redis", Viewer::Public).await,
        ["alice/redis", "bob/redis-cache", "carol/cache"]
    );
    // The whole name is as exact as the part after the namespace; its words still find
    // the others.
    assert_eq!(
        names(&meta, "Bob/Redis-Cache", Viewer::Public).await,
        ["bob/redis-cache", "alice/redis", "carol/cache"]
    );
    // A prefix of the name, or of a word in it.
    assert_eq!(
        names(&meta, "redi", Viewer::Public).await[..2],
        ["alice/redis", "bob/redis-cache"]
    );
    // A name that starts with the text outranks one that has it as a later word.
    assert_eq!(
        names(&meta, "cach", Viewer::Public).await,
        ["carol/cache", "bob/redis-cache"]
    );
    // Several words: all of them in sequence in the name outranks any one of them.
    assert_eq!(
        names(&meta, "redis cache", Viewer::Public).await,
        ["bob/redis-cache", "alice/redis", "carol/cache"]
    );
    assert!(names(&meta, "postgres", Viewer::Public).await.is_empty());
    assert!(names(&meta, "\"*(", Viewer::Public).await.is_empty());
}

#[tokio::test]
async fn stars_then_pulls_order_repositories_of_one_tier() {
    let (_dir, meta) = open().await;
    for name in ["alice/redis", "bob/redis", "carol/redis"] {
        create(&meta, name, false).await;
    }
    star_by(&meta, "carol/redis", 2).await;
    star_by(&meta, "bob/redis", 1).await;
    assert_eq!(
        names(&meta, "redis", Viewer::Public).await,
        ["carol/redis", "bob/redis", "alice/redis"]
    );
    // Enough pulls outweigh a star.
    let digest = push_image(&meta, "alice/redis", "a", &["latest"], NOW).await;
    let pulls: Vec<PullEvent> = (0..20)
        .map(|i| pull("alice/redis", &digest, Some("latest"), NOW + i))
        .collect();
    meta.record_pulls(&pulls).await.unwrap();
    assert_eq!(
        names(&meta, "redis", Viewer::Public).await,
        ["alice/redis", "carol/redis", "bob/redis"]
    );
    // An exact match still beats a popular prefix match.
    create(&meta, "dave/redis-popular", false).await;
    star_by(&meta, "dave/redis-popular", 3).await;
    assert_eq!(
        names(&meta, "redis", Viewer::Public).await[3],
        "dave/redis-popular"
    );
}

#[tokio::test]
async fn search_shows_only_what_the_viewer_may_read() {
    let (_dir, meta) = open().await;
    let alice = user(&meta, "alice").await;
    let bob = user(&meta, "bob").await;
    let carol = user(&meta, "carol").await;
    let acme = meta.create_org("acme", alice, NOW).await.unwrap();
    create(&meta, "alice/secret-app", true).await;
    create(&meta, "alice/public-app", false).await;
    create(&meta, "acme/internal-app", true).await;
    create(&meta, "acme/shared-app", true).await;
    create(&meta, "dave/collab-app", true).await;
    let dev = meta.create_team(acme.id, "dev", "").await.unwrap();
    meta.add_team_member(dev.id, bob, None).await.unwrap();
    let shared = meta
        .repository(&repo("acme/shared-app"))
        .await
        .unwrap()
        .unwrap();
    meta.grant_team(dev.id, shared.id, berth_core::ports::Permission::Read, None)
        .await
        .unwrap();
    let collab = meta
        .repository(&repo("dave/collab-app"))
        .await
        .unwrap()
        .unwrap();
    meta.set_collaborator(collab.id, carol, berth_core::ports::Permission::Read, None)
        .await
        .unwrap();

    let sees = |viewer| {
        let meta = &meta;
        async move {
            let page = search(meta, &query("app", viewer)).await;
            // A one-result page leaves the total to be counted rather than seen.
            let mut first = query("app", viewer);
            first.limit = 1;
            assert_eq!(search(meta, &first).await.0, page.0, "{viewer:?}");
            let mut listing = query("", viewer);
            listing.limit = 1;
            assert_eq!(search(meta, &listing).await.0, page.0, "{viewer:?}");
            page
        }
    };
    assert_eq!(
        sees(Viewer::Public).await,
        (1, vec!["alice/public-app".to_owned()])
    );
    assert_eq!(
        sees(Viewer::User(bob)).await,
        (
            2,
            vec!["acme/shared-app".to_owned(), "alice/public-app".to_owned()]
        )
    );
    assert_eq!(
        sees(Viewer::User(carol)).await,
        (
            2,
            vec!["alice/public-app".to_owned(), "dave/collab-app".to_owned()]
        )
    );
    // Alice owns her namespace and, through the owners team, acme's.
    assert_eq!(sees(Viewer::User(alice)).await.0, 4);
    assert_eq!(
        sees(Viewer::Organization(acme.id)).await,
        (
            3,
            vec![
                "acme/internal-app".to_owned(),
                "acme/shared-app".to_owned(),
                "alice/public-app".to_owned()
            ]
        )
    );
    assert_eq!(sees(Viewer::Everything).await.0, 5);

    // A token's patterns narrow further.
    let mut narrowed = query("app", Viewer::User(alice));
    narrowed.name_patterns = vec!["alice/*".into()];
    assert_eq!(
        search(&meta, &narrowed).await,
        (
            2,
            vec!["alice/public-app".to_owned(), "alice/secret-app".to_owned()]
        )
    );
    narrowed.name_patterns = vec!["acme/shared-*".into(), "*/public-app".into()];
    assert_eq!(search(&meta, &narrowed).await.0, 2);

    narrowed.limit = 1;
    assert_eq!(search(&meta, &narrowed).await.0, 2);

    // With no text, everything visible is listed.
    assert_eq!(search(&meta, &query("", Viewer::Public)).await.0, 1);
    assert_eq!(search(&meta, &query("  ", Viewer::User(bob))).await.0, 2);

    // Visibility changes reach the index.
    meta.set_repository_private(&repo("alice/public-app"), true, None)
        .await
        .unwrap();
    assert_eq!(sees(Viewer::Public).await, (0, vec![]));
    meta.set_repository_private(&repo("alice/secret-app"), false, None)
        .await
        .unwrap();
    assert_eq!(
        sees(Viewer::Public).await,
        (1, vec!["alice/secret-app".to_owned()])
    );
    assert_eq!(sees(Viewer::User(bob)).await.0, 2);
}

#[tokio::test]
async fn filters_sorts_and_pages() {
    let (_dir, meta) = open().await;
    for name in ["library/web", "alice/web", "alice/web-extra", "bob/web"] {
        create(&meta, name, false).await;
    }
    star_by(&meta, "bob/web", 3).await;
    star_by(&meta, "alice/web-extra", 5).await;
    let digest = push_image(&meta, "alice/web", "w", &["latest"], NOW + 100).await;
    push_image(&meta, "library/web", "l", &["latest"], NOW + 50).await;
    let pulls: Vec<PullEvent> = (0..50)
        .map(|_| pull("alice/web", &digest, Some("latest"), NOW))
        .collect();
    meta.record_pulls(&pulls).await.unwrap();

    let mut q = query("web", Viewer::Public);
    q.official_only = true;
    assert_eq!(search(&meta, &q).await.1, ["library/web"]);
    assert!(info(&meta, "library/web").await.is_official);

    let mut q = query("web", Viewer::Public);
    q.min_stars = 3;
    assert_eq!(search(&meta, &q).await.1, ["bob/web", "alice/web-extra"]);

    let mut q = query("web", Viewer::Public);
    q.namespace = Some("alice".into());
    assert_eq!(search(&meta, &q).await.1, ["alice/web", "alice/web-extra"]);

    let sorted = |sort| {
        let meta = &meta;
        async move {
            let mut q = query("web", Viewer::Public);
            q.sort = sort;
            search(meta, &q).await.1
        }
    };
    assert_eq!(
        sorted(SearchSort::Stars).await,
        ["alice/web-extra", "bob/web", "alice/web", "library/web"]
    );
    // The explicit sorts replace relevance: the prefix match is not ranked lower.
    assert_eq!(
        sorted(SearchSort::Pulls).await,
        ["alice/web", "alice/web-extra", "bob/web", "library/web"]
    );
    // Never pushed sorts last.
    assert_eq!(
        sorted(SearchSort::LastUpdated).await,
        ["alice/web", "library/web", "alice/web-extra", "bob/web"]
    );
    // The same orders without text.
    let mut listing = query("", Viewer::Public);
    listing.sort = SearchSort::Pulls;
    assert_eq!(
        search(&meta, &listing).await.1,
        ["alice/web", "alice/web-extra", "bob/web", "library/web"]
    );
    listing.sort = SearchSort::Stars;
    assert_eq!(
        search(&meta, &listing).await.1,
        ["alice/web-extra", "bob/web", "alice/web", "library/web"]
    );

    let mut q = query("web", Viewer::Public);
    q.limit = 3;
    assert_eq!(search(&meta, &q).await.1.len(), 3);
    q.offset = 3;
    assert_eq!(
        search(&meta, &q).await,
        (4, vec!["alice/web-extra".to_owned()])
    );
    q.offset = 30;
    assert_eq!(search(&meta, &q).await, (4, vec![]));
}

#[tokio::test]
async fn organizations_are_marked_verified_and_listings_show_it() {
    let (_dir, meta) = open().await;
    let alice = user(&meta, "alice").await;
    meta.create_org("acme", alice, NOW).await.unwrap();
    create(&meta, "acme/tool", false).await;
    assert!(!meta.org_verified("acme").await.unwrap());
    assert!(meta.set_org_verified("acme", true).await.unwrap());
    assert!(meta.org_verified("acme").await.unwrap());
    assert!(info(&meta, "acme/tool").await.is_verified);
    let page = meta.search(&query("tool", Viewer::Public)).await.unwrap();
    assert!(page.results[0].is_verified);
    assert!(!meta.set_org_verified("nobody", true).await.unwrap());
    assert!(!meta.org_verified("nobody").await.unwrap());
}

#[tokio::test]
async fn tags_page_in_the_order_asked() {
    let (_dir, meta) = open().await;
    let name = "alice/app";
    let a = push_image(&meta, name, "a", &["a"], NOW + 3).await;
    push_image(&meta, name, "b", &["b"], NOW + 1).await;
    let c = push_image(&meta, name, "c", &["c"], NOW + 2).await;
    meta.record_pulls(&[
        pull(name, &c, Some("c"), NOW + 10),
        pull(name, &a, Some("a"), NOW + 20),
    ])
    .await
    .unwrap();
    let order = |sort, offset, limit| {
        let meta = &meta;
        async move {
            let (total, tags) = meta
                .tag_records(&repo(name), sort, offset, limit)
                .await
                .unwrap();
            (total, tags.into_iter().map(|t| t.name).collect::<Vec<_>>())
        }
    };
    assert_eq!(order(TagSort::LastPushed, 0, 10).await.1, ["a", "c", "b"]);
    assert_eq!(order(TagSort::LastPulled, 0, 10).await.1, ["a", "c", "b"]);
    assert_eq!(order(TagSort::Name, 1, 1).await, (3, vec!["b".to_owned()]));
    let (_, tags) = meta
        .tag_records(&repo(name), TagSort::Name, 0, 1)
        .await
        .unwrap();
    assert_eq!(tags[0].digest, a);
    assert_eq!(tags[0].media_type, IMAGE);
    assert_eq!(tags[0].body, b"{\"image\":\"a\"}");
    assert_eq!(tags[0].pushed_at, NOW + 3);
    assert_eq!(
        meta.tag_records(&repo("alice/none"), TagSort::Name, 0, 10)
            .await
            .unwrap(),
        (0, vec![])
    );
}

#[tokio::test]
async fn upgrading_fills_in_last_pushed_and_indexes_existing_repositories() {
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    // A database as the previous release left it: schema version 4, one pushed image.
    let old = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true),
        )
        .await
        .unwrap();
    let schema = [
        include_str!("../migrations/sqlite/0001_registry.sql"),
        include_str!("../migrations/sqlite/0002_catalog_version.sql"),
        include_str!("../migrations/sqlite/0003_accounts.sql"),
        include_str!("../migrations/sqlite/0004_access.sql"),
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);
         INSERT INTO schema_migrations VALUES (1, 0), (2, 0), (3, 0), (4, 0);
         INSERT INTO repositories (id, name, namespace, is_private, created_at)
             VALUES (1, 'team/old-timer', 'team', 0, 100), (2, 'team/empty', 'team', 0, 100);
         INSERT INTO manifests (digest, media_type, size, body, created_at)
             VALUES ('sha256:aa', 'x', 2, x'7b7d', 100);
         INSERT INTO repository_manifests VALUES (1, 'sha256:aa', 150);
         INSERT INTO tags (repository_id, name, digest, pushed_at) VALUES (1, 'v1', 'sha256:aa', 200);",
    ];
    for sql in schema {
        sqlx::raw_sql(sql).execute(&old).await.unwrap();
    }
    old.close().await;

    let meta = SqliteMeta::open(&path).await.unwrap();
    assert_eq!(
        info(&meta, "team/old-timer").await.last_pushed_at,
        Some(200)
    );
    assert_eq!(info(&meta, "team/empty").await.last_pushed_at, None);
    assert_eq!(
        names(&meta, "timer", Viewer::Public).await,
        ["team/old-timer"]
    );
}

#[tokio::test]
async fn paging_one_at_a_time_gives_the_order_of_one_page() {
    let (_dir, meta) = open().await;
    let alice = user(&meta, "alice").await;
    // Exact, prefix and word matches with varied popularity, some private, and others.
    for i in 0..24 {
        let name = match i % 4 {
            0 => format!("team{i}/web"),
            1 => format!("team{i}/web-app"),
            2 => format!("team{i}/tool"),
            _ => format!("team{i}/other"),
        };
        create(&meta, &name, i % 5 == 0).await;
        if i % 4 == 2 {
            describe(&meta, &name, "a web tool").await;
        }
        for fan in 0..(i * 7) % 5 {
            let fan = user(&meta, &format!("fan{i}x{fan}")).await;
            meta.star(fan, &repo(&name), NOW).await.unwrap();
        }
    }
    create(&meta, "alice/web", true).await;
    for viewer in [Viewer::Public, Viewer::User(alice), Viewer::Everything] {
        for sort in [
            SearchSort::Relevance,
            SearchSort::Stars,
            SearchSort::LastUpdated,
        ] {
            let mut whole = query("web", viewer);
            whole.sort = sort;
            let (total, expected) = search(&meta, &whole).await;
            assert_eq!(total as usize, expected.len());
            let mut one_by_one = Vec::new();
            for offset in 0..=total as u32 {
                let mut single = whole.clone();
                single.limit = 1;
                single.offset = offset;
                let (seen_total, names) = search(&meta, &single).await;
                assert_eq!(seen_total, total, "{viewer:?} {sort:?} at {offset}");
                one_by_one.extend(names);
            }
            assert_eq!(one_by_one, expected, "{viewer:?} {sort:?}");
        }
    }
}
