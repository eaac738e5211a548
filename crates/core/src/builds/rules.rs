//! Build rules as Docker Hub has them: which pushed refs (a branch or tag, by name or
//! `/regex/`) build which image tags (a template with `{sourceref}` and `{\N}` captures), and
//! the plan of builds a push of refs makes. Pure and table-tested.

use crate::error::{Error, Result};
use regex::Regex;
use serde::{Deserialize, Serialize};

/// At most this many rules per repository, as on Docker Hub.
pub const MAX_RULES: usize = 10;
/// Longest regex source accepted: rules are short, and a huge pattern only costs memory.
const MAX_PATTERN_LEN: usize = 256;
/// Tags one rule may produce.
const MAX_TAGS_PER_RULE: usize = 10;
/// Build arguments one rule may pass.
pub const MAX_BUILD_ARGS: usize = 32;

/// What a rule builds from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefKind {
    Branch,
    Tag,
}

impl RefKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RefKind::Branch => "branch",
            RefKind::Tag => "tag",
        }
    }

    pub fn parse(s: &str) -> Result<RefKind> {
        match s {
            "branch" => Ok(RefKind::Branch),
            "tag" => Ok(RefKind::Tag),
            other => Err(Error::Invalid(format!(
                "unknown rule type {other:?}: use branch or tag"
            ))),
        }
    }

    /// The full git ref of `name` of this kind.
    pub fn full_ref(self, name: &str) -> String {
        match self {
            RefKind::Branch => format!("refs/heads/{name}"),
            RefKind::Tag => format!("refs/tags/{name}"),
        }
    }
}

/// A rule's source: a literal branch or tag name, or a regular expression written `/.../`.
#[derive(Debug, Clone)]
pub enum RefPattern {
    Name(String),
    Regex(Regex),
}

impl RefPattern {
    pub fn parse(source: &str) -> Result<RefPattern> {
        let source = source.trim();
        if source.is_empty() {
            return Err(Error::Invalid(
                "a rule needs a source: a branch or tag name, or /regex/".into(),
            ));
        }
        if source.len() > MAX_PATTERN_LEN {
            return Err(Error::Invalid(format!(
                "a rule's source is at most {MAX_PATTERN_LEN} characters"
            )));
        }
        match source
            .strip_prefix('/')
            .and_then(|rest| rest.strip_suffix('/'))
        {
            Some(pattern) if source.len() >= 2 => Regex::new(pattern)
                .map(RefPattern::Regex)
                .map_err(|e| Error::Invalid(format!("invalid regular expression {source}: {e}"))),
            _ => {
                check_ref_name(source)?;
                Ok(RefPattern::Name(source.to_owned()))
            }
        }
    }

    /// The captures of `name` (index 0 the whole match), or None when it does not match.
    /// A literal matches only itself, with no groups.
    fn captures(&self, name: &str) -> Option<Vec<String>> {
        match self {
            RefPattern::Name(literal) => (literal == name).then(|| vec![name.to_owned()]),
            RefPattern::Regex(regex) => regex.captures(name).map(|caps| {
                caps.iter()
                    .map(|m| m.map_or(String::new(), |m| m.as_str().to_owned()))
                    .collect()
            }),
        }
    }
}

/// A git ref name as `git check-ref-format` allows it, in the part that matters here: no
/// spaces, control characters, `..`, `~^:?*[\`, and not starting with `-` (it is passed to
/// git as an argument).
pub fn check_ref_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.len() > 255
        || name.starts_with('-')
        || name.starts_with('/')
        || name.ends_with('/')
        || name.ends_with(".lock")
        || name.contains("..")
        || name.contains("@{")
        || name
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c));
    if bad {
        return Err(Error::Invalid(format!(
            "{name:?} is not a valid git ref name"
        )));
    }
    Ok(())
}

/// One piece of a tag template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    SourceRef,
    Capture(usize),
}

/// An image tag template: comma-separated tags, each of literals, `{sourceref}` (the branch
/// or tag name) and `{\N}` (the rule's regex capture N).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagTemplate {
    tags: Vec<Vec<Piece>>,
}

impl TagTemplate {
    pub fn parse(template: &str) -> Result<TagTemplate> {
        let mut tags = Vec::new();
        for part in template.split(',') {
            let part = part.trim();
            if part.is_empty() {
                return Err(Error::Invalid(format!(
                    "tag template {template:?} has an empty tag"
                )));
            }
            tags.push(parse_pieces(part)?);
        }
        if tags.len() > MAX_TAGS_PER_RULE {
            return Err(Error::Invalid(format!(
                "a rule makes at most {MAX_TAGS_PER_RULE} tags"
            )));
        }
        Ok(TagTemplate { tags })
    }

    /// The highest capture group the template names.
    fn highest_capture(&self) -> usize {
        self.tags
            .iter()
            .flatten()
            .filter_map(|p| match p {
                Piece::Capture(n) => Some(*n),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// The image tags for a ref `name` whose match captured `captures` (0 the whole match).
    /// Characters a tag cannot hold (`/` of `feature/x`, ...) become `-`; a tag that is
    /// still invalid (empty, too long) is an error naming it.
    pub fn expand(&self, name: &str, captures: &[String]) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for pieces in &self.tags {
            let mut tag = String::new();
            for piece in pieces {
                match piece {
                    Piece::Literal(text) => tag.push_str(text),
                    Piece::SourceRef => tag.push_str(name),
                    Piece::Capture(n) => {
                        tag.push_str(captures.get(*n).map(String::as_str).unwrap_or(""))
                    }
                }
            }
            let tag = tag_safe(&tag);
            tag.parse::<berth_oci::Tag>().map_err(|_| {
                Error::Invalid(format!(
                    "the rule makes tag {tag:?} for {name:?}, which is not a valid image tag"
                ))
            })?;
            if !out.contains(&tag) {
                out.push(tag);
            }
        }
        Ok(out)
    }
}

fn parse_pieces(part: &str) -> Result<Vec<Piece>> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = part;
    while let Some(open) = rest.find('{') {
        literal.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| Error::Invalid(format!("unclosed {{ in tag template {part:?}")))?;
        let name = &after[..close];
        let piece = if name == "sourceref" {
            Piece::SourceRef
        } else if let Some(n) = name
            .strip_prefix('\\')
            .and_then(|n| n.parse::<usize>().ok())
        {
            Piece::Capture(n)
        } else {
            return Err(Error::Invalid(format!(
                "unknown placeholder {{{name}}} in tag template {part:?}: use {{sourceref}} or {{\\1}}"
            )));
        };
        if !literal.is_empty() {
            pieces.push(Piece::Literal(std::mem::take(&mut literal)));
        }
        pieces.push(piece);
        rest = &after[close + 1..];
    }
    literal.push_str(rest);
    if literal.contains('}') {
        return Err(Error::Invalid(format!(
            "unmatched }} in tag template {part:?}"
        )));
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    // A template of literals only must already be a valid tag.
    if let [Piece::Literal(text)] = pieces.as_slice() {
        text.parse::<berth_oci::Tag>()
            .map_err(|_| Error::Invalid(format!("{text:?} is not a valid image tag")))?;
    }
    Ok(pieces)
}

/// `s` with every character a tag cannot hold replaced by `-`, and a leading `.` or `-`
/// (a tag starts with a word character) replaced by `_`.
fn tag_safe(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    if out.starts_with(['.', '-']) {
        out.replace_range(0..1, "_");
    }
    out
}

/// A rule as the user writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSpec {
    #[serde(rename = "type")]
    pub kind: RefKind,
    /// A branch or tag name, or `/regex/`.
    pub source: String,
    /// The image tag template.
    pub tag: String,
    #[serde(default = "default_dockerfile")]
    pub dockerfile: String,
    #[serde(default = "default_context")]
    pub context: String,
    /// `KEY=VALUE` pairs, in order.
    #[serde(default)]
    pub build_args: Vec<String>,
    #[serde(default = "default_true")]
    pub autobuild: bool,
    /// `os/arch[/variant]` to build for (`linux/amd64`, `linux/arm64`); empty: the
    /// machine's own platform, pushed as a single image. Two or more push an index.
    #[serde(default)]
    pub platforms: Vec<String>,
}

fn default_dockerfile() -> String {
    "Dockerfile".into()
}
fn default_context() -> String {
    ".".into()
}
fn default_true() -> bool {
    true
}

/// A stored rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRule {
    pub id: i64,
    #[serde(flatten)]
    pub spec: RuleSpec,
}

impl RuleSpec {
    /// Checks every field; the error names the one that is wrong.
    pub fn validate(&self) -> Result<()> {
        let pattern = RefPattern::parse(&self.source)?;
        let template = TagTemplate::parse(&self.tag)?;
        let groups = match &pattern {
            RefPattern::Regex(regex) => regex.captures_len() - 1,
            RefPattern::Name(_) => 0,
        };
        if template.highest_capture() > groups {
            return Err(Error::Invalid(format!(
                "tag template {:?} names capture {{\\{}}} but the source {:?} has {groups} group(s)",
                self.tag,
                template.highest_capture(),
                self.source
            )));
        }
        check_path("dockerfile", &self.dockerfile)?;
        check_path("context", &self.context)?;
        if self.build_args.len() > MAX_BUILD_ARGS {
            return Err(Error::Invalid(format!(
                "a rule passes at most {MAX_BUILD_ARGS} build arguments"
            )));
        }
        for arg in &self.build_args {
            parse_build_arg(arg)?;
        }
        check_platforms(&self.platforms)?;
        Ok(())
    }
}

/// Platforms one rule may build for.
pub const MAX_PLATFORMS: usize = 8;

/// The architectures buildah can target (with qemu-user-static where not native), and
/// their variants.
const ARCHITECTURES: &[(&str, &[&str])] = &[
    ("amd64", &[]),
    ("arm64", &["v8"]),
    ("arm", &["v5", "v6", "v7"]),
    ("386", &[]),
    ("ppc64le", &[]),
    ("s390x", &[]),
    ("riscv64", &[]),
    ("mips64le", &[]),
];

/// A platform as buildah's `--platform` takes it: `linux/ARCH` or `linux/ARCH/VARIANT`.
pub fn check_platform(platform: &str) -> Result<()> {
    let parts: Vec<&str> = platform.split('/').collect();
    let known = match parts.as_slice() {
        ["linux", arch] => ARCHITECTURES.iter().any(|(a, _)| a == arch),
        ["linux", arch, variant] => ARCHITECTURES
            .iter()
            .any(|(a, variants)| a == arch && variants.contains(variant)),
        _ => false,
    };
    if !known {
        let archs: Vec<&str> = ARCHITECTURES.iter().map(|(a, _)| *a).collect();
        return Err(Error::Invalid(format!(
            "platform {platform:?} must be linux/ARCH[/VARIANT] with ARCH one of {}",
            archs.join(", ")
        )));
    }
    Ok(())
}

/// A rule's platforms: each valid, none twice, at most [`MAX_PLATFORMS`].
pub fn check_platforms(platforms: &[String]) -> Result<()> {
    if platforms.len() > MAX_PLATFORMS {
        return Err(Error::Invalid(format!(
            "a rule builds for at most {MAX_PLATFORMS} platforms"
        )));
    }
    for (i, platform) in platforms.iter().enumerate() {
        check_platform(platform)?;
        if platforms[..i].contains(platform) {
            return Err(Error::Invalid(format!(
                "platform {platform:?} is listed twice"
            )));
        }
    }
    Ok(())
}

/// `linux/amd64,linux/arm64` (the CLI's and the UI's form) as a list; blanks dropped.
pub fn split_platforms(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A path inside the repository: relative, without `..`, so a rule cannot build from or
/// read outside the checkout.
pub fn check_path(what: &str, path: &str) -> Result<()> {
    let bad = path.is_empty()
        || path.len() > 1024
        || path.starts_with('/')
        || path.starts_with('-')
        || path.split('/').any(|part| part == "..")
        || path.chars().any(|c| c.is_control());
    if bad {
        return Err(Error::Invalid(format!(
            "{what} {path:?} must be a relative path inside the repository (no .., no leading /)"
        )));
    }
    Ok(())
}

/// `KEY=VALUE` with a key of letters, digits and `_`.
pub fn parse_build_arg(arg: &str) -> Result<(&str, &str)> {
    match arg.split_once('=') {
        Some((key, value))
            if !key.is_empty()
                && key.len() <= 128
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !value.contains(['\n', '\r', '\0']) =>
        {
            Ok((key, value))
        }
        _ => Err(Error::Invalid(format!(
            "build argument {arg:?} must be KEY=VALUE (key of letters, digits and _)"
        ))),
    }
}

/// One ref a push changed (or a manual trigger names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushedRef {
    /// None: a bare name from a manual trigger, which may be a branch or a tag.
    pub kind: Option<RefKind>,
    pub name: String,
    /// The commit the ref points at now, when the push said.
    pub commit: Option<String>,
}

impl PushedRef {
    /// `refs/heads/X`, `refs/tags/X`, or a bare name.
    pub fn parse(full: &str, commit: Option<String>) -> Result<PushedRef> {
        let (kind, name) = if let Some(name) = full.strip_prefix("refs/heads/") {
            (Some(RefKind::Branch), name)
        } else if let Some(name) = full.strip_prefix("refs/tags/") {
            (Some(RefKind::Tag), name)
        } else if full.starts_with("refs/") {
            return Err(Error::Invalid(format!(
                "{full:?} is neither a branch (refs/heads/) nor a tag (refs/tags/)"
            )));
        } else {
            (None, full)
        };
        check_ref_name(name)?;
        Ok(PushedRef {
            kind,
            name: name.to_owned(),
            commit,
        })
    }
}

/// A build a push makes: the rule, the ref it matched, and the tags it will push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedBuild {
    pub rule: BuildRule,
    pub kind: RefKind,
    pub name: String,
    pub commit: Option<String>,
    /// Empty when `error` says why the rule makes no valid tag for this ref.
    pub tags: Vec<String>,
    /// Why the build cannot run as planned (it is recorded as failed with this reason).
    pub error: Option<String>,
}

/// The builds a push of `refs` makes: each rule that matches one of them, once (for the
/// first ref it matches, in push order). With `autobuild_only`, rules with autobuild off
/// are left out (webhooks and polling); a manual trigger runs them too.
pub fn plan(rules: &[BuildRule], refs: &[PushedRef], autobuild_only: bool) -> Vec<PlannedBuild> {
    let mut planned = Vec::new();
    for rule in rules {
        if autobuild_only && !rule.spec.autobuild {
            continue;
        }
        let Ok(pattern) = RefPattern::parse(&rule.spec.source) else {
            continue;
        };
        let hit = refs.iter().find_map(|pushed| {
            if pushed.kind.is_some_and(|kind| kind != rule.spec.kind) {
                return None;
            }
            pattern.captures(&pushed.name).map(|caps| (pushed, caps))
        });
        let Some((pushed, captures)) = hit else {
            continue;
        };
        let (tags, error) = match TagTemplate::parse(&rule.spec.tag)
            .and_then(|t| t.expand(&pushed.name, &captures))
        {
            Ok(tags) => (tags, None),
            Err(err) => (Vec::new(), Some(err.to_string())),
        };
        planned.push(PlannedBuild {
            rule: rule.clone(),
            kind: rule.spec.kind,
            name: pushed.name.clone(),
            commit: pushed.commit.clone(),
            tags,
            error,
        });
    }
    planned
}

/// The refs a manual trigger without a ref builds: each rule's literal source (a regex
/// names no ref of its own).
pub fn default_refs(rules: &[BuildRule]) -> Vec<PushedRef> {
    let mut refs: Vec<PushedRef> = Vec::new();
    for rule in rules {
        if let Ok(RefPattern::Name(name)) = RefPattern::parse(&rule.spec.source) {
            let pushed = PushedRef {
                kind: Some(rule.spec.kind),
                name,
                commit: None,
            };
            if !refs.contains(&pushed) {
                refs.push(pushed);
            }
        }
    }
    refs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: i64, kind: RefKind, source: &str, tag: &str) -> BuildRule {
        BuildRule {
            id,
            spec: RuleSpec {
                kind,
                source: source.into(),
                tag: tag.into(),
                dockerfile: "Dockerfile".into(),
                context: ".".into(),
                build_args: vec![],
                autobuild: true,
                platforms: vec![],
            },
        }
    }

    fn pushed(full: &str) -> PushedRef {
        PushedRef::parse(full, Some("c0ffee".into())).unwrap()
    }

    #[test]
    fn templates_expand_sourceref_and_captures() {
        let cases: &[(&str, &str, &str, &[&str])] = &[
            // (source, template, ref name, tags)
            ("/^v([0-9.]+)$/", "{\\1}", "v1.2.3", &["1.2.3"]),
            (
                "/^v([0-9]+)\\.([0-9]+)/",
                "{\\1}.{\\2},latest",
                "v4.7.1",
                &["4.7", "latest"],
            ),
            ("main", "latest", "main", &["latest"]),
            ("main", "{sourceref}", "main", &["main"]),
            (
                "/^feature\\/.*$/",
                "{sourceref}",
                "feature/login",
                &["feature-login"],
            ),
            ("/^rel-(.*)$/", "r{\\1}-{sourceref}", "rel-9", &["r9-rel-9"]),
            ("/^x(y)?$/", "a{\\1}", "x", &["a"]),
        ];
        for (source, template, name, want) in cases {
            let pattern = RefPattern::parse(source).unwrap();
            let caps = pattern
                .captures(name)
                .unwrap_or_else(|| panic!("{source} ~ {name}"));
            let tags = TagTemplate::parse(template)
                .unwrap()
                .expand(name, &caps)
                .unwrap();
            assert_eq!(tags, *want, "{source} {template} {name}");
        }
    }

    #[test]
    fn bad_rules_are_refused_with_what_is_wrong() {
        let base = rule(0, RefKind::Tag, "/^v(.*)$/", "{\\1}").spec;
        let cases: &[(RuleSpec, &str)] = &[
            (
                RuleSpec {
                    source: "".into(),
                    ..base.clone()
                },
                "needs a source",
            ),
            (
                RuleSpec {
                    source: "/([/".into(),
                    ..base.clone()
                },
                "invalid regular expression",
            ),
            (
                RuleSpec {
                    source: "a b".into(),
                    ..base.clone()
                },
                "not a valid git ref",
            ),
            (
                RuleSpec {
                    tag: "{\\2}".into(),
                    ..base.clone()
                },
                "has 1 group",
            ),
            (
                RuleSpec {
                    tag: "{branch}".into(),
                    ..base.clone()
                },
                "unknown placeholder",
            ),
            (
                RuleSpec {
                    tag: "{sourceref".into(),
                    ..base.clone()
                },
                "unclosed",
            ),
            (
                RuleSpec {
                    tag: "a,,b".into(),
                    ..base.clone()
                },
                "empty tag",
            ),
            (
                RuleSpec {
                    tag: "not/valid".into(),
                    ..base.clone()
                },
                "not a valid image tag",
            ),
            (
                RuleSpec {
                    dockerfile: "../Dockerfile".into(),
                    ..base.clone()
                },
                "relative path",
            ),
            (
                RuleSpec {
                    context: "/etc".into(),
                    ..base.clone()
                },
                "relative path",
            ),
            (
                RuleSpec {
                    build_args: vec!["NOVALUE".into()],
                    ..base.clone()
                },
                "KEY=VALUE",
            ),
            (
                RuleSpec {
                    build_args: vec!["A-B=1".into()],
                    ..base.clone()
                },
                "KEY=VALUE",
            ),
            (
                RuleSpec {
                    platforms: vec!["linux/sparc".into()],
                    ..base.clone()
                },
                "linux/ARCH[/VARIANT]",
            ),
            (
                RuleSpec {
                    platforms: vec!["windows/amd64".into()],
                    ..base.clone()
                },
                "linux/ARCH[/VARIANT]",
            ),
            (
                RuleSpec {
                    platforms: vec!["linux/arm/v9".into()],
                    ..base.clone()
                },
                "linux/ARCH[/VARIANT]",
            ),
            (
                RuleSpec {
                    platforms: vec!["linux/amd64".into(), "linux/amd64".into()],
                    ..base.clone()
                },
                "listed twice",
            ),
            (
                RuleSpec {
                    platforms: (0..9).map(|i| format!("linux/x{i}")).collect(),
                    ..base.clone()
                },
                "at most 8 platforms",
            ),
        ];
        for (spec, want) in cases {
            let err = spec.validate().unwrap_err().to_string();
            assert!(err.contains(want), "{spec:?}: {err}");
        }
        base.validate().unwrap();
        RuleSpec {
            platforms: split_platforms("linux/amd64, linux/arm64,linux/arm/v7,"),
            ..base
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn a_push_builds_each_matching_rule_once() {
        let rules = vec![
            rule(1, RefKind::Branch, "main", "latest"),
            rule(2, RefKind::Tag, "/^v([0-9.]+)$/", "{\\1}"),
            rule(3, RefKind::Branch, "/^release-.*$/", "{sourceref}"),
        ];
        let refs = vec![
            pushed("refs/tags/v1.2.3"),
            pushed("refs/heads/main"),
            pushed("refs/tags/v1.2.4"),
            pushed("refs/heads/main"),
            pushed("refs/heads/dev"),
        ];
        let got: Vec<(i64, String, Vec<String>)> = plan(&rules, &refs, true)
            .into_iter()
            .map(|p| (p.rule.id, p.name, p.tags))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, "main".to_owned(), vec!["latest".to_owned()]),
                (2, "v1.2.3".to_owned(), vec!["1.2.3".to_owned()]),
            ]
        );
    }

    #[test]
    fn kinds_only_match_their_own_refs_and_bare_names_match_both() {
        let rules = vec![
            rule(1, RefKind::Branch, "v1", "branch"),
            rule(2, RefKind::Tag, "v1", "tag"),
        ];
        let ids = |refs: &[PushedRef]| -> Vec<i64> {
            plan(&rules, refs, true).iter().map(|p| p.rule.id).collect()
        };
        assert_eq!(ids(&[pushed("refs/heads/v1")]), vec![1]);
        assert_eq!(ids(&[pushed("refs/tags/v1")]), vec![2]);
        assert_eq!(ids(&[pushed("v1")]), vec![1, 2]);
        assert!(ids(&[pushed("refs/heads/v2")]).is_empty());
    }

    #[test]
    fn autobuild_off_rules_run_only_when_triggered_by_hand() {
        let mut manual = rule(1, RefKind::Branch, "main", "latest");
        manual.spec.autobuild = false;
        let rules = vec![manual];
        assert!(plan(&rules, &[pushed("refs/heads/main")], true).is_empty());
        assert_eq!(plan(&rules, &[pushed("refs/heads/main")], false).len(), 1);
    }

    #[test]
    fn a_ref_that_makes_no_valid_tag_is_planned_with_its_reason() {
        let rules = vec![rule(1, RefKind::Branch, "/^(.*)$/", "{\\1}")];
        let long = "a".repeat(200);
        let planned = plan(&rules, &[pushed(&format!("refs/heads/{long}"))], true);
        assert!(planned[0].tags.is_empty());
        assert!(planned[0]
            .error
            .as_deref()
            .unwrap()
            .contains("not a valid image tag"));
    }

    #[test]
    fn refs_are_parsed_by_their_prefix() {
        assert_eq!(pushed("refs/heads/a/b").kind, Some(RefKind::Branch));
        assert_eq!(pushed("refs/tags/v1").kind, Some(RefKind::Tag));
        assert_eq!(pushed("main").kind, None);
        assert!(PushedRef::parse("refs/pull/1/head", None).is_err());
        assert!(PushedRef::parse("--upload-pack=x", None).is_err());
        assert!(PushedRef::parse("a..b", None).is_err());
    }

    #[test]
    fn a_manual_trigger_without_ref_builds_the_literal_sources() {
        let rules = vec![
            rule(1, RefKind::Branch, "main", "latest"),
            rule(2, RefKind::Tag, "/^v.*$/", "{sourceref}"),
            rule(3, RefKind::Branch, "main", "edge"),
        ];
        let refs = default_refs(&rules);
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].name, "main");
    }
}
