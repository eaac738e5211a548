//! Manifest formats (OCI image manifest and index, Docker schema 2 and manifest list):
//! media types, structural validation and the references a manifest makes.

use crate::digest::Digest;
use serde::Deserialize;
use serde_json::{Map, Value};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const OCI_EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";

/// The largest manifest accepted (bytes).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// Whether the registry stores and serves manifests of this media type.
pub fn is_manifest_media_type(media_type: &str) -> bool {
    matches!(
        media_type,
        OCI_MANIFEST | OCI_INDEX | DOCKER_MANIFEST | DOCKER_MANIFEST_LIST
    )
}

/// Layers the registry never holds: their bytes live at the `urls` of the descriptor.
fn is_non_distributable(media_type: &str) -> bool {
    media_type.starts_with("application/vnd.oci.image.layer.nondistributable.")
        || media_type == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
}

/// A content descriptor as found in manifests and indexes.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Value>,
    #[serde(default, skip_serializing)]
    pub urls: Option<Vec<String>>,
}

/// Whether a manifest describes one image/artifact or points at other manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    Image,
    Index,
}

/// A structurally valid manifest and everything it references.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedManifest {
    pub media_type: String,
    pub kind: ManifestKind,
    pub config: Option<Descriptor>,
    pub layers: Vec<Descriptor>,
    pub manifests: Vec<Descriptor>,
    pub subject: Option<Descriptor>,
    pub artifact_type: Option<String>,
    pub annotations: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("Docker schema 1 manifests are not supported; push the image as Docker schema 2 or OCI (e.g. `skopeo copy --format v2s2`)")]
    Schema1,
    #[error("manifest is not valid JSON: {0}")]
    Json(String),
    #[error("manifest media type {0:?} is not supported (expected an OCI image manifest or index, or a Docker schema 2 manifest or manifest list)")]
    UnsupportedMediaType(String),
    #[error("Content-Type {header:?} does not match the manifest's mediaType {body:?}")]
    MediaTypeMismatch { header: String, body: String },
    #[error("manifest schemaVersion must be 2")]
    SchemaVersion,
    #[error("manifest is invalid: {0}")]
    Structure(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<Value>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Value>,
    layers: Option<Value>,
    manifests: Option<Value>,
    subject: Option<Value>,
    annotations: Option<Map<String, Value>>,
}

fn descriptor(value: Value, what: &str) -> Result<Descriptor, ManifestError> {
    serde_json::from_value(value).map_err(|e| ManifestError::Structure(format!("{what}: {e}")))
}

fn descriptors(value: Option<Value>, what: &str) -> Result<Vec<Descriptor>, ManifestError> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| descriptor(v, &format!("{what}[{i}]")))
            .collect(),
        Some(_) => Err(ManifestError::Structure(format!("{what} must be an array"))),
    }
}

/// The essence of a `Content-Type` value: no parameters, lowercase.
fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

impl ParsedManifest {
    /// Parses and validates `body`, pushed with the given `Content-Type` (if any).
    pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<ParsedManifest, ManifestError> {
        let header = content_type.map(essence).filter(|ct| {
            // Generic types say nothing about the manifest format; fall back to the body.
            !ct.is_empty() && ct != "application/json" && ct != "application/octet-stream"
        });
        if matches!(
            header.as_deref(),
            Some(DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED)
        ) {
            return Err(ManifestError::Schema1);
        }
        let raw: RawManifest =
            serde_json::from_slice(body).map_err(|e| ManifestError::Json(e.to_string()))?;
        match raw.schema_version.as_ref().and_then(Value::as_u64) {
            Some(2) => {}
            Some(1) => return Err(ManifestError::Schema1),
            _ => return Err(ManifestError::SchemaVersion),
        }
        if matches!(
            raw.media_type.as_deref(),
            Some(DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED)
        ) {
            return Err(ManifestError::Schema1);
        }
        let media_type = match (header, raw.media_type.as_deref()) {
            (Some(header), Some(body)) if header != body => {
                return Err(ManifestError::MediaTypeMismatch {
                    header,
                    body: body.to_owned(),
                })
            }
            (Some(header), _) => header,
            (None, Some(body)) => body.to_owned(),
            (None, None) if raw.manifests.is_some() => OCI_INDEX.to_owned(),
            (None, None) => OCI_MANIFEST.to_owned(),
        };
        let kind = match media_type.as_str() {
            OCI_MANIFEST | DOCKER_MANIFEST => ManifestKind::Image,
            OCI_INDEX | DOCKER_MANIFEST_LIST => ManifestKind::Index,
            other => return Err(ManifestError::UnsupportedMediaType(other.to_owned())),
        };
        let subject = raw
            .subject
            .filter(|v| !v.is_null())
            .map(|v| descriptor(v, "subject"))
            .transpose()?;
        let parsed = match kind {
            ManifestKind::Image => {
                if raw.manifests.is_some() {
                    return Err(ManifestError::Structure(
                        "an image manifest cannot have \"manifests\"".into(),
                    ));
                }
                let config = raw
                    .config
                    .ok_or_else(|| ManifestError::Structure("\"config\" is required".into()))?;
                let config = descriptor(config, "config")?;
                if raw.layers.is_none() && media_type == DOCKER_MANIFEST {
                    return Err(ManifestError::Structure("\"layers\" is required".into()));
                }
                ParsedManifest {
                    media_type,
                    kind,
                    config: Some(config),
                    layers: descriptors(raw.layers, "layers")?,
                    manifests: Vec::new(),
                    subject,
                    artifact_type: raw.artifact_type,
                    annotations: raw.annotations,
                }
            }
            ManifestKind::Index => {
                if raw.config.is_some() || raw.layers.is_some() {
                    return Err(ManifestError::Structure(
                        "an index cannot have \"config\" or \"layers\"".into(),
                    ));
                }
                if raw.manifests.is_none() {
                    return Err(ManifestError::Structure("\"manifests\" is required".into()));
                }
                ParsedManifest {
                    media_type,
                    kind,
                    config: None,
                    layers: Vec::new(),
                    manifests: descriptors(raw.manifests, "manifests")?,
                    subject,
                    artifact_type: raw.artifact_type,
                    annotations: raw.annotations,
                }
            }
        };
        Ok(parsed)
    }

    /// Blobs that must exist in the repository for this manifest to be accepted.
    pub fn required_blobs(&self) -> impl Iterator<Item = &Descriptor> {
        self.config
            .iter()
            .chain(self.layers.iter())
            .filter(|d| !is_non_distributable(&d.media_type))
    }

    /// The artifact type shown in referrer listings: `artifactType`, else the config's media type.
    pub fn effective_artifact_type(&self) -> Option<&str> {
        self.artifact_type.as_deref().or_else(|| match self.kind {
            ManifestKind::Image => self.config.as_ref().map(|c| c.media_type.as_str()),
            ManifestKind::Index => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const D1: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn image(extra: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{D1}","size":0}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{D1}","size":0}}]{extra}}}"#
        )
    }

    #[test]
    fn parses_oci_image_with_subject() {
        let body = image(&format!(
            r#","artifactType":"application/x.sbom","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{D1}","size":10}}"#
        ));
        let m = ParsedManifest::parse(Some(OCI_MANIFEST), body.as_bytes()).unwrap();
        assert_eq!(m.kind, ManifestKind::Image);
        assert_eq!(m.required_blobs().count(), 2);
        assert_eq!(m.subject.unwrap().size, 10);
        assert_eq!(m.artifact_type.as_deref(), Some("application/x.sbom"));
    }

    #[test]
    fn falls_back_to_config_media_type_for_artifact_type() {
        let m = ParsedManifest::parse(None, image("").as_bytes()).unwrap();
        assert_eq!(
            m.effective_artifact_type(),
            Some("application/vnd.oci.image.config.v1+json")
        );
    }

    #[test]
    fn parses_index_and_docker_list() {
        let body = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{D1}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#
        );
        let m = ParsedManifest::parse(Some(OCI_INDEX), body.as_bytes()).unwrap();
        assert_eq!(m.kind, ManifestKind::Index);
        assert_eq!(m.manifests.len(), 1);
        let m = ParsedManifest::parse(Some(DOCKER_MANIFEST_LIST), body.as_bytes()).unwrap();
        assert_eq!(m.media_type, DOCKER_MANIFEST_LIST);
        let m = ParsedManifest::parse(None, body.as_bytes()).unwrap();
        assert_eq!(m.media_type, OCI_INDEX);
    }

    #[test]
    fn refuses_schema1_and_mismatches() {
        let s1 = r#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        assert_eq!(
            ParsedManifest::parse(None, s1.as_bytes()),
            Err(ManifestError::Schema1)
        );
        assert_eq!(
            ParsedManifest::parse(Some(DOCKER_SCHEMA1_SIGNED), s1.as_bytes()),
            Err(ManifestError::Schema1)
        );
        assert!(matches!(
            ParsedManifest::parse(Some(DOCKER_MANIFEST), image("").as_bytes()),
            Err(ManifestError::MediaTypeMismatch { .. })
        ));
        assert!(matches!(
            ParsedManifest::parse(Some("text/plain"), br#"{"schemaVersion":2}"#),
            Err(ManifestError::UnsupportedMediaType(_))
        ));
        assert!(matches!(
            ParsedManifest::parse(Some(OCI_MANIFEST), br#"{"schemaVersion":2}"#),
            Err(ManifestError::Structure(_))
        ));
        assert!(matches!(
            ParsedManifest::parse(Some(OCI_MANIFEST), b"not json"),
            Err(ManifestError::Json(_))
        ));
        let bad_digest = image("").replace(D1, "sha256:1234");
        assert!(matches!(
            ParsedManifest::parse(Some(OCI_MANIFEST), bad_digest.as_bytes()),
            Err(ManifestError::Structure(_))
        ));
    }

    #[test]
    fn content_type_parameters_are_ignored() {
        let ct = format!("{OCI_MANIFEST}; charset=utf-8");
        assert!(ParsedManifest::parse(Some(&ct), image("").as_bytes()).is_ok());
    }

    #[test]
    fn foreign_layers_are_not_required() {
        let body = image("").replace(
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        );
        let m = ParsedManifest::parse(None, body.as_bytes()).unwrap();
        assert_eq!(m.required_blobs().count(), 1);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256), ct in proptest::option::of("\\PC{0,40}")) {
            let _ = ParsedManifest::parse(ct.as_deref(), &bytes);
        }

        #[test]
        fn parse_never_panics_on_jsonish(s in r#"\{"schemaVersion":2(,"(config|layers|manifests|subject|mediaType)":(null|1|"x"|\[\]|\{\}))*\}"#) {
            let _ = ParsedManifest::parse(None, s.as_bytes());
        }
    }
}
