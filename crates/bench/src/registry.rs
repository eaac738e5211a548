//! The few OCI distribution API calls the scenarios use.

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use reqwest::{Body, Method, Response, StatusCode, Url};

use crate::target::Target;
use crate::Result;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCTET_STREAM: &str = "application/octet-stream";

/// Fail with method, URL, status and the start of the body unless `resp`
/// has the expected status.
async fn expect(resp: Response, want: StatusCode, what: &str) -> Result<Response> {
    if resp.status() == want {
        return Ok(resp);
    }
    let status = resp.status();
    let url = resp.url().clone();
    let body = resp.text().await.unwrap_or_default();
    let body: String = body.chars().take(300).collect();
    Err(format!("{what} {url}: expected {want}, got {status}: {body}").into())
}

/// Resolve a `Location` header (absolute or relative) against the request URL.
fn location(resp: &Response) -> Result<Url> {
    let loc = resp
        .headers()
        .get(LOCATION)
        .ok_or_else(|| format!("{}: response has no Location header", resp.url()))?
        .to_str()?;
    Ok(resp.url().join(loc)?)
}

fn with_digest(mut url: Url, digest: &str) -> Url {
    url.query_pairs_mut().append_pair("digest", digest);
    url
}

impl Target {
    /// `POST /v2/<repo>/blobs/uploads/` and return the upload URL.
    pub async fn start_upload(&self, repo: &str) -> Result<Url> {
        let resp = self
            .request(Method::POST, self.url(&format!("v2/{repo}/blobs/uploads/")))
            .await?
            .header(CONTENT_LENGTH, 0)
            .send()
            .await?;
        let resp = expect(resp, StatusCode::ACCEPTED, "POST").await?;
        location(&resp)
    }

    /// `PUT <upload>?digest=...` with the (rest of the) blob as the body.
    pub async fn finish_upload(
        &self,
        upload: Url,
        digest: &str,
        body: Body,
        len: u64,
    ) -> Result<()> {
        let resp = self
            .request(Method::PUT, with_digest(upload, digest))
            .await?
            .header(CONTENT_TYPE, OCTET_STREAM)
            .header(CONTENT_LENGTH, len)
            .body(body)
            .send()
            .await?;
        expect(resp, StatusCode::CREATED, "PUT").await?;
        Ok(())
    }

    /// PATCH one chunk (`start..start+len`) and return the next upload URL.
    pub async fn patch_chunk(&self, upload: Url, start: u64, body: Body, len: u64) -> Result<Url> {
        let resp = self
            .request(Method::PATCH, upload)
            .await?
            .header(CONTENT_TYPE, OCTET_STREAM)
            .header(CONTENT_LENGTH, len)
            .header(CONTENT_RANGE, format!("{}-{}", start, start + len - 1))
            .body(body)
            .send()
            .await?;
        let resp = expect(resp, StatusCode::ACCEPTED, "PATCH").await?;
        location(&resp)
    }

    /// Monolithic push of an in-memory blob: POST, then PUT ?digest=.
    pub async fn push_blob(&self, repo: &str, digest: &str, data: Bytes) -> Result<()> {
        let upload = self.start_upload(repo).await?;
        let len = data.len() as u64;
        self.finish_upload(upload, digest, Body::from(data), len)
            .await
    }

    /// Cross-repository mount; falls back to a normal upload when the
    /// registry answers 202 (mount not supported / blob not found).
    pub async fn mount_or_push_blob(
        &self,
        repo: &str,
        from: &str,
        digest: &str,
        data: Bytes,
    ) -> Result<()> {
        let mut url = self.url(&format!("v2/{repo}/blobs/uploads/"));
        url.query_pairs_mut()
            .append_pair("mount", digest)
            .append_pair("from", from);
        let resp = self
            .request(Method::POST, url)
            .await?
            .header(CONTENT_LENGTH, 0)
            .send()
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(()),
            StatusCode::ACCEPTED => {
                let upload = location(&resp)?;
                let len = data.len() as u64;
                self.finish_upload(upload, digest, Body::from(data), len)
                    .await
            }
            _ => expect(resp, StatusCode::CREATED, "POST (mount)")
                .await
                .map(|_| ()),
        }
    }

    pub async fn blob_exists(&self, repo: &str, digest: &str) -> Result<bool> {
        let resp = self
            .request(Method::HEAD, self.url(&format!("v2/{repo}/blobs/{digest}")))
            .await?
            .send()
            .await?;
        match resp.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(format!("HEAD blob {digest}: unexpected {s}").into()),
        }
    }

    /// GET a blob, streaming it and discarding the bytes; returns the length
    /// read. Follows redirects (reqwest's default policy).
    pub async fn pull_blob(&self, repo: &str, digest: &str, verify: bool) -> Result<u64> {
        Ok(self.pull_blob_from(repo, digest, verify).await?.0)
    }

    /// As [`Target::pull_blob`], and the URL the bytes came from (another host's when the
    /// registry redirected to its store).
    pub async fn pull_blob_from(
        &self,
        repo: &str,
        digest: &str,
        verify: bool,
    ) -> Result<(u64, Url)> {
        let resp = self
            .request(Method::GET, self.url(&format!("v2/{repo}/blobs/{digest}")))
            .await?
            .send()
            .await?;
        let resp = expect(resp, StatusCode::OK, "GET blob").await?;
        let from = resp.url().clone();
        let mut hasher = verify.then(<sha2::Sha256 as sha2::Digest>::new);
        let mut n = 0u64;
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            n += chunk.len() as u64;
            if let Some(h) = hasher.as_mut() {
                sha2::Digest::update(h, &chunk);
            }
        }
        if let Some(h) = hasher {
            let got = format!("sha256:{}", hex::encode(sha2::Digest::finalize(h)));
            if got != digest {
                return Err(format!("GET blob {digest}: content hashes to {got}").into());
            }
        }
        Ok((n, from))
    }

    pub async fn put_manifest(&self, repo: &str, reference: &str, manifest: Bytes) -> Result<()> {
        let resp = self
            .request(
                Method::PUT,
                self.url(&format!("v2/{repo}/manifests/{reference}")),
            )
            .await?
            .header(CONTENT_TYPE, OCI_MANIFEST)
            .body(manifest)
            .send()
            .await?;
        expect(resp, StatusCode::CREATED, "PUT manifest").await?;
        Ok(())
    }

    /// GET a manifest and return its body length.
    pub async fn get_manifest(&self, url: Url) -> Result<usize> {
        let resp = self
            .request(Method::GET, url)
            .await?
            .header(reqwest::header::ACCEPT, OCI_MANIFEST)
            .send()
            .await?;
        let resp = expect(resp, StatusCode::OK, "GET manifest").await?;
        Ok(resp.bytes().await?.len())
    }
}

/// An OCI image manifest referencing `config` and `layers` (digest, size).
pub fn image_manifest(config: (&str, usize), layers: &[(&str, usize)]) -> Bytes {
    let layers: Vec<_> = layers
        .iter()
        .map(|(d, s)| serde_json::json!({"mediaType": OCI_LAYER, "digest": d, "size": s}))
        .collect();
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.0, "size": config.1},
        "layers": layers,
    });
    Bytes::from(serde_json::to_vec(&m).expect("manifest serializes"))
}

/// A minimal image config JSON, made unique by `tag`.
pub fn image_config(tag: &str) -> Bytes {
    Bytes::from(
        serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"berth.bench": tag}},
            "rootfs": {"type": "layers", "diff_ids": []},
        }))
        .expect("config serializes"),
    )
}
