//! The web UI: server-rendered pages for signing in, browsing and managing accounts,
//! organizations and repositories, through the same services (so with the same permissions)
//! as the API, with a cookie session and CSRF-checked forms.

mod admin;
mod assets;
mod builds;
mod form;
mod home;
pub(crate) mod html;
mod layout;
mod lifecycle;
mod listing;
mod login;
mod namespaces;
mod orgs;
mod ratelimits;
mod replication;
mod repository;
mod search;
mod session;
mod settings;
mod signup;
mod tag_detail;
mod webhooks;

use crate::auth::{base_url, peer_address};
use crate::AppState;
use axum::body::{to_bytes, Body};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use berth_core::access::{Actor, Principal};
use berth_core::identity::Acting;
use berth_core::Error;
use form::Form;
use html::{html, url_component, Html};
use session::{Notice, CSRF_FIELD, NOTICE_COOKIE, SESSION_COOKIE};
use std::net::IpAddr;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home::page))
        .route("/login", get(login::form).post(login::submit))
        .route(
            "/logout",
            get(login::confirm_sign_out).post(login::sign_out),
        )
        .route("/signup", get(signup::form).post(signup::submit))
        .route("/search", get(search::page))
        .route("/settings", get(settings::page))
        .route("/settings/password", post(settings::change_password))
        .route("/settings/two-factor", post(settings::begin_two_factor))
        .route(
            "/settings/two-factor/confirm",
            post(settings::confirm_two_factor),
        )
        .route(
            "/settings/two-factor/recovery-codes",
            post(settings::regenerate_recovery_codes),
        )
        .route(
            "/settings/two-factor/disable",
            post(settings::disable_two_factor),
        )
        .route("/settings/tokens", post(settings::create_token))
        .route("/settings/tokens/{id}/revoke", post(settings::revoke_token))
        .route(
            "/settings/webhooks",
            get(webhooks::user_list).post(webhooks::user_create),
        )
        .route("/settings/lifecycle", get(lifecycle::user_page))
        .route("/settings/lifecycle/{action}", post(lifecycle::user_change))
        .route("/orgs", get(orgs::list).post(orgs::create))
        .route("/orgs/{org}/lifecycle", get(lifecycle::org_page))
        .route(
            "/orgs/{org}/lifecycle/{action}",
            post(lifecycle::org_change),
        )
        .route("/orgs/{org}", get(orgs::page))
        .route("/orgs/{org}/teams", post(orgs::create_team))
        .route("/orgs/{org}/teams/{team}/delete", post(orgs::delete_team))
        .route("/orgs/{org}/teams/{team}/members", post(orgs::add_member))
        .route(
            "/orgs/{org}/teams/{team}/members/{user}/remove",
            post(orgs::remove_member),
        )
        .route("/orgs/{org}/permissions", post(orgs::grant))
        .route(
            "/orgs/{org}/permissions/{team}/revoke",
            post(orgs::revoke_grant),
        )
        .route("/orgs/{org}/tokens", post(orgs::create_token))
        .route("/orgs/{org}/tokens/{id}/revoke", post(orgs::revoke_token))
        .route(
            "/orgs/{org}/webhooks",
            get(webhooks::org_list).post(webhooks::org_create),
        )
        .route(
            "/webhooks/{*path}",
            get(webhooks::show).post(webhooks::change),
        )
        .route("/u/{name}", get(namespaces::user_page))
        .route("/repositories", post(namespaces::create_repository))
        .route("/r/{*path}", get(repository::show).post(repository::change))
        .route("/admin/users", get(admin::users).post(admin::create_user))
        .route("/admin/users/{name}/admin", post(admin::set_admin))
        .route("/admin/users/{name}/status", post(admin::set_status))
        .route("/admin/users/{name}/delete", post(admin::delete_user))
        .route("/admin/publishers", get(admin::publishers))
        .route("/admin/publishers/{org}", post(admin::set_verified))
        .route("/admin/audit", get(admin::audit))
        .route("/admin/quotas/{namespace}", post(admin::set_quota))
        .route(
            "/admin/rate-limits",
            get(ratelimits::page).post(ratelimits::set),
        )
        .route(
            "/admin/rate-limits/{account}/clear",
            post(ratelimits::clear),
        )
        .route(
            "/admin/webhooks",
            get(webhooks::site_list).post(webhooks::site_create),
        )
        .route(
            "/admin/replication",
            get(replication::page).post(replication::create),
        )
        .route("/admin/replication/{rule}", get(replication::show))
        .route(
            "/admin/replication/{rule}/{action}",
            post(replication::change),
        )
        .route("/static/{file}", get(assets::serve))
}

/// Largest form body accepted; the largest form (a token's repository list) is far smaller.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Who is looking at a page, and what a page needs to know about the request.
pub(crate) struct Visitor {
    pub state: AppState,
    pub principal: Principal,
    /// The session token from the cookie, when it is valid.
    session: Option<String>,
    /// A session cookie that no longer verifies (expired, or its account is gone): cleared.
    stale_session: bool,
    /// The one-time notice the previous request left.
    pub notice: Option<Notice>,
    pub address: Option<IpAddr>,
    /// `scheme://host[:port]` as the browser reached us.
    pub base: String,
    pub secure: bool,
    /// The path and query of this request, to come back to after signing in.
    pub here: String,
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let headers = &parts.headers;
        let mut visitor = Visitor {
            state: state.clone(),
            principal: Principal::anonymous(),
            session: None,
            stale_session: false,
            notice: session::cookie(headers, NOTICE_COOKIE).and_then(Notice::from_cookie),
            address: peer_address(&parts.extensions),
            base: base_url(state, &parts.extensions),
            secure: session::is_secure(state, &parts.extensions),
            here: parts
                .uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
        };
        if let Some(token) = session::cookie(headers, SESSION_COOKIE).filter(|t| !t.is_empty()) {
            match state.auth.verify_ui_session(token).await {
                Ok(principal) => {
                    visitor.principal = principal;
                    visitor.session = Some(token.to_owned());
                }
                Err(Error::Unauthorized | Error::CredentialsInvalid) => {
                    visitor.stale_session = true;
                }
                Err(other) => return Err(visitor.respond(Err(other.into()))),
            }
        }
        Ok(visitor)
    }
}

impl Visitor {
    /// The valid session token this request came with, if any.
    pub fn session_token(&self) -> Option<&str> {
        self.session.as_deref()
    }

    /// The visitor as the management services take a caller.
    pub fn acting(&self) -> Acting<'_> {
        Acting::new(&self.principal, self.address.map(|a| a.to_string()))
    }

    /// The signed-in user's name.
    pub fn user_name(&self) -> Option<&str> {
        match &self.principal.actor {
            Actor::User { name, .. } => Some(name),
            _ => None,
        }
    }

    /// The signed-in user's name, or the error that sends the visitor to the sign-in page.
    pub fn require_user(&self) -> UiResult<&str> {
        self.user_name().ok_or(UiError::Domain(Error::Unauthorized))
    }

    pub fn is_site_admin(&self) -> bool {
        self.principal.is_site_admin()
    }

    /// The CSRF token every form of a signed-in page carries.
    pub fn csrf(&self) -> Option<String> {
        self.session.as_deref().map(session::csrf_token)
    }

    /// `host[:port]`, as registry clients name this registry.
    pub fn registry_host(&self) -> &str {
        self.base
            .split_once("://")
            .map_or(self.base.as_str(), |(_, rest)| rest)
    }

    /// A full page: 200 with the layout around `body`.
    pub fn page(&self, title: &str, body: Html) -> Response {
        self.page_with_status(StatusCode::OK, title, body)
    }

    pub fn page_with_status(&self, status: StatusCode, title: &str, body: Html) -> Response {
        let document = layout::document(self, title, &body);
        let mut response = Response::new(Body::from(document.into_string()));
        *response.status_mut() = status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        self.finish(response)
    }

    /// `303 See Other` to a page of ours, carrying a one-time notice.
    pub fn redirect(&self, to: &str, notice: Option<Notice>) -> Response {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SEE_OTHER;
        if let Ok(location) = HeaderValue::from_str(to) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        let mut response = self.finish(response);
        if let Some(cookie) = notice.and_then(|n| n.cookie(self.secure)) {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
        response
    }

    /// To the sign-in page, and back here afterwards.
    fn sign_in_first(&self, back: &str) -> Response {
        let to = format!("/login?next={}", url_component(back));
        self.redirect(&to, None)
    }

    /// The answer for a page's outcome: the page, or an error page (a missing thing and a
    /// hidden one look exactly alike), or the sign-in page when signing in would help.
    pub fn respond(&self, result: UiResult) -> Response {
        let err = match result {
            Ok(response) => return response,
            Err(err) => err,
        };
        let (status, title, message) = match &err {
            UiError::Domain(Error::Unauthorized) if self.principal.is_anonymous() => {
                return self.sign_in_first(&self.here)
            }
            UiError::Domain(
                Error::NameUnknown(_)
                | Error::AccountUnknown(_)
                | Error::TeamUnknown { .. }
                | Error::TokenUnknown(_)
                | Error::WebhookUnknown(_)
                | Error::ReplicationUnknown(_)
                | Error::BuildUnknown(_)
                | Error::NotFound(_),
            ) => return self.not_found(),
            UiError::Domain(Error::Unauthorized | Error::Denied) => (
                StatusCode::FORBIDDEN,
                "Not allowed",
                "You do not have permission to do that.".to_owned(),
            ),
            UiError::Domain(Error::TooManyRequests { .. } | Error::PullRateLimited { .. }) => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts",
                err.message(),
            ),
            UiError::Domain(Error::Upstream(_)) => (
                StatusCode::BAD_GATEWAY,
                "The upstream registry failed",
                err.message(),
            ),
            UiError::Domain(Error::Unavailable(detail)) => {
                tracing::warn!(%detail, path = %self.here, "web UI request failed");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Try again shortly",
                    err.message(),
                )
            }
            UiError::Domain(Error::Internal(detail)) => {
                tracing::warn!(%detail, path = %self.here, "web UI request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The server could not complete this request. Try again; if it keeps failing, the server log says why.".to_owned(),
                )
            }
            // Listed one by one, so a new kind of error is a decision here, not a default.
            UiError::Invalid(_)
            | UiError::Domain(
                Error::BlobUnknown(_)
                | Error::UploadUnknown
                | Error::ManifestUnknown(_)
                | Error::NameInvalid(_)
                | Error::TagInvalid(_)
                | Error::DigestInvalid(_)
                | Error::DigestMismatch { .. }
                | Error::ManifestInvalid(_)
                | Error::ManifestBlobUnknown(_)
                | Error::ManifestTooLarge { .. }
                | Error::ChunkRejected(_)
                | Error::RangeNotSatisfiable { .. }
                | Error::SizeInvalid(_)
                | Error::UploadInvalid(_)
                | Error::Unsupported(_)
                | Error::PaginationInvalid(_)
                | Error::MethodNotAllowed(_)
                | Error::AccountInvalid(_)
                | Error::Invalid(_)
                | Error::Conflict(_)
                | Error::CredentialsInvalid
                | Error::TwoFactorRequired(_)
                | Error::TagImmutable { .. }
                | Error::PullRefused { .. }
                | Error::SignupClosed
                | Error::UploadLimit { .. }
                | Error::BlobTooLarge { .. }
                | Error::QuotaExceeded { .. }
                | Error::StorageFull
                | Error::BodyInterrupted(_),
            ) => (StatusCode::BAD_REQUEST, "Cannot do that", err.message()),
        };
        let mut body = Html::new();
        html!(body, "<h1>" (title) "</h1><p>" (message) "</p>");
        self.page_with_status(status, title, body)
    }

    /// The one page for anything that is missing or hidden from this visitor.
    pub fn not_found(&self) -> Response {
        let mut body = Html::new();
        html!(body,
            "<h1>Page not found</h1>"
            "<p>There is nothing here, or you do not have access to it.</p>"
            "<p><a href=\"/\">Back to the start page</a></p>"
        );
        self.page_with_status(StatusCode::NOT_FOUND, "Page not found", body)
    }

    /// Headers every UI response carries, and the clean-up of one-time cookies.
    fn finish(&self, mut response: Response) -> Response {
        let headers = response.headers_mut();
        // Pages show account data and form tokens: never cached, never framed, and only our
        // own styles and scripts run (there is no inline script to allow); scripts may
        // connect to this site only (a build's live log).
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; \
                 img-src 'self' data:; \
                 form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
        if self.notice.is_some() {
            if let Some(clear) = session::clear_cookie(NOTICE_COOKIE, self.secure) {
                headers.append(header::SET_COOKIE, clear);
            }
        }
        if self.stale_session {
            if let Some(clear) = session::clear_cookie(SESSION_COOKIE, self.secure) {
                headers.append(header::SET_COOKIE, clear);
            }
        }
        response
    }
}

/// A form submission that passed the same-origin and CSRF checks.
pub(crate) struct Submission {
    pub visitor: Visitor,
    pub form: Form,
}

impl FromRequest<AppState> for Submission {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let visitor = Visitor::from_request_parts(&mut parts, state).await?;
        if !session::same_origin(state, &parts.headers, &parts.extensions) {
            return Err(visitor.forgery());
        }
        let Ok(bytes) = to_bytes(body, MAX_FORM_BYTES).await else {
            return Err(visitor.respond(Err(UiError::Invalid(
                "The form could not be read (it may be too large).".to_owned(),
            ))));
        };
        let form = Form::parse(&bytes);
        match (&visitor.session, form.get(CSRF_FIELD)) {
            (Some(session), Some(token)) if session::csrf_matches(session, token) => {}
            (Some(_), _) => return Err(visitor.forgery()),
            // The form was made for a session that has ended since.
            (None, Some(_)) => {
                let back = referer_path(&parts).unwrap_or_else(|| "/".to_owned());
                return Err(visitor.sign_in_first(&back));
            }
            // Signed-out forms (signing in, signing up) are guarded by the origin check alone.
            (None, None) => {}
        }
        Ok(Submission { visitor, form })
    }
}

impl Submission {
    /// The answer to a form: back to `back` with a notice saying what happened, whether it
    /// worked or not, so reloading the page never submits the form again.
    pub fn outcome(&self, result: UiResult<Notice>, back: &str) -> Response {
        let visitor = &self.visitor;
        match result {
            Ok(notice) => visitor.redirect(back, Some(notice)),
            Err(UiError::Domain(Error::Unauthorized)) if visitor.principal.is_anonymous() => {
                visitor.sign_in_first(back)
            }
            // A repository the visitor cannot see: exactly as on its page.
            Err(UiError::Domain(Error::NameUnknown(_))) => visitor.not_found(),
            Err(UiError::Domain(Error::Internal(detail))) => {
                visitor.respond(Err(UiError::Domain(Error::Internal(detail))))
            }
            Err(err) => visitor.redirect(back, Some(Notice::error(err.message()))),
        }
    }
}

impl Visitor {
    /// A form that did not come from our page for this session.
    fn forgery(&self) -> Response {
        let mut body = Html::new();
        html!(body,
            "<h1>Form refused</h1>"
            "<p>This form did not come from a Berth page in your current session, so it was not "
            "carried out. Go back, reload the page and submit it again.</p>"
        );
        self.page_with_status(StatusCode::FORBIDDEN, "Form refused", body)
    }
}

/// The path of the page a form was sent from, when it is one of ours.
fn referer_path(parts: &Parts) -> Option<String> {
    let referer = parts.headers.get(header::REFERER)?.to_str().ok()?;
    let rest = referer.split_once("://")?.1;
    let path = &rest[rest.find('/')?..];
    local_path(path).map(str::to_owned)
}

/// `path` if it is a path on this site (not `//elsewhere` or a full URL), for redirects.
pub(crate) fn local_path(path: &str) -> Option<&str> {
    // Browsers drop tabs and newlines from URLs and read `\` as `/`, so `/\t/host` or
    // `/\host` would leave the site.
    let local = path.starts_with('/')
        && !path.starts_with("//")
        && !path
            .chars()
            .any(|c| c == '\\' || c.is_whitespace() || c.is_control());
    local.then_some(path)
}

/// Why a page or form could not be served.
#[derive(Debug)]
pub(crate) enum UiError {
    /// What a service refused.
    Domain(Error),
    /// A form field missing or malformed; the message says which.
    Invalid(String),
}

impl From<Error> for UiError {
    fn from(err: Error) -> UiError {
        UiError::Domain(err)
    }
}

impl UiError {
    /// The message a person reads.
    fn message(&self) -> String {
        match self {
            UiError::Domain(Error::Denied | Error::Unauthorized) => {
                "You do not have permission to do that.".to_owned()
            }
            // Starts with the name as the visitor wrote it: not capitalized.
            UiError::Domain(Error::Conflict(name)) => format!("{name} already exists."),
            UiError::Domain(err) => sentence(&err.to_string()),
            UiError::Invalid(message) => message.clone(),
        }
    }
}

/// A service message as a sentence: capitalized, with a full stop.
fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    let mut out: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => return String::new(),
    };
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

pub(crate) type UiResult<T = Response> = Result<T, UiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_after_sign_in_stay_on_this_site() {
        assert_eq!(local_path("/r/acme/app"), Some("/r/acme/app"));
        assert_eq!(local_path("//evil.example/"), None);
        assert_eq!(local_path("https://evil.example/"), None);
        assert_eq!(local_path("/\\evil.example"), None);
        assert_eq!(local_path("/\t/evil.example"), None);
        assert_eq!(local_path("/settings#tokens"), Some("/settings#tokens"));
    }

    #[test]
    fn service_messages_read_as_sentences() {
        assert_eq!(
            sentence("incorrect username or password"),
            "Incorrect username or password."
        );
        assert_eq!(sentence("Done."), "Done.");
        assert_eq!(sentence(""), "");
    }
}
