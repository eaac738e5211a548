//! The supply-chain port: trusted keys, pull policies and the stored signature state of each
//! image (the scanner's summaries are read through `ScanStore`).
//!
//! Contract for every backend:
//! - `add_trusted_key` refuses a name the target already uses with [`MetaError::Conflict`];
//!   each key change and policy change records its event in the same transaction.
//! - `record_signature_state` replaces the image's state in one transaction and records the
//!   given event only when the state or its keys changed; an `unsigned` state is stored as no
//!   row, so rows are exactly the images that carry signatures.
//! - `hand_on_signature_events` moves the named event cursor from `from` to `to` with a
//!   compare-and-set and stores the jobs in the same transaction (false, nothing stored,
//!   when the cursor was not at `from`), so two nodes never queue the same events twice.

use super::meta::MetaError;
use super::NewJob;
use crate::events::NewEvent;
use crate::lifecycle::Target;
use crate::signatures::{ImageSignature, PullPolicy};
use berth_oci::{Digest, RepoName};

type Result<T> = std::result::Result<T, MetaError>;

/// A trusted public key, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKeyRecord {
    pub target: Target,
    pub name: String,
    /// `ecdsa-p256`, `ed25519` or `rsa`.
    pub algorithm: String,
    /// The public key as PEM (`-----BEGIN PUBLIC KEY-----`).
    pub pem: String,
    /// `sha256:` and the hex SHA-256 of the key's DER form.
    pub fingerprint: String,
    pub added_by: String,
    pub added_at: i64,
}

/// A pull policy, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPullPolicy {
    pub target: Target,
    pub policy: PullPolicy,
    pub updated_by: String,
    pub updated_at: i64,
}

#[async_trait::async_trait]
pub trait SignatureStore: Send + Sync {
    async fn add_trusted_key(&self, key: &TrustedKeyRecord, event: NewEvent) -> Result<()>;
    /// The target's own keys, by name.
    async fn trusted_keys(&self, target: &Target) -> Result<Vec<TrustedKeyRecord>>;
    /// The keys `repo` trusts: its own and its namespace's.
    async fn trusted_keys_for(&self, repo: &RepoName) -> Result<Vec<TrustedKeyRecord>>;
    /// False when the target has no key of that name.
    async fn remove_trusted_key(
        &self,
        target: &Target,
        name: &str,
        event: NewEvent,
    ) -> Result<bool>;

    /// Every pull policy of the registry (they are few; the pull path caches them).
    async fn pull_policies(&self) -> Result<Vec<StoredPullPolicy>>;
    async fn set_pull_policy(&self, policy: &StoredPullPolicy, event: NewEvent) -> Result<()>;
    async fn clear_pull_policy(&self, target: &Target, event: NewEvent) -> Result<bool>;

    /// Replaces the stored state of `digest` in `repo`; true when it changed (see the
    /// module contract).
    async fn record_signature_state(
        &self,
        repo: &RepoName,
        digest: &Digest,
        signature: &ImageSignature,
        now: i64,
        event: NewEvent,
    ) -> Result<bool>;
    /// The stored states of these digests in `repo` (absent: unsigned).
    async fn signature_states(
        &self,
        repo: &RepoName,
        digests: &[Digest],
    ) -> Result<Vec<(Digest, ImageSignature)>>;
    /// Whether `digest`, or an index of `repo` that lists it, is verified.
    async fn verified_in(&self, repo: &RepoName, digest: &Digest) -> Result<bool>;
    /// The images with a stored state (they carry signatures) in the target's repositories.
    async fn signed_images(&self, target: &Target) -> Result<Vec<(RepoName, Digest)>>;

    /// See the module contract.
    async fn hand_on_signature_events(
        &self,
        cursor: &str,
        from: i64,
        to: i64,
        jobs: &[NewJob],
    ) -> Result<bool>;
}
