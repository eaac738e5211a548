//! What an acknowledgement is worth: the writer syncs every commit (WAL with
//! `synchronous=FULL`), and the stats the operations endpoints read.

use berth_meta::{Durability, SqliteMeta};

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
    // Two readers per core, at least four and at most sixteen.
    let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
    let readers = (cores * 2).clamp(4, 16);
    assert_eq!((read.name, read.max as usize), ("read", readers));
    assert_eq!((write.name, write.max, write.open), ("write", 1, 1));
    assert!(read.idle <= read.open && read.open >= 1, "{read:?}");
    meta.close().await;
    assert!(meta.ping().await.is_err(), "a closed store does not answer");
}

/// `PRAGMA synchronous` NORMAL: commits return unflushed, for `sync` to flush in groups.
const NORMAL: i64 = 1;

async fn audit(meta: &SqliteMeta, i: usize) {
    use berth_core::ports::{AuditEvent, AuditLog as _};
    meta.record_audit(&AuditEvent {
        at: 1_700_000_000,
        actor: "alice".into(),
        action: "test.write".into(),
        target: format!("write {i}"),
        detail: None,
        address: None,
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn group_commit_flushes_the_commits_of_many_callers_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let meta = SqliteMeta::open_with(&dir.path().join("berth.db"), Durability::GroupCommit)
        .await
        .unwrap();
    assert_eq!(meta.writer_synchronous().await.unwrap(), NORMAL);
    assert_eq!(meta.wal_flushes(), 0);

    audit(&meta, 0).await;
    meta.sync().await.unwrap();
    assert_eq!(meta.wal_flushes(), 1, "a lone caller flushes");

    // 32 requests committed, then all wait to answer: the first flush is under way when
    // the others arrive, and the second covers all of them.
    for i in 1..=32 {
        audit(&meta, i).await;
    }
    let waits: Vec<_> = (0..32).map(|_| meta.sync()).collect();
    for result in futures_util::future::join_all(waits).await {
        result.unwrap();
    }
    assert_eq!(
        meta.wal_flushes(),
        3,
        "one flush for the first, one for the 31 behind it"
    );
}
