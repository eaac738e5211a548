//! Polling, for sources that cannot call in: a recurring job lists each due source's
//! branches and tags with `git ls-remote` and builds what moved since the last look, as a
//! push hook naming those refs would. The first look only records where the refs stand.

use super::rules::{self, PushedRef};
use super::Builds;
use crate::jobs::{JobError, JobHandler, JobOutcome};
use crate::ports::ClaimedJob;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Looks for sources due a poll.
pub const POLL_JOB: &str = "builds.poll";
/// How often the job looks; a source's own `poll_interval` is at least [`MIN_POLL`].
const POLL_EVERY: Duration = Duration::from_secs(5);
/// The shortest poll interval a source may ask for.
pub const MIN_POLL: Duration = Duration::from_secs(10);
/// `git ls-remote` gets this long.
const LS_REMOTE_TIMEOUT: Duration = Duration::from_secs(60);

/// Where each branch and tag of a source stands: `refs/heads/main` → commit.
pub type RefHeads = BTreeMap<String, String>;

/// Reads `git ls-remote` output: branches and tags (peeled `^{}` lines give an annotated
/// tag's commit, which wins over the tag object's id).
pub fn parse_ls_remote(output: &str) -> RefHeads {
    let mut heads = RefHeads::new();
    for line in output.lines() {
        let Some((commit, name)) = line.split_once('\t') else {
            continue;
        };
        if !(name.starts_with("refs/heads/") || name.starts_with("refs/tags/")) {
            continue;
        }
        match name.strip_suffix("^{}") {
            Some(tag) => {
                heads.insert(tag.to_owned(), commit.to_owned());
            }
            None => {
                heads
                    .entry(name.to_owned())
                    .or_insert_with(|| commit.to_owned());
            }
        }
    }
    heads
}

/// The refs that are new or moved between two looks.
pub fn moved(before: &RefHeads, now: &RefHeads) -> Vec<PushedRef> {
    now.iter()
        .filter(|(name, commit)| before.get(*name) != Some(*commit))
        .filter_map(|(name, commit)| PushedRef::parse(name, Some(commit.clone())).ok())
        .collect()
}

impl Builds {
    /// Polls every source that is due; returns how many builds it queued.
    pub async fn poll_due(&self) -> crate::Result<usize> {
        let now = self.now();
        let mut queued = 0;
        for source in self.store.sources_to_poll(now).await? {
            let Ok(repo) = source.repository.parse::<berth_oci::RepoName>() else {
                continue;
            };
            let heads = match self.ls_remote(&source).await {
                Ok(heads) => heads,
                Err(err) => {
                    tracing::warn!(repository = %repo, error = %err, "polling a build source failed");
                    self.store.record_poll(repo.as_str(), now, None).await?;
                    continue;
                }
            };
            let before: Option<RefHeads> = source
                .polled_refs
                .as_deref()
                .and_then(|text| serde_json::from_str(text).ok());
            if let Some(before) = before {
                let refs = moved(&before, &heads);
                if !refs.is_empty() {
                    let rules = self.store.build_rules(repo.as_str()).await?;
                    let planned = rules::plan(&rules, &refs, true);
                    queued += self.queue(&repo, planned, "poll").await?.len();
                }
            }
            let text = serde_json::to_string(&heads).unwrap_or_default();
            self.store
                .record_poll(repo.as_str(), now, Some(&text))
                .await?;
        }
        Ok(queued)
    }

    async fn ls_remote(&self, source: &super::StoredSource) -> Result<RefHeads, String> {
        let dir = self
            .settings
            .work_dir
            .join(format!("poll-{}", source.repository.replace('/', "_")));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let (env, _) = self.git_environment(source, &dir)?;
        let mut cmd = Command::new(&self.settings.git);
        cmd.args(["ls-remote", "--heads", "--tags", "--"])
            .arg(&source.git_url)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &dir)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            cmd.env(key, value);
        }
        let output = tokio::time::timeout(
            LS_REMOTE_TIMEOUT,
            tokio::task::spawn_blocking(move || cmd.output()),
        )
        .await
        .map_err(|_| "git ls-remote took too long".to_owned())?
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("could not run git: {e}"))?;
        let _ = std::fs::remove_dir_all(&dir);
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
        }
        Ok(parse_ls_remote(&String::from_utf8_lossy(&output.stdout)))
    }
}

/// The recurring job.
pub struct PollSources(pub Builds);

#[async_trait::async_trait]
impl JobHandler for PollSources {
    async fn run(&self, _job: &ClaimedJob) -> Result<JobOutcome, JobError> {
        // The builds of a node that died are failed by the next node to poll.
        match self.0.fail_interrupted().await {
            Ok(failed) if !failed.is_empty() => {
                tracing::warn!(builds = ?failed, "builds whose node stopped are marked failed")
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "could not fail interrupted builds"),
        }
        self.0
            .poll_due()
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        Ok(JobOutcome::Again(POLL_EVERY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ls_remote_output_gives_branches_and_peeled_tags() {
        let output = "a1\tHEAD\nb2\trefs/heads/main\nc3\trefs/tags/v1\nd4\trefs/tags/v1^{}\ne5\trefs/pull/1/head\n";
        let heads = parse_ls_remote(output);
        assert_eq!(heads.len(), 2);
        assert_eq!(heads["refs/heads/main"], "b2");
        assert_eq!(
            heads["refs/tags/v1"], "d4",
            "the commit, not the tag object"
        );
    }

    #[test]
    fn only_new_and_moved_refs_build() {
        let before = parse_ls_remote("b2\trefs/heads/main\nc3\trefs/heads/dev\n");
        let now = parse_ls_remote("b2\trefs/heads/main\nf6\trefs/heads/dev\n07\trefs/tags/v2\n");
        let refs = moved(&before, &now);
        let names: Vec<&str> = refs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, vec!["dev", "v2"]);
        assert_eq!(refs[0].commit.as_deref(), Some("f6"));
    }
}
