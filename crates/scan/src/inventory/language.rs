//! Language packages: Python's `*.dist-info/METADATA` (and `*.egg-info/PKG-INFO`) and
//! npm's `node_modules/<name>/package.json`.

use super::{Package, PackageKind};

/// A Python package from its core metadata (the header block before the first blank line).
pub fn python(text: &str, location: &str) -> Option<Package> {
    let mut name = None;
    let mut version = None;
    let mut license = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            break;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim().to_ascii_lowercase().as_str() {
            "name" if name.is_none() => name = Some(value.to_owned()),
            "version" if version.is_none() => version = Some(value.to_owned()),
            "license-expression" => license = Some(value.to_owned()),
            "license" if license.is_none() && !value.is_empty() && value.len() < 100 => {
                license = Some(value.to_owned())
            }
            _ => {}
        }
    }
    Some(Package {
        kind: PackageKind::Python,
        name: name.filter(|n| !n.is_empty())?,
        version: version.filter(|v| !v.is_empty())?,
        source_name: None,
        source_version: None,
        arch: None,
        license,
        location: location.to_owned(),
    })
}

/// Whether `path` is the `package.json` at the root of an installed npm package:
/// `…/node_modules/<name>/package.json` or `…/node_modules/@scope/<name>/package.json`.
pub fn is_npm_manifest(path: &str) -> bool {
    let mut parts = path.rsplit('/');
    if parts.next() != Some("package.json") {
        return false;
    }
    let Some(name) = parts.next() else {
        return false;
    };
    match parts.next() {
        Some("node_modules") => !name.starts_with('@') && !name.starts_with('.'),
        Some(scope) if scope.starts_with('@') => parts.next() == Some("node_modules"),
        _ => false,
    }
}

/// An npm package from its `package.json`.
pub fn npm(bytes: &[u8], location: &str) -> Option<Package> {
    #[derive(serde::Deserialize)]
    struct Manifest {
        name: Option<String>,
        version: Option<String>,
        license: Option<serde_json::Value>,
    }
    let manifest: Manifest = serde_json::from_slice(bytes).ok()?;
    Some(Package {
        kind: PackageKind::Npm,
        name: manifest.name.filter(|n| !n.is_empty())?,
        version: manifest.version.filter(|v| !v.is_empty())?,
        source_name: None,
        source_version: None,
        arch: None,
        license: manifest.license.and_then(|l| l.as_str().map(str::to_owned)),
        location: location.to_owned(),
    })
}
