//! Signing in to the API, user accounts, and turning two-factor authentication on and off.

use super::error::ApiResult;
use super::wire::{created, instant, no_content, ok};
use super::Call;
use axum::body::Body;
use axum::http::Response;
use berth_core::auth::LoginPurpose;
use berth_core::identity::{Account, AccountChange};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A user as Docker Hub's API shows one (the fields Berth has).
#[derive(Debug, Serialize)]
struct UserView {
    id: i64,
    username: String,
    date_joined: String,
    is_admin: bool,
    has_2fa: bool,
    /// A site admin disabled the account.
    disabled: bool,
    #[serde(rename = "type")]
    kind: &'static str,
}

impl From<Account> for UserView {
    fn from(account: Account) -> UserView {
        UserView {
            id: account.id,
            username: account.name,
            date_joined: instant(account.created_at),
            is_admin: account.is_admin,
            has_2fa: account.totp_enabled,
            disabled: account.disabled,
            kind: "User",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    username: String,
    password: String,
    #[serde(default)]
    otp: Option<String>,
}

/// `POST /api/v1/users/login` → `{"token"}`, as Docker Hub answers. The password may also be
/// an access token; the API token then keeps that token's limits.
pub(super) async fn login(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let request: LoginRequest = call.json()?;
    let otp = request.otp.as_deref().filter(|code| !code.is_empty());
    let principal = call
        .state
        .auth
        .login(
            &request.username,
            &request.password,
            call.address,
            LoginPurpose::Interactive { otp },
        )
        .await?;
    let token = call.state.auth.issue_api_token(&principal).await?;
    ok(&json!({ "token": token }))
}

pub(super) async fn list(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let accounts = call.state.identity.list_users(&call.acting()).await?;
    call.page(accounts.into_iter().map(UserView::from).collect())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    username: String,
    password: String,
    #[serde(default)]
    is_admin: bool,
}

pub(super) async fn create(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let request: NewUser = call.json()?;
    let account = call
        .state
        .identity
        .create_user(
            &call.acting(),
            &request.username,
            &request.password,
            request.is_admin,
        )
        .await?;
    created(&UserView::from(account))
}

pub(super) async fn show(call: &Call<'_>, name: &str) -> ApiResult<Response<Body>> {
    let account = call.state.identity.user(&call.acting(), name).await?;
    ok(&UserView::from(account))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserChange {
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    is_admin: Option<bool>,
    #[serde(default)]
    disabled: Option<bool>,
}

/// Changes the password and/or the site-admin flag, as one change of the management service
/// (which checks both before writing either, so a refused request changes nothing), and
/// disables or enables the account (site admins): `disabled` alone, or after the rest.
pub(super) async fn update(call: &Call<'_>, name: &str) -> ApiResult<Response<Body>> {
    let change: UserChange = call.json()?;
    let acting = call.acting();
    let identity = &call.state.identity;
    if change.password.is_some() || change.is_admin.is_some() {
        let account_change = AccountChange {
            password: change.password.as_deref(),
            is_admin: change.is_admin,
        };
        identity
            .change_account(&acting, name, account_change)
            .await?;
    }
    if let Some(disabled) = change.disabled {
        identity.set_disabled(&acting, name, disabled).await?;
    }
    ok(&UserView::from(identity.user(&acting, name).await?))
}

/// `DELETE /api/v1/users/{username}[?force=true]` (site admins): see
/// `Identity::delete_user` for what goes with the account and when it is refused.
pub(super) async fn delete(call: &Call<'_>, name: &str) -> ApiResult<Response<Body>> {
    let force = match crate::query::query_param(&call.query, "force").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(berth_core::Error::Invalid(format!(
                "force must be true or false, not {other:?}"
            ))
            .into())
        }
    };
    call.state
        .identity
        .delete_user(&call.acting(), name, force)
        .await?;
    no_content()
}

/// Starts two-factor setup: the secret and the `otpauth://` URL for an authenticator app.
/// It takes effect once confirmed with a code.
pub(super) async fn begin_two_factor(call: &Call<'_>, name: &str) -> ApiResult<Response<Body>> {
    let setup = call.state.identity.begin_totp(&call.acting(), name).await?;
    ok(&json!({ "secret": setup.secret, "otpauth_url": setup.otpauth_url }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TwoFactorCode {
    code: String,
}

pub(super) async fn confirm_two_factor(call: &Call<'_>, name: &str) -> ApiResult<Response<Body>> {
    let request: TwoFactorCode = call.json()?;
    let acting = call.acting();
    let identity = &call.state.identity;
    let recovery_codes = identity.confirm_totp(&acting, name, &request.code).await?;
    let user = UserView::from(identity.user(&acting, name).await?);
    ok(&TwoFactorEnabled {
        user,
        recovery_codes,
    })
}

/// The user as it now is, with its recovery codes, shown this once.
#[derive(Debug, Serialize)]
struct TwoFactorEnabled {
    #[serde(flatten)]
    user: UserView,
    recovery_codes: Vec<String>,
}

/// A new set of recovery codes, shown this once; the earlier set stops working.
pub(super) async fn regenerate_recovery_codes(
    call: &Call<'_>,
    name: &str,
) -> ApiResult<Response<Body>> {
    let recovery_codes = call
        .state
        .identity
        .regenerate_recovery_codes(&call.acting(), name)
        .await?;
    ok(&json!({ "recovery_codes": recovery_codes }))
}

/// How many recovery codes are left (never the codes).
pub(super) async fn recovery_code_counts(call: &Call<'_>, name: &str) -> ApiResult<Response<Body>> {
    let counts = call
        .state
        .identity
        .recovery_code_counts(&call.acting(), name)
        .await?;
    ok(&json!({ "unused": counts.unused, "total": counts.total }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OptionalCode {
    #[serde(default)]
    code: Option<String>,
}

/// Turns two-factor authentication off: the user with a current code, or a site admin
/// (for a lost device) without one.
pub(super) async fn disable_two_factor(call: &Call<'_>, name: &str) -> ApiResult<Response<Body>> {
    let request: OptionalCode = call.optional_json()?;
    call.state
        .identity
        .disable_totp(&call.acting(), name, request.code.as_deref())
        .await?;
    no_content()
}
