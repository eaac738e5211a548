//! The real `berth serve` with its blobs in a real Garage (`[storage] kind = "s3"` through
//! the `BERTH_STORAGE_*` variables): chunked and whole pushes, pulls redirected to presigned
//! URLs or streamed, ranges either way, a bucket that cannot be used stopping startup, and
//! the filesystem-only commands refusing. Skips loudly without Garage, except under CI.
//!
//! ```text
//! cargo nextest run -p berth --test s3
//! ```

mod common;

use berth_testkit::garage::Garage;
use common::*;
use reqwest::Method;
use std::process::{Command, Stdio};
use std::time::Duration;

const MIB: usize = 1 << 20;

async fn garage(test: &str) -> Option<Garage> {
    let test = test.to_owned();
    tokio::task::spawn_blocking(move || Garage::start_or_skip(&test))
        .await
        .unwrap()
}

async fn berth_on(garage: &Garage, redirect: bool) -> TestServer {
    let mut options = SpawnOptions::default();
    for (key, value) in garage.berth_env(redirect) {
        options = options.env(key, &value);
    }
    TestServer::spawn_with(options).await
}

/// Pushes `chunks` as PATCH requests and the last PUT; returns the digest.
async fn push_in_chunks(server: &TestServer, repo: &str, chunks: &[Vec<u8>]) -> String {
    let all: Vec<u8> = chunks.concat();
    let digest = sha256(&all);
    let mut location = server.open_session(repo).await;
    let mut at = 0usize;
    for chunk in chunks {
        let resp = server
            .client()
            .patch(&location)
            .header("Content-Type", MT_OCTET_STREAM)
            .header("Content-Range", format!("{}-{}", at, at + chunk.len() - 1))
            .body(chunk.clone())
            .send()
            .await
            .unwrap();
        let (headers, _) = expect_status(resp, 202, "PATCH chunk").await;
        at += chunk.len();
        assert_eq!(
            require_header(&headers, "range", "PATCH"),
            format!("0-{}", at - 1)
        );
        location = server.resolve(&require_header(&headers, "location", "PATCH"));
    }
    let resp = server
        .client()
        .put(with_digest(&location, &digest))
        .header("Content-Length", "0")
        .send()
        .await
        .unwrap();
    expect_status(resp, 201, "PUT to complete").await;
    digest
}

/// A client that does not follow redirects, as the site admin.
fn no_redirects() -> reqwest::Client {
    admin_client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn blobs_in_garage_push_in_chunks_and_pull_redirected_or_streamed_with_ranges() {
    let Some(garage) =
        garage("blobs_in_garage_push_in_chunks_and_pull_redirected_or_streamed_with_ranges").await
    else {
        return;
    };
    for redirect in [true, false] {
        let server = berth_on(&garage, redirect).await;
        let repo = format!("admin/on-s3-{redirect}");
        // Under S3's 5 MiB part, over it, and small: merged, copied as several parts.
        let chunks = vec![
            random_bytes(MIB + 11),
            random_bytes(6 * MIB),
            random_bytes(2 * MIB),
            random_bytes(777),
        ];
        let all = chunks.concat();
        let digest = push_in_chunks(&server, &repo, &chunks).await;
        let whole = random_bytes(3 * MIB);
        let whole_digest = server.push_blob(&repo, &whole).await;

        let head = server.head_blob(&repo, &digest).await;
        let (headers, _) = expect_status(head, 200, "HEAD blob").await;
        assert_eq!(
            require_header(&headers, "content-length", "HEAD"),
            all.len().to_string()
        );

        let raw = no_redirects()
            .get(server.url(&format!("/v2/{repo}/blobs/{digest}")))
            .send()
            .await
            .unwrap();
        if redirect {
            let (headers, _) = expect_status(raw, 307, "GET blob, redirect on").await;
            let location = require_header(&headers, "location", "307");
            assert!(
                location.starts_with(&garage.endpoint) && location.contains("X-Amz-Signature"),
                "a presigned URL of the store: {location}"
            );
        } else {
            let (_, body) = expect_status(raw, 200, "GET blob, redirect off").await;
            assert!(body == all, "the blob streams through berth");
        }
        // A client that follows the redirect gets the same bytes, and ranges of them (the
        // registry's credentials are not sent on to the other host).
        let (_, body) = expect_status(server.get_blob(&repo, &digest).await, 200, "GET").await;
        assert!(
            body == all,
            "redirect {redirect}: the pulled blob is the pushed one"
        );
        let (_, body) = expect_status(
            server.get_blob(&repo, &whole_digest).await,
            200,
            "GET whole",
        )
        .await;
        assert!(body == whole);
        let range = server
            .request(Method::GET, &format!("/v2/{repo}/blobs/{digest}"))
            .header("Range", format!("bytes={}-{}", MIB - 5, 7 * MIB + 2))
            .send()
            .await
            .unwrap();
        let (_, body) = expect_status(range, 206, "GET range").await;
        assert!(
            body == all[MIB - 5..=7 * MIB + 2],
            "redirect {redirect}: the range"
        );

        // Another repository without the blob is told so, redirect or not.
        let other = no_redirects()
            .get(server.url(&format!("/v2/admin/elsewhere/blobs/{digest}")))
            .send()
            .await
            .unwrap();
        expect_status(other, 404, "GET blob of another repository").await;
    }
}

fn berth_command(garage: &Garage, data_dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.envs(garage.berth_env(true))
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

#[tokio::test]
async fn an_unusable_bucket_stops_startup_and_file_only_commands_refuse() {
    let Some(garage) =
        garage("an_unusable_bucket_stops_startup_and_file_only_commands_refuse").await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut serve = berth_command(&garage, dir.path());
    serve
        .env("BERTH_STORAGE_SECRET_ACCESS_KEY", "not-the-secret")
        .args(["serve", "--listen", "127.0.0.1:0"]);
    let output = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::task::spawn_blocking(move || serve.output().unwrap()),
    )
    .await
    .expect("berth gave up on the bucket")
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: S3 bucket \"registry\" at ") && last.contains("is not usable"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-secret"), "{stderr}");

    for args in [
        vec!["fsck"],
        vec!["gc"],
        vec!["backup", "--to", "/nonexistent/backup"],
    ] {
        let output = berth_command(&garage, dir.path())
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}: {stderr}");
        assert!(
            stderr.contains("works on filesystem storage only") && stderr.lines().count() == 1,
            "{args:?}: {stderr}"
        );
    }
}
