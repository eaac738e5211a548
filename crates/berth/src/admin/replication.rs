//! `berth replication …`: replication rules managed from the data directory. A plain `run`
//! queues a job the running server carries out; `run --wait` copies here and now.

use super::CliResult;
use crate::cli::ReplicationCommand;
use crate::config::Config;
use berth_core::identity::Acting;
use berth_core::jobs::Wake;
use berth_core::ports::MetaStore;
use berth_core::replication::{ReplicationRequest, ReplicationView, Replications, RunView};
use std::sync::Arc;

async fn service(config: &Config, meta: Arc<dyn MetaStore>) -> CliResult<Replications> {
    let seal = crate::secrets::load_or_create(&config.secrets_key_path())?;
    let blobs = crate::backends::blobs::BlobBackend::open(config)
        .await?
        .store();
    Ok(Replications::new(
        meta,
        blobs,
        Arc::new(berth_outbound::registry::RegistryConnector),
        seal,
        berth_core::clock::system(),
        Wake::default(),
    ))
}

fn line(view: &ReplicationView) -> String {
    let flattened = if view.flatten { ", flattened" } else { "" };
    let route = match (&view.from, &view.to) {
        (Some(from), _) => format!(
            "{} <- {from} (into {}{flattened})",
            view.direction,
            view.to_namespace.as_deref().unwrap_or("")
        ),
        (None, to) => format!(
            "{} -> {}{}",
            view.direction,
            to.as_deref().unwrap_or(""),
            view.to_namespace
                .as_deref()
                .map(|ns| format!(" ({ns}{flattened})"))
                .unwrap_or_default()
        ),
    };
    format!(
        "{}  {}  {route}  tags={}  trigger={}{}{}{}",
        view.name,
        view.source,
        if view.tags.is_empty() {
            "*".to_owned()
        } else {
            view.tags.join(",")
        },
        view.trigger,
        view.bandwidth
            .as_deref()
            .map(|b| format!("  bandwidth={b}"))
            .unwrap_or_default(),
        if view.deletes { "  deletes" } else { "" },
        if view.enabled { "" } else { "  disabled" },
    )
}

fn run_line(run: &RunView) -> String {
    let mut text = format!(
        "#{}  {}  {}  started {}  finished {}  copied={} skipped={} failed={}",
        run.id,
        run.trigger,
        run.status,
        run.started_at,
        run.finished_at.as_deref().unwrap_or("-"),
        run.copied,
        run.skipped,
        run.failed
    );
    for item in &run.items {
        text.push_str(&format!(
            "\n    {}  {}{}",
            item.outcome,
            item.item,
            item.reason
                .as_deref()
                .map(|r| format!("  ({r})"))
                .unwrap_or_default()
        ));
    }
    text
}

pub(super) async fn replication(
    config: &Config,
    meta: Arc<dyn MetaStore>,
    acting: &Acting<'_>,
    command: ReplicationCommand,
) -> CliResult {
    let replications = service(config, meta).await?;
    match command {
        ReplicationCommand::Create {
            name,
            source,
            tags,
            to,
            from,
            to_namespace,
            flatten,
            username,
            password_stdin,
            tls_verify,
            trigger,
            deletes,
            bandwidth,
        } => {
            let password = if password_stdin {
                Some(super::accounts::read_password()?)
            } else {
                None
            };
            let view = replications
                .create(
                    acting,
                    ReplicationRequest {
                        name,
                        source,
                        tags,
                        to: to.unwrap_or_default(),
                        from,
                        to_namespace,
                        flatten,
                        username,
                        password,
                        tls_verify: Some(tls_verify),
                        trigger,
                        deletes,
                        bandwidth,
                    },
                )
                .await?;
            println!("created replication rule {}", line(&view));
        }
        ReplicationCommand::Run { name, wait } => {
            if wait {
                let summary = replications.run_now(acting, &name).await?;
                println!("{}", serde_json::to_string_pretty(&summary)?);
                if summary.tally.failed > 0 {
                    return Err(format!("{} items failed", summary.tally.failed).into());
                }
            } else if replications.enqueue_run(acting, &name).await? {
                println!("queued a run of {name}; the running server carries it out");
            } else {
                println!("a run of {name} is already queued or under way");
            }
        }
        ReplicationCommand::List { json } => {
            let views = replications.list(acting).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&views)?);
            } else {
                for view in &views {
                    println!("{}", line(view));
                }
            }
        }
        ReplicationCommand::History { name, json, limit } => {
            let runs = replications.history(acting, &name, limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
            } else if runs.is_empty() {
                println!("{name} has not run yet");
            } else {
                for run in &runs {
                    println!("{}", run_line(run));
                }
            }
        }
        ReplicationCommand::Delete { name } => {
            replications.delete(acting, &name).await?;
            println!("deleted replication rule {name}");
        }
        ReplicationCommand::Enable { name } => {
            replications.set_enabled(acting, &name, true).await?;
            println!("enabled {name}");
        }
        ReplicationCommand::Disable { name } => {
            replications.set_enabled(acting, &name, false).await?;
            println!("disabled {name}");
        }
    }
    Ok(())
}
