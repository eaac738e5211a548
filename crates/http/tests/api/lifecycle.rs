//! Garbage collection and quotas through the protocol: what GC keeps and deletes, the race
//! between pushes and GC, quota refusals on both upload paths, and exact usage counts.

use crate::support::*;
use berth_core::events::EventKind;
use berth_core::lifecycle::{Collector, GcOptions, GcReport};
use berth_core::ports::{Collection, EventLog, MetaStore, UsageStore};
use berth_storage::FsBlobStore;
use reqwest::header::CONTENT_TYPE;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A collector over the app's stores with its own grace period.
fn collector(app: &TestApp, grace: Duration) -> Collector {
    let blobs = Arc::new(FsBlobStore::open(app.blob_root()).expect("blob store"));
    Collector::new(
        app.meta() as Arc<dyn MetaStore>,
        blobs,
        app.registry.clone(),
        berth_core::clock::system(),
        GcOptions {
            grace,
            // Small batches, so a run has many marking transactions to race with.
            batch: 3,
            window: 7,
            ..GcOptions::default()
        },
    )
}

async fn collect(app: &TestApp, grace: Duration) -> GcReport {
    run_gc(&collector(app, grace)).await
}

/// One whole collection by `gc`, waiting while the server's own scheduled one (run at
/// start) holds the lock.
async fn run_gc(gc: &Collector) -> GcReport {
    loop {
        match gc.run(false).await {
            Ok(report) => return report,
            Err(berth_core::lifecycle::gc::GcError::Busy) => {
                tokio::time::sleep(Duration::from_millis(10)).await
            }
            Err(err) => panic!("gc run: {err:?}"),
        }
    }
}

/// The blob's file in the store.
fn blob_file(app: &TestApp, digest: &str) -> std::path::PathBuf {
    let hex = digest.trim_start_matches("sha256:");
    app.blob_root()
        .join("blobs")
        .join("sha256")
        .join(&hex[..2])
        .join(hex)
}

/// GETs a blob and checks its bytes hash to its digest.
async fn blob_is_whole(app: &TestApp, repo: &str, digest: &str) -> bool {
    let resp = app
        .send(app.get(&format!("/v2/{repo}/blobs/{digest}")))
        .await;
    if resp.status() != 200 {
        return false;
    }
    let body = resp.bytes().await.expect("blob body");
    sha256(&body) == digest
}

/// Monolithic upload (`POST ?digest=` with the body); returns the status and the body.
async fn try_push_blob(app: &TestApp, repo: &str, content: &[u8]) -> (u16, String) {
    let post = app
        .post(&format!(
            "/v2/{repo}/blobs/uploads/?digest={}",
            sha256(content)
        ))
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(content.to_vec());
    let resp = app.send(post).await;
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

#[tokio::test]
async fn gc_deletes_unreferenced_blobs_after_the_grace_and_keeps_every_referenced_one() {
    let app = TestApp::spawn().await;
    // Shared across repositories: a layer used by images in two repositories.
    let shared = bytes(1, 300);
    let kept_image = {
        let config = app
            .push_blob_as("gc/a", b"{\"os\":\"linux\"}", OCI_CONFIG)
            .await;
        let layer = app.push_blob("gc/a", &shared).await;
        let m = ManifestBuilder::oci_image(&config, &[layer]).build();
        app.push_manifest_ok("gc/a", "v1", &m).await;
        m
    };
    let other_repo_image = {
        let config = app
            .push_blob_as("gc/b", b"{\"os\":\"linux\",\"b\":1}", OCI_CONFIG)
            .await;
        let layer = app.push_blob("gc/b", &shared).await;
        let own = app.push_blob("gc/b", &bytes(2, 200)).await;
        let m = ManifestBuilder::oci_image(&config, &[layer, own]).build();
        app.push_manifest_ok("gc/b", "v1", &m).await;
        m
    };
    // An index whose children are pushed by digest only: its children's blobs stay.
    let (child_a, child_b) = {
        let ca = app.push_image("gc/a", "tmp-a", 10).await;
        let cb = app.push_image("gc/a", "tmp-b", 11).await;
        (ca, cb)
    };
    let index = ManifestBuilder::oci_index(&[child_a.descriptor(), child_b.descriptor()]).build();
    app.push_manifest_ok("gc/a", "multi", &index).await;
    for tag in ["tmp-a", "tmp-b"] {
        let resp = app
            .send(app.delete(&format!("/v2/gc/a/manifests/{tag}")))
            .await;
        assert_eq!(resp.status(), 202, "untagging {tag}");
    }
    // Garbage: a blob nobody references, and an image whose manifest is deleted.
    let loose = app.push_blob("gc/a", &bytes(3, 100)).await;
    let doomed_config = app
        .push_blob_as("gc/c", b"{\"os\":\"linux\",\"c\":1}", OCI_CONFIG)
        .await;
    let doomed_layer = app.push_blob("gc/c", &bytes(4, 150)).await;
    let doomed_shared = app.push_blob("gc/c", &shared).await;
    let doomed =
        ManifestBuilder::oci_image(&doomed_config, &[doomed_layer.clone(), doomed_shared]).build();
    app.push_manifest_ok("gc/c", "v1", &doomed).await;
    let resp = app
        .send(app.delete(&format!("/v2/gc/c/manifests/{}", doomed.digest())))
        .await;
    assert_eq!(resp.status(), 202);

    // Within the grace period nothing goes.
    let report = collect(&app, Duration::from_secs(3600)).await;
    assert_eq!((report.blobs, report.bytes), (0, 0), "{report:?}");
    assert_eq!(
        report.manifests, 1,
        "the deleted manifest's row goes at once"
    );
    assert!(blob_file(&app, &loose.digest).exists());

    // Past it, exactly the unreferenced blobs go.
    let report = collect(&app, Duration::ZERO).await;
    assert_eq!(report.blobs, 3, "{report:?}");
    assert_eq!(
        report.bytes,
        (100 + 150 + "{\"os\":\"linux\",\"c\":1}".len()) as u64
    );
    for digest in [&loose.digest, &doomed_layer.digest, &doomed_config.digest] {
        assert!(!blob_file(&app, digest).exists(), "{digest} is deleted");
    }
    let gone = app
        .send(app.get(&format!("/v2/gc/a/blobs/{}", loose.digest)))
        .await;
    assert_error(gone, 404, "BLOB_UNKNOWN").await;

    let kept = [
        ("gc/a", &kept_image),
        ("gc/b", &other_repo_image),
        ("gc/a", &child_a),
        ("gc/a", &child_b),
    ];
    for (repo, manifest) in kept {
        let doc: serde_json::Value = serde_json::from_slice(&manifest.body).unwrap();
        let mut digests = vec![doc["config"]["digest"].as_str().unwrap().to_owned()];
        for layer in doc["layers"].as_array().unwrap() {
            digests.push(layer["digest"].as_str().unwrap().to_owned());
        }
        for digest in digests {
            assert!(blob_is_whole(&app, repo, &digest).await, "{repo}@{digest}");
        }
    }
    let resp = app.send(app.get("/v2/gc/a/manifests/multi")).await;
    assert_eq!(resp.status(), 200);

    // A second run finds nothing more.
    let report = collect(&app, Duration::ZERO).await;
    assert_eq!((report.blobs, report.manifests), (0, 0), "{report:?}");
}

async fn dry_run(app: &TestApp) -> GcReport {
    collector(app, Duration::ZERO)
        .run(true)
        .await
        .expect("dry run")
}

#[tokio::test]
async fn a_gc_dry_run_counts_exactly_what_the_real_run_then_deletes() {
    let app = TestApp::spawn().await;
    // Kept: an image whose layer an orphan shares.
    let kept = app.push_image("dry/kept", "v1", 20).await;
    let kept_layer = app.push_blob("dry/orphans", &bytes(20, 64)).await;
    // Orphans at two levels: an index and its two children, all deleted by digest (the
    // children first, so they are left listed only by the deleted index), and an image
    // sharing the kept image's layer.
    let child_a = app.push_image("dry/orphans", "a", 21).await;
    let child_b = app.push_image("dry/orphans", "b", 22).await;
    let index = ManifestBuilder::oci_index(&[child_a.descriptor(), child_b.descriptor()]).build();
    app.push_manifest_ok("dry/orphans", "multi", &index).await;
    let sharing_config = app
        .push_blob_as(
            "dry/orphans",
            b"{\"os\":\"linux\",\"sharing\":1}",
            OCI_CONFIG,
        )
        .await;
    let sharing = ManifestBuilder::oci_image(&sharing_config, &[kept_layer]).build();
    app.push_manifest_ok("dry/orphans", "sharing", &sharing)
        .await;
    for digest in [
        child_a.digest(),
        child_b.digest(),
        index.digest(),
        sharing.digest(),
    ] {
        let resp = app
            .send(app.delete(&format!("/v2/dry/orphans/manifests/{digest}")))
            .await;
        assert_eq!(resp.status(), 202, "deleting {digest}");
    }
    // A loose blob, and one an interrupted run had marked.
    app.push_blob("dry/orphans", &bytes(23, 100)).await;
    let marked = app.push_blob("dry/orphans", &bytes(24, 50)).await;
    let now = berth_core::time::now_unix();
    let doomed = app
        .meta()
        .mark_blobs(&[marked.digest.parse().unwrap()], now + 1, now)
        .await
        .expect("mark");
    assert_eq!(doomed.len(), 1);

    let dry = dry_run(&app).await;
    let real = collect(&app, Duration::ZERO).await;
    eprintln!("dry: {dry:?}\nreal: {real:?}");
    assert_eq!(
        (dry.blobs, dry.bytes, dry.manifests, dry.resumed),
        (real.blobs, real.bytes, real.manifests, real.resumed),
        "the dry run counts what the run deletes"
    );
    // Exactly: 4 manifests; the children's configs and layers, the sharing image's config,
    // the loose blob and the marked one (the kept layer stays).
    assert_eq!(real.manifests, 4, "{real:?}");
    assert_eq!(real.blobs, 7, "{real:?}");
    assert_eq!(real.resumed, 1, "{real:?}");
    let pulled = app.send(app.get("/v2/dry/kept/manifests/v1")).await;
    assert_eq!(pulled.status(), 200);
    let doc: serde_json::Value = serde_json::from_slice(&kept.body).unwrap();
    let layer = doc["layers"][0]["digest"].as_str().unwrap();
    assert!(blob_is_whole(&app, "dry/kept", layer).await, "kept layer");
    let after = dry_run(&app).await;
    assert_eq!(
        (after.blobs, after.manifests),
        (0, 0),
        "nothing left: {after:?}"
    );
}

/// One acknowledged manifest: where, and the blobs it names.
struct Acknowledged {
    repo: &'static str,
    digest: String,
    blobs: Vec<String>,
}

/// Pushes one image made of `layers` and a config unique to `round`, retrying what GC
/// took from under it. Returns the acknowledged manifest, or None after too many refusals.
async fn push_round(
    app: &TestApp,
    repo: &'static str,
    round: usize,
    layers: &[Vec<u8>],
    refusals: &AtomicUsize,
) -> Option<Acknowledged> {
    let config = format!("{{\"os\":\"linux\",\"round\":{round}}}");
    for _attempt in 0..50 {
        let mut descriptors = Vec::new();
        let mut uploads_ok = true;
        for content in std::iter::once(config.as_bytes()).chain(layers.iter().map(Vec::as_slice)) {
            let (status, body) = try_push_blob(app, repo, content).await;
            match status {
                201 => descriptors.push(Descriptor::of(OCI_LAYER, content)),
                // Collected between the bytes landing and the link: upload again.
                404 if body.contains("BLOB_UNKNOWN") => {
                    refusals.fetch_add(1, Ordering::Relaxed);
                    uploads_ok = false;
                    break;
                }
                other => panic!("blob upload answered {other}: {body}"),
            }
        }
        if !uploads_ok {
            continue;
        }
        let config_descriptor = Descriptor::of(OCI_CONFIG, config.as_bytes());
        let manifest = ManifestBuilder::oci_image(&config_descriptor, &descriptors[1..]).build();
        let resp = app
            .push_manifest(repo, &format!("r{round}"), &manifest)
            .await;
        match resp.status().as_u16() {
            201 => {
                return Some(Acknowledged {
                    repo,
                    digest: manifest.digest(),
                    blobs: descriptors.iter().map(|d| d.digest.clone()).collect(),
                })
            }
            400 => {
                let text = resp.text().await.unwrap_or_default();
                assert!(text.contains("MANIFEST_BLOB_UNKNOWN"), "{text}");
                refusals.fetch_add(1, Ordering::Relaxed);
            }
            other => panic!(
                "manifest push answered {other}: {}",
                resp.text().await.unwrap_or_default()
            ),
        }
    }
    None
}

#[tokio::test]
async fn pushes_racing_gc_never_leave_an_acknowledged_manifest_pointing_at_missing_bytes() {
    const PUSHERS: usize = 4;
    const ROUNDS: usize = 60;
    let app = Arc::new(TestApp::spawn().await);
    // A small pool of layers every pusher re-uses, in two repositories. The manifests that
    // use them are deleted right after they are acknowledged, so the pool is garbage most
    // of the time: the collector (with no grace at all) keeps marking its blobs while other
    // pushers link them again and push manifests naming them.
    let pool: Arc<Vec<Vec<u8>>> = Arc::new((0..6).map(|n| bytes(100 + n, 512)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let gc_runs = Arc::new(AtomicUsize::new(0));
    let gc = {
        let (app, stop, gc_runs) = (app.clone(), stop.clone(), gc_runs.clone());
        tokio::spawn(async move {
            let collector = collector(&app, Duration::ZERO);
            let mut reclaimed = 0;
            let mut pause = 0u64;
            while !stop.load(Ordering::Relaxed) {
                match collector.run(false).await {
                    Ok(report) => {
                        reclaimed += report.blobs;
                        gc_runs.fetch_add(1, Ordering::Relaxed);
                    }
                    // The server's own scheduled collection holds the lock for now.
                    Err(berth_core::lifecycle::gc::GcError::Busy) => {}
                    Err(err) => panic!("gc run: {err:?}"),
                }
                // Irregular pauses, so pushes meet every phase of a run.
                pause = (pause * 7 + 3) % 11;
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            reclaimed
        })
    };
    let refusals = Arc::new(AtomicUsize::new(0));
    let mut pushers = Vec::new();
    for pusher in 0..PUSHERS {
        let (app, pool, refusals) = (app.clone(), pool.clone(), refusals.clone());
        pushers.push(tokio::spawn(async move {
            let repo = if pusher % 2 == 0 {
                "race/one"
            } else {
                "race/two"
            };
            let mut kept = Vec::new();
            let mut churned = 0;
            for n in 0..ROUNDS {
                let round = pusher * ROUNDS + n;
                let keep = round.is_multiple_of(4);
                let layers = if keep {
                    vec![bytes((round % 250) as u8, 300 + round)]
                } else {
                    vec![pool[round % 6].clone(), pool[(round / 6 + 1) % 6].clone()]
                };
                let Some(acked) = push_round(&app, repo, round, &layers, &refusals).await else {
                    continue;
                };
                // Acknowledged: every byte it names is there now, and stays while it is.
                for blob in &acked.blobs {
                    assert!(
                        blob_is_whole(&app, repo, blob).await,
                        "acknowledged {repo}@{} names {blob}, which is gone",
                        acked.digest
                    );
                }
                if keep {
                    kept.push(acked);
                } else {
                    let resp = app
                        .send(app.delete(&format!("/v2/{repo}/manifests/{}", acked.digest)))
                        .await;
                    assert_eq!(resp.status(), 202);
                    churned += 1;
                }
            }
            (kept, churned)
        }));
    }
    let mut acknowledged = Vec::new();
    let mut churned = 0;
    for pusher in pushers {
        let (kept, n) = pusher.await.expect("pusher");
        acknowledged.extend(kept);
        churned += n;
    }
    stop.store(true, Ordering::Relaxed);
    let reclaimed = gc.await.expect("gc loop");
    collect(&app, Duration::ZERO).await;
    eprintln!(
        "{} manifests kept and {churned} churned; {} GC runs reclaimed {reclaimed} blobs; \
         {} refusals retried",
        acknowledged.len(),
        gc_runs.load(Ordering::Relaxed),
        refusals.load(Ordering::Relaxed)
    );
    assert!(gc_runs.load(Ordering::Relaxed) > 10, "GC ran throughout");
    assert!(reclaimed > 0, "GC had garbage to race on");
    assert!(
        acknowledged.len() + churned >= PUSHERS * ROUNDS / 4,
        "pushes got through"
    );
    let mut missing = Vec::new();
    for acked in &acknowledged {
        let resp = app
            .send(app.get(&format!("/v2/{}/manifests/{}", acked.repo, acked.digest)))
            .await;
        assert_eq!(resp.status(), 200, "{}@{}", acked.repo, acked.digest);
        for blob in &acked.blobs {
            if !blob_is_whole(&app, acked.repo, blob).await {
                missing.push(format!("{}@{} -> {blob}", acked.repo, acked.digest));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "acknowledged manifests lost bytes: {missing:#?}"
    );
}

/// `quota exceeded: namespace uses X of Y`, as a 403 `DENIED`.
async fn assert_quota_refusal(status: u16, body: &str, used: &str, quota: &str) {
    assert_eq!(status, 403, "{body}");
    let doc: serde_json::Value = serde_json::from_str(body).expect("JSON error");
    assert_eq!(doc["errors"][0]["code"], "DENIED", "{body}");
    assert_eq!(
        doc["errors"][0]["message"],
        format!("quota exceeded: namespace uses {used} of {quota}")
    );
}

#[tokio::test]
async fn a_push_past_the_quota_is_refused_on_both_paths_and_its_bytes_are_freed() {
    let app = TestApp::spawn().await;
    let meta = app.meta();
    meta.set_quota("q", Some(1000)).await.unwrap();
    let first = bytes(1, 600);
    let (status, body) = try_push_blob(&app, "q/app", &first).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(meta.namespace_usage("q").await.unwrap().bytes, 600);

    // Length known (monolithic POST): refused before a byte is stored.
    let second = bytes(2, 600);
    let (status, body) = try_push_blob(&app, "q/app", &second).await;
    assert_quota_refusal(status, &body, "600 B", "1000 B").await;
    assert_eq!(app.upload_files(), 0);
    assert!(!blob_file(&app, &sha256(&second)).exists());

    // Length unknown until the end (chunks): refused at commit, the bytes removed.
    let location = app.start_upload("q/app").await;
    let patch = app
        .patch(&location)
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(second.clone());
    let resp = app.send(patch).await;
    assert_eq!(resp.status(), 202);
    let location = header(&resp, "location").to_owned();
    let put = app.put(&with_query(
        &location,
        &format!("digest={}", sha256(&second)),
    ));
    let resp = app.send(put).await;
    let status = resp.status().as_u16();
    assert_quota_refusal(status, &resp.text().await.unwrap(), "600 B", "1000 B").await;
    assert_eq!(app.upload_files(), 0, "the refused chunks are gone");
    assert!(!blob_file(&app, &sha256(&second)).exists());

    // A blob the namespace already holds adds nothing, so it is accepted at the limit.
    let (status, body) = try_push_blob(&app, "q/other", &first).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(meta.namespace_usage("q").await.unwrap().bytes, 600);
    assert_eq!(
        meta.repository_usage(&"q/other".parse().unwrap())
            .await
            .unwrap(),
        Some(600)
    );

    // Crossing 85 % records `quota.warning`, once.
    assert!(!quota_warnings(&app).await.iter().any(|ns| ns == "q"));
    let (status, _) = try_push_blob(&app, "q/app", &bytes(3, 300)).await;
    assert_eq!(status, 201);
    let (status, _) = try_push_blob(&app, "q/app", &bytes(4, 50)).await;
    assert_eq!(status, 201);
    assert_eq!(quota_warnings(&app).await, vec!["q".to_owned()]);

    // Lifting the quota lets the push through.
    meta.set_quota("q", None).await.unwrap();
    let (status, body) = try_push_blob(&app, "q/app", &second).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(meta.namespace_usage("q").await.unwrap().bytes, 1550);
}

/// Namespaces named by `quota.warning` events so far.
async fn quota_warnings(app: &TestApp) -> Vec<String> {
    let events = app.meta().events_after(0, 1000).await.unwrap();
    events
        .into_iter()
        .filter(|e| e.kind == EventKind::QuotaWarning)
        .map(|e| e.namespace)
        .collect()
}

#[tokio::test]
async fn concurrent_pushes_never_pass_the_quota_and_usage_stays_exact_through_deletes() {
    const BLOB: usize = 1000;
    let app = Arc::new(TestApp::spawn().await);
    let meta = app.meta();
    meta.set_quota("c", Some(10 * BLOB as u64)).await.unwrap();
    let mut pushers = Vec::new();
    for pusher in 0..8u8 {
        let app = app.clone();
        pushers.push(tokio::spawn(async move {
            let mut accepted = 0;
            for n in 0..4u8 {
                let repo = if n.is_multiple_of(2) { "c/a" } else { "c/b" };
                let (status, body) = try_push_blob(&app, repo, &bytes(pusher * 8 + n, BLOB)).await;
                match status {
                    201 => accepted += 1,
                    403 => assert!(body.contains("quota exceeded"), "{body}"),
                    other => panic!("answered {other}: {body}"),
                }
            }
            accepted
        }));
    }
    let mut accepted = 0;
    for pusher in pushers {
        accepted += pusher.await.unwrap();
    }
    let usage = meta.namespace_usage("c").await.unwrap();
    assert_eq!(accepted, 10, "exactly as many as the quota holds");
    assert_eq!(usage.bytes, (accepted * BLOB) as u64);

    // Deletes, shared links and a collection, concurrently with more pushes.
    meta.set_quota("c", None).await.unwrap();
    let shared = bytes(200, BLOB);
    let mut tasks = Vec::new();
    for worker in 0..4u8 {
        let (app, shared) = (app.clone(), shared.clone());
        tasks.push(tokio::spawn(async move {
            for n in 0..6u8 {
                let repo = if (worker + n) % 2 == 0 { "c/a" } else { "c/b" };
                let own = bytes(100 + worker * 8 + n, 700);
                // With no grace, the collector may take a blob as soon as it is linked
                // (nothing references it): then a re-link is told BLOB_UNKNOWN.
                for content in [&own, &shared] {
                    let (status, body) = try_push_blob(&app, repo, content).await;
                    assert!(
                        status == 201 || body.contains("BLOB_UNKNOWN"),
                        "{status} {body}"
                    );
                }
                if n.is_multiple_of(2) {
                    let resp = app
                        .send(app.delete(&format!("/v2/{repo}/blobs/{}", sha256(&own))))
                        .await;
                    assert!(matches!(resp.status().as_u16(), 202 | 404));
                }
            }
        }));
    }
    let gc = collector(&app, Duration::ZERO);
    for _ in 0..5 {
        run_gc(&gc).await;
    }
    for task in tasks {
        task.await.unwrap();
    }
    run_gc(&gc).await;
    let counted = meta.namespace_usage("c").await.unwrap().bytes;
    let repair = meta.recompute_usage().await.unwrap();
    assert_eq!(repair.corrected, 0, "the running totals matched a recount");
    assert_eq!(meta.namespace_usage("c").await.unwrap().bytes, counted);
    let a = meta
        .repository_usage(&"c/a".parse().unwrap())
        .await
        .unwrap();
    let b = meta
        .repository_usage(&"c/b".parse().unwrap())
        .await
        .unwrap();
    // A blob in both repositories counts in each, once in the namespace.
    assert!(a.unwrap() + b.unwrap() >= counted);
    assert!(meta.doomed_blobs(10).await.unwrap().is_empty());
}

/// Pushes `images` small images (config, 4 KiB layer, manifest) into `namespace`; the time.
async fn push_images(app: &TestApp, namespace: &str, start: usize, images: usize) -> Duration {
    let repo = format!("{namespace}/app");
    let started = std::time::Instant::now();
    for n in start..start + images {
        let config = format!("{{\"os\":\"linux\",\"n\":{n}}}");
        let layer = [bytes((n % 251) as u8, 4096), n.to_le_bytes().to_vec()].concat();
        let (status, body) = try_push_blob(app, &repo, config.as_bytes()).await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = try_push_blob(app, &repo, &layer).await;
        assert_eq!(status, 201, "{body}");
        let manifest = ManifestBuilder::oci_image(
            &Descriptor::of(OCI_CONFIG, config.as_bytes()),
            &[Descriptor::of(OCI_LAYER, &layer)],
        )
        .build();
        app.push_manifest_ok(&repo, &format!("v{n}"), &manifest)
            .await;
    }
    started.elapsed()
}

/// Side by side in one process: the same pushes into a namespace without a quota and into
/// one with a (never reached) quota, alternated so machine noise hits both alike. Prints
/// the totals; `docs/PERFORMANCE.md` records them.
#[tokio::test]
#[ignore = "a measurement; run it by name"]
async fn measure_pushes_with_and_without_a_quota() {
    let app = TestApp::spawn().await;
    app.meta().set_quota("quota", Some(1 << 40)).await.unwrap();
    let (mut without, mut with) = (Duration::ZERO, Duration::ZERO);
    const IMAGES: usize = 100;
    for round in 0..6usize {
        // Which goes first alternates, so warming up and drifting load favour neither.
        let (plain, quota) = if round.is_multiple_of(2) {
            let plain = push_images(&app, "plain", round * IMAGES, IMAGES).await;
            (
                plain,
                push_images(&app, "quota", round * IMAGES, IMAGES).await,
            )
        } else {
            let quota = push_images(&app, "quota", round * IMAGES, IMAGES).await;
            (
                push_images(&app, "plain", round * IMAGES, IMAGES).await,
                quota,
            )
        };
        eprintln!("round {round}: without {plain:?}, with {quota:?}");
        without += plain;
        with += quota;
    }
    let ratio = with.as_secs_f64() / without.as_secs_f64();
    eprintln!(
        "{} images each: without a quota {without:?}, with one {with:?} ({:+.1} %)",
        6 * IMAGES,
        (ratio - 1.0) * 100.0
    );
}
