//! The domain's error type: what went wrong in registry terms, independent of HTTP.

use berth_oci::{Digest, RepoName};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("blob {0} is not known in this repository")]
    BlobUnknown(Digest),
    #[error("upload session is not known (it may have expired, been cancelled or completed)")]
    UploadUnknown,
    #[error("manifest {0} is not known in this repository")]
    ManifestUnknown(String),
    #[error("repository {0} is not known")]
    NameUnknown(RepoName),
    #[error("invalid repository name: {0}")]
    NameInvalid(String),
    #[error("invalid tag: {0}")]
    TagInvalid(String),
    #[error("invalid digest: {0}")]
    DigestInvalid(String),
    #[error("the uploaded content has digest {actual}, not {expected}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("{0}")]
    ManifestInvalid(String),
    #[error("manifest references {0}, which is not in this repository")]
    ManifestBlobUnknown(Digest),
    #[error("manifest is larger than the {limit} byte limit")]
    ManifestTooLarge { limit: usize },
    /// A chunk that does not continue the upload where it stands (HTTP 416).
    #[error("{0}")]
    ChunkRejected(String),
    /// A `Range` outside the blob (HTTP 416 with `Content-Range: bytes */size`).
    #[error("the requested range is outside the blob of {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    #[error("{0}")]
    SizeInvalid(String),
    #[error("{0}")]
    UploadInvalid(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    PaginationInvalid(String),
    /// No such endpoint.
    #[error("no such endpoint: {0}")]
    NotFound(String),
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    #[error("account {0} is not known")]
    AccountUnknown(String),
    #[error("{0}")]
    AccountInvalid(String),
    /// No such access token among the ones the caller may manage; said the same whether it
    /// does not exist or belongs to someone else.
    #[error("token {0} is not known")]
    TokenUnknown(i64),
    #[error("team {team} is not known in {org}")]
    TeamUnknown { org: String, team: String },
    /// A request that cannot be carried out as written; the message names what is wrong.
    #[error("{0}")]
    Invalid(String),
    /// No such webhook (or delivery) among the ones the caller may manage; said the same
    /// whether it does not exist or belongs to someone else.
    #[error("webhook {0} is not known")]
    WebhookUnknown(String),
    /// No replication rule of that name.
    #[error("replication rule {0:?} is not known")]
    ReplicationUnknown(String),
    /// No such build, or no build source, among what the caller may see; the message names
    /// which (said the same whether it does not exist or cannot be seen).
    #[error("{0}")]
    BuildUnknown(String),
    /// Something with that name already exists.
    #[error("{0} already exists")]
    Conflict(String),
    #[error("authentication required")]
    Unauthorized,
    /// A sign-in with a wrong name, password or token; never says which part was wrong.
    #[error("incorrect username or password")]
    CredentialsInvalid,
    /// The password was right but the account needs its two-factor code (or, for registry
    /// clients, an access token instead of the password).
    #[error("{0}")]
    TwoFactorRequired(String),
    /// Too many failed sign-ins from this account or address.
    #[error("too many failed sign-in attempts; retry in {retry_after_secs} seconds")]
    TooManyRequests { retry_after_secs: u64 },
    /// A manifest pull over the caller's pull rate limit (HTTP 429 with `Retry-After`).
    #[error("you have reached your pull rate limit of {limit} (pulls;w=seconds) for {charged_to}; the next pull is allowed in {retry_after_secs} s, at {next_at}, and the whole allowance is back at {full_at}. Sign in, or ask the registry's operator for a plan, to pull more")]
    PullRateLimited {
        limit: String,
        charged_to: String,
        retry_after_secs: u64,
        next_at: String,
        full_at: String,
    },
    #[error("requested access to the resource is denied")]
    Denied,
    /// A push would move an immutable tag to another manifest, or a delete would remove it.
    #[error(
        "tag {tag} is immutable under {rule}: it cannot be pointed at another manifest or deleted"
    )]
    TagImmutable { tag: String, rule: String },
    /// A pull policy refuses this manifest; `policy` names it (where it is set and what it
    /// asks), `reason` says what the manifest lacks.
    #[error("pull refused by {policy}: {reason}")]
    PullRefused { policy: String, reason: String },
    /// Self-service sign-up was asked for, and the site admin has not turned it on.
    #[error("self-service sign-up is turned off on this server; ask a site admin for an account")]
    SignupClosed,
    /// The account holds as many unfinished upload sessions as `max_upload_sessions` allows.
    #[error("you have {limit} unfinished uploads, the most this registry allows; finish or cancel some (they expire when idle)")]
    UploadLimit { limit: u32 },
    /// A blob larger than `max_blob_size`; nothing of it was kept.
    #[error("blobs on this registry may be at most {limit} bytes; this one is {size}")]
    BlobTooLarge { limit: u64, size: String },
    /// The push would take the namespace past its quota; nothing of it was kept.
    #[error(
        "quota exceeded: namespace uses {} of {}",
        crate::lifecycle::format_size(*.used),
        crate::lifecycle::format_size(*.quota)
    )]
    QuotaExceeded { used: u64, quota: u64 },
    /// The registry's disk is full; nothing of the request was kept.
    #[error("the registry is out of storage space; nothing of this upload was kept (ask its operator to free space, then retry)")]
    StorageFull,
    /// The client went away or sent a broken body; nothing was committed.
    #[error("request body could not be read: {0}")]
    BodyInterrupted(String),
    /// A mirror's upstream failed (or sent corrupt data) and nothing is cached to serve
    /// instead; the message says what the upstream did (HTTP 502).
    #[error("{0}")]
    Upstream(String),
    /// The database cannot be reached just now; nothing was changed and the client may
    /// retry. The message is for logs, not for clients.
    #[error("the registry's database is unavailable just now; retry shortly")]
    Unavailable(String),
    /// A fault of ours or of a backend; the message is for logs, not for clients.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Error {
        Error::Internal(format!("{context}: {err}"))
    }
}
