//! `berth fsck [--repair] [--json]`: checks that every blob the database records is on disk
//! with its size and digest (hashed in constant memory), and finds orphaned files (blob
//! files no record names, upload files no session owns, strays under `blobs/`).
//!
//! Checking only reads, so it runs beside a live server. Files are listed before the
//! records are read, so a blob committed meanwhile is found referenced; files changed within
//! `--grace` are never called orphaned (an upload or a commit may be under way). `--repair`
//! takes the server's lock, so it runs only while the server is stopped: removing an
//! orphan while a push of the same digest reuses it would lose acknowledged content. It
//! removes orphans and moves corrupt blobs to `quarantine/`; it never deletes a database row.

use crate::cli::FsckArgs;
use crate::config::Config;
use crate::datadir;
use berth_meta::{BlobRecord, SqliteMeta};
use berth_oci::Digest;
use berth_storage::{BlobHealth, FsBlobStore, StoredFile, StoredKind};
use serde::Serialize;
use std::collections::HashSet;

type CliResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// What fsck found and did; printed as lines or as the `--json` document.
#[derive(Debug, Default, Serialize)]
struct Report {
    /// Blob records checked, and the bytes they name.
    checked: u64,
    checked_bytes: u64,
    missing: u64,
    corrupt: u64,
    orphaned: u64,
    orphaned_bytes: u64,
    /// Unreferenced files younger than the grace period: left alone, not a problem.
    recent_unreferenced: u64,
    repair: bool,
    /// Orphans removed and corrupt blobs quarantined by `--repair`.
    removed: u64,
    quarantined: u64,
    /// Whether anything is still wrong after this run (the exit status says the same).
    clean: bool,
    problems: Vec<Problem>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Problem {
    Missing {
        digest: String,
        size: u64,
    },
    Corrupt {
        digest: String,
        size: u64,
        detail: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        quarantined_to: Option<String>,
    },
    Orphaned {
        path: String,
        size: u64,
        removed: bool,
    },
}

/// Runs the check; `Ok(true)` when nothing is wrong once it is done.
pub fn run(config: &Config, args: &FsckArgs) -> CliResult<bool> {
    crate::backends::metadata::require_sqlite(config, "berth fsck")?;
    let data_dir = &config.data_dir.value;
    crate::backends::blobs::require_filesystem(config, "berth fsck")?;
    datadir::require_database(data_dir)?;
    let _lock = if args.repair {
        Some(datadir::try_lock(data_dir)?.ok_or_else(|| {
            format!(
                "data directory {} is in use by a running berth server; stop it to repair (`berth fsck` without --repair checks beside it)",
                data_dir.display()
            )
        })?)
    } else {
        None
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let backend = runtime.block_on(crate::backends::blobs::BlobBackend::open(config))?;
    let store = backend.filesystem("berth fsck")?;
    // Held to the end: a garbage collection run would otherwise delete blobs between the
    // reading of their records and the check of their files, and they would look missing.
    let _collection = runtime.block_on(datadir::hold_collection(store))?;
    // Listed before the records are read: see the module's comment.
    let files = store.stored_files()?;
    let (records, sessions) = runtime.block_on(async {
        let meta = SqliteMeta::open(&data_dir.join(datadir::DATABASE_FILE))
            .await
            .map_err(|e| format!("cannot open the database in {}: {e}", data_dir.display()))?;
        let records = meta.blob_records().await;
        let sessions = meta.upload_session_ids().await;
        meta.close().await;
        CliResult::Ok((records?, sessions?))
    })?;

    let mut report = Report {
        repair: args.repair,
        ..Report::default()
    };
    check_records(store, &records, args.repair, &mut report)?;
    let now = berth_core::time::now_unix();
    let grace = i64::try_from(args.grace.as_secs()).unwrap_or(i64::MAX);
    let referenced: HashSet<&Digest> = records.iter().map(|r| &r.digest).collect();
    let sessions: HashSet<&str> = sessions.iter().map(String::as_str).collect();
    for file in &files {
        let owned = match &file.kind {
            StoredKind::Blob(digest) => referenced.contains(digest),
            StoredKind::Upload(id) => sessions.contains(id.as_str()),
            StoredKind::Unexpected => false,
        };
        if owned {
            continue;
        }
        if now.saturating_sub(file.changed_unix) < grace {
            report.recent_unreferenced += 1;
            continue;
        }
        // Gone since it was listed: an upload that a live server committed meanwhile.
        if std::fs::symlink_metadata(&file.path).is_err() {
            continue;
        }
        orphan(store, file, args.repair, &mut report)?;
    }
    report.clean = report.missing == 0 && report.corrupt == 0 && report.orphaned == report.removed;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_lines(&report);
    }
    Ok(report.clean)
}

fn check_records(
    store: &FsBlobStore,
    records: &[BlobRecord],
    repair: bool,
    report: &mut Report,
) -> CliResult {
    for record in records {
        report.checked += 1;
        report.checked_bytes += record.size;
        let digest = record.digest.to_string();
        let detail = match store.check_blob(&record.digest, record.size)? {
            BlobHealth::Sound => continue,
            BlobHealth::Missing => {
                report.missing += 1;
                report.problems.push(Problem::Missing {
                    digest,
                    size: record.size,
                });
                continue;
            }
            BlobHealth::WrongSize { actual } => format!("{actual} bytes on disk"),
            BlobHealth::WrongDigest { actual } => format!("its bytes hash to {actual}"),
        };
        report.corrupt += 1;
        let quarantined_to = if repair {
            let moved = store
                .quarantine_blob(&record.digest)
                .map_err(|e| format!("cannot move corrupt blob {digest} to quarantine: {e}"))?;
            report.quarantined += 1;
            Some(moved.display().to_string())
        } else {
            None
        };
        report.problems.push(Problem::Corrupt {
            digest,
            size: record.size,
            detail,
            quarantined_to,
        });
    }
    Ok(())
}

fn orphan(store: &FsBlobStore, file: &StoredFile, repair: bool, report: &mut Report) -> CliResult {
    report.orphaned += 1;
    report.orphaned_bytes += file.size;
    if repair {
        store
            .remove_stored_file(file)
            .map_err(|e| format!("cannot remove {}: {e}", file.path.display()))?;
        report.removed += 1;
    }
    report.problems.push(Problem::Orphaned {
        path: file.path.display().to_string(),
        size: file.size,
        removed: repair,
    });
    Ok(())
}

fn print_lines(report: &Report) {
    for problem in &report.problems {
        match problem {
            Problem::Missing { digest, size } => {
                println!("missing   {digest} ({size} bytes recorded)")
            }
            Problem::Corrupt {
                digest,
                size,
                detail,
                quarantined_to,
            } => {
                let moved = quarantined_to
                    .as_ref()
                    .map(|to| format!("; moved to {to}"))
                    .unwrap_or_default();
                println!("corrupt   {digest} ({size} bytes recorded, {detail}){moved}");
            }
            Problem::Orphaned {
                path,
                size,
                removed,
            } => {
                let done = if *removed { "; removed" } else { "" };
                println!("orphaned  {path} ({size} bytes){done}");
            }
        }
    }
    println!(
        "checked {} blobs ({} bytes): {} missing, {} corrupt, {} orphaned ({} bytes){}",
        report.checked,
        report.checked_bytes,
        report.missing,
        report.corrupt,
        report.orphaned,
        report.orphaned_bytes,
        if report.repair {
            format!(
                "; removed {}, quarantined {}",
                report.removed, report.quarantined
            )
        } else {
            String::new()
        }
    );
    if report.recent_unreferenced > 0 {
        println!(
            "{} recently changed files not yet referenced were left alone (--grace)",
            report.recent_unreferenced
        );
    }
}
