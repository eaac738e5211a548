//! What each route and method needs from the access seam.

use super::route::OciRoute;
use crate::query::query_param;
use axum::http::Method;
use berth_core::access::{Action, Need, Resource};
use berth_core::Error;
use berth_oci::RepoName;

/// What a request needs: what it cannot go without, and the source of a cross-repository
/// mount, which when refused turns the mount into a plain upload (so a repository the caller
/// cannot read is not revealed by mounting from it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needs {
    pub required: Vec<Need>,
    pub mount_from: Option<Need>,
}

/// The permissions a request needs; cancelling an upload is part of pushing.
pub fn needs(route: &OciRoute, method: &Method, query: &str) -> Result<Needs, Error> {
    let Some(repo) = route.repository() else {
        let resource = match route {
            OciRoute::Catalog => Resource::Catalog,
            _ => Resource::Registry,
        };
        return Ok(Needs {
            required: vec![Need {
                resource,
                action: Action::Pull,
            }],
            mount_from: None,
        });
    };
    let action = match *method {
        Method::GET | Method::HEAD => Action::Pull,
        Method::DELETE if !matches!(route, OciRoute::Upload { .. }) => Action::Delete,
        _ => Action::Push,
    };
    let mut mount_from = None;
    if let (OciRoute::UploadStart { .. }, Some(from)) = (route, query_param(query, "from")) {
        if query_param(query, "mount").is_some() {
            let from: RepoName = from
                .parse()
                .map_err(|e: berth_oci::name::NameError| Error::NameInvalid(e.to_string()))?;
            mount_from = Some(Need::repo(&from.with_default_namespace(), Action::Pull));
        }
    }
    Ok(Needs {
        required: vec![Need::repo(repo, action)],
        mount_from,
    })
}
