//! Which receivers Berth may call: web URLs only, and never loopback, private, link-local or
//! cloud-metadata addresses (unless `webhook_allow_private` is set), so a webhook cannot be
//! used to reach the registry's own network.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Longest target URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// Why an address may not be called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressRefusal {
    Loopback,
    Private,
    LinkLocal,
    Unspecified,
    Multicast,
    Reserved,
}

impl std::fmt::Display for AddressRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AddressRefusal::Loopback => "a loopback address",
            AddressRefusal::Private => "a private network address",
            AddressRefusal::LinkLocal => "a link-local or cloud metadata address",
            AddressRefusal::Unspecified => "an unspecified address",
            AddressRefusal::Multicast => "a multicast or broadcast address",
            AddressRefusal::Reserved => "a reserved address",
        })
    }
}

/// Whether Berth may call `ip`.
pub fn check_address(ip: IpAddr) -> Result<(), AddressRefusal> {
    match ip {
        IpAddr::V4(v4) => check_v4(v4),
        IpAddr::V6(v6) => check_v6(v6),
    }
}

fn check_v4(ip: Ipv4Addr) -> Result<(), AddressRefusal> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Err(AddressRefusal::Loopback)
    } else if ip.is_unspecified() || a == 0 {
        Err(AddressRefusal::Unspecified)
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        // RFC 1918, and the carrier-grade NAT range (RFC 6598).
        Err(AddressRefusal::Private)
    } else if ip.is_link_local() {
        // 169.254.0.0/16, where clouds serve instance metadata (169.254.169.254).
        Err(AddressRefusal::LinkLocal)
    } else if ip.is_multicast() || ip.is_broadcast() {
        Err(AddressRefusal::Multicast)
    } else if a >= 240
        || (a == 198 && (18..20).contains(&b))
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
    {
        // Reserved (240/4), benchmarking (198.18/15), IETF protocol assignments (192.0.0/24).
        Err(AddressRefusal::Reserved)
    } else {
        Ok(())
    }
}

fn check_v6(ip: Ipv6Addr) -> Result<(), AddressRefusal> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return check_v4(v4);
    }
    let segments = ip.segments();
    // NAT64 (64:ff9b::/96) reaches the IPv4 address in its last 32 bits.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., hi, lo] = segments;
        return check_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    }
    if ip.is_loopback() {
        Err(AddressRefusal::Loopback)
    } else if ip.is_unspecified() {
        Err(AddressRefusal::Unspecified)
    } else if segments[0] & 0xfe00 == 0xfc00 {
        // Unique local addresses (fc00::/7); AWS's metadata service is fd00:ec2::254.
        Err(AddressRefusal::Private)
    } else if segments[0] & 0xffc0 == 0xfe80 {
        Err(AddressRefusal::LinkLocal)
    } else if ip.is_multicast() {
        Err(AddressRefusal::Multicast)
    } else if segments[0] == 0 {
        // The rest of ::/8: IPv4-compatible and other deprecated forms.
        Err(AddressRefusal::Reserved)
    } else {
        Ok(())
    }
}

/// A target URL that may be stored: `http` or `https`, with a host, without credentials
/// (those belong in the custom header, which is stored encrypted), at most 2 KiB. An address
/// written as an IP is checked here; names are checked when resolved.
pub fn check_url(raw: &str, allow_private: bool) -> Result<url::Url, String> {
    if raw.len() > MAX_URL_LEN {
        return Err(format!("the URL is longer than {MAX_URL_LEN} characters"));
    }
    let url = url::Url::parse(raw).map_err(|e| format!("{raw:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "webhooks are sent over http or https, not {:?}",
            url.scheme()
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "the URL carries credentials; give them as a custom header, which is stored encrypted"
                .to_owned(),
        );
    }
    let ip = match url.host() {
        None => return Err(format!("{raw:?} names no host")),
        Some(url::Host::Domain(_)) => None,
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
    };
    if let (Some(ip), false) = (ip, allow_private) {
        check_address(ip).map_err(|why| format!("{ip} is {why}; Berth does not call it"))?;
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(ip: &str) -> Option<AddressRefusal> {
        check_address(ip.parse().unwrap()).err()
    }

    #[test]
    fn internal_addresses_are_refused() {
        for (ip, why) in [
            ("127.0.0.1", AddressRefusal::Loopback),
            ("127.8.9.10", AddressRefusal::Loopback),
            ("::1", AddressRefusal::Loopback),
            ("10.1.2.3", AddressRefusal::Private),
            ("172.16.0.1", AddressRefusal::Private),
            ("172.31.255.255", AddressRefusal::Private),
            ("192.168.1.1", AddressRefusal::Private),
            ("100.64.0.1", AddressRefusal::Private),
            ("169.254.169.254", AddressRefusal::LinkLocal),
            ("0.0.0.0", AddressRefusal::Unspecified),
            ("0.1.2.3", AddressRefusal::Unspecified),
            ("::", AddressRefusal::Unspecified),
            ("fd00:ec2::254", AddressRefusal::Private),
            ("fe80::1", AddressRefusal::LinkLocal),
            ("ff02::1", AddressRefusal::Multicast),
            ("224.0.0.1", AddressRefusal::Multicast),
            ("255.255.255.255", AddressRefusal::Multicast),
            ("240.0.0.1", AddressRefusal::Reserved),
            ("::ffff:127.0.0.1", AddressRefusal::Loopback),
            ("::ffff:169.254.169.254", AddressRefusal::LinkLocal),
            ("64:ff9b::a00:1", AddressRefusal::Private),
        ] {
            assert_eq!(refused(ip), Some(why), "{ip}");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for ip in [
            "93.184.215.14",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
        ] {
            assert_eq!(refused(ip), None, "{ip}");
        }
    }

    #[test]
    fn only_plain_web_urls_are_stored() {
        assert!(check_url("https://hooks.example.com/berth", false).is_ok());
        assert!(check_url("http://93.184.215.14:8080/x", false).is_ok());
        for (url, says) in [
            ("ftp://example.com/", "not \"ftp\""),
            ("not a url", "is not a URL"),
            ("https://user:pw@example.com/", "carries credentials"),
            ("http://127.0.0.1:9000/hook", "loopback"),
            ("http://[::1]/hook", "loopback"),
            ("http://169.254.169.254/latest/meta-data", "metadata"),
            ("http://10.0.0.8/", "private"),
        ] {
            let err = check_url(url, false).unwrap_err();
            assert!(err.contains(says), "{url}: {err}");
        }
        assert!(check_url("http://127.0.0.1:9000/hook", true).is_ok());
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(check_url(&long, false).unwrap_err().contains("longer"));
    }
}
