//! Real copies of blobs larger than anything buffered on the way: a pull rule imports a
//! 200 MiB layer from Distribution byte for byte with the importer's memory bounded, and a
//! rule's bandwidth limit holds a real copy, pull and push, to its rate.

use super::copy::{add_user, rule, run};
use super::pull::{pull_rule, stored};
use crate::support::*;
use berth_core::identity::Acting;
use berth_core::mirror::Upstream as _;
use berth_core::ports::ByteStream;
use berth_core::replication::PACER_BURST;
use berth_oci::digest::Algorithm;
use berth_oci::{Digest, DigestHasher};
use berth_outbound::registry::{PushBlob, RegistryClient};
use berth_testkit::images::{image_manifest, pretty, Descriptor, OCI_MANIFEST};
use berth_testkit::{data_dir, serve, Options};
use bytes::Bytes;
use futures_util::StreamExt;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// A large blob made on demand, 1 MiB block by block, so that no test side holds it whole:
/// block `i` is a pseudo-random MiB rotated by `i` and stamped with `i`, so a block out of
/// place or repeated shows.
struct Generated {
    base: Bytes,
    size: u64,
}

impl Generated {
    fn new(size: u64, seed: u64) -> Generated {
        let mut state = seed | 1;
        let base: Vec<u8> = (0..MIB / 8)
            .flat_map(|_| {
                // xorshift64: cheap and good enough to make every block different.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()
            })
            .collect();
        Generated {
            base: base.into(),
            size,
        }
    }

    fn blocks(&self) -> u64 {
        self.size.div_ceil(MIB)
    }

    fn block(&self, i: u64) -> Bytes {
        let len = (self.size - i * MIB).min(MIB) as usize;
        let turn = (i as usize * 7919) % self.base.len();
        let mut block = Vec::with_capacity(MIB as usize);
        block.extend_from_slice(&self.base[turn..]);
        block.extend_from_slice(&self.base[..turn]);
        block[..8].copy_from_slice(&i.to_le_bytes());
        block.truncate(len);
        block.into()
    }

    fn stream(&self) -> ByteStream {
        let (base, size) = (self.base.clone(), self.size);
        let again = Generated { base, size };
        Box::pin(futures_util::stream::iter(0..self.blocks()).map(move |i| Ok(again.block(i))))
    }

    fn digest(&self) -> Digest {
        let mut hasher = DigestHasher::new(Algorithm::Sha256);
        for i in 0..self.blocks() {
            hasher.update(&self.block(i));
        }
        hasher.finish()
    }

    fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: LAYER.to_owned(),
            digest: self.digest().to_string(),
            size: self.size,
            artifact_type: None,
            annotations: Vec::new(),
        }
    }

    /// Whether `body` is exactly this blob, compared as it streams.
    async fn matches(&self, mut body: ByteStream) -> Result<(), String> {
        let mut at = 0u64;
        let mut block = (u64::MAX, Bytes::new());
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| format!("the body broke off at {at}: {e}"))?;
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                if at >= self.size {
                    return Err(format!("more than the {} bytes", self.size));
                }
                let index = at / MIB;
                if block.0 != index {
                    block = (index, self.block(index));
                }
                let offset = (at % MIB) as usize;
                let take = rest.len().min(block.1.len() - offset);
                if rest[..take] != block.1[offset..offset + take] {
                    return Err(format!("the bytes differ in the MiB at {}", index * MIB));
                }
                rest = &rest[take..];
                at += take as u64;
            }
        }
        match at == self.size {
            true => Ok(()),
            false => Err(format!("{at} of the {} bytes", self.size)),
        }
    }
}

/// Pushes an image of one generated layer as `repo:tag`; its manifest's bytes.
async fn seed_large(client: &RegistryClient, repo: &str, tag: &str, layer: &Generated) -> Vec<u8> {
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","layer":{}}}"#,
        layer.size
    );
    let config = config.into_bytes();
    client
        .push_blob(
            repo,
            &Digest::sha256_of(&config),
            PushBlob {
                size: config.len() as u64,
                body: Box::pin(futures_util::stream::iter([Ok(Bytes::from(
                    config.clone(),
                ))])),
            },
        )
        .await
        .expect("config pushed");
    let descriptor = layer.descriptor();
    client
        .push_blob(
            repo,
            &descriptor.digest.parse().unwrap(),
            PushBlob {
                size: layer.size,
                body: layer.stream(),
            },
        )
        .await
        .expect("layer pushed");
    let manifest = pretty(&image_manifest(
        &Descriptor::of(CONFIG, &config),
        &[descriptor],
    ));
    client
        .put_manifest(repo, tag, OCI_MANIFEST, manifest.clone())
        .await
        .expect("manifest pushed");
    manifest
}

/// A line of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_rule_imports_a_200_mib_layer_byte_for_byte_in_bounded_memory() {
    if !have_distribution() {
        return;
    }
    let origin = Distribution::start(None).await;
    let remote = client_for(&origin.url, None);
    let layer = Generated::new(200 * MIB + 12_345, 15);
    let manifest = seed_large(&remote, "big/layer", "v1", &layer).await;

    let dir = data_dir();
    let berth = serve(dir.path(), Options::default()).await;
    add_user(&berth, "alice", "alice-password-1").await;
    berth
        .state
        .replications
        .create(
            &Acting::cli(),
            pull_rule("big", "big/*", &origin.url, "alice"),
        )
        .await
        .unwrap();
    // The peak resident size from here on: the importer runs in this process, and holding
    // the layer (or any large part of it) would show as a peak of that size.
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak RSS (Linux 4.0+)");
    let before = status_kib("VmRSS");
    let summary = run(&berth, "big").await;
    let peak = status_kib("VmHWM");
    assert_eq!(
        (summary.tally.copied, summary.tally.failed),
        (1, 0),
        "{summary:?}"
    );
    assert_eq!(summary.tally.blobs_copied, 2, "{summary:?}");
    assert!(summary.tally.bytes_copied > layer.size, "{summary:?}");
    let grew_mib = peak.saturating_sub(before) / 1024;
    eprintln!(
        "peak RSS during the import: {grew_mib} MiB over the {} MiB before",
        before / 1024
    );
    assert!(
        grew_mib < 64,
        "importing a 200 MiB layer raised the peak RSS by {grew_mib} MiB: it must stream"
    );

    assert_eq!(
        stored(&berth, "alice/big/layer", "v1").await.unwrap(),
        manifest
    );
    // Pulled back through Berth's registry API, compared byte by byte as it streams.
    let here = client_for(&berth.url(), Some(("alice", "alice-password-1")));
    let digest: Digest = layer.descriptor().digest.parse().unwrap();
    let blob = here
        .get_blob("alice/big/layer", &digest)
        .await
        .unwrap()
        .expect("the layer is in Berth");
    assert_eq!(blob.size, Some(layer.size));
    layer.matches(blob.body).await.expect("the imported layer");

    // The second run finds everything here and moves no bytes.
    let again = run(&berth, "big").await;
    assert_eq!(
        (
            again.tally.skipped,
            again.tally.blobs_copied,
            again.tally.failed
        ),
        (1, 0, 0),
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bandwidth_limit_holds_real_copies_to_its_rate_and_keeps_them_intact() {
    if !have_distribution() {
        return;
    }
    let origin = Distribution::start(None).await;
    let destination = Distribution::start(None).await;
    let remote = client_for(&origin.url, None);
    let layer = Generated::new(6 * MIB, 3);
    let manifest = seed_large(&remote, "slow/app", "v1", &layer).await;
    let rate = 2 * MIB;
    // The pacer lets one second's worth through unpaced, then holds the rest to the rate:
    // no run can take less than this, however loaded the machine.
    let at_least = Duration::from_secs_f64(layer.size as f64 / rate as f64) - PACER_BURST;

    let dir = data_dir();
    let berth = serve(dir.path(), Options::default()).await;
    add_user(&berth, "alice", "alice-password-1").await;
    let replications = &berth.state.replications;
    let mut pull = pull_rule("slow-in", "slow/*", &origin.url, "alice");
    pull.bandwidth = Some("2MiB/s".to_owned());
    replications.create(&Acting::cli(), pull).await.unwrap();
    let started = Instant::now();
    let imported = run(&berth, "slow-in").await;
    let took = started.elapsed();
    assert_eq!(
        (imported.tally.copied, imported.tally.failed),
        (1, 0),
        "{imported:?}"
    );
    assert!(
        took >= at_least,
        "6 MiB imported at 2MiB/s in {took:?}, under the {at_least:?} the limit allows"
    );
    assert_eq!(
        stored(&berth, "alice/slow/app", "v1").await.unwrap(),
        manifest
    );

    // The other direction: the imported image pushed to a second Distribution.
    let mut push = rule("slow-out", "alice/slow/*", &destination.url);
    push.bandwidth = Some("2MiB/s".to_owned());
    push.to_namespace = Some("mirror".to_owned());
    replications.create(&Acting::cli(), push).await.unwrap();
    let started = Instant::now();
    let pushed = run(&berth, "slow-out").await;
    let took = started.elapsed();
    assert_eq!(
        (pushed.tally.copied, pushed.tally.failed),
        (1, 0),
        "{pushed:?}"
    );
    assert!(
        took >= at_least,
        "6 MiB pushed at 2MiB/s in {took:?}, under the {at_least:?} the limit allows"
    );
    let there = client_for(&destination.url, None);
    let copied = there
        .get_manifest("mirror/slow/app", "v1")
        .await
        .unwrap()
        .expect("the manifest at the destination");
    assert_eq!(copied.body, manifest);
    let digest: Digest = layer.descriptor().digest.parse().unwrap();
    let blob = there
        .get_blob("mirror/slow/app", &digest)
        .await
        .unwrap()
        .expect("the layer at the destination");
    layer.matches(blob.body).await.expect("the pushed layer");
}
