//! Repository listings (search results, namespace pages): one entry as the Hub shows it, and page links.

use super::html::{html, Html};
use super::layout::{count, hub_badges, time, visibility_badge};
use crate::api::wire::query_text;
use berth_core::ports::RepositoryInfo;

/// Repositories per page, as on Docker Hub.
pub(crate) const PAGE_SIZE: u32 = 25;

/// The entries of one page of repositories (nothing when there are none); `mirror_of` names
/// the upstream of a repository that is a pull-through cache (`Mirrors::mirroring`).
pub(crate) fn repository_results<'a>(
    found: &'a [RepositoryInfo],
    mirror_of: impl Fn(&str) -> Option<&'a str>,
) -> Html {
    let mut out = Html::new();
    if found.is_empty() {
        return out;
    }
    html!(out, "<ul class=\"results\">");
    for info in found {
        out.fragment(&entry(info, mirror_of(&info.name)));
    }
    html!(out, "</ul>");
    out
}

/// One repository: its name, marks, short description and numbers.
fn entry(info: &RepositoryInfo, mirror_of: Option<&str>) -> Html {
    let mut out = Html::new();
    html!(out, "<li><a class=\"name\" href=\"/r/" (info.name) "\">" (info.name) "</a>" [hub_badges(info)]);
    if let Some(upstream) = mirror_of {
        html!(out, " <span class=\"badge mirror\" title=\"A read-only pull-through cache of " (upstream) "\">Mirror of " (upstream) "</span>");
    }
    if info.is_private {
        out.fragment(&visibility_badge(true));
    }
    if !info.description.is_empty() {
        html!(out, "<p>" (info.description) "</p>");
    }
    html!(out, "<ul class=\"stats\"><li><span class=\"star-count\">" (count(info.star_count)) "</span> "
        (if info.star_count == 1 { "star" } else { "stars" }) "</li>"
        "<li>" (count(info.pull_count)) " " (if info.pull_count == 1 { "pull" } else { "pulls" }) "</li>");
    match info.last_pushed_at {
        Some(pushed) => html!(out, "<li>Updated " [time(pushed)] "</li>"),
        None => html!(out, "<li>Never pushed</li>"),
    }
    html!(out, "</ul></li>");
    out
}

/// "No repositories found.", "1 repository", "1,234 repositories".
pub(crate) fn result_count(total: u64) -> String {
    match total {
        0 => "No repositories found.".to_owned(),
        1 => "1 repository".to_owned(),
        n => format!("{} repositories", count(n)),
    }
}

/// The `page` parameter: absent is the first page; anything but a page number is refused
/// with a message saying so.
pub(crate) fn page_parameter(query: &str) -> Result<u32, String> {
    match query_text(query, "page").as_deref().map(str::trim) {
        None | Some("") => Ok(1),
        Some(text) => match text.parse::<u32>() {
            Ok(page) if page >= 1 => Ok(page),
            _ => Err(format!(
                "The page must be a number from 1 on, not “{}”.",
                text.chars().take(40).collect::<String>()
            )),
        },
    }
}

/// Links to the previous and next page of `total` entries, `page_size` a page; `href` is
/// the address of a page. Nothing when everything fits on the first page.
pub(crate) fn pagination(
    label: &str,
    page: u32,
    total: u64,
    page_size: u32,
    href: impl Fn(u32) -> String,
) -> Html {
    let pages = total.div_ceil(u64::from(page_size.max(1))).max(1);
    let mut out = Html::new();
    if pages <= 1 && page <= 1 {
        return out;
    }
    html!(out, "<nav class=\"pagination\" aria-label=\"" (label) "\">");
    if page > 1 {
        html!(out, "<a href=\"" (href(page - 1)) "\" rel=\"prev\">Previous page</a>");
    }
    html!(out, "<span>Page " (page) " of " (pages) "</span>");
    if u64::from(page) < pages {
        html!(out, "<a href=\"" (href(page + 1)) "\" rel=\"next\">Next page</a>");
    }
    html!(out, "</nav>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str) -> RepositoryInfo {
        RepositoryInfo {
            name: name.to_owned(),
            namespace: name.split('/').next().unwrap_or_default().to_owned(),
            is_private: false,
            description: String::new(),
            full_description: String::new(),
            star_count: 0,
            pull_count: 0,
            created_at: 0,
            last_pushed_at: None,
            last_pulled_at: None,
            is_official: false,
            is_verified: false,
        }
    }

    #[test]
    fn an_entry_shows_marks_description_and_numbers() {
        let mut app = info("acme/app");
        app.is_private = true;
        app.is_verified = true;
        app.description = "The <app>".to_owned();
        app.star_count = 1;
        app.pull_count = 1234;
        app.last_pushed_at = Some(1_795_908_450);
        let found = [app, info("acme/empty"), info("dockerhub/library/nginx")];
        let out = repository_results(&found, |name| {
            name.starts_with("dockerhub/")
                .then_some("https://registry-1.docker.io")
        })
        .into_string();
        assert!(
            out.contains("badge mirror\" title=\"A read-only pull-through cache of https://registry-1.docker.io\">Mirror of https://registry-1.docker.io</span>"),
            "{out}"
        );
        assert_eq!(out.matches("badge mirror").count(), 1, "{out}");
        assert!(out.contains("href=\"/r/acme/app\""), "{out}");
        assert!(out.contains("Verified publisher"), "{out}");
        assert!(out.contains("badge private\">Private"), "{out}");
        assert!(out.contains("<p>The &lt;app&gt;</p>"), "{out}");
        assert!(out.contains(">1</span> star<"), "{out}");
        assert!(out.contains("1,234 pulls"), "{out}");
        assert!(
            out.contains("Updated <time datetime=\"2026-11-28T23:27:30Z\">"),
            "{out}"
        );
        assert!(out.contains("Never pushed"), "{out}");
        assert_eq!(repository_results(&[], |_| None).into_string(), "");
    }

    #[test]
    fn page_numbers_are_read_strictly() {
        assert_eq!(page_parameter(""), Ok(1));
        assert_eq!(page_parameter("page=3"), Ok(3));
        assert!(page_parameter("page=0").unwrap_err().contains("“0”"));
        assert!(page_parameter("page=-2").is_err());
        assert!(page_parameter("page=two").unwrap_err().contains("“two”"));
    }

    #[test]
    fn later_pages_link_back_and_forward() {
        let href = |page: u32| format!("/u/alice?page={page}");
        let links = pagination("Repository pages", 2, 60, 25, href).into_string();
        assert!(links.contains("aria-label=\"Repository pages\""), "{links}");
        assert!(
            links.contains("href=\"/u/alice?page=1\" rel=\"prev\""),
            "{links}"
        );
        assert!(links.contains("Page 2 of 3"), "{links}");
        assert!(
            links.contains("href=\"/u/alice?page=3\" rel=\"next\""),
            "{links}"
        );
        assert_eq!(pagination("Pages", 1, 25, 25, href).into_string(), "");
    }
}
