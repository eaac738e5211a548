//! Parsing a `/v2/...` path into the endpoint it names. Repository names contain slashes,
//! so the endpoint is recognized from the end of the path.

use axum::http::Method;
use berth_core::Error;
use berth_oci::reference::ReferenceError;
use berth_oci::{Digest, Reference, RepoName};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OciRoute {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags { name: RepoName },
    /// `/v2/<name>/manifests/<reference>`
    Manifest {
        name: RepoName,
        reference: Reference,
    },
    /// `/v2/<name>/blobs/<digest>`
    Blob { name: RepoName, digest: Digest },
    /// `/v2/<name>/blobs/uploads/`
    UploadStart { name: RepoName },
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload { name: RepoName, id: String },
    /// `/v2/<name>/referrers/<digest>`
    Referrers { name: RepoName, digest: Digest },
}

/// A repository name from path segments; a bare name is an official image (`library/…`).
fn name(segments: &[&str]) -> Result<RepoName, Error> {
    segments
        .join("/")
        .parse()
        .map(RepoName::with_default_namespace)
        .map_err(|e: berth_oci::name::NameError| Error::NameInvalid(e.to_string()))
}

fn digest(raw: &str) -> Result<Digest, Error> {
    raw.parse()
        .map_err(|e: berth_oci::digest::DigestError| Error::DigestInvalid(e.to_string()))
}

/// Decodes the few percent-escapes clients use in the last segment (`sha256%3A...`).
fn unescape(segment: &str) -> String {
    segment.replace("%3A", ":").replace("%3a", ":")
}

impl OciRoute {
    /// Parses the path after `/v2/` (without its leading slash).
    pub fn parse(rest: &str) -> Result<OciRoute, Error> {
        if rest.is_empty() {
            return Ok(OciRoute::Base);
        }
        if rest == "_catalog" {
            return Ok(OciRoute::Catalog);
        }
        let not_found = || {
            Error::NotFound(format!(
                "/v2/{}",
                rest.chars().take(300).collect::<String>()
            ))
        };
        let segs: Vec<&str> = rest.split('/').collect();
        let n = segs.len();
        let last = unescape(segs[n - 1]);
        let tail = |k: usize| -> &str {
            if n > k {
                segs[n - 1 - k]
            } else {
                ""
            }
        };
        if n >= 3 && tail(1) == "tags" && last == "list" {
            return Ok(OciRoute::Tags {
                name: name(&segs[..n - 2])?,
            });
        }
        if n >= 3 && tail(1) == "blobs" && last == "uploads" {
            return Ok(OciRoute::UploadStart {
                name: name(&segs[..n - 2])?,
            });
        }
        if n >= 4 && tail(2) == "blobs" && tail(1) == "uploads" {
            let name = name(&segs[..n - 3])?;
            if last.is_empty() {
                return Ok(OciRoute::UploadStart { name });
            }
            return Ok(OciRoute::Upload { name, id: last });
        }
        if n >= 3 && tail(1) == "manifests" {
            let name = name(&segs[..n - 2])?;
            let reference = last.parse().map_err(|e: ReferenceError| match e {
                ReferenceError::Tag(t) => Error::TagInvalid(t.to_string()),
                ReferenceError::Digest(d) => Error::DigestInvalid(d.to_string()),
            })?;
            return Ok(OciRoute::Manifest { name, reference });
        }
        if n >= 3 && tail(1) == "blobs" {
            return Ok(OciRoute::Blob {
                name: name(&segs[..n - 2])?,
                digest: digest(&last)?,
            });
        }
        if n >= 3 && tail(1) == "referrers" {
            return Ok(OciRoute::Referrers {
                name: name(&segs[..n - 2])?,
                digest: digest(&last)?,
            });
        }
        Err(not_found())
    }

    /// Parses the path of a request with `method`. A manifest reference that cannot be a tag
    /// names nothing that could be stored, so reading or deleting it answers like any unknown
    /// manifest (404 `MANIFEST_UNKNOWN`, as Distribution does and the OCI conformance suite
    /// expects); only a push is told that the tag is invalid.
    pub fn parse_for(rest: &str, method: &Method) -> Result<OciRoute, Error> {
        match OciRoute::parse(rest) {
            Err(Error::TagInvalid(_)) if method != Method::PUT => {
                let reference = rest.rsplit('/').next().unwrap_or_default();
                Err(Error::ManifestUnknown(
                    reference.chars().take(200).collect(),
                ))
            }
            parsed => parsed,
        }
    }

    /// The repository the route belongs to, if any.
    pub fn repository(&self) -> Option<&RepoName> {
        match self {
            OciRoute::Base | OciRoute::Catalog => None,
            OciRoute::Tags { name }
            | OciRoute::Manifest { name, .. }
            | OciRoute::Blob { name, .. }
            | OciRoute::UploadStart { name }
            | OciRoute::Upload { name, .. }
            | OciRoute::Referrers { name, .. } => Some(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn n(s: &str) -> RepoName {
        s.parse().unwrap()
    }

    #[test]
    fn parses_every_endpoint() {
        assert_eq!(OciRoute::parse("").unwrap(), OciRoute::Base);
        assert_eq!(OciRoute::parse("_catalog").unwrap(), OciRoute::Catalog);
        assert_eq!(
            OciRoute::parse("a/b/tags/list").unwrap(),
            OciRoute::Tags { name: n("a/b") }
        );
        assert_eq!(
            OciRoute::parse("a/manifests/latest").unwrap(),
            OciRoute::Manifest {
                name: n("library/a"),
                reference: "latest".parse().unwrap()
            }
        );
        assert_eq!(
            OciRoute::parse(&format!("a/b/c/blobs/{D}")).unwrap(),
            OciRoute::Blob {
                name: n("a/b/c"),
                digest: D.parse().unwrap()
            }
        );
        assert_eq!(
            OciRoute::parse(&format!("a/blobs/{}", D.replace(':', "%3A"))).unwrap(),
            OciRoute::Blob {
                name: n("library/a"),
                digest: D.parse().unwrap()
            }
        );
        assert_eq!(
            OciRoute::parse("a/blobs/uploads/").unwrap(),
            OciRoute::UploadStart {
                name: n("library/a")
            }
        );
        assert_eq!(
            OciRoute::parse("a/blobs/uploads").unwrap(),
            OciRoute::UploadStart {
                name: n("library/a")
            }
        );
        assert_eq!(
            OciRoute::parse("a/blobs/uploads/abc123").unwrap(),
            OciRoute::Upload {
                name: n("library/a"),
                id: "abc123".into()
            }
        );
        assert_eq!(
            OciRoute::parse(&format!("x/referrers/{D}")).unwrap(),
            OciRoute::Referrers {
                name: n("library/x"),
                digest: D.parse().unwrap()
            }
        );
        // Endpoint words are fine as name components.
        assert_eq!(
            OciRoute::parse("blobs/manifests/tags/list").unwrap(),
            OciRoute::Tags {
                name: n("blobs/manifests")
            }
        );
    }

    #[test]
    fn reports_what_is_wrong() {
        assert!(matches!(
            OciRoute::parse("UPPER/tags/list"),
            Err(Error::NameInvalid(_))
        ));
        assert!(matches!(
            OciRoute::parse("a/blobs/sha256:nothex"),
            Err(Error::DigestInvalid(_))
        ));
        assert!(matches!(
            OciRoute::parse("a/manifests/-bad"),
            Err(Error::TagInvalid(_))
        ));
        assert!(matches!(OciRoute::parse("a/b"), Err(Error::NotFound(_))));
        for method in [Method::GET, Method::HEAD, Method::DELETE] {
            assert!(
                matches!(
                    OciRoute::parse_for("a/manifests/.INVALID_MANIFEST_NAME", &method),
                    Err(Error::ManifestUnknown(reference)) if reference == ".INVALID_MANIFEST_NAME"
                ),
                "{method}"
            );
        }
        assert!(matches!(
            OciRoute::parse_for("a/manifests/.INVALID_MANIFEST_NAME", &Method::PUT),
            Err(Error::TagInvalid(_))
        ));
        assert!(matches!(
            OciRoute::parse("tags/list"),
            Err(Error::NotFound(_))
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn parse_never_panics(s in "[a-z0-9/._:%-]{0,80}") {
            let _ = OciRoute::parse(&s);
        }

        #[test]
        fn parse_never_panics_on_anything(s in "\\PC{0,80}") {
            let _ = OciRoute::parse(&s);
        }
    }
}
