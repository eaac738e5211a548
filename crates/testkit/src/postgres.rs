//! A private PostgreSQL cluster for tests: started once per test process from Debian's
//! `postgresql` package (initdb and pg_ctl from `/usr/lib/postgresql/*/bin`) in a temporary
//! directory on a free loopback port, as the `postgres` user when running as root (which
//! PostgreSQL refuses), and stopped by a watchdog when the process ends. Each test gets its
//! own database.
//!
//! Without PostgreSQL the tests that need it skip with a loud notice; with `CI=true` they
//! fail instead (`scripts/test` installs the package there).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// A database of its own for one test.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    /// `postgres://postgres@127.0.0.1:PORT/NAME`.
    pub url: String,
    /// The cluster's port, for tests that stop and start it.
    pub port: u16,
}

#[derive(Debug)]
struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// Some("postgres") when commands must run as that user (we are root).
    run_as: Option<&'static str>,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static NEXT_DATABASE: AtomicU32 = AtomicU32::new(0);

/// A fresh, empty database on the shared test cluster; `None` (after a loud notice on
/// stderr) when PostgreSQL is not installed, unless `CI=true`, where that panics.
pub fn database(test: &str) -> Option<TestDatabase> {
    let cluster = match CLUSTER.get_or_init(start) {
        Ok(cluster) => cluster,
        Err(why) => {
            if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                panic!("PostgreSQL is required under CI=true: {why}");
            }
            eprintln!(
                "\n*** SKIPPED {test}: no PostgreSQL ({why}); \
                 `apt-get install -y postgresql` to run it ***\n"
            );
            return None;
        }
    };
    let n = NEXT_DATABASE.fetch_add(1, Ordering::Relaxed);
    let name = format!("berth_test_{n}");
    cluster
        .sql(&format!("CREATE DATABASE {name}"))
        .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
    Some(TestDatabase {
        url: format!("postgres://postgres@127.0.0.1:{}/{name}", cluster.port),
        port: cluster.port,
    })
}

/// Stops the shared cluster (fast shutdown: connections are cut), as a database restart or
/// failover does to the nodes; [`restart`] brings it back.
pub fn stop() {
    if let Some(Ok(cluster)) = CLUSTER.get() {
        cluster
            .pg_ctl(&["stop", "-m", "fast", "-w"])
            .expect("stopping the test cluster");
    }
}

/// Starts the shared cluster again after [`stop`], on the same port and data.
pub fn restart() {
    if let Some(Ok(cluster)) = CLUSTER.get() {
        cluster.start().expect("restarting the test cluster");
    }
}

/// The newest `/usr/lib/postgresql/VERSION/bin` with `initdb` in it.
fn bin_dir() -> Result<PathBuf, String> {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .map_err(|e| format!("{} is not readable: {e}", root.display()))?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| format!("no initdb under {}", root.display()))
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn start() -> Result<Cluster, String> {
    let bin = bin_dir()?;
    let run_as = is_root().then_some("postgres");
    let dir = std::env::temp_dir().join(format!("berth-test-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let cluster = Cluster {
        bin,
        dir,
        port: free_port()?,
        run_as,
    };
    if let Some(user) = run_as {
        run(Command::new("chown").arg(user).arg(&cluster.dir))?;
    }
    let data = cluster.data();
    cluster.run(
        "initdb",
        &[
            "-D",
            &data,
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        ],
    )?;
    cluster.start()?;
    cluster.watch_this_process();
    Ok(cluster)
}

impl Cluster {
    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// `program` from the cluster's bin directory, as the cluster's owner.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(path);
                command
            }
            None => Command::new(path),
        }
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        run(self.command(program).args(args))
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let data = self.data();
        let mut all = vec!["-D", data.as_str()];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all)
    }

    fn start(&self) -> Result<(), String> {
        // Durability is not what these tests check: no fsync keeps them fast on a busy
        // machine. The socket directory is the cluster's own, not /run/postgresql.
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log").display().to_string();
        self.pg_ctl(&["-o", &options, "-l", &log, "-w", "-t", "120", "start"])
    }

    fn sql(&self, statement: &str) -> Result<(), String> {
        let port = self.port.to_string();
        self.run(
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                statement,
            ],
        )
    }

    /// A detached watchdog that stops the cluster and removes its directory once this
    /// test process is gone (test binaries end without running destructors of statics).
    fn watch_this_process(&self) {
        let script = format!(
            "while [ -d /proc/{pid} ]; do sleep 1; done; \
             '{pg_ctl}' -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            pg_ctl = self.bin.join("pg_ctl").display(),
            data = self.data(),
            dir = self.dir.display(),
        );
        let mut command = match self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--", "sh", "-c", &script]);
                command
            }
            None => {
                let mut command = Command::new("sh");
                command.args(["-c", &script]);
                command
            }
        };
        let _ = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}
