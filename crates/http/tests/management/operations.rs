//! What an operator watches: `/metrics` (open to `metrics_allow`, to site admins from
//! elsewhere), `/healthz` and `/readyz` (no credentials, nothing leaked), and the request id
//! every answer and every log line of a request carries.

use crate::support::{basic, Berth, ADMIN_PASSWORD, PASSWORD};
use reqwest::header::AUTHORIZATION;
use reqwest::Method;
use std::sync::{Arc, Mutex};

fn loopback() -> Vec<ipnet::IpNet> {
    vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]
}

/// A raw answer: status, headers, body text.
struct Raw {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

async fn raw(berth: &Berth, method: Method, path: &str, authorization: Option<&str>) -> Raw {
    let client = reqwest::Client::new();
    let mut request = client.request(method, berth.url(path));
    if let Some(value) = authorization {
        request = request.header(AUTHORIZATION, value);
    }
    let response = request.send().await.expect("request");
    Raw {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        text: response.text().await.expect("body"),
    }
}

fn basic_header(name: &str, secret: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{name}:{secret}"))
    )
}

/// The value of the sample `series` (name and labels exactly as exposed).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

#[tokio::test]
async fn health_and_readiness_need_no_credentials_and_tell_nothing_more() {
    let berth = Berth::start_with_metrics_allow(Vec::new()).await;
    for path in ["/healthz", "/readyz"] {
        let reply = raw(&berth, Method::GET, path, None).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        let expected = if path == "/healthz" { "ok" } else { "ready" };
        assert_eq!(
            reply.text,
            format!("{{\"status\":\"{expected}\"}}"),
            "{path}"
        );
        assert_eq!(reply.headers["cache-control"], "no-store");
        let head = raw(&berth, Method::HEAD, path, None).await;
        assert_eq!((head.status, head.text.as_str()), (200, ""), "HEAD {path}");
        let post = raw(&berth, Method::POST, path, None).await;
        assert_eq!(post.status, 405, "POST {path}");
        assert_eq!(post.headers["allow"], "GET, HEAD");
    }

    // The database stops answering: not ready, and the answer says no more than that.
    berth.meta.close().await;
    let reply = raw(&berth, Method::GET, "/readyz", None).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.text, "{\"status\":\"unavailable\"}");
    let alive = raw(&berth, Method::GET, "/healthz", None).await;
    assert_eq!(alive.status, 200, "the process itself is still up");
}

#[tokio::test]
async fn metrics_from_an_allowed_address_show_requests_uploads_sign_ins_and_the_process() {
    let berth = Berth::start_with_metrics_allow(loopback()).await;
    let admin = berth.with(basic("admin", ADMIN_PASSWORD));
    assert_eq!(admin.push_image("alice/app", "v1").await, 201);
    for _ in 0..3 {
        assert_eq!(admin.pull_manifest("alice/app", "v1").await, 200);
    }
    // An upload started and not finished is in progress.
    let started = raw(
        &berth,
        Method::POST,
        "/v2/alice/app/blobs/uploads/",
        Some(&basic_header("admin", ADMIN_PASSWORD)),
    )
    .await;
    assert_eq!(started.status, 202, "{}", started.text);
    // A wrong password is refused and counted as such.
    berth
        .with(basic("admin", "not the password"))
        .get("/api/v1/users/admin")
        .await
        .expect(401);

    let metrics = raw(&berth, Method::GET, "/metrics", None).await;
    assert_eq!(metrics.status, 200, "{}", metrics.text);
    assert!(
        metrics.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{:?}",
        metrics.headers
    );
    let text = &metrics.text;
    assert!(text.ends_with("# EOF\n"), "{text}");
    let pulls = sample(
        text,
        r#"berth_http_requests_total{kind="manifest",method="GET",status="2xx"}"#,
    );
    assert_eq!(pulls, Some(3.0), "{text}");
    assert_eq!(
        sample(
            text,
            r#"berth_http_requests_total{kind="manifest",method="PUT",status="2xx"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            text,
            r#"berth_http_request_duration_seconds_count{kind="manifest"}"#
        ),
        Some(4.0),
        "{text}"
    );
    assert_eq!(
        sample(
            text,
            r#"berth_http_request_duration_seconds_bucket{le="+Inf",kind="manifest"}"#
        ),
        Some(4.0),
        "{text}"
    );
    let received = sample(text, r#"berth_http_received_bytes_total{kind="upload"}"#);
    assert!(received.is_some_and(|n| n > 0.0), "{text}");
    let sent = sample(text, r#"berth_http_sent_bytes_total{kind="manifest"}"#);
    assert!(sent.is_some_and(|n| n > 0.0), "{text}");
    assert_eq!(
        sample(text, "berth_uploads_in_progress"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            text,
            r#"berth_sign_in_refusals_total{reason="credentials_invalid"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        sample(text, r#"berth_sign_ins_total{method="password"}"#).is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert_eq!(
        sample(text, r#"berth_db_connections_max{pool="write"}"#),
        Some(1.0),
        "{text}"
    );
    assert!(
        sample(text, r#"berth_db_connections_idle{pool="read"}"#).is_some(),
        "{text}"
    );
    // Garbage collection's figures are there from the start (the run at startup counts).
    for gc in [
        "berth_gc_reclaimed_bytes_total",
        r#"berth_gc_deleted_total{what="blob"}"#,
        r#"berth_gc_runs_total{outcome="done"}"#,
        "berth_gc_duration_seconds_total",
        "berth_gc_last_duration_seconds",
    ] {
        assert!(sample(text, gc).is_some(), "{gc}: {text}");
    }
    for process in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_cpu_seconds_total",
    ] {
        assert!(
            sample(text, process).is_some_and(|n| n > 0.0),
            "{process}: {text}"
        );
    }
}

#[tokio::test]
async fn metrics_from_elsewhere_need_a_site_admin() {
    // Loopback is not in the list: the test client counts as any other address.
    let berth = Berth::start_with_metrics_allow(vec!["10.0.0.0/8".parse().unwrap()]).await;
    berth.user("alice").await;
    let anonymous = raw(&berth, Method::GET, "/metrics", None).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.text);
    assert!(anonymous.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic "));
    assert!(!anonymous.text.contains("berth_http_requests"));
    let wrong = raw(
        &berth,
        Method::GET,
        "/metrics",
        Some(&basic_header("admin", "wrong")),
    )
    .await;
    assert_eq!(wrong.status, 401);
    let alice = raw(
        &berth,
        Method::GET,
        "/metrics",
        Some(&basic_header("alice", PASSWORD)),
    )
    .await;
    assert_eq!(alice.status, 403, "{}", alice.text);
    assert!(!alice.text.contains("berth_http_requests"));

    let admin = raw(
        &berth,
        Method::GET,
        "/metrics",
        Some(&basic_header("admin", ADMIN_PASSWORD)),
    )
    .await;
    assert_eq!(admin.status, 200, "{}", admin.text);
    assert!(admin.text.contains("berth_http_requests_total"));
    // The API's own bearer tokens work as they do on the API.
    let login = berth.login("admin", ADMIN_PASSWORD, None).await.expect(200);
    let token = login.body["token"].as_str().unwrap();
    let bearer = raw(
        &berth,
        Method::GET,
        "/metrics",
        Some(&format!("Bearer {token}")),
    )
    .await;
    assert_eq!(bearer.status, 200, "{}", bearer.text);
}

/// Log lines written while a test runs, in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[tokio::test]
async fn every_answer_and_every_log_line_of_a_request_carry_its_id() {
    let logs = Captured::default();
    // The test's runtime is single-threaded, so the server's tasks log on this thread.
    let _subscriber = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish(),
    );
    let berth = Berth::start_with_metrics_allow(loopback()).await;
    let mut ids = Vec::new();
    for path in [
        "/v2/",
        "/v2/nothing/here",
        "/api/v1/search?q=x",
        "/healthz",
        "/",
    ] {
        let reply = raw(&berth, Method::GET, path, None).await;
        let id = reply
            .headers
            .get("x-request-id")
            .unwrap_or_else(|| panic!("{path}: no X-Request-Id"))
            .to_str()
            .unwrap()
            .to_owned();
        assert!(!id.is_empty() && !ids.contains(&id), "{path}: {id}");
        ids.push(id);
    }

    // An id a proxy in front already set is kept; one that is not plain text is replaced.
    let client = reqwest::Client::new();
    let kept = client
        .get(berth.url("/v2/"))
        .header("x-request-id", "proxy-7f3a")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.headers()["x-request-id"], "proxy-7f3a");
    let replaced = client
        .get(berth.url("/v2/"))
        .header("x-request-id", "two words")
        .send()
        .await
        .unwrap();
    assert_ne!(replaced.headers()["x-request-id"], "two words");

    // A failure inside a request is logged with the request's id.
    berth.meta.close().await;
    let failed = raw(&berth, Method::GET, "/readyz", None).await;
    assert_eq!(failed.status, 503);
    let id = failed.headers["x-request-id"].to_str().unwrap().to_owned();
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let warning = text
        .lines()
        .find(|line| line.contains("the database does not answer"))
        .unwrap_or_else(|| panic!("no warning logged: {text}"));
    assert!(warning.contains(&id), "{warning}");
    for id in &ids {
        assert!(
            text.lines()
                .any(|line| line.contains(id.as_str()) && line.contains("status=")),
            "no request line names {id}: {text}"
        );
    }
}

#[tokio::test]
async fn answers_to_writes_wait_for_the_database_to_flush_and_reads_do_not() {
    let berth = Berth::start_with_metrics_allow(loopback()).await;
    let admin = berth.with(basic("admin", ADMIN_PASSWORD));
    let before = berth.meta.wal_flushes();
    assert_eq!(admin.push_image("alice/app", "v1").await, 201);
    let after_push = berth.meta.wal_flushes();
    // Two blob uploads and a manifest PUT, each answered after a flush of its own (one at
    // a time here, so none shares another's).
    assert_eq!(
        after_push - before,
        3,
        "every acknowledged write waited for a flush"
    );
    for _ in 0..5 {
        assert_eq!(admin.pull_manifest("alice/app", "v1").await, 200);
    }
    assert_eq!(
        berth.meta.wal_flushes(),
        after_push,
        "reads wait for nothing"
    );
    // Starting an upload keeps nothing a client relies on: its `202` does not wait either.
    let started = raw(
        &berth,
        Method::POST,
        "/v2/alice/app/blobs/uploads/",
        Some(&basic_header("admin", ADMIN_PASSWORD)),
    )
    .await;
    assert_eq!(started.status, 202, "{}", started.text);
    assert_eq!(
        berth.meta.wal_flushes(),
        after_push,
        "an upload's 202 waits for no flush"
    );
    berth
        .admin()
        .await
        .patch(
            "/api/v1/repositories/alice/app",
            serde_json::json!({ "description": "flushed" }),
        )
        .await
        .expect(200);
    assert!(
        berth.meta.wal_flushes() > after_push,
        "an API change waited for a flush"
    );
}

#[tokio::test]
async fn with_metrics_off_nothing_is_counted_and_metrics_is_not_found() {
    let berth = Berth::start_without_metrics().await;
    let admin = berth.with(basic("admin", ADMIN_PASSWORD));
    assert_eq!(admin.push_image("alice/app", "v1").await, 201);
    assert_eq!(admin.pull_manifest("alice/app", "v1").await, 200);
    let metrics = raw(&berth, Method::GET, "/metrics", None).await;
    assert_eq!(metrics.status, 404, "{}", metrics.text);
    assert!(metrics.text.contains("metrics = false"), "{}", metrics.text);
    // What the layer does besides metrics is still done: ids, health.
    let health = raw(&berth, Method::GET, "/healthz", None).await;
    assert_eq!(health.status, 200);
    assert!(health.headers.contains_key("x-request-id"));
}
