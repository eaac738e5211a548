//! The ecosystems the scanner knows and each one's own version order.

mod apk;
mod dpkg;
mod pep440;
mod rpm;
mod semver;

use std::cmp::Ordering;

pub use apk::compare as compare_apk;
pub use dpkg::compare as compare_dpkg;
pub use pep440::compare as compare_pep440;
pub use rpm::compare as compare_rpm;
pub use semver::compare as compare_semver;

/// A package ecosystem as OSV names it, without its release suffix (`Debian:12` is
/// `Debian` plus the release `12`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ecosystem {
    Debian,
    Ubuntu,
    Alpine,
    PyPI,
    Npm,
    CratesIo,
    /// Red Hat Enterprise Linux (and UBI), `Red Hat:enterprise_linux:9::baseos`.
    RedHat,
    AlmaLinux,
    RockyLinux,
    /// `openSUSE:Leap 15.5`, `openSUSE:Tumbleweed`.
    OpenSuse,
    /// `SUSE:Linux Enterprise Server 15 SP5`, `SUSE:Linux Enterprise Micro 5.5`.
    Suse,
}

impl Ecosystem {
    pub const ALL: [Ecosystem; 11] = [
        Ecosystem::Debian,
        Ecosystem::Ubuntu,
        Ecosystem::Alpine,
        Ecosystem::PyPI,
        Ecosystem::Npm,
        Ecosystem::CratesIo,
        Ecosystem::RedHat,
        Ecosystem::AlmaLinux,
        Ecosystem::RockyLinux,
        Ecosystem::OpenSuse,
        Ecosystem::Suse,
    ];

    /// OSV's spelling (exact case).
    pub fn as_str(self) -> &'static str {
        match self {
            Ecosystem::Debian => "Debian",
            Ecosystem::Ubuntu => "Ubuntu",
            Ecosystem::Alpine => "Alpine",
            Ecosystem::PyPI => "PyPI",
            Ecosystem::Npm => "npm",
            Ecosystem::CratesIo => "crates.io",
            Ecosystem::RedHat => "Red Hat",
            Ecosystem::AlmaLinux => "AlmaLinux",
            Ecosystem::RockyLinux => "Rocky Linux",
            Ecosystem::OpenSuse => "openSUSE",
            Ecosystem::Suse => "SUSE",
        }
    }

    /// Splits an OSV ecosystem string such as `Debian:12`, `Alpine:v3.18`,
    /// `Ubuntu:22.04:LTS` or `Red Hat:enterprise_linux:9::baseos` into the ecosystem and its
    /// release (`12`, `v3.18`, `22.04:LTS`, `enterprise_linux:9::baseos`);
    /// `None` for ecosystems the scanner does not match.
    pub fn parse_osv(value: &str) -> Option<(Ecosystem, Option<&str>)> {
        let (name, release) = match value.split_once(':') {
            Some((name, release)) => (name, Some(release)),
            None => (value, None),
        };
        let ecosystem = Ecosystem::ALL.into_iter().find(|e| e.as_str() == name)?;
        Some((ecosystem, release.filter(|r| !r.is_empty())))
    }

    /// Orders two versions by this ecosystem's rules; `None` when either is not a version
    /// in this ecosystem's grammar (the matcher then reports nothing rather than guess).
    pub fn compare(self, a: &str, b: &str) -> Option<Ordering> {
        match self {
            Ecosystem::Debian | Ecosystem::Ubuntu => dpkg::compare(a, b),
            Ecosystem::Alpine => apk::compare(a, b),
            Ecosystem::PyPI => pep440::compare(a, b),
            Ecosystem::Npm | Ecosystem::CratesIo => semver::compare(a, b),
            Ecosystem::RedHat
            | Ecosystem::AlmaLinux
            | Ecosystem::RockyLinux
            | Ecosystem::OpenSuse
            | Ecosystem::Suse => rpm::compare(a, b),
        }
    }

    /// The package-url type of this ecosystem (for SBOMs).
    pub fn purl_type(self) -> &'static str {
        match self {
            Ecosystem::Debian | Ecosystem::Ubuntu => "deb",
            Ecosystem::Alpine => "apk",
            Ecosystem::PyPI => "pypi",
            Ecosystem::Npm => "npm",
            Ecosystem::CratesIo => "cargo",
            Ecosystem::RedHat
            | Ecosystem::AlmaLinux
            | Ecosystem::RockyLinux
            | Ecosystem::OpenSuse
            | Ecosystem::Suse => "rpm",
        }
    }
}

impl std::fmt::Display for Ecosystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Ecosystem {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Ecosystem {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        match Ecosystem::parse_osv(&name) {
            Some((ecosystem, None)) => Ok(ecosystem),
            _ => Err(serde::de::Error::custom(format!(
                "unknown ecosystem {name:?}"
            ))),
        }
    }
}
