//! `berth serve` on PostgreSQL and S3 keeps nothing another node needs: two servers on the
//! same data directory both start (no `berth.lock`) and serve each other's pushes, and a
//! server without a named shared secrets key stops with one line rather than make a key of
//! its own. Needs a real PostgreSQL and Garage: skipped loudly without them, required
//! under `CI=true`.

mod common;

use berth_testkit::garage::Garage;
use common::{basic_auth, ADMIN_PASSWORD, ADMIN_USER};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `berth serve` killed when dropped.
struct Node {
    child: Child,
    url: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(env: &[(String, String)], data_dir: &Path, log: &Path) -> (Command, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.env_remove("BERTH_CONFIG")
        .env_remove("BERTH_SECRETS_KEY_FILE")
        .env("BERTH_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    (cmd, format!("http://127.0.0.1:{port}"))
}

async fn start(env: &[(String, String)], data_dir: &Path, log: &Path) -> Node {
    let (mut cmd, url) = serve(env, data_dir, log);
    let mut node = Node {
        child: cmd.spawn().unwrap(),
        url,
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(resp) = reqwest::get(format!("{}/v2/", node.url)).await {
            if resp.status() == 401 || resp.status() == 200 {
                return node;
            }
        }
        if let Ok(Some(status)) = node.child.try_wait() {
            panic!(
                "berth exited ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "berth did not start within 120 s: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn nodes_on_postgres_and_s3_share_no_local_state() {
    let test = "nodes_on_postgres_and_s3_share_no_local_state";
    let Some(db) = berth_testkit::postgres::database(test) else {
        return;
    };
    let Some(garage) = tokio::task::spawn_blocking(move || Garage::start_or_skip(test))
        .await
        .unwrap()
    else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let shared_dir = scratch.path().join("data");
    let mut env: Vec<(String, String)> = garage
        .berth_env(false)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    env.push(("BERTH_DATABASE_URL".into(), db.url.clone()));

    // No named secrets key: one line, and no key made for this node alone.
    let (mut cmd, _) = serve(&env, &shared_dir, &scratch.path().join("refused.log"));
    let status = tokio::task::spawn_blocking(move || cmd.status().unwrap())
        .await
        .unwrap();
    assert!(!status.success());
    let refused = std::fs::read_to_string(scratch.path().join("refused.log")).unwrap();
    let last = refused.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: ") && last.contains("secrets_key_file"),
        "{refused}"
    );
    assert!(!shared_dir.join("secrets.key").exists());

    // With one: two servers on the very same data directory, as two stateless nodes.
    let key = scratch.path().join("secrets.key");
    std::fs::write(&key, hex::encode([7u8; 32])).unwrap();
    env.push(("BERTH_SECRETS_KEY_FILE".into(), key.display().to_string()));
    let first = start(&env, &shared_dir, &scratch.path().join("first.log")).await;
    let second = start(&env, &shared_dir, &scratch.path().join("second.log")).await;
    assert!(
        !shared_dir.join("berth.lock").exists(),
        "no lock file on PostgreSQL and S3"
    );

    // A blob and a manifest pushed through the first are read through the second.
    let client = reqwest::Client::new();
    let auth = basic_auth(ADMIN_USER, ADMIN_PASSWORD);
    let layer = b"a layer pushed through one node".to_vec();
    let config = b"{}".to_vec();
    let digest = |bytes: &[u8]| {
        use sha2::Digest as _;
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
    };
    for blob in [&layer, &config] {
        let resp = client
            .post(format!(
                "{}/v2/admin/app/blobs/uploads/?digest={}",
                first.url,
                digest(blob)
            ))
            .header("Authorization", &auth)
            .body(blob.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest(&layer), "size": layer.len()}],
    })
    .to_string();
    let resp = client
        .put(format!("{}/v2/admin/app/manifests/v1", first.url))
        .header("Authorization", &auth)
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let resp = client
        .get(format!("{}/v2/admin/app/manifests/v1", second.url))
        .header("Authorization", &auth)
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), manifest);
    let resp = client
        .get(format!(
            "{}/v2/admin/app/blobs/{}",
            second.url,
            digest(&layer)
        ))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().to_vec(), layer);
}
