//! Building HTML safely: markup comes only from string literals, every value is escaped.

use std::fmt::{self, Write as _};

/// A piece of HTML under construction. Markup can only be appended from `&'static str`
/// literals or other `Html` values, and text only through [`escape`], so a value can never
/// become markup by mistake.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Html(String);

impl Html {
    pub fn new() -> Html {
        Html(String::new())
    }

    /// Literal markup written in the source.
    pub fn raw(&mut self, markup: &'static str) -> &mut Html {
        self.0.push_str(markup);
        self
    }

    /// A value, escaped for both element content and quoted attribute values.
    pub fn text(&mut self, value: impl fmt::Display) -> &mut Html {
        let mut plain = String::new();
        // Writing into a String cannot fail.
        let _ = write!(plain, "{value}");
        escape_into(&mut self.0, &plain);
        self
    }

    /// A fragment built elsewhere (already safe).
    pub fn fragment(&mut self, fragment: &Html) -> &mut Html {
        self.0.push_str(&fragment.0);
        self
    }

    /// HTML sanitized elsewhere (the Hub's rendered README): the one way markup that was not
    /// written in our source enters a page, so every use must be such a sanitized value.
    pub fn trusted(&mut self, sanitized: &str) -> &mut Html {
        self.0.push_str(sanitized);
        self
    }

    #[cfg(test)]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Appends markup to an [`Html`]: string literals go in as markup, `(expr)` is escaped text,
/// `[expr]` is an `Html` fragment.
///
/// ```ignore
/// html!(out, "<a href=\"/u/" (name) "\">" (name) "</a>" [badge]);
/// ```
macro_rules! html {
    (@part $out:ident, $markup:literal) => {{
        $out.raw($markup);
    }};
    (@part $out:ident, ($value:expr)) => {{
        $out.text(&$value);
    }};
    (@part $out:ident, [$fragment:expr]) => {{
        $out.fragment(&$fragment);
    }};
    ($out:expr, $($part:tt)*) => {{
        let out: &mut $crate::ui::html::Html = &mut $out;
        $( $crate::ui::html::html!(@part out, $part); )*
    }};
}
pub(crate) use html;

/// Appends `text` with `& < > " '` replaced by character references.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// A URL path segment or query value with everything but unreserved characters
/// percent-encoded, so a name can never end a path or start a new parameter.
pub(crate) fn url_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            other => {
                let _ = write!(out, "%{other:02X}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_never_become_markup() {
        let name = "<script>alert('x')</script> & \"quoted\"";
        let mut out = Html::new();
        html!(out, "<p title=\"" (name) "\">" (name) "</p>");
        assert_eq!(
            out.as_str(),
            "<p title=\"&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quoted&quot;\">\
             &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quoted&quot;</p>"
        );
    }

    #[test]
    fn fragments_are_kept_as_built() {
        let mut badge = Html::new();
        html!(badge, "<span>" (7) "</span>");
        let mut out = Html::new();
        html!(out, "<li>" [badge] "</li>");
        assert_eq!(out.into_string(), "<li><span>7</span></li>");
    }

    #[test]
    fn url_components_cannot_change_the_path_or_query() {
        assert_eq!(url_component("acme/app"), "acme%2Fapp");
        assert_eq!(url_component("a b&c=d?"), "a%20b%26c%3Dd%3F");
        assert_eq!(url_component("web-1.2_x~"), "web-1.2_x~");
    }
}
