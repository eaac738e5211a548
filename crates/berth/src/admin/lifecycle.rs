//! `berth gc`, `berth usage` and `berth quota`: garbage collection and space accounting on
//! the data directory, through the same collector and usage service as the server.

use super::{repository_name, CliResult};
use crate::cli::{GcArgs, QuotaCommand, UsageArgs};
use crate::config::Config;
use berth_core::access::{Authorizer, PolicyAuthorizer};
use berth_core::identity::Acting;
use berth_core::lifecycle::{format_size, parse_quota, Collector, UsageService};
use berth_core::ports::{IdentityStore, MetaStore, Usage};
use berth_core::Registry;
use std::sync::Arc;

fn usage_service(meta: &Arc<dyn MetaStore>) -> UsageService {
    let authorizer: Arc<dyn Authorizer> =
        Arc::new(PolicyAuthorizer::new(meta.clone() as Arc<dyn IdentityStore>));
    UsageService::new(meta.clone(), authorizer)
}

pub(super) async fn gc(config: &Config, meta: Arc<dyn MetaStore>, args: GcArgs) -> CliResult {
    // On S3 the collection lock holds within one process only, so a collector here could
    // run beside the server's: there, garbage collection runs in the server (gc_interval).
    crate::backends::blobs::require_filesystem(config, "berth gc")?;
    let blobs = crate::backends::blobs::BlobBackend::open(config)
        .await?
        .store();
    let registry = Registry::new(
        blobs.clone(),
        meta.clone(),
        berth_core::registry::RegistryOptions {
            upload_ttl: config.upload_ttl.value,
            ..Default::default()
        },
    );
    let collector = Collector::new(
        meta,
        blobs,
        registry,
        berth_core::clock::system(),
        config.gc_options(),
    );
    let report = collector.run(args.dry_run).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let verb = if args.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        println!(
            "{verb} {} blobs ({}), {} orphan manifests, {} expired uploads in {} ms",
            report.blobs,
            format_size(report.bytes),
            report.manifests,
            report.uploads,
            report.duration_ms
        );
    }
    Ok(())
}

fn print_usage(usage: Usage, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::json!({ "bytes": usage.bytes, "quota": usage.quota })
        );
    } else {
        let quota = usage.quota.map_or_else(
            || "no quota".to_owned(),
            |q| format!("quota {}", format_size(q)),
        );
        println!(
            "{} ({} bytes), {quota}",
            format_size(usage.bytes),
            usage.bytes
        );
    }
}

pub(super) async fn usage(
    meta: Arc<dyn MetaStore>,
    acting: &Acting<'_>,
    args: UsageArgs,
) -> CliResult {
    let service = usage_service(&meta);
    if args.recompute {
        let repair = service.recompute(acting).await?;
        if !args.json || args.target.is_none() {
            println!("recounted usage; {} totals corrected", repair.corrected);
        }
    }
    let Some(target) = args.target else {
        return Ok(());
    };
    let usage = match target.split_once('/') {
        None => service.namespace(acting, &target).await?,
        Some(_) => {
            let repo = repository_name(&target)?;
            let bytes = service.repository(acting, &repo).await?;
            let namespace = repo.namespace().unwrap_or(repo.as_str());
            let quota = meta.namespace_usage(namespace).await?.quota;
            Usage { bytes, quota }
        }
    };
    print_usage(usage, args.json);
    Ok(())
}

pub(super) async fn quota(
    meta: Arc<dyn MetaStore>,
    acting: &Acting<'_>,
    command: QuotaCommand,
) -> CliResult {
    let service = usage_service(&meta);
    match command {
        QuotaCommand::Set { namespace, size } => {
            let quota = parse_quota(&size)?;
            let usage = service.set_quota(acting, &namespace, quota).await?;
            print_usage(usage, false);
        }
    }
    Ok(())
}
