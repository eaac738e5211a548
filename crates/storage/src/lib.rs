//! Blob storage backends implementing the core's `BlobStore` port.

mod append;
mod filesystem;
mod stream;

pub use filesystem::{FsBlobStore, UploadRecovery};
