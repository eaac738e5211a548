//! `/search`: where the search box leads — the Hub's search over what the visitor may read,
//! with badges, stars, pulls and descriptions, an official-only filter, sort orders and pages.

use super::html::{html, url_component, Html};
use super::layout::{count, hub_badges, option, time};
use super::{UiResult, Visitor};
use crate::api::wire::query_text;
use axum::response::Response;
use berth_core::hub::SearchRequest;
use berth_core::ports::{RepositoryInfo, SearchSort};

/// Results per page.
const PAGE_SIZE: u32 = 25;

/// The sort orders offered, as they appear in the `sort` parameter and the menu.
const SORTS: [(SearchSort, &str, &str); 4] = [
    (SearchSort::Relevance, "relevance", "Best match"),
    (SearchSort::Stars, "stars", "Most stars"),
    (SearchSort::Pulls, "pulls", "Most pulls"),
    (SearchSort::LastUpdated, "last_updated", "Recently updated"),
];

/// What the visitor asked for; anything unreadable falls back to the default, since a
/// hand-edited address should still show results.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Asked {
    text: String,
    official_only: bool,
    sort: SearchSort,
    page: u32,
}

impl Asked {
    fn from_query(query: &str) -> Asked {
        let field = |key: &str| query_text(query, key).unwrap_or_default();
        let sort = field("sort");
        Asked {
            text: field("q").trim().to_owned(),
            official_only: matches!(field("official").as_str(), "1" | "true" | "on"),
            sort: SORTS
                .iter()
                .find(|(_, value, _)| *value == sort)
                .map_or(SearchSort::Relevance, |(sort, _, _)| *sort),
            page: field("page").parse().unwrap_or(1).max(1),
        }
    }

    /// This search's address on another page.
    fn href(&self, page: u32) -> String {
        let mut href = format!("/search?q={}", url_component(&self.text));
        if self.official_only {
            href.push_str("&official=1");
        }
        if let Some((_, value, _)) = SORTS.iter().find(|(sort, _, _)| *sort == self.sort) {
            if self.sort != SearchSort::Relevance {
                href.push_str("&sort=");
                href.push_str(value);
            }
        }
        if page > 1 {
            href.push_str(&format!("&page={page}"));
        }
        href
    }
}

/// `GET /search?q=&official=&sort=&page=`.
pub(crate) async fn page(visitor: Visitor) -> Response {
    let result = results(&visitor).await;
    visitor.respond(result)
}

async fn results(visitor: &Visitor) -> UiResult {
    let query = visitor.here.split_once('?').map_or("", |(_, query)| query);
    let asked = Asked::from_query(query);
    let request = SearchRequest {
        text: asked.text.clone(),
        official_only: asked.official_only,
        min_stars: 0,
        namespace: None,
        sort: asked.sort,
        page: asked.page,
        page_size: PAGE_SIZE,
    };
    let found = visitor
        .state
        .hub
        .search(&visitor.principal, &request)
        .await?;
    let mut body = Html::new();
    if asked.text.is_empty() {
        html!(body, "<h1>Explore repositories</h1>");
    } else {
        html!(body, "<h1>Results for “" (asked.text) "”</h1>");
    }
    body.fragment(&filters(&asked));
    html!(body, "<section class=\"panel\" id=\"results\" aria-labelledby=\"results-title\">"
        "<h2 id=\"results-title\" class=\"visually-hidden\">Repositories</h2>"
        "<p class=\"muted\" id=\"result-count\">" (result_count(found.total)) "</p>");
    if !found.results.is_empty() {
        html!(body, "<ul class=\"results\">");
        for info in &found.results {
            body.fragment(&result(info));
        }
        html!(body, "</ul>");
    }
    body.fragment(&pagination(&asked, found.total));
    html!(body, "</section>");
    let title = if asked.text.is_empty() {
        "Explore".to_owned()
    } else {
        format!("Search: {}", asked.text)
    };
    Ok(visitor.page(&title, body))
}

fn result_count(total: u64) -> String {
    match total {
        0 => "No repositories found.".to_owned(),
        1 => "1 repository".to_owned(),
        n => format!("{} repositories", count(n)),
    }
}

/// The filter and sort form: a plain GET, so results can be bookmarked and shared.
fn filters(asked: &Asked) -> Html {
    let mut out = Html::new();
    html!(out, "<form class=\"filters\" method=\"get\" action=\"/search\" aria-label=\"Filter and sort\">"
        "<div class=\"field\"><label for=\"search-text\">Search</label>"
        "<input type=\"search\" id=\"search-text\" name=\"q\" value=\"" (asked.text) "\"></div>"
        "<label><input type=\"checkbox\" id=\"official-only\" name=\"official\" value=\"1\"");
    if asked.official_only {
        out.raw(" checked");
    }
    html!(out, "> Official images only</label>"
        "<div class=\"field\"><label for=\"search-sort\">Sort by</label><select id=\"search-sort\" name=\"sort\">");
    for (sort, value, label) in SORTS {
        out.fragment(&option(value, label, sort == asked.sort));
    }
    html!(
        out,
        "</select></div><button type=\"submit\">Apply</button></form>"
    );
    out
}

fn result(info: &RepositoryInfo) -> Html {
    let mut out = Html::new();
    html!(out, "<li><a class=\"name\" href=\"/r/" (info.name) "\">" (info.name) "</a>" [hub_badges(info)]);
    if !info.description.is_empty() {
        html!(out, "<p>" (info.description) "</p>");
    }
    html!(out, "<ul class=\"stats\"><li><span class=\"star-count\">" (count(info.star_count)) "</span> "
        (if info.star_count == 1 { "star" } else { "stars" }) "</li>"
        "<li>" (count(info.pull_count)) " " (if info.pull_count == 1 { "pull" } else { "pulls" }) "</li>");
    if let Some(pushed) = info.last_pushed_at {
        html!(out, "<li>Updated " [time(pushed)] "</li>");
    }
    html!(out, "</ul></li>");
    out
}

fn pagination(asked: &Asked, total: u64) -> Html {
    let pages = total.div_ceil(u64::from(PAGE_SIZE)).max(1);
    let mut out = Html::new();
    if pages <= 1 && asked.page <= 1 {
        return out;
    }
    html!(
        out,
        "<nav class=\"pagination\" aria-label=\"Result pages\">"
    );
    if asked.page > 1 {
        html!(out, "<a href=\"" (asked.href(asked.page - 1)) "\" rel=\"prev\">Previous page</a>");
    }
    html!(out, "<span>Page " (asked.page) " of " (pages) "</span>");
    if u64::from(asked.page) < pages {
        html!(out, "<a href=\"" (asked.href(asked.page + 1)) "\" rel=\"next\">Next page</a>");
    }
    html!(out, "</nav>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_and_page_links_ask_for_the_same_search() {
        let asked = Asked::from_query("q=web+app&official=1&sort=stars&page=3");
        assert_eq!(
            asked,
            Asked {
                text: "web app".into(),
                official_only: true,
                sort: SearchSort::Stars,
                page: 3
            }
        );
        assert_eq!(
            asked.href(4),
            "/search?q=web%20app&official=1&sort=stars&page=4"
        );
        assert_eq!(Asked::from_query(&asked.href(4)[8..]).page, 4);
    }

    #[test]
    fn odd_addresses_still_search() {
        let asked = Asked::from_query("q=&sort=nonsense&page=-2");
        assert_eq!(asked.sort, SearchSort::Relevance);
        assert_eq!(asked.page, 1);
        assert!(!asked.official_only);
    }

    #[test]
    fn later_pages_link_back_and_forward() {
        let asked = Asked::from_query("q=app&page=2");
        let links = pagination(&asked, 60).into_string();
        assert!(
            links.contains("href=\"/search?q=app\" rel=\"prev\""),
            "{links}"
        );
        assert!(links.contains("Page 2 of 3"), "{links}");
        assert!(
            links.contains("href=\"/search?q=app&amp;page=3\" rel=\"next\""),
            "{links}"
        );
        assert_eq!(
            pagination(&Asked::from_query("q=app"), 10).into_string(),
            ""
        );
    }
}
