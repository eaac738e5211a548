//! Password hashing with argon2id (PHC strings with a random salt per password).

use crate::error::{Error, Result};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// OWASP's argon2id settings of 7 MiB and 5 passes: one of the five it rates equally strong
/// (the crate's default is the 19 MiB, 2-pass one). Memory is what a sign-in holds while it
/// is checked, and the server's peak memory is mostly sign-ins in flight; the CPU time is
/// about the same. Hashes made with other settings keep verifying: a PHC string names its
/// own.
const MEMORY_KIB: u32 = 7 * 1024;
const PASSES: u32 = 5;

fn argon2id() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, PASSES, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub fn hash_password(password: &str) -> Result<String> {
    let mut random = [0u8; 16];
    getrandom::getrandom(&mut random).map_err(|e| Error::internal("salt randomness", e))?;
    let salt = SaltString::encode_b64(&random).map_err(|e| Error::internal("salt", e))?;
    argon2id()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Error::internal("hash password", e))
}

/// Whether `password` matches the stored PHC string; a malformed hash never matches.
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|hash| {
            // The stored string's own settings are used, whatever these are.
            argon2id()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let a = hash_password("correct horse").unwrap();
        let b = hash_password("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"), "{a}");
        assert_ne!(a, b, "every hash has its own salt");
        assert!(verify_password("correct horse", &a));
        assert!(!verify_password("wrong horse", &a));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn hashes_made_with_the_earlier_settings_still_verify() {
        let salt = SaltString::encode_b64(b"sixteen byte salt").unwrap();
        let earlier = Argon2::default()
            .hash_password(b"correct horse", &salt)
            .unwrap()
            .to_string();
        assert!(earlier.contains("m=19456,t=2,p=1"), "{earlier}");
        assert!(verify_password("correct horse", &earlier));
        assert!(!verify_password("wrong horse", &earlier));
    }
}
