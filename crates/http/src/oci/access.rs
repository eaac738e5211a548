//! What each route and method needs from the access seam.

use super::headers::query_param;
use super::route::OciRoute;
use axum::http::Method;
use berth_core::access::{Action, Need, Resource};
use berth_core::Error;
use berth_oci::RepoName;

/// The permissions a request needs; cancelling an upload is part of pushing.
pub fn needs(route: &OciRoute, method: &Method, query: &str) -> Result<Vec<Need>, Error> {
    let Some(repo) = route.repository() else {
        let resource = match route {
            OciRoute::Catalog => Resource::Catalog,
            _ => Resource::Registry,
        };
        return Ok(vec![Need {
            resource,
            action: Action::Pull,
        }]);
    };
    let action = match *method {
        Method::GET | Method::HEAD => Action::Pull,
        Method::DELETE if !matches!(route, OciRoute::Upload { .. }) => Action::Delete,
        _ => Action::Push,
    };
    let mut needs = vec![Need::repo(repo, action)];
    if let (OciRoute::UploadStart { .. }, Some(from)) = (route, query_param(query, "from")) {
        if query_param(query, "mount").is_some() {
            let from: RepoName = from
                .parse()
                .map_err(|e: berth_oci::name::NameError| Error::NameInvalid(e.to_string()))?;
            needs.push(Need::repo(&from, Action::Pull));
        }
    }
    Ok(needs)
}
