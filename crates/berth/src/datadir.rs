//! The data directory's guards: the lock a server holds on it (`berth.lock`), the
//! collection lock a backup or check waits for (`gc.lock`), and the emptiness a restore
//! target and a backup destination must have.

use std::fs::File;
use std::io;
use std::path::Path;

/// The database file in the data directory.
pub const DATABASE_FILE: &str = "berth.db";

/// Takes the exclusive lock `serve` holds while it runs (creating `berth.lock`). `Ok(None)`:
/// another process holds it. The returned file keeps the lock until it is dropped or the
/// process exits.
pub fn try_lock(dir: &Path) -> io::Result<Option<File>> {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("berth.lock"))?;
    match lock.try_lock() {
        Ok(()) => Ok(Some(lock)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(err)) => Err(err),
    }
}

/// Ok when `dir` does not exist or is an empty directory; otherwise a one-line reason
/// naming it as `what`.
pub fn require_empty(dir: &Path, what: &str) -> Result<(), String> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => match entries.next() {
            None => Ok(()),
            Some(_) => Err(format!(
                "{what} {} is not empty (it must be empty or absent)",
                dir.display()
            )),
        },
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotADirectory => {
            Err(format!("{what} {} is not a directory", dir.display()))
        }
        Err(err) => Err(format!("{what} {} is not usable: {err}", dir.display())),
    }
}

/// Ok when `dir` holds a Berth database; otherwise a one-line reason.
pub fn require_database(dir: &Path) -> Result<(), String> {
    if dir.join(DATABASE_FILE).is_file() {
        Ok(())
    } else {
        Err(format!(
            "no Berth database in {} ({DATABASE_FILE} is missing; is --data-dir right?)",
            dir.display()
        ))
    }
}

/// Flushes a directory's entries (a new or renamed file in it) to stable storage.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Takes the data directory's collection lock, waiting for a garbage collection run
/// under way (in the server or another command) to finish.
pub async fn hold_collection(
    store: &berth_storage::FsBlobStore,
) -> Result<berth_core::ports::CollectionLock, berth_core::ports::StoreError> {
    use berth_core::ports::BlobStore as _;
    let mut told = false;
    loop {
        if let Some(lock) = store.lock_collection().await? {
            return Ok(lock);
        }
        if !told {
            eprintln!("waiting for a garbage collection run to finish");
            told = true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_absent_or_empty_directory_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(require_empty(&dir.path().join("absent"), "target").is_ok());
        assert!(require_empty(dir.path(), "target").is_ok());
        std::fs::write(dir.path().join("file"), b"x").unwrap();
        let err = require_empty(dir.path(), "backup target").unwrap_err();
        assert!(
            err.starts_with("backup target ")
                && err.ends_with("is not empty (it must be empty or absent)"),
            "{err}"
        );
        let err = require_empty(&dir.path().join("file"), "target").unwrap_err();
        assert!(err.ends_with("is not a directory"), "{err}");
    }

    #[test]
    fn a_second_lock_is_refused_while_the_first_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let first = try_lock(dir.path()).unwrap();
        assert!(first.is_some());
        assert!(try_lock(dir.path()).unwrap().is_none());
        drop(first);
        assert!(try_lock(dir.path()).unwrap().is_some());
    }
}
