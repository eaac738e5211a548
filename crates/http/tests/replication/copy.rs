//! Faithful copies: byte-for-byte manifests, an index with its children, referrers and
//! cosign's tags, blobs skipped on a second run, Basic and token auth at the destination,
//! refusals recorded per item, bad rules refused.

use crate::support::*;
use berth_core::identity::{hash_password, Acting};
use berth_core::mirror::Upstream as _;
use berth_core::ports::{Accounts as _, NewUser};
use berth_core::replication::{ReplicationRequest, RunSummary};
use berth_core::time::now_unix;
use berth_oci::Digest;
use berth_outbound::registry::RegistryClient;
use berth_testkit::images::{
    image_index, image_manifest, pretty, Descriptor, SmallImage, OCI_EMPTY, OCI_INDEX, OCI_MANIFEST,
};
use berth_testkit::{data_dir, serve, Options, Served};

/// A Berth holding `alice`'s images (alice signs in with `alice-password-1`).
pub async fn source_berth(dir: &std::path::Path) -> (Served, RegistryClient) {
    let berth = serve(dir, Options::default()).await;
    add_user(&berth, "alice", "alice-password-1").await;
    let client = client_for(&berth.url(), Some(("alice", "alice-password-1")));
    (berth, client)
}

pub async fn add_user(berth: &Served, name: &str, password: &str) {
    berth
        .meta
        .create_user(&NewUser {
            name: name.to_owned(),
            password_hash: hash_password(password).unwrap(),
            is_admin: false,
            now: now_unix(),
        })
        .await
        .unwrap();
}

pub fn rule(name: &str, source: &str, to: &str) -> ReplicationRequest {
    ReplicationRequest {
        name: name.to_owned(),
        source: source.to_owned(),
        to: to.to_owned(),
        ..ReplicationRequest::default()
    }
}

pub async fn run(berth: &Served, name: &str) -> RunSummary {
    berth
        .state
        .replications
        .run_now(&Acting::cli(), name)
        .await
        .expect("the run is carried out")
}

/// Pushes a manifest through `client` (its blobs must be there).
async fn put(client: &RegistryClient, repo: &str, reference: &str, media_type: &str, body: &[u8]) {
    client
        .put_manifest(repo, reference, media_type, body.to_vec())
        .await
        .expect("manifest pushed");
}

/// The exact bytes of `repo:reference` at `client`'s registry.
async fn bytes_at(client: &RegistryClient, repo: &str, reference: &str) -> Option<Vec<u8>> {
    client
        .get_manifest(repo, reference)
        .await
        .expect("manifest read")
        .map(|m| m.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_and_indexes_are_copied_byte_for_byte_and_skipped_the_second_time() {
    if !have_distribution() {
        return;
    }
    let destination = Distribution::start(None).await;
    let dir = data_dir();
    let (berth, source) = source_berth(dir.path()).await;
    let v1 = SmallImage::linux("v1", "app");
    let v2 = SmallImage::linux("v2", "app");
    seed(&source, "alice/app", "v1", &v1).await;
    seed(&source, "alice/app", "v2", &v2).await;
    // An index of two platforms, pretty-printed so that re-encoding would show.
    let amd = SmallImage::linux("amd", "multi");
    let arm = SmallImage::new(
        r#"{"architecture":"arm64","os":"linux"}"#.as_bytes().to_vec(),
        b"arm layer".to_vec(),
    );
    seed(&source, "alice/team/multi", "amd", &amd).await;
    seed(&source, "alice/team/multi", "arm", &arm).await;
    let index = pretty(&image_index(&[
        Descriptor::of(OCI_MANIFEST, &amd.manifest),
        Descriptor::of(OCI_MANIFEST, &arm.manifest),
    ]));
    put(&source, "alice/team/multi", "latest", OCI_INDEX, &index).await;
    // Not matched by the tag patterns: stays behind.
    seed(
        &source,
        "alice/app",
        "dev",
        &SmallImage::linux("dev", "app"),
    )
    .await;

    let mut request = rule("to-dist", "alice/*", &destination.url);
    request.to_namespace = Some("mirror".to_owned());
    request.tags = vec!["v*".to_owned(), "latest".to_owned()];
    berth
        .state
        .replications
        .create(&Acting::cli(), request)
        .await
        .unwrap();
    let first = run(&berth, "to-dist").await;
    assert_eq!(
        (first.tally.copied, first.tally.failed),
        (3, 0),
        "{first:?}"
    );
    // amd and arm share nothing; each config and layer is pushed once.
    assert_eq!(first.tally.blobs_copied, 8, "{first:?}");

    let remote = client_for(&destination.url, None);
    assert_eq!(
        bytes_at(&remote, "mirror/app", "v1").await.unwrap(),
        v1.manifest
    );
    assert_eq!(
        bytes_at(&remote, "mirror/app", "v2").await.unwrap(),
        v2.manifest
    );
    assert!(bytes_at(&remote, "mirror/app", "dev").await.is_none());
    assert_eq!(
        bytes_at(&remote, "mirror/team/multi", "latest")
            .await
            .unwrap(),
        index
    );
    for child in [&amd, &arm] {
        let digest = Digest::sha256_of(&child.manifest).to_string();
        assert_eq!(
            bytes_at(&remote, "mirror/team/multi", &digest)
                .await
                .unwrap(),
            child.manifest
        );
        for blob in [&child.config, &child.layer] {
            let blob_digest = Digest::sha256_of(blob);
            assert_eq!(
                remote
                    .blob_size("mirror/team/multi", &blob_digest)
                    .await
                    .unwrap(),
                Some(blob.len() as u64)
            );
        }
    }

    let second = run(&berth, "to-dist").await;
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

    let history = berth
        .state
        .replications
        .history(&Acting::cli(), "to-dist", 10)
        .await
        .unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].status, "succeeded");
    assert_eq!(history[1].copied, 3);
    assert!(history[1]
        .items
        .iter()
        .any(|i| i.item == "alice/app:v1 -> mirror/app:v1" && i.outcome == "copied"));
}

/// A signature in cosign's tag layout and an OCI referrer (an SBOM) of `image` in `repo`.
async fn attach(
    source: &RegistryClient,
    repo: &str,
    image: &SmallImage,
) -> (String, Vec<u8>, Vec<u8>) {
    let subject = Descriptor::of(OCI_MANIFEST, &image.manifest);
    let empty = b"{}".to_vec();
    let signature_layer = b"cosign signature payload".to_vec();
    let sbom_layer = b"{\"spdxVersion\":\"SPDX-2.3\"}".to_vec();
    for blob in [&empty, &signature_layer, &sbom_layer] {
        let digest = Digest::sha256_of(blob);
        source
            .push_blob(
                repo,
                &digest,
                berth_outbound::registry::PushBlob {
                    size: blob.len() as u64,
                    body: Box::pin(futures_util::stream::iter([Ok(bytes::Bytes::from(
                        blob.clone(),
                    ))])),
                },
            )
            .await
            .unwrap();
    }
    let signature = pretty(&image_manifest(
        &Descriptor::of("application/vnd.oci.image.config.v1+json", &empty),
        &[Descriptor::of(
            "application/vnd.dev.cosign.simplesigning.v1+json",
            &signature_layer,
        )],
    ));
    let sig_tag = format!("{}.sig", subject.digest.replacen(':', "-", 1));
    put(source, repo, &sig_tag, OCI_MANIFEST, &signature).await;
    let mut sbom = image_manifest(
        &Descriptor::of(OCI_EMPTY, &empty),
        &[Descriptor::of("application/spdx+json", &sbom_layer)],
    );
    sbom["artifactType"] = serde_json::json!("application/spdx+json");
    sbom["subject"] = subject.json();
    let sbom = pretty(&sbom);
    let sbom_digest = Digest::sha256_of(&sbom).to_string();
    put(source, repo, &sbom_digest, OCI_MANIFEST, &sbom).await;
    (sig_tag, signature, sbom)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrers_and_cosign_signatures_travel_with_their_image() {
    if !have_distribution() {
        return;
    }
    let dir = data_dir();
    let (berth, source) = source_berth(dir.path()).await;
    let image = SmallImage::linux("signed", "app");
    let digest = seed(&source, "alice/signed", "v1", &image).await;
    let (sig_tag, signature, sbom) = attach(&source, "alice/signed", &image).await;
    let sbom_digest = Digest::sha256_of(&sbom);

    // To a second Berth with token auth: the referrers API lists the SBOM.
    let other_dir = data_dir();
    let other = serve(other_dir.path(), Options::default()).await;
    add_user(&other, "bob", "bob-password-1").await;
    let mut to_berth = rule("to-berth", "alice/signed", &other.url());
    to_berth.to_namespace = Some("bob".to_owned());
    to_berth.username = Some("bob".to_owned());
    to_berth.password = Some("bob-password-1".to_owned());
    berth
        .state
        .replications
        .create(&Acting::cli(), to_berth)
        .await
        .unwrap();
    let summary = run(&berth, "to-berth").await;
    assert_eq!(
        (summary.tally.copied, summary.tally.failed),
        (1, 0),
        "{summary:?}"
    );
    let remote = client_for(&other.url(), Some(("bob", "bob-password-1")));
    assert_eq!(
        bytes_at(&remote, "bob/signed", "v1").await.unwrap(),
        image.manifest
    );
    assert_eq!(
        bytes_at(&remote, "bob/signed", &sig_tag).await.unwrap(),
        signature
    );
    assert_eq!(
        bytes_at(&remote, "bob/signed", &sbom_digest.to_string())
            .await
            .unwrap(),
        sbom
    );
    let listed: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/v2/bob/signed/referrers/{digest}", other.url()))
        .basic_auth("bob", Some("bob-password-1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["manifests"][0]["digest"],
        sbom_digest.to_string(),
        "{listed}"
    );
    let referrers = berth_core::ports::Manifests::referrers(
        &*other.meta,
        &"bob/signed".parse().unwrap(),
        &digest,
        None,
    )
    .await
    .unwrap();
    assert_eq!(referrers.len(), 1);
    assert_eq!(referrers[0].digest, sbom_digest);

    // To Distribution 2.8, which has no referrers API: the tag fallback's index.
    let destination = Distribution::start(None).await;
    berth
        .state
        .replications
        .create(
            &Acting::cli(),
            rule("to-dist", "alice/signed", &destination.url),
        )
        .await
        .unwrap();
    let summary = run(&berth, "to-dist").await;
    assert_eq!(
        (summary.tally.copied, summary.tally.failed),
        (1, 0),
        "{summary:?}"
    );
    let remote = client_for(&destination.url, None);
    assert_eq!(
        bytes_at(&remote, "alice/signed", &sig_tag).await.unwrap(),
        signature
    );
    let fallback = bytes_at(
        &remote,
        "alice/signed",
        &digest.to_string().replacen(':', "-", 1),
    )
    .await
    .expect("the referrers tag fallback");
    let fallback: serde_json::Value = serde_json::from_slice(&fallback).unwrap();
    assert_eq!(fallback["mediaType"], OCI_INDEX);
    assert_eq!(fallback["manifests"][0]["digest"], sbom_digest.to_string());
    assert_eq!(
        fallback["manifests"][0]["artifactType"],
        "application/spdx+json"
    );
    // A second run finds everything there.
    let again = run(&berth, "to-dist").await;
    assert_eq!(
        (again.tally.copied, again.tally.skipped),
        (0, 1),
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_destinations_take_the_credentials_and_refusals_are_recorded_per_item() {
    if !have_distribution() {
        return;
    }
    let Some(line) = htpasswd_line("carol", "carol-password-1") else {
        return;
    };
    let destination = Distribution::start(Some(&line)).await;
    let dir = data_dir();
    let (berth, source) = source_berth(dir.path()).await;
    let image = SmallImage::linux("basic", "app");
    seed(&source, "alice/app", "v1", &image).await;
    let replications = &berth.state.replications;

    let mut wrong = rule("wrong", "alice/app", &destination.url);
    wrong.username = Some("carol".to_owned());
    wrong.password = Some("not-her-password".to_owned());
    replications.create(&Acting::cli(), wrong).await.unwrap();
    let refused = run(&berth, "wrong").await;
    assert_eq!(
        (refused.tally.copied, refused.tally.failed),
        (0, 1),
        "{refused:?}"
    );
    let reason = refused.tally.items[0].reason.clone().unwrap();
    assert!(reason.contains("401"), "{reason}");
    let history = replications
        .history(&Acting::cli(), "wrong", 5)
        .await
        .unwrap();
    assert_eq!(history[0].status, "failed");
    assert_eq!(history[0].items[0].reason.as_deref(), Some(reason.as_str()));

    let mut right = rule("right", "alice/app", &destination.url);
    right.username = Some("carol".to_owned());
    right.password = Some("carol-password-1".to_owned());
    replications.create(&Acting::cli(), right).await.unwrap();
    let copied = run(&berth, "right").await;
    assert_eq!(
        (copied.tally.copied, copied.tally.failed),
        (1, 0),
        "{copied:?}"
    );
    let remote = client_for(&destination.url, Some(("carol", "carol-password-1")));
    assert_eq!(
        bytes_at(&remote, "alice/app", "v1").await.unwrap(),
        image.manifest
    );

    // The password is sealed: neither the listing nor the stored row shows it.
    let listed = serde_json::to_string(&replications.list(&Acting::cli()).await.unwrap()).unwrap();
    assert!(!listed.contains("carol-password-1"));
    let stored = berth_core::ports::ReplicationStore::replication(&*berth.meta, "right")
        .await
        .unwrap()
        .unwrap();
    let sealed = stored.password_sealed.unwrap();
    assert!(!sealed.windows(8).any(|w| w == b"carol-pa"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rules_are_refused_with_what_is_wrong() {
    let dir = data_dir();
    let berth = serve(dir.path(), Options::default()).await;
    let replications = &berth.state.replications;
    let cases = [
        (
            rule("x", "no-slash", "http://127.0.0.1:5000"),
            "NAMESPACE/REPO_GLOB",
        ),
        (rule("x", "acme/*", "ftp://host"), "http or https"),
        (rule("x", "acme/*", "https://user:pw@host"), "credentials"),
        (
            rule("bad name", "acme/*", "http://127.0.0.1:5000"),
            "invalid rule name",
        ),
        (
            ReplicationRequest {
                trigger: Some("every day".to_owned()),
                ..rule("x", "acme/*", "http://127.0.0.1:5000")
            },
            "cron",
        ),
        (
            ReplicationRequest {
                tags: vec!["v/1".to_owned()],
                ..rule("x", "acme/*", "http://127.0.0.1:5000")
            },
            "tag pattern",
        ),
    ];
    for (request, expected) in cases {
        let err = replications
            .create(&Acting::cli(), request)
            .await
            .expect_err("refused");
        assert!(
            matches!(err, berth_core::Error::Invalid(_)) && err.to_string().contains(expected),
            "{err}"
        );
    }
    replications
        .create(&Acting::cli(), rule("x", "acme/*", "http://127.0.0.1:5000"))
        .await
        .unwrap();
    let again = replications
        .create(&Acting::cli(), rule("x", "acme/*", "http://127.0.0.1:5000"))
        .await
        .unwrap_err();
    assert!(matches!(again, berth_core::Error::Conflict(_)), "{again}");
    let unknown = replications
        .history(&Acting::cli(), "nope", 5)
        .await
        .unwrap_err();
    assert!(matches!(unknown, berth_core::Error::ReplicationUnknown(_)));
}

/// A blob held in memory, served in parts.
struct InMemory(Vec<u8>);

#[async_trait::async_trait]
impl berth_core::replication::BlobSource for InMemory {
    async fn open(
        &self,
        start: u64,
        len: u64,
    ) -> Result<berth_core::ports::ByteStream, berth_core::mirror::UpstreamError> {
        let part = self.0[start as usize..(start + len) as usize].to_vec();
        Ok(Box::pin(futures_util::stream::iter([Ok(
            bytes::Bytes::from(part),
        )])))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_blobs_are_pushed_in_chunks_to_distribution_and_to_berth() {
    if !have_distribution() {
        return;
    }
    use berth_core::replication::Destination;
    let distribution = Distribution::start(None).await;
    let dir = data_dir();
    let (berth, _) = source_berth(dir.path()).await;
    // 3.5 MiB in 1 MiB chunks: three full chunks and a short one.
    let blob: Vec<u8> = (0..(7 * 512 * 1024)).map(|i| (i * 7 % 251) as u8).collect();
    let digest = Digest::sha256_of(&blob);
    for (url, credentials, repo) in [
        (distribution.url.clone(), None, "chunks/blob"),
        (
            berth.url(),
            Some(("alice", "alice-password-1")),
            "alice/chunks",
        ),
    ] {
        let mut remote = berth_outbound::registry::RemoteRegistry::new(&url);
        if let Some((user, password)) = credentials {
            remote.username = Some(user.to_owned());
            remote.password = Some(password.to_owned());
        }
        remote.chunk_size = 1024 * 1024;
        let client = RegistryClient::new(&remote).unwrap();
        Destination::push_blob(
            &client,
            repo,
            &digest,
            blob.len() as u64,
            &InMemory(blob.clone()),
        )
        .await
        .unwrap_or_else(|e| panic!("chunked push to {url}: {e}"));
        assert_eq!(
            client.blob_size(repo, &digest).await.unwrap(),
            Some(blob.len() as u64)
        );
        let fetched = client.get_blob(repo, &digest).await.unwrap().unwrap();
        let mut body = Vec::new();
        let mut stream = fetched.body;
        while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
            body.extend_from_slice(&chunk.unwrap());
        }
        assert!(body == blob, "the bytes came back from {url}");
    }
}
