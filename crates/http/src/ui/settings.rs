//! Account settings: the password, two-factor authentication, and personal access tokens
//! (created with a scope, repositories and an expiry, shown once, listed and revoked). The
//! token pieces are shared with organization tokens. Its webhooks have their own page
//! (`webhooks.rs`).

use super::html::{html, Html};
use super::layout::{button_form, copyable, form_start, option, time};
use super::login::signed_in;
use super::session::Notice;
use super::{Submission, UiError, UiResult, Visitor};
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use berth_core::access::Principal;
use berth_core::auth::LoginPurpose;
use berth_core::identity::{
    validate_repository_pattern, CreatedToken, TokenRequest, TokenScope, TotpSetup,
    MIN_PASSWORD_LEN,
};
use berth_core::ports::{RecoveryCodeCounts, TokenRecord};
use berth_core::time::now_unix;
use berth_core::Error;

/// `GET /settings`.
pub(crate) async fn page(visitor: Visitor) -> Response {
    let result = render(&visitor, StatusCode::OK, None).await;
    visitor.respond(result)
}

/// The settings page, with `first` (a new token's secret, a two-factor setup) above all else.
async fn render(visitor: &Visitor, status: StatusCode, first: Option<Html>) -> UiResult {
    let name = visitor.require_user()?;
    let identity = &visitor.state.identity;
    let acting = visitor.acting();
    let account = identity.user(&acting, name).await?;
    let tokens = identity.list_tokens(&acting, name).await?;
    let recovery = identity.recovery_code_counts(&acting, name).await?;
    let mut body = Html::new();
    html!(body, "<h1>Account settings</h1>");
    if let Some(first) = first {
        body.fragment(&first);
    }
    html!(body,
        "<section class=\"panel\" aria-labelledby=\"account-title\">"
        "<h2 id=\"account-title\">Account</h2>"
        "<p>Username <strong>" (account.name) "</strong>");
    if account.is_admin {
        html!(body, " <span class=\"badge admin\">Site admin</span>");
    }
    html!(body, " · member since " [time(account.created_at)] " · "
        "<a href=\"/u/" (account.name) "\">your repositories</a></p></section>"
        [password_section(visitor)]
        [two_factor_section(visitor, account.totp_enabled, recovery)]
        "<section class=\"panel\" id=\"tokens\" aria-labelledby=\"tokens-title\">"
        "<h2 id=\"tokens-title\">Personal access tokens</h2>"
        "<p>Registry clients and scripts use a token in place of your password; it can do less "
        "than you can, and you can revoke it at any time.</p>"
        [token_form(visitor, "/settings/tokens")]
        "<h3>Your tokens</h3>"
        [token_table(visitor, &tokens, "/settings/tokens")]
        "</section>"
        "<section class=\"panel\" id=\"webhooks\" aria-labelledby=\"webhooks-title\">"
        "<h2 id=\"webhooks-title\">Webhooks</h2>"
        "<p>Webhooks on your namespace fire for every one of your repositories.</p>"
        "<p><a href=\"/settings/webhooks\">Manage your webhooks</a></p>"
        "<p><a href=\"/settings/lifecycle\">Immutable tags, retention, trusted keys and pull policy</a></p></section>"
    );
    Ok(visitor.page_with_status(status, "Account settings", body))
}

fn password_section(visitor: &Visitor) -> Html {
    let mut out = Html::new();
    html!(out,
        "<section class=\"panel\" id=\"password\" aria-labelledby=\"password-title\">"
        "<h2 id=\"password-title\">Password</h2>"
        [form_start(visitor, "/settings/password", "stack")]
        "<div class=\"field\"><label for=\"current-password\">Current password</label>"
        "<input type=\"password\" id=\"current-password\" name=\"current\" autocomplete=\"current-password\" required></div>"
        "<div class=\"field\"><label for=\"new-password\">New password</label>"
        "<p class=\"hint\" id=\"new-password-hint\">At least " (MIN_PASSWORD_LEN) " characters.</p>"
        "<input type=\"password\" id=\"new-password\" name=\"new\" autocomplete=\"new-password\" "
        "aria-describedby=\"new-password-hint\" minlength=\"" (MIN_PASSWORD_LEN) "\" required></div>"
        "<div class=\"field\"><label for=\"repeat-password\">New password again</label>"
        "<input type=\"password\" id=\"repeat-password\" name=\"repeat\" autocomplete=\"new-password\" required></div>"
        "<div><button type=\"submit\">Change password</button></div></form></section>"
    );
    out
}

fn two_factor_section(visitor: &Visitor, enabled: bool, recovery: RecoveryCodeCounts) -> Html {
    let mut out = Html::new();
    html!(out, "<section class=\"panel\" id=\"two-factor\" aria-labelledby=\"two-factor-title\">"
        "<h2 id=\"two-factor-title\">Two-factor authentication</h2>");
    if enabled {
        html!(out,
            "<p><strong>On.</strong> Signing in here asks for a code from your authenticator app "
            "(or one of your recovery codes); registry clients need an access token.</p>"
            "<p id=\"recovery-codes-left\">Recovery codes left: " (recovery.unused) " of " (recovery.total) ".</p>"
            [button_form(visitor, "/settings/two-factor/recovery-codes", "Generate new recovery codes", "secondary")]
            [form_start(visitor, "/settings/two-factor/disable", "inline")]
            "<div class=\"field\"><label for=\"disable-code\">Current code or a recovery code</label>"
            "<input type=\"text\" id=\"disable-code\" name=\"code\" "
            "autocomplete=\"one-time-code\" maxlength=\"16\" required></div>"
            "<button type=\"submit\" class=\"danger\">Turn off</button></form>"
        );
    } else {
        html!(out,
            "<p><strong>Off.</strong> With it on, signing in also takes a code from an "
            "authenticator app, so a stolen password is not enough.</p>"
            [button_form(visitor, "/settings/two-factor", "Set up two-factor authentication", "")]
        );
    }
    html!(out, "</section>");
    out
}

/// The panel that starts two-factor setup: the secret to enter and the code to confirm.
fn two_factor_setup(visitor: &Visitor, setup: &TotpSetup) -> Html {
    let mut out = Html::new();
    html!(out,
        "<section class=\"secret\" aria-labelledby=\"setup-title\">"
        "<h2 id=\"setup-title\">Finish setting up two-factor authentication</h2>"
        "<p>Add this account to your authenticator app with the setup key, or open the "
        "<code>otpauth://</code> link on the device that has the app:</p>"
        "<p><strong>Setup key</strong></p>"
        [copyable("totp-secret", &setup.secret, "Copy the setup key")]
        "<p><strong>otpauth URL</strong></p>"
        [copyable("totp-url", &setup.otpauth_url, "Copy the otpauth URL")]
        [form_start(visitor, "/settings/two-factor/confirm", "inline")]
        "<div class=\"field\"><label for=\"confirm-code\">Code from the app</label>"
        "<input type=\"text\" id=\"confirm-code\" name=\"code\" inputmode=\"numeric\" "
        "autocomplete=\"one-time-code\" maxlength=\"8\" required autofocus></div>"
        "<button type=\"submit\">Turn on</button></form></section>"
    );
    out
}

/// `POST /settings/password`. The change ends every session signed in with the old
/// password, this browser's too, so this browser gets a new session at once: whoever changed
/// the password stays signed in, every other browser and API token of theirs is signed out.
pub(crate) async fn change_password(submission: Submission) -> Response {
    match set_password(&submission).await {
        Ok(notice) => {
            let visitor = &submission.visitor;
            // The session opened now carries the generation the change moved the account to.
            let afresh = Principal {
                credential_generation: None,
                ..visitor.principal.clone()
            };
            signed_in(visitor, &afresh, "/settings#password", Some(notice)).await
        }
        Err(err) => submission.outcome(Err(err), "/settings#password"),
    }
}

async fn set_password(submission: &Submission) -> UiResult<Notice> {
    let Submission { visitor, form } = submission;
    let name = visitor.require_user()?;
    let current = form.secret("current", "Your current password")?;
    let new = form.secret("new", "A new password")?;
    if form.get("repeat") != Some(new) {
        return Err(UiError::Invalid(
            "The two new passwords differ; type the same one twice.".to_owned(),
        ));
    }
    // The current password proves the person at the keyboard owns the session; the
    // sign-in throttle keeps this from being a way to guess it.
    let check = visitor
        .state
        .auth
        .login(
            name,
            current,
            visitor.address,
            LoginPurpose::Interactive { otp: None },
        )
        .await;
    match check {
        Ok(_) | Err(Error::TwoFactorRequired(_)) => {}
        Err(Error::CredentialsInvalid) => {
            return Err(UiError::Invalid(
                "Your current password is not correct.".to_owned(),
            ))
        }
        Err(other) => return Err(other.into()),
    }
    visitor
        .state
        .identity
        .set_password(&visitor.acting(), name, new)
        .await?;
    Ok(Notice::success(
        "Your password is changed. Everywhere else you were signed in with the old one, you \
         are signed out; access tokens keep working.",
    ))
}

/// `POST /settings/two-factor`: a fresh secret, shown with the form that confirms it.
pub(crate) async fn begin_two_factor(submission: Submission) -> Response {
    let visitor = &submission.visitor;
    let result = match visitor.require_user() {
        Ok(name) => visitor
            .state
            .identity
            .begin_totp(&visitor.acting(), name)
            .await
            .map_err(UiError::from),
        Err(err) => Err(err),
    };
    match result {
        Ok(setup) => {
            let panel = two_factor_setup(visitor, &setup);
            let page = render(visitor, StatusCode::OK, Some(panel)).await;
            visitor.respond(page)
        }
        Err(err) => submission.outcome(Err(err), "/settings#two-factor"),
    }
}

/// The panel showing a new set of recovery codes, this once.
fn recovery_codes_panel(codes: &[String], heading: &str) -> Html {
    let mut out = Html::new();
    html!(out,
        "<section class=\"secret\" aria-labelledby=\"recovery-title\">"
        "<h2 id=\"recovery-title\">" (heading) "</h2>"
        "<p>Each recovery code signs you in once in place of a code from your authenticator "
        "app, should you lose it. Keep them somewhere safe: they are shown only this once, "
        "and any earlier codes no longer work.</p><ul id=\"recovery-codes\">");
    for code in codes {
        html!(out, "<li><code>" (code) "</code></li>");
    }
    html!(out, "</ul></section>");
    out
}

/// `POST /settings/two-factor/confirm`: on success, the recovery codes, shown once.
pub(crate) async fn confirm_two_factor(submission: Submission) -> Response {
    let visitor = &submission.visitor;
    let result = async {
        let name = visitor.require_user()?;
        let code = submission
            .form
            .required("code", "The code")?
            .replace(' ', "");
        Ok::<_, UiError>(
            visitor
                .state
                .identity
                .confirm_totp(&visitor.acting(), name, &code)
                .await?,
        )
    }
    .await;
    match result {
        Ok(codes) => {
            let panel = recovery_codes_panel(
                &codes,
                "Two-factor authentication is on: save your recovery codes",
            );
            let page = render(visitor, StatusCode::OK, Some(panel)).await;
            visitor.respond(page)
        }
        Err(err) => submission.outcome(Err(err), "/settings#two-factor"),
    }
}

/// `POST /settings/two-factor/recovery-codes`: a new set, shown once; the old set is void.
pub(crate) async fn regenerate_recovery_codes(submission: Submission) -> Response {
    let visitor = &submission.visitor;
    let result = async {
        let name = visitor.require_user()?;
        Ok::<_, UiError>(
            visitor
                .state
                .identity
                .regenerate_recovery_codes(&visitor.acting(), name)
                .await?,
        )
    }
    .await;
    match result {
        Ok(codes) => {
            let panel = recovery_codes_panel(&codes, "Your new recovery codes");
            let page = render(visitor, StatusCode::OK, Some(panel)).await;
            visitor.respond(page)
        }
        Err(err) => submission.outcome(Err(err), "/settings#two-factor"),
    }
}

/// `POST /settings/two-factor/disable`.
pub(crate) async fn disable_two_factor(submission: Submission) -> Response {
    let result = async {
        let Submission { visitor, form } = &submission;
        let name = visitor.require_user()?;
        let code = form.required("code", "The code")?.replace(' ', "");
        visitor
            .state
            .identity
            .disable_totp(&visitor.acting(), name, Some(&code))
            .await?;
        Ok(Notice::success("Two-factor authentication is off."))
    }
    .await;
    submission.outcome(result, "/settings#two-factor")
}

/// `POST /settings/tokens`: the new token's secret is on the answer, once.
pub(crate) async fn create_token(submission: Submission) -> Response {
    let visitor = &submission.visitor;
    let result = async {
        let name = visitor.require_user()?;
        let fields = TokenFields::read(&submission)?;
        let request = TokenRequest {
            user: name,
            label: &fields.label,
            scope: fields.scope,
            repositories: fields.repositories,
            expires_in_days: fields.expires_in_days,
        };
        Ok::<_, UiError>(
            visitor
                .state
                .identity
                .create_token(&visitor.acting(), request)
                .await?,
        )
    }
    .await;
    match result {
        Ok(created) => {
            let name = visitor.user_name().unwrap_or_default();
            let panel = new_token_panel(visitor, &created, name);
            let page = render(visitor, StatusCode::CREATED, Some(panel)).await;
            visitor.respond(page)
        }
        Err(err) => submission.outcome(Err(err), "/settings#tokens"),
    }
}

/// `POST /settings/tokens/{id}/revoke`.
pub(crate) async fn revoke_token(Path(id): Path<i64>, submission: Submission) -> Response {
    let result = async {
        let visitor = &submission.visitor;
        let name = visitor.require_user()?;
        let revoked = visitor
            .state
            .identity
            .revoke_token(&visitor.acting(), name, id)
            .await?;
        Ok(revoked_notice(revoked))
    }
    .await;
    submission.outcome(result, "/settings#tokens")
}

pub(crate) fn revoked_notice(revoked: bool) -> Notice {
    if revoked {
        Notice::success("Token revoked: it no longer signs anything in.")
    } else {
        Notice::success("That token was already revoked.")
    }
}

/// A new token's fields as the form sends them.
pub(crate) struct TokenFields {
    pub label: String,
    pub scope: TokenScope,
    pub repositories: Vec<String>,
    pub expires_in_days: Option<u32>,
}

impl TokenFields {
    pub fn read(submission: &Submission) -> UiResult<TokenFields> {
        let form = &submission.form;
        let label = form.required("label", "A description")?.to_owned();
        let scope = form.text("scope").parse::<TokenScope>()?;
        let repositories: Vec<String> = form
            .text("repositories")
            .split([',', '\n', ' ', '\r', '\t'])
            .map(str::trim)
            .filter(|pattern| !pattern.is_empty())
            .map(str::to_owned)
            .collect();
        for pattern in &repositories {
            validate_repository_pattern(pattern)?;
        }
        let expires_in_days = match form.text("expires") {
            "" | "never" => None,
            days => Some(
                days.parse::<u32>()
                    .map_err(|_| UiError::Invalid("Choose an expiry from the list.".to_owned()))?,
            ),
        };
        Ok(TokenFields {
            label,
            scope,
            repositories,
            expires_in_days,
        })
    }
}

/// How Docker Hub names the scopes.
pub(crate) fn scope_label(scope: TokenScope) -> &'static str {
    match scope {
        TokenScope::PublicRead => "Public repositories, read-only",
        TokenScope::Read => "Read-only",
        TokenScope::Write => "Read & Write",
        TokenScope::Admin => "Read, Write & Delete",
    }
}

/// The form that creates a token, posting to `action`.
pub(crate) fn token_form(visitor: &Visitor, action: &str) -> Html {
    let mut out = form_start(visitor, action, "stack");
    html!(out,
        "<h3>New token</h3>"
        "<div class=\"field\"><label for=\"token-label\">Description</label>"
        "<input type=\"text\" id=\"token-label\" name=\"label\" maxlength=\"100\" "
        "placeholder=\"laptop, CI deploy, …\" required></div>"
        "<div class=\"field\"><label for=\"token-scope\">Access</label><select id=\"token-scope\" name=\"scope\">"
    );
    for scope in TokenScope::ALL {
        out.fragment(&option(
            scope.as_str(),
            scope_label(scope),
            scope == TokenScope::Write,
        ));
    }
    html!(out,
        "</select></div>"
        "<div class=\"field\"><label for=\"token-repositories\">Only these repositories (optional)</label>"
        "<p class=\"hint\" id=\"token-repositories-hint\">One per line, like <code>team/app</code>; "
        "<code>*</code> matches anything, as in <code>team/*</code>. Empty: every repository you can use.</p>"
        "<textarea id=\"token-repositories\" name=\"repositories\" rows=\"3\" "
        "aria-describedby=\"token-repositories-hint\" spellcheck=\"false\"></textarea></div>"
        "<div class=\"field\"><label for=\"token-expires\">Expires</label><select id=\"token-expires\" name=\"expires\">"
        [option("30", "In 30 days", false)]
        [option("90", "In 90 days", true)]
        [option("365", "In a year", false)]
        [option("never", "Never", false)]
        "</select></div>"
        "<div><button type=\"submit\">Create token</button></div></form>"
    );
    out
}

/// Tokens with their scope, limits, dates and a revoke button; `base` is the path their
/// revoke forms post under (`{base}/{id}/revoke`).
pub(crate) fn token_table(visitor: &Visitor, tokens: &[TokenRecord], base: &str) -> Html {
    let mut out = Html::new();
    if tokens.is_empty() {
        html!(out, "<p class=\"muted\">No tokens yet.</p>");
        return out;
    }
    let now = now_unix();
    html!(out, "<div class=\"table-wrap\"><table><thead><tr>"
        "<th scope=\"col\">Description</th><th scope=\"col\">Access</th>"
        "<th scope=\"col\">Repositories</th><th scope=\"col\">Created</th>"
        "<th scope=\"col\">Last used</th><th scope=\"col\">Expires</th>"
        "<th scope=\"col\">Status</th><th scope=\"col\"><span class=\"visually-hidden\">Actions</span></th>"
        "</tr></thead><tbody>");
    for token in tokens.iter().rev() {
        let scope: &str = match token.scope.parse::<TokenScope>() {
            Ok(scope) => scope_label(scope),
            Err(_) => &token.scope,
        };
        html!(out, "<tr><td>" (token.label) "</td><td>" (scope) "</td><td>");
        if token.repositories.is_empty() {
            html!(out, "All");
        } else {
            html!(out, "<code>" (token.repositories.join(", ")) "</code>");
        }
        html!(out, "</td><td>" [time(token.created_at)] "</td><td>");
        match token.last_used_at {
            Some(at) => out.fragment(&time(at)),
            None => out.raw("Never"),
        };
        html!(out, "</td><td>");
        match token.expires_at {
            Some(at) => out.fragment(&time(at)),
            None => out.raw("Never"),
        };
        html!(out, "</td><td>");
        let expired = token.expires_at.is_some_and(|at| at <= now);
        if token.revoked_at.is_some() {
            html!(out, "<span class=\"badge revoked\">Revoked</span></td><td>");
        } else if expired {
            html!(out, "<span class=\"badge expired\">Expired</span></td><td>");
        } else {
            html!(
                out,
                "Active</td><td>"[button_form(
                    visitor,
                    &format!("{base}/{}/revoke", token.id),
                    &format!("Revoke {}", token.label),
                    "danger"
                )]
            );
        }
        html!(out, "</td></tr>");
    }
    html!(out, "</tbody></table></div>");
    out
}

/// A token's secret, shown this once, with the `docker login` line for `login_name`.
pub(crate) fn new_token_panel(visitor: &Visitor, created: &CreatedToken, login_name: &str) -> Html {
    let mut out = Html::new();
    html!(out,
        "<section class=\"secret\" aria-labelledby=\"new-token-title\" id=\"new-token\">"
        "<h2 id=\"new-token-title\">Copy your new token “" (created.record.label) "” now</h2>"
        "<p>It is shown only this once. Use it as the password:</p>"
        [copyable("new-token-secret", &created.secret, "Copy the token")]
        [copyable("new-token-login", &format!("docker login {} -u {login_name}", visitor.registry_host()), "Copy the login command")]
        "<p class=\"hint\">When asked for a password, paste the token. Podman, skopeo and other "
        "clients take the same username and token.</p></section>"
    );
    out
}
