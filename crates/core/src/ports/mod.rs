//! The ports: small traits through which the domain reaches storage and the database.

mod blob_store;
mod meta;

pub use blob_store::{BlobStore, ByteStream, StoreError};
pub use meta::{
    AccessTokens, Accounts, BlobLinks, ManifestRecord, Manifests, MetaError, MetaStore,
    NewManifest, NewToken, NewUser, ReferrerRecord, Repositories, Tags, TokenRecord, UploadSession,
    UploadSessions, UserRecord,
};
