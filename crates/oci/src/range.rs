//! Byte ranges: `Content-Range` on chunked uploads and `Range` on blob downloads.

/// An inclusive byte range `start..=end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("malformed range {0:?}")]
    Malformed(String),
    #[error("range {0:?} cannot be satisfied for a blob of {1} bytes")]
    Unsatisfiable(String, u64),
}

fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The `Content-Range` of a chunk PATCH: `<start>-<end>`, inclusive. Tolerates a leading
/// `bytes ` / `bytes=` and a trailing `/<total>` that some clients add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange(pub ByteRange);

impl std::str::FromStr for ContentRange {
    type Err = RangeError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let malformed = || RangeError::Malformed(raw.chars().take(100).collect());
        let s = raw.trim();
        let s = s
            .strip_prefix("bytes=")
            .or_else(|| s.strip_prefix("bytes "))
            .unwrap_or(s);
        let s = s.split_once('/').map_or(s, |(range, _total)| range);
        let (start, end) = s.split_once('-').ok_or_else(malformed)?;
        let start = parse_u64(start).ok_or_else(malformed)?;
        let end = parse_u64(end).ok_or_else(malformed)?;
        if end < start {
            return Err(malformed());
        }
        Ok(ContentRange(ByteRange { start, end }))
    }
}

/// A `Range` request header on a blob GET (single ranges only; anything else is ignored
/// and the whole blob is served, as RFC 9110 allows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// `bytes=start-end` or `bytes=start-`.
    From { start: u64, end: Option<u64> },
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
}

impl RangeRequest {
    /// Parses a header value; `Ok(None)` for forms we serve whole (other units, multiple ranges).
    pub fn parse(raw: &str) -> Result<Option<RangeRequest>, RangeError> {
        let malformed = || RangeError::Malformed(raw.chars().take(100).collect());
        let Some(spec) = raw.trim().strip_prefix("bytes=") else {
            return Ok(None);
        };
        if spec.contains(',') {
            return Ok(None);
        }
        let (start, end) = spec.trim().split_once('-').ok_or_else(malformed)?;
        if start.is_empty() {
            return Ok(Some(RangeRequest::Suffix(
                parse_u64(end).ok_or_else(malformed)?,
            )));
        }
        let start = parse_u64(start).ok_or_else(malformed)?;
        let end = if end.is_empty() {
            None
        } else {
            Some(parse_u64(end).ok_or_else(malformed)?)
        };
        if end.is_some_and(|end| end < start) {
            return Err(malformed());
        }
        Ok(Some(RangeRequest::From { start, end }))
    }

    /// The concrete range for a blob of `size` bytes, or why it cannot be served.
    pub fn resolve(self, size: u64) -> Result<ByteRange, RangeError> {
        let unsatisfiable = || RangeError::Unsatisfiable(format!("{self:?}"), size);
        match self {
            RangeRequest::From { start, end } => {
                if start >= size {
                    return Err(unsatisfiable());
                }
                let end = end.map_or(size - 1, |e| e.min(size - 1));
                Ok(ByteRange { start, end })
            }
            RangeRequest::Suffix(n) => {
                if n == 0 || size == 0 {
                    return Err(unsatisfiable());
                }
                let n = n.min(size);
                Ok(ByteRange {
                    start: size - n,
                    end: size - 1,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn content_range_forms() {
        let r: ContentRange = "0-99".parse().unwrap();
        assert_eq!(r.0, ByteRange { start: 0, end: 99 });
        assert_eq!(r.0.len(), 100);
        let r: ContentRange = "bytes 100-199/*".parse().unwrap();
        assert_eq!(
            r.0,
            ByteRange {
                start: 100,
                end: 199
            }
        );
        for bad in [
            "",
            "5",
            "a-b",
            "10-5",
            "-5",
            "5-",
            "1-2-3",
            "99999999999999999999-1",
        ] {
            assert!(bad.parse::<ContentRange>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn range_requests_resolve() {
        let r = RangeRequest::parse("bytes=0-9").unwrap().unwrap();
        assert_eq!(r.resolve(100).unwrap(), ByteRange { start: 0, end: 9 });
        let r = RangeRequest::parse("bytes=90-").unwrap().unwrap();
        assert_eq!(r.resolve(100).unwrap(), ByteRange { start: 90, end: 99 });
        let r = RangeRequest::parse("bytes=-5").unwrap().unwrap();
        assert_eq!(r.resolve(100).unwrap(), ByteRange { start: 95, end: 99 });
        let r = RangeRequest::parse("bytes=-500").unwrap().unwrap();
        assert_eq!(r.resolve(100).unwrap(), ByteRange { start: 0, end: 99 });
        let r = RangeRequest::parse("bytes=50-5000").unwrap().unwrap();
        assert_eq!(r.resolve(100).unwrap(), ByteRange { start: 50, end: 99 });
        assert!(RangeRequest::parse("bytes=100-")
            .unwrap()
            .unwrap()
            .resolve(100)
            .is_err());
        assert!(RangeRequest::parse("bytes=-0")
            .unwrap()
            .unwrap()
            .resolve(100)
            .is_err());
        assert!(RangeRequest::parse("bytes=9-1").is_err());
        assert!(RangeRequest::parse("bytes=x-1").is_err());
        assert_eq!(RangeRequest::parse("items=0-1").unwrap(), None);
        assert_eq!(RangeRequest::parse("bytes=0-1,5-6").unwrap(), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Numeric ranges at the edges of what parses (19 digits) still have a length.
        #[test]
        fn content_ranges_of_large_numbers(start in "[0-9]{1,20}", end in "[0-9]{1,20}") {
            if let Ok(ContentRange(range)) = format!("bytes {start}-{end}/*").parse::<ContentRange>() {
                prop_assert!(range.start <= range.end);
                prop_assert_eq!(range.len() - 1, range.end - range.start);
            }
        }

        #[test]
        fn parsers_never_panic(s in "\\PC*", size in 0u64..1000) {
            if let Ok(ContentRange(range)) = s.parse::<ContentRange>() {
                prop_assert_eq!(range.len() - 1, range.end - range.start);
            }
            if let Ok(Some(r)) = RangeRequest::parse(&s) {
                if let Ok(range) = r.resolve(size) {
                    prop_assert!(range.start <= range.end && range.end < size);
                }
            }
        }
    }
}
