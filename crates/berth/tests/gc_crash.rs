//! Garbage collection under `kill -9`: the real `berth gc` is killed at spread-out moments
//! of its run, again and again, on a data directory holding referenced images and garbage;
//! every referenced blob must survive every kill, and a later run must finish the job. The
//! same with the server itself killed while its own collection runs.
//!
//! ```text
//! cargo nextest run -p berth --test gc_crash
//! ```

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn blob_path(data_dir: &Path, digest: &str) -> std::path::PathBuf {
    let hex = digest.trim_start_matches("sha256:");
    data_dir
        .join("blobs")
        .join("sha256")
        .join(&hex[..2])
        .join(hex)
}

fn gc_command(data_dir: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.arg("gc")
        .args(extra)
        .arg("--data-dir")
        .arg(data_dir)
        .env("BERTH_GC_GRACE", "1s")
        .env_remove("BERTH_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `berth gc --json` to the end; its report.
fn gc_to_the_end(data_dir: &Path, extra: &[&str]) -> serde_json::Value {
    let out = gc_command(data_dir, extra).output().expect("run berth gc");
    assert!(
        out.status.success(),
        "berth gc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

#[tokio::test]
async fn kill_9_at_any_moment_of_a_gc_run_loses_no_referenced_blob() {
    let mut server = TestServer::spawn().await;
    let data_dir = server.data_dir().expect("spawned").to_path_buf();
    let mut referenced = Vec::new();
    for n in 0..10 {
        let image = server
            .push_random_image("crash/kept", Some(&format!("v{n}")))
            .await;
        referenced.extend(image.blobs.clone());
    }
    // Garbage: blobs no manifest names, a deleted image, and a layer shared with it.
    let mut garbage = Vec::new();
    for _ in 0..400 {
        garbage.push(server.push_blob("crash/junk", &random_bytes(64)).await);
    }
    // A layer linked (and left unreferenced) in the junk repository, but named by a
    // manifest in the kept one: it stays.
    let shared_bytes = random_bytes(256);
    let shared = server.push_blob("crash/junk", &shared_bytes).await;
    server.push_blob("crash/kept", &shared_bytes).await;
    let config = server.push_empty_blob("crash/kept").await;
    let manifest = image_manifest(
        &Descriptor::of(MT_OCI_CONFIG, EMPTY_JSON),
        &[Descriptor::of(MT_OCI_LAYER, &shared_bytes)],
    );
    server
        .push_manifest_ok("crash/kept", Some("shared"), MT_OCI_MANIFEST, &manifest)
        .await;
    referenced.push(shared);
    referenced.push(config);
    server.kill_hard();
    // Past the 1 s grace.
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let mut kills = 0;
    let mut completed = Vec::new();
    for step in 0..40u64 {
        // Spread over startup, scanning, marking, deleting and dropping.
        let delay = Duration::from_millis(5 + step * 4);
        let mut child = gc_command(&data_dir, &["--json"])
            .spawn()
            .expect("spawn gc");
        let started = Instant::now();
        let mut finished = false;
        while started.elapsed() < delay {
            if let Ok(Some(_)) = child.try_wait() {
                finished = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if !finished {
            let _ = child.kill();
            kills += 1;
        }
        let out = child.wait_with_output().expect("reap gc");
        if finished && out.status.success() {
            completed.push(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        for digest in &referenced {
            assert!(
                blob_path(&data_dir, digest).exists(),
                "after a kill at {delay:?}, referenced blob {digest} is gone"
            );
        }
        if finished {
            break;
        }
    }
    eprintln!("{kills} runs killed; completed: {completed:?}");
    assert!(kills >= 3, "some runs were killed mid-way");

    // A run to the end finishes whatever a killed one marked; nothing is left after it.
    let report = gc_to_the_end(&data_dir, &["--json"]);
    eprintln!("final run: {report}");
    let leftover = garbage
        .iter()
        .filter(|d| blob_path(&data_dir, d).exists())
        .count();
    assert_eq!(leftover, 0, "every garbage blob is deleted");
    let dry = gc_to_the_end(&data_dir, &["--dry-run", "--json"]);
    assert_eq!(dry["blobs"], 0, "{dry}");

    // The server serves every referenced blob, whole.
    server.restart().await;
    for digest in &referenced {
        let resp = server.get_blob("crash/kept", digest).await;
        assert_eq!(resp.status(), 200, "{digest}");
        let body = resp.bytes().await.expect("body");
        assert_eq!(&sha256(&body), digest);
    }
}

/// `berth serve` on `data_dir` with a 1 s grace, its output dropped; port 0 is refused, so
/// a port is picked by binding first.
fn serve_command(data_dir: &Path) -> Command {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(data_dir)
        .env("BERTH_GC_GRACE", "1s")
        .env("BERTH_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env_remove("BERTH_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// The server killed in the middle of its own collection (the one each start runs): the
/// kill comes once some garbage files are gone and others are not. Every referenced blob
/// survives; the next start finishes what the killed run had marked before it serves (a
/// marked blob could not be pushed again until then), and a later run collects the rest.
#[tokio::test]
async fn kill_9_of_the_server_during_its_collection_loses_no_referenced_blob() {
    let options = SpawnOptions::default().env("BERTH_GC_GRACE", "1s");
    let mut server = TestServer::spawn_with(options).await;
    let data_dir = server.data_dir().expect("spawned").to_path_buf();
    let mut referenced = Vec::new();
    for n in 0..5 {
        let image = server
            .push_random_image("crash/served", Some(&format!("v{n}")))
            .await;
        referenced.extend(image.blobs.clone());
    }
    let mut garbage = Vec::new();
    let mut garbage_bytes = Vec::new();
    for _ in 0..2000 {
        let bytes = random_bytes(64);
        garbage.push(server.push_blob("crash/junk", &bytes).await);
        garbage_bytes.push(bytes);
    }
    server.kill_hard();
    // Past the 1 s grace.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let left = |data_dir: &Path| {
        garbage
            .iter()
            .filter(|d| blob_path(data_dir, d).exists())
            .count()
    };

    // Started, and killed as soon as its collection has deleted some garbage.
    let mut child = serve_command(&data_dir).spawn().expect("spawn berth serve");
    let deadline = Instant::now() + Duration::from_secs(120);
    let killed_with = loop {
        let now_left = left(&data_dir);
        if now_left < garbage.len() {
            let _ = child.kill();
            let _ = child.wait();
            break now_left;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("berth serve exited by itself: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "the start's collection never began"
        );
    };
    let after_kill = left(&data_dir);
    eprintln!(
        "killed with {killed_with} of {} garbage blobs left ({after_kill} once dead)",
        garbage.len()
    );
    assert!(after_kill > 0, "killed before the collection finished");
    for digest in &referenced {
        assert!(
            blob_path(&data_dir, digest).exists(),
            "after the kill, referenced blob {digest} is gone"
        );
    }

    // The next start finishes the killed run's marks before it answers.
    server.restart().await;
    let dry = gc_to_the_end(&data_dir, &["--dry-run", "--json"]);
    assert_eq!(dry["resumed"], 0, "nothing is left marked: {dry}");
    for digest in &referenced {
        let resp = server.get_blob("crash/served", digest).await;
        assert_eq!(resp.status(), 200, "{digest}");
        let body = resp.bytes().await.expect("body");
        assert_eq!(&sha256(&body), digest);
    }
    // Every garbage blob can be pushed again, whatever the killed run did to it, and a
    // collection beside the server then takes the ones nobody pushed.
    for bytes in garbage_bytes.iter().take(50) {
        server.push_blob("crash/again", bytes).await;
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    gc_to_the_end(&data_dir, &["--json"]);
    assert_eq!(left(&data_dir), 0, "every garbage blob is collected");
}
