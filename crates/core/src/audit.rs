//! The audit log's one writer: every management change, sign-in and registry delete is
//! recorded through [`Audit`], whichever service or surface made it.

use crate::identity::Acting;
use crate::lifecycle::Target;
use crate::ports::{AuditEvent, AuditLog, AuditQuery, AuditRecord, MetaError};
use crate::time::now_unix;
use std::net::IpAddr;
use std::sync::Arc;

/// Appends to the audit log. Cheap to clone: every service holds the same log.
#[derive(Clone)]
pub struct Audit {
    log: Arc<dyn AuditLog>,
}

/// Lets a store that is also other ports (or a trait object of them) serve as the log,
/// without asking every caller to upcast its `Arc`.
struct StoreLog<S: ?Sized>(Arc<S>);

#[async_trait::async_trait]
impl<S: AuditLog + ?Sized> AuditLog for StoreLog<S> {
    async fn record_audit(&self, event: &AuditEvent) -> Result<(), MetaError> {
        self.0.record_audit(event).await
    }

    async fn audit_records(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, MetaError> {
        self.0.audit_records(query).await
    }

    async fn prune_audit(&self, before: i64) -> Result<u64, MetaError> {
        self.0.prune_audit(before).await
    }
}

impl Audit {
    /// The writer over `store`'s audit log.
    pub fn over<S: AuditLog + ?Sized + 'static>(store: Arc<S>) -> Audit {
        Audit {
            log: Arc::new(StoreLog(store)),
        }
    }

    /// Records a change that already happened: `actor` is a user name, `org/<name>` for an
    /// organization token, `anonymous`, `cli` or `berth`; `detail` is a JSON object, or
    /// null for none. A failure to write is logged, not returned, because undoing the change
    /// would be worse than a gap in the log.
    pub async fn record(
        &self,
        actor: &str,
        address: Option<&str>,
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
            address: address.map(str::to_owned),
        };
        if let Err(err) = self.log.record_audit(&event.capped()).await {
            tracing::warn!(%err, action, target, "could not write the audit log");
        }
    }

    /// [`Audit::record`] for a caller of the management services.
    pub async fn record_by(
        &self,
        acting: &Acting<'_>,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) {
        self.record(
            &acting.actor_name(),
            acting.address.as_deref(),
            action,
            target,
            detail,
        )
        .await;
    }

    /// [`Audit::record_by`] for a change to a repository's or a namespace's rules
    /// (lifecycle, trust, pull policy): the detail object also names the target's `scope`.
    pub async fn record_for_target(
        &self,
        acting: &Acting<'_>,
        action: &str,
        target: &Target,
        mut detail: serde_json::Value,
    ) {
        if let serde_json::Value::Object(fields) = &mut detail {
            fields.insert("scope".into(), target.scope().into());
        }
        self.record_by(acting, action, target.name(), detail).await;
    }

    /// [`Audit::record`] for a request from `address` (the registry's dispatcher, sign-in).
    pub async fn record_from(
        &self,
        actor: &str,
        address: Option<IpAddr>,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) {
        let address = address.map(|a| a.to_string());
        self.record(actor, address.as_deref(), action, target, detail)
            .await;
    }

    /// Audit records, newest first (the reading side, for the management service).
    pub(crate) async fn records(&self, query: &AuditQuery) -> crate::Result<Vec<AuditRecord>> {
        Ok(self.log.audit_records(query).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorded(Mutex<Vec<AuditEvent>>);

    #[async_trait::async_trait]
    impl AuditLog for Recorded {
        async fn record_audit(&self, event: &AuditEvent) -> Result<(), MetaError> {
            self.0.lock().unwrap().push(event.clone());
            Ok(())
        }

        async fn audit_records(&self, _query: &AuditQuery) -> Result<Vec<AuditRecord>, MetaError> {
            Ok(Vec::new())
        }

        async fn prune_audit(&self, _before: i64) -> Result<u64, MetaError> {
            Ok(0)
        }
    }

    #[tokio::test]
    async fn entries_carry_who_from_where_what_and_details_only_when_there_are_some() {
        let log = Arc::new(Recorded::default());
        let audit = Audit::over(log.clone());
        audit
            .record_from(
                "alice",
                Some("192.0.2.7".parse().unwrap()),
                "tag.delete",
                "alice/app:v1",
                serde_json::Value::Null,
            )
            .await;
        audit
            .record(
                "cli",
                None,
                "token.create",
                "bob",
                serde_json::json!({ "id": 3 }),
            )
            .await;
        let events = log.0.lock().unwrap().clone();
        assert_eq!(events.len(), 2);
        assert_eq!(
            (events[0].actor.as_str(), events[0].action.as_str()),
            ("alice", "tag.delete")
        );
        assert_eq!(events[0].target, "alice/app:v1");
        assert_eq!(events[0].address.as_deref(), Some("192.0.2.7"));
        assert_eq!(events[0].detail, None);
        assert_eq!(events[1].address, None);
        assert_eq!(events[1].detail.as_deref(), Some(r#"{"id":3}"#));
    }
}
