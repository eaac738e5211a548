//! S3's UploadPartCopy, which object_store does not offer: a part of a multipart upload
//! copied inside the store from another object, signed by object_store's SigV4 signer.

use object_store::aws::{AwsAuthorizer, AwsCredential};
use object_store::client::HttpRequestBody;
use std::time::Duration;
use url::Url;

/// Sends UploadPartCopy requests to one bucket.
#[derive(Debug)]
pub struct PartCopier {
    client: reqwest::Client,
    /// The bucket's URL, ending in `/`: keys are joined to it.
    bucket_url: Url,
    bucket: String,
    credential: AwsCredential,
    region: String,
}

/// Attempts per part: transient failures (a dropped connection, a 5xx) are tried again.
const ATTEMPTS: u32 = 3;

impl PartCopier {
    pub fn new(
        client: reqwest::Client,
        bucket_url: Url,
        bucket: String,
        credential: AwsCredential,
        region: String,
    ) -> PartCopier {
        PartCopier {
            client,
            bucket_url,
            bucket,
            credential,
            region,
        }
    }

    /// Copies all of object `source` as part `number` (from 1) of multipart upload
    /// `upload_id` of `key`; returns the part's ETag.
    pub async fn copy_part(
        &self,
        key: &str,
        upload_id: &str,
        number: usize,
        source: &str,
    ) -> Result<String, String> {
        let mut url = self
            .bucket_url
            .join(key)
            .map_err(|e| format!("bad object key {key:?}: {e}"))?;
        url.query_pairs_mut()
            .append_pair("partNumber", &number.to_string())
            .append_pair("uploadId", upload_id);
        let copy_source = format!("{}/{}", self.bucket, source);
        let mut last_error = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            match self.send(&url, &copy_source).await {
                Ok(etag) => return Ok(etag),
                Err((error, retryable)) => {
                    last_error = error;
                    if !retryable {
                        break;
                    }
                }
            }
        }
        Err(format!(
            "copying {source} into part {number} of {key}: {last_error}"
        ))
    }

    /// One attempt; the error says whether another may succeed.
    async fn send(&self, url: &Url, copy_source: &str) -> Result<String, (String, bool)> {
        let mut request = http::Request::builder()
            .method(http::Method::PUT)
            .uri(url.as_str())
            .header("x-amz-copy-source", copy_source)
            .body(HttpRequestBody::empty())
            .map_err(|e| (e.to_string(), false))?;
        AwsAuthorizer::new(&self.credential, "s3", &self.region).authorize(&mut request, None);
        let response = self
            .client
            .put(url.clone())
            .headers(request.headers().clone())
            .body(Vec::new())
            .send()
            .await
            .map_err(|e| (e.to_string(), true))?;
        let status = response.status();
        // The answer is small XML; an error can come with a 200 status, in the body.
        let body = response.text().await.map_err(|e| (e.to_string(), true))?;
        if !status.is_success() || body.contains("<Error>") {
            let retryable = status.is_server_error() || status.is_success();
            return Err((
                format!("{status}: {}", body.chars().take(300).collect::<String>()),
                retryable,
            ));
        }
        etag_of(&body).ok_or_else(|| (format!("no ETag in the answer: {body:.300}"), false))
    }
}

/// The ETag of a `CopyPartResult` document.
fn etag_of(body: &str) -> Option<String> {
    let start = body.find("<ETag>")? + "<ETag>".len();
    let end = start + body[start..].find("</ETag>")?;
    Some(
        body[start..end]
            .replace("&quot;", "\"")
            .replace("&#34;", "\""),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_read_from_copy_results() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?><CopyPartResult><LastModified>2026-01-01T00:00:00Z</LastModified><ETag>&quot;abc&quot;</ETag></CopyPartResult>"#;
        assert_eq!(etag_of(body).as_deref(), Some("\"abc\""));
        assert_eq!(
            etag_of("<CopyPartResult><ETag>\"d\"</ETag></CopyPartResult>").as_deref(),
            Some("\"d\"")
        );
        assert_eq!(etag_of("<CopyPartResult></CopyPartResult>"), None);
    }
}
