//! Secrets at rest: webhook signing secrets and custom header values are stored encrypted
//! (XChaCha20-Poly1305) under a key kept outside the database, so a copy of the database
//! alone does not hand them out.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

pub const SEAL_KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 24;

/// The key secrets are sealed with.
#[derive(Clone)]
pub struct SealKey(XChaCha20Poly1305);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

impl SealKey {
    pub fn from_bytes(key: &[u8; SEAL_KEY_BYTES]) -> SealKey {
        SealKey(XChaCha20Poly1305::new(key.into()))
    }

    /// A fresh random key's bytes.
    pub fn generate() -> [u8; SEAL_KEY_BYTES] {
        let mut key = [0u8; SEAL_KEY_BYTES];
        getrandom::getrandom(&mut key).expect("the system's random source failed");
        key
    }

    /// A random nonce followed by the ciphertext and its tag.
    pub fn seal(&self, plaintext: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::getrandom(&mut nonce).expect("the system's random source failed");
        let sealed = self
            .0
            .encrypt(XNonce::from_slice(&nonce), plaintext.as_bytes())
            .expect("encryption of a small value cannot fail");
        [nonce.as_slice(), &sealed].concat()
    }

    /// The plaintext, or None if `sealed` was not sealed with this key (or was altered).
    pub fn open(&self, sealed: &[u8]) -> Option<String> {
        if sealed.len() < NONCE_BYTES {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        let plain = self.0.decrypt(XNonce::from_slice(nonce), ciphertext).ok()?;
        String::from_utf8(plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key() {
        let key = SealKey::from_bytes(&SealKey::generate());
        let sealed = key.seal("Bearer s3cret");
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(key.open(&sealed).as_deref(), Some("Bearer s3cret"));
        assert_ne!(
            key.seal("Bearer s3cret"),
            sealed,
            "each seal has its own nonce"
        );
        let other = SealKey::from_bytes(&SealKey::generate());
        assert_eq!(other.open(&sealed), None);
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(key.open(&altered), None);
        assert_eq!(key.open(b"short"), None);
    }
}
