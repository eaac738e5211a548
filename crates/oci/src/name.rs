//! Repository names: slash-separated path components as the distribution spec's grammar allows.

use std::fmt;
use std::str::FromStr;

/// Longest repository name accepted; CNCF Distribution's limit, which clients already expect.
pub const MAX_NAME_LEN: usize = 255;

/// A validated repository name such as `library/nginx` or `team/app/api`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid repository name {name:?}: {reason}")]
pub struct NameError {
    pub name: String,
    pub reason: &'static str,
}

impl RepoName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first path component, which later becomes the owning namespace.
    pub fn namespace(&self) -> Option<&str> {
        self.0.split_once('/').map(|(ns, _)| ns)
    }

    /// A bare name such as `nginx` means the official image `library/nginx`, as on Docker Hub.
    pub fn with_default_namespace(self) -> RepoName {
        if self.0.contains('/') || self.0.len() + OFFICIAL_PREFIX.len() > MAX_NAME_LEN {
            self
        } else {
            RepoName(format!("{OFFICIAL_PREFIX}{}", self.0))
        }
    }
}

/// Where bare names live.
const OFFICIAL_PREFIX: &str = "library/";

fn component_is_valid(component: &str) -> bool {
    // [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
    let bytes = component.as_bytes();
    let is_alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if is_alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !is_alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

impl FromStr for RepoName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = |reason| NameError {
            name: s.chars().take(300).collect(),
            reason,
        };
        if s.is_empty() {
            return Err(fail("the name is empty"));
        }
        if s.len() > MAX_NAME_LEN {
            return Err(fail("the name is longer than 255 characters"));
        }
        if !s.split('/').all(component_is_valid) {
            return Err(fail(
                "each path component must be lowercase letters and digits, separated by '.', '_', '__' or dashes",
            ));
        }
        Ok(RepoName(s.to_owned()))
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bare_names_are_official_images() {
        let bare: RepoName = "nginx".parse().unwrap();
        assert_eq!(bare.with_default_namespace().as_str(), "library/nginx");
        let full: RepoName = "team/app".parse().unwrap();
        assert_eq!(full.clone().with_default_namespace(), full);
        let long: RepoName = "a".repeat(250).parse().unwrap();
        assert_eq!(long.clone().with_default_namespace(), long);
    }

    #[test]
    fn accepts_spec_examples() {
        for good in [
            "a",
            "library/nginx",
            "my-org/my_app/api.v2",
            "a__b",
            "a---b",
            "0/1/2",
            "x.y_z",
        ] {
            assert!(good.parse::<RepoName>().is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn refuses_invalid_names() {
        for bad in [
            "", "A", "a/", "/a", "a//b", "-a", "a-", "a..b", "a___b", "a_.b", "a b", "ä", "a/../b",
        ] {
            assert!(bad.parse::<RepoName>().is_err(), "{bad:?} accepted");
        }
        assert!("a".repeat(256).parse::<RepoName>().is_err());
        assert!("a".repeat(255).parse::<RepoName>().is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn parse_never_panics(s in "\\PC*") {
            let _ = s.parse::<RepoName>();
        }

        #[test]
        fn generated_valid_names_parse(s in "[a-z0-9]{1,8}((\\.|_|__|-{1,3})[a-z0-9]{1,8}){0,3}(/[a-z0-9]{1,8}){0,3}") {
            prop_assert!(s.parse::<RepoName>().is_ok());
        }
    }
}
