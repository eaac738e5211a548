//! Reading one layer: decompression (gzip, zstd), tar entries with GNU long names and PAX paths
//! handled here (so that no header is ever read into memory unbounded), path cleaning,
//! whiteouts, and the limits on bytes, entries and time.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::rc::Rc;
use std::time::Instant;

use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

use super::{auditable, is_wanted, InventoryBuilder};

/// Why a layer was not (fully) inventoried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayerError {
    #[error("unpacks to more than {0} bytes")]
    TooLarge(u64),
    #[error("holds more than {0} entries")]
    TooManyEntries(u64),
    #[error("took longer than {0} seconds to read")]
    Timeout(u64),
    #[error("is compressed with {0}, which the scanner does not read")]
    Unsupported(&'static str),
    #[error("is not a readable tar stream: {0}")]
    Corrupt(String),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    None,
    Size,
    Time,
}

/// Counts the bytes the tar reader pulls and stops it past a limit or a deadline.
struct Bounded<R> {
    inner: R,
    read: Rc<Cell<u64>>,
    stop: Rc<Cell<Stop>>,
    limit: u64,
    deadline: Instant,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if Instant::now() > self.deadline {
            self.stop.set(Stop::Time);
            return Err(std::io::Error::other("deadline"));
        }
        let n = self.inner.read(buf)?;
        let total = self.read.get() + n as u64;
        self.read.set(total);
        if total > self.limit {
            self.stop.set(Stop::Size);
            return Err(std::io::Error::other("size limit"));
        }
        Ok(n)
    }
}

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Whether a stream starts with a zstd skippable frame (magic `0x184D2A5?`, little-endian).
fn is_skippable_zstd_frame(head: &[u8]) -> bool {
    head.len() >= 4 && head[0] & 0xf0 == 0x50 && head[1..4] == [0x2a, 0x4d, 0x18]
}

/// A zstd stream of any number of frames, decoded in pure Rust: `zstd:chunked` layers hold
/// many, with skippable frames between them. The decoder's window is bounded by the decoder
/// itself (100 MiB at most), whatever a hostile frame header asks for.
struct ZstdFrames<R> {
    source: R,
    decoder: FrameDecoder,
    in_frame: bool,
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.in_frame {
                if self.source.fill_buf()?.is_empty() {
                    return Ok(0);
                }
                match self.decoder.reset(&mut self.source) {
                    Ok(()) => self.in_frame = true,
                    Err(FrameDecoderError::ReadFrameHeaderError(
                        ReadFrameHeaderError::SkipFrame { length, .. },
                    )) => {
                        let skipped = std::io::copy(
                            &mut (&mut self.source).take(u64::from(length)),
                            &mut std::io::sink(),
                        )?;
                        if skipped < u64::from(length) {
                            return Err(std::io::Error::other(
                                "a skippable zstd frame is cut short",
                            ));
                        }
                        continue;
                    }
                    Err(error) => return Err(std::io::Error::other(error.to_string())),
                }
            }
            while self.decoder.can_collect() < buf.len() && !self.decoder.is_finished() {
                let wanted = buf.len() - self.decoder.can_collect();
                self.decoder
                    .decode_blocks(&mut self.source, BlockDecodingStrategy::UptoBytes(wanted))
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
            }
            let n = self.decoder.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if self.decoder.is_finished() {
                self.in_frame = false;
                continue;
            }
            return Ok(0);
        }
    }
}

/// A layer path made relative and checked: `None` for `..`, NUL, empty or overlong names.
fn clean_path(raw: &[u8], max: usize) -> Option<String> {
    if raw.len() > max || raw.contains(&0) {
        return None;
    }
    let text = std::str::from_utf8(raw).ok()?;
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            part => parts.push(part),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// What one layer does to the files below it.
#[derive(Default)]
struct LayerChanges {
    /// Paths removed from lower layers (with everything under them): whiteouts, and
    /// wanted paths that this layer replaces with something that is not a file.
    removed: Vec<String>,
    /// Directories whose lower-layer content this layer hides (opaque whiteouts).
    opaque: Vec<String>,
    files: BTreeMap<String, Vec<u8>>,
    /// Which of `files` are the dependency lists of Rust binaries.
    binaries: std::collections::BTreeSet<String>,
}

/// The dependency list of an executable built with `cargo auditable`, if it is one: the
/// file is read whole only when it starts as an ELF (bounded by the caller's size check),
/// and only the inflated list is kept.
fn read_auditable_binary(
    builder: &mut InventoryBuilder,
    entry: &mut impl Read,
    size: u64,
    path: &str,
) -> Result<Option<Vec<u8>>, LayerError> {
    let corrupt = |e: std::io::Error| LayerError::Corrupt(e.to_string());
    let mut head = [0u8; 4];
    entry.read_exact(&mut head).map_err(corrupt)?;
    if !auditable::is_elf(&head) {
        return Ok(None);
    }
    let mut binary = Vec::with_capacity(size as usize);
    binary.extend_from_slice(&head);
    entry
        .take(size - 4)
        .read_to_end(&mut binary)
        .map_err(corrupt)?;
    match auditable::dependency_json(&binary) {
        Ok(json) => Ok(json),
        Err(why) => {
            builder.warn(format!("/{path}: {why}"));
            Ok(None)
        }
    }
}

fn under(path: &str, dir: &str) -> bool {
    path == dir || (path.starts_with(dir) && path.as_bytes().get(dir.len()) == Some(&b'/'))
}

pub(super) fn read_layer(
    builder: &mut InventoryBuilder,
    reader: impl Read,
) -> Result<(), LayerError> {
    let limits = builder.limits;
    let mut buffered = BufReader::with_capacity(64 * 1024, reader);
    let head = buffered
        .fill_buf()
        .map_err(|e| LayerError::Corrupt(e.to_string()))?;
    let stream: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
    } else if head.starts_with(&ZSTD_MAGIC) || is_skippable_zstd_frame(head) {
        Box::new(ZstdFrames {
            source: buffered,
            decoder: FrameDecoder::new(),
            in_frame: false,
        })
    } else if head.starts_with(b"BZh") {
        return Err(LayerError::Unsupported("bzip2"));
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z']) {
        return Err(LayerError::Unsupported("xz"));
    } else {
        Box::new(buffered)
    };
    let read = Rc::new(Cell::new(builder.unpacked_bytes));
    let stop = Rc::new(Cell::new(Stop::None));
    let bounded = Bounded {
        inner: stream,
        read: read.clone(),
        stop: stop.clone(),
        limit: limits.max_unpacked_bytes,
        deadline: builder.started + limits.max_duration,
    };
    let result = walk(builder, bounded);
    builder.unpacked_bytes = read.get();
    let changes = match (result, stop.get()) {
        (_, Stop::Size) => return Err(LayerError::TooLarge(limits.max_unpacked_bytes)),
        (_, Stop::Time) => return Err(LayerError::Timeout(limits.max_duration.as_secs())),
        (Err(error), Stop::None) => return Err(error),
        (Ok(changes), Stop::None) => changes,
    };
    for dir in &changes.opaque {
        builder.files.retain(|path, _| {
            !(path.starts_with(dir.as_str()) && path.as_bytes().get(dir.len()) == Some(&b'/'))
        });
    }
    for removed in &changes.removed {
        builder.files.retain(|path, _| !under(path, removed));
    }
    builder.files.extend(changes.files);
    builder.binaries.extend(changes.binaries);
    builder.kept_bytes = builder.files.values().map(|v| v.len() as u64).sum();
    Ok(())
}

fn walk(builder: &mut InventoryBuilder, stream: impl Read) -> Result<LayerChanges, LayerError> {
    let limits = builder.limits;
    let corrupt = |e: std::io::Error| LayerError::Corrupt(e.to_string());
    let mut archive = tar::Archive::new(stream);
    // Raw entries: the tar crate would read GNU long names and PAX headers into memory
    // whatever their size; here they are read with a bound.
    let entries = archive.entries().map_err(corrupt)?.raw(true);
    let mut changes = LayerChanges::default();
    let mut long_name: Option<Vec<u8>> = None;
    let mut pax_path: Option<Vec<u8>> = None;
    let mut pax_size: Option<u64> = None;
    let mut layer_kept = 0u64;
    for entry in entries {
        let mut entry = entry.map_err(corrupt)?;
        builder.entries += 1;
        if builder.entries > limits.max_entries {
            return Err(LayerError::TooManyEntries(limits.max_entries));
        }
        let kind = entry.header().entry_type();
        let size = entry.header().entry_size().map_err(corrupt)?;
        if kind.is_gnu_longname() || kind.is_pax_local_extensions() {
            if size > limits.max_path_bytes as u64 + 64 * 1024 {
                return Err(LayerError::Corrupt(format!(
                    "a {size}-byte extended header"
                )));
            }
            let mut data = Vec::with_capacity(size as usize);
            (&mut entry)
                .take(size)
                .read_to_end(&mut data)
                .map_err(corrupt)?;
            if kind.is_gnu_longname() {
                while data.last() == Some(&0) {
                    data.pop();
                }
                long_name = Some(data);
            } else {
                let (path, size) = pax_records(&data);
                pax_path = path;
                pax_size = size;
            }
            continue;
        }
        if kind.is_gnu_longlink() || kind.is_pax_global_extensions() {
            continue;
        }
        let raw_path = pax_path
            .take()
            .or_else(|| long_name.take())
            .unwrap_or_else(|| entry.path_bytes().into_owned());
        long_name = None;
        if let Some(declared) = pax_size.take() {
            // The tar reader sized this entry from its header; a PAX size that says
            // otherwise (files past 8 GiB) would make it read the rest as garbage.
            if declared != size {
                return Err(LayerError::Corrupt(format!(
                    "a PAX size ({declared}) this reader cannot follow"
                )));
            }
        }
        let Some(path) = clean_path(&raw_path, limits.max_path_bytes) else {
            let shown: String = String::from_utf8_lossy(&raw_path)
                .chars()
                .take(120)
                .collect();
            builder.warn(format!(
                "entry {shown:?} skipped: a `..` component, a NUL or an overlong name"
            ));
            continue;
        };
        let (dir, base) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
        if let Some(hidden) = base.strip_prefix(".wh.") {
            if hidden == ".wh..opq" {
                changes.opaque.push(dir.to_owned());
            } else if !hidden.is_empty() {
                let target = if dir.is_empty() {
                    hidden.to_owned()
                } else {
                    format!("{dir}/{hidden}")
                };
                changes.files.retain(|p, _| !under(p, &target));
                changes.removed.push(target);
            }
            continue;
        }
        if !is_wanted(&path) {
            let executable =
                kind.is_file() && entry.header().mode().is_ok_and(|mode| mode & 0o111 != 0);
            let binary = if executable && (64..=limits.max_file_bytes).contains(&size) {
                read_auditable_binary(builder, &mut entry, size, &path)?
            } else {
                None
            };
            match binary {
                Some(json)
                    if builder.kept_bytes + layer_kept + json.len() as u64
                        <= limits.max_kept_bytes =>
                {
                    layer_kept += json.len() as u64;
                    changes.binaries.insert(path.clone());
                    changes.files.insert(path, json);
                }
                Some(_) => builder.warn(format!(
                    "/{path}: package data past {} bytes in all, not read",
                    limits.max_kept_bytes
                )),
                // Whatever file replaces a binary read below hides its crates.
                None if builder.files.contains_key(&path) || changes.files.contains_key(&path) => {
                    changes.files.remove(&path);
                    changes.removed.push(path);
                }
                None => {}
            }
            continue;
        }
        if !kind.is_file() && kind != tar::EntryType::Continuous {
            // A symlink or directory in place of a database hides the lower one.
            changes.files.remove(&path);
            changes.removed.push(path);
            continue;
        }
        if size > limits.max_file_bytes {
            builder.warn(format!(
                "/{path}: {size} bytes, over the {}-byte limit, not read",
                limits.max_file_bytes
            ));
            continue;
        }
        if builder.kept_bytes + layer_kept + size > limits.max_kept_bytes {
            builder.warn(format!(
                "/{path}: package data past {} bytes in all, not read",
                limits.max_kept_bytes
            ));
            continue;
        }
        let mut data = Vec::with_capacity(size as usize);
        (&mut entry)
            .take(size)
            .read_to_end(&mut data)
            .map_err(corrupt)?;
        layer_kept += data.len() as u64;
        changes.files.insert(path, data);
    }
    Ok(changes)
}

/// The `path` and `size` records of a PAX extended header (`<len> <key>=<value>\n`...).
fn pax_records(data: &[u8]) -> (Option<Vec<u8>>, Option<u64>) {
    let mut path = None;
    let mut size = None;
    let mut rest = data;
    while !rest.is_empty() {
        let Some(space) = rest.iter().position(|b| *b == b' ') else {
            break;
        };
        let Some(length) = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|l| l.parse::<usize>().ok())
        else {
            break;
        };
        if length <= space + 1 || length > rest.len() {
            break;
        }
        let record = &rest[space + 1..length];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(value) = record.strip_prefix(b"path=") {
            path = Some(value.to_vec());
        } else if let Some(value) = record.strip_prefix(b"size=") {
            size = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
        }
        rest = &rest[length..];
    }
    (path, size)
}
