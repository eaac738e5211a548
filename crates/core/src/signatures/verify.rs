//! Working out one image's signature state: find its signatures in every recognised form
//! (cosign's tag and referrer, Sigstore bundles, notation), and check each cosign
//! simple-signing payload names the image and checks against a key the repository trusts.

use super::keys::PublicKey;
use super::{ImageSignature, SignatureState};
use crate::error::{Error, Result};
use crate::ports::{collect_at_most, MetaStore};
use crate::Registry;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use berth_oci::signature::{
    cosign_layers, cosign_signature_tag, signature_form_of_artifact, simple_signing_digest,
    SignatureForm, MAX_PAYLOAD_BYTES,
};
use berth_oci::{Digest, ParsedManifest, Reference, RepoName, Tag};

/// A trusted key with the name it was added under.
pub(crate) struct NamedKey {
    pub name: String,
    pub key: PublicKey,
}

/// What checking an image found: its state and, for the log, why signatures did not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageCheck {
    pub signature: ImageSignature,
    pub problems: Vec<String>,
}

/// The state of `digest` in `repo` against the keys `repo` trusts now.
pub async fn check_image(
    registry: &Registry,
    store: &dyn MetaStore,
    repo: &RepoName,
    digest: &Digest,
) -> Result<ImageCheck> {
    let mut keys = Vec::new();
    for record in store.trusted_keys_for(repo).await? {
        match PublicKey::from_pem(&record.pem) {
            Ok(key) => keys.push(NamedKey {
                name: record.name,
                key,
            }),
            // Keys are checked when added; a stored one that no longer reads trusts nothing.
            Err(why) => tracing::warn!(key = %record.name, %why, "stored trusted key unreadable"),
        }
    }
    check_with_keys(registry, repo, digest, &keys).await
}

pub(crate) async fn check_with_keys(
    registry: &Registry,
    repo: &RepoName,
    digest: &Digest,
    keys: &[NamedKey],
) -> Result<ImageCheck> {
    let mut signed = false;
    let mut verified_by: Vec<String> = Vec::new();
    let mut problems = Vec::new();
    // Signature manifests holding cosign payloads: the tag scheme's, then referrers'.
    let mut cosign_manifests: Vec<Vec<u8>> = Vec::new();
    if let Ok(tag) = cosign_signature_tag(digest).parse::<Tag>() {
        match registry.get_manifest(repo, &Reference::Tag(tag)).await {
            Ok(record) => {
                signed = true;
                cosign_manifests.push(record.body);
            }
            Err(Error::ManifestUnknown(_) | Error::NameUnknown(_)) => {}
            Err(other) => return Err(other),
        }
    }
    for referrer in registry.referrers(repo, digest, None).await? {
        let artifact_type = referrer.artifact_type.as_deref().unwrap_or_default();
        let Some(form) = signature_form_of_artifact(artifact_type, referrer.annotations.as_ref())
        else {
            continue;
        };
        signed = true;
        if form == SignatureForm::CosignReferrer {
            match registry
                .get_manifest(repo, &Reference::Digest(referrer.digest.clone()))
                .await
            {
                Ok(record) => cosign_manifests.push(record.body),
                Err(Error::ManifestUnknown(_) | Error::NameUnknown(_)) => {}
                Err(other) => return Err(other),
            }
        } else {
            problems.push(format!(
                "{} signature {} is not checked against keys (only cosign key signatures are)",
                form.as_str(),
                referrer.digest
            ));
        }
    }
    for body in cosign_manifests {
        let Ok(manifest) = ParsedManifest::parse(None, &body) else {
            problems.push("a signature manifest does not parse".to_owned());
            continue;
        };
        for layer in cosign_layers(&manifest) {
            if layer.keyless {
                problems.push(format!(
                    "payload {} is a keyless (certificate) signature",
                    layer.payload
                ));
                continue;
            }
            match verify_layer(registry, repo, digest, &layer, keys).await? {
                Ok(names) => {
                    for name in names {
                        if !verified_by.contains(&name) {
                            verified_by.push(name);
                        }
                    }
                }
                Err(problem) => problems.push(problem),
            }
        }
    }
    verified_by.sort();
    let state = if !verified_by.is_empty() {
        SignatureState::Verified
    } else if signed {
        SignatureState::Signed
    } else {
        SignatureState::Unsigned
    };
    Ok(ImageCheck {
        signature: ImageSignature {
            state,
            keys: verified_by,
        },
        problems,
    })
}

/// The names of the keys that verify one simple-signing layer, or why none does.
async fn verify_layer(
    registry: &Registry,
    repo: &RepoName,
    digest: &Digest,
    layer: &berth_oci::signature::CosignLayer,
    keys: &[NamedKey],
) -> Result<std::result::Result<Vec<String>, String>> {
    if layer.payload_size > MAX_PAYLOAD_BYTES {
        return Ok(Err(format!(
            "payload {} is larger than {MAX_PAYLOAD_BYTES} bytes",
            layer.payload
        )));
    }
    let content = match registry.read_blob(repo, &layer.payload, None, true).await {
        Ok(content) => content,
        Err(Error::BlobUnknown(_)) => {
            return Ok(Err(format!(
                "payload {} is not in the repository",
                layer.payload
            )))
        }
        Err(other) => return Err(other),
    };
    let Some(stream) = content.body else {
        return Ok(Err(format!("payload {} has no body", layer.payload)));
    };
    let payload = match collect_at_most(stream, MAX_PAYLOAD_BYTES).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(Err(format!("payload {} is too large", layer.payload))),
        Err(err) => return Err(Error::internal("read signature payload", err)),
    };
    match simple_signing_digest(&payload) {
        Ok(named) if &named == digest => {}
        Ok(named) => {
            return Ok(Err(format!(
                "payload {} signs {named}, not {digest}",
                layer.payload
            )))
        }
        Err(why) => return Ok(Err(format!("payload {}: {why}", layer.payload))),
    }
    let Ok(signature) = STANDARD.decode(layer.signature.trim()) else {
        return Ok(Err(format!(
            "the signature of payload {} is not valid base64",
            layer.payload
        )));
    };
    let names: Vec<String> = keys
        .iter()
        .filter(|k| k.key.verifies(&payload, &signature))
        .map(|k| k.name.clone())
        .collect();
    if names.is_empty() {
        Ok(Err(format!(
            "the signature of payload {} checks against no trusted key",
            layer.payload
        )))
    } else {
        Ok(Ok(names))
    }
}
