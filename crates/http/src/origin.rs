//! Where a request comes from: the client's address and the scheme and host it used, worked
//! out once per request by one middleware, believing `X-Forwarded-*` and `Forwarded` headers
//! only from the proxies in `trusted_proxies`.

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Extensions, HeaderMap};
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Whom to believe about the client, and how the server itself is reached.
#[derive(Debug, Clone, Default)]
pub struct Forwarding {
    /// Proxies whose forwarding headers are believed; everyone else's are ignored.
    pub trusted_proxies: Vec<IpNet>,
    /// Whether the server's own listener speaks HTTPS (the scheme when no proxy says one).
    pub tls: bool,
}

/// The request as its client made it. Every reader of the client's address (sign-in
/// throttle, sign-up limits, audit log, `metrics_allow`, webhooks' `ChangedBy`) reads this.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestOrigin {
    /// None: the server does not know (no connection information).
    pub client: Option<IpAddr>,
    /// Whether the client used HTTPS.
    pub https: bool,
    /// `host[:port]` the client asked for, when it gave a usable one.
    pub host: Option<String>,
}

impl RequestOrigin {
    /// The origin the middleware set; a request that did not pass through it (none in the
    /// router) counts as an unknown client over plain HTTP.
    pub(crate) fn of(extensions: &Extensions) -> &RequestOrigin {
        static UNKNOWN: RequestOrigin = RequestOrigin {
            client: None,
            https: false,
            host: None,
        };
        extensions.get::<RequestOrigin>().unwrap_or(&UNKNOWN)
    }
}

/// The middleware: sets the request's [`RequestOrigin`] from its connection and headers.
pub(crate) async fn attach(
    State(forwarding): State<Arc<Forwarding>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip().to_canonical());
    // HTTP/2 carries the host in the `:authority` pseudo-header, which hyper puts in the URI.
    let authority = request.uri().authority().map(|a| a.as_str().to_owned());
    let origin = forwarding.resolve(peer, request.headers(), authority.as_deref());
    request.extensions_mut().insert(origin);
    next.run(request).await
}

impl Forwarding {
    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// The origin of a request from TCP peer `peer`.
    pub fn resolve(
        &self,
        peer: Option<IpAddr>,
        headers: &HeaderMap,
        authority: Option<&str>,
    ) -> RequestOrigin {
        let direct_host = header_text(headers, header::HOST.as_str())
            .or(authority)
            .and_then(usable_host);
        let direct = RequestOrigin {
            client: peer,
            https: self.tls,
            host: direct_host,
        };
        let Some(peer) = peer.filter(|ip| self.trusts(*ip)) else {
            return direct;
        };
        let forwarded = match joined(headers, "x-forwarded-for") {
            Some(list) => self.read_x_forwarded(peer, &list, headers),
            None => match joined(headers, header::FORWARDED.as_str()) {
                Some(list) => self.read_forwarded(peer, &list),
                None => Hop::default(),
            },
        };
        RequestOrigin {
            client: Some(forwarded.client.unwrap_or(peer)),
            https: match forwarded.proto.as_deref() {
                Some(proto) => proto.eq_ignore_ascii_case("https"),
                None => self.tls,
            },
            host: forwarded.host.and_then(|h| usable_host(&h)).or(direct.host),
        }
    }

    /// `X-Forwarded-For` with `X-Forwarded-Proto` and `X-Forwarded-Host`.
    fn read_x_forwarded(&self, peer: IpAddr, list: &str, headers: &HeaderMap) -> Hop {
        let chain: Vec<Option<IpAddr>> = list.split(',').map(parse_node).collect();
        // The outermost proxy's view of the request: proxies overwrite or pass these on, and
        // the first value is what the client-facing one saw.
        let first = |name: &str| {
            joined(headers, name)
                .and_then(|v| v.split(',').next().map(|s| s.trim().to_owned()))
                .filter(|v| !v.is_empty())
        };
        Hop {
            client: Some(self.client_in(peer, &chain).1),
            proto: first("x-forwarded-proto"),
            host: first("x-forwarded-host"),
        }
    }

    /// RFC 7239 `Forwarded`: one element per hop, each with `for`, `proto` and `host`.
    fn read_forwarded(&self, peer: IpAddr, list: &str) -> Hop {
        let elements: Vec<Element> = split_outside_quotes(list, ',')
            .into_iter()
            .map(|e| parse_element(&e))
            .collect();
        let chain: Vec<Option<IpAddr>> = elements.iter().map(|e| e.client).collect();
        let (index, client) = self.client_in(peer, &chain);
        // The proxy that added the client's element saw the client's own scheme and host.
        let element = index.and_then(|i| elements.get(i));
        Hop {
            client: Some(client),
            proto: element.and_then(|e| e.proto.clone()),
            host: element.and_then(|e| e.host.clone()),
        }
    }

    /// The client in a forwarding chain (oldest hop first): the right-most address that is
    /// not itself a trusted proxy, with its index. An entry that is not an address stops the
    /// walk, and the trusted hop that passed it on counts as the client.
    fn client_in(&self, peer: IpAddr, chain: &[Option<IpAddr>]) -> (Option<usize>, IpAddr) {
        let mut nearest = peer;
        for (index, node) in chain.iter().enumerate().rev() {
            match node {
                Some(ip) if self.trusts(*ip) => nearest = *ip,
                Some(ip) => return (Some(index), *ip),
                None => return (None, nearest),
            }
        }
        // Every hop was a trusted proxy: the oldest is as far back as anyone can tell.
        let oldest = chain.iter().position(Option::is_some);
        (oldest, nearest)
    }
}

/// What the forwarding headers say (None: they do not say).
#[derive(Debug, Default)]
struct Hop {
    client: Option<IpAddr>,
    proto: Option<String>,
    host: Option<String>,
}

/// One `Forwarded` element.
#[derive(Debug, Default)]
struct Element {
    client: Option<IpAddr>,
    proto: Option<String>,
    host: Option<String>,
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Every value of a header that may be repeated, as one comma-separated list.
fn joined(headers: &HeaderMap, name: &str) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

/// A host name or address with an optional port, and nothing else: it ends up in URLs
/// that clients are sent to.
fn usable_host(raw: &str) -> Option<String> {
    let host = raw.trim();
    let usable = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    usable.then(|| host.to_owned())
}

/// A node of a forwarding chain: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]:4711`, optionally quoted. `unknown` and obfuscated names are not addresses.
fn parse_node(raw: &str) -> Option<IpAddr> {
    let node = raw.trim().trim_matches('"');
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (inside, _port) = rest.split_once(']')?;
        return inside.parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
    }
    node.parse::<SocketAddr>()
        .ok()
        .map(|s| s.ip().to_canonical())
}

/// Splits on `separator` except inside quoted strings (which may hold it, and `\"`).
fn split_outside_quotes(raw: &str, separator: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in raw.chars() {
        match c {
            _ if escaped => {
                escaped = false;
                current.push(c);
            }
            '\\' if quoted => {
                escaped = true;
                current.push(c);
            }
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            _ if c == separator && !quoted => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    parts
}

/// `for=192.0.2.60;proto=https;host=example.com` (names case-insensitive, values may be
/// quoted).
fn parse_element(raw: &str) -> Element {
    let mut element = Element::default();
    for pair in split_outside_quotes(raw, ';') {
        let Some((name, value)) = pair.split_once('=') else {
            continue;
        };
        let value = unquote(value.trim());
        match name.trim().to_ascii_lowercase().as_str() {
            "for" => element.client = parse_node(&value),
            "proto" => element.proto = Some(value),
            "host" => element.host = Some(value),
            _ => {}
        }
    }
    element
}

fn unquote(value: &str) -> String {
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn forwarding(trusted: &[&str]) -> Forwarding {
        Forwarding {
            trusted_proxies: trusted.iter().map(|n| n.parse().unwrap()).collect(),
            tls: false,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn ip(raw: &str) -> IpAddr {
        raw.parse().unwrap()
    }

    fn client(rules: &Forwarding, peer: &str, pairs: &[(&str, &str)]) -> Option<IpAddr> {
        rules.resolve(Some(ip(peer)), &headers(pairs), None).client
    }

    #[test]
    fn untrusted_peers_change_nothing_by_forwarding_headers() {
        let rules = forwarding(&["10.0.0.0/8"]);
        let spoofed = [
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "for=203.0.113.9;proto=https;host=evil.example"),
            ("host", "registry.example:5000"),
        ];
        let origin = rules.resolve(Some(ip("198.51.100.7")), &headers(&spoofed), None);
        assert_eq!(
            origin,
            RequestOrigin {
                client: Some(ip("198.51.100.7")),
                https: false,
                host: Some("registry.example:5000".to_owned()),
            }
        );
    }

    #[test]
    fn the_right_most_address_that_is_not_a_trusted_proxy_is_the_client() {
        let rules = forwarding(&["10.0.0.0/8", "fd00::/8"]);
        // A client-supplied entry on the left is what a spoofer controls: it is skipped.
        let chain = [("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.0.0.2")];
        assert_eq!(client(&rules, "10.0.0.1", &chain), Some(ip("203.0.113.9")));
        // Repeated headers count as one list, in order.
        let split = [
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "203.0.113.9"),
        ];
        assert_eq!(client(&rules, "10.0.0.1", &split), Some(ip("203.0.113.9")));
        // Ports and IPv6 brackets are tolerated; v4-mapped addresses are plain v4.
        let ported = [("x-forwarded-for", "[2001:db8::7]:4711, 10.0.0.3:80")];
        assert_eq!(client(&rules, "fd00::1", &ported), Some(ip("2001:db8::7")));
        let mapped = [("x-forwarded-for", "::ffff:203.0.113.5")];
        assert_eq!(client(&rules, "10.0.0.1", &mapped), Some(ip("203.0.113.5")));
        // Only trusted proxies: the oldest hop.
        let internal = [("x-forwarded-for", "10.1.1.1, 10.2.2.2")];
        assert_eq!(client(&rules, "10.0.0.1", &internal), Some(ip("10.1.1.1")));
        // Garbage ends the walk at the trusted hop that passed it on.
        let garbage = [("x-forwarded-for", "203.0.113.9, not-an-ip, 10.0.0.2")];
        assert_eq!(client(&rules, "10.0.0.1", &garbage), Some(ip("10.0.0.2")));
        // No header at all: the proxy itself.
        assert_eq!(client(&rules, "10.0.0.1", &[]), Some(ip("10.0.0.1")));
    }

    #[test]
    fn forwarded_elements_give_address_scheme_and_host_of_the_same_hop() {
        let rules = forwarding(&["10.0.0.0/8"]);
        let list = [(
            "forwarded",
            "for=1.2.3.4;proto=http, For=\"[2001:db8:cafe::17]:4711\";proto=https;host=\"hub.example\", for=10.0.0.5;proto=http",
        )];
        let origin = rules.resolve(Some(ip("10.0.0.1")), &headers(&list), None);
        assert_eq!(
            origin,
            RequestOrigin {
                client: Some(ip("2001:db8:cafe::17")),
                https: true,
                host: Some("hub.example".to_owned()),
            }
        );
        // `unknown` (or an obfuscated name) is not an address: the proxy is the client.
        let unknown = [("forwarded", "for=unknown;proto=https")];
        assert_eq!(client(&rules, "10.0.0.1", &unknown), Some(ip("10.0.0.1")));
        // A quoted comma does not split elements.
        let quoted = [("forwarded", "for=203.0.113.1;host=\"a,b\"")];
        assert_eq!(client(&rules, "10.0.0.1", &quoted), Some(ip("203.0.113.1")));
    }

    #[test]
    fn x_forwarded_for_wins_over_forwarded() {
        let rules = forwarding(&["10.0.0.0/8"]);
        let both = [
            ("forwarded", "for=1.2.3.4"),
            ("x-forwarded-for", "203.0.113.9"),
        ];
        assert_eq!(client(&rules, "10.0.0.1", &both), Some(ip("203.0.113.9")));
    }

    #[test]
    fn trusted_proxies_set_scheme_and_host_unless_unusable() {
        let rules = forwarding(&["127.0.0.1/32"]);
        let forwarded = [
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "HTTPS"),
            ("x-forwarded-host", "hub.example"),
            ("host", "127.0.0.1:5000"),
        ];
        let origin = rules.resolve(Some(ip("127.0.0.1")), &headers(&forwarded), None);
        assert!(origin.https);
        assert_eq!(origin.host.as_deref(), Some("hub.example"));
        // A host that could break out of a URL or header is not taken.
        let bad_host = [
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-host", "evil.example/\"x"),
            ("host", "127.0.0.1:5000"),
        ];
        let origin = rules.resolve(Some(ip("127.0.0.1")), &headers(&bad_host), None);
        assert_eq!(origin.host.as_deref(), Some("127.0.0.1:5000"));
        assert!(!origin.https);
    }

    #[test]
    fn the_listener_decides_the_scheme_and_http2_authority_the_host() {
        let rules = Forwarding {
            trusted_proxies: Vec::new(),
            tls: true,
        };
        let origin = rules.resolve(Some(ip("192.0.2.1")), &HeaderMap::new(), Some("hub:443"));
        assert!(origin.https);
        assert_eq!(origin.host.as_deref(), Some("hub:443"));
    }

    mod never_panic {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Any forwarding headers from a trusted proxy give some origin, never a panic.
            #[test]
            fn forwarding_headers_take_anything(xff in "\\PC{0,80}", fwd in "\\PC{0,80}") {
                let rules = forwarding(&["10.0.0.0/8"]);
                let mut map = HeaderMap::new();
                if let Ok(v) = HeaderValue::from_str(&xff) { map.insert("x-forwarded-for", v); }
                if let Ok(v) = HeaderValue::from_str(&fwd) { map.insert("forwarded", v); }
                let origin = rules.resolve(Some(ip("10.0.0.1")), &map, None);
                prop_assert!(origin.client.is_some());
                map.remove("x-forwarded-for");
                let _ = rules.resolve(Some(ip("10.0.0.1")), &map, None);
            }
        }
    }
}
