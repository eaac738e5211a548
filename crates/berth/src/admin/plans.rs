//! `berth plan set|clear|list`: pull rate-limit plans, through the same service as the API.

use super::{instant, CliResult};
use crate::cli::PlanCommand;
use berth_core::identity::Acting;
use berth_core::ports::MetaStore;
use berth_core::ratelimit::{Plan, PullLimits, Tiers};
use std::sync::Arc;

pub(super) async fn plan(
    meta: Arc<dyn MetaStore>,
    acting: &Acting<'_>,
    command: PlanCommand,
) -> CliResult {
    // Plans need no tiers: a server reads them from the database within 30 seconds.
    let service = PullLimits::new(meta, berth_core::clock::system(), Tiers::default());
    match command {
        PlanCommand::Set { account, plan } => {
            let plan = Plan::parse(&plan).map_err(|e| format!("invalid plan {plan:?}: {e}"))?;
            service.set_plan(acting, &account, plan).await?;
            println!("plan of {account}: {plan}");
        }
        PlanCommand::Clear { account } => {
            if !service.clear_plan(acting, &account).await? {
                return Err(format!("{account} has no plan").into());
            }
            println!("{account} has no plan now: its tier applies");
        }
        PlanCommand::List { json } => {
            let plans = service.plans(acting).await?;
            if json {
                let list: Vec<_> = plans
                    .iter()
                    .map(|p| {
                        serde_json::json!({
                            "account": p.account,
                            "kind": if p.is_organization { "organization" } else { "user" },
                            "plan": p.plan.to_string(),
                            "updated_by": p.updated_by,
                            "updated_at": berth_core::time::rfc3339(p.updated_at),
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else if plans.is_empty() {
                println!("no plans: every account has its tier's limit");
            } else {
                for p in plans {
                    println!(
                        "{}\t{}\t{}\tset by {} at {}",
                        p.account,
                        if p.is_organization {
                            "organization"
                        } else {
                            "user"
                        },
                        p.plan,
                        p.updated_by,
                        instant(Some(p.updated_at))
                    );
                }
            }
        }
    }
    Ok(())
}
