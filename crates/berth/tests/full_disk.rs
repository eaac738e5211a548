//! A full disk: the real `berth serve` with its data directory on a 16 MiB tmpfs. A push
//! that runs out of space is refused with 507 and a message saying so, leaves nothing
//! half-written, pulls keep working, and pushes work again once space is freed.
//!
//! Mounting needs root; as anyone else the test prints why it is skipped and passes.
//!
//! ```text
//! cargo nextest run -p berth --test full_disk
//! ```

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A size-limited tmpfs, unmounted when dropped.
struct SmallFilesystem {
    mount_point: tempfile::TempDir,
}

impl SmallFilesystem {
    /// Mounts one, or says why it cannot.
    fn mount(size: &str) -> Result<SmallFilesystem, String> {
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        if uid != "0" {
            return Err("not running as root, so a tmpfs cannot be mounted".into());
        }
        let mount_point = tempfile::Builder::new()
            .prefix("berth-full-disk-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(mount_point.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(SmallFilesystem { mount_point })
    }

    fn path(&self) -> &Path {
        self.mount_point.path()
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.mount_point.path())
            .status();
    }
}

/// Fills the filesystem with a file until at most `leave` bytes are free.
fn fill(dir: &Path, leave: u64) -> PathBuf {
    let filler = dir.join("filler");
    let free = free_bytes(dir);
    let len = free.saturating_sub(leave);
    std::fs::write(&filler, vec![0xa5u8; len as usize]).expect("write the filler");
    filler
}

fn free_bytes(dir: &Path) -> u64 {
    let output = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
        .expect("df");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df output")
}

/// Files in the data directory's upload scratch space.
fn upload_files(data_dir: &Path) -> Vec<String> {
    std::fs::read_dir(data_dir.join("uploads"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_full_disk_refuses_pushes_cleanly_and_recovers() {
    let disk = match SmallFilesystem::mount("16m") {
        Ok(disk) => disk,
        Err(reason) => {
            eprintln!("skipping the full-disk test: {reason}");
            return;
        }
    };
    let data_dir = tempfile::Builder::new()
        .prefix("data-")
        .tempdir_in(disk.path())
        .expect("data dir on the small filesystem");
    let data_path = data_dir.path().to_path_buf();
    let server = TestServer::spawn_on(data_dir, SpawnOptions::default()).await;
    let repo = "admin/full";
    let image = server.push_random_image(repo, Some("before")).await;

    // Leave 1 MiB free, then push 4 MiB in one request and in a chunk.
    let filler = fill(disk.path(), 1 << 20);
    let big = random_bytes(4 << 20);
    let digest = sha256(&big);
    let resp = server
        .request(
            reqwest::Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
        )
        .header("Content-Type", MT_OCTET_STREAM)
        .body(big.clone())
        .send()
        .await
        .expect("monolithic push");
    let error = expect_error(
        resp,
        &[507],
        &["BLOB_UPLOAD_INVALID"],
        "monolithic push on a full disk",
    )
    .await;
    let message = error.raw["errors"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("out of storage space"),
        "the message says what happened: {message}"
    );

    // The client goes on over the same pooled connection: the refusal came after the rest
    // of the body was read, not with the connection reset under a client still sending.
    let location = server.open_session(repo).await;
    let resp = server
        .client()
        .patch(&location)
        .header("Content-Type", MT_OCTET_STREAM)
        .body(big.clone())
        .send()
        .await
        .expect("chunk on a full disk");
    expect_error(
        resp,
        &[507],
        &["BLOB_UPLOAD_INVALID"],
        "chunk on a full disk",
    )
    .await;
    // Of unknown length, as docker streams a layer (the direct-write path).
    let frames: Vec<Result<Vec<u8>, std::io::Error>> =
        big.chunks(256 << 10).map(|c| Ok(c.to_vec())).collect();
    let resp = server
        .client()
        .patch(&location)
        .header("Content-Type", MT_OCTET_STREAM)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            frames,
        )))
        .send()
        .await
        .expect("streamed chunk on a full disk");
    expect_error(
        resp,
        &[507],
        &["BLOB_UPLOAD_INVALID"],
        "streamed chunk on a full disk",
    )
    .await;
    // The session stays where it was, with none of the refused bytes.
    let resp = server.client().get(&location).send().await.expect("status");
    let (headers, _) = expect_status(resp, 204, "session after the refused chunk").await;
    assert_eq!(header(&headers, "range").as_deref(), Some("0-0"));
    let session_id = location
        .split('?')
        .next()
        .and_then(|path| path.rsplit('/').next())
        .unwrap()
        .to_owned();
    for name in upload_files(&data_path) {
        let len = std::fs::metadata(data_path.join("uploads").join(&name))
            .unwrap()
            .len();
        assert!(
            name == session_id && len == 0,
            "only the open session's empty file is left: {name} holds {len} bytes"
        );
    }
    // Nothing of the refused blob is visible.
    let resp = server.head_blob(repo, &digest).await;
    assert_eq!(resp.status(), 404);

    // Pulls keep working on the full disk.
    let resp = server.get_manifest(repo, "before").await;
    let (_, body) = expect_status(resp, 200, "pull on a full disk").await;
    assert_eq!(body, image.bytes);
    for blob in &image.blobs {
        let resp = server.get_blob(repo, blob).await;
        expect_status(resp, 200, "blob pull on a full disk").await;
    }

    // With no byte left, a manifest push (a database write) is refused the same way, or
    // fits in space the database holds already; never a bare 500.
    std::fs::remove_file(&filler).expect("free space");
    let filler = fill(disk.path(), 0);
    let config = image.blobs[0].clone();
    let layer = image.blobs[1].clone();
    let manifest = pretty(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MT_OCI_MANIFEST,
        "config": {"mediaType": MT_OCI_CONFIG, "digest": config, "size": 1},
        "layers": [{"mediaType": MT_OCI_LAYER, "digest": layer, "size": 512}],
        "annotations": {"filler": "x".repeat(64 << 10)},
    }));
    let resp = server
        .push_manifest(repo, "on-full-disk", MT_OCI_MANIFEST, &manifest)
        .await;
    eprintln!(
        "a manifest push with no space left answered {}",
        resp.status()
    );
    match resp.status().as_u16() {
        201 => {}
        _ => {
            expect_error(
                resp,
                &[507],
                &["BLOB_UPLOAD_INVALID"],
                "manifest on a full disk",
            )
            .await;
            let resp = server.get_manifest(repo, "on-full-disk").await;
            assert_eq!(resp.status(), 404, "a refused manifest is not visible");
        }
    }

    // Space freed: the same pushes work.
    std::fs::remove_file(&filler).expect("free space");
    let resp = server
        .client()
        .put(with_digest(&location, &digest))
        .header("Content-Type", MT_OCTET_STREAM)
        .body(big.clone())
        .send()
        .await
        .expect("push after freeing space");
    expect_status(resp, 201, "push after freeing space").await;
    let resp = server.get_blob(repo, &digest).await;
    let (_, body) = expect_status(resp, 200, "pull of the pushed blob").await;
    assert_eq!(body.len(), big.len());
    server.push_random_image(repo, Some("after")).await;
    drop(server);
}
