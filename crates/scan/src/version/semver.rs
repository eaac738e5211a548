//! Semantic Versioning 2.0.0 precedence (npm, crates.io): `MAJOR.MINOR.PATCH[-pre][+build]`.

use std::cmp::Ordering;

struct SemVer<'a> {
    core: [u128; 3],
    pre: Vec<&'a str>,
}

fn numeric(s: &str) -> Option<u128> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u128, |n, d| {
        n.saturating_mul(10).saturating_add(u128::from(d - b'0'))
    }))
}

fn parse(input: &str) -> Option<SemVer<'_>> {
    // npm tolerates a leading `v` or `=`; build metadata never affects precedence.
    let s = input.trim().trim_start_matches(['v', '=']);
    let s = s.split_once('+').map_or(s, |(head, _)| head);
    let (core, pre) = match s.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (s, None),
    };
    let mut parts = core.split('.');
    let mut numbers = [0u128; 3];
    for slot in &mut numbers {
        *slot = numeric(parts.next()?)?;
    }
    if parts.next().is_some() {
        return None;
    }
    let pre: Vec<&str> = match pre {
        Some(pre) => pre.split('.').collect(),
        None => Vec::new(),
    };
    let valid_identifier =
        |id: &&str| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !pre.iter().all(valid_identifier) {
        return None;
    }
    Some(SemVer { core: numbers, pre })
}

fn identifier_order(a: &str, b: &str) -> Ordering {
    match (numeric(a), numeric(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        // Numeric identifiers have lower precedence than alphanumeric ones.
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// Compares two semantic versions by precedence; `None` when either is not one.
pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    let (a, b) = (parse(a)?, parse(b)?);
    let order = a
        .core
        .cmp(&b.core)
        .then_with(|| match (a.pre.is_empty(), b.pre.is_empty()) {
            (true, true) => Ordering::Equal,
            // A pre-release has lower precedence than the release itself.
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => a
                .pre
                .iter()
                .zip(&b.pre)
                .map(|(x, y)| identifier_order(x, y))
                .find(|o| o.is_ne())
                .unwrap_or_else(|| a.pre.len().cmp(&b.pre.len())),
        });
    Some(order)
}
