//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "id.timestamp.body">`, keyed with the bytes of a `whsec_<base64>` secret.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What every webhook secret starts with, as Standard Webhooks writes them.
pub const SECRET_PREFIX: &str = "whsec_";

/// A fresh secret: 32 random bytes.
pub fn new_secret() -> String {
    let mut key = [0u8; 32];
    getrandom::getrandom(&mut key).expect("the system's random source failed");
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

fn key_of(secret: &str) -> Vec<u8> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    STANDARD
        .decode(encoded)
        .unwrap_or_else(|_| secret.as_bytes().to_vec())
}

fn mac(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(&key_of(secret)).expect("HMAC takes any key");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `webhook-signature` value for one message.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, id, timestamp, body).finalize().into_bytes();
    format!("v1,{}", STANDARD.encode(tag))
}

/// Whether any `v1` signature in `header` (space-separated) is this message's, compared in
/// constant time. What a receiver does; Berth's tests and example receiver use it.
pub fn verify(secret: &str, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    header.split(' ').any(|candidate| {
        let Some(encoded) = candidate.strip_prefix("v1,") else {
            return false;
        };
        let Ok(tag) = STANDARD.decode(encoded) else {
            return false;
        };
        mac(secret, id, timestamp, body).verify_slice(&tag).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        let signature = sign(secret, id, 1614265330, body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify(secret, id, 1614265330, body, &signature));
    }

    #[test]
    fn a_changed_message_or_secret_does_not_verify() {
        let secret = new_secret();
        assert!(secret.starts_with(SECRET_PREFIX));
        let signature = sign(&secret, "msg_1", 1_700_000_000, b"{}");
        assert!(verify(
            &secret,
            "msg_1",
            1_700_000_000,
            b"{}",
            &format!("v1,bogus {signature}")
        ));
        assert!(!verify(&secret, "msg_2", 1_700_000_000, b"{}", &signature));
        assert!(!verify(&secret, "msg_1", 1_700_000_001, b"{}", &signature));
        assert!(!verify(&secret, "msg_1", 1_700_000_000, b"{ }", &signature));
        assert!(!verify(
            &new_secret(),
            "msg_1",
            1_700_000_000,
            b"{}",
            &signature
        ));
    }
}
