//! CycloneDX 1.5 JSON SBOMs from an inventory, with package URLs for every component.

use serde_json::{json, Value};

use crate::inventory::{Inventory, OsRelease, Package, PackageKind};

/// The media type (and referrer artifact type) of the documents `cyclonedx` writes.
pub const CYCLONEDX_MEDIA_TYPE: &str = "application/vnd.cyclonedx+json";

/// Percent-encodes a purl segment (everything but unreserved characters).
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b".-_~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The package URL of a package (`pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64&distro=debian-12`).
pub fn purl(package: &Package, os: Option<&OsRelease>) -> String {
    let distro = os.map(|os| match &os.version_id {
        Some(version) => format!("{}-{}", os.id, version),
        None => os.id.clone(),
    });
    let namespace_and_name = match package.kind {
        PackageKind::Deb | PackageKind::Apk | PackageKind::Rpm => {
            let vendor = os.map_or(
                match package.kind {
                    PackageKind::Apk => "alpine",
                    PackageKind::Rpm => "redhat",
                    _ => "debian",
                },
                |os| os.id.as_str(),
            );
            format!("{}/{}", encode(vendor), encode(&package.name))
        }
        PackageKind::Npm => match package.name.split_once('/') {
            Some((scope, name)) if scope.starts_with('@') => {
                format!("{}/{}", encode(scope), encode(name))
            }
            _ => encode(&package.name),
        },
        PackageKind::Python => encode(&crate::osv::normalize_pypi(&package.name)),
        PackageKind::Cargo => encode(&package.name),
    };
    let kind = match package.kind {
        PackageKind::Deb => "deb",
        PackageKind::Apk => "apk",
        PackageKind::Rpm => "rpm",
        PackageKind::Python => "pypi",
        PackageKind::Npm => "npm",
        PackageKind::Cargo => "cargo",
    };
    let mut qualifiers = Vec::new();
    if matches!(
        package.kind,
        PackageKind::Deb | PackageKind::Apk | PackageKind::Rpm
    ) {
        if let Some(arch) = &package.arch {
            qualifiers.push(format!("arch={}", encode(arch)));
        }
        if let Some(distro) = &distro {
            qualifiers.push(format!("distro={}", encode(distro)));
        }
    }
    let mut purl = format!(
        "pkg:{kind}/{namespace_and_name}@{}",
        encode(&package.version)
    );
    if !qualifiers.is_empty() {
        purl.push('?');
        purl.push_str(&qualifiers.join("&"));
    }
    purl
}

/// The SBOM of an image: `subject` is `namespace/repository`, `digest` the manifest's,
/// `timestamp` RFC 3339 if wanted. The serial number derives from the digest, so without
/// a timestamp the same inventory always gives the same bytes (and the same referrer).
pub fn cyclonedx(
    inventory: &Inventory,
    subject: &str,
    digest: &str,
    timestamp: Option<&str>,
    tool_version: &str,
) -> Value {
    let hex: String = digest
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .chars()
        .chain(std::iter::repeat('0'))
        .take(32)
        .collect();
    let serial = format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    );
    let mut components: Vec<Value> = Vec::new();
    if let Some(os) = &inventory.os {
        components.push(json!({
            "type": "operating-system",
            "bom-ref": format!("os:{}", os.id),
            "name": os.id,
            "version": os.version_id,
            "description": os.pretty_name,
        }));
    }
    for package in &inventory.packages {
        let purl = purl(package, inventory.os.as_ref());
        let mut component = json!({
            "type": "library",
            "bom-ref": format!("{purl}#{}", package.location),
            "name": package.name,
            "version": package.version,
            "purl": purl,
            "properties": [{"name": "berth:package:location", "value": package.location}],
        });
        if let Some(license) = &package.license {
            component["licenses"] = json!([{"license": {"name": license}}]);
        }
        if let Some(source) = &package.source_name {
            if let Some(properties) = component["properties"].as_array_mut() {
                properties.push(json!({"name": "berth:package:source", "value": source}));
            }
        }
        components.push(component);
    }
    let mut document = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": serial,
        "version": 1,
        "metadata": {
            "tools": {"components": [{"type": "application", "name": "berth", "version": tool_version}]},
            "component": {"type": "container", "bom-ref": digest, "name": subject, "version": digest},
        },
        "components": components,
    });
    if let Some(timestamp) = timestamp {
        document["metadata"]["timestamp"] = json!(timestamp);
    }
    document
}
