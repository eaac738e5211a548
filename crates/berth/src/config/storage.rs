//! The `[storage]` section: which blob store holds blob bytes (the data directory, or an
//! S3-compatible bucket), from the file and `BERTH_STORAGE_*` variables, checked at load.

use super::{env, parse_bool, ConfigError, Setting, Source};
use serde::Deserialize;
use std::fmt::{self, Write as _};

/// The kinds of blob store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageKind {
    /// `blobs/` and `uploads/` under the data directory.
    Filesystem,
    /// An S3-compatible bucket.
    S3,
}

impl fmt::Display for StorageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StorageKind::Filesystem => "filesystem",
            StorageKind::S3 => "s3",
        })
    }
}

/// The section as the TOML file writes it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StorageFile {
    kind: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    bucket: Option<String>,
    prefix: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    path_style: Option<bool>,
    redirect: Option<bool>,
}

/// The effective `[storage]` settings.
#[derive(Clone)]
pub struct StorageConfig {
    pub kind: Setting<StorageKind>,
    /// `http(s)://host:port` of the S3 service (None: AWS S3 in `region`).
    pub endpoint: Setting<Option<String>>,
    pub region: Setting<String>,
    pub bucket: Setting<Option<String>>,
    /// A folder of the bucket that Berth's keys go under (empty: the bucket's root).
    pub prefix: Setting<String>,
    pub access_key_id: Setting<Option<String>>,
    /// Never shown: `config show` says only whether it is set.
    pub secret_access_key: Setting<Option<String>>,
    /// Path-style addressing (`endpoint/bucket/key`); default: on with an `endpoint`.
    pub path_style: Setting<Option<bool>>,
    /// Blob GETs answer 307 to a presigned URL (default: on for S3).
    pub redirect: Setting<bool>,
}

impl fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageConfig")
            .field("kind", &self.kind.value)
            .field("endpoint", &self.endpoint.value)
            .field("bucket", &self.bucket.value)
            .finish_non_exhaustive()
    }
}

fn parse_kind(raw: &str, source: Source) -> Result<StorageKind, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "filesystem" => Ok(StorageKind::Filesystem),
        "s3" => Ok(StorageKind::S3),
        _ => Err(ConfigError::Invalid {
            setting: "storage.kind",
            value: raw.to_owned(),
            origin: source,
            reason: "expected \"filesystem\" or \"s3\"".into(),
        }),
    }
}

/// A text value; empty counts as unset.
fn text(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            kind: Setting::default(StorageKind::Filesystem),
            endpoint: Setting::default(None),
            region: Setting::default("us-east-1".to_owned()),
            bucket: Setting::default(None),
            prefix: Setting::default(String::new()),
            access_key_id: Setting::default(None),
            secret_access_key: Setting::default(None),
            path_style: Setting::default(None),
            redirect: Setting::default(true),
        }
    }
}

impl StorageConfig {
    pub(super) fn apply_file(&mut self, file: StorageFile) -> Result<(), ConfigError> {
        let from = Source::File;
        self.kind
            .set(file.kind.map(|k| parse_kind(&k, from)).transpose()?, from);
        self.endpoint.set(text(file.endpoint).map(Some), from);
        self.region.set(text(file.region), from);
        self.bucket.set(text(file.bucket).map(Some), from);
        self.prefix.set(file.prefix, from);
        self.access_key_id
            .set(text(file.access_key_id).map(Some), from);
        self.secret_access_key
            .set(text(file.secret_access_key).map(Some), from);
        self.path_style.set(file.path_style.map(Some), from);
        self.redirect.set(file.redirect, from);
        Ok(())
    }

    pub(super) fn apply_env(&mut self) -> Result<(), ConfigError> {
        let from = Source::Env;
        self.kind.set(
            env("BERTH_STORAGE_KIND")?
                .map(|k| parse_kind(&k, from))
                .transpose()?,
            from,
        );
        self.endpoint
            .set(env("BERTH_STORAGE_ENDPOINT")?.map(Some), from);
        self.region.set(env("BERTH_STORAGE_REGION")?, from);
        self.bucket
            .set(env("BERTH_STORAGE_BUCKET")?.map(Some), from);
        self.prefix.set(env("BERTH_STORAGE_PREFIX")?, from);
        self.access_key_id
            .set(env("BERTH_STORAGE_ACCESS_KEY_ID")?.map(Some), from);
        self.secret_access_key
            .set(env("BERTH_STORAGE_SECRET_ACCESS_KEY")?.map(Some), from);
        self.path_style.set(
            env("BERTH_STORAGE_PATH_STYLE")?
                .map(|b| parse_bool("storage.path_style", &b, from).map(Some))
                .transpose()?,
            from,
        );
        self.redirect.set(
            env("BERTH_STORAGE_REDIRECT")?
                .map(|b| parse_bool("storage.redirect", &b, from))
                .transpose()?,
            from,
        );
        Ok(())
    }

    /// One line for a section that cannot work: S3 without its bucket or keys, or S3 keys
    /// given to the filesystem store (a typo in `kind` would otherwise go unnoticed).
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let missing = |key: &str, variable: &str| {
            ConfigError::Inconsistent(format!(
                "[storage] kind = \"s3\" (from {}) needs {key} (or {variable})",
                self.kind.source
            ))
        };
        match self.kind.value {
            StorageKind::S3 => {
                if self.bucket.value.is_none() {
                    return Err(missing("bucket", "BERTH_STORAGE_BUCKET"));
                }
                if self.access_key_id.value.is_none() {
                    return Err(missing("access_key_id", "BERTH_STORAGE_ACCESS_KEY_ID"));
                }
                if self.secret_access_key.value.is_none() {
                    return Err(missing(
                        "secret_access_key",
                        "BERTH_STORAGE_SECRET_ACCESS_KEY",
                    ));
                }
            }
            StorageKind::Filesystem => {
                let set = [
                    (
                        "endpoint",
                        self.endpoint.value.is_some(),
                        self.endpoint.source,
                    ),
                    ("bucket", self.bucket.value.is_some(), self.bucket.source),
                    (
                        "access_key_id",
                        self.access_key_id.value.is_some(),
                        self.access_key_id.source,
                    ),
                ];
                if let Some((key, _, source)) = set.iter().find(|(_, set, _)| *set) {
                    return Err(ConfigError::Inconsistent(format!(
                        "[storage] {key} is set (from {source}) but kind is \"filesystem\": set kind = \"s3\" (or BERTH_STORAGE_KIND=s3) to use a bucket"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Whether requests use `endpoint/bucket/key`.
    pub fn path_style(&self) -> bool {
        self.path_style
            .value
            .unwrap_or(self.endpoint.value.is_some())
    }

    /// The settings the S3 store is opened with (kind = "s3").
    #[cfg(feature = "s3")]
    pub fn s3_settings(&self) -> berth_storage::S3Settings {
        berth_storage::S3Settings {
            endpoint: self.endpoint.value.clone(),
            region: self.region.value.clone(),
            bucket: self.bucket.value.clone().unwrap_or_default(),
            prefix: self.prefix.value.clone(),
            access_key_id: self.access_key_id.value.clone().unwrap_or_default(),
            secret_access_key: self.secret_access_key.value.clone().unwrap_or_default(),
            path_style: self.path_style(),
            redirect: self.redirect.value,
            // AWS tools read this variable for extra trusted roots; object_store does not,
            // so it is honoured here (only an https:// endpoint uses it).
            ca_bundle: std::env::var_os("AWS_CA_BUNDLE")
                .filter(|v| !v.is_empty())
                .filter(|_| {
                    self.endpoint
                        .value
                        .as_deref()
                        .is_none_or(|e| e.starts_with("https://"))
                })
                .map(std::path::PathBuf::from),
        }
    }

    /// The section's lines for `berth config show` (the secret only as set or not).
    pub(super) fn describe(&self, out: &mut String) {
        let mut line = |name: &str, value: &dyn fmt::Display, source: Source| {
            let _ = writeln!(out, "{name:<19} = {value}  ({source})");
        };
        line("storage.kind", &self.kind.value, self.kind.source);
        if self.kind.value == StorageKind::Filesystem {
            return;
        }
        let or = |v: &Option<String>, none: &str| v.clone().unwrap_or_else(|| none.to_owned());
        line(
            "storage.endpoint",
            &or(&self.endpoint.value, "(AWS S3)"),
            self.endpoint.source,
        );
        line("storage.region", &self.region.value, self.region.source);
        line(
            "storage.bucket",
            &or(&self.bucket.value, "(none)"),
            self.bucket.source,
        );
        line("storage.prefix", &self.prefix.value, self.prefix.source);
        line(
            "storage.access_key_id",
            &or(&self.access_key_id.value, "(none)"),
            self.access_key_id.source,
        );
        line(
            "storage.secret_access_key",
            &if self.secret_access_key.value.is_some() {
                "(set)"
            } else {
                "(none)"
            },
            self.secret_access_key.source,
        );
        line(
            "storage.path_style",
            &self.path_style(),
            self.path_style.source,
        );
        line(
            "storage.redirect",
            &self.redirect.value,
            self.redirect.source,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_toml(text: &str) -> Result<StorageConfig, ConfigError> {
        let file: StorageFile = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: "t.toml".into(),
            message: e.message().to_owned(),
        })?;
        let mut config = StorageConfig::default();
        config.apply_file(file)?;
        config.check()?;
        Ok(config)
    }

    #[test]
    fn the_default_is_the_data_directory() {
        let config = from_toml("").unwrap();
        assert_eq!(config.kind.value, StorageKind::Filesystem);
        assert!(config.redirect.value);
    }

    #[test]
    fn an_s3_section_is_read_whole() {
        let config = from_toml(
            r#"
            kind = "s3"
            endpoint = "http://127.0.0.1:3900"
            region = "garage"
            bucket = "registry"
            prefix = "berth"
            access_key_id = "GK1"
            secret_access_key = "secret"
            redirect = false
            "#,
        )
        .unwrap();
        assert_eq!(config.kind.value, StorageKind::S3);
        assert!(config.path_style(), "on by default with an endpoint");
        assert!(!config.redirect.value);
        let mut shown = String::new();
        config.describe(&mut shown);
        assert!(shown.contains("storage.bucket") && shown.contains("registry"));
        assert!(
            !shown.contains("secret\n") && shown.contains("(set)"),
            "{shown}"
        );
    }

    #[test]
    fn incomplete_or_contradictory_sections_are_refused_in_one_line() {
        for (text, expected) in [
            ("kind = \"s3\"", "needs bucket"),
            ("kind = \"s3\"\nbucket = \"b\"", "needs access_key_id"),
            (
                "kind = \"s3\"\nbucket = \"b\"\naccess_key_id = \"k\"",
                "needs secret_access_key",
            ),
            ("bucket = \"b\"", "but kind is \"filesystem\""),
            ("kind = \"gcs\"", "expected \"filesystem\" or \"s3\""),
        ] {
            let err = from_toml(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
        let err = from_toml("buckets = \"b\"").unwrap_err().to_string();
        assert!(err.contains("unknown field"), "{err}");
    }

    /// The variable of each key, as the README lists them.
    const VARIABLES: [(&str, &str); 9] = [
        ("kind", "BERTH_STORAGE_KIND"),
        ("endpoint", "BERTH_STORAGE_ENDPOINT"),
        ("region", "BERTH_STORAGE_REGION"),
        ("bucket", "BERTH_STORAGE_BUCKET"),
        ("prefix", "BERTH_STORAGE_PREFIX"),
        ("access_key_id", "BERTH_STORAGE_ACCESS_KEY_ID"),
        ("secret_access_key", "BERTH_STORAGE_SECRET_ACCESS_KEY"),
        ("path_style", "BERTH_STORAGE_PATH_STYLE"),
        ("redirect", "BERTH_STORAGE_REDIRECT"),
    ];

    #[test]
    fn every_key_has_its_variable_and_is_in_the_readme() {
        let readme = include_str!("../../../../README.md");
        for (key, variable) in VARIABLES {
            assert!(
                readme.contains(&format!("| `{key}` | `{variable}` |")),
                "README lists {key} with {variable}"
            );
            assert_eq!(
                variable,
                format!("BERTH_STORAGE_{}", key.to_ascii_uppercase())
            );
        }
    }
}
