//! Content lifecycle: which tags are immutable, what retention policies keep and delete and
//! the service that manages both and runs retention (by hand or on a schedule); online
//! garbage collection (`gc`) and space usage with namespace quotas (`usage`).

pub mod gc;
pub mod immutable;
pub mod retention;
mod schedule;
mod service;
pub mod stored;
pub mod usage;

pub use gc::{Collector, GcOptions, GcReport, GC_JOB};
pub use usage::{format_size, parse_quota, UsageService};

pub use immutable::{is_cosign_fallback_tag, protecting, ImmutableRequest, ImmutableRule};
pub use retention::{plan, RetentionPlan, RetentionPolicy, RetentionRequest};
pub use schedule::Schedule;
pub use service::{
    mirror_retention, Lifecycle, RetentionRunJob, RetentionScheduler, RunReport, RunTrigger,
    MIRROR_SETTINGS_ACTOR, RETENTION_RUN_JOB, RETENTION_SCHEDULE_JOB,
};

use berth_oci::RepoName;

/// What a lifecycle rule applies to: one repository, or every repository of a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Repository(RepoName),
    Namespace(String),
}

impl Target {
    /// `NAMESPACE/REPO` is a repository, a single name a namespace.
    pub fn parse(text: &str) -> Result<Target, String> {
        if text.contains('/') {
            text.parse::<RepoName>()
                .map(Target::Repository)
                .map_err(|e| format!("invalid repository name {text:?}: {e}"))
        } else {
            let valid = !text.is_empty()
                && text.len() <= 255
                && text
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
            if valid {
                Ok(Target::Namespace(text.to_owned()))
            } else {
                Err(format!(
                    "invalid namespace name {:?}",
                    text.chars().take(60).collect::<String>()
                ))
            }
        }
    }

    /// `repository` or `namespace`, as stored.
    pub fn scope(&self) -> &'static str {
        match self {
            Target::Repository(_) => "repository",
            Target::Namespace(_) => "namespace",
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Target::Repository(repo) => repo.as_str(),
            Target::Namespace(namespace) => namespace,
        }
    }

    /// The stored form back: `scope` and `name` as [`Target::scope`] and [`Target::name`].
    pub fn from_stored(scope: &str, name: &str) -> Option<Target> {
        match scope {
            "repository" => name.parse().ok().map(Target::Repository),
            "namespace" => Some(Target::Namespace(name.to_owned())),
            _ => None,
        }
    }

    /// The namespace the target is in (or is).
    pub fn namespace(&self) -> &str {
        match self {
            Target::Repository(repo) => repo.namespace().unwrap_or(repo.as_str()),
            Target::Namespace(namespace) => namespace,
        }
    }

    /// The same target as the webhooks' access check takes it.
    pub(crate) fn as_webhook_target(&self) -> crate::webhooks::WebhookTarget {
        match self {
            Target::Repository(repo) => crate::webhooks::WebhookTarget::Repository(repo.clone()),
            Target::Namespace(ns) => crate::webhooks::WebhookTarget::Namespace(ns.clone()),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Most tag patterns one rule or policy takes.
pub const MAX_TAG_PATTERNS: usize = 20;

/// Checks glob patterns for tags: tag characters and `*`, at most 128 characters, at most
/// [`MAX_TAG_PATTERNS`]; duplicates dropped. `what` names the list in messages.
pub fn check_tag_patterns(patterns: &[String], what: &str) -> Result<Vec<String>, String> {
    if patterns.len() > MAX_TAG_PATTERNS {
        return Err(format!("at most {MAX_TAG_PATTERNS} {what} patterns"));
    }
    let mut out: Vec<String> = Vec::new();
    for pattern in patterns {
        let pattern = pattern.trim();
        let valid = !pattern.is_empty()
            && pattern.len() <= 128
            && pattern
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-*".contains(c));
        if !valid {
            return Err(format!(
                "invalid {what} pattern {:?}: a glob of letters, digits, '_', '.', '-' and '*', at most 128 characters",
                pattern.chars().take(140).collect::<String>()
            ));
        }
        if !out.iter().any(|p| p == pattern) {
            out.push(pattern.to_owned());
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests_support {
    /// 64 hex digits derived from `name`, for readable test digests.
    pub fn hex_of(name: &str) -> String {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(name.as_bytes()))
    }
}
