//! `berth migrate --to-config NEW.toml [--resume]`: copies a stopped single-node data
//! directory (SQLite and the filesystem) into the PostgreSQL database and the blob store
//! (S3 or a filesystem) that `NEW.toml` names, then checks the copy: every table's row count
//! on both sides, and every blob's size and digest read back from the destination.
//!
//! Blobs go first, each through the store's own upload path and hashed on the way, and
//! skipped when the destination has them already; then the tables, each in one transaction
//! with its progress record (`berth_meta::transfer`). So a run stopped anywhere, even by
//! `kill -9`, is finished by running it again with `--resume`.

use crate::backends::blobs::BlobBackend;
use crate::backends::metadata::{self, OpenedBackend};
use crate::cli::{GlobalArgs, MigrateArgs};
use crate::config::{redact_database_url, Config, StorageKind};
use crate::datadir;
use berth_core::ports::{BlobStore, ByteStream};
use berth_meta::transfer::{Step, TargetState, Transfer};
use berth_meta::{BlobRecord, Durability, SqliteMeta};
use berth_oci::DigestHasher;
use futures_util::{StreamExt as _, TryStreamExt as _};
use std::sync::{Arc, Mutex};

type CliResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// Test hook: `table:NAME` aborts the process (as `kill -9` would) once that table's rows
/// are written but not committed; `blob:N` once N blobs are copied. Only the resumption
/// tests set it.
const ABORT_HOOK: &str = "BERTH_TEST_MIGRATE_ABORT_AT";

pub fn run(config: &Config, args: &MigrateArgs) -> CliResult {
    metadata::require_sqlite(config, "berth migrate")?;
    if config.storage.kind.value != StorageKind::Filesystem {
        return Err("berth migrate copies a single-node data directory, and this configuration's [storage] kind is \"s3\" (run it with the old node's configuration)".into());
    }
    let data_dir = &config.data_dir.value;
    datadir::require_database(data_dir)?;
    if !args.to_config.is_file() {
        return Err(format!("--to-config {} is not a file", args.to_config.display()).into());
    }
    let target = Config::load(
        &GlobalArgs {
            config: Some(args.to_config.clone()),
            data_dir: None,
        },
        None,
    )
    .map_err(|e| format!("{}: {e}", args.to_config.display()))?;
    let Some(url) = target.database_url.value.clone() else {
        return Err(format!(
            "{} sets no database_url: berth migrate copies into PostgreSQL (to copy a data directory elsewhere, use berth backup and berth restore)",
            args.to_config.display()
        )
        .into());
    };
    if target.storage.kind.value == StorageKind::Filesystem
        && same_directory(&target.data_dir.value, data_dir)
    {
        return Err(format!(
            "{} keeps its blobs in {}, the data directory being migrated; give it another data_dir, or [storage] kind = \"s3\"",
            args.to_config.display(),
            data_dir.display()
        )
        .into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let summary = runtime.block_on(migrate(config, &target, &url, args.resume))?;
    println!("{summary}");
    Ok(())
}

fn same_directory(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

async fn migrate(source: &Config, target: &Config, url: &str, resume: bool) -> CliResult<String> {
    let data_dir = &source.data_dir.value;
    let shown_url = redact_database_url(url);
    // Held to the end: a server writing meanwhile would make the copy miss its writes.
    let _lock = datadir::try_lock(data_dir)?.ok_or_else(|| {
        format!(
            "data directory {} is in use by a running berth; stop it first (migrate copies a data directory at rest)",
            data_dir.display()
        )
    })?;
    let source_meta = SqliteMeta::open(&data_dir.join(datadir::DATABASE_FILE))
        .await
        .map_err(|e| format!("cannot open the database in {}: {e}", data_dir.display()))?;
    let source_blobs = BlobBackend::open(source).await?.store();
    let target_meta = metadata::open(target, Durability::EveryCommit).await?;
    let OpenedBackend::Postgres(postgres) = &target_meta.backend else {
        return Err("the target configuration did not open PostgreSQL".into());
    };
    let transfer = Transfer::plan(&source_meta, postgres).await?;
    match transfer.target_state().await? {
        TargetState::Empty => {}
        TargetState::Started { done } if resume => println!(
            "resuming: {} of {} tables were copied before",
            done.len(),
            transfer.tables().len()
        ),
        TargetState::Started { done } => {
            return Err(format!(
                "the database at {shown_url} is not empty: it holds a migration ({} of {} tables copied); pass --resume to finish it, or to check a finished one again",
                done.len(),
                transfer.tables().len()
            )
            .into())
        }
        TargetState::Occupied { table } => {
            return Err(format!(
                "the database at {shown_url} is not empty (table {table} has rows that no migration wrote); migrate into an empty database"
            )
            .into())
        }
    }
    carry_seal_key(source, target)?;
    let target_blobs = BlobBackend::open(target).await?.store();
    let abort_at = std::env::var(ABORT_HOOK).ok();

    let records = source_meta.blob_records().await?;
    let (mut copied, mut present, mut bytes) = (0u64, 0u64, 0u64);
    for record in &records {
        if abort_at.as_deref() == Some(&format!("blob:{}", copied)) && copied > 0 {
            abort(ABORT_HOOK);
        }
        if copy_blob(&*source_blobs, &*target_blobs, record).await? {
            copied += 1;
            bytes += record.size;
        } else {
            present += 1;
        }
    }
    println!("copied {copied} blobs ({bytes} bytes); {present} were there already");

    let mut progress = |step: Step<'_>| match step {
        Step::Written { table, .. } => {
            if abort_at.as_deref() == Some(&format!("table:{table}")) {
                abort(ABORT_HOOK);
            }
        }
        Step::Copied { table, rows } => println!("copied table {table}: {rows} rows"),
        Step::AlreadyCopied { table } => println!("table {table} was copied before"),
    };
    transfer.copy(&mut progress).await?;

    let counts = transfer.counts().await?;
    let differing: Vec<String> = counts
        .iter()
        .filter(|c| c.source != c.target)
        .map(|c| format!("{} ({} rows here, {} there)", c.table, c.source, c.target))
        .collect();
    if !differing.is_empty() {
        return Err(format!(
            "the copy does not match: {}; the source changed after an earlier run, or the target was written to",
            differing.join(", ")
        )
        .into());
    }
    let verified_bytes = verify_blobs(&*target_blobs, &records).await?;
    source_meta.close().await;
    target_meta.close().await;
    let rows: u64 = counts.iter().map(|c| c.source).sum();
    let storage = match target.storage.kind.value {
        StorageKind::Filesystem => format!("{}", target.data_dir.value.display()),
        StorageKind::S3 => format!(
            "bucket {}",
            target.storage.bucket.value.as_deref().unwrap_or_default()
        ),
    };
    Ok(format!(
        "migrated {rows} rows in {} tables into {shown_url} and {} blobs ({verified_bytes} bytes) into {storage}; verified every table's row count and every blob's size and digest at the destination",
        counts.len(),
        records.len()
    ))
}

/// Ends the process at once, as `kill -9` would, for the resumption tests.
fn abort(hook: &str) -> ! {
    eprintln!("aborting where {hook} says");
    std::process::abort()
}

/// Webhook secrets, build credentials and replication passwords are sealed with the data
/// directory's key: the target's nodes must have the same one. It is written where the
/// target's `secrets_key_file` points when nothing is there; a different key there is
/// refused, since the copied secrets could not be opened with it.
fn carry_seal_key(source: &Config, target: &Config) -> CliResult {
    let from = source.secrets_key_path();
    let to = target.secrets_key_path();
    let key = match std::fs::read(&from) {
        Ok(key) => key,
        // Never made: nothing was sealed.
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(format!("cannot read {}: {err}", from.display()).into()),
    };
    match std::fs::read(&to) {
        Ok(existing) if existing.trim_ascii() == key.trim_ascii() => Ok(()),
        Ok(_) => Err(format!(
            "{} holds another key than {}: the copied secrets would not open with it; remove it, or point the new configuration's secrets_key_file elsewhere",
            to.display(),
            from.display()
        )
        .into()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            crate::backup::write_private(&to, &key)
                .map_err(|e| format!("cannot write {}: {e}", to.display()))?;
            println!(
                "wrote the key that seals secrets to {} (every node needs it: secrets_key_file)",
                to.display()
            );
            Ok(())
        }
        Err(err) => Err(format!("cannot read {}: {err}", to.display()).into()),
    }
}

/// A stream that feeds every chunk to `hasher` on its way.
fn hashed(stream: ByteStream, hasher: Arc<Mutex<DigestHasher>>) -> ByteStream {
    Box::pin(stream.map_ok(move |chunk| {
        if let Ok(mut hasher) = hasher.lock() {
            hasher.update(&chunk);
        }
        chunk
    }))
}

/// Copies one blob through the target's upload path unless it is there with its size
/// already; `true` when it copied. The bytes are hashed on the way and committed only
/// when they match the digest.
async fn copy_blob(
    source: &dyn BlobStore,
    target: &dyn BlobStore,
    record: &BlobRecord,
) -> CliResult<bool> {
    let digest = &record.digest;
    if target.blob_size(digest).await? == Some(record.size) {
        return Ok(false);
    }
    let upload = format!("migrate-{}-{}", std::process::id(), digest.hex());
    let hasher = Arc::new(Mutex::new(DigestHasher::new(digest.algorithm())));
    let bytes = source
        .read_blob(digest, None)
        .await
        .map_err(|e| format!("blob {digest} cannot be read from the data directory: {e}"))?;
    target.create_upload(&upload).await?;
    let written = target
        .append_upload(&upload, 0, hashed(bytes, hasher.clone()), Some(record.size))
        .await;
    let computed = hasher.lock().ok().map(|mut hasher| {
        std::mem::replace(&mut *hasher, DigestHasher::new(digest.algorithm())).finish()
    });
    match written {
        Ok(_) if computed.as_ref() == Some(digest) => {}
        Ok(_) => {
            target.delete_upload(&upload).await?;
            return Err(format!(
                "blob {digest} in the data directory does not match its digest (berth fsck finds such blobs); nothing of it was copied"
            )
            .into());
        }
        Err(err) => {
            let _ = target.delete_upload(&upload).await;
            return Err(format!("copying blob {digest}: {err}").into());
        }
    }
    target.commit_upload(&upload, digest, record.size).await?;
    Ok(true)
}

/// Reads every blob back from the destination: its size and digest must be the recorded
/// ones. The bytes checked, in all.
async fn verify_blobs(target: &dyn BlobStore, records: &[BlobRecord]) -> CliResult<u64> {
    let mut total = 0u64;
    for record in records {
        let digest = &record.digest;
        match target.blob_size(digest).await? {
            Some(size) if size == record.size => {}
            Some(size) => {
                return Err(format!(
                    "blob {digest} is {size} bytes at the destination, not {}",
                    record.size
                )
                .into())
            }
            None => return Err(format!("blob {digest} is missing at the destination").into()),
        }
        let mut hasher = DigestHasher::new(digest.algorithm());
        let mut stream = target.read_blob(digest, None).await?;
        let mut read = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            read += chunk.len() as u64;
            hasher.update(&chunk);
        }
        if read != record.size || &hasher.finish() != digest {
            return Err(
                format!("blob {digest} at the destination does not match its digest").into(),
            );
        }
        total += read;
    }
    Ok(total)
}
