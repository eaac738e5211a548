//! Sigstore bundles and notation JWS envelopes as data: what each says it signs and the exact
//! bytes a key must have signed (the cryptography itself is the caller's).

use crate::Digest;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde::Deserialize;

/// Envelopes larger than this are not read (bundles with a certificate chain and a
/// transparency-log entry are a few KiB).
pub const MAX_ENVELOPE_BYTES: u64 = 1024 * 1024;
/// The notation layer media type of a JWS envelope.
pub const NOTATION_JWS: &str = "application/jose+json";
/// The notation layer media type of a COSE envelope.
pub const NOTATION_COSE: &str = "application/cose";
/// The payload type of an in-toto statement in a DSSE envelope.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Why an envelope was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("not valid JSON of its kind: {0}")]
    Malformed(String),
    #[error("its {0} is not valid base64")]
    Encoding(&'static str),
    #[error("{0}")]
    Unsupported(String),
}

fn decode(text: &str, what: &'static str) -> Result<Vec<u8>, EnvelopeError> {
    let text = text.trim();
    STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
        .map_err(|_| EnvelopeError::Encoding(what))
}

fn malformed(error: serde_json::Error) -> EnvelopeError {
    EnvelopeError::Malformed(error.to_string().chars().take(200).collect())
}

/// How the signer's key is named in a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleKey {
    /// A public key the verifier must already hold (`cosign sign --key`); the hint names it.
    PublicKey { hint: Option<String> },
    /// A certificate (keyless signing through Fulcio): not checkable against trusted keys.
    Certificate,
}

/// What a bundle's signature covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleContent {
    /// A signature over an artifact, named by its SHA-256.
    Message { sha256: Vec<u8>, signature: Vec<u8> },
    /// A DSSE envelope: signatures over the pre-authentication encoding of the payload.
    Dsse {
        payload_type: String,
        payload: Vec<u8>,
        signatures: Vec<Vec<u8>>,
    },
}

/// A Sigstore bundle (`application/vnd.dev.sigstore.bundle.v0.3+json` and its older forms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    pub key: BundleKey,
    pub content: BundleContent,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBundle {
    #[serde(default)]
    verification_material: Option<RawMaterial>,
    #[serde(default)]
    message_signature: Option<RawMessageSignature>,
    #[serde(default)]
    dsse_envelope: Option<RawDsse>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMaterial {
    #[serde(default)]
    public_key: Option<RawPublicKey>,
    #[serde(default)]
    certificate: Option<serde_json::Value>,
    #[serde(default)]
    x509_certificate_chain: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawPublicKey {
    #[serde(default)]
    hint: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMessageSignature {
    #[serde(default)]
    message_digest: Option<RawMessageDigest>,
    signature: String,
}

#[derive(Deserialize)]
struct RawMessageDigest {
    algorithm: String,
    digest: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDsse {
    payload: String,
    payload_type: String,
    signatures: Vec<RawDsseSignature>,
}

#[derive(Deserialize)]
struct RawDsseSignature {
    sig: String,
}

/// Reads a Sigstore bundle.
pub fn parse_bundle(bytes: &[u8]) -> Result<Bundle, EnvelopeError> {
    let raw: RawBundle = serde_json::from_slice(bytes).map_err(malformed)?;
    let material = raw
        .verification_material
        .ok_or_else(|| EnvelopeError::Malformed("no verificationMaterial".to_owned()))?;
    let key = match material {
        RawMaterial {
            public_key: Some(key),
            ..
        } => BundleKey::PublicKey { hint: key.hint },
        RawMaterial {
            certificate: Some(_),
            ..
        }
        | RawMaterial {
            x509_certificate_chain: Some(_),
            ..
        } => BundleKey::Certificate,
        _ => {
            return Err(EnvelopeError::Malformed(
                "verificationMaterial names no public key and no certificate".to_owned(),
            ))
        }
    };
    let content = match (raw.message_signature, raw.dsse_envelope) {
        (Some(message), None) => {
            let digest = message.message_digest.ok_or_else(|| {
                EnvelopeError::Malformed("messageSignature has no messageDigest".to_owned())
            })?;
            if digest.algorithm != "SHA2_256" {
                return Err(EnvelopeError::Unsupported(format!(
                    "message digests of algorithm {:?} are not checked (only SHA2_256)",
                    digest.algorithm.chars().take(40).collect::<String>()
                )));
            }
            BundleContent::Message {
                sha256: decode(&digest.digest, "message digest")?,
                signature: decode(&message.signature, "message signature")?,
            }
        }
        (None, Some(dsse)) => BundleContent::Dsse {
            payload: decode(&dsse.payload, "DSSE payload")?,
            payload_type: dsse.payload_type,
            signatures: dsse
                .signatures
                .iter()
                .map(|s| decode(&s.sig, "DSSE signature"))
                .collect::<Result<_, _>>()?,
        },
        _ => {
            return Err(EnvelopeError::Malformed(
                "a bundle holds exactly one of messageSignature and dsseEnvelope".to_owned(),
            ))
        }
    };
    Ok(Bundle { key, content })
}

/// DSSE's pre-authentication encoding: what each signature of an envelope signs.
pub fn dsse_pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut pae = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    pae.extend_from_slice(payload);
    pae
}

/// Whether an in-toto statement names `digest` among its subjects.
pub fn in_toto_names(payload: &[u8], digest: &Digest) -> Result<bool, EnvelopeError> {
    #[derive(Deserialize)]
    struct Statement {
        subject: Vec<Subject>,
    }
    #[derive(Deserialize)]
    struct Subject {
        #[serde(default)]
        digest: std::collections::BTreeMap<String, String>,
    }
    let statement: Statement = serde_json::from_slice(payload).map_err(malformed)?;
    let algorithm = digest.algorithm().as_str();
    Ok(statement.subject.iter().any(|s| {
        s.digest
            .get(algorithm)
            .is_some_and(|hex| hex.eq_ignore_ascii_case(digest.hex()))
    }))
}

/// A notation signature in a JWS envelope (flattened JSON serialization).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotationJws {
    /// The protected header's `alg` (`ES256`, `PS256`, …).
    pub algorithm: String,
    /// The descriptor digest of `targetArtifact` in the payload.
    pub target: Digest,
    /// What the signature covers: `BASE64URL(protected) "." BASE64URL(payload)`.
    pub signing_input: Vec<u8>,
    pub signature: Vec<u8>,
}

/// Reads a notation JWS envelope and the target its payload names.
pub fn parse_notation_jws(bytes: &[u8]) -> Result<NotationJws, EnvelopeError> {
    #[derive(Deserialize)]
    struct Envelope {
        payload: String,
        protected: String,
        signature: String,
    }
    #[derive(Deserialize)]
    struct Protected {
        alg: String,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Payload {
        target_artifact: Target,
    }
    #[derive(Deserialize)]
    struct Target {
        digest: String,
    }
    let envelope: Envelope = serde_json::from_slice(bytes).map_err(malformed)?;
    let protected: Protected =
        serde_json::from_slice(&decode(&envelope.protected, "protected header")?)
            .map_err(malformed)?;
    let payload: Payload =
        serde_json::from_slice(&decode(&envelope.payload, "payload")?).map_err(malformed)?;
    let target = payload.target_artifact.digest.parse().map_err(|_| {
        EnvelopeError::Malformed("the payload's targetArtifact digest is not a digest".to_owned())
    })?;
    Ok(NotationJws {
        algorithm: protected.alg,
        target,
        signing_input: format!("{}.{}", envelope.protected, envelope.payload).into_bytes(),
        signature: decode(&envelope.signature, "signature")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        STANDARD.encode(bytes)
    }

    #[test]
    fn key_bundles_and_keyless_bundles_are_told_apart() {
        let dsse = format!(
            r#"{{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{{"publicKey":{{"hint":"abc"}},"tlogEntries":[]}},"dsseEnvelope":{{"payload":"{}","payloadType":"{IN_TOTO_PAYLOAD_TYPE}","signatures":[{{"sig":"{}","keyid":""}}]}}}}"#,
            b64(b"{}"),
            b64(b"sig")
        );
        let bundle = parse_bundle(dsse.as_bytes()).unwrap();
        assert_eq!(
            bundle.key,
            BundleKey::PublicKey {
                hint: Some("abc".to_owned())
            }
        );
        assert!(
            matches!(bundle.content, BundleContent::Dsse { ref signatures, .. } if signatures == &[b"sig".to_vec()])
        );
        let keyless = dsse.replace(
            r#""publicKey":{"hint":"abc"}"#,
            r#""certificate":{"rawBytes":"AAAA"}"#,
        );
        assert_eq!(
            parse_bundle(keyless.as_bytes()).unwrap().key,
            BundleKey::Certificate
        );
        let message = format!(
            r#"{{"verificationMaterial":{{"publicKey":{{}}}},"messageSignature":{{"messageDigest":{{"algorithm":"SHA2_256","digest":"{}"}},"signature":"{}"}}}}"#,
            b64(&[7; 32]),
            b64(b"s")
        );
        assert!(matches!(
            parse_bundle(message.as_bytes()).unwrap().content,
            BundleContent::Message { ref sha256, .. } if sha256 == &[7u8; 32]
        ));
        for broken in [
            "{",
            "{}",
            r#"{"verificationMaterial":{}}"#,
            r#"{"verificationMaterial":{"publicKey":{}}}"#,
        ] {
            assert!(parse_bundle(broken.as_bytes()).is_err(), "{broken}");
        }
        let bad_base64 = dsse.replace(&b64(b"sig"), "!!!");
        assert_eq!(
            parse_bundle(bad_base64.as_bytes()),
            Err(EnvelopeError::Encoding("DSSE signature"))
        );
    }

    #[test]
    fn pae_is_dsse_v1() {
        assert_eq!(
            dsse_pae("application/vnd.in-toto+json", b"hello"),
            b"DSSEv1 28 application/vnd.in-toto+json 5 hello".to_vec()
        );
    }

    #[test]
    fn statements_name_their_subjects() {
        let digest = Digest::sha256_of(b"image");
        let statement = format!(
            r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"x","digest":{{"sha256":"{}"}}}}],"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{{}}}}"#,
            digest.hex()
        );
        assert_eq!(in_toto_names(statement.as_bytes(), &digest), Ok(true));
        let other = Digest::sha256_of(b"other");
        assert_eq!(in_toto_names(statement.as_bytes(), &other), Ok(false));
        assert!(in_toto_names(b"[]", &digest).is_err());
    }

    #[test]
    fn notation_envelopes_name_their_target_and_signing_input() {
        let digest = Digest::sha256_of(b"image");
        let protected = URL_SAFE_NO_PAD
            .encode(br#"{"alg":"ES256","cty":"application/vnd.cncf.notary.payload.v1+json"}"#);
        let payload = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"targetArtifact":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{digest}","size":12}}}}"#
        ));
        let envelope = format!(
            r#"{{"payload":"{payload}","protected":"{protected}","header":{{"x5c":[]}},"signature":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(b"sig")
        );
        let jws = parse_notation_jws(envelope.as_bytes()).unwrap();
        assert_eq!(jws.algorithm, "ES256");
        assert_eq!(jws.target, digest);
        assert_eq!(
            jws.signing_input,
            format!("{protected}.{payload}").into_bytes()
        );
        assert_eq!(jws.signature, b"sig".to_vec());
        assert!(parse_notation_jws(b"{}").is_err());
        assert!(parse_notation_jws(envelope.replace(&payload, "e30").as_bytes()).is_err());
    }
}
