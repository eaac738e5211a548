//! The key that seals webhook secrets at rest: 32 random bytes, hex-encoded in a file of its
//! own (`secrets.key` in the data directory unless `secrets_key_file` says otherwise), made
//! on first use with owner-only permissions. Several nodes share it by sharing the file: on
//! PostgreSQL and S3 (several nodes) it must be named and made beforehand ([`load_shared`]).

use berth_core::webhooks::{SealKey, SEAL_KEY_BYTES};
use std::io::Write as _;
use std::path::Path;

/// Reads the key, creating it if the file does not exist.
pub fn load_or_create(path: &Path) -> Result<SealKey, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(text.trim()).map_err(|why| format!("{}: {why}", path.display())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => create(path),
        Err(err) => Err(format!("cannot read {}: {err}", path.display())),
    }
}

/// The key of a deployment of several nodes: read from `secrets_key_file`, which must be set
/// and exist. Never made here: a key one node made on its own would differ from the others',
/// and secrets sealed by one node could not be opened by the next.
pub fn load_shared(path: Option<&Path>) -> Result<SealKey, String> {
    let Some(path) = path else {
        return Err("with PostgreSQL and S3 every node must use the same secrets key: set secrets_key_file (BERTH_SECRETS_KEY_FILE) to a file every node reads, made once with `openssl rand -hex 32`".to_owned());
    };
    match std::fs::read_to_string(path) {
        Ok(text) => parse(text.trim()).map_err(|why| format!("{}: {why}", path.display())),
        Err(err) => Err(format!(
            "cannot read secrets_key_file {}: {err} (every node must read the same key; make it once with `openssl rand -hex 32`)",
            path.display()
        )),
    }
}

fn parse(hex_text: &str) -> Result<SealKey, String> {
    let bytes = hex::decode(hex_text).map_err(|_| "the key is not hexadecimal".to_owned())?;
    let key: [u8; SEAL_KEY_BYTES] = bytes.try_into().map_err(|_| {
        format!(
            "the key must be {SEAL_KEY_BYTES} bytes ({} hex digits)",
            SEAL_KEY_BYTES * 2
        )
    })?;
    Ok(SealKey::from_bytes(&key))
}

fn create(path: &Path) -> Result<SealKey, String> {
    let fail = |err: std::io::Error| format!("cannot create {}: {err}", path.display());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let key = SealKey::generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(hex::encode(key).as_bytes()).map_err(fail)?;
            file.sync_all().map_err(fail)?;
            Ok(SealKey::from_bytes(&key))
        }
        // Another process made it first: use theirs.
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => load_or_create(path),
        Err(err) => Err(fail(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_made_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/secrets.key");
        let first = load_or_create(&path).unwrap();
        let sealed = first.seal("whsec_x");
        let again = load_or_create(&path).unwrap();
        assert_eq!(again.open(&sealed).as_deref(), Some("whsec_x"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "not hex").unwrap();
        assert!(load_or_create(&path).unwrap_err().contains("hexadecimal"));
        std::fs::write(&path, "abcd").unwrap();
        assert!(load_or_create(&path).unwrap_err().contains("32 bytes"));
    }

    #[test]
    fn a_shared_key_is_read_but_never_made() {
        let dir = tempfile::tempdir().unwrap();
        let unset = load_shared(None).unwrap_err();
        assert!(
            unset.contains("secrets_key_file") && !unset.contains('\n'),
            "{unset}"
        );
        let path = dir.path().join("shared.key");
        let missing = load_shared(Some(&path)).unwrap_err();
        assert!(
            missing.contains("cannot read secrets_key_file"),
            "{missing}"
        );
        assert!(!path.exists(), "a missing shared key is never made");
        let made = load_or_create(&path).unwrap();
        let read = load_shared(Some(&path)).unwrap();
        assert_eq!(read.open(&made.seal("whsec_y")).as_deref(), Some("whsec_y"));
    }
}
