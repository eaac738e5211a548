//! Image platforms in SQLite: stored with the manifest row; an upgraded database awaits the backfill.

use berth_core::ports::{HubStore, ManifestPlatform, Manifests, NewManifest, TagSort};
use berth_meta::SqliteMeta;
use berth_oci::{Digest, Platform, RepoName};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use std::path::Path;

const NOW: i64 = 1_700_000_000;
const IMAGE: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The schema as Berth had it before platforms were recorded.
const BEFORE_PLATFORMS: &[&str] = &[
    include_str!("../migrations/sqlite/0001_registry.sql"),
    include_str!("../migrations/sqlite/0002_catalog_version.sql"),
    include_str!("../migrations/sqlite/0003_accounts.sql"),
    include_str!("../migrations/sqlite/0004_access.sql"),
    include_str!("../migrations/sqlite/0005_hub.sql"),
];

fn repo(name: &str) -> RepoName {
    name.parse().unwrap()
}

fn arm64() -> Platform {
    Platform {
        os: "linux".into(),
        architecture: "arm64".into(),
        variant: Some("v8".into()),
    }
}

/// A manifest of `body` in `alice/app`, tagged `tag`, referencing nothing.
fn manifest(body: &str, media_type: &str, tag: &str, platform: ManifestPlatform) -> NewManifest {
    NewManifest {
        repo: repo("alice/app"),
        digest: Digest::sha256_of(body.as_bytes()),
        media_type: media_type.to_owned(),
        body: body.as_bytes().to_vec(),
        blobs: vec![],
        children: vec![],
        subject: None,
        artifact_type: None,
        annotations_json: None,
        platform,
        tags: vec![tag.to_owned()],
        now: NOW,
        actor: None,
        events: Vec::new(),
    }
}

/// The platform the tags view gets for each tag, by tag name.
async fn platforms(meta: &SqliteMeta) -> Vec<(String, Option<Platform>)> {
    let (_, records) = meta
        .tag_records(&repo("alice/app"), TagSort::Name, 0, 100)
        .await
        .unwrap();
    records.into_iter().map(|r| (r.name, r.platform)).collect()
}

async fn unread(meta: &SqliteMeta, after: Option<&Digest>) -> Vec<Digest> {
    meta.manifests_without_platform(after, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.digest)
        .collect()
}

/// Writes a database at schema version 5 holding an image and an index in `alice/app`, as
/// the Berth of that version stored them; their digests, in digest order.
async fn database_from_before_platforms(path: &Path) -> Vec<Digest> {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .foreign_keys(true),
        )
        .await
        .unwrap();
    sqlx::raw_sql(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )
    .execute(&pool)
    .await
    .unwrap();
    for (version, sql) in (1..).zip(BEFORE_PLATFORMS) {
        sqlx::raw_sql(sql).execute(&pool).await.unwrap();
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)")
            .bind(version)
            .bind(NOW)
            .execute(&pool)
            .await
            .unwrap();
    }
    sqlx::query("INSERT INTO repositories (id, name, namespace, created_at) VALUES (1, 'alice/app', 'alice', ?)")
        .bind(NOW)
        .execute(&pool)
        .await
        .unwrap();
    let mut digests = Vec::new();
    for (tag, media_type, body) in [
        ("image", IMAGE, r#"{"schemaVersion":2,"old":"image"}"#),
        ("index", INDEX, r#"{"schemaVersion":2,"old":"index"}"#),
    ] {
        let digest = Digest::sha256_of(body.as_bytes());
        sqlx::query(
            "INSERT INTO manifests (digest, media_type, size, body, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(digest.to_string())
        .bind(media_type)
        .bind(body.len() as i64)
        .bind(body.as_bytes())
        .bind(NOW)
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO repository_manifests (repository_id, digest, pushed_at) VALUES (1, ?, ?)",
        )
        .bind(digest.to_string())
        .bind(NOW)
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO tags (repository_id, name, digest, pushed_at) VALUES (1, ?, ?, ?)",
        )
        .bind(tag)
        .bind(digest.to_string())
        .bind(NOW)
        .execute(&pool)
        .await
        .unwrap();
        digests.push(digest);
    }
    pool.close().await;
    digests.sort_by_key(|d| d.to_string());
    digests
}

#[tokio::test]
async fn an_upgraded_database_keeps_its_manifests_waiting_for_the_backfill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    let old = database_from_before_platforms(&path).await;
    let meta = SqliteMeta::open(&path).await.unwrap();

    // Nothing is known yet, and everything stored before is waiting, a page at a time.
    assert_eq!(
        platforms(&meta).await,
        [("image".to_owned(), None), ("index".to_owned(), None)]
    );
    assert_eq!(unread(&meta, None).await, old);
    assert_eq!(unread(&meta, Some(&old[0])).await, &old[1..]);
    assert!(unread(&meta, Some(&old[1])).await.is_empty());

    let image = Digest::sha256_of(br#"{"schemaVersion":2,"old":"image"}"#);
    let index = Digest::sha256_of(br#"{"schemaVersion":2,"old":"index"}"#);
    meta.record_platforms(&[(image, Some(arm64())), (index, None)])
        .await
        .unwrap();
    assert_eq!(
        platforms(&meta).await,
        [
            ("image".to_owned(), Some(arm64())),
            ("index".to_owned(), None)
        ]
    );
    assert!(
        unread(&meta, None).await.is_empty(),
        "the backfill has nothing left"
    );
    meta.close().await;

    // Opening again migrates nothing and finds nothing to read.
    let meta = SqliteMeta::open(&path).await.unwrap();
    assert!(unread(&meta, None).await.is_empty());
    assert_eq!(platforms(&meta).await[0].1, Some(arm64()));
}

#[tokio::test]
async fn a_push_stores_the_platform_with_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let meta = SqliteMeta::open(&dir.path().join("berth.db"))
        .await
        .unwrap();
    let image = r#"{"schemaVersion":2,"image":1}"#;
    meta.put_manifest(&manifest(
        image,
        IMAGE,
        "arm",
        ManifestPlatform::Known(arm64()),
    ))
    .await
    .unwrap();
    let artifact = r#"{"schemaVersion":2,"artifact":1}"#;
    meta.put_manifest(&manifest(artifact, IMAGE, "chart", ManifestPlatform::None))
        .await
        .unwrap();
    assert_eq!(
        platforms(&meta).await,
        [
            ("arm".to_owned(), Some(arm64())),
            ("chart".to_owned(), None)
        ]
    );
    assert!(unread(&meta, None).await.is_empty());

    // A configuration that could not be read leaves the manifest to the backfill, until a
    // push that reads it settles it.
    let unlucky = r#"{"schemaVersion":2,"image":2}"#;
    meta.put_manifest(&manifest(unlucky, IMAGE, "later", ManifestPlatform::Unread))
        .await
        .unwrap();
    let unlucky_digest = Digest::sha256_of(unlucky.as_bytes());
    assert_eq!(
        unread(&meta, None).await,
        std::slice::from_ref(&unlucky_digest)
    );
    meta.put_manifest(&manifest(
        unlucky,
        IMAGE,
        "again",
        ManifestPlatform::Known(arm64()),
    ))
    .await
    .unwrap();
    assert!(unread(&meta, None).await.is_empty());
    let recorded = platforms(&meta).await;
    assert!(recorded.contains(&("later".to_owned(), Some(arm64()))));
    assert!(recorded.contains(&("again".to_owned(), Some(arm64()))));

    // The backfill never overwrites what a push recorded meanwhile.
    meta.record_platforms(&[(unlucky_digest, None)])
        .await
        .unwrap();
    assert!(platforms(&meta)
        .await
        .contains(&("later".to_owned(), Some(arm64()))));
}
