//! apk's version order (apk-tools `version.c`): `digit{.digit}...{letter}{_suffix{#}}...{~hash}{-r#}`.

use std::cmp::Ordering;

/// Token kinds in the order a version may hold them; a later kind may not precede an
/// earlier one. The order also decides which of two versions with equal common tokens is
/// newer: the one that goes on with a lower kind (a further digit beats a revision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    InitialDigit,
    Digit,
    Letter,
    Suffix,
    SuffixNumber,
    CommitHash,
    Revision,
    End,
    Invalid,
}

/// `_alpha` < `_beta` < `_pre` < `_rc` < (no suffix) < `_cvs` < `_svn` < `_git` < `_hg` < `_p`.
const SUFFIXES: [&str; 9] = ["alpha", "beta", "pre", "rc", "cvs", "svn", "git", "hg", "p"];
const NO_SUFFIX: usize = 4;

fn suffix_rank(name: &str) -> Option<usize> {
    let index = SUFFIXES.iter().position(|s| *s == name)?;
    Some(if index < NO_SUFFIX { index } else { index + 1 })
}

struct Token<'a> {
    kind: Kind,
    text: &'a str,
    number: u128,
    suffix: usize,
}

struct Tokens<'a> {
    rest: &'a str,
    kind: Kind,
}

impl<'a> Tokens<'a> {
    fn digits(&mut self) -> (&'a str, u128) {
        let end = self
            .rest
            .bytes()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(self.rest.len());
        let (text, rest) = self.rest.split_at(end);
        self.rest = rest;
        // Saturating: a 40-digit number still orders after a shorter one.
        let number = text.bytes().fold(0u128, |n, d| {
            n.saturating_mul(10).saturating_add(u128::from(d - b'0'))
        });
        (text, number)
    }

    fn token(&self, text: &'a str, number: u128, suffix: usize) -> Token<'a> {
        Token {
            kind: self.kind,
            text,
            number,
            suffix,
        }
    }

    fn first(&mut self) -> Token<'a> {
        self.kind = Kind::InitialDigit;
        let (text, number) = self.digits();
        if text.is_empty() {
            self.kind = Kind::Invalid;
        }
        self.token(text, number, 0)
    }

    fn next(&mut self) -> Token<'a> {
        let Some(&first) = self.rest.as_bytes().first() else {
            self.kind = Kind::End;
            return self.token("", 0, 0);
        };
        let previous = self.kind;
        let invalid = |this: &mut Self| {
            this.kind = Kind::Invalid;
            this.token("", 0, 0)
        };
        match first {
            b'a'..=b'z' => {
                if previous > Kind::Digit {
                    return invalid(self);
                }
                let (text, rest) = self.rest.split_at(1);
                self.rest = rest;
                self.kind = Kind::Letter;
                self.token(text, u128::from(first), 0)
            }
            b'.' | b'0'..=b'9' => {
                self.kind = match (first, previous) {
                    (b'.', Kind::InitialDigit | Kind::Digit) => Kind::Digit,
                    (b'.', _) => return invalid(self),
                    (_, Kind::InitialDigit | Kind::Digit) => Kind::Digit,
                    (_, Kind::Suffix) => Kind::SuffixNumber,
                    _ => return invalid(self),
                };
                if first == b'.' {
                    self.rest = &self.rest[1..];
                }
                let (text, number) = self.digits();
                if text.is_empty() {
                    return invalid(self);
                }
                self.token(text, number, 0)
            }
            b'_' => {
                if previous > Kind::SuffixNumber {
                    return invalid(self);
                }
                let body = &self.rest[1..];
                let end = body
                    .bytes()
                    .position(|b| !b.is_ascii_lowercase())
                    .unwrap_or(body.len());
                let Some(rank) = suffix_rank(&body[..end]) else {
                    return invalid(self);
                };
                self.rest = &body[end..];
                self.kind = Kind::Suffix;
                self.token(&body[..end], 0, rank)
            }
            b'~' => {
                if previous >= Kind::CommitHash {
                    return invalid(self);
                }
                let body = &self.rest[1..];
                let end = body
                    .bytes()
                    .position(|b| !b.is_ascii_hexdigit())
                    .unwrap_or(body.len());
                if end == 0 {
                    return invalid(self);
                }
                self.rest = &body[end..];
                self.kind = Kind::CommitHash;
                self.token(&body[..end], 0, 0)
            }
            b'-' => {
                if previous >= Kind::Revision || !self.rest.starts_with("-r") {
                    return invalid(self);
                }
                self.rest = &self.rest[2..];
                self.kind = Kind::Revision;
                let (text, number) = self.digits();
                if text.is_empty() {
                    return invalid(self);
                }
                self.token(text, number, 0)
            }
            _ => invalid(self),
        }
    }
}

fn compare_tokens(a: &Token<'_>, b: &Token<'_>) -> Ordering {
    match a.kind {
        // A digit group with a leading zero compares as a string, as Gentoo's rules say.
        Kind::Digit if a.text.starts_with('0') || b.text.starts_with('0') => a.text.cmp(b.text),
        Kind::InitialDigit | Kind::Digit | Kind::SuffixNumber | Kind::Revision | Kind::Letter => {
            a.number.cmp(&b.number)
        }
        Kind::Suffix => a.suffix.cmp(&b.suffix),
        _ => a.text.cmp(b.text),
    }
}

/// Compares two apk versions; `None` when either is not a valid apk version.
pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    if !valid(a) || !valid(b) {
        return None;
    }
    let mut ta = Tokens {
        rest: a,
        kind: Kind::InitialDigit,
    };
    let mut tb = Tokens {
        rest: b,
        kind: Kind::InitialDigit,
    };
    let (mut x, mut y) = (ta.first(), tb.first());
    while x.kind == y.kind && x.kind < Kind::End {
        let order = compare_tokens(&x, &y);
        if order != Ordering::Equal {
            return Some(order);
        }
        x = ta.next();
        y = tb.next();
    }
    if x.kind == y.kind {
        return Some(Ordering::Equal);
    }
    // Equal so far: the one that goes on is newer, unless it goes on with a pre-release suffix.
    if x.kind == Kind::Suffix && x.suffix < NO_SUFFIX {
        return Some(Ordering::Less);
    }
    if y.kind == Kind::Suffix && y.suffix < NO_SUFFIX {
        return Some(Ordering::Greater);
    }
    Some(y.kind.cmp(&x.kind))
}

/// Whether the whole string is one apk version.
pub fn valid(version: &str) -> bool {
    let mut tokens = Tokens {
        rest: version,
        kind: Kind::InitialDigit,
    };
    let mut token = tokens.first();
    while token.kind < Kind::End {
        token = tokens.next();
    }
    token.kind == Kind::End
}
