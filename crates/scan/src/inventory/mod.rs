//! The package inventory of an image: its layers read as streams in order, whiteouts
//! applied, and the package databases found in the result parsed.
//!
//! Only the files that can hold package data are kept (by path), each up to a size
//! limit; everything else is read past without being stored, so memory is bounded by
//! `Limits` whatever the layer's size. Paths are cleaned before use: a leading `/` or
//! `./` is dropped, and entries with `..`, NUL or overlong names are skipped and counted.

mod apk;
pub mod auditable;
mod dpkg;
mod language;
mod layer;
mod os_release;
pub mod rpm;
pub mod sbom;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use layer::LayerError;
pub use os_release::OsRelease;

/// The package managers an inventory reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageKind {
    Deb,
    Apk,
    Rpm,
    Python,
    Npm,
    Cargo,
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Package {
    pub kind: PackageKind,
    pub name: String,
    pub version: String,
    /// The source (dpkg) or origin (apk) package, when it is named.
    pub source_name: Option<String>,
    pub source_version: Option<String>,
    pub arch: Option<String>,
    pub license: Option<String>,
    /// The file in the image the package was read from.
    pub location: String,
}

/// What an image holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub os: Option<OsRelease>,
    pub packages: Vec<Package>,
    /// What was skipped and why (malformed databases, hostile entries, limits reached).
    pub warnings: Vec<String>,
}

impl Inventory {
    /// Adds the packages an SBOM lists that the layers did not show (same kind, name and
    /// version); the SBOM's distribution counts only when the layers named none.
    pub fn add_listed(&mut self, listed: sbom::SbomPackages) {
        if self.os.is_none() {
            self.os = listed.os;
        }
        let known: std::collections::HashSet<(PackageKind, String, String)> = self
            .packages
            .iter()
            .map(|p| (p.kind, p.name.clone(), p.version.clone()))
            .collect();
        self.packages.extend(
            listed
                .packages
                .into_iter()
                .filter(|p| !known.contains(&(p.kind, p.name.clone(), p.version.clone()))),
        );
    }
}

/// Bounds on reading one image.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest package-database file kept (dpkg status files reach a few MiB).
    pub max_file_bytes: u64,
    /// All kept files together.
    pub max_kept_bytes: u64,
    /// Bytes of tar stream read per image, after decompression (a gzip bomb stops here).
    pub max_unpacked_bytes: u64,
    /// Tar entries per image.
    pub max_entries: u64,
    /// Longest path accepted (GNU long names and PAX paths included).
    pub max_path_bytes: usize,
    /// Wall-clock bound for reading the layers of one image.
    pub max_duration: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 64 * 1024 * 1024,
            max_kept_bytes: 128 * 1024 * 1024,
            max_unpacked_bytes: 32 * 1024 * 1024 * 1024,
            max_entries: 4_000_000,
            max_path_bytes: 4096,
            max_duration: Duration::from_secs(600),
        }
    }
}

/// Whether a cleaned path names a file the inventory reads.
pub(crate) fn is_wanted(path: &str) -> bool {
    matches!(
        path,
        "var/lib/dpkg/status" | "lib/apk/db/installed" | "etc/os-release" | "usr/lib/os-release"
    ) || rpm::RPMDB_PATHS.contains(&path)
        || (path.starts_with("var/lib/dpkg/status.d/")
            && !path.ends_with(".md5sums")
            && path.matches('/').count() == 4)
        || path.ends_with(".dist-info/METADATA")
        || path.ends_with(".egg-info/PKG-INFO")
        || language::is_npm_manifest(path)
}

/// Collects an image's wanted files layer by layer, then parses them.
#[derive(Debug)]
pub struct InventoryBuilder {
    limits: Limits,
    files: BTreeMap<String, Vec<u8>>,
    /// Which kept files are the dependency lists of Rust binaries (`cargo auditable`).
    binaries: std::collections::BTreeSet<String>,
    kept_bytes: u64,
    unpacked_bytes: u64,
    entries: u64,
    started: std::time::Instant,
    warnings: Vec<String>,
}

impl InventoryBuilder {
    pub fn new(limits: Limits) -> Self {
        InventoryBuilder {
            limits,
            files: BTreeMap::new(),
            binaries: std::collections::BTreeSet::new(),
            kept_bytes: 0,
            unpacked_bytes: 0,
            entries: 0,
            started: std::time::Instant::now(),
            warnings: Vec::new(),
        }
    }

    /// Reads the next layer (bottom first): a tar stream, gzip-compressed or not (told
    /// from its first bytes). A layer that breaks a limit or is not a tar ends with an
    /// error, and what it had changed is dropped; earlier layers stay.
    pub fn add_layer(&mut self, reader: impl std::io::Read) -> Result<(), LayerError> {
        layer::read_layer(self, reader)
    }

    fn warn(&mut self, warning: String) {
        // Bounded: a hostile layer can make millions of bad entries.
        if self.warnings.len() < 100 {
            self.warnings.push(warning);
        } else if self.warnings.len() == 100 {
            self.warnings.push("further warnings left out".to_owned());
        }
    }

    /// Records an error that stopped a layer, for the inventory's warnings.
    pub fn note_layer_error(&mut self, layer: &str, error: &LayerError) {
        self.warn(format!("layer {layer}: {error}"));
    }

    /// Parses the kept files into the inventory.
    pub fn finish(mut self) -> Inventory {
        let files = std::mem::take(&mut self.files);
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        let os = ["etc/os-release", "usr/lib/os-release"]
            .iter()
            .find_map(|path| {
                files
                    .get(*path)
                    .and_then(|bytes| os_release::parse(&text(bytes)))
            });
        let mut packages = Vec::new();
        for (path, bytes) in &files {
            let location = format!("/{path}");
            let found = if self.binaries.contains(path) {
                match auditable::parse(bytes, &location) {
                    Ok(found) => found,
                    Err(why) => {
                        self.warn(format!("{location}: {why}"));
                        Vec::new()
                    }
                }
            } else if rpm::RPMDB_PATHS.contains(&path.as_str()) {
                match rpm::parse(bytes, &location) {
                    Ok((found, malformed)) => {
                        if malformed > 0 {
                            self.warn(format!("{location}: {malformed} malformed headers skipped"));
                        }
                        found
                    }
                    Err(why) => {
                        self.warn(format!("{location}: {why}"));
                        Vec::new()
                    }
                }
            } else if path == "var/lib/dpkg/status" || path.starts_with("var/lib/dpkg/status.d/") {
                let (found, malformed) = dpkg::parse(&text(bytes), &location);
                if malformed > 0 {
                    self.warn(format!("{location}: {malformed} malformed stanzas skipped"));
                }
                found
            } else if path == "lib/apk/db/installed" {
                let (found, malformed) = apk::parse(&text(bytes), &location);
                if malformed > 0 {
                    self.warn(format!(
                        "{location}: {malformed} malformed paragraphs skipped"
                    ));
                }
                found
            } else if path.ends_with("/METADATA") || path.ends_with("/PKG-INFO") {
                match language::python(&text(bytes), &location) {
                    Some(package) => vec![package],
                    None => {
                        self.warn(format!("{location}: no Name or Version"));
                        Vec::new()
                    }
                }
            } else if path.ends_with("/package.json") {
                match language::npm(bytes, &location) {
                    Some(package) => vec![package],
                    None => {
                        self.warn(format!(
                            "{location}: not a package.json with a name and version"
                        ));
                        Vec::new()
                    }
                }
            } else {
                Vec::new()
            };
            packages.extend(found);
        }
        packages.sort();
        packages.dedup();
        Inventory {
            os,
            packages,
            warnings: self.warnings,
        }
    }
}

/// Inventories a whole image from its layer streams, bottom first, with default limits.
pub fn inventory_layers<R: std::io::Read>(
    layers: impl IntoIterator<Item = (String, R)>,
) -> Inventory {
    let mut builder = InventoryBuilder::new(Limits::default());
    for (name, reader) in layers {
        if let Err(error) = builder.add_layer(reader) {
            builder.note_layer_error(&name, &error);
        }
    }
    builder.finish()
}
