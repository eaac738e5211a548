//! `berth vulndb import|status` and `berth scan`: the offline vulnerability database and
//! scans on the data directory, through the same scanner as the server's jobs.

use super::{instant, repository_name, CliResult};
use crate::cli::{ScanArgs, VulndbCommand};
use crate::config::Config;
use berth_core::ports::{MetaStore, ScanRecord};
use berth_core::scan::{import_vulndb, ScanError, Scanner};
use berth_core::Registry;
use berth_oci::{Digest, ManifestKind, ParsedManifest};
use berth_scan::matching::{Severity, SeverityCounts};
use berth_storage::FsBlobStore;
use serde_json::json;
use std::sync::Arc;

fn scanner(config: &Config, meta: &Arc<dyn MetaStore>) -> CliResult<Scanner> {
    let dir = &config.data_dir.value;
    let blobs = Arc::new(
        FsBlobStore::open(dir)
            .map_err(|e| format!("blob storage in {} is not usable: {e}", dir.display()))?,
    );
    let registry = Registry::new(blobs.clone(), meta.clone(), Default::default());
    Ok(Scanner::new(
        meta.clone(),
        blobs,
        registry,
        berth_core::clock::system(),
    ))
}

pub(super) async fn vulndb(
    config: &Config,
    meta: Arc<dyn MetaStore>,
    command: VulndbCommand,
) -> CliResult {
    match command {
        VulndbCommand::Import { path } => {
            let started = std::time::Instant::now();
            let status = import_vulndb(meta.clone(), berth_core::clock::system(), &path)
                .await
                .map_err(|e| format!("nothing imported, the loaded database is unchanged: {e}"))?;
            scanner(config, &meta)?.rescan_all().await?;
            println!(
                "imported {} advisories from {} in {:.1} s ({} malformed entries skipped, {} withdrawn or of other ecosystems); the server rescans every image",
                status.advisories,
                status.source,
                started.elapsed().as_secs_f64(),
                status.skipped,
                status.ignored
            );
            Ok(())
        }
        VulndbCommand::Status { json } => {
            let status = meta.vulndb_status().await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string(
                        &json!({ "loaded": status.is_some(), "database": status })
                    )?
                );
                return Ok(());
            }
            let Some(status) = status else {
                println!(
                    "no vulnerability database loaded (import one with `berth vulndb import PATH`)"
                );
                return Ok(());
            };
            let now = berth_core::time::now_unix();
            println!("advisories: {}", status.advisories);
            for (ecosystem, count) in &status.by_ecosystem {
                println!("  {ecosystem}: {count}");
            }
            println!(
                "imported:   {} ({} days ago) from {}",
                instant(Some(status.imported_at)),
                (now - status.imported_at).max(0) / 86_400,
                status.source
            );
            println!(
                "newest advisory modified: {}",
                status.newest_modified.as_deref().unwrap_or("-")
            );
            println!(
                "skipped at import: {} malformed, {} withdrawn or of other ecosystems",
                status.skipped, status.ignored
            );
            Ok(())
        }
    }
}

/// `NAMESPACE/REPO:TAG` or `NAMESPACE/REPO@DIGEST`.
fn split_reference(text: &str) -> CliResult<(String, Option<String>, Option<Digest>)> {
    if let Some((repo, digest)) = text.split_once('@') {
        let digest = digest
            .parse::<Digest>()
            .map_err(|e| format!("{text:?}: {e}"))?;
        return Ok((repo.to_owned(), None, Some(digest)));
    }
    let slash = text.rfind('/').map_or(0, |i| i + 1);
    match text[slash..].rfind(':') {
        Some(colon) => Ok((
            text[..slash + colon].to_owned(),
            Some(text[slash + colon + 1..].to_owned()),
            None,
        )),
        None => Err(format!(
            "{text:?} names no tag or digest: write NAMESPACE/REPO:TAG or NAMESPACE/REPO@DIGEST"
        )
        .into()),
    }
}

pub(super) async fn scan(config: &Config, meta: Arc<dyn MetaStore>, args: ScanArgs) -> CliResult {
    let (repo, tag, digest) = split_reference(&args.reference)?;
    let repo = repository_name(&repo)?;
    let record = match (&tag, &digest) {
        (Some(tag), _) => meta.manifest_by_tag(&repo, tag).await?,
        (None, Some(digest)) => meta.manifest_by_digest(&repo, digest).await?,
        (None, None) => None,
    }
    .ok_or_else(|| format!("{} is not in the registry", args.reference))?;
    // An index (a multi-platform image) is scanned image by image.
    let parsed = ParsedManifest::parse(Some(&record.media_type), &record.body)
        .map_err(|e| format!("{}: {e}", args.reference))?;
    let images: Vec<Digest> = match parsed.kind {
        ManifestKind::Index => parsed.manifests.iter().map(|d| d.digest.clone()).collect(),
        ManifestKind::Image => vec![record.digest.clone()],
    };
    let scanner = scanner(config, &meta)?;
    let tags: Vec<String> = tag.iter().cloned().collect();
    let mut scans: Vec<ScanRecord> = Vec::new();
    for image in &images {
        match scanner.scan(&repo, image, &tags).await {
            Ok(scan) => scans.push(scan),
            // An index may list attestations and other artifacts beside its images.
            Err(ScanError::NotAnImage(_) | ScanError::NotFound(_)) if images.len() > 1 => {}
            Err(error) => return Err(format!("{}: {error}", args.reference).into()),
        }
    }
    let mut total = SeverityCounts::default();
    for scan in &scans {
        total.critical += scan.counts.critical;
        total.high += scan.counts.high;
        total.medium += scan.counts.medium;
        total.low += scan.counts.low;
        total.unknown += scan.counts.unknown;
    }
    let database = meta.vulndb_status().await?;
    if args.json {
        let images: Vec<_> = scans
            .iter()
            .map(|s| {
                json!({
                    "digest": s.digest,
                    "os": s.os,
                    "packages": s.packages,
                    "vulnerabilities": {
                        "critical": s.counts.critical, "high": s.counts.high, "medium": s.counts.medium,
                        "low": s.counts.low, "unknown": s.counts.unknown, "scanned_at": s.scanned_at,
                    },
                    "findings": s.findings,
                    "warnings": s.warnings,
                    "sbom": s.sbom_digest,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "reference": args.reference,
                "repository": repo.to_string(),
                "digest": record.digest.to_string(),
                "database": database.as_ref().map(|d| json!({
                    "advisories": d.advisories, "imported_at": d.imported_at, "newest_modified": d.newest_modified,
                })),
                "vulnerabilities": {
                    "critical": total.critical, "high": total.high, "medium": total.medium,
                    "low": total.low, "unknown": total.unknown,
                },
                "images": images,
            }))?
        );
    } else {
        if database.is_none() {
            println!("warning: no vulnerability database loaded; only the inventory ran (`berth vulndb import PATH`)");
        }
        for scan in &scans {
            println!(
                "{}@{}  {}  {} packages  critical {}  high {}  medium {}  low {}  unknown {}",
                repo,
                scan.digest,
                scan.os.as_deref().unwrap_or("unknown OS"),
                scan.packages,
                scan.counts.critical,
                scan.counts.high,
                scan.counts.medium,
                scan.counts.low,
                scan.counts.unknown
            );
            for f in &scan.findings {
                println!(
                    "  {:<8} {:<28} {:<24} {:<24} fixed in {}",
                    f.severity.as_str(),
                    f.advisory,
                    f.package,
                    f.installed_version,
                    f.fixed_version.as_deref().unwrap_or("-")
                );
            }
            for warning in &scan.warnings {
                println!("  warning: {warning}");
            }
        }
    }
    if let Some(threshold) = args.fail_on.as_deref().and_then(Severity::parse) {
        if total.any_at_least(threshold) {
            return Err(format!(
                "{}: findings of severity {} or worse",
                args.reference,
                threshold.as_str()
            )
            .into());
        }
    }
    Ok(())
}
