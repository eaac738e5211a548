//! The scanner reads what anyone may push: image layers, the package databases inside
//! them, SBOMs and advisory files. Whatever those hold, it answers (an inventory with
//! warnings, an error) and never panics; and its version orders are orders, so a hostile
//! version string cannot make "affected" depend on which side of a comparison it is on.

use berth_scan::inventory::{inventory_layers, rpm, sbom};
use berth_scan::{osv, Ecosystem, Inventory};
use proptest::prelude::*;
use std::cmp::Ordering;
use std::io::Write as _;

/// Each version order with its grammar (epochs, tildes, carets, pre-releases, post and
/// dev releases, suffixes, revisions, build metadata), as a generator of mostly valid
/// versions.
const ORDERS: [(Ecosystem, &str); 5] = [
    (
        Ecosystem::Debian,
        "([0-9]:)?[0-9][0-9a-z.+~]{0,8}(-[0-9a-z.+~]{1,6})?",
    ),
    (
        Ecosystem::Alpine,
        "[0-9]{1,2}(\\.[0-9]{1,2}){0,3}[a-z]?(_(alpha|beta|pre|rc|p)[0-9]{0,2})?(-r[0-9]{1,2})?",
    ),
    (
        Ecosystem::PyPI,
        "([0-9]!)?v?[0-9]{1,2}(\\.[0-9]{1,2}){0,3}((a|b|rc)[0-9]{1,2})?(\\.post[0-9])?(\\.dev[0-9])?(\\+[a-z0-9]{1,4})?",
    ),
    (
        Ecosystem::Npm,
        "[0-9]{1,2}\\.[0-9]{1,2}\\.[0-9]{1,2}(-(alpha|beta|rc|[0-9]{1,2})(\\.(alpha|[0-9]{1,2})){0,2})?(\\+[a-z0-9]{1,4})?",
    ),
    (
        Ecosystem::RedHat,
        "([0-9]:)?[0-9a-z]{1,3}([.~^+_][0-9a-z]{1,3}){0,3}(-[0-9a-z.]{1,5})?",
    ),
];

/// Anything near a version: digits, letters, separators and stray characters.
const VERSIONISH: &str = "([0-9]{1,3}|[a-z]{1,3}|[.~^+:_!*-]){0,10}";

/// An ecosystem and three versions for it, three in four from its grammar.
fn ordered_versions() -> impl Strategy<Value = (Ecosystem, String, String, String)> {
    (0..ORDERS.len()).prop_flat_map(|which| {
        let (ecosystem, grammar) = ORDERS[which];
        let version = || prop_oneof![3 => grammar, 1 => VERSIONISH];
        (Just(ecosystem), version(), version(), version())
    })
}

/// A tar archive holding `files` (path, contents).
fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, contents) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, path, *contents).unwrap();
    }
    builder.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn inventory_of(layer: Vec<u8>) -> Inventory {
    inventory_layers([("sha256:layer".to_owned(), std::io::Cursor::new(layer))])
}

/// The files the inventory reads, each of which a layer may fill with anything.
const DATABASES: [&str; 7] = [
    "var/lib/dpkg/status",
    "var/lib/dpkg/status.d/base",
    "lib/apk/db/installed",
    "etc/os-release",
    "usr/lib/python3/site-packages/pkg-1.0.dist-info/METADATA",
    "usr/lib/node_modules/pkg/package.json",
    "var/lib/rpm/rpmdb.sqlite",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Each ecosystem's order is an order wherever it answers: reflexive, antisymmetric
    /// and transitive.
    #[test]
    fn version_orders_are_orders((ecosystem, a, b, c) in ordered_versions()) {
        if let Some(same) = ecosystem.compare(&a, &a) {
            prop_assert_eq!(same, Ordering::Equal, "{:?} {}", ecosystem, a);
        }
        prop_assert_eq!(
            ecosystem.compare(&a, &b),
            ecosystem.compare(&b, &a).map(Ordering::reverse),
            "{:?}: {} against {}",
            ecosystem,
            a,
            b
        );
        let le = |x: &str, y: &str| ecosystem.compare(x, y).map(|o| o != Ordering::Greater);
        if le(&a, &b) == Some(true) && le(&b, &c) == Some(true) {
            prop_assert_eq!(le(&a, &c), Some(true), "{:?}: {} ≤ {} ≤ {}", ecosystem, a, b, c);
        }
    }

    /// Bytes that are no archive, or a broken one, are a warning, not a panic.
    #[test]
    fn any_layer_bytes_give_an_inventory(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = inventory_of(bytes.clone());
        let _ = inventory_of(gzip(&bytes));
    }

    /// Any contents in the files the inventory parses, plain or gzipped.
    #[test]
    fn any_package_database_gives_an_inventory(
        which in 0..DATABASES.len(),
        text in "(\\PC|\n|: ){0,400}",
        raw in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let path = DATABASES[which];
        let _ = inventory_of(tar_of(&[(path, text.as_bytes())]));
        let _ = inventory_of(gzip(&tar_of(&[(path, &raw)])));
    }

    /// A well-formed dpkg stanza of any name and version is found, whatever comes around it.
    #[test]
    fn a_dpkg_package_is_found_among_noise(
        name in "[a-z][a-z0-9+.-]{1,20}",
        version in "[0-9][0-9a-z.+~-]{0,12}",
        noise in "[A-Za-z-]{1,8}: [ -~]{0,30}",
    ) {
        let status = format!(
            "{noise}\n\nPackage: {name}\nStatus: install ok installed\nVersion: {version}\n\n{noise}\n"
        );
        let inventory = inventory_of(tar_of(&[("var/lib/dpkg/status", status.as_bytes())]));
        prop_assert!(
            inventory.packages.iter().any(|p| p.name == name && p.version == version),
            "{:?}",
            inventory.packages
        );
    }

    /// Advisories, SBOMs and rpm headers from anywhere: parsed or refused.
    #[test]
    fn advisories_sboms_and_rpm_headers_take_anything(
        bytes in proptest::collection::vec(any::<u8>(), 0..1024),
        json in "\\{(\"[a-z_]{1,10}\": ?(\\[|\\{|\"[ -~]{0,12}\"|[0-9]{1,4}|null|true)[,\\]\\} ]{0,3}){0,12}",
    ) {
        let _ = osv::parse(&bytes);
        let _ = osv::parse(json.as_bytes());
        let _ = sbom::parse(&bytes, "sbom.json");
        let _ = sbom::parse(json.as_bytes(), "sbom.json");
        let _ = rpm::parse_header(&bytes);
    }
}
