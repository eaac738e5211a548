//! README rendering: Markdown to HTML that is safe to put in a page as it is.
//!
//! Safe by construction rather than by cleaning HTML afterwards: raw HTML in the Markdown is
//! turned into text (so it shows, escaped, and never runs), and a link or image whose URL is
//! not http, https, mailto or relative is left out, keeping its text.

use pulldown_cmark::{html, Event, HeadingLevel, LinkType, Options, Parser, Tag, TagEnd};

/// Markdown (CommonMark with tables and strikethrough) to sanitized HTML.
pub fn render_readme(markdown: &str) -> String {
    render_readme_nested(markdown, 0)
}

/// Like [`render_readme`], for a page that shows the README under a heading of `level`
/// (1 to 5): its headings move down so that a `#` heading becomes `level + 1` (none deeper
/// than h6), and the page keeps one h1 and an unbroken outline. Level 0 keeps them as written.
pub fn render_readme_nested(markdown: &str, level: u8) -> String {
    let nested = |heading: HeadingLevel| {
        HeadingLevel::try_from((heading as usize + usize::from(level)).min(6)).unwrap_or(heading)
    };
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    let mut events = Vec::new();
    // One entry per open link or image: whether it was kept, and whether its text is its
    // URL (an autolink), which then goes too.
    let mut open: Vec<(bool, bool)> = Vec::new();
    for event in Parser::new_ext(markdown, options) {
        let inside_dropped_autolink = open.iter().any(|&(kept, autolink)| !kept && autolink);
        match event {
            Event::Html(raw) | Event::InlineHtml(raw) => events.push(Event::Text(raw)),
            // Block HTML becomes a paragraph of its text.
            Event::Start(Tag::HtmlBlock) => events.push(Event::Start(Tag::Paragraph)),
            Event::End(TagEnd::HtmlBlock) => events.push(Event::End(TagEnd::Paragraph)),
            Event::Start(
                Tag::Link {
                    link_type,
                    ref dest_url,
                    ..
                }
                | Tag::Image {
                    link_type,
                    ref dest_url,
                    ..
                },
            ) => {
                let kept = is_safe_url(dest_url);
                open.push((
                    kept,
                    matches!(link_type, LinkType::Autolink | LinkType::Email),
                ));
                if kept {
                    events.push(event);
                }
            }
            Event::End(TagEnd::Link | TagEnd::Image) => {
                if open.pop().is_some_and(|(kept, _)| kept) {
                    events.push(event);
                }
            }
            _ if inside_dropped_autolink => {}
            Event::Start(Tag::Heading {
                level,
                id,
                classes,
                attrs,
            }) => events.push(Event::Start(Tag::Heading {
                level: nested(level),
                id,
                classes,
                attrs,
            })),
            Event::End(TagEnd::Heading(level)) => {
                events.push(Event::End(TagEnd::Heading(nested(level))))
            }
            other => events.push(other),
        }
    }
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut out, events.into_iter());
    out
}

/// Whether a link or image URL may be followed: http, https, mailto, or no scheme at all
/// (relative). Judged the way browsers read it: ignoring whitespace and control characters
/// anywhere, and case.
fn is_safe_url(url: &str) -> bool {
    let normalized: String = url
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .flat_map(char::to_lowercase)
        .collect();
    match scheme(&normalized) {
        None => true,
        Some(scheme) => matches!(scheme, "http" | "https" | "mailto"),
    }
}

/// The scheme of a URL: what comes before a `:` that precedes any `/`, `?` or `#`.
fn scheme(url: &str) -> Option<&str> {
    let end = url.find([':', '/', '?', '#'])?;
    url[end..].starts_with(':').then(|| &url[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tags of the output (escaped text holds no `<`), for asserting on real elements
    /// and attributes rather than on text that merely mentions them.
    fn tags(html: &str) -> Vec<String> {
        html.split('<')
            .skip(1)
            .map(|rest| rest.split('>').next().unwrap_or_default().to_lowercase())
            .collect()
    }

    #[track_caller]
    fn assert_harmless(markdown: &str) -> String {
        let html = render_readme(markdown);
        assert!(!html.to_lowercase().contains("<script"), "{html}");
        for tag in tags(&html) {
            let name = tag.split_whitespace().next().unwrap_or_default();
            assert!(
                !matches!(
                    name,
                    "script" | "iframe" | "object" | "embed" | "style" | "svg" | "form" | "input"
                ),
                "{markdown:?} made <{tag}>"
            );
            for bad in [
                "javascript:",
                "vbscript:",
                "data:",
                "onerror",
                "onload",
                "onclick",
            ] {
                assert!(!tag.contains(bad), "{markdown:?} made <{tag}>");
            }
        }
        html
    }

    #[test]
    fn ordinary_markdown_renders() {
        let html = render_readme(
            "# Redis\n\nAn *in-memory* store. See [the docs](https://redis.io/docs) or \
             [local](./docs/usage.md).\n\n```sh\ndocker run redis\n```\n\n\
             | a | b |\n|---|---|\n| 1 | 2 |\n\n~~old~~ ![logo](https://x.test/logo.png)\n\n\
             <https://example.com> and <ops@example.com>\n",
        );
        assert!(html.contains("<h1>Redis</h1>"), "{html}");
        assert!(html.contains("<em>in-memory</em>"));
        assert!(html.contains("<a href=\"https://redis.io/docs\">the docs</a>"));
        assert!(html.contains("<a href=\"./docs/usage.md\">local</a>"));
        assert!(html.contains("<pre><code class=\"language-sh\">docker run redis\n</code></pre>"));
        assert!(html.contains("<table>") && html.contains("<td>2</td>"));
        assert!(html.contains("<del>old</del>"));
        assert!(html.contains("<img src=\"https://x.test/logo.png\" alt=\"logo\""));
        assert!(html.contains("<a href=\"https://example.com\">https://example.com</a>"));
        assert!(html.contains("<a href=\"mailto:ops@example.com\">"));
    }

    #[test]
    fn a_nested_readme_keeps_the_page_outline() {
        let markdown = "# Redis\n\n## Usage\n\n###### Deep\n";
        assert_eq!(
            render_readme_nested(markdown, 2),
            "<h3>Redis</h3>\n<h4>Usage</h4>\n<h6>Deep</h6>\n"
        );
        assert_eq!(render_readme_nested(markdown, 0), render_readme(markdown));
        assert!(render_readme(markdown).starts_with("<h1>Redis</h1>"));
    }

    #[test]
    fn raw_html_shows_as_text() {
        let html = assert_harmless("<script>alert(1)</script>\n\nhi <b onclick=\"x()\">there</b>");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(
            html.contains("&lt;b onclick=\"x()\"&gt;there&lt;/b&gt;"),
            "{html}"
        );
        let html = assert_harmless("<img src=x onerror=alert(1)>");
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        assert_harmless("<div>\n<iframe src=\"https://evil.test\"></iframe>\n</div>");
        assert_harmless("<svg onload=alert(1)><style>*{}</style>");
        assert_harmless("text <!-- comment --> <a href=\"javascript:alert(1)\">x</a>");
    }

    #[test]
    fn dangerous_link_and_image_urls_are_dropped_but_their_text_stays() {
        for markdown in [
            "[click](javascript:alert(1))",
            "[click](JaVaScRiPt:alert(1))",
            "[click]( javascript:alert(1))",
            "[click](<java\tscript:alert(1)>)",
            "[click](java&#x09;script:alert(1))",
            "[click](&#106;avascript:alert(1))",
            "[click](javascript&colon;alert(1))",
            "[click](vbscript:msgbox(1))",
            "[click](data:text/html;base64,PHNjcmlwdD4=)",
            "[click][ref]\n\n[ref]: javascript:alert(1)",
            "[click][ref]\n\n[ref]: <JAVASCRIPT:alert(1)> \"title\"",
        ] {
            let html = assert_harmless(markdown);
            assert!(html.contains("click"), "{markdown:?}: {html}");
            assert!(!html.contains("<a"), "{markdown:?}: {html}");
        }
        let html = assert_harmless("![x](data:text/html,<script>alert(1)</script>)");
        assert!(!html.contains("<img"), "{html}");
        let html = assert_harmless("![pic](javascript:alert(1) \"t\")");
        assert!(html.contains("pic") && !html.contains("<img"), "{html}");
    }

    #[test]
    fn dangerous_autolinks_vanish_entirely() {
        for markdown in [
            "<javascript:alert(1)>",
            "<JavaScript:alert(document.cookie)>",
        ] {
            let html = assert_harmless(markdown);
            assert!(!html.to_lowercase().contains("javascript"), "{html}");
        }
    }

    #[test]
    fn urls_are_judged_as_browsers_read_them() {
        for safe in [
            "https://x.test",
            "HTTP://x.test",
            "mailto:a@b.test",
            "/docs",
            "docs/a:b",
            "#usage",
            "?tab=tags",
            "//cdn.test/x.png",
        ] {
            assert!(is_safe_url(safe), "{safe}");
        }
        for unsafe_url in [
            "javascript:x",
            " JAVASCRIPT:x",
            "java\u{0}script:x",
            "java\nscript:x",
            "data:image/png;base64,xx",
            "vbscript:x",
            "file:///etc/passwd",
            ":x",
        ] {
            assert!(!is_safe_url(unsafe_url), "{unsafe_url:?}");
        }
    }
}
