//! Configuration: defaults, then the TOML file, then `BERTH_*` variables, then flags,
//! validated once at startup, with the source of every value remembered.

mod storage;

pub use storage::{StorageConfig, StorageKind};

use crate::cli::GlobalArgs;
use berth_core::mirror::{validate_mirrors, MirrorAccess, MirrorConfig};
use berth_core::ratelimit::Rate;
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
    /// Where the metadata lives: `None` is SQLite in the data directory (the default), or a
    /// `postgres://` URL (cargo feature `postgres`). May hold a password: shown redacted.
    pub database_url: Setting<Option<String>>,
    pub upload_ttl: Setting<Duration>,
    pub log: Setting<String>,
    /// The URL clients reach Berth at, for the token service's realm (None: the request's Host).
    pub public_url: Setting<Option<String>>,
    /// Lifetime of the registry's bearer tokens.
    pub token_ttl: Setting<Duration>,
    /// Lifetime of the token service's refresh (offline) tokens.
    pub refresh_token_ttl: Setting<Duration>,
    /// Whether visitors may create their own accounts in the web UI.
    pub allow_signup: Setting<bool>,
    /// Whether webhooks may call loopback and private-network receivers.
    pub webhook_allow_private: Setting<bool>,
    /// Consecutive failed deliveries after which a webhook is disabled.
    pub webhook_disable_after: Setting<u32>,
    /// The key file webhook secrets are sealed with (None: `secrets.key` in the data directory).
    pub secrets_key_file: Setting<Option<PathBuf>>,
    /// How long audit records are kept after they last happened.
    pub audit_retention: Setting<Duration>,
    /// Automated builds run at once (`build_concurrency`).
    pub build_concurrency: Setting<u32>,
    /// A build running longer is stopped and failed.
    pub build_timeout: Setting<Duration>,
    /// Where builds check out sources and keep buildah's storage and layer caches (None:
    /// `<data_dir>-builds`, beside the data directory and never inside it).
    pub build_dir: Setting<Option<PathBuf>>,
    /// The buildah program builds run (a path, or a name looked up on PATH).
    pub build_buildah: Setting<String>,
    /// Unfinished upload sessions one account may hold (`None`: no cap).
    /// How long an unreferenced blob is kept before garbage collection deletes it.
    pub gc_grace: Setting<Duration>,
    /// How often garbage collection runs in the server.
    pub gc_interval: Setting<Duration>,
    /// The quota a namespace created from now on starts with (None: no quota).
    pub default_quota: Setting<Option<u64>>,
    pub max_upload_sessions: Setting<Option<u32>>,
    /// The largest blob accepted, in bytes (`None`: no limit).
    pub max_blob_size: Setting<Option<u64>>,
    /// Whether requests are counted and timed for `/metrics` (off: `/metrics` answers 404).
    pub metrics: Setting<bool>,
    /// Addresses that may read `/metrics` without credentials (others need a site admin).
    pub metrics_allow: Setting<Vec<IpNet>>,
    /// How log lines are written.
    pub log_format: Setting<LogFormat>,
    /// The PEM certificate chain served over HTTPS (with `tls_key`; None: plain HTTP).
    pub tls_cert: Setting<Option<PathBuf>>,
    /// The PEM private key of `tls_cert`.
    pub tls_key: Setting<Option<PathBuf>>,
    /// Proxies whose `X-Forwarded-*` and `Forwarded` headers are believed.
    pub trusted_proxies: Setting<Vec<IpNet>>,
    /// `[rate_limit]`: manifest pulls per window for anonymous clients (per address, IPv6
    /// per /64), signed-in users and organizations; `None`: that tier is not limited.
    pub rate_limit_anonymous: Setting<Option<Rate>>,
    pub rate_limit_authenticated: Setting<Option<Rate>>,
    pub rate_limit_organization: Setting<Option<Rate>>,
    /// The `[[mirror]]` entries: upstream registries served through the pull-through cache.
    pub mirrors: Setting<Vec<MirrorConfig>>,
    /// The mirror that serves names matching no local repository (docker's `registry-mirrors`).
    pub mirror_default: Setting<Option<String>>,
    /// Where blob bytes are kept (`[storage]`).
    pub storage: StorageConfig,
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
    database_url: Option<String>,
    upload_ttl: Option<String>,
    log: Option<String>,
    public_url: Option<String>,
    token_ttl: Option<String>,
    refresh_token_ttl: Option<String>,
    allow_signup: Option<bool>,
    metrics: Option<bool>,
    metrics_allow: Option<Vec<String>>,
    log_format: Option<String>,
    webhook_allow_private: Option<bool>,
    webhook_disable_after: Option<u32>,
    secrets_key_file: Option<PathBuf>,
    audit_retention: Option<String>,
    build_concurrency: Option<u32>,
    build_timeout: Option<String>,
    build_dir: Option<PathBuf>,
    build_buildah: Option<String>,
    gc_grace: Option<String>,
    gc_interval: Option<String>,
    default_quota: Option<NumberOrText>,
    max_upload_sessions: Option<NumberOrText>,
    max_blob_size: Option<NumberOrText>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    trusted_proxies: Option<Vec<String>>,
    rate_limit: Option<RateLimitFile>,
    mirror: Option<Vec<MirrorEntry>>,
    mirror_default: Option<String>,
    storage: Option<storage::StorageFile>,
}

/// The `[rate_limit]` section: `anonymous = "100;w=21600"` and so on; an absent key means
/// no limit for that tier.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitFile {
    anonymous: Option<String>,
    authenticated: Option<String>,
    organization: Option<String>,
}

/// A pull limit `N;w=S`, or `none` (only useful in a variable, to lift a file's limit).
fn parse_rate(
    setting: &'static str,
    raw: &str,
    source: Source,
) -> Result<Option<Rate>, ConfigError> {
    if is_unlimited(raw) {
        return Ok(None);
    }
    Rate::parse(raw.trim())
        .map(Some)
        .map_err(|reason| ConfigError::Invalid {
            setting,
            value: raw.to_owned(),
            origin: source,
            reason,
        })
}

/// One `[[mirror]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MirrorEntry {
    prefix: String,
    upstream: String,
    username: Option<String>,
    password: Option<String>,
    ttl: Option<String>,
    tls_verify: Option<bool>,
    /// `public` (default) or `signed-in`.
    access: Option<String>,
    /// Days after which cached content not pulled is dropped (default 7); 0 keeps it.
    retention_days: Option<i64>,
}

impl MirrorEntry {
    fn into_config(self) -> Result<MirrorConfig, ConfigError> {
        let mut config = MirrorConfig::new(&self.prefix, &self.upstream);
        config.username = self.username;
        config.password = self.password;
        if let Some(ttl) = self.ttl {
            config.ttl = parse_duration("mirror ttl", &ttl, Source::File)?;
        }
        config.tls_verify = self.tls_verify.unwrap_or(true);
        if let Some(access) = self.access {
            config.access = MirrorAccess::parse(&access).ok_or_else(|| ConfigError::Invalid {
                setting: "mirror access",
                value: access.clone(),
                origin: Source::File,
                reason: "expected public or signed-in".into(),
            })?;
        }
        if let Some(days) = self.retention_days {
            config.retention_days = match u32::try_from(days) {
                Ok(0) => None,
                Ok(days) => Some(days),
                Err(_) => {
                    return Err(ConfigError::Invalid {
                        setting: "mirror retention_days",
                        value: days.to_string(),
                        origin: Source::File,
                        reason: "expected a number of days, or 0 to keep everything".into(),
                    })
                }
            };
        }
        Ok(config)
    }
}

/// `BERTH_MIRROR_PASSWORD_<PREFIX>`: a mirror's upstream password kept out of the file
/// (prefix upper-cased, `-` as `_`).
fn mirror_password_variable(prefix: &str) -> String {
    format!(
        "BERTH_MIRROR_PASSWORD_{}",
        prefix.to_ascii_uppercase().replace('-', "_")
    )
}

/// A TOML value that may be written as a number (`100`) or as text (`"100"`, `"10GiB"`,
/// `"none"`); both go through the same parser as the environment variable.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(i64),
    Text(String),
}

impl NumberOrText {
    fn into_text(self) -> String {
        match self {
            NumberOrText::Number(n) => n.to_string(),
            NumberOrText::Text(t) => t,
        }
    }
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
    #[error("{0}")]
    Inconsistent(String),
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

/// The longest duration accepted: longer ones are surely typos, and would overflow the
/// timestamps they are added to.
const MAX_DURATION_SECS: u64 = 100 * 365 * 86400;

/// Durations like `90s`, `30m`, `24h`, `7d`.
pub(crate) fn parse_duration(
    setting: &'static str,
    raw: &str,
    source: Source,
) -> Result<Duration, ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        setting,
        value: raw.to_owned(),
        origin: source,
        reason: reason.to_owned(),
    };
    const EXPECTED: &str = "expected a number with a unit s, m, h or d, e.g. 24h";
    let trimmed = raw.trim();
    let Some(unit) = trimmed.chars().next_back() else {
        return Err(invalid(EXPECTED));
    };
    let number = &trimmed[..trimmed.len() - unit.len_utf8()];
    let scale: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86400,
        _ => return Err(invalid(EXPECTED)),
    };
    let number = parse_digits(number).ok_or_else(|| invalid(EXPECTED))?;
    let secs = number
        .checked_mul(scale)
        .filter(|secs| *secs <= MAX_DURATION_SECS)
        .ok_or_else(|| invalid("too long; at most 36500d (100 years)"))?;
    if secs == 0 {
        return Err(invalid("must be longer than zero"));
    }
    Ok(Duration::from_secs(secs))
}

/// A plain decimal number (ASCII digits only: no sign, no spaces inside), or None.
fn parse_digits(raw: &str) -> Option<u64> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse().ok()
}

/// Whether `raw` says "no limit".
fn is_unlimited(raw: &str) -> bool {
    matches!(
        raw.trim().to_ascii_lowercase().as_str(),
        "none" | "unlimited"
    )
}

/// Sizes like `512`, `100KiB`, `500MB`, `10G`, `1TiB` (units are binary: K, KB and KiB are
/// all 1024 bytes), or `none`.
pub(crate) fn parse_size(
    setting: &'static str,
    raw: &str,
    source: Source,
) -> Result<Option<u64>, ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        setting,
        value: raw.to_owned(),
        origin: source,
        reason: reason.to_owned(),
    };
    const EXPECTED: &str =
        "expected a size in bytes with an optional unit (KiB, MiB, GiB, TiB), e.g. 10GiB, or none";
    if is_unlimited(raw) {
        return Ok(None);
    }
    let trimmed = raw.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(invalid(EXPECTED)),
    };
    let number = parse_digits(number).ok_or_else(|| invalid(EXPECTED))?;
    let bytes = number
        .checked_mul(scale)
        .ok_or_else(|| invalid("too large; at most 16 EiB"))?;
    if bytes == 0 {
        return Err(invalid("must be larger than zero (or none for no limit)"));
    }
    Ok(Some(bytes))
}

/// A positive count, or `none` for no limit.
pub(crate) fn parse_limit(
    setting: &'static str,
    raw: &str,
    source: Source,
) -> Result<Option<u32>, ConfigError> {
    if is_unlimited(raw) {
        return Ok(None);
    }
    match parse_digits(raw.trim()).map(u32::try_from) {
        Some(Ok(n)) if n > 0 => Ok(Some(n)),
        _ => Err(ConfigError::Invalid {
            setting,
            value: raw.to_owned(),
            origin: source,
            reason: format!("expected a whole number from 1 to {}, or none", u32::MAX),
        }),
    }
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

/// A `postgres://` (or `postgresql://`) URL. Whether this build can open it is decided by the
/// metadata factory (`backends::metadata`), which names the cargo feature when it cannot.
fn parse_database_url(raw: &str, source: Source) -> Result<Option<String>, ConfigError> {
    let trimmed = raw.trim();
    let rest = trimmed
        .strip_prefix("postgres://")
        .or_else(|| trimmed.strip_prefix("postgresql://"));
    if rest.is_none_or(str::is_empty) || trimmed.contains(char::is_whitespace) {
        return Err(ConfigError::Invalid {
            setting: "database_url",
            value: redact_database_url(raw),
            origin: source,
            reason:
                "expected a postgres:// URL, e.g. postgres://berth:PASSWORD@db.example.com/berth \
                     (leave it unset for SQLite in data_dir)"
                    .into(),
        });
    }
    Ok(Some(trimmed.to_owned()))
}

/// The URL with any password replaced by `***`, for logs, errors and `berth config`.
pub fn redact_database_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
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

/// A variable's text (unset and empty are the same); text that is not UTF-8 is an error
/// rather than silently ignored.
fn env(name: &'static str) -> Result<Option<String>, ConfigError> {
    match std::env::var(name) {
        Ok(value) => Ok(Some(value).filter(|v| !v.is_empty())),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(raw)) => Err(ConfigError::Invalid {
            setting: name,
            value: raw.to_string_lossy().into_owned(),
            origin: Source::Env,
            reason: "not valid UTF-8".into(),
        }),
    }
}

/// A variable naming a path, which need not be UTF-8.
fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Whether `inner` is `outer` or inside it, compared on the absolute, `.`/`..`-free paths
/// (neither needs to exist yet).
fn path_within(inner: &Path, outer: &Path) -> bool {
    fn absolute(path: &Path) -> PathBuf {
        let joined = std::env::current_dir().unwrap_or_default().join(path);
        let mut out = PathBuf::new();
        for part in joined.components() {
            match part {
                std::path::Component::ParentDir => {
                    out.pop();
                }
                std::path::Component::CurDir => {}
                other => out.push(other),
            }
        }
        out
    }
    absolute(inner).starts_with(absolute(outer))
}

/// A program to run: a name or a path, one line, not an option.
fn check_program(
    setting: &'static str,
    raw: String,
    source: Source,
) -> Result<String, ConfigError> {
    let program = raw.trim();
    if program.is_empty() || program.starts_with('-') || program.contains(['\n', '\0']) {
        return Err(ConfigError::Invalid {
            setting,
            value: raw.clone(),
            origin: source,
            reason: "expected a program name or path".into(),
        });
    }
    Ok(program.to_owned())
}

/// A whole number from 1 up, for counts.
fn parse_count(setting: &'static str, raw: &str, source: Source) -> Result<u32, ConfigError> {
    match raw.trim().parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(ConfigError::Invalid {
            setting,
            value: raw.to_owned(),
            origin: source,
            reason: "expected a whole number from 1 to 4294967295".into(),
        }),
    }
}

fn check_count(setting: &'static str, n: u32, source: Source) -> Result<u32, ConfigError> {
    parse_count(setting, &n.to_string(), source)
}

impl Config {
    pub fn load(global: &GlobalArgs, listen_flag: Option<&str>) -> Result<Config, ConfigError> {
        let mut config = Config {
            config_file: None,
            listen: Setting::default(SocketAddr::from(([127, 0, 0, 1], 5000))),
            data_dir: Setting::default(PathBuf::from("./berth-data")),
            database_url: Setting::default(None),
            upload_ttl: Setting::default(Duration::from_secs(24 * 3600)),
            log: Setting::default("info".to_owned()),
            public_url: Setting::default(None),
            token_ttl: Setting::default(Duration::from_secs(300)),
            refresh_token_ttl: Setting::default(berth_core::auth::DEFAULT_REFRESH_TOKEN_TTL),
            allow_signup: Setting::default(false),
            webhook_allow_private: Setting::default(false),
            webhook_disable_after: Setting::default(5),
            secrets_key_file: Setting::default(None),
            audit_retention: Setting::default(Duration::from_secs(365 * 86400)),
            build_concurrency: Setting::default(1),
            build_timeout: Setting::default(Duration::from_secs(3600)),
            build_dir: Setting::default(None),
            build_buildah: Setting::default("buildah".to_owned()),
            gc_grace: Setting::default(Duration::from_secs(3600)),
            gc_interval: Setting::default(Duration::from_secs(3600)),
            default_quota: Setting::default(None),
            max_upload_sessions: Setting::default(Some(
                berth_core::registry::DEFAULT_MAX_UPLOAD_SESSIONS,
            )),
            max_blob_size: Setting::default(None),
            metrics: Setting::default(true),
            metrics_allow: Setting::default(loopback_only()),
            log_format: Setting::default(LogFormat::Text),
            tls_cert: Setting::default(None),
            tls_key: Setting::default(None),
            trusted_proxies: Setting::default(Vec::new()),
            rate_limit_anonymous: Setting::default(None),
            rate_limit_authenticated: Setting::default(None),
            rate_limit_organization: Setting::default(None),
            mirrors: Setting::default(Vec::new()),
            mirror_default: Setting::default(None),
            storage: StorageConfig::default(),
        };
        let file_path = global.config.clone().or_else(|| env_path("BERTH_CONFIG"));
        if let Some(path) = &file_path {
            let file = read_file(path)?;
            config.listen.set(
                file.listen
                    .map(|l| parse_listen(&l, Source::File))
                    .transpose()?,
                Source::File,
            );
            config.data_dir.set(file.data_dir, Source::File);
            if let Some(section) = file.storage {
                config.storage.apply_file(section)?;
            }
            config.database_url.set(
                file.database_url
                    .map(|u| parse_database_url(&u, Source::File))
                    .transpose()?,
                Source::File,
            );
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
            config.refresh_token_ttl.set(
                file.refresh_token_ttl
                    .map(|d| parse_duration("refresh_token_ttl", &d, Source::File))
                    .transpose()?,
                Source::File,
            );
            config.allow_signup.set(file.allow_signup, Source::File);
            config.metrics.set(file.metrics, Source::File);
            config
                .webhook_allow_private
                .set(file.webhook_allow_private, Source::File);
            config.webhook_disable_after.set(
                file.webhook_disable_after
                    .map(|n| check_count("webhook_disable_after", n, Source::File))
                    .transpose()?,
                Source::File,
            );
            config
                .secrets_key_file
                .set(file.secrets_key_file.map(Some), Source::File);
            config.audit_retention.set(
                file.audit_retention
                    .map(|d| parse_duration("audit_retention", &d, Source::File))
                    .transpose()?,
                Source::File,
            );
            config.build_concurrency.set(
                file.build_concurrency
                    .map(|n| check_count("build_concurrency", n, Source::File))
                    .transpose()?,
                Source::File,
            );
            config.build_timeout.set(
                file.build_timeout
                    .map(|d| parse_duration("build_timeout", &d, Source::File))
                    .transpose()?,
                Source::File,
            );
            config.build_dir.set(file.build_dir.map(Some), Source::File);
            config.build_buildah.set(
                file.build_buildah
                    .map(|p| check_program("build_buildah", p, Source::File))
                    .transpose()?,
                Source::File,
            );
            config.gc_grace.set(
                file.gc_grace
                    .map(|d| parse_duration("gc_grace", &d, Source::File))
                    .transpose()?,
                Source::File,
            );
            config.gc_interval.set(
                file.gc_interval
                    .map(|d| parse_duration("gc_interval", &d, Source::File))
                    .transpose()?,
                Source::File,
            );
            config.default_quota.set(
                file.default_quota
                    .map(|n| parse_size("default_quota", &n.into_text(), Source::File))
                    .transpose()?,
                Source::File,
            );
            config.max_upload_sessions.set(
                file.max_upload_sessions
                    .map(|n| parse_limit("max_upload_sessions", &n.into_text(), Source::File))
                    .transpose()?,
                Source::File,
            );
            config.max_blob_size.set(
                file.max_blob_size
                    .map(|n| parse_size("max_blob_size", &n.into_text(), Source::File))
                    .transpose()?,
                Source::File,
            );
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
            config.tls_cert.set(file.tls_cert.map(Some), Source::File);
            config.tls_key.set(file.tls_key.map(Some), Source::File);
            config.trusted_proxies.set(
                file.trusted_proxies
                    .map(|list| parse_cidrs("trusted_proxies", &list, Source::File))
                    .transpose()?,
                Source::File,
            );
            let limits = file.rate_limit.unwrap_or_default();
            for (setting, raw, name) in [
                (
                    &mut config.rate_limit_anonymous,
                    limits.anonymous,
                    "rate_limit.anonymous",
                ),
                (
                    &mut config.rate_limit_authenticated,
                    limits.authenticated,
                    "rate_limit.authenticated",
                ),
                (
                    &mut config.rate_limit_organization,
                    limits.organization,
                    "rate_limit.organization",
                ),
            ] {
                setting.set(
                    raw.map(|r| parse_rate(name, &r, Source::File))
                        .transpose()?,
                    Source::File,
                );
            }
            config.mirrors.set(
                file.mirror
                    .map(|entries| {
                        entries
                            .into_iter()
                            .map(MirrorEntry::into_config)
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .transpose()?,
                Source::File,
            );
            config
                .mirror_default
                .set(file.mirror_default.map(Some), Source::File);
        }
        config.config_file = file_path;
        config.listen.set(
            env("BERTH_LISTEN")?
                .map(|l| parse_listen(&l, Source::Env))
                .transpose()?,
            Source::Env,
        );
        config.data_dir.set(env_path("BERTH_DATA_DIR"), Source::Env);
        config.storage.apply_env()?;
        config.database_url.set(
            env("BERTH_DATABASE_URL")?
                .map(|u| parse_database_url(&u, Source::Env))
                .transpose()?,
            Source::Env,
        );
        config.upload_ttl.set(
            env("BERTH_UPLOAD_TTL")?
                .map(|d| parse_duration("upload_ttl", &d, Source::Env))
                .transpose()?,
            Source::Env,
        );
        config.log.set(env("BERTH_LOG")?, Source::Env);
        config.public_url.set(
            env("BERTH_PUBLIC_URL")?
                .map(|u| parse_url(&u, Source::Env))
                .transpose()?,
            Source::Env,
        );
        config.token_ttl.set(
            env("BERTH_TOKEN_TTL")?
                .map(|d| parse_duration("token_ttl", &d, Source::Env))
                .transpose()?,
            Source::Env,
        );
        config.refresh_token_ttl.set(
            env("BERTH_REFRESH_TOKEN_TTL")?
                .map(|d| parse_duration("refresh_token_ttl", &d, Source::Env))
                .transpose()?,
            Source::Env,
        );
        config.allow_signup.set(
            env("BERTH_ALLOW_SIGNUP")?
                .map(|b| parse_bool("allow_signup", &b, Source::Env))
                .transpose()?,
            Source::Env,
        );
        config.metrics.set(
            env("BERTH_METRICS")?
                .map(|b| parse_bool("metrics", &b, Source::Env))
                .transpose()?,
            Source::Env,
        );
        config.webhook_allow_private.set(
            env("BERTH_WEBHOOK_ALLOW_PRIVATE")?
                .map(|b| parse_bool("webhook_allow_private", &b, Source::Env))
                .transpose()?,
            Source::Env,
        );
        config.webhook_disable_after.set(
            env("BERTH_WEBHOOK_DISABLE_AFTER")?
                .map(|n| parse_count("webhook_disable_after", &n, Source::Env))
                .transpose()?,
            Source::Env,
        );
        config
            .secrets_key_file
            .set(env_path("BERTH_SECRETS_KEY_FILE").map(Some), Source::Env);
        config.audit_retention.set(
            env("BERTH_AUDIT_RETENTION")?
                .map(|d| parse_duration("audit_retention", &d, Source::Env))
                .transpose()?,
            Source::Env,
        );
        config.build_concurrency.set(
            env("BERTH_BUILD_CONCURRENCY")?
                .map(|n| parse_count("build_concurrency", &n, Source::Env))
                .transpose()?,
            Source::Env,
        );
        config.build_timeout.set(
            env("BERTH_BUILD_TIMEOUT")?
                .map(|d| parse_duration("build_timeout", &d, Source::Env))
                .transpose()?,
            Source::Env,
        );
        config
            .build_dir
            .set(env_path("BERTH_BUILD_DIR").map(Some), Source::Env);
        config.build_buildah.set(
            env("BERTH_BUILD_BUILDAH")?
                .map(|p| check_program("build_buildah", p, Source::Env))
                .transpose()?,
            Source::Env,
        );
        config.gc_grace.set(
            env("BERTH_GC_GRACE")?
                .map(|d| parse_duration("gc_grace", &d, Source::Env))
                .transpose()?,
            Source::Env,
        );
        config.gc_interval.set(
            env("BERTH_GC_INTERVAL")?
                .map(|d| parse_duration("gc_interval", &d, Source::Env))
                .transpose()?,
            Source::Env,
        );
        config.default_quota.set(
            env("BERTH_DEFAULT_QUOTA")?
                .map(|n| parse_size("default_quota", &n, Source::Env))
                .transpose()?,
            Source::Env,
        );
        config.max_upload_sessions.set(
            env("BERTH_MAX_UPLOAD_SESSIONS")?
                .map(|n| parse_limit("max_upload_sessions", &n, Source::Env))
                .transpose()?,
            Source::Env,
        );
        config.max_blob_size.set(
            env("BERTH_MAX_BLOB_SIZE")?
                .map(|n| parse_size("max_blob_size", &n, Source::Env))
                .transpose()?,
            Source::Env,
        );
        config.metrics_allow.set(
            env("BERTH_METRICS_ALLOW")?
                .map(|list| parse_cidrs("metrics_allow", &split_list(&list), Source::Env))
                .transpose()?,
            Source::Env,
        );
        config.log_format.set(
            env("BERTH_LOG_FORMAT")?
                .map(|f| parse_log_format(&f, Source::Env))
                .transpose()?,
            Source::Env,
        );
        config
            .tls_cert
            .set(env_path("BERTH_TLS_CERT").map(Some), Source::Env);
        config
            .tls_key
            .set(env_path("BERTH_TLS_KEY").map(Some), Source::Env);
        config.trusted_proxies.set(
            env("BERTH_TRUSTED_PROXIES")?
                .map(|list| parse_cidrs("trusted_proxies", &split_list(&list), Source::Env))
                .transpose()?,
            Source::Env,
        );
        for (setting, variable, name) in [
            (
                &mut config.rate_limit_anonymous,
                "BERTH_RATE_LIMIT_ANONYMOUS",
                "rate_limit.anonymous",
            ),
            (
                &mut config.rate_limit_authenticated,
                "BERTH_RATE_LIMIT_AUTHENTICATED",
                "rate_limit.authenticated",
            ),
            (
                &mut config.rate_limit_organization,
                "BERTH_RATE_LIMIT_ORGANIZATION",
                "rate_limit.organization",
            ),
        ] {
            setting.set(
                env(variable)?
                    .map(|r| parse_rate(name, &r, Source::Env))
                    .transpose()?,
                Source::Env,
            );
        }
        config.listen.set(
            listen_flag
                .map(|l| parse_listen(l, Source::Flag))
                .transpose()?,
            Source::Flag,
        );
        config.data_dir.set(global.data_dir.clone(), Source::Flag);
        config
            .mirror_default
            .set(env("BERTH_MIRROR_DEFAULT")?.map(Some), Source::Env);
        for mirror in &mut config.mirrors.value {
            if let Ok(password) = std::env::var(mirror_password_variable(&mirror.prefix)) {
                mirror.password = Some(password);
            }
        }
        validate_mirrors(
            &config.mirrors.value,
            config.mirror_default.value.as_deref(),
        )
        .map_err(ConfigError::Inconsistent)?;
        match (&config.tls_cert.value, &config.tls_key.value) {
            (Some(_), None) => {
                return Err(ConfigError::Inconsistent(format!(
                    "tls_cert is set (from {}) but tls_key is not: set both for HTTPS, or neither",
                    config.tls_cert.source
                )))
            }
            (None, Some(_)) => {
                return Err(ConfigError::Inconsistent(format!(
                    "tls_key is set (from {}) but tls_cert is not: set both for HTTPS, or neither",
                    config.tls_key.source
                )))
            }
            _ => {}
        }
        config.storage.check()?;
        // Builds run other people's Dockerfiles: their files never go where Berth's data is.
        if let Some(dir) = &config.build_dir.value {
            if path_within(dir, &config.data_dir.value) {
                return Err(ConfigError::Inconsistent(format!(
                    "build_dir {} (from {}) is inside data_dir {}: put it beside the data directory",
                    dir.display(),
                    config.build_dir.source,
                    config.data_dir.value.display()
                )));
            }
        }
        Ok(config)
    }

    /// Every setting with its value and source, one per line.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let mut line = |name: &str, value: &dyn fmt::Display, source: Option<Source>| {
            let _ = match source {
                Some(source) => writeln!(out, "{name:<19} = {value}  ({source})"),
                None => writeln!(out, "{name:<19} = {value}"),
            };
        };
        let file = self
            .config_file
            .as_ref()
            .map_or("(none)".to_owned(), |p| p.display().to_string());
        line("config file", &file, None);
        line("listen", &self.listen.value, Some(self.listen.source));
        line(
            "data_dir",
            &self.data_dir.value.display(),
            Some(self.data_dir.source),
        );
        line(
            "upload_ttl",
            &format!("{}s", self.upload_ttl.value.as_secs()),
            Some(self.upload_ttl.source),
        );
        line(
            "database_url",
            &self
                .database_url
                .value
                .as_deref()
                .map_or_else(|| "(SQLite in data_dir)".to_owned(), redact_database_url),
            Some(self.database_url.source),
        );
        line("log", &self.log.value, Some(self.log.source));
        line(
            "public_url",
            &self
                .public_url
                .value
                .as_deref()
                .unwrap_or("(from each request's Host)"),
            Some(self.public_url.source),
        );
        line(
            "token_ttl",
            &format!("{}s", self.token_ttl.value.as_secs()),
            Some(self.token_ttl.source),
        );
        line(
            "refresh_token_ttl",
            &format!("{}s", self.refresh_token_ttl.value.as_secs()),
            Some(self.refresh_token_ttl.source),
        );
        line(
            "allow_signup",
            &self.allow_signup.value,
            Some(self.allow_signup.source),
        );
        line(
            "max_upload_sessions",
            &self
                .max_upload_sessions
                .value
                .map_or("none".to_owned(), |n| n.to_string()),
            Some(self.max_upload_sessions.source),
        );
        line(
            "max_blob_size",
            &self
                .max_blob_size
                .value
                .map_or("none".to_owned(), |n| format!("{n} bytes")),
            Some(self.max_blob_size.source),
        );
        let _ = writeln!(
            out,
            "webhook_allow_private = {}  ({})",
            self.webhook_allow_private.value, self.webhook_allow_private.source
        );
        let _ = writeln!(
            out,
            "webhook_disable_after = {}  ({})",
            self.webhook_disable_after.value, self.webhook_disable_after.source
        );
        let _ = writeln!(
            out,
            "secrets_key_file = {}  ({})",
            self.secrets_key_path().display(),
            self.secrets_key_file.source
        );
        let _ = writeln!(
            out,
            "audit_retention = {}s  ({})",
            self.audit_retention.value.as_secs(),
            self.audit_retention.source
        );
        let _ = writeln!(
            out,
            "build_concurrency = {}  ({})",
            self.build_concurrency.value, self.build_concurrency.source
        );
        let _ = writeln!(
            out,
            "build_timeout = {}s  ({})",
            self.build_timeout.value.as_secs(),
            self.build_timeout.source
        );
        let _ = writeln!(
            out,
            "build_dir    = {}  ({})",
            self.build_dir_path().display(),
            self.build_dir.source
        );
        let _ = writeln!(
            out,
            "build_buildah = {}  ({})",
            self.build_buildah.value, self.build_buildah.source
        );
        let _ = writeln!(
            out,
            "gc_grace     = {}s  ({})",
            self.gc_grace.value.as_secs(),
            self.gc_grace.source
        );
        let _ = writeln!(
            out,
            "gc_interval  = {}s  ({})",
            self.gc_interval.value.as_secs(),
            self.gc_interval.source
        );
        let _ = writeln!(
            out,
            "default_quota = {}  ({})",
            self.default_quota
                .value
                .map_or("none".to_owned(), |n| format!("{n} bytes")),
            self.default_quota.source
        );
        let _ = writeln!(
            out,
            "metrics      = {}  ({})",
            self.metrics.value, self.metrics.source
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
        let shown_path = |path: &Option<PathBuf>| {
            path.as_ref()
                .map_or("(none: plain HTTP)".to_owned(), |p| p.display().to_string())
        };
        let _ = writeln!(
            out,
            "tls_cert     = {}  ({})",
            shown_path(&self.tls_cert.value),
            self.tls_cert.source
        );
        let _ = writeln!(
            out,
            "tls_key      = {}  ({})",
            shown_path(&self.tls_key.value),
            self.tls_key.source
        );
        let proxies: Vec<String> = self
            .trusted_proxies
            .value
            .iter()
            .map(ToString::to_string)
            .collect();
        let _ = writeln!(
            out,
            "trusted_proxies = {}  ({})",
            if proxies.is_empty() {
                "(none: forwarding headers are ignored)".to_owned()
            } else {
                proxies.join(", ")
            },
            self.trusted_proxies.source
        );
        for (name, setting) in [
            ("rate_limit.anonymous", &self.rate_limit_anonymous),
            ("rate_limit.authenticated", &self.rate_limit_authenticated),
            ("rate_limit.organization", &self.rate_limit_organization),
        ] {
            let _ = writeln!(
                out,
                "{name} = {}  ({})",
                setting
                    .value
                    .map_or("none (not limited)".to_owned(), |r| r.to_string()),
                setting.source
            );
        }
        for mirror in &self.mirrors.value {
            let _ = writeln!(
                out,
                "mirror {} = {} (ttl {}s, tls_verify {}, {}, {}, {})  ({})",
                mirror.prefix,
                mirror.upstream,
                mirror.ttl.as_secs(),
                mirror.tls_verify,
                mirror.access.as_str(),
                match mirror.retention_days {
                    Some(days) => format!("drops what was not pulled for {days} days"),
                    None => "keeps everything".to_owned(),
                },
                match (&mirror.username, &mirror.password) {
                    (Some(user), Some(_)) => format!("as {user}, password set"),
                    (Some(user), None) => format!("as {user}"),
                    _ => "anonymous".to_owned(),
                },
                self.mirrors.source
            );
        }
        let _ = writeln!(
            out,
            "mirror_default = {}  ({})",
            self.mirror_default.value.as_deref().unwrap_or("(none)"),
            self.mirror_default.source
        );
        self.storage.describe(&mut out);
        out
    }

    /// The pull rate-limit tiers.
    pub fn rate_limit_tiers(&self) -> berth_core::ratelimit::Tiers {
        berth_core::ratelimit::Tiers {
            anonymous: self.rate_limit_anonymous.value,
            authenticated: self.rate_limit_authenticated.value,
            organization: self.rate_limit_organization.value,
        }
    }

    /// Garbage collection's settings.
    pub fn gc_options(&self) -> berth_core::lifecycle::GcOptions {
        berth_core::lifecycle::GcOptions {
            grace: self.gc_grace.value,
            interval: self.gc_interval.value,
            ..Default::default()
        }
    }

    /// Where the key that seals webhook secrets is kept.
    /// Where builds work: `build_dir`, or `<data_dir>-builds` beside the data directory.
    pub fn build_dir_path(&self) -> PathBuf {
        self.build_dir.value.clone().unwrap_or_else(|| {
            let data = &self.data_dir.value;
            let name = data
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "berth-data".into());
            data.with_file_name(format!("{name}-builds"))
        })
    }

    /// The builder's settings.
    pub fn build_settings(&self) -> berth_core::builds::BuildSettings {
        berth_core::builds::BuildSettings {
            concurrency: self.build_concurrency.value as usize,
            timeout: self.build_timeout.value,
            work_dir: self.build_dir_path(),
            buildah: self.build_buildah.value.clone(),
            docker_hub_mirror: berth_core::mirror::docker_hub_mirror(
                &self.mirrors.value,
                self.mirror_default.value.as_deref(),
            )
            .map(str::to_owned),
            ..Default::default()
        }
    }

    /// PostgreSQL metadata and S3 blobs: every node's state is in shared services, so `serve`
    /// keeps nothing in the data directory that another node needs and takes no lock on it
    /// (several nodes run side by side).
    pub fn shares_all_state(&self) -> bool {
        self.database_url.value.is_some() && self.storage.kind.value == StorageKind::S3
    }

    pub fn secrets_key_path(&self) -> PathBuf {
        self.secrets_key_file
            .value
            .clone()
            .unwrap_or_else(|| self.data_dir.value.join("secrets.key"))
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
    fn durations_never_wrap_or_panic() {
        for bad in [
            "5é",
            "é",
            "é5s",
            "1٣s",
            "+5s",
            "5 s",
            "999999999999999999d",
            "36501d",
        ] {
            let err = parse_duration("token_ttl", bad, Source::Env)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("token_ttl") && !err.contains('\n'),
                "{bad:?}: {err}"
            );
        }
        assert_eq!(
            parse_duration("t", "36500d", Source::Env)
                .unwrap()
                .as_secs(),
            MAX_DURATION_SECS
        );
    }

    #[test]
    fn sizes_and_limits() {
        let size = |raw| parse_size("max_blob_size", raw, Source::Env);
        assert_eq!(size("512").unwrap(), Some(512));
        assert_eq!(size("1KiB").unwrap(), Some(1024));
        assert_eq!(size("10 gb").unwrap(), Some(10 << 30));
        assert_eq!(size("2T").unwrap(), Some(2 << 40));
        assert_eq!(size("none").unwrap(), None);
        assert_eq!(size("Unlimited").unwrap(), None);
        for bad in [
            "",
            "0",
            "-1",
            "1.5G",
            "10XB",
            "é",
            "5é",
            "99999999999TiB",
            "1 2",
        ] {
            let err = size(bad).unwrap_err().to_string();
            assert!(err.contains("max_blob_size"), "{bad:?}: {err}");
        }
        let limit = |raw| parse_limit("max_upload_sessions", raw, Source::File);
        assert_eq!(limit("100").unwrap(), Some(100));
        assert_eq!(limit("none").unwrap(), None);
        for bad in ["0", "-5", "4294967296", "ten", "١"] {
            assert!(limit(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn database_urls_are_postgres_and_never_shown_with_their_password() {
        let url = |raw| parse_database_url(raw, Source::File);
        assert_eq!(
            url(" postgres://berth:pw@db:5432/berth ")
                .unwrap()
                .as_deref(),
            Some("postgres://berth:pw@db:5432/berth")
        );
        assert!(url("postgresql://db/berth").is_ok());
        for bad in [
            "",
            "sqlite://x.db",
            "mysql://db/x",
            "postgres://",
            "postgres://a b",
        ] {
            let err = url(bad).unwrap_err().to_string();
            assert!(
                err.contains("database_url") && !err.contains('\n'),
                "{bad:?}: {err}"
            );
        }
        let err = url("mysql://root:hunter2@db/x").unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert_eq!(
            redact_database_url("postgres://berth:s3cret@db:5432/berth?sslmode=disable"),
            "postgres://berth:***@db:5432/berth?sslmode=disable"
        );
        assert_eq!(
            redact_database_url("postgres://db/berth"),
            "postgres://db/berth"
        );
    }

    #[test]
    fn tls_and_proxy_settings_come_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.toml");
        let global = GlobalArgs {
            config: Some(path.clone()),
            data_dir: None,
        };
        std::fs::write(
            &path,
            "tls_cert = \"/etc/berth/cert.pem\"\ntls_key = \"/etc/berth/key.pem\"\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n",
        )
        .unwrap();
        let config = Config::load(&global, None).unwrap();
        assert_eq!(
            config.tls_cert.value.as_deref(),
            Some(Path::new("/etc/berth/cert.pem"))
        );
        assert_eq!(config.tls_key.source, Source::File);
        let proxies: Vec<String> = config
            .trusted_proxies
            .value
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(proxies, ["10.0.0.0/8", "::1/128"]);
        std::fs::write(&path, "tls_cert = \"/etc/berth/cert.pem\"\n").unwrap();
        let err = Config::load(&global, None).unwrap_err().to_string();
        assert_eq!(
            err,
            "tls_cert is set (from config file) but tls_key is not: set both for HTTPS, or neither"
        );
        std::fs::write(
            &path,
            "trusted_proxies = [\"10.0.0.0/8\", \"10.0.0.300\"]\n",
        )
        .unwrap();
        let err = Config::load(&global, None).unwrap_err().to_string();
        assert!(
            err.contains("trusted_proxies") && err.contains("10.0.0.300") && !err.contains('\n'),
            "{err}"
        );
    }

    #[test]
    fn mirrors_come_from_the_file_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.toml");
        let global = GlobalArgs {
            config: Some(path.clone()),
            data_dir: None,
        };
        std::fs::write(
            &path,
            "mirror_default = \"dockerhub\"\n\
             [[mirror]]\nprefix = \"dockerhub\"\nupstream = \"https://registry-1.docker.io\"\n\
             username = \"bot\"\npassword = \"s3cret\"\n\
             [[mirror]]\nprefix = \"ghcr\"\nupstream = \"https://ghcr.io\"\nttl = \"10m\"\n\
             tls_verify = false\naccess = \"signed-in\"\nretention_days = 0\n",
        )
        .unwrap();
        let config = Config::load(&global, None).unwrap();
        let mirrors = &config.mirrors.value;
        assert_eq!(mirrors.len(), 2);
        assert_eq!(mirrors[0].ttl, berth_core::mirror::DEFAULT_MIRROR_TTL);
        assert_eq!(mirrors[0].password.as_deref(), Some("s3cret"));
        assert_eq!(mirrors[1].ttl.as_secs(), 600);
        assert!(!mirrors[1].tls_verify);
        assert_eq!(mirrors[1].access, MirrorAccess::SignedIn);
        assert_eq!(mirrors[0].retention_days, Some(7), "a week by default");
        assert_eq!(mirrors[1].retention_days, None, "0 keeps everything");
        assert_eq!(config.mirror_default.value.as_deref(), Some("dockerhub"));
        let described = config.describe();
        assert!(
            described.contains("mirror ghcr = https://ghcr.io"),
            "{described}"
        );
        assert!(!described.contains("s3cret"), "the password is never shown");

        for (text, expected) in [
            (
                "mirror_default = \"nope\"\n[[mirror]]\nprefix = \"a\"\nupstream = \"https://a.example\"\n",
                "mirror_default = \"nope\" names no [[mirror]] prefix",
            ),
            (
                "[[mirror]]\nprefix = \"a\"\nupstream = \"https://a.example\"\n[[mirror]]\nprefix = \"a\"\nupstream = \"https://b.example\"\n",
                "mirror #2 (a): prefix a is used twice",
            ),
            (
                "[[mirror]]\nprefix = \"A/b\"\nupstream = \"https://a.example\"\n",
                "mirror #1 (A/b): prefix must be one lowercase name component (letters, digits, - and _)",
            ),
            (
                "[[mirror]]\nprefix = \"a\"\nupstream = \"https://a.example/v2\"\n",
                "mirror #1 (a): upstream must be the registry's root URL, without a path",
            ),
            (
                "[[mirror]]\nprefix = \"a\"\nupstream = \"https://a.example\"\nretention_days = 40000\n",
                "mirror #1 (a): retention_days must be from 1 to 36500, or 0 to keep everything",
            ),
            (
                "[[mirror]]\nprefix = \"a\"\nupstream = \"ftp://a.example\"\n",
                "mirror #1 (a): upstream must be an http:// or https:// URL with a host",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = Config::load(&global, None).unwrap_err().to_string();
            assert_eq!(err, expected);
        }
        std::fs::write(
            &path,
            "[[mirror]]\nprefix = \"a\"\nupstream = \"https://a.example\"\nttl = \"soon\"\n",
        )
        .unwrap();
        let err = Config::load(&global, None).unwrap_err().to_string();
        assert!(err.contains("mirror ttl") && !err.contains('\n'), "{err}");
    }

    #[test]
    fn limits_come_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.toml");
        std::fs::write(&path, "max_upload_sessions = 5\nmax_blob_size = \"1GiB\"\n").unwrap();
        let global = GlobalArgs {
            config: Some(path.clone()),
            data_dir: None,
        };
        let config = Config::load(&global, None).unwrap();
        assert_eq!(config.max_upload_sessions.value, Some(5));
        assert_eq!(config.max_blob_size.value, Some(1 << 30));
        let shown = config.describe();
        assert!(
            shown.contains("max_blob_size       = 1073741824 bytes  (config file)"),
            "{shown}"
        );
        std::fs::write(&path, "max_upload_sessions = -1\n").unwrap();
        let err = Config::load(&global, None).unwrap_err().to_string();
        assert!(err.contains("max_upload_sessions"), "{err}");
        let defaults = Config::load(
            &GlobalArgs {
                config: None,
                data_dir: None,
            },
            None,
        )
        .unwrap();
        assert_eq!(defaults.max_upload_sessions.value, Some(100));
        assert_eq!(defaults.max_blob_size.value, None);
    }

    mod never_panic {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Any text: an error or a value, never a panic.
            #[test]
            fn settings_parsers_take_any_text(raw in "\\PC{0,40}") {
                let _ = parse_duration("upload_ttl", &raw, Source::Env);
                let _ = parse_size("max_blob_size", &raw, Source::Env);
                let _ = parse_limit("max_upload_sessions", &raw, Source::Env);
                let _ = parse_bool("allow_signup", &raw, Source::Env);
                let _ = parse_listen(&raw, Source::Env);
                let _ = parse_url(&raw, Source::Env);
            }

            /// Numbers with units are multiplied exactly, or refused: never wrapped.
            #[test]
            fn durations_are_exact_or_refused(n in any::<u64>(), unit in "[smhd]") {
                let scale = match unit.as_str() { "s" => 1, "m" => 60, "h" => 3600, _ => 86400 };
                match parse_duration("t", &format!("{n}{unit}"), Source::Env) {
                    Ok(d) => prop_assert_eq!(Some(d.as_secs()), n.checked_mul(scale)),
                    Err(_) => prop_assert!(n.checked_mul(scale).is_none_or(|s| s == 0 || s > MAX_DURATION_SECS)),
                }
            }

            #[test]
            fn sizes_are_exact_or_refused(n in any::<u64>(), unit in "(|B|KiB|MiB|GiB|TiB)") {
                let shift = match unit.as_str() { "KiB" => 10, "MiB" => 20, "GiB" => 30, "TiB" => 40, _ => 0 };
                let expected = n.checked_mul(1u64 << shift).filter(|b| *b > 0);
                let parsed = parse_size("s", &format!("{n}{unit}"), Source::Env).ok().flatten();
                prop_assert_eq!(parsed, expected);
            }
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
            .contains("allow_signup        = true  (config file)"));

        std::fs::write(&path, "allow_signup = \"yes\"\n").unwrap();
        let err = Config::load(&global, None).unwrap_err().to_string();
        assert!(err.contains("invalid type"), "TOML booleans only: {err}");
    }

    #[test]
    fn refresh_tokens_last_ninety_days_unless_the_file_says_otherwise() {
        let global = GlobalArgs {
            config: None,
            data_dir: None,
        };
        let config = Config::load(&global, None).unwrap();
        assert_eq!(config.refresh_token_ttl.value.as_secs(), 90 * 86400);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.toml");
        std::fs::write(&path, "refresh_token_ttl = \"7d\"\n").unwrap();
        let global = GlobalArgs {
            config: Some(path.clone()),
            data_dir: None,
        };
        let config = Config::load(&global, None).unwrap();
        assert_eq!(config.refresh_token_ttl.value.as_secs(), 7 * 86400);
        assert_eq!(config.refresh_token_ttl.source, Source::File);
        std::fs::write(&path, "refresh_token_ttl = \"soon\"\n").unwrap();
        let err = Config::load(&global, None).unwrap_err().to_string();
        assert!(
            err.contains("refresh_token_ttl") && !err.contains('\n'),
            "{err}"
        );
    }

    #[test]
    fn audit_retention_defaults_to_a_year_and_is_set_in_the_file() {
        let global = GlobalArgs {
            config: None,
            data_dir: None,
        };
        let config = Config::load(&global, None).unwrap();
        assert_eq!(config.audit_retention.value.as_secs(), 365 * 86400);
        assert_eq!(config.audit_retention.source, Source::Default);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.toml");
        std::fs::write(&path, "audit_retention = \"90d\"\n").unwrap();
        let global = GlobalArgs {
            config: Some(path.clone()),
            data_dir: None,
        };
        let config = Config::load(&global, None).unwrap();
        assert_eq!(config.audit_retention.value.as_secs(), 90 * 86400);
        assert!(config
            .describe()
            .contains("audit_retention = 7776000s  (config file)"));

        std::fs::write(&path, "audit_retention = \"forever\"\n").unwrap();
        let err = Config::load(&global, None).unwrap_err().to_string();
        assert!(err.contains("audit_retention"), "{err}");
    }

    #[test]
    fn build_settings_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.toml");
        let data = dir.path().join("data");
        let load = |text: String| {
            std::fs::write(&path, text).unwrap();
            Config::load(
                &GlobalArgs {
                    config: Some(path.clone()),
                    data_dir: None,
                },
                None,
            )
        };
        let config = load(format!(
            "data_dir = {:?}\nbuild_concurrency = 2\nbuild_timeout = \"30m\"\n",
            data.display().to_string()
        ))
        .unwrap();
        let settings = config.build_settings();
        assert_eq!(settings.concurrency, 2);
        assert_eq!(settings.timeout.as_secs(), 1800);
        assert_eq!(settings.work_dir, dir.path().join("data-builds"));
        assert_eq!(settings.buildah, "buildah");
        for (text, named) in [
            ("build_concurrency = 0\n".to_owned(), "build_concurrency"),
            ("build_timeout = \"soon\"\n".to_owned(), "build_timeout"),
            ("build_buildah = \"-x\"\n".to_owned(), "build_buildah"),
            (
                format!(
                    "data_dir = {:?}\nbuild_dir = {:?}\n",
                    data.display().to_string(),
                    data.join("builds/../b").display().to_string()
                ),
                "is inside data_dir",
            ),
        ] {
            let err = load(text).unwrap_err().to_string();
            assert!(err.contains(named) && !err.contains('\n'), "{err}");
        }
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
