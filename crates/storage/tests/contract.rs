//! The BlobStore port's contract (crates/core/src/ports/blob_store.rs), one suite run
//! against every backend: the filesystem, and a real Garage (the S3-compatible store) when
//! it is installed (skipped with a loud notice otherwise; required under `CI=true`).

use berth_core::ports::{BlobStore, ByteStream, StoreError};
use berth_oci::{ByteRange, Digest};
use bytes::Bytes;
use futures_util::StreamExt;
use std::io;
use std::sync::Arc;

const MIB: usize = 1 << 20;

/// One backend under test: two handles on the same storage, as two nodes would hold.
struct Backend {
    name: &'static str,
    node: Arc<dyn BlobStore>,
    other_node: Arc<dyn BlobStore>,
    /// Whether blob GETs are redirected to the store.
    redirects: bool,
    _keep: Box<dyn std::any::Any>,
}

async fn backends(test: &str) -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let open = || Arc::new(berth_storage::FsBlobStore::open(dir.path()).unwrap());
    let mut all = vec![Backend {
        name: "filesystem",
        node: open(),
        other_node: open(),
        redirects: false,
        _keep: Box::new(dir),
    }];
    #[cfg(feature = "s3")]
    if let Some(backend) = garage(test).await {
        all.push(backend);
    }
    #[cfg(not(feature = "s3"))]
    eprintln!("{test}: the S3 store is not built (cargo feature `s3`); filesystem only");
    all
}

#[cfg(feature = "s3")]
fn s3_settings(
    garage: &berth_testkit::garage::Garage,
    redirect: bool,
) -> berth_storage::S3Settings {
    berth_storage::S3Settings {
        endpoint: Some(garage.endpoint.clone()),
        region: garage.region.clone(),
        bucket: garage.bucket.clone(),
        prefix: "contract".into(),
        access_key_id: garage.access_key_id.clone(),
        secret_access_key: garage.secret_access_key.clone(),
        path_style: true,
        redirect,
        ca_bundle: None,
    }
}

#[cfg(feature = "s3")]
async fn garage(test: &str) -> Option<Backend> {
    let garage = tokio::task::spawn_blocking({
        let test = test.to_owned();
        move || berth_testkit::garage::Garage::start_or_skip(&test)
    })
    .await
    .unwrap()?;
    let settings = s3_settings(&garage, true);
    let node = berth_storage::S3BlobStore::open(&settings).await.unwrap();
    let other_node = berth_storage::S3BlobStore::open(&settings).await.unwrap();
    Some(Backend {
        name: "garage",
        node: Arc::new(node),
        other_node: Arc::new(other_node),
        redirects: true,
        _keep: Box::new(garage),
    })
}

/// Bytes that differ at every offset, so a misplaced or repeated chunk shows.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed)
        .collect()
}

/// `bytes` as a request body in frames of an odd size.
fn body(bytes: &[u8]) -> ByteStream {
    let items: Vec<io::Result<Bytes>> = bytes
        .chunks(300_007)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures_util::stream::iter(items))
}

/// `bytes`, then the client goes away.
fn broken_body(bytes: &[u8]) -> ByteStream {
    let mut items: Vec<io::Result<Bytes>> = vec![Ok(Bytes::copy_from_slice(bytes))];
    items.push(Err(io::Error::new(
        io::ErrorKind::ConnectionReset,
        "client went away",
    )));
    Box::pin(futures_util::stream::iter(items))
}

async fn collect(mut stream: ByteStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

fn upload_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Appends `chunks` one request each; returns everything appended.
async fn append_all(store: &dyn BlobStore, id: &str, chunks: &[Vec<u8>]) -> Vec<u8> {
    let mut all = Vec::new();
    for chunk in chunks {
        let n = store
            .append_upload(id, all.len() as u64, body(chunk), Some(chunk.len() as u64))
            .await
            .unwrap();
        assert_eq!(n, chunk.len() as u64);
        all.extend_from_slice(chunk);
    }
    all
}

#[tokio::test]
async fn chunks_become_a_blob_that_reads_whole_and_in_ranges() {
    for backend in backends("chunks_become_a_blob_that_reads_whole_and_in_ranges").await {
        let store = backend.node.as_ref();
        let id = upload_id();
        store.create_upload(&id).await.unwrap();
        // Chunks under S3's 5 MiB minimum part, one above it, and a small last one: the S3
        // store merges the small ones and copies several parts at commit.
        let chunks = vec![
            pattern(MIB, 1),
            pattern(3 * MIB + 17, 2),
            pattern(2 * MIB, 3),
            pattern(6 * MIB + 1, 4),
            pattern(5 * MIB, 5),
            pattern(1000, 6),
        ];
        let all = append_all(store, &id, &chunks).await;
        assert!(
            collect(store.read_upload(&id).await.unwrap()).await == all,
            "{}: the upload reads back as appended",
            backend.name
        );
        let digest = Digest::sha256_of(&all);
        store
            .commit_upload(&id, &digest, all.len() as u64)
            .await
            .unwrap();
        assert_eq!(
            store.blob_size(&digest).await.unwrap(),
            Some(all.len() as u64),
            "{}",
            backend.name
        );
        let whole = collect(store.read_blob(&digest, None).await.unwrap()).await;
        assert!(whole == all, "{}: the blob is the upload", backend.name);
        // Ranges across, up to and inside the S3 store's 4 MiB read parts, and the tail.
        let last = all.len() as u64 - 1;
        let mib = MIB as u64;
        for (start, end) in [
            (mib - 3, 9 * mib + 5),
            (4 * mib - 1, 8 * mib - 1),
            (4 * mib, 4 * mib),
            (last - 9, last),
            (0, last),
        ] {
            let part = collect(
                store
                    .read_blob(&digest, Some(ByteRange { start, end }))
                    .await
                    .unwrap(),
            )
            .await;
            assert!(
                part == all[start as usize..=end as usize],
                "{}: the range {start}-{end} is exactly its bytes",
                backend.name
            );
        }
        assert!(
            matches!(store.read_upload(&id).await, Err(StoreError::NotFound)),
            "{}: the upload is gone after commit",
            backend.name
        );
        // Committing the same bytes again keeps the blob.
        let again = upload_id();
        store.create_upload(&again).await.unwrap();
        append_all(store, &again, std::slice::from_ref(&all)).await;
        store
            .commit_upload(&again, &digest, all.len() as u64)
            .await
            .unwrap();
        assert_eq!(
            store.blob_size(&digest).await.unwrap(),
            Some(all.len() as u64)
        );
    }
}

#[tokio::test]
async fn failed_appends_leave_the_upload_as_it_was() {
    for backend in backends("failed_appends_leave_the_upload_as_it_was").await {
        let store = backend.node.as_ref();
        let id = upload_id();
        store.create_upload(&id).await.unwrap();
        let first = pattern(2 * MIB, 1);
        append_all(store, &id, std::slice::from_ref(&first)).await;
        let at = first.len() as u64;
        let next = pattern(7 * MIB, 2);
        // The client goes away midway, past the merged tail and a part's worth of bytes.
        assert!(matches!(
            store
                .append_upload(&id, at, broken_body(&next[..6 * MIB]), None)
                .await,
            Err(StoreError::Source(_))
        ));
        // Shorter and longer than announced.
        for wrong in [&next[..next.len() - 1], &[&next[..], b"x"].concat()[..]] {
            assert!(matches!(
                store
                    .append_upload(&id, at, body(wrong), Some(next.len() as u64))
                    .await,
                Err(StoreError::LengthMismatch { .. })
            ));
        }
        assert!(
            collect(backend.other_node.read_upload(&id).await.unwrap()).await == first,
            "{}: only the acknowledged bytes are there",
            backend.name
        );
        // And the upload goes on as if nothing had happened.
        let n = store
            .append_upload(&id, at, body(&next), Some(next.len() as u64))
            .await
            .unwrap();
        assert_eq!(n, next.len() as u64);
        let all = [first, next].concat();
        let digest = Digest::sha256_of(&all);
        store
            .commit_upload(&id, &digest, all.len() as u64)
            .await
            .unwrap();
        assert!(
            collect(store.read_blob(&digest, None).await.unwrap()).await == all,
            "{}",
            backend.name
        );
    }
}

#[tokio::test]
async fn an_upload_continues_on_another_node() {
    for backend in backends("an_upload_continues_on_another_node").await {
        let id = upload_id();
        backend.node.create_upload(&id).await.unwrap();
        let mut all = append_all(
            backend.node.as_ref(),
            &id,
            &[pattern(6 * MIB, 1), pattern(MIB, 2)],
        )
        .await;
        // The other node has no state of its own: it reads the bytes so far once (to hash
        // them) and appends after them.
        let read = collect(backend.other_node.read_upload(&id).await.unwrap()).await;
        assert!(
            read == all,
            "{}: the other node reads the upload",
            backend.name
        );
        let more = pattern(2 * MIB + 3, 3);
        backend
            .other_node
            .append_upload(&id, all.len() as u64, body(&more), None)
            .await
            .unwrap();
        all.extend_from_slice(&more);
        let digest = Digest::sha256_of(&all);
        backend
            .other_node
            .commit_upload(&id, &digest, all.len() as u64)
            .await
            .unwrap();
        assert!(
            collect(backend.node.read_blob(&digest, None).await.unwrap()).await == all,
            "{}: the first node serves what the second committed",
            backend.name
        );
    }
}

#[tokio::test]
async fn empty_blobs_missing_things_and_deletes() {
    for backend in backends("empty_blobs_missing_things_and_deletes").await {
        let store = backend.node.as_ref();
        let id = upload_id();
        store.create_upload(&id).await.unwrap();
        let empty = Digest::sha256_of(b"");
        store.commit_upload(&id, &empty, 0).await.unwrap();
        assert_eq!(
            store.blob_size(&empty).await.unwrap(),
            Some(0),
            "{}",
            backend.name
        );
        assert!(collect(store.read_blob(&empty, None).await.unwrap())
            .await
            .is_empty());

        let absent = Digest::sha256_of(b"never stored");
        assert_eq!(store.blob_size(&absent).await.unwrap(), None);
        assert!(matches!(
            store.read_blob(&absent, None).await,
            Err(StoreError::NotFound)
        ));
        for bad in ["../etc", "absent00000000000000000000000000"] {
            assert!(
                matches!(store.read_upload(bad).await, Err(StoreError::NotFound)),
                "{}: {bad}",
                backend.name
            );
        }
        store.delete_upload("absent").await.unwrap();
        store.delete_blob(&absent).await.unwrap();

        let mut digests = Vec::new();
        for seed in 0..3u8 {
            let id = upload_id();
            store.create_upload(&id).await.unwrap();
            let bytes = pattern(1000 + seed as usize, seed);
            append_all(store, &id, std::slice::from_ref(&bytes)).await;
            let digest = Digest::sha256_of(&bytes);
            store
                .commit_upload(&id, &digest, bytes.len() as u64)
                .await
                .unwrap();
            digests.push(digest);
        }
        digests.push(absent);
        store.delete_blobs(&digests).await.unwrap();
        for digest in &digests {
            assert_eq!(
                store.blob_size(digest).await.unwrap(),
                None,
                "{}",
                backend.name
            );
        }
        // An abandoned upload goes with its bytes.
        let id = upload_id();
        store.create_upload(&id).await.unwrap();
        append_all(store, &id, &[pattern(10, 1)]).await;
        store.delete_upload(&id).await.unwrap();
        assert!(matches!(
            store.read_upload(&id).await,
            Err(StoreError::NotFound)
        ));
        // The collection lock is exclusive while held.
        let held = store.lock_collection().await.unwrap();
        assert!(held.is_some());
        assert!(
            store.lock_collection().await.unwrap().is_none(),
            "{}",
            backend.name
        );
        drop(held);
        assert!(store.lock_collection().await.unwrap().is_some());
    }
}

#[tokio::test]
async fn redirect_locations_serve_the_blob_and_its_ranges() {
    for backend in backends("redirect_locations_serve_the_blob_and_its_ranges").await {
        let store = backend.node.as_ref();
        let id = upload_id();
        store.create_upload(&id).await.unwrap();
        let bytes = pattern(3 * MIB, 9);
        append_all(store, &id, std::slice::from_ref(&bytes)).await;
        let digest = Digest::sha256_of(&bytes);
        store
            .commit_upload(&id, &digest, bytes.len() as u64)
            .await
            .unwrap();
        let location = store.blob_location(&digest).await.unwrap();
        if !backend.redirects {
            assert!(location.is_none(), "{}", backend.name);
            continue;
        }
        let location = location.expect("a presigned URL");
        let client = reqwest::Client::new();
        let whole = client.get(&location).send().await.unwrap();
        assert_eq!(whole.status(), 200, "{}", backend.name);
        assert!(whole.bytes().await.unwrap() == bytes);
        let part = client
            .get(&location)
            .header("range", "bytes=100-199")
            .send()
            .await
            .unwrap();
        assert_eq!(part.status(), 206);
        assert!(part.bytes().await.unwrap() == bytes[100..200]);
    }
}

/// S3 failing mid-upload (here: refusing a node's credentials) leaves the session where
/// it was, and a node that can write continues it.
#[cfg(feature = "s3")]
#[tokio::test]
async fn an_s3_error_mid_upload_leaves_the_session_resumable() {
    let test = "an_s3_error_mid_upload_leaves_the_session_resumable";
    let Some(backend) = garage(test).await else {
        return;
    };
    let garage: &berth_testkit::garage::Garage = backend._keep.downcast_ref().unwrap();
    let mut refused = s3_settings(garage, false);
    refused.secret_access_key = "not-the-secret".into();
    let failing = berth_storage::S3BlobStore::connect(&refused).unwrap();

    let id = upload_id();
    backend.node.create_upload(&id).await.unwrap();
    let first = pattern(MIB, 1);
    append_all(backend.node.as_ref(), &id, std::slice::from_ref(&first)).await;
    let next = pattern(6 * MIB, 2);
    assert!(failing
        .append_upload(&id, first.len() as u64, body(&next), None)
        .await
        .is_err());
    assert!(collect(backend.other_node.read_upload(&id).await.unwrap()).await == first);
    backend
        .other_node
        .append_upload(&id, first.len() as u64, body(&next), None)
        .await
        .unwrap();
    let all = [first, next].concat();
    let digest = Digest::sha256_of(&all);
    backend
        .node
        .commit_upload(&id, &digest, all.len() as u64)
        .await
        .unwrap();
    assert!(collect(backend.node.read_blob(&digest, None).await.unwrap()).await == all);
}

/// A wrong key or bucket fails the startup check with one line naming the bucket.
#[cfg(feature = "s3")]
#[tokio::test]
async fn a_misconfigured_bucket_fails_the_startup_check() {
    let test = "a_misconfigured_bucket_fails_the_startup_check";
    let Some(backend) = garage(test).await else {
        return;
    };
    let garage: &berth_testkit::garage::Garage = backend._keep.downcast_ref().unwrap();
    let mut wrong_secret = s3_settings(garage, true);
    wrong_secret.secret_access_key = "not-the-secret".into();
    let mut wrong_bucket = s3_settings(garage, true);
    wrong_bucket.bucket = "no-such-bucket".into();
    for settings in [wrong_secret, wrong_bucket] {
        let err = berth_storage::S3BlobStore::open(&settings)
            .await
            .unwrap_err();
        assert!(
            err.starts_with(&format!("S3 bucket {:?} at ", settings.bucket))
                && err.contains("is not usable")
                && !err.contains('\n')
                && !err.contains(&garage.secret_access_key),
            "{err}"
        );
    }
}

#[tokio::test]
async fn small_blobs_stored_whole_are_readable_and_leave_no_scratch() {
    for backend in backends("small_blobs_stored_whole_are_readable_and_leave_no_scratch").await {
        let store = backend.node.as_ref();
        let bytes = pattern(70_001, 7);
        let digest = Digest::sha256_of(&bytes);
        let frames: Vec<Bytes> = bytes.chunks(16_384).map(Bytes::copy_from_slice).collect();
        let id = upload_id();
        store.create_upload(&id).await.unwrap();
        store
            .put_small_blob(&id, &digest, frames.clone())
            .await
            .unwrap();
        assert_eq!(
            collect(store.read_blob(&digest, None).await.unwrap()).await,
            bytes,
            "{}",
            backend.name
        );
        assert!(
            matches!(store.read_upload(&id).await, Err(StoreError::NotFound)),
            "{}: the session's scratch space is gone",
            backend.name
        );
        // The same blob again (another session) keeps the stored one; an empty blob works.
        let again = upload_id();
        store.create_upload(&again).await.unwrap();
        store.put_small_blob(&again, &digest, frames).await.unwrap();
        assert_eq!(store.blob_size(&digest).await.unwrap(), Some(70_001));
        let empty = upload_id();
        store.create_upload(&empty).await.unwrap();
        let nothing = Digest::sha256_of(b"");
        store
            .put_small_blob(&empty, &nothing, Vec::new())
            .await
            .unwrap();
        assert_eq!(store.blob_size(&nothing).await.unwrap(), Some(0));
    }
}

/// A session that is gone (cancelled, expired, committed elsewhere) takes no more bytes:
/// a late append finds nothing to continue, rather than starting a new upload of bytes
/// nobody will ever commit or remove.
#[tokio::test]
async fn an_upload_that_is_gone_takes_no_more_bytes() {
    for backend in backends("an_upload_that_is_gone_takes_no_more_bytes").await {
        let id = upload_id();
        backend.node.create_upload(&id).await.unwrap();
        let first = pattern(1000, 3);
        append_all(backend.node.as_ref(), &id, std::slice::from_ref(&first)).await;
        backend.node.delete_upload(&id).await.unwrap();
        let late = backend
            .other_node
            .append_upload(&id, first.len() as u64, body(&pattern(10, 4)), Some(10))
            .await;
        assert!(
            matches!(late, Err(StoreError::NotFound)),
            "{}: {late:?}",
            backend.name
        );
        assert!(
            matches!(
                backend.node.read_upload(&id).await,
                Err(StoreError::NotFound)
            ),
            "{}",
            backend.name
        );
    }
}
