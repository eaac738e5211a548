//! `berth backup`, `berth restore` and `berth fsck` against the real binary: a backup taken
//! while pushes run restores into a server that serves every image acknowledged before it
//! began; fsck finds missing, corrupt and orphaned files and repairs only what is safe;
//! bad input is refused with one line.
//!
//! ```text
//! cargo nextest run -p berth --test backup
//! ```

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Runs `berth ARGS --data-dir DIR` with no configuration from the environment.
fn berth(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("BERTH_CONFIG")
        .env_remove("BERTH_DATA_DIR")
        .env_remove("BERTH_SECRETS_KEY_FILE")
        .output()
        .expect("run berth")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_ok(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        stdout(output),
        stderr(output)
    );
}

fn assert_fails_with(output: &Output, expected: &str) {
    assert!(!output.status.success(), "should fail: {}", stdout(output));
    let err = stderr(output);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("error: ") && err.contains(expected),
        "expected {expected:?} in: {err}"
    );
}

/// `berth fsck --json ARGS`: the report and whether the exit status said "nothing wrong".
fn fsck_json(dir: &Path, extra: &[&str]) -> (Value, bool) {
    let mut args = vec!["fsck", "--json"];
    args.extend_from_slice(extra);
    let out = berth(dir, &args);
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "fsck crashed or refused: {}{}",
        stdout(&out),
        stderr(&out)
    );
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("fsck --json printed no JSON ({e}): {}", stdout(&out)));
    assert_eq!(
        report["clean"].as_bool(),
        Some(out.status.success()),
        "the exit status and the report agree: {report}"
    );
    (report, out.status.success())
}

fn count(report: &Value, field: &str) -> u64 {
    report[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} in {report}"))
}

fn blob_file(data_dir: &Path, digest: &str) -> PathBuf {
    let (algorithm, hex) = digest.split_once(':').expect("algorithm:hex");
    data_dir
        .join("blobs")
        .join(algorithm)
        .join(&hex[..2])
        .join(hex)
}

/// Pulls the manifest by tag and every blob it names, and asserts each is byte for byte
/// what was pushed (a blob's bytes hash to its digest, and the length matches).
async fn assert_pulls(server: &TestServer, tag: &str, image: &PushedManifest, context: &str) {
    let resp = server.get_manifest(&image.repo, tag).await;
    let (_, body) = expect_status(resp, 200, &format!("{context}: {}:{tag}", image.repo)).await;
    assert!(
        body == image.bytes,
        "{context}: manifest {}:{tag} differs",
        image.repo
    );
    for digest in &image.blobs {
        let resp = server.get_blob(&image.repo, digest).await;
        let (_, body) = expect_status(resp, 200, &format!("{context}: blob {digest}")).await;
        assert_eq!(&sha256(&body), digest, "{context}: blob {digest}");
    }
}

/// An image whose layer is `layer_len` random bytes, pushed under `tag`.
async fn push_image_with_layer(
    server: &TestServer,
    repo: &str,
    tag: &str,
    layer_len: usize,
) -> PushedManifest {
    let config = pretty(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []}, "berth.test": unique_id(),
    }));
    let layer = random_bytes(layer_len);
    let config_digest = server.push_blob(repo, &config).await;
    let layer_digest = server.push_blob(repo, &layer).await;
    let manifest = image_manifest(
        &Descriptor::of(MT_OCI_CONFIG, &config),
        &[Descriptor::of(MT_OCI_LAYER, &layer)],
    );
    server
        .push_manifest_ok(repo, Some(tag), MT_OCI_MANIFEST, &manifest)
        .await;
    PushedManifest::new(
        repo,
        manifest,
        MT_OCI_MANIFEST,
        vec![config_digest, layer_digest],
    )
}

/// Back up during concurrent pushes, restore into a new data directory, start on it: every
/// image acknowledged before the backup began pulls byte for byte, and every image the
/// restored server knows at all is whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_during_pushes_restores_every_image_acknowledged_before_it() {
    let server = Arc::new(TestServer::spawn().await);
    let data_dir = server.data_dir().expect("spawned").to_path_buf();
    let mut before: Vec<(String, PushedManifest)> = Vec::new();
    for i in 0..6 {
        let repo = format!("team{}/app", i % 3);
        let tag = format!("v{i}");
        before.push((
            tag.clone(),
            server.push_random_image(&repo, Some(&tag)).await,
        ));
    }
    // Larger than a read buffer, so a copy or a hashing bug at a boundary shows.
    before.push((
        "big".into(),
        push_image_with_layer(&server, "team0/big", "big", 3 * 1024 * 1024 + 17).await,
    ));
    // An upload left open: the backup does not carry it, and the restored server copes.
    let _open_upload = server.open_session("team1/app").await;

    // Pushers that run before, during and after the backup.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged: Arc<Mutex<Vec<(String, PushedManifest)>>> = Arc::default();
    let mut pushers = Vec::new();
    for worker in 0..3 {
        let (server, stop, acknowledged) = (server.clone(), stop.clone(), acknowledged.clone());
        pushers.push(tokio::spawn(async move {
            let repo = format!("live/worker{worker}");
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let tag = format!("t{n}");
                let image = server.push_random_image(&repo, Some(&tag)).await;
                acknowledged.lock().unwrap().push((tag, image));
                n += 1;
            }
        }));
    }
    while acknowledged.lock().unwrap().len() < 6 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Everything acknowledged up to here must be in the backup.
    before.extend(acknowledged.lock().unwrap().iter().cloned());
    let at_start = acknowledged.lock().unwrap().len();
    let backup_root = tempfile::tempdir().unwrap();
    let backup_dir = backup_root.path().join("backup");
    let backup = {
        let (data_dir, backup_dir) = (data_dir.clone(), backup_dir.clone());
        tokio::task::spawn_blocking(move || {
            berth(&data_dir, &["backup", "--to", backup_dir.to_str().unwrap()])
        })
        .await
        .unwrap()
    };
    assert_ok(&backup, "backup");
    assert!(stdout(&backup).contains("backed up"), "{}", stdout(&backup));
    // fsck beside the live server, pushes still running: read-only, and finds nothing wrong.
    let (live_report, live_clean) = {
        let data_dir = data_dir.clone();
        tokio::task::spawn_blocking(move || fsck_json(&data_dir, &[]))
            .await
            .unwrap()
    };
    assert!(live_clean, "fsck beside the live server: {live_report}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for pusher in pushers {
        pusher.await.unwrap();
    }
    assert!(
        acknowledged.lock().unwrap().len() > at_start,
        "pushes went on while the backup was taken"
    );

    let manifest: Value =
        serde_json::from_slice(&std::fs::read(backup_dir.join("berth-backup.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["format"], "berth-backup");
    assert_eq!(manifest["version"], 1);
    assert!(count(&manifest, "blobs") >= 2 * before.len() as u64);

    let restored = tempfile::Builder::new()
        .prefix("berth-test-restored-")
        .tempdir()
        .unwrap();
    let restore = berth(
        restored.path(),
        &["restore", "--from", backup_dir.to_str().unwrap()],
    );
    assert_ok(&restore, "restore");
    let (report, clean) = fsck_json(restored.path(), &["--grace", "0s"]);
    assert!(clean, "fsck of the restored directory: {report}");
    assert_eq!(
        std::fs::read(restored.path().join("secrets.key")).unwrap(),
        std::fs::read(data_dir.join("secrets.key")).unwrap(),
        "the key that seals webhook secrets comes back with the backup"
    );
    assert_eq!(count(&report, "checked"), count(&manifest, "blobs"));

    let restored_server = TestServer::spawn_on(restored, SpawnOptions::default()).await;
    for (tag, image) in &before {
        assert_pulls(
            &restored_server,
            tag,
            image,
            "acknowledged before the backup",
        )
        .await;
    }
    // Pushed during or after the backup: either whole in the restore or not there at all.
    let all = acknowledged.lock().unwrap().clone();
    let mut present = 0;
    for (tag, image) in &all[at_start..] {
        let resp = restored_server.get_manifest(&image.repo, tag).await;
        if resp.status() == 200 {
            present += 1;
            assert_pulls(&restored_server, tag, image, "pushed during the backup").await;
        }
    }
    eprintln!(
        "{} images acknowledged before the backup, {} during or after it ({present} of them in the backup)",
        before.len(),
        all.len() - at_start
    );
    // The restored server takes pushes.
    let image = restored_server
        .push_random_image("after/restore", Some("new"))
        .await;
    assert_pulls(&restored_server, "new", &image, "pushed after the restore").await;
}

/// fsck finds a missing blob, two corrupt ones (wrong bytes, wrong length) and orphaned
/// files; only with `--repair` and the server stopped does it remove the orphans and
/// quarantine the corrupt blobs, and it never forgets a blob the database records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsck_finds_missing_corrupt_and_orphaned_files_and_repairs_only_what_is_safe() {
    let mut server = TestServer::spawn().await;
    let data_dir = server.data_dir().expect("spawned").to_path_buf();
    let a = server.push_random_image("acme/a", Some("1")).await;
    let b = server.push_random_image("acme/b", Some("1")).await;
    let c = server.push_random_image("acme/c", Some("1")).await;
    let (report, clean) = fsck_json(&data_dir, &[]);
    assert!(clean, "{report}");
    assert_eq!(count(&report, "checked"), 6);

    // a's layer is gone, b's layer has other bytes of the same length, c's config is short.
    std::fs::remove_file(blob_file(&data_dir, &a.blobs[1])).unwrap();
    let b_layer = blob_file(&data_dir, &b.blobs[1]);
    let mut bytes = std::fs::read(&b_layer).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&b_layer, &bytes).unwrap();
    let c_config = blob_file(&data_dir, &c.blobs[0]);
    let len = std::fs::metadata(&c_config).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&c_config)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    // Orphans: a blob file no record names, an upload file no session owns.
    let stray_digest = sha256(b"nobody references me");
    let stray = blob_file(&data_dir, &stray_digest);
    std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
    std::fs::write(&stray, b"nobody references me").unwrap();
    let stale_upload = data_dir
        .join("uploads")
        .join("0123456789abcdef0123456789abcdef");
    std::fs::write(&stale_upload, b"half an upload").unwrap();

    // Within the grace period the new files may be an upload or a commit under way.
    let (report, clean) = fsck_json(&data_dir, &[]);
    assert!(!clean);
    assert_eq!(count(&report, "missing"), 1, "{report}");
    assert_eq!(count(&report, "corrupt"), 2, "{report}");
    assert_eq!(count(&report, "orphaned"), 0, "{report}");
    assert_eq!(count(&report, "recent_unreferenced"), 2, "{report}");
    let (report, _) = fsck_json(&data_dir, &["--grace", "0s"]);
    assert_eq!(count(&report, "orphaned"), 2, "{report}");
    assert_eq!(count(&report, "orphaned_bytes"), 20 + 14, "{report}");
    let problems = report["problems"].as_array().unwrap();
    let named = |kind: &str, key: &str, value: &str| {
        problems
            .iter()
            .any(|p| p["kind"] == kind && p[key].as_str().is_some_and(|v| v.contains(value)))
    };
    assert!(named("missing", "digest", &a.blobs[1]), "{report}");
    assert!(named("corrupt", "digest", &b.blobs[1]), "{report}");
    assert!(named("corrupt", "digest", &c.blobs[0]), "{report}");
    assert!(
        named(
            "orphaned",
            "path",
            stray_digest.trim_start_matches("sha256:")
        ),
        "{report}"
    );
    assert!(named("orphaned", "path", "0123456789abcdef"), "{report}");

    // The text report names them too, and fails the same way.
    let text = berth(&data_dir, &["fsck", "--grace", "0s"]);
    assert_eq!(text.status.code(), Some(1), "{}", stderr(&text));
    let lines = stdout(&text);
    assert!(
        lines.contains(&format!("missing   {}", a.blobs[1])),
        "{lines}"
    );
    assert!(
        lines.contains("1 missing, 2 corrupt, 2 orphaned"),
        "{lines}"
    );

    // Repair needs the server stopped: nothing changes while it runs.
    let refused = berth(&data_dir, &["fsck", "--repair", "--grace", "0s"]);
    assert_fails_with(&refused, "in use by a running berth server");
    assert!(stray.exists() && b_layer.exists());

    server.kill_hard();
    let (report, clean) = fsck_json(&data_dir, &["--repair", "--grace", "0s"]);
    assert!(
        !clean,
        "missing and quarantined content is still wrong: {report}"
    );
    assert_eq!(count(&report, "removed"), 2, "{report}");
    assert_eq!(count(&report, "quarantined"), 2, "{report}");
    assert!(!stray.exists() && !stale_upload.exists());
    assert!(!b_layer.exists() && !c_config.exists());
    let quarantine: Vec<_> = std::fs::read_dir(data_dir.join("quarantine"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(quarantine.len(), 2, "{quarantine:?}");
    assert!(quarantine.contains(&b.blobs[1].replace(':', "-")));

    // The records stay: the quarantined blobs are now missing, nothing is orphaned.
    let (report, clean) = fsck_json(&data_dir, &["--grace", "0s"]);
    assert!(!clean);
    assert_eq!(count(&report, "checked"), 6, "{report}");
    assert_eq!(count(&report, "missing"), 3, "{report}");
    assert_eq!(count(&report, "corrupt"), 0, "{report}");
    assert_eq!(count(&report, "orphaned"), 0, "{report}");
}

/// A backup target or a restore directory that is not empty, and a backup that is missing,
/// incomplete, of another format, inconsistent or corrupt: one line each, nothing written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_backup_and_restore_input_is_refused_with_one_line() {
    let mut server = TestServer::spawn().await;
    let data_dir = server.data_dir().expect("spawned").to_path_buf();
    let image = server.push_random_image("acme/app", Some("1")).await;
    server.kill_hard();
    let scratch = tempfile::tempdir().unwrap();
    let path = |name: &str| scratch.path().join(name);
    let text = |p: &Path| p.to_str().unwrap().to_owned();

    // Backups.
    std::fs::create_dir(path("full")).unwrap();
    std::fs::write(path("full/keep"), b"mine").unwrap();
    assert_fails_with(
        &berth(&data_dir, &["backup", "--to", &text(&path("full"))]),
        "is not empty (it must be empty or absent)",
    );
    assert_eq!(std::fs::read_dir(path("full")).unwrap().count(), 1);
    assert_fails_with(
        &berth(&path("no-data"), &["backup", "--to", &text(&path("b0"))]),
        "no Berth database in",
    );
    assert!(!path("b0").exists());
    // A copy (not hard links), so damaging it below leaves the data directory alone.
    let good = path("good");
    let out = berth(&data_dir, &["backup", "--copy", "--to", &text(&good)]);
    assert_ok(&out, "backup --copy");
    assert!(
        stdout(&out).contains("0 hard-linked, 2 copied"),
        "{}",
        stdout(&out)
    );

    // Restores.
    assert_fails_with(
        &berth(&data_dir, &["restore", "--from", &text(&good)]),
        "is not empty (it must be empty or absent)",
    );
    assert_fails_with(
        &berth(&path("r1"), &["restore", "--from", &text(&path("absent"))]),
        "does not exist",
    );
    std::fs::create_dir(path("empty")).unwrap();
    assert_fails_with(
        &berth(&path("r2"), &["restore", "--from", &text(&path("empty"))]),
        "is not a complete Berth backup (berth-backup.json is missing)",
    );
    let manifest_path = good.join("berth-backup.json");
    let manifest = std::fs::read_to_string(&manifest_path).unwrap();
    std::fs::write(&manifest_path, "{not json").unwrap();
    assert_fails_with(
        &berth(&path("r3"), &["restore", "--from", &text(&good)]),
        "is not a Berth backup manifest",
    );
    let mut value: Value = serde_json::from_str(&manifest).unwrap();
    value["version"] = 99.into();
    std::fs::write(&manifest_path, value.to_string()).unwrap();
    assert_fails_with(
        &berth(&path("r4"), &["restore", "--from", &text(&good)]),
        "version 99; this berth reads \"berth-backup\" version 1",
    );
    value["version"] = 1.into();
    value["blobs"] = 7.into();
    std::fs::write(&manifest_path, value.to_string()).unwrap();
    assert_fails_with(
        &berth(&path("r5"), &["restore", "--from", &text(&good)]),
        "does not match its manifest",
    );
    std::fs::write(&manifest_path, &manifest).unwrap();
    let database = good.join("berth.db");
    let db_bytes = std::fs::read(&database).unwrap();
    std::fs::write(&database, b"this is not a database, only some text").unwrap();
    assert_fails_with(
        &berth(&path("r6"), &["restore", "--from", &text(&good)]),
        "is not a Berth database",
    );
    std::fs::write(&database, &db_bytes).unwrap();
    // A backup from a newer Berth (a schema version this build does not know).
    {
        use sqlx::Connection as _;
        let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", text(&database)))
            .await
            .unwrap();
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)")
            .execute(&mut db)
            .await
            .unwrap();
        db.close().await.unwrap();
    }
    assert_fails_with(
        &berth(&path("r6b"), &["restore", "--from", &text(&good)]),
        "is of a newer Berth (schema version 999",
    );
    assert!(!path("r6b").exists());
    std::fs::write(&database, &db_bytes).unwrap();
    // One flipped byte in a layer: the restore stops, and no database names missing content.
    let layer = blob_file(&good, &image.blobs[1]);
    let mut bytes = std::fs::read(&layer).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&layer, &bytes).unwrap();
    let out = berth(&path("r7"), &["restore", "--from", &text(&good)]);
    assert_fails_with(&out, &format!("blob {} is corrupt", image.blobs[1]));
    assert!(stderr(&out).contains("is incomplete (empty it before trying again)"));
    assert!(!path("r7/berth.db").exists());
    bytes[10] ^= 1;
    std::fs::write(&layer, &bytes).unwrap();
    assert_ok(
        &berth(&path("r8"), &["restore", "--from", &text(&good)]),
        "restore of the mended backup",
    );
    let restored = path("r8");
    let (report, clean) = fsck_json(&restored, &["--grace", "0s"]);
    assert!(clean, "{report}");

    // A different secrets key where the restore would put the backup's is kept, and refused.
    let other_key = path("other.key");
    std::fs::write(&other_key, "ab".repeat(32)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args([
            "restore",
            "--from",
            &text(&good),
            "--data-dir",
            &text(&path("r9")),
        ])
        .env_remove("BERTH_CONFIG")
        .env_remove("BERTH_DATA_DIR")
        .env("BERTH_SECRETS_KEY_FILE", &other_key)
        .output()
        .unwrap();
    assert_fails_with(&out, "holds a different key than the backup's");
    assert_eq!(
        std::fs::read_to_string(&other_key).unwrap(),
        "ab".repeat(32)
    );
    assert!(!path("r9").exists());

    // fsck's own bad input.
    let out = berth(&data_dir, &["fsck", "--grace", "soon"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--grace"), "{}", stderr(&out));
    assert_fails_with(&berth(&path("nothing"), &["fsck"]), "no Berth database in");
}
