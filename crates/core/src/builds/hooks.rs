//! Push webhooks from git hosts: each provider's signature check (GitHub's
//! `X-Hub-Signature-256`, GitLab's `X-Gitlab-Token`, Gitea's and Forgejo's
//! `X-Gitea-Signature`, the generic trigger's secret token) and the refs a push names.
//! Pure: the caller hands in the headers it read and the raw body.

use super::rules::PushedRef;
use crate::error::{Error, Result};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// Bodies larger than this are refused before they are parsed (GitHub caps at 25 MB; a
/// push payload with its commit list stays far below this).
pub const MAX_HOOK_BODY: usize = 5 * 1024 * 1024;

/// Who sent the hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    GitHub,
    GitLab,
    Gitea,
    Generic,
}

impl Provider {
    pub fn parse(s: &str) -> Option<Provider> {
        match s {
            "github" => Some(Provider::GitHub),
            "gitlab" => Some(Provider::GitLab),
            "gitea" => Some(Provider::Gitea),
            "generic" => Some(Provider::Generic),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::GitLab => "gitlab",
            Provider::Gitea => "gitea",
            Provider::Generic => "generic",
        }
    }
}

/// What of a hook request the check reads: the provider's header (or the generic
/// trigger's `token`), and the event name header when the provider sends one.
#[derive(Debug, Clone, Default)]
pub struct HookRequest<'a> {
    /// `X-Hub-Signature-256`, `X-Gitlab-Token`, `X-Gitea-Signature` or the generic token.
    pub credential: Option<&'a str>,
    /// `X-GitHub-Event`, `X-Gitlab-Event`, `X-Gitea-Event`: pings and other events are
    /// accepted and build nothing.
    pub event: Option<&'a str>,
    pub body: &'a [u8],
}

fn hmac_hex(secret: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    mac
}

/// Compares two strings in time that depends only on their lengths.
fn same_secret(a: &str, b: &str) -> bool {
    use sha2::Digest as _;
    // Hashing both first makes the comparison length-independent too.
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Whether the request carries the right signature or token for `secret`; a missing or
/// malformed one is false.
pub fn verify(provider: Provider, secret: &str, request: &HookRequest<'_>) -> bool {
    let Some(credential) = request.credential.map(str::trim) else {
        return false;
    };
    let check_hex = |hex_tag: &str| {
        hex::decode(hex_tag)
            .map(|tag| hmac_hex(secret, request.body).verify_slice(&tag).is_ok())
            .unwrap_or(false)
    };
    match provider {
        Provider::GitHub => credential.strip_prefix("sha256=").is_some_and(check_hex),
        Provider::Gitea => check_hex(credential.strip_prefix("sha256=").unwrap_or(credential)),
        Provider::GitLab | Provider::Generic => same_secret(credential, secret),
    }
}

/// `sha256=<hex>` as GitHub signs a body: what tests and examples send.
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(hmac_hex(secret, body).finalize().into_bytes())
    )
}

/// GitHub's, Gitea's and GitLab's push payloads share these fields; the generic trigger
/// takes `ref` or `refs`, or nothing (the rules' own branches and tags).
#[derive(Debug, Deserialize)]
struct PushPayload {
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    #[serde(default)]
    refs: Vec<String>,
    after: Option<String>,
    checkout_sha: Option<String>,
    #[serde(default)]
    deleted: bool,
}

/// The all-zero id git hosts send as `after` when a ref was deleted.
const ZERO_COMMIT: &str = "0000000000000000000000000000000000000000";

/// The refs a verified hook pushed: empty for events that are not pushes (a ping) and for
/// deleted refs; for the generic trigger, an empty list means "the rules' own refs".
pub fn pushed_refs(provider: Provider, request: &HookRequest<'_>) -> Result<Vec<PushedRef>> {
    let is_push = match (provider, request.event) {
        (Provider::Generic, _) | (_, None) => true,
        (Provider::GitHub | Provider::Gitea, Some(event)) => event == "push" || event == "create",
        (Provider::GitLab, Some(event)) => event == "Push Hook" || event == "Tag Push Hook",
    };
    if !is_push {
        return Ok(Vec::new());
    }
    if provider == Provider::Generic && request.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let payload: PushPayload = serde_json::from_slice(request.body)
        .map_err(|e| Error::Invalid(format!("the hook's body is not a push payload: {e}")))?;
    let commit = payload
        .checkout_sha
        .or(payload.after)
        .filter(|c| c != ZERO_COMMIT && !c.is_empty());
    if payload.deleted || (provider != Provider::Generic && commit.is_none()) {
        return Ok(Vec::new());
    }
    if let Some(commit) = &commit {
        if !commit.chars().all(|c| c.is_ascii_hexdigit()) || commit.len() > 64 {
            return Err(Error::Invalid(format!("{commit:?} is not a commit id")));
        }
    }
    let mut refs = Vec::new();
    for name in payload.git_ref.into_iter().chain(payload.refs) {
        refs.push(PushedRef::parse(&name, commit.clone())?);
    }
    Ok(refs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builds::rules::RefKind;

    const BODY: &[u8] = br#"{"ref":"refs/tags/v1.2.3","after":"0123456789abcdef0123456789abcdef01234567","deleted":false}"#;

    fn request<'a>(credential: Option<&'a str>, body: &'a [u8]) -> HookRequest<'a> {
        HookRequest {
            credential,
            event: Some("push"),
            body,
        }
    }

    #[test]
    fn github_signatures_follow_the_documented_vector() {
        // GitHub's documentation's test vector.
        let sig = github_signature("It's a Secret to Everybody", b"Hello, World!");
        assert_eq!(
            sig,
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn each_provider_accepts_only_its_right_credential() {
        let secret = "s3cret";
        let good_gh = github_signature(secret, BODY);
        let bad_gh = github_signature("other", BODY);
        let gitea = good_gh.trim_start_matches("sha256=").to_owned();
        let cases: &[(Provider, Option<&str>, bool)] = &[
            (Provider::GitHub, Some(&good_gh), true),
            (Provider::GitHub, Some(&bad_gh), false),
            (Provider::GitHub, Some(&gitea), false),
            (Provider::GitHub, Some("sha256=zz"), false),
            (Provider::GitHub, None, false),
            (Provider::Gitea, Some(&gitea), true),
            (Provider::Gitea, Some(&bad_gh), false),
            (Provider::GitLab, Some("s3cret"), true),
            (Provider::GitLab, Some("s3cre"), false),
            (Provider::GitLab, None, false),
            (Provider::Generic, Some("s3cret"), true),
            (Provider::Generic, Some(""), false),
        ];
        for (provider, credential, want) in cases {
            assert_eq!(
                verify(*provider, secret, &request(*credential, BODY)),
                *want,
                "{provider:?} {credential:?}"
            );
        }
        // A body altered after signing fails.
        let altered =
            br#"{"ref":"refs/tags/v9","after":"0123456789abcdef0123456789abcdef01234567"}"#;
        assert!(!verify(
            Provider::GitHub,
            secret,
            &request(Some(&good_gh), altered)
        ));
    }

    #[test]
    fn pushes_name_their_refs_and_other_events_build_nothing() {
        let refs = pushed_refs(Provider::GitHub, &request(None, BODY)).unwrap();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].kind, Some(RefKind::Tag));
        assert_eq!(refs[0].name, "v1.2.3");
        assert_eq!(
            refs[0].commit.as_deref(),
            Some("0123456789abcdef0123456789abcdef01234567")
        );
        let ping = HookRequest {
            event: Some("ping"),
            ..request(None, b"{\"zen\":\"x\"}")
        };
        assert!(pushed_refs(Provider::GitHub, &ping).unwrap().is_empty());
        let deleted = br#"{"ref":"refs/heads/x","after":"0000000000000000000000000000000000000000","deleted":true}"#;
        assert!(pushed_refs(Provider::GitHub, &request(None, deleted))
            .unwrap()
            .is_empty());
        let gitlab = HookRequest {
            event: Some("Push Hook"),
            ..request(None, br#"{"ref":"refs/heads/main","checkout_sha":"abc1"}"#)
        };
        assert_eq!(
            pushed_refs(Provider::GitLab, &gitlab).unwrap()[0].name,
            "main"
        );
        let generic = br#"{"refs":["refs/heads/main","v2"]}"#;
        let refs = pushed_refs(Provider::Generic, &request(None, generic)).unwrap();
        assert_eq!(refs.len(), 2);
        assert!(pushed_refs(Provider::Generic, &request(None, b""))
            .unwrap()
            .is_empty());
        assert!(pushed_refs(Provider::GitHub, &request(None, b"not json")).is_err());
        assert!(pushed_refs(
            Provider::GitHub,
            &request(None, br#"{"ref":"refs/heads/-x","after":"ab"}"#)
        )
        .is_err());
    }
}
