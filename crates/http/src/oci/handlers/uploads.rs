//! Blob uploads: `POST /v2/<name>/blobs/uploads/` (session, monolithic, mount) and the
//! session at `/v2/<name>/blobs/uploads/<id>` (PATCH, PUT, GET, DELETE).

use super::{empty, Req};
use crate::oci::headers::{content_length, header_str, insert, upload_range};
use crate::oci::method_not_allowed;
use crate::query::query_param;
use axum::body::Body;
use axum::http::{Method, Response, StatusCode};
use berth_core::ports::ByteStream;
use berth_core::ports::UploadSession;
use berth_core::registry::ChunkFraming;
use berth_core::Error;
use berth_oci::{ContentRange, Digest, RepoName};
use futures_util::Stream;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

/// A request body the blob store reads, which the handler can still finish reading when the
/// upload is refused halfway (a full disk, a blob crossing `max_blob_size`). A client still
/// sending when the connection closes sees a reset instead of the refusal, so the rest is
/// read and dropped first: at most `DRAIN_BYTES` within `DRAIN_TIME`, then the connection
/// may close. A body never read (refused on its declared length) is not drained: the
/// client learns at once, and one that sent `Expect: 100-continue` sends nothing.
struct RefusableBody {
    inner: Arc<Mutex<axum::body::BodyDataStream>>,
    started: Arc<AtomicBool>,
}

const DRAIN_BYTES: usize = 64 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(5);

impl RefusableBody {
    fn new(body: Body) -> Self {
        RefusableBody {
            inner: Arc::new(Mutex::new(body.into_data_stream())),
            started: Arc::new(AtomicBool::new(false)),
        }
    }

    fn poll_inner(
        inner: &Mutex<axum::body::BodyDataStream>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<bytes::Bytes, axum::Error>>> {
        let mut stream = inner.lock().unwrap_or_else(|e| e.into_inner());
        Pin::new(&mut *stream).poll_next(cx)
    }

    /// The body as the blob store reads it.
    fn stream(&self) -> ByteStream {
        let inner = self.inner.clone();
        let started = self.started.clone();
        Box::pin(futures_util::stream::poll_fn(move |cx| {
            started.store(true, Ordering::Relaxed);
            RefusableBody::poll_inner(&inner, cx)
                .map(|item| item.map(|r| r.map_err(std::io::Error::other)))
        }))
    }

    /// Passes `result` on, after reading what is left of the body when the store stopped
    /// reading it because of a refusal the client must see.
    async fn settle<T>(self, result: Result<T, Error>) -> Result<T, Error> {
        let refused_midway = matches!(result, Err(Error::StorageFull | Error::BlobTooLarge { .. }))
            && self.started.load(Ordering::Relaxed);
        if refused_midway {
            let inner = self.inner.clone();
            let drain = async move {
                let mut left = DRAIN_BYTES;
                while let Some(Ok(bytes)) =
                    futures_util::future::poll_fn(|cx| RefusableBody::poll_inner(&inner, cx)).await
                {
                    left = match left.checked_sub(bytes.len()) {
                        Some(left) => left,
                        None => break,
                    };
                }
            };
            let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
        }
        result
    }
}

fn parse_digest(raw: &str) -> Result<Digest, Error> {
    raw.parse()
        .map_err(|e: berth_oci::digest::DigestError| Error::DigestInvalid(e.to_string()))
}

/// 201 pointing at a blob now in the repository.
fn blob_created(name: &RepoName, digest: &Digest) -> Response<Body> {
    let mut response = empty(StatusCode::CREATED);
    let headers = response.headers_mut();
    insert(headers, "location", &format!("/v2/{name}/blobs/{digest}"));
    insert(headers, "docker-content-digest", &digest.to_string());
    response
}

/// The session's progress, as both 202 (after POST/PATCH) and 204 (GET) report it.
fn session_response(status: StatusCode, session: &UploadSession) -> Response<Body> {
    let mut response = empty(status);
    let headers = response.headers_mut();
    insert(
        headers,
        "location",
        &format!("/v2/{}/blobs/uploads/{}", session.repo, session.id),
    );
    insert(headers, "range", &upload_range(session.size));
    insert(headers, "docker-upload-uuid", &session.id);
    response
}

fn framing(req: &Req<'_>) -> Result<ChunkFraming, Error> {
    let range = header_str(req.headers, "content-range")
        .map(|raw| {
            raw.parse::<ContentRange>()
                .map(|r| r.0)
                .map_err(|e| Error::ChunkRejected(e.to_string()))
        })
        .transpose()?;
    Ok(ChunkFraming {
        range,
        length: content_length(req.headers)?,
    })
}

pub async fn start(req: Req<'_>, name: &RepoName) -> Result<Response<Body>, Error> {
    if req.method != Method::POST {
        return Err(method_not_allowed(&req.method));
    }
    let registry = req.state.registry.clone();
    if let Some(mount) = query_param(req.query, "mount") {
        let digest = parse_digest(&mount)?;
        let from = query_param(req.query, "from").filter(|_| req.mount_allowed);
        if let Some(from) = from {
            let from: RepoName = from
                .parse::<RepoName>()
                .map_err(|e: berth_oci::name::NameError| Error::NameInvalid(e.to_string()))?
                .with_default_namespace();
            if registry.mount_blob(name, &digest, &from).await?.is_some() {
                return Ok(blob_created(name, &digest));
            }
        }
        // Not mountable (or not readable by the caller): fall back to a fresh session, as the spec asks.
        let session = registry.start_upload(name, req.account.as_deref()).await?;
        return Ok(session_response(StatusCode::ACCEPTED, &session));
    }
    if let Some(raw) = query_param(req.query, "digest") {
        let digest = parse_digest(&raw)?;
        let length = content_length(req.headers)?;
        let account = req.account.clone();
        let body = RefusableBody::new(req.body);
        let pushed = registry
            .upload_monolithic(name, account.as_deref(), &digest, length, body.stream())
            .await;
        body.settle(pushed).await?;
        return Ok(blob_created(name, &digest));
    }
    let session = registry.start_upload(name, req.account.as_deref()).await?;
    Ok(session_response(StatusCode::ACCEPTED, &session))
}

pub async fn session(req: Req<'_>, name: &RepoName, id: &str) -> Result<Response<Body>, Error> {
    let registry = req.state.registry.clone();
    match req.method {
        Method::GET => {
            let session = registry.upload_status(name, id).await?;
            Ok(session_response(StatusCode::NO_CONTENT, &session))
        }
        Method::PATCH => {
            let framing = framing(&req)?;
            let body = RefusableBody::new(req.body);
            let appended = registry
                .append_chunk(name, id, framing, body.stream())
                .await;
            let session = body.settle(appended).await?;
            Ok(session_response(StatusCode::ACCEPTED, &session))
        }
        Method::PUT => {
            let raw = query_param(req.query, "digest").ok_or_else(|| {
                Error::DigestInvalid(
                    "the digest query parameter is required to finish an upload".into(),
                )
            })?;
            let digest = parse_digest(&raw)?;
            let framing = framing(&req)?;
            let body = RefusableBody::new(req.body);
            let completed = registry
                .complete_upload(name, id, &digest, framing, body.stream())
                .await;
            body.settle(completed).await?;
            Ok(blob_created(name, &digest))
        }
        Method::DELETE => {
            registry.cancel_upload(name, id).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        ref other => Err(method_not_allowed(other)),
    }
}
