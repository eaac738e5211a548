//! rpm's SQLite database, `rpmdb.sqlite` (under `var/lib/rpm/` or `usr/lib/sysimage/rpm/`):
//! one row of table `Packages` per package, whose `blob` is the package's rpm header, read
//! here within bounds (index entries, data size, string lengths).

use super::{Package, PackageKind};
use std::io::Write;

/// Paths of the database inside an image.
pub const RPMDB_PATHS: [&str; 2] = [
    "var/lib/rpm/rpmdb.sqlite",
    "usr/lib/sysimage/rpm/rpmdb.sqlite",
];

/// Most packages read from one database (a full Fedora install has about 3,000).
const MAX_PACKAGES: usize = 100_000;
/// Largest header blob read (kernel headers with file lists reach a few MiB).
const MAX_HEADER_BYTES: usize = 32 * 1024 * 1024;
/// Most index entries in one header.
const MAX_INDEX_ENTRIES: usize = 100_000;

const TAG_NAME: u32 = 1000;
const TAG_VERSION: u32 = 1001;
const TAG_RELEASE: u32 = 1002;
const TAG_EPOCH: u32 = 1003;
const TAG_LICENSE: u32 = 1014;
const TAG_ARCH: u32 = 1022;
const TAG_SOURCERPM: u32 = 1044;

const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_I18NSTRING: u32 = 9;

/// Why a database or a header was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpmError {
    #[error("not a readable rpm SQLite database: {0}")]
    Database(String),
    #[error("a header is malformed: {0}")]
    Header(&'static str),
}

/// The fields of one header the inventory keeps.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RpmHeader {
    pub name: Option<String>,
    pub version: Option<String>,
    pub release: Option<String>,
    pub epoch: Option<u32>,
    pub arch: Option<String>,
    pub license: Option<String>,
    pub source_rpm: Option<String>,
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let slice = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(slice.try_into().ok()?))
}

/// Reads an rpm header as the database stores it: the index count and data length (both
/// big-endian 32-bit), the index entries (tag, type, offset, count), then the data.
pub fn parse_header(blob: &[u8]) -> Result<RpmHeader, RpmError> {
    if blob.len() > MAX_HEADER_BYTES {
        return Err(RpmError::Header("larger than the header limit"));
    }
    let entries = be_u32(blob, 0).ok_or(RpmError::Header("shorter than its preamble"))? as usize;
    let data_len = be_u32(blob, 4).ok_or(RpmError::Header("shorter than its preamble"))? as usize;
    if entries > MAX_INDEX_ENTRIES {
        return Err(RpmError::Header("more index entries than the limit"));
    }
    let data_start = 8 + entries * 16;
    let data = blob
        .get(data_start..data_start + data_len)
        .ok_or(RpmError::Header(
            "its data store is past the end of the blob",
        ))?;
    let mut header = RpmHeader::default();
    for index in 0..entries {
        let at = 8 + index * 16;
        let (Some(tag), Some(kind), Some(offset)) =
            (be_u32(blob, at), be_u32(blob, at + 4), be_u32(blob, at + 8))
        else {
            return Err(RpmError::Header("an index entry is cut short"));
        };
        let offset = offset as usize;
        let string = || -> Result<Option<String>, RpmError> {
            if kind != TYPE_STRING && kind != TYPE_I18NSTRING {
                return Err(RpmError::Header("a string tag holds another type"));
            }
            let rest = data
                .get(offset..)
                .ok_or(RpmError::Header("a string offset is past the data"))?;
            let end = rest
                .iter()
                .position(|b| *b == 0)
                .ok_or(RpmError::Header("a string is not terminated"))?;
            Ok(Some(String::from_utf8_lossy(&rest[..end]).into_owned()).filter(|s| !s.is_empty()))
        };
        match tag {
            TAG_NAME => header.name = string()?,
            TAG_VERSION => header.version = string()?,
            TAG_RELEASE => header.release = string()?,
            TAG_LICENSE => header.license = string()?,
            TAG_ARCH => header.arch = string()?,
            TAG_SOURCERPM => header.source_rpm = string()?,
            TAG_EPOCH => {
                if kind != TYPE_INT32 || !offset.is_multiple_of(4) {
                    return Err(RpmError::Header(
                        "the epoch is not an aligned 32-bit integer",
                    ));
                }
                header.epoch = Some(
                    be_u32(data, offset).ok_or(RpmError::Header("the epoch is past the data"))?,
                );
            }
            _ => {}
        }
    }
    Ok(header)
}

/// `name-version-release.src.rpm` split into the source package's name and
/// `version-release`.
fn split_source_rpm(source: &str) -> Option<(String, String)> {
    let stem = source
        .strip_suffix(".src.rpm")
        .or_else(|| source.strip_suffix(".nosrc.rpm"))?;
    let (rest, release) = stem.rsplit_once('-')?;
    let (name, version) = rest.rsplit_once('-')?;
    (!name.is_empty()).then(|| (name.to_owned(), format!("{version}-{release}")))
}

impl RpmHeader {
    /// The package, when the header names one (`gpg-pubkey` entries are keys, not packages).
    fn into_package(self, location: &str) -> Option<Package> {
        let name = self.name.filter(|n| n != "gpg-pubkey")?;
        let version = match (self.epoch, self.version?, self.release) {
            (Some(epoch), version, Some(release)) if epoch > 0 => {
                format!("{epoch}:{version}-{release}")
            }
            (_, version, Some(release)) => format!("{version}-{release}"),
            (Some(epoch), version, None) if epoch > 0 => format!("{epoch}:{version}"),
            (_, version, None) => version,
        };
        let (source_name, source_version) =
            match self.source_rpm.as_deref().and_then(split_source_rpm) {
                Some((name, version)) => (Some(name), Some(version)),
                None => (None, None),
            };
        Some(Package {
            kind: PackageKind::Rpm,
            name,
            version,
            source_name,
            source_version,
            arch: self.arch,
            license: self.license,
            location: location.to_owned(),
        })
    }
}

/// The packages of an `rpmdb.sqlite` file's bytes, and the count of headers that did not
/// read. SQLite reads a file, so the bytes go to a private temporary file for the reading.
pub fn parse(bytes: &[u8], location: &str) -> Result<(Vec<Package>, usize), RpmError> {
    let database = |e: &dyn std::fmt::Display| RpmError::Database(e.to_string());
    if !bytes.starts_with(b"SQLite format 3\0") {
        return Err(RpmError::Database("no SQLite header".to_owned()));
    }
    let mut file = tempfile::NamedTempFile::new().map_err(|e| database(&e))?;
    // rpm keeps the database in WAL mode; the image holds no WAL to replay, so it is read as
    // a plain rollback-journal database (header bytes 18 and 19: file format versions).
    let written = match (bytes.get(..18), bytes.get(20..)) {
        (Some(head), Some(tail)) => file
            .write_all(head)
            .and_then(|_| file.write_all(&[1, 1]))
            .and_then(|_| file.write_all(tail)),
        _ => {
            return Err(RpmError::Database(
                "shorter than a SQLite header".to_owned(),
            ))
        }
    };
    written.map_err(|e| database(&e))?;
    let uri = format!(
        "file:{}?immutable=1",
        file.path()
            .to_string_lossy()
            .replace('?', "%3f")
            .replace('#', "%23")
    );
    let connection = rusqlite::Connection::open_with_flags(
        uri,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
            | rusqlite::OpenFlags::SQLITE_OPEN_URI
            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| database(&e))?;
    let mut statement = connection
        .prepare("SELECT blob FROM Packages")
        .map_err(|e| database(&e))?;
    let mut rows = statement.query([]).map_err(|e| database(&e))?;
    let mut packages = Vec::new();
    let mut malformed = 0;
    let mut read = 0;
    while let Some(row) = rows.next().map_err(|e| database(&e))? {
        read += 1;
        if read > MAX_PACKAGES {
            malformed += 1;
            break;
        }
        let blob = match row.get_ref(0).map(|v| v.as_blob()) {
            Ok(Ok(blob)) => blob,
            _ => {
                malformed += 1;
                continue;
            }
        };
        match parse_header(blob) {
            Ok(header) => packages.extend(header.into_package(location)),
            Err(_) => malformed += 1,
        }
    }
    Ok((packages, malformed))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header in the store's layout holding `strings` (tag, value) and an epoch.
    pub(crate) fn header(strings: &[(u32, &str)], epoch: Option<u32>) -> Vec<u8> {
        let mut index = Vec::new();
        let mut data = Vec::new();
        if let Some(epoch) = epoch {
            index.push((TAG_EPOCH, TYPE_INT32, data.len() as u32));
            data.extend_from_slice(&epoch.to_be_bytes());
        }
        for (tag, value) in strings {
            index.push((*tag, TYPE_STRING, data.len() as u32));
            data.extend_from_slice(value.as_bytes());
            data.push(0);
        }
        let mut blob = Vec::new();
        blob.extend_from_slice(&(index.len() as u32).to_be_bytes());
        blob.extend_from_slice(&(data.len() as u32).to_be_bytes());
        for (tag, kind, offset) in index {
            blob.extend_from_slice(&tag.to_be_bytes());
            blob.extend_from_slice(&kind.to_be_bytes());
            blob.extend_from_slice(&offset.to_be_bytes());
            blob.extend_from_slice(&1u32.to_be_bytes());
        }
        blob.extend_from_slice(&data);
        blob
    }

    #[test]
    fn headers_read_their_fields_and_source_package() {
        let blob = header(
            &[
                (TAG_NAME, "openssl-libs"),
                (TAG_VERSION, "3.0.7"),
                (TAG_RELEASE, "27.el9"),
                (TAG_ARCH, "x86_64"),
                (TAG_LICENSE, "ASL 2.0"),
                (TAG_SOURCERPM, "openssl-3.0.7-27.el9.src.rpm"),
            ],
            Some(1),
        );
        let package = parse_header(&blob)
            .unwrap()
            .into_package("/var/lib/rpm/rpmdb.sqlite")
            .unwrap();
        assert_eq!(package.name, "openssl-libs");
        assert_eq!(package.version, "1:3.0.7-27.el9");
        assert_eq!(package.source_name.as_deref(), Some("openssl"));
        assert_eq!(package.source_version.as_deref(), Some("3.0.7-27.el9"));
        assert_eq!(package.arch.as_deref(), Some("x86_64"));
    }

    #[test]
    fn malformed_headers_are_refused_not_panicked_on() {
        let good = header(&[(TAG_NAME, "bash"), (TAG_VERSION, "5.1")], None);
        for cut in 0..good.len() {
            let _ = parse_header(&good[..cut]);
        }
        let mut huge_count = good.clone();
        huge_count[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse_header(&huge_count).is_err());
        let mut bad_offset = good.clone();
        bad_offset[16..20].copy_from_slice(&9999u32.to_be_bytes());
        assert!(parse_header(&bad_offset).is_err());
        assert!(parse(b"not sqlite", "/x").is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_blob_is_a_header_or_an_error(blob in proptest::collection::vec(0u8..=255, 0..300)) {
            let _ = parse_header(&blob);
        }
    }
}
