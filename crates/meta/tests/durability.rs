//! What an acknowledgement is worth: the writer syncs every commit (WAL with
//! `synchronous=FULL`), and the stats the operations endpoints read.

use berth_meta::SqliteMeta;

/// `PRAGMA synchronous` as SQLite numbers it.
const FULL: i64 = 2;

#[tokio::test]
async fn every_commit_is_synced_before_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let meta = SqliteMeta::open(&dir.path().join("berth.db"))
        .await
        .unwrap();
    assert_eq!(
        meta.writer_synchronous().await.unwrap(),
        FULL,
        "with NORMAL a WAL commit is synced only at checkpoints and a power cut can lose it"
    );
    meta.close().await;

    // Reopened (migrations already run), the setting holds too.
    let meta = SqliteMeta::open(&dir.path().join("berth.db"))
        .await
        .unwrap();
    assert_eq!(meta.writer_synchronous().await.unwrap(), FULL);
}

#[tokio::test]
async fn the_store_reports_that_it_answers_and_how_busy_its_pools_are() {
    let dir = tempfile::tempdir().unwrap();
    let meta = SqliteMeta::open(&dir.path().join("berth.db"))
        .await
        .unwrap();
    meta.ping().await.unwrap();
    assert_eq!(meta.open_upload_sessions().await.unwrap(), 0);
    let [read, write] = meta.pool_use();
    assert_eq!((read.name, read.max), ("read", 8));
    assert_eq!((write.name, write.max, write.open), ("write", 1, 1));
    assert!(read.idle <= read.open && read.open >= 1, "{read:?}");
    meta.close().await;
    assert!(meta.ping().await.is_err(), "a closed store does not answer");
}
