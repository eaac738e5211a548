//! The inventory of image layers: real package databases (this machine's dpkg status, a
//! venv's dist-info, npm's package.json, an Alpine `installed` file, an `rpmdb.sqlite`
//! written by rpm, a Rust binary built with `cargo auditable`), gzip and zstd layers,
//! whiteouts in layer order, and hostile layers that must be reported within the limits,
//! never panic.

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
    assert!(matches!(
        inventory.add_layer(&[0x28u8, 0xb5, 0x2f, 0xfd, 0, 0][..]),
        Err(LayerError::Corrupt(_))
    ));
    assert_eq!(
        inventory.add_layer(&b"BZh91AY&SY"[..]),
        Err(LayerError::Unsupported("bzip2"))
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

fn tar_of(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o755);
        builder
            .append_data(&mut header, path, content.as_slice())
            .unwrap();
    }
    builder.into_inner().unwrap()
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    ruzstd::encoding::compress(bytes, &mut out, ruzstd::encoding::CompressionLevel::Fastest);
    out
}

#[test]
fn an_rpm_database_lists_its_packages_with_their_source_rpm() {
    for path in [
        "var/lib/rpm/rpmdb.sqlite",
        "usr/lib/sysimage/rpm/rpmdb.sqlite",
    ] {
        let inventory = inventory(&[layer(&[(path, read("rpm/rpmdb.sqlite"))])]);
        assert!(inventory.warnings.is_empty(), "{:?}", inventory.warnings);
        let mut rpms: Vec<String> = inventory
            .packages
            .iter()
            .map(|p| {
                format!(
                    "{} {} {} {}",
                    p.name,
                    p.version,
                    p.source_name.as_deref().unwrap_or("-"),
                    p.source_version.as_deref().unwrap_or("-")
                )
            })
            .collect();
        rpms.sort();
        // As `rpm -qa` printed them when the database was made (tests/data/rpm/README.md).
        assert_eq!(
            rpms,
            [
                "bash 5.1.8-9.el9 bash 5.1.8-9.el9",
                "openssl-libs 1:3.0.7-27.el9 openssl 3.0.7-27.el9",
                "zlib 1.2.11-40.el9 zlib 1.2.11-40.el9",
            ]
        );
        assert!(inventory.packages.iter().all(|p| p.kind == PackageKind::Rpm
            && p.location == format!("/{path}")
            && p.arch.as_deref() == Some("x86_64")));
    }

    // A database deleted by a later layer is gone; a damaged one is reported.
    let deleted = inventory(&[
        layer(&[("var/lib/rpm/rpmdb.sqlite", read("rpm/rpmdb.sqlite"))]),
        layer(&[("var/lib/rpm/.wh.rpmdb.sqlite", Vec::new())]),
    ]);
    assert!(deleted.packages.is_empty());
    let mut damaged = read("rpm/rpmdb.sqlite");
    // The first page only: the schema names tables whose pages are missing.
    damaged.truncate(4096);
    for bytes in [
        damaged,
        b"SQLite format 3\0garbage".to_vec(),
        b"not a database".to_vec(),
    ] {
        let inventory = inventory(&[layer(&[("var/lib/rpm/rpmdb.sqlite", bytes)])]);
        assert!(inventory.packages.is_empty());
        assert!(
            inventory
                .warnings
                .iter()
                .any(|w| w.contains("rpmdb.sqlite")),
            "{:?}",
            inventory.warnings
        );
    }
}

#[test]
fn zstd_layers_are_read_like_gzip_ones_in_one_frame_or_many() {
    let alpine = tar_of(&[
        ("lib/apk/db/installed", read("alpine-installed")),
        ("etc/os-release", read("os-release-alpine318")),
    ]);
    let one_frame = zstd(&alpine);
    let result = inventory(&[one_frame]);
    assert_eq!(result.os.as_ref().unwrap().id, "alpine");
    assert_eq!(
        names(&result, PackageKind::Apk).len(),
        6,
        "{:?}",
        result.warnings
    );

    // zstd:chunked writes many frames with skippable frames between them.
    let (first, second) = alpine.split_at(1536);
    let mut chunked = zstd(first);
    chunked.extend_from_slice(&0x184D_2A50u32.to_le_bytes());
    chunked.extend_from_slice(&5u32.to_le_bytes());
    chunked.extend_from_slice(b"skip!");
    chunked.extend_from_slice(&zstd(second));
    let result = inventory(&[chunked.clone()]);
    assert_eq!(
        names(&result, PackageKind::Apk).len(),
        6,
        "{:?}",
        result.warnings
    );

    // A zstd bomb stops at the unpacked limit like a gzip one.
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(64 * 1024 * 1024);
    builder
        .append_data(
            &mut header,
            "bomb",
            std::io::repeat(0).take(64 * 1024 * 1024),
        )
        .unwrap();
    let bomb = zstd(&builder.into_inner().unwrap());
    let mut limits = small_limits();
    limits.max_unpacked_bytes = 8 * 1024 * 1024;
    let mut inventory = InventoryBuilder::new(limits);
    assert_eq!(
        inventory.add_layer(bomb.as_slice()),
        Err(LayerError::TooLarge(8 * 1024 * 1024))
    );
    // A frame cut short is a corrupt layer, not a panic.
    let mut inventory = InventoryBuilder::new(small_limits());
    assert!(matches!(
        inventory.add_layer(&chunked[..chunked.len() / 2]),
        Err(LayerError::Corrupt(_))
    ));
}

fn auditable_binary() -> Vec<u8> {
    let mut binary = Vec::new();
    flate2::read::GzDecoder::new(read("auditable/hello-auditable.gz").as_slice())
        .read_to_end(&mut binary)
        .unwrap();
    binary
}

#[test]
fn a_rust_binary_built_with_cargo_auditable_lists_its_crates() {
    let binary = auditable_binary();
    let result = inventory(&[layer(&[
        ("etc/os-release", read("os-release-debian12")),
        ("usr/local/bin/hello", binary.clone()),
        // The same bytes without the execute bit are data, not a program: not read.
        ("srv/hello.copy", binary.clone()),
    ])]);
    let crates: Vec<_> = result
        .packages
        .iter()
        .filter(|p| p.kind == PackageKind::Cargo)
        .map(|p| (p.name.as_str(), p.version.as_str(), p.location.as_str()))
        .collect();
    // Only the crates.io dependency: the binary's own (local) crate is in no advisory.
    assert_eq!(crates, [("smallvec", "1.6.0", "/usr/local/bin/hello")]);

    // A later layer replacing the binary with another program takes its crates away.
    let replaced = inventory(&[
        layer(&[("usr/local/bin/hello", binary.clone())]),
        layer(&[("usr/local/bin/hello", b"#!/bin/sh\necho hello\n".repeat(10))]),
    ]);
    assert!(replaced.packages.is_empty(), "{:?}", replaced.packages);
    let deleted = inventory(&[
        layer(&[("usr/local/bin/hello", binary.clone())]),
        layer(&[("usr/local/bin/.wh.hello", Vec::new())]),
    ]);
    assert!(deleted.packages.is_empty());

    // A damaged ELF is not a program with crates, and never a panic.
    let mut damaged = binary.clone();
    damaged.truncate(damaged.len() / 2);
    let result = inventory(&[layer(&[("usr/local/bin/hello", damaged)])]);
    assert!(result.packages.is_empty());
}
