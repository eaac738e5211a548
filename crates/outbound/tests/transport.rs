//! The webhook transport against real receivers on loopback: what it refuses, what it reads
//! back, and that it never follows a redirect or waits past its time limit.

use axum::routing::post;
use axum::Router;
use berth_core::webhooks::{OutboundError, OutboundRequest, WebhookTransport};
use berth_outbound::HttpTransport;
use std::time::{Duration, Instant};

async fn receiver() -> String {
    let app = Router::new()
        .route(
            "/ok",
            post(|body: String| async move { format!("got {} bytes", body.len()) }),
        )
        .route(
            "/redirect",
            post(|| async {
                (
                    axum::http::StatusCode::FOUND,
                    [("location", "/ok")],
                    "moved",
                )
            }),
        )
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .route("/huge", post(|| async { "x".repeat(8 * 1024 * 1024) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn request(url: String, timeout: Duration) -> OutboundRequest {
    OutboundRequest {
        url,
        headers: vec![("content-type".into(), "application/json".into())],
        body: b"{\"hello\":1}".to_vec(),
        timeout,
    }
}

#[tokio::test]
async fn private_receivers_are_refused_unless_allowed() {
    let base = receiver().await;
    let strict = HttpTransport::new(false).unwrap();
    let by_ip = strict
        .post(request(format!("{base}/ok"), Duration::from_secs(5)))
        .await;
    assert!(
        matches!(by_ip, Err(OutboundError::Refused(ref why)) if why.contains("loopback")),
        "{by_ip:?}"
    );
    let port = base.rsplit(':').next().unwrap();
    let by_name = strict
        .post(request(
            format!("http://localhost:{port}/ok"),
            Duration::from_secs(5),
        ))
        .await;
    assert!(
        matches!(by_name, Err(OutboundError::Refused(_))),
        "{by_name:?}"
    );

    let open = HttpTransport::new(true).unwrap();
    let answer = open
        .post(request(format!("{base}/ok"), Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body_start, b"got 11 bytes");
}

#[tokio::test]
async fn redirects_are_answers_not_followed() {
    let base = receiver().await;
    let open = HttpTransport::new(true).unwrap();
    let answer = open
        .post(request(format!("{base}/redirect"), Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(answer.status, 302);
    assert_eq!(answer.body_start, b"moved");
}

#[tokio::test]
async fn slow_and_enormous_answers_are_cut_off() {
    let base = receiver().await;
    let open = HttpTransport::new(true).unwrap();
    let started = Instant::now();
    let slow = open
        .post(request(format!("{base}/slow"), Duration::from_secs(1)))
        .await;
    assert!(matches!(slow, Err(OutboundError::Timeout(1))), "{slow:?}");
    assert!(started.elapsed() < Duration::from_secs(5));

    let huge = open
        .post(request(format!("{base}/huge"), Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(huge.status, 200);
    assert_eq!(huge.body_start.len(), 1024);
}
