//! `berth immutable …` and `berth retention …`: immutable tag rules and retention policies
//! managed from the data directory; `retention run` deletes through the same guarded
//! transaction as the server, whose garbage collection later reclaims the bytes.

use super::CliResult;
use crate::cli::{ImmutableCommand, RetentionCommand};
use crate::config::Config;
use berth_core::access::PolicyAuthorizer;
use berth_core::identity::Acting;
use berth_core::jobs::Wake;
use berth_core::lifecycle::{ImmutableRequest, ImmutableRule, Lifecycle, RetentionRequest, Target};
use berth_core::ports::{MetaStore, StoredPolicy};
use berth_core::time::rfc3339;
use std::sync::Arc;

pub(super) fn service(config: &Config, meta: Arc<dyn MetaStore>) -> Lifecycle {
    let authorizer = Arc::new(PolicyAuthorizer::new(meta.clone()));
    Lifecycle::new(
        meta,
        authorizer,
        berth_core::clock::system(),
        Wake::default(),
    )
    // The mirrors' namespaces have no account: the CLI (a site admin) manages them too.
    .with_mirror_namespaces(
        config
            .mirrors
            .value
            .iter()
            .map(|m| m.prefix.clone())
            .collect(),
    )
}

fn target(text: &str) -> CliResult<Target> {
    Ok(Target::parse(text)?)
}

fn rule_line(rule: &ImmutableRule) -> String {
    let tags = if rule.tags.is_empty() {
        "*".to_owned()
    } else {
        rule.tags.join(",")
    };
    format!(
        "{}  tags={tags}  exclude={}  cosign={}  set by {} at {}",
        rule.target,
        rule.excludes.join(","),
        if rule.exempt_cosign {
            "exempt"
        } else {
            "immutable"
        },
        rule.updated_by,
        rfc3339(rule.updated_at)
    )
}

fn rule_json(rule: &ImmutableRule) -> serde_json::Value {
    serde_json::json!({
        "scope": rule.target.scope(), "target": rule.target.name(), "tags": rule.tags,
        "excludes": rule.excludes, "exempt_cosign": rule.exempt_cosign,
        "updated_by": rule.updated_by, "updated_at": rfc3339(rule.updated_at),
    })
}

fn policy_json(stored: &StoredPolicy) -> serde_json::Value {
    let p = &stored.policy;
    serde_json::json!({
        "scope": stored.target.scope(), "target": stored.target.name(),
        "keep_last_pushed": p.keep_last_pushed, "keep_last_pulled": p.keep_last_pulled,
        "keep_pushed_days": p.keep_pushed_days, "keep_pulled_days": p.keep_pulled_days,
        "tags": p.tags, "untagged_days": p.untagged_days, "schedule": p.schedule,
        "allow_empty": p.allow_empty, "revision": stored.revision,
        "next_run": stored.next_run_at.map(rfc3339), "description": p.describe(),
    })
}

pub(super) async fn immutable(
    lifecycle: &Lifecycle,
    acting: &Acting<'_>,
    command: ImmutableCommand,
) -> CliResult {
    match command {
        ImmutableCommand::Set {
            target: text,
            tags,
            excludes,
            include_cosign,
        } => {
            let request = ImmutableRequest {
                tags,
                excludes,
                exempt_cosign: Some(!include_cosign),
            };
            let rule = lifecycle
                .set_immutable(acting, &target(&text)?, request)
                .await?;
            println!("{}", rule_line(&rule));
        }
        ImmutableCommand::Show { target: text, json } => {
            let target = target(&text)?;
            match lifecycle.immutable_rule(acting, &target).await? {
                Some(rule) if json => {
                    println!("{}", serde_json::to_string_pretty(&rule_json(&rule))?)
                }
                Some(rule) => println!("{}", rule_line(&rule)),
                None if json => println!("null"),
                None => println!("{target} has no immutable-tag rule"),
            }
        }
        ImmutableCommand::Clear { target: text } => {
            let target = target(&text)?;
            if lifecycle.clear_immutable(acting, &target).await? {
                println!("removed the immutable-tag rule of {target}");
            } else {
                return Err(format!("{target} has no immutable-tag rule").into());
            }
        }
    }
    Ok(())
}

pub(super) async fn retention(
    lifecycle: &Lifecycle,
    acting: &Acting<'_>,
    command: RetentionCommand,
) -> CliResult {
    match command {
        RetentionCommand::Set {
            target: text,
            keep_last_pushed,
            keep_last_pulled,
            keep_pushed_days,
            keep_pulled_days,
            tags,
            untagged_days,
            schedule,
            allow_empty,
        } => {
            let request = RetentionRequest {
                keep_last_pushed,
                keep_last_pulled,
                keep_pushed_days,
                keep_pulled_days,
                tags,
                untagged_days,
                schedule,
                allow_empty,
            };
            let stored = lifecycle
                .set_retention(acting, &target(&text)?, request)
                .await?;
            println!("{}: {}", stored.target, stored.policy.describe());
        }
        RetentionCommand::Show { target: text, json } => {
            let target = target(&text)?;
            match lifecycle.retention_policy(acting, &target).await? {
                Some(stored) if json => {
                    println!("{}", serde_json::to_string_pretty(&policy_json(&stored))?)
                }
                Some(stored) => {
                    println!("{}: {}", stored.target, stored.policy.describe());
                    if let Some(next) = stored.next_run_at {
                        println!("next run: {}", rfc3339(next));
                    }
                }
                None if json => println!("null"),
                None => println!("{target} has no retention policy"),
            }
        }
        RetentionCommand::Clear { target: text } => {
            let target = target(&text)?;
            if lifecycle.clear_retention(acting, &target).await? {
                println!("removed the retention policy of {target}");
            } else {
                return Err(format!("{target} has no retention policy").into());
            }
        }
        RetentionCommand::Run {
            target: text,
            dry_run,
            json,
        } => {
            let report = lifecycle.run(acting, &target(&text)?, dry_run).await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                let verb = if dry_run { "would delete" } else { "deleted" };
                for tag in &report.tags {
                    println!("{verb} tag {tag}");
                }
                for manifest in &report.manifests {
                    println!("{verb} manifest {manifest}");
                }
                println!(
                    "{} tags, {} manifests, {} bytes for garbage collection to reclaim{}",
                    report.tags.len(),
                    report.manifests.len(),
                    report.bytes,
                    if report.skipped > 0 {
                        format!("; {} left alone because they changed", report.skipped)
                    } else {
                        String::new()
                    }
                );
            }
        }
        RetentionCommand::Runs {
            target: text,
            json,
            limit,
        } => {
            let runs = lifecycle.runs(acting, &target(&text)?, limit).await?;
            if json {
                let rows: Vec<serde_json::Value> = runs
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "id": r.id, "trigger": r.trigger, "actor": r.actor,
                            "started": rfc3339(r.started_at), "finished": rfc3339(r.finished_at),
                            "tags": r.tags, "manifests": r.manifests, "skipped": r.skipped,
                            "bytes": r.bytes, "error": r.error,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                for r in &runs {
                    println!(
                        "#{}  {}  {}  by {}  {} tags  {} manifests  {} bytes{}",
                        r.id,
                        rfc3339(r.started_at),
                        r.trigger,
                        r.actor.as_deref().unwrap_or("-"),
                        r.tags.len(),
                        r.manifests.len(),
                        r.bytes,
                        r.error
                            .as_deref()
                            .map(|e| format!("  stopped: {e}"))
                            .unwrap_or_default()
                    );
                }
            }
        }
    }
    Ok(())
}
