//! Working out one image's signature state: find its signatures in every recognised form
//! (cosign's tag and referrer, Sigstore bundles, notation), and check that each names the
//! image and checks against a key the repository trusts: cosign simple-signing payloads,
//! key-based Sigstore bundles (a message signature over the manifest, or a DSSE in-toto
//! statement naming it), and notation JWS envelopes. Keyless bundles and COSE envelopes count
//! as signed, with the reason they were not checked.

use super::keys::PublicKey;
use super::{ImageSignature, SignatureState};
use crate::error::{Error, Result};
use crate::ports::{collect_at_most, MetaStore};
use crate::Registry;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use berth_oci::envelope::{
    dsse_pae, in_toto_names, parse_bundle, parse_notation_jws, BundleContent, BundleKey,
    IN_TOTO_PAYLOAD_TYPE, MAX_ENVELOPE_BYTES, NOTATION_COSE, NOTATION_JWS,
};
use berth_oci::signature::{
    cosign_layers, cosign_signature_tag, signature_form_of_artifact, simple_signing_digest,
    SignatureForm, MAX_PAYLOAD_BYTES,
};
use berth_oci::{Digest, ParsedManifest, Reference, RepoName, Tag};

/// Most reasons kept for a signed image that no trusted key verifies.
const MAX_REASONS: usize = 8;
/// Longest reason kept, in characters.
const MAX_REASON_CHARS: usize = 300;

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
            match verify_envelope(registry, repo, digest, form, &referrer.digest, keys).await? {
                Ok(names) => verified_by.extend(names),
                Err(problem) => problems.push(format!(
                    "{} signature {}: {problem}",
                    form.as_str(),
                    referrer.digest
                )),
            }
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
    verified_by.dedup();
    let state = if !verified_by.is_empty() {
        SignatureState::Verified
    } else if signed {
        SignatureState::Signed
    } else {
        SignatureState::Unsigned
    };
    // What the API shows of a signed image's problems: a few, each short.
    let reasons = if state == SignatureState::Signed {
        problems
            .iter()
            .take(MAX_REASONS)
            .map(|p| p.chars().take(MAX_REASON_CHARS).collect())
            .collect()
    } else {
        Vec::new()
    };
    Ok(ImageCheck {
        signature: ImageSignature {
            state,
            keys: verified_by,
            reasons,
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
    let payload = match read_small_blob(registry, repo, &layer.payload, MAX_PAYLOAD_BYTES).await? {
        Ok(bytes) => bytes,
        Err(problem) => return Ok(Err(format!("payload {problem}"))),
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

/// A small blob of `repo` read whole, or why not (`"<digest> is …"`).
async fn read_small_blob(
    registry: &Registry,
    repo: &RepoName,
    blob: &Digest,
    max: u64,
) -> Result<std::result::Result<Vec<u8>, String>> {
    let content = match registry.read_blob(repo, blob, None, true).await {
        Ok(content) => content,
        Err(Error::BlobUnknown(_)) => return Ok(Err(format!("{blob} is not in the repository"))),
        Err(other) => return Err(other),
    };
    let Some(stream) = content.body else {
        return Ok(Err(format!("{blob} has no body")));
    };
    match collect_at_most(stream, max).await {
        Ok(Some(bytes)) => Ok(Ok(bytes)),
        Ok(None) => Ok(Err(format!("{blob} is larger than {max} bytes"))),
        Err(err) => Err(Error::internal("read a signature blob", err)),
    }
}

/// The names of the keys that verify a Sigstore bundle or notation referrer of `digest`,
/// or why none does (including why it could not be checked at all).
async fn verify_envelope(
    registry: &Registry,
    repo: &RepoName,
    digest: &Digest,
    form: SignatureForm,
    envelope: &Digest,
    keys: &[NamedKey],
) -> Result<std::result::Result<Vec<String>, String>> {
    let record = match registry
        .get_manifest(repo, &Reference::Digest(envelope.clone()))
        .await
    {
        Ok(record) => record,
        Err(Error::ManifestUnknown(_) | Error::NameUnknown(_)) => {
            return Ok(Err("its manifest is gone".to_owned()))
        }
        Err(other) => return Err(other),
    };
    let Ok(manifest) = ParsedManifest::parse(None, &record.body) else {
        return Ok(Err("its manifest does not parse".to_owned()));
    };
    let layer = manifest.layers.iter().find(|l| match form {
        SignatureForm::SigstoreBundle => l
            .media_type
            .starts_with("application/vnd.dev.sigstore.bundle"),
        _ => l.media_type == NOTATION_JWS || l.media_type == NOTATION_COSE,
    });
    let Some(layer) = layer else {
        return Ok(Err("it holds no envelope layer".to_owned()));
    };
    if layer.media_type == NOTATION_COSE {
        return Ok(Err(
            "COSE envelopes are not checked against keys (JWS envelopes are)".to_owned(),
        ));
    }
    if layer.size > MAX_ENVELOPE_BYTES {
        return Ok(Err(format!(
            "its envelope is larger than {MAX_ENVELOPE_BYTES} bytes"
        )));
    }
    let bytes = match read_small_blob(registry, repo, &layer.digest, MAX_ENVELOPE_BYTES).await? {
        Ok(bytes) => bytes,
        Err(problem) => return Ok(Err(format!("envelope {problem}"))),
    };
    let names: Vec<String> = if form == SignatureForm::SigstoreBundle {
        let bundle = match parse_bundle(&bytes) {
            Ok(bundle) => bundle,
            Err(why) => return Ok(Err(format!("the bundle does not read: {why}"))),
        };
        if bundle.key == BundleKey::Certificate {
            return Ok(Err(
                "a keyless bundle (a Fulcio certificate): only key-based signatures are checked against trusted keys"
                    .to_owned(),
            ));
        }
        match bundle.content {
            BundleContent::Message { sha256, signature } => {
                if digest.algorithm().as_str() != "sha256" || hex::encode(&sha256) != digest.hex() {
                    return Ok(Err(format!("its message digest is not that of {digest}")));
                }
                // The signed message is the manifest itself, whose SHA-256 is the digest.
                let subject = match registry
                    .get_manifest(repo, &Reference::Digest(digest.clone()))
                    .await
                {
                    Ok(subject) => subject,
                    Err(Error::ManifestUnknown(_) | Error::NameUnknown(_)) => {
                        return Ok(Err(format!("{digest} is gone")))
                    }
                    Err(other) => return Err(other),
                };
                keys.iter()
                    .filter(|k| k.key.verifies(&subject.body, &signature))
                    .map(|k| k.name.clone())
                    .collect()
            }
            BundleContent::Dsse {
                payload_type,
                payload,
                signatures,
            } => {
                if payload_type != IN_TOTO_PAYLOAD_TYPE {
                    return Ok(Err(format!(
                        "its DSSE payload is of type {:?}, not an in-toto statement",
                        payload_type.chars().take(80).collect::<String>()
                    )));
                }
                match in_toto_names(&payload, digest) {
                    Ok(true) => {}
                    Ok(false) => return Ok(Err(format!("its statement does not name {digest}"))),
                    Err(why) => return Ok(Err(format!("its statement does not read: {why}"))),
                }
                let pae = dsse_pae(&payload_type, &payload);
                keys.iter()
                    .filter(|k| signatures.iter().any(|s| k.key.verifies(&pae, s)))
                    .map(|k| k.name.clone())
                    .collect()
            }
        }
    } else {
        let jws = match parse_notation_jws(&bytes) {
            Ok(jws) => jws,
            Err(why) => return Ok(Err(format!("the JWS envelope does not read: {why}"))),
        };
        if &jws.target != digest {
            return Ok(Err(format!(
                "its payload signs {}, not {digest}",
                jws.target
            )));
        }
        let mut names = Vec::new();
        for key in keys {
            match key
                .key
                .verifies_jws(&jws.algorithm, &jws.signing_input, &jws.signature)
            {
                Ok(true) => names.push(key.name.clone()),
                Ok(false) => {}
                Err(why) => return Ok(Err(why)),
            }
        }
        names
    };
    if names.is_empty() {
        Ok(Err("it checks against no trusted key".to_owned()))
    } else {
        Ok(Ok(names))
    }
}
