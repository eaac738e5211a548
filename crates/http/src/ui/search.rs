//! `/search`: where the search box leads. The Hub's search (stars, pulls, badges, filters)
//! fills this page; until then it says so and points at namespaces.

use super::html::{html, url_component, Html};
use super::Visitor;
use crate::api::wire::query_text;
use axum::response::Response;

/// `GET /search?q=`.
pub(crate) async fn page(visitor: Visitor) -> Response {
    let query = visitor
        .here
        .split_once('?')
        .and_then(|(_, query)| query_text(query, "q"))
        .unwrap_or_default();
    let query = query.trim();
    let mut body = Html::new();
    if query.is_empty() {
        html!(body, "<h1>Explore</h1>");
    } else {
        html!(body, "<h1>Results for “" (query) "”</h1>");
    }
    html!(body,
        "<div class=\"panel\"><p>Repository search with stars, pulls and descriptions is coming to this page.</p>"
        "<p class=\"muted\">Meanwhile, open a namespace directly: <code>/u/NAME</code> for a user, "
        "<code>/orgs/NAME</code> for an organization.</p>"
    );
    if !query.is_empty() && !query.contains(char::is_whitespace) {
        html!(body, "<p><a href=\"/u/" (url_component(&query.to_ascii_lowercase())) "\">Repositories of “" (query) "”</a></p>");
    }
    html!(body, "</div>");
    visitor.page("Search", body)
}
