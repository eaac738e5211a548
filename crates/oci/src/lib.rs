//! The OCI distribution protocol as data: pure, synchronous parsing and validation, no IO.

pub mod digest;
pub mod envelope;
pub mod error;
pub mod manifest;
pub mod name;
pub mod platform;
pub mod range;
pub mod reference;
pub mod scope;
pub mod signature;

pub use digest::{Algorithm, Digest, DigestHasher};
pub use error::ErrorCode;
pub use manifest::{Descriptor, ManifestKind, ParsedManifest};
pub use name::RepoName;
pub use platform::Platform;
pub use range::{ByteRange, ContentRange, RangeRequest};
pub use reference::{Reference, Tag};
pub use scope::Scope;
