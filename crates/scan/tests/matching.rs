//! Matching the test images against real OSV advisories kept under `tests/data/osv`. The
//! expected findings were worked out by hand once from the advisories' ranges and the
//! installed versions, and are recorded here.

mod common;

use std::collections::HashMap;

use berth_scan::matching::{match_inventory, Severity, SeverityCounts};
use berth_scan::osv::{self, Advisory};
use berth_scan::{Ecosystem, Finding};
use common::*;

type Database = HashMap<(Ecosystem, String), Vec<Advisory>>;

fn database() -> (Database, osv::ReadStats) {
    database_of("osv")
}

fn database_of(dir: &str) -> (Database, osv::ReadStats) {
    let mut by_package: Database = HashMap::new();
    let stats = osv::read_path(&data(dir), &mut |advisory| {
        let mut keys: Vec<(Ecosystem, String)> = advisory
            .affected
            .iter()
            .map(|a| (a.ecosystem, a.package.clone()))
            .collect();
        keys.dedup();
        for key in keys {
            by_package.entry(key).or_default().push(advisory.clone());
        }
        Ok(())
    })
    .unwrap();
    (by_package, stats)
}

fn scan(layers: &[Vec<u8>]) -> Vec<Finding> {
    scan_with(&database().0, layers)
}

fn scan_with(db: &Database, layers: &[Vec<u8>]) -> Vec<Finding> {
    let inventory = berth_scan::inventory::inventory_layers(
        layers
            .iter()
            .enumerate()
            .map(|(i, l)| (format!("#{i}"), l.as_slice())),
    );
    match_inventory(&inventory, &mut |ecosystem, name| {
        db.get(&(ecosystem, name.to_owned()))
            .cloned()
            .unwrap_or_default()
    })
}

fn rows(findings: &[Finding]) -> Vec<String> {
    findings
        .iter()
        .map(|f| {
            format!(
                "{} {} {} {} {}",
                f.package,
                f.installed_version,
                f.advisory,
                f.severity.as_str(),
                f.fixed_version.as_deref().unwrap_or("-")
            )
        })
        .collect()
}

#[test]
fn the_fixture_database_reads_with_malformed_entries_counted() {
    let (_, stats) = database();
    assert_eq!(stats.documents, 17);
    assert_eq!(stats.advisories, 15);
    assert_eq!(stats.skipped, 2, "{:?}", stats.skipped_examples);
}

#[test]
fn the_debian_image_matches_by_source_package_and_ecosystem_order() {
    let findings = scan(&debian_image());
    let mut expected = vec![
        // minimist 1.2.5 is in [1.0.0, 1.2.6): CVSS 9.8.
        "minimist 1.2.5 GHSA-xvch-5gv4-984h critical 1.2.6",
        // lodash 4.17.20 < 4.17.21: CVSS 7.2.
        "lodash 4.17.20 GHSA-35jh-r3h4-6jhm high 4.17.21",
        // urllib3 1.26.4 is in [1.25.4, 1.26.5): CVSS 7.5.
        "urllib3 1.26.4 GHSA-q2q7-5pp4-w6pg high 1.26.5",
        // Jinja2 (PEP 503 name jinja2) 2.11.2 < 2.11.3 (CVSS 5.3) and < 3.1.3 (CVSS 5.4).
        "Jinja2 2.11.2 GHSA-g3rq-g295-4j3m medium 2.11.3",
        "Jinja2 2.11.2 GHSA-h5c8-rqwp-cp95 medium 3.1.3",
        // lodash 4.17.20 is in [4.0.0, 4.17.21): CVSS 5.3.
        "lodash 4.17.20 GHSA-29mw-wpgm-hmr9 medium 4.17.21",
        // requests 2.25.1 is in [2.3.0, 2.31.0) (CVSS 6.1) and [0, 2.32.0) (CVSS 5.6).
        "requests 2.25.1 GHSA-9wx4-h78v-vm56 medium 2.32.0",
        "requests 2.25.1 GHSA-j8r2-6x86-q33q medium 2.31.0",
        // urllib3 1.26.4 < 1.26.17; no CVSS vector, GitHub's own rating MODERATE.
        "urllib3 1.26.4 GHSA-v845-jxx5-vc9f medium 1.26.17",
    ];
    // Unfixed in Debian 12, urgency "unimportant", for every binary package built from
    // the source packages apt and util-linux (bsdutils: `Source: util-linux
    // (2.38.1-5+deb12u3)`, matched on the source version, shown with its own).
    let low = [
        ("apt", "2.6.1", "DEBIAN-CVE-2011-3374"),
        ("apt-transport-https", "2.6.1", "DEBIAN-CVE-2011-3374"),
        ("bsdextrautils", "2.38.1-5+deb12u3", "DEBIAN-CVE-2022-0563"),
        ("bsdutils", "1:2.38.1-5+deb12u3", "DEBIAN-CVE-2022-0563"),
        ("libapt-pkg6.0", "2.6.1", "DEBIAN-CVE-2011-3374"),
        ("libblkid1", "2.38.1-5+deb12u3", "DEBIAN-CVE-2022-0563"),
        ("libfdisk1", "2.38.1-5+deb12u3", "DEBIAN-CVE-2022-0563"),
        ("libmount1", "2.38.1-5+deb12u3", "DEBIAN-CVE-2022-0563"),
        ("libsmartcols1", "2.38.1-5+deb12u3", "DEBIAN-CVE-2022-0563"),
        ("libuuid1", "2.38.1-5+deb12u3", "DEBIAN-CVE-2022-0563"),
        ("mount", "2.38.1-5+deb12u3", "DEBIAN-CVE-2022-0563"),
        ("util-linux", "2.38.1-5+deb12u3", "DEBIAN-CVE-2022-0563"),
        (
            "util-linux-extra",
            "2.38.1-5+deb12u3",
            "DEBIAN-CVE-2022-0563",
        ),
        ("uuid-dev", "2.38.1-5+deb12u3", "DEBIAN-CVE-2022-0563"),
    ];
    let low: Vec<String> = low
        .iter()
        .map(|(p, v, a)| format!("{p} {v} {a} low -"))
        .collect();
    expected.extend(low.iter().map(String::as_str));
    // Unfixed in Debian 12, no rating in the record: both binaries of source zlib.
    expected.push("zlib1g 1:1.2.13.dfsg-1 DEBIAN-CVE-2023-45853 unknown -");
    expected.push("zlib1g-dev 1:1.2.13.dfsg-1 DEBIAN-CVE-2023-45853 unknown -");
    // Not expected: DSA-5532-1 (openssl 3.0.22-1~deb12u2 >= the fix 3.0.11-1~deb12u2).
    assert_eq!(rows(&findings), expected);
    let counts = SeverityCounts::of(&findings);
    assert_eq!(
        (
            counts.critical,
            counts.high,
            counts.medium,
            counts.low,
            counts.unknown
        ),
        (1, 2, 6, 14, 2)
    );
    assert!(counts.any_at_least(Severity::Critical));
}

#[test]
fn the_alpine_image_matches_by_origin_and_release() {
    let findings = scan(&alpine_image());
    assert_eq!(
        rows(&findings),
        [
            // openssl 3.1.3-r0 < 3.1.4-r0 in Alpine:v3.18; the v3.17 range does not apply.
            "libcrypto3 3.1.3-r0 ALPINE-CVE-2023-5363 unknown 3.1.4-r0",
            "libssl3 3.1.3-r0 ALPINE-CVE-2023-5363 unknown 3.1.4-r0",
            // Not expected: ALPINE-CVE-2022-48174 (busybox 1.36.1-r5 >= the fix 1.36.1-r1).
        ]
    );
}

#[test]
fn releases_and_last_affected_are_honoured() {
    let record = |ecosystem: &str, events: &str| {
        format!(
            r#"{{"id":"X-1","modified":"2024-01-01T00:00:00Z","affected":[{{"package":{{"ecosystem":"{ecosystem}","name":"openssl"}},"ranges":[{{"type":"ECOSYSTEM","events":{events}}}]}}]}}"#
        )
    };
    let parse = |json: String| match osv::parse(json.as_bytes()).unwrap() {
        osv::Parsed::Advisory(a) => a,
        osv::Parsed::Ignored => panic!("ignored"),
    };
    let image = alpine_image();
    let inventory = berth_scan::inventory::inventory_layers(
        image.iter().map(|l| ("l".to_owned(), l.as_slice())),
    );
    let run = |advisory: Advisory| {
        match_inventory(&inventory, &mut |_, name| {
            if name == "openssl" {
                vec![advisory.clone()]
            } else {
                vec![]
            }
        })
        .len()
    };
    assert_eq!(
        run(parse(record("Alpine:v3.17", r#"[{"introduced":"0"}]"#))),
        0,
        "another release"
    );
    assert_eq!(
        run(parse(record(
            "Alpine:v3.18",
            r#"[{"introduced":"0"},{"last_affected":"3.1.3-r0"}]"#
        ))),
        2
    );
    assert_eq!(
        run(parse(record(
            "Alpine:v3.18",
            r#"[{"introduced":"0"},{"last_affected":"3.1.2-r0"}]"#
        ))),
        0
    );
    assert_eq!(
        run(parse(record(
            "Alpine:v3.18",
            r#"[{"introduced":"3.1.4-r0"}]"#
        ))),
        0,
        "introduced later"
    );
    // Events out of order are sorted first.
    assert_eq!(
        run(parse(record(
            "Alpine:v3.18",
            r#"[{"fixed":"3.1.4-r0"},{"introduced":"3.0.0-r0"}]"#
        ))),
        2
    );
    // Withdrawn and unsupported-ecosystem records are ignored, not errors.
    assert!(matches!(
        osv::parse(br#"{"id":"X","modified":"m","withdrawn":"w","affected":[]}"#),
        Ok(osv::Parsed::Ignored)
    ));
    assert!(matches!(
        osv::parse(br#"{"id":"X","modified":"m","affected":[{"package":{"ecosystem":"Go","name":"x"},"versions":["1"]}]}"#),
        Ok(osv::Parsed::Ignored)
    ));
}

/// The rpm database written by rpm itself (Rocky Linux 9's names and versions) under the
/// os-release of several distributions, against the rpm distributions' advisories.
#[test]
fn rpm_images_match_their_distributions_advisories_by_rpm_order() {
    let (db, stats) = database_of("osv-rpm");
    assert_eq!((stats.advisories, stats.skipped), (4, 0));
    let image = |os_release: &str| {
        vec![layer(&[
            ("etc/os-release", os_release.as_bytes().to_vec()),
            ("var/lib/rpm/rpmdb.sqlite", read("rpm/rpmdb.sqlite")),
        ])]
    };
    let rocky = String::from_utf8(read("os-release-rocky94")).unwrap();
    // openssl-libs 1:3.0.7-27.el9 < 1:3.0.7-29.el9_4; RLSA-2024:2447's fix is the installed
    // EVR itself, so it does not count. The rating is the summary's "Moderate".
    let findings = scan_with(&db, &image(&rocky));
    assert_eq!(
        rows(&findings),
        ["openssl-libs 1:3.0.7-27.el9 RLSA-2024:6783 medium 1:3.0.7-29.el9_4"]
    );
    assert_eq!(findings[0].ecosystem, Ecosystem::RockyLinux);
    assert_eq!(findings[0].aliases, ["CVE-2024-6119"]);

    let alma = rocky.replace("ID=\"rocky\"", "ID=\"almalinux\"");
    assert_eq!(
        rows(&scan_with(&db, &image(&alma))),
        ["openssl-libs 1:3.0.7-27.el9 ALSA-2024:6783 medium 1:3.0.7-29.el9_4"]
    );
    // RHEL 9.4 matches `Red Hat:enterprise_linux:9::baseos`; Red Hat's CVSS v3 vector
    // (AV:N/AC:H/…/A:H, 5.9) sets the severity.
    let rhel = "ID=\"rhel\"\nVERSION_ID=\"9.4\"\n";
    let findings = scan_with(&db, &image(rhel));
    assert_eq!(
        rows(&findings),
        ["openssl-libs 1:3.0.7-27.el9 RHSA-2024:6783 medium 1:3.0.7-29.el9_4"]
    );
    assert_eq!(findings[0].score, Some(5.9));
    // Another release of the same distribution, and distributions without rpm advisories
    // in OSV, match nothing.
    for os in [
        rocky.replace("VERSION_ID=\"9.4\"", "VERSION_ID=\"8.9\""),
        "ID=\"fedora\"\nVERSION_ID=\"40\"\n".to_owned(),
        "ID=\"centos\"\nVERSION_ID=\"9\"\n".to_owned(),
    ] {
        assert_eq!(
            rows(&scan_with(&db, &image(&os))),
            Vec::<String>::new(),
            "{os}"
        );
    }
}

/// How each rpm distribution's os-release maps onto OSV's ecosystem releases (records
/// written inline: only the ecosystem strings differ, in the forms OSV publishes).
#[test]
fn rpm_distribution_releases_map_to_osv_ecosystems() {
    let record = |ecosystem: &str, package: &str, fixed: &str| {
        let json = format!(
            r#"{{"id":"X-1","modified":"2024-01-01T00:00:00Z","summary":"Important: x","affected":[{{"package":{{"ecosystem":"{ecosystem}","name":"{package}"}},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"0"}},{{"fixed":"{fixed}"}}]}}]}}]}}"#
        );
        match osv::parse(json.as_bytes()).unwrap() {
            osv::Parsed::Advisory(a) => a,
            osv::Parsed::Ignored => panic!("ignored: {ecosystem}"),
        }
    };
    let hits = |os_release: &str, advisory: Advisory| {
        let image = layer(&[
            ("etc/os-release", os_release.as_bytes().to_vec()),
            ("var/lib/rpm/rpmdb.sqlite", read("rpm/rpmdb.sqlite")),
        ]);
        let inventory =
            berth_scan::inventory::inventory_layers([("l".to_owned(), image.as_slice())]);
        match_inventory(&inventory, &mut |_, name| {
            if advisory.affected.iter().any(|a| a.package == name) {
                vec![advisory.clone()]
            } else {
                vec![]
            }
        })
    };
    let cases: &[(&str, &str, bool)] = &[
        (
            "ID=rhel\nVERSION_ID=9.4",
            "Red Hat:enterprise_linux:9::appstream",
            true,
        ),
        (
            "ID=rhel\nVERSION_ID=9.4",
            "Red Hat:enterprise_linux:8::baseos",
            false,
        ),
        // Extended update support is another product than the plain release.
        (
            "ID=rhel\nVERSION_ID=9.2",
            "Red Hat:rhel_eus:9.2::baseos",
            false,
        ),
        (
            "ID=rhel\nVERSION_ID=10.1",
            "Red Hat:enterprise_linux:10.1",
            true,
        ),
        ("ID=rocky\nVERSION_ID=9.4", "Rocky Linux:9", true),
        ("ID=rocky\nVERSION_ID=9.4", "AlmaLinux:9", false),
        ("ID=almalinux\nVERSION_ID=9.4", "AlmaLinux:9", true),
        ("ID=almalinux\nVERSION_ID=8.10", "AlmaLinux:9", false),
        (
            "ID=opensuse-leap\nVERSION_ID=15.5",
            "openSUSE:Leap 15.5",
            true,
        ),
        (
            "ID=opensuse-leap\nVERSION_ID=15.5",
            "openSUSE:Leap 15.5 NonFree",
            true,
        ),
        (
            "ID=opensuse-leap\nVERSION_ID=15.5",
            "openSUSE:Leap 15.50",
            false,
        ),
        (
            "ID=opensuse-leap\nVERSION_ID=15.5",
            "openSUSE:Tumbleweed",
            false,
        ),
        (
            "ID=opensuse-tumbleweed\nVERSION_ID=20240101",
            "openSUSE:Tumbleweed",
            true,
        ),
        (
            "ID=sles\nVERSION_ID=15.5",
            "SUSE:Linux Enterprise Server 15 SP5",
            true,
        ),
        (
            "ID=sles\nVERSION_ID=15.5",
            "SUSE:Linux Enterprise Module for Basesystem 15 SP5",
            true,
        ),
        (
            "ID=sles\nVERSION_ID=15.5",
            "SUSE:Linux Enterprise Server 15 SP4",
            false,
        ),
        (
            "ID=sles\nVERSION_ID=15",
            "SUSE:Linux Enterprise Server 15",
            true,
        ),
        (
            "ID=sles\nVERSION_ID=15",
            "SUSE:Linux Enterprise Server 15 SP5",
            false,
        ),
        (
            "ID=sle-micro\nVERSION_ID=5.5",
            "SUSE:Linux Enterprise Micro 5.5",
            true,
        ),
        (
            "ID=sle-micro\nVERSION_ID=5.5",
            "SUSE:Linux Enterprise Server 15 SP5",
            false,
        ),
    ];
    for (os, ecosystem, expected) in cases {
        let found = hits(os, record(ecosystem, "bash", "5.1.8-10.el9"));
        assert_eq!(!found.is_empty(), *expected, "{os} against {ecosystem}");
        if *expected {
            assert_eq!(found[0].severity, Severity::High, "the summary's Important");
            assert_eq!(found[0].fixed_version.as_deref(), Some("5.1.8-10.el9"));
        }
    }
    // The fix at or below the installed EVR, or behind a higher epoch: not affected.
    let rocky = "ID=rocky\nVERSION_ID=9.4";
    assert!(hits(rocky, record("Rocky Linux:9", "bash", "5.1.8-9.el9")).is_empty());
    assert!(!hits(rocky, record("Rocky Linux:9", "bash", "1:5.1.8-9.el9")).is_empty());
    assert!(hits(rocky, record("Rocky Linux:9", "zlib", "1.2.11-39.el9")).is_empty());
    assert!(!hits(rocky, record("Rocky Linux:9", "zlib", "1.2.11-40.el9_4")).is_empty());
}
