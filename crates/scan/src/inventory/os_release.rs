//! `etc/os-release` (or `usr/lib/os-release`): the image's distribution and release.

use serde::{Deserialize, Serialize};

/// The distribution an image is built on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsRelease {
    /// `ID`, e.g. `debian`, `ubuntu`, `alpine`.
    pub id: String,
    /// `VERSION_ID`, e.g. `12`, `22.04`, `3.18.4`.
    pub version_id: Option<String>,
    pub pretty_name: Option<String>,
}

/// Reads the `KEY=value` lines (values optionally quoted); `None` without an `ID`.
pub fn parse(text: &str) -> Option<OsRelease> {
    let mut id = None;
    let mut version_id = None;
    let mut pretty_name = None;
    for line in text.lines() {
        let Some((key, value)) = line.trim().split_once('=') else {
            continue;
        };
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value)
            .to_owned();
        match key.trim() {
            "ID" => id = Some(value),
            "VERSION_ID" => version_id = Some(value),
            "PRETTY_NAME" => pretty_name = Some(value),
            _ => {}
        }
    }
    Some(OsRelease {
        id: id.filter(|i| !i.is_empty())?,
        version_id: version_id.filter(|v| !v.is_empty()),
        pretty_name,
    })
}
