//! Berth's offline vulnerability scanner as pure code: version orders, CVSS, OSV, inventory, matching, SBOM.
//!
//! Nothing here does network IO or touches Berth's databases (an image's own `rpmdb.sqlite` is read
//! from a private temporary copy): the core runs these functions inside its scan
//! jobs, the metadata store keeps what they produce, and the CLI imports OSV archives with
//! them. Kept apart from `berth-core` so the archive and compression crates it needs stay out
//! of the domain crate and its build.

pub mod cvss;
pub mod inventory;
pub mod matching;
pub mod osv;
pub mod sbom;
pub mod version;

pub use inventory::{Inventory, Package};
pub use matching::{Finding, Severity};
pub use version::Ecosystem;
