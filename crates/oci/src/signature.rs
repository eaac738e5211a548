//! Supply-chain artifacts as data: which manifests are signatures, attestations or SBOMs (cosign's
//! tag scheme and referrers, Sigstore bundles, notation), and cosign's simple-signing payload.

use crate::manifest::{ManifestKind, ParsedManifest};
use crate::Digest;
use serde::Deserialize;

/// `artifactType` of a cosign signature stored as an OCI 1.1 referrer.
pub const COSIGN_SIGNATURE_ARTIFACT: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// Prefix of cosign's generic artifact types (`…artifact.sbom.v1+json` and the like).
pub const COSIGN_ARTIFACT_PREFIX: &str = "application/vnd.dev.cosign.artifact.";
/// Media type of the layer holding a simple-signing payload.
pub const SIMPLE_SIGNING_LAYER: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature over the payload.
pub const COSIGN_SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// A keyless signature's certificate annotation (then the signature is not key-based).
pub const COSIGN_CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// Sigstore bundle artifacts (cosign v3's default), current and older forms.
pub const SIGSTORE_BUNDLE_ARTIFACT: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const SIGSTORE_BUNDLE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
/// Notation signatures (as `artifactType`, or as the config type of the legacy form).
pub const NOTATION_SIGNATURE_ARTIFACT: &str = "application/vnd.cncf.notary.signature";
/// Attestation layers (DSSE envelopes).
pub const DSSE_ENVELOPE_LAYER: &str = "application/vnd.dsse.envelope.v1+json";
/// The annotation telling a Sigstore bundle's signatures from its attestations.
pub const BUNDLE_PREDICATE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";
/// The predicate type `cosign sign` writes into a bundle (a signature, not an attestation).
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";

/// SBOM media types cosign and other tools attach.
const SBOM_TYPES: [&str; 6] = [
    "application/vnd.cyclonedx+json",
    "application/vnd.cyclonedx+xml",
    "text/spdx",
    "text/spdx+json",
    "application/spdx+json",
    "application/vnd.syft+json",
];

/// The four recognised forms of a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureForm {
    /// cosign's tag scheme: `sha256-<hex>.sig`.
    CosignTag,
    /// cosign's OCI 1.1 referrer (`artifactType` [`COSIGN_SIGNATURE_ARTIFACT`]).
    CosignReferrer,
    /// A Sigstore bundle referrer.
    SigstoreBundle,
    /// A notation signature referrer.
    Notation,
}

impl SignatureForm {
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureForm::CosignTag => "cosign",
            SignatureForm::CosignReferrer => "cosign-referrer",
            SignatureForm::SigstoreBundle => "sigstore-bundle",
            SignatureForm::Notation => "notation",
        }
    }

    /// Whether its layers are cosign simple-signing payloads that a key can verify.
    pub fn is_cosign(self) -> bool {
        matches!(
            self,
            SignatureForm::CosignTag | SignatureForm::CosignReferrer
        )
    }
}

/// What a suffix of cosign's tag scheme holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CosignTagKind {
    Signature,
    Attestation,
    Sbom,
}

/// The subject and kind named by a cosign tag `sha256-<hex>.sig|.att|.sbom`; `None` for any
/// other tag (including the suffix-less referrers fallback tag, which is an index, not a
/// signature).
pub fn cosign_tag_subject(tag: &str) -> Option<(Digest, CosignTagKind)> {
    let (stem, suffix) = tag.rsplit_once('.')?;
    let kind = match suffix {
        "sig" => CosignTagKind::Signature,
        "att" => CosignTagKind::Attestation,
        "sbom" => CosignTagKind::Sbom,
        _ => return None,
    };
    let hex = stem.strip_prefix("sha256-")?;
    let digest = format!("sha256:{hex}").parse().ok()?;
    Some((digest, kind))
}

/// The cosign tag that holds signatures of `digest`.
pub fn cosign_signature_tag(digest: &Digest) -> String {
    format!("{}-{}.sig", digest.algorithm().as_str(), digest.hex())
}

/// Whether `artifact_type` (a manifest's `artifactType`, else its config's media type) names
/// a signature referrer, and which form.
pub fn signature_form_of_artifact(
    artifact_type: &str,
    annotations: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Option<SignatureForm> {
    if artifact_type == COSIGN_SIGNATURE_ARTIFACT {
        return Some(SignatureForm::CosignReferrer);
    }
    if artifact_type == NOTATION_SIGNATURE_ARTIFACT {
        return Some(SignatureForm::Notation);
    }
    if artifact_type.starts_with(SIGSTORE_BUNDLE_PREFIX) {
        // A bundle is a signature unless it says it carries another predicate (an attestation).
        let predicate = annotations
            .and_then(|a| a.get(BUNDLE_PREDICATE_ANNOTATION))
            .and_then(|p| p.as_str());
        return match predicate {
            None => Some(SignatureForm::SigstoreBundle),
            Some(p) if p == COSIGN_SIGN_PREDICATE => Some(SignatureForm::SigstoreBundle),
            Some(_) => None,
        };
    }
    None
}

/// Whether a manifest is itself a supply-chain artifact (a signature, attestation or SBOM of
/// another manifest), which pull policies leave alone so that signing and copying keep
/// working. `tag` is the reference it is pulled by, when it is a tag.
pub fn is_supply_chain_artifact(manifest: &ParsedManifest, tag: Option<&str>) -> bool {
    if tag.is_some_and(|t| cosign_tag_subject(t).is_some()) {
        return true;
    }
    if manifest.kind != ManifestKind::Image {
        return false;
    }
    let artifact_type = manifest.effective_artifact_type().unwrap_or_default();
    if artifact_type.starts_with(COSIGN_ARTIFACT_PREFIX)
        || artifact_type.starts_with(SIGSTORE_BUNDLE_PREFIX)
        || artifact_type == NOTATION_SIGNATURE_ARTIFACT
        || SBOM_TYPES.contains(&artifact_type)
    {
        return true;
    }
    // cosign's tag-scheme manifests carry an image config; their layers give them away.
    !manifest.layers.is_empty()
        && manifest.layers.iter().all(|layer| {
            let t = layer.media_type.as_str();
            t == SIMPLE_SIGNING_LAYER
                || t == DSSE_ENVELOPE_LAYER
                || t.starts_with(SIGSTORE_BUNDLE_PREFIX)
                || SBOM_TYPES.contains(&t)
        })
}

/// A cosign signature found in a signature manifest's layer: the payload's blob and the
/// signature over it, still encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignLayer {
    pub payload: Digest,
    pub payload_size: u64,
    /// Base64, as the annotation holds it.
    pub signature: String,
    /// Keyless (a Fulcio certificate): not verifiable with a trusted key.
    pub keyless: bool,
}

/// The simple-signing layers of a cosign signature manifest.
pub fn cosign_layers(manifest: &ParsedManifest) -> Vec<CosignLayer> {
    manifest
        .layers
        .iter()
        .filter(|l| l.media_type == SIMPLE_SIGNING_LAYER)
        .filter_map(|l| {
            let annotations = l.annotations.as_ref()?;
            let signature = annotations.get(COSIGN_SIGNATURE_ANNOTATION)?.as_str()?;
            Some(CosignLayer {
                payload: l.digest.clone(),
                payload_size: l.size,
                signature: signature.to_owned(),
                keyless: annotations.contains_key(COSIGN_CERTIFICATE_ANNOTATION),
            })
        })
        .collect()
}

/// Payloads larger than this are not read (cosign's are a few hundred bytes).
pub const MAX_PAYLOAD_BYTES: u64 = 64 * 1024;

/// Why a simple-signing payload was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("the payload is not simple-signing JSON: {0}")]
    Malformed(String),
    #[error("the payload is of type {0:?}, not a cosign container image signature")]
    WrongType(String),
    #[error("the payload's digest {0:?} is not a valid digest")]
    BadDigest(String),
}

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    digest: String,
}

/// The manifest digest a simple-signing payload signs (`critical.image.docker-manifest-digest`).
pub fn simple_signing_digest(payload: &[u8]) -> Result<Digest, PayloadError> {
    let parsed: Payload =
        serde_json::from_slice(payload).map_err(|e| PayloadError::Malformed(e.to_string()))?;
    if !parsed
        .critical
        .kind
        .eq_ignore_ascii_case("cosign container image signature")
    {
        return Err(PayloadError::WrongType(
            parsed.critical.kind.chars().take(80).collect(),
        ));
    }
    parsed.critical.image.digest.parse().map_err(|_| {
        PayloadError::BadDigest(parsed.critical.image.digest.chars().take(80).collect())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> Digest {
        Digest::sha256_of(b"image")
    }

    #[test]
    fn cosign_tags_name_their_subject() {
        let d = digest();
        let tag = cosign_signature_tag(&d);
        assert_eq!(tag, format!("sha256-{}.sig", d.hex()));
        assert_eq!(
            cosign_tag_subject(&tag),
            Some((d.clone(), CosignTagKind::Signature))
        );
        let att = format!("sha256-{}.att", d.hex());
        assert_eq!(
            cosign_tag_subject(&att),
            Some((d.clone(), CosignTagKind::Attestation))
        );
        let sbom = format!("sha256-{}.sbom", d.hex());
        assert_eq!(
            cosign_tag_subject(&sbom),
            Some((d.clone(), CosignTagKind::Sbom))
        );
        for other in [
            format!("sha256-{}", d.hex()),
            format!("sha256-{}.txt", d.hex()),
            "sha256-abc.sig".to_owned(),
            "latest".to_owned(),
            "v1.sig".to_owned(),
        ] {
            assert_eq!(cosign_tag_subject(&other), None, "{other}");
        }
    }

    #[test]
    fn referrer_forms_are_told_apart() {
        assert_eq!(
            signature_form_of_artifact(COSIGN_SIGNATURE_ARTIFACT, None),
            Some(SignatureForm::CosignReferrer)
        );
        assert_eq!(
            signature_form_of_artifact(NOTATION_SIGNATURE_ARTIFACT, None),
            Some(SignatureForm::Notation)
        );
        assert_eq!(
            signature_form_of_artifact(SIGSTORE_BUNDLE_ARTIFACT, None),
            Some(SignatureForm::SigstoreBundle)
        );
        let mut sign = serde_json::Map::new();
        sign.insert(
            BUNDLE_PREDICATE_ANNOTATION.into(),
            COSIGN_SIGN_PREDICATE.into(),
        );
        assert_eq!(
            signature_form_of_artifact(
                "application/vnd.dev.sigstore.bundle+json;version=0.2",
                Some(&sign)
            ),
            Some(SignatureForm::SigstoreBundle)
        );
        let mut attestation = serde_json::Map::new();
        attestation.insert(
            BUNDLE_PREDICATE_ANNOTATION.into(),
            "https://slsa.dev/provenance/v1".into(),
        );
        assert_eq!(
            signature_form_of_artifact(SIGSTORE_BUNDLE_ARTIFACT, Some(&attestation)),
            None
        );
        assert_eq!(
            signature_form_of_artifact("application/vnd.cyclonedx+json", None),
            None
        );
    }

    #[test]
    fn simple_signing_payloads_name_a_digest() {
        let d = digest();
        let payload = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"127.0.0.1/a/b"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"cosign container image signature"}},"optional":null}}"#
        );
        assert_eq!(simple_signing_digest(payload.as_bytes()), Ok(d));
        assert!(matches!(
            simple_signing_digest(b"not json"),
            Err(PayloadError::Malformed(_))
        ));
        let wrong = payload.replace("cosign container image signature", "something else");
        assert!(matches!(
            simple_signing_digest(wrong.as_bytes()),
            Err(PayloadError::WrongType(_))
        ));
        let bad = payload.replace("sha256:", "sha256:zz");
        assert!(matches!(
            simple_signing_digest(bad.as_bytes()),
            Err(PayloadError::BadDigest(_))
        ));
    }

    #[test]
    fn artifacts_are_recognised_and_images_are_not() {
        let d = digest();
        let sig_manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{d}","size":1}},"layers":[{{"mediaType":"{SIMPLE_SIGNING_LAYER}","digest":"{d}","size":2,"annotations":{{"{COSIGN_SIGNATURE_ANNOTATION}":"AAAA"}}}}]}}"#
        );
        let parsed = ParsedManifest::parse(None, sig_manifest.as_bytes()).unwrap();
        assert!(is_supply_chain_artifact(&parsed, None));
        let layers = cosign_layers(&parsed);
        assert_eq!(layers.len(), 1);
        assert_eq!(layers[0].signature, "AAAA");
        assert!(!layers[0].keyless);

        let image = sig_manifest.replace(
            SIMPLE_SIGNING_LAYER,
            "application/vnd.oci.image.layer.v1.tar+gzip",
        );
        let parsed = ParsedManifest::parse(None, image.as_bytes()).unwrap();
        assert!(!is_supply_chain_artifact(&parsed, None));
        assert!(is_supply_chain_artifact(
            &parsed,
            Some(&cosign_signature_tag(&d))
        ));
        assert!(cosign_layers(&parsed).is_empty());
    }
}
