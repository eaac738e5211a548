//! Who is calling: the credentials on a request, the challenge that asks for them, and the
//! Docker token endpoints that trade them for bearer tokens.

mod challenge;
pub(crate) mod token;

pub(crate) use challenge::{base_url, refuse};

use crate::AppState;
use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use berth_core::access::{Need, Principal};
use berth_core::auth::bearer_grants;
use berth_core::auth::jwt::Claims;
use berth_core::Error;
use std::net::IpAddr;
use std::sync::Arc;

/// A caller as its credentials show it: a principal (anonymous, or signed in with Basic
/// credentials), or the grants of a bearer token from our token service.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    Principal(Principal),
    Bearer(Arc<Claims>),
}

impl Caller {
    /// Checks every need: against the permission rules for a principal, against the token's
    /// `access` claim for a bearer.
    pub async fn authorize(&self, state: &AppState, needs: &[Need]) -> Result<(), Error> {
        match self {
            Caller::Principal(principal) => {
                state.auth.authorizer().authorize(principal, needs).await
            }
            Caller::Bearer(claims) => match needs.iter().all(|n| bearer_grants(claims, n)) {
                true => Ok(()),
                false => Err(Error::Unauthorized),
            },
        }
    }

    /// Whether one optional need is granted (a mount's source repository).
    pub async fn allows(&self, state: &AppState, need: &Need) -> Result<bool, Error> {
        match self.authorize(state, std::slice::from_ref(need)).await {
            Ok(()) => Ok(true),
            Err(Error::Unauthorized | Error::Denied) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// The principal behind the credentials, for listings that show only what it may read.
    pub async fn principal(&self, state: &AppState) -> Result<Principal, Error> {
        match self {
            Caller::Principal(principal) => Ok(principal.clone()),
            Caller::Bearer(claims) => state.auth.principal_of(claims).await,
        }
    }

    /// The name the audit log records.
    pub fn name(&self) -> String {
        match self {
            Caller::Principal(principal) => principal.name(),
            Caller::Bearer(claims) => claims.sub.clone(),
        }
    }

    pub fn is_bearer(&self) -> bool {
        matches!(self, Caller::Bearer(_))
    }
}

/// What a request's `Authorization` header carries. Parsed in one place
/// ([`credentials`]) for the registry, the token endpoint and the API alike; the scheme's
/// case does not matter (RFC 9110).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Credentials<'a> {
    Basic { name: String, secret: String },
    Bearer(&'a str),
}

/// `user:secret` from a Basic `Authorization` value.
fn basic_credentials(value: &str) -> Result<(String, String), Error> {
    let decoded = STANDARD
        .decode(value.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or(Error::CredentialsInvalid)?;
    let (name, secret) = decoded.split_once(':').ok_or(Error::CredentialsInvalid)?;
    Ok((name.to_owned(), secret.to_owned()))
}

/// The request's credentials: `None` without an `Authorization` header, an error for one
/// that is malformed or of another scheme.
pub(crate) fn credentials(headers: &HeaderMap) -> Result<Option<Credentials<'_>>, Error> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| Error::CredentialsInvalid)?;
    let (scheme, rest) = value.split_once(' ').ok_or(Error::CredentialsInvalid)?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let (name, secret) = basic_credentials(rest)?;
        Ok(Some(Credentials::Basic { name, secret }))
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Ok(Some(Credentials::Bearer(rest)))
    } else {
        Err(Error::CredentialsInvalid)
    }
}

/// Who is calling, from the `Authorization` header (none: anonymous).
pub(crate) async fn identify(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
) -> Result<Caller, Error> {
    match credentials(headers)? {
        None => Ok(Caller::Principal(Principal::anonymous())),
        Some(Credentials::Basic { name, secret }) => state
            .auth
            .basic(&name, &secret, peer)
            .await
            .map(Caller::Principal),
        Some(Credentials::Bearer(token)) => {
            state.auth.verify_bearer(token).await.map(Caller::Bearer)
        }
    }
}

/// The client's address, when the server knows it: the TCP peer's, or the one a trusted
/// proxy forwarded (`crate::origin`).
pub(crate) fn peer_address(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    crate::origin::RequestOrigin::of(extensions).client
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_decode() {
        let encoded = STANDARD.encode("alice:pa:ss word");
        assert_eq!(
            basic_credentials(&encoded).unwrap(),
            ("alice".to_owned(), "pa:ss word".to_owned())
        );
        assert!(basic_credentials("not base64!").is_err());
        assert!(basic_credentials(&STANDARD.encode("no-colon")).is_err());
    }

    fn headers_with(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            header::HeaderValue::from_str(authorization).unwrap(),
        );
        headers
    }

    #[test]
    fn credentials_take_either_scheme_in_any_case() {
        let encoded = STANDARD.encode("alice:secret");
        let alice = Credentials::Basic {
            name: "alice".into(),
            secret: "secret".into(),
        };
        for scheme in ["Basic", "basic", "BASIC"] {
            let headers = headers_with(&format!("{scheme} {encoded}"));
            assert_eq!(credentials(&headers).unwrap(), Some(alice.clone()));
        }
        let headers = headers_with("bearer  abc.def ");
        assert_eq!(
            credentials(&headers).unwrap(),
            Some(Credentials::Bearer("abc.def"))
        );
        assert_eq!(credentials(&HeaderMap::new()).unwrap(), None);
        for refused in ["Digest abc", "Basic", "Basic !!!", "Negotiate YII="] {
            assert!(
                credentials(&headers_with(refused)).is_err(),
                "{refused} is refused"
            );
        }
    }

    mod never_panic {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Any `Authorization` value: a scheme and credentials, or an error.
            #[test]
            fn authorization_headers_take_anything(raw in "\\PC{0,80}") {
                let _ = basic_credentials(&raw);
                let mut headers = HeaderMap::new();
                if let Ok(value) = header::HeaderValue::from_str(&raw) {
                    headers.insert(header::AUTHORIZATION, value);
                    let _ = credentials(&headers);
                }
            }

            /// Any name without a colon and any secret survive encoding and decoding.
            #[test]
            fn basic_credentials_round_trip(name in "[^:]{0,20}", secret in "\\PC{0,40}") {
                let encoded = STANDARD.encode(format!("{name}:{secret}"));
                prop_assert_eq!(basic_credentials(&encoded).ok(), Some((name, secret)));
            }
        }
    }
}
