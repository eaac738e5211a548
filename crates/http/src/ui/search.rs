//! `/search`: where the search box leads — the Hub's search over what the visitor may read,
//! with the API's filters under the API's parameter names (`official`, `min_stars`,
//! `namespace`), its sort orders and pages, each result as listings show it.

use super::html::{html, url_component, Html};
use super::layout::option;
use super::listing::{page_parameter, pagination, repository_results, result_count, PAGE_SIZE};
use super::{UiResult, Visitor};
use crate::api::wire::query_text;
use axum::http::StatusCode;
use axum::response::Response;
use berth_core::hub::SearchRequest;
use berth_core::ports::SearchSort;

/// The sort orders offered, as they appear in the `sort` parameter and the menu.
const SORTS: [(SearchSort, &str, &str); 4] = [
    (SearchSort::Relevance, "relevance", "Best match"),
    (SearchSort::Stars, "stars", "Most stars"),
    (SearchSort::Pulls, "pulls", "Most pulls"),
    (SearchSort::LastUpdated, "last_updated", "Recently updated"),
];

/// The id of the message box the fields with a problem point to.
const PROBLEMS_ID: &str = "search-problems";

/// What the visitor asked for, as the form shows it again.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Asked {
    text: String,
    official_only: bool,
    /// As written (trimmed), so a value that is not a number is shown with its message.
    min_stars: String,
    namespace: String,
    sort: SearchSort,
    page: u32,
}

/// A parameter that could not be read: the id of its field (empty for the page number,
/// which has none) and what is wrong, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Problem {
    field: &'static str,
    message: String,
}

/// At most this much of a bad value is quoted back.
fn quoted(value: &str) -> String {
    value.chars().take(40).collect()
}

impl Asked {
    /// The search a query string asks for, and what in it cannot be read.
    fn from_query(query: &str) -> (Asked, Vec<Problem>) {
        let field = |key: &str| query_text(query, key).unwrap_or_default().trim().to_owned();
        let mut problems = Vec::new();
        let official = field("official");
        let official_only = match official.as_str() {
            "" | "0" | "false" => false,
            "1" | "true" | "on" => true,
            other => {
                problems.push(Problem {
                    field: "official-only",
                    message: format!(
                        "“Official images only” is on (1) or off (0), not “{}”.",
                        quoted(other)
                    ),
                });
                false
            }
        };
        let min_stars = field("min_stars");
        if !min_stars.is_empty() && min_stars.parse::<u64>().is_err() {
            problems.push(Problem {
                field: "min-stars",
                message: format!(
                    "Minimum stars must be a whole number, 0 or more, not “{}”.",
                    quoted(&min_stars)
                ),
            });
        }
        let sort_value = field("sort");
        let sort = match sort_value.as_str() {
            "" => SearchSort::Relevance,
            value => match SORTS.iter().find(|(_, name, _)| *name == value) {
                Some((sort, _, _)) => *sort,
                None => {
                    problems.push(Problem {
                        field: "search-sort",
                        message: format!(
                            "Sort by relevance, stars, pulls or last_updated, not “{}”.",
                            quoted(value)
                        ),
                    });
                    SearchSort::Relevance
                }
            },
        };
        let page = page_parameter(query).unwrap_or_else(|message| {
            problems.push(Problem { field: "", message });
            1
        });
        let asked = Asked {
            text: field("q"),
            official_only,
            min_stars,
            namespace: field("namespace"),
            sort,
            page,
        };
        (asked, problems)
    }

    fn min_stars(&self) -> u64 {
        self.min_stars.parse().unwrap_or(0)
    }

    /// Any filter narrows the search.
    fn filtered(&self) -> bool {
        self.official_only || self.min_stars() > 0 || !self.namespace.is_empty()
    }

    /// This search's address on another page: the same text, filters and order.
    fn href(&self, page: u32) -> String {
        let mut href = format!("/search?q={}", url_component(&self.text));
        if self.official_only {
            href.push_str("&official=1");
        }
        if self.min_stars() > 0 {
            href.push_str(&format!("&min_stars={}", self.min_stars()));
        }
        if !self.namespace.is_empty() {
            href.push_str("&namespace=");
            href.push_str(&url_component(&self.namespace));
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

/// `GET /search?q=&official=&min_stars=&namespace=&sort=&page=`.
pub(crate) async fn page(visitor: Visitor) -> Response {
    let result = results(&visitor).await;
    visitor.respond(result)
}

async fn results(visitor: &Visitor) -> UiResult {
    let query = visitor.here.split_once('?').map_or("", |(_, query)| query);
    let (asked, problems) = Asked::from_query(query);
    let mut body = Html::new();
    if asked.text.is_empty() {
        html!(body, "<h1>Explore repositories</h1>");
    } else {
        html!(body, "<h1>Results for “" (asked.text) "”</h1>");
    }
    let title = if asked.text.is_empty() {
        "Explore".to_owned()
    } else {
        format!("Search: {}", asked.text)
    };
    if !problems.is_empty() {
        html!(body, "<div class=\"notice error\" id=\"" (PROBLEMS_ID) "\" role=\"alert\">"
            "<p>This search cannot be run:</p><ul>");
        for problem in &problems {
            html!(body, "<li>" (problem.message) "</li>");
        }
        html!(body, "</ul></div>");
        body.fragment(&filters(&asked, &problems));
        return Ok(visitor.page_with_status(StatusCode::BAD_REQUEST, &title, body));
    }
    let request = SearchRequest {
        text: asked.text.clone(),
        official_only: asked.official_only,
        min_stars: asked.min_stars(),
        namespace: Some(asked.namespace.clone()).filter(|n| !n.is_empty()),
        sort: asked.sort,
        page: asked.page,
        page_size: PAGE_SIZE,
    };
    let found = visitor
        .state
        .hub
        .search(&visitor.principal, &request)
        .await?;
    body.fragment(&filters(&asked, &problems));
    html!(body, "<section class=\"panel\" id=\"results\" aria-labelledby=\"results-title\">"
        "<h2 id=\"results-title\" class=\"visually-hidden\">Repositories</h2>"
        "<p class=\"muted\" id=\"result-count\">" (result_count(found.total)) "</p>"
        [repository_results(&found.results, |name| {
            visitor.state.mirrors.mirroring(name).map(|m| m.upstream.as_str())
        })]
        [pagination("Result pages", asked.page, found.total, PAGE_SIZE, |page| asked.href(page))]
        "</section>");
    Ok(visitor.page(&title, body))
}

/// Marks a field that has a problem, pointing to the message.
fn invalid_if(out: &mut Html, problems: &[Problem], field: &str) {
    if problems.iter().any(|problem| problem.field == field) {
        html!(*out, " aria-invalid=\"true\" aria-describedby=\"" (PROBLEMS_ID) "\"");
    }
}

/// The filter and sort form: a plain GET with the API's parameter names, so results can be
/// bookmarked and shared, and the same address works against `/api/v1/search`.
fn filters(asked: &Asked, problems: &[Problem]) -> Html {
    let mut out = Html::new();
    html!(out, "<form class=\"filters\" method=\"get\" action=\"/search\" aria-label=\"Filter and sort\">"
        "<div class=\"field\"><label for=\"search-text\">Search</label>"
        "<input type=\"search\" id=\"search-text\" name=\"q\" value=\"" (asked.text) "\"></div>"
        "<div class=\"field\"><label for=\"search-namespace\">Namespace</label>"
        "<input type=\"text\" id=\"search-namespace\" name=\"namespace\" value=\"" (asked.namespace) "\" "
        "size=\"14\" autocapitalize=\"none\" spellcheck=\"false\"></div>"
        "<div class=\"field\"><label for=\"min-stars\">Minimum stars</label>"
        "<input type=\"number\" id=\"min-stars\" name=\"min_stars\" min=\"0\" step=\"1\" "
        "inputmode=\"numeric\" value=\"" (asked.min_stars) "\"");
    invalid_if(&mut out, problems, "min-stars");
    html!(out, "></div>"
        "<label><input type=\"checkbox\" id=\"official-only\" name=\"official\" value=\"1\"");
    if asked.official_only {
        out.raw(" checked");
    }
    invalid_if(&mut out, problems, "official-only");
    html!(out, "> Official images only</label>"
        "<div class=\"field\"><label for=\"search-sort\">Sort by</label><select id=\"search-sort\" name=\"sort\"");
    invalid_if(&mut out, problems, "search-sort");
    html!(out, ">");
    for (sort, value, label) in SORTS {
        out.fragment(&option(value, label, sort == asked.sort));
    }
    html!(out, "</select></div><button type=\"submit\">Apply</button>");
    if asked.filtered() {
        let unfiltered = Asked {
            official_only: false,
            min_stars: String::new(),
            namespace: String::new(),
            ..asked.clone()
        };
        html!(out, "<a href=\"" (unfiltered.href(1)) "\">Clear filters</a>");
    }
    html!(out, "</form>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_and_page_links_ask_for_the_same_search() {
        let (asked, problems) =
            Asked::from_query("q=web+app&official=1&min_stars=5&namespace=acme&sort=stars&page=3");
        assert_eq!(problems, vec![]);
        assert_eq!(
            asked,
            Asked {
                text: "web app".into(),
                official_only: true,
                min_stars: "5".into(),
                namespace: "acme".into(),
                sort: SearchSort::Stars,
                page: 3
            }
        );
        let next = asked.href(4);
        assert_eq!(
            next,
            "/search?q=web%20app&official=1&min_stars=5&namespace=acme&sort=stars&page=4"
        );
        let (again, _) = Asked::from_query(&next["/search?".len()..]);
        assert_eq!(again, Asked { page: 4, ..asked });
    }

    #[test]
    fn empty_fields_of_a_submitted_form_ask_for_nothing() {
        let (asked, problems) = Asked::from_query("q=app&namespace=&min_stars=&sort=relevance");
        assert_eq!(problems, vec![]);
        assert!(!asked.filtered());
        assert_eq!(asked.href(1), "/search?q=app");
    }

    #[test]
    fn unreadable_values_are_named_with_their_field() {
        let (asked, problems) =
            Asked::from_query("q=app&min_stars=abc&official=maybe&sort=downloads&page=0");
        let fields: Vec<&str> = problems.iter().map(|p| p.field).collect();
        assert_eq!(fields, ["official-only", "min-stars", "search-sort", ""]);
        assert!(problems[1].message.contains("“abc”"), "{problems:?}");
        assert!(problems[2].message.contains("“downloads”"), "{problems:?}");
        assert_eq!(asked.min_stars, "abc", "shown again as written");
        let form = filters(&asked, &problems).into_string();
        assert!(
            form.contains(
                "value=\"abc\" aria-invalid=\"true\" aria-describedby=\"search-problems\""
            ),
            "{form}"
        );
        let (_, negative) = Asked::from_query("min_stars=-1");
        assert_eq!(negative.len(), 1);
    }

    #[test]
    fn the_form_keeps_what_was_asked() {
        let (asked, problems) =
            Asked::from_query("q=app&official=1&min_stars=3&namespace=acme&sort=pulls");
        let form = filters(&asked, &problems).into_string();
        for kept in [
            "name=\"q\" value=\"app\"",
            "name=\"namespace\" value=\"acme\"",
            "value=\"3\"",
            "value=\"1\" checked",
            "<option value=\"pulls\" selected>",
            "href=\"/search?q=app&amp;sort=pulls\">Clear filters",
        ] {
            assert!(form.contains(kept), "{kept} in {form}");
        }
    }
}
