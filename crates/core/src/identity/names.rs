//! Account names: they become namespaces, so they must be valid repository path components.

use crate::error::{Error, Result};

/// Lowercase letters and digits, single `-` or `_` between them, 2 to 39 characters.
pub fn validate_username(name: &str) -> Result<()> {
    let bytes = name.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let valid = (2..=39).contains(&bytes.len())
        && alnum(bytes[0])
        && alnum(bytes[bytes.len() - 1])
        && bytes.iter().all(|&b| alnum(b) || b == b'-' || b == b'_')
        && !bytes.windows(2).any(|w| !alnum(w[0]) && !alnum(w[1]));
    if valid {
        Ok(())
    } else {
        Err(Error::AccountInvalid(format!(
            "invalid account name {:?}: 2 to 39 lowercase letters and digits, with single '-' or '_' between them",
            name.chars().take(60).collect::<String>()
        )))
    }
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
        ] {
            assert!(validate_username(bad).is_err(), "{bad}");
        }
    }
}
