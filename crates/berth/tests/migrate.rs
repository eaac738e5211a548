//! `berth migrate --to-config NEW.toml [--resume]` end to end through the binary: a varied
//! single-node data directory (several namespaces, a multi-arch index, a referrer, a second
//! account with an access token, an organization, a star, a webhook) moved into a real
//! PostgreSQL and a real Garage, interrupted twice (`abort()`, as `kill -9`) and finished
//! with `--resume`; then `berth serve` on the new configuration gives every manifest and
//! blob back byte for byte, takes the old password and token, and signs webhook deliveries
//! with the old secret. Also: the table plan covers every SQLite table, and a target that
//! holds data is refused.
//!
//! Skipped with a loud notice without PostgreSQL or Garage; required under `CI=true`.

mod common;

use berth_meta::transfer::{TargetState, Transfer, SEEDED_BY_MIGRATIONS};
use berth_meta::{PostgresMeta, SqliteMeta};
use berth_testkit::garage::Garage;
use berth_testkit::receiver::Receiver;
use common::{
    basic_auth, expect_status, sha256, PushedManifest, SpawnOptions, TestServer, MANIFEST_ACCEPT,
    MT_OCI_INDEX,
};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

const BOB_PASSWORD: &str = "bobs-long-password";

/// Runs `berth migrate ARGS` on the data directory `source`, with `abort_at` as the test
/// hook, and no `BERTH_*` settings from the test's environment.
fn migrate(source: &Path, args: &[&str], abort_at: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .arg("migrate")
        .args(args)
        .arg("--data-dir")
        .arg(source);
    for (key, _) in std::env::vars() {
        if key.starts_with("BERTH_") {
            command.env_remove(key);
        }
    }
    if let Some(point) = abort_at {
        command.env("BERTH_TEST_MIGRATE_ABORT_AT", point);
    }
    command.output().expect("run berth migrate")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A manifest and every blob it names, pulled from `server`, must be the pushed bytes.
async fn pull_back(server: &TestServer, pushed: &PushedManifest, reference: &str) {
    let resp = server
        .client()
        .get(server.url(&format!("/v2/{}/manifests/{reference}", pushed.repo)))
        .header("Accept", MANIFEST_ACCEPT)
        .send()
        .await
        .unwrap();
    let (_, body) = expect_status(resp, 200, &format!("{}:{reference}", pushed.repo)).await;
    assert_eq!(
        body, pushed.bytes,
        "{}:{reference} byte for byte",
        pushed.repo
    );
    for blob in &pushed.blobs {
        let resp = server.get_blob(&pushed.repo, blob).await;
        let (_, body) = expect_status(resp, 200, &format!("blob {blob}")).await;
        assert_eq!(&sha256(&body), blob, "blob {blob} of {}", pushed.repo);
    }
}

/// A multi-arch index over two images pushed by digest, tagged `tag`.
async fn push_index(
    server: &TestServer,
    repo: &str,
    tag: &str,
) -> (PushedManifest, Vec<PushedManifest>) {
    let amd = server.push_random_image(repo, None).await;
    let arm = server.push_random_image(repo, None).await;
    let entry = |image: &PushedManifest, arch: &str| {
        json!({
            "mediaType": image.media_type,
            "digest": image.digest,
            "size": image.bytes.len(),
            "platform": { "architecture": arch, "os": "linux" },
        })
    };
    let index = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": MT_OCI_INDEX,
        "manifests": [entry(&amd, "amd64"), entry(&arm, "arm64")],
    }))
    .unwrap();
    server
        .push_manifest_ok(repo, Some(tag), MT_OCI_INDEX, &index)
        .await;
    (
        PushedManifest::new(repo, index, MT_OCI_INDEX, Vec::new()),
        vec![amd, arm],
    )
}

async fn send_json(server: &TestServer, method: reqwest::Method, path: &str, body: Value) -> Value {
    let resp = server
        .request(method, path)
        .json(&body)
        .send()
        .await
        .unwrap();
    let (_, bytes) = expect_status_2xx(resp, path).await;
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

async fn expect_status_2xx(resp: reqwest::Response, context: &str) -> (u16, Vec<u8>) {
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap_or_default().to_vec();
    assert!(
        (200..300).contains(&status),
        "{context}: {status} {}",
        text(&body)
    );
    (status, body)
}

#[tokio::test]
async fn a_single_node_moves_to_postgres_and_garage_byte_for_byte() {
    const TEST: &str = "a_single_node_moves_to_postgres_and_garage_byte_for_byte";
    let Some(db) = berth_testkit::postgres::database(TEST) else {
        return;
    };
    let Some(garage) = Garage::start_or_skip(TEST) else {
        return;
    };
    let receiver = Receiver::start().await;
    let private_hooks = SpawnOptions::default().env("BERTH_WEBHOOK_ALLOW_PRIVATE", "true");

    // The single node and its data.
    let mut old = TestServer::spawn_with(private_hooks.clone()).await;
    send_json(
        &old,
        reqwest::Method::POST,
        "/api/v1/users",
        json!({ "username": "bob", "password": BOB_PASSWORD }),
    )
    .await;
    let resp = reqwest::Client::new()
        .post(old.url("/api/v1/access-tokens"))
        .header("Authorization", basic_auth("bob", BOB_PASSWORD))
        .json(&json!({ "token_label": "ci", "scopes": ["repo:read"] }))
        .send()
        .await
        .unwrap();
    let (_, body) = expect_status(resp, 201, "bob's token").await;
    let token = serde_json::from_slice::<Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    send_json(
        &old,
        reqwest::Method::POST,
        "/api/v1/orgs",
        json!({ "orgname": "acme" }),
    )
    .await;

    let mut images = vec![
        (old.push_random_image("admin/app", Some("v1")).await, "v1"),
        (old.push_random_image("admin/app", Some("v2")).await, "v2"),
        (
            old.push_random_image("bob/tool", Some("latest")).await,
            "latest",
        ),
        (
            old.push_random_image("acme/service", Some("1.0")).await,
            "1.0",
        ),
    ];
    let (index, children) = push_index(&old, "acme/multi", "latest").await;
    let sbom = old
        .push_artifact(
            "admin/app",
            "application/vnd.example.sbom",
            &images[0].0.descriptor(),
            &[],
        )
        .await;
    let resp = old
        .request(
            reqwest::Method::PUT,
            "/api/v1/repositories/acme/service/-/star",
        )
        .send()
        .await
        .unwrap();
    expect_status_2xx(resp, "star").await;
    let hook = send_json(
        &old,
        reqwest::Method::POST,
        "/api/v1/repositories/admin/app/-/webhooks",
        json!({ "hook_url": receiver.url.clone() }),
    )
    .await;
    let secret = hook["secret"]
        .as_str()
        .expect("the webhook's secret")
        .to_owned();
    old.signal("TERM");
    assert!(
        old.wait_exit(Duration::from_secs(60)).await.is_some(),
        "the old node did not stop; log:\n{}",
        old.log()
    );
    let source = old.data_dir().unwrap().to_path_buf();

    // The new deployment's configuration.
    let new = tempfile::tempdir().unwrap();
    let shared_key = new.path().join("shared/secrets.key");
    let config = new.path().join("new.toml");
    std::fs::write(
        &config,
        format!(
            r#"database_url = "{url}"
data_dir = "{node}"
secrets_key_file = "{key}"

[storage]
kind = "s3"
endpoint = "{endpoint}"
region = "{region}"
bucket = "{bucket}"
access_key_id = "{id}"
secret_access_key = "{secret}"
path_style = true
redirect = false
"#,
            url = db.url,
            node = new.path().join("node").display(),
            key = shared_key.display(),
            endpoint = garage.endpoint,
            region = garage.region,
            bucket = garage.bucket,
            id = garage.access_key_id,
            secret = garage.secret_access_key,
        ),
    )
    .unwrap();
    let to = ["--to-config", config.to_str().unwrap()];

    // Interrupted among the blobs: the database is still empty, so a plain rerun goes on.
    let out = migrate(&source, &to, Some("blob:3"));
    assert!(
        !out.status.success(),
        "the hook did not stop it: {}",
        text(&out.stdout)
    );
    // Interrupted with the tags written but not committed.
    let out = migrate(&source, &to, Some("table:tags"));
    assert!(
        !out.status.success(),
        "the hook did not stop it: {}",
        text(&out.stdout)
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("; 3 were there already"),
        "the blobs copied before were not copied again: {stdout}"
    );
    assert!(stdout.contains("copied table repositories"), "{stdout}");
    assert!(!stdout.contains("copied table tags"), "{stdout}");

    // Without --resume, the half-filled target is refused in one line.
    let out = migrate(&source, &to, None);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("is not empty") && stderr.contains("--resume"),
        "{stderr}"
    );

    let out = migrate(&source, &[&to[..], &["--resume"]].concat(), None);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("table repositories was copied before"),
        "{stdout}"
    );
    assert!(stdout.contains("copied table tags"), "{stdout}");
    assert!(stdout.contains("verified"), "{stdout}");
    assert!(shared_key.is_file(), "the sealing key travelled");

    // A node started on the new configuration file serves all of it.
    let on_new = private_hooks.env("BERTH_CONFIG", config.to_str().unwrap());
    let node = TestServer::spawn_with(on_new).await;
    for (image, tag) in &images {
        pull_back(&node, image, tag).await;
        pull_back(&node, image, &image.digest).await;
    }
    pull_back(&node, &index, "latest").await;
    for child in &children {
        pull_back(&node, child, &child.digest).await;
    }
    pull_back(&node, &sbom, &sbom.digest).await;
    let resp = node.referrers("admin/app", &images[0].0.digest, "").await;
    let (_, body) = expect_status(resp, 200, "referrers").await;
    assert!(text(&body).contains(&sbom.digest), "{}", text(&body));
    assert_eq!(node.tags("admin/app").await, ["v1", "v2"]);

    // The old password and the old token sign in; the token still reads.
    for secret in [BOB_PASSWORD, token.as_str()] {
        let resp = reqwest::Client::new()
            .get(node.url("/v2/"))
            .header("Authorization", basic_auth("bob", secret))
            .send()
            .await
            .unwrap();
        expect_status(resp, 200, "bob signs in with what he had").await;
    }
    let resp = reqwest::Client::new()
        .get(node.url("/v2/"))
        .header("Authorization", basic_auth("bob", "a-wrong-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "a wrong password still fails");

    // The organization and the star came along.
    let resp = node
        .request(reqwest::Method::GET, "/api/v1/orgs/acme")
        .send()
        .await
        .unwrap();
    expect_status(resp, 200, "the organization").await;
    let resp = node
        .request(reqwest::Method::GET, "/api/v1/repositories/acme/service")
        .send()
        .await
        .unwrap();
    let (_, body) = expect_status(resp, 200, "the starred repository").await;
    let repository: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(repository["star_count"], 1, "{repository}");

    // The webhook fires on a push to the new deployment, signed with its old secret.
    images.push((node.push_random_image("admin/app", Some("v3")).await, "v3"));
    let deliveries = receiver.collect(1, Duration::from_secs(120)).await;
    assert!(!deliveries.is_empty(), "no delivery; log:\n{}", node.log());
    assert!(
        deliveries.iter().any(|d| d.signed_with(&secret)),
        "deliveries are not signed with the secret made before the migration"
    );
}

#[tokio::test]
async fn the_copy_plan_accounts_for_every_sqlite_table() {
    const TEST: &str = "the_copy_plan_accounts_for_every_sqlite_table";
    let Some(db) = berth_testkit::postgres::database(TEST) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteMeta::open(&dir.path().join("berth.db"))
        .await
        .unwrap();
    let postgres = PostgresMeta::connect(&db.url).await.unwrap();
    let transfer = Transfer::plan(&sqlite, &postgres)
        .await
        .unwrap_or_else(|e| panic!("a SQLite table or column has no PostgreSQL counterpart: {e}"));

    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("berth.db").display()
    ))
    .await
    .unwrap();
    let all: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut accounted: Vec<String> = transfer
        .tables()
        .into_iter()
        .map(str::to_owned)
        .chain(transfer.left_out().iter().map(|(name, _)| name.clone()))
        .collect();
    accounted.sort();
    assert_eq!(
        accounted, all,
        "every table is either copied or left out with a reason"
    );
    // Only these are left out; leaving out another must be a decision made here.
    for (name, why) in transfer.left_out() {
        assert!(
            ["upload_sessions", "sqlite_sequence", "schema_migrations"].contains(&name.as_str())
                || name.starts_with("repository_search"),
            "{name} is left out ({why})"
        );
    }
    for table in [
        "users",
        "access_tokens",
        "manifests",
        "tags",
        "blobs",
        "audit_log",
        "webhooks",
        "stars",
    ] {
        assert!(transfer.tables().contains(&table), "{table} is copied");
    }

    // A freshly migrated PostgreSQL holds rows only where its migrations seed them, and
    // counts as empty.
    assert_eq!(transfer.target_state().await.unwrap(), TargetState::Empty);
    for count in transfer.counts().await.unwrap() {
        assert!(
            count.target == 0 || SEEDED_BY_MIGRATIONS.contains(&count.table.as_str()),
            "a fresh schema has rows in {}, which SEEDED_BY_MIGRATIONS does not name",
            count.table
        );
    }
    pool.close().await;
    sqlite.close().await;
    postgres.close().await;
}

#[tokio::test]
async fn a_target_holding_data_is_refused_and_an_empty_one_on_a_filesystem_is_filled() {
    const TEST: &str =
        "a_target_holding_data_is_refused_and_an_empty_one_on_a_filesystem_is_filled";
    let Some(occupied) = berth_testkit::postgres::database(TEST) else {
        return;
    };
    let Some(empty) = berth_testkit::postgres::database(TEST) else {
        return;
    };
    let mut old = TestServer::spawn().await;
    let pushed = old.push_random_image("admin/app", Some("v1")).await;
    old.signal("TERM");
    assert!(old.wait_exit(Duration::from_secs(60)).await.is_some());
    let source = old.data_dir().unwrap().to_path_buf();

    // A node that ran on the target made its first admin there.
    let first =
        TestServer::spawn_with(SpawnOptions::default().env("BERTH_DATABASE_URL", &occupied.url))
            .await;
    drop(first);
    let new = tempfile::tempdir().unwrap();
    let to_occupied = new.path().join("occupied.toml");
    std::fs::write(
        &to_occupied,
        format!(
            "database_url = \"{}\"\ndata_dir = \"{}\"\n",
            occupied.url,
            new.path().join("occupied-data").display()
        ),
    )
    .unwrap();
    for extra in [&[][..], &["--resume"][..]] {
        let mut args = vec!["--to-config", to_occupied.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = migrate(&source, &args, None);
        assert!(!out.status.success());
        let stderr = text(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("is not empty (table ")
                && stderr.contains("has rows that no migration wrote"),
            "{stderr}"
        );
    }

    let node_dir = tempfile::TempDir::new_in(new.path()).unwrap();
    let to_empty = new.path().join("empty.toml");
    std::fs::write(
        &to_empty,
        format!(
            "database_url = \"{}\"\ndata_dir = \"{}\"\n",
            empty.url,
            node_dir.path().display()
        ),
    )
    .unwrap();
    let out = migrate(&source, &["--to-config", to_empty.to_str().unwrap()], None);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let node = TestServer::spawn_on(
        node_dir,
        SpawnOptions::default().env("BERTH_DATABASE_URL", &empty.url),
    )
    .await;
    pull_back(&node, &pushed, "v1").await;
}
