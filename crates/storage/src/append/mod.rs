//! Appends to upload files, all or nothing: the request is received on the async side and
//! written on a blocking thread, through the page cache (`buffered`) or, for large
//! appends, around it (`direct`).

mod buffered;
mod direct;
mod pipeline;

pub(crate) use pipeline::write_all_vectored;

use berth_core::ports::{ByteStream, StoreError, WHOLE_BODY_MAX};
use std::fs::File;
use std::io::{self, IoSlice, Seek, SeekFrom};

/// How an append uses the page cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caching {
    /// Large appends are written around it (`direct`): pushed layers, which few read soon.
    AroundLarge,
    /// Everything goes through it: bytes that are read again at once (a mirror's fetch),
    /// which a direct write would leave for the next pull to read from the disk.
    Keep,
}

/// Appends `data` to `file` at `offset`, all or nothing: on failure or a length other than
/// `expected_len`, the file is cut back to `offset`. Returns the bytes appended.
pub async fn append_file(
    file: File,
    offset: u64,
    data: ByteStream,
    expected_len: Option<u64>,
    caching: Caching,
) -> Result<u64, StoreError> {
    let direct = match caching {
        Caching::AroundLarge => direct::Direct::enable(&file, offset, expected_len),
        Caching::Keep => None,
    };
    let (received, written) = match direct {
        Some(direct) => direct.append(file, offset, data, expected_len).await,
        None => buffered::append(file, offset, data, expected_len).await,
    };
    let written = written.map_err(|e| StoreError::Io(io::Error::other(e.to_string())))?;
    let (file, written) = written.map_err(StoreError::Io)?;
    let rollback = |error: StoreError| {
        pipeline::cut_back(&file, offset);
        Err(error)
    };
    let received = match received {
        Ok(received) => received,
        Err(error) => return rollback(error),
    };
    if let Some(expected) = expected_len.filter(|expected| *expected != received) {
        return rollback(StoreError::LengthMismatch {
            expected,
            actual: received,
        });
    }
    if written != received {
        return rollback(StoreError::Io(io::Error::other("short write")));
    }
    Ok(written)
}

/// Appends `data`, announced as `expected_len` bytes (at most [`WHOLE_BODY_MAX`]), at
/// `offset` of the file `open` gives, all or nothing. The body is received first, so a
/// client that sends less or more, or fails mid-body, leaves the file untouched; then one
/// blocking call opens, writes and (on failure) cuts back. Each trip to the blocking pool
/// costs thread switches, and for a small push they were a large share of its CPU time.
pub async fn append_small(
    open: impl FnOnce() -> io::Result<File> + Send + 'static,
    offset: u64,
    data: ByteStream,
    expected_len: u64,
) -> Result<u64, StoreError> {
    debug_assert!(expected_len <= WHOLE_BODY_MAX);
    let frames = berth_core::ports::receive_exactly(data, expected_len).await?;
    let written = tokio::task::spawn_blocking(move || {
        let mut file = open()?;
        file.set_len(offset)?; // drops bytes of an append that crashed before its rollback
        file.seek(SeekFrom::Start(offset))?;
        let mut slices: Vec<IoSlice<'_>> = frames.iter().map(|f| IoSlice::new(f)).collect();
        match pipeline::write_all_vectored(&mut file, &mut slices, |_| Ok(false)) {
            Ok(()) => Ok(expected_len),
            Err(e) => {
                pipeline::cut_back(&file, offset);
                Err(e)
            }
        }
    })
    .await
    .map_err(|e| StoreError::Io(io::Error::other(e.to_string())))?;
    written.map_err(crate::stream::io_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::io::Read;

    const MIB: usize = 1 << 20;

    /// Bytes that differ at every offset, so a misplaced block shows.
    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed)
            .collect()
    }

    /// `bytes` as request frames of an odd size, so they straddle every block boundary;
    /// `then` is appended after the last frame.
    fn frames(bytes: &[u8], then: Option<io::Error>) -> ByteStream {
        let mut items: Vec<io::Result<Bytes>> = bytes
            .chunks(65_537)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        items.extend(then.map(Err));
        Box::pin(futures_util::stream::iter(items))
    }

    fn file_in(dir: &tempfile::TempDir) -> (File, std::path::PathBuf) {
        let path = dir.path().join("upload");
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .unwrap();
        (file, path)
    }

    fn contents(path: &std::path::Path) -> Vec<u8> {
        let mut out = Vec::new();
        File::open(path).unwrap().read_to_end(&mut out).unwrap();
        out
    }

    #[tokio::test]
    async fn small_appends_write_whole_bodies_and_touch_nothing_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upload");
        let opener = |path: &std::path::Path| {
            let path = path.to_owned();
            move || {
                File::options()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(path)
            }
        };
        let first = pattern(200_000, 1);
        let len = first.len() as u64;
        let n = append_small(opener(&path), 0, frames(&first, None), len)
            .await
            .unwrap();
        assert_eq!(n, len);
        let second = pattern(1000, 2);
        // Shorter, longer, and failing bodies leave the file as it was.
        for (body, announced) in [
            (frames(&second[..999], None), 1000),
            (frames(&second, None), 999),
            (
                frames(&second, Some(io::Error::other("client went away"))),
                1000,
            ),
        ] {
            assert!(append_small(opener(&path), n, body, announced)
                .await
                .is_err());
            assert_eq!(contents(&path), first);
        }
        append_small(opener(&path), n, frames(&second, None), 1000)
            .await
            .unwrap();
        assert_eq!(contents(&path), [first, second].concat());
    }

    #[tokio::test]
    async fn large_appends_keep_every_byte_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let (file, path) = file_in(&dir);
        // Aligned and large (written directly), with an unaligned tail.
        let first = pattern(9 * MIB + 1234, 1);
        let n = append_file(
            file,
            0,
            frames(&first, None),
            Some(first.len() as u64),
            Caching::AroundLarge,
        )
        .await
        .unwrap();
        assert_eq!(n, first.len() as u64);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            n,
            "nothing past the append"
        );
        // Large but at an unaligned offset (written through the page cache).
        let (file, _) = file_in(&dir);
        let second = pattern(8 * MIB + 7, 2);
        append_file(
            file,
            n,
            frames(&second, None),
            Some(second.len() as u64),
            Caching::AroundLarge,
        )
        .await
        .unwrap();
        // Small, of unknown length.
        let (file, _) = file_in(&dir);
        let third = pattern(5000, 3);
        let at = n + second.len() as u64;
        append_file(file, at, frames(&third, None), None, Caching::AroundLarge)
            .await
            .unwrap();
        assert_eq!(contents(&path), [first, second, third].concat());
    }

    #[tokio::test]
    async fn appends_of_unknown_length_keep_every_byte_and_nothing_more() {
        let dir = tempfile::tempdir().unwrap();
        let (file, path) = file_in(&dir);
        // Small, at an aligned offset: all of it in the first block, through the page cache.
        let mut expected = pattern(4096 + 100, 1);
        append_file(file, 0, frames(&expected, None), None, Caching::AroundLarge)
            .await
            .unwrap();
        // Large, at an unaligned offset: through the page cache.
        let second = pattern(3 * MIB, 2);
        let (file, _) = file_in(&dir);
        append_file(
            file,
            expected.len() as u64,
            frames(&second, None),
            None,
            Caching::AroundLarge,
        )
        .await
        .unwrap();
        expected.extend_from_slice(&second);
        let pad = pattern(expected.len().next_multiple_of(4096) - expected.len(), 3);
        let (file, _) = file_in(&dir);
        append_file(
            file,
            expected.len() as u64,
            frames(&pad, None),
            None,
            Caching::AroundLarge,
        )
        .await
        .unwrap();
        expected.extend_from_slice(&pad);
        // Large, aligned, past more than one reservation, with an unaligned tail: direct
        // writes, and the space reserved ahead of them cut off at the end.
        let large = pattern(70 * MIB + 5, 4);
        let (file, _) = file_in(&dir);
        append_file(
            file,
            expected.len() as u64,
            frames(&large, None),
            None,
            Caching::AroundLarge,
        )
        .await
        .unwrap();
        expected.extend_from_slice(&large);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            expected.len() as u64,
            "nothing reserved is left past the append"
        );
        assert!(contents(&path) == expected, "the bytes differ");

        // Failing midway: nothing of it stays, reserved space included.
        let reset = io::Error::new(io::ErrorKind::ConnectionReset, "client went away");
        let cut = frames(&pattern(9 * MIB, 5), Some(reset));
        let (file, _) = file_in(&dir);
        assert!(matches!(
            append_file(file, expected.len() as u64, cut, None, Caching::AroundLarge).await,
            Err(StoreError::Source(_))
        ));
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            expected.len() as u64
        );
    }

    /// The share of `path`'s pages that are in the page cache.
    #[allow(unsafe_code)]
    fn share_cached(path: &std::path::Path) -> f64 {
        let file = File::open(path).unwrap();
        // SAFETY: a read-only mapping of a file nothing writes meanwhile, never read here:
        // only mincore(2) looks at it.
        let map = unsafe { memmap2::Mmap::map(&file).unwrap() };
        let pages = map.len().div_ceil(4096);
        let mut resident = vec![0u8; pages];
        // SAFETY: `resident` holds one byte per page of the mapping, as mincore(2) needs.
        let rc = unsafe {
            libc::mincore(
                map.as_ptr() as *mut libc::c_void,
                map.len(),
                resident.as_mut_ptr(),
            )
        };
        assert_eq!(rc, 0, "mincore: {}", io::Error::last_os_error());
        resident.iter().filter(|r| *r & 1 == 1).count() as f64 / pages as f64
    }

    #[tokio::test]
    async fn a_hot_append_stays_in_the_page_cache_and_a_large_upload_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = pattern(16 * MIB, 7);
        let len = Some(bytes.len() as u64);
        let (file, hot) = file_in(&dir);
        append_file(file, 0, frames(&bytes, None), len, Caching::Keep)
            .await
            .unwrap();
        // Looked at before reading the file back, which would bring it into the cache.
        assert!(
            share_cached(&hot) > 0.9,
            "a mirror's fetch is read again at once: it must not be written around the cache"
        );
        assert!(contents(&hot) == bytes, "the bytes differ");
        std::fs::remove_file(&hot).unwrap();
        let (file, upload) = file_in(&dir);
        append_file(file, 0, frames(&bytes, None), len, Caching::AroundLarge)
            .await
            .unwrap();
        let cached = share_cached(&upload);
        assert!(contents(&upload) == bytes, "the bytes differ");
        let takes_direct = {
            use std::os::unix::fs::OpenOptionsExt;
            File::options()
                .read(true)
                .custom_flags(libc::O_DIRECT)
                .open(&upload)
                .is_ok()
        };
        if takes_direct {
            assert!(
                cached < 0.5,
                "a large upload is written around the page cache"
            );
        } else {
            // tmpfs refuses O_DIRECT: every append goes through the page cache there.
            eprintln!(
                "NOTICE: this filesystem takes no direct writes; the contrast is not checked"
            );
        }
    }

    #[tokio::test]
    async fn a_failed_large_append_leaves_the_file_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let (file, path) = file_in(&dir);
        let before = pattern(4 * MIB, 1);
        let offset = before.len() as u64;
        append_file(file, 0, frames(&before, None), None, Caching::AroundLarge)
            .await
            .unwrap();
        let body = pattern(9 * MIB, 2);
        let announced = Some(body.len() as u64);

        let reset = io::Error::new(io::ErrorKind::ConnectionReset, "client went away");
        let (file, _) = file_in(&dir);
        let cut = frames(&body[..5 * MIB], Some(reset));
        assert!(matches!(
            append_file(file, offset, cut, announced, Caching::AroundLarge).await,
            Err(StoreError::Source(_))
        ));
        assert_eq!(contents(&path), before);

        let (file, _) = file_in(&dir);
        let short = frames(&body[..body.len() - 1], None);
        assert!(matches!(
            append_file(file, offset, short, announced, Caching::AroundLarge).await,
            Err(StoreError::LengthMismatch { expected, actual })
                if expected == body.len() as u64 && actual == expected - 1
        ));
        assert_eq!(contents(&path), before);

        let (file, _) = file_in(&dir);
        let long = frames(&[&body[..], b"x"].concat(), None);
        assert!(matches!(
            append_file(file, offset, long, announced, Caching::AroundLarge).await,
            Err(StoreError::LengthMismatch { .. })
        ));
        assert_eq!(contents(&path), before);
    }
}
