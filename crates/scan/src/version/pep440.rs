//! PEP 440's version order (Python packages): epoch, release, pre-, post- and development
//! releases and local labels, after PEP 440's normalisation of spellings.

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum LocalPart {
    // Declared first: an alphanumeric segment sorts before any numeric one.
    Text(String),
    Number(u128),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Version {
    epoch: u128,
    release: Vec<u128>,
    /// (0 = a, 1 = b, 2 = rc, number)
    pre: Option<(u8, u128)>,
    post: Option<u128>,
    dev: Option<u128>,
    local: Vec<LocalPart>,
}

/// Splits a leading run of ASCII digits off `s`.
fn number(s: &str) -> (Option<u128>, &str) {
    let end = s
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    if end == 0 {
        return (None, s);
    }
    let value = s[..end].bytes().fold(0u128, |n, d| {
        n.saturating_mul(10).saturating_add(u128::from(d - b'0'))
    });
    (Some(value), &s[end..])
}

fn strip_separator(s: &str) -> &str {
    s.strip_prefix(['.', '-', '_']).unwrap_or(s)
}

/// A keyword from `words` at the start of `s`, longest first, with its index.
fn keyword<'a>(s: &'a str, words: &[(&str, u8)]) -> Option<(u8, &'a str)> {
    words
        .iter()
        .find_map(|(word, value)| s.strip_prefix(word).map(|rest| (*value, rest)))
}

fn parse(input: &str) -> Option<Version> {
    let lowered = input.trim().to_ascii_lowercase();
    let mut s = lowered.strip_prefix('v').unwrap_or(&lowered);
    let (public, local) = match s.split_once('+') {
        Some((public, local)) => (public, Some(local)),
        None => (s, None),
    };
    s = public;

    let (first, rest) = number(s);
    let mut first = first?;
    s = rest;
    let mut epoch = 0;
    if let Some(rest) = s.strip_prefix('!') {
        epoch = first;
        let (n, rest) = number(rest);
        first = n?;
        s = rest;
    }
    let mut release = vec![first];
    while let Some(rest) = s.strip_prefix('.') {
        let (n, rest) = number(rest);
        let Some(n) = n else { break };
        release.push(n);
        s = rest;
    }

    // Pre-release: [sep](a|alpha|b|beta|c|rc|pre|preview)[sep][N]; a missing N is 0.
    let mut pre = None;
    let pre_words = [
        ("alpha", 0),
        ("a", 0),
        ("beta", 1),
        ("b", 1),
        ("preview", 2),
        ("pre", 2),
        ("rc", 2),
        ("c", 2),
    ];
    if let Some((kind, rest)) = keyword(strip_separator(s), &pre_words) {
        let rest_after_sep = strip_separator(rest);
        let (n, after) = number(rest_after_sep);
        pre = Some((kind, n.unwrap_or(0)));
        s = if n.is_some() { after } else { rest };
    }

    // Post-release: [sep](post|rev|r)[sep][N], or the implicit `-N`.
    let mut post = None;
    if let Some(rest) = s.strip_prefix('-') {
        if let (Some(n), after) = number(rest) {
            post = Some(n);
            s = after;
        }
    }
    if post.is_none() {
        if let Some((_, rest)) = keyword(strip_separator(s), &[("post", 0), ("rev", 0), ("r", 0)]) {
            let (n, after) = number(strip_separator(rest));
            post = Some(n.unwrap_or(0));
            s = if n.is_some() { after } else { rest };
        }
    }

    // Development release: [sep]dev[sep][N].
    let mut dev = None;
    if let Some(rest) = strip_separator(s).strip_prefix("dev") {
        let (n, after) = number(strip_separator(rest));
        dev = Some(n.unwrap_or(0));
        s = if n.is_some() { after } else { rest };
    }
    if !s.is_empty() {
        return None;
    }

    let mut local_parts = Vec::new();
    if let Some(local) = local {
        for part in local.split(['.', '-', '_']) {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return None;
            }
            local_parts.push(match number(part) {
                (Some(n), "") => LocalPart::Number(n),
                _ => LocalPart::Text(part.to_owned()),
            });
        }
    }
    Some(Version {
        epoch,
        release,
        pre,
        post,
        dev,
        local: local_parts,
    })
}

/// Compares two PEP 440 versions; `None` when either is not one.
pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    let (a, b) = (parse(a)?, parse(b)?);
    Some(sort_key_order(&a, &b))
}

fn release_order(a: &[u128], b: &[u128]) -> Ordering {
    // Trailing zeros do not count: 1.0 == 1.0.0.
    let len = a.len().max(b.len());
    (0..len)
        .map(|i| {
            a.get(i)
                .copied()
                .unwrap_or(0)
                .cmp(&b.get(i).copied().unwrap_or(0))
        })
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// Where a version stands among the releases of one release number: a bare `.devN`
/// comes before every pre-release, no pre-release after all of them.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum PreKey {
    DevOnly,
    Pre(u8, u128),
    Final,
}

fn pre_key(v: &Version) -> PreKey {
    match (v.pre, v.post, v.dev) {
        (None, None, Some(_)) => PreKey::DevOnly,
        (Some((kind, n)), _, _) => PreKey::Pre(kind, n),
        _ => PreKey::Final,
    }
}

fn sort_key_order(a: &Version, b: &Version) -> Ordering {
    a.epoch
        .cmp(&b.epoch)
        .then_with(|| release_order(&a.release, &b.release))
        .then_with(|| pre_key(a).cmp(&pre_key(b)))
        // No post-release sorts before any post-release.
        .then_with(|| a.post.cmp(&b.post))
        // No development release sorts after every development release.
        .then_with(|| match (a.dev, b.dev) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) => x.cmp(&y),
        })
        // A local label sorts after none; segment by segment, then the longer one.
        .then_with(|| a.local.cmp(&b.local))
}
