//! Blob uploads: `POST /v2/<name>/blobs/uploads/` (session, monolithic, mount) and the
//! session at `/v2/<name>/blobs/uploads/<id>` (PATCH, PUT, GET, DELETE).

use super::{empty, Req};
use crate::oci::headers::{content_length, header_str, insert, query_param, upload_range};
use crate::oci::method_not_allowed;
use axum::body::Body;
use axum::http::{Method, Response, StatusCode};
use berth_core::ports::UploadSession;
use berth_core::registry::ChunkFraming;
use berth_core::Error;
use berth_oci::{ContentRange, Digest, RepoName};

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
        registry
            .upload_monolithic(name, account.as_deref(), &digest, length, req.into_stream())
            .await?;
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
            let session = registry
                .append_chunk(name, id, framing, req.into_stream())
                .await?;
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
            registry
                .complete_upload(name, id, &digest, framing, req.into_stream())
                .await?;
            Ok(blob_created(name, &digest))
        }
        Method::DELETE => {
            registry.cancel_upload(name, id).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        ref other => Err(method_not_allowed(other)),
    }
}
