//! Shared helpers of the scanner's tests: image layers built as gzip tar streams from the
//! real package databases kept under `tests/data`.

#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;

pub fn data(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(path)
}

pub fn read(path: &str) -> Vec<u8> {
    std::fs::read(data(path)).unwrap()
}

/// A gzip-compressed tar layer holding `files` (path, content) as regular files.
pub fn layer(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        // Programs (anything under a `bin/`) are executable, as the scanner's binary
        // reader wants them; everything else is plain data.
        header.set_mode(if path.contains("bin/") { 0o755 } else { 0o644 });
        header.set_entry_type(tar::EntryType::Regular);
        // Written raw, so that tests can build the hostile names (`..`, `/…`) the tar
        // crate's own writer refuses.
        let name = &mut header.as_old_mut().name;
        assert!(
            path.len() < name.len(),
            "test paths fit the 100-byte name field"
        );
        name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_cksum();
        builder.append(&header, content.as_slice()).unwrap();
    }
    gzip(&builder.into_inner().unwrap())
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// The Python packages installed in a venv (pip 23, Python 3.11), as `site-packages` files.
pub fn python_files(prefix: &str) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(data("python")).unwrap() {
        let dir = entry.unwrap().file_name().into_string().unwrap();
        files.push((
            format!("{prefix}/{dir}/METADATA"),
            read(&format!("python/{dir}/METADATA")),
        ));
    }
    files
}

/// The npm packages installed by `npm install lodash@4.17.20 minimist@1.2.5`.
pub fn npm_files(prefix: &str) -> Vec<(String, Vec<u8>)> {
    ["lodash", "minimist"]
        .iter()
        .map(|name| {
            (
                format!("{prefix}/node_modules/{name}/package.json"),
                read(&format!("npm/{name}/package.json")),
            )
        })
        .collect()
}

pub fn owned(files: &[(String, Vec<u8>)]) -> Vec<(&str, Vec<u8>)> {
    files.iter().map(|(p, c)| (p.as_str(), c.clone())).collect()
}

/// A Debian 12 image: this machine's dpkg status, then a layer of Python packages, then
/// one of npm packages.
pub fn debian_image() -> Vec<Vec<u8>> {
    vec![
        layer(&[
            ("etc/os-release", read("os-release-debian12")),
            ("var/lib/dpkg/status", read("dpkg-status")),
        ]),
        layer(&owned(&python_files(
            "usr/local/lib/python3.11/site-packages",
        ))),
        layer(&owned(&npm_files("app"))),
    ]
}

/// An Alpine 3.18 image with the apk database in Alpine's documented format.
pub fn alpine_image() -> Vec<Vec<u8>> {
    vec![layer(&[
        ("etc/os-release", read("os-release-alpine318")),
        ("lib/apk/db/installed", read("alpine-installed")),
    ])]
}
