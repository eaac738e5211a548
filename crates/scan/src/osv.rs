//! OSV advisories: the parts the matcher needs, read from JSON files, directories or
//! OSV's per-ecosystem `all.zip` archives, with malformed entries skipped and counted.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::cvss;
use crate::matching::Severity;
use crate::version::Ecosystem;

/// Largest advisory document read (OSV's biggest entries are a few hundred KiB).
pub const MAX_ENTRY_BYTES: u64 = 16 * 1024 * 1024;

/// One advisory, reduced to what matching and reporting need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Advisory {
    pub id: String,
    pub modified: String,
    pub summary: String,
    pub aliases: Vec<String>,
    pub severity: Severity,
    /// The CVSS v3 base score the severity came from, when it came from one.
    pub score: Option<f64>,
    pub affected: Vec<Affected>,
}

/// One affected package of an advisory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Affected {
    pub ecosystem: Ecosystem,
    /// The release part of the ecosystem (`12` of `Debian:12`, `v3.18` of `Alpine:v3.18`).
    pub release: Option<String>,
    /// The package name, PEP 503-normalised for PyPI.
    pub package: String,
    pub ranges: Vec<Vec<Event>>,
    pub versions: Vec<String>,
}

/// One event of an OSV `SEMVER` or `ECOSYSTEM` range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    Introduced(String),
    Fixed(String),
    LastAffected(String),
    Limit(String),
}

/// Why one entry was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("not OSV JSON: {0}")]
    Json(String),
    #[error("missing `{0}`")]
    Missing(&'static str),
    #[error("larger than {MAX_ENTRY_BYTES} bytes")]
    TooLarge,
}

// The OSV document as served; only the fields used are named, all optional so that one odd
// field never costs a whole entry.
#[derive(Deserialize)]
struct RawAdvisory {
    id: Option<String>,
    modified: Option<String>,
    withdrawn: Option<String>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    details: Option<String>,
    #[serde(default)]
    aliases: Option<Vec<String>>,
    /// Debian's and Alpine's records name the CVE they derive from here.
    #[serde(default)]
    upstream: Option<Vec<String>>,
    /// Rocky Linux's and AlmaLinux's errata name their CVEs here.
    #[serde(default)]
    related: Option<Vec<String>>,
    #[serde(default)]
    severity: Option<Vec<RawSeverity>>,
    #[serde(default)]
    affected: Option<Vec<RawAffected>>,
    #[serde(default)]
    database_specific: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawSeverity {
    #[serde(rename = "type")]
    kind: Option<String>,
    score: Option<String>,
}

#[derive(Deserialize)]
struct RawAffected {
    package: Option<RawPackage>,
    #[serde(default)]
    severity: Option<Vec<RawSeverity>>,
    #[serde(default)]
    ranges: Option<Vec<RawRange>>,
    #[serde(default)]
    versions: Option<Vec<String>>,
    #[serde(default)]
    ecosystem_specific: Option<serde_json::Value>,
    #[serde(default)]
    database_specific: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawPackage {
    ecosystem: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct RawRange {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    events: Option<Vec<BTreeMap<String, String>>>,
}

/// What parsing one document gave.
#[derive(Debug)]
pub enum Parsed {
    /// An advisory with at least one affected package in a supported ecosystem.
    Advisory(Advisory),
    /// Well-formed, but withdrawn or only about ecosystems the scanner does not match.
    Ignored,
}

/// PEP 503 normalisation: lower case, runs of `-`, `_`, `.` as one `-`.
pub fn normalize_pypi(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut separator = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            separator = true;
            continue;
        }
        if separator && !out.is_empty() {
            out.push('-');
        }
        separator = false;
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Parses one OSV JSON document.
pub fn parse(bytes: &[u8]) -> Result<Parsed, EntryError> {
    let raw: RawAdvisory =
        serde_json::from_slice(bytes).map_err(|e| EntryError::Json(e.to_string()))?;
    let id = raw
        .id
        .filter(|s| !s.is_empty())
        .ok_or(EntryError::Missing("id"))?;
    let modified = raw
        .modified
        .filter(|s| !s.is_empty())
        .ok_or(EntryError::Missing("modified"))?;
    if raw.withdrawn.is_some() {
        return Ok(Parsed::Ignored);
    }
    let mut affected = Vec::new();
    let mut affected_severity = Vec::new();
    let mut ratings = Vec::new();
    for item in raw.affected.unwrap_or_default() {
        let Some(package) = item.package else {
            continue;
        };
        let (Some(ecosystem), Some(name)) = (package.ecosystem, package.name) else {
            continue;
        };
        let Some((ecosystem, release)) = Ecosystem::parse_osv(&ecosystem) else {
            continue;
        };
        let mut ranges = Vec::new();
        for range in item.ranges.unwrap_or_default() {
            // GIT ranges name commits, which an installed package does not have.
            if !matches!(range.kind.as_deref(), Some("SEMVER" | "ECOSYSTEM")) {
                continue;
            }
            let mut events = Vec::new();
            for event in range.events.unwrap_or_default() {
                for (key, value) in event {
                    events.push(match key.as_str() {
                        "introduced" => Event::Introduced(value),
                        "fixed" => Event::Fixed(value),
                        "last_affected" => Event::LastAffected(value),
                        "limit" => Event::Limit(value),
                        _ => continue,
                    });
                }
            }
            if !events.is_empty() {
                ranges.push(events);
            }
        }
        let versions = item.versions.unwrap_or_default();
        if ranges.is_empty() && versions.is_empty() {
            continue;
        }
        affected_severity.extend(item.severity.unwrap_or_default());
        for specific in [&item.ecosystem_specific, &item.database_specific]
            .into_iter()
            .flatten()
        {
            ratings.extend(rating_of(specific));
        }
        let package = if ecosystem == Ecosystem::PyPI {
            normalize_pypi(&name)
        } else {
            name
        };
        affected.push(Affected {
            ecosystem,
            release: release.map(str::to_owned),
            package,
            ranges,
            versions,
        });
    }
    if affected.is_empty() {
        return Ok(Parsed::Ignored);
    }
    if let Some(specific) = &raw.database_specific {
        ratings.splice(0..0, rating_of(specific));
    }
    // Rocky Linux's and AlmaLinux's errata state Red Hat's rating only as the summary's
    // first word: `Moderate: openssl security update`.
    if affected.iter().any(|a| a.ecosystem.purl_type() == "rpm") {
        let rating = raw
            .summary
            .as_deref()
            .and_then(|s| s.split_once(':'))
            .and_then(|(word, _)| Severity::from_rating(word));
        ratings.extend(rating);
    }
    let severities: Vec<RawSeverity> = raw
        .severity
        .unwrap_or_default()
        .into_iter()
        .chain(affected_severity)
        .collect();
    let (severity, score) = severity_of(&severities, &ratings);
    let summary = raw
        .summary
        .filter(|s| !s.trim().is_empty())
        .or_else(|| {
            raw.details
                .map(|d| d.lines().next().unwrap_or_default().to_owned())
        })
        .unwrap_or_default();
    let summary: String = summary.chars().take(300).collect();
    Ok(Parsed::Advisory(Advisory {
        id,
        modified,
        summary,
        aliases: raw
            .aliases
            .unwrap_or_default()
            .into_iter()
            .chain(raw.upstream.unwrap_or_default())
            .chain(
                raw.related
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|id| id.starts_with("CVE-")),
            )
            .collect(),
        severity,
        score,
        affected,
    }))
}

/// A rating an advisory database states in its own words (GitHub's `severity`, Debian's
/// `urgency`).
fn rating_of(value: &serde_json::Value) -> Option<Severity> {
    ["severity", "urgency"]
        .iter()
        .filter_map(|key| value.get(key)?.as_str())
        .find_map(Severity::from_rating)
}

/// CVSS v3 first (the highest score among the vectors given), then the advisory's own
/// rating, then an `Ubuntu` priority; else unknown.
fn severity_of(severities: &[RawSeverity], ratings: &[Severity]) -> (Severity, Option<f64>) {
    let best_score = severities
        .iter()
        .filter(|s| s.kind.as_deref() == Some("CVSS_V3"))
        .filter_map(|s| cvss::base_score(s.score.as_deref()?).ok())
        .fold(None, |best: Option<f64>, score| {
            Some(best.map_or(score, |b| b.max(score)))
        });
    if let Some(score) = best_score {
        return (Severity::from_score(score), Some(score));
    }
    if let Some(rating) = ratings.iter().copied().max() {
        return (rating, None);
    }
    let ubuntu = severities
        .iter()
        .filter(|s| s.kind.as_deref() == Some("Ubuntu"))
        .filter_map(|s| Severity::from_rating(s.score.as_deref()?))
        .max();
    (ubuntu.unwrap_or(Severity::Unknown), None)
}

/// Counts of one import.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadStats {
    /// Documents read (files in a directory, entries in archives).
    pub documents: u64,
    pub advisories: u64,
    /// Withdrawn, or only about ecosystems the scanner does not match.
    pub ignored: u64,
    /// Malformed, with up to 20 examples (`source: reason`).
    pub skipped: u64,
    pub skipped_examples: Vec<String>,
}

impl ReadStats {
    fn skip(&mut self, source: &str, reason: &dyn std::fmt::Display) {
        self.skipped += 1;
        if self.skipped_examples.len() < 20 {
            self.skipped_examples.push(format!("{source}: {reason}"));
        }
    }

    fn take(
        &mut self,
        source: &str,
        bytes: &[u8],
        sink: &mut dyn FnMut(Advisory) -> Result<(), ReadError>,
    ) -> Result<(), ReadError> {
        self.documents += 1;
        match parse(bytes) {
            Ok(Parsed::Advisory(advisory)) => {
                self.advisories += 1;
                sink(advisory)
            }
            Ok(Parsed::Ignored) => {
                self.ignored += 1;
                Ok(())
            }
            Err(error) => {
                self.skip(source, &error);
                Ok(())
            }
        }
    }
}

/// A failure that stops an import (the source itself cannot be read).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: {message}")]
    Source { path: String, message: String },
    #[error("{0}")]
    Sink(String),
}

fn source_error(path: &Path, message: impl std::fmt::Display) -> ReadError {
    ReadError::Source {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// Reads every advisory under `path`: a `.zip` archive, a `.json` file, or a directory
/// holding either (recursively), handing each advisory to `sink` as it is parsed so that
/// memory stays bounded by one entry.
pub fn read_path(
    path: &Path,
    sink: &mut dyn FnMut(Advisory) -> Result<(), ReadError>,
) -> Result<ReadStats, ReadError> {
    let mut stats = ReadStats::default();
    let metadata = std::fs::metadata(path).map_err(|e| source_error(path, e))?;
    if metadata.is_dir() {
        read_dir(path, &mut stats, sink)?;
    } else {
        read_file(path, &mut stats, sink)?;
    }
    Ok(stats)
}

fn read_dir(
    dir: &Path,
    stats: &mut ReadStats,
    sink: &mut dyn FnMut(Advisory) -> Result<(), ReadError>,
) -> Result<(), ReadError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| source_error(dir, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| source_error(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| source_error(&path, e))?;
        if kind.is_dir() {
            read_dir(&path, stats, sink)?;
        } else if kind.is_file() {
            let name = path
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or_default();
            if name == "json" || name == "zip" {
                read_file(&path, stats, sink)?;
            }
        }
    }
    Ok(())
}

fn read_file(
    path: &Path,
    stats: &mut ReadStats,
    sink: &mut dyn FnMut(Advisory) -> Result<(), ReadError>,
) -> Result<(), ReadError> {
    let file = std::fs::File::open(path).map_err(|e| source_error(path, e))?;
    if path.extension().and_then(|e| e.to_str()) == Some("zip") {
        return read_zip(path, file, stats, sink);
    }
    let source = path.display().to_string();
    let mut bytes = Vec::new();
    file.take(MAX_ENTRY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| source_error(path, e))?;
    if bytes.len() as u64 > MAX_ENTRY_BYTES {
        stats.documents += 1;
        stats.skip(&source, &EntryError::TooLarge);
        return Ok(());
    }
    stats.take(&source, &bytes, sink)
}

fn read_zip(
    path: &Path,
    file: std::fs::File,
    stats: &mut ReadStats,
    sink: &mut dyn FnMut(Advisory) -> Result<(), ReadError>,
) -> Result<(), ReadError> {
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| source_error(path, format!("not a zip archive: {e}")))?;
    let mut bytes = Vec::new();
    for index in 0..archive.len() {
        let mut entry = match archive.by_index(index) {
            Ok(entry) => entry,
            Err(error) => {
                stats.documents += 1;
                stats.skip(&format!("{}#{index}", path.display()), &error);
                continue;
            }
        };
        if entry.is_dir() || !entry.name().ends_with(".json") {
            continue;
        }
        let source = format!("{}:{}", path.display(), entry.name());
        bytes.clear();
        // The declared size is the archive's word; the read is bounded whatever it says.
        let read = (&mut entry)
            .take(MAX_ENTRY_BYTES + 1)
            .read_to_end(&mut bytes);
        if let Err(error) = read {
            stats.documents += 1;
            stats.skip(&source, &error);
            continue;
        }
        if bytes.len() as u64 > MAX_ENTRY_BYTES {
            stats.documents += 1;
            stats.skip(&source, &EntryError::TooLarge);
            continue;
        }
        stats.take(&source, &bytes, sink)?;
    }
    Ok(())
}
