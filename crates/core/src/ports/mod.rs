//! The ports: small traits through which the domain reaches storage and the database.

mod blob_store;
mod builds;
mod events;
mod hub;
mod identity;
mod jobs;
mod lifecycle;
mod locks;
mod meta;
mod policies;
mod ratelimit;
mod replication;
mod scans;
mod signatures;
mod webhooks;

pub use blob_store::{
    collect_at_most, receive_exactly, BlobStore, ByteStream, CollectionLock, StoreError,
    WHOLE_BODY_MAX,
};
pub use builds::BuildStore;
pub use events::EventLog;
pub use hub::{
    HubStore, PullEvent, RepositoryInfo, SearchPage, SearchQuery, SearchSort, TagRecord, TagSort,
};
pub use identity::{
    AccessFacts, AccessTokens, Accounts, AuditEvent, AuditLog, AuditQuery, AuditRecord,
    EndedSessions, IdentityStore, NamespaceOwner, NamespaceRecord, Namespaces, NewToken, NewUser,
    OrgRecord, Organizations, Permission, ReceivedSignInFailure, RecoveryCodeCounts, RecoveryCodes,
    RefreshTokenRecord, RefreshTokens, RepositoryAccess, RepositoryRecord, SignInFailure,
    SignInFailures, SigningKeys, TeamRecord, TokenRecord, UserRecord, Viewer,
    AUDIT_FOLD_WINDOW_SECS, MAX_AUDIT_ACTION_LEN, MAX_AUDIT_ACTOR_LEN, MAX_AUDIT_TARGET_LEN,
    MAX_AUDIT_TEXT_LEN, OWNERS_TEAM, SIGN_IN_FAILURE_BACKLOG,
};
pub use jobs::{ClaimedJob, JobQueue, JobRecord, JobState, NewJob, RetryOutcome};
pub use lifecycle::{CandidateWindow, Collection, Usage, UsageRepair, UsageStore};
pub use locks::{build_lock, ClusterLocks, LockHold, ProcessLocks, COLLECTION_LOCK};
pub use meta::{
    BlobLinks, LinkPrecheck, ManifestPlatform, ManifestRecord, Manifests, MetaError, MetaStore,
    NewManifest, ReferrerRecord, Repositories, Tags, UploadSession, UploadSessions,
};
pub use policies::{
    LifecycleStore, RetentionApplied, RetentionApply, RetentionRunRecord, StoredPolicy,
    INTERRUPTED_RUN,
};
pub use ratelimit::{PlanRecord, RateLimitStore, SpentRow};
pub use replication::{ReplicationRecord, ReplicationRunRecord, ReplicationStore};
pub use scans::{ScanRecord, ScanStore, VulnDbStatus, VulnerabilitySummary};
pub use signatures::{SignatureStore, StoredPullPolicy, TrustedKeyRecord};
pub use webhooks::{
    AttemptVerdict, DeliveryAttempt, DeliveryRecord, DeliveryState, NewDelivery, NewWebhook,
    WebhookRecord, WebhookStore,
};
