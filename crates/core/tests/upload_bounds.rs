//! What one client can make the registry hold: upload sessions per account, the memory kept
//! per session, and the size of a blob, against the real SQLite store and blob store.

use berth_core::registry::{ChunkFraming, RegistryOptions};
use berth_core::{Error, Registry};
use berth_meta::SqliteMeta;
use berth_oci::{Digest, RepoName};
use berth_storage::FsBlobStore;
use bytes::Bytes;
use std::path::PathBuf;
use std::sync::Arc;

struct World {
    dir: tempfile::TempDir,
    registry: Registry,
}

impl World {
    /// Files of unfinished uploads in the data directory.
    fn upload_files(&self) -> usize {
        std::fs::read_dir(self.uploads_dir()).unwrap().count()
    }

    fn uploads_dir(&self) -> PathBuf {
        self.dir.path().join("data").join("uploads")
    }
}

async fn world(options: RegistryOptions) -> World {
    let dir = tempfile::tempdir().unwrap();
    let blobs = FsBlobStore::open(dir.path().join("data")).unwrap();
    let meta = SqliteMeta::open(&dir.path().join("berth.db"))
        .await
        .unwrap();
    let registry = Registry::new(Arc::new(blobs), Arc::new(meta), options);
    World { dir, registry }
}

fn repo() -> RepoName {
    "alice/app".parse().unwrap()
}

fn body(chunks: Vec<Vec<u8>>) -> berth_core::ports::ByteStream {
    Box::pin(futures_util::stream::iter(
        chunks.into_iter().map(|c| Ok(Bytes::from(c))),
    ))
}

/// A random-looking id of `len` characters, different for each `seed`.
fn bogus_id(seed: u32, len: usize) -> String {
    let hex = format!("{:08x}", seed.wrapping_mul(2_654_435_761));
    hex.chars().cycle().take(len).collect()
}

#[tokio::test]
async fn unknown_upload_ids_are_refused_and_cost_no_memory() {
    let w = world(RegistryOptions::default()).await;
    let repo = repo();
    let digest = Digest::sha256_of(b"x");
    for seed in 0..20_000u32 {
        // Long ids of any shape, and ids of the issued shape that name no session.
        let id = match seed % 2 {
            0 => bogus_id(seed, 8192),
            _ => bogus_id(seed, 32),
        };
        let framing = ChunkFraming::default();
        let result = match seed % 4 {
            0 | 1 => w
                .registry
                .append_chunk(&repo, &id, framing, body(vec![b"abc".to_vec()]))
                .await
                .map(|_| ()),
            2 => w
                .registry
                .complete_upload(&repo, &id, &digest, framing, body(vec![]))
                .await
                .map(|_| ()),
            _ => w.registry.cancel_upload(&repo, &id).await,
        };
        assert!(
            matches!(result, Err(Error::UploadUnknown)),
            "id {seed}: {result:?}"
        );
    }
    assert_eq!(
        w.registry.upload_slots(),
        0,
        "no memory is kept for ids that name no session"
    );
    assert_eq!(w.upload_files(), 0);
}

#[tokio::test]
async fn sessions_keep_memory_only_while_they_exist() {
    let w = world(RegistryOptions::default()).await;
    let repo = repo();
    let finished = w.registry.start_upload(&repo, Some("alice")).await.unwrap();
    let cancelled = w.registry.start_upload(&repo, Some("alice")).await.unwrap();
    for session in [&finished, &cancelled] {
        w.registry
            .append_chunk(
                &repo,
                &session.id,
                ChunkFraming::default(),
                body(vec![b"hello".to_vec()]),
            )
            .await
            .unwrap();
    }
    assert_eq!(w.registry.upload_slots(), 2);
    // Another repository's name does not reach the session, nor keep memory for it.
    let other: RepoName = "bob/app".parse().unwrap();
    assert!(matches!(
        w.registry.upload_status(&other, &finished.id).await,
        Err(Error::UploadUnknown)
    ));
    w.registry
        .complete_upload(
            &repo,
            &finished.id,
            &Digest::sha256_of(b"hello"),
            ChunkFraming::default(),
            body(vec![]),
        )
        .await
        .unwrap();
    w.registry
        .cancel_upload(&repo, &cancelled.id)
        .await
        .unwrap();
    assert_eq!(w.registry.upload_slots(), 0);
}

#[tokio::test]
async fn upload_sessions_are_capped_per_account() {
    let w = world(RegistryOptions {
        max_upload_sessions: Some(5),
        ..RegistryOptions::default()
    })
    .await;
    let repo = repo();
    // A concurrent burst cannot pass the cap together.
    let starts = (0..12).map(|_| {
        let registry = w.registry.clone();
        let repo = repo.clone();
        tokio::spawn(async move { registry.start_upload(&repo, Some("alice")).await })
    });
    let mut opened = Vec::new();
    for start in starts {
        match start.await.unwrap() {
            Ok(session) => opened.push(session),
            Err(Error::UploadLimit { limit }) => assert_eq!(limit, 5),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(opened.len(), 5, "exactly the cap is opened");
    // A session's scratch file is made by its first append; refused ones never get one.
    for session in &opened {
        w.registry
            .append_chunk(
                &repo,
                &session.id,
                ChunkFraming::default(),
                body(vec![b"abc".to_vec()]),
            )
            .await
            .unwrap();
    }
    assert_eq!(
        w.upload_files(),
        5,
        "a refused session leaves no file behind"
    );
    // Another account, and anonymous callers, are not affected by alice's sessions.
    w.registry.start_upload(&repo, Some("bob")).await.unwrap();
    w.registry.start_upload(&repo, None).await.unwrap();
    // A monolithic push needs a session too.
    let refused = w
        .registry
        .upload_monolithic(
            &repo,
            Some("alice"),
            &Digest::sha256_of(b"x"),
            Some(1),
            body(vec![b"x".to_vec()]),
        )
        .await;
    assert!(
        matches!(refused, Err(Error::UploadLimit { .. })),
        "{refused:?}"
    );
    // Ending one makes room again.
    w.registry
        .cancel_upload(&repo, &opened[0].id)
        .await
        .unwrap();
    w.registry.start_upload(&repo, Some("alice")).await.unwrap();
}

#[tokio::test]
async fn blobs_over_the_size_limit_are_refused_and_leave_nothing() {
    let w = world(RegistryOptions {
        max_blob_size: Some(1000),
        ..RegistryOptions::default()
    })
    .await;
    let repo = repo();
    let at_limit = vec![7u8; 1000];
    w.registry
        .upload_monolithic(
            &repo,
            Some("alice"),
            &Digest::sha256_of(&at_limit),
            Some(1000),
            body(vec![at_limit.clone()]),
        )
        .await
        .expect("a blob of exactly the limit is accepted");

    // Known length: refused before the body is read (this body would fail if read).
    let unread: berth_core::ports::ByteStream = Box::pin(futures_util::stream::once(async {
        Err::<Bytes, _>(std::io::Error::other("the body was read"))
    }));
    let too_big = w
        .registry
        .upload_monolithic(
            &repo,
            Some("alice"),
            &Digest::sha256_of(b"x"),
            Some(1001),
            unread,
        )
        .await;
    assert!(
        matches!(too_big, Err(Error::BlobTooLarge { limit: 1000, .. })),
        "{too_big:?}"
    );

    // A chunk whose Content-Range ends past the limit, after accepted chunks.
    let session = w.registry.start_upload(&repo, Some("alice")).await.unwrap();
    w.registry
        .append_chunk(
            &repo,
            &session.id,
            ChunkFraming::default(),
            body(vec![vec![1; 600]]),
        )
        .await
        .unwrap();
    let framing = ChunkFraming {
        range: Some("600-1000".parse::<berth_oci::ContentRange>().unwrap().0),
        length: Some(401),
    };
    let refused = w
        .registry
        .append_chunk(&repo, &session.id, framing, body(vec![vec![1; 401]]))
        .await;
    assert!(
        matches!(refused, Err(Error::BlobTooLarge { .. })),
        "{refused:?}"
    );
    assert!(
        matches!(
            w.registry.upload_status(&repo, &session.id).await,
            Err(Error::UploadUnknown)
        ),
        "the session that cannot finish is ended"
    );

    // Unknown length: stopped once it crosses the limit, and nothing of it stays.
    let session = w.registry.start_upload(&repo, Some("alice")).await.unwrap();
    let streamed = w
        .registry
        .append_chunk(
            &repo,
            &session.id,
            ChunkFraming::default(),
            body(vec![vec![2; 512]; 4]),
        )
        .await;
    assert!(
        matches!(streamed, Err(Error::BlobTooLarge { .. })),
        "{streamed:?}"
    );
    assert!(matches!(
        w.registry.upload_status(&repo, &session.id).await,
        Err(Error::UploadUnknown)
    ));
    assert_eq!(w.upload_files(), 0, "no upload bytes are left behind");
    assert_eq!(w.registry.upload_slots(), 0);
}
