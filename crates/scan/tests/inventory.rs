//! The inventory of image layers: real package databases (this machine's dpkg status, a
//! venv's dist-info, npm's package.json, an Alpine `installed` file), whiteouts in layer
//! order, and hostile layers that must be reported within the limits, never panic.

mod common;

use std::io::Read;
use std::time::Duration;

use berth_scan::inventory::{inventory_layers, InventoryBuilder, LayerError, Limits, PackageKind};
use common::*;

fn inventory(layers: &[Vec<u8>]) -> berth_scan::Inventory {
    inventory_layers(
        layers
            .iter()
            .enumerate()
            .map(|(i, l)| (format!("#{i}"), l.as_slice())),
    )
}

fn names(inventory: &berth_scan::Inventory, kind: PackageKind) -> Vec<String> {
    inventory
        .packages
        .iter()
        .filter(|p| p.kind == kind)
        .map(|p| format!("{} {}", p.name, p.version))
        .collect()
}

#[test]
fn a_debian_image_lists_dpkg_python_and_npm_packages() {
    let inventory = inventory(&debian_image());
    let os = inventory.os.as_ref().unwrap();
    assert_eq!(
        (os.id.as_str(), os.version_id.as_deref()),
        ("debian", Some("12"))
    );

    // Independent count: stanzas whose status ends in "installed".
    let status = String::from_utf8(read("dpkg-status")).unwrap();
    let installed = status
        .lines()
        .filter(|l| l.starts_with("Status:") && l.ends_with(" installed"))
        .count();
    let debs = names(&inventory, PackageKind::Deb);
    assert_eq!(
        debs.len(),
        installed,
        "every installed dpkg package is listed"
    );
    assert!(debs.contains(&"apt 2.6.1".to_owned()));
    let libssl = inventory
        .packages
        .iter()
        .find(|p| p.name == "libssl3")
        .unwrap();
    assert_eq!(libssl.source_name.as_deref(), Some("openssl"));
    assert_eq!(libssl.version, "3.0.22-1~deb12u2");
    assert_eq!(libssl.location, "/var/lib/dpkg/status");
    let zlib = inventory
        .packages
        .iter()
        .find(|p| p.name == "zlib1g")
        .unwrap();
    assert_eq!(
        (zlib.source_name.as_deref(), zlib.version.as_str()),
        (Some("zlib"), "1:1.2.13.dfsg-1")
    );

    let mut python = names(&inventory, PackageKind::Python);
    python.sort();
    assert_eq!(
        python,
        [
            "Jinja2 2.11.2",
            "MarkupSafe 1.1.1",
            "certifi 2026.10.19.post1",
            "chardet 4.0.0",
            "idna 2.10",
            "requests 2.25.1",
            "urllib3 1.26.4"
        ]
    );
    assert_eq!(
        names(&inventory, PackageKind::Npm),
        ["lodash 4.17.20", "minimist 1.2.5"]
    );
    assert!(inventory.warnings.is_empty(), "{:?}", inventory.warnings);
}

#[test]
fn an_alpine_image_lists_apk_packages_with_their_origin() {
    let inventory = inventory(&alpine_image());
    let os = inventory.os.as_ref().unwrap();
    assert_eq!(
        (os.id.as_str(), os.version_id.as_deref()),
        ("alpine", Some("3.18.4"))
    );
    let apks: Vec<(String, String, Option<String>)> = inventory
        .packages
        .iter()
        .map(|p| (p.name.clone(), p.version.clone(), p.source_name.clone()))
        .collect();
    let expect = |n: &str, v: &str, o: &str| (n.to_owned(), v.to_owned(), Some(o.to_owned()));
    assert_eq!(
        apks,
        [
            expect("busybox", "1.36.1-r5", "busybox"),
            expect("libcrypto3", "3.1.3-r0", "openssl"),
            expect("libssl3", "3.1.3-r0", "openssl"),
            expect("musl", "1.2.4-r2", "musl"),
            expect("ssl_client", "1.36.1-r5", "busybox"),
            expect("zlib", "1.2.13-r1", "zlib"),
        ]
    );
}

#[test]
fn whiteouts_apply_in_layer_order() {
    let site = "usr/local/lib/python3.11/site-packages";
    let layers = vec![
        layer(&[("var/lib/dpkg/status", read("dpkg-status"))]),
        layer(&owned(&python_files(site))),
        layer(&owned(&npm_files("app"))),
        // Removes one Python package and, opaquely, everything the lower layers had under
        // app/node_modules, while adding minimist back in the same layer.
        layer(&[
            (&format!("{site}/.wh.chardet-4.0.0.dist-info"), Vec::new()),
            ("app/node_modules/.wh..wh..opq", Vec::new()),
            (
                "app/node_modules/minimist/package.json",
                read("npm/minimist/package.json"),
            ),
        ]),
        // The whole dpkg database is deleted.
        layer(&[("var/lib/dpkg/.wh.status", Vec::new())]),
    ];
    let inventory = inventory(&layers);
    assert!(
        names(&inventory, PackageKind::Deb).is_empty(),
        "the whited-out status file is gone"
    );
    let python = names(&inventory, PackageKind::Python);
    assert!(
        !python.iter().any(|p| p.starts_with("chardet")),
        "{python:?}"
    );
    assert!(python.iter().any(|p| p.starts_with("requests")));
    assert_eq!(names(&inventory, PackageKind::Npm), ["minimist 1.2.5"]);

    // A later layer's file replaces the earlier one.
    let newer = b"Package: only\nStatus: install ok installed\nVersion: 1.0\n".to_vec();
    let inventory = inventory_layers([
        (
            "a".to_owned(),
            layer(&[("var/lib/dpkg/status", read("dpkg-status"))]).as_slice(),
        ),
        (
            "b".to_owned(),
            layer(&[("/var/lib/dpkg/status", newer)]).as_slice(),
        ),
    ]);
    assert_eq!(names(&inventory, PackageKind::Deb), ["only 1.0"]);
}

#[test]
fn distroless_status_d_files_and_malformed_stanzas() {
    let status_d =
        b"Package: base-files\nStatus: install ok installed\nVersion: 12.4+deb12u5\n".to_vec();
    let malformed = b"Package: broken\nStatus: install ok installed\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n\nPackage: libc6\nSource: glibc\nVersion: 2.36-9+deb12u4\n".to_vec();
    let inventory = inventory(&[layer(&[
        ("var/lib/dpkg/status.d/base", status_d),
        ("var/lib/dpkg/status.d/base.md5sums", b"ignored".to_vec()),
        ("var/lib/dpkg/status.d/libc6", malformed),
    ])]);
    assert_eq!(
        names(&inventory, PackageKind::Deb),
        ["base-files 12.4+deb12u5", "libc6 2.36-9+deb12u4"]
    );
    assert!(
        inventory
            .warnings
            .iter()
            .any(|w| w.contains("1 malformed stanzas")),
        "{:?}",
        inventory.warnings
    );
}

fn small_limits() -> Limits {
    Limits {
        max_file_bytes: 1024 * 1024,
        max_kept_bytes: 4 * 1024 * 1024,
        max_unpacked_bytes: 32 * 1024 * 1024,
        max_entries: 10_000,
        max_path_bytes: 4096,
        max_duration: Duration::from_secs(120),
    }
}

#[test]
fn a_decompression_bomb_stops_at_the_limit_and_keeps_earlier_layers() {
    // 256 MiB of zeros compress to about 1 MiB.
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(256 * 1024 * 1024);
    header.set_entry_type(tar::EntryType::Regular);
    builder
        .append_data(
            &mut header,
            "bomb",
            std::io::repeat(0).take(256 * 1024 * 1024),
        )
        .unwrap();
    let bomb = gzip(&builder.into_inner().unwrap());
    assert!(bomb.len() < 2 * 1024 * 1024);

    let mut inventory = InventoryBuilder::new(small_limits());
    inventory.add_layer(alpine_image()[0].as_slice()).unwrap();
    assert_eq!(
        inventory.add_layer(bomb.as_slice()),
        Err(LayerError::TooLarge(32 * 1024 * 1024))
    );
    let result = inventory.finish();
    assert_eq!(
        result.packages.len(),
        6,
        "the layer below the bomb still counts"
    );
}

#[test]
fn hostile_entries_are_skipped_or_refused() {
    // `..` never lands anywhere; an absolute path is read relative to the image root.
    let inventory = inventory(&[layer(&[
        ("../../var/lib/dpkg/status", read("dpkg-status")),
        ("/etc/os-release", read("os-release-alpine318")),
    ])]);
    assert!(names(&inventory, PackageKind::Deb).is_empty());
    assert_eq!(inventory.os.unwrap().id, "alpine");
    assert!(
        inventory.warnings.iter().any(|w| w.contains("..")),
        "{:?}",
        inventory.warnings
    );

    // An enormous GNU long-name header is refused without being read into memory.
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::GNULongName);
    header.set_size(512 * 1024 * 1024);
    header.set_path("././@LongLink").unwrap();
    header.set_cksum();
    builder
        .append(&header, std::io::repeat(b'a').take(512 * 1024 * 1024))
        .unwrap();
    let long_name = builder.into_inner().unwrap();
    let mut limits = small_limits();
    limits.max_unpacked_bytes = 1024 * 1024 * 1024;
    let mut inventory = InventoryBuilder::new(limits);
    assert!(
        matches!(inventory.add_layer(long_name.as_slice()), Err(LayerError::Corrupt(m)) if m.contains("extended header"))
    );

    // Not a tar at all, and compressions the scanner does not read.
    let mut inventory = InventoryBuilder::new(small_limits());
    assert!(matches!(
        inventory.add_layer(&b"\x1f\x8bnot really gzip at all"[..]),
        Err(LayerError::Corrupt(_))
    ));
    assert!(matches!(
        inventory.add_layer(vec![7u8; 4096].as_slice()),
        Err(LayerError::Corrupt(_))
    ));
    assert_eq!(
        inventory.add_layer(&[0x28u8, 0xb5, 0x2f, 0xfd, 0, 0][..]),
        Err(LayerError::Unsupported("zstd"))
    );

    // A package database over the per-file limit is skipped with a warning.
    let mut limits = small_limits();
    limits.max_file_bytes = 1000;
    let mut inventory = InventoryBuilder::new(limits);
    inventory
        .add_layer(layer(&[("var/lib/dpkg/status", read("dpkg-status"))]).as_slice())
        .unwrap();
    let result = inventory.finish();
    assert!(result.packages.is_empty());
    assert!(
        result
            .warnings
            .iter()
            .any(|w| w.contains("over the 1000-byte limit")),
        "{:?}",
        result.warnings
    );

    // Too many entries.
    let files: Vec<(String, Vec<u8>)> = (0..50).map(|i| (format!("f{i}"), Vec::new())).collect();
    let mut limits = small_limits();
    limits.max_entries = 10;
    let mut inventory = InventoryBuilder::new(limits);
    assert_eq!(
        inventory.add_layer(layer(&owned(&files)).as_slice()),
        Err(LayerError::TooManyEntries(10))
    );
}
