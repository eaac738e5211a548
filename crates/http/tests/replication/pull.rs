//! Pull rules: imports from Distribution (with and without htpasswd) and from a second
//! Berth, byte for byte with index children, cosign's tags and referrers; skipped the second
//! time; a remote down then up; the `replication.completed` webhook; bad rules refused.

use super::copy::{add_user, run, source_berth};
use crate::support::*;
use berth_core::identity::Acting;
use berth_core::ports::Manifests as _;
use berth_core::replication::ReplicationRequest;
use berth_oci::{Digest, RepoName};
use berth_outbound::registry::{PushBlob, RegistryClient};
use berth_testkit::images::{
    image_index, image_manifest, pretty, Descriptor, SmallImage, OCI_EMPTY, OCI_INDEX, OCI_MANIFEST,
};
use berth_testkit::receiver::Receiver;
use berth_testkit::{data_dir, serve, Options, Served};
use std::time::Duration;

pub(super) fn pull_rule(
    name: &str,
    source: &str,
    from: &str,
    namespace: &str,
) -> ReplicationRequest {
    ReplicationRequest {
        name: name.to_owned(),
        source: source.to_owned(),
        from: Some(from.to_owned()),
        to_namespace: Some(namespace.to_owned()),
        ..ReplicationRequest::default()
    }
}

/// The exact bytes of `repo:tag` (or `repo@digest`) in Berth's store.
pub(super) async fn stored(berth: &Served, repo: &str, reference: &str) -> Option<Vec<u8>> {
    let repo: RepoName = repo.parse().unwrap();
    let record = match reference.parse::<Digest>() {
        Ok(digest) => berth.meta.manifest_by_digest(&repo, &digest).await.unwrap(),
        Err(_) => berth.meta.manifest_by_tag(&repo, reference).await.unwrap(),
    };
    record.map(|r| r.body)
}

async fn push_blob(client: &RegistryClient, repo: &str, blob: &[u8]) {
    client
        .push_blob(
            repo,
            &Digest::sha256_of(blob),
            PushBlob {
                size: blob.len() as u64,
                body: Box::pin(futures_util::stream::iter([Ok(bytes::Bytes::from(
                    blob.to_vec(),
                ))])),
            },
        )
        .await
        .unwrap();
}

async fn put(client: &RegistryClient, repo: &str, reference: &str, media_type: &str, body: &[u8]) {
    client
        .put_manifest(repo, reference, media_type, body.to_vec())
        .await
        .expect("manifest pushed");
}

/// What Distribution 2.8 holds for a signed image: cosign's `.sig` tag, and an SBOM whose
/// subject is the image, listed in the `sha256-HEX` fallback index (no referrers API).
/// Returns the `.sig` tag, the signature and the SBOM.
async fn sign_at_distribution(
    client: &RegistryClient,
    repo: &str,
    image: &SmallImage,
) -> (String, Vec<u8>, Vec<u8>) {
    let subject = Descriptor::of(OCI_MANIFEST, &image.manifest);
    let empty = b"{}".to_vec();
    let signature_layer = b"cosign signature payload".to_vec();
    let sbom_layer = b"{\"spdxVersion\":\"SPDX-2.3\"}".to_vec();
    for blob in [&empty, &signature_layer, &sbom_layer] {
        push_blob(client, repo, blob).await;
    }
    let signature = pretty(&image_manifest(
        &Descriptor::of("application/vnd.oci.image.config.v1+json", &empty),
        &[Descriptor::of(
            "application/vnd.dev.cosign.simplesigning.v1+json",
            &signature_layer,
        )],
    ));
    let sig_tag = format!("{}.sig", subject.digest.replacen(':', "-", 1));
    put(client, repo, &sig_tag, OCI_MANIFEST, &signature).await;
    let mut sbom = image_manifest(
        &Descriptor::of(OCI_EMPTY, &empty),
        &[Descriptor::of("application/spdx+json", &sbom_layer)],
    );
    sbom["artifactType"] = serde_json::json!("application/spdx+json");
    sbom["subject"] = subject.json();
    let sbom = pretty(&sbom);
    let sbom_digest = Digest::sha256_of(&sbom).to_string();
    put(client, repo, &sbom_digest, OCI_MANIFEST, &sbom).await;
    let mut listed = Descriptor::of(OCI_MANIFEST, &sbom).json();
    listed["artifactType"] = serde_json::json!("application/spdx+json");
    let fallback = pretty(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [listed],
    }));
    put(
        client,
        repo,
        &subject.digest.replacen(':', "-", 1),
        OCI_INDEX,
        &fallback,
    )
    .await;
    (sig_tag, signature, sbom)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_rules_import_from_distribution_byte_for_byte_and_skip_the_second_time() {
    if !have_distribution() {
        return;
    }
    let origin = Distribution::start(None).await;
    let remote = client_for(&origin.url, None);
    let v1 = SmallImage::linux("v1", "app");
    let v2 = SmallImage::linux("v2", "app");
    seed(&remote, "library/app", "v1", &v1).await;
    let v2_digest = seed(&remote, "library/app", "v2", &v2).await;
    seed(
        &remote,
        "library/app",
        "dev",
        &SmallImage::linux("dev", "app"),
    )
    .await;
    let amd = SmallImage::linux("amd", "multi");
    let arm = SmallImage::new(
        r#"{"architecture":"arm64","os":"linux"}"#.as_bytes().to_vec(),
        b"arm layer".to_vec(),
    );
    seed(&remote, "library/multi", "amd", &amd).await;
    seed(&remote, "library/multi", "arm", &arm).await;
    let index = pretty(&image_index(&[
        Descriptor::of(OCI_MANIFEST, &amd.manifest),
        Descriptor::of(OCI_MANIFEST, &arm.manifest),
    ]));
    put(&remote, "library/multi", "latest", OCI_INDEX, &index).await;
    // Not matched by the source pattern.
    seed(&remote, "other/app", "v1", &SmallImage::linux("o", "x")).await;
    let (sig_tag, signature, sbom) = sign_at_distribution(&remote, "library/app", &v2).await;

    let dir = data_dir();
    let berth = serve(dir.path(), Options::default()).await;
    add_user(&berth, "alice", "alice-password-1").await;
    let receiver = Receiver::start().await;
    let hook = reqwest::Client::new()
        .post(format!("{}/api/v1/namespaces/alice/webhooks", berth.url()))
        .basic_auth("alice", Some("alice-password-1"))
        .json(&serde_json::json!({ "hook_url": receiver.url, "events": ["replication"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status(), 201, "{}", hook.text().await.unwrap());

    let mut request = pull_rule("from-dist", "library/*", &origin.url, "alice");
    request.tags = vec!["v*".to_owned(), "latest".to_owned()];
    let view = berth
        .state
        .replications
        .create(&Acting::cli(), request)
        .await
        .unwrap();
    assert_eq!(view.direction, "pull");
    assert_eq!(view.from.as_deref(), Some(origin.url.as_str()));
    assert_eq!(view.to, None);

    let first = run(&berth, "from-dist").await;
    assert_eq!(
        (first.tally.copied, first.tally.failed),
        (3, 0),
        "{first:?}"
    );
    assert_eq!(
        stored(&berth, "alice/library/app", "v1").await.unwrap(),
        v1.manifest
    );
    assert_eq!(
        stored(&berth, "alice/library/app", "v2").await.unwrap(),
        v2.manifest
    );
    assert!(stored(&berth, "alice/library/app", "dev").await.is_none());
    assert!(stored(&berth, "alice/other/app", "v1").await.is_none());
    assert_eq!(
        stored(&berth, "alice/library/multi", "latest")
            .await
            .unwrap(),
        index
    );
    for child in [&amd, &arm] {
        let digest = Digest::sha256_of(&child.manifest).to_string();
        assert_eq!(
            stored(&berth, "alice/library/multi", &digest)
                .await
                .unwrap(),
            child.manifest
        );
    }
    // The signature under its tag; the SBOM by digest, served by Berth's referrers API.
    assert_eq!(
        stored(&berth, "alice/library/app", &sig_tag).await.unwrap(),
        signature
    );
    let sbom_digest = Digest::sha256_of(&sbom);
    assert_eq!(
        stored(&berth, "alice/library/app", &sbom_digest.to_string())
            .await
            .unwrap(),
        sbom
    );
    let referrers = berth
        .meta
        .referrers(&"alice/library/app".parse().unwrap(), &v2_digest, None)
        .await
        .unwrap();
    assert_eq!(referrers.len(), 1);
    assert_eq!(referrers[0].digest, sbom_digest);
    // Pulled through Berth's own API by a client: the same digest as at the origin.
    let here = client_for(&berth.url(), Some(("alice", "alice-password-1")));
    assert_eq!(
        berth_core::mirror::Upstream::head_manifest(&here, "alice/library/app", "v2")
            .await
            .unwrap(),
        Some(v2_digest.clone())
    );

    let second = run(&berth, "from-dist").await;
    assert_eq!(
        (
            second.tally.copied,
            second.tally.skipped,
            second.tally.failed
        ),
        (0, 3, 0),
        "{second:?}"
    );
    assert_eq!(second.tally.blobs_copied, 0);

    // Each run told the namespace's webhook.
    let got = receiver.collect(2, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 2, "one delivery per run");
    let text = got[0].body.clone();
    assert!(text.contains("replication.completed"), "{text}");
    assert!(text.contains("from-dist"), "{text}");
    let history = berth
        .state
        .replications
        .history(&Acting::cli(), "from-dist", 10)
        .await
        .unwrap();
    assert_eq!(history.len(), 2);
    assert!(history[1]
        .items
        .iter()
        .any(|i| i.item == "library/app:v1 -> alice/library/app:v1" && i.outcome == "copied"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn htpasswd_origins_take_the_credentials_and_an_origin_down_then_up_completes() {
    if !have_distribution() {
        return;
    }
    let Some(line) = htpasswd_line("carol", "carol-password-1") else {
        return;
    };
    let mut origin = Distribution::start(Some(&line)).await;
    let remote = client_for(&origin.url, Some(("carol", "carol-password-1")));
    let image = SmallImage::linux("private", "app");
    let digest = seed(&remote, "carol/app", "1.0", &image).await;

    let dir = data_dir();
    let berth = serve(dir.path(), Options::default()).await;
    add_user(&berth, "alice", "alice-password-1").await;
    let replications = &berth.state.replications;
    // Without credentials: refused, recorded as a failed item.
    replications
        .create(
            &Acting::cli(),
            pull_rule("anonymous", "carol/app", &origin.url, "alice"),
        )
        .await
        .unwrap();
    let refused = run(&berth, "anonymous").await;
    assert_eq!(refused.tally.failed, 1, "{refused:?}");
    assert!(
        refused.tally.items[0]
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("refused access"),
        "{refused:?}"
    );

    let mut request = pull_rule("with-password", "carol/*", &origin.url, "alice");
    request.username = Some("carol".to_owned());
    request.password = Some("carol-password-1".to_owned());
    request.flatten = true;
    request.bandwidth = Some("64MiB/s".to_owned());
    replications.create(&Acting::cli(), request).await.unwrap();
    // The origin is down: the run fails and says why; nothing is half-imported.
    origin.stop();
    let down = run(&berth, "with-password").await;
    assert_eq!((down.tally.copied, down.tally.failed), (0, 1), "{down:?}");
    assert!(stored(&berth, "alice/app", "1.0").await.is_none());
    // Back up where it was, with what it held: the next run completes.
    origin.restart().await;
    let up = run(&berth, "with-password").await;
    assert_eq!((up.tally.copied, up.tally.failed), (1, 0), "{up:?}");
    assert_eq!(
        stored(&berth, "alice/app", "1.0").await.unwrap(),
        image.manifest
    );
    let here = client_for(&berth.url(), Some(("alice", "alice-password-1")));
    assert_eq!(
        berth_core::mirror::Upstream::head_manifest(&here, "alice/app", "1.0")
            .await
            .unwrap(),
        Some(digest)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_rules_import_from_a_second_berth_with_token_auth_and_its_referrers_api() {
    if !have_distribution() {
        return;
    }
    let source_dir = data_dir();
    let (origin, remote) = source_berth(source_dir.path()).await;
    let image = SmallImage::linux("berth", "app");
    let digest = seed(&remote, "alice/api", "v1", &image).await;
    // An SBOM as an OCI referrer: the origin lists it through its referrers API.
    let empty = b"{}".to_vec();
    let sbom_layer = b"{\"spdxVersion\":\"SPDX-2.3\",\"name\":\"api\"}".to_vec();
    push_blob(&remote, "alice/api", &empty).await;
    push_blob(&remote, "alice/api", &sbom_layer).await;
    let mut sbom = image_manifest(
        &Descriptor::of(OCI_EMPTY, &empty),
        &[Descriptor::of("application/spdx+json", &sbom_layer)],
    );
    sbom["artifactType"] = serde_json::json!("application/spdx+json");
    sbom["subject"] = Descriptor::of(OCI_MANIFEST, &image.manifest).json();
    let sbom = pretty(&sbom);
    let sbom_digest = Digest::sha256_of(&sbom);
    put(
        &remote,
        "alice/api",
        &sbom_digest.to_string(),
        OCI_MANIFEST,
        &sbom,
    )
    .await;

    // What the rule will read: the origin's catalog and tags lists, as alice sees them.
    use berth_core::replication::Origin as _;
    assert_eq!(
        remote.catalog_page(None, 100).await.unwrap(),
        vec!["alice/api".to_owned()]
    );
    assert_eq!(
        remote.tags_page("alice/api", None, 100).await.unwrap(),
        Some(vec!["v1".to_owned()])
    );
    let dir = data_dir();
    let berth = serve(dir.path(), Options::default()).await;
    add_user(&berth, "bob", "bob-password-1").await;
    let mut request = pull_rule("from-berth", "alice/*", &origin.url(), "bob");
    request.username = Some("alice".to_owned());
    request.password = Some("alice-password-1".to_owned());
    berth
        .state
        .replications
        .create(&Acting::cli(), request)
        .await
        .unwrap();
    let first = run(&berth, "from-berth").await;
    assert_eq!(
        (first.tally.copied, first.tally.failed),
        (1, 0),
        "{first:?}"
    );
    assert_eq!(
        stored(&berth, "bob/alice/api", "v1").await.unwrap(),
        image.manifest
    );
    assert_eq!(
        stored(&berth, "bob/alice/api", &sbom_digest.to_string())
            .await
            .unwrap(),
        sbom
    );
    let referrers = berth
        .meta
        .referrers(&"bob/alice/api".parse().unwrap(), &digest, None)
        .await
        .unwrap();
    assert_eq!(referrers.len(), 1);
    let again = run(&berth, "from-berth").await;
    assert_eq!(
        (
            again.tally.copied,
            again.tally.skipped,
            again.tally.blobs_copied
        ),
        (0, 1, 0),
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pull_rules_are_refused_with_what_is_wrong() {
    let dir = data_dir();
    let berth = serve(dir.path(), Options::default()).await;
    add_user(&berth, "alice", "alice-password-1").await;
    let replications = &berth.state.replications;
    let refused = |request: ReplicationRequest| async move {
        match replications.create(&Acting::cli(), request).await {
            Err(berth_core::Error::Invalid(why)) => why,
            other => panic!("expected a refusal, got {other:?}"),
        }
    };
    let url = "http://127.0.0.1:9";
    let mut both = pull_rule("both", "library/*", url, "alice");
    both.to = url.to_owned();
    assert!(refused(both).await.contains("not both"));
    let mut neither = pull_rule("neither", "library/*", url, "alice");
    neither.from = None;
    assert!(refused(neither).await.contains("to copy to"));
    let mut no_namespace = pull_rule("nons", "library/*", url, "alice");
    no_namespace.to_namespace = None;
    assert!(refused(no_namespace).await.contains("to_namespace"));
    let mut on_push = pull_rule("onpush", "library/*", url, "alice");
    on_push.trigger = Some("push".to_owned());
    assert!(refused(on_push).await.contains("push rules only"));
    let mut deletes = pull_rule("deletes", "library/*", url, "alice");
    deletes.deletes = true;
    assert!(refused(deletes).await.contains("push rules only"));
    assert!(refused(pull_rule("badglob", "Library/*", url, "alice"))
        .await
        .contains("invalid source"));
    let mut slow = pull_rule("slow", "library/*", url, "alice");
    slow.bandwidth = Some("fast".to_owned());
    assert!(refused(slow).await.contains("invalid bandwidth"));
    // Through the API: a 400 with the reason.
    let answer = reqwest::Client::new()
        .post(format!("{}/api/v1/replications", berth.url()))
        .basic_auth("alice", Some("alice-password-1"))
        .json(&serde_json::json!({"name": "x", "source": "library/*", "from": url}))
        .send()
        .await
        .unwrap();
    // alice is no site admin.
    assert_eq!(answer.status(), 403);
    assert!(replications.list(&Acting::cli()).await.unwrap().is_empty());
}
