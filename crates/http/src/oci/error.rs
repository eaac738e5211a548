//! Rendering domain errors as OCI error responses: one exhaustive match, tested as a table.

use axum::body::Body;
use axum::http::{header, Method, Response, StatusCode};
use berth_core::Error;
use berth_oci::ErrorCode;

/// The wire code and status for a domain error.
pub fn classify(err: &Error) -> (ErrorCode, StatusCode) {
    let code = match err {
        Error::BlobUnknown(_) => ErrorCode::BlobUnknown,
        Error::UploadUnknown => ErrorCode::BlobUploadUnknown,
        Error::ManifestUnknown(_) => ErrorCode::ManifestUnknown,
        Error::NameUnknown(_) => ErrorCode::NameUnknown,
        Error::NameInvalid(_) => ErrorCode::NameInvalid,
        Error::TagInvalid(_) => ErrorCode::TagInvalid,
        Error::DigestInvalid(_) | Error::DigestMismatch { .. } => ErrorCode::DigestInvalid,
        Error::ManifestInvalid(_) => ErrorCode::ManifestInvalid,
        Error::ManifestBlobUnknown(_) => ErrorCode::ManifestBlobUnknown,
        Error::ManifestTooLarge { .. } => {
            return (ErrorCode::SizeInvalid, StatusCode::PAYLOAD_TOO_LARGE)
        }
        Error::ChunkRejected(_) => {
            return (
                ErrorCode::BlobUploadInvalid,
                StatusCode::RANGE_NOT_SATISFIABLE,
            )
        }
        Error::RangeNotSatisfiable { .. } => ErrorCode::RangeInvalid,
        Error::SizeInvalid(_) => ErrorCode::SizeInvalid,
        Error::UploadInvalid(_) | Error::BodyInterrupted(_) => ErrorCode::BlobUploadInvalid,
        Error::BlobTooLarge { .. } => {
            return (ErrorCode::SizeInvalid, StatusCode::PAYLOAD_TOO_LARGE)
        }
        Error::UploadLimit { .. } => ErrorCode::TooManyRequests,
        // A spec code ("the upload can no longer proceed") that every client knows, with
        // 507 so clients and proxies see a server-side condition; the message says which.
        Error::StorageFull => {
            return (
                ErrorCode::BlobUploadInvalid,
                StatusCode::INSUFFICIENT_STORAGE,
            )
        }
        Error::Unsupported(_) => {
            // A refused format (schema 1) is a bad request, not a missing method.
            return (ErrorCode::Unsupported, StatusCode::BAD_REQUEST);
        }
        Error::PaginationInvalid(_) => ErrorCode::PaginationNumberInvalid,
        Error::NotFound(_) => return (ErrorCode::Unsupported, StatusCode::NOT_FOUND),
        Error::MethodNotAllowed(_) => ErrorCode::Unsupported,
        // Account errors belong to the management API; should one reach a registry route,
        // it must not tell whether an account exists.
        Error::AccountUnknown(_) => ErrorCode::Unauthorized,
        Error::AccountInvalid(_) | Error::Invalid(_) => {
            return (ErrorCode::Unsupported, StatusCode::BAD_REQUEST)
        }
        Error::TokenUnknown(_)
        | Error::TeamUnknown { .. }
        | Error::WebhookUnknown(_)
        | Error::ReplicationUnknown(_)
        | Error::BuildUnknown(_) => return (ErrorCode::Denied, StatusCode::NOT_FOUND),
        Error::Conflict(_) => return (ErrorCode::Denied, StatusCode::CONFLICT),
        Error::Unauthorized | Error::CredentialsInvalid | Error::TwoFactorRequired(_) => {
            ErrorCode::Unauthorized
        }
        Error::TooManyRequests { .. } | Error::PullRateLimited { .. } => ErrorCode::TooManyRequests,
        Error::Denied
        | Error::SignupClosed
        | Error::QuotaExceeded { .. }
        | Error::TagImmutable { .. }
        | Error::PullRefused { .. } => ErrorCode::Denied,
        Error::Internal(_) => ErrorCode::Unknown,
        // Distribution's catch-all code, with the gateway status a proxy's failure has.
        Error::Upstream(_) => return (ErrorCode::Unknown, StatusCode::BAD_GATEWAY),
        // Retryable: clients and load balancers retry a 503 (with `Retry-After`).
        Error::Unavailable(_) => return (ErrorCode::Unknown, StatusCode::SERVICE_UNAVAILABLE),
    };
    let status = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, status)
}

/// The OCI JSON error response for `err` (headers only for HEAD).
pub fn error_response(err: &Error, method: &Method) -> Response<Body> {
    let (code, status) = classify(err);
    let message = match err {
        Error::Internal(detail) => {
            tracing::error!(%detail, "request failed");
            code.default_message().to_owned()
        }
        Error::Unavailable(detail) => {
            tracing::warn!(%detail, "request failed: the database is unavailable");
            err.to_string()
        }
        other => other.to_string(),
    };
    let body = serde_json::json!({
        "errors": [{ "code": code.as_str(), "message": message, "detail": null }]
    })
    .to_string();
    let len = body.len();
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(body)
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
    match err {
        Error::RangeNotSatisfiable { size } => {
            if let Ok(v) = header::HeaderValue::from_str(&format!("bytes */{size}")) {
                headers.insert(header::CONTENT_RANGE, v);
            }
        }
        Error::TooManyRequests { retry_after_secs }
        | Error::PullRateLimited {
            retry_after_secs, ..
        } => {
            headers.insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(*retry_after_secs),
            );
        }
        Error::Unavailable(_) => {
            headers.insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(UNAVAILABLE_RETRY_AFTER_SECS),
            );
        }
        _ => {}
    }
    response
}

/// When a client should retry after the database was unavailable: a restart or failover
/// takes seconds, and the pool reconnects on its own.
const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 2;

#[cfg(test)]
mod tests {
    use super::*;
    use berth_oci::Digest;

    #[test]
    fn every_error_maps_to_the_spec_code_and_status() {
        let d = Digest::sha256_of(b"x");
        let table: Vec<(Error, &str, u16)> = vec![
            (Error::BlobUnknown(d.clone()), "BLOB_UNKNOWN", 404),
            (Error::UploadUnknown, "BLOB_UPLOAD_UNKNOWN", 404),
            (
                Error::ManifestUnknown("latest".into()),
                "MANIFEST_UNKNOWN",
                404,
            ),
            (
                Error::NameUnknown("a".parse().unwrap()),
                "NAME_UNKNOWN",
                404,
            ),
            (Error::NameInvalid("A".into()), "NAME_INVALID", 400),
            (Error::TagInvalid("-x".into()), "TAG_INVALID", 400),
            (Error::DigestInvalid("x".into()), "DIGEST_INVALID", 400),
            (
                Error::DigestMismatch {
                    expected: d.clone(),
                    actual: d.clone(),
                },
                "DIGEST_INVALID",
                400,
            ),
            (Error::ManifestInvalid("x".into()), "MANIFEST_INVALID", 400),
            (Error::ManifestBlobUnknown(d), "MANIFEST_BLOB_UNKNOWN", 400),
            (Error::ManifestTooLarge { limit: 1 }, "SIZE_INVALID", 413),
            (Error::ChunkRejected("x".into()), "BLOB_UPLOAD_INVALID", 416),
            (Error::RangeNotSatisfiable { size: 3 }, "RANGE_INVALID", 416),
            (Error::SizeInvalid("x".into()), "SIZE_INVALID", 400),
            (Error::UploadInvalid("x".into()), "BLOB_UPLOAD_INVALID", 400),
            (
                Error::BodyInterrupted("x".into()),
                "BLOB_UPLOAD_INVALID",
                400,
            ),
            (Error::Unsupported("schema 1".into()), "UNSUPPORTED", 400),
            (
                Error::PaginationInvalid("n".into()),
                "PAGINATION_NUMBER_INVALID",
                400,
            ),
            (Error::NotFound("/v2/x".into()), "UNSUPPORTED", 404),
            (Error::MethodNotAllowed("PATCH".into()), "UNSUPPORTED", 405),
            (Error::AccountUnknown("x".into()), "UNAUTHORIZED", 401),
            (Error::AccountInvalid("x".into()), "UNSUPPORTED", 400),
            (Error::TokenUnknown(3), "DENIED", 404),
            (
                Error::TeamUnknown {
                    org: "acme".into(),
                    team: "devs".into(),
                },
                "DENIED",
                404,
            ),
            (Error::Conflict("x".into()), "DENIED", 409),
            (Error::Unauthorized, "UNAUTHORIZED", 401),
            (Error::CredentialsInvalid, "UNAUTHORIZED", 401),
            (Error::TwoFactorRequired("x".into()), "UNAUTHORIZED", 401),
            (
                Error::TooManyRequests {
                    retry_after_secs: 5,
                },
                "TOOMANYREQUESTS",
                429,
            ),
            (
                Error::PullRateLimited {
                    limit: "100;w=21600".into(),
                    charged_to: "192.0.2.1".into(),
                    retry_after_secs: 216,
                    next_at: "2026-01-01T00:03:36Z".into(),
                    full_at: "2026-01-01T06:00:00Z".into(),
                },
                "TOOMANYREQUESTS",
                429,
            ),
            (Error::Denied, "DENIED", 403),
            (
                Error::TagImmutable {
                    tag: "v1".into(),
                    rule: "the immutable-tag rule of namespace acme (every tag)".into(),
                },
                "DENIED",
                403,
            ),
            (Error::SignupClosed, "DENIED", 403),
            (
                Error::PullRefused {
                    policy: "the namespace acme's pull policy \"verified signatures only\"".into(),
                    reason: "sha256:… has no signature".into(),
                },
                "DENIED",
                403,
            ),
            (
                Error::QuotaExceeded {
                    used: 10 << 30,
                    quota: 10 << 30,
                },
                "DENIED",
                403,
            ),
            (Error::Internal("disk on fire".into()), "UNKNOWN", 500),
            (
                Error::BlobTooLarge {
                    limit: 1,
                    size: "2".into(),
                },
                "SIZE_INVALID",
                413,
            ),
            (Error::UploadLimit { limit: 100 }, "TOOMANYREQUESTS", 429),
            (Error::StorageFull, "BLOB_UPLOAD_INVALID", 507),
            (
                Error::Unavailable("connection refused".into()),
                "UNKNOWN",
                503,
            ),
        ];
        for (err, code, status) in table {
            let (c, s) = classify(&err);
            assert_eq!((c.as_str(), s.as_u16()), (code, status), "{err:?}");
        }
    }

    #[test]
    fn an_unavailable_database_is_a_retryable_503_without_its_detail() {
        let err = Error::Unavailable("connect to 10.0.0.7:5432: refused".into());
        let response = error_response(&err, &Method::GET);
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        // The message sent is the error's text, which leaves the detail to the log.
        assert!(!err.to_string().contains("10.0.0.7"), "{err}");
    }

    #[test]
    fn internal_details_are_not_sent_to_clients() {
        let response = error_response(&Error::Internal("secret path /x".into()), &Method::GET);
        assert_eq!(response.status(), 500);
    }
}
