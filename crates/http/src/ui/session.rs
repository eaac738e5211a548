//! The browser session: the cookies that carry it and a one-time notice, the CSRF token
//! derived from it, and the same-origin check every form submission passes.

use crate::AppState;
use axum::http::{header, HeaderMap, HeaderValue};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use berth_core::auth::UI_SESSION_TTL;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Holds the signed session token (see `Authenticator::issue_ui_session`).
pub(crate) const SESSION_COOKIE: &str = "berth_session";
/// A notice for the next page after a redirect ("Token revoked.").
pub(crate) const NOTICE_COOKIE: &str = "berth_notice";
/// The hidden form field carrying the CSRF token.
pub(crate) const CSRF_FIELD: &str = "_csrf";

/// A notice is read on the very next page; a minute is plenty.
const NOTICE_MAX_AGE_SECS: u64 = 60;
/// Longer notices are cut; they are our own messages, never a page's worth.
const NOTICE_MAX_CHARS: usize = 400;

/// The value of one cookie, from every `Cookie` header of the request.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value.trim_matches('"'))
        })
}

/// `Set-Cookie` for a new session: unreadable by scripts, not sent on cross-site
/// subrequests or form posts, and only over TLS when the page came over TLS.
pub(crate) fn session_cookie(token: &str, secure: bool) -> Option<HeaderValue> {
    set_cookie(SESSION_COOKIE, token, UI_SESSION_TTL.as_secs(), secure)
}

/// `Set-Cookie` ending the cookie `name`.
pub(crate) fn clear_cookie(name: &str, secure: bool) -> Option<HeaderValue> {
    set_cookie(name, "", 0, secure)
}

fn set_cookie(name: &str, value: &str, max_age: u64, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
    ))
    .ok()
}

/// Whether a page was an error or a success notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoticeKind {
    Success,
    Error,
}

/// A message shown once at the top of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notice {
    pub kind: NoticeKind,
    pub message: String,
}

impl Notice {
    pub fn success(message: impl Into<String>) -> Notice {
        Notice {
            kind: NoticeKind::Success,
            message: message.into(),
        }
    }

    pub fn error(message: impl Into<String>) -> Notice {
        Notice {
            kind: NoticeKind::Error,
            message: message.into(),
        }
    }

    /// `Set-Cookie` carrying the notice to the page a redirect leads to.
    pub fn cookie(&self, secure: bool) -> Option<HeaderValue> {
        let kind = match self.kind {
            NoticeKind::Success => 's',
            NoticeKind::Error => 'e',
        };
        let message: String = self.message.chars().take(NOTICE_MAX_CHARS).collect();
        let value = URL_SAFE_NO_PAD.encode(format!("{kind}{message}"));
        set_cookie(NOTICE_COOKIE, &value, NOTICE_MAX_AGE_SECS, secure)
    }

    /// The notice a cookie carries; anything malformed is no notice.
    pub fn from_cookie(value: &str) -> Option<Notice> {
        let decoded = String::from_utf8(URL_SAFE_NO_PAD.decode(value).ok()?).ok()?;
        let mut chars = decoded.chars();
        let kind = match chars.next()? {
            's' => NoticeKind::Success,
            'e' => NoticeKind::Error,
            _ => return None,
        };
        Some(Notice {
            kind,
            message: chars.take(NOTICE_MAX_CHARS).collect(),
        })
    }
}

type HmacSha256 = Hmac<Sha256>;

/// What keys the CSRF token: a constant label, keyed by the session token.
const CSRF_LABEL: &[u8] = b"berth ui form";

fn csrf_mac(session: &str) -> HmacSha256 {
    let mut mac =
        HmacSha256::new_from_slice(session.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(CSRF_LABEL);
    mac
}

/// The CSRF token of a session: an HMAC keyed by the session token, so it is as secret as
/// the cookie (which scripts on other sites cannot read) and changes with every sign-in,
/// without anything stored on the server.
pub(crate) fn csrf_token(session: &str) -> String {
    hex::encode(csrf_mac(session).finalize().into_bytes())
}

/// Whether a submitted CSRF token belongs to the session (compared in constant time).
pub(crate) fn csrf_matches(session: &str, submitted: &str) -> bool {
    match hex::decode(submitted) {
        Ok(bytes) => csrf_mac(session).verify_slice(&bytes).is_ok(),
        Err(_) => false,
    }
}

/// Whether the browser reached us over TLS, directly or through a trusted proxy that says so.
pub(crate) fn is_secure(state: &AppState, extensions: &axum::http::Extensions) -> bool {
    let forwarded_https = crate::origin::RequestOrigin::of(extensions).https;
    let public_https = state
        .public_url
        .as_deref()
        .is_some_and(|url| url.starts_with("https://"));
    forwarded_https || public_https
}

/// Whether a submission comes from one of our own pages: its `Origin` (or, without one, its
/// `Referer`) must name this host. Clients that send neither are not browsers acting for
/// another site, so they pass; the CSRF token still guards signed-in forms.
pub(crate) fn same_origin(
    state: &AppState,
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
) -> bool {
    let claimed = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    let Some(claimed) = claimed else {
        return true;
    };
    let Some(authority) = authority_of(claimed) else {
        // "null" (a sandboxed or privacy-stripped origin) or garbage: not provably ours.
        return false;
    };
    // The host the client asked for (from a trusted proxy, the one it forwarded; over
    // HTTP/2, the `:authority`), or the Host header as it reached us.
    let asked = crate::origin::RequestOrigin::of(extensions).host.as_deref();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let public = state.public_url.as_deref().and_then(authority_of);
    asked.is_some_and(|asked| asked.eq_ignore_ascii_case(&authority))
        || host.is_some_and(|host| host.eq_ignore_ascii_case(&authority))
        || public.is_some_and(|public| public.eq_ignore_ascii_case(&authority))
}

/// `host[:port]` of an absolute http(s) URL.
fn authority_of(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    (!authority.is_empty()).then(|| authority.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; berth_session=tok"),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("berth_notice=n"));
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("tok"));
        assert_eq!(cookie(&headers, NOTICE_COOKIE), Some("n"));
        assert_eq!(cookie(&headers, "berth"), None);
    }

    #[test]
    fn session_cookies_are_http_only_lax_and_secure_over_tls() {
        let plain = session_cookie("tok", false).unwrap();
        let plain = plain.to_str().unwrap();
        assert!(plain.starts_with("berth_session=tok; Path=/; Max-Age=43200"));
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Lax"));
        assert!(!plain.contains("Secure"));
        let tls = session_cookie("tok", true).unwrap();
        assert!(tls.to_str().unwrap().ends_with("; Secure"));
        let cleared = clear_cookie(SESSION_COOKIE, false).unwrap();
        assert!(cleared.to_str().unwrap().contains("Max-Age=0"));
    }

    #[test]
    fn csrf_tokens_belong_to_one_session() {
        let token = csrf_token("session-a");
        assert!(csrf_matches("session-a", &token));
        assert!(!csrf_matches("session-b", &token));
        assert!(!csrf_matches("session-a", ""));
        assert!(!csrf_matches("session-a", "not hex"));
        assert_ne!(token, csrf_token("session-b"));
    }

    #[test]
    fn notices_survive_the_cookie_and_refuse_garbage() {
        let notice = Notice::error("Team <devs> already exists; pick another name");
        let cookie = notice.cookie(false).unwrap();
        let value = cookie
            .to_str()
            .unwrap()
            .strip_prefix("berth_notice=")
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        assert_eq!(Notice::from_cookie(&value), Some(notice));
        assert_eq!(Notice::from_cookie("%%%"), None);
        assert_eq!(Notice::from_cookie(&URL_SAFE_NO_PAD.encode("xhello")), None);
    }

    #[test]
    fn authorities_come_from_absolute_urls_only() {
        assert_eq!(
            authority_of("http://127.0.0.1:5000/settings?x=1").as_deref(),
            Some("127.0.0.1:5000")
        );
        assert_eq!(
            authority_of("https://hub.example").as_deref(),
            Some("hub.example")
        );
        assert_eq!(authority_of("null"), None);
        assert_eq!(authority_of("ftp://x"), None);
    }
}
