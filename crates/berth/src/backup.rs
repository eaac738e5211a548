//! `berth backup --to DIR`: a consistent copy of a data directory, taken while the server
//! runs and takes pushes. The database is copied by SQLite's online snapshot (`VACUUM
//! INTO`, one read transaction); then every blob that snapshot records is hard-linked or
//! copied, and last a manifest (`berth-backup.json`) that `restore` checks.
//!
//! Why the snapshot's blobs are all there: a blob's file is renamed into place, fsynced,
//! before the commit that records it, and committed files are never changed in place.
//! Garbage collection removes only blobs it marked (`deleting_at`), which the backup skips,
//! and it cannot run while the backup holds the collection lock. Blobs pushed after the
//! snapshot are simply not in it.

use crate::cli::BackupArgs;
use crate::config::Config;
use crate::datadir;
use berth_meta::{ContentCounts, SqliteMeta, SqliteSnapshot};
use berth_storage::Exported;
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::Path;

type CliResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// The manifest's file name; a directory without it is not a (complete) backup.
pub const MANIFEST_FILE: &str = "berth-backup.json";
/// The copy of the key that seals webhook secrets, when the data directory had one.
pub const SECRETS_KEY_FILE: &str = "secrets.key";
/// What `format` says in every manifest.
pub const FORMAT_NAME: &str = "berth-backup";
/// The layout version this binary writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// `berth-backup.json`: what the backup holds, written last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupManifest {
    pub format: String,
    pub version: u32,
    pub berth_version: String,
    /// When the database snapshot was taken (RFC 3339, UTC).
    pub created_at: String,
    pub repositories: u64,
    pub manifests: u64,
    pub tags: u64,
    pub blobs: u64,
    pub blob_bytes: u64,
    /// Whether `secrets.key` is in the backup.
    pub secrets_key: bool,
}

impl BackupManifest {
    pub fn counts(&self) -> ContentCounts {
        ContentCounts {
            repositories: self.repositories,
            manifests: self.manifests,
            tags: self.tags,
            blobs: self.blobs,
            blob_bytes: self.blob_bytes,
        }
    }
}

pub fn run(config: &Config, args: &BackupArgs) -> CliResult {
    crate::backends::metadata::require_sqlite(config, "berth backup")?;
    let data_dir = &config.data_dir.value;
    crate::backends::blobs::require_filesystem(config, "berth backup")?;
    datadir::require_database(data_dir)?;
    datadir::require_empty(&args.to, "backup target")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let summary = runtime.block_on(back_up(config, &args.to, !args.copy))?;
    println!("{summary}");
    Ok(())
}

async fn back_up(config: &Config, target: &Path, link: bool) -> CliResult<String> {
    let data_dir = &config.data_dir.value;
    let shown = target.display();
    std::fs::create_dir_all(target)
        .map_err(|e| format!("cannot create the backup target {shown}: {e}"))?;
    let snapshot_path = target.join(datadir::DATABASE_FILE);
    let backend = crate::backends::blobs::BlobBackend::open(config).await?;
    let store = backend.filesystem("berth backup")?;
    // Held until every blob is linked or copied: no garbage collection may delete bytes
    // the snapshot records meanwhile.
    let _collection = datadir::hold_collection(store).await?;
    let created_at = berth_core::time::rfc3339(berth_core::time::now_unix());
    let meta = SqliteMeta::open(&data_dir.join(datadir::DATABASE_FILE))
        .await
        .map_err(|e| format!("cannot open the database in {}: {e}", data_dir.display()))?;
    let snapshot = meta.snapshot_into(&snapshot_path).await;
    meta.close().await;
    snapshot.map_err(|e| format!("cannot snapshot the database into {shown}: {e}"))?;
    // VACUUM INTO does not flush its output.
    std::fs::File::open(&snapshot_path)?.sync_all()?;

    let snapshot = SqliteSnapshot::open(&snapshot_path).await?;
    let records = snapshot.blob_records().await;
    let counts = snapshot.counts().await;
    snapshot.close().await;
    let (records, counts) = (records?, counts?);

    let (mut linked, mut copied) = (0u64, 0u64);
    let mut try_link = link;
    for record in &records {
        match store.export_blob(&record.digest, record.size, target, try_link)? {
            Exported::Linked => linked += 1,
            Exported::Copied => {
                copied += 1;
                // A link that failed once (another filesystem) fails for every blob.
                try_link = false;
            }
        }
    }
    sync_tree(&target.join("blobs"))?;

    let key = config.secrets_key_path();
    let secrets_key = match std::fs::read(&key) {
        Ok(bytes) => {
            write_private(&target.join(SECRETS_KEY_FILE), &bytes)?;
            true
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => false,
        Err(err) => return Err(format!("cannot read {}: {err}", key.display()).into()),
    };

    let manifest = BackupManifest {
        format: FORMAT_NAME.to_owned(),
        version: FORMAT_VERSION,
        berth_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at,
        repositories: counts.repositories,
        manifests: counts.manifests,
        tags: counts.tags,
        blobs: counts.blobs,
        blob_bytes: counts.blob_bytes,
        secrets_key,
    };
    // Written last, by rename: a backup cut short has no manifest, and restore refuses it.
    let partial = target.join(format!("{MANIFEST_FILE}.partial"));
    write_private(&partial, &serde_json::to_vec_pretty(&manifest)?)?;
    std::fs::rename(&partial, target.join(MANIFEST_FILE))?;
    datadir::sync_dir(target)?;
    Ok(format!(
        "backed up {} repositories, {} manifests, {} tags and {} blobs ({} bytes: {linked} hard-linked, {copied} copied) to {shown}",
        counts.repositories, counts.manifests, counts.tags, counts.blobs, counts.blob_bytes
    ))
}

/// Writes a file only its owner can read (the secrets key is in there), flushed.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Flushes every directory under `root` (and `root`): the new names of the blobs in them.
fn sync_tree(root: &Path) -> std::io::Result<()> {
    if !root.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            sync_tree(&entry.path())?;
        }
    }
    datadir::sync_dir(root)
}
