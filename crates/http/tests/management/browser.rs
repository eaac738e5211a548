//! A browser without a cookie jar for the web UI tests: pages and redirects read whole,
//! cookies passed on by hand, forms posted from our origin (with the session's CSRF token
//! when signed in).

use crate::support::Berth;
use reqwest::header::{HeaderMap, COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use reqwest::Client;

/// An HTML page (or a redirect) as a browser receives it.
pub struct Page {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Page {
    #[track_caller]
    pub fn expect(self, status: u16) -> Page {
        assert_eq!(self.status, status, "page:\n{}", self.text);
        self
    }

    pub fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .map_or("", |v| v.to_str().unwrap())
    }

    /// `name=value` of every cookie the answer sets, for the next request's `Cookie`.
    pub fn cookies(&self) -> String {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next())
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// `existing` cookies with the ones this answer sets (a notice after a redirect).
    pub fn cookies_with(&self, existing: &str) -> String {
        match self.cookies() {
            set if set.is_empty() => existing.to_owned(),
            set => format!("{existing}; {set}"),
        }
    }

    /// The whole `Set-Cookie` value for the cookie `name`, if the answer sets it.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|v| v.starts_with(&format!("{name}=")))
    }

    /// The CSRF token the page's forms carry (signed-in pages only).
    #[track_caller]
    pub fn csrf(&self) -> String {
        const FIELD: &str = "name=\"_csrf\" value=\"";
        let start = self.text.find(FIELD).expect("a form with a CSRF token") + FIELD.len();
        let length = self.text[start..].find('"').expect("the end of the token");
        self.text[start..start + length].to_owned()
    }
}

/// A browser without a cookie jar: no redirects followed, cookies passed by hand.
pub fn browser() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn read(response: reqwest::Response) -> Page {
    Page {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        text: response.text().await.unwrap(),
    }
}

pub async fn get_page(berth: &Berth, path: &str, cookies: &str) -> Page {
    let mut request = browser().get(berth.url(path));
    if !cookies.is_empty() {
        request = request.header(COOKIE, cookies);
    }
    read(request.send().await.unwrap()).await
}

/// Submits a form as a page of `origin` would.
pub async fn post_form_from(
    berth: &Berth,
    origin: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> Page {
    let response = browser()
        .post(berth.url(path))
        .header(ORIGIN, origin)
        .form(fields)
        .send()
        .await
        .unwrap();
    read(response).await
}

/// Submits a form from one of Berth's own pages.
pub async fn post_form(berth: &Berth, path: &str, fields: &[(&str, &str)]) -> Page {
    post_form_from(berth, &berth.url(""), path, fields).await
}

/// Submits a form from the page at `page` of a signed-in browser (`cookies`), with the CSRF
/// token that page carries.
pub async fn post_signed_in_form(
    berth: &Berth,
    cookies: &str,
    page: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> Page {
    let csrf = get_page(berth, page, cookies).await.expect(200).csrf();
    let mut fields = fields.to_vec();
    fields.push(("_csrf", &csrf));
    let response = browser()
        .post(berth.url(path))
        .header(ORIGIN, berth.url(""))
        .header(COOKIE, cookies)
        .form(&fields)
        .send()
        .await
        .unwrap();
    read(response).await
}

/// Signs a new browser in with the sign-in form; its cookies (the session).
pub async fn sign_in(berth: &Berth, username: &str, password: &str) -> String {
    let signed_in = post_form(
        berth,
        "/login",
        &[("username", username), ("password", password)],
    )
    .await
    .expect(303);
    assert!(
        signed_in.set_cookie("berth_session").is_some(),
        "signed in as {username}"
    );
    signed_in.cookies()
}
