//! Retention under `kill -9`: the real `berth retention run` is killed at spread-out moments
//! of a run over a namespace of several repositories, again and again. After every kill the
//! registry is consistent (what the policy keeps is whole, nothing half-deleted) and the
//! history lists each interrupted run with exactly what it deleted; a later run finishes
//! the job, and the deletions recorded over all runs are exactly what the dry run listed.
//!
//! ```text
//! cargo nextest run -p berth --test retention_crash
//! ```

mod common;

use common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const REPOS: usize = 8;
const TAGS: usize = 3;

fn berth_command(data_dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("BERTH_CONFIG")
        .env_remove("BERTH_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn berth_ok(data_dir: &Path, args: &[&str]) -> Output {
    let out = berth_command(data_dir, args).output().expect("run berth");
    assert!(
        out.status.success(),
        "berth {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

fn strings(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .expect("a list")
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect()
}

#[tokio::test]
async fn kill_9_during_a_retention_run_leaves_a_consistent_registry_and_an_honest_history() {
    let mut server = TestServer::spawn().await;
    let data_dir = server.data_dir().expect("spawned").to_path_buf();
    let mut images = Vec::new();
    for r in 0..REPOS {
        let repo = format!("admin/app{r}");
        for t in 0..TAGS {
            let tag = format!("v{t}");
            let image = server.push_random_image(&repo, Some(&tag)).await;
            images.push((repo.clone(), tag, image));
        }
    }
    server.kill_hard();

    berth_ok(
        &data_dir,
        &["retention", "set", "admin", "--keep-last-pushed", "1"],
    );
    let dry = json_of(&berth_ok(
        &data_dir,
        &["retention", "run", "admin", "--dry-run", "--json"],
    ));
    let planned_tags: BTreeSet<String> = strings(&dry["tags"]).into_iter().collect();
    let planned_manifests: BTreeSet<String> = strings(&dry["manifests"]).into_iter().collect();
    assert_eq!(planned_tags.len(), REPOS * (TAGS - 1), "{dry}");
    assert_eq!(planned_manifests.len(), REPOS * (TAGS - 1), "{dry}");

    let mut kills = 0;
    let mut finished = false;
    for step in 0..60u64 {
        // Spread over startup, planning, and the repositories' transactions.
        let delay = Duration::from_millis(5 + step * 3);
        let mut child = berth_command(&data_dir, &["retention", "run", "admin", "--json"])
            .spawn()
            .expect("spawn retention run");
        let started = Instant::now();
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
        let out = child.wait_with_output().expect("reap retention run");
        if finished {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            break;
        }
    }
    eprintln!("{kills} runs killed; one finished: {finished}");
    assert!(kills >= 3, "some runs were killed mid-way");
    if !finished {
        berth_ok(&data_dir, &["retention", "run", "admin", "--json"]);
    }

    // Nothing is left to delete, and the history adds up to exactly the dry run's list:
    // every run is either finished or marked interrupted, and lists what it deleted.
    let after = json_of(&berth_ok(
        &data_dir,
        &["retention", "run", "admin", "--dry-run", "--json"],
    ));
    assert_eq!(after["tags"], serde_json::json!([]), "{after}");
    assert_eq!(after["manifests"], serde_json::json!([]), "{after}");
    let runs = json_of(&berth_ok(
        &data_dir,
        &["retention", "runs", "admin", "--json", "--limit", "1000"],
    ));
    let mut recorded_tags = Vec::new();
    let mut recorded_manifests = Vec::new();
    let mut interrupted = 0;
    for run in runs.as_array().expect("runs") {
        match run["error"].as_str() {
            None => {}
            Some(error) if error.starts_with("interrupted") => interrupted += 1,
            Some(other) => panic!("a run failed: {other}: {run}"),
        }
        recorded_tags.extend(strings(&run["tags"]));
        recorded_manifests.extend(strings(&run["manifests"]));
    }
    eprintln!(
        "{} runs recorded, {interrupted} interrupted",
        runs.as_array().unwrap().len()
    );
    let recorded_tag_set: BTreeSet<String> = recorded_tags.iter().cloned().collect();
    let recorded_manifest_set: BTreeSet<String> = recorded_manifests.iter().cloned().collect();
    assert_eq!(recorded_tags.len(), recorded_tag_set.len(), "each once");
    assert_eq!(recorded_manifests.len(), recorded_manifest_set.len());
    assert_eq!(
        recorded_tag_set, planned_tags,
        "the history lists every deletion"
    );
    assert_eq!(recorded_manifest_set, planned_manifests);

    // The registry serves exactly what the policy keeps, whole.
    server.restart().await;
    for (repo, tag, image) in &images {
        let gone = planned_tags.contains(&format!("{repo}:{tag}"));
        let resp = server.get_manifest(repo, tag).await;
        if gone {
            assert_eq!(resp.status(), 404, "{repo}:{tag} was deleted");
            let by_digest = server.get_manifest(repo, &image.digest).await;
            assert_eq!(by_digest.status(), 404, "{repo}@{}", image.digest);
            continue;
        }
        assert_eq!(resp.status(), 200, "{repo}:{tag} is kept");
        assert_eq!(resp.bytes().await.expect("body").as_ref(), &image.bytes[..]);
        for digest in &image.blobs {
            let resp = server.get_blob(repo, digest).await;
            assert_eq!(resp.status(), 200, "{repo}@{digest}");
            let body = resp.bytes().await.expect("blob");
            assert_eq!(&sha256(&body), digest);
        }
    }
}
