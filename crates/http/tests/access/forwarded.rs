//! Behind a reverse proxy: the client a trusted proxy forwards is the one the sign-in
//! throttle, the audit log, `metrics_allow` and the token realm see; the same headers from
//! anyone else change nothing.

use crate::support::{client, Creds, Server, PASSWORD};
use berth_http::origin::Forwarding;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The proxy's address; requests from any other loopback address come "directly".
const PROXY: [u8; 4] = [127, 0, 0, 1];

fn addr(octets: [u8; 4]) -> IpAddr {
    IpAddr::from(octets)
}

/// Berth trusting only [`PROXY`], with `/metrics` open to the proxy's own address only.
async fn behind_proxy() -> Server {
    let mut options = berth_testkit::Options::default();
    options.settings.forwarding = Forwarding {
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        tls: false,
    };
    options.metrics_allow = Some(vec!["127.0.0.1/32".parse().unwrap()]);
    Server::start_with_options(options).await
}

/// A sign-in to `GET /token` from `from`, claiming to forward for `forwarded_for`; returns
/// the status and how long the answer took.
async fn sign_in(
    server: &Server,
    from: &reqwest::Client,
    forwarded_for: &str,
    name: &str,
    secret: &str,
) -> (u16, Duration) {
    let started = Instant::now();
    let response = Creds::basic(name, secret)
        .apply(from.get(server.url("/token?service=berth")))
        .header("x-forwarded-for", forwarded_for)
        .send()
        .await
        .expect("request");
    (response.status().as_u16(), started.elapsed())
}

/// Past its free failures, an address's next attempt is held for a second or more.
const HELD: Duration = Duration::from_millis(900);

#[tokio::test]
async fn spoofed_x_forwarded_for_from_an_untrusted_peer_does_not_dodge_the_throttle() {
    let server = behind_proxy().await;
    server.user("alice", false).await;
    let stranger = client(Some(addr([127, 0, 0, 2])));
    // A new made-up address on every guess: all of them are charged to 127.0.0.2.
    for n in 1..=5 {
        let (status, _) = sign_in(
            &server,
            &stranger,
            &format!("198.51.100.{n}"),
            "alice",
            "wrong",
        )
        .await;
        assert_eq!(status, 401);
    }
    let (status, took) = sign_in(&server, &stranger, "198.51.100.6", "alice", "wrong").await;
    assert_eq!(status, 401);
    assert!(took >= HELD, "the sixth guess was not held: {took:?}");
}

#[tokio::test]
async fn a_trusted_proxys_clients_are_throttled_each_on_their_own() {
    let server = behind_proxy().await;
    server.user("alice", false).await;
    let proxy = client(Some(addr(PROXY)));
    for _ in 0..5 {
        let (status, _) = sign_in(&server, &proxy, "203.0.113.1", "alice", "wrong").await;
        assert_eq!(status, 401);
    }
    let (_, took) = sign_in(&server, &proxy, "203.0.113.1", "alice", "wrong").await;
    assert!(took >= HELD, "the guesser was not held: {took:?}");
    // Another client behind the same proxy is not slowed down by the guesser.
    let (status, took) = sign_in(&server, &proxy, "203.0.113.2", "alice", PASSWORD).await;
    assert_eq!(status, 200);
    assert!(
        took < HELD,
        "an honest client behind the proxy was held: {took:?}"
    );
    // The right-most address that is not the proxy counts, whatever a client put before it.
    let (_, took) = sign_in(
        &server,
        &proxy,
        "203.0.113.2, 203.0.113.1, 127.0.0.1",
        "alice",
        "wrong",
    )
    .await;
    assert!(
        took >= HELD,
        "the guesser hid behind a spoofed entry: {took:?}"
    );
}

#[tokio::test]
async fn the_audit_log_records_the_forwarded_client_only_from_the_trusted_proxy() {
    let server = behind_proxy().await;
    server.user("root", true).await;
    let proxy = client(Some(addr(PROXY)));
    let direct = client(Some(addr([127, 0, 0, 3])));
    sign_in(&server, &proxy, "203.0.113.7", "via-proxy", "wrong").await;
    sign_in(&server, &direct, "203.0.113.8", "direct", "wrong").await;
    let logs: serde_json::Value = Creds::basic("root", PASSWORD)
        .apply(server.client.get(server.url("/api/v1/auditlogs")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let address_of = |name: &str| {
        logs["logs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == "login.failure" && e["name"] == name)
            .map(|e| e["address"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no failed sign-in of {name}: {logs}"))
    };
    assert_eq!(address_of("via-proxy"), "203.0.113.7");
    assert_eq!(address_of("direct"), "127.0.0.3");
}

#[tokio::test]
async fn metrics_allow_and_the_token_realm_follow_only_the_trusted_proxy() {
    let server = behind_proxy().await;
    let proxy = client(Some(addr(PROXY)));
    let direct = client(Some(addr([127, 0, 0, 4])));
    let metrics = |from: &reqwest::Client, forwarded_for: Option<&str>| {
        let mut request = from.get(server.url("/metrics"));
        if let Some(forwarded_for) = forwarded_for {
            request = request.header("x-forwarded-for", forwarded_for);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // The proxy itself may read /metrics; a client it forwards for may not.
    assert_eq!(metrics(&proxy, None).await, 200);
    assert_eq!(metrics(&proxy, Some("203.0.113.9")).await, 401);
    // Nobody else gets in by claiming the proxy's address.
    assert_eq!(metrics(&direct, Some("127.0.0.1")).await, 401);

    let realm = |from: &reqwest::Client| {
        let request = from
            .get(server.url("/v2/"))
            .header("x-forwarded-for", "203.0.113.9")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "hub.example");
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401);
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };
    assert_eq!(
        realm(&proxy).await,
        "Bearer realm=\"https://hub.example/token\",service=\"berth\""
    );
    assert_eq!(
        realm(&direct).await,
        format!(
            "Bearer realm=\"http://{}/token\",service=\"berth\"",
            server.addr
        )
    );
    // RFC 7239 `Forwarded` from the proxy says the same.
    let response = proxy
        .get(server.url("/v2/"))
        .header(
            "forwarded",
            "for=203.0.113.9;proto=https;host=\"hub.example:8443\"",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"https://hub.example:8443/token\",service=\"berth\""
    );
}
