//! Signing in (password, then the two-factor code when the account has it on) and signing
//! out; throttling and the audit log come from the authenticator.

use super::html::{html, url_component, Html};
use super::layout::{csrf_field, form_start};
use super::session::{clear_cookie, session_cookie, Notice, SESSION_COOKIE};
use super::{local_path, Submission, UiError, Visitor};
use crate::api::wire::query_text;
use axum::http::{header, StatusCode};
use axum::response::Response;
use berth_core::access::Principal;
use berth_core::auth::LoginPurpose;
use berth_core::identity::TOKEN_PREFIX;
use berth_core::Error;

/// `GET /login`: the sign-in form, or straight on for someone already signed in.
pub(crate) async fn form(visitor: Visitor) -> Response {
    let next = next_of(&visitor, "/");
    if visitor.user_name().is_some() {
        return visitor.redirect(&next, None);
    }
    sign_in_page(&visitor, StatusCode::OK, "", &next, None)
}

/// Where to go after signing in: `?next=` when it is a page of ours, else `fallback`.
pub(super) fn next_of(visitor: &Visitor, fallback: &str) -> String {
    visitor
        .here
        .split_once('?')
        .and_then(|(_, query)| query_text(query, "next"))
        .filter(|next| local_path(next).is_some())
        .unwrap_or_else(|| fallback.to_owned())
}

/// Opens a session for `principal` in this browser (the session cookie) and goes on to
/// `next`, with `notice` there: the end of every way of signing in.
pub(super) async fn signed_in(
    visitor: &Visitor,
    principal: &Principal,
    next: &str,
    notice: Option<Notice>,
) -> Response {
    match visitor.state.auth.issue_ui_session(principal).await {
        Ok(token) => {
            let mut response = visitor.redirect(next, notice);
            if let Some(cookie) = session_cookie(&token, visitor.secure) {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            response
        }
        Err(err) => visitor.respond(Err(err.into())),
    }
}

/// The opening of a narrow account form panel (signing in, its second step, signing up):
/// the heading, and why the last attempt was refused, announced to screen readers.
pub(super) fn narrow_panel_start(title: &str, error_id: Option<&str>, error: Option<&str>) -> Html {
    let mut body = Html::new();
    html!(body, "<div class=\"panel narrow\"><h1>" (title) "</h1>");
    if let Some(error) = error {
        html!(body, "<div class=\"notice error\" role=\"alert\"");
        if let Some(id) = error_id {
            html!(body, " id=\"" (id) "\"");
        }
        html!(body, ">" (error) "</div>");
    }
    body
}

fn sign_in_page(
    visitor: &Visitor,
    status: StatusCode,
    username: &str,
    next: &str,
    error: Option<&str>,
) -> Response {
    let mut body = narrow_panel_start("Sign in to Berth", Some("sign-in-error"), error);
    html!(body,
        [form_start(visitor, "/login", "stack")]
        "<input type=\"hidden\" name=\"next\" value=\"" (next) "\">"
        "<div class=\"field\"><label for=\"username\">Username</label>"
        "<input type=\"text\" id=\"username\" name=\"username\" value=\"" (username) "\" "
        "autocomplete=\"username\" autocapitalize=\"none\" spellcheck=\"false\" required autofocus></div>"
        "<div class=\"field\"><label for=\"password\">Password</label>"
        "<input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required></div>"
        "<div><button type=\"submit\">Sign in</button></div>"
        "</form>"
        "<p class=\"hint\">Registry clients (docker, podman, skopeo) sign in with the same "
        "username and password, or with an access token made in your account settings.</p>"
    );
    if visitor.state.identity.signup_allowed() {
        let signup = if next == "/" {
            "/signup".to_owned()
        } else {
            format!("/signup?next={}", url_component(next))
        };
        html!(body, "<p id=\"sign-up-offer\">No account? <a href=\"" (signup) "\">Create one</a></p>");
    }
    html!(body, "</div>");
    visitor.page_with_status(status, "Sign in", body)
}

/// The second step: the password was right and the account wants its two-factor code. The
/// password travels again (hidden, on a page nobody caches) so nothing is kept on the server.
fn two_factor_page(
    visitor: &Visitor,
    status: StatusCode,
    username: &str,
    password: &str,
    next: &str,
    error: Option<&str>,
) -> Response {
    let mut body = narrow_panel_start("Two-factor authentication", None, error);
    html!(body,
        "<p>Enter the six-digit code your authenticator app shows for <strong>" (username) "</strong>, "
        "or one of your recovery codes.</p>"
        [form_start(visitor, "/login", "stack")]
        "<input type=\"hidden\" name=\"next\" value=\"" (next) "\">"
        "<input type=\"hidden\" name=\"username\" value=\"" (username) "\">"
        "<input type=\"hidden\" name=\"password\" value=\"" (password) "\">"
        "<div class=\"field\"><label for=\"otp\">Authentication code</label>"
        "<input type=\"text\" id=\"otp\" name=\"otp\" autocapitalize=\"none\" spellcheck=\"false\" "
        "autocomplete=\"one-time-code\" maxlength=\"16\" required autofocus></div>"
        "<div><button type=\"submit\">Verify and sign in</button></div>"
        "</form></div>"
    );
    visitor.page_with_status(status, "Two-factor authentication", body)
}

/// `POST /login`.
pub(crate) async fn submit(submission: Submission) -> Response {
    let Submission { visitor, form } = &submission;
    let next = form
        .get("next")
        .and_then(local_path)
        .unwrap_or("/")
        .to_owned();
    let username = form.text("username");
    let password = form.get("password").unwrap_or_default();
    let otp = form.text("otp").trim();
    if username.is_empty() || password.is_empty() {
        let message = "Enter your username and password.";
        return sign_in_page(
            visitor,
            StatusCode::BAD_REQUEST,
            username,
            &next,
            Some(message),
        );
    }
    if password.starts_with(TOKEN_PREFIX) {
        let message =
            "Access tokens are for registry clients and the API. Sign in here with your password.";
        return sign_in_page(
            visitor,
            StatusCode::BAD_REQUEST,
            username,
            &next,
            Some(message),
        );
    }
    let purpose = LoginPurpose::Interactive {
        otp: (!otp.is_empty()).then_some(otp),
    };
    let auth = &visitor.state.auth;
    match auth
        .login(username, password, visitor.address, purpose)
        .await
    {
        Ok(principal) => signed_in(visitor, &principal, &next, None).await,
        Err(Error::TwoFactorRequired(_)) => {
            two_factor_page(visitor, StatusCode::OK, username, password, &next, None)
        }
        Err(Error::CredentialsInvalid) if !otp.is_empty() => two_factor_page(
            visitor,
            StatusCode::BAD_REQUEST,
            username,
            password,
            &next,
            Some(
                "That code is not valid. Each code works once and codes change every 30 \
                 seconds: try the next one, or a recovery code you have not used.",
            ),
        ),
        Err(Error::CredentialsInvalid) => sign_in_page(
            visitor,
            StatusCode::BAD_REQUEST,
            username,
            &next,
            Some("Incorrect username or password."),
        ),
        Err(err @ Error::TooManyRequests { .. }) => {
            let message = UiError::Domain(err).message();
            sign_in_page(
                visitor,
                StatusCode::TOO_MANY_REQUESTS,
                username,
                &next,
                Some(&message),
            )
        }
        Err(err) => visitor.respond(Err(err.into())),
    }
}

/// `GET /logout`: signing out changes state, so it takes a button (a form), not a link.
pub(crate) async fn confirm_sign_out(visitor: Visitor) -> Response {
    let Some(name) = visitor.user_name() else {
        return visitor.redirect("/", None);
    };
    let mut body = Html::new();
    html!(body,
        "<div class=\"panel narrow\"><h1>Sign out</h1><p>You are signed in as <strong>" (name) "</strong>.</p>"
        "<form method=\"post\" action=\"/logout\">" [csrf_field(&visitor)]
        "<button type=\"submit\">Sign out</button></form></div>"
    );
    visitor.page("Sign out", body)
}

/// `POST /logout`: ends the session on the server (a copy of the cookie kept anywhere no
/// longer signs in) and in this browser.
pub(crate) async fn sign_out(submission: Submission) -> Response {
    let visitor = &submission.visitor;
    if let Some(token) = visitor.session_token() {
        if let Err(err) = visitor.state.auth.end_ui_session(token).await {
            return visitor.respond(Err(err.into()));
        }
    }
    if let Some(name) = visitor.user_name() {
        visitor
            .state
            .auth
            .audit(name, "logout", name, visitor.address)
            .await;
    }
    let mut response = visitor.redirect("/", Some(Notice::success("You are signed out.")));
    if let Some(cookie) = clear_cookie(SESSION_COOKIE, visitor.secure) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}
