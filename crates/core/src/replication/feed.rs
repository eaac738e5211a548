//! Replication on the jobs backbone: pushes and deletions (events) turned into run jobs,
//! scheduled runs queued each minute, and the job that carries a run out and is retried
//! while items fail.

use super::rule::{tag_selected, SourcePattern, Trigger};
use super::service::{full_run_job, is_attachment_tag, Replications};
use super::{
    RunPayload, REPLICATION_BACKOFF, REPLICATION_CURSOR, REPLICATION_MAX_ATTEMPTS,
    REPLICATION_RUN_JOB,
};
use crate::clock::Clock;
use crate::error::Error;
use crate::events::{
    EventKind, EventRecord, ManifestDeletedData, ManifestPushedData, TagDeletedData,
};
use crate::jobs::{Backoff, JobError, JobFeed, JobHandler, JobOutcome};
use crate::ports::{ClaimedJob, MetaError, MetaStore, NewJob, ReplicationRecord};
use std::sync::Arc;
use std::time::Duration;

/// Events read per transaction.
const BATCH: u32 = 200;

/// Turns pushes into runs of the push-triggered rules they match, and deletions into
/// deletions at the destination for rules that replicate them.
pub struct ReplicationFeed {
    store: Arc<dyn MetaStore>,
    clock: Arc<dyn Clock>,
}

impl ReplicationFeed {
    pub fn new(store: Arc<dyn MetaStore>, clock: Arc<dyn Clock>) -> ReplicationFeed {
        ReplicationFeed { store, clock }
    }
}

/// The job one event makes for one rule, if any.
fn job_for(rule: &ReplicationRecord, event: &EventRecord, now_ms: i64) -> Option<NewJob> {
    if !rule.enabled || event.id <= rule.after_event || rule.direction != "push" {
        return None;
    }
    let repository = event.repository.as_deref()?;
    if !SourcePattern::parse(&rule.source).ok()?.matches(repository) {
        return None;
    }
    // Attachments (cosign's tags) go with their image, whatever the patterns say.
    let wanted = |tag: &String| is_attachment_tag(tag) || tag_selected(&rule.tags, tag);
    let (trigger, tags, delete) = match event.kind {
        EventKind::ManifestPushed if matches!(Trigger::parse(&rule.trigger), Ok(Trigger::Push)) => {
            let data: ManifestPushedData = serde_json::from_value(event.data.clone()).ok()?;
            (
                "push",
                data.tags.into_iter().filter(wanted).collect(),
                false,
            )
        }
        EventKind::TagDeleted if rule.deletes => {
            let data: TagDeletedData = serde_json::from_value(event.data.clone()).ok()?;
            (
                "delete",
                vec![data.tag].into_iter().filter(wanted).collect(),
                true,
            )
        }
        EventKind::ManifestDeleted if rule.deletes => {
            let data: ManifestDeletedData = serde_json::from_value(event.data.clone()).ok()?;
            let tags: Vec<String> = data.tags.into_iter().filter(wanted).collect();
            ("delete", tags, true)
        }
        _ => return None,
    };
    if tags.is_empty() {
        return None;
    }
    let payload = RunPayload {
        rule: rule.name.clone(),
        trigger: trigger.to_owned(),
        repository: Some(repository.to_owned()),
        tags,
        delete,
    };
    Some(NewJob {
        kind: REPLICATION_RUN_JOB.to_owned(),
        payload: serde_json::to_string(&payload).ok()?,
        due_at_ms: now_ms,
        max_attempts: REPLICATION_MAX_ATTEMPTS,
        unique_key: None,
    })
}

#[async_trait::async_trait]
impl JobFeed for ReplicationFeed {
    async fn feed(&self) -> Result<usize, MetaError> {
        let mut made = 0;
        loop {
            let from = self.store.replication_cursor(REPLICATION_CURSOR).await?;
            let events = self.store.events_after(from, BATCH).await?;
            let Some(last) = events.last() else {
                return Ok(made);
            };
            let to = last.id;
            let rules = self.store.replications().await?;
            let now = self.clock.now_ms();
            let jobs: Vec<NewJob> = events
                .iter()
                .flat_map(|event| {
                    rules
                        .iter()
                        .filter_map(move |rule| job_for(rule, event, now))
                })
                .collect();
            if !self
                .store
                .hand_on_replications(REPLICATION_CURSOR, from, to, &jobs)
                .await?
            {
                // Another node moved the cursor first; it made these jobs.
                return Ok(made);
            }
            made += jobs.len();
            if (events.len() as u32) < BATCH {
                return Ok(made);
            }
        }
    }
}

/// Runs one replication job: retried (with the failed items recorded in the history) while
/// the destination refuses or is down, so nothing is lost, only delayed.
pub struct ReplicationRunJob(pub Replications);

#[async_trait::async_trait]
impl JobHandler for ReplicationRunJob {
    async fn run(&self, job: &ClaimedJob) -> Result<JobOutcome, JobError> {
        let payload: RunPayload = serde_json::from_str(&job.payload)
            .map_err(|e| JobError::Permanent(format!("broken payload: {e}")))?;
        let Some(rule) = self.0.store().replication(&payload.rule).await? else {
            // The rule was deleted: nothing left to do.
            return Ok(JobOutcome::Done);
        };
        if !rule.enabled {
            return Ok(JobOutcome::Done);
        }
        match self.0.execute(&rule, &payload).await {
            Ok(summary) if summary.tally.failed == 0 => Ok(JobOutcome::Done),
            Ok(summary) => Err(JobError::Retry(format!(
                "{} of {} items failed; first: {}",
                summary.tally.failed,
                summary.tally.items.len(),
                summary
                    .tally
                    .items
                    .iter()
                    .find(|i| i.outcome == "failed")
                    .and_then(|i| i.reason.clone())
                    .unwrap_or_default()
            ))),
            Err(Error::Invalid(why)) => Err(JobError::Permanent(why)),
            Err(other) => Err(JobError::Retry(other.to_string())),
        }
    }

    fn backoff(&self) -> Backoff {
        REPLICATION_BACKOFF
    }
}

/// Each minute, queues the next scheduled run of every rule with a cron trigger (once: the
/// job's key names the rule).
pub struct ReplicationScheduler(pub Replications);

#[async_trait::async_trait]
impl JobHandler for ReplicationScheduler {
    async fn run(&self, _job: &ClaimedJob) -> Result<JobOutcome, JobError> {
        let store = self.0.store();
        let now_s = self.0.clock().now_unix();
        for rule in store.replications().await? {
            if !rule.enabled {
                continue;
            }
            let Ok(Trigger::Schedule(schedule)) = Trigger::parse(&rule.trigger) else {
                continue;
            };
            // A run falls due within the coming minute: queue it for its time.
            if let Some(next) = schedule.next_after(now_s - 1).filter(|n| *n < now_s + 60) {
                store
                    .enqueue_job(&full_run_job(&rule.name, "schedule", next * 1000))
                    .await?;
            }
        }
        Ok(JobOutcome::Again(Duration::from_secs(60)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(trigger: &str, tags: &[&str], deletes: bool) -> ReplicationRecord {
        ReplicationRecord {
            name: "r".into(),
            direction: "push".into(),
            source: "acme/*".into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            remote_url: "http://127.0.0.1:5000".into(),
            target_namespace: None,
            flatten: false,
            username: None,
            password_sealed: None,
            tls_verify: true,
            trigger: trigger.into(),
            deletes,
            enabled: true,
            created_by: "cli".into(),
            created_at: 0,
            after_event: 10,
            bandwidth_limit: None,
        }
    }

    fn event(id: i64, kind: EventKind, repository: &str, data: serde_json::Value) -> EventRecord {
        EventRecord {
            id,
            kind,
            namespace: "acme".into(),
            repository: Some(repository.into()),
            actor: None,
            data,
            created_at: 0,
        }
    }

    fn pushed(tags: &[&str]) -> serde_json::Value {
        serde_json::json!({"digest": "sha256:00", "media_type": "x", "tags": tags, "platforms": [], "size": 1})
    }

    #[test]
    fn pushes_of_matching_tags_make_jobs_for_push_rules_only() {
        let push = rule("push", &["v*"], false);
        let job = job_for(
            &push,
            &event(
                11,
                EventKind::ManifestPushed,
                "acme/api",
                pushed(&["v1", "dev"]),
            ),
            0,
        )
        .expect("a job");
        let payload: RunPayload = serde_json::from_str(&job.payload).unwrap();
        assert_eq!(payload.tags, vec!["v1"]);
        assert_eq!(payload.repository.as_deref(), Some("acme/api"));
        assert!(job_for(
            &push,
            &event(11, EventKind::ManifestPushed, "acme/api", pushed(&["dev"])),
            0
        )
        .is_none());
        assert!(job_for(
            &push,
            &event(11, EventKind::ManifestPushed, "other/api", pushed(&["v1"])),
            0
        )
        .is_none());
        assert!(
            job_for(
                &push,
                &event(9, EventKind::ManifestPushed, "acme/api", pushed(&["v1"])),
                0
            )
            .is_none(),
            "older than the rule"
        );
        let manual = rule("manual", &[], false);
        assert!(job_for(
            &manual,
            &event(11, EventKind::ManifestPushed, "acme/api", pushed(&["v1"])),
            0
        )
        .is_none());
    }

    #[test]
    fn deletions_are_replicated_only_when_the_rule_says_so() {
        let data = serde_json::json!({"tag": "v1", "digest": "sha256:00"});
        let keeps = rule("push", &[], false);
        assert!(job_for(
            &keeps,
            &event(11, EventKind::TagDeleted, "acme/api", data.clone()),
            0
        )
        .is_none());
        let deletes = rule("manual", &[], true);
        let job = job_for(
            &deletes,
            &event(11, EventKind::TagDeleted, "acme/api", data),
            0,
        )
        .unwrap();
        let payload: RunPayload = serde_json::from_str(&job.payload).unwrap();
        assert!(payload.delete);
        assert_eq!(payload.tags, vec!["v1"]);
    }
}
