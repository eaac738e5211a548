//! The backbone on SQLite: events recorded with their change or not at all (the outbox), and
//! the jobs runner's leases, backoff, dead jobs and recurring jobs, with time moved by hand.

use berth_core::clock::{Clock, ManualClock};
use berth_core::events::{data_of, EventKind, ManifestPushedData, NewEvent};
use berth_core::jobs::{recurring, JobError, JobHandler, JobOutcome, Runner, RunnerOptions, Wake};
use berth_core::ports::{
    ClaimedJob, EventLog, JobQueue, JobState, ManifestPlatform, Manifests, MetaError, NewJob,
    NewManifest, Repositories, Tags,
};
use berth_meta::SqliteMeta;
use berth_oci::{Digest, RepoName};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

const NOW: i64 = 1_700_000_000;

async fn open() -> (tempfile::TempDir, SqliteMeta) {
    let dir = tempfile::tempdir().unwrap();
    let meta = SqliteMeta::open(&dir.path().join("berth.db"))
        .await
        .unwrap();
    (dir, meta)
}

fn pushed(tag: &str) -> NewManifest {
    let body = format!(r#"{{"schemaVersion":2,"tag":"{tag}"}}"#);
    let digest = Digest::sha256_of(body.as_bytes());
    let event = NewEvent::about(
        EventKind::ManifestPushed,
        "alice/app",
        Some("alice"),
        data_of(&ManifestPushedData {
            digest: digest.to_string(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            tags: vec![tag.to_owned()],
            platforms: vec![],
            size: body.len() as u64,
            subject: None,
        }),
    );
    NewManifest {
        repo: "alice/app".parse().unwrap(),
        digest,
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        body: body.into_bytes(),
        blobs: vec![],
        children: vec![],
        subject: None,
        artifact_type: None,
        annotations_json: None,
        platform: ManifestPlatform::None,
        tags: vec![tag.to_owned()],
        now: NOW,
        actor: Some("alice".into()),
        events: vec![event],
    }
}

async fn kinds(meta: &SqliteMeta) -> Vec<EventKind> {
    meta.events_after(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

#[tokio::test]
async fn a_change_that_fails_before_its_commit_leaves_neither_change_nor_event() {
    let (dir, meta) = open().await;
    // Inject a failure after the change's own statements: the event insert comes last.
    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("berth.db").display()
    ))
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER fail_events BEFORE INSERT ON events \
         WHEN new.kind = 'manifest.pushed' BEGIN SELECT RAISE(ABORT, 'injected'); END",
    )
    .execute(&db)
    .await
    .unwrap();
    let err = meta.put_manifest(&pushed("1.0")).await.unwrap_err();
    assert!(
        matches!(err, MetaError::Backend(ref m) if m.contains("injected")),
        "{err}"
    );
    let repo: RepoName = "alice/app".parse().unwrap();
    assert!(
        !meta.repository_exists(&repo).await.unwrap(),
        "the repository was not created"
    );
    assert!(meta.manifest_by_tag(&repo, "1.0").await.unwrap().is_none());
    assert!(kinds(&meta).await.is_empty(), "and no event was recorded");

    sqlx::query("DROP TRIGGER fail_events")
        .execute(&db)
        .await
        .unwrap();
    meta.put_manifest(&pushed("1.0")).await.unwrap();
    assert_eq!(
        kinds(&meta).await,
        [EventKind::RepositoryCreated, EventKind::ManifestPushed]
    );
    let events = meta.events_after(0, 10).await.unwrap();
    assert_eq!(events[0].actor.as_deref(), Some("alice"));
    assert_eq!(events[1].data["tags"], serde_json::json!(["1.0"]));

    // A refused change (a tag that is not there) records nothing either; a done one does.
    assert!(!meta.delete_tag(&repo, "nope", Some("bob")).await.unwrap());
    assert!(meta.delete_tag(&repo, "1.0", Some("bob")).await.unwrap());
    let events = meta.events_after(2, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::TagDeleted);
    assert_eq!(events[0].actor.as_deref(), Some("bob"));
    assert_eq!(events[0].data["tag"], "1.0");
}

/// Counts its runs, and fails the first `failures` of them.
struct Flaky {
    runs: AtomicU32,
    failures: u32,
}

#[async_trait::async_trait]
impl JobHandler for Flaky {
    async fn run(&self, _job: &ClaimedJob) -> Result<JobOutcome, JobError> {
        let run = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        if run <= self.failures {
            Err(JobError::Retry(format!("failure {run}")))
        } else {
            Ok(JobOutcome::Done)
        }
    }
}

fn job(kind: &str, max_attempts: u32, due: i64) -> NewJob {
    NewJob {
        kind: kind.into(),
        payload: "{}".into(),
        due_at_ms: due,
        max_attempts,
        unique_key: None,
    }
}

fn runner(meta: &SqliteMeta, clock: &Arc<ManualClock>) -> Runner {
    Runner::new(
        Arc::new(meta.clone()),
        clock.clone(),
        RunnerOptions {
            lease: Duration::from_secs(60),
            ..RunnerOptions::default()
        },
        Wake::default(),
    )
}

#[tokio::test]
async fn failed_jobs_back_off_then_die_and_leases_hand_over_a_dead_workers_job() {
    let (_dir, meta) = open().await;
    let clock = ManualClock::at(NOW * 1000);
    let flaky = Arc::new(Flaky {
        runs: AtomicU32::new(0),
        failures: u32::MAX,
    });
    let mut runner = runner(&meta, &clock);
    runner.handle("flaky", flaky.clone());
    meta.enqueue_job(&job("flaky", 3, clock.now_ms()))
        .await
        .unwrap();

    assert_eq!(runner.run_due().await, 1);
    // Backoff: 5 s ± 20 % after the first failure, nothing before.
    clock.advance(Duration::from_secs(3));
    assert_eq!(runner.run_due().await, 0);
    clock.advance(Duration::from_secs(3));
    assert_eq!(runner.run_due().await, 1);
    // Then about 10 s.
    clock.advance(Duration::from_secs(7));
    assert_eq!(runner.run_due().await, 0);
    clock.advance(Duration::from_secs(6));
    assert_eq!(runner.run_due().await, 1);
    assert_eq!(flaky.runs.load(Ordering::SeqCst), 3);
    // Out of attempts: dead, kept with its last error, never run again.
    clock.advance(Duration::from_secs(3600));
    assert_eq!(runner.run_due().await, 0);
    let dead = meta.list_jobs(true, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].state, JobState::Dead);
    assert_eq!(dead[0].attempts, 3);
    assert_eq!(dead[0].last_error.as_deref(), Some("failure 3"));

    // A worker claims a job and dies: nobody else gets it while its lease runs, then the
    // runner does, and the dead worker's late answer changes nothing.
    let steady = Arc::new(Flaky {
        runs: AtomicU32::new(0),
        failures: 0,
    });
    runner.handle("steady", steady.clone());
    meta.enqueue_job(&job("steady", 5, clock.now_ms()))
        .await
        .unwrap();
    let claimed = meta.claim_jobs(clock.now_ms(), 60_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    clock.advance(Duration::from_secs(30));
    assert_eq!(runner.run_due().await, 0, "the lease still holds");
    clock.advance(Duration::from_secs(31));
    assert_eq!(runner.run_due().await, 1);
    assert_eq!(steady.runs.load(Ordering::SeqCst), 1);
    assert!(!meta
        .finish_job(claimed[0].id, &claimed[0].lease)
        .await
        .unwrap());
    assert!(meta
        .list_jobs(false, 10)
        .await
        .unwrap()
        .iter()
        .all(|j| j.kind != "steady"));
}

/// A recurring job: runs, then asks to come back in a minute.
struct Every {
    runs: AtomicU32,
}

#[async_trait::async_trait]
impl JobHandler for Every {
    async fn run(&self, _job: &ClaimedJob) -> Result<JobOutcome, JobError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        Ok(JobOutcome::Again(Duration::from_secs(60)))
    }
}

#[tokio::test]
async fn recurring_jobs_are_scheduled_once_and_come_back() {
    let (_dir, meta) = open().await;
    let clock = ManualClock::at(NOW * 1000);
    let every = Arc::new(Every {
        runs: AtomicU32::new(0),
    });
    let mut runner = runner(&meta, &clock);
    runner.handle("tick", every.clone());
    // Two nodes schedule it; one job exists.
    assert!(runner
        .enqueue(&recurring("tick", clock.now_ms()))
        .await
        .unwrap());
    assert!(!runner
        .enqueue(&recurring("tick", clock.now_ms()))
        .await
        .unwrap());
    for _ in 0..3 {
        assert_eq!(runner.run_due().await, 1);
        assert_eq!(runner.run_due().await, 0);
        clock.advance(Duration::from_secs(61));
    }
    assert_eq!(every.runs.load(Ordering::SeqCst), 3);
    let jobs = meta.list_jobs(false, 10).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].attempts, 0, "a recurring job's attempts start over");
    // A job of a kind nobody handles is dead at once, with a reason.
    meta.enqueue_job(&job("unknown", 5, clock.now_ms()))
        .await
        .unwrap();
    runner.run_due().await;
    let dead = meta.list_jobs(true, 10).await.unwrap();
    assert!(dead[0]
        .last_error
        .as_deref()
        .unwrap()
        .contains("no handler"));
}
