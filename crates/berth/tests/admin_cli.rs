//! The administration subcommands against a data directory (`berth user|token|org|team|
//! repo|audit …`), with and without a server running on it.

mod common;

use common::{expect_status, TestServer, MT_OCI_MANIFEST};
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

/// `berth token create` (and `berth org token create`) keep the label and expiry rules the
/// API keeps: they are the management service's, not a handler's.
#[test]
fn token_labels_and_expiries_are_checked_as_in_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    create_user(dir, "dev", false);
    ok(dir, &["org", "create", "acme", "--owner", "dev"]);
    let too_long = "x".repeat(101);
    for (flags, expected) in [
        (
            vec!["--name", "   "],
            "a token label needs 1 to 100 characters",
        ),
        (
            vec!["--name", too_long.as_str()],
            "a token label needs 1 to 100 characters",
        ),
        (vec!["--expires", "0"], "expires after at least 1 day"),
    ] {
        for command in [
            &["token", "create", "dev"][..],
            &["org", "token", "create", "acme"][..],
        ] {
            let mut args = command.to_vec();
            args.extend(["--scope", "repo:read"]);
            args.extend(flags.iter().copied());
            assert_fails_with(&berth(dir, &args, ""), expected);
        }
    }
    assert_eq!(ok(dir, &["token", "list", "dev"]), "");
    assert_eq!(ok(dir, &["org", "token", "list", "acme"]), "");
    ok(
        dir,
        &[
            "token",
            "create",
            "dev",
            "--scope",
            "repo:read",
            "--name",
            "  laptop  ",
        ],
    );
    assert!(
        ok(dir, &["token", "list", "dev"]).starts_with("1  \"laptop\"  repo:read"),
        "the label is stored trimmed"
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

/// Runs a command that must succeed and returns its standard output.
fn ok(dir: &Path, args: &[&str]) -> String {
    let out = berth(dir, args, "");
    assert!(
        out.status.success(),
        "berth {args:?} failed: {}",
        stderr(&out)
    );
    stdout(&out)
}

fn create_user(dir: &Path, name: &str, admin: bool) {
    let mut args = vec!["user", "create", name, "--password-stdin"];
    if admin {
        args.push("--admin");
    }
    let out = berth(dir, &args, "long-password\n");
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The audit log's actions, oldest first.
fn audit_actions(dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["audit"];
    args.extend_from_slice(extra);
    let mut actions: Vec<String> = ok(dir, &args)
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split("  ").collect();
            assert_eq!(fields[1], "cli", "the CLI acts as `cli`: {line}");
            format!("{} {}", fields[2], fields[3])
        })
        .collect();
    actions.reverse();
    actions
}

#[test]
fn organizations_teams_and_repositories_are_managed_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    create_user(dir, "bob", false);
    create_user(dir, "carol", false);

    assert_fails_with(
        &berth(dir, &["org", "create", "acme", "--owner", "ghost"], ""),
        "account ghost is not known",
    );
    assert!(
        ok(dir, &["org", "create", "acme", "--owner", "bob"]).contains("created organization acme")
    );
    assert_fails_with(
        &berth(dir, &["org", "create", "bob", "--owner", "carol"], ""),
        "already exists",
    );
    assert_eq!(ok(dir, &["org", "list"]), "acme\nlibrary\n");

    ok(
        dir,
        &[
            "team",
            "create",
            "acme",
            "devs",
            "--description",
            "Developers",
        ],
    );
    ok(dir, &["team", "add", "acme", "devs", "carol"]);
    assert!(ok(dir, &["team", "add", "acme", "devs", "carol"]).contains("already"));
    assert_eq!(
        ok(dir, &["team", "list", "acme"]),
        "devs: carol  (Developers)\nowners: bob  (Owners of the organization)\n"
    );
    assert_fails_with(
        &berth(dir, &["team", "add", "acme", "ops", "carol"], ""),
        "team ops is not known in acme",
    );

    assert_eq!(
        ok(dir, &["repo", "create", "acme/app"]),
        "created private repository acme/app\n"
    );
    assert_eq!(
        ok(dir, &["repo", "create", "acme/site", "--public"]),
        "created public repository acme/site\n"
    );
    assert_fails_with(
        &berth(dir, &["repo", "create", "acme/app"], ""),
        "already exists",
    );
    ok(
        dir,
        &[
            "team",
            "grant",
            "acme",
            "devs",
            "acme/app",
            "--permission",
            "write",
        ],
    );
    assert_eq!(
        ok(dir, &["repo", "list", "acme"]),
        "acme/app  private  teams: devs=write  collaborators: none\n\
         acme/site  public  teams: none  collaborators: none\n"
    );
    assert_fails_with(
        &berth(
            dir,
            &[
                "team",
                "grant",
                "acme",
                "devs",
                "acme/app",
                "--permission",
                "owner",
            ],
            "",
        ),
        "unknown permission",
    );
    assert_fails_with(
        &berth(
            dir,
            &[
                "team",
                "grant",
                "acme",
                "devs",
                "acme/missing",
                "--permission",
                "read",
            ],
            "",
        ),
        "repository acme/missing is not known",
    );

    ok(dir, &["repo", "visibility", "acme/app", "public"]);
    ok(dir, &["team", "revoke", "acme", "devs", "acme/app"]);
    assert!(ok(dir, &["repo", "list", "acme"]).starts_with("acme/app  public  teams: none"));

    assert_fails_with(
        &berth(dir, &["repo", "delete", "acme/app"], ""),
        "add --yes",
    );
    ok(dir, &["repo", "delete", "acme/app", "--yes"]);
    assert!(!ok(dir, &["repo", "list", "acme"]).contains("acme/app"));

    // Every organization keeps its owners team and at least one owner.
    assert_fails_with(
        &berth(dir, &["team", "delete", "acme", "owners"], ""),
        "cannot be deleted",
    );
    assert_fails_with(
        &berth(dir, &["team", "remove", "acme", "owners", "bob"], ""),
        "last owner",
    );
    ok(dir, &["team", "remove", "acme", "devs", "carol"]);
    ok(dir, &["team", "delete", "acme", "devs"]);
    assert_eq!(
        ok(dir, &["team", "list", "acme"]),
        "owners: bob  (Owners of the organization)\n"
    );

    assert_eq!(
        audit_actions(dir, &[]),
        [
            "user.create bob",
            "user.create carol",
            "org.create acme",
            "team.create acme/devs",
            "team.member.add acme/devs",
            "repository.create acme/app",
            "repository.create acme/site",
            "repository.team.grant acme/app",
            "repository.visibility acme/app",
            "repository.team.revoke acme/app",
            "repository.delete acme/app",
            "team.member.remove acme/devs",
            "team.delete acme/devs",
        ]
    );
    assert_eq!(
        audit_actions(dir, &["--account", "acme/app", "--limit", "2"]),
        [
            "repository.team.revoke acme/app",
            "repository.delete acme/app"
        ]
    );
}

#[test]
fn tokens_are_listed_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    create_user(dir, "dev", false);
    create_user(dir, "ops", false);
    ok(
        dir,
        &[
            "token",
            "create",
            "dev",
            "--scope",
            "repo:write",
            "--name",
            "ci",
            "--repo",
            "dev/*",
        ],
    );
    ok(
        dir,
        &[
            "token",
            "create",
            "dev",
            "--scope",
            "repo:read",
            "--expires",
            "7",
        ],
    );
    ok(dir, &["token", "create", "ops", "--scope", "repo:read"]);

    let listed = ok(dir, &["token", "list", "dev"]);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(
        lines[0].starts_with("1  \"ci\"  repo:write  dev/*  created "),
        "{listed}"
    );
    assert!(
        lines[0].ends_with("expires never  last used never  active"),
        "{listed}"
    );
    assert!(
        lines[1].starts_with("2  \"cli\"  repo:read  all repositories"),
        "{listed}"
    );
    assert!(!lines[1].contains("expires never"), "{listed}");

    assert_eq!(
        ok(dir, &["token", "revoke", "dev", "1"]),
        "revoked token 1 of dev\n"
    );
    assert!(ok(dir, &["token", "list", "dev"])
        .lines()
        .next()
        .unwrap()
        .contains("  revoked "));
    assert!(ok(dir, &["token", "revoke", "dev", "1"]).contains("already revoked"));
    // Another user's token is as unknown as one that does not exist.
    assert_fails_with(
        &berth(dir, &["token", "revoke", "dev", "3"], ""),
        "token 3 is not known",
    );
    assert_fails_with(
        &berth(dir, &["token", "revoke", "dev", "99"], ""),
        "token 99 is not known",
    );
    assert!(ok(dir, &["token", "list", "ops"]).ends_with("active\n"));

    // Organization tokens act for the organization and are listed with it, not the user.
    ok(dir, &["org", "create", "acme", "--owner", "ops"]);
    let out = berth(
        dir,
        &[
            "org",
            "token",
            "create",
            "acme",
            "--scope",
            "repo:write",
            "--name",
            "deploy",
        ],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).trim().starts_with("berth_pat_"));
    assert!(ok(dir, &["org", "token", "list", "acme"]).starts_with("4  \"deploy\"  repo:write"));
    assert_eq!(ok(dir, &["token", "list", "ops"]).lines().count(), 1);
    assert_fails_with(
        &berth(dir, &["org", "token", "revoke", "acme", "3"], ""),
        "token 3 is not known",
    );
    ok(dir, &["org", "token", "revoke", "acme", "4"]);

    let actions = audit_actions(dir, &["--account", "dev"]);
    assert_eq!(
        actions,
        [
            "user.create dev",
            "token.create dev",
            "token.create dev",
            "token.revoke dev"
        ]
    );
}

#[test]
fn site_admins_are_granted_and_revoked_but_one_always_remains() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    create_user(dir, "root", true);
    create_user(dir, "bob", false);
    assert_eq!(ok(dir, &["user", "list"]), "bob\nroot (site admin)\n");
    assert_fails_with(
        &berth(dir, &["user", "admin", "root", "--revoke"], ""),
        "last site admin",
    );
    ok(dir, &["user", "admin", "bob", "--grant"]);
    ok(dir, &["user", "admin", "root", "--revoke"]);
    assert_eq!(ok(dir, &["user", "list"]), "bob (site admin)\nroot\n");
    assert_fails_with(
        &berth(dir, &["user", "admin", "ghost", "--grant"], ""),
        "not known",
    );
    assert_fails_with(
        &berth(
            dir,
            &["user", "create", "cli", "--password-stdin"],
            "long-password\n",
        ),
        "reserved",
    );
    assert_fails_with(&berth(dir, &["user", "disable-2fa", "bob"], ""), "not on");
    assert_eq!(
        audit_actions(dir, &["--account", "root"]),
        ["user.create root", "user.admin root"]
    );
}

#[test]
fn collaborators_join_personal_repositories_only() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    create_user(dir, "bob", false);
    create_user(dir, "carol", false);
    ok(dir, &["org", "create", "acme", "--owner", "bob"]);
    ok(dir, &["repo", "create", "bob/tool", "--private"]);
    ok(dir, &["repo", "create", "acme/app"]);

    assert_eq!(
        ok(dir, &["repo", "collaborator", "add", "bob/tool", "carol"]),
        "carol has write on bob/tool\n"
    );
    assert_eq!(
        ok(dir, &["repo", "list", "bob"]),
        "bob/tool  private  teams: none  collaborators: carol=write\n"
    );
    ok(
        dir,
        &[
            "repo",
            "collaborator",
            "add",
            "bob/tool",
            "carol",
            "--permission",
            "read",
        ],
    );
    assert!(ok(dir, &["repo", "list", "bob"]).contains("collaborators: carol=read"));
    assert_fails_with(
        &berth(
            dir,
            &["repo", "collaborator", "add", "acme/app", "carol"],
            "",
        ),
        "belongs to an organization",
    );
    ok(
        dir,
        &["repo", "collaborator", "remove", "bob/tool", "carol"],
    );
    assert!(ok(dir, &["repo", "list", "bob"]).contains("collaborators: none"));
    assert_fails_with(
        &berth(dir, &["repo", "list", "ghost"], ""),
        "account ghost is not known",
    );
    assert_fails_with(
        &berth(dir, &["repo", "create", "Bad/Name"], ""),
        "invalid repository name",
    );
    assert_eq!(
        audit_actions(dir, &["--account", "bob/tool"]),
        [
            "repository.create bob/tool",
            "repository.collaborator.set bob/tool",
            "repository.collaborator.set bob/tool",
            "repository.collaborator.remove bob/tool",
        ]
    );
}

#[test]
fn a_namespace_decides_the_visibility_of_new_repositories() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    create_user(dir, "alice", false);
    ok(dir, &["repo", "create", "alice/before"]);
    ok(dir, &["repo", "default-visibility", "alice", "public"]);
    ok(dir, &["repo", "create", "alice/after"]);
    let listing = ok(dir, &["repo", "list", "alice"]);
    assert!(listing.contains("alice/before  private"), "{listing}");
    assert!(listing.contains("alice/after  public"), "{listing}");
    assert_fails_with(
        &berth(dir, &["repo", "default-visibility", "nobody", "public"], ""),
        "not known",
    );
    assert!(audit_actions(dir, &[])
        .iter()
        .any(|a| a.starts_with("namespace.default_visibility alice")));
}

/// The audit lines by or about `account`, newest first.
fn audit_lines(dir: &Path, account: &str) -> Vec<String> {
    ok(dir, &["audit", "--account", account])
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_are_one_line_and_the_server_prunes_past_the_retention() {
    let options = common::SpawnOptions::default().env("BERTH_AUDIT_RETENTION", "2s");
    let mut server = TestServer::spawn_with(options).await;
    let plain = reqwest::Client::new();
    for _ in 0..3 {
        let response = plain
            .get(server.url("/v2/"))
            .basic_auth("mallory", Some("wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    let dir = server.data_dir().expect("spawned server").to_owned();
    let lines = audit_lines(&dir, "mallory");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("login.failure") && lines[0].contains("(3 times, last "),
        "{lines:?}"
    );

    // The server prunes when it starts and then hourly.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    server.restart().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !audit_lines(&dir, "mallory").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the records past audit_retention are still there"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Signs a browser in to the web UI of `server`; its session cookie (`name=value`).
async fn browser_session(server: &TestServer, name: &str, password: &str) -> String {
    let answer = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(server.url("/login"))
        .form(&[("username", name), ("password", password)])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303, "signed in");
    answer
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next())
        .find(|c| c.starts_with("berth_session="))
        .expect("a session cookie")
        .to_owned()
}

/// The status of `path` requested with `cookie` or `authorization` (no redirects followed).
async fn status_with(server: &TestServer, path: &str, header: (&str, &str)) -> u16 {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(server.url(path))
        .header(header.0, header.1)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Runs `berth ARGS` on the server's data directory off the async workers.
async fn berth_on(server: &TestServer, args: &[&str], input: &str) -> Output {
    let dir = server.data_dir().expect("spawned server").to_owned();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let input = input.to_owned();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        berth(&dir, &args, &input)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berth_user_passwd_right_after_a_browser_sign_in_signs_that_browser_out() {
    let server = TestServer::spawn().await;
    let out = berth_on(
        &server,
        &["user", "create", "bob", "--password-stdin"],
        "long-password\n",
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let browser = browser_session(&server, "bob", "long-password").await;
    let basic = common::basic_auth("bob", "long-password");
    assert_eq!(
        status_with(&server, "/settings", ("cookie", &browser)).await,
        200
    );
    assert_eq!(
        status_with(&server, "/v2/", ("authorization", &basic)).await,
        200
    );

    // At once, in the same second as often as not: whole-second timestamps let this
    // browser stay signed in.
    let out = berth_on(
        &server,
        &["user", "passwd", "bob", "--password-stdin"],
        "another-password\n",
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        status_with(&server, "/settings", ("cookie", &browser)).await,
        303,
        "sent to sign in again"
    );
    assert_eq!(
        status_with(&server, "/v2/", ("authorization", &basic)).await,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berth_user_disable_signs_a_running_servers_users_out_and_enable_lets_them_back() {
    let server = TestServer::spawn().await;
    let out = berth_on(
        &server,
        &["user", "create", "bob", "--password-stdin"],
        "long-password\n",
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let token = berth_on(
        &server,
        &["token", "create", "bob", "--scope", "repo:read"],
        "",
    )
    .await;
    assert!(token.status.success(), "{}", stderr(&token));
    let secret = stdout(&token)
        .split_whitespace()
        .find(|word| word.starts_with("berth_pat_"))
        .expect("the token")
        .to_owned();
    let browser = browser_session(&server, "bob", "long-password").await;
    let basic = common::basic_auth("bob", "long-password");
    let tokened = common::basic_auth("bob", &secret);
    assert_eq!(
        status_with(&server, "/v2/", ("authorization", &tokened)).await,
        200
    );

    let out = berth_on(&server, &["user", "disable", "bob"], "").await;
    assert!(stdout(&out).contains("disabled bob"), "{}", stderr(&out));
    assert_eq!(
        status_with(&server, "/settings", ("cookie", &browser)).await,
        303
    );
    assert_eq!(
        status_with(&server, "/v2/", ("authorization", &basic)).await,
        401
    );
    assert_eq!(
        status_with(&server, "/v2/", ("authorization", &tokened)).await,
        401
    );
    let listed = berth_on(&server, &["user", "list"], "").await;
    assert!(
        stdout(&listed).contains("bob (disabled)"),
        "{}",
        stdout(&listed)
    );

    let out = berth_on(&server, &["user", "enable", "bob"], "").await;
    assert!(stdout(&out).contains("enabled bob"), "{}", stderr(&out));
    assert_eq!(
        status_with(&server, "/v2/", ("authorization", &basic)).await,
        200
    );
    assert_eq!(
        status_with(&server, "/v2/", ("authorization", &tokened)).await,
        200
    );
    assert_eq!(
        status_with(&server, "/settings", ("cookie", &browser)).await,
        303,
        "sessions do not come back"
    );
}

#[test]
fn berth_user_delete_keeps_repositories_unless_forced_and_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    create_user(dir, "root", true);
    create_user(dir, "bob", false);
    ok(dir, &["repo", "create", "bob/app"]);
    assert_fails_with(&berth(dir, &["user", "delete", "bob"], ""), "bob/app");
    assert_fails_with(
        &berth(dir, &["user", "delete", "root"], ""),
        "last site admin",
    );
    assert_fails_with(&berth(dir, &["user", "delete", "ghost"], ""), "not known");
    let out = ok(dir, &["user", "delete", "bob", "--force"]);
    assert_eq!(out, "deleted repository bob/app\ndeleted user bob\n");
    assert_eq!(ok(dir, &["user", "list"]), "root (site admin)\n");
    let actions = audit_actions(dir, &[]);
    assert!(
        actions.contains(&"repository.delete bob/app".to_owned()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"user.delete bob".to_owned()),
        "{actions:?}"
    );
    // The name is free again, with nothing of the old account's.
    create_user(dir, "bob", false);
    assert_fails_with(&berth(dir, &["user", "disable", "nobody"], ""), "not known");
    ok(dir, &["user", "disable", "bob"]);
    assert_eq!(
        ok(dir, &["user", "disable", "bob"]),
        "bob was already disabled\n"
    );
    let actions = audit_actions(dir, &["--account", "bob"]);
    assert_eq!(
        actions.iter().filter(|a| *a == "user.disable bob").count(),
        1,
        "{actions:?}"
    );
}

#[test]
fn quota_usage_and_gc_on_the_data_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let create = berth(
        dir.path(),
        &["user", "create", "alice", "--password-stdin"],
        "correct-horse\n",
    );
    assert!(create.status.success(), "{}", stderr(&create));

    let set = berth(dir.path(), &["quota", "set", "alice", "10GiB"], "");
    assert!(set.status.success(), "{}", stderr(&set));
    let usage = berth(dir.path(), &["usage", "alice", "--json"], "");
    assert!(usage.status.success(), "{}", stderr(&usage));
    let shown: serde_json::Value = serde_json::from_slice(&usage.stdout).expect("JSON");
    assert_eq!(
        shown,
        serde_json::json!({ "bytes": 0, "quota": 10u64 << 30 })
    );
    let lifted = berth(dir.path(), &["quota", "set", "alice", "none"], "");
    assert!(lifted.status.success(), "{}", stderr(&lifted));
    let usage = berth(dir.path(), &["usage", "alice", "--json"], "");
    let shown: serde_json::Value = serde_json::from_slice(&usage.stdout).expect("JSON");
    assert_eq!(shown["quota"], serde_json::Value::Null);

    assert_fails_with(
        &berth(dir.path(), &["quota", "set", "alice", "10 parsecs"], ""),
        "invalid size",
    );
    assert_fails_with(
        &berth(dir.path(), &["quota", "set", "nobody", "1GiB"], ""),
        "not known",
    );
    let repaired = berth(dir.path(), &["usage", "--recompute"], "");
    assert!(repaired.status.success(), "{}", stderr(&repaired));
    assert!(stdout(&repaired).contains("0 totals corrected"));

    // `default_quota` applies to namespaces created from then on, not to existing ones.
    let with_default = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .env("BERTH_DEFAULT_QUOTA", "1GiB")
            .stdin(Stdio::null())
            .output()
            .expect("run berth")
    };
    let org = with_default(&["org", "create", "acme", "--owner", "alice"]);
    assert!(org.status.success(), "{}", stderr(&org));
    let shown = with_default(&["usage", "acme", "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("JSON");
    assert_eq!(shown["quota"], 1u64 << 30);
    let shown = with_default(&["usage", "alice", "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("JSON");
    assert_eq!(
        shown["quota"],
        serde_json::Value::Null,
        "alice existed before"
    );

    let dry = berth(dir.path(), &["gc", "--dry-run", "--json"], "");
    assert!(dry.status.success(), "{}", stderr(&dry));
    let report: serde_json::Value = serde_json::from_slice(&dry.stdout).expect("JSON");
    assert_eq!(report["blobs"], 0);
    assert_eq!(report["dry_run"], true);
    let bad_grace = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["gc", "--data-dir"])
        .arg(dir.path())
        .env("BERTH_GC_GRACE", "soon")
        .output()
        .expect("run berth gc");
    assert!(!bad_grace.status.success());
    assert!(
        stderr(&bad_grace).contains("gc_grace"),
        "{}",
        stderr(&bad_grace)
    );
}

/// `berth retention …` and `berth immutable …` on the data directory of a running server:
/// bad input fails with one line and changes nothing, the dry run's JSON lists exactly what
/// the real run then deletes, and an immutable rule set from the CLI refuses the server's
/// pushes over the tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_and_immutable_tags_from_the_command_line() {
    let server = TestServer::spawn().await;
    let dir = server.data_dir().expect("spawned server").to_owned();
    let mut pushed = Vec::new();
    for tag in ["t1", "t2", "t3"] {
        pushed.push(server.push_random_image("admin/app", Some(tag)).await);
    }
    let cli = |args: Vec<&'static str>| {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || berth(&dir, &args, ""))
    };

    let out = cli(vec![
        "retention",
        "set",
        "admin/app",
        "--keep-last-pushed",
        "-1",
    ])
    .await
    .unwrap();
    assert_fails_with(&out, "keep_last_pushed must be from 1 to 100000, not -1");
    let out = cli(vec![
        "retention",
        "set",
        "admin/app",
        "--keep-last-pushed",
        "1",
        "--schedule",
        "at noon",
    ])
    .await
    .unwrap();
    assert_fails_with(&out, "invalid schedule \"at noon\"");
    let out = cli(vec![
        "retention",
        "set",
        "admin/app",
        "--keep-pushed-days",
        "1",
        "--tag",
        "no/slash",
    ])
    .await
    .unwrap();
    assert_fails_with(&out, "invalid tag pattern");
    let out = cli(vec!["retention", "show", "admin/app"]).await.unwrap();
    assert_eq!(
        stdout(&out).trim(),
        "admin/app has no retention policy",
        "nothing was set"
    );

    let out = cli(vec![
        "retention",
        "set",
        "admin/app",
        "--keep-last-pushed",
        "1",
        "--schedule",
        "daily",
    ])
    .await
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let dry = cli(vec!["retention", "run", "admin/app", "--dry-run", "--json"])
        .await
        .unwrap();
    assert!(dry.status.success(), "{}", stderr(&dry));
    let dry: serde_json::Value = serde_json::from_slice(&dry.stdout).expect("JSON");
    // The newest push stays (pushes within one second: the first name).
    let listed: Vec<String> = dry["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            t.as_str()
                .unwrap()
                .trim_start_matches("admin/app:")
                .to_owned()
        })
        .collect();
    let kept = ["t1", "t2", "t3"]
        .into_iter()
        .find(|t| !listed.iter().any(|l| l == t))
        .expect("one tag kept");
    assert_eq!(listed.len(), 2, "{dry}");
    assert_eq!(dry["manifests"].as_array().unwrap().len(), 2);
    assert!(
        dry["bytes"].as_u64().unwrap() > 1024,
        "two random 512-byte layers and more: {dry}"
    );
    let gone = listed[0].clone();
    assert_eq!(server.get_manifest("admin/app", &gone).await.status(), 200);

    let real = cli(vec!["retention", "run", "admin/app", "--json"])
        .await
        .unwrap();
    assert!(real.status.success(), "{}", stderr(&real));
    let real: serde_json::Value = serde_json::from_slice(&real.stdout).expect("JSON");
    for field in ["tags", "manifests", "bytes"] {
        assert_eq!(real[field], dry[field], "{field}");
    }
    assert_eq!(server.get_manifest("admin/app", &gone).await.status(), 404);
    assert_eq!(server.get_manifest("admin/app", kept).await.status(), 200);
    let runs = cli(vec!["retention", "runs", "admin/app"]).await.unwrap();
    assert!(
        stdout(&runs).contains("manual  by cli  2 tags  2 manifests"),
        "{}",
        stdout(&runs)
    );

    let out = cli(vec![
        "immutable",
        "set",
        "admin",
        "--tag",
        "t*",
        "--exclude",
        "t9",
    ])
    .await
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = cli(vec!["immutable", "show", "admin", "--json"])
        .await
        .unwrap();
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("JSON");
    assert_eq!(shown["tags"], serde_json::json!(["t*"]));
    assert_eq!(shown["excludes"], serde_json::json!(["t9"]));
    let other = server.push_random_image("admin/app", None).await;
    let refused = server
        .push_manifest("admin/app", kept, MT_OCI_MANIFEST, &other.bytes)
        .await;
    let (_, body) = expect_status(refused, 403, "push over an immutable tag").await;
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains("DENIED") && body.contains(&format!("tag {kept} is immutable")),
        "{body}"
    );
    let out = cli(vec!["immutable", "clear", "admin"]).await.unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cli(vec!["immutable", "clear", "admin"]).await.unwrap();
    assert_fails_with(&out, "admin has no immutable-tag rule");
    let _ = pushed;
}

#[test]
fn pull_rate_limit_plans_from_the_command_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    create_user(dir.path(), "alice", false);
    assert_eq!(
        ok(dir.path(), &["plan", "list"]).trim(),
        "no plans: every account has its tier's limit"
    );
    ok(dir.path(), &["plan", "set", "alice", "500;w=21600"]);
    ok(dir.path(), &["plan", "set", "library", "unlimited"]);
    let listed: serde_json::Value =
        serde_json::from_str(&ok(dir.path(), &["plan", "list", "--json"])).expect("JSON");
    assert_eq!(listed[0]["account"], "alice");
    assert_eq!(listed[0]["kind"], "user");
    assert_eq!(listed[0]["plan"], "500;w=21600");
    assert_eq!(listed[0]["updated_by"], "cli");
    assert_eq!(listed[1]["account"], "library");
    assert_eq!(listed[1]["kind"], "organization");
    assert_eq!(listed[1]["plan"], "unlimited");
    assert_fails_with(
        &berth(dir.path(), &["plan", "set", "alice", "500 per 6h"], ""),
        "expected PULLS;w=SECONDS",
    );
    assert_fails_with(
        &berth(dir.path(), &["plan", "set", "nobody", "unlimited"], ""),
        "not known",
    );
    ok(dir.path(), &["plan", "clear", "alice"]);
    assert_fails_with(
        &berth(dir.path(), &["plan", "clear", "alice"], ""),
        "alice has no plan",
    );
    let actions = audit_actions(dir.path(), &[]);
    assert!(
        actions.contains(&"rate_plan.set alice".to_owned())
            && actions.contains(&"rate_plan.clear alice".to_owned()),
        "{actions:?}"
    );
}
