//! What nodes learn from each other without a query per request, through PostgreSQL's
//! LISTEN/NOTIFY on one connection per node: credentials changes (which move this node's
//! credentials epoch) and the sign-in throttle's shared failures.

use super::{backend, PostgresMeta};
use berth_core::ports::{
    MetaError, ReceivedSignInFailure, SignInFailure, SignInFailures, SIGN_IN_FAILURE_BACKLOG,
};
use sqlx::postgres::{PgConnectOptions, PgListener, PgNotification, PgPoolOptions};
use sqlx::{PgPool, Row as _};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, oneshot};

/// Sent (by the schema's triggers) when an account's credentials change or a token is
/// revoked or deleted.
const CREDENTIALS_CHANNEL: &str = "berth_credentials";
/// Sent with each shared sign-in failure; the payload is the failure.
const SIGN_IN_FAILURES_CHANNEL: &str = "berth_sign_in_failures";
/// Sent by every node every [`ListenerTiming::heartbeat`], so a listening connection that
/// died without the node noticing (no reset reached it) is found by its silence.
const HEARTBEAT_CHANNEL: &str = "berth_heartbeat";

/// How a node finds out that its listening connection died silently.
#[derive(Debug, Clone, Copy)]
pub struct ListenerTiming {
    /// How often each node sends a heartbeat.
    pub heartbeat: Duration,
    /// A listening connection that hears nothing, not even a heartbeat, for this long is
    /// given up and replaced.
    pub silence_limit: Duration,
}

impl Default for ListenerTiming {
    fn default() -> Self {
        ListenerTiming {
            heartbeat: Duration::from_secs(10),
            silence_limit: Duration::from_secs(35),
        }
    }
}

/// How long the listener waits before connecting again after losing its connection.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// A shared failure as a notification carries it.
#[derive(serde::Serialize, serde::Deserialize)]
struct FailurePayload {
    origin: u64,
    account: Option<String>,
    address: IpAddr,
}

/// This node's view of what the others announce.
#[derive(Debug)]
pub(super) struct Notifications {
    epoch: AtomicU64,
    /// Whether the listening connection is up: only then is a change on another node
    /// certain to move `epoch`.
    listening: AtomicBool,
    failures: broadcast::Sender<ReceivedSignInFailure>,
    /// Dropped with the last store clone, which ends the listener.
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

impl Notifications {
    /// The credentials epoch, `None` while this node is not listening.
    pub(super) fn credentials_epoch(&self) -> Option<u64> {
        // `listening` first: a connection lost after this read has moved `epoch` already
        // or moves it before anything is remembered at the value read below.
        let listening = self.listening.load(Ordering::SeqCst);
        let epoch = self.epoch.load(Ordering::SeqCst);
        listening.then_some(epoch)
    }

    /// After this node's own change: it is seen here at once, before the notification
    /// comes back.
    pub(super) fn credentials_changed(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Ends the listener (the pool is closing).
    pub(super) fn stop(&self) {
        self.stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    fn lost(&self) {
        self.listening.store(false, Ordering::SeqCst);
        self.credentials_changed();
    }

    fn listening_again(&self) {
        // Changes made while not listening were not heard: nothing remembered before
        // stands after this.
        self.credentials_changed();
        self.listening.store(true, Ordering::SeqCst);
    }

    fn heard(&self, notification: &PgNotification) {
        match notification.channel() {
            CREDENTIALS_CHANNEL => self.credentials_changed(),
            SIGN_IN_FAILURES_CHANNEL => {
                match serde_json::from_str::<FailurePayload>(notification.payload()) {
                    Ok(payload) => self.received(payload, Instant::now()),
                    Err(err) => {
                        tracing::warn!(%err, "ignored a malformed sign-in failure notification")
                    }
                }
            }
            _ => {}
        }
    }

    fn received(&self, payload: FailurePayload, failed_at: Instant) {
        let received = ReceivedSignInFailure {
            failure: SignInFailure {
                origin: payload.origin,
                account: payload.account,
                address: payload.address,
            },
            failed_at,
        };
        // No throttle subscribed (an administration command): nothing to slow down.
        let _ = self.failures.send(received);
    }
}

/// Starts listening for this node (waiting for the first connection, so a store that
/// connected knows at once what other nodes change) and keeps listening, reconnecting
/// after a loss, until the last clone of the store is dropped or closed.
pub(super) async fn listen(
    options: PgConnectOptions,
    pool: PgPool,
    timing: ListenerTiming,
) -> Arc<Notifications> {
    let (stop, stopped) = oneshot::channel();
    let notifications = Arc::new(Notifications {
        epoch: AtomicU64::new(0),
        listening: AtomicBool::new(false),
        failures: broadcast::channel(SIGN_IN_FAILURE_BACKLOG).0,
        stop: Mutex::new(Some(stop)),
    });
    let first = connect(&options).await;
    match &first {
        Ok(_) => notifications.listening_again(),
        Err(err) => {
            tracing::warn!(%err, "cannot listen for other nodes' credentials changes yet: remembered sign-ins are checked against the database until this node can")
        }
    }
    tokio::spawn(keep_listening(
        first.ok(),
        options,
        pool.clone(),
        Arc::downgrade(&notifications),
        stopped,
        timing.silence_limit,
    ));
    tokio::spawn(send_heartbeats(
        pool,
        Arc::downgrade(&notifications),
        timing.heartbeat,
    ));
    notifications
}

/// Until the store is dropped: a heartbeat every `every` (a failed one is left to the
/// next; the listeners only need to hear one now and then). Each is given up after
/// `every`, so one sent on a connection that died silently does not stop the next.
async fn send_heartbeats(pool: PgPool, notifications: Weak<Notifications>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        if notifications.upgrade().is_none() || pool.is_closed() {
            return;
        }
        let heartbeat = sqlx::query("SELECT pg_notify($1, '')")
            .bind(HEARTBEAT_CHANNEL)
            .execute(&pool);
        let _ = tokio::time::timeout(every, heartbeat).await;
    }
}

/// A listener on a connection of its own, never counted against the requests' pool. Each
/// gets a new pool of one: a listener given up on returns its connection only after an
/// `UNLISTEN`, which on a connection that died silently would never finish.
async fn connect(options: &PgConnectOptions) -> Result<PgListener, sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .acquire_timeout(super::ACQUIRE_TIMEOUT)
        .connect_lazy_with(options.clone());
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.ignore_pool_close_event(true);
    // A lost connection is reported, and this module reconnects itself (catching up on the
    // failures it missed meanwhile).
    listener.eager_reconnect(false);
    listener
        .listen_all([
            CREDENTIALS_CHANNEL,
            SIGN_IN_FAILURES_CHANNEL,
            HEARTBEAT_CHANNEL,
        ])
        .await?;
    Ok(listener)
}

async fn keep_listening(
    mut listener: Option<PgListener>,
    options: PgConnectOptions,
    pool: PgPool,
    notifications: Weak<Notifications>,
    mut stopped: oneshot::Receiver<()>,
    silence_limit: Duration,
) {
    let mut lost_at = Instant::now();
    loop {
        let Some(active) = listener.as_mut() else {
            tokio::select! {
                _ = &mut stopped => return,
                _ = tokio::time::sleep(RECONNECT_AFTER) => {}
            }
            match connect(&options).await {
                Ok(reconnected) => {
                    let Some(shared) = notifications.upgrade() else {
                        return;
                    };
                    shared.listening_again();
                    catch_up(&pool, &shared, lost_at.elapsed() + RECONNECT_AFTER).await;
                    tracing::info!("listening for other nodes' changes again");
                    listener = Some(reconnected);
                }
                Err(err) => tracing::debug!(%err, "still cannot listen for other nodes' changes"),
            }
            continue;
        };
        // Cut short by silence, the connection is dropped below, never read again.
        let next = tokio::select! {
            _ = &mut stopped => return,
            next = tokio::time::timeout(silence_limit, active.try_recv()) => next,
        };
        let Some(shared) = notifications.upgrade() else {
            return;
        };
        let why = match next {
            Ok(Ok(Some(notification))) => {
                shared.heard(&notification);
                continue;
            }
            Ok(Ok(None)) => "the server closed it".to_owned(),
            Ok(Err(err)) => err.to_string(),
            Err(_) => format!("nothing heard for {silence_limit:?}, not even a heartbeat"),
        };
        tracing::warn!(
            why,
            "lost the connection listening for other nodes' changes; connecting again"
        );
        shared.lost();
        lost_at = Instant::now();
        listener = None;
    }
}

/// Hands the throttles the failures shared while this node was not listening.
async fn catch_up(pool: &PgPool, notifications: &Notifications, within: Duration) {
    match recent(pool, within).await {
        Ok(missed) => {
            for received in missed {
                let _ = notifications.failures.send(received);
            }
        }
        Err(err) => {
            tracing::warn!(%err, "cannot read the sign-in failures shared while this node was not listening")
        }
    }
}

/// The failures shared within `within`, oldest first, each dated on this node's clock by
/// its age on the database's (so the nodes' clocks need not agree).
async fn recent(pool: &PgPool, within: Duration) -> Result<Vec<ReceivedSignInFailure>, MetaError> {
    let rows = sqlx::query(
        "SELECT origin, account, address, \
                extract(epoch FROM clock_timestamp() - failed_at)::float8 AS age \
         FROM sign_in_failures \
         WHERE failed_at > clock_timestamp() - make_interval(secs => $1) \
         ORDER BY id",
    )
    .bind(within.as_secs_f64())
    .fetch_all(pool)
    .await
    .map_err(backend)?;
    let now = Instant::now();
    Ok(rows
        .iter()
        .filter_map(|row| {
            let address = row.get::<String, _>("address").parse().ok()?;
            let age = Duration::try_from_secs_f64(row.get::<f64, _>("age")).unwrap_or_default();
            Some(ReceivedSignInFailure {
                failure: SignInFailure {
                    origin: row.get::<i64, _>("origin") as u64,
                    account: row.get("account"),
                    address,
                },
                // A node up for less than the age dates it now: it counts a little longer.
                failed_at: now.checked_sub(age).unwrap_or(now),
            })
        })
        .collect())
}

#[async_trait::async_trait]
impl SignInFailures for PostgresMeta {
    async fn share_sign_in_failure(
        &self,
        failure: &SignInFailure,
        keep: Duration,
    ) -> Result<(), MetaError> {
        let payload = serde_json::to_string(&FailurePayload {
            origin: failure.origin,
            account: failure.account.clone(),
            address: failure.address,
        })
        .map_err(|e| MetaError::Backend(format!("encoding a sign-in failure: {e}")))?;
        // One round trip: forget what no throttle remembers any more, record, announce
        // (delivered to every listening node, this one included, at the commit).
        sqlx::query(
            "WITH forgotten AS ( \
                 DELETE FROM sign_in_failures \
                 WHERE failed_at < clock_timestamp() - make_interval(secs => $4)), \
             recorded AS ( \
                 INSERT INTO sign_in_failures (origin, account, address) \
                 VALUES ($1, $2, $3) RETURNING id) \
             SELECT pg_notify($5, $6) FROM recorded",
        )
        .bind(failure.origin as i64)
        .bind(&failure.account)
        .bind(failure.address.to_string())
        .bind(keep.as_secs_f64())
        .bind(SIGN_IN_FAILURES_CHANNEL)
        .bind(payload)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    fn subscribe_sign_in_failures(&self) -> broadcast::Receiver<ReceivedSignInFailure> {
        self.notifications.failures.subscribe()
    }

    async fn recent_sign_in_failures(
        &self,
        within: Duration,
    ) -> Result<Vec<ReceivedSignInFailure>, MetaError> {
        recent(&self.pool, within).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn not_listening() -> Notifications {
        Notifications {
            epoch: AtomicU64::new(0),
            listening: AtomicBool::new(false),
            failures: broadcast::channel(4).0,
            stop: Mutex::new(None),
        }
    }

    #[test]
    fn the_epoch_is_unknown_while_not_listening_and_moves_across_an_outage() {
        let notifications = not_listening();
        assert_eq!(notifications.credentials_epoch(), None);
        notifications.listening_again();
        let before = notifications.credentials_epoch().unwrap();
        notifications.credentials_changed();
        let changed = notifications.credentials_epoch().unwrap();
        assert_ne!(changed, before);
        notifications.lost();
        assert_eq!(notifications.credentials_epoch(), None);
        notifications.listening_again();
        let after = notifications.credentials_epoch().unwrap();
        assert_ne!(
            after, changed,
            "what was remembered before the outage is read again"
        );
    }

    #[test]
    fn a_failure_notification_reaches_the_throttles_and_others_are_ignored() {
        let notifications = not_listening();
        let mut throttle = notifications.failures.subscribe();
        let payload = r#"{"origin":7,"account":"alice","address":"2001:db8::"}"#;
        notifications.received(serde_json::from_str(payload).unwrap(), Instant::now());
        let received = throttle.try_recv().unwrap();
        assert_eq!(
            received.failure,
            SignInFailure {
                origin: 7,
                account: Some("alice".into()),
                address: "2001:db8::".parse().unwrap(),
            }
        );
        assert!(serde_json::from_str::<FailurePayload>("{}").is_err());
    }
}
