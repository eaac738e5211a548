//! rpm's version order (rpm 4.15 and later): `[epoch:]version[-release]`, each part compared
//! by rpmvercmp's rules — alternating digit and letter segments, separators ignored, `~`
//! before everything (even the end), `^` after the end but before any further segment.

use std::cmp::Ordering;

struct Evr<'a> {
    epoch: &'a str,
    version: &'a str,
    release: Option<&'a str>,
}

fn parse(value: &str) -> Option<Evr<'_>> {
    let value = value.trim();
    if value.is_empty() || value.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return None;
    }
    let (epoch, rest) = match value.split_once(':') {
        Some((epoch, rest)) => {
            if epoch.is_empty() || !epoch.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (epoch, rest)
        }
        None => ("0", value),
    };
    // A version holds no hyphen; the release is what follows the last one.
    let (version, release) = match rest.rsplit_once('-') {
        Some((version, release)) => (version, Some(release)),
        None => (rest, None),
    };
    if version.is_empty() || release.is_some_and(str::is_empty) {
        return None;
    }
    Some(Evr {
        epoch,
        version,
        release,
    })
}

/// Compares two rpm EVRs; `None` when either is malformed. As rpm does, a release missing
/// on either side is not compared (`1.0` matches every `1.0-*`).
pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    let (a, b) = (parse(a)?, parse(b)?);
    let mut order = rpmvercmp(a.epoch, b.epoch).then_with(|| rpmvercmp(a.version, b.version));
    if let (Some(ra), Some(rb)) = (a.release, b.release) {
        order = order.then_with(|| rpmvercmp(ra, rb));
    }
    Some(order)
}

fn is_separator(b: u8) -> bool {
    !b.is_ascii_alphanumeric() && b != b'~' && b != b'^'
}

/// rpmvercmp on one part (an epoch, a version or a release).
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    loop {
        while i < a.len() && is_separator(a[i]) {
            i += 1;
        }
        while j < b.len() && is_separator(b[j]) {
            j += 1;
        }
        let (ca, cb) = (a.get(i).copied(), b.get(j).copied());
        // `~` (a pre-release) sorts before anything, the end of the string included.
        if ca == Some(b'~') || cb == Some(b'~') {
            if ca != Some(b'~') {
                return Ordering::Greater;
            }
            if cb != Some(b'~') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        // `^` (a post-release snapshot) sorts after the end of the string but before any
        // other segment.
        if ca == Some(b'^') || cb == Some(b'^') {
            match (ca, cb) {
                (None, _) => return Ordering::Less,
                (_, None) => return Ordering::Greater,
                (Some(x), _) if x != b'^' => return Ordering::Greater,
                (_, Some(y)) if y != b'^' => return Ordering::Less,
                _ => {}
            }
            i += 1;
            j += 1;
            continue;
        }
        let (Some(ca), Some(_)) = (ca, cb) else {
            break;
        };
        let numeric = ca.is_ascii_digit();
        let in_segment = |c: u8| {
            if numeric {
                c.is_ascii_digit()
            } else {
                c.is_ascii_alphabetic()
            }
        };
        let start_a = i;
        while i < a.len() && in_segment(a[i]) {
            i += 1;
        }
        let start_b = j;
        while j < b.len() && in_segment(b[j]) {
            j += 1;
        }
        // Segments of different kinds: a number is newer than letters.
        if start_b == j {
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let (mut sa, mut sb) = (&a[start_a..i], &b[start_b..j]);
        if numeric {
            while sa.first() == Some(&b'0') {
                sa = &sa[1..];
            }
            while sb.first() == Some(&b'0') {
                sb = &sb[1..];
            }
            // Without leading zeros the longer number is the larger; no parsing, so no
            // overflow on long digit runs.
            let by_length = sa.len().cmp(&sb.len());
            if by_length != Ordering::Equal {
                return by_length;
            }
        }
        let order = sa.cmp(sb);
        if order != Ordering::Equal {
            return order;
        }
    }
    // Equal so far: whichever has segments left is newer.
    match (i >= a.len(), j >= b.len()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        _ => Ordering::Greater,
    }
}
