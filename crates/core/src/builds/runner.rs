//! The build job: fetch the commit with the system `git`, build with `buildah` in its own
//! storage (one per repository, which is the layer cache later builds reuse), annotate the
//! image with its source, and push it into the repository with a token scoped to that
//! repository alone. Base images are pulled through this server with a pull-only token.
//! Both tokens are revoked when the build ends. The programs run in their own process
//! group with a clean environment (none of Berth's settings, secrets or data directory),
//! so a cancellation or the time limit kills all of them.

use super::index;
use super::log::BuildLog;
use super::{BuildRecord, BuildStatus, Builds, CredentialKind};
use crate::error::Error;
use crate::jobs::{JobError, JobHandler, JobOutcome};
use crate::ports::{build_lock, ClaimedJob, NamespaceOwner, NewToken, OWNERS_TEAM};
use crate::replication::RemoteSpec;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Deserialize;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Runs one build.
pub const BUILD_JOB: &str = "build.run";

/// In a build's work directory: the process group of the program running now, for a
/// restart after a crash to kill. (The build's tokens are recorded with it in the
/// database, so that any node can revoke them.)
pub(super) const PGID_FILE: &str = "pgid";

/// How soon a queued build looks again for a free slot (`build_concurrency`).
const SLOT_WAIT: Duration = Duration::from_secs(2);

/// How often a running build looks for a cancellation and saves its log.
const WATCH_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, Deserialize)]
struct Payload {
    build_id: i64,
}

/// The job handler.
pub struct RunBuild(pub Builds);

#[async_trait::async_trait]
impl JobHandler for RunBuild {
    async fn run(&self, job: &ClaimedJob) -> Result<JobOutcome, JobError> {
        let payload: Payload = serde_json::from_str(&job.payload)
            .map_err(|e| JobError::Permanent(format!("bad build payload: {e}")))?;
        let builds = &self.0;
        let Some(build) = builds.store.build(payload.build_id).await? else {
            return Ok(JobOutcome::Done);
        };
        if build.status != BuildStatus::Queued {
            // Finished, cancelled, or started by an earlier run of this job.
            return Ok(JobOutcome::Done);
        }
        // A build waiting for a slot must not hold one of the runner's: deliveries, scans
        // and GC would queue behind it. It looks again shortly instead.
        let Ok(_slot) = builds.running.clone().try_acquire_owned() else {
            return Ok(JobOutcome::Again(SLOT_WAIT));
        };
        // Held until the build is final, so that no node's sweep fails it meanwhile.
        let Some(_running_here) = builds.locks.try_hold(&build_lock(build.id)).await? else {
            return Ok(JobOutcome::Again(SLOT_WAIT));
        };
        if !builds.store.start_build(build.id, builds.now()).await? {
            return Ok(JobOutcome::Done);
        }
        let build = builds.store.build(build.id).await?.unwrap_or(build);
        let (status, digest, reason, log, leftovers) = builds.execute(&build).await;
        let finished = builds
            .finish(&build, status, digest.as_deref(), reason.as_deref(), &log)
            .await;
        // The images are the cache's to keep by their layers; the tags go, after the
        // status is out (each is a buildah run).
        let _ = tokio::task::spawn_blocking(move || {
            for (buildah, images) in &leftovers.images {
                buildah.remove_images(images);
            }
            let _ = std::fs::remove_dir_all(&leftovers.work);
        })
        .await;
        finished.map_err(|e| JobError::Retry(e.to_string()))?;
        Ok(JobOutcome::Done)
    }
}

/// Why a step stopped the build.
enum Stop {
    Failed(String),
    Cancelled,
    TimedOut,
}

/// Variables a program runs with, besides `PATH` and `HOME`.
pub(super) type Environment = Vec<(String, String)>;

/// The log, shared by the reader threads and the watcher.
type SharedLog = Arc<Mutex<BuildLog>>;

fn say(log: &SharedLog, line: &str) {
    if let Ok(mut log) = log.lock() {
        log.line(line);
    }
}

/// What every program of one build runs with.
#[derive(Clone, Copy)]
struct Step<'a> {
    env: &'a [(String, String)],
    work: &'a Path,
    log: &'a SharedLog,
    stop: &'a Arc<AtomicBool>,
    deadline: Instant,
}

/// What one build builds, the same for each of its platforms.
struct Recipe<'a> {
    build_id: i64,
    dockerfile: &'a Path,
    context: &'a Path,
    build_args: &'a [String],
    annotations: [(&'static str, String); 3],
    policy: &'a Path,
    pull_auth: &'a Path,
}

/// `buildah` on one storage directory (vfs, a root and a run directory in it).
struct Buildah {
    program: String,
    storage: PathBuf,
}

impl Buildah {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.arg("--root")
            .arg(self.storage.join("root"))
            .arg("--runroot")
            .arg(self.storage.join("run"))
            .args(["--storage-driver", "vfs"])
            .args(args);
        cmd
    }

    /// Untags `images`; their layers stay as the cache.
    fn remove_images(&self, images: &[String]) {
        if images.is_empty() {
            return;
        }
        let _ = self
            .command(&["rmi"])
            .args(images)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("_CONTAINERS_USERNS_CONFIGURED", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// What a build leaves to tidy once its status is recorded: the images it tagged (their
/// layers stay, as the cache) and its work directory. Done after the finish, so that the
/// build is reported as soon as its push is.
struct Leftovers {
    work: PathBuf,
    images: Vec<(Buildah, Vec<String>)>,
}

impl Builds {
    /// Runs the build; returns its final status, digest, reason and log, and what to tidy
    /// once they are recorded.
    async fn execute(
        &self,
        build: &BuildRecord,
    ) -> (
        BuildStatus,
        Option<String>,
        Option<String>,
        String,
        Leftovers,
    ) {
        let log: SharedLog = Arc::new(Mutex::new(BuildLog::new(self.settings.log_limit)));
        let stop = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + self.settings.timeout;
        let work = self.settings.work_dir.join(format!("build-{}", build.id));
        let mut leftovers = Leftovers {
            work: work.clone(),
            images: Vec::new(),
        };
        let watcher = self.watch(build.id, log.clone(), stop.clone());
        let started = Instant::now();
        let result = self
            .steps(build, &work, &log, &stop, deadline, &mut leftovers)
            .await;
        // The build's tokens are revoked by the finish, in its transaction.
        watcher.abort();
        let (status, digest, reason) = match result {
            Ok(digest) => (BuildStatus::Succeeded, Some(digest), None),
            Err(Stop::Cancelled) => (
                BuildStatus::Cancelled,
                None,
                Some("cancelled while running".to_owned()),
            ),
            Err(Stop::TimedOut) => (
                BuildStatus::Failed,
                None,
                Some(format!(
                    "the build ran past its time limit of {} s (build_timeout) and was stopped",
                    self.settings.timeout.as_secs()
                )),
            ),
            Err(Stop::Failed(reason)) => (BuildStatus::Failed, None, Some(reason)),
        };
        say(
            &log,
            &format!(
                "[berth] {} after {:.1} s{}",
                status.as_str(),
                started.elapsed().as_secs_f64(),
                reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
        );
        let text = match Arc::try_unwrap(log) {
            Ok(log) => log.into_inner().map(BuildLog::finish).unwrap_or_default(),
            Err(log) => log.lock().map(|l| l.text().to_owned()).unwrap_or_default(),
        };
        (status, digest, reason, text, leftovers)
    }

    /// Saves the log while the build runs and turns a cancellation asked for (by any
    /// process: the API, the CLI) into the stop flag.
    fn watch(&self, id: i64, log: SharedLog, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
        let store = self.store.clone();
        tokio::spawn(async move {
            let mut saved = 0usize;
            loop {
                tokio::time::sleep(WATCH_EVERY).await;
                if store.build_cancel_requested(id).await.unwrap_or(false) {
                    stop.store(true, Ordering::SeqCst);
                }
                let text = log
                    .lock()
                    .ok()
                    .and_then(|l| (l.text().len() != saved).then(|| l.text().to_owned()));
                if let Some(text) = text {
                    saved = text.len();
                    let _ = store.write_build_log(id, &text).await;
                }
            }
        })
    }

    async fn steps(
        &self,
        build: &BuildRecord,
        work: &Path,
        log: &SharedLog,
        stop: &Arc<AtomicBool>,
        deadline: Instant,
        leftovers: &mut Leftovers,
    ) -> Result<String, Stop> {
        let failed = |what: &str, e: &dyn std::fmt::Display| Stop::Failed(format!("{what}: {e}"));
        let repo = build.repository.clone();
        let source = self
            .store
            .build_source(&repo)
            .await
            .map_err(|e| failed("reading the build source", &e))?
            .ok_or_else(|| Stop::Failed("the repository has no build source any more".into()))?;
        let Some(registry) = self.registry_address.get().cloned() else {
            return Err(Stop::Failed(
                "the server's registry address is not known yet (the listener is not up)".into(),
            ));
        };
        let _ = std::fs::remove_dir_all(work);
        std::fs::create_dir_all(work).map_err(|e| failed("creating the work directory", &e))?;
        let checkout = work.join("src");
        let git_ref = build.ref_kind.full_ref(&build.ref_name);
        say(
            log,
            &format!(
                "[berth] build {} of {repo}: {} {} from {}",
                build.id,
                build.ref_kind.as_str(),
                build.ref_name,
                source.git_url
            ),
        );

        // 1. The source at the ref.
        let (git_env, secrets) = self.git_environment(&source, work).map_err(Stop::Failed)?;
        if let Ok(mut log) = log.lock() {
            for secret in &secrets {
                log.mask(secret);
            }
        }
        let git = &self.settings.git;
        self.run(
            "git init",
            Command::new(git).args(["init", "-q"]).arg(&checkout),
            &git_env,
            work,
            log,
            stop,
            deadline,
        )
        .await?;
        let fetched = self
            .run(
                "git fetch",
                Command::new(git)
                    .arg("-C")
                    .arg(&checkout)
                    .args(["fetch", "--depth=1", "--no-tags", "--"])
                    .arg(&source.git_url)
                    .arg(format!("+{git_ref}:refs/berth/build")),
                &git_env,
                work,
                log,
                stop,
                deadline,
            )
            .await;
        if let Err(Stop::Failed(_)) = fetched {
            return Err(Stop::Failed(format!(
                "could not fetch {git_ref} from {}: the URL, its credentials or the {} is wrong (see the log)",
                source.git_url,
                build.ref_kind.as_str()
            )));
        }
        fetched?;
        self.run(
            "git checkout",
            Command::new(git).arg("-C").arg(&checkout).args([
                "checkout",
                "-q",
                "--detach",
                "refs/berth/build",
            ]),
            &git_env,
            work,
            log,
            stop,
            deadline,
        )
        .await?;
        let commit = git_output(git, &checkout, &["rev-parse", "HEAD"])
            .map_err(|e| failed("reading the commit", &e))?;
        if let Some(wanted) = &build.commit {
            if !commit.starts_with(wanted.as_str()) {
                say(log, &format!("[berth] {git_ref} moved from {wanted} to {commit} since the push; building {commit}"));
            }
        }
        let _ = self.store.note_build_commit(build.id, &commit).await;
        say(log, &format!("[berth] commit {commit}"));

        // 2. What to build, inside the checkout only.
        let context = contained(&checkout, &build.context).ok_or_else(|| {
            Stop::Failed(format!(
                "the build context {:?} does not exist in the repository",
                build.context
            ))
        })?;
        let dockerfile = contained(&context, &build.dockerfile)
            .filter(|p| p.is_file())
            .ok_or_else(|| {
                Stop::Failed(format!(
                    "the Dockerfile {:?} does not exist in the build context {:?}",
                    build.dockerfile, build.context
                ))
            })?;

        // 3. Credentials for this build alone.
        let (pull, push) = self
            .build_tokens(&source.created_by, &repo, build.id)
            .await
            .map_err(|e| failed("creating the build's registry tokens", &e))?;
        if let Ok(mut log) = log.lock() {
            log.mask(&pull.1);
            log.mask(&push.1);
        }
        let pull_auth = work.join("pull-auth.json");
        let push_auth = work.join("push-auth.json");
        write_private(
            &pull_auth,
            auth_file(&registry, &pull.0, &pull.1).as_bytes(),
        )
        .map_err(|e| failed("writing credentials", &e))?;
        write_private(
            &push_auth,
            auth_file(&registry, &push.0, &push.1).as_bytes(),
        )
        .map_err(|e| failed("writing credentials", &e))?;
        let registries = work.join("registries.conf");
        std::fs::write(
            &registries,
            registries_conf(&registry, self.settings.docker_hub_mirror.as_deref()),
        )
        .map_err(|e| failed("writing registries.conf", &e))?;
        if let Some(prefix) = &self.settings.docker_hub_mirror {
            say(
                log,
                &format!("[berth] base images from docker.io come through the mirror {registry}/{prefix}"),
            );
        }
        let policy = work.join("policy.json");
        std::fs::write(
            &policy,
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .map_err(|e| failed("writing policy.json", &e))?;

        let env: Vec<(String, String)> = vec![
            ("_CONTAINERS_USERNS_CONFIGURED".into(), "1".into()),
            (
                "CONTAINERS_REGISTRIES_CONF".into(),
                registries.display().to_string(),
            ),
            ("REGISTRY_AUTH_FILE".into(), pull_auth.display().to_string()),
            ("TMPDIR".into(), work.display().to_string()),
        ];
        let step = Step {
            env: &env,
            work,
            log,
            stop,
            deadline,
        };
        let recipe = Recipe {
            build_id: build.id,
            dockerfile: &dockerfile,
            context: &context,
            build_args: &build.build_args,
            annotations: [
                ("org.opencontainers.image.source", source.git_url.clone()),
                ("org.opencontainers.image.revision", commit.clone()),
                ("org.opencontainers.image.ref.name", git_ref.clone()),
            ],
            policy: &policy,
            pull_auth: &pull_auth,
        };
        // The repository's own storage holds its layers: the next build's cache. Each
        // platform has its own, since buildah 1.28's layer cache does not tell platforms
        // apart (a `FROM scratch` + `COPY` step built for amd64 would be reused for arm64).
        let cache = self
            .settings
            .work_dir
            .join("cache")
            .join(repo.replace('/', "_"));
        let targets: Vec<Option<&str>> = if build.platforms.is_empty() {
            vec![None]
        } else {
            build.platforms.iter().map(|p| Some(p.as_str())).collect()
        };

        // 4. Build each platform; every one is tried, so the log and the reason name each
        // that did not build. With several, each image goes to an OCI layout the index is
        // assembled from.
        let layout = work.join("platforms");
        // Per platform: its storage, and the names it made (the last is the one to push).
        // They are the leftovers' from the start: untagged whatever happens next.
        let built_images = &mut leftovers.images;
        let mut problems: Vec<String> = Vec::new();
        for platform in &targets {
            let storage = match platform {
                None => cache.clone(),
                Some(platform) => cache.join(format!("platform-{}", platform_slug(platform))),
            };
            std::fs::create_dir_all(&storage).map_err(|e| failed("creating the cache", &e))?;
            let buildah = Buildah {
                program: self.settings.buildah.clone(),
                storage,
            };
            if let Some(platform) = platform {
                say(log, &format!("[berth] platform {platform}"));
            }
            let log_mark = log.lock().map(|l| l.text().len()).unwrap_or(0);
            match self.build_image(&buildah, &recipe, *platform, &step).await {
                Ok(image) => built_images.push((buildah, image)),
                Err(Stop::Failed(why)) => {
                    let Some(platform) = platform else {
                        return Err(Stop::Failed(why));
                    };
                    let output = log
                        .lock()
                        .ok()
                        .and_then(|l| l.text().get(log_mark..).map(str::to_owned))
                        .unwrap_or_default();
                    let why = platform_refusal(platform, &output, &self.settings.binfmt_dir)
                        .unwrap_or(why);
                    say(log, &format!("[berth] {platform}: {why}"));
                    problems.push(format!("{platform}: {why}"));
                }
                Err(other) => return Err(other),
            }
        }
        if !problems.is_empty() {
            // As `docker buildx build --platform ... --push` does: a tag never names an
            // index that lacks a platform the rule asked for.
            return Err(Stop::Failed(format!(
                "{} of {} platforms did not build, so nothing was pushed: {}",
                problems.len(),
                targets.len(),
                problems.join("; ")
            )));
        }

        // 5. Push every tag with the repository's own token: the image, or an index of
        // the platforms' images that Berth assembles itself (see `index`).
        if targets.len() > 1 {
            return self
                .push_index(
                    build,
                    &registry,
                    &push,
                    built_images,
                    &targets,
                    &layout,
                    &recipe,
                    &step,
                )
                .await;
        }
        let digest_file = work.join("digest");
        let mut digest = String::new();
        for tag in &build.tags {
            let target = format!("docker://{registry}/{repo}:{tag}");
            let Some((buildah, images)) = built_images.first() else {
                return Err(Stop::Failed("no image was built".into()));
            };
            let mut push_cmd = buildah.command(&["push"]);
            push_cmd
                .args([
                    "--tls-verify=false",
                    "--format",
                    "oci",
                    "--signature-policy",
                ])
                .arg(&policy)
                .arg("--authfile")
                .arg(&push_auth)
                .arg("--digestfile")
                .arg(&digest_file)
                .args(images.last())
                .arg(&target);
            self.run(
                "buildah push",
                &mut push_cmd,
                &env,
                work,
                log,
                stop,
                deadline,
            )
            .await
            .map_err(|stop| match stop {
                Stop::Failed(_) => {
                    Stop::Failed(format!("pushing {repo}:{tag} failed (see the log)"))
                }
                other => other,
            })?;
            digest = std::fs::read_to_string(&digest_file)
                .map(|d| d.trim().to_owned())
                .map_err(|e| failed("reading the pushed digest", &e))?;
            say(log, &format!("[berth] pushed {repo}:{tag} {digest}"));
        }
        Ok(digest)
    }

    /// Writes each platform's image to the OCI layout `layout`, then pushes them and an
    /// index of them, annotated with the source, under every tag of the build: the index's
    /// digest. (buildah 1.28 cannot annotate an index itself, only its entries.)
    #[allow(clippy::too_many_arguments)]
    async fn push_index(
        &self,
        build: &BuildRecord,
        registry: &str,
        push: &(String, String),
        built_images: &[(Buildah, Vec<String>)],
        targets: &[Option<&str>],
        layout: &Path,
        recipe: &Recipe<'_>,
        step: &Step<'_>,
    ) -> Result<String, Stop> {
        let Step {
            env,
            work,
            log,
            stop,
            deadline,
        } = *step;
        let repo = &build.repository;
        let mut names = Vec::new();
        for ((buildah, images), platform) in built_images.iter().zip(targets) {
            let slug = platform_slug(platform.unwrap_or_default());
            let in_layout = format!("oci:{}:{slug}", layout.display());
            self.run(
                "buildah push (to the index's layout)",
                buildah
                    .command(&["push", "--format", "oci", "--signature-policy"])
                    .arg(recipe.policy)
                    .args(images.last())
                    .arg(&in_layout),
                env,
                work,
                log,
                stop,
                deadline,
            )
            .await?;
            names.push(slug);
        }
        let images = index::read_layout(layout, &names).map_err(Stop::Failed)?;
        let body = index::index_of(&images, &recipe.annotations);
        let client = self.registry_client.as_ref().ok_or_else(|| {
            Stop::Failed(
                "this server has no registry client to push a multi-platform index with".into(),
            )
        })?;
        let scheme = if self.registry_tls.load(Ordering::SeqCst) {
            "https"
        } else {
            "http"
        };
        let dest = client
            .connect(&RemoteSpec {
                url: format!("{scheme}://{registry}"),
                username: Some(push.0.clone()),
                password: Some(push.1.clone()),
                // The server's own listener, whatever certificate it has.
                tls_verify: false,
            })
            .map_err(|e| Stop::Failed(format!("reaching the registry at {registry}: {e}")))?;
        say(
            log,
            &format!(
                "[berth] $ push the index of {} platforms to {repo}",
                images.len()
            ),
        );
        let started = Instant::now();
        let lines = log.clone();
        let report = move |line: &str| say(&lines, line);
        let pushing = index::push(
            dest.as_ref(),
            repo,
            layout,
            &images,
            &body,
            &build.tags,
            &report,
        );
        let pushed = until_stopped(pushing, stop, deadline).await?;
        say(
            log,
            &format!(
                "[berth] (push the index: {:.2} s)",
                started.elapsed().as_secs_f64()
            ),
        );
        let digest = pushed.map_err(|why| {
            say(log, &format!("[berth] {why}"));
            Stop::Failed(format!("pushing the index failed: {why}"))
        })?;
        Ok(digest.to_string())
    }

    /// Builds one image (for `platform`, or the machine's own) and sets the source
    /// annotations on it; returns the names it made, the last the one to push.
    async fn build_image(
        &self,
        buildah: &Buildah,
        recipe: &Recipe<'_>,
        platform: Option<&str>,
        step: &Step<'_>,
    ) -> Result<Vec<String>, Stop> {
        let Step {
            env,
            work,
            log,
            stop,
            deadline,
        } = *step;
        let slug = platform
            .map(platform_slug)
            .unwrap_or_else(|| "image".into());
        let built = format!("localhost/berth-build-{}-{slug}", recipe.build_id);
        let mut bud = buildah.command(&[
            "build",
            "--isolation",
            "chroot",
            "--layers",
            "--pull-always=false",
        ]);
        if let Some(platform) = platform {
            bud.args(["--platform", platform]);
        }
        bud.arg("--signature-policy")
            .arg(recipe.policy)
            .arg("--authfile")
            .arg(recipe.pull_auth)
            .args(["--tls-verify=false", "-f"])
            .arg(recipe.dockerfile)
            .args(["-t", &built]);
        for (key, value) in &recipe.annotations {
            bud.arg("--annotation").arg(format!("{key}={value}"));
        }
        for arg in recipe.build_args {
            bud.arg("--build-arg").arg(arg);
        }
        bud.arg(recipe.context);
        self.run("buildah build", &mut bud, env, work, log, stop, deadline)
            .await
            .map_err(|stop| match stop {
                Stop::Failed(_) => {
                    Stop::Failed("the Dockerfile failed to build (see the log)".into())
                }
                other => other,
            })?;

        // The source annotations. A build whose last step came from the cache is the
        // cached image as it was (buildah 1.28 drops `--annotation` then, or keeps an older
        // build's revision): only then are they set on a commit of it, which costs a copy
        // of its file system on vfs.
        let mut inspect = buildah.command(&["inspect", "--type", "image", &built]);
        let inspected = Instant::now();
        let found = inspect_annotations(&mut inspect, env, work).await;
        say(
            log,
            &format!(
                "[berth] (buildah inspect: {:.2} s)",
                inspected.elapsed().as_secs_f64()
            ),
        );
        let annotated_already = recipe
            .annotations
            .iter()
            .all(|(key, value)| found.get(*key).and_then(|v| v.as_str()) == Some(value.as_str()));
        if annotated_already {
            return Ok(vec![built]);
        }
        let container = format!("berth-build-{}-{slug}", recipe.build_id);
        let annotated = format!("{built}-annotated");
        self.run(
            "buildah from",
            &mut buildah.command(&["from", "--pull-never", "--name", &container, &built]),
            env,
            work,
            log,
            stop,
            deadline,
        )
        .await?;
        let mut config = buildah.command(&["config"]);
        for (key, value) in &recipe.annotations {
            config.arg("--annotation").arg(format!("{key}={value}"));
        }
        config.arg(&container);
        self.run(
            "buildah config",
            &mut config,
            env,
            work,
            log,
            stop,
            deadline,
        )
        .await?;
        self.run(
            "buildah commit",
            &mut buildah.command(&["commit", "-q", "--rm", &container, &annotated]),
            env,
            work,
            log,
            stop,
            deadline,
        )
        .await?;
        Ok(vec![built, annotated])
    }

    /// The environment `git` reaches the source with, and the secrets in it (to mask): a
    /// token through git's configuration variables, not the command line (which `ps`
    /// shows); a deploy key written to `dir` for `GIT_SSH_COMMAND`.
    pub(super) fn git_environment(
        &self,
        source: &super::StoredSource,
        dir: &Path,
    ) -> Result<(Environment, Vec<String>), String> {
        let mut env: Vec<(String, String)> = vec![
            ("GIT_TERMINAL_PROMPT".into(), "0".into()),
            ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
        ];
        let mut secrets = Vec::new();
        let credential = source
            .sealed_credential
            .as_deref()
            .map(|sealed| {
                self.seal
                    .open(sealed)
                    .ok_or_else(|| "the source's credential does not open".to_owned())
            })
            .transpose()?;
        match (source.credential_kind, credential) {
            (CredentialKind::Token, Some(token)) => {
                let basic = STANDARD.encode(format!("x-access-token:{token}"));
                env.extend([
                    ("GIT_CONFIG_COUNT".into(), "1".into()),
                    ("GIT_CONFIG_KEY_0".into(), "http.extraHeader".into()),
                    (
                        "GIT_CONFIG_VALUE_0".into(),
                        format!("Authorization: Basic {basic}"),
                    ),
                ]);
                secrets.extend([token, basic]);
            }
            (CredentialKind::DeployKey, Some(key)) => {
                let key_path = dir.join("deploy_key");
                write_private(&key_path, key.as_bytes())
                    .map_err(|e| format!("writing the deploy key: {e}"))?;
                env.push((
                    "GIT_SSH_COMMAND".into(),
                    format!(
                        "ssh -i {} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={}",
                        key_path.display(),
                        dir.join("known_hosts").display()
                    ),
                ));
            }
            _ => {}
        }
        Ok((env, secrets))
    }

    /// The pull-only and the push tokens of one build, as (user name, secret): acting for
    /// the account that linked the source, or for the repository's organization.
    async fn build_tokens(
        &self,
        created_by: &i64,
        repo: &str,
        build_id: i64,
    ) -> Result<((String, String), (String, String)), Error> {
        let namespace = repo.split('/').next().unwrap_or(repo);
        let record = self
            .store
            .namespace(namespace)
            .await?
            .ok_or_else(|| Error::Invalid(format!("namespace {namespace} does not exist")))?;
        let (user_id, org_id, login) = match record.owner {
            NamespaceOwner::User(id) => {
                let user = self
                    .store
                    .user_by_id(id)
                    .await?
                    .ok_or_else(|| Error::Invalid("the namespace's owner is gone".into()))?;
                (id, None, user.name)
            }
            NamespaceOwner::Organization(org_id) => {
                let creator = if *created_by > 0 {
                    Some(*created_by)
                } else {
                    self.an_owner_of(org_id).await?
                };
                let creator = creator.ok_or_else(|| {
                    Error::Invalid("the organization has no owner to act for".into())
                })?;
                (creator, Some(org_id), namespace.to_owned())
            }
        };
        let now = self.now();
        let expires = now + self.settings.timeout.as_secs() as i64 + 600;
        let make = |scope: &str, repositories: Vec<String>, label: String| {
            let secret = crate::identity::new_token_secret();
            (scope.to_owned(), repositories, label, secret)
        };
        let mut out = Vec::new();
        for (scope, repositories, label, secret) in [
            make("repo:read", vec![], format!("build {build_id} pull")),
            make(
                "repo:write",
                vec![repo.to_owned()],
                format!("build {build_id} push"),
            ),
        ] {
            let secret = secret?;
            // Recorded as the build's in the same transaction: whichever node ends the
            // build (this one, or another after this one died) revokes it.
            self.store
                .create_build_token(
                    build_id,
                    &NewToken {
                        user_id,
                        org_id,
                        label,
                        token_hash: crate::identity::hash_token(&secret),
                        scope,
                        repositories,
                        created_at: now,
                        expires_at: Some(expires),
                    },
                )
                .await?;
            out.push((login.clone(), secret));
        }
        let push = out.pop().unwrap_or_default();
        let pull = out.pop().unwrap_or_default();
        Ok((pull, push))
    }

    async fn an_owner_of(&self, org_id: i64) -> Result<Option<i64>, Error> {
        let Some(team) = self.store.team(org_id, OWNERS_TEAM).await? else {
            return Ok(None);
        };
        for name in self.store.team_members(team.id).await? {
            if let Some(user) = self.store.user_by_name(&name).await? {
                return Ok(Some(user.id));
            }
        }
        Ok(None)
    }

    /// Runs one program to its end, its output into the log; stops it (its whole process
    /// group) when the build is cancelled or out of time.
    #[allow(clippy::too_many_arguments)]
    async fn run(
        &self,
        what: &str,
        cmd: &mut Command,
        env: &[(String, String)],
        work: &Path,
        log: &SharedLog,
        stop: &Arc<AtomicBool>,
        deadline: Instant,
    ) -> Result<(), Stop> {
        cmd.env_clear()
            .env(
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
            )
            .env("HOME", work)
            .env("LANG", "C.UTF-8")
            .current_dir(work)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        for (key, value) in env {
            cmd.env(key, value);
        }
        say(log, &format!("[berth] $ {what}"));
        let child = cmd
            .spawn()
            .map_err(|e| Stop::Failed(format!("could not start {what}: {e}")))?;
        // What a restart after a crash kills, should this process die first.
        let _ = std::fs::write(work.join(PGID_FILE), child.id().to_string());
        let log = log.clone();
        let stop = stop.clone();
        let what = what.to_owned();
        let started = Instant::now();
        let outcome = tokio::task::spawn_blocking({
            let log = log.clone();
            move || {
                let outcome = supervise(child, &what, &log, &stop, deadline);
                say(
                    &log,
                    &format!("[berth] ({what}: {:.2} s)", started.elapsed().as_secs_f64()),
                );
                outcome
            }
        })
        .await
        .map_err(|e| Stop::Failed(format!("the build's supervisor failed: {e}")))?;
        outcome
    }
}

/// Runs `work` until it ends, or until the build is cancelled or out of time.
async fn until_stopped<T>(
    work: impl std::future::Future<Output = T>,
    stop: &AtomicBool,
    deadline: Instant,
) -> Result<T, Stop> {
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return Ok(out),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                if Instant::now() >= deadline {
                    return Err(Stop::TimedOut);
                }
                if stop.load(Ordering::SeqCst) {
                    return Err(Stop::Cancelled);
                }
            }
        }
    }
}

/// Waits for `child`, copying its output into the log, killing its process group on a stop.
fn supervise(
    mut child: std::process::Child,
    what: &str,
    log: &SharedLog,
    stop: &AtomicBool,
    deadline: Instant,
) -> Result<(), Stop> {
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|e| Box::new(e) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|stream| {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).split(b'\n').map_while(|l| l.ok()) {
                say(&log, String::from_utf8_lossy(&line).trim_end_matches('\r'));
            }
        })
    })
    .collect();
    let outcome = loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break Ok(()),
            Ok(Some(status)) => break Err(Stop::Failed(format!("{what} failed ({status})"))),
            Ok(None) => {}
            Err(e) => break Err(Stop::Failed(format!("waiting for {what}: {e}"))),
        }
        let out_of_time = Instant::now() >= deadline;
        if stop.load(Ordering::SeqCst) || out_of_time {
            kill_group(child.id());
            let _ = child.wait();
            break Err(if out_of_time {
                Stop::TimedOut
            } else {
                Stop::Cancelled
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for reader in readers {
        let _ = reader.join();
    }
    outcome
}

/// Kills every process of the group `pgid` leads (the program and what it started).
pub(super) fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The annotations `buildah inspect` reports of an image (empty when it cannot say).
async fn inspect_annotations(
    cmd: &mut Command,
    env: &[(String, String)],
    work: &Path,
) -> serde_json::Map<String, serde_json::Value> {
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", work)
        .current_dir(work)
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    for (key, value) in env {
        cmd.env(key, value);
    }
    let mut cmd = std::mem::replace(cmd, Command::new("true"));
    let output = tokio::task::spawn_blocking(move || cmd.output()).await;
    let Ok(Ok(output)) = output else {
        return serde_json::Map::new();
    };
    serde_json::from_slice::<serde_json::Value>(&output.stdout)
        .ok()
        .and_then(|v| {
            v.get("ImageAnnotations")
                .and_then(|a| a.as_object().cloned())
        })
        .unwrap_or_default()
}

fn git_output(git: &str, dir: &Path, args: &[&str]) -> std::io::Result<String> {
    let out = Command::new(git)
        .arg("-C")
        .arg(dir)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()?;
    if !out.status.success() {
        return Err(std::io::Error::other(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `path` inside `root`, resolved (symlinks included) and still inside it, when it exists.
fn contained(root: &Path, path: &str) -> Option<PathBuf> {
    let root = root.canonicalize().ok()?;
    let full = root.join(path).canonicalize().ok()?;
    full.starts_with(&root).then_some(full)
}

/// The registries.conf of a build: names without a registry are looked for in Berth
/// first; with a Docker Hub mirror, `docker.io/...` (and short names Debian's
/// `shortnames.conf` aliases to it, such as `python`) come through the mirror's prefix, and
/// bare names Berth has no repository for are looked for on docker.io after it.
fn registries_conf(registry: &str, docker_hub_mirror: Option<&str>) -> String {
    let search = match docker_hub_mirror {
        Some(_) => format!("[\"{registry}\", \"docker.io\"]"),
        None => format!("[\"{registry}\"]"),
    };
    let mut conf = format!(
        "unqualified-search-registries = {search}\nshort-name-mode = \"permissive\"\n\n\
         [[registry]]\nlocation = \"{registry}\"\ninsecure = true\n"
    );
    if let Some(prefix) = docker_hub_mirror {
        conf.push_str(&format!(
            "\n[[registry]]\nprefix = \"docker.io\"\nlocation = \"{registry}/{prefix}\"\ninsecure = true\n"
        ));
    }
    conf
}

/// Why `platform` did not build, when the reason is that this machine cannot run its
/// programs: not its own architecture, no qemu-user-static handler registered for it in
/// `binfmt_dir`, and a step of the build (a `RUN`) failed to start with "exec format
/// error". A Dockerfile that runs nothing (`FROM scratch` + `COPY`) builds for any platform.
fn platform_refusal(platform: &str, output: &str, binfmt_dir: &Path) -> Option<String> {
    let arch = platform.split('/').nth(1)?;
    if arch == native_arch() || !output.contains("exec format error") {
        return None;
    }
    let handler = format!("qemu-{}", qemu_name(arch));
    let registered = std::fs::read_to_string(binfmt_dir.join(&handler))
        .is_ok_and(|text| text.starts_with("enabled"));
    if registered {
        return None;
    }
    Some(format!(
        "refused: this machine ({}) cannot run {platform} programs, which the Dockerfile's \
         RUN steps need: no qemu-user-static handler {handler} is registered in {} \
         (install qemu-user-static and register its binfmt handlers, or drop {platform} \
         from the rule)",
        native_arch(),
        binfmt_dir.display()
    ))
}

/// `linux/arm/v7` as a name part: `linux-arm-v7`.
fn platform_slug(platform: &str) -> String {
    platform.replace('/', "-")
}

/// This machine's architecture as OCI names it.
fn native_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "mips64" => "mips64le",
        other => other,
    }
}

/// The name qemu-user-static registers an OCI architecture's handler under.
fn qemu_name(arch: &str) -> &str {
    match arch {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "386" => "i386",
        "mips64le" => "mips64el",
        other => other,
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

fn auth_file(registry: &str, user: &str, secret: &str) -> String {
    serde_json::json!({
        "auths": { registry: { "auth": STANDARD.encode(format!("{user}:{secret}")) } }
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_checkout() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("app")).unwrap();
        std::fs::write(dir.path().join("app/Dockerfile"), "FROM scratch").unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("escape")).unwrap();
        assert!(contained(dir.path(), "app").is_some());
        assert!(contained(dir.path(), ".").is_some());
        assert!(contained(dir.path(), "escape").is_none());
        assert!(contained(dir.path(), "missing").is_none());
        let app = contained(dir.path(), "app").unwrap();
        assert!(contained(&app, "Dockerfile").is_some());
        assert!(contained(&app, "../../etc/passwd").is_none());
    }

    #[test]
    fn a_foreign_platform_is_refused_only_when_no_handler_runs_it() {
        let binfmt = tempfile::tempdir().unwrap();
        let foreign = if native_arch() == "arm64" {
            "linux/amd64"
        } else {
            "linux/arm64"
        };
        let handler = format!("qemu-{}", qemu_name(&foreign[6..]));
        let failed = "process failed to start with error: fork/exec /probe: exec format error";
        let refused = platform_refusal(foreign, failed, binfmt.path()).unwrap();
        assert!(
            refused.contains(&handler) && refused.contains(foreign),
            "{refused}"
        );
        // Some other failure, or the machine's own platform: the Dockerfile's fault.
        assert!(platform_refusal(foreign, "COPY failed: no such file", binfmt.path()).is_none());
        let native = format!("linux/{}", native_arch());
        assert!(platform_refusal(&native, failed, binfmt.path()).is_none());
        // A registered handler runs it: not a refusal (a disabled one does not).
        std::fs::write(binfmt.path().join(&handler), "disabled\n").unwrap();
        assert!(platform_refusal(foreign, failed, binfmt.path()).is_some());
        std::fs::write(
            binfmt.path().join(&handler),
            "enabled\ninterpreter /usr/libexec/qemu-binfmt\n",
        )
        .unwrap();
        assert!(platform_refusal(foreign, failed, binfmt.path()).is_none());
    }

    #[test]
    fn docker_io_goes_to_the_mirror_only_when_there_is_one() {
        let plain = registries_conf("127.0.0.1:5000", None);
        assert!(plain.contains("unqualified-search-registries = [\"127.0.0.1:5000\"]"));
        assert!(!plain.contains("docker.io"));
        let mirrored = registries_conf("127.0.0.1:5000", Some("hub"));
        assert!(mirrored
            .contains("unqualified-search-registries = [\"127.0.0.1:5000\", \"docker.io\"]"));
        assert!(mirrored.contains(
            "[[registry]]\nprefix = \"docker.io\"\nlocation = \"127.0.0.1:5000/hub\"\ninsecure = true\n"
        ));
        assert_eq!(platform_slug("linux/arm/v7"), "linux-arm-v7");
    }

    #[test]
    fn a_stopped_program_takes_its_children_with_it() {
        let log: SharedLog = Arc::new(Mutex::new(BuildLog::new(1 << 20)));
        let stop = AtomicBool::new(true);
        let child = Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30; echo never"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let started = Instant::now();
        let outcome = supervise(
            child,
            "sleep",
            &log,
            &stop,
            Instant::now() + Duration::from_secs(60),
        );
        assert!(matches!(outcome, Err(Stop::Cancelled)));
        // The reader threads ended: the background sleep held the pipe and was killed too.
        assert!(started.elapsed() < Duration::from_secs(20));
        let timed = Command::new("sh")
            .args(["-c", "echo started; sleep 30"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let outcome = supervise(
            timed,
            "sleep",
            &log,
            &AtomicBool::new(false),
            Instant::now() + Duration::from_millis(300),
        );
        assert!(matches!(outcome, Err(Stop::TimedOut)));
        assert!(log.lock().unwrap().text().contains("started"));
    }
}
