//! Registry bearer tokens: compact JWS (JWT) signed with Ed25519, issued and checked by us alone.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, SECRET_KEY_LENGTH};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::fmt;

/// The only JWS algorithm we sign with or accept.
const ALGORITHM: &str = "EdDSA";

/// Tolerated clock difference between issuer and verifier, applied to `nbf` only: a token
/// must never outlive its `exp`.
const CLOCK_SKEW_SECS: i64 = 60;

/// Longer input is refused before any decoding work. Far above any token we issue (the
/// token service refuses to sign one this long), and above what HTTP servers accept in a
/// header anyway.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// Length of the key id, in base64url characters of the public key's SHA-256.
const KID_LEN: usize = 16;

/// One `access` entry of the Docker token specification: actions granted on one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceAccess {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

/// The payload of a registry token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    pub jti: String,
    #[serde(default)]
    pub access: Vec<ResourceAccess>,
    /// id of the personal/organization access token the grant came from
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<i64>,
    /// For a password sign-in: the account's id, so a later account of the same name is
    /// not signed in by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<i64>,
    /// For a password sign-in: the account's credential generation when it signed in; the
    /// token is refused once the account's has moved on (password changed, account
    /// disabled). Absent counts as 0, the generation of an account never changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gen: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("the token is not a well-formed EdDSA JWT")]
    Malformed,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token was signed with a key this service does not use")]
    WrongKey,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued for another service")]
    WrongAudience,
    #[error("token signing key: {0}")]
    Key(String),
}

#[derive(Serialize)]
struct HeaderOut<'a> {
    typ: &'a str,
    alg: &'a str,
    kid: &'a str,
}

#[derive(Deserialize)]
struct HeaderIn {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    /// RFC 7515 requires refusing tokens with critical extensions one does not understand,
    /// and we understand none.
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// Signs and verifies registry tokens with one Ed25519 key.
pub struct TokenSigner {
    kid: String,
    key: SigningKey,
    /// The base64url header is the same for every token this key signs.
    encoded_header: String,
}

impl TokenSigner {
    /// A new key from the operating system's randomness.
    pub fn generate() -> Result<TokenSigner, JwtError> {
        let mut seed = [0u8; SECRET_KEY_LENGTH];
        getrandom::getrandom(&mut seed).map_err(|e| JwtError::Key(format!("randomness: {e}")))?;
        Ok(TokenSigner::from_key(SigningKey::from_bytes(&seed)))
    }

    /// The key from its persisted 32-byte seed (see [`TokenSigner::secret`]).
    pub fn from_secret(secret: &[u8]) -> Result<TokenSigner, JwtError> {
        let seed: &[u8; SECRET_KEY_LENGTH] = secret.try_into().map_err(|_| {
            JwtError::Key(format!(
                "the secret has {} bytes, not {SECRET_KEY_LENGTH}",
                secret.len()
            ))
        })?;
        Ok(TokenSigner::from_key(SigningKey::from_bytes(seed)))
    }

    fn from_key(key: SigningKey) -> TokenSigner {
        let digest = Sha256::digest(key.verifying_key().as_bytes());
        let mut kid = URL_SAFE_NO_PAD.encode(digest);
        kid.truncate(KID_LEN);
        let header = HeaderOut {
            typ: "JWT",
            alg: ALGORITHM,
            kid: &kid,
        };
        let header_json = serde_json::to_vec(&header).expect("a header of strings serializes");
        let encoded_header = URL_SAFE_NO_PAD.encode(header_json);
        TokenSigner {
            kid,
            key,
            encoded_header,
        }
    }

    /// The 32-byte seed to persist; everything else is derived from it.
    pub fn secret(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Identifies the key in token headers, so a rotated key is told apart from a forgery.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The compact JWS `header.claims.signature`.
    pub fn sign(&self, claims: &Claims) -> Result<String, JwtError> {
        // Unreachable in practice: the claims are plain strings, numbers and lists.
        let claims_json = serde_json::to_vec(claims).map_err(|_| JwtError::Malformed)?;
        let mut token = format!(
            "{}.{}",
            self.encoded_header,
            URL_SAFE_NO_PAD.encode(claims_json)
        );
        let signature = self.key.sign(token.as_bytes());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature.to_bytes()));
        Ok(token)
    }

    /// Checks format, header alg/kid, signature, `aud == audience`, `nbf <= now + 60` and
    /// `now < exp` (allow 60 s clock skew on nbf only).
    pub fn verify(&self, token: &str, audience: &str, now: i64) -> Result<Claims, JwtError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwtError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };

        let header: HeaderIn = decode_json(header_b64)?;
        if header.alg != ALGORITHM || header.crit.is_some() {
            return Err(JwtError::Malformed);
        }
        if header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(JwtError::WrongKey);
        }

        let signature_bytes: [u8; 64] = URL_SAFE_NO_PAD
            .decode(signature_b64)
            .map_err(|_| JwtError::Malformed)?
            .try_into()
            .map_err(|_| JwtError::Malformed)?;
        let signature = Signature::from_bytes(&signature_bytes);
        let signed_len = header_b64.len() + 1 + claims_b64.len();
        // Strict verification also refuses malleable signatures and small-order keys.
        self.key
            .verifying_key()
            .verify_strict(&token.as_bytes()[..signed_len], &signature)
            .map_err(|_| JwtError::BadSignature)?;

        // Only signed claims are parsed.
        let claims: Claims = decode_json(claims_b64)?;
        if claims.aud != audience {
            return Err(JwtError::WrongAudience);
        }
        if claims.nbf > now.saturating_add(CLOCK_SKEW_SECS) {
            return Err(JwtError::NotYetValid);
        }
        if now >= claims.exp {
            return Err(JwtError::Expired);
        }
        Ok(claims)
    }
}

impl fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSigner")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(segment: &str) -> Result<T, JwtError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| JwtError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const AUDIENCE: &str = "registry.example.com";
    const NOW: i64 = 1_700_000_000;

    fn claims() -> Claims {
        Claims {
            iss: "berth".to_owned(),
            sub: "alice".to_owned(),
            aud: AUDIENCE.to_owned(),
            exp: NOW + 300,
            nbf: NOW,
            iat: NOW,
            jti: "a1b2c3".to_owned(),
            access: vec![ResourceAccess {
                kind: "repository".to_owned(),
                name: "team/app".to_owned(),
                actions: vec!["pull".to_owned(), "push".to_owned()],
            }],
            tid: Some(42),
            uid: None,
            gen: None,
        }
    }

    fn segments(token: &str) -> Vec<String> {
        token.split('.').map(str::to_owned).collect()
    }

    #[test]
    fn round_trip() {
        let signer = TokenSigner::generate().unwrap();
        let token = signer.sign(&claims()).unwrap();
        assert_eq!(token.split('.').count(), 3);
        assert_eq!(signer.verify(&token, AUDIENCE, NOW).unwrap(), claims());

        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&segments(&token)[0]).unwrap()).unwrap();
        assert_eq!(
            header,
            serde_json::json!({"typ": "JWT", "alg": "EdDSA", "kid": signer.kid()})
        );
    }

    #[test]
    fn claims_use_docker_field_names_and_omit_absent_token_id() {
        let signer = TokenSigner::generate().unwrap();
        let without_tid = Claims {
            tid: None,
            ..claims()
        };
        let token = signer.sign(&without_tid).unwrap();
        let payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&segments(&token)[1]).unwrap()).unwrap();
        assert_eq!(payload["access"][0]["type"], "repository");
        assert!(payload.get("tid").is_none());
        assert_eq!(signer.verify(&token, AUDIENCE, NOW).unwrap(), without_tid);
    }

    #[test]
    fn kid_is_derived_from_the_public_key() {
        let signer = TokenSigner::generate().unwrap();
        assert_eq!(signer.kid().len(), KID_LEN);
        let other = TokenSigner::generate().unwrap();
        assert_ne!(signer.kid(), other.kid());
    }

    #[test]
    fn persisted_secret_restores_the_same_key() {
        let original = TokenSigner::generate().unwrap();
        let restored = TokenSigner::from_secret(&original.secret()).unwrap();
        assert_eq!(restored.kid(), original.kid());
        let token = original.sign(&claims()).unwrap();
        assert_eq!(restored.verify(&token, AUDIENCE, NOW).unwrap(), claims());
        let token = restored.sign(&claims()).unwrap();
        assert_eq!(original.verify(&token, AUDIENCE, NOW).unwrap(), claims());
    }

    #[test]
    fn secrets_of_the_wrong_length_are_refused() {
        assert!(matches!(
            TokenSigner::from_secret(&[0u8; 31]),
            Err(JwtError::Key(_))
        ));
        assert!(matches!(
            TokenSigner::from_secret(&[]),
            Err(JwtError::Key(_))
        ));
    }

    #[test]
    fn debug_does_not_show_the_secret() {
        let signer = TokenSigner::from_secret(&[7u8; 32]).unwrap();
        let shown = format!("{signer:?}");
        assert!(shown.contains(signer.kid()));
        assert!(!shown.contains("7, 7"));
        assert!(!shown.contains(&hex::encode(signer.secret())));
    }

    #[test]
    fn tampered_claims_are_refused() {
        let signer = TokenSigner::generate().unwrap();
        let token = signer.sign(&claims()).unwrap();
        let parts = segments(&token);
        let forged = Claims {
            sub: "admin".to_owned(),
            ..claims()
        };
        let forged_b64 = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let tampered = format!("{}.{}.{}", parts[0], forged_b64, parts[2]);
        assert!(matches!(
            signer.verify(&tampered, AUDIENCE, NOW),
            Err(JwtError::BadSignature)
        ));
    }

    #[test]
    fn tokens_of_another_key_are_refused() {
        let signer = TokenSigner::generate().unwrap();
        let stranger = TokenSigner::generate().unwrap();
        let token = stranger.sign(&claims()).unwrap();
        assert!(matches!(
            signer.verify(&token, AUDIENCE, NOW),
            Err(JwtError::WrongKey)
        ));

        // Our header and claims, signed by the stranger's key.
        let ours = signer.sign(&claims()).unwrap();
        let parts = segments(&ours);
        let signing_input = format!("{}.{}", parts[0], parts[1]);
        let signature = stranger.key.sign(signing_input.as_bytes());
        let forged = format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        );
        assert!(matches!(
            signer.verify(&forged, AUDIENCE, NOW),
            Err(JwtError::BadSignature)
        ));
    }

    #[test]
    fn time_limits_are_enforced() {
        let signer = TokenSigner::generate().unwrap();
        let token = signer.sign(&claims()).unwrap();
        let exp = claims().exp;
        assert!(signer.verify(&token, AUDIENCE, exp - 1).is_ok());
        assert!(matches!(
            signer.verify(&token, AUDIENCE, exp),
            Err(JwtError::Expired)
        ));
        assert!(matches!(
            signer.verify(&token, AUDIENCE, exp + 3600),
            Err(JwtError::Expired)
        ));

        let nbf = claims().nbf;
        assert!(signer
            .verify(&token, AUDIENCE, nbf - CLOCK_SKEW_SECS)
            .is_ok());
        assert!(matches!(
            signer.verify(&token, AUDIENCE, nbf - CLOCK_SKEW_SECS - 1),
            Err(JwtError::NotYetValid)
        ));
    }

    #[test]
    fn wrong_audience_is_refused() {
        let signer = TokenSigner::generate().unwrap();
        let token = signer.sign(&claims()).unwrap();
        assert!(matches!(
            signer.verify(&token, "other.example.com", NOW),
            Err(JwtError::WrongAudience)
        ));
    }

    #[test]
    fn garbage_is_refused() {
        let signer = TokenSigner::generate().unwrap();
        let token = signer.sign(&claims()).unwrap();
        let parts = segments(&token);
        let b64 = |json: serde_json::Value| URL_SAFE_NO_PAD.encode(json.to_string());

        let alg_none = format!(
            "{}.{}.",
            b64(serde_json::json!({"typ": "JWT", "alg": "none", "kid": signer.kid()})),
            parts[1]
        );
        let alg_hs256 = format!(
            "{}.{}.{}",
            b64(serde_json::json!({"typ": "JWT", "alg": "HS256", "kid": signer.kid()})),
            parts[1],
            parts[2]
        );
        let critical = format!(
            "{}.{}.{}",
            b64(
                serde_json::json!({"typ": "JWT", "alg": "EdDSA", "kid": signer.kid(), "crit": ["exp"]})
            ),
            parts[1],
            parts[2]
        );
        let padded = format!("{}=.{}.{}", parts[0], parts[1], parts[2]);
        let short_signature = format!("{}.{}.{}", parts[0], parts[1], &parts[2][..40]);
        let huge = format!(
            "{}.{}.{}",
            parts[0],
            "A".repeat(2 * MAX_TOKEN_LEN),
            parts[2]
        );
        let cases = [
            String::new(),
            ".".to_owned(),
            "..".to_owned(),
            "...".to_owned(),
            "abc".to_owned(),
            format!("{}.{}", parts[0], parts[1]),
            format!("{token}.{}", parts[2]),
            "!!!.***.~~~".to_owned(),
            format!("{}.{}.{}", parts[0], "not base64!", parts[2]),
            format!(
                "{}.{}.{}",
                b64(serde_json::json!([1, 2])),
                parts[1],
                parts[2]
            ),
            alg_none,
            alg_hs256,
            critical,
            padded,
            short_signature,
            huge,
        ];
        for case in cases {
            assert!(
                signer.verify(&case, AUDIENCE, NOW).is_err(),
                "accepted {case:.80}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_strings_never_panic(input in ".{0,400}") {
            let signer = TokenSigner::from_secret(&[1u8; 32]).unwrap();
            prop_assert!(signer.verify(&input, AUDIENCE, NOW).is_err());
        }

        #[test]
        fn arbitrary_segments_never_panic(input in "[A-Za-z0-9_=-]{0,120}(\\.[A-Za-z0-9_=-]{0,120}){0,3}") {
            let signer = TokenSigner::from_secret(&[1u8; 32]).unwrap();
            prop_assert!(signer.verify(&input, AUDIENCE, NOW).is_err());
        }
    }
}
