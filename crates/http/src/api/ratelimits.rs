//! Pull rate limits for site admins: `GET /api/v1/rate-limits` (the tiers and every plan),
//! `PUT` and `DELETE /api/v1/rate-limits/plans/{account}`.

use super::error::{ApiError, ApiResult};
use super::wire::{instant, no_content, ok};
use super::Call;
use axum::body::Body;
use axum::http::Response;
use berth_core::ports::PlanRecord;
use berth_core::ratelimit::{Plan, Rate};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize)]
struct PlanView {
    account: String,
    kind: &'static str,
    /// `unlimited` or `N;w=S`.
    plan: String,
    updated_by: String,
    updated_at: String,
}

impl From<&PlanRecord> for PlanView {
    fn from(record: &PlanRecord) -> PlanView {
        PlanView {
            account: record.account.clone(),
            kind: if record.is_organization {
                "organization"
            } else {
                "user"
            },
            plan: record.plan.to_string(),
            updated_by: record.updated_by.clone(),
            updated_at: instant(record.updated_at),
        }
    }
}

#[derive(Debug, Serialize)]
struct TiersView {
    anonymous: Option<String>,
    authenticated: Option<String>,
    organization: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanChange {
    plan: String,
}

/// `GET /api/v1/rate-limits`: the configured tiers (`null`: not limited) and every plan.
pub(super) async fn show(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let limits = &call.state.pull_limits;
    let plans = limits.plans(&call.acting()).await?;
    let tiers = limits.tiers();
    let shown = |rate: Option<Rate>| rate.map(|r| r.to_string());
    ok(&serde_json::json!({
        "tiers": TiersView {
            anonymous: shown(tiers.anonymous),
            authenticated: shown(tiers.authenticated),
            organization: shown(tiers.organization),
        },
        "plans": plans.iter().map(PlanView::from).collect::<Vec<_>>(),
    }))
}

/// `PUT /api/v1/rate-limits/plans/{account}` with `{"plan": "unlimited" | "N;w=S"}`.
pub(super) async fn set_plan(call: &Call<'_>, account: &str) -> ApiResult<Response<Body>> {
    let change: PlanChange = call.json()?;
    let plan = Plan::parse(&change.plan).map_err(|e| ApiError::BadRequest(format!("plan: {e}")))?;
    let limits = &call.state.pull_limits;
    limits.set_plan(&call.acting(), account, plan).await?;
    let plans = limits.plans(&call.acting()).await?;
    match plans.iter().find(|p| p.account == account) {
        Some(record) => ok(&PlanView::from(record)),
        None => Err(ApiError::Missing(format!("{account} has no plan"))),
    }
}

/// `DELETE /api/v1/rate-limits/plans/{account}`: back to the account's tier.
pub(super) async fn clear_plan(call: &Call<'_>, account: &str) -> ApiResult<Response<Body>> {
    match call
        .state
        .pull_limits
        .clear_plan(&call.acting(), account)
        .await?
    {
        true => no_content(),
        false => Err(ApiError::Missing(format!("{account} has no plan"))),
    }
}
