//! Trusted public keys: reading a PEM public key as `cosign generate-key-pair` writes it
//! (ECDSA P-256, Ed25519, RSA) and checking a signature over a payload with it. The
//! cryptography is ring's (already in the tree through rustls); this file only picks the
//! algorithm from the key's SubjectPublicKeyInfo.

use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use sha2::{Digest as _, Sha256};
use spki::der::asn1::{ObjectIdentifier, UintRef};
use spki::der::{Decode, Reader, SliceReader};
use spki::SubjectPublicKeyInfoRef;

const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// Key files larger than this are not keys.
pub const MAX_KEY_PEM_BYTES: usize = 16 * 1024;

/// The algorithms a trusted key may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    EcdsaP256,
    Ed25519,
    Rsa,
}

impl KeyAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyAlgorithm::Ed25519 => "ed25519",
            KeyAlgorithm::Rsa => "rsa",
        }
    }
}

/// A public key ready to check signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub algorithm: KeyAlgorithm,
    /// What ring takes: the uncompressed point, the 32 key bytes, or the PKCS#1 RSAPublicKey.
    raw: Vec<u8>,
    /// The SubjectPublicKeyInfo DER, for the fingerprint and the stored PEM.
    spki_der: Vec<u8>,
}

impl PublicKey {
    /// Reads one PEM public key. Every refusal says what the file is instead, briefly.
    pub fn from_pem(text: &str) -> Result<PublicKey, String> {
        if text.len() > MAX_KEY_PEM_BYTES {
            return Err(format!(
                "the key file is {} bytes; a public key in PEM is at most {MAX_KEY_PEM_BYTES}",
                text.len()
            ));
        }
        let block = pem::parse(text.trim()).map_err(|_| {
            "not a PEM public key: expected a -----BEGIN PUBLIC KEY----- block, as cosign.pub holds"
                .to_owned()
        })?;
        match block.tag() {
            "PUBLIC KEY" => PublicKey::from_spki_der(block.contents()),
            "RSA PUBLIC KEY" => {
                let (_, bits) = rsa_modulus(block.contents())?;
                check_rsa_bits(bits)?;
                // Wrapped in a SubjectPublicKeyInfo so that every key is stored the same way.
                Ok(PublicKey {
                    algorithm: KeyAlgorithm::Rsa,
                    raw: block.contents().to_vec(),
                    spki_der: rsa_spki(block.contents()),
                })
            }
            tag if tag.contains("PRIVATE KEY") => Err(format!(
                "this is a private key ({tag}); give the public key (cosign.pub), never the private one"
            )),
            "CERTIFICATE" => Err(
                "this is a certificate; give the public key (-----BEGIN PUBLIC KEY-----)".to_owned(),
            ),
            other => Err(format!(
                "a PEM block of type {:?} is not a public key; expected PUBLIC KEY",
                other.chars().take(40).collect::<String>()
            )),
        }
    }

    fn from_spki_der(der: &[u8]) -> Result<PublicKey, String> {
        let info = SubjectPublicKeyInfoRef::try_from(der).map_err(|e| {
            format!("the PUBLIC KEY block is not a valid SubjectPublicKeyInfo: {e}")
        })?;
        let key_bytes = info
            .subject_public_key
            .as_bytes()
            .ok_or("the public key's bit string is not whole bytes")?;
        let oid = info.algorithm.oid;
        let algorithm = if oid == EC_PUBLIC_KEY {
            let curve = info
                .algorithm
                .parameters
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
            if curve != Some(P256) {
                return Err(
                    "only the P-256 curve is supported for ECDSA keys (cosign's default)"
                        .to_owned(),
                );
            }
            if key_bytes.len() != 65 || key_bytes[0] != 4 {
                return Err("the ECDSA P-256 key is not an uncompressed curve point".to_owned());
            }
            KeyAlgorithm::EcdsaP256
        } else if oid == ED25519 {
            if key_bytes.len() != 32 {
                return Err("an Ed25519 public key is 32 bytes".to_owned());
            }
            KeyAlgorithm::Ed25519
        } else if oid == RSA_ENCRYPTION {
            let (_, bits) = rsa_modulus(key_bytes)?;
            check_rsa_bits(bits)?;
            KeyAlgorithm::Rsa
        } else {
            return Err(format!(
                "keys of algorithm {oid} are not supported; use ECDSA P-256, Ed25519 or RSA"
            ));
        };
        Ok(PublicKey {
            algorithm,
            raw: key_bytes.to_vec(),
            spki_der: der.to_vec(),
        })
    }

    /// The key as a `PUBLIC KEY` PEM block.
    pub fn to_pem(&self) -> String {
        let block = pem::Pem::new("PUBLIC KEY", self.spki_der.clone());
        pem::encode_config(
            &block,
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        )
    }

    /// `sha256:` and the SHA-256 of the key's SubjectPublicKeyInfo, in hex.
    pub fn fingerprint(&self) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(&self.spki_der)))
    }

    /// Whether `signature` is this key's signature over `payload`, as cosign makes them:
    /// ECDSA P-256 with SHA-256 (ASN.1 DER), Ed25519 over the payload itself, RSA PKCS#1 v1.5
    /// with SHA-256 (or PSS with SHA-256).
    pub fn verifies(&self, payload: &[u8], signature: &[u8]) -> bool {
        let algorithms: &[&'static dyn VerificationAlgorithm] = match self.algorithm {
            KeyAlgorithm::EcdsaP256 => &[&signature::ECDSA_P256_SHA256_ASN1],
            KeyAlgorithm::Ed25519 => &[&signature::ED25519],
            KeyAlgorithm::Rsa => &[
                &signature::RSA_PKCS1_2048_8192_SHA256,
                &signature::RSA_PSS_2048_8192_SHA256,
            ],
        };
        algorithms.iter().any(|algorithm| {
            UnparsedPublicKey::new(*algorithm, &self.raw)
                .verify(payload, signature)
                .is_ok()
        })
    }

    /// Whether `signature` is this key's JWS signature (algorithm `alg`, as a JWS protected
    /// header names it) over `input`; `Err` names an algorithm no trusted key can use.
    /// Notation signs with `ES256` (P-256, `r || s`) or `PS256`/`PS384`/`PS512` (RSA-PSS).
    pub fn verifies_jws(&self, alg: &str, input: &[u8], signature: &[u8]) -> Result<bool, String> {
        let algorithm: &'static dyn VerificationAlgorithm = match (alg, self.algorithm) {
            ("ES256", KeyAlgorithm::EcdsaP256) => &signature::ECDSA_P256_SHA256_FIXED,
            ("PS256", KeyAlgorithm::Rsa) => &signature::RSA_PSS_2048_8192_SHA256,
            ("PS384", KeyAlgorithm::Rsa) => &signature::RSA_PSS_2048_8192_SHA384,
            ("PS512", KeyAlgorithm::Rsa) => &signature::RSA_PSS_2048_8192_SHA512,
            ("ES256" | "PS256" | "PS384" | "PS512", _) => return Ok(false),
            (other, _) => {
                return Err(format!(
                    "JWS algorithm {:?} is not checked (ES256, PS256, PS384 and PS512 are)",
                    other.chars().take(20).collect::<String>()
                ))
            }
        };
        Ok(UnparsedPublicKey::new(algorithm, &self.raw)
            .verify(input, signature)
            .is_ok())
    }
}

/// The modulus of a PKCS#1 RSAPublicKey and its length in bits.
fn rsa_modulus(der: &[u8]) -> Result<(Vec<u8>, usize), String> {
    let parse = || -> spki::der::Result<Vec<u8>> {
        let mut reader = SliceReader::new(der)?;
        let modulus = reader.sequence(|r| {
            let n = UintRef::decode(r)?;
            let _e = UintRef::decode(r)?;
            Ok(n.as_bytes().to_vec())
        })?;
        reader.finish(modulus)
    };
    let modulus = parse().map_err(|e| format!("the RSA public key is malformed: {e}"))?;
    let bits = match modulus.first() {
        Some(first) => modulus.len() * 8 - first.leading_zeros() as usize,
        None => 0,
    };
    Ok((modulus, bits))
}

fn check_rsa_bits(bits: usize) -> Result<(), String> {
    if (2048..=8192).contains(&bits) {
        Ok(())
    } else {
        Err(format!(
            "the RSA key has {bits} bits; 2048 to 8192 are supported"
        ))
    }
}

/// A SubjectPublicKeyInfo around a PKCS#1 RSAPublicKey (rsaEncryption, NULL parameters).
fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    use spki::der::asn1::{AnyRef, BitStringRef};
    use spki::der::Encode;
    let info = spki::SubjectPublicKeyInfo {
        algorithm: spki::AlgorithmIdentifier {
            oid: RSA_ENCRYPTION,
            parameters: Some(AnyRef::NULL),
        },
        subject_public_key: match BitStringRef::from_bytes(pkcs1) {
            Ok(bits) => bits,
            Err(_) => return Vec::new(),
        },
    };
    info.to_der().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_not_a_public_key_is_named() {
        let cases = [
            ("hello", "not a PEM public key"),
            (
                "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
                "private key",
            ),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "certificate",
            ),
            (
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                "not a valid SubjectPublicKeyInfo",
            ),
            (
                "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n",
                "not a PEM public key",
            ),
        ];
        for (text, expected) in cases {
            let err = PublicKey::from_pem(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
        let huge = "A".repeat(MAX_KEY_PEM_BYTES + 1);
        assert!(PublicKey::from_pem(&huge).unwrap_err().contains("bytes"));
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_a_key_or_a_reason(text in ".{0,400}") {
            let _ = PublicKey::from_pem(&text);
            let wrapped = format!("-----BEGIN PUBLIC KEY-----\n{text}\n-----END PUBLIC KEY-----\n");
            let _ = PublicKey::from_pem(&wrapped);
        }
    }
}
