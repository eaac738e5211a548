//! A benchmark target: a registry URL plus (optionally) the PIDs of its server
//! processes, whose CPU time and peak RSS are read from /proc.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::{Duration, Instant};

use reqwest::{RequestBuilder, Url};

use crate::bearer::BearerAuth;
use crate::Result;

/// How a target whose URL carries credentials is signed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SignIn {
    /// A bearer token per repository from the registry's token service.
    Bearer,
    /// The credentials as Basic on every request.
    Basic,
}

#[derive(Clone, Debug)]
pub struct TargetSpec {
    pub name: String,
    pub url: Url,
    /// The server's processes: one, or several nodes (and their load balancer) whose costs
    /// add up.
    pub pids: Vec<u32>,
    /// Processes whose CPU time counts but not their memory (a database server: its
    /// shared buffers are not the registry's footprint).
    pub cpu_only_pids: Vec<u32>,
}

impl FromStr for TargetSpec {
    type Err = String;

    /// `NAME=URL@PID`, `NAME=URL@PID+PID+cpu:PID...` or `NAME=URL`; the URL may carry
    /// `user:password@` for Basic credentials.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (name, rest) = s
            .split_once('=')
            .ok_or_else(|| format!("target {s:?}: expected NAME=URL@PID"))?;
        let pid_of = |p: &str| p.strip_prefix("cpu:").unwrap_or(p).parse::<u32>().ok();
        let is_pids = |p: &str| !p.is_empty() && p.split('+').all(|pid| pid_of(pid).is_some());
        let (url, pids, cpu_only_pids) = match rest.rsplit_once('@') {
            Some((u, p)) if is_pids(p) => {
                let (cpu_only, whole): (Vec<&str>, Vec<&str>) =
                    p.split('+').partition(|pid| pid.starts_with("cpu:"));
                let numbers = |list: Vec<&str>| list.into_iter().filter_map(pid_of).collect();
                (u, numbers(whole), numbers(cpu_only))
            }
            _ => (rest, Vec::new(), Vec::new()),
        };
        let mut url = Url::parse(url).map_err(|e| format!("target {s:?}: bad URL: {e}"))?;
        if !url.path().ends_with('/') {
            url.set_path(&format!("{}/", url.path()));
        }
        match url.host_str() {
            Some("127.0.0.1" | "localhost" | "[::1]") => {}
            other => {
                return Err(format!(
                    "target {s:?}: only loopback hosts allowed, got {other:?}"
                ))
            }
        }
        if name.is_empty() {
            return Err(format!("target {s:?}: empty name"));
        }
        Ok(TargetSpec {
            name: name.to_string(),
            url,
            pids,
            cpu_only_pids,
        })
    }
}

/// Clock ticks per second for /proc/PID/stat (`getconf CLK_TCK`, nearly always 100).
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// Non-idle CPU seconds of the whole machine, all cores (from /proc/stat).
fn machine_busy_seconds(ticks: f64) -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<f64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is in user).
    let total: f64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4)?;
    Some((total - idle) / ticks)
}

/// CPU ticks (user + system, its own and its reaped children's) of each process, and
/// each process's children, read from /proc in one pass.
fn process_table() -> (HashMap<u32, f64>, HashMap<u32, Vec<u32>>) {
    let mut ticks = HashMap::new();
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return (ticks, children);
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, after)) = stat.rsplit_once(')') else {
            continue;
        };
        // After ')': state, ppid, ... utime, stime, cutime, cstime (fields 4, 14-17).
        let f: Vec<&str> = after.split_whitespace().collect();
        let number = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
        let (Some(ppid), Some(u), Some(s), Some(cu), Some(cs)) =
            (number(1), number(11), number(12), number(13), number(14))
        else {
            continue;
        };
        ticks.insert(pid, u + s + cu + cs);
        children.entry(ppid as u32).or_default().push(pid);
    }
    (ticks, children)
}

/// CPU seconds of `roots` and all their descendants, alive or reaped: a database server
/// forks a process per connection, and those do its work.
fn tree_cpu_seconds(roots: &[u32], ticks_per_second: f64) -> Option<f64> {
    let (ticks, children) = process_table();
    let mut total = 0.0;
    let mut pending: Vec<u32> = roots.to_vec();
    while let Some(pid) = pending.pop() {
        // A root that is gone makes the figure meaningless; a descendant may just have ended
        // (its time is then in its parent's reaped-children time, or lost if unreaped).
        match ticks.get(&pid) {
            Some(t) => total += t,
            None if roots.contains(&pid) => return None,
            None => {}
        }
        pending.extend(children.get(&pid).into_iter().flatten());
    }
    Some(total / ticks_per_second)
}

#[derive(Debug)]
pub struct Proc {
    pid: u32,
    ticks: f64,
}

impl Proc {
    pub fn new(pid: u32) -> Self {
        Proc {
            pid,
            ticks: clock_ticks(),
        }
    }

    /// The process exists and is not a zombie (exited, not yet reaped).
    pub fn alive(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
            .is_some_and(|zombie| !zombie)
    }

    /// User + system CPU seconds consumed so far by the whole process.
    pub fn cpu_seconds(&self) -> Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .map_err(|e| format!("reading /proc/{}/stat: {e}", self.pid))?;
        // The command name (field 2) may contain spaces: split after its ')'.
        let after = stat
            .rsplit_once(')')
            .map(|(_, a)| a)
            .ok_or("malformed /proc/PID/stat")?;
        // Fields after ')' start at field 3 (state); utime/stime are 14/15.
        let f: Vec<&str> = after.split_whitespace().collect();
        let utime: f64 = f.get(11).ok_or("short stat")?.parse()?;
        let stime: f64 = f.get(12).ok_or("short stat")?.parse()?;
        Ok((utime + stime) / self.ticks)
    }

    /// Peak resident set size (VmHWM) in MiB.
    pub fn peak_rss_mib(&self) -> Result<f64> {
        self.status_mib("VmHWM:")
    }

    /// Resident set size now (VmRSS) in MiB.
    pub fn rss_mib(&self) -> Result<f64> {
        self.status_mib("VmRSS:")
    }

    /// Anonymous resident memory now (RssAnon: heap, stacks; not mapped file pages) in MiB.
    pub fn rss_anon_mib(&self) -> Result<f64> {
        self.status_mib("RssAnon:")
    }

    /// A `kB` field of /proc/PID/status in MiB.
    fn status_mib(&self, field: &str) -> Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .map_err(|e| format!("reading /proc/{}/status: {e}", self.pid))?;
        let line = status
            .lines()
            .find(|l| l.starts_with(field))
            .ok_or_else(|| format!("no {field} in /proc/PID/status"))?;
        let kib: f64 = line
            .trim_start_matches(field)
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()?;
        Ok(kib / 1024.0)
    }
}

#[derive(Debug)]
pub struct Target {
    pub name: String,
    pub base: Url,
    /// The server's processes (none when no PID was given).
    pub procs: Vec<Proc>,
    /// Processes whose CPU counts as the server's, but not their memory.
    cpu_only: Vec<Proc>,
    pub client: reqwest::Client,
    /// Bearer tokens per repository, when the target has credentials.
    bearer: Option<BearerAuth>,
}

/// What one measured run cost: wall time and server CPU seconds (if known).
#[derive(Clone, Copy, Debug)]
pub struct Cost {
    pub wall: Duration,
    /// Server CPU seconds (user + system), if its PID is known.
    pub cpu: Option<f64>,
    /// This benchmark client's own CPU seconds, to show it is not the bottleneck.
    pub client_cpu: Option<f64>,
    /// CPU seconds of everything else on the machine (a sign of noise).
    pub other_cpu: Option<f64>,
}

impl Cost {
    /// Server CPU seconds per GB (1e9 bytes) moved.
    pub fn cpu_per_gb(&self, bytes: u64) -> Option<f64> {
        self.cpu.map(|c| c / (bytes as f64 / 1e9))
    }
}

impl Target {
    pub fn new(spec: TargetSpec, pool: usize, sign_in: SignIn) -> Result<Self> {
        let mut base = spec.url;
        let mut headers = reqwest::header::HeaderMap::new();
        let mut bearer = None;
        if !base.username().is_empty() {
            // Credentials in the URL sign the client in: registry requests carry a bearer
            // token per repository, as docker's do (other APIs get Basic credentials), or
            // every request carries the Basic credentials.
            use base64::Engine as _;
            let credentials = format!("{}:{}", base.username(), base.password().unwrap_or(""));
            let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
            let basic: reqwest::header::HeaderValue = format!("Basic {encoded}").parse()?;
            headers.insert(reqwest::header::AUTHORIZATION, basic.clone());
            if sign_in == SignIn::Bearer {
                let plain = reqwest::Client::builder().no_proxy().http1_only().build()?;
                bearer = Some(BearerAuth::new(basic, plain));
            }
            let _ = base.set_username("");
            let _ = base.set_password(None);
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .no_proxy()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(pool)
            .pool_idle_timeout(Duration::from_secs(300))
            .connect_timeout(Duration::from_secs(10))
            .http1_only()
            .build()?;
        Ok(Target {
            name: spec.name,
            base,
            procs: spec.pids.into_iter().map(Proc::new).collect(),
            cpu_only: spec.cpu_only_pids.into_iter().map(Proc::new).collect(),
            client,
            bearer,
        })
    }

    /// A request to `url`, signed in when the target has credentials.
    pub async fn request(&self, method: reqwest::Method, url: Url) -> Result<RequestBuilder> {
        let request = self.client.request(method, url.clone());
        match &self.bearer {
            Some(bearer) => bearer.sign(&self.base, &url, request).await,
            None => Ok(request),
        }
    }

    /// Absolute URL for a path relative to the registry root (e.g. `v2/`).
    pub fn url(&self, path: &str) -> Url {
        self.base.join(path).expect("valid URL path")
    }

    /// The server's CPU seconds so far (user + system), if its PIDs are known: all of its
    /// processes and their descendants (a database server's backends).
    pub fn cpu(&self) -> Option<f64> {
        let first = self.procs.first()?;
        let pids: Vec<u32> = self
            .procs
            .iter()
            .chain(&self.cpu_only)
            .map(|p| p.pid)
            .collect();
        tree_cpu_seconds(&pids, first.ticks)
    }

    /// The sum of the server processes' peaks (descendants not included: a database
    /// server's backends share its memory).
    pub fn peak_rss_mib(&self) -> Option<f64> {
        self.sum_over_procs(Proc::peak_rss_mib)
    }

    /// (VmRSS, RssAnon) in MiB, summed over the server processes.
    pub fn rss_mib(&self) -> Option<(f64, f64)> {
        Some((
            self.sum_over_procs(Proc::rss_mib)?,
            self.sum_over_procs(Proc::rss_anon_mib)?,
        ))
    }

    fn sum_over_procs(&self, read: impl Fn(&Proc) -> Result<f64>) -> Option<f64> {
        if self.procs.is_empty() {
            return None;
        }
        self.procs.iter().map(|p| read(p).ok()).sum()
    }

    /// Run `f`, measuring wall-clock time and the CPU time of the server,
    /// of this client and of everything else on the machine.
    pub async fn measure<T>(
        &self,
        f: impl std::future::Future<Output = Result<T>>,
    ) -> Result<(T, Cost)> {
        let me = Proc::new(std::process::id());
        let sample = || {
            (
                self.cpu(),
                me.cpu_seconds().ok(),
                machine_busy_seconds(me.ticks),
            )
        };
        let (cpu0, client0, busy0) = sample();
        let start = Instant::now();
        let out = f.await?;
        let wall = start.elapsed();
        let (cpu1, client1, busy1) = sample();
        let delta = |a: Option<f64>, b: Option<f64>| Some(b? - a?);
        let (cpu, client_cpu) = (delta(cpu0, cpu1), delta(client0, client1));
        let other_cpu = (|| Some((delta(busy0, busy1)? - cpu? - client_cpu?).max(0.0)))();
        let cost = Cost {
            wall,
            cpu,
            client_cpu,
            other_cpu,
        };
        Ok((out, cost))
    }

    /// Wait until `GET /v2/` answers 200 (the server process must stay alive).
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let url = self.url("v2/");
        loop {
            for p in self.procs.iter().chain(&self.cpu_only) {
                if !p.alive() {
                    return Err(
                        format!("{}: server process {} is not running", self.name, p.pid).into(),
                    );
                }
            }
            let last = match self
                .client
                .get(url.clone())
                .timeout(Duration::from_secs(2))
                .send()
                .await
            {
                Ok(r) if r.status() == 200 => return Ok(()),
                Ok(r) => format!("status {}", r.status()),
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                return Err(format!(
                    "{}: GET {url} not 200 after {timeout:?} ({last})",
                    self.name
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_target_specs() {
        let t: TargetSpec = "berth=http://127.0.0.1:5000@1234".parse().unwrap();
        assert_eq!(t.name, "berth");
        assert_eq!(t.url.as_str(), "http://127.0.0.1:5000/");
        assert_eq!(t.pids, [1234]);
        let t: TargetSpec = "d=http://localhost:5001/".parse().unwrap();
        assert!(t.pids.is_empty());
        assert!("x=http://10.0.0.1:5000@1".parse::<TargetSpec>().is_err());
        let t: TargetSpec = "b=http://admin:secret@127.0.0.1:5000@77".parse().unwrap();
        assert_eq!((t.url.username(), &t.pids[..]), ("admin", &[77][..]));
        let t: TargetSpec = "b=http://admin:secret@127.0.0.1:5000".parse().unwrap();
        assert_eq!((t.url.password(), t.pids.len()), (Some("secret"), 0));
        let t: TargetSpec = "n=http://a:b@127.0.0.1:5000@10+11+cpu:12".parse().unwrap();
        assert_eq!((t.url.username(), &t.pids[..]), ("a", &[10, 11][..]));
        assert_eq!(t.cpu_only_pids, [12]);
        assert!("x=http://127.0.0.1:5000@1+cpu:"
            .parse::<TargetSpec>()
            .is_err());
        let target = Target::new(t.clone(), 1, SignIn::Bearer).unwrap();
        assert_eq!(target.base.as_str(), "http://127.0.0.1:5000/");
        assert!(target.bearer.is_some());
        let target = Target::new(t, 1, SignIn::Basic).unwrap();
        assert_eq!(target.base.as_str(), "http://127.0.0.1:5000/");
        assert!(target.bearer.is_none(), "Basic on every request, no tokens");
        assert!("nourl".parse::<TargetSpec>().is_err());
    }

    #[test]
    fn reads_own_proc_stats() {
        let p = Proc::new(std::process::id());
        assert!(p.alive());
        assert!(p.cpu_seconds().unwrap() >= 0.0);
        assert!(p.peak_rss_mib().unwrap() > 0.0);
        assert!(p.rss_mib().unwrap() > 0.0);
        assert!(machine_busy_seconds(p.ticks).unwrap() > 0.0);
    }

    /// A target's CPU counts the work of its processes' children, as a database server's
    /// backends do it.
    #[test]
    fn cpu_of_a_target_includes_its_children() {
        let me = std::process::id();
        let spec = TargetSpec {
            name: "me".into(),
            url: "http://127.0.0.1:1/".parse().unwrap(),
            pids: vec![me],
            cpu_only_pids: Vec::new(),
        };
        let target = Target::new(spec, 1, SignIn::Basic).unwrap();
        let before = target.cpu().unwrap();
        let mut child = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"])
            .spawn()
            .unwrap();
        let pid = child.id();
        // While it runs, it is a live child; once reaped, its time is in our children's.
        let mut seen_alive = None;
        while child.try_wait().unwrap().is_none() {
            let (ticks, children) = process_table();
            if ticks.contains_key(&pid) && children.get(&me).is_some_and(|c| c.contains(&pid)) {
                seen_alive = target.cpu();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let after = target.cpu().unwrap();
        assert!(
            after - before >= 0.05,
            "a busy child's CPU counts: {before} -> {after}"
        );
        if let Some(alive) = seen_alive {
            assert!(alive >= before && after >= alive);
        }
        let gone = TargetSpec {
            name: "gone".into(),
            url: "http://127.0.0.1:1/".parse().unwrap(),
            pids: vec![me],
            cpu_only_pids: vec![pid],
        };
        let gone = Target::new(gone, 1, SignIn::Basic).unwrap();
        assert_eq!(
            gone.cpu(),
            None,
            "a server process that is gone spoils the figure"
        );
        assert!(
            gone.peak_rss_mib().is_some(),
            "memory counts only the whole processes"
        );
    }
}
