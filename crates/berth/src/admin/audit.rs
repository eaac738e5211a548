//! `berth audit`: the audit log, newest first, one action per line.

use super::{instant, CliResult, Service};
use crate::cli::AuditArgs;
use berth_core::identity::Acting;
use berth_core::ports::AuditQuery;

pub(super) async fn show(identity: &Service, acting: &Acting<'_>, args: AuditArgs) -> CliResult {
    let query = AuditQuery {
        account: args.account,
        before: None,
        limit: args.limit,
    };
    for record in identity.audit_records(acting, query).await? {
        let event = record.event;
        let mut line = format!(
            "{}  {}  {}  {}",
            instant(Some(event.at)),
            event.actor,
            event.action,
            event.target
        );
        if let Some(detail) = event.detail {
            line.push_str("  ");
            line.push_str(&detail);
        }
        if let Some(address) = event.address {
            line.push_str(&format!("  from {address}"));
        }
        if record.count > 1 {
            line.push_str(&format!(
                "  ({} times, last {})",
                record.count,
                instant(Some(record.last_at))
            ));
        }
        println!("{line}");
    }
    Ok(())
}
