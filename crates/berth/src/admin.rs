//! The administration subcommands (`berth user|token|org|team|repo|audit|webhook|gc|usage|quota|immutable|retention|plan|trust|policy|vulndb|scan|replication|build …`): they work
//! directly on the data directory's database, whether or not a server is running on it, and
//! go through the same management service as the API, acting as the site admin `cli`.

mod accounts;
mod audit;
mod builds;
mod lifecycle;
mod orgs;
mod plans;
mod policies;
mod replication;
mod repos;
mod scanning;
mod signatures;
mod webhooks;

use crate::cli::AdminCommand;
use crate::config::Config;
use berth_core::identity::{Acting, Identity};
use berth_core::ports::{MetaStore, Permission};
use berth_oci::RepoName;
use std::sync::Arc;

type CliError = Box<dyn std::error::Error>;
type CliResult<T = ()> = Result<T, CliError>;
type Service = Identity<dyn MetaStore>;

pub fn run(config: &Config, command: AdminCommand) -> CliResult {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let meta = open(config).await?;
        // As the server does at start: namespaces this command creates get `default_quota`.
        // Only when this command was given one: run without the server's configuration, it
        // keeps the one the server stored.
        if config.default_quota.source != crate::config::Source::Default {
            berth_core::ports::UsageStore::set_default_quota(&*meta, config.default_quota.value)
                .await?;
        }
        let identity = Identity::new(meta.clone());
        let acting = Acting::cli();
        match command {
            AdminCommand::User(command) => accounts::user(&identity, &acting, command).await,
            AdminCommand::Token(command) => accounts::token(&identity, &acting, command).await,
            AdminCommand::Org(command) => orgs::org(&identity, &acting, command).await,
            AdminCommand::Team(command) => orgs::team(&identity, &acting, command).await,
            AdminCommand::Repo(command) => repos::repo(&identity, &acting, command).await,
            AdminCommand::Audit(args) => audit::show(&identity, &acting, args).await,
            AdminCommand::Immutable(command) => {
                policies::immutable(&policies::service(config, meta), &acting, command).await
            }
            AdminCommand::Retention(command) => {
                policies::retention(&policies::service(config, meta), &acting, command).await
            }
            AdminCommand::Webhook(command) => {
                let service = webhooks::service(config, meta)?;
                webhooks::webhook(&service, &acting, command).await
            }
            AdminCommand::Trust(command) => {
                let service = signatures::service(config, meta).await?;
                signatures::trust(&service, &acting, command).await
            }
            AdminCommand::Policy(command) => {
                let service = signatures::service(config, meta).await?;
                signatures::policy(&service, &acting, command).await
            }
            AdminCommand::Gc(args) => lifecycle::gc(config, meta, args).await,
            AdminCommand::Usage(args) => lifecycle::usage(meta, &acting, args).await,
            AdminCommand::Quota(command) => lifecycle::quota(meta, &acting, command).await,
            AdminCommand::Plan(command) => plans::plan(meta, &acting, command).await,
            AdminCommand::Vulndb(command) => scanning::vulndb(config, meta, command).await,
            AdminCommand::Scan(args) => scanning::scan(config, meta, args).await,
            AdminCommand::Replication(command) => {
                replication::replication(config, meta, &acting, command).await
            }
            AdminCommand::Build(command) => {
                let service = builds::service(config, meta)?;
                builds::build(&service, &acting, command).await
            }
        }
    })
}

/// The configured store (SQLite in the data directory, or PostgreSQL), as every port.
async fn open(config: &Config) -> CliResult<Arc<dyn MetaStore>> {
    let meta = crate::backends::metadata::open(config, berth_meta::Durability::EveryCommit)
        .await
        .map_err(|e| e.to_string())?;
    Ok(meta.store)
}

/// A repository as users type it; a bare name is an official image, as on Docker Hub.
fn repository_name(text: &str) -> CliResult<RepoName> {
    Ok(text.parse::<RepoName>()?.with_default_namespace())
}

fn permission(text: &str) -> CliResult<Permission> {
    Ok(text.parse::<Permission>()?)
}

/// An instant as the CLI shows it, or `never`.
fn instant(unix: Option<i64>) -> String {
    unix.map_or_else(|| "never".to_owned(), berth_core::time::rfc3339)
}
