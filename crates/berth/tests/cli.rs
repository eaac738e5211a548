//! The `berth` binary's startup and shutdown behaviour: configuration errors,
//! unusable ports and data directories, `config show`, and SIGTERM.
//!
//! ```text
//! cargo nextest run -p berth --test cli
//! ```

mod common;

use common::*;
use std::collections::HashMap;
use std::io::Read as _;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Every variable Berth reads; cleared so the caller's environment cannot leak in.
const BERTH_VARS: &[&str] = &[
    "BERTH_CONFIG",
    "BERTH_DATA_DIR",
    "BERTH_DATABASE_URL",
    "BERTH_LISTEN",
    "BERTH_UPLOAD_TTL",
    "BERTH_LOG",
    "BERTH_PUBLIC_URL",
    "BERTH_TOKEN_TTL",
    "BERTH_REFRESH_TOKEN_TTL",
    "BERTH_ALLOW_SIGNUP",
    "BERTH_AUDIT_RETENTION",
    "BERTH_MAX_UPLOAD_SESSIONS",
    "BERTH_MAX_BLOB_SIZE",
    "BERTH_GC_GRACE",
    "BERTH_GC_INTERVAL",
    "BERTH_DEFAULT_QUOTA",
    "BERTH_WEBHOOK_ALLOW_PRIVATE",
    "BERTH_WEBHOOK_DISABLE_AFTER",
    "BERTH_SECRETS_KEY_FILE",
    "BERTH_METRICS",
    "BERTH_METRICS_ALLOW",
    "BERTH_LOG_FORMAT",
    "BERTH_TLS_CERT",
    "BERTH_TLS_KEY",
    "BERTH_TRUSTED_PROXIES",
    "BERTH_STORAGE_KIND",
    "BERTH_STORAGE_ENDPOINT",
    "BERTH_STORAGE_REGION",
    "BERTH_STORAGE_BUCKET",
    "BERTH_STORAGE_PREFIX",
    "BERTH_STORAGE_ACCESS_KEY_ID",
    "BERTH_STORAGE_SECRET_ACCESS_KEY",
    "BERTH_STORAGE_PATH_STYLE",
    "BERTH_STORAGE_REDIRECT",
];

fn berth() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    for var in BERTH_VARS {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Run to completion; kill and panic if it is still running after `timeout`
/// (a server that should have refused to start, for instance).
fn run(mut cmd: Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth");
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for berth") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr);
            }
            panic!("{cmd:?} still running after {timeout:?}; stderr:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    Output {
        status,
        stdout,
        stderr,
    }
}

const QUICK: Duration = Duration::from_secs(20);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

/// A configuration error: non-zero exit, nothing on stdout, and exactly one
/// line on stderr, `error: ...`, containing every one of `needles`.
fn assert_config_error(output: &Output, needles: &[&str], context: &str) {
    let stderr = text(&output.stderr);
    assert!(
        !output.status.success(),
        "{context}: expected a failure, got {}; stderr: {stderr}",
        output.status
    );
    assert!(
        output.stdout.is_empty(),
        "{context}: unexpected stdout: {}",
        text(&output.stdout)
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{context}: expected one line on stderr, got: {stderr:?}"
    );
    assert!(
        lines[0].starts_with("error: "),
        "{context}: stderr must start with `error: `: {stderr:?}"
    );
    for needle in needles {
        assert!(
            lines[0].contains(needle),
            "{context}: the error does not mention {needle:?}: {stderr:?}"
        );
    }
}

/// A startup failure after logging began: non-zero exit and a final
/// `error: ...` line (the only one) starting with `prefix`.
fn assert_startup_error(output: &Output, prefix: &str, context: &str) -> String {
    let stderr = text(&output.stderr);
    assert!(
        !output.status.success(),
        "{context}: expected a failure, got {}; stderr: {stderr}",
        output.status
    );
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "{context}: expected one `error: ` line on stderr: {stderr:?}"
    );
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(prefix),
        "{context}: the last stderr line should start with {prefix:?}: {stderr:?}"
    );
    last.to_string()
}

fn write_config(dir: &Path, toml: &str) -> std::path::PathBuf {
    let path = dir.join("berth.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

// ---------------------------------------------------------------------------
// Configuration errors
// ---------------------------------------------------------------------------

#[test]
fn unknown_config_key_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "listen = \"127.0.0.1:0\"\nlisen = \"127.0.0.1:5000\"\n",
    );
    let mut cmd = berth();
    cmd.arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"));
    let output = run(cmd, QUICK);
    assert_config_error(
        &output,
        &["lisen", "unknown field", &config.display().to_string()],
        "unknown key",
    );
    assert_eq!(output.status.code(), Some(2), "configuration errors exit 2");
    assert!(
        !dir.path().join("data").exists(),
        "nothing is created when the configuration is invalid"
    );
}

#[test]
fn invalid_listen_address_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let config = write_config(dir.path(), "listen = \"not-an-address\"\n");
    let mut cmd = berth();
    cmd.args(["serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data);
    let output = run(cmd, QUICK);
    assert_config_error(
        &output,
        &["listen address", "not-an-address", "config file"],
        "listen in the file",
    );

    let mut cmd = berth();
    cmd.args(["serve", "--listen", "300.1.2.3:80", "--data-dir"])
        .arg(&data);
    let output = run(cmd, QUICK);
    assert_config_error(
        &output,
        &["listen address", "300.1.2.3:80", "command line"],
        "--listen",
    );

    let mut cmd = berth();
    cmd.args(["serve", "--data-dir"])
        .arg(&data)
        .env("BERTH_LISTEN", "127.0.0.1")
        .env("BERTH_UPLOAD_TTL", "1d");
    let output = run(cmd, QUICK);
    assert_config_error(
        &output,
        &["listen address", "\"127.0.0.1\"", "environment"],
        "BERTH_LISTEN without a port",
    );

    let mut cmd = berth();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("BERTH_UPLOAD_TTL", "5 weeks");
    let output = run(cmd, QUICK);
    assert_config_error(
        &output,
        &["upload_ttl", "5 weeks", "environment"],
        "BERTH_UPLOAD_TTL",
    );

    let mut cmd = berth();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("BERTH_ALLOW_SIGNUP", "sometimes");
    let output = run(cmd, QUICK);
    assert_config_error(
        &output,
        &["allow_signup", "sometimes", "environment"],
        "BERTH_ALLOW_SIGNUP",
    );
}

/// Values that once panicked (a unit split inside a multi-byte character) or wrapped
/// around (a multiplication overflowing): each is a one-line error naming the setting.
#[test]
fn bad_durations_and_sizes_are_one_line_errors_not_panics() {
    let cases = [
        ("BERTH_UPLOAD_TTL", "5é", "upload_ttl"),
        ("BERTH_TOKEN_TTL", "é", "token_ttl"),
        ("BERTH_TOKEN_TTL", "999999999999999999d", "token_ttl"),
        (
            "BERTH_REFRESH_TOKEN_TTL",
            "ninety days",
            "refresh_token_ttl",
        ),
        ("BERTH_UPLOAD_TTL", "18446744073709551615s", "upload_ttl"),
        ("BERTH_MAX_BLOB_SIZE", "99999999999TiB", "max_blob_size"),
        ("BERTH_MAX_BLOB_SIZE", "1é", "max_blob_size"),
        ("BERTH_MAX_UPLOAD_SESSIONS", "0", "max_upload_sessions"),
        ("BERTH_GC_GRACE", "-1s", "gc_grace"),
        ("BERTH_GC_INTERVAL", "0s", "gc_interval"),
        ("BERTH_DEFAULT_QUOTA", "10 parsecs", "default_quota"),
        ("BERTH_MAX_UPLOAD_SESSIONS", "٣", "max_upload_sessions"),
    ];
    for (var, value, setting) in cases {
        let mut cmd = berth();
        cmd.args(["config", "show"]).env(var, value);
        let output = run(cmd, QUICK);
        assert_ne!(
            output.status.code(),
            Some(101),
            "{var}={value} panicked: {}",
            text(&output.stderr)
        );
        assert_config_error(&output, &[setting, value, "environment"], var);
    }
    // Bytes that are not UTF-8 are an error too, not silently ignored.
    let mut cmd = berth();
    cmd.args(["config", "show"]).env(
        "BERTH_TOKEN_TTL",
        <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"5\xffm"),
    );
    let output = run(cmd, QUICK);
    assert_config_error(
        &output,
        &["BERTH_TOKEN_TTL", "UTF-8", "environment"],
        "non-UTF-8",
    );
}

#[test]
fn upload_limits_are_configurable() {
    let mut cmd = berth();
    cmd.args(["config", "show"]);
    let settings = config_show(cmd);
    expect_setting(&settings, "max_upload_sessions", "100", "default");
    expect_setting(&settings, "max_blob_size", "none", "default");

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "max_upload_sessions = 7\nmax_blob_size = \"2GiB\"\n",
    );
    let mut cmd = berth();
    cmd.args(["config", "show", "--config"]).arg(&config);
    let settings = config_show(cmd);
    expect_setting(&settings, "max_upload_sessions", "7", "config file");
    expect_setting(
        &settings,
        "max_blob_size",
        "2147483648 bytes",
        "config file",
    );

    let mut cmd = berth();
    cmd.args(["config", "show", "--config"])
        .arg(&config)
        .env("BERTH_MAX_UPLOAD_SESSIONS", "none")
        .env("BERTH_MAX_BLOB_SIZE", "512MiB");
    let settings = config_show(cmd);
    expect_setting(&settings, "max_upload_sessions", "none", "environment");
    expect_setting(&settings, "max_blob_size", "536870912 bytes", "environment");
}

#[test]
fn pull_rate_limits_are_configured_per_tier_and_checked() {
    let mut cmd = berth();
    cmd.args(["config", "show"]);
    let settings = config_show(cmd);
    expect_setting(
        &settings,
        "rate_limit.anonymous",
        "none (not limited)",
        "default",
    );

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[rate_limit]\nanonymous = \"100;w=21600\"\nauthenticated = \"200;w=21600\"\n",
    );
    let mut cmd = berth();
    cmd.args(["config", "show", "--config"])
        .arg(&config)
        .env("BERTH_RATE_LIMIT_ORGANIZATION", "5000;w=86400")
        .env("BERTH_RATE_LIMIT_AUTHENTICATED", "none");
    let settings = config_show(cmd);
    expect_setting(
        &settings,
        "rate_limit.anonymous",
        "100;w=21600",
        "config file",
    );
    expect_setting(
        &settings,
        "rate_limit.authenticated",
        "none (not limited)",
        "environment",
    );
    expect_setting(
        &settings,
        "rate_limit.organization",
        "5000;w=86400",
        "environment",
    );

    for bad in ["100", "0;w=60", "100;w=6h", "100 ; w=60"] {
        let mut cmd = berth();
        cmd.args(["config", "show"])
            .env("BERTH_RATE_LIMIT_ANONYMOUS", bad);
        assert_config_error(
            &run(cmd, QUICK),
            &["rate_limit.anonymous", bad, "environment"],
            bad,
        );
    }
    let typo = write_config(dir.path(), "[rate_limit]\nanonymus = \"1;w=1\"\n");
    let mut cmd = berth();
    cmd.args(["config", "show", "--config"]).arg(&typo);
    assert_config_error(&run(cmd, QUICK), &["anonymus", "unknown field"], "typo");
}

// ---------------------------------------------------------------------------
// Startup errors
// ---------------------------------------------------------------------------

#[test]
fn busy_port_is_reported() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = berth();
    cmd.args(["serve", "--listen", &addr, "--data-dir"])
        .arg(dir.path().join("data"));
    let output = run(cmd, QUICK);
    let line = assert_startup_error(
        &output,
        &format!("error: cannot listen on {addr}: "),
        "busy port",
    );
    assert!(
        line.to_lowercase().contains("in use"),
        "the error should say why: {line}"
    );
    drop(taken);
}

#[test]
fn unusable_data_dir_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let data = file.join("data");
    let mut cmd = berth();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data);
    let output = run(cmd, QUICK);
    let line = assert_startup_error(&output, "error: data directory ", "data dir under a file");
    assert!(
        line.contains(&data.display().to_string()),
        "the error names the directory: {line}"
    );
}

// ---------------------------------------------------------------------------
// database_url
// ---------------------------------------------------------------------------

#[test]
fn a_database_url_that_is_not_postgres_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "database_url = \"mysql://root:hunter2@db/berth\"\n",
    );
    let mut cmd = berth();
    cmd.arg("--config").arg(&config).args(["config", "show"]);
    let output = run(cmd, QUICK);
    assert_config_error(&output, &["database_url", "postgres://"], "mysql URL");
    assert!(!text(&output.stderr).contains("hunter2"));
}

/// A URL to a loopback port nothing listens on.
fn unreachable_database_url() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("postgres://berth:hunter2@127.0.0.1:{port}/berth")
}

#[test]
fn an_unreachable_database_stops_serve_and_commands_with_one_line_without_its_password() {
    let url = unreachable_database_url();
    let dir = tempfile::tempdir().unwrap();
    let mut serve = berth();
    serve
        .env("BERTH_DATABASE_URL", &url)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"));
    let output = run(serve, QUICK);
    let line = assert_startup_error(&output, "error: cannot reach the database at ", "serve");
    assert!(line.contains("postgres://berth:***@127.0.0.1:"), "{line}");
    assert!(!text(&output.stderr).contains("hunter2"), "{line}");

    let mut list = berth();
    list.env("BERTH_DATABASE_URL", &url)
        .args(["--data-dir"])
        .arg(dir.path().join("data"))
        .args(["user", "list"]);
    let output = run(list, QUICK);
    let line = assert_startup_error(&output, "error: cannot reach the database at ", "user list");
    assert!(!line.contains("hunter2"), "{line}");

    let mut backup = berth();
    backup
        .env("BERTH_DATABASE_URL", &url)
        .args(["--data-dir"])
        .arg(dir.path().join("data"))
        .args(["backup", "--to"])
        .arg(dir.path().join("backup"));
    let output = run(backup, QUICK);
    let line = assert_startup_error(&output, "error: berth backup works on the SQLite", "backup");
    assert!(
        line.contains("pg_dump") && !line.contains("hunter2"),
        "{line}"
    );
}

#[test]
fn serve_on_postgres_refuses_naming_what_is_not_ported_yet() {
    let Some(db) = berth_testkit::postgres::database(
        "serve_on_postgres_refuses_naming_what_is_not_ported_yet",
    ) else {
        return;
    };
    if berth_meta::PostgresMeta::MISSING_PORTS.is_empty() {
        // Every port is there: `postgres_serve.rs` runs serve on PostgreSQL instead.
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut serve = berth();
    serve
        .env("BERTH_DATABASE_URL", &db.url)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"));
    let output = run(serve, Duration::from_secs(60));
    let line = assert_startup_error(
        &output,
        "error: the PostgreSQL metadata backend is not complete",
        "serve on postgres",
    );
    assert!(line.contains("unset database_url"), "{line}");
    for missing in berth_meta::PostgresMeta::MISSING_PORTS {
        assert!(line.contains(missing), "{line}");
    }
}

#[test]
fn config_show_names_the_database_without_its_password() {
    let mut cmd = berth();
    cmd.env(
        "BERTH_DATABASE_URL",
        "postgres://berth:hunter2@db.internal:5432/berth",
    )
    .args(["config", "show"]);
    let settings = config_show(cmd);
    expect_setting(
        &settings,
        "database_url",
        "postgres://berth:***@db.internal:5432/berth",
        "environment",
    );
}

// ---------------------------------------------------------------------------
// config show
// ---------------------------------------------------------------------------

/// `config show` as `setting -> (value, source)`.
fn config_show(cmd: Command) -> HashMap<String, (String, String)> {
    let output = run(cmd, QUICK);
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "config show failed ({}): {}",
        output.status,
        text(&output.stderr)
    );
    let mut settings = HashMap::new();
    for line in stdout.lines() {
        let (key, rest) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("config show line without `=`: {line:?}"));
        let rest = rest.trim();
        let (value, source) = match rest.rsplit_once("  (") {
            Some((value, source)) => (
                value.trim().to_string(),
                source.trim_end_matches(')').to_string(),
            ),
            None => (rest.to_string(), String::new()),
        };
        settings.insert(key.trim().to_string(), (value, source));
    }
    settings
}

fn expect_setting(
    settings: &HashMap<String, (String, String)>,
    key: &str,
    value: &str,
    source: &str,
) {
    let got = settings
        .get(key)
        .unwrap_or_else(|| panic!("config show lacks {key}: {settings:?}"));
    assert_eq!(
        (got.0.as_str(), got.1.as_str()),
        (value, source),
        "config show: {key}"
    );
}

#[test]
fn config_show_reports_defaults() {
    let mut cmd = berth();
    cmd.args(["config", "show"]);
    let settings = config_show(cmd);
    expect_setting(&settings, "config file", "(none)", "");
    expect_setting(&settings, "listen", "127.0.0.1:5000", "default");
    expect_setting(&settings, "data_dir", "./berth-data", "default");
    expect_setting(&settings, "database_url", "(SQLite in data_dir)", "default");
    expect_setting(&settings, "upload_ttl", "86400s", "default");
    expect_setting(&settings, "log", "info", "default");
    expect_setting(&settings, "allow_signup", "false", "default");
    expect_setting(&settings, "audit_retention", "31536000s", "default");
}

#[test]
fn config_show_reports_sources_by_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "listen = \"127.0.0.1:6001\"\n\
         data_dir = \"/file/dir\"\n\
         upload_ttl = \"2h\"\n\
         log = \"debug\"\n\
         allow_signup = true\n",
    );
    let config_shown = config.display().to_string();

    // The file alone (named by BERTH_CONFIG).
    let mut cmd = berth();
    cmd.args(["config", "show"]).env("BERTH_CONFIG", &config);
    let settings = config_show(cmd);
    expect_setting(&settings, "config file", &config_shown, "");
    expect_setting(&settings, "listen", "127.0.0.1:6001", "config file");
    expect_setting(&settings, "data_dir", "/file/dir", "config file");
    expect_setting(&settings, "upload_ttl", "7200s", "config file");
    expect_setting(&settings, "log", "debug", "config file");
    expect_setting(&settings, "allow_signup", "true", "config file");

    // The environment beats the file.
    let mut cmd = berth();
    cmd.arg("--config")
        .arg(&config)
        .args(["config", "show"])
        .env("BERTH_LISTEN", "127.0.0.1:6002")
        .env("BERTH_DATA_DIR", "/env/dir")
        .env("BERTH_UPLOAD_TTL", "3h")
        .env("BERTH_ALLOW_SIGNUP", "false")
        .env("BERTH_AUDIT_RETENTION", "30d");
    let settings = config_show(cmd);
    expect_setting(&settings, "listen", "127.0.0.1:6002", "environment");
    expect_setting(&settings, "audit_retention", "2592000s", "environment");
    expect_setting(&settings, "allow_signup", "false", "environment");
    expect_setting(&settings, "data_dir", "/env/dir", "environment");
    expect_setting(&settings, "upload_ttl", "10800s", "environment");
    expect_setting(&settings, "log", "debug", "config file");

    // A flag beats the environment and the file.
    let mut cmd = berth();
    cmd.args(["config", "show", "--config"])
        .arg(&config)
        .args(["--data-dir", "/flag/dir"])
        .env("BERTH_DATA_DIR", "/env/dir")
        .env("BERTH_LOG", "warn");
    let settings = config_show(cmd);
    expect_setting(&settings, "config file", &config_shown, "");
    expect_setting(&settings, "listen", "127.0.0.1:6001", "config file");
    expect_setting(&settings, "data_dir", "/flag/dir", "command line");
    expect_setting(&settings, "upload_ttl", "7200s", "config file");
    expect_setting(&settings, "log", "warn", "environment");
}

#[test]
fn operations_settings_come_from_the_environment_and_bad_ones_stop_startup() {
    let mut cmd = berth();
    cmd.args(["config", "show"]);
    let settings = config_show(cmd);
    expect_setting(
        &settings,
        "metrics_allow",
        "127.0.0.0/8, ::1/128",
        "default",
    );
    expect_setting(&settings, "log_format", "text", "default");
    expect_setting(
        &settings,
        "trusted_proxies",
        "(none: forwarding headers are ignored)",
        "default",
    );
    expect_setting(&settings, "tls_cert", "(none: plain HTTP)", "default");

    let mut cmd = berth();
    cmd.args(["config", "show"])
        .env("BERTH_METRICS_ALLOW", "10.0.0.0/8, 192.0.2.1")
        .env("BERTH_TRUSTED_PROXIES", "10.1.2.3/8,fd00::/8, 192.0.2.7")
        .env("BERTH_LOG_FORMAT", "json");
    let settings = config_show(cmd);
    expect_setting(
        &settings,
        "metrics_allow",
        "10.0.0.0/8, 192.0.2.1/32",
        "environment",
    );
    expect_setting(&settings, "log_format", "json", "environment");
    expect_setting(
        &settings,
        "trusted_proxies",
        "10.0.0.0/8, fd00::/8, 192.0.2.7/32",
        "environment",
    );

    for (var, value) in [
        ("BERTH_METRICS_ALLOW", "10.0.0.0/8,not-a-cidr"),
        ("BERTH_TRUSTED_PROXIES", "10.0.0.0/33"),
        ("BERTH_TRUSTED_PROXIES", "nginx"),
        ("BERTH_LOG_FORMAT", "yaml"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = berth();
        cmd.args(["serve", "--data-dir"])
            .arg(dir.path())
            .env(var, value);
        let output = run(cmd, QUICK);
        let setting = var.trim_start_matches("BERTH_").to_ascii_lowercase();
        assert_config_error(&output, &[&setting, "environment"], var);
    }
}

/// `log_format = "json"`: every line on stderr is one JSON object, and the lines of a
/// request carry its id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_naming_the_request() {
    let server = TestServer::spawn_with(
        SpawnOptions::default()
            .env("BERTH_LOG_FORMAT", "json")
            .env("BERTH_LOG", "info,berth_http=debug"),
    )
    .await;
    let response = server
        .client()
        .get(server.url("/v2/no/such/manifests/latest"))
        .header("x-request-id", "cli-json-probe-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "cli-json-probe-1");
    // The log line is written as the response leaves.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = server.log();
    let mut named = 0;
    // The harness shows only the log's tail, after a `[...]` mark.
    for line in log.lines().filter(|line| !line.starts_with("[...]")) {
        let object: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object ({e}): {line:?}"));
        assert!(
            object["level"].is_string() && object["fields"].is_object(),
            "{line}"
        );
        if object["span"]["id"] == "cli-json-probe-1" {
            named += 1;
            assert_eq!(object["span"]["name"], "request", "{line}");
        }
    }
    assert!(named >= 1, "no line names the request: {log}");
}

// ---------------------------------------------------------------------------
// SIGTERM
// ---------------------------------------------------------------------------

/// SIGTERM lets the request in flight finish (201), then exits with status 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_and_exits_cleanly() {
    let mut server = TestServer::spawn().await;
    let repo = unique_repo("cli-sigterm");
    let blob = random_bytes(4 * 1024 * 1024 + 5);
    let digest = sha256(&blob);
    let location = server.open_session(&repo).await;
    let id = location
        .split('?')
        .next()
        .and_then(|p| p.rsplit('/').next())
        .unwrap()
        .to_string();
    let upload = server.data_dir().unwrap().join("uploads").join(&id);

    let mut in_flight = server
        .raw_request(
            "PUT",
            &with_digest(&location, &digest),
            &[("Content-Type", MT_OCTET_STREAM)],
            blob.len() as u64,
        )
        .await;
    let half = blob.len() / 2;
    in_flight.send(&blob[..half]).await.expect("first half");
    // The server is writing the body once bytes reach the upload file.
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::metadata(&upload).map_or(0, |m| m.len()) == 0 {
        assert!(
            Instant::now() < deadline,
            "the server never started writing the upload"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    server.signal("TERM");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        server.is_running(),
        "berth exited with a request in flight; log:\n{}",
        server.log()
    );
    in_flight.send(&blob[half..]).await.expect("second half");
    let (status, response) = in_flight
        .response(Duration::from_secs(30))
        .await
        .expect("response to the in-flight PUT");
    assert_eq!(
        status,
        201,
        "the in-flight upload must complete; response:\n{response}\nlog:\n{}",
        server.log()
    );
    let exit = server
        .wait_exit(Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("berth did not exit after SIGTERM; log:\n{}", server.log()));
    assert_eq!(
        exit.code(),
        Some(0),
        "exit status after SIGTERM; log:\n{}",
        server.log()
    );

    // What it acknowledged on the way out is there after a restart.
    server.restart().await;
    let resp = server.get_blob(&repo, &digest).await;
    let (_, body) = expect_status(resp, 200, "GET the blob after restart").await;
    assert!(body == blob, "the blob's bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_data_dir_is_refused() {
    let server = TestServer::spawn().await;
    let data = server.data_dir().expect("spawned server").to_owned();
    let mut cmd = berth();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data);
    let output = tokio::task::spawn_blocking(move || run(cmd, QUICK))
        .await
        .unwrap();
    let line = assert_startup_error(&output, "error: data directory ", "data dir in use");
    assert!(line.contains("in use by another berth server"), "{line}");
    // The first server is unaffected.
    let response = server
        .client()
        .get(server.url("/v2/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
