//! Self-service sign-up, when the site admin allows it: the form, the new account, its first session.

use super::html::{html, url_component};
use super::layout::form_start;
use super::login::{narrow_panel_start, next_of, signed_in};
use super::session::Notice;
use super::{local_path, Submission, UiError, Visitor};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use berth_core::identity::{MIN_PASSWORD_LEN, NAME_RULE};
use berth_core::Error;

/// Where a new account goes when the form names nowhere else: its settings, where access
/// tokens and two-factor authentication are set up.
const AFTER_SIGNUP: &str = "/settings";

/// `GET /signup`: the form; a missing page while sign-up is off.
pub(crate) async fn form(visitor: Visitor) -> Response {
    if !visitor.state.identity.signup_allowed() {
        return visitor.not_found();
    }
    let next = next_of(&visitor, AFTER_SIGNUP);
    if visitor.user_name().is_some() {
        return visitor.redirect(&next, None);
    }
    signup_page(&visitor, StatusCode::OK, "", &next, None)
}

/// The form, filled in with `username` again (never the passwords) when `error` says why
/// the last attempt was refused.
fn signup_page(
    visitor: &Visitor,
    status: StatusCode,
    username: &str,
    next: &str,
    error: Option<&str>,
) -> Response {
    let sign_in = if next == AFTER_SIGNUP {
        "/login".to_owned()
    } else {
        format!("/login?next={}", url_component(next))
    };
    let mut body = narrow_panel_start("Create your Berth account", Some("sign-up-error"), error);
    html!(body,
        [form_start(visitor, "/signup", "stack")]
        "<input type=\"hidden\" name=\"next\" value=\"" (next) "\">"
        "<div class=\"field\"><label for=\"username\">Username</label>"
        "<p class=\"hint\" id=\"username-hint\">" (NAME_RULE) ". It names your repositories too, "
        "as in <code>" (visitor.registry_host()) "/username/app</code>.</p>"
        "<input type=\"text\" id=\"username\" name=\"username\" value=\"" (username) "\" "
        "autocomplete=\"username\" autocapitalize=\"none\" spellcheck=\"false\" "
        "aria-describedby=\"username-hint\" required autofocus></div>"
        "<div class=\"field\"><label for=\"password\">Password</label>"
        "<p class=\"hint\" id=\"password-hint\">At least " (MIN_PASSWORD_LEN) " characters.</p>"
        "<input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"new-password\" "
        "aria-describedby=\"password-hint\" minlength=\"" (MIN_PASSWORD_LEN) "\" required></div>"
        "<div class=\"field\"><label for=\"password-confirm\">Confirm password</label>"
        "<input type=\"password\" id=\"password-confirm\" name=\"password_confirm\" "
        "autocomplete=\"new-password\" minlength=\"" (MIN_PASSWORD_LEN) "\" required></div>"
        "<div><button type=\"submit\">Create account</button></div>"
        "</form>"
        "<p>Already have an account? <a href=\"" (sign_in) "\">Sign in</a></p>"
        "</div>"
    );
    visitor.page_with_status(status, "Sign up", body)
}

/// `POST /signup`: creates the account and signs its owner in, or shows the form again
/// with what to change.
pub(crate) async fn submit(submission: Submission) -> Response {
    let Submission { visitor, form } = &submission;
    let identity = &visitor.state.identity;
    if !identity.signup_allowed() {
        return visitor.not_found();
    }
    let next = form
        .get("next")
        .and_then(local_path)
        .unwrap_or(AFTER_SIGNUP)
        .to_owned();
    if visitor.user_name().is_some() {
        return visitor.redirect(&next, None);
    }
    let username = form.text("username");
    let password = form.get("password").unwrap_or_default();
    let confirmation = form.get("password_confirm").unwrap_or_default();
    let refuse = |status: StatusCode, message: &str| {
        signup_page(visitor, status, username, &next, Some(message))
    };
    if username.is_empty() || password.is_empty() {
        return refuse(StatusCode::BAD_REQUEST, "Choose a username and a password.");
    }
    if password != confirmation {
        return refuse(
            StatusCode::BAD_REQUEST,
            "The passwords do not match: type the same password in both fields.",
        );
    }
    match identity.sign_up(username, password, visitor.address).await {
        Ok(account) => {
            let welcome = Notice::success(format!(
                "Welcome to Berth, {}. Your account is ready.",
                account.name
            ));
            signed_in(visitor, &account.principal(), &next, Some(welcome)).await
        }
        Err(Error::SignupClosed) => visitor.not_found(),
        Err(Error::Conflict(_)) => refuse(
            StatusCode::CONFLICT,
            &format!("The username {username} is taken. Choose another one."),
        ),
        Err(err @ Error::AccountInvalid(_)) => {
            refuse(StatusCode::BAD_REQUEST, &UiError::Domain(err).message())
        }
        Err(Error::TooManyRequests { retry_after_secs }) => {
            let minutes = retry_after_secs.div_ceil(60);
            let unit = if minutes == 1 { "minute" } else { "minutes" };
            let message = format!(
                "Too many accounts were created from your network recently. Try again in {minutes} {unit}."
            );
            let mut response = refuse(StatusCode::TOO_MANY_REQUESTS, &message);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            response
        }
        Err(err) => visitor.respond(Err(err.into())),
    }
}
