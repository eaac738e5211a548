//! Reading request headers and building the common response headers of the registry API.

use axum::http::header::{HeaderMap, HeaderName, HeaderValue};
use berth_core::Error;

/// A header as text, if present and visible ASCII.
pub fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `Content-Length`, if the client sent one.
pub fn content_length(headers: &HeaderMap) -> Result<Option<u64>, Error> {
    match headers.get(axum::http::header::CONTENT_LENGTH) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| Error::SizeInvalid("Content-Length is not a number".into())),
    }
}

/// A header value from text we built; falls back to an empty value rather than panicking.
pub fn value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub fn insert(headers: &mut HeaderMap, name: &'static str, text: &str) {
    headers.insert(HeaderName::from_static(name), value(text));
}

/// `Range: 0-<end>` as the spec reports upload progress (`0-0` for an empty upload, as
/// CNCF Distribution does).
pub fn upload_range(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    mod never_panic {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn content_length_is_a_number_or_an_error(raw in "[ 0-9a-z+-]{0,24}") {
                let mut headers = HeaderMap::new();
                if let Ok(value) = HeaderValue::from_str(&raw) {
                    headers.insert(axum::http::header::CONTENT_LENGTH, value);
                    if let Ok(Some(n)) = content_length(&headers) {
                        prop_assert_eq!(Some(n), raw.trim().parse::<u64>().ok());
                    }
                }
            }
        }
    }
}
