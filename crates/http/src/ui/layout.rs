//! The page frame every page shares (header with search and the account menu, landmarks,
//! the one-time notice) and the small pieces pages are built from.

use super::assets::{ICON, SCRIPT, STYLESHEET};
use super::html::{html, Html};
use super::session::{Notice, NoticeKind, CSRF_FIELD};
use super::Visitor;
use crate::api::wire::query_text;
use berth_core::ports::RepositoryInfo;

/// A whole HTML document around a page's body.
pub(crate) fn document(visitor: &Visitor, title: &str, body: &Html) -> Html {
    let mut out = Html::new();
    html!(out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        "<title>" (title) " · Berth</title>"
        "<link rel=\"stylesheet\" href=\"" (STYLESHEET.href()) "\">"
        "<link rel=\"icon\" type=\"image/svg+xml\" href=\"" (ICON.href()) "\">"
        "<script src=\"" (SCRIPT.href()) "\" defer></script>"
        "</head><body>"
        "<a class=\"skip-link\" href=\"#main\">Skip to content</a>"
        [site_header(visitor)]
        "<main id=\"main\" tabindex=\"-1\">"
    );
    if let Some(notice) = &visitor.notice {
        out.fragment(&notice_box(notice));
    }
    html!(out,
        [body]
        "</main>"
        "<footer class=\"site-footer\"><p>Berth, a self-hosted Docker Hub · "
        "<a href=\"/api/openapi.json\">API description</a></p></footer>"
        "<div id=\"copy-status\" class=\"visually-hidden\" role=\"status\" aria-live=\"polite\"></div>"
        "</body></html>\n"
    );
    out
}

fn site_header(visitor: &Visitor) -> Html {
    let path = visitor.here.split('?').next().unwrap_or_default();
    let query = if path == "/search" {
        visitor
            .here
            .split_once('?')
            .and_then(|(_, query)| query_text(query, "q"))
            .unwrap_or_default()
    } else {
        String::new()
    };
    let mut out = Html::new();
    html!(out,
        "<header class=\"site-header\"><div class=\"bar\">"
        "<a class=\"brand\" href=\"/\"><img src=\"" (ICON.href()) "\" alt=\"\" width=\"28\" height=\"28\">Berth</a>"
        "<form class=\"search\" role=\"search\" action=\"/search\" method=\"get\">"
        "<label class=\"visually-hidden\" for=\"site-search\">Search repositories</label>"
        "<input type=\"search\" id=\"site-search\" name=\"q\" value=\"" (query) "\" placeholder=\"Search repositories\">"
        "<button type=\"submit\">Search</button>"
        "</form>"
        "<nav class=\"site-nav\" aria-label=\"Main\"><ul>"
        [nav_link(path, "/search", "Explore")]
    );
    match visitor.user_name() {
        Some(name) => {
            out.fragment(&nav_link(path, "/orgs", "Organizations"));
            if visitor.is_site_admin() {
                out.fragment(&nav_link(path, "/admin/users", "Admin"));
            }
            html!(out,
                "<li><details class=\"user-menu\"><summary>" (name)
                "<span class=\"visually-hidden\"> (account menu)</span></summary><ul>"
                "<li class=\"who\">Signed in as <strong>" (name) "</strong></li>"
                "<li><a href=\"/u/" (name) "\">Your repositories</a></li>"
                "<li><a href=\"/orgs\">Your organizations</a></li>"
                "<li><a href=\"/settings\">Account settings</a></li>"
                "<li><form method=\"post\" action=\"/logout\">" [csrf_field(visitor)]
                "<button type=\"submit\">Sign out</button></form></li>"
                "</ul></details></li>"
            );
        }
        None => {
            out.fragment(&nav_link(path, "/login", "Sign in"));
            if visitor.state.identity.signup_allowed() {
                out.fragment(&nav_link(path, "/signup", "Sign up"));
            }
        }
    }
    html!(out, "</ul></nav></div></header>");
    out
}

/// A navigation entry, marked as the current page when the visitor is on it or below it.
fn nav_link(path: &str, href: &'static str, label: &'static str) -> Html {
    let current = path == href || path.starts_with(&format!("{href}/"));
    let mut out = Html::new();
    html!(out, "<li><a href=\"" (href) "\"");
    if current {
        out.raw(" aria-current=\"page\"");
    }
    html!(out, ">" (label) "</a></li>");
    out
}

/// The notice at the top of a page: announced at once when it is an error.
pub(crate) fn notice_box(notice: &Notice) -> Html {
    let mut out = Html::new();
    match notice.kind {
        NoticeKind::Success => html!(out, "<div class=\"notice success\" role=\"status\">"),
        NoticeKind::Error => html!(out, "<div class=\"notice error\" role=\"alert\">"),
    }
    html!(out, (notice.message) "</div>");
    out
}

/// The hidden CSRF field of a signed-in visitor's forms (nothing when signed out).
pub(crate) fn csrf_field(visitor: &Visitor) -> Html {
    let mut out = Html::new();
    if let Some(token) = visitor.csrf() {
        html!(out, "<input type=\"hidden\" name=\"" (CSRF_FIELD) "\" value=\"" (token) "\">");
    }
    out
}

/// The start of a POST form to `action`, with its CSRF field.
pub(crate) fn form_start(visitor: &Visitor, action: &str, class: &'static str) -> Html {
    let mut out = Html::new();
    html!(out, "<form method=\"post\" action=\"" (action) "\" class=\"" (class) "\">" [csrf_field(visitor)]);
    out
}

/// A one-button form (revoke, remove, …) posting to `action`.
pub(crate) fn button_form(
    visitor: &Visitor,
    action: &str,
    label: &str,
    class: &'static str,
) -> Html {
    let mut out = form_start(visitor, action, "inline");
    html!(out, "<button type=\"submit\" class=\"" (class) "\">" (label) "</button></form>");
    out
}

/// An instant in UTC, readable, with the exact time for machines.
pub(crate) fn time(unix: i64) -> Html {
    let exact = berth_core::time::rfc3339(unix);
    // "2026-11-28T23:27:30Z" → "2026-11-28 23:27 UTC"
    let shown = format!(
        "{} {} UTC",
        exact.get(..10).unwrap_or_default(),
        exact.get(11..16).unwrap_or_default()
    );
    let mut out = Html::new();
    html!(out, "<time datetime=\"" (exact) "\">" (shown) "</time>");
    out
}

/// A command or value with a copy button; `id` must be unique on the page.
pub(crate) fn copyable(id: &str, text: &str, label: &str) -> Html {
    let mut out = Html::new();
    html!(out,
        "<div class=\"copy\"><code id=\"" (id) "\">" (text) "</code>"
        "<button type=\"button\" class=\"secondary\" data-copy=\"" (id) "\" hidden "
        "aria-label=\"" (label) "\">Copy</button></div>"
    );
    out
}

/// "Private" or "Public".
pub(crate) fn visibility_badge(is_private: bool) -> Html {
    let mut out = Html::new();
    if is_private {
        html!(out, "<span class=\"badge private\">Private</span>");
    } else {
        html!(out, "<span class=\"badge public\">Public</span>");
    }
    out
}

/// An `<option>`, selected when `selected`.
pub(crate) fn option(value: &str, label: &str, selected: bool) -> Html {
    let mut out = Html::new();
    html!(out, "<option value=\"" (value) "\"");
    if selected {
        out.raw(" selected");
    }
    html!(out, ">" (label) "</option>");
    out
}

/// The permission levels teams and collaborators hold, as a `<select>`.
pub(crate) fn permission_select(id: &str, name: &str) -> Html {
    let mut out = Html::new();
    html!(out, "<select id=\"" (id) "\" name=\"" (name) "\">"
        [option("read", "Read-only (pull)", true)]
        [option("write", "Read & Write (pull, push)", false)]
        [option("admin", "Admin (pull, push, delete, settings)", false)]
        "</select>");
    out
}

/// A repository's name without its namespace.
pub(crate) fn short_name<'a>(full: &'a str, namespace: &str) -> &'a str {
    full.strip_prefix(namespace)
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or(full)
}

/// The Hub's marks on a repository: "Official" for `library`, "Verified publisher" for a
/// verified organization's.
pub(crate) fn hub_badges(info: &RepositoryInfo) -> Html {
    let mut out = Html::new();
    if info.is_official {
        html!(out, "<span class=\"badge official\">Official</span>");
    }
    if info.is_verified {
        html!(
            out,
            "<span class=\"badge verified\">Verified publisher</span>"
        );
    }
    out
}

/// A byte count as people read sizes (`12.3 MB`), in powers of 1000 as registries show them.
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = "B";
    for next in UNITS {
        if value < 1000.0 {
            break;
        }
        value /= 1000.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

/// A count with thousands separated (`12,345`), as listings show stars and pulls.
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_in_utc_minutes() {
        assert_eq!(
            time(1_795_908_450).into_string(),
            "<time datetime=\"2026-11-28T23:27:30Z\">2026-11-28 23:27 UTC</time>"
        );
    }

    #[test]
    fn copy_buttons_stay_hidden_until_the_script_shows_them() {
        let out = copyable("pull-1", "docker pull h/a:b", "Copy the pull command").into_string();
        assert!(out.contains("<code id=\"pull-1\">docker pull h/a:b</code>"));
        assert!(out.contains("data-copy=\"pull-1\" hidden"));
    }

    #[test]
    fn short_names_drop_only_their_namespace() {
        assert_eq!(short_name("acme/app/api", "acme"), "app/api");
        assert_eq!(short_name("acmex/app", "acme"), "acmex/app");
    }

    #[test]
    fn sizes_read_like_a_registry_shows_them() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(32_100), "32.1 kB");
        assert_eq!(human_size(7_340_032), "7.3 MB");
        assert_eq!(human_size(3_000_000_000), "3.0 GB");
    }

    #[test]
    fn counts_separate_thousands() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
    }
}
