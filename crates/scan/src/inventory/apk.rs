//! apk's database, `lib/apk/db/installed`: paragraphs of one-letter keys (`P:` name,
//! `V:` version, `o:` origin, `A:` arch, `L:` license).

use super::{Package, PackageKind};

/// The installed packages and the count of paragraphs without a name or version.
pub fn parse(text: &str, location: &str) -> (Vec<Package>, usize) {
    let text = text.replace("\r\n", "\n");
    let mut packages = Vec::new();
    let mut malformed = 0;
    for paragraph in text.split("\n\n") {
        let mut name = None;
        let mut version = None;
        let mut origin = None;
        let mut arch = None;
        let mut license = None;
        let mut any = false;
        for line in paragraph.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            any = true;
            let value = Some(value.trim().to_owned()).filter(|v| !v.is_empty());
            match key {
                "P" => name = value,
                "V" => version = value,
                "o" => origin = value,
                "A" => arch = value,
                "L" => license = value,
                _ => {}
            }
        }
        if !any {
            continue;
        }
        let (Some(name), Some(version)) = (name, version) else {
            malformed += 1;
            continue;
        };
        packages.push(Package {
            kind: PackageKind::Apk,
            name,
            version,
            source_name: origin,
            source_version: None,
            arch,
            license,
            location: location.to_owned(),
        });
    }
    (packages, malformed)
}
