//! Migration 0009 in SQLite: the media type kept per repository link, and upload sessions
//! counted per owner; a database from before it keeps serving what it held.

use berth_core::ports::{ManifestPlatform, Manifests, NewManifest, UploadSession, UploadSessions};
use berth_meta::SqliteMeta;
use berth_oci::{Digest, RepoName};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use std::path::Path;

const NOW: i64 = 1_700_000_000;
const OCI: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// A manifest body without a `mediaType` field: only the push says what type it is.
const BODY: &str = r#"{"schemaVersion":2,"layers":[]}"#;

/// The schema before migration 0009.
const BEFORE: &[&str] = &[
    include_str!("../migrations/sqlite/0001_registry.sql"),
    include_str!("../migrations/sqlite/0002_catalog_version.sql"),
    include_str!("../migrations/sqlite/0003_accounts.sql"),
    include_str!("../migrations/sqlite/0004_access.sql"),
    include_str!("../migrations/sqlite/0005_hub.sql"),
    include_str!("../migrations/sqlite/0006_platforms.sql"),
    include_str!("../migrations/sqlite/0007_sessions_and_totp_steps.sql"),
];

fn repo(name: &str) -> RepoName {
    name.parse().unwrap()
}

fn push(repo_name: &str, media_type: &str, tag: &str) -> NewManifest {
    NewManifest {
        repo: repo(repo_name),
        digest: Digest::sha256_of(BODY.as_bytes()),
        media_type: media_type.to_owned(),
        body: BODY.as_bytes().to_vec(),
        blobs: vec![],
        children: vec![],
        subject: None,
        artifact_type: None,
        annotations_json: None,
        platform: ManifestPlatform::None,
        tags: vec![tag.to_owned()],
        now: NOW,
        actor: None,
        events: Vec::new(),
    }
}

async fn served_type(meta: &SqliteMeta, repo_name: &str) -> (String, String) {
    let digest = Digest::sha256_of(BODY.as_bytes());
    let by_tag = meta
        .manifest_by_tag(&repo(repo_name), "v1")
        .await
        .unwrap()
        .unwrap();
    let by_digest = meta
        .manifest_by_digest(&repo(repo_name), &digest)
        .await
        .unwrap()
        .unwrap();
    (by_tag.media_type, by_digest.media_type)
}

#[tokio::test]
async fn each_repository_keeps_the_type_it_was_pushed_with() {
    let dir = tempfile::tempdir().unwrap();
    let meta = SqliteMeta::open(&dir.path().join("berth.db"))
        .await
        .unwrap();
    meta.put_manifest(&push("alice/oci", OCI, "v1"))
        .await
        .unwrap();
    meta.put_manifest(&push("alice/docker", DOCKER, "v1"))
        .await
        .unwrap();
    assert_eq!(
        served_type(&meta, "alice/oci").await,
        (OCI.into(), OCI.into())
    );
    assert_eq!(
        served_type(&meta, "alice/docker").await,
        (DOCKER.into(), DOCKER.into())
    );
}

/// Writes a database at schema version 7 with the manifest in `alice/app` and an upload
/// session from before owners were kept.
async fn database_from_before(path: &Path) {
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
    for (version, sql) in (1..).zip(BEFORE) {
        sqlx::raw_sql(sql).execute(&pool).await.unwrap();
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)")
            .bind(version)
            .bind(NOW)
            .execute(&pool)
            .await
            .unwrap();
    }
    let digest = Digest::sha256_of(BODY.as_bytes()).to_string();
    for sql in [
        "INSERT INTO repositories (id, name, namespace, created_at) VALUES (1, 'alice/app', 'alice', ?1)",
        "INSERT INTO manifests (digest, media_type, size, body, created_at) VALUES (?2, 'application/vnd.docker.distribution.manifest.v2+json', 31, ?3, ?1)",
        "INSERT INTO repository_manifests (repository_id, digest, pushed_at) VALUES (1, ?2, ?1)",
        "INSERT INTO tags (repository_id, name, digest, pushed_at) VALUES (1, 'v1', ?2, ?1)",
        "INSERT INTO upload_sessions (id, repository, size, created_at, updated_at) VALUES ('0123456789abcdef0123456789abcdef', 'alice/app', 0, ?1, ?1)",
    ] {
        sqlx::query(sql)
            .bind(NOW)
            .bind(&digest)
            .bind(BODY.as_bytes())
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
}

#[tokio::test]
async fn an_upgraded_database_serves_what_it_held() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    database_from_before(&path).await;
    let meta = SqliteMeta::open(&path).await.unwrap();
    assert_eq!(
        served_type(&meta, "alice/app").await,
        (DOCKER.into(), DOCKER.into()),
        "a link from before the migration serves the manifest row's type"
    );
    let old = meta
        .upload_session("0123456789abcdef0123456789abcdef")
        .await
        .unwrap()
        .expect("the old session survives");
    assert_eq!(old.owner, None);
    // A session without an owner counts against nobody.
    let session = |id: &str| UploadSession {
        id: id.to_owned(),
        repo: repo("alice/app"),
        size: 0,
        created_at: NOW,
        updated_at: NOW,
        owner: Some("alice".into()),
    };
    assert!(meta
        .create_upload_session(&session("a1"), Some(1))
        .await
        .unwrap());
    assert!(!meta
        .create_upload_session(&session("a2"), Some(1))
        .await
        .unwrap());
    assert!(meta
        .create_upload_session(&session("a3"), None)
        .await
        .unwrap());
}
