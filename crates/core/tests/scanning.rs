//! Scanning through the real stores: an image pushed through the registry service, an OSV
//! import that replaces the database atomically, the scan with its summary row, event and
//! SBOM referrer, and the feed that turns pushes into scan jobs.

use berth_core::clock::SystemClock;
use berth_core::jobs::JobFeed;
use berth_core::jobs::JobHandler;
use berth_core::ports::ClaimedJob;
use berth_core::ports::MetaStore;
use berth_core::registry::{ChangedBy, PutManifest, RegistryOptions};
use berth_core::scan::{import_vulndb, RescanAll, ScanFeed, Scanner, RESCAN_JOB, SCAN_JOB};
use berth_core::Registry;
use berth_meta::SqliteMeta;
use berth_oci::{Digest, Reference, RepoName};
use berth_storage::FsBlobStore;
use bytes::Bytes;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

fn data(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scan/tests/data")
        .join(path)
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

struct World {
    _dir: tempfile::TempDir,
    meta: Arc<dyn MetaStore>,
    blobs: Arc<dyn berth_core::ports::BlobStore>,
    registry: Registry,
    scanner: Scanner,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let blobs: Arc<dyn berth_core::ports::BlobStore> =
        Arc::new(FsBlobStore::open(dir.path().join("data")).unwrap());
    let meta: Arc<dyn MetaStore> = Arc::new(
        SqliteMeta::open(&dir.path().join("berth.db"))
            .await
            .unwrap(),
    );
    let registry = Registry::new(blobs.clone(), meta.clone(), RegistryOptions::default());
    let scanner = Scanner::new(
        meta.clone(),
        blobs.clone(),
        registry.clone(),
        Arc::new(SystemClock),
    );
    World {
        _dir: dir,
        meta,
        blobs,
        registry,
        scanner,
    }
}

async fn upload(registry: &Registry, repo: &RepoName, bytes: Vec<u8>) -> (Digest, u64) {
    let digest = Digest::sha256_of(&bytes);
    let size = bytes.len() as u64;
    let body: berth_core::ports::ByteStream =
        Box::pin(futures_util::stream::once(
            async move { Ok(Bytes::from(bytes)) },
        ));
    registry
        .upload_monolithic(repo, None, &digest, Some(size), body)
        .await
        .unwrap();
    (digest, size)
}

/// Pushes a Debian 12 image holding this machine's dpkg status and the venv's packages.
async fn push_debian_image(registry: &Registry, repo: &RepoName) -> Digest {
    let mut python = Vec::new();
    for entry in std::fs::read_dir(data("python")).unwrap() {
        let dir = entry.unwrap().file_name().into_string().unwrap();
        python.push((
            format!("usr/lib/python3/dist-packages/{dir}/METADATA"),
            std::fs::read(data(&format!("python/{dir}/METADATA"))).unwrap(),
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
    let mut layers = Vec::new();
    for bytes in [base, layer(&python)] {
        layers.push(upload(registry, repo, bytes).await);
    }
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let (config, config_size) = upload(registry, repo, config).await;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": config_size},
        "layers": layers.iter().map(|(d, s)| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d.to_string(), "size": s
        })).collect::<Vec<_>>(),
    });
    let body = serde_json::to_vec(&manifest).unwrap();
    registry
        .put_manifest(PutManifest {
            repo,
            reference: &Reference::Tag("12".parse().unwrap()),
            extra_tags: &[],
            content_type: Some("application/vnd.oci.image.manifest.v1+json"),
            body: &body,
            by: ChangedBy::new("alice", None),
        })
        .await
        .unwrap()
        .digest
}

#[tokio::test]
async fn a_pushed_image_is_scanned_against_the_imported_database() {
    let w = world().await;
    let repo: RepoName = "alice/debian".parse().unwrap();
    let digest = push_debian_image(&w.registry, &repo).await;

    // Without a database the push makes no scan job: a scan would claim "none found".
    let feed = ScanFeed::new(w.meta.clone(), Arc::new(SystemClock));
    assert_eq!(feed.feed().await.unwrap(), 0);

    // Without a database only the inventory runs.
    let scan = w
        .scanner
        .scan(&repo, &digest, &["12".to_owned()])
        .await
        .unwrap();
    assert!(scan.packages > 800, "{}", scan.packages);
    assert!(scan.findings.is_empty());
    assert_eq!(scan.db_generation, None);

    let status = import_vulndb(w.meta.clone(), Arc::new(SystemClock), &data("osv"))
        .await
        .unwrap();
    assert_eq!((status.advisories, status.skipped), (15, 2));
    assert_eq!(status.by_ecosystem.get("PyPI"), Some(&6));
    assert_eq!(w.meta.vulndb_status().await.unwrap().unwrap(), status);

    // With one, the push's event becomes a scan job; the push of the SBOM the scan above
    // attached (a referrer) does not.
    assert_eq!(push_debian_image(&w.registry, &repo).await, digest);
    assert_eq!(feed.feed().await.unwrap(), 1);
    let jobs = w.meta.list_jobs(false, 100).await.unwrap();
    assert!(
        jobs.iter()
            .any(|j| j.kind == SCAN_JOB && j.payload.contains(&digest.to_string())),
        "{jobs:?}"
    );

    let scan = w
        .scanner
        .scan(&repo, &digest, &["12".to_owned()])
        .await
        .unwrap();
    // Hand-checked in berth-scan's matching test: the Debian and PyPI findings of this image.
    let c = scan.counts;
    assert_eq!(
        (c.critical, c.high, c.medium, c.low, c.unknown),
        (0, 1, 5, 14, 2)
    );
    let summaries = w
        .meta
        .vulnerability_summaries(&[digest.to_string()])
        .await
        .unwrap();
    assert_eq!(summaries[&digest.to_string()].high, 1);
    assert_eq!(
        w.meta
            .scan_result(&digest.to_string())
            .await
            .unwrap()
            .unwrap(),
        scan
    );

    // The SBOM is a referrer of the image, CycloneDX, listing the packages.
    let referrers = w
        .meta
        .referrers(&repo, &digest, Some("application/vnd.cyclonedx+json"))
        .await
        .unwrap();
    assert_eq!(
        referrers.len(),
        1,
        "one SBOM, however often the image is scanned"
    );
    assert_eq!(
        scan.sbom_digest.as_deref(),
        Some(referrers[0].digest.to_string().as_str())
    );

    // A scan event was recorded for webhooks.
    let events = w.meta.events_after(0, 1000).await.unwrap();
    let scanned: Vec<_> = events
        .iter()
        .filter(|e| e.kind.as_str() == "scan.completed")
        .collect();
    assert_eq!(scanned.len(), 2);
    assert_eq!(scanned[1].data["high"], 1);
    assert_eq!(scanned[1].data["tags"], serde_json::json!(["12"]));

    // A second import replaces the first: only the Alpine advisories remain.
    let alpine = tempfile::tempdir().unwrap();
    for name in ["ALPINE-CVE-2023-5363.json", "ALPINE-CVE-2022-48174.json"] {
        std::fs::copy(data(&format!("osv/{name}")), alpine.path().join(name)).unwrap();
    }
    let status = import_vulndb(w.meta.clone(), Arc::new(SystemClock), alpine.path())
        .await
        .unwrap();
    assert_eq!(status.advisories, 2);
    let scan = w.scanner.scan(&repo, &digest, &[]).await.unwrap();
    assert!(scan.findings.is_empty(), "{:?}", scan.findings);

    // A path that cannot be read leaves the loaded database alone.
    assert!(import_vulndb(
        w.meta.clone(),
        Arc::new(SystemClock),
        &alpine.path().join("missing")
    )
    .await
    .is_err());
    assert_eq!(w.meta.vulndb_status().await.unwrap().unwrap().advisories, 2);
    assert_eq!(
        w.meta
            .advisories_for(berth_scan::Ecosystem::Alpine, "openssl")
            .await
            .unwrap()
            .len(),
        1
    );

    // Indexes and artifacts are not images.
    let sbom: Digest = referrers[0].digest.clone();
    assert!(w.scanner.scan(&repo, &sbom, &[]).await.is_err());
    let _ = w
        .meta
        .manifest_by_digest(&repo, &sbom)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn scan_results_live_as_long_as_the_image_in_any_repository() {
    let w = world().await;
    let first: RepoName = "alice/debian".parse().unwrap();
    let copy: RepoName = "alice/copy".parse().unwrap();
    let digest = push_debian_image(&w.registry, &first).await;
    assert_eq!(push_debian_image(&w.registry, &copy).await, digest);
    w.scanner
        .clone()
        .with_sbom(false)
        .scan(&first, &digest, &[])
        .await
        .unwrap();
    let name = digest.to_string();
    let kept = |meta: Arc<dyn MetaStore>, name: String| async move {
        (
            meta.scan_result(&name).await.unwrap().is_some(),
            meta.vulnerability_summaries(std::slice::from_ref(&name))
                .await
                .unwrap()
                .contains_key(&name),
        )
    };
    assert_eq!(kept(w.meta.clone(), name.clone()).await, (true, true));

    // Deleted from one repository, the image is still in the other: its result stays.
    let by_digest = Reference::Digest(digest.clone());
    w.registry
        .delete_manifest(&first, &by_digest, ChangedBy::new("alice", None))
        .await
        .unwrap();
    assert_eq!(kept(w.meta.clone(), name.clone()).await, (true, true));
    // Deleted from the last one, the result and the summary the pull policies read go too.
    w.registry
        .delete_manifest(&copy, &by_digest, ChangedBy::new("alice", None))
        .await
        .unwrap();
    assert_eq!(kept(w.meta.clone(), name.clone()).await, (false, false));
}

#[tokio::test]
async fn the_sbom_referrer_counts_toward_the_namespace_quota() {
    let w = world().await;
    let repo: RepoName = "alice/debian".parse().unwrap();
    let digest = push_debian_image(&w.registry, &repo).await;
    let before = w.meta.namespace_usage("alice").await.unwrap().bytes;
    let scan = w.scanner.scan(&repo, &digest, &[]).await.unwrap();
    assert!(scan.sbom_digest.is_some(), "{:?}", scan.warnings);
    let after = w.meta.namespace_usage("alice").await.unwrap().bytes;
    assert!(
        after > before + 10_000,
        "the SBOM's bytes count: {before} -> {after}"
    );

    // A full namespace refuses the SBOM like any push; the scan still stores its result and
    // says why the SBOM is missing.
    let other: RepoName = "bob/debian".parse().unwrap();
    let digest = push_debian_image(&w.registry, &other).await;
    let used = w.meta.namespace_usage("bob").await.unwrap().bytes;
    w.meta.set_quota("bob", Some(used + 100)).await.unwrap();
    let scan = w.scanner.scan(&other, &digest, &[]).await.unwrap();
    assert_eq!(scan.sbom_digest, None);
    assert!(
        scan.warnings
            .iter()
            .any(|w| w.contains("SBOM could not be attached")),
        "{:?}",
        scan.warnings
    );
    assert!(w.meta.namespace_usage("bob").await.unwrap().bytes <= used + 100);
    assert!(w
        .meta
        .scan_result(&digest.to_string())
        .await
        .unwrap()
        .is_some());
}

/// Pushes `manifest` (JSON) by tag or by digest and returns its digest.
async fn push_manifest(
    registry: &Registry,
    repo: &RepoName,
    manifest: serde_json::Value,
    tag: Option<&str>,
) -> Digest {
    let body = serde_json::to_vec(&manifest).unwrap();
    let reference = match tag {
        Some(tag) => Reference::Tag(tag.parse().unwrap()),
        None => Reference::Digest(Digest::sha256_of(&body)),
    };
    registry
        .put_manifest(PutManifest {
            repo,
            reference: &reference,
            extra_tags: &[],
            content_type: Some("application/vnd.oci.image.manifest.v1+json"),
            body: &body,
            by: ChangedBy::new("alice", None),
        })
        .await
        .unwrap()
        .digest
}

/// An artifact manifest holding one `layer_type` document, attached to `subject` if given;
/// without an artifact type it is laid out as cosign's tag scheme does, with an image config.
async fn push_artifact(
    registry: &Registry,
    repo: &RepoName,
    artifact_type: Option<&str>,
    layer_type: &str,
    document: &[u8],
    subject: Option<(&Digest, u64)>,
    tag: Option<&str>,
) -> Digest {
    let (layer, layer_size) = upload(registry, repo, document.to_vec()).await;
    let (config, config_size) = upload(registry, repo, b"{}".to_vec()).await;
    let config_type = match artifact_type {
        Some(_) => "application/vnd.oci.empty.v1+json",
        None => "application/vnd.oci.image.config.v1+json",
    };
    let mut manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": config_type, "digest": config.to_string(), "size": config_size},
        "layers": [{"mediaType": layer_type, "digest": layer.to_string(), "size": layer_size}],
    });
    if let Some(artifact_type) = artifact_type {
        manifest["artifactType"] = serde_json::json!(artifact_type);
    }
    if let Some((subject, size)) = subject {
        manifest["subject"] = serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": subject.to_string(),
            "size": size,
        });
    }
    push_manifest(registry, repo, manifest, tag).await
}

fn scan_jobs_for(jobs: &[berth_core::ports::JobRecord], digest: &Digest) -> usize {
    jobs.iter()
        .filter(|j| j.kind == SCAN_JOB && j.payload.contains(&digest.to_string()))
        .count()
}

/// A scratch image (one static binary, no package database) is scanned on push and finds
/// nothing; the SBOM Berth attaches, and signatures, make no scan jobs of their own; the
/// SBOMs a client attaches later (a CycloneDX referrer, an SPDX document under cosign's
/// `.sbom` tag) each have the image scanned again, with the packages they list matched.
#[tokio::test]
async fn a_client_sbom_arriving_later_rescans_its_image_and_referrers_are_not_scanned() {
    let w = world().await;
    let repo: RepoName = "alice/app".parse().unwrap();
    import_vulndb(w.meta.clone(), Arc::new(SystemClock), &data("osv"))
        .await
        .unwrap();
    let feed = ScanFeed::new(w.meta.clone(), Arc::new(SystemClock));
    assert_eq!(feed.feed().await.unwrap(), 0);

    let (binary, binary_size) = upload(
        &w.registry,
        &repo,
        layer(&[("app/server".to_owned(), b"\x7fELF not really".to_vec())]),
    )
    .await;
    let (config, config_size) = upload(
        &w.registry,
        &repo,
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec(),
    )
    .await;
    let image = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": binary.to_string(), "size": binary_size}],
    });
    let image_size = serde_json::to_vec(&image).unwrap().len() as u64;
    let digest = push_manifest(&w.registry, &repo, image, Some("1.0")).await;
    assert_eq!(feed.feed().await.unwrap(), 1, "the pushed image");
    let first = w
        .scanner
        .scan(&repo, &digest, &["1.0".to_owned()])
        .await
        .unwrap();
    assert_eq!((first.packages, first.findings.len()), (0, 0));
    let berth_sbom = first.sbom_digest.clone().expect("Berth attached its SBOM");

    // Berth's own SBOM push, and a cosign signature referrer, are not scanned.
    assert_eq!(
        feed.feed().await.unwrap(),
        0,
        "Berth's SBOM is not an image"
    );
    push_artifact(
        &w.registry,
        &repo,
        Some("application/vnd.dev.cosign.artifact.sig.v1+json"),
        "application/vnd.dev.cosign.simplesigning.v1+json",
        br#"{"critical":{}}"#,
        Some((&digest, image_size)),
        None,
    )
    .await;
    let signature_tag = format!("sha256-{}.sig", digest.hex());
    push_artifact(
        &w.registry,
        &repo,
        None,
        "application/vnd.dev.cosign.simplesigning.v1+json",
        br#"{"critical":{}}"#,
        None,
        Some(&signature_tag),
    )
    .await;
    assert_eq!(feed.feed().await.unwrap(), 0, "signatures are not images");
    let jobs = w.meta.list_jobs(false, 100).await.unwrap();
    assert_eq!(
        jobs.iter().filter(|j| j.kind == SCAN_JOB).count(),
        1,
        "{jobs:?}"
    );

    // A client attaches a CycloneDX SBOM (as `syft -o cyclonedx-json` writes components)
    // listing the npm packages the binary bundles.
    let cyclonedx = br#"{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,
        "metadata":{"component":{"type":"container","name":"alice/app"}},
        "components":[
          {"type":"library","name":"minimist","version":"1.2.5","purl":"pkg:npm/minimist@1.2.5"},
          {"type":"library","name":"lodash","version":"4.17.20","purl":"pkg:npm/lodash@4.17.20"},
          {"type":"library","name":"golang.org/x/net","version":"v0.17.0","purl":"pkg:golang/golang.org/x/net@v0.17.0"}]}"#;
    let client_sbom = push_artifact(
        &w.registry,
        &repo,
        Some("application/vnd.cyclonedx+json"),
        "application/vnd.cyclonedx+json",
        cyclonedx,
        Some((&digest, image_size)),
        None,
    )
    .await;
    assert_eq!(
        feed.feed().await.unwrap(),
        1,
        "the SBOM's subject is rescanned"
    );
    let jobs = w.meta.list_jobs(false, 100).await.unwrap();
    assert_eq!(scan_jobs_for(&jobs, &client_sbom), 0);
    assert_eq!(scan_jobs_for(&jobs, &digest), 1);

    let second = w.scanner.scan(&repo, &digest, &[]).await.unwrap();
    let rows: Vec<String> = second
        .findings
        .iter()
        .map(|f| format!("{} {} {}", f.package, f.advisory, f.severity.as_str()))
        .collect();
    // As in berth-scan's hand-checked matching test for the same packages.
    assert_eq!(
        rows,
        [
            "minimist GHSA-xvch-5gv4-984h critical",
            "lodash GHSA-35jh-r3h4-6jhm high",
            "lodash GHSA-29mw-wpgm-hmr9 medium",
        ]
    );
    assert_eq!(second.packages, 2);
    assert_eq!(
        second.sbom_digest.as_deref(),
        Some(berth_sbom.as_str()),
        "Berth's SBOM still lists what the layers hold: the same referrer, not a second"
    );
    let summary = &w
        .meta
        .vulnerability_summaries(&[digest.to_string()])
        .await
        .unwrap()[&digest.to_string()];
    assert_eq!((summary.critical, summary.high), (1, 1));

    // cosign's tag scheme: an SPDX SBOM under `sha256-<hex>.sbom`, listing a PyPI package.
    let spdx = br#"{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"alice/app",
        "packages":[{"SPDXID":"SPDXRef-urllib3","name":"urllib3","versionInfo":"1.26.4",
          "externalRefs":[{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl",
                           "referenceLocator":"pkg:pypi/urllib3@1.26.4"}]}]}"#;
    let sbom_tag = format!("sha256-{}.sbom", digest.hex());
    push_artifact(
        &w.registry,
        &repo,
        None,
        "text/spdx+json",
        spdx,
        None,
        Some(&sbom_tag),
    )
    .await;
    assert_eq!(feed.feed().await.unwrap(), 1);
    let tagged_sbom = w
        .meta
        .manifest_by_tag(&repo, &sbom_tag)
        .await
        .unwrap()
        .unwrap()
        .digest;
    assert!(
        matches!(
            w.scanner.scan(&repo, &tagged_sbom, &[]).await,
            Err(berth_core::scan::ScanError::NotAnImage(_))
        ),
        "a tag-scheme SBOM is an artifact, not an image"
    );
    let third = w.scanner.scan(&repo, &digest, &[]).await.unwrap();
    assert_eq!(third.packages, 3);
    assert!(
        third
            .findings
            .iter()
            .any(|f| f.package == "urllib3" && f.advisory == "GHSA-q2q7-5pp4-w6pg"),
        "{:?}",
        third.findings
    );

    // A client SBOM that is not JSON is reported in the scan's warnings, not fatal.
    push_artifact(
        &w.registry,
        &repo,
        Some("application/spdx+json"),
        "application/spdx+json",
        b"not json",
        Some((&digest, image_size)),
        None,
    )
    .await;
    let fourth = w.scanner.scan(&repo, &digest, &[]).await.unwrap();
    assert_eq!(fourth.packages, 3);
    assert!(
        fourth
            .warnings
            .iter()
            .any(|w| w.contains("not a CycloneDX or SPDX")),
        "{:?}",
        fourth.warnings
    );
}

/// An image pushed before any vulnerability database is not scanned on push (a scan would
/// claim "none found"); the import's rescan queues it, and never the SBOM or signature
/// referrers next to it.
#[tokio::test]
async fn the_import_rescans_images_pushed_before_it_and_not_their_referrers() {
    let w = world().await;
    let repo: RepoName = "alice/debian".parse().unwrap();
    let digest = push_debian_image(&w.registry, &repo).await;
    let feed = ScanFeed::new(w.meta.clone(), Arc::new(SystemClock));
    assert_eq!(feed.feed().await.unwrap(), 0);
    // Its SBOM exists already (an inventory-only scan, as `berth scan` runs without a database).
    let scan = w.scanner.scan(&repo, &digest, &[]).await.unwrap();
    let sbom: Digest = scan.sbom_digest.unwrap().parse().unwrap();

    import_vulndb(w.meta.clone(), Arc::new(SystemClock), &data("osv"))
        .await
        .unwrap();
    assert!(w.scanner.rescan_all().await.unwrap());
    let rescan = w
        .meta
        .list_jobs(false, 100)
        .await
        .unwrap()
        .into_iter()
        .find(|j| j.kind == RESCAN_JOB)
        .expect("the rescan job");
    let claimed = ClaimedJob {
        id: rescan.id,
        kind: rescan.kind.clone(),
        payload: rescan.payload.clone(),
        attempt: 1,
        max_attempts: rescan.max_attempts,
        lease: String::new(),
    };
    RescanAll(w.scanner.clone()).run(&claimed).await.unwrap();
    let jobs = w.meta.list_jobs(false, 100).await.unwrap();
    assert_eq!(scan_jobs_for(&jobs, &digest), 1, "{jobs:?}");
    assert_eq!(scan_jobs_for(&jobs, &sbom), 0, "{jobs:?}");
}

/// A pull-through cache keeps an upstream's manifest before its layers: its scan is not
/// stored as "none found" (nothing was read), and no SBOM is attached; once a client's SBOM
/// says what the image holds, the scan runs on that and names the missing layer.
#[tokio::test]
async fn an_image_without_its_layers_is_left_unscanned_rather_than_reported_clean() {
    let w = world().await;
    let repo: RepoName = "alice/cached".parse().unwrap();
    import_vulndb(w.meta.clone(), Arc::new(SystemClock), &data("osv"))
        .await
        .unwrap();
    let (config, config_size) = upload(
        &w.registry,
        &repo,
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec(),
    )
    .await;
    let absent = Digest::sha256_of(b"a layer the cache never fetched");
    let body = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": absent.to_string(), "size": 1234}],
    }))
    .unwrap();
    let digest = Digest::sha256_of(&body);
    w.meta
        .put_cached_manifest(&berth_core::ports::NewManifest {
            repo: repo.clone(),
            digest: digest.clone(),
            media_type: "application/vnd.oci.image.manifest.v1+json".to_owned(),
            body: body.clone(),
            blobs: vec![config.clone(), absent.clone()],
            children: vec![],
            subject: None,
            artifact_type: None,
            annotations_json: None,
            platform: berth_core::ports::ManifestPlatform::None,
            tags: vec!["1".to_owned()],
            now: 0,
            actor: None,
            events: vec![],
        })
        .await
        .unwrap();

    let error = w.scanner.scan(&repo, &digest, &[]).await.unwrap_err();
    assert!(
        matches!(&error, berth_core::scan::ScanError::LayersMissing(l) if l.contains(&absent.to_string())),
        "{error}"
    );
    assert!(w
        .meta
        .scan_result(&digest.to_string())
        .await
        .unwrap()
        .is_none());
    assert!(w
        .meta
        .referrers(&repo, &digest, None)
        .await
        .unwrap()
        .is_empty());

    let cyclonedx = br#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[
        {"type":"library","purl":"pkg:npm/minimist@1.2.5"}]}"#;
    push_artifact(
        &w.registry,
        &repo,
        Some("application/vnd.cyclonedx+json"),
        "application/vnd.cyclonedx+json",
        cyclonedx,
        Some((&digest, body.len() as u64)),
        None,
    )
    .await;
    let scan = w.scanner.scan(&repo, &digest, &[]).await.unwrap();
    assert_eq!(scan.counts.critical, 1);
    assert_eq!(scan.sbom_digest, None, "no SBOM of layers nobody read");
    assert!(
        scan.warnings
            .iter()
            .any(|w| w.contains(&absent.to_string())),
        "{:?}",
        scan.warnings
    );
}

/// The issue's figures, measured: an import of 100,000 advisories, and matching an image
/// of this machine's 863 dpkg packages plus the venv's against them, after the layers are
/// read, with the scan's peak memory. Run with
/// `cargo test --release -p berth-core --test scanning -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement: 100,000 advisories"]
async fn import_and_match_at_scale() {
    let w = world().await;
    let osv_dir = tempfile::tempdir().unwrap();
    let status = std::fs::read_to_string(data("dpkg-status")).unwrap();
    let mut sources: Vec<String> = status
        .lines()
        .filter_map(|l| {
            l.strip_prefix("Package: ")
                .or_else(|| l.strip_prefix("Source: "))
        })
        .map(|s| s.split(' ').next().unwrap().to_owned())
        .collect();
    sources.sort();
    sources.dedup();
    for i in 0..100_000usize {
        // A third on installed source packages (so matching has work), the rest spread over
        // 30,000 other names in three ecosystems.
        let (ecosystem, name) = match i % 3 {
            0 => ("Debian:12".to_owned(), sources[i % sources.len()].clone()),
            1 => ("PyPI".to_owned(), format!("pkg{}", i % 30_000)),
            _ => ("npm".to_owned(), format!("pkg{}", i % 30_000)),
        };
        let doc = serde_json::json!({
            "id": format!("TEST-{i}"), "modified": "2026-01-01T00:00:00Z",
            "summary": "synthetic advisory for the import measurement",
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
            "affected": [{"package": {"ecosystem": ecosystem, "name": name},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": format!("0.{i}")}]}]}],
        });
        std::fs::write(
            osv_dir.path().join(format!("TEST-{i}.json")),
            doc.to_string(),
        )
        .unwrap();
    }
    let started = std::time::Instant::now();
    let imported = import_vulndb(w.meta.clone(), Arc::new(SystemClock), osv_dir.path())
        .await
        .unwrap();
    let import_time = started.elapsed();
    assert_eq!(imported.advisories, 100_000);

    let repo: RepoName = "alice/debian".parse().unwrap();
    let digest = push_debian_image(&w.registry, &repo).await;
    let scanner = Scanner::new(
        w.meta.clone(),
        w.blobs.clone(),
        w.registry.clone(),
        Arc::new(SystemClock),
    )
    .with_sbom(false);
    // The process's peak resident set is reset here, so what it reaches next is the scan's
    // (the test's own data, the SQLite cache and the runtime included: an upper bound).
    let resident_before = memory_kib("VmRSS");
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let started = std::time::Instant::now();
    let scan = scanner.scan(&repo, &digest, &[]).await.unwrap();
    let scan_time = started.elapsed();
    let peak = memory_kib("VmHWM");
    println!(
        "import of 100,000 advisories: {:.1} s; scan of {} packages ({} findings), layers included: {:.2} s",
        import_time.as_secs_f64(),
        scan.packages,
        scan.findings.len(),
        scan_time.as_secs_f64()
    );
    match (resident_before, peak, reset) {
        (Some(before), Some(peak), true) => println!(
            "scanner peak memory: the process's peak resident set during the scan was {:.1} MiB ({:.1} MiB resident before it)",
            peak as f64 / 1024.0,
            before as f64 / 1024.0
        ),
        _ => println!("scanner peak memory: not measured (no /proc/self/status or clear_refs)"),
    }
    if let Some(peak) = peak.filter(|_| reset) {
        assert!(
            peak < 200 * 1024,
            "the scan's peak resident set is {peak} KiB, over the 200 MiB budget"
        );
    }
}

/// A `Vm*` line of `/proc/self/status`, in KiB.
fn memory_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        line.strip_prefix(field)?
            .strip_prefix(':')?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}
