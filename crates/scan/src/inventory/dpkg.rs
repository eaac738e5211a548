//! dpkg's database: `var/lib/dpkg/status` and distroless's `var/lib/dpkg/status.d/<pkg>`,
//! stanzas of RFC 822-style fields.

use super::{Package, PackageKind};

/// The fields of each stanza, continuation lines folded away (they are never wanted here).
pub(crate) fn stanzas(text: &str) -> impl Iterator<Item = Vec<(&str, &str)>> {
    text.split("\n\n").filter_map(|stanza| {
        let fields: Vec<(&str, &str)> = stanza
            .lines()
            .filter(|line| !line.starts_with([' ', '\t']))
            .filter_map(|line| line.split_once(':'))
            .map(|(key, value)| (key.trim(), value.trim()))
            .collect();
        (!fields.is_empty()).then_some(fields)
    })
}

fn field<'a>(fields: &[(&'a str, &'a str)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| *value)
        .filter(|v| !v.is_empty())
}

/// The installed packages of one status file. Stanzas without a name or version, and
/// packages that are not installed (removed, purged, half-configured leftovers), are left
/// out; the count of malformed stanzas is returned beside them.
pub fn parse(text: &str, location: &str) -> (Vec<Package>, usize) {
    let text = text.replace("\r\n", "\n");
    let mut packages = Vec::new();
    let mut malformed = 0;
    for fields in stanzas(&text) {
        let (Some(name), Some(version)) = (field(&fields, "Package"), field(&fields, "Version"))
        else {
            malformed += 1;
            continue;
        };
        if let Some(status) = field(&fields, "Status") {
            if status.split_whitespace().last() != Some("installed") {
                continue;
            }
        }
        // `Source: name (version)` when the source version differs from the binary's.
        let (source_name, source_version) = match field(&fields, "Source") {
            Some(source) => match source.split_once('(') {
                Some((name, version)) => (
                    Some(name.trim().to_owned()),
                    Some(version.trim_end_matches(')').trim().to_owned()),
                ),
                None => (Some(source.to_owned()), None),
            },
            None => (None, None),
        };
        packages.push(Package {
            kind: PackageKind::Deb,
            name: name.to_owned(),
            version: version.to_owned(),
            source_name,
            source_version,
            arch: field(&fields, "Architecture").map(str::to_owned),
            license: None,
            location: location.to_owned(),
        });
    }
    (packages, malformed)
}
