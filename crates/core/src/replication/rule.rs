//! What a replication rule says, checked: which repositories and tags it copies, where to,
//! under which name there, and when it runs.

use crate::access::glob_matches;
use crate::lifecycle::Schedule;

/// Longest rule name.
const MAX_NAME_LEN: usize = 64;
/// Most tag patterns one rule may have.
pub const MAX_TAG_PATTERNS: usize = 20;
const MAX_PATTERN_LEN: usize = 128;

/// A rule's name: what the CLI, the API and the history call it.
pub fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid rule name {:?}: use 1 to {MAX_NAME_LEN} letters, digits, '-', '_' or '.', starting with a letter or digit",
            name.chars().take(80).collect::<String>()
        ))
    }
}

/// The repositories a rule copies: `NAMESPACE/REPO_GLOB`, where `*` in the glob matches any
/// text, `/` included (`acme/*` is every repository of `acme`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePattern {
    pub namespace: String,
    pub glob: String,
}

impl SourcePattern {
    pub fn parse(text: &str) -> Result<SourcePattern, String> {
        let text = text.trim();
        let shown = || text.chars().take(80).collect::<String>();
        let Some((namespace, glob)) = text.split_once('/') else {
            return Err(format!(
                "invalid source {:?}: write NAMESPACE/REPO_GLOB, e.g. acme/* or acme/api",
                shown()
            ));
        };
        let namespace_ok = !namespace.is_empty()
            && namespace.len() <= 255
            && namespace
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
        let glob_ok = !glob.is_empty()
            && glob.len() <= MAX_PATTERN_LEN
            && !glob.starts_with('/')
            && !glob.ends_with('/')
            && !glob.contains("//")
            && glob
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_./*".contains(c));
        if !namespace_ok || !glob_ok {
            return Err(format!(
                "invalid source {:?}: the namespace is a lowercase name without '*', the repository glob uses lowercase letters, digits, '-', '_', '.', '/' and '*'",
                shown()
            ));
        }
        Ok(SourcePattern {
            namespace: namespace.to_owned(),
            glob: glob.to_owned(),
        })
    }

    /// Whether the rule copies `repository` (`namespace/rest`).
    pub fn matches(&self, repository: &str) -> bool {
        repository
            .strip_prefix(self.namespace.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|rest| glob_matches(&self.glob, rest))
    }
}

impl std::fmt::Display for SourcePattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.glob)
    }
}

/// The remote repositories a pull rule imports: a glob over their whole name at the remote
/// (`library/*`, `acme/api-*`, `alpine`), `*` matching any text, `/` included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotePattern(String);

impl RemotePattern {
    pub fn parse(text: &str) -> Result<RemotePattern, String> {
        let text = text.trim();
        let valid = !text.is_empty()
            && text.len() <= MAX_PATTERN_LEN
            && !text.starts_with('/')
            && !text.ends_with('/')
            && !text.contains("//")
            && text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_./*".contains(c));
        if valid {
            Ok(RemotePattern(text.to_owned()))
        } else {
            Err(format!(
                "invalid source {:?}: name the remote repositories with a glob of lowercase letters, digits, '-', '_', '.', '/' and '*', e.g. library/* or acme/api",
                text.chars().take(80).collect::<String>()
            ))
        }
    }

    pub fn matches(&self, repository: &str) -> bool {
        glob_matches(&self.0, repository)
    }

    /// The one repository it names when it has no `*` (no catalog needed then: registries
    /// such as Docker Hub do not serve theirs).
    pub fn exact(&self) -> Option<&str> {
        (!self.0.contains('*')).then_some(self.0.as_str())
    }
}

impl std::fmt::Display for RemotePattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an imported repository goes here: under `namespace`, with its remote name, or only
/// the name's last component with `flatten` (`library/nginx` → `dockerhub/nginx`).
pub fn import_name(remote: &str, namespace: &str, flatten: bool) -> String {
    let rest = if flatten {
        remote.rsplit('/').next().unwrap_or(remote)
    } else {
        remote
    };
    format!("{namespace}/{rest}")
}

/// Checks tag globs (`*` matches any text); none means every tag.
pub fn check_tag_patterns(patterns: &[String]) -> Result<(), String> {
    if patterns.len() > MAX_TAG_PATTERNS {
        return Err(format!(
            "a rule has at most {MAX_TAG_PATTERNS} tag patterns"
        ));
    }
    for pattern in patterns {
        let valid = !pattern.is_empty()
            && pattern.len() <= MAX_PATTERN_LEN
            && pattern
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.*".contains(c));
        if !valid {
            return Err(format!(
                "invalid tag pattern {:?}: use letters, digits, '-', '_', '.' and '*'",
                pattern.chars().take(80).collect::<String>()
            ));
        }
    }
    Ok(())
}

/// Whether `tag` is one the patterns select.
pub fn tag_selected(patterns: &[String], tag: &str) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| glob_matches(p, tag))
}

/// The cosign tag-fallback tags of a manifest (`sha256-HEX.sig`, `.att`, `.sbom`): copied
/// with the manifest they are about, whatever the tag patterns say.
pub fn fallback_tags(digest: &berth_oci::Digest) -> [String; 3] {
    let base = digest.to_string().replacen(':', "-", 1);
    [
        format!("{base}.sig"),
        format!("{base}.att"),
        format!("{base}.sbom"),
    ]
}

/// Checks a remote registry's URL: http or https, a host, nothing after the path.
pub fn check_remote_url(text: &str) -> Result<String, String> {
    let text = text.trim().trim_end_matches('/');
    let shown = || text.chars().take(120).collect::<String>();
    let url = url::Url::parse(text).map_err(|e| format!("invalid URL {:?}: {e}", shown()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("invalid URL {:?}: use http or https", shown()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("invalid URL {:?}: it names no host", shown()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "put credentials in --username and --password-stdin, not in the URL".to_owned(),
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "invalid URL {:?}: a registry URL has no query or fragment",
            shown()
        ));
    }
    Ok(text.to_owned())
}

/// Checks the destination namespace: lowercase path components (`acme`, `ghcr-owner/mirror`).
pub fn check_target_namespace(text: &str) -> Result<(), String> {
    let valid = !text.is_empty()
        && text.len() <= 200
        && text.split('/').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
        });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid destination namespace {:?}: lowercase names separated by '/'",
            text.chars().take(80).collect::<String>()
        ))
    }
}

/// Where a repository goes: the source's namespace replaced by `target_namespace` (kept when
/// there is none); with `flatten`, only the repository's last component stays
/// (`acme/team/api` → `mirror/api`).
pub fn destination_name(
    source: &SourcePattern,
    repository: &str,
    target_namespace: Option<&str>,
    flatten: bool,
) -> String {
    let rest = repository
        .strip_prefix(source.namespace.as_str())
        .and_then(|r| r.strip_prefix('/'))
        .unwrap_or(repository);
    let rest = if flatten {
        rest.rsplit('/').next().unwrap_or(rest)
    } else {
        rest
    };
    format!(
        "{}/{rest}",
        target_namespace.unwrap_or(source.namespace.as_str())
    )
}

/// When a rule runs.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// After every push of a matching tag (an event on the backbone).
    Push,
    /// Only when asked.
    Manual,
    /// On a cron schedule (UTC); boxed, as a parsed schedule is large.
    Schedule(Box<Schedule>),
}

impl Trigger {
    pub fn parse(text: &str) -> Result<Trigger, String> {
        match text.trim() {
            "" | "manual" => Ok(Trigger::Manual),
            "push" => Ok(Trigger::Push),
            other => Schedule::parse(other)
                .map(|schedule| Trigger::Schedule(Box::new(schedule)))
                .map_err(|e| format!("{e}; a trigger is push, manual, or a cron expression")),
        }
    }

    pub fn as_text(&self) -> String {
        match self {
            Trigger::Push => "push".to_owned(),
            Trigger::Manual => "manual".to_owned(),
            Trigger::Schedule(schedule) => schedule.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_match_their_namespace_and_glob() {
        let all = SourcePattern::parse("acme/*").unwrap();
        assert!(all.matches("acme/api"));
        assert!(all.matches("acme/team/api"));
        assert!(!all.matches("acmex/api"));
        assert!(!all.matches("other/api"));
        let one = SourcePattern::parse("acme/api-*").unwrap();
        assert!(one.matches("acme/api-v2"));
        assert!(!one.matches("acme/web"));
        for bad in [
            "acme",
            "/api",
            "ac*me/api",
            "Acme/api",
            "acme/",
            "acme/a//b",
            "acme/A",
        ] {
            assert!(SourcePattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn destination_names_replace_the_namespace_and_flatten() {
        let source = SourcePattern::parse("acme/*").unwrap();
        assert_eq!(
            destination_name(&source, "acme/team/api", None, false),
            "acme/team/api"
        );
        assert_eq!(
            destination_name(&source, "acme/team/api", Some("mirror"), false),
            "mirror/team/api"
        );
        assert_eq!(
            destination_name(&source, "acme/team/api", Some("owner/x"), true),
            "owner/x/api"
        );
    }

    #[test]
    fn remote_patterns_match_whole_names_and_imports_land_in_the_namespace() {
        let library = RemotePattern::parse("library/*").unwrap();
        assert!(library.matches("library/nginx"));
        assert!(!library.matches("acme/nginx"));
        assert_eq!(library.exact(), None);
        let one = RemotePattern::parse("alpine").unwrap();
        assert!(one.matches("alpine"));
        assert_eq!(one.exact(), Some("alpine"));
        for bad in ["", "/x", "x/", "a//b", "Acme/x", "a b"] {
            assert!(RemotePattern::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            import_name("library/nginx", "hub", false),
            "hub/library/nginx"
        );
        assert_eq!(import_name("library/nginx", "hub", true), "hub/nginx");
        assert_eq!(import_name("alpine", "hub", true), "hub/alpine");
    }

    #[test]
    fn urls_triggers_and_tags_are_checked() {
        assert_eq!(
            check_remote_url("https://ghcr.io/").unwrap(),
            "https://ghcr.io"
        );
        for bad in [
            "ftp://x",
            "http://",
            "https://u:p@host",
            "https://h/?a=b",
            "nonsense",
        ] {
            assert!(check_remote_url(bad).is_err(), "{bad}");
        }
        assert!(matches!(Trigger::parse("push"), Ok(Trigger::Push)));
        assert!(matches!(Trigger::parse("manual"), Ok(Trigger::Manual)));
        assert!(matches!(
            Trigger::parse("0 3 * * *"),
            Ok(Trigger::Schedule(_))
        ));
        assert!(Trigger::parse("sometimes").is_err());
        assert!(check_tag_patterns(&["v*".into(), "latest".into()]).is_ok());
        assert!(check_tag_patterns(&["v/1".into()]).is_err());
        assert!(tag_selected(&[], "anything"));
        assert!(tag_selected(&["v*".into()], "v1.2"));
        assert!(!tag_selected(&["v*".into()], "latest"));
        assert!(check_name("nightly-ghcr").is_ok());
        assert!(check_name("-x").is_err());
        assert!(check_name("a b").is_err());
    }
}
