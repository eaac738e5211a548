//! Blob storage backends implementing the core's `BlobStore` port.

mod append;
mod filesystem;
mod maintenance;
mod stream;

pub use filesystem::{FsBlobStore, UploadRecovery};
pub use maintenance::{BlobHealth, Exported, StoredFile, StoredKind};
