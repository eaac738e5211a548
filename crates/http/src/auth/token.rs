//! The Docker token endpoints: `GET /token` (Basic credentials or anonymous) and the OAuth2
//! `POST /token` (password and refresh-token grants).

use super::{credentials, peer_address, Credentials};
use crate::oci::error_response;
use crate::query::{form_pairs, query_params};
use crate::AppState;
use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::http::{header, HeaderValue, Method, Request, Response, StatusCode};
use berth_core::access::Principal;
use berth_core::auth::{IssuedToken, LoginPurpose, MAX_SCOPES};
use berth_core::Error;
use berth_oci::Scope;
use serde_json::json;

/// A form body larger than this is refused: credentials and scopes are small.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// A `GET /token` query longer than this is refused: room for the most scopes a request
/// may carry, each with a repository name of the longest legal length.
const MAX_QUERY_BYTES: usize = 16 * 1024;

fn json_response(status: StatusCode, body: serde_json::Value) -> Response<Body> {
    let body = body.to_string();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // Tokens must not be cached by anything between us and the client.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn scopes<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Vec<Scope>, Error> {
    Scope::parse_all(values).map_err(|e| Error::Unsupported(e.to_string()))
}

/// `GET /token?service=&scope=&offline_token=`.
pub(crate) async fn get_token(
    State(state): State<AppState>,
    request: Request<Body>,
) -> Response<Body> {
    let method = request.method().clone();
    let (parts, _) = request.into_parts();
    let result = async {
        let query = parts.uri.query().unwrap_or_default();
        if query.len() > MAX_QUERY_BYTES {
            return Err(Error::Unsupported(format!(
                "the query is longer than {MAX_QUERY_BYTES} bytes: ask for at most \
                 {MAX_SCOPES} scopes"
            )));
        }
        let peer = peer_address(&parts.extensions);
        // A query's `+` is a space here: clients join several scopes with one (`a+b`).
        let requested: Vec<String> = form_pairs(query)
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v)
            .collect();
        let requested = scopes(requested.iter().map(String::as_str))?;
        let offline = query_params(query, "offline_token").any(|v| v == "true");
        // Docker's token endpoint takes Basic credentials only: a bearer is what it issues.
        let principal = match credentials(&parts.headers)? {
            None => Principal::anonymous(),
            Some(Credentials::Basic { name, secret }) => {
                state
                    .auth
                    .login(&name, &secret, peer, LoginPurpose::Registry)
                    .await?
            }
            Some(Credentials::Bearer(_)) => return Err(Error::CredentialsInvalid),
        };
        let issued = state.auth.issue(&principal, &requested, offline).await?;
        Ok::<_, Error>(docker_answer(issued))
    }
    .await;
    result.unwrap_or_else(|err| error_response(&err, &method))
}

fn docker_answer(issued: IssuedToken) -> Response<Body> {
    let mut body = json!({
        "token": issued.token,
        "access_token": issued.token,
        "expires_in": issued.expires_in,
        "issued_at": issued.issued_at,
    });
    if let Some(refresh) = issued.refresh_token {
        body["refresh_token"] = json!(refresh);
    }
    json_response(StatusCode::OK, body)
}

fn oauth_answer(issued: IssuedToken) -> Response<Body> {
    let mut body = json!({
        "access_token": issued.token,
        "scope": issued.scope,
        "expires_in": issued.expires_in,
        "issued_at": issued.issued_at,
        "token_type": "Bearer",
    });
    if let Some(refresh) = issued.refresh_token {
        body["refresh_token"] = json!(refresh);
    }
    json_response(StatusCode::OK, body)
}

/// The OAuth2 error answer for a grant we do not support.
fn unsupported_grant(grant: &str) -> Response<Body> {
    json_response(
        StatusCode::BAD_REQUEST,
        json!({
            "error": "unsupported_grant_type",
            "error_description": format!("grant_type {grant:?} is not supported: use password or refresh_token"),
        }),
    )
}

/// `POST /token` with an `application/x-www-form-urlencoded` body.
pub(crate) async fn post_token(
    State(state): State<AppState>,
    request: Request<Body>,
) -> Response<Body> {
    let method = request.method().clone();
    let peer = peer_address(request.extensions());
    let result = async {
        let body = to_bytes(request.into_body(), MAX_FORM_BYTES)
            .await
            .map_err(|_| {
                Error::SizeInvalid(format!("the form is larger than {MAX_FORM_BYTES} bytes"))
            })?;
        let body = std::str::from_utf8(&body)
            .map_err(|_| Error::Unsupported("the form is not UTF-8".into()))?;
        let form: Vec<(String, String)> = form_pairs(body).collect();
        let field = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let requested = scopes(
            form.iter()
                .filter(|(k, _)| k == "scope")
                .map(|(_, v)| v.as_str()),
        )?;
        let offline = field("access_type") == Some("offline");
        let principal = match field("grant_type").unwrap_or_default() {
            "password" => {
                let name = field("username").unwrap_or_default();
                let password = field("password").unwrap_or_default();
                state
                    .auth
                    .login(name, password, peer, LoginPurpose::Registry)
                    .await?
            }
            "refresh_token" => {
                let refresh = field("refresh_token").unwrap_or_default();
                state.auth.refresh_login(refresh).await?
            }
            other => return Ok(unsupported_grant(other)),
        };
        let issued = state.auth.issue(&principal, &requested, offline).await?;
        Ok::<_, Error>(oauth_answer(issued))
    }
    .await;
    result.unwrap_or_else(|err| error_response(&err, &method))
}

/// Anything but GET and POST on `/token`.
pub(crate) async fn other_method(request: Request<Body>) -> Response<Body> {
    let method: Method = request.method().clone();
    error_response(&Error::MethodNotAllowed(method.to_string()), &method)
}
