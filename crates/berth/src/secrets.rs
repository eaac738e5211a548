//! The key that seals webhook secrets at rest: 32 random bytes, hex-encoded in a file of its
//! own (`secrets.key` in the data directory unless `secrets_key_file` says otherwise), made
//! on first use with owner-only permissions. Several nodes share it by sharing the file.

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
}
