//! `berth trust …` and `berth policy …`: trusted keys and pull policies managed from the data
//! directory through the same signatures service as the server. A key change queues the
//! re-verification job, which the server runs; a running server applies policy changes
//! within two seconds (it re-reads its cached copy).

use super::CliResult;
use crate::cli::{PolicyCommand, TrustCommand};
use crate::config::Config;
use berth_core::access::PolicyAuthorizer;
use berth_core::identity::Acting;
use berth_core::jobs::Wake;
use berth_core::lifecycle::Target;
use berth_core::ports::{MetaStore, StoredPullPolicy};
use berth_core::signatures::{PullPolicy, Severity, Signatures, TrustedKeyView};
use berth_core::time::rfc3339;
use berth_core::Registry;
use berth_storage::FsBlobStore;
use std::io::Read as _;
use std::sync::Arc;

pub(super) async fn service(config: &Config, meta: Arc<dyn MetaStore>) -> CliResult<Signatures> {
    let dir = &config.data_dir.value;
    let blobs = Arc::new(
        FsBlobStore::open(dir)
            .map_err(|e| format!("blob storage in {} is not usable: {e}", dir.display()))?,
    );
    let registry = Registry::new(blobs, meta.clone(), Default::default());
    let meta: Arc<dyn MetaStore> = meta;
    let authorizer = Arc::new(PolicyAuthorizer::new(meta.clone()));
    Ok(Signatures::new(
        meta,
        registry,
        authorizer,
        berth_core::clock::system(),
        Wake::default(),
    )
    .await?)
}

fn target(text: &str) -> CliResult<Target> {
    Ok(Target::parse(text)?)
}

fn key_line(key: &TrustedKeyView) -> String {
    format!(
        "{}  {}  {}  added by {} at {}",
        key.name,
        key.algorithm,
        key.fingerprint,
        key.added_by,
        rfc3339(key.added_at)
    )
}

/// Reads a key file of at most 16 KiB (a public key is a few hundred bytes).
fn read_key_file(path: &std::path::Path) -> CliResult<String> {
    let file = std::fs::File::open(path)
        .map_err(|e| format!("cannot read the key file {}: {e}", path.display()))?;
    let limit = berth_core::signatures::keys::MAX_KEY_PEM_BYTES as u64;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the key file {}: {e}", path.display()))?;
    if bytes.len() as u64 > limit {
        return Err(format!(
            "{} is larger than {limit} bytes: not a public key",
            path.display()
        )
        .into());
    }
    String::from_utf8(bytes)
        .map_err(|_| format!("{} is not text: not a PEM public key", path.display()).into())
}

pub(super) async fn trust(
    service: &Signatures,
    acting: &Acting<'_>,
    command: TrustCommand,
) -> CliResult {
    match command {
        TrustCommand::Add {
            target: text,
            name,
            key,
        } => {
            let target = target(&text)?;
            let pem = read_key_file(&key)?;
            let added = service
                .add_key(acting, &target, &name, &pem)
                .await
                .map_err(|e| format!("{}: {e}", key.display()))?;
            println!("{target} trusts {}", key_line(&added));
        }
        TrustCommand::List { target: text, json } => {
            let target = target(&text)?;
            let keys = service.keys(acting, &target).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&serde_json::json!({ "keys": keys }))?
                );
            } else if keys.is_empty() {
                println!("{target} trusts no keys of its own");
            } else {
                for key in &keys {
                    println!("{}", key_line(key));
                }
            }
        }
        TrustCommand::Remove { target: text, name } => {
            let target = target(&text)?;
            if !service.remove_key(acting, &target, &name).await? {
                return Err(format!("{target} trusts no key named {name:?}").into());
            }
            println!("{target} no longer trusts {name}");
        }
    }
    Ok(())
}

fn policy_json(stored: &StoredPullPolicy) -> serde_json::Value {
    let p = &stored.policy;
    serde_json::json!({
        "scope": stored.target.scope(), "target": stored.target.name(),
        "require_signature": p.require_signature,
        "block_severity": p.block_severity.map(Severity::as_str),
        "allow_unscanned": p.allow_unscanned, "description": p.describe(),
        "updated_by": stored.updated_by, "updated_at": rfc3339(stored.updated_at),
    })
}

pub(super) async fn policy(
    service: &Signatures,
    acting: &Acting<'_>,
    command: PolicyCommand,
) -> CliResult {
    match command {
        PolicyCommand::Set {
            target: text,
            require_signature,
            no_require_signature,
            block_severity,
            allow_unscanned,
            no_allow_unscanned,
        } => {
            let target = target(&text)?;
            let mut policy: PullPolicy = service
                .pull_policy(acting, &target)
                .await?
                .map(|stored| stored.policy)
                .unwrap_or_default();
            if require_signature {
                policy.require_signature = true;
            }
            if no_require_signature {
                policy.require_signature = false;
            }
            match block_severity.as_deref() {
                None => {}
                Some("none") => {
                    policy.block_severity = None;
                    policy.allow_unscanned = false;
                }
                Some(text) => policy.block_severity = Some(Severity::parse(text)?),
            }
            if allow_unscanned {
                if policy.block_severity.is_none() {
                    return Err("--allow-unscanned goes with --block-severity".into());
                }
                policy.allow_unscanned = true;
            }
            if no_allow_unscanned {
                policy.allow_unscanned = false;
            }
            let stored = service.set_pull_policy(acting, &target, policy).await?;
            println!("{target}: {}", stored.policy.describe());
        }
        PolicyCommand::Show { target: text, json } => {
            let target = target(&text)?;
            match service.pull_policy(acting, &target).await? {
                Some(stored) if json => println!("{}", policy_json(&stored)),
                Some(stored) => println!(
                    "{target}: {}  (set by {} at {})",
                    stored.policy.describe(),
                    stored.updated_by,
                    rfc3339(stored.updated_at)
                ),
                None if json => println!("null"),
                None => println!("{target} has no pull policy"),
            }
        }
        PolicyCommand::Clear { target: text } => {
            let target = target(&text)?;
            if !service.clear_pull_policy(acting, &target).await? {
                return Err(format!("{target} has no pull policy").into());
            }
            println!("{target}: pull policy cleared");
        }
    }
    Ok(())
}
