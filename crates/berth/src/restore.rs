//! `berth restore --from DIR`: fills an empty data directory from a `berth backup`. The
//! backup is checked against its manifest first; every blob is hashed as it is copied and
//! refused unless its size and digest are the recorded ones; the database goes in last, so
//! a restore cut short leaves no database that names missing content.

use crate::backup::{
    write_private, BackupManifest, FORMAT_NAME, FORMAT_VERSION, MANIFEST_FILE, SECRETS_KEY_FILE,
};
use crate::cli::RestoreArgs;
use crate::config::Config;
use crate::datadir;
use berth_meta::SqliteSnapshot;
use berth_storage::FsBlobStore;
use std::path::Path;

type CliResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

pub fn run(config: &Config, args: &RestoreArgs) -> CliResult {
    crate::backends::metadata::require_sqlite(config, "berth restore")?;
    let data_dir = &config.data_dir.value;
    crate::backends::blobs::require_filesystem(config, "berth restore")?;
    datadir::require_empty(data_dir, "data directory")?;
    let manifest = read_manifest(&args.from)?;
    let key_to_write = secrets_key_to_write(config, &args.from, &manifest)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let summary = runtime.block_on(restore(config, &args.from, &manifest, key_to_write))?;
    println!("{summary}");
    Ok(())
}

fn read_manifest(from: &Path) -> CliResult<BackupManifest> {
    if !from.is_dir() {
        return Err(format!("backup directory {} does not exist", from.display()).into());
    }
    let path = from.join(MANIFEST_FILE);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "{} is not a complete Berth backup ({MANIFEST_FILE} is missing)",
                from.display()
            )
            .into())
        }
        Err(err) => return Err(format!("cannot read {}: {err}", path.display()).into()),
    };
    let manifest: BackupManifest = serde_json::from_slice(&text)
        .map_err(|e| format!("{} is not a Berth backup manifest: {e}", path.display()))?;
    if manifest.format != FORMAT_NAME || manifest.version != FORMAT_VERSION {
        return Err(format!(
            "{} is format {:?} version {}; this berth reads {FORMAT_NAME:?} version {FORMAT_VERSION}",
            path.display(),
            manifest.format,
            manifest.version
        )
        .into());
    }
    Ok(manifest)
}

/// The backup's secrets key when it must be written to `secrets_key_file`. A key already
/// there is kept if it is the same one, and refused if it differs: overwriting it would
/// lose another installation's secrets, keeping it would lose the backup's.
fn secrets_key_to_write(
    config: &Config,
    from: &Path,
    manifest: &BackupManifest,
) -> CliResult<Option<Vec<u8>>> {
    if !manifest.secrets_key {
        return Ok(None);
    }
    let source = from.join(SECRETS_KEY_FILE);
    let key = std::fs::read(&source)
        .map_err(|e| format!("the backup's {} cannot be read: {e}", source.display()))?;
    let target = config.secrets_key_path();
    match std::fs::read(&target) {
        Ok(existing) if existing.trim_ascii() == key.trim_ascii() => Ok(None),
        Ok(_) => Err(format!(
            "{} holds a different key than the backup's; move it away or set secrets_key_file to another path",
            target.display()
        )
        .into()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Some(key)),
        Err(err) => Err(format!("cannot read {}: {err}", target.display()).into()),
    }
}

async fn restore(
    config: &Config,
    from: &Path,
    manifest: &BackupManifest,
    key_to_write: Option<Vec<u8>>,
) -> CliResult<String> {
    let data_dir = &config.data_dir.value;
    let backup_db = from.join(datadir::DATABASE_FILE);
    let snapshot = SqliteSnapshot::open(&backup_db)
        .await
        .map_err(|e| format!("the backup in {} is damaged: {e}", from.display()))?;
    let records = snapshot.blob_records().await;
    let counts = snapshot.counts().await;
    let versions = snapshot.schema_versions().await;
    snapshot.close().await;
    let (records, counts, (version, latest)) = (records?, counts?, versions?);
    if version > latest {
        return Err(format!(
            "the backup in {} is of a newer Berth (schema version {version}; this one knows {latest}): restore it with that version",
            from.display()
        )
        .into());
    }
    if counts != manifest.counts() {
        return Err(format!(
            "the backup in {} does not match its manifest (the database holds {} blobs of {} bytes, the manifest says {} of {})",
            from.display(),
            counts.blobs,
            counts.blob_bytes,
            manifest.blobs,
            manifest.blob_bytes
        )
        .into());
    }

    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("data directory {} is not usable: {e}", data_dir.display()))?;
    // Held until the restore ends, so no server starts on a half-filled directory.
    let _lock = datadir::try_lock(data_dir)?.ok_or_else(|| {
        format!(
            "data directory {} is in use by another berth process",
            data_dir.display()
        )
    })?;
    let incomplete = |err: &dyn std::fmt::Display| {
        format!(
            "restore stopped: {err}; {} is incomplete (empty it before trying again)",
            data_dir.display()
        )
    };
    let store = FsBlobStore::open(data_dir).map_err(|e| incomplete(&e))?;
    for record in &records {
        store
            .import_blob(from, &record.digest, record.size)
            .map_err(|e| incomplete(&e))?;
    }
    if let Some(key) = key_to_write {
        let path = config.secrets_key_path();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| incomplete(&e))?;
        }
        write_private(&path, &key).map_err(|e| incomplete(&e))?;
    }
    let restoring = data_dir.join(format!("{}.restoring", datadir::DATABASE_FILE));
    std::fs::copy(&backup_db, &restoring).map_err(|e| incomplete(&e))?;
    std::fs::File::open(&restoring)
        .and_then(|file| file.sync_all())
        .and_then(|()| std::fs::rename(&restoring, data_dir.join(datadir::DATABASE_FILE)))
        .and_then(|()| datadir::sync_dir(data_dir))
        .map_err(|e| incomplete(&e))?;
    Ok(format!(
        "restored {} repositories, {} manifests, {} tags and {} blobs ({} bytes, each verified) from the backup of {} into {}",
        counts.repositories,
        counts.manifests,
        counts.tags,
        counts.blobs,
        counts.blob_bytes,
        manifest.created_at,
        data_dir.display()
    ))
}
