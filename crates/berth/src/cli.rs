//! The command line: global flags every subcommand accepts, and the subcommands.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "A self-hosted Docker Hub in one binary"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// TOML configuration file (also BERTH_CONFIG).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where Berth keeps its state (also BERTH_DATA_DIR) [default: ./berth-data].
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the registry server.
    Serve(ServeArgs),
    /// Inspect the effective configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Administration on the data directory, server running or not.
    #[command(flatten)]
    Admin(AdminCommand),
    /// Back up the data directory consistently, while the server runs or not.
    ///
    /// The database (an online snapshot) and every blob it references go into an empty
    /// directory, with a manifest that `restore` checks.
    Backup(BackupArgs),
    /// Fill an empty data directory from a backup, verifying every blob.
    Restore(RestoreArgs),
    /// Check the stored blobs against the database and look for orphaned files.
    ///
    /// Every blob the database references must be there with its size and digest. Exit
    /// status 0 only when nothing is wrong.
    Fsck(FsckArgs),
    /// Copy this single-node data directory into the PostgreSQL + S3 (or filesystem)
    /// deployment another configuration file describes, and verify the copy.
    ///
    /// The server must be stopped. The target database must be empty; after an
    /// interruption, rerun with --resume to finish the copy.
    Migrate(MigrateArgs),
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The configuration of the new deployment (its database_url and storage section).
    #[arg(long, value_name = "NEW.toml")]
    pub to_config: PathBuf,
    /// Finish a migration that was interrupted (the target then holds part of it).
    #[arg(long)]
    pub resume: bool,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where the backup goes: a directory that is empty or does not exist yet.
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// Copy every blob, even where a hard link to it would do (same filesystem).
    #[arg(long)]
    pub copy: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A directory `berth backup` wrote.
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
}

#[derive(Debug, Args)]
pub struct FsckArgs {
    /// Remove orphaned files and move corrupt blobs to `quarantine/` (needs the server
    /// stopped; database rows are never deleted).
    #[arg(long)]
    pub repair: bool,
    /// Print one JSON document instead of lines.
    #[arg(long)]
    pub json: bool,
    /// Files changed more recently than this are not called orphaned: an upload or a
    /// commit may be under way (`0s` for none).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = grace_period)]
    pub grace: std::time::Duration,
}

fn poll_interval(raw: &str) -> Result<std::time::Duration, String> {
    crate::config::parse_duration("--poll", raw, crate::config::Source::Flag)
        .map_err(|e| e.to_string())
}

fn grace_period(raw: &str) -> Result<std::time::Duration, String> {
    if matches!(raw.trim(), "0" | "0s" | "0m" | "0h" | "0d") {
        return Ok(std::time::Duration::ZERO);
    }
    crate::config::parse_duration("--grace", raw, crate::config::Source::Flag)
        .map_err(|e| e.to_string())
}

/// The administration subcommands. They act as a site admin named `cli`: whoever can open
/// the data directory already controls everything in it.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage personal access tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage organizations and their access tokens.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Manage an organization's teams, their members and their repository permissions.
    #[command(subcommand)]
    Team(TeamCommand),
    /// Manage repositories: creation, visibility, collaborators, deletion.
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Show the audit log, newest first.
    Audit(AuditArgs),
    /// Manage webhooks: where events are sent, their deliveries, pings and redeliveries.
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// Delete blobs nothing references (after `gc_grace`), orphan manifests and expired
    /// uploads, now; the server keeps serving meanwhile.
    Gc(GcArgs),
    /// Space a namespace or a repository uses, with the namespace's quota.
    Usage(UsageArgs),
    /// Namespace quotas.
    #[command(subcommand)]
    Quota(QuotaCommand),
    /// Immutable tags: which tags of a repository or namespace can be neither moved nor deleted.
    #[command(subcommand)]
    Immutable(ImmutableCommand),
    /// Retention policies: what a repository or namespace keeps, dry runs and runs.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Pull rate-limit plans of accounts and organizations (they replace `[rate_limit]`'s
    /// tiers for that account).
    #[command(subcommand)]
    Plan(PlanCommand),
    /// Public keys a repository or namespace trusts to sign its images (cosign.pub files).
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Pull policies: verified signatures only, or no findings of a severity or worse.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The offline vulnerability database (OSV data imported from files).
    #[command(subcommand)]
    Vulndb(VulndbCommand),
    /// Scan an image now: its packages, and the advisories that affect them.
    ///
    /// Exit status 1 with --fail-on when a finding of that severity or worse exists.
    Scan(ScanArgs),
    /// Replication rules: copying repositories to other registries, on push, on a schedule
    /// or when asked, and the history of their runs.
    #[command(subcommand)]
    Replication(ReplicationCommand),
    /// Automated builds: a git source and rules per repository, builds and their logs.
    ///
    /// Builds run in the server (as jobs); these commands queue and watch them.
    #[command(subcommand)]
    Build(BuildCommand),
}

#[derive(Debug, Subcommand)]
pub enum ReplicationCommand {
    /// Create a rule that copies matching repositories and tags to another registry
    /// (`--to URL`), or imports them from one into a namespace here (`--from URL`).
    Create {
        /// The rule's name.
        name: String,
        /// Repositories to copy. With --to: `NAMESPACE/REPO_GLOB` here (`*` matches any
        /// text, e.g. `acme/*`). With --from: a glob over the remote's repository names
        /// (`library/*`, `alpine`).
        #[arg(long, value_name = "PATTERN")]
        source: String,
        /// Only tags matching these globs; repeatable (default every tag).
        #[arg(long = "tag", value_name = "GLOB")]
        tags: Vec<String>,
        /// The destination registry's URL (`https://ghcr.io`): a push rule.
        #[arg(
            long,
            value_name = "URL",
            required_unless_present = "from",
            conflicts_with = "from"
        )]
        to: Option<String>,
        /// The registry to import from: a pull rule (needs --to-namespace).
        #[arg(long, value_name = "URL")]
        from: Option<String>,
        /// With --to: the namespace copies go under there (default: the source's). With
        /// --from: the namespace here the imports go under.
        #[arg(long, value_name = "NS")]
        to_namespace: Option<String>,
        /// Keep only the last component of repository names under the destination namespace.
        #[arg(long)]
        flatten: bool,
        /// The account at the destination.
        #[arg(long, value_name = "U")]
        username: Option<String>,
        /// Read the password or access token from standard input (stored encrypted).
        #[arg(long, requires = "username")]
        password_stdin: bool,
        /// Verify the destination's TLS certificate (`--tls-verify=false` to skip).
        #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
        tls_verify: bool,
        /// When the rule runs: `push`, `manual` (the default), or a cron expression (UTC).
        #[arg(long, value_name = "push|manual|CRON")]
        trigger: Option<String>,
        /// Delete tags at the destination when they are deleted here (push rules).
        #[arg(long)]
        deletes: bool,
        /// Most bytes per second a run copies (`50MiB/s`, `10MB/s`); default no limit.
        #[arg(long, value_name = "RATE")]
        bandwidth: Option<String>,
    },
    /// Run a rule: queued for the running server, or here and now with --wait.
    Run {
        name: String,
        /// Run it in this process and print a JSON summary (`copied`, `skipped`, `failed`).
        #[arg(long)]
        wait: bool,
    },
    /// List the rules.
    List {
        /// One JSON document instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// The runs of a rule, newest first: what was copied, skipped and failed, and why.
    History {
        name: String,
        /// One JSON document instead of lines.
        #[arg(long)]
        json: bool,
        /// Most runs shown.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Delete a rule and its history.
    Delete { name: String },
    /// Turn a rule back on.
    Enable { name: String },
    /// Turn a rule off: it runs neither on push nor on schedule.
    Disable { name: String },
}

#[derive(Debug, Subcommand)]
pub enum BuildCommand {
    /// The git repository a repository builds from.
    #[command(subcommand)]
    Source(BuildSourceCommand),
    /// Build rules: which branches and tags build which image tags.
    #[command(subcommand)]
    Rule(BuildRuleCommand),
    /// Build now: every rule matching --ref, or each rule's own branch or tag.
    ///
    /// With --wait, one JSON line per build as it ends (`id`, `status`, `digest`, `tags`);
    /// exit status 1 when one did not succeed.
    Trigger {
        /// `NAMESPACE/REPO`.
        repository: String,
        /// A branch or tag (`main`, `refs/heads/main`, `refs/tags/v1.2.3`).
        #[arg(long = "ref", value_name = "REF")]
        git_ref: Option<String>,
        /// Wait for the builds to end.
        #[arg(long)]
        wait: bool,
    },
    /// The repository's builds, newest first.
    List {
        repository: String,
        #[arg(long)]
        json: bool,
        /// At most this many.
        #[arg(long, default_value_t = 25)]
        limit: u32,
    },
    /// A build's log (secrets masked); with --follow, until the build ends.
    Logs {
        id: i64,
        #[arg(long)]
        follow: bool,
    },
    /// Cancel a queued build, or stop a running one.
    Cancel { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum BuildSourceCommand {
    /// Link REPOSITORY to a git repository; prints the webhook secret (and a generated
    /// deploy key's public half), which are not shown again.
    Set {
        /// `NAMESPACE/REPO`.
        repository: String,
        /// `https://`, `ssh://` or `file://` URL.
        #[arg(long = "git", value_name = "URL")]
        git: String,
        /// Read a token for an https:// host from standard input.
        #[arg(long, conflicts_with = "deploy_key")]
        token_stdin: bool,
        /// Generate a deploy key for an ssh:// host.
        #[arg(long)]
        deploy_key: bool,
        /// Also look for new commits this often (at least 10s), for hosts that cannot call
        /// the webhook.
        #[arg(long, value_name = "DURATION", value_parser = poll_interval)]
        poll: Option<std::time::Duration>,
    },
    /// The source, without its secrets.
    Show { repository: String },
    /// Unlink the source and remove its rules.
    Delete { repository: String },
}

#[derive(Debug, Subcommand)]
pub enum BuildRuleCommand {
    /// Add a rule (at most 10 per repository).
    Add {
        /// `NAMESPACE/REPO`.
        repository: String,
        #[arg(long = "type", value_parser = ["branch", "tag"])]
        kind: String,
        /// A branch or tag name, or `/regex/`.
        #[arg(long)]
        source: String,
        /// The image tag: a literal, or a template with `{sourceref}` and `{\1}`;
        /// comma-separated for several.
        #[arg(long)]
        tag: String,
        /// The Dockerfile, relative to the context.
        #[arg(long, default_value = "Dockerfile")]
        dockerfile: String,
        /// The build context, relative to the repository's root.
        #[arg(long, default_value = ".")]
        context: String,
        /// `KEY=VALUE`, repeatable.
        #[arg(long = "build-arg", value_name = "K=V")]
        build_args: Vec<String>,
        /// Platforms to build for, `os/arch[/variant]`: comma-separated or repeated
        /// (`linux/amd64,linux/arm64`). Two or more push a multi-platform index; none
        /// builds for this machine's own platform.
        #[arg(long = "platform", value_name = "PLATFORMS")]
        platforms: Vec<String>,
        /// Build only when triggered by hand, not on pushes.
        #[arg(long)]
        no_autobuild: bool,
    },
    /// The repository's rules.
    List {
        repository: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove a rule.
    Delete { repository: String, id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum VulndbCommand {
    /// Replace the database with OSV data: an `all.zip` archive OSV publishes per
    /// ecosystem, a `.json` advisory, or a directory of either. Malformed entries are
    /// skipped and counted; the server then rescans every image.
    Import { path: PathBuf },
    /// What is loaded: advisories per ecosystem, when it was imported, how fresh it is.
    Status {
        /// One JSON document instead of lines.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// `NAMESPACE/REPO:TAG` or `NAMESPACE/REPO@DIGEST`.
    pub reference: String,
    /// One JSON document instead of lines.
    #[arg(long)]
    pub json: bool,
    /// Exit with status 1 when a finding of this severity or worse exists.
    #[arg(long, value_name = "SEVERITY", value_parser = ["low", "medium", "high", "critical"])]
    pub fail_on: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// Set the plan of ACCOUNT (a user or an organization): `unlimited`, or `N;w=S` for N
    /// manifest pulls per S seconds (e.g. "500;w=21600").
    Set { account: String, plan: String },
    /// Remove ACCOUNT's plan: it goes back to its tier.
    Clear { account: String },
    /// List every plan.
    List {
        /// One JSON array instead of lines.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Trust a public key (PEM, as `cosign generate-key-pair` writes cosign.pub: ECDSA P-256,
    /// Ed25519 or RSA) for TARGET (`NAMESPACE/REPO` or `NAMESPACE`).
    Add {
        target: String,
        /// The key's name, shown with the images it verifies.
        #[arg(long)]
        name: String,
        /// The public key file.
        #[arg(long, value_name = "FILE.pub")]
        key: std::path::PathBuf,
    },
    /// The keys TARGET trusts itself (a repository also trusts its namespace's).
    List {
        target: String,
        /// One JSON document instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Stop trusting the key NAME; images it verified are checked again.
    Remove { target: String, name: String },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Set TARGET's pull policy (`NAMESPACE/REPO` or `NAMESPACE`). Options not given keep
    /// their current value; a repository's policy and its namespace's both apply.
    Set {
        target: String,
        /// Refuse pulls of images without a signature verified by a trusted key.
        #[arg(long, conflicts_with = "no_require_signature")]
        require_signature: bool,
        /// No longer require a verified signature.
        #[arg(long)]
        no_require_signature: bool,
        /// Refuse pulls of images with findings of this severity or worse (`low`, `medium`,
        /// `high`, `critical`), or `none` to stop.
        #[arg(long, value_name = "SEVERITY")]
        block_severity: Option<String>,
        /// With --block-severity: let images not scanned yet through.
        #[arg(long, conflicts_with = "no_allow_unscanned")]
        allow_unscanned: bool,
        /// Refuse images not scanned yet again.
        #[arg(long)]
        no_allow_unscanned: bool,
    },
    /// Show TARGET's pull policy.
    Show {
        target: String,
        /// One JSON document instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Remove TARGET's pull policy.
    Clear { target: String },
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Only count what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
    /// One JSON object: `{"blobs": N, "bytes": N, "manifests": N, "uploads": N, ...}`.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// `NAMESPACE` or `NAMESPACE/REPO`.
    #[arg(required_unless_present = "recompute")]
    pub target: Option<String>,
    /// One JSON object: `{"bytes": N, "quota": N|null}`.
    #[arg(long)]
    pub json: bool,
    /// Recount every total from the stored links (a repair), then show the target if given.
    #[arg(long)]
    pub recompute: bool,
}

#[derive(Debug, Subcommand)]
pub enum QuotaCommand {
    /// Set a namespace's quota: a size such as `10GiB` or `500MB` (binary units), or `none`.
    Set { namespace: String, size: String },
}

#[derive(Debug, Subcommand)]
pub enum ImmutableCommand {
    /// Set (replace) the rule of TARGET (`NAMESPACE/REPO` or `NAMESPACE`); without --tag every
    /// tag is immutable.
    Set {
        target: String,
        /// Immutable tags, as glob patterns (`v*`); repeatable.
        #[arg(long = "tag", value_name = "GLOB")]
        tags: Vec<String>,
        /// Tags left mutable although a --tag matches them; repeatable.
        #[arg(long = "exclude", value_name = "GLOB")]
        excludes: Vec<String>,
        /// Make cosign's fallback tags (`sha256-<hex>.sig|.att|.sbom`) immutable too.
        #[arg(long)]
        include_cosign: bool,
    },
    /// Show the rule of TARGET.
    Show {
        target: String,
        /// One JSON document instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Remove the rule of TARGET.
    Clear { target: String },
}

#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Set (replace) the policy of TARGET (`NAMESPACE/REPO` or `NAMESPACE`; a repository's
    /// own policy overrides its namespace's). Tags no keep rule keeps are deleted.
    Set {
        target: String,
        /// Keep the N most recently pushed tags.
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        keep_last_pushed: Option<i64>,
        /// Keep the N most recently pulled tags.
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        keep_last_pulled: Option<i64>,
        /// Keep tags pushed within D days.
        #[arg(long, value_name = "D", allow_negative_numbers = true)]
        keep_pushed_days: Option<i64>,
        /// Keep tags pulled within D days.
        #[arg(long, value_name = "D", allow_negative_numbers = true)]
        keep_pulled_days: Option<i64>,
        /// Apply the keep rules to tags matching these globs only; repeatable.
        #[arg(long = "tag", value_name = "GLOB")]
        tags: Vec<String>,
        /// Remove untagged manifests pushed more than D days ago.
        #[arg(long, value_name = "D", allow_negative_numbers = true)]
        untagged_days: Option<i64>,
        /// Run by itself: `daily` or a cron expression (five fields, UTC).
        #[arg(long, value_name = "CRON")]
        schedule: Option<String>,
        /// Allow the policy to delete every tag of a repository.
        #[arg(long)]
        allow_empty: bool,
    },
    /// Show the policy of TARGET.
    Show {
        target: String,
        /// One JSON document instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Remove the policy of TARGET.
    Clear { target: String },
    /// Run retention on TARGET now: with --dry-run only list what would go.
    Run {
        target: String,
        /// Delete nothing; list the tags and manifests that would go and the bytes freed.
        #[arg(long)]
        dry_run: bool,
        /// Print `{"tags": [...], "manifests": [...], "bytes": N}`.
        #[arg(long)]
        json: bool,
    },
    /// The recorded runs of TARGET, newest first.
    Runs {
        target: String,
        /// One JSON document instead of lines.
        #[arg(long)]
        json: bool,
        /// Most runs shown.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

/// What a webhook fires for: `NAMESPACE/REPO`, `NAMESPACE`, or `--site`.
#[derive(Debug, Args)]
pub struct WebhookTargetArgs {
    /// `NAMESPACE/REPO` (one repository) or `NAMESPACE` (every repository of a user or an
    /// organization).
    #[arg(required_unless_present = "site", conflicts_with = "site")]
    pub target: Option<String>,
    /// Every repository of the site.
    #[arg(long)]
    pub site: bool,
}

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Create a webhook; prints its id and, this once, its secret.
    Create {
        #[command(flatten)]
        target: WebhookTargetArgs,
        /// Where deliveries are POSTed (http or https).
        #[arg(long)]
        url: String,
        /// Event kinds: push (the default), tag_delete, manifest_delete, repository,
        /// quota_warning, retention, scan, build, replication.
        #[arg(long = "event", value_name = "KIND")]
        events: Vec<String>,
        /// Only tags matching these glob patterns (`*`); default every tag.
        #[arg(long = "tag", value_name = "GLOB")]
        tags: Vec<String>,
        /// Payload format: dockerhub (the default) or cloudevents.
        #[arg(long)]
        format: Option<String>,
        /// A name for lists (default: the URL's host).
        #[arg(long)]
        name: Option<String>,
        /// A header sent with every delivery, `NAME: VALUE`, stored encrypted.
        #[arg(long, value_name = "NAME: VALUE")]
        header: Option<String>,
    },
    /// List the webhooks of a repository, a namespace or the site.
    List {
        #[command(flatten)]
        target: WebhookTargetArgs,
        /// One JSON document instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Delete a webhook and its pending deliveries.
    Delete { id: String },
    /// Send a test ping (delivered by the running server).
    Ping { id: String },
    /// The webhook's delivery attempts, newest first.
    Deliveries {
        id: String,
        /// One JSON document instead of lines.
        #[arg(long)]
        json: bool,
        /// Most attempts shown.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Send a delivery again, with its id and body unchanged.
    Redeliver { id: String, delivery: String },
    /// Turn a webhook back on (after it was disabled), forgetting its failures.
    Enable { id: String },
    /// Turn a webhook off.
    Disable { id: String },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input.
    Create {
        name: String,
        /// Make the user a site administrator.
        #[arg(long)]
        admin: bool,
        /// Read the password from standard input (required: passwords never go in arguments).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Change a user's password, read from standard input.
    Passwd {
        name: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List every user.
    List,
    /// Grant or revoke site administration.
    Admin {
        name: String,
        #[arg(long, conflicts_with = "revoke", required_unless_present = "revoke")]
        grant: bool,
        #[arg(long)]
        revoke: bool,
    },
    /// Turn a user's two-factor authentication off (for a lost device).
    #[command(name = "disable-2fa")]
    DisableTwoFactor { name: String },
    /// Disable an account: its password, tokens and sessions stop working at once.
    Disable { name: String },
    /// Enable a disabled account again (its password and unrevoked access tokens work again).
    Enable { name: String },
    /// Delete an account with its tokens, sessions and memberships. Refused while it owns
    /// repositories (unless --force) or is the last owner of an organization.
    Delete {
        name: String,
        /// Delete the repositories of its namespace with it.
        #[arg(long)]
        force: bool,
    },
}

/// What a new token may do, for personal and organization tokens alike.
#[derive(Debug, Args)]
pub struct TokenSpec {
    /// repo:public_read, repo:read, repo:write or repo:admin.
    #[arg(long)]
    pub scope: String,
    /// Limit the token to repositories matching this pattern (`*` matches anything); repeatable.
    #[arg(long = "repo", value_name = "PATTERN")]
    pub repos: Vec<String>,
    /// Expire the token after this many days.
    #[arg(long, value_name = "DAYS")]
    pub expires: Option<u32>,
    /// A label to recognize the token by.
    #[arg(long, value_name = "LABEL", default_value = "cli")]
    pub name: String,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a personal access token and print it (it is shown only once).
    Create {
        user: String,
        #[command(flatten)]
        spec: TokenSpec,
    },
    /// List a user's personal access tokens.
    List { user: String },
    /// Revoke one of a user's personal access tokens.
    Revoke { user: String, id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organization with USER in its owners team.
    Create {
        org: String,
        #[arg(long, value_name = "USER", required = true)]
        owner: String,
    },
    /// List every organization.
    List,
    /// Manage organization access tokens.
    #[command(subcommand)]
    Token(OrgTokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum OrgTokenCommand {
    /// Create an organization access token and print it (it is shown only once).
    Create {
        org: String,
        #[command(flatten)]
        spec: TokenSpec,
    },
    /// List an organization's access tokens.
    List { org: String },
    /// Revoke an organization access token.
    Revoke { org: String, id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum TeamCommand {
    /// Create a team.
    Create {
        org: String,
        team: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Delete a team with its memberships and permissions.
    Delete { org: String, team: String },
    /// List an organization's teams with their members.
    List { org: String },
    /// Add a user to a team.
    Add {
        org: String,
        team: String,
        user: String,
    },
    /// Remove a user from a team.
    Remove {
        org: String,
        team: String,
        user: String,
    },
    /// Give a team a permission on one of the organization's repositories.
    Grant {
        org: String,
        team: String,
        repo: String,
        /// read, write or admin.
        #[arg(long)]
        permission: String,
    },
    /// Take a team's permission on a repository away.
    Revoke {
        org: String,
        team: String,
        repo: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Visibility {
    Public,
    Private,
}

#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Create an empty repository (private by default, or as its namespace is configured).
    Create {
        name: String,
        #[arg(long, conflicts_with = "private")]
        public: bool,
        #[arg(long)]
        private: bool,
    },
    /// List a namespace's repositories with their permissions.
    List { namespace: String },
    /// Make a repository public or private.
    Visibility {
        name: String,
        #[arg(value_enum)]
        visibility: Visibility,
    },
    /// Set whether repositories a push creates in a namespace are public or private.
    DefaultVisibility {
        namespace: String,
        #[arg(value_enum)]
        visibility: Visibility,
    },
    /// Delete a repository with its tags (blobs are left for garbage collection).
    Delete {
        name: String,
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
    },
    /// Manage collaborators on a personal repository.
    #[command(subcommand)]
    Collaborator(CollaboratorCommand),
}

#[derive(Debug, Subcommand)]
pub enum CollaboratorCommand {
    /// Add a collaborator (or change their permission).
    Add {
        repo: String,
        user: String,
        /// read, write or admin.
        #[arg(long, default_value = "write")]
        permission: String,
    },
    /// Remove a collaborator.
    Remove { repo: String, user: String },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only actions by or on this account (or repository, or `org/team`).
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
    /// At most this many records.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: u32,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (also BERTH_LISTEN) [default: 127.0.0.1:5000].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every setting with the source it came from.
    Show,
}

impl Command {
    pub fn listen_flag(&self) -> Option<&str> {
        match self {
            Command::Serve(args) => args.listen.as_deref(),
            Command::Config(_)
            | Command::Admin(_)
            | Command::Backup(_)
            | Command::Restore(_)
            | Command::Fsck(_)
            | Command::Migrate(_) => None,
        }
    }
}
