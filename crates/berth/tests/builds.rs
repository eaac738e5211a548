//! Automated builds through the real binary, git and buildah: a local bare repository
//! (`file://`) linked with `berth build source set`, branch and tag rules (a regex capture),
//! `berth build trigger --wait`, a signed GitHub push hook and refused bad signatures,
//! a failing and a missing Dockerfile, an unknown ref, cancellation, the concurrency
//! limit, a `kill -9` of the server during a build, and the pushed image read back with
//! skopeo: its files and its source annotations.

mod common;

use common::builds::{api, berth, berth_ok, run, tools_present as tools_here};
use common::{SpawnOptions, TestServer, ADMIN_PASSWORD, ADMIN_USER};
use reqwest::Method;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Generous: the machine running the tests may be busy.
const DEADLINE: Duration = Duration::from_secs(300);

/// Whether git, buildah and skopeo are here; under CI they must be.
fn tools_present() -> bool {
    tools_here(&["git", "buildah", "skopeo"], "git buildah skopeo")
}

/// A bare repository with `main` (a FROM scratch image, a multi-stage one, a broken one)
/// and the tag `v1.2.3`; returns its `file://` URL and the commit.
fn git_repository(root: &Path) -> (String, String) {
    let bare = root.join("app.git");
    let work = root.join("work");
    std::fs::create_dir_all(&work).unwrap();
    run(
        root,
        "git",
        &["init", "-q", "--bare", bare.to_str().unwrap()],
    );
    run(&work, "git", &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("hello.txt"), "Hello Hub\n").unwrap();
    std::fs::write(
        work.join("Dockerfile"),
        "FROM scratch\nARG GREETING=none\nCOPY hello.txt /hello.txt\n",
    )
    .unwrap();
    std::fs::create_dir_all(work.join("multi")).unwrap();
    std::fs::write(work.join("multi/a.txt"), "from the first stage\n").unwrap();
    std::fs::write(
        work.join("multi/Dockerfile"),
        "FROM scratch AS files\nCOPY a.txt /stage/a.txt\n\nFROM scratch\nCOPY --from=files /stage/a.txt /a.txt\n",
    )
    .unwrap();
    std::fs::write(
        work.join("Dockerfile.broken"),
        "FROM scratch\nCOPY does-not-exist.txt /x\n",
    )
    .unwrap();
    run(&work, "git", &["add", "."]);
    run(&work, "git", &["commit", "-q", "-m", "app"]);
    run(&work, "git", &["tag", "v1.2.3"]);
    let url = format!("file://{}", bare.display());
    run(&work, "git", &["push", "-q", &url, "main", "v1.2.3"]);
    let commit = run(&work, "git", &["rev-parse", "HEAD"]);
    (url, commit)
}

/// Polls a build until it is final.
async fn finished(server: &TestServer, id: i64) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (status, build) = api(server, Method::GET, &format!("/api/v1/builds/{id}")).await;
        assert_eq!(status, 200, "{build}");
        if ["succeeded", "failed", "cancelled"].contains(&build["status"].as_str().unwrap()) {
            return build;
        }
        assert!(
            Instant::now() < deadline,
            "build {id} did not end: {build}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_status(server: &TestServer, id: i64, want: &str) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (_, build) = api(server, Method::GET, &format!("/api/v1/builds/{id}")).await;
        if build["status"] == want {
            return build;
        }
        assert!(
            Instant::now() < deadline,
            "build {id} never {want}: {build}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn trigger(server: &TestServer, repo: &str, git_ref: &str) -> Vec<Value> {
    let (status, body) = {
        let response = server
            .request(
                Method::POST,
                &format!("/api/v1/repositories/{repo}/-/builds"),
            )
            .json(&serde_json::json!({ "ref": git_ref }))
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json::<Value>().await.unwrap(),
        )
    };
    assert_eq!(status, 201, "{body}");
    body["builds"].as_array().unwrap().clone()
}

/// skopeo with its state in `tmp` (never the machine's), reading plain HTTP.
fn skopeo(tmp: &Path, args: &[&str]) -> String {
    let policy = tmp.join("policy.json");
    std::fs::write(
        &policy,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    let out = Command::new("skopeo")
        .arg("--policy")
        .arg(&policy)
        .args(args)
        .env("_CONTAINERS_USERNS_CONFIGURED", "1")
        .env("HOME", tmp)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The files of an image copied to an OCI layout: (path, content) of every layer's entry.
fn image_files(layout: &Path) -> Vec<(String, String)> {
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let blob = |digest: &str| {
        std::fs::read(
            layout
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let manifest: Value =
        serde_json::from_slice(&blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    let mut files = Vec::new();
    for layer in manifest["layers"].as_array().unwrap() {
        let bytes = blob(layer["digest"].as_str().unwrap());
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.header().entry_type().is_file() {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
                files.push((entry.path().unwrap().display().to_string(), text));
            }
        }
    }
    files
}

fn spawn_options(builds: &Path) -> SpawnOptions {
    SpawnOptions::default().env("BERTH_BUILD_DIR", builds.to_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_repository_builds_on_trigger_and_on_a_signed_push() {
    if !tools_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (url, commit) = git_repository(tmp.path());
    let server = TestServer::spawn_with(spawn_options(&tmp.path().join("builds"))).await;
    let dir = server.data_dir().unwrap().to_owned();
    let repo = "admin/app";

    let linked = berth_ok(&dir, &["build", "source", "set", repo, "--git", &url]);
    let secret = linked
        .lines()
        .find_map(|l| l.strip_prefix("webhook secret: "))
        .expect("the secret is shown once")
        .to_owned();
    berth_ok(
        &dir,
        &[
            "build",
            "rule",
            "add",
            repo,
            "--type",
            "branch",
            "--source",
            "main",
            "--tag",
            "latest,{sourceref}",
            "--build-arg",
            "GREETING=hi",
        ],
    );
    berth_ok(
        &dir,
        &[
            "build",
            "rule",
            "add",
            repo,
            "--type",
            "tag",
            "--source",
            "/^v([0-9.]+)$/",
            "--tag",
            "{\\1}",
            "--context",
            "multi",
        ],
    );
    berth_ok(
        &dir,
        &[
            "build",
            "rule",
            "add",
            repo,
            "--type",
            "branch",
            "--source",
            "main",
            "--tag",
            "broken",
            "--dockerfile",
            "Dockerfile.broken",
            "--no-autobuild",
        ],
    );
    let source = berth_ok(&dir, &["build", "source", "show", repo]);
    assert!(
        !source.contains(&secret),
        "the secret is never shown again: {source}"
    );

    // By hand, with --wait: the last line is the JSON summary.
    let waited = berth(&dir, &["build", "trigger", repo, "--ref", "main", "--wait"]);
    let stdout = String::from_utf8_lossy(&waited.stdout).into_owned();
    assert!(
        !waited.status.success(),
        "the broken rule's build fails the command: {stdout}"
    );
    let summaries: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let good = summaries.iter().find(|s| s["tags"][0] == "latest").unwrap();
    assert_eq!(good["status"], "succeeded", "{stdout}\n{}", server.log());
    assert_eq!(good["tags"], serde_json::json!(["latest", "main"]));
    let digest = good["digest"].as_str().unwrap().to_owned();
    assert!(digest.starts_with("sha256:"));
    let broken = summaries.iter().find(|s| s["tags"][0] == "broken").unwrap();
    assert_eq!(broken["status"], "failed");
    assert!(broken["reason"]
        .as_str()
        .unwrap()
        .contains("Dockerfile failed"));
    let (status, _) = api(
        &server,
        Method::GET,
        &format!("/v2/{repo}/manifests/broken"),
    )
    .await;
    assert_eq!(status, 404, "a failed build pushes nothing");
    let log = berth_ok(&dir, &["build", "logs", &broken["id"].to_string()]);
    assert!(log.contains("does-not-exist.txt"), "{log}");

    // The image: its file, and where it came from.
    let registry = server.base().trim_start_matches("http://").to_owned();
    let creds = format!("{ADMIN_USER}:{ADMIN_PASSWORD}");
    let layout = tmp.path().join("latest");
    skopeo(
        tmp.path(),
        &[
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            &creds,
            &format!("docker://{registry}/{repo}:latest"),
            &format!("oci:{}:latest", layout.display()),
        ],
    );
    assert!(image_files(&layout).contains(&("hello.txt".to_owned(), "Hello Hub\n".to_owned())));
    let raw: Value = serde_json::from_str(&skopeo(
        tmp.path(),
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            &creds,
            &format!("docker://{registry}/{repo}:latest"),
        ],
    ))
    .unwrap();
    let annotations = &raw["annotations"];
    assert_eq!(annotations["org.opencontainers.image.source"], url.as_str());
    assert_eq!(
        annotations["org.opencontainers.image.revision"],
        commit.as_str()
    );
    assert_eq!(
        annotations["org.opencontainers.image.ref.name"],
        "refs/heads/main"
    );

    // A signed GitHub push of the tag builds the tag rule (the capture is the image tag).
    let body = serde_json::json!({"ref": "refs/tags/v1.2.3", "after": commit, "deleted": false})
        .to_string();
    let hook = format!("/api/v1/repositories/{repo}/build-hooks/github");
    let unsigned = reqwest::Client::new();
    let refused = |signature: Option<String>| {
        let mut request = unsigned
            .post(server.url(&hook))
            .header("X-GitHub-Event", "push")
            .body(body.clone());
        if let Some(signature) = signature {
            request = request.header("X-Hub-Signature-256", signature);
        }
        request.send()
    };
    let before = api(
        &server,
        Method::GET,
        &format!("/api/v1/repositories/{repo}/-/builds"),
    )
    .await
    .1;
    for bad in [
        None,
        Some(berth_core::builds::hooks::github_signature(
            "wrong",
            body.as_bytes(),
        )),
    ] {
        assert_eq!(refused(bad).await.unwrap().status(), 401);
    }
    let after = api(
        &server,
        Method::GET,
        &format!("/api/v1/repositories/{repo}/-/builds"),
    )
    .await
    .1;
    assert_eq!(
        before["builds"].as_array().unwrap().len(),
        after["builds"].as_array().unwrap().len(),
        "a refused hook builds nothing"
    );
    let started = Instant::now();
    let response = refused(Some(berth_core::builds::hooks::github_signature(
        &secret,
        body.as_bytes(),
    )))
    .await
    .unwrap();
    let queued_in = started.elapsed();
    assert_eq!(response.status(), 202);
    let queued: Value = response.json().await.unwrap();
    eprintln!("webhook -> queued build: {queued_in:?}");
    let builds = queued["builds"].as_array().unwrap();
    assert_eq!(builds.len(), 1, "{queued}");
    assert_eq!(builds[0]["tags"], serde_json::json!(["1.2.3"]));
    let done = finished(&server, builds[0]["id"].as_i64().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{}", done["log"]);
    let layout = tmp.path().join("tagged");
    skopeo(
        tmp.path(),
        &[
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            &creds,
            &format!("docker://{registry}/{repo}:1.2.3"),
            &format!("oci:{}:t", layout.display()),
        ],
    );
    assert_eq!(
        image_files(&layout),
        vec![("a.txt".to_owned(), "from the first stage\n".to_owned())],
        "the multi-stage build keeps only its last stage"
    );

    // Faults: an unknown ref, a missing Dockerfile, a rule list past 10.
    let (status, body) = {
        let r = server
            .request(
                Method::POST,
                &format!("/api/v1/repositories/{repo}/-/builds"),
            )
            .json(&serde_json::json!({"ref": "refs/heads/nope"}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(
        status, 400,
        "no rule matches a branch nobody builds: {body}"
    );
    berth_ok(
        &dir,
        &[
            "build", "rule", "add", repo, "--type", "branch", "--source", "/^gone$/", "--tag",
            "gone",
        ],
    );
    let gone = trigger(&server, repo, "gone").await;
    let gone = finished(&server, gone[0]["id"].as_i64().unwrap()).await;
    assert_eq!(gone["status"], "failed");
    assert!(
        gone["reason"].as_str().unwrap().contains("could not fetch"),
        "{gone}"
    );
    berth_ok(
        &dir,
        &[
            "build",
            "rule",
            "add",
            repo,
            "--type",
            "tag",
            "--source",
            "v1.2.3",
            "--tag",
            "nodockerfile",
            "--dockerfile",
            "nope/Dockerfile",
        ],
    );
    let missing = trigger(&server, repo, "refs/tags/v1.2.3").await;
    let missing = missing
        .iter()
        .find(|b| b["tags"][0] == "nodockerfile")
        .unwrap();
    let missing = finished(&server, missing["id"].as_i64().unwrap()).await;
    assert!(
        missing["reason"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{missing}"
    );
    for i in 0..5 {
        berth_ok(
            &dir,
            &[
                "build",
                "rule",
                "add",
                repo,
                "--type",
                "branch",
                "--source",
                &format!("b{i}"),
                "--tag",
                "x",
            ],
        );
    }
    let eleventh = berth(
        &dir,
        &[
            "build", "rule", "add", repo, "--type", "branch", "--source", "b9", "--tag", "x",
        ],
    );
    assert!(!eleventh.status.success());
    assert!(String::from_utf8_lossy(&eleventh.stderr).contains("10 build rules"));

    // A commit that changes nothing the image holds: the build comes from the cache, and
    // still names the new commit.
    let work = tmp.path().join("work");
    std::fs::write(work.join("NOTES.md"), "not in the image\n").unwrap();
    run(&work, "git", &["add", "."]);
    run(&work, "git", &["commit", "-q", "-m", "notes"]);
    run(&work, "git", &["push", "-q", &url, "main"]);
    let newer = run(&work, "git", &["rev-parse", "HEAD"]);
    let rebuilt = trigger(&server, repo, "refs/heads/main").await;
    let rebuilt = rebuilt.iter().find(|b| b["tags"][0] == "latest").unwrap();
    let rebuilt = finished(&server, rebuilt["id"].as_i64().unwrap()).await;
    assert_eq!(rebuilt["status"], "succeeded", "{}", rebuilt["log"]);
    assert!(
        rebuilt["log"].as_str().unwrap().contains("Using cache"),
        "{}",
        rebuilt["log"]
    );
    let raw: Value = serde_json::from_str(&skopeo(
        tmp.path(),
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            &creds,
            &format!("docker://{registry}/{repo}:latest"),
        ],
    ))
    .unwrap();
    assert_eq!(
        raw["annotations"]["org.opencontainers.image.revision"],
        newer.as_str()
    );

    // The badge and the list.
    let badge = server
        .request(
            Method::GET,
            &format!("/api/v1/repositories/{repo}/-/build/badge.svg"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(badge.headers()["content-type"], "image/svg+xml");
    let listed = berth_ok(&dir, &["build", "list", repo, "--json"]);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert!(listed.as_array().unwrap().len() >= 5);

    // Deleting the repository takes its source, rules and builds along.
    let (status, body) = api(
        &server,
        Method::DELETE,
        &format!("/api/v1/repositories/{repo}"),
    )
    .await;
    assert!([200, 202, 204].contains(&status), "{status} {body}");
    let gone = berth(&dir, &["build", "source", "show", repo]);
    assert!(
        !gone.status.success(),
        "the source went with the repository"
    );
    let listed = berth_ok(&dir, &["build", "list", repo, "--json"]);
    assert_eq!(
        serde_json::from_str::<Value>(&listed).unwrap(),
        serde_json::json!([])
    );
}

/// A buildah that waits before building, so a build stays running long enough to be
/// cancelled, counted or interrupted.
fn slow_buildah(dir: &Path) -> PathBuf {
    let path = dir.join("slow-buildah");
    std::fs::write(
        &path,
        "#!/bin/sh\n# Only the build step waits; the rest runs at once.\nif [ \"$7\" = build ]; then sleep 60; fi\nexec buildah \"$@\"\n",
    )
    .unwrap();
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&path, perms).unwrap();
    path
}

fn sleeping_processes(marker: &Path) -> usize {
    let out = Command::new("pgrep")
        .args(["-f", &marker.display().to_string()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_are_cancelled_limited_and_failed_by_a_restart() {
    if !tools_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (url, _) = git_repository(tmp.path());
    let slow = slow_buildah(tmp.path());
    let options = spawn_options(&tmp.path().join("builds"))
        .env("BERTH_BUILD_BUILDAH", slow.to_str().unwrap())
        .env("BERTH_BUILD_CONCURRENCY", "1");
    let mut server = TestServer::spawn_with(options).await;
    let dir = server.data_dir().unwrap().to_owned();
    let repo = "admin/slow";
    berth_ok(&dir, &["build", "source", "set", repo, "--git", &url]);
    berth_ok(
        &dir,
        &[
            "build", "rule", "add", repo, "--type", "branch", "--source", "main", "--tag", "latest",
        ],
    );

    // Two builds, one slot: whichever starts first, the other waits queued while it runs.
    let a = trigger(&server, repo, "main").await[0]["id"]
        .as_i64()
        .unwrap();
    let b = trigger(&server, repo, "main").await[0]["id"]
        .as_i64()
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    let (first, second) = loop {
        let (_, one) = api(&server, Method::GET, &format!("/api/v1/builds/{a}")).await;
        let (_, other) = api(&server, Method::GET, &format!("/api/v1/builds/{b}")).await;
        match (
            one["status"].as_str().unwrap(),
            other["status"].as_str().unwrap(),
        ) {
            ("running", "queued") => break (a, b),
            ("queued", "running") => break (b, a),
            ("queued", "queued") => {}
            pair => panic!("build_concurrency = 1 runs one build at a time: {pair:?}"),
        }
        assert!(Instant::now() < deadline, "no build started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, queued) = api(&server, Method::GET, &format!("/api/v1/builds/{second}")).await;
    assert_eq!(
        queued["status"], "queued",
        "build_concurrency = 1 runs one build at a time"
    );

    // Cancelling the running one kills its processes; the queued one then runs.
    let deadline = Instant::now() + DEADLINE;
    while sleeping_processes(&slow) == 0 {
        assert!(Instant::now() < deadline, "the slow buildah never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The running build's credentials: its push token may push to this repository alone,
    // its pull token may not push at all, and both die with the build.
    let work = tmp.path().join("builds").join(format!("build-{first}"));
    let registry = server.base().trim_start_matches("http://").to_owned();
    let basic = |file: &str| {
        let auth: Value = serde_json::from_slice(&std::fs::read(work.join(file)).unwrap()).unwrap();
        format!(
            "Basic {}",
            auth["auths"][registry.as_str()]["auth"].as_str().unwrap()
        )
    };
    let (push, pull) = (basic("push-auth.json"), basic("pull-auth.json"));
    let plain = reqwest::Client::new();
    let start_upload = |auth: String, target: &str| {
        plain
            .post(server.url(&format!("/v2/{target}/blobs/uploads/")))
            .header("Authorization", auth)
            .send()
    };
    assert_eq!(
        start_upload(push.clone(), repo).await.unwrap().status(),
        202
    );
    for other in ["admin/other", "library/base"] {
        let refused = start_upload(push.clone(), other)
            .await
            .unwrap()
            .status()
            .as_u16();
        assert!(
            [401, 403].contains(&refused),
            "the push token reached {other}: {refused}"
        );
    }
    let refused = start_upload(pull.clone(), repo)
        .await
        .unwrap()
        .status()
        .as_u16();
    assert!(
        [401, 403].contains(&refused),
        "the pull token pushed: {refused}"
    );

    let cancelled = berth_ok(&dir, &["build", "cancel", &first.to_string()]);
    assert!(cancelled.contains(&first.to_string()));
    let done = finished(&server, first).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    wait_status(&server, second, "running").await;
    assert_eq!(
        start_upload(push, repo).await.unwrap().status(),
        401,
        "revoked with its build"
    );
    let (_, pulled) = api(
        &server,
        Method::GET,
        &format!("/v2/{repo}/manifests/latest"),
    )
    .await;
    assert!(
        pulled["errors"].is_array(),
        "a cancelled build pushes nothing"
    );

    // kill -9 of the server mid-build: after the restart the build is failed, its
    // processes are gone, its push token is revoked, and no tag was pushed.
    let deadline = Instant::now() + DEADLINE;
    while sleeping_processes(&slow) == 0 {
        assert!(
            Instant::now() < deadline,
            "the second build's buildah never started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second_work = tmp.path().join("builds").join(format!("build-{second}"));
    let auth: Value =
        serde_json::from_slice(&std::fs::read(second_work.join("push-auth.json")).unwrap())
            .unwrap();
    let second_push = format!(
        "Basic {}",
        auth["auths"][registry.as_str()]["auth"].as_str().unwrap()
    );
    assert_eq!(
        start_upload(second_push.clone(), repo)
            .await
            .unwrap()
            .status(),
        202
    );
    server.kill_hard();
    server.restart().await;
    let failed = finished(&server, second).await;
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .contains("server stopped"),
        "{failed}"
    );
    let deadline = Instant::now() + DEADLINE;
    while sleeping_processes(&slow) > 0 {
        assert!(
            Instant::now() < deadline,
            "the interrupted build's processes are still running"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _) = api(
        &server,
        Method::GET,
        &format!("/v2/{repo}/manifests/latest"),
    )
    .await;
    assert_eq!(status, 404, "no half-pushed tag");
    let plain = reqwest::Client::new();
    let refused = plain
        .post(server.url(&format!("/v2/{repo}/blobs/uploads/")))
        .header("Authorization", second_push)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(
        refused, 401,
        "the interrupted build's push token is revoked when the build is failed"
    );
    // And its end is announced like any other, for the webhooks waiting on it.
    let (status, events) = api(&server, Method::GET, "/api/v1/events").await;
    assert_eq!(status, 200, "{events}");
    let announced: Vec<&Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "build.completed" && e["data"]["build_id"] == second)
        .collect();
    assert_eq!(announced.len(), 1, "{events}");
    assert_eq!(announced[0]["data"]["status"], "failed", "{events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polled_source_builds_what_moved_since_the_last_look() {
    if !tools_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (url, _) = git_repository(tmp.path());
    let server = TestServer::spawn_with(spawn_options(&tmp.path().join("builds"))).await;
    let dir = server.data_dir().unwrap().to_owned();
    let repo = "admin/polled";
    let too_often = berth(
        &dir,
        &[
            "build", "source", "set", repo, "--git", &url, "--poll", "2s",
        ],
    );
    assert!(!too_often.status.success());
    berth_ok(
        &dir,
        &[
            "build", "source", "set", repo, "--git", &url, "--poll", "10s",
        ],
    );
    berth_ok(
        &dir,
        &[
            "build", "rule", "add", repo, "--type", "branch", "--source", "main", "--tag", "latest",
        ],
    );

    // The first look only records where the refs stand: nothing is built.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let source: Value =
            serde_json::from_str(&berth_ok(&dir, &["build", "source", "show", repo])).unwrap();
        if source["polled_at"].is_i64() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the source was never polled: {source}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (_, listed) = api(
        &server,
        Method::GET,
        &format!("/api/v1/repositories/{repo}/-/builds"),
    )
    .await;
    assert_eq!(listed["builds"].as_array().unwrap().len(), 0);

    // A new commit on main is built by the next look.
    let work = tmp.path().join("work");
    std::fs::write(work.join("hello.txt"), "Hello again\n").unwrap();
    run(&work, "git", &["commit", "-q", "-am", "again"]);
    run(&work, "git", &["push", "-q", &url, "main"]);
    let newer = run(&work, "git", &["rev-parse", "HEAD"]);
    let deadline = Instant::now() + DEADLINE;
    let id = loop {
        let (_, listed) = api(
            &server,
            Method::GET,
            &format!("/api/v1/repositories/{repo}/-/builds"),
        )
        .await;
        if let Some(build) = listed["builds"].as_array().unwrap().first() {
            assert_eq!(build["trigger"], "poll");
            break build["id"].as_i64().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the new commit was never built\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let done = finished(&server, id).await;
    assert_eq!(done["status"], "succeeded", "{}", done["log"]);
    assert_eq!(done["commit"], newer.as_str());
}
