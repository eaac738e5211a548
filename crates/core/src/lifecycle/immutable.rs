//! Immutable tags: the pure rule that decides whether a tag may be moved or deleted. The
//! store applies it inside the transaction that would move or delete the tag, so every
//! path (registry, API, UI, retention) is held to it alike.

use super::{check_tag_patterns, Target};
use crate::access::glob_matches;

/// One target's rule: which tags are immutable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImmutableRule {
    pub target: Target,
    /// Globs of the immutable tags; empty: every tag.
    pub tags: Vec<String>,
    /// Globs of tags left mutable although `tags` matches them.
    pub excludes: Vec<String>,
    /// Cosign's fallback tags stay mutable (signing rewrites them): on unless turned off.
    pub exempt_cosign: bool,
    pub updated_by: String,
    pub updated_at: i64,
}

/// A rule as a caller asks for it.
#[derive(Debug, Clone, Default)]
pub struct ImmutableRequest {
    pub tags: Vec<String>,
    pub excludes: Vec<String>,
    /// None: the default (exempt).
    pub exempt_cosign: Option<bool>,
}

impl ImmutableRequest {
    /// The checked patterns and the cosign exemption, or what is wrong with them.
    pub fn check(&self) -> Result<(Vec<String>, Vec<String>, bool), String> {
        Ok((
            check_tag_patterns(&self.tags, "tag")?,
            check_tag_patterns(&self.excludes, "exclusion")?,
            self.exempt_cosign.unwrap_or(true),
        ))
    }
}

impl ImmutableRule {
    /// Whether this rule makes `tag` immutable.
    pub fn protects(&self, tag: &str) -> bool {
        if self.exempt_cosign && is_cosign_fallback_tag(tag) {
            return false;
        }
        let included = self.tags.is_empty() || self.tags.iter().any(|p| glob_matches(p, tag));
        included && !self.excludes.iter().any(|p| glob_matches(p, tag))
    }

    /// How refusals name the rule: `the immutable-tag rule of acme (tags v*, except v*-rc)`.
    pub fn describe(&self) -> String {
        let tags = if self.tags.is_empty() {
            "every tag".to_owned()
        } else {
            format!("tags {}", self.tags.join(", "))
        };
        let except = if self.excludes.is_empty() {
            String::new()
        } else {
            format!(", except {}", self.excludes.join(", "))
        };
        format!(
            "the immutable-tag rule of {} {} ({tags}{except})",
            self.target.scope(),
            self.target.name()
        )
    }
}

/// The first of `rules` (a repository's own and its namespace's) that protects `tag`.
pub fn protecting<'a>(rules: &'a [ImmutableRule], tag: &str) -> Option<&'a ImmutableRule> {
    rules.iter().find(|rule| rule.protects(tag))
}

/// `sha256-<64 hex>.sig`, `.att` or `.sbom`: where cosign stores signatures, attestations and
/// SBOMs of the image with that digest when the registry's referrers API is not used.
pub fn is_cosign_fallback_tag(tag: &str) -> bool {
    cosign_subject(tag).is_some()
}

/// The digest (`sha256:<hex>`) a cosign fallback tag is attached to.
pub fn cosign_subject(tag: &str) -> Option<String> {
    let rest = tag.strip_prefix("sha256-")?;
    let (hex, suffix) = rest.split_once('.')?;
    let known = matches!(suffix, "sig" | "att" | "sbom");
    let hex_ok = hex.len() == 64
        && hex
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    (known && hex_ok).then(|| format!("sha256:{hex}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(tags: &[&str], excludes: &[&str]) -> ImmutableRule {
        ImmutableRule {
            target: Target::Namespace("acme".into()),
            tags: tags.iter().map(|s| s.to_string()).collect(),
            excludes: excludes.iter().map(|s| s.to_string()).collect(),
            exempt_cosign: true,
            updated_by: "alice".into(),
            updated_at: 0,
        }
    }

    #[test]
    fn patterns_exclusions_and_cosign_tags() {
        let sig = format!("sha256-{}.sig", "a".repeat(64));
        let cases: &[(&[&str], &[&str], &str, bool)] = &[
            (&[], &[], "latest", true),
            (&[], &[], &sig, false),
            (&["v*"], &[], "v1.2", true),
            (&["v*"], &[], "latest", false),
            (&["v*"], &["*-rc*"], "v1.2-rc1", false),
            (&["v*"], &["*-rc*"], "v1.2", true),
            (&[], &["dev-*"], "dev-42", false),
            (&["sha256-*"], &[], &sig, false),
        ];
        for (tags, excludes, tag, protected) in cases {
            assert_eq!(
                rule(tags, excludes).protects(tag),
                *protected,
                "{tags:?} except {excludes:?} on {tag}"
            );
        }
        let mut strict = rule(&[], &[]);
        strict.exempt_cosign = false;
        assert!(strict.protects(&sig));
    }

    #[test]
    fn cosign_fallback_tags_are_recognised_exactly() {
        let hex = "0123456789abcdef".repeat(4);
        assert_eq!(
            cosign_subject(&format!("sha256-{hex}.att")),
            Some(format!("sha256:{hex}"))
        );
        for tag in [
            format!("sha256-{hex}.txt"),
            format!("sha256-{}.sig", &hex[1..]),
            format!("sha256-{}.sig", hex.to_uppercase()),
            "sha256-.sig".to_owned(),
            "v1.sig".to_owned(),
        ] {
            assert!(!is_cosign_fallback_tag(&tag), "{tag}");
        }
    }

    #[test]
    fn the_description_names_the_target_and_patterns() {
        let text = rule(&["v*"], &["*-rc*"]).describe();
        assert_eq!(
            text,
            "the immutable-tag rule of namespace acme (tags v*, except *-rc*)"
        );
        assert!(rule(&[], &[]).describe().contains("every tag"));
    }
}
