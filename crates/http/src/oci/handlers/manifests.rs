//! `/v2/<name>/manifests/<reference>`: GET, HEAD, PUT (with `?tag=`) and DELETE.

use super::{empty, Req};
use crate::oci::headers::{content_length, header_str, insert};
use crate::oci::{error_response, method_not_allowed};
use crate::query::query_params;
use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Response, StatusCode};
use berth_core::ports::{ManifestRecord, PullEvent};
use berth_core::ratelimit::{PullOutcome, Puller, Rate};
use berth_core::registry::{ChangedBy, PutManifest};
use berth_core::time::now_unix;
use berth_core::Error;
use berth_oci::manifest::MAX_MANIFEST_BYTES;
use berth_oci::{Reference, RepoName, Tag};
use http_body_util::{BodyExt, Limited};

/// A manifest pull's answer (the body only for GET), recording a GET as a pull.
pub(super) fn serve(
    req: &Req<'_>,
    name: &RepoName,
    reference: &Reference,
    manifest: ManifestRecord,
) -> Response<Body> {
    let len = manifest.body.len();
    let body = if req.method == Method::GET {
        Body::from(manifest.body)
    } else {
        Body::empty()
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    insert(headers, "content-type", &manifest.media_type);
    headers.insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
    let digest = manifest.digest.to_string();
    insert(headers, "docker-content-digest", &digest);
    insert(headers, "etag", &format!("\"{digest}\""));
    // A pull is a GET: clients HEAD to check for updates without pulling. Recorded in
    // memory and written in batches, so pulls do not wait for the database.
    if req.method == Method::GET {
        req.state.hub.record_pull(PullEvent {
            repo: name.clone(),
            tag: match reference {
                Reference::Tag(tag) => Some(tag.to_string()),
                Reference::Digest(_) => None,
            },
            digest: manifest.digest,
            at: now_unix(),
            pulls: 1,
        });
    }
    response
}

/// Answers a manifest GET or HEAD within the caller's pull allowance: a GET spends one pull
/// (an index's platforms then come free), a HEAD only reads what is left; the answer carries
/// the rate-limit headers, or is the `429` once the allowance is spent.
pub(super) async fn serve_limited(
    req: Req<'_>,
    name: &RepoName,
    reference: &Reference,
    manifest: ManifestRecord,
) -> Result<Response<Body>, Error> {
    let limits = &req.state.pull_limits;
    let puller = match &req.account {
        Some(account) => Puller::Account(account),
        None => Puller::Anonymous(req.client),
    };
    // Pull policies guard what a pull downloads: a GET. A HEAD tells only the digest, which
    // signers need before they can sign. A refused pull spends nothing.
    if req.method == Method::GET {
        if let Some(refusal) = req
            .state
            .signatures
            .pull_refusal(name, reference, &manifest)
            .await?
        {
            if !is_site_admin(req.state, &req.caller).await? {
                return Err(Error::PullRefused {
                    policy: refusal.policy,
                    reason: refusal.reason,
                });
            }
        }
    }
    let namespace = name.namespace().unwrap_or(name.as_str());
    let allowance = if req.method == Method::GET {
        let pulled = limits
            .pull(
                puller,
                namespace,
                &manifest.digest,
                &manifest.media_type,
                &manifest.body,
            )
            .await;
        match pulled {
            Err(err @ Error::PullRateLimited { .. }) => return Ok(rate_limited(&err, &req.method)),
            other => other?,
        }
    } else {
        limits.check(puller, namespace).await?
    };
    let mut response = serve(&req, name, reference, manifest);
    if let PullOutcome::Allowed {
        rate,
        remaining,
        source,
    } = &allowance
    {
        rate_limit_headers(response.headers_mut(), rate, *remaining, source);
    }
    Ok(response)
}

/// Site admins are exempt from pull policies (replication and repairs); asked only when a
/// policy refuses, so ordinary pulls never pay for the lookup a bearer token needs.
async fn is_site_admin(
    state: &crate::AppState,
    caller: &crate::auth::Caller,
) -> Result<bool, Error> {
    match caller.principal(state).await {
        Ok(principal) => Ok(principal.is_site_admin()),
        Err(Error::Unauthorized | Error::CredentialsInvalid) => Ok(false),
        Err(other) => Err(other),
    }
}

pub async fn handle(
    req: Req<'_>,
    name: &RepoName,
    reference: &Reference,
) -> Result<Response<Body>, Error> {
    let registry = req.state.registry.clone();
    match req.method {
        Method::GET | Method::HEAD => {
            let manifest = registry.get_manifest(name, reference).await?;
            serve_limited(req, name, reference, manifest).await
        }
        Method::PUT => {
            if content_length(req.headers)?.is_some_and(|len| len > MAX_MANIFEST_BYTES as u64) {
                return Err(Error::ManifestTooLarge {
                    limit: MAX_MANIFEST_BYTES,
                });
            }
            let extra_tags = query_params(req.query, "tag")
                .map(|t| {
                    t.parse::<Tag>()
                        .map_err(|e| Error::TagInvalid(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let content_type = header_str(req.headers, "content-type").map(str::to_owned);
            let body = Limited::new(req.body, MAX_MANIFEST_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        Error::ManifestTooLarge {
                            limit: MAX_MANIFEST_BYTES,
                        }
                    } else {
                        Error::BodyInterrupted(e.to_string())
                    }
                })?
                .to_bytes();
            let pushed = registry
                .put_manifest(PutManifest {
                    repo: name,
                    reference,
                    extra_tags: &extra_tags,
                    content_type: content_type.as_deref(),
                    body: &body,
                    by: ChangedBy::new(&req.actor, req.address.as_deref()),
                })
                .await?;
            let mut response = empty(StatusCode::CREATED);
            let headers = response.headers_mut();
            insert(
                headers,
                "location",
                &format!("/v2/{name}/manifests/{}", pushed.digest),
            );
            insert(headers, "docker-content-digest", &pushed.digest.to_string());
            if let Some(subject) = pushed.subject {
                insert(headers, "oci-subject", &subject.to_string());
            }
            Ok(response)
        }
        Method::DELETE => {
            registry
                .delete_manifest(name, reference, req.changed_by())
                .await?;
            Ok(empty(StatusCode::ACCEPTED))
        }
        ref other => Err(method_not_allowed(other)),
    }
}

/// Docker Hub's headers: the limit and what is left, both as `N;w=S`, and whose allowance.
fn rate_limit_headers(headers: &mut HeaderMap, rate: &Rate, remaining: u32, source: &str) {
    insert(headers, "ratelimit-limit", &rate.to_string());
    insert(
        headers,
        "ratelimit-remaining",
        &format!("{remaining};w={}", rate.window_secs),
    );
    insert(headers, "docker-ratelimit-source", source);
}

/// The `429` of a pull over its limit, with the same headers as an allowed pull.
fn rate_limited(err: &Error, method: &Method) -> Response<Body> {
    let mut response = error_response(err, method);
    if let Error::PullRateLimited {
        limit, charged_to, ..
    } = err
    {
        if let Ok(rate) = Rate::parse(limit) {
            rate_limit_headers(response.headers_mut(), &rate, 0, charged_to);
        }
    }
    response
}
