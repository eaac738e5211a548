//! Query strings and HTML form bodies: percent-decoding and reading values, shared by the
//! registry API, `/token`, the management API and the web UI.

/// Decodes `%XX` escapes of a query component; None if the escapes are broken. In queries
/// a `+` stays a plus: media types (`...+json`) carry one, and no value the registry API
/// reads can hold a space.
fn percent_decode(raw: &str) -> Option<String> {
    decode_component(raw, false)
}

/// Decodes one component of a query or (with `plus_is_space`) of an HTML form body.
pub(crate) fn decode_component(raw: &str, plus_is_space: bool) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                // Two hex digits exactly: `from_str_radix` alone would take `%+f` as 15.
                let hex = raw.get(i + 1..i + 3)?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Every value of `key` in a query string, decoded; undecodable values are kept raw so
/// validation reports them.
pub fn query_params<'a>(query: &'a str, key: &'a str) -> impl Iterator<Item = String> + 'a {
    query.split('&').filter_map(move |pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k).as_deref() == Some(key))
            .then(|| percent_decode(v).unwrap_or_else(|| v.to_owned()))
    })
}

/// The name/value pairs of an HTML form body (or of a query read the same way), where `+`
/// is a space; pairs with broken escapes are dropped.
pub(crate) fn form_pairs(text: &str) -> impl Iterator<Item = (String, String)> + '_ {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((
                decode_component(name, true)?,
                decode_component(value, true)?,
            ))
        })
}

/// The first value of `key` in a query string.
pub fn query_param(query: &str, key: &str) -> Option<String> {
    query_params(query, key).next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_decoded() {
        let q = "mount=sha256%3Aabc&from=library%2Fubuntu&tag=a&tag=b&bad=%zz";
        assert_eq!(query_param(q, "mount").as_deref(), Some("sha256:abc"));
        assert_eq!(query_param(q, "from").as_deref(), Some("library/ubuntu"));
        assert_eq!(query_params(q, "tag").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(query_param(q, "bad").as_deref(), Some("%zz"));
        assert_eq!(query_param(q, "missing"), None);
        let q = "artifactType=application/vnd.example+json&b=application%2Fx%2Bjson";
        assert_eq!(
            query_param(q, "artifactType").as_deref(),
            Some("application/vnd.example+json")
        );
        assert_eq!(query_param(q, "b").as_deref(), Some("application/x+json"));
        assert_eq!(query_param("", "x"), None);
        assert_eq!(decode_component("%+f", false), None);
    }

    mod never_panic {
        use super::super::*;
        use proptest::prelude::*;

        /// Text rich in the characters the decoders treat specially.
        const QUERYISH: &str = "([a-zA-Z0-9=&+%]|%[0-9a-fA-F]{0,2}|\\PC){0,60}";

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn query_and_form_decoding_take_anything(text in QUERYISH, key in "[a-z%+]{0,4}") {
                let _ = query_params(&text, &key).count();
                let _ = query_param(&text, &key);
                for (name, value) in form_pairs(&text) {
                    prop_assert!(!name.contains('+') || text.contains("%2B") || text.contains("%2b"));
                    let _ = value;
                }
                let _ = decode_component(&text, true);
            }

            /// Every string survives escaping every byte and decoding it again.
            #[test]
            fn escapes_round_trip(text in "\\PC{0,40}") {
                let escaped: String = text.bytes().map(|b| format!("%{b:02X}")).collect();
                prop_assert_eq!(decode_component(&escaped, true), Some(text.clone()));
                prop_assert_eq!(query_param(&format!("k={escaped}"), "k"), Some(text));
            }
        }
    }
}
