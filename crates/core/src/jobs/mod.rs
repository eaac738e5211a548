//! The durable jobs runner: claims due jobs from the queue with a lease, runs the handler of
//! each kind, and settles it (done, due again, retried with backoff, or dead).
//!
//! Handlers run at least once: a worker that dies leaves its lease to run out and the job is
//! claimed again, so every handler is written to be idempotent.

pub mod backoff;
pub mod maintenance;

pub use backoff::{random_unit, Backoff};

use crate::clock::Clock;
use crate::ports::{ClaimedJob, JobQueue, MetaError, NewJob, RetryOutcome};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};

/// What a handler reports of a finished run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// Done for good: the job is removed.
    Done,
    /// A recurring job ran: due again after this long, attempts reset.
    Again(Duration),
    /// Done, and the handler already removed the job (with its lease) in its own last
    /// transaction, saving a write.
    Settled,
}

/// Why a run failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// Worth trying again later (a receiver down, a database busy).
    Retry(String),
    /// Can never succeed (its subject is gone, its payload is broken): dead now.
    Permanent(String),
}

impl From<MetaError> for JobError {
    fn from(err: MetaError) -> JobError {
        JobError::Retry(err.to_string())
    }
}

#[async_trait::async_trait]
pub trait JobHandler: Send + Sync {
    async fn run(&self, job: &ClaimedJob) -> Result<JobOutcome, JobError>;

    /// When a failed attempt is tried again.
    fn backoff(&self) -> Backoff {
        Backoff::STANDARD
    }
}

/// Work the runner does before each round of claims: turning events into jobs.
#[async_trait::async_trait]
pub trait JobFeed: Send + Sync {
    /// Enqueues what is new; returns how many jobs it made.
    async fn feed(&self) -> Result<usize, MetaError>;
}

#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// How long a claimed job is its worker's; a job that runs longer may run twice.
    pub lease: Duration,
    /// Jobs run at once by this node.
    pub concurrency: usize,
    /// How often to look for work nobody woke the runner for (another node's, a retry).
    pub poll: Duration,
    /// How long a woken runner waits before it hands events on and claims, so that the
    /// events of pushes committing meanwhile share those writes: under a burst of pushes
    /// that is one hand-on and one claim for many events, not one each.
    pub gather: Duration,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        RunnerOptions {
            lease: Duration::from_secs(300),
            concurrency: 16,
            poll: Duration::from_secs(1),
            gather: Duration::from_millis(10),
        }
    }
}

/// Wakes the runner at once instead of at its next poll: given to whatever commits events or
/// enqueues jobs.
#[derive(Debug, Clone, Default)]
pub struct Wake(Arc<Notify>);

impl Wake {
    pub fn wake(&self) {
        self.0.notify_one();
    }

    async fn woken(&self) {
        self.0.notified().await
    }
}

/// The runner of one node.
#[derive(Clone)]
pub struct Runner {
    queue: Arc<dyn JobQueue>,
    clock: Arc<dyn Clock>,
    handlers: HashMap<String, Arc<dyn JobHandler>>,
    feeds: Vec<Arc<dyn JobFeed>>,
    options: RunnerOptions,
    slots: Arc<Semaphore>,
    wake: Wake,
}

impl Runner {
    pub fn new(
        queue: Arc<dyn JobQueue>,
        clock: Arc<dyn Clock>,
        options: RunnerOptions,
        wake: Wake,
    ) -> Runner {
        Runner {
            queue,
            clock,
            handlers: HashMap::new(),
            feeds: Vec::new(),
            slots: Arc::new(Semaphore::new(options.concurrency.max(1))),
            options,
            wake,
        }
    }

    /// Runs jobs of `kind` with `handler`.
    pub fn handle(&mut self, kind: &str, handler: Arc<dyn JobHandler>) {
        self.handlers.insert(kind.to_owned(), handler);
    }

    pub fn feed(&mut self, feed: Arc<dyn JobFeed>) {
        self.feeds.push(feed);
    }

    pub fn wake(&self) -> Wake {
        self.wake.clone()
    }

    /// Enqueues a job and wakes the runner.
    pub async fn enqueue(&self, job: &NewJob) -> Result<bool, MetaError> {
        let added = self.queue.enqueue_job(job).await?;
        self.wake.wake();
        Ok(added)
    }

    /// Schedules a recurring job (see [`recurring`]) to run now: enqueued if no node has,
    /// otherwise brought forward, so each start runs it once at once.
    pub async fn run_at_start(&self, kind: &str) -> Result<(), MetaError> {
        let now = self.clock.now_ms();
        if !self.queue.enqueue_job(&recurring(kind, now)).await? {
            self.queue.bring_forward(kind, now).await?;
        }
        self.wake.wake();
        Ok(())
    }

    /// Runs every job due now, and what falls due or is fed while they run, until nothing is
    /// left to claim and nothing runs; returns how many ran. Jobs start as slots free up, and
    /// new events are handed on whenever the runner is woken, so a delivery waits neither
    /// for a whole batch nor for a poll. The loop of [`Runner::run_until`] and tests use it.
    ///
    /// A claim is a write on the database's one writer, so the runner claims only when work
    /// may be waiting: at the start, when woken (events committed, jobs enqueued), at each
    /// poll, and when a slot frees up after a claim that filled every slot.
    pub async fn run_due(&self) -> usize {
        let mut ran = 0;
        let mut running = tokio::task::JoinSet::new();
        let mut look = true;
        let mut woken = false;
        // The last claim took as many jobs as there were slots: more may be due.
        let mut backlog = false;
        loop {
            if woken && !self.options.gather.is_zero() {
                tokio::time::sleep(self.options.gather).await;
            }
            woken = false;
            if look {
                for feed in &self.feeds {
                    if let Err(err) = feed.feed().await {
                        tracing::warn!(error = %err, "could not hand on events");
                    }
                }
            }
            let free = self.slots.available_permits() as u32;
            if (look || backlog) && free > 0 {
                let now = self.clock.now_ms();
                let lease = self.options.lease.as_millis() as i64;
                match self.queue.claim_jobs(now, lease, free).await {
                    Ok(jobs) => {
                        backlog = jobs.len() as u32 >= free;
                        ran += jobs.len();
                        for job in jobs {
                            let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                                break;
                            };
                            let runner = self.clone();
                            running.spawn(async move {
                                let _slot = slot;
                                runner.run_one(job).await;
                            });
                        }
                    }
                    Err(err) => {
                        backlog = false;
                        tracing::warn!(error = %err, "could not claim jobs")
                    }
                }
            }
            look = false;
            if running.is_empty() {
                return ran;
            }
            // Every slot busy, or nothing due: go on when a job ends or new work is signalled.
            tokio::select! {
                _ = running.join_next() => {}
                _ = self.wake.woken() => (look, woken) = (true, true),
                _ = tokio::time::sleep(self.options.poll) => look = true,
            }
        }
    }

    /// Runs jobs as they fall due until `stop` resolves; a job under way when it does is left
    /// to its lease.
    pub async fn run_until(self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            self.run_due().await;
            let idle = match self.queue.next_job_due_ms().await {
                Ok(Some(due)) => {
                    let wait = (due - self.clock.now_ms()).max(0) as u64;
                    Duration::from_millis(wait).min(self.options.poll)
                }
                _ => self.options.poll,
            };
            tokio::select! {
                _ = &mut stop => return,
                _ = self.wake.woken() => tokio::time::sleep(self.options.gather).await,
                _ = tokio::time::sleep(idle) => {}
            }
        }
    }

    async fn run_one(&self, job: ClaimedJob) {
        let Some(handler) = self.handlers.get(&job.kind).cloned() else {
            let error = format!("no handler for jobs of kind {:?}", job.kind);
            tracing::warn!(job = job.id, %error);
            self.settle(self.queue.bury_job(job.id, &job.lease, &error).await, &job);
            return;
        };
        let result = handler.run(&job).await;
        let now = self.clock.now_ms();
        match result {
            Ok(JobOutcome::Done) => {
                self.settle(self.queue.finish_job(job.id, &job.lease).await, &job)
            }
            Ok(JobOutcome::Settled) => {}
            Ok(JobOutcome::Again(after)) => {
                let due = now + after.as_millis() as i64;
                self.settle(
                    self.queue.reschedule_job(job.id, &job.lease, due).await,
                    &job,
                )
            }
            Err(JobError::Permanent(error)) => {
                tracing::warn!(job = job.id, kind = %job.kind, %error, "job failed for good");
                self.settle(self.queue.bury_job(job.id, &job.lease, &error).await, &job)
            }
            Err(JobError::Retry(error)) => {
                let delay = handler.backoff().delay(job.attempt, random_unit());
                let due = now + delay.as_millis() as i64;
                match self.queue.retry_job(job.id, &job.lease, due, &error).await {
                    Ok(RetryOutcome::Dead) => tracing::warn!(
                        job = job.id, kind = %job.kind, attempts = job.attempt, %error,
                        "job out of attempts"
                    ),
                    Ok(RetryOutcome::Scheduled) => tracing::debug!(
                        job = job.id, kind = %job.kind, %error, retry_in_ms = delay.as_millis() as u64,
                        "job will be retried"
                    ),
                    Ok(RetryOutcome::LeaseLost) => self.settle(Ok(false), &job),
                    Err(err) => self.settle(Err(err), &job),
                }
            }
        }
    }

    fn settle(&self, result: Result<bool, MetaError>, job: &ClaimedJob) {
        match result {
            Ok(true) => {}
            // Another worker took the job after this one's lease ran out; its result stands.
            Ok(false) => tracing::info!(job = job.id, kind = %job.kind, "job lease lost"),
            Err(err) => tracing::warn!(job = job.id, error = %err, "could not settle a job"),
        }
    }
}

/// Schedules a recurring job once: enqueued due now under its kind as the unique key, it
/// then reschedules itself with [`JobOutcome::Again`].
pub fn recurring(kind: &str, now_ms: i64) -> NewJob {
    NewJob {
        kind: kind.to_owned(),
        payload: "{}".to_owned(),
        due_at_ms: now_ms,
        max_attempts: u32::MAX,
        unique_key: Some(kind.to_owned()),
    }
}
