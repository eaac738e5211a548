//! The audit trail of management operations: writing one record per permission-relevant
//! change, and reading them back for site admins.

use super::{Acting, Identity};
use crate::error::Result;
use crate::ports::{AuditEvent, AuditQuery, AuditRecord, IdentityStore};
use crate::time::now_unix;

/// Records one read returns when the query names no limit.
pub const DEFAULT_AUDIT_PAGE: u32 = 100;

/// Most records one read returns.
pub const MAX_AUDIT_PAGE: u32 = 1000;

impl<S: IdentityStore + ?Sized> Identity<S> {
    /// Audit records, newest first (site admins only).
    pub async fn audit_records(
        &self,
        acting: &Acting<'_>,
        mut query: AuditQuery,
    ) -> Result<Vec<AuditRecord>> {
        acting.require_site_admin()?;
        query.limit = match query.limit {
            0 => DEFAULT_AUDIT_PAGE,
            limit => limit.min(MAX_AUDIT_PAGE),
        };
        Ok(self.store.audit_records(&query).await?)
    }

    /// Deletes the audit records that last happened before `before` (Unix seconds), as
    /// the `audit_retention` setting asks; returns how many. A job of the server's, not an
    /// action of anyone's, so it is not itself recorded.
    pub async fn prune_audit(&self, before: i64) -> Result<u64> {
        Ok(self.store.prune_audit(before).await?)
    }

    /// Records a change that already happened: a failure to write the record is logged,
    /// not returned, because undoing the change would be worse than a gap in the log.
    pub(super) async fn audit(
        &self,
        acting: &Acting<'_>,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) {
        self.audit_as(
            &acting.actor_name(),
            acting.address.clone(),
            action,
            target,
            detail,
        )
        .await;
    }

    pub(super) async fn audit_as(
        &self,
        actor: &str,
        address: Option<String>,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) {
        let event = AuditEvent {
            at: now_unix(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            detail: (!detail.is_null()).then(|| detail.to_string()),
            address,
        };
        if let Err(err) = self.store.record_audit(&event.capped()).await {
            tracing::warn!(%err, action, target, "could not write the audit log");
        }
    }
}
