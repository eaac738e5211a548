//! Image content for the tests, and pushing it over `/v2/`: media types spelled out (so the
//! tests check the wire format independently of the server's crates), digests, descriptors,
//! image manifests, and a client that pushes blobs, manifests and small images.

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// An uncompressed layer.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A content descriptor as manifests carry them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    pub artifact_type: Option<String>,
    pub annotations: Vec<(String, String)>,
}

impl Descriptor {
    /// The descriptor of `content` as `media_type`.
    pub fn of(media_type: &str, content: &[u8]) -> Descriptor {
        Descriptor {
            media_type: media_type.to_owned(),
            digest: sha256(content),
            size: content.len() as u64,
            artifact_type: None,
            annotations: Vec::new(),
        }
    }

    /// The OCI empty descriptor (`{}` as `application/vnd.oci.empty.v1+json`).
    pub fn empty() -> Descriptor {
        Descriptor::of(OCI_EMPTY, b"{}")
    }

    #[must_use]
    pub fn with_artifact_type(mut self, artifact_type: &str) -> Descriptor {
        self.artifact_type = Some(artifact_type.to_owned());
        self
    }

    #[must_use]
    pub fn with_annotation(mut self, key: &str, value: &str) -> Descriptor {
        self.annotations.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn json(&self) -> Value {
        let mut v =
            json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.size });
        if let Some(artifact_type) = &self.artifact_type {
            v["artifactType"] = json!(artifact_type);
        }
        if !self.annotations.is_empty() {
            v["annotations"] = annotations(&self.annotations);
        }
        v
    }
}

/// A JSON object of string annotations.
pub fn annotations<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Value {
    let map: Map<String, Value> = pairs
        .iter()
        .map(|(k, v)| (k.as_ref().to_owned(), json!(v.as_ref())))
        .collect();
    Value::Object(map)
}

/// An OCI image manifest of `config` and `layers`.
pub fn image_manifest(config: &Descriptor, layers: &[Descriptor]) -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.json(),
        "layers": layers.iter().map(Descriptor::json).collect::<Vec<_>>(),
    })
}

/// An OCI image index listing `manifests`.
pub fn image_index(manifests: &[Descriptor]) -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests.iter().map(Descriptor::json).collect::<Vec<_>>(),
    })
}

/// A manifest serialized pretty-printed with a trailing newline, so that a registry which
/// re-encoded the JSON would change the bytes and be caught by byte-for-byte comparisons.
pub fn pretty(manifest: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(manifest).expect("manifest JSON");
    out.push(b'\n');
    out
}

/// An image of one config and one layer, not yet pushed.
#[derive(Debug, Clone)]
pub struct SmallImage {
    pub config: Vec<u8>,
    pub layer: Vec<u8>,
    /// The manifest's bytes, as they are pushed.
    pub manifest: Vec<u8>,
}

impl SmallImage {
    /// The image of `config` (an image config's JSON) and `layer` (an uncompressed layer as
    /// far as the registry cares).
    pub fn new(config: impl Into<Vec<u8>>, layer: impl Into<Vec<u8>>) -> SmallImage {
        let (config, layer) = (config.into(), layer.into());
        let manifest = image_manifest(
            &Descriptor::of(OCI_CONFIG, &config),
            &[Descriptor::of(OCI_LAYER, &layer)],
        );
        SmallImage {
            manifest: pretty(&manifest),
            config,
            layer,
        }
    }

    /// An image for linux/amd64 whose content is unique to `seed` and `label`.
    pub fn linux(seed: impl std::fmt::Display, label: &str) -> SmallImage {
        SmallImage::new(
            format!(r#"{{"architecture":"amd64","os":"linux","seed":"{seed}"}}"#),
            format!("layer {seed} of {label}"),
        )
    }

    pub fn digest(&self) -> String {
        sha256(&self.manifest)
    }
}

/// Pushes to a registry's `/v2/` with one `Authorization` value (or none).
#[derive(Debug, Clone)]
pub struct Pusher<'a> {
    client: &'a Client,
    base: &'a str,
    authorization: Option<String>,
}

impl<'a> Pusher<'a> {
    /// Pushes to the registry at `base` (`http://host:port`), anonymously.
    pub fn new(client: &'a Client, base: &'a str) -> Pusher<'a> {
        Pusher {
            client,
            base,
            authorization: None,
        }
    }

    /// Every request carries `Authorization: value`.
    #[must_use]
    pub fn authorized(mut self, value: Option<String>) -> Pusher<'a> {
        self.authorization = value;
        self
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.client.request(method, format!("{}{path}", self.base));
        match &self.authorization {
            Some(value) => request.header(AUTHORIZATION, value),
            None => request,
        }
    }

    /// Uploads `content` to `repo` in one request (`POST …/uploads/?digest=`): its digest,
    /// or the status when the registry did not answer 201.
    pub async fn push_blob(&self, repo: &str, content: &[u8]) -> Result<String, u16> {
        let digest = sha256(content);
        let status = self
            .request(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
            )
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(content.to_vec())
            .send()
            .await
            .expect("blob upload")
            .status()
            .as_u16();
        if status == 201 {
            Ok(digest)
        } else {
            Err(status)
        }
    }

    /// Uploads `content` to `repo`, which must succeed; its digest.
    pub async fn push_blob_ok(&self, repo: &str, content: &[u8]) -> String {
        match self.push_blob(repo, content).await {
            Ok(digest) => digest,
            Err(status) => panic!("pushing a blob to {repo}: {status}"),
        }
    }

    /// `PUT /v2/<repo>/manifests/<reference>` as `media_type`.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Response {
        self.request(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header(CONTENT_TYPE, media_type)
            .body(body.to_vec())
            .send()
            .await
            .expect("manifest push")
    }

    /// Pushes a manifest, which must be created; its digest.
    pub async fn push_manifest_ok(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> String {
        let resp = self.put_manifest(repo, reference, media_type, body).await;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(
            status, 201,
            "pushing a manifest to {repo}:{reference}: {text}"
        );
        sha256(body)
    }

    /// Pushes `image`'s blobs and manifest as `repo:tag`: the status of the first step that
    /// failed, or of the manifest `PUT` (201).
    pub async fn push_image(&self, repo: &str, tag: &str, image: &SmallImage) -> u16 {
        for blob in [&image.config, &image.layer] {
            if let Err(status) = self.push_blob(repo, blob).await {
                return status;
            }
        }
        self.put_manifest(repo, tag, OCI_MANIFEST, &image.manifest)
            .await
            .status()
            .as_u16()
    }
}
