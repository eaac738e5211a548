//! The `WWW-Authenticate: Bearer` challenge that sends registry clients to the token
//! service, with the scope they need.

use crate::oci::error_response;
use crate::origin::RequestOrigin;
use crate::AppState;
use axum::body::Body;
use axum::http::{header, Extensions, HeaderValue, Method, Response};
use berth_core::access::{Need, Resource};
use berth_core::Error;

/// Where the token service is: the configured public URL, or the scheme and host the client
/// used (as a trusted proxy forwarded them, if one did).
pub(crate) fn base_url(state: &AppState, extensions: &Extensions) -> String {
    if let Some(url) = &state.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let origin = RequestOrigin::of(extensions);
    let scheme = if origin.https { "https" } else { "http" };
    let host = origin.host.as_deref().unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// `repository:a/b:pull,push registry:catalog:*` for a request's needs.
fn scope_of(needs: &[Need]) -> String {
    let mut scopes: Vec<(String, Vec<&str>)> = Vec::new();
    for need in needs {
        let resource = match &need.resource {
            Resource::Registry => continue,
            Resource::Catalog => "registry:catalog".to_owned(),
            Resource::Repository(repo) => format!("repository:{repo}"),
        };
        let action = match need.resource {
            Resource::Catalog => "*",
            _ => need.action.as_str(),
        };
        match scopes.iter_mut().find(|(r, _)| *r == resource) {
            Some((_, actions)) if !actions.contains(&action) => actions.push(action),
            Some(_) => {}
            None => scopes.push((resource, vec![action])),
        }
    }
    scopes
        .into_iter()
        .map(|(resource, actions)| {
            // Pushing needs pulling too; asking for both saves clients a second round trip.
            let mut actions = actions;
            if actions.contains(&"push") && !actions.contains(&"pull") {
                actions.insert(0, "pull");
            }
            format!("{resource}:{}", actions.join(","))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The answer to a refused request: the error, with a Bearer challenge when credentials
/// (or a token with more scope) could help.
pub(crate) fn refuse(
    state: &AppState,
    extensions: &Extensions,
    method: &Method,
    err: &Error,
    needs: &[Need],
    insufficient_scope: bool,
) -> Response<Body> {
    let mut response = error_response(err, method);
    let challenged = matches!(
        err,
        Error::Unauthorized | Error::CredentialsInvalid | Error::TwoFactorRequired(_)
    );
    if challenged {
        let settings = state.auth.settings();
        let mut challenge = format!(
            "Bearer realm=\"{}/token\",service=\"{}\"",
            base_url(state, extensions),
            settings.service
        );
        let scope = scope_of(needs);
        if !scope.is_empty() {
            challenge.push_str(&format!(",scope=\"{scope}\""));
        }
        if insufficient_scope {
            challenge.push_str(",error=\"insufficient_scope\"");
        }
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::access::Action;

    #[test]
    fn scopes_merge_per_resource() {
        let repo = "team/app".parse().unwrap();
        let other = "team/base".parse().unwrap();
        let needs = [
            Need::repo(&repo, Action::Push),
            Need::repo(&other, Action::Pull),
            Need {
                resource: Resource::Catalog,
                action: Action::Pull,
            },
        ];
        assert_eq!(
            scope_of(&needs),
            "repository:team/app:pull,push repository:team/base:pull registry:catalog:*"
        );
        let registry = [Need {
            resource: Resource::Registry,
            action: Action::Pull,
        }];
        assert_eq!(scope_of(&registry), "");
    }
}
