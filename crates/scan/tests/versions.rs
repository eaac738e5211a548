//! Version-order tables for each ecosystem, edge cases included, and CVSS v3 base scores
//! checked against the scores NVD publishes for the same vectors.

use std::cmp::Ordering::{self, Equal, Greater, Less};

use berth_scan::cvss::base_score;
use berth_scan::version::{compare_apk, compare_dpkg, compare_pep440, compare_rpm, compare_semver};

fn check(
    name: &str,
    compare: fn(&str, &str) -> Option<Ordering>,
    table: &[(&str, Ordering, &str)],
) {
    for (a, expected, b) in table {
        assert_eq!(compare(a, b), Some(*expected), "{name}: {a} vs {b}");
        assert_eq!(
            compare(b, a),
            Some(expected.reverse()),
            "{name}: {b} vs {a} (reversed)"
        );
    }
}

/// Every version must sort strictly before the next one, in both directions.
fn ascending(name: &str, compare: fn(&str, &str) -> Option<Ordering>, chain: &[&str]) {
    for pair in chain.windows(2) {
        assert_eq!(
            compare(pair[0], pair[1]),
            Some(Less),
            "{name}: {} < {}",
            pair[0],
            pair[1]
        );
        assert_eq!(
            compare(pair[1], pair[0]),
            Some(Greater),
            "{name}: {} > {}",
            pair[1],
            pair[0]
        );
    }
}

#[test]
fn dpkg_follows_deb_version() {
    check(
        "dpkg",
        compare_dpkg,
        &[
            ("1.0~rc1", Less, "1.0"),
            ("1.0", Less, "1.0-1"),
            ("1.0", Equal, "1.0-0"),
            ("0:1.0", Equal, "1.0"),
            ("1:0.9", Greater, "2.0"),
            ("2:1.0", Greater, "1:9.9"),
            ("2.30-1", Greater, "2.4-1"),
            ("1.01", Equal, "1.1"),
            ("1.0+dfsg-1", Greater, "1.0-1"),
            ("1.0a", Less, "1.0+"),
            ("1.2.3-1ubuntu1", Greater, "1.2.3-1"),
            ("3.0.11-1~deb12u2", Less, "3.0.11-1"),
            ("3.0.11-1~deb12u2", Greater, "3.0.11-1~deb12u1"),
            ("2.36-9+deb12u4", Greater, "2.36-9+deb12u3"),
            ("7.88.1-10+deb12u5", Less, "7.88.1-10+deb12u12"),
            ("1.0-1-1", Greater, "1.0-1"),
            (
                "99999999999999999999999999",
                Less,
                "100000000000000000000000000",
            ),
        ],
    );
    ascending(
        "dpkg",
        compare_dpkg,
        &["1.0~~", "1.0~~a", "1.0~", "1.0", "1.0a", "1.0+", "1.0.1"],
    );
    for bad in ["", "abc", ":1.0", "a:1.0", "1.0-r$", "1.0 2"] {
        assert_eq!(compare_dpkg(bad, "1.0"), None, "dpkg refuses {bad:?}");
    }
}

/// rpm 4.15+'s rpmvercmp, with the cases of rpm's own `rpmvercmp.at` table, then whole EVRs
/// as Red Hat, Rocky, AlmaLinux and SUSE advisories write them.
#[test]
fn rpm_follows_rpmvercmp() {
    check(
        "rpm",
        compare_rpm,
        &[
            ("1.0", Equal, "1.0"),
            ("1.0", Less, "2.0"),
            ("2.0.1", Greater, "2.0"),
            ("2.0.1a", Greater, "2.0.1"),
            ("5.5p1", Less, "5.5p2"),
            ("5.5p10", Greater, "5.5p1"),
            ("10xyz", Less, "10.1xyz"),
            ("xyz10", Less, "xyz10.1"),
            ("xyz.4", Less, "8"),
            ("5.5p1", Less, "5.6p1"),
            ("6.0.rc1", Greater, "6.0"),
            ("10b2", Greater, "10a1"),
            ("1.0aa", Greater, "1.0a"),
            ("10.0001", Equal, "10.1"),
            ("10.0001", Less, "10.0039"),
            ("4.999.9", Less, "5.0"),
            ("20101121", Greater, "20101120"),
            ("2_0", Equal, "2.0"),
            ("2a", Less, "2.0"),
            ("1.0", Greater, "1.fc4"),
            ("3.0.0_fc", Greater, "3.0.fc"),
            // `~`: a pre-release, before the release and before the end of the string.
            ("1.0~rc1", Less, "1.0"),
            ("1.0~rc1", Equal, "1.0~rc1"),
            ("1.0~rc1", Less, "1.0~rc2"),
            ("1.0~rc1~git123", Less, "1.0~rc1"),
            // `^`: a snapshot after a release, before the next one.
            ("1.0^", Greater, "1.0"),
            ("1.0^git1", Greater, "1.0"),
            ("1.0^git1", Less, "1.01"),
            ("1.0^20160101", Less, "1.0.1"),
            ("1.0^20160101^git1", Greater, "1.0^20160101"),
            ("1.0~rc1^git1", Greater, "1.0~rc1"),
            ("1.0~rc1^git1", Less, "1.0"),
            ("1.0^git1~pre", Less, "1.0^git1"),
            // Whole EVRs: the epoch first, then the version, then the release.
            ("1:1.0-1", Greater, "2.0-1"),
            ("0:1.0-1", Equal, "1.0-1"),
            ("1:3.0.7-27.el9", Greater, "3.0.8-1.el9"),
            ("1:3.0.7-27.el9", Less, "1:3.0.7-29.el9_4"),
            ("1:3.0.7-28.el9_4", Greater, "1:3.0.7-27.el9"),
            ("1.2.11-40.el9", Greater, "1.2.11-39.el9"),
            ("5.1.8-9.el9", Less, "5.1.8-10.el9"),
            ("1.0-1.el9", Less, "1.0-1.el9_1"),
            ("3.0.8-150500.5.8.1", Greater, "3.0.8-150500.5.3.1"),
            (
                "1:20.15.1-1.module_el9.4.0+123+abcdef12",
                Greater,
                "1:20.12.2-2.module_el9.3.0+6",
            ),
            // A release missing on one side is not compared, as in rpm's dependency ranges.
            ("1.0", Equal, "1.0-5.el9"),
            (
                "99999999999999999999999999",
                Less,
                "100000000000000000000000000",
            ),
        ],
    );
    ascending(
        "rpm",
        compare_rpm,
        &[
            "1.0~~", "1.0~rc1", "1.0", "1.0^", "1.0^git1", "1.0a", "1.0.1", "1:0.1",
        ],
    );
    for bad in ["", ":1.0", "a:1.0", "1.0-", "1.0 2", "1.\n0"] {
        assert_eq!(compare_rpm(bad, "1.0"), None, "rpm refuses {bad:?}");
    }
}

#[test]
fn apk_follows_apk_tools() {
    check(
        "apk",
        compare_apk,
        &[
            ("1.0", Equal, "1.0"),
            ("1.2", Less, "1.10"),
            ("2.0", Greater, "1.99.99"),
            ("1.01", Less, "1.1"),
            ("3.1.4-r1", Less, "3.1.4-r5"),
            ("1.36.1-r5", Less, "1.36.1-r15"),
            ("1.0~abc123", Greater, "1.0"),
            ("1.0_git20230101", Greater, "1.0"),
            ("1.0_rc1", Less, "1.0_rc2"),
            ("1.0_p1-r0", Greater, "1.0-r9"),
        ],
    );
    ascending(
        "apk",
        compare_apk,
        &[
            "1.0_alpha",
            "1.0_alpha2",
            "1.0_beta",
            "1.0_pre",
            "1.0_rc1",
            "1.0",
            "1.0-r1",
            "1.0-r2",
            "1.0-r10",
            "1.0_p1",
            "1.0a",
            "1.0b",
            "1.0.1",
        ],
    );
    for bad in ["", "abc", "1.0-r", "1.0_foo", "1.0-1", "1..0", "1.0~"] {
        assert_eq!(compare_apk(bad, "1.0"), None, "apk refuses {bad:?}");
    }
}

#[test]
fn pep440_follows_the_pep() {
    // The ordering example of PEP 440 ("Summary of permitted suffixes and relative ordering").
    ascending(
        "pep440",
        compare_pep440,
        &[
            "1.0.dev456",
            "1.0a1",
            "1.0a2.dev456",
            "1.0a12.dev456",
            "1.0a12",
            "1.0b1.dev456",
            "1.0b2",
            "1.0b2.post345.dev456",
            "1.0b2.post345",
            "1.0b2-346",
            "1.0c1.dev456",
            "1.0c1",
            "1.0rc2",
            "1.0c3",
            "1.0",
            "1.0+abc",
            "1.0+abc.5",
            "1.0+5",
            "1.0.post456.dev34",
            "1.0.post456",
            "1.1.dev1",
        ],
    );
    check(
        "pep440",
        compare_pep440,
        &[
            ("1.0", Equal, "1.0.0"),
            ("1.0alpha1", Equal, "1.0a1"),
            ("1.0-1", Equal, "1.0.post1"),
            ("1.0.post", Equal, "1.0.post0"),
            ("V1.0", Equal, "1.0"),
            ("1!0.5", Greater, "2.0"),
            ("2.31.0", Greater, "2.4.0"),
            ("1.0-rc.1", Equal, "1.0rc1"),
            ("1.0.PREVIEW2", Equal, "1.0rc2"),
        ],
    );
    for bad in ["", "not-a-version", "1.0+", "1.0+a b", "1.0xyz"] {
        assert_eq!(compare_pep440(bad, "1.0"), None, "PEP 440 refuses {bad:?}");
    }
}

#[test]
fn semver_follows_semver_precedence() {
    // The precedence example of Semantic Versioning 2.0.0, item 11.
    ascending(
        "semver",
        compare_semver,
        &[
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.10.0",
            "2.0.0",
        ],
    );
    check(
        "semver",
        compare_semver,
        &[
            ("1.0.0+build.7", Equal, "1.0.0"),
            ("v1.2.3", Equal, "1.2.3"),
            ("4.17.21", Greater, "4.17.4"),
        ],
    );
    for bad in ["", "1.2", "1.2.3.4", "1.2.x", "1.2.3-", "1.2.3-a..b"] {
        assert_eq!(compare_semver(bad, "1.0.0"), None, "semver refuses {bad:?}");
    }
}

#[test]
fn cvss_v3_base_scores_match_nvd() {
    for (vector, score) in [
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
        // Heartbleed (CVE-2014-0160).
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", 7.5),
        ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
        ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H", 8.1),
        ("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", 1.6),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
        ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H", 9.9),
        ("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
        // Log4Shell (CVE-2021-44228), temporal metrics ignored.
        (
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H/E:H/RL:O/RC:C",
            10.0,
        ),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N", 5.3),
        ("CVSS:3.1/AV:L/AC:H/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.0),
        ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:L/I:L/A:N", 5.4),
    ] {
        assert_eq!(base_score(vector), Ok(score), "{vector}");
    }
    for bad in [
        "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H",
        "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        "CVSS:3.1/AV:N/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        "CVSS:3.1/",
    ] {
        assert!(base_score(bad).is_err(), "refused: {bad}");
    }
}
