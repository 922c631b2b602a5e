//! Who the client is: the one rule the edge filter and the backend both apply.
//!
//! The client is the peer address, unless the peer is a trusted proxy, in
//! which case it is the rightmost `x-forwarded-for` hop that is not itself
//! trusted. Only hops appended by trusted proxies are believed: reading from
//! the right and stopping at the first untrusted hop means a client that sends
//! its own `x-forwarded-for` only adds entries to the *left* of the one its
//! proxy appended, which are never reached; and a client that connects
//! directly is never a trusted peer, so its header is not read at all.
//!
//! Addresses are read as proxies write them (`1.2.3.4`, `1.2.3.4:5555`,
//! `[2001:db8::1]:443`, quoted), and an IPv4-mapped IPv6 address is the IPv4
//! address it carries, so one client has one address whichever way it is written.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The address used when the peer's is not known: such requests share one
/// client rather than escaping per-client limits.
pub const UNKNOWN_PEER: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`) become IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Parses a bare IP address, canonically.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>().ok().map(canonical)
}

/// A peer address as a host reports it: `ip:port`, `[v6]:port`, or a bare address.
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
/// received (each may list several comma-separated hops); `trusted` says
/// whether an address is one of the trusted proxies. When the walk meets a
/// hop it cannot parse, it stops at the last address it could vouch for.
pub fn client_ip<S: AsRef<str>>(peer: Option<IpAddr>, forwarded_for: &[S], trusted: impl Fn(IpAddr) -> bool) -> IpAddr {
    let peer = peer.map_or(UNKNOWN_PEER, canonical);
    if !trusted(peer) {
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
                if !trusted(ip) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Trusted proxies as prefix matches on the address text, enough for these tests.
    fn trusted(list: &'static [&'static str]) -> impl Fn(IpAddr) -> bool {
        move |ip: IpAddr| {
            list.iter().any(|net| match net.split_once('/') {
                Some((base, "8")) => ip.to_string().split('.').next() == base.split('.').next(),
                Some((base, _)) => ip == base.parse::<IpAddr>().unwrap(),
                None => ip == net.parse::<IpAddr>().unwrap(),
            })
        }
    }

    #[test]
    fn a_direct_client_cannot_spoof_its_address() {
        let t = trusted(&["127.0.0.1/32"]);
        assert_eq!(client_ip(Some(ip("198.51.100.7")), &["1.2.3.4"], &t), ip("198.51.100.7"));
        // No trusted proxies: the header is never read.
        assert_eq!(client_ip(Some(ip("127.0.0.1")), &["1.2.3.4"], |_| false), ip("127.0.0.1"));
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
    fn hops_with_ports_brackets_quotes_and_ipv6() {
        let t = trusted(&["::1"]);
        assert_eq!(client_ip(Some(ip("::1")), &["[2001:db8::5]:443"], &t), ip("2001:db8::5"));
        assert_eq!(client_ip(Some(ip("::1")), &["203.0.113.1:5555"], &t), ip("203.0.113.1"));
        assert_eq!(client_ip(Some(ip("::1")), &["\"[2001:db8::6]\""], &t), ip("2001:db8::6"));
        assert_eq!(client_ip(Some(ip("::1")), &[" 2001:db8::7 ,"], &t), ip("2001:db8::7"));
        assert_eq!(client_ip(Some(ip("::1")), &["::ffff:10.0.0.1"], &t), ip("10.0.0.1"));
    }

    #[test]
    fn peers_are_read_as_hosts_report_them() {
        assert_eq!(parse_peer("127.0.0.1:54321"), Some(ip("127.0.0.1")));
        assert_eq!(parse_peer("[::1]:8080"), Some(ip("::1")));
        assert_eq!(parse_peer("[::ffff:10.0.0.1]:80"), Some(ip("10.0.0.1")));
        assert_eq!(parse_peer("2001:db8::1"), Some(ip("2001:db8::1")));
        assert_eq!(parse_peer("nonsense"), None);
        assert_eq!(client_ip::<&str>(None, &[], |_| true), UNKNOWN_PEER);
        assert_eq!(parse_ip("::ffff:192.0.2.1"), Some(ip("192.0.2.1")));
    }
}
