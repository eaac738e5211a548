//! How the management API reports failures: the registry's JSON error envelope, with codes
//! for what only the API can get wrong (its JSON bodies, accounts, teams, tokens, paths).

use crate::oci::error_response;
use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Response, StatusCode};
use berth_core::Error;

/// A failed API request.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// What the management service or sign-in refused.
    Domain(Error),
    /// The request itself is malformed: its JSON body, a query parameter, a path component.
    BadRequest(String),
    /// A body over [`super::wire::MAX_BODY_BYTES`].
    BodyTooLarge,
    /// No endpoint has this path.
    NoRoute(String),
    /// The endpoint exists and the thing it reads is not set (a rule, a policy).
    Missing(String),
    /// The path exists, the method does not; these are the ones it has.
    MethodNotAllowed(&'static [Method]),
}

impl From<Error> for ApiError {
    fn from(err: Error) -> ApiError {
        ApiError::Domain(err)
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// The error response; domain errors the registry also knows keep the registry's code and
/// status, so a private repository answers here exactly as on `/v2/`.
pub(crate) fn render(err: &ApiError, method: &Method) -> Response<Body> {
    match err {
        ApiError::Domain(domain) => match api_classification(domain) {
            Some((status, code)) => envelope(status, code, &domain.to_string()),
            None => error_response(domain, method),
        },
        ApiError::BadRequest(message) => envelope(StatusCode::BAD_REQUEST, "BAD_REQUEST", message),
        ApiError::BodyTooLarge => envelope(
            StatusCode::PAYLOAD_TOO_LARGE,
            "SIZE_INVALID",
            &format!(
                "the request body is larger than {} bytes",
                super::wire::MAX_BODY_BYTES
            ),
        ),
        ApiError::Missing(what) => envelope(StatusCode::NOT_FOUND, "NOT_FOUND", what),
        ApiError::NoRoute(path) => envelope(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("no such endpoint: {path}"),
        ),
        ApiError::MethodNotAllowed(allowed) => {
            let mut response = envelope(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                &format!("method {method} is not allowed here"),
            );
            let allow = allowed
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            if let Ok(value) = HeaderValue::from_str(&allow) {
                response.headers_mut().insert(header::ALLOW, value);
            }
            response
        }
    }
}

/// Status and code of the errors the API reports differently from the registry. The
/// registry hides accounts behind `UNAUTHORIZED`; here they are what the caller manages.
fn api_classification(err: &Error) -> Option<(StatusCode, &'static str)> {
    Some(match err {
        Error::AccountUnknown(_)
        | Error::TokenUnknown(_)
        | Error::TeamUnknown { .. }
        | Error::WebhookUnknown(_)
        | Error::ReplicationUnknown(_)
        | Error::BuildUnknown(_) => (StatusCode::NOT_FOUND, "NOT_FOUND"),
        Error::AccountInvalid(_) | Error::Invalid(_) => (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
        Error::Conflict(_) => (StatusCode::CONFLICT, "CONFLICT"),
        _ => return None,
    })
}

/// `{"errors":[{"code","message","detail"}]}`, as every registry error.
fn envelope(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({
        "errors": [{ "code": code, "message": message, "detail": null }]
    });
    super::wire::json_response(status, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_and_code(err: ApiError) -> (u16, String) {
        let response = render(&err, &Method::GET);
        let status = response.status().as_u16();
        let body = futures_util::FutureExt::now_or_never(http_body_util::BodyExt::collect(
            response.into_body(),
        ))
        .expect("the body is ready")
        .expect("the body reads")
        .to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        (
            status,
            json["errors"][0]["code"].as_str().unwrap().to_owned(),
        )
    }

    #[test]
    fn api_errors_name_what_went_wrong() {
        let table: Vec<(ApiError, u16, &str)> = vec![
            (Error::AccountUnknown("bob".into()).into(), 404, "NOT_FOUND"),
            (Error::TokenUnknown(4).into(), 404, "NOT_FOUND"),
            (
                Error::AccountInvalid("short".into()).into(),
                400,
                "BAD_REQUEST",
            ),
            (Error::Conflict("acme".into()).into(), 409, "CONFLICT"),
            (
                Error::NameUnknown("acme/app".parse().unwrap()).into(),
                404,
                "NAME_UNKNOWN",
            ),
            (Error::Unauthorized.into(), 401, "UNAUTHORIZED"),
            (Error::Denied.into(), 403, "DENIED"),
            (Error::Internal("disk".into()).into(), 500, "UNKNOWN"),
            (ApiError::BadRequest("x".into()), 400, "BAD_REQUEST"),
            (ApiError::BodyTooLarge, 413, "SIZE_INVALID"),
            (ApiError::NoRoute("/api/x".into()), 404, "NOT_FOUND"),
            (
                ApiError::MethodNotAllowed(&[Method::GET]),
                405,
                "METHOD_NOT_ALLOWED",
            ),
        ];
        for (err, status, code) in table {
            let shown = format!("{err:?}");
            assert_eq!(status_and_code(err), (status, code.to_owned()), "{shown}");
        }
    }

    #[test]
    fn method_not_allowed_lists_the_allowed_ones() {
        let response = render(
            &ApiError::MethodNotAllowed(&[Method::GET, Method::PATCH]),
            &Method::PUT,
        );
        assert_eq!(response.headers()[header::ALLOW], "GET, PATCH");
    }
}
