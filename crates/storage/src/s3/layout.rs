//! Where the S3 store keeps things (object keys), how an upload's segments chain into its
//! bytes, and how large each segment must be so a blob stays under S3's 10,000 parts.

use berth_oci::Digest;

/// S3's smallest part (every part of a multipart upload but the last).
pub const MIN_PART: u64 = 5 << 20;
/// S3's largest part, and so the largest segment (each becomes one part at commit).
pub const MAX_PART: u64 = 5 << 30;
/// S3's most parts in one multipart upload.
pub const MAX_PARTS: u64 = 10_000;
/// One append cuts its bytes into segments of at least this much: fewer objects and parts.
const SEGMENT_CUT: u64 = 1 << 30;
/// The threshold grows with the offset by this divisor (see [`full_segment`]).
const GROWTH: u64 = 1000;

/// The size a segment starting at `start` must reach to be left as it is; a shorter last
/// segment is merged with the next append's bytes. Constant (5 MiB) up to 5 GB, then a
/// thousandth of the offset, so the number of segments grows only logarithmically past
/// that: 5 TiB takes under 10,000 (see the tests).
pub fn full_segment(start: u64) -> u64 {
    (start / GROWTH).clamp(MIN_PART, MAX_PART)
}

/// Where one append closes a segment that started at `start` and goes on with a new one.
pub fn segment_cut(start: u64) -> u64 {
    full_segment(start).clamp(SEGMENT_CUT, MAX_PART)
}

/// Object keys under the configured prefix (empty, or ending in `/`).
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

/// The object in an upload's folder that says the session exists.
const SESSION_MARKER: &str = "session";

impl Keys {
    /// `prefix` as configured; a trailing `/` is added when missing.
    pub fn new(prefix: &str) -> Keys {
        let trimmed = prefix.trim_matches('/');
        let prefix = if trimmed.is_empty() {
            String::new()
        } else {
            format!("{trimmed}/")
        };
        Keys { prefix }
    }

    /// The same layout as the filesystem store: `blobs/<alg>/<2 hex>/<hex>`.
    pub fn blob(&self, digest: &Digest) -> String {
        let hex = digest.hex();
        format!(
            "{}blobs/{}/{}/{}",
            self.prefix,
            digest.algorithm().as_str(),
            &hex[..2],
            hex
        )
    }

    /// The folder of an upload's objects (ending in `/`).
    pub fn upload_dir(&self, id: &str) -> String {
        format!("{}uploads/{id}/", self.prefix)
    }

    pub fn upload_marker(&self, id: &str) -> String {
        format!("{}{SESSION_MARKER}", self.upload_dir(id))
    }

    /// A segment's key: its start offset (fixed width, so keys sort by it) and a nonce
    /// unique to the append that wrote it, so no append overwrites another's bytes.
    pub fn segment(&self, id: &str, start: u64, nonce: &str) -> String {
        format!("{}{start:016x}.{nonce}", self.upload_dir(id))
    }

    /// A probe object written and removed at startup to prove the bucket writable.
    pub fn probe(&self) -> String {
        format!(
            "{}.berth-probe-{}",
            self.prefix,
            uuid::Uuid::new_v4().simple()
        )
    }
}

/// One object holding the bytes `[start, start + len)` of an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub key: String,
    pub start: u64,
    pub len: u64,
}

impl Segment {
    pub fn end(&self) -> u64 {
        self.start + self.len
    }
}

/// What an upload's folder holds: whether the session marker is there, and the segments.
#[derive(Debug, Default)]
pub struct UploadObjects {
    pub marker: bool,
    pub segments: Vec<Segment>,
    /// Keys that are neither (left for deletion with the upload).
    pub other: Vec<String>,
}

impl UploadObjects {
    /// Sorts a listing of `dir` (key, size) into the marker and segments.
    pub fn from_listing(dir: &str, listing: impl IntoIterator<Item = (String, u64)>) -> Self {
        let mut objects = UploadObjects::default();
        for (key, size) in listing {
            let name = key.strip_prefix(dir).unwrap_or(&key);
            if name == SESSION_MARKER {
                objects.marker = true;
                continue;
            }
            let start = name
                .split_once('.')
                .filter(|(start, _)| start.len() == 16)
                .and_then(|(start, _)| u64::from_str_radix(start, 16).ok());
            match start {
                Some(start) => objects.segments.push(Segment {
                    key,
                    start,
                    len: size,
                }),
                None => objects.other.push(key),
            }
        }
        objects
            .segments
            .sort_by(|a, b| (a.start, b.len, &a.key).cmp(&(b.start, a.len, &b.key)));
        objects
    }

    /// The segments that hold bytes `[0, size)` exactly, one after another, if any do.
    /// Leftovers of an append that failed or was never acknowledged may sit beside them;
    /// only a chain ending at the acknowledged size is the upload.
    pub fn chain_to(&self, size: u64) -> Option<Vec<Segment>> {
        let mut chain = Vec::new();
        if self.extend_chain(0, size, &mut chain) {
            Some(chain)
        } else {
            None
        }
    }

    fn extend_chain(&self, at: u64, size: u64, chain: &mut Vec<Segment>) -> bool {
        if at == size {
            return true;
        }
        // Longest first: the usual case (one chain) needs no backtracking.
        for segment in self.segments.iter().filter(|s| s.start == at && s.len > 0) {
            if segment.end() > size {
                continue;
            }
            chain.push(segment.clone());
            if self.extend_chain(segment.end(), size, chain) {
                return true;
            }
            chain.pop();
        }
        false
    }

    /// The longest chain from byte 0. Leftovers only ever repeat acknowledged bytes before
    /// they add unacknowledged ones, so the acknowledged bytes are a prefix of it.
    pub fn longest_chain(&self) -> Vec<Segment> {
        let mut chain: Vec<Segment> = Vec::new();
        let mut at = 0;
        while let Some(next) = self
            .segments
            .iter()
            .filter(|s| s.start == at && s.len > 0)
            .max_by_key(|s| s.len)
        {
            at = next.end();
            chain.push(next.clone());
        }
        chain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    /// The most segments a blob of `size` can have: every one only just full, as a client
    /// sending tiny chunks makes them.
    fn most_segments(size: u64) -> u64 {
        let (mut at, mut count) = (0u64, 0u64);
        while at < size {
            at += full_segment(at);
            count += 1;
        }
        count
    }

    #[test]
    fn blobs_of_100_gib_and_up_to_5_tib_stay_under_the_part_limit() {
        assert!(
            most_segments(100 * GIB) < 5_000,
            "{}",
            most_segments(100 * GIB)
        );
        assert!(
            most_segments(5 << 40) < MAX_PARTS,
            "{}",
            most_segments(5 << 40)
        );
        // Distribution's fixed 10 MiB parts run out at about 98 GiB (distribution #4572).
        let fixed_10_mib_parts = 100 * GIB / (10 << 20);
        assert!(most_segments(100 * GIB) < fixed_10_mib_parts / 2);
    }

    #[test]
    fn segments_stay_within_the_sizes_s3_allows_for_parts() {
        for start in [0, MIN_PART, GIB, 5 * GIB, 100 * GIB, 5 << 40, u64::MAX / 2] {
            let full = full_segment(start);
            assert!((MIN_PART..=MAX_PART).contains(&full), "{start}: {full}");
            let cut = segment_cut(start);
            assert!(cut >= full && cut <= MAX_PART, "{start}: {cut}");
        }
    }

    fn listing(entries: &[(&str, u64)]) -> UploadObjects {
        let dir = "p/uploads/u/";
        UploadObjects::from_listing(
            dir,
            entries
                .iter()
                .map(|(name, size)| (format!("{dir}{name}"), *size)),
        )
    }

    #[test]
    fn the_chain_to_the_acknowledged_size_skips_leftovers() {
        let keys = Keys::new("p");
        assert_eq!(keys.segment("u", 3, "n"), "p/uploads/u/0000000000000003.n");
        let objects = listing(&[
            ("session", 0),
            ("0000000000000000.a", 3),
            // A merge of the tail with an append that was never acknowledged.
            ("0000000000000003.b", 9),
            ("0000000000000003.c", 4),
            ("0000000000000007.d", 2),
            ("stray", 1),
        ]);
        assert!(objects.marker);
        assert_eq!(objects.other, vec!["p/uploads/u/stray".to_owned()]);
        let starts = |chain: Vec<Segment>| -> Vec<(u64, u64)> {
            chain.iter().map(|s| (s.start, s.len)).collect()
        };
        assert_eq!(
            starts(objects.chain_to(9).unwrap()),
            vec![(0, 3), (3, 4), (7, 2)]
        );
        assert_eq!(starts(objects.chain_to(12).unwrap()), vec![(0, 3), (3, 9)]);
        assert_eq!(starts(objects.chain_to(0).unwrap()), vec![]);
        assert!(objects.chain_to(8).is_none());
        assert_eq!(starts(objects.longest_chain()), vec![(0, 3), (3, 9)]);
    }

    #[test]
    fn prefixes_are_normalised() {
        let digest = Digest::sha256_of(b"x");
        let hex = digest.hex();
        assert_eq!(
            Keys::new("").blob(&digest),
            format!("blobs/sha256/{}/{hex}", &hex[..2])
        );
        assert_eq!(
            Keys::new("/reg/one/").blob(&digest),
            format!("reg/one/blobs/sha256/{}/{hex}", &hex[..2])
        );
    }
}
