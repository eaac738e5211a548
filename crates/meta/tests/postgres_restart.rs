//! PostgreSQL going away under a node. A restart: calls fail as `Unavailable` (which the
//! HTTP layer answers 503, retryable) rather than hang or report an internal error, and the
//! same store works again once the server is back, without being reopened. A connection
//! that dies silently (no reset reaches the node): the listener finds it by the missing
//! heartbeats and listens again on a new one. Each test runs in its own process with its
//! own cluster (nextest), so stopping it disturbs no other test.

use berth_core::ports::{Accounts, BlobLinks, MetaError, NewUser, Repositories};
use berth_meta::{ListenerTiming, PostgresMeta};
use berth_oci::{Digest, RepoName};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test]
async fn a_restart_fails_calls_as_unavailable_and_the_pool_recovers_by_itself() {
    let Some(db) = berth_testkit::postgres::database("postgres_restart") else {
        return;
    };
    let meta = PostgresMeta::connect(&db.url).await.unwrap();
    let repo: RepoName = "alice/app".parse().unwrap();
    let blob = Digest::sha256_of(b"x");
    meta.link_blob(&repo, &blob, 1, 0).await.unwrap();
    meta.create_user(&alice()).await.unwrap();
    let epoch_before = meta.credentials_epoch().expect("listening");

    berth_testkit::postgres::stop();
    let started = Instant::now();
    let failed = meta.list_repositories(None, 10).await;
    assert!(
        matches!(failed, Err(MetaError::Unavailable(_))),
        "{failed:?}"
    );
    // Bounded by the pool's acquire timeout, not by TCP's.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    let write = meta
        .link_blob(&"bob/app".parse().unwrap(), &blob, 1, 0)
        .await;
    assert!(matches!(write, Err(MetaError::Unavailable(_))), "{write:?}");
    // Changes another node makes now could not be heard: nothing remembered is trusted.
    wait_until("the epoch is unknown while not listening", || {
        meta.credentials_epoch().is_none()
    })
    .await;

    berth_testkit::postgres::restart();
    let deadline = Instant::now() + Duration::from_secs(120);
    let names = loop {
        match meta.list_repositories(None, 10).await {
            Ok(names) => break names,
            Err(MetaError::Unavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(other) => panic!("the pool did not recover: {other:?}"),
        }
    };
    // What committed before the restart is there; the refused write left nothing.
    assert_eq!(names, ["alice/app"]);
    meta.link_blob(&"carol/app".parse().unwrap(), &blob, 1, 0)
        .await
        .unwrap();

    // The node listens again by itself, and hears another node's change.
    wait_until("listening again", || meta.credentials_epoch().is_some()).await;
    let epoch_after = meta.credentials_epoch().unwrap();
    assert_ne!(epoch_after, epoch_before, "moved across the outage");
    let other = PostgresMeta::connect(&db.url).await.unwrap();
    assert!(other.set_password_hash("alice", "new", 1).await.unwrap());
    wait_until("the other node's change is heard", || {
        meta.credentials_epoch()
            .is_some_and(|epoch| epoch != epoch_after)
    })
    .await;
}

#[tokio::test]
async fn a_listening_connection_that_dies_silently_is_replaced() {
    let Some(db) = berth_testkit::postgres::database("listener_silence") else {
        return;
    };
    let relay = Relay::start(db.port).await;
    let through_relay = db
        .url
        .replace(&format!(":{}/", db.port), &format!(":{}/", relay.port));
    let timing = ListenerTiming {
        // Twelve heartbeats to a silence limit: a loaded test machine may delay a few.
        heartbeat: Duration::from_millis(250),
        silence_limit: Duration::from_secs(3),
    };
    let node = PostgresMeta::connect_with_listener_timing(&through_relay, timing)
        .await
        .unwrap();
    let other = PostgresMeta::connect_with_listener_timing(&db.url, timing)
        .await
        .unwrap();
    let before = node.credentials_epoch().expect("listening");
    other.create_user(&alice()).await.unwrap();
    assert!(other.set_password_hash("alice", "first", 1).await.unwrap());
    wait_until("the other node's change is heard", || {
        node.credentials_epoch()
            .is_some_and(|epoch| epoch != before)
    })
    .await;

    // Two silence limits with nothing changing: the heartbeats keep the connection, so
    // the node neither gives it up nor forgets what it remembers.
    let quiet = node.credentials_epoch().unwrap();
    tokio::time::sleep(timing.silence_limit * 2).await;
    assert_eq!(
        node.credentials_epoch(),
        Some(quiet),
        "a quiet connection is kept"
    );

    relay.swallow_open_connections();
    let swallowed_at = Instant::now();
    wait_until("the silent connection is given up and replaced", || {
        node.credentials_epoch().is_some_and(|epoch| epoch != quiet)
    })
    .await;
    let noticed_after = swallowed_at.elapsed();
    assert!(
        noticed_after >= timing.silence_limit - Duration::from_millis(300)
            && noticed_after < Duration::from_secs(30),
        "replaced after {noticed_after:?}"
    );

    // The new connection hears the other node's changes again.
    let replaced = node.credentials_epoch().unwrap();
    assert!(other.set_password_hash("alice", "second", 2).await.unwrap());
    wait_until("a change is heard on the new connection", || {
        node.credentials_epoch()
            .is_some_and(|epoch| epoch != replaced)
    })
    .await;
    // And requests, whose pooled connections died too, are served again.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match node.list_repositories(None, 10).await {
            Ok(_) => break,
            Err(MetaError::Unavailable(_)) if Instant::now() < deadline => {}
            Err(other) => panic!("requests did not recover: {other:?}"),
        }
    }
}

/// A TCP relay to PostgreSQL whose connections can be made to die silently, as when a
/// NAT or a firewall forgets them: after [`Relay::swallow_open_connections`], each
/// connection open then forwards nothing more either way and is never closed (no FIN or
/// RST reaches either side). Connections opened later are relayed as usual.
struct Relay {
    port: u16,
    opened: Arc<AtomicU64>,
    swallowed_below: Arc<AtomicU64>,
}

impl Relay {
    async fn start(to: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let opened = Arc::new(AtomicU64::new(0));
        let swallowed_below = Arc::new(AtomicU64::new(0));
        let (counter, swallowed) = (opened.clone(), swallowed_below.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let id = counter.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(("127.0.0.1", to)).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(forward(client_read, server_write, id, swallowed.clone()));
                tokio::spawn(forward(server_read, client_write, id, swallowed.clone()));
            }
        });
        Relay {
            port,
            opened,
            swallowed_below,
        }
    }

    fn swallow_open_connections(&self) {
        self.swallowed_below
            .store(self.opened.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

async fn forward(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    id: u64,
    swallowed_below: Arc<AtomicU64>,
) {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        if id < swallowed_below.load(Ordering::SeqCst) {
            // Both ends stay open; the bytes go nowhere.
            let _held = (from, to);
            std::future::pending::<()>().await;
            return;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

fn alice() -> NewUser {
    NewUser {
        name: "alice".into(),
        password_hash: "h".into(),
        is_admin: false,
        now: 0,
    }
}

async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
