//! Who the client is: the peer address, unless the peer is a trusted proxy, in
//! which case the rightmost `x-forwarded-for` hop that is not itself trusted.
//!
//! Only hops appended by trusted proxies are believed. Reading from the right
//! and stopping at the first untrusted hop means a client that sends its own
//! `x-forwarded-for` only adds entries to the *left* of the one its proxy
//! appended, which are never reached; and a client that connects directly
//! is never a trusted peer, so its header is not read at all. This is the
//! same rule as the backend's `ClientIp`.
//!
//! Per-IP limits key a client by its *network*, not its address
//! ([`limit_key`]): an IPv6 client is handed a whole /64 (often far more) and
//! can take a fresh address for every request, so keying by the /128 would
//! give each request a fresh bucket and in-flight count. Every major CDN
//! groups IPv6 by /64 for its limits; so does the edge, by default.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::matcher::{IpSet, canonical, parse_ip};

/// The address used when the host does not tell the peer's address: such
/// requests share one set of limits rather than escaping them.
pub const UNKNOWN_PEER: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// Reads the host's `source.address` property: `ip:port`, `[v6]:port`, or a
/// bare address.
pub fn parse_peer(address: &str) -> Option<IpAddr> {
    let address = address.trim();
    address.parse::<SocketAddr>().ok().map(|sa| canonical(sa.ip())).or_else(|| parse_ip(address))
}

/// One `x-forwarded-for` hop: an address, possibly with a port or in
/// brackets (`[2001:db8::1]:443`), possibly quoted.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim().trim_matches('"');
    if let Some(ip) = parse_ip(hop) {
        return Some(ip);
    }
    if let Ok(sa) = hop.parse::<SocketAddr>() {
        return Some(canonical(sa.ip()));
    }
    hop.strip_prefix('[').and_then(|h| h.strip_suffix(']')).and_then(parse_ip)
}

/// The client's address.
///
/// `forwarded_for` holds every `x-forwarded-for` header value in the order
/// received (each may list several comma-separated hops). When the walk meets a
/// hop it cannot parse, it stops at the last address it could vouch for.
pub fn client_ip<S: AsRef<str>>(peer: Option<IpAddr>, forwarded_for: &[S], trusted: &IpSet) -> IpAddr {
    let peer = peer.map_or(UNKNOWN_PEER, canonical);
    if trusted.is_empty() || !trusted.contains(peer) {
        return peer;
    }
    let mut client = peer;
    let hops = forwarded_for.iter().flat_map(|v| v.as_ref().split(',')).collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        if hop.trim().is_empty() {
            continue;
        }
        match parse_hop(hop) {
            Some(ip) => {
                client = ip;
                if !trusted.contains(ip) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

/// How many leading bits of an address name one client for the per-IP
/// limits (buckets and in flight). The blacklist does not use it: its
/// entries match exactly the addresses and ranges they list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientPrefixes {
    pub ipv4: u8,
    pub ipv6: u8,
}

impl Default for ClientPrefixes {
    fn default() -> Self {
        Self { ipv4: 32, ipv6: 64 }
    }
}

/// The text that names `ip`'s client in the per-IP keys when that is its
/// network (`2001:db8:1:2::/64`); `None` when the prefix is the whole
/// address, whose text ([`ip_text`]) is then the name, as before prefixes.
pub fn limit_key(ip: IpAddr, prefixes: ClientPrefixes) -> Option<String> {
    match ip {
        IpAddr::V4(v4) if prefixes.ipv4 < 32 => {
            let bits = u32::from(v4) & (u32::MAX << (32 - u32::from(prefixes.ipv4)));
            Some(format!("{}/{}", ip_text(IpAddr::V4(Ipv4Addr::from(bits))), prefixes.ipv4))
        }
        IpAddr::V6(v6) if prefixes.ipv6 < 128 => {
            let bits = u128::from(v6) & (u128::MAX << (128 - u32::from(prefixes.ipv6)));
            Some(format!("{}/{}", Ipv6Addr::from(bits), prefixes.ipv6))
        }
        _ => None,
    }
}

/// `ip` written out as `Display` does. IPv4 by hand: `Display` for an address
/// went through the formatting machinery, a visible share of a request's
/// time inside the VM, and every request needs its client's address as text.
pub fn ip_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else { return ip.to_string() };
    let mut s = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        if octet >= 100 {
            s.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            s.push(char::from(b'0' + octet / 10 % 10));
        }
        s.push(char::from(b'0' + octet % 10));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::Cidr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusted(list: &[&str]) -> IpSet {
        list.iter().map(|s| Cidr::parse(s, true).unwrap()).collect()
    }

    #[test]
    fn limit_keys_name_the_network() {
        let key = |s: &str, p| limit_key(ip(s), p);
        let p = ClientPrefixes::default();
        assert_eq!(key("198.51.100.7", p), None, "IPv4 is keyed by its address, as before");
        assert_eq!(key("2001:db8:1:2:aaaa:bbbb:cccc:dddd", p).as_deref(), Some("2001:db8:1:2::/64"));
        assert_eq!(key("2001:db8:1:2::1", p), key("2001:db8:1:2:ffff::9", p));
        assert_ne!(key("2001:db8:1:2::1", p), key("2001:db8:1:3::1", p));
        let wide = ClientPrefixes { ipv4: 24, ipv6: 48 };
        assert_eq!(key("198.51.100.7", wide).as_deref(), Some("198.51.100.0/24"));
        assert_eq!(key("2001:db8:1:2::1", wide).as_deref(), Some("2001:db8:1::/48"));
        assert_eq!(key("2001:db8::1", ClientPrefixes { ipv4: 32, ipv6: 128 }), None);
    }

    #[test]
    fn a_direct_client_cannot_spoof_its_address() {
        let t = trusted(&["127.0.0.1/32"]);
        let got = client_ip(Some(ip("198.51.100.7")), &["1.2.3.4"], &t);
        assert_eq!(got, ip("198.51.100.7"));
        // No trusted proxies configured: the header is never read.
        assert_eq!(client_ip(Some(ip("127.0.0.1")), &["1.2.3.4"], &IpSet::new()), ip("127.0.0.1"));
    }

    #[test]
    fn behind_a_trusted_proxy_the_rightmost_untrusted_hop_wins() {
        let t = trusted(&["127.0.0.1/32", "10.0.0.0/8"]);
        // The client sent "1.2.3.4" itself; its real address was appended by the proxies.
        let got = client_ip(Some(ip("127.0.0.1")), &["1.2.3.4, 198.51.100.7", "10.0.0.2"], &t);
        assert_eq!(got, ip("198.51.100.7"));
    }

    #[test]
    fn unparseable_or_exhausted_hops_stop_at_what_is_known() {
        let t = trusted(&["127.0.0.1/32", "10.0.0.0/8"]);
        assert_eq!(client_ip(Some(ip("127.0.0.1")), &["garbage, 10.0.0.3"], &t), ip("10.0.0.3"));
        assert_eq!(client_ip(Some(ip("127.0.0.1")), &["10.0.0.9"], &t), ip("10.0.0.9"));
        assert_eq!(client_ip(Some(ip("127.0.0.1")), &[] as &[&str], &t), ip("127.0.0.1"));
        assert_eq!(client_ip(Some(ip("127.0.0.1")), &["unknown"], &t), ip("127.0.0.1"));
    }

    #[test]
    fn hops_with_ports_brackets_and_ipv6() {
        let t = trusted(&["::1/128"]);
        assert_eq!(client_ip(Some(ip("::1")), &["[2001:db8::5]:443"], &t), ip("2001:db8::5"));
        assert_eq!(client_ip(Some(ip("::1")), &["203.0.113.1:5555"], &t), ip("203.0.113.1"));
        assert_eq!(client_ip(Some(ip("::1")), &["\"[2001:db8::6]\""], &t), ip("2001:db8::6"));
        assert_eq!(client_ip(Some(ip("::1")), &[" 2001:db8::7 ,"], &t), ip("2001:db8::7"));
    }

    #[test]
    fn peers_are_read_from_host_properties() {
        assert_eq!(parse_peer("127.0.0.1:54321"), Some(ip("127.0.0.1")));
        assert_eq!(parse_peer("[::1]:8080"), Some(ip("::1")));
        assert_eq!(parse_peer("[::ffff:10.0.0.1]:80"), Some(ip("10.0.0.1")));
        assert_eq!(parse_peer("2001:db8::1"), Some(ip("2001:db8::1")));
        assert_eq!(parse_peer("nonsense"), None);
        assert_eq!(client_ip::<&str>(None, &[], &IpSet::new()), UNKNOWN_PEER);
    }

    #[test]
    fn ip_text_matches_display() {
        for text in ["0.0.0.0", "1.2.3.4", "10.20.30.40", "100.200.255.9", "255.255.255.255", "::1", "2001:db8::5"] {
            let addr: IpAddr = text.parse().unwrap();
            assert_eq!(ip_text(addr), addr.to_string());
        }
    }
}
