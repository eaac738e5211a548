//! Configuration: defaults, then the TOML file, then `BERTH_*` variables, then flags,
//! validated once at startup, with the source of every value remembered.

use crate::cli::GlobalArgs;
use ipnet::IpNet;
use serde::Deserialize;
use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Default,
    File,
    Env,
    Flag,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Default => "default",
            Source::File => "config file",
            Source::Env => "environment",
            Source::Flag => "command line",
        })
    }
}

#[derive(Debug, Clone)]
pub struct Setting<T> {
    pub value: T,
    pub source: Source,
}

impl<T> Setting<T> {
    fn default(value: T) -> Self {
        Setting {
            value,
            source: Source::Default,
        }
    }

    fn set(&mut self, value: Option<T>, source: Source) {
        if let Some(value) = value {
            *self = Setting { value, source };
        }
    }
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub config_file: Option<PathBuf>,
    pub listen: Setting<SocketAddr>,
    pub data_dir: Setting<PathBuf>,
    pub upload_ttl: Setting<Duration>,
    pub log: Setting<String>,
    /// The URL clients reach Berth at, for the token service's realm (None: the request's Host).
    pub public_url: Setting<Option<String>>,
    /// Lifetime of the registry's bearer tokens.
    pub token_ttl: Setting<Duration>,
    /// Whether visitors may create their own accounts in the web UI.
    pub allow_signup: Setting<bool>,
    /// Addresses that may read `/metrics` without credentials (others need a site admin).
    pub metrics_allow: Setting<Vec<IpNet>>,
    /// How log lines are written.
    pub log_format: Setting<LogFormat>,
}

/// `text` for people reading a terminal, `json` (one object per line) for log collectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// The TOML file's shape; unknown keys are errors so typos do not pass silently.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    upload_ttl: Option<String>,
    log: Option<String>,
    public_url: Option<String>,
    token_ttl: Option<String>,
    allow_signup: Option<bool>,
    metrics_allow: Option<Vec<String>>,
    log_format: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is invalid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid {setting} {value:?} (from {origin}): {reason}")]
    Invalid {
        setting: &'static str,
        value: String,
        origin: Source,
        reason: String,
    },
}

fn parse_listen(raw: &str, source: Source) -> Result<SocketAddr, ConfigError> {
    raw.parse().map_err(|_| ConfigError::Invalid {
        setting: "listen address",
        value: raw.to_owned(),
        origin: source,
        reason: "expected IP:PORT, e.g. 127.0.0.1:5000 or [::]:5000".into(),
    })
}

/// Durations like `90s`, `30m`, `24h`, `7d`.
fn parse_duration(
    setting: &'static str,
    raw: &str,
    source: Source,
) -> Result<Duration, ConfigError> {
    let invalid = || ConfigError::Invalid {
        setting,
        value: raw.to_owned(),
        origin: source,
        reason: "expected a number with a unit s, m, h or d, e.g. 24h".into(),
    };
    let raw_trim = raw.trim();
    let (number, unit) = raw_trim.split_at(raw_trim.len().saturating_sub(1));
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let secs = match unit {
        "s" => number,
        "m" => number * 60,
        "h" => number * 3600,
        "d" => number * 86400,
        _ => return Err(invalid()),
    };
    if secs == 0 {
        return Err(invalid());
    }
    Ok(Duration::from_secs(secs))
}

/// An `http://` or `https://` URL without a trailing slash.
fn parse_url(raw: &str, source: Source) -> Result<Option<String>, ConfigError> {
    let trimmed = raw.trim().trim_end_matches('/');
    let valid = (trimmed.starts_with("http://") || trimmed.starts_with("https://"))
        && !trimmed.contains(char::is_whitespace)
        && !trimmed.contains('"');
    if !valid {
        return Err(ConfigError::Invalid {
            setting: "public_url",
            value: raw.to_owned(),
            origin: source,
            reason: "expected an http:// or https:// URL, e.g. https://registry.example.com".into(),
        });
    }
    Ok(Some(trimmed.to_owned()))
}

/// The loopback addresses: who may read `/metrics` unless `metrics_allow` says otherwise.
pub fn loopback_only() -> Vec<IpNet> {
    let v4 = IpNet::new(IpAddr::from([127, 0, 0, 0]), 8);
    let v6 = IpNet::new(IpAddr::from(std::net::Ipv6Addr::LOCALHOST), 128);
    v4.into_iter().chain(v6).collect()
}

/// CIDRs like `10.0.0.0/8` or `fd00::/8`; a bare address stands for itself alone.
fn parse_cidrs<S: AsRef<str>>(
    setting: &'static str,
    raw: &[S],
    source: Source,
) -> Result<Vec<IpNet>, ConfigError> {
    raw.iter()
        .map(|item| {
            let item = item.as_ref().trim();
            item.parse::<IpNet>()
                .map(|net| net.trunc())
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| ConfigError::Invalid {
                    setting,
                    value: item.to_owned(),
                    origin: source,
                    reason: "expected a CIDR such as 10.0.0.0/8 or fd00::/8, or one address".into(),
                })
        })
        .collect()
}

/// A comma-separated list, for environment variables; the file has TOML arrays.
fn split_list(raw: &str) -> Vec<&str> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

fn parse_log_format(raw: &str, source: Source) -> Result<LogFormat, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(ConfigError::Invalid {
            setting: "log_format",
            value: raw.to_owned(),
            origin: source,
            reason: "expected text or json".into(),
        }),
    }
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`), for environment variables; the
/// file has TOML's own booleans.
fn parse_bool(setting: &'static str, raw: &str, source: Source) -> Result<bool, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::Invalid {
            setting,
            value: raw.to_owned(),
            origin: source,
            reason: "expected true or false".into(),
        }),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Config {
    pub fn load(global: &GlobalArgs, listen_flag: Option<&str>) -> Result<Config, ConfigError> {
        let mut config = Config {
            config_file: None,
            listen: Setting::default(SocketAddr::from(([127, 0, 0, 1], 5000))),
            data_dir: Setting::default(PathBuf::from("./berth-data")),
            upload_ttl: Setting::default(Duration::from_secs(24 * 3600)),
            log: Setting::default("info".to_owned()),
            public_url: Setting::default(None),
            token_ttl: Setting::default(Duration::from_secs(300)),
            allow_signup: Setting::default(false),
            metrics_allow: Setting::default(loopback_only()),
            log_format: Setting::default(LogFormat::Text),
        };
        let file_path = global
            .config
            .clone()
            .or_else(|| env("BERTH_CONFIG").map(PathBuf::from));
        if let Some(path) = &file_path {
            let file = read_file(path)?;
            config.listen.set(
                file.listen
                    .map(|l| parse_listen(&l, Source::File))
                    .transpose()?,
                Source::File,
            );
            config.data_dir.set(file.data_dir, Source::File);
            config.upload_ttl.set(
                file.upload_ttl
                    .map(|d| parse_duration("upload_ttl", &d, Source::File))
                    .transpose()?,
                Source::File,
            );
            config.log.set(file.log, Source::File);
            config.public_url.set(
                file.public_url
                    .map(|u| parse_url(&u, Source::File))
                    .transpose()?,
                Source::File,
            );
            config.token_ttl.set(
                file.token_ttl
                    .map(|d| parse_duration("token_ttl", &d, Source::File))
                    .transpose()?,
                Source::File,
            );
            config.allow_signup.set(file.allow_signup, Source::File);
            config.metrics_allow.set(
                file.metrics_allow
                    .map(|list| parse_cidrs("metrics_allow", &list, Source::File))
                    .transpose()?,
                Source::File,
            );
            config.log_format.set(
                file.log_format
                    .map(|f| parse_log_format(&f, Source::File))
                    .transpose()?,
                Source::File,
            );
        }
        config.config_file = file_path;
        config.listen.set(
            env("BERTH_LISTEN")
                .map(|l| parse_listen(&l, Source::Env))
                .transpose()?,
            Source::Env,
        );
        config
            .data_dir
            .set(env("BERTH_DATA_DIR").map(PathBuf::from), Source::Env);
        config.upload_ttl.set(
            env("BERTH_UPLOAD_TTL")
                .map(|d| parse_duration("upload_ttl", &d, Source::Env))
                .transpose()?,
            Source::Env,
        );
        config.log.set(env("BERTH_LOG"), Source::Env);
        config.public_url.set(
            env("BERTH_PUBLIC_URL")
                .map(|u| parse_url(&u, Source::Env))
                .transpose()?,
            Source::Env,
        );
        config.token_ttl.set(
            env("BERTH_TOKEN_TTL")
                .map(|d| parse_duration("token_ttl", &d, Source::Env))
                .transpose()?,
            Source::Env,
        );
        config.allow_signup.set(
            env("BERTH_ALLOW_SIGNUP")
                .map(|b| parse_bool("allow_signup", &b, Source::Env))
                .transpose()?,
            Source::Env,
        );
        config.metrics_allow.set(
            env("BERTH_METRICS_ALLOW")
                .map(|list| parse_cidrs("metrics_allow", &split_list(&list), Source::Env))
                .transpose()?,
            Source::Env,
        );
        config.log_format.set(
            env("BERTH_LOG_FORMAT")
                .map(|f| parse_log_format(&f, Source::Env))
                .transpose()?,
            Source::Env,
        );
        config.listen.set(
            listen_flag
                .map(|l| parse_listen(l, Source::Flag))
                .transpose()?,
            Source::Flag,
        );
        config.data_dir.set(global.data_dir.clone(), Source::Flag);
        Ok(config)
    }

    /// Every setting with its value and source, one per line.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let file = self
            .config_file
            .as_ref()
            .map_or("(none)".to_owned(), |p| p.display().to_string());
        let _ = writeln!(out, "config file  = {file}");
        let _ = writeln!(
            out,
            "listen       = {}  ({})",
            self.listen.value, self.listen.source
        );
        let _ = writeln!(
            out,
            "data_dir     = {}  ({})",
            self.data_dir.value.display(),
            self.data_dir.source
        );
        let _ = writeln!(
            out,
            "upload_ttl   = {}s  ({})",
            self.upload_ttl.value.as_secs(),
            self.upload_ttl.source
        );
        let _ = writeln!(
            out,
            "log          = {}  ({})",
            self.log.value, self.log.source
        );
        let _ = writeln!(
            out,
            "public_url   = {}  ({})",
            self.public_url
                .value
                .as_deref()
                .unwrap_or("(from each request's Host)"),
            self.public_url.source
        );
        let _ = writeln!(
            out,
            "token_ttl    = {}s  ({})",
            self.token_ttl.value.as_secs(),
            self.token_ttl.source
        );
        let _ = writeln!(
            out,
            "allow_signup = {}  ({})",
            self.allow_signup.value, self.allow_signup.source
        );
        let allowed: Vec<String> = self
            .metrics_allow
            .value
            .iter()
            .map(ToString::to_string)
            .collect();
        let _ = writeln!(
            out,
            "metrics_allow = {}  ({})",
            if allowed.is_empty() {
                "(nobody without credentials)".to_owned()
            } else {
                allowed.join(", ")
            },
            self.metrics_allow.source
        );
        let _ = writeln!(
            out,
            "log_format   = {}  ({})",
            self.log_format.value, self.log_format.source
        );
        out
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.message().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("t", "90s", Source::Flag).unwrap().as_secs(),
            90
        );
        assert_eq!(
            parse_duration("t", "2h", Source::Flag).unwrap().as_secs(),
            7200
        );
        assert_eq!(
            parse_duration("t", "1d", Source::Flag).unwrap().as_secs(),
            86400
        );
        for bad in ["", "h", "10", "0s", "-1h", "1w"] {
            assert!(parse_duration("t", bad, Source::Flag).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn booleans() {
        for yes in ["true", "TRUE", "1", "yes", " on "] {
            assert!(parse_bool("b", yes, Source::Env).unwrap(), "{yes:?}");
        }
        for no in ["false", "False", "0", "no", "off"] {
            assert!(!parse_bool("b", no, Source::Env).unwrap(), "{no:?}");
        }
        let err = parse_bool("allow_signup", "maybe", Source::Env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("allow_signup") && err.contains("maybe") && err.contains("environment"),
            "{err}"
        );
    }

    #[test]
    fn file_values_apply_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:6000\"\ndata_dir = \"/srv/berth\"\n",
        )
        .unwrap();
        let global = GlobalArgs {
            config: Some(path.clone()),
            data_dir: Some(PathBuf::from("/flag/dir")),
        };
        let config = Config::load(&global, None).unwrap();
        assert_eq!(config.listen.value.port(), 6000);
        assert_eq!(config.listen.source, Source::File);
        assert!(
            !config.allow_signup.value,
            "sign-up is off unless turned on"
        );
        assert_eq!(config.allow_signup.source, Source::Default);
        assert_eq!(config.data_dir.value, PathBuf::from("/flag/dir"));
        assert_eq!(config.data_dir.source, Source::Flag);
        let config = Config::load(&global, Some("127.0.0.1:7000")).unwrap();
        assert_eq!(config.listen.value.port(), 7000);
    }

    #[test]
    fn sign_up_is_turned_on_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.toml");
        std::fs::write(&path, "allow_signup = true\n").unwrap();
        let global = GlobalArgs {
            config: Some(path.clone()),
            data_dir: None,
        };
        let config = Config::load(&global, None).unwrap();
        assert!(config.allow_signup.value);
        assert_eq!(config.allow_signup.source, Source::File);
        assert!(config
            .describe()
            .contains("allow_signup = true  (config file)"));

        std::fs::write(&path, "allow_signup = \"yes\"\n").unwrap();
        let err = Config::load(&global, None).unwrap_err().to_string();
        assert!(err.contains("invalid type"), "TOML booleans only: {err}");
    }

    #[test]
    fn metrics_allow_takes_cidrs_and_single_addresses() {
        let parsed = parse_cidrs(
            "metrics_allow",
            &["10.1.2.3/8", " fd00::/8 ", "192.0.2.7", "::1"],
            Source::File,
        )
        .unwrap();
        let shown: Vec<String> = parsed.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.0.0.0/8", "fd00::/8", "192.0.2.7/32", "::1/128"]);
        for bad in ["10.0.0.0/33", "example.com", "10.0.0/8", ""] {
            let err = parse_cidrs("metrics_allow", &[bad], Source::Env)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("metrics_allow")
                    && err.contains("CIDR")
                    && err.contains("environment"),
                "{bad:?}: {err}"
            );
        }
        assert_eq!(split_list(" 10.0.0.0/8, ,::1 "), ["10.0.0.0/8", "::1"]);
        let loopback: Vec<String> = loopback_only().iter().map(ToString::to_string).collect();
        assert_eq!(loopback, ["127.0.0.0/8", "::1/128"]);
    }

    #[test]
    fn operations_settings_come_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.toml");
        let global = GlobalArgs {
            config: Some(path.clone()),
            data_dir: None,
        };
        std::fs::write(&path, "").unwrap();
        let config = Config::load(&global, None).unwrap();
        assert_eq!(config.metrics_allow.value, loopback_only());
        assert_eq!(config.metrics_allow.source, Source::Default);
        assert_eq!(config.log_format.value, LogFormat::Text);

        std::fs::write(
            &path,
            "metrics_allow = [\"10.0.0.0/8\", \"::1\"]\nlog_format = \"json\"\n",
        )
        .unwrap();
        let config = Config::load(&global, None).unwrap();
        let allowed: Vec<String> = config
            .metrics_allow
            .value
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(allowed, ["10.0.0.0/8", "::1/128"]);
        assert_eq!(config.metrics_allow.source, Source::File);
        assert_eq!(config.log_format.value, LogFormat::Json);
        let described = config.describe();
        assert!(
            described.contains("metrics_allow = 10.0.0.0/8, ::1/128  (config file)"),
            "{described}"
        );
        assert!(
            described.contains("log_format   = json  (config file)"),
            "{described}"
        );

        // An empty list: nobody reads metrics without a site admin's credentials.
        std::fs::write(&path, "metrics_allow = []\n").unwrap();
        let config = Config::load(&global, None).unwrap();
        assert!(config.metrics_allow.value.is_empty());
        assert!(config.describe().contains("(nobody without credentials)"));

        for (text, named) in [
            ("metrics_allow = [\"10.0.0.300/8\"]\n", "metrics_allow"),
            ("log_format = \"xml\"\n", "log_format"),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = Config::load(&global, None).unwrap_err().to_string();
            assert!(err.contains(named) && err.contains("config file"), "{err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn bad_files_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.toml");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let global = GlobalArgs {
            config: Some(path),
            data_dir: None,
        };
        let err = Config::load(&global, None).unwrap_err().to_string();
        assert!(err.contains("unknown field"), "{err}");
    }
}
