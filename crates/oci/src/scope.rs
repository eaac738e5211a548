//! Docker token-authentication scopes: `type:name:actions`, e.g.
//! `repository:team/app:pull,push` or `registry:catalog:*`.

use std::fmt;
use std::str::FromStr;

/// One requested or granted scope. The name may itself contain `:` (a registry host with a
/// port), so the type ends at the first colon and the actions start after the last one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    pub resource_type: String,
    pub name: String,
    pub actions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid scope {0:?}: expected type:name:actions, e.g. repository:team/app:pull,push")]
pub struct ScopeError(pub String);

fn is_word(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// `repository` or `repository(plugin)`.
fn is_resource_type(s: &str) -> bool {
    match s.split_once('(') {
        None => is_word(s),
        Some((word, rest)) => is_word(word) && rest.strip_suffix(')').is_some_and(is_word),
    }
}

fn is_action(s: &str) -> bool {
    s == "*" || (!s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase()))
}

impl Scope {
    /// Whether the scope grants `action` (a `*` grants every action).
    pub fn allows(&self, action: &str) -> bool {
        self.actions.iter().any(|a| a == action || a == "*")
    }

    /// Parses every scope of a request: `scope` may repeat, and one value may hold several
    /// scopes separated by spaces (as the OAuth2 form does).
    pub fn parse_all<'a>(
        values: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<Scope>, ScopeError> {
        values
            .into_iter()
            .flat_map(str::split_whitespace)
            .map(str::parse)
            .collect()
    }
}

impl FromStr for Scope {
    type Err = ScopeError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let fail = || ScopeError(raw.chars().take(300).collect());
        let (resource_type, rest) = raw.split_once(':').ok_or_else(fail)?;
        let (name, actions) = rest.rsplit_once(':').ok_or_else(fail)?;
        if !is_resource_type(resource_type)
            || name.is_empty()
            || name.chars().any(char::is_whitespace)
        {
            return Err(fail());
        }
        let actions: Vec<String> = actions.split(',').map(str::to_owned).collect();
        if !actions.iter().all(|a| is_action(a)) {
            return Err(fail());
        }
        Ok(Scope {
            resource_type: resource_type.to_owned(),
            name: name.to_owned(),
            actions,
        })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.resource_type,
            self.name,
            self.actions.join(",")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_forms_clients_send() {
        let s: Scope = "repository:team/app:pull,push".parse().unwrap();
        assert_eq!(s.resource_type, "repository");
        assert_eq!(s.name, "team/app");
        assert_eq!(s.actions, ["pull", "push"]);
        assert!(s.allows("push") && !s.allows("delete"));

        let s: Scope = "registry:catalog:*".parse().unwrap();
        assert!(s.allows("pull") && s.allows("delete"));

        let s: Scope = "repository:localhost:5000/app:pull".parse().unwrap();
        assert_eq!(s.name, "localhost:5000/app");

        let s: Scope = "repository(plugin):vendor/x:pull".parse().unwrap();
        assert_eq!(s.resource_type, "repository(plugin)");
    }

    #[test]
    fn refuses_malformed_scopes() {
        for bad in [
            "",
            "repository",
            "repository:app",
            ":app:pull",
            "repository::pull",
            "repository:app:",
            "repository:app:pull,",
            "Repository:app:pull",
            "repository:app:PULL",
            "repository:a b:pull",
            "repository(:app:pull",
        ] {
            assert!(bad.parse::<Scope>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_request_may_repeat_and_space_separate_scopes() {
        let all = Scope::parse_all(["repository:a:pull", "repository:b:push registry:catalog:*"])
            .unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[2].resource_type, "registry");
        assert!(Scope::parse_all(["repository:a:pull", "nonsense"]).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn parse_never_panics(s in "\\PC{0,80}") {
            let _ = s.parse::<Scope>();
        }

        #[test]
        fn display_roundtrips(
            t in "[a-z]{1,10}",
            name in "[a-z0-9]{1,8}(:[0-9]{2,5})?(/[a-z0-9._-]{1,8}){0,3}",
            actions in proptest::collection::vec("[a-z]{1,6}|\\*", 1..4),
        ) {
            let scope = Scope { resource_type: t, name, actions };
            prop_assert_eq!(scope.to_string().parse::<Scope>().unwrap(), scope);
        }
    }
}
