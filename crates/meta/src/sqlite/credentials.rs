//! The credentials epoch: a file beside the database whose length grows by one byte whenever
//! an account's credentials change, so every process on the data directory (the server, the
//! CLI) can tell with one `fstat` that remembered sign-ins must be checked again.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub(super) struct CredentialsEpoch {
    path: PathBuf,
    /// Opened for appending: appends from several processes never overwrite each other, and
    /// `fstat` on it sees every process's appends. None when the file cannot be opened; the
    /// epoch is then unknown and callers read the account instead.
    file: Option<File>,
}

impl CredentialsEpoch {
    pub(super) fn beside(database: &Path) -> CredentialsEpoch {
        let mut path = database.as_os_str().to_owned();
        path.push("-credentials");
        let path = PathBuf::from(path);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .inspect_err(|err| {
                tracing::warn!(path = %path.display(), %err,
                    "cannot open the credentials epoch file: remembered passwords are checked against the database on every request");
            })
            .ok();
        CredentialsEpoch { path, file }
    }

    /// The epoch now: one `fstat`, no database read.
    pub(super) fn current(&self) -> Option<u64> {
        self.file.as_ref()?.metadata().ok().map(|meta| meta.len())
    }

    /// Called after a commit that changed credentials, so that a sign-in checked against the
    /// account before the commit is not trusted after it.
    pub(super) fn bump(&self) {
        let appended = match &self.file {
            Some(file) => {
                let mut file: &File = file;
                file.write_all(b"+")
            }
            None => Err(std::io::Error::other("not open")),
        };
        if let Err(err) = appended {
            tracing::error!(path = %self.path.display(), %err,
                "cannot move the credentials epoch: a server on this data directory may accept remembered old credentials for up to 15 minutes");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bump_is_seen_by_every_opener() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("berth.db");
        let server = CredentialsEpoch::beside(&database);
        let cli = CredentialsEpoch::beside(&database);
        let before = server.current().unwrap();
        cli.bump();
        assert_eq!(server.current(), Some(before + 1));
        server.bump();
        assert_eq!(cli.current(), Some(before + 2));
    }
}
