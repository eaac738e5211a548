//! Space usage and namespace quotas: `GET …/usage` of a namespace or a repository,
//! `PUT /api/v1/namespaces/{namespace}/quota` and `POST /api/v1/usage/recompute` for site
//! admins.

use super::error::{ApiError, ApiResult};
use super::wire::ok;
use super::Call;
use axum::body::Body;
use axum::http::Response;
use berth_core::lifecycle::parse_quota;
use berth_core::ports::Usage;
use berth_oci::RepoName;
use serde::{Deserialize, Serialize};

/// `{"bytes": N, "quota": N|null}`, as `berth usage --json` prints it.
#[derive(Debug, Serialize)]
struct UsageView {
    bytes: u64,
    quota: Option<u64>,
}

impl From<Usage> for UsageView {
    fn from(usage: Usage) -> UsageView {
        UsageView {
            bytes: usage.bytes,
            quota: usage.quota,
        }
    }
}

/// A quota as bytes (`1073741824`), as text (`"10GiB"`, `"none"`), or `null` (none).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum QuotaValue {
    Bytes(u64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaChange {
    quota: Option<QuotaValue>,
}

/// `GET /api/v1/namespaces/{namespace}/usage`.
pub(super) async fn namespace(call: &Call<'_>, namespace: &str) -> ApiResult<Response<Body>> {
    let usage = call
        .state
        .usage
        .namespace(&call.acting(), namespace)
        .await?;
    ok(&UsageView::from(usage))
}

/// `GET /api/v1/repositories/{name}/-/usage`: the repository's bytes and its namespace's
/// quota.
pub(super) async fn repository(call: &Call<'_>, repo: &RepoName) -> ApiResult<Response<Body>> {
    let service = &call.state.usage;
    let bytes = service.repository(&call.acting(), repo).await?;
    let namespace = repo.namespace().unwrap_or(repo.as_str());
    let quota = service.quota_of(namespace).await?;
    ok(&UsageView { bytes, quota })
}

/// `PUT /api/v1/namespaces/{namespace}/quota` with `{"quota": …}`; site admins only.
pub(super) async fn set_quota(call: &Call<'_>, namespace: &str) -> ApiResult<Response<Body>> {
    let change: QuotaChange = call.json()?;
    let quota = match change.quota {
        None => None,
        Some(QuotaValue::Bytes(bytes)) if bytes <= i64::MAX as u64 => Some(bytes),
        Some(QuotaValue::Bytes(_)) => {
            return Err(ApiError::BadRequest(
                "quota: too large; at most 8 EiB".into(),
            ))
        }
        Some(QuotaValue::Text(text)) => {
            parse_quota(&text).map_err(|e| ApiError::BadRequest(format!("quota: {e}")))?
        }
    };
    let usage = call
        .state
        .usage
        .set_quota(&call.acting(), namespace, quota)
        .await?;
    ok(&UsageView::from(usage))
}

/// `POST /api/v1/usage/recompute`: recounts every total; site admins only.
pub(super) async fn recompute(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let repair = call.state.usage.recompute(&call.acting()).await?;
    ok(&serde_json::json!({ "corrected": repair.corrected }))
}
