//! The administration subcommands against a data directory: `berth user …` and
//! `berth token …`, with and without a server running on it.

mod common;

use common::TestServer;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `berth ARGS --data-dir DIR` with `input` on standard input.
fn berth(dir: &Path, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("BERTH_CONFIG")
        .env_remove("BERTH_DATA_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait for berth")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_fails_with(output: &Output, expected: &str) {
    assert!(!output.status.success(), "should fail: {}", stdout(output));
    let err = stderr(output);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("error: ") && err.contains(expected),
        "{err}"
    );
}

/// Every file of the data directory's database, as bytes (WAL included).
fn database_bytes(dir: &Path) -> Vec<u8> {
    ["berth.db", "berth.db-wal", "berth.db-shm"]
        .iter()
        .filter_map(|f| std::fs::read(dir.join(f)).ok())
        .flatten()
        .collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn users_are_created_once_with_a_hashed_password() {
    let dir = tempfile::tempdir().unwrap();
    let out = berth(
        dir.path(),
        &["user", "create", "alice", "--admin", "--password-stdin"],
        "correct-horse\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("created user alice (site admin)"));
    assert!(
        !contains(&database_bytes(dir.path()), "correct-horse"),
        "password stored in clear"
    );
    assert!(contains(&database_bytes(dir.path()), "$argon2id$"));

    let again = berth(
        dir.path(),
        &["user", "create", "alice", "--password-stdin"],
        "another-pass\n",
    );
    assert_fails_with(&again, "already exists");
    let short = berth(
        dir.path(),
        &["user", "create", "bob", "--password-stdin"],
        "short\n",
    );
    assert_fails_with(&short, "at least 8 characters");
    let bad_name = berth(
        dir.path(),
        &["user", "create", "Bob!", "--password-stdin"],
        "long-enough\n",
    );
    assert_fails_with(&bad_name, "invalid account name");
    let empty = berth(
        dir.path(),
        &["user", "create", "carol", "--password-stdin"],
        "",
    );
    assert_fails_with(&empty, "no password");

    let passwd = berth(
        dir.path(),
        &["user", "passwd", "alice", "--password-stdin"],
        "battery-staple\n",
    );
    assert!(passwd.status.success(), "{}", stderr(&passwd));
    let unknown = berth(
        dir.path(),
        &["user", "passwd", "nobody", "--password-stdin"],
        "battery-staple\n",
    );
    assert_fails_with(&unknown, "not known");
}

#[test]
fn tokens_are_printed_once_and_stored_only_as_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let out = berth(
        dir.path(),
        &["user", "create", "dev", "--password-stdin"],
        "dev-password\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let out = berth(
        dir.path(),
        &[
            "token",
            "create",
            "dev",
            "--scope",
            "repo:write",
            "--repo",
            "team/*",
            "--expires",
            "30",
            "--name",
            "ci",
        ],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let secret = stdout(&out).trim().to_owned();
    assert!(
        secret.starts_with("berth_pat_") && secret.len() == 74,
        "{secret}"
    );
    assert!(stderr(&out).contains("shown once"));
    assert!(
        !contains(&database_bytes(dir.path()), &secret),
        "token stored in clear"
    );
    assert!(!contains(
        &database_bytes(dir.path()),
        &secret["berth_pat_".len()..]
    ));

    let second = berth(
        dir.path(),
        &["token", "create", "dev", "--scope", "repo:read"],
        "",
    );
    assert_ne!(stdout(&second).trim(), secret, "every token is new");

    assert_fails_with(
        &berth(
            dir.path(),
            &["token", "create", "ghost", "--scope", "repo:read"],
            "",
        ),
        "not known",
    );
    assert_fails_with(
        &berth(
            dir.path(),
            &["token", "create", "dev", "--scope", "repo:delete"],
            "",
        ),
        "unknown token scope",
    );
    assert_fails_with(
        &berth(
            dir.path(),
            &[
                "token",
                "create",
                "dev",
                "--scope",
                "repo:read",
                "--repo",
                "Bad/*",
            ],
            "",
        ),
        "invalid repository pattern",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administration_works_while_a_server_runs_on_the_data_dir() {
    let server = TestServer::spawn().await;
    let dir = server.data_dir().expect("spawned server").to_owned();
    let out = tokio::task::spawn_blocking(move || {
        berth(
            &dir,
            &["user", "create", "ops", "--password-stdin"],
            "ops-password\n",
        )
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let response = server
        .client()
        .get(server.url("/v2/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
