//! The packages an SBOM lists (CycloneDX or SPDX JSON, as `syft`, `trivy` or `docker sbom`
//! write them and clients attach them to images), read from their package URLs, so that an
//! image whose layers hold no package database is still matched.

use serde::Deserialize;

use super::{OsRelease, Package, PackageKind};

/// Largest SBOM document read (a full distribution image's SPDX with files is a few MiB).
pub const MAX_SBOM_BYTES: u64 = 32 * 1024 * 1024;

/// What one SBOM gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SbomPackages {
    pub packages: Vec<Package>,
    /// The distribution named by the OS packages' `distro` qualifiers, if any.
    pub os: Option<OsRelease>,
    /// Package URLs of ecosystems the scanner does not match (Go, Maven, …) or unreadable.
    pub skipped: usize,
}

/// Why an SBOM was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SbomError {
    #[error("not a CycloneDX or SPDX JSON document: {0}")]
    Json(String),
    #[error("larger than {MAX_SBOM_BYTES} bytes")]
    TooLarge,
}

// Only the fields that carry package URLs are named.
#[derive(Deserialize)]
struct Document {
    #[serde(default)]
    components: Vec<Component>,
    #[serde(default)]
    packages: Vec<SpdxPackage>,
    #[serde(rename = "bomFormat")]
    bom_format: Option<String>,
    #[serde(rename = "spdxVersion")]
    spdx_version: Option<String>,
}

#[derive(Deserialize)]
struct Component {
    purl: Option<String>,
    #[serde(default)]
    components: Vec<Component>,
}

#[derive(Deserialize)]
struct SpdxPackage {
    #[serde(rename = "externalRefs", default)]
    external_refs: Vec<ExternalRef>,
}

#[derive(Deserialize)]
struct ExternalRef {
    #[serde(rename = "referenceType")]
    reference_type: Option<String>,
    #[serde(rename = "referenceLocator")]
    reference_locator: Option<String>,
}

/// Reads the packages of a CycloneDX (`components`, nested ones included) or SPDX
/// (`packages[].externalRefs` of type `purl`) JSON document. `location` names the document
/// in the packages it gives.
pub fn parse(bytes: &[u8], location: &str) -> Result<SbomPackages, SbomError> {
    if bytes.len() as u64 > MAX_SBOM_BYTES {
        return Err(SbomError::TooLarge);
    }
    let document: Document =
        serde_json::from_slice(bytes).map_err(|e| SbomError::Json(e.to_string()))?;
    if document.bom_format.as_deref() != Some("CycloneDX") && document.spdx_version.is_none() {
        return Err(SbomError::Json(
            "neither `bomFormat: CycloneDX` nor `spdxVersion`".to_owned(),
        ));
    }
    let mut purls = Vec::new();
    let mut pending: Vec<&Component> = document.components.iter().collect();
    while let Some(component) = pending.pop() {
        purls.extend(component.purl.as_deref());
        pending.extend(&component.components);
    }
    for package in &document.packages {
        purls.extend(
            package
                .external_refs
                .iter()
                .filter(|r| r.reference_type.as_deref() == Some("purl"))
                .filter_map(|r| r.reference_locator.as_deref()),
        );
    }
    let mut found = SbomPackages::default();
    for purl in purls {
        match package_of(purl, location) {
            Some((package, os)) => {
                if found.os.is_none() {
                    found.os = os;
                }
                found.packages.push(package);
            }
            None => found.skipped += 1,
        }
    }
    found.packages.sort();
    found.packages.dedup();
    Ok(found)
}

fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A parsed package URL: `pkg:type/namespace/name@version?qualifiers#subpath`.
struct Purl {
    kind: String,
    namespace: Option<String>,
    name: String,
    version: String,
    qualifiers: Vec<(String, String)>,
}

impl Purl {
    fn parse(value: &str) -> Option<Purl> {
        let rest = value.trim().strip_prefix("pkg:")?;
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let (rest, qualifiers) = match rest.split_once('?') {
            Some((rest, qualifiers)) => (rest, qualifiers),
            None => (rest, ""),
        };
        let (path, version) = rest.rsplit_once('@')?;
        let (kind, path) = path.trim_start_matches('/').split_once('/')?;
        let (namespace, name) = match path.trim_end_matches('/').rsplit_once('/') {
            Some((namespace, name)) => (Some(percent_decode(namespace)?), name),
            None => (None, path),
        };
        let qualifiers = qualifiers
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .filter_map(|(k, v)| Some((k.to_ascii_lowercase(), percent_decode(v)?)))
            .collect();
        let purl = Purl {
            kind: kind.to_ascii_lowercase(),
            namespace,
            name: percent_decode(name)?,
            version: percent_decode(version)?,
            qualifiers,
        };
        (!purl.name.is_empty() && !purl.version.is_empty()).then_some(purl)
    }

    fn qualifier(&self, key: &str) -> Option<&str> {
        self.qualifiers
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The distribution of an OS package: `distro=debian-12`, `distro=rhel-9.4`, or, as
    /// trivy writes apk ones, `distro=3.18.4` under the `alpine` namespace.
    fn os(&self) -> Option<OsRelease> {
        let distro = self.qualifier("distro")?;
        let (id, version) = if distro.starts_with(|c: char| c.is_ascii_digit()) {
            (self.namespace.clone()?, Some(distro.to_owned()))
        } else {
            match distro.rsplit_once('-') {
                Some((id, version)) if version.starts_with(|c: char| c.is_ascii_digit()) => {
                    (id.to_owned(), Some(version.to_owned()))
                }
                _ => (distro.to_owned(), None),
            }
        };
        Some(OsRelease {
            id: id.to_ascii_lowercase(),
            version_id: version,
            pretty_name: None,
        })
    }
}

fn package_of(value: &str, location: &str) -> Option<(Package, Option<OsRelease>)> {
    let purl = Purl::parse(value)?;
    let kind = match purl.kind.as_str() {
        "deb" => PackageKind::Deb,
        "apk" => PackageKind::Apk,
        "rpm" => PackageKind::Rpm,
        "pypi" => PackageKind::Python,
        "npm" => PackageKind::Npm,
        "cargo" => PackageKind::Cargo,
        _ => return None,
    };
    let name = match (kind, &purl.namespace) {
        (PackageKind::Npm, Some(scope)) => format!("{scope}/{}", purl.name),
        _ => purl.name.clone(),
    };
    let mut version = purl.version.clone();
    let (mut source_name, mut source_version) = (None, None);
    match kind {
        PackageKind::Rpm => {
            if let Some(epoch) = purl.qualifier("epoch").filter(|e| *e != "0") {
                version = format!("{epoch}:{version}");
            }
        }
        // syft writes the source (dpkg) or origin (apk) package as `upstream=name` or
        // `upstream=name@version`.
        PackageKind::Deb | PackageKind::Apk => {
            if let Some(upstream) = purl.qualifier("upstream") {
                match upstream.split_once('@') {
                    Some((name, version)) => {
                        source_name = Some(name.to_owned());
                        source_version = Some(version.to_owned());
                    }
                    None => source_name = Some(upstream.to_owned()),
                }
            }
        }
        _ => {}
    }
    let os = matches!(kind, PackageKind::Deb | PackageKind::Apk | PackageKind::Rpm)
        .then(|| purl.os())
        .flatten();
    let package = Package {
        kind,
        name,
        version,
        source_name,
        source_version,
        arch: purl.qualifier("arch").map(str::to_owned),
        license: None,
        location: location.to_owned(),
    };
    Some((package, os))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_urls_become_packages() {
        let (deb, os) = package_of(
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&upstream=glibc&distro=debian-12",
            "sbom",
        )
        .unwrap();
        assert_eq!(
            (deb.kind, deb.name.as_str(), deb.version.as_str()),
            (PackageKind::Deb, "libc6", "2.36-9+deb12u4")
        );
        assert_eq!(deb.source_name.as_deref(), Some("glibc"));
        let os = os.unwrap();
        assert_eq!(
            (os.id.as_str(), os.version_id.as_deref()),
            ("debian", Some("12"))
        );

        let (rpm, os) = package_of(
            "pkg:rpm/redhat/openssl-libs@3.0.7-27.el9?arch=x86_64&epoch=1&distro=rhel-9.4",
            "sbom",
        )
        .unwrap();
        assert_eq!(rpm.version, "1:3.0.7-27.el9");
        assert_eq!(os.unwrap().id, "rhel");

        let (apk, os) =
            package_of("pkg:apk/alpine/busybox@1.36.1-r5?distro=3.18.4", "sbom").unwrap();
        assert_eq!(apk.name, "busybox");
        let os = os.unwrap();
        assert_eq!(
            (os.id.as_str(), os.version_id.as_deref()),
            ("alpine", Some("3.18.4"))
        );

        let (npm, _) = package_of("pkg:npm/%40babel/core@7.23.0", "sbom").unwrap();
        assert_eq!(npm.name, "@babel/core");
        let (python, os) = package_of("pkg:pypi/jinja2@2.11.2", "sbom").unwrap();
        assert_eq!((python.kind, os), (PackageKind::Python, None));

        for unmatched in [
            "pkg:golang/golang.org/x/net@v0.17.0",
            "pkg:maven/org.apache/log4j@2.14.1",
            "pkg:npm/lodash",
            "pkg:npm/lodash@",
            "not a purl",
            "pkg:deb/debian/x@1%ZZ",
        ] {
            assert!(package_of(unmatched, "sbom").is_none(), "{unmatched}");
        }
    }

    #[test]
    fn documents_are_read_or_refused() {
        let cyclonedx = br#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[
            {"type":"library","name":"lodash","purl":"pkg:npm/lodash@4.17.20",
             "components":[{"type":"library","purl":"pkg:npm/minimist@1.2.5"}]},
            {"type":"library","purl":"pkg:golang/example.com/x@v1.0.0"},
            {"type":"library","name":"no purl"}]}"#;
        let found = parse(cyclonedx, "sbom").unwrap();
        let names: Vec<&str> = found.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["lodash", "minimist"]);
        assert_eq!(found.skipped, 1);

        let spdx = br#"{"spdxVersion":"SPDX-2.3","packages":[{"name":"zlib","externalRefs":[
            {"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl",
             "referenceLocator":"pkg:rpm/rocky/zlib@1.2.11-40.el9?arch=x86_64&distro=rocky-9.4"},
            {"referenceCategory":"SECURITY","referenceType":"cpe23Type",
             "referenceLocator":"cpe:2.3:a:zlib:zlib:1.2.11:*:*:*:*:*:*:*"}]}]}"#;
        let found = parse(spdx, "sbom").unwrap();
        assert_eq!(found.packages.len(), 1);
        assert_eq!(found.os.unwrap().id, "rocky");

        for bad in [
            &b"{}"[..],
            b"[1,2]",
            b"{\"bomFormat\":\"CycloneDX\",\"components\":7}",
            b"\xff",
        ] {
            assert!(parse(bad, "sbom").is_err());
        }
        let deep = format!(
            "{{\"bomFormat\":\"CycloneDX\",\"components\":[{}{}]}}",
            "{\"components\":[".repeat(5000),
            "]}".repeat(5000)
        );
        assert!(
            parse(deep.as_bytes(), "sbom").is_err(),
            "nesting is bounded"
        );
    }
}
