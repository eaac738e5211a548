//! Account names: they become namespaces, so they must be valid repository path components.

use crate::error::{Error, Result};

/// Names the audit log uses for actors that are not accounts (the administration CLI,
/// Berth itself, callers without credentials); an account with one would be ambiguous there.
pub const RESERVED_NAMES: [&str; 3] = ["anonymous", "berth", "cli"];

/// The longest account or team name.
pub const MAX_ACCOUNT_NAME_LEN: usize = 39;

/// What account and team names may look like.
pub const NAME_RULE: &str =
    "2 to 39 lowercase letters and digits, with single '-' or '_' between them";

/// A user or organization name: [`NAME_RULE`], and not one of [`RESERVED_NAMES`].
pub fn validate_username(name: &str) -> Result<()> {
    if RESERVED_NAMES.contains(&name) {
        return Err(Error::AccountInvalid(format!(
            "the name {name:?} is reserved"
        )));
    }
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(Error::AccountInvalid(format!(
            "invalid account name {:?}: {NAME_RULE}",
            shortened(name)
        )))
    }
}

/// A team name: the same shape as account names, so teams read the same everywhere.
pub fn validate_team_name(name: &str) -> Result<()> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(Error::AccountInvalid(format!(
            "invalid team name {:?}: {NAME_RULE}",
            shortened(name)
        )))
    }
}

fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    (2..=MAX_ACCOUNT_NAME_LEN).contains(&bytes.len())
        && alnum(bytes[0])
        && alnum(bytes[bytes.len() - 1])
        && bytes.iter().all(|&b| alnum(b) || b == b'-' || b == b'_')
        && !bytes.windows(2).any(|w| !alnum(w[0]) && !alnum(w[1]))
}

/// Enough of a rejected name to recognize it in an error message.
fn shortened(name: &str) -> String {
    name.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_namespace_safe() {
        for good in ["admin", "al", "dev-team", "a_b", "x9"] {
            assert!(validate_username(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "a",
            "Admin",
            "-a",
            "a-",
            "a--b",
            "a_-b",
            "a.b",
            "a/b",
            &"a".repeat(40),
            "cli",
            "anonymous",
        ] {
            assert!(validate_username(bad).is_err(), "{bad}");
        }
        assert!(
            validate_team_name("cli").is_ok(),
            "only accounts are reserved"
        );
        assert!(validate_team_name("Devs").is_err());
    }
}
