//! Personal and organization access tokens, in the shape of Docker Hub's `/v2/access-tokens`.
//!
//! A token's secret is in the answer that creates it and nowhere else. Revoking (`DELETE`, or
//! `PATCH {"is_active": false}`) keeps the token, marked inactive with the time of its
//! revocation, so the audit trail can still say what each token id was.

use super::error::{ApiError, ApiResult};
use super::wire::{created, instant, no_content, ok};
use super::Call;
use axum::body::Body;
use axum::http::Response;
use berth_core::identity::{CreatedToken, OrgTokenRequest, TokenRequest, TokenScope};
use berth_core::ports::TokenRecord;
use berth_core::time::now_unix;
use berth_core::Error;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize)]
struct TokenView {
    id: i64,
    token_label: String,
    scopes: Vec<String>,
    repositories: Vec<String>,
    created_at: String,
    last_used: Option<String>,
    expires_at: Option<String>,
    /// Neither revoked nor expired.
    is_active: bool,
    revoked_at: Option<String>,
    /// The secret: only when the token was just created.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

impl TokenView {
    fn of(record: TokenRecord, secret: Option<String>) -> TokenView {
        TokenView {
            is_active: is_active(&record),
            id: record.id,
            token_label: record.label,
            scopes: vec![record.scope],
            repositories: record.repositories,
            created_at: instant(record.created_at),
            last_used: record.last_used_at.map(instant),
            expires_at: record.expires_at.map(instant),
            revoked_at: record.revoked_at.map(instant),
            token: secret,
        }
    }
}

impl From<CreatedToken> for TokenView {
    fn from(created: CreatedToken) -> TokenView {
        TokenView::of(created.record, Some(created.secret))
    }
}

fn is_active(record: &TokenRecord) -> bool {
    record.revoked_at.is_none() && record.expires_at.is_none_or(|at| at > now_unix())
}

fn views(records: Vec<TokenRecord>) -> Vec<TokenView> {
    records
        .into_iter()
        .map(|record| TokenView::of(record, None))
        .collect()
}

fn find(records: Vec<TokenRecord>, id: i64) -> ApiResult<TokenRecord> {
    records
        .into_iter()
        .find(|record| record.id == id)
        .ok_or_else(|| Error::TokenUnknown(id).into())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    token_label: String,
    scopes: Vec<String>,
    #[serde(default)]
    repositories: Vec<String>,
    #[serde(default)]
    expires_in_days: Option<u32>,
}

impl NewToken {
    /// The one scope asked for (scopes nest, so one says everything). The label, expiry and
    /// repository rules are the management service's, the same for the UI and the CLI.
    fn scope(&self) -> ApiResult<TokenScope> {
        match self.scopes.as_slice() {
            [scope] => Ok(scope.parse()?),
            _ => Err(ApiError::BadRequest(
                "scopes must hold exactly one of repo:public_read, repo:read, repo:write, repo:admin"
                    .to_owned(),
            )),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenChange {
    #[serde(default)]
    is_active: Option<bool>,
}

pub(super) async fn list(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let account = call.account()?;
    let records = call
        .state
        .identity
        .list_tokens(&call.acting(), &account)
        .await?;
    call.page(views(records))
}

pub(super) async fn create(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let account = call.account()?;
    let request: NewToken = call.json()?;
    let scope = request.scope()?;
    let token = call
        .state
        .identity
        .create_token(
            &call.acting(),
            TokenRequest {
                user: &account,
                label: &request.token_label,
                scope,
                repositories: request.repositories,
                expires_in_days: request.expires_in_days,
            },
        )
        .await?;
    created(&TokenView::from(token))
}

pub(super) async fn show(call: &Call<'_>, id: i64) -> ApiResult<Response<Body>> {
    let account = call.account()?;
    let records = call
        .state
        .identity
        .list_tokens(&call.acting(), &account)
        .await?;
    ok(&TokenView::of(find(records, id)?, None))
}

/// `{"is_active": false}` revokes; a revoked or expired token cannot come back.
pub(super) async fn update(call: &Call<'_>, id: i64) -> ApiResult<Response<Body>> {
    let account = call.account()?;
    let change: TokenChange = call.json()?;
    let acting = call.acting();
    let identity = &call.state.identity;
    let record = find(identity.list_tokens(&acting, &account).await?, id)?;
    match change.is_active {
        Some(false) => {
            identity.revoke_token(&acting, &account, id).await?;
        }
        Some(true) if !is_active(&record) => {
            return Err(ApiError::BadRequest(
                "a revoked or expired token cannot be made active again; create a new one"
                    .to_owned(),
            ))
        }
        _ => {}
    }
    let record = find(identity.list_tokens(&acting, &account).await?, id)?;
    ok(&TokenView::of(record, None))
}

pub(super) async fn revoke(call: &Call<'_>, id: i64) -> ApiResult<Response<Body>> {
    let account = call.account()?;
    call.state
        .identity
        .revoke_token(&call.acting(), &account, id)
        .await?;
    no_content()
}

pub(super) async fn list_org(call: &Call<'_>, org: &str) -> ApiResult<Response<Body>> {
    let records = call
        .state
        .identity
        .list_org_tokens(&call.acting(), org)
        .await?;
    call.page(views(records))
}

pub(super) async fn create_org(call: &Call<'_>, org: &str) -> ApiResult<Response<Body>> {
    let request: NewToken = call.json()?;
    let scope = request.scope()?;
    let token = call
        .state
        .identity
        .create_org_token(
            &call.acting(),
            OrgTokenRequest {
                org,
                label: &request.token_label,
                scope,
                repositories: request.repositories,
                expires_in_days: request.expires_in_days,
            },
        )
        .await?;
    created(&TokenView::from(token))
}

pub(super) async fn show_org(call: &Call<'_>, org: &str, id: i64) -> ApiResult<Response<Body>> {
    let records = call
        .state
        .identity
        .list_org_tokens(&call.acting(), org)
        .await?;
    ok(&TokenView::of(find(records, id)?, None))
}

pub(super) async fn revoke_org(call: &Call<'_>, org: &str, id: i64) -> ApiResult<Response<Body>> {
    call.state
        .identity
        .revoke_org_token(&call.acting(), org, id)
        .await?;
    no_content()
}
