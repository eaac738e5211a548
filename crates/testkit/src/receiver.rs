//! A webhook receiver on loopback for the tests: it records every request (headers, body,
//! when it came), answers with the status it is told, and checks Standard Webhooks
//! signatures the way a receiver in the field would.

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use berth_core::webhooks::verify;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long [`Receiver::wait_for`] waits before it fails the test.
const PATIENCE: Duration = Duration::from_secs(15);

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: String,
    /// When it arrived.
    pub at: Instant,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }

    /// A header's value; empty when missing.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// Whether the Standard Webhooks signature is this body's, under `secret`.
    pub fn signed_with(&self, secret: &str) -> bool {
        let timestamp: i64 = self.header("webhook-timestamp").parse().unwrap_or(0);
        verify(
            secret,
            self.header("webhook-id"),
            timestamp,
            self.body.as_bytes(),
            self.header("webhook-signature"),
        )
    }
}

/// A receiver at `url` (`http://127.0.0.1:PORT/hook`) that answers `thanks` with its
/// current status (200 at first); it stops with the test's runtime.
pub struct Receiver {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    status: Arc<Mutex<u16>>,
}

impl Receiver {
    /// A receiver on a fresh loopback port.
    pub async fn start() -> Receiver {
        Receiver::start_on("127.0.0.1:0".parse().expect("address")).await
    }

    /// A receiver on `addr`: a test may hand out a port before anything listens on it.
    pub async fn start_on(addr: SocketAddr) -> Receiver {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let status = Arc::new(Mutex::new(200));
        let (log, answer) = (received.clone(), status.clone());
        let app = Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: String| {
                let (log, answer) = (log.clone(), answer.clone());
                async move {
                    let at = Instant::now();
                    log.lock().unwrap().push(Received { headers, body, at });
                    let status = *answer.lock().unwrap();
                    (StatusCode::from_u16(status).unwrap(), "thanks")
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("receiver port");
        let addr = listener.local_addr().expect("receiver address");
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver {
            url: format!("http://{addr}/hook"),
            received,
            status,
        }
    }

    /// Answers `status` from now on.
    pub fn answer(&self, status: u16) {
        *self.status.lock().unwrap() = status;
    }

    /// How many requests came so far.
    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    /// Every request so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `n` requests came, failing the test after 15 s; returns them all, oldest
    /// first.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let got = self.collect(n, PATIENCE).await;
        assert!(
            got.len() >= n,
            "expected {n} deliveries, got {}: {got:?}",
            got.len()
        );
        got
    }

    /// Waits until `n` requests came or `within` passed; returns what came.
    pub async fn collect(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        while self.count() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.received()
    }
}

/// A loopback address nothing listens on (yet).
pub fn vacant_addr() -> SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    probe.local_addr().expect("its address")
}
