//! dpkg's version order (deb-version(7)): `[epoch:]upstream[-revision]`, compared part by part.

use std::cmp::Ordering;

struct DebVersion<'a> {
    epoch: u64,
    upstream: &'a str,
    revision: &'a str,
}

fn parse(version: &str) -> Option<DebVersion<'_>> {
    let version = version.trim();
    let (epoch, rest) = match version.split_once(':') {
        Some((epoch, rest)) => {
            if epoch.is_empty() || !epoch.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (epoch.parse().ok()?, rest)
        }
        None => (0, version),
    };
    // The revision is what follows the last hyphen; an upstream may hold hyphens itself.
    let (upstream, revision) = match rest.rsplit_once('-') {
        Some((upstream, revision)) => (upstream, revision),
        None => (rest, ""),
    };
    let starts_with_digit = upstream.bytes().next().is_some_and(|b| b.is_ascii_digit());
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b".+~-:".contains(&b);
    if !starts_with_digit || !upstream.bytes().all(allowed) {
        return None;
    }
    if !revision
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+.~".contains(&b))
    {
        return None;
    }
    Some(DebVersion {
        epoch,
        upstream,
        revision,
    })
}

/// Compares two Debian versions; `None` when either is malformed.
pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    let (a, b) = (parse(a)?, parse(b)?);
    Some(
        a.epoch
            .cmp(&b.epoch)
            .then_with(|| compare_part(a.upstream, b.upstream))
            .then_with(|| compare_part(a.revision, b.revision)),
    )
}

/// The weight of one non-digit character: `~` sorts before everything, even the end of
/// the string; letters before the other punctuation.
fn weight(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

/// Alternates a non-digit run, compared by `weight`, and a digit run, compared as a number.
fn compare_part(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let (wa, wb) = (weight(a.get(i).copied()), weight(b.get(j).copied()));
            if wa != wb {
                return wa.cmp(&wb);
            }
            i = (i + 1).min(a.len());
            j = (j + 1).min(b.len());
        }
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        let start_a = i;
        while i < a.len() && a[i].is_ascii_digit() {
            i += 1;
        }
        let start_b = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        // Without leading zeros, the longer run of digits is the larger number; equal
        // lengths compare digit by digit, so no run is ever parsed into an integer.
        let (da, db) = (&a[start_a..i], &b[start_b..j]);
        let order = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}
