//! What the automated-build tests share: the real programs they drive (git, buildah, the
//! `berth` CLI) and the JSON API.

use super::TestServer;
use reqwest::Method;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

/// Whether `program arg` runs and succeeds.
pub fn have(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether the real programs are here; under CI they must be. `install` names the Debian
/// packages for the skip notice.
pub fn tools_present(programs: &[&str], install: &str) -> bool {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| !have(p, "--version") && !have(p, "--help"))
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true and {missing:?} are missing: scripts/test installs them");
    }
    eprintln!(
        "\n!!! SKIPPED: these build tests need {missing:?} (apt-get install -y {install}) !!!\n"
    );
    false
}

/// Runs `program args` in `dir` with a fixed git identity and `envs`; its trimmed output.
pub fn run_with(dir: &Path, program: &str, args: &[&str], envs: &[(&str, &str)]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .envs(envs.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs `program args` in `dir` with a fixed git identity; its trimmed output.
pub fn run(dir: &Path, program: &str, args: &[&str]) -> String {
    run_with(dir, program, args, &[])
}

/// The `berth` CLI on the data directory `dir`.
pub fn berth(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("BERTH_CONFIG")
        .env_remove("BERTH_DATA_DIR")
        .output()
        .expect("run berth")
}

/// The `berth` CLI, which must succeed; its output.
pub fn berth_ok(dir: &Path, args: &[&str]) -> String {
    let out = berth(dir, args);
    assert!(
        out.status.success(),
        "berth {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A JSON API call as the server's signed-in client: the status and the body (JSON when it
/// parses, else the text).
pub async fn api(server: &TestServer, method: Method, path: &str) -> (u16, Value) {
    let response = server.request(method, path).send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}
