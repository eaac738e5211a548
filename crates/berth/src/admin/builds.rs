//! `berth build …`: build sources, rules and builds from the data directory. Builds are
//! queued as jobs, which the running server runs; `--wait` and `logs --follow` watch the
//! database until they end.

use super::{repository_name, CliResult};
use crate::cli::{BuildCommand, BuildRuleCommand, BuildSourceCommand};
use crate::config::Config;
use berth_core::access::PolicyAuthorizer;
use berth_core::builds::rules::split_platforms;
use berth_core::builds::{BuildRecord, Builds, CredentialInput, RefKind, RuleSpec};
use berth_core::identity::Acting;
use berth_core::jobs::Wake;
use berth_core::ports::MetaStore;
use std::io::Read as _;
use std::sync::Arc;
use std::time::Duration;

/// How often `--wait` and `--follow` look at the database.
const POLL: Duration = Duration::from_millis(300);

pub(super) fn service(config: &Config, meta: Arc<dyn MetaStore>) -> CliResult<Builds> {
    let seal = crate::secrets::load_or_create(&config.secrets_key_path())?;
    let authorizer = Arc::new(PolicyAuthorizer::new(meta.clone()));
    Ok(Builds::new(
        meta,
        authorizer,
        seal,
        berth_core::clock::system(),
        Wake::default(),
        config.build_settings(),
    ))
}

fn line(build: &BuildRecord) -> String {
    format!(
        "{}  {}  {} {}  {}  tags={}  {}{}",
        build.id,
        build.status.as_str(),
        build.ref_kind.as_str(),
        build.ref_name,
        build
            .commit
            .as_deref()
            .map_or("-", |c| &c[..c.len().min(12)]),
        build.tags.join(","),
        build.digest.as_deref().unwrap_or("-"),
        build
            .reason
            .as_deref()
            .map(|r| format!("  ({r})"))
            .unwrap_or_default()
    )
}

fn summary(build: &BuildRecord) -> String {
    serde_json::json!({
        "id": build.id,
        "status": build.status.as_str(),
        "digest": build.digest,
        "tags": build.tags,
        "reason": build.reason,
    })
    .to_string()
}

pub(super) async fn build(
    builds: &Builds,
    acting: &Acting<'_>,
    command: BuildCommand,
) -> CliResult {
    match command {
        BuildCommand::Source(command) => source(builds, acting, command).await,
        BuildCommand::Rule(command) => rule(builds, acting, command).await,
        BuildCommand::Trigger {
            repository,
            git_ref,
            wait,
        } => {
            let repo = repository_name(&repository)?;
            let queued = builds.trigger(acting, &repo, git_ref.as_deref()).await?;
            if !wait {
                for build in &queued {
                    println!("{}", line(build));
                }
                return Ok(());
            }
            let mut failed = false;
            for build in queued {
                let mut current = build;
                while !current.status.is_final() {
                    tokio::time::sleep(POLL).await;
                    current = builds.get(acting.principal, current.id).await?;
                }
                failed |= current.status != berth_core::builds::BuildStatus::Succeeded;
                println!("{}", summary(&current));
            }
            if failed {
                return Err("a build did not succeed: see `berth build logs ID`".into());
            }
            Ok(())
        }
        BuildCommand::List {
            repository,
            json,
            limit,
        } => {
            let repo = repository_name(&repository)?;
            let list = builds.list(acting.principal, &repo, None, limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for build in &list {
                    println!("{}", line(build));
                }
            }
            Ok(())
        }
        BuildCommand::Logs { id, follow } => {
            let mut shown = 0usize;
            loop {
                let build = builds.get(acting.principal, id).await?;
                if let Some(fresh) = build.log.get(shown..) {
                    print!("{fresh}");
                    shown = build.log.len();
                }
                if !follow || build.status.is_final() {
                    return Ok(());
                }
                tokio::time::sleep(POLL).await;
            }
        }
        BuildCommand::Cancel { id } => {
            let build = builds.cancel(acting, id).await?;
            println!("{}", line(&build));
            Ok(())
        }
    }
}

async fn source(builds: &Builds, acting: &Acting<'_>, command: BuildSourceCommand) -> CliResult {
    match command {
        BuildSourceCommand::Set {
            repository,
            git,
            token_stdin,
            deploy_key,
            poll,
        } => {
            let repo = repository_name(&repository)?;
            let credential = if token_stdin {
                let mut token = String::new();
                std::io::stdin().read_to_string(&mut token)?;
                CredentialInput::Token(token.trim().to_owned())
            } else if deploy_key {
                CredentialInput::DeployKey
            } else {
                CredentialInput::None
            };
            let view = builds
                .set_source(acting, &repo, &git, credential, poll)
                .await?;
            println!("linked {} to {}", view.repository, view.git_url);
            if let Some(seconds) = view.poll_seconds {
                println!("polled every {seconds} s");
            }
            if let Some(key) = &view.public_key {
                println!("deploy key (add it to the git host, read-only): {key}");
            }
            if let Some(secret) = &view.hook_secret {
                println!("webhook secret: {secret}");
            }
            println!(
                "webhook URL: /api/v1/repositories/{}/build-hooks/{{github|gitlab|gitea|generic}}",
                view.repository
            );
            Ok(())
        }
        BuildSourceCommand::Show { repository } => {
            let repo = repository_name(&repository)?;
            let view = builds.source(acting.principal, &repo).await?;
            println!("{}", serde_json::to_string_pretty(&view)?);
            Ok(())
        }
        BuildSourceCommand::Delete { repository } => {
            let repo = repository_name(&repository)?;
            if builds.delete_source(acting, &repo).await? {
                println!("unlinked {repo}");
                Ok(())
            } else {
                Err(format!("{repo} has no build source").into())
            }
        }
    }
}

async fn rule(builds: &Builds, acting: &Acting<'_>, command: BuildRuleCommand) -> CliResult {
    match command {
        BuildRuleCommand::Add {
            repository,
            kind,
            source,
            tag,
            dockerfile,
            context,
            build_args,
            platforms,
            no_autobuild,
        } => {
            let repo = repository_name(&repository)?;
            let spec = RuleSpec {
                kind: RefKind::parse(&kind)?,
                source,
                tag,
                dockerfile,
                context,
                build_args,
                autobuild: !no_autobuild,
                platforms: platforms
                    .iter()
                    .flat_map(|list| split_platforms(list))
                    .collect(),
            };
            let rule = builds.add_rule(acting, &repo, spec).await?;
            println!("added rule {}", rule.id);
            Ok(())
        }
        BuildRuleCommand::List { repository, json } => {
            let repo = repository_name(&repository)?;
            let rules = builds.rules(acting.principal, &repo).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rules)?);
            } else {
                for rule in &rules {
                    println!(
                        "{}  {} {}  -> {}  dockerfile={} context={}{}{}{}",
                        rule.id,
                        rule.spec.kind.as_str(),
                        rule.spec.source,
                        rule.spec.tag,
                        rule.spec.dockerfile,
                        rule.spec.context,
                        if rule.spec.build_args.is_empty() {
                            String::new()
                        } else {
                            format!(" args={}", rule.spec.build_args.join(","))
                        },
                        if rule.spec.platforms.is_empty() {
                            String::new()
                        } else {
                            format!(" platforms={}", rule.spec.platforms.join(","))
                        },
                        if rule.spec.autobuild {
                            ""
                        } else {
                            "  (manual only)"
                        }
                    );
                }
            }
            Ok(())
        }
        BuildRuleCommand::Delete { repository, id } => {
            let repo = repository_name(&repository)?;
            if builds.delete_rule(acting, &repo, id).await? {
                println!("deleted rule {id}");
                Ok(())
            } else {
                Err(format!("{repo} has no build rule {id}").into())
            }
        }
    }
}
