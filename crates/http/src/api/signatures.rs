//! Trusted keys and pull policies on the API: `/api/v1/repositories/NAME/-/trusted-keys` and
//! `/-/pull-policy`, and the same under `/api/v1/namespaces/NS/`.

use super::error::{ApiError, ApiResult};
use super::wire::{created, instant, no_content, ok};
use super::Call;
use axum::body::Body;
use axum::http::Response;
use berth_core::lifecycle::Target;
use berth_core::ports::StoredPullPolicy;
use berth_core::signatures::{PullPolicyRequest, TrustedKeyView};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize)]
struct KeyWire {
    name: String,
    scope: String,
    target: String,
    algorithm: String,
    fingerprint: String,
    public_key: String,
    added_by: String,
    added_at: String,
}

impl From<TrustedKeyView> for KeyWire {
    fn from(key: TrustedKeyView) -> KeyWire {
        KeyWire {
            name: key.name,
            scope: key.scope,
            target: key.target,
            algorithm: key.algorithm,
            fingerprint: key.fingerprint,
            public_key: key.public_key,
            added_by: key.added_by,
            added_at: instant(key.added_at),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    name: String,
    /// The PEM public key, as `cosign generate-key-pair` writes `cosign.pub`.
    public_key: String,
}

#[derive(Debug, Serialize)]
struct PullPolicyWire {
    scope: &'static str,
    target: String,
    require_signature: bool,
    block_severity: Option<&'static str>,
    allow_unscanned: bool,
    description: String,
    updated_by: String,
    updated_at: String,
}

impl From<StoredPullPolicy> for PullPolicyWire {
    fn from(stored: StoredPullPolicy) -> PullPolicyWire {
        let p = stored.policy;
        PullPolicyWire {
            scope: stored.target.scope(),
            target: stored.target.name().to_owned(),
            require_signature: p.require_signature,
            block_severity: p.block_severity.map(|s| s.as_str()),
            allow_unscanned: p.allow_unscanned,
            description: p.describe(),
            updated_by: stored.updated_by,
            updated_at: instant(stored.updated_at),
        }
    }
}

pub(super) async fn list_keys(call: &Call<'_>, target: Target) -> ApiResult<Response<Body>> {
    let keys = call.state.signatures.keys(&call.acting(), &target).await?;
    let keys: Vec<KeyWire> = keys.into_iter().map(KeyWire::from).collect();
    ok(&serde_json::json!({ "keys": keys }))
}

pub(super) async fn add_key(call: &Call<'_>, target: Target) -> ApiResult<Response<Body>> {
    let body: KeyBody = call.json()?;
    let key = call
        .state
        .signatures
        .add_key(&call.acting(), &target, &body.name, &body.public_key)
        .await?;
    created(&KeyWire::from(key))
}

pub(super) async fn remove_key(
    call: &Call<'_>,
    target: Target,
    name: &str,
) -> ApiResult<Response<Body>> {
    if !call
        .state
        .signatures
        .remove_key(&call.acting(), &target, name)
        .await?
    {
        return Err(ApiError::Missing(format!(
            "{target} trusts no key named {:?}",
            name.chars().take(70).collect::<String>()
        )));
    }
    no_content()
}

pub(super) async fn pull_policy(
    call: &Call<'_>,
    target: Target,
    method: &str,
) -> ApiResult<Response<Body>> {
    let service = &call.state.signatures;
    match method {
        "GET" => {
            let policy = service
                .pull_policy(&call.acting(), &target)
                .await?
                .ok_or_else(|| ApiError::Missing(format!("{target} has no pull policy")))?;
            ok(&PullPolicyWire::from(policy))
        }
        "PUT" => {
            let body: PullPolicyRequest = call.json()?;
            let policy = body.check().map_err(berth_core::Error::Invalid)?;
            let stored = service
                .set_pull_policy(&call.acting(), &target, policy)
                .await?;
            ok(&PullPolicyWire::from(stored))
        }
        _ => {
            if !service.clear_pull_policy(&call.acting(), &target).await? {
                return Err(ApiError::Missing(format!("{target} has no pull policy")));
            }
            no_content()
        }
    }
}
