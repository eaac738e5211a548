//! Matching an inventory against advisories: which installed package falls in which
//! advisory's affected ranges, by its ecosystem's version order, and how severe that is.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::inventory::{Inventory, OsRelease, Package, PackageKind};
use crate::osv::{Advisory, Affected, Event};
use crate::version::Ecosystem;

/// Severity levels, ordered: `Unknown` is the lowest so that `--fail-on low` ignores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Unknown,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Unknown,
    ];

    /// CVSS v3's qualitative rating of a base score (0.0 is "none", counted as low here:
    /// the advisory still names a flaw).
    pub fn from_score(score: f64) -> Severity {
        if score >= 9.0 {
            Severity::Critical
        } else if score >= 7.0 {
            Severity::High
        } else if score >= 4.0 {
            Severity::Medium
        } else {
            Severity::Low
        }
    }

    /// An advisory database's own word for severity (GitHub: `MODERATE`; Debian urgency:
    /// `unimportant`, `not yet assigned`; Ubuntu priority: `negligible`).
    pub fn from_rating(rating: &str) -> Option<Severity> {
        let rating = rating.trim().to_ascii_lowercase();
        let rating = rating.trim_end_matches('*').trim();
        Some(match rating {
            "critical" => Severity::Critical,
            "high" | "important" => Severity::High,
            "medium" | "moderate" => Severity::Medium,
            "low" | "negligible" | "unimportant" => Severity::Low,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Unknown => "unknown",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(value: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

/// One installed package affected by one advisory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub package: String,
    pub ecosystem: Ecosystem,
    pub installed_version: String,
    pub advisory: String,
    pub aliases: Vec<String>,
    pub severity: Severity,
    pub score: Option<f64>,
    /// The lowest fixed version above the installed one, if the advisory names one.
    pub fixed_version: Option<String>,
    pub summary: String,
}

/// Counts of findings by severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeverityCounts {
    pub critical: u64,
    pub high: u64,
    pub medium: u64,
    pub low: u64,
    pub unknown: u64,
}

impl SeverityCounts {
    pub fn of(findings: &[Finding]) -> SeverityCounts {
        let mut counts = SeverityCounts::default();
        for finding in findings {
            *counts.slot(finding.severity) += 1;
        }
        counts
    }

    fn slot(&mut self, severity: Severity) -> &mut u64 {
        match severity {
            Severity::Critical => &mut self.critical,
            Severity::High => &mut self.high,
            Severity::Medium => &mut self.medium,
            Severity::Low => &mut self.low,
            Severity::Unknown => &mut self.unknown,
        }
    }

    /// Whether any finding is at `threshold` or worse.
    pub fn any_at_least(&self, threshold: Severity) -> bool {
        Severity::ALL
            .into_iter()
            .filter(|s| *s >= threshold)
            .any(|s| match s {
                Severity::Critical => self.critical > 0,
                Severity::High => self.high > 0,
                Severity::Medium => self.medium > 0,
                Severity::Low => self.low > 0,
                Severity::Unknown => self.unknown > 0,
            })
    }
}

/// What an installed package is looked up by: the OSV ecosystem, its release, the
/// advisory's package name and the version to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupKey {
    pub ecosystem: Ecosystem,
    /// The release as the image states it (`12`, `3.18.4`, `22.04`).
    pub release: Option<String>,
    pub name: String,
    pub version: String,
}

/// The lookup key of a package, given the image's OS. Debian and Ubuntu advisories name
/// source packages and their versions; Alpine's name the origin package.
pub fn lookup_key(package: &Package, os: Option<&OsRelease>) -> Option<LookupKey> {
    let release = os.and_then(|os| os.version_id.clone());
    let (ecosystem, name, version, release) = match package.kind {
        PackageKind::Deb => {
            let ecosystem = match os.map(|os| os.id.as_str()) {
                Some("ubuntu") => Ecosystem::Ubuntu,
                _ => Ecosystem::Debian,
            };
            let name = package
                .source_name
                .clone()
                .unwrap_or_else(|| package.name.clone());
            let version = package
                .source_version
                .clone()
                .unwrap_or_else(|| package.version.clone());
            (ecosystem, name, version, release)
        }
        PackageKind::Apk => {
            let name = package
                .source_name
                .clone()
                .unwrap_or_else(|| package.name.clone());
            (Ecosystem::Alpine, name, package.version.clone(), release)
        }
        PackageKind::Python => (
            Ecosystem::PyPI,
            crate::osv::normalize_pypi(&package.name),
            package.version.clone(),
            None,
        ),
        PackageKind::Npm => (
            Ecosystem::Npm,
            package.name.clone(),
            package.version.clone(),
            None,
        ),
        PackageKind::Cargo => (
            Ecosystem::CratesIo,
            package.name.clone(),
            package.version.clone(),
            None,
        ),
        PackageKind::Rpm => {
            // The distributions' advisories name binary packages (`openssl-libs`), with
            // their epoch.
            let (ecosystem, release) = rpm_ecosystem(os?)?;
            (
                ecosystem,
                package.name.clone(),
                package.version.clone(),
                release,
            )
        }
    };
    Some(LookupKey {
        ecosystem,
        release,
        name,
        version,
    })
}

/// The OSV ecosystem of an rpm-based image and the release its advisories are matched on,
/// from os-release's `ID` and `VERSION_ID`: the major version for AlmaLinux and Rocky Linux,
/// the whole `VERSION_ID` for RHEL (its advisories name a major or, from RHEL 10, a minor
/// release), `Leap 15.5` or `Tumbleweed` for openSUSE, `15 SP5` or `Micro 5.5` for SUSE. `None` for
/// distributions OSV publishes no rpm advisories for (Fedora, CentOS Stream, Amazon
/// Linux): those packages are listed but not matched.
pub fn rpm_ecosystem(os: &OsRelease) -> Option<(Ecosystem, Option<String>)> {
    let version = os.version_id.as_deref();
    let major = version.map(|v| major_of(v).to_owned());
    Some(match os.id.as_str() {
        // `redhat` is how trivy's package URLs name RHEL.
        "rhel" | "redhat" => (Ecosystem::RedHat, version.map(str::to_owned)),
        "almalinux" => (Ecosystem::AlmaLinux, major),
        "rocky" => (Ecosystem::RockyLinux, major),
        "opensuse-leap" => (Ecosystem::OpenSuse, version.map(|v| format!("Leap {v}"))),
        "opensuse-tumbleweed" => (Ecosystem::OpenSuse, Some("Tumbleweed".to_owned())),
        "sles" | "sled" => (Ecosystem::Suse, version.map(suse_release)),
        "sle-micro" => (Ecosystem::Suse, version.map(|v| format!("Micro {v}"))),
        _ => return None,
    })
}

/// SUSE's name of a release: VERSION_ID `15.5` is `15 SP5`, `15` (or `15.0`) is `15`.
fn suse_release(version: &str) -> String {
    match version.split_once('.') {
        Some((major, service_pack)) if service_pack != "0" => {
            format!("{major} SP{service_pack}")
        }
        Some((major, _)) => major.to_owned(),
        None => version.to_owned(),
    }
}

fn major_of(version: &str) -> &str {
    version.split('.').next().unwrap_or(version)
}

/// Whether an advisory's ecosystem release applies to the image's release. An advisory
/// without a release applies to every release.
fn release_matches(ecosystem: Ecosystem, advisory: Option<&str>, image: Option<&str>) -> bool {
    let (Some(advisory), Some(image)) = (advisory, image) else {
        return true;
    };
    match ecosystem {
        // `Debian:12` against VERSION_ID `12`.
        Ecosystem::Debian => advisory == image || image.split('.').next() == Some(advisory),
        // `Alpine:v3.18` against VERSION_ID `3.18.4`.
        Ecosystem::Alpine => {
            let minor: Vec<&str> = image.split('.').take(2).collect();
            advisory.strip_prefix('v') == Some(&minor.join("."))
        }
        // `Ubuntu:22.04:LTS`, `Ubuntu:Pro:18.04:LTS` against `22.04`.
        Ecosystem::Ubuntu => advisory.split(':').any(|part| part == image),
        // `Red Hat:enterprise_linux:9::baseos` (and `::appstream`) against `9.4`; RHEL 10
        // names minor releases (`enterprise_linux:10.1`). Extended-support streams
        // (`rhel_eus:9.2::baseos`) are other products and do not apply to a plain image.
        Ecosystem::RedHat => {
            let mut parts = advisory.split(':');
            parts.next() == Some("enterprise_linux")
                && parts
                    .next()
                    .is_some_and(|release| release == image || release == major_of(image))
        }
        // `AlmaLinux:9`, `Rocky Linux:9` against the major version.
        Ecosystem::AlmaLinux | Ecosystem::RockyLinux => advisory == image,
        // `openSUSE:Leap 15.5` (and `Leap 15.5 NonFree`), `openSUSE:Tumbleweed`.
        Ecosystem::OpenSuse => {
            advisory == image
                || advisory
                    .strip_prefix(image)
                    .is_some_and(|rest| rest.starts_with(' '))
        }
        // `SUSE:Linux Enterprise Server 15 SP5`, `SUSE:Linux Enterprise Module for
        // Basesystem 15 SP5`, `SUSE:Linux Enterprise Micro 5.5`: the products of one
        // release all end with it.
        Ecosystem::Suse => advisory
            .strip_suffix(image)
            .is_some_and(|rest| rest.ends_with(' ')),
        Ecosystem::PyPI | Ecosystem::Npm | Ecosystem::CratesIo => true,
    }
}

fn key(event: &Event) -> &str {
    match event {
        Event::Introduced(v) | Event::Fixed(v) | Event::LastAffected(v) | Event::Limit(v) => v,
    }
}

/// Whether `version` is in one OSV range, and the fix above it. Events are applied in
/// version order, as the OSV schema's evaluation describes; an event whose version cannot
/// be ordered is ignored.
fn in_range(
    ecosystem: Ecosystem,
    version: &str,
    events: &[Event],
) -> Option<(bool, Option<String>)> {
    let order = |a: &str, b: &str| -> Option<Ordering> {
        if a == b {
            return Some(Ordering::Equal);
        }
        ecosystem.compare(a, b)
    };
    let mut sorted: Vec<&Event> = events
        .iter()
        .filter(|e| match e {
            Event::Introduced(v) if v == "0" => true,
            // `limit: "*"` is the implicit end of every range.
            Event::Limit(v) if v == "*" => false,
            other => ecosystem.compare(key(other), key(other)).is_some(),
        })
        .collect();
    sorted.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        match (
            ka == "0" && matches!(a, Event::Introduced(_)),
            kb == "0" && matches!(b, Event::Introduced(_)),
        ) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => order(ka, kb).unwrap_or(Ordering::Equal),
        }
    });
    let mut affected = false;
    let mut fixed = None;
    for event in sorted {
        match event {
            Event::Introduced(v) => {
                if v == "0" || order(version, v)?.is_ge() {
                    affected = true;
                }
            }
            Event::Fixed(v) => {
                if order(version, v)?.is_ge() {
                    affected = false;
                } else if affected && fixed.is_none() {
                    fixed = Some(v.clone());
                }
            }
            Event::LastAffected(v) => {
                if order(version, v)?.is_gt() {
                    affected = false;
                }
            }
            Event::Limit(v) => {
                if order(version, v)?.is_ge() {
                    affected = false;
                }
            }
        }
    }
    Some((affected, if affected { fixed } else { None }))
}

/// Whether one affected entry covers the package, and the fix to report.
pub fn affects(entry: &Affected, key: &LookupKey) -> Option<Option<String>> {
    if entry.ecosystem != key.ecosystem || entry.package != key.name {
        return None;
    }
    if !release_matches(
        entry.ecosystem,
        entry.release.as_deref(),
        key.release.as_deref(),
    ) {
        return None;
    }
    if entry.versions.iter().any(|v| v == &key.version) {
        let fixed = entry
            .ranges
            .iter()
            .find_map(|r| in_range(entry.ecosystem, &key.version, r).and_then(|(_, f)| f));
        return Some(fixed);
    }
    for range in &entry.ranges {
        if let Some((true, fixed)) = in_range(entry.ecosystem, &key.version, range) {
            return Some(fixed);
        }
    }
    None
}

/// Matches every package of `inventory`; `advisories_for` returns the advisories that
/// name a package in an ecosystem (the store's index does the narrowing).
pub fn match_inventory(
    inventory: &Inventory,
    advisories_for: &mut dyn FnMut(Ecosystem, &str) -> Vec<Advisory>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for package in &inventory.packages {
        let Some(key) = lookup_key(package, inventory.os.as_ref()) else {
            continue;
        };
        for advisory in advisories_for(key.ecosystem, &key.name) {
            let hit = advisory
                .affected
                .iter()
                .find_map(|entry| affects(entry, &key));
            if let Some(fixed_version) = hit {
                findings.push(Finding {
                    package: package.name.clone(),
                    ecosystem: key.ecosystem,
                    installed_version: package.version.clone(),
                    advisory: advisory.id.clone(),
                    aliases: advisory.aliases.clone(),
                    severity: advisory.severity,
                    score: advisory.score,
                    fixed_version,
                    summary: advisory.summary.clone(),
                });
            }
        }
    }
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.package.cmp(&b.package))
            .then_with(|| a.advisory.cmp(&b.advisory))
    });
    findings.dedup_by(|a, b| {
        a.package == b.package
            && a.advisory == b.advisory
            && a.installed_version == b.installed_version
    });
    findings
}
