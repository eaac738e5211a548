//! Handlers for each OCI endpoint group; the dispatcher has already authorized the request.

pub mod blobs;
pub mod listing;
pub mod manifests;
pub mod mirror;
pub mod referrers;
pub mod uploads;

use crate::AppState;
use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Response, StatusCode};
use berth_core::access::Principal;
use berth_core::Error;

/// The parts of a request a handler uses.
pub struct Req<'a> {
    pub state: &'a AppState,
    pub method: Method,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: Body,
    /// Whether the caller may read the source of a cross-repository mount.
    pub mount_allowed: bool,
    /// Who is calling, for listings that show only what they may read (the catalog).
    pub principal: Option<Principal>,
    /// The signed-in account (user or `org/<name>`) the request acts for; `None` when
    /// anonymous. Upload sessions are counted against it.
    pub account: Option<String>,
    /// The caller's name (empty: anonymous), for the events and audit entries of changes.
    pub actor: String,
    /// The client's address, for the audit log.
    pub address: Option<String>,
    /// The client's address, for anonymous pull rate limits.
    pub client: Option<std::net::IpAddr>,
    /// The credentials as presented, for the site-admin exemption of pull policies (asked
    /// only when a policy refuses).
    pub caller: crate::auth::Caller,
}

impl Req<'_> {
    /// Who makes a change through this request.
    pub fn changed_by(&self) -> berth_core::registry::ChangedBy<'_> {
        berth_core::registry::ChangedBy::new(&self.actor, self.address.as_deref())
    }
}

/// A response with a status, no body and `Content-Length: 0`.
pub fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, header::HeaderValue::from(0));
    response
}

/// `GET /v2/`: the registry speaks the distribution API.
pub fn base(req: Req<'_>) -> Result<Response<Body>, Error> {
    match req.method {
        Method::GET | Method::HEAD => {
            let mut response = Response::new(if req.method == Method::HEAD {
                Body::empty()
            } else {
                Body::from("{}")
            });
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            headers.insert(header::CONTENT_LENGTH, header::HeaderValue::from(2));
            Ok(response)
        }
        ref other => Err(super::method_not_allowed(other)),
    }
}
