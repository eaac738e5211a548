//! Reading the audit trail back, for site admins (it is written through
//! [`crate::audit::Audit`]).

use super::{Acting, Identity};
use crate::error::Result;
use crate::ports::{AuditQuery, AuditRecord, IdentityStore};

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
        self.audit.records(&query).await
    }

    /// Deletes the audit records that last happened before `before` (Unix seconds), as
    /// the `audit_retention` setting asks; returns how many. A job of the server's, not an
    /// action of anyone's, so it is not itself recorded.
    pub async fn prune_audit(&self, before: i64) -> Result<u64> {
        Ok(self.store.prune_audit(before).await?)
    }
}
