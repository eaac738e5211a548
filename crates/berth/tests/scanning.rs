//! Vulnerability scanning through the real binary: an image pushed to a running server,
//! `berth vulndb import` on its data directory, the server's rescan, the API's counts
//! and findings, the SBOM in the referrers API, and `berth scan --json --fail-on`.

mod common;

use common::{
    image_manifest_json, unique_repo, Descriptor, TestServer, MT_OCI_CONFIG, MT_OCI_LAYER_GZIP,
    MT_OCI_MANIFEST,
};
use reqwest::Method;
use serde_json::Value;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn data(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scan/tests/data")
        .join(path)
}

fn berth(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("BERTH_CONFIG")
        .env_remove("BERTH_DATA_DIR")
        .output()
        .expect("run berth")
}

fn layer(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, path, content.as_slice())
            .unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&builder.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

async fn get_json(server: &TestServer, path: &str) -> Value {
    let response = server.request(Method::GET, path).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_images_are_scanned_and_gated() {
    let server = TestServer::spawn().await;
    let dir = server.data_dir().expect("spawned server").to_owned();
    let repo = unique_repo("scan");

    // A Debian 12 image: this machine's dpkg status and a venv's packages.
    let mut python = Vec::new();
    for entry in std::fs::read_dir(data("python")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        python.push((
            format!("usr/lib/python3/dist-packages/{name}/METADATA"),
            std::fs::read(data(&format!("python/{name}/METADATA"))).unwrap(),
        ));
    }
    let base = layer(&[
        (
            "etc/os-release".to_owned(),
            std::fs::read(data("os-release-debian12")).unwrap(),
        ),
        (
            "var/lib/dpkg/status".to_owned(),
            std::fs::read(data("dpkg-status")).unwrap(),
        ),
    ]);
    let layers = [base, layer(&python)];
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    server.push_blob(&repo, &config).await;
    for bytes in &layers {
        server.push_blob(&repo, bytes).await;
    }
    let manifest = common::pretty(&image_manifest_json(
        &Descriptor::of(MT_OCI_CONFIG, &config),
        &layers
            .iter()
            .map(|l| Descriptor::of(MT_OCI_LAYER_GZIP, l))
            .collect::<Vec<_>>(),
    ));
    server
        .push_manifest_ok(&repo, Some("12"), MT_OCI_MANIFEST, &manifest)
        .await;
    let digest = common::sha256(&manifest);

    let status = berth(&dir, &["vulndb", "status", "--json"]);
    assert!(status.status.success());
    assert_eq!(
        serde_json::from_slice::<Value>(&status.stdout).unwrap()["loaded"],
        false
    );

    let import = berth(&dir, &["vulndb", "import", data("osv").to_str().unwrap()]);
    let said = String::from_utf8_lossy(&import.stdout);
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    assert!(
        said.contains("imported 15 advisories") && said.contains("2 malformed entries skipped"),
        "{said}"
    );
    let status: Value =
        serde_json::from_slice(&berth(&dir, &["vulndb", "status", "--json"]).stdout).unwrap();
    assert_eq!(status["database"]["advisories"], 15);
    assert_eq!(status["database"]["by_ecosystem"]["Debian"], 4);

    // The server rescans every image after the import, on its own.
    let tags_path = format!("/api/v1/repositories/{repo}/-/tags");
    let deadline = Instant::now() + Duration::from_secs(120);
    let counts = loop {
        let tags = get_json(&server, &tags_path).await;
        let counts = tags["results"][0]["vulnerabilities"].clone();
        if counts["high"] == 1 {
            break counts;
        }
        assert!(
            Instant::now() < deadline,
            "no rescan within 120 s: {tags}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        (
            counts["critical"].clone(),
            counts["medium"].clone(),
            counts["low"].clone(),
            counts["unknown"].clone()
        ),
        (0.into(), 5.into(), 14.into(), 2.into())
    );

    let findings = get_json(&server, &format!("{tags_path}/12/vulnerabilities")).await;
    let image = &findings["images"][0];
    assert_eq!(image["digest"], digest.as_str());
    let requests = image["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["advisory"] == "GHSA-j8r2-6x86-q33q")
        .expect("requests 2.25.1 is affected by CVE-2023-32681");
    assert_eq!(
        (
            requests["installed_version"].as_str(),
            requests["fixed_version"].as_str()
        ),
        (Some("2.25.1"), Some("2.31.0"))
    );
    assert_eq!(requests["severity"], "medium");

    // The SBOM is a referrer of the image: what `oras discover` lists.
    let referrers = get_json(
        &server,
        &format!("/v2/{repo}/referrers/{digest}?artifactType=application/vnd.cyclonedx%2Bjson"),
    )
    .await;
    let sbom = &referrers["manifests"][0];
    assert_eq!(
        sbom["artifactType"], "application/vnd.cyclonedx+json",
        "{referrers}"
    );
    assert_eq!(image["sbom"], sbom["digest"]);

    // The CI gate.
    let reference = format!("{repo}:12");
    let scan = berth(&dir, &["scan", &reference, "--json"]);
    assert!(
        scan.status.success(),
        "{}",
        String::from_utf8_lossy(&scan.stderr)
    );
    let report: Value = serde_json::from_slice(&scan.stdout).unwrap();
    assert_eq!(report["vulnerabilities"]["high"], 1);
    assert_eq!(
        report["images"][0]["findings"].as_array().unwrap().len(),
        22
    );
    let gate = berth(&dir, &["scan", &reference, "--fail-on", "high"]);
    assert!(!gate.status.success(), "a high finding fails the gate");
    assert!(String::from_utf8_lossy(&gate.stderr).contains("severity high or worse"));
    assert!(berth(&dir, &["scan", &reference, "--fail-on", "critical"])
        .status
        .success());
    let by_digest = berth(
        &dir,
        &["scan", &format!("{repo}@{digest}"), "--fail-on", "low"],
    );
    assert!(!by_digest.status.success());
    let missing = berth(&dir, &["scan", &format!("{repo}:nope")]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("is not in the registry"));

    // A path that is not OSV data leaves the database alone.
    let bad = berth(&dir, &["vulndb", "import", "/nonexistent/osv"]);
    assert!(!bad.status.success());
    let status: Value =
        serde_json::from_slice(&berth(&dir, &["vulndb", "status", "--json"]).stdout).unwrap();
    assert_eq!(status["database"]["advisories"], 15);
}
