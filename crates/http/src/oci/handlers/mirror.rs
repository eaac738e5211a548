//! Manifest and blob pulls of mirrored names (`/v2/<prefix>/...`, `?ns=`, or the
//! `mirror_default`), answered by the pull-through cache; a stale answer carries `Warning`.

use super::{blobs, manifests, Req};
use crate::oci::headers::insert;
use axum::body::Body;
use axum::http::{Method, Response};
use berth_core::mirror::{Freshness, MirrorTarget};
use berth_core::Error;
use berth_oci::{Digest, Reference};

/// Signed-in-only mirrors refuse anonymous callers (the authorizer has let them through
/// for the transparent mirror, whose `ns=` may pick another mirror than the default).
fn check_access(req: &Req<'_>, target: &MirrorTarget) -> Result<(), Error> {
    let access = req.state.mirrors.config(target).access;
    match (access, &req.account) {
        (berth_core::mirror::MirrorAccess::SignedIn, None) => Err(Error::Unauthorized),
        _ => Ok(()),
    }
}

pub async fn manifest(
    req: Req<'_>,
    target: &MirrorTarget,
    reference: &Reference,
) -> Result<Response<Body>, Error> {
    if !matches!(req.method, Method::GET | Method::HEAD) {
        return Err(Error::Denied);
    }
    check_access(&req, target)?;
    let found = req.state.mirrors.manifest(target, reference).await?;
    // Pulls through a mirror spend the caller's pull allowance like any other.
    let mut response =
        manifests::serve_limited(req, &target.local, reference, found.record).await?;
    if let Freshness::Stale(why) = found.freshness {
        // RFC 9111's "110 Response is Stale", with the reason (quotes are not allowed in it).
        let why = why.replace(['"', '\\'], "'");
        insert(
            response.headers_mut(),
            "warning",
            &format!("110 - \"stale: {why}\""),
        );
    }
    Ok(response)
}

pub async fn blob(
    req: Req<'_>,
    target: &MirrorTarget,
    digest: &Digest,
) -> Result<Response<Body>, Error> {
    if !matches!(req.method, Method::GET | Method::HEAD) {
        return Err(Error::Denied);
    }
    check_access(&req, target)?;
    let range = blobs::range_of(&req);
    let with_body = req.method == Method::GET;
    let blob = req
        .state
        .mirrors
        .blob(target, digest, range, with_body)
        .await?;
    Ok(blobs::serve(digest, blob))
}
