//! Proving who a caller is: sign-in with a password or an access token, the Docker token
//! service's signed bearer tokens and refresh tokens, and the brake on password guessing.

mod api_token;
mod cache;
pub mod jwt;
mod login;
mod tally;
pub mod throttle;
mod token_service;
mod ui_session;
mod verifier;

pub use api_token::API_TOKEN_TTL;
pub use login::LoginPurpose;
pub use tally::{RefusalReason, SignInCounts};
pub use token_service::{bearer_grants, IssuedToken, MAX_SCOPES, REFRESH_TOKEN_PREFIX};
pub use ui_session::UI_SESSION_TTL;

use crate::access::Authorizer;
use crate::audit::Audit;
use crate::clock::Clock;
use crate::ports::IdentityStore;
use crate::{Error, Result};
use cache::TtlCache;
use jwt::TokenSigner;
use std::sync::Arc;
use std::time::{Duration, Instant};
use throttle::{SignInPolicy, SignInThrottle};
use verifier::PasswordChecks;

/// How the token service identifies itself.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// The JWT `iss` claim.
    pub issuer: String,
    /// The `service` of challenges and the JWT `aud` claim.
    pub service: String,
    /// Lifetime of a registry bearer token.
    pub token_ttl: Duration,
    /// Lifetime of an offline (refresh) token (`refresh_token_ttl`).
    pub refresh_token_ttl: Duration,
}

/// How long a refresh token lasts unless `refresh_token_ttl` says otherwise: 90 days.
pub const DEFAULT_REFRESH_TOKEN_TTL: Duration = Duration::from_secs(90 * 86400);

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            issuer: "berth".into(),
            service: "berth".into(),
            token_ttl: Duration::from_secs(300),
            refresh_token_ttl: DEFAULT_REFRESH_TOKEN_TTL,
        }
    }
}

/// How long a verified password is remembered after its last use, so clients that send Basic
/// credentials on every request do not pay for argon2id each time. A remembered password
/// counts only while the account keeps the hash it matched, so a changed password takes
/// effect at once (while no credentials changed anywhere, that is known without reading the
/// account).
const PASSWORD_CACHE_TTL: Duration = Duration::from_secs(60);
const CACHE_CAPACITY: usize = 4096;

/// Authentication over the identity store.
pub struct Authenticator {
    store: Arc<dyn IdentityStore>,
    authorizer: Arc<dyn Authorizer>,
    /// Sign-ins and their failures are recorded through the one audit writer.
    audit: Audit,
    signer: TokenSigner,
    settings: AuthSettings,
    throttle: SignInThrottle,
    /// Verified password sign-ins: SHA-256 of name and password → who signed in (with the
    /// account's credential generation then), the stored password hash it matched and the
    /// credentials epoch of the check.
    passwords: TtlCache<login::RememberedPassword>,
    /// Verified bearer tokens: SHA-256 of the token → its claims.
    bearers: TtlCache<token_service::VerifiedBearer>,
    /// Bounds concurrent argon2id checks and their queue, keeping one for trusted sign-ins.
    password_checks: PasswordChecks,
    /// Requests with the same Basic credentials take turns on one of these, so a burst of
    /// them runs one password check and the rest find it in the cache.
    sign_in_turns: Vec<tokio::sync::Mutex<()>>,
    /// Sign-ins and refusals, for metrics.
    tally: tally::SignInTally,
    /// What issuing and checking tokens, sessions and two-factor codes read the time from.
    clock: Arc<dyn Clock>,
}

/// How many stripes `sign_in_turns` has.
const SIGN_IN_STRIPES: usize = 64;

impl Authenticator {
    /// Loads the signing key every node shares, creating it on first start.
    pub async fn new(
        store: Arc<dyn IdentityStore>,
        authorizer: Arc<dyn Authorizer>,
        settings: AuthSettings,
    ) -> Result<Authenticator> {
        let clock = crate::clock::system();
        let candidate = TokenSigner::generate().map_err(|e| Error::internal("signing key", e))?;
        let secret = store
            .signing_key_or_insert(&candidate.secret(), clock.now_unix())
            .await?;
        let signer =
            TokenSigner::from_secret(&secret).map_err(|e| Error::internal("signing key", e))?;
        // Subscribed before the recent failures are read, so none falls between the two (one
        // arriving meanwhile may count twice, which errs on the strict side).
        let throttle = SignInThrottle::default();
        throttle.listen(store.subscribe_sign_in_failures());
        match store
            .recent_sign_in_failures(throttle.policy().forget_after)
            .await
        {
            Ok(recent) => {
                let now = Instant::now();
                for received in &recent {
                    throttle.count_shared(received, now);
                }
            }
            Err(err) => {
                tracing::warn!(%err, "cannot read the sign-in failures other nodes shared: this node starts without them");
            }
        }
        Ok(Authenticator {
            audit: Audit::over(store.clone()),
            store,
            authorizer,
            signer,
            settings,
            throttle,
            passwords: TtlCache::new(CACHE_CAPACITY),
            bearers: TtlCache::new(CACHE_CAPACITY),
            password_checks: PasswordChecks::new(
                std::thread::available_parallelism().map_or(2, |n| n.get().max(2)),
            ),
            sign_in_turns: (0..SIGN_IN_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            tally: tally::SignInTally::default(),
            clock,
        })
    }

    /// The same service reading the time from `clock` (tests move a manual one).
    #[must_use]
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Authenticator {
        Authenticator { clock, ..self }
    }

    /// The same service slowing password guessing down by `policy` (tests make it strict).
    #[must_use]
    pub fn with_sign_in_policy(self, policy: SignInPolicy) -> Authenticator {
        Authenticator {
            throttle: self.throttle.with_policy(policy),
            ..self
        }
    }

    fn now_unix(&self) -> i64 {
        self.clock.now_unix()
    }

    /// Sign-ins so far (a password or an access token checked, not a remembered one
    /// reused), and refused sign-ins by reason.
    pub fn sign_in_counts(&self) -> SignInCounts {
        self.tally.counts()
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    pub fn authorizer(&self) -> &Arc<dyn Authorizer> {
        &self.authorizer
    }

    /// The audit log's one writer, for the surfaces that hold this service (the registry's
    /// dispatcher, the web UI's sign-out).
    pub fn audit_log(&self) -> &Audit {
        &self.audit
    }

    /// Appends an entry without details to the audit log through [`Audit`]; a failure is
    /// logged, never returned, so it cannot turn a sign-in (or a completed delete) into an
    /// error.
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        address: Option<std::net::IpAddr>,
    ) {
        self.audit
            .record_from(actor, address, action, target, serde_json::Value::Null)
            .await;
    }
}
