//! Space usage and namespace quotas: who may read and set them, the size grammar, and how
//! sizes are shown. The counting itself happens in the store, in the linking transactions.

use crate::access::{owns_namespace, Actor, Authorizer};
use crate::audit::Audit;
use crate::error::{Error, Result};
use crate::identity::Acting;
use crate::ports::{MetaStore, NamespaceOwner, Usage, UsageRepair};
use berth_oci::RepoName;
use serde_json::json;
use std::sync::Arc;

/// The usage and quota service; cheap to clone.
#[derive(Clone)]
pub struct UsageService {
    store: Arc<dyn MetaStore>,
    authorizer: Arc<dyn Authorizer>,
    audit: Audit,
}

impl UsageService {
    pub fn new(store: Arc<dyn MetaStore>, authorizer: Arc<dyn Authorizer>) -> UsageService {
        UsageService {
            audit: Audit::over(store.clone()),
            store,
            authorizer,
        }
    }

    /// A namespace's usage and quota: for site admins and the namespace's owners (the user,
    /// an organization's owners).
    pub async fn namespace(&self, acting: &Acting<'_>, namespace: &str) -> Result<Usage> {
        let principal = acting.principal;
        if principal.is_anonymous() {
            return Err(Error::Unauthorized);
        }
        if !principal.is_site_admin() {
            let record = self
                .store
                .namespace(namespace)
                .await?
                .ok_or_else(|| Error::AccountUnknown(namespace.to_owned()))?;
            let owns_org = match (&principal.actor, record.owner) {
                (Actor::User { id, .. }, NamespaceOwner::Organization(org)) => {
                    self.store.is_org_owner(org, *id).await?
                }
                _ => false,
            };
            if !owns_namespace(&principal.actor, Some(record.owner), owns_org) {
                return Err(Error::AccountUnknown(namespace.to_owned()));
            }
        }
        Ok(self.store.namespace_usage(namespace).await?)
    }

    /// Bytes linked into a repository, for whoever may pull it (others: unknown).
    pub async fn repository(&self, acting: &Acting<'_>, repo: &RepoName) -> Result<u64> {
        let unknown = || Error::NameUnknown(repo.clone());
        self.authorizer
            .permission(acting.principal, repo)
            .await?
            .ok_or_else(unknown)?;
        self.store.repository_usage(repo).await?.ok_or_else(unknown)
    }

    /// The namespace's quota, shown beside a repository's usage to whoever may see the
    /// repository (a limit, not what others store).
    pub async fn quota_of(&self, namespace: &str) -> Result<Option<u64>> {
        Ok(self.store.namespace_usage(namespace).await?.quota)
    }

    /// Sets or (with `None`) lifts a namespace's quota; site admins only. A quota below the
    /// current usage is allowed: pushes that add bytes are then refused.
    pub async fn set_quota(
        &self,
        acting: &Acting<'_>,
        namespace: &str,
        quota: Option<u64>,
    ) -> Result<Usage> {
        acting.require_site_admin()?;
        if self.store.namespace(namespace).await?.is_none() {
            return Err(Error::AccountUnknown(namespace.to_owned()));
        }
        self.store.set_quota(namespace, quota).await?;
        self.audit
            .record_by(acting, "quota.set", namespace, json!({ "quota": quota }))
            .await;
        Ok(self.store.namespace_usage(namespace).await?)
    }

    /// Recounts every usage total from the links (a repair); site admins only.
    pub async fn recompute(&self, acting: &Acting<'_>) -> Result<UsageRepair> {
        acting.require_site_admin()?;
        let repair = self.store.recompute_usage().await?;
        self.audit
            .record_by(
                acting,
                "usage.recompute",
                "site",
                json!({ "corrected": repair.corrected }),
            )
            .await;
        Ok(repair)
    }
}

const UNITS: [(&str, u64); 5] = [
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("B", 1),
];

/// A quota as people write it: `10GiB`, `500MB`, `1024`, `0` (nothing may be added) or
/// `none` (no quota). Units are binary, as in the configuration: K, KB and KiB are all
/// 1024 bytes. The error says what is expected.
pub fn parse_quota(raw: &str) -> std::result::Result<Option<u64>, String> {
    const EXPECTED: &str =
        "expected a size in bytes with an optional unit (KiB, MiB, GiB, TiB), e.g. 10GiB, or none";
    let trimmed = raw.trim();
    if matches!(trimmed.to_ascii_lowercase().as_str(), "none" | "unlimited") {
        return Ok(None);
    }
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(format!("invalid size {raw:?}: {EXPECTED}")),
    };
    if number.is_empty() {
        return Err(format!("invalid size {raw:?}: {EXPECTED}"));
    }
    let number: u64 = number
        .parse()
        .map_err(|_| format!("invalid size {raw:?}: too large"))?;
    number
        .checked_mul(scale)
        .filter(|bytes| *bytes <= i64::MAX as u64)
        .map(Some)
        .ok_or_else(|| format!("invalid size {raw:?}: too large; at most 8 EiB"))
}

/// A size for people: whole units exactly (`10 GiB`), others to one decimal (`1.5 MiB`).
pub fn format_size(bytes: u64) -> String {
    for (unit, scale) in UNITS {
        if bytes >= scale {
            if bytes.is_multiple_of(scale) || scale == 1 {
                return format!("{} {unit}", bytes / scale);
            }
            return format!("{:.1} {unit}", bytes as f64 / scale as f64);
        }
    }
    "0 B".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_parse_with_binary_units_or_none() {
        assert_eq!(parse_quota("10GiB"), Ok(Some(10 << 30)));
        assert_eq!(parse_quota("500MB"), Ok(Some(500 << 20)));
        assert_eq!(parse_quota(" 1024 "), Ok(Some(1024)));
        assert_eq!(parse_quota("0"), Ok(Some(0)));
        assert_eq!(parse_quota("none"), Ok(None));
        assert_eq!(parse_quota("NONE"), Ok(None));
        for bad in [
            "",
            "GiB",
            "-1",
            "1.5GiB",
            "10 parsecs",
            "99999999999TiB",
            "1e9",
        ] {
            assert!(parse_quota(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sizes_are_shown_in_the_largest_fitting_unit() {
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(512), "512 B");
        assert_eq!(format_size(10 << 30), "10 GiB");
        assert_eq!(format_size(3 << 19), "1.5 MiB");
    }
}
