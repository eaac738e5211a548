//! A private single-node Garage (a real S3-compatible store) on free loopback ports, with a
//! bucket and a key, for tests that want S3. Without `garage` installed the tests that ask
//! for one skip with a loud notice, except under `CI=true`, where `scripts/test` installs it
//! and its absence is a failure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// A running Garage; stopped (and its data removed) when dropped.
pub struct Garage {
    child: Child,
    dir: TempDir,
    config: PathBuf,
    binary: PathBuf,
    /// `http://localhost:PORT`: a host name other than the registry's `127.0.0.1`, so
    /// clients following a redirect to it drop the registry's `Authorization` header, as
    /// they would for a real S3 endpoint on another host.
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for Garage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Garage")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

/// Where `garage` is: on PATH, or where `cargo install` leaves it.
fn find_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("garage"))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))?;
        Some(home.join("bin").join("garage")).filter(|p| p.is_file())
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Garage {
    /// Starts one, or `None` after a loud notice when `garage` is not installed (a panic
    /// under `CI=true`). `test` names the caller in the notice.
    pub fn start_or_skip(test: &str) -> Option<Garage> {
        let Some(binary) = find_binary() else {
            let notice = format!(
                "SKIPPED {test}: garage is not installed (`cargo install garage --locked`, or run scripts/test)"
            );
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{notice}; CI=true requires it");
            }
            eprintln!("\n!!!!! {notice}\n");
            return None;
        };
        Some(Garage::start(binary))
    }

    fn start(binary: PathBuf) -> Garage {
        let dir = tempfile::tempdir().expect("temp dir");
        let (rpc, s3, admin) = (free_port(), free_port(), free_port());
        let secret = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let config = dir.path().join("garage.toml");
        std::fs::write(
            &config,
            format!(
                r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"
[admin]
api_bind_addr = "127.0.0.1:{admin}"
admin_token = "{secret}"
"#,
                meta = dir.path().join("meta").display(),
                data = dir.path().join("data").display(),
            ),
        )
        .expect("garage config");
        let log = std::fs::File::create(dir.path().join("garage.log")).expect("garage log");
        let child = Command::new(&binary)
            .arg("-c")
            .arg(&config)
            .arg("server")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start garage");
        let mut garage = Garage {
            child,
            dir,
            config,
            binary,
            endpoint: format!("http://localhost:{s3}"),
            region: "garage".into(),
            bucket: "registry".into(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
        };
        garage.set_up();
        garage
    }

    /// Runs `garage -c CONFIG args...`; its standard output, or `Err` with its errors.
    pub fn cli(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.binary)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "garage {}: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            ))
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("garage.log")).unwrap_or_default()
    }

    /// The single-node layout, the bucket and a key allowed on it.
    fn set_up(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let node = loop {
            match self.cli(&["node", "id", "-q"]) {
                Ok(id) => break id,
                Err(err) if Instant::now() > deadline => {
                    panic!("garage did not start: {err}\n{}", self.log())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        let node = node.trim().split('@').next().unwrap_or_default().to_owned();
        let must = |garage: &Garage, args: &[&str]| {
            garage
                .cli(args)
                .unwrap_or_else(|e| panic!("{e}\n{}", garage.log()))
        };
        // The node answers `node id` before its RPC port listens: retry until it does.
        loop {
            match self.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]) {
                Ok(_) => break,
                Err(err) if Instant::now() > deadline => panic!("{err}\n{}", self.log()),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
        must(self, &["layout", "apply", "--version", "1"]);
        // The layout takes effect asynchronously: retry the first write until it does.
        loop {
            match self.cli(&["bucket", "create", &self.bucket]) {
                Ok(_) => break,
                Err(err) if Instant::now() > deadline => panic!("{err}\n{}", self.log()),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
        let (id, secret) = self.create_key("berth");
        must(
            self,
            &[
                "bucket",
                "allow",
                "--read",
                "--write",
                "--owner",
                &self.bucket,
                "--key",
                "berth",
            ],
        );
        self.access_key_id = id;
        self.secret_access_key = secret;
    }

    /// Creates a key named `name`; returns its id and secret.
    fn create_key(&self, name: &str) -> (String, String) {
        self.cli(&["key", "create", name])
            .unwrap_or_else(|e| panic!("{e}\n{}", self.log()));
        let info = self
            .cli(&["key", "info", name, "--show-secret"])
            .unwrap_or_else(|e| panic!("{e}\n{}", self.log()));
        let field = |label: &str| {
            info.lines()
                .find_map(|line| {
                    let (key, value) = line.split_once(':')?;
                    (key.trim().eq_ignore_ascii_case(label)).then(|| value.trim().to_owned())
                })
                .unwrap_or_else(|| panic!("no {label:?} in `garage key info`:\n{info}"))
        };
        (field("Key ID"), field("Secret key"))
    }

    /// Creates another bucket the test's key may use.
    pub fn create_bucket(&self, name: &str) {
        self.cli(&["bucket", "create", name])
            .and_then(|_| {
                self.cli(&[
                    "bucket", "allow", "--read", "--write", "--owner", name, "--key", "berth",
                ])
            })
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// `BERTH_STORAGE_*` variables that point a `berth serve` at this Garage.
    pub fn berth_env(&self, redirect: bool) -> Vec<(&'static str, String)> {
        vec![
            ("BERTH_STORAGE_KIND", "s3".into()),
            ("BERTH_STORAGE_ENDPOINT", self.endpoint.clone()),
            ("BERTH_STORAGE_REGION", self.region.clone()),
            ("BERTH_STORAGE_BUCKET", self.bucket.clone()),
            ("BERTH_STORAGE_ACCESS_KEY_ID", self.access_key_id.clone()),
            (
                "BERTH_STORAGE_SECRET_ACCESS_KEY",
                self.secret_access_key.clone(),
            ),
            ("BERTH_STORAGE_REDIRECT", redirect.to_string()),
        ]
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
