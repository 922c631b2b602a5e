//! Who the client is, and which per-IP limits it shares.
//!
//! The client's address follows the rule the backend applies too, which
//! lives once in `seckill_api::client_addr` (the peer, or behind trusted
//! proxies the rightmost untrusted `x-forwarded-for` hop).
//!
//! Per-IP limits key a client by its *network*, not its address
//! ([`limit_key`]): an IPv6 client is handed a whole /64 (often far more) and
//! can take a fresh address for every request, so keying by the /128 would
//! give each request a fresh bucket and in-flight count. Every major CDN
//! groups IPv6 by /64 for its limits; so does the edge, by default.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::matcher::IpSet;

/// The client's address: `seckill_api::client_addr::client_ip` with the
/// filter's trusted proxies.
pub fn client_ip<S: AsRef<str>>(peer: Option<IpAddr>, forwarded_for: &[S], trusted: &IpSet) -> IpAddr {
    seckill_api::client_addr::client_ip(peer, forwarded_for, |ip| trusted.contains(ip))
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
    let mut s = String::with_capacity(15);
    ip_text_into(&mut s, ip);
    s
}

/// [`ip_text`] appended to `s` (a reused buffer: no allocation for IPv4).
pub fn ip_text_into(s: &mut String, ip: IpAddr) {
    use std::fmt::Write;
    let IpAddr::V4(v4) = ip else {
        let _ = write!(s, "{ip}");
        return;
    };
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
    fn the_filters_trusted_proxies_decide_whose_header_is_read() {
        let t = trusted(&["127.0.0.1/32", "10.0.0.0/8"]);
        let got = client_ip(Some(ip("127.0.0.1")), &["1.2.3.4, 198.51.100.7", "10.0.0.2"], &t);
        assert_eq!(got, ip("198.51.100.7"));
        assert_eq!(client_ip(Some(ip("198.51.100.7")), &["1.2.3.4"], &t), ip("198.51.100.7"));
        assert_eq!(client_ip(Some(ip("127.0.0.1")), &["1.2.3.4"], &IpSet::new()), ip("127.0.0.1"));
    }

    #[test]
    fn ip_text_matches_display() {
        for text in ["0.0.0.0", "1.2.3.4", "10.20.30.40", "100.200.255.9", "255.255.255.255", "::1", "2001:db8::5"] {
            let addr: IpAddr = text.parse().unwrap();
            assert_eq!(ip_text(addr), addr.to_string());
        }
    }
}
