//! Blob storage backends implementing the core's `BlobStore` port.

mod append;
mod filesystem;
mod maintenance;
#[cfg(feature = "s3")]
pub mod s3;
mod stream;

pub use filesystem::{FsBlobStore, UploadRecovery};
pub use maintenance::{BlobHealth, Exported, StoredFile, StoredKind};
#[cfg(feature = "s3")]
pub use s3::{S3BlobStore, S3Settings};
