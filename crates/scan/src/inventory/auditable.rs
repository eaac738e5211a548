//! Rust binaries built with `cargo auditable`: the crate list it embeds in the ELF section
//! `.dep-v0` (zlib-compressed JSON `{"packages": [{"name", "version", "source"}, …]}`).

use super::{Package, PackageKind};
use object::{Object, ObjectSection};
use std::io::Read;

/// The section `cargo auditable` writes.
const SECTION: &str = ".dep-v0";
/// Largest compressed section read (a few KiB in practice).
const MAX_SECTION_BYTES: u64 = 4 * 1024 * 1024;
/// Largest JSON the section may inflate to: a zlib bomb stops here.
pub const MAX_JSON_BYTES: u64 = 16 * 1024 * 1024;
/// Most crates read from one binary.
const MAX_CRATES: usize = 20_000;

/// Whether the first bytes of a file are an ELF header.
pub fn is_elf(head: &[u8]) -> bool {
    head.starts_with(b"\x7fELF")
}

/// The inflated JSON of a binary's `.dep-v0` section: `Ok(None)` when the binary has none
/// (not built with `cargo auditable`), an error when it is there but does not read.
pub fn dependency_json(binary: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let Ok(file) = object::File::parse(binary) else {
        return Ok(None);
    };
    let Some(section) = file.section_by_name(SECTION) else {
        return Ok(None);
    };
    if section.size() > MAX_SECTION_BYTES {
        return Err(format!(
            "its {SECTION} section is over {MAX_SECTION_BYTES} bytes"
        ));
    }
    let compressed = section
        .data()
        .map_err(|e| format!("its {SECTION} section does not read: {e}"))?;
    let mut json = Vec::new();
    flate2::read::ZlibDecoder::new(compressed)
        .take(MAX_JSON_BYTES + 1)
        .read_to_end(&mut json)
        .map_err(|e| format!("its {SECTION} section is not zlib data: {e}"))?;
    if json.len() as u64 > MAX_JSON_BYTES {
        return Err(format!(
            "its {SECTION} section inflates past {MAX_JSON_BYTES} bytes"
        ));
    }
    Ok(Some(json))
}

/// The crates.io packages the JSON names (local and git crates are not in any advisory
/// database), or why it does not read.
pub fn parse(json: &[u8], location: &str) -> Result<Vec<Package>, String> {
    #[derive(serde::Deserialize)]
    struct Info {
        packages: Vec<Crate>,
    }
    #[derive(serde::Deserialize)]
    struct Crate {
        name: String,
        version: String,
        #[serde(default)]
        source: Option<String>,
    }
    let info: Info = serde_json::from_slice(json)
        .map_err(|e| format!("the dependency list is not cargo auditable's JSON: {e}"))?;
    if info.packages.len() > MAX_CRATES {
        return Err(format!("it names over {MAX_CRATES} crates"));
    }
    Ok(info
        .packages
        .into_iter()
        .filter(|c| c.source.as_deref() == Some("crates.io"))
        .filter(|c| !c.name.is_empty() && !c.version.is_empty())
        .map(|c| Package {
            kind: PackageKind::Cargo,
            name: c.name,
            version: c.version,
            source_name: None,
            source_version: None,
            arch: None,
            license: None,
            location: location.to_owned(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_names_crates_io_packages_only() {
        let json = br#"{"packages":[
            {"name":"app","version":"0.1.0","source":"local","root":true,"dependencies":[1,2]},
            {"name":"smallvec","version":"1.6.0","source":"crates.io"},
            {"name":"internal","version":"2.0.0","source":"git"}]}"#;
        let packages = parse(json, "/usr/local/bin/app").unwrap();
        assert_eq!(packages.len(), 1);
        assert_eq!(packages[0].name, "smallvec");
        assert_eq!(packages[0].version, "1.6.0");
        assert!(parse(b"{", "/x").is_err());
    }

    #[test]
    fn what_is_not_an_elf_has_no_section() {
        assert_eq!(dependency_json(b"\x7fELF garbage"), Ok(None));
        assert_eq!(dependency_json(b""), Ok(None));
    }
}
