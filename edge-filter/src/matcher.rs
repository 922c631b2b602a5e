//! Matching: IP addresses against CIDR ranges (IPv4 and IPv6), and request
//! paths against route patterns whose `*` stands for one segment.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use seckill_api::percent::percent_decode;

/// Addresses are read canonically (an IPv4-mapped IPv6 address is the IPv4
/// address it carries), so one client has one key whichever way it is written.
pub use seckill_api::client_addr::{canonical, parse_ip};

/// An IP range: an address and a prefix length; a bare address is a /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `203.0.113.7`, `10.0.0.0/8`, `2001:db8::/32`, `::1`.
    ///
    /// With `strict`, a range with bits set past its prefix (`10.0.0.1/8`) is
    /// refused, since it usually means a typo; otherwise those bits are dropped.
    pub fn parse(s: &str, strict: bool) -> Result<Self, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => {
                let p: u8 = p.parse().map_err(|_| format!("`{s}`: the prefix length after `/` must be a number"))?;
                (a, Some(p))
            }
            None => (s, None),
        };
        let ip: IpAddr = addr.parse().map_err(|_| format!("`{s}` is not an IP address or CIDR range"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(format!("`{s}`: the prefix length must be at most {max}"));
        }
        // An IPv4-mapped range (::ffff:10.0.0.0/104) is the IPv4 range it maps.
        let (ip, prefix) = match ip {
            IpAddr::V6(v6) if prefix >= 96 && v6.to_ipv4_mapped().is_some() => {
                (IpAddr::V4(v6.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED)), prefix - 96)
            }
            other => (other, prefix),
        };
        let network = mask(ip, prefix);
        if strict && network != ip {
            return Err(format!("`{s}` has bits set past its /{prefix} prefix; did you mean `{network}/{prefix}`?"));
        }
        Ok(Self { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_ipv4() == self.network.is_ipv4() && mask(ip, self.prefix) == self.network
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn network(&self) -> IpAddr {
        self.network
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(mask_v4(u32::from(v4), prefix))),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(mask_v6(u128::from(v6), prefix))),
    }
}

fn mask_v4(bits: u32, prefix: u8) -> u32 {
    if prefix == 0 { 0 } else { bits & (u32::MAX << (32 - u32::from(prefix.min(32)))) }
}

fn mask_v6(bits: u128, prefix: u8) -> u128 {
    if prefix == 0 { 0 } else { bits & (u128::MAX << (128 - u32::from(prefix.min(128)))) }
}

/// A set of addresses and ranges with a lookup cost of one hash probe per
/// distinct prefix length, not per entry: blacklists can be long.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpSet {
    v4: BTreeMap<u8, HashSet<u32>>,
    v6: BTreeMap<u8, HashSet<u128>>,
    len: usize,
}

impl IpSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, cidr: Cidr) {
        let inserted = match cidr.network {
            IpAddr::V4(v4) => self.v4.entry(cidr.prefix).or_default().insert(u32::from(v4)),
            IpAddr::V6(v6) => self.v6.entry(cidr.prefix).or_default().insert(u128::from(v6)),
        };
        self.len += usize::from(inserted);
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match canonical(ip) {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4);
                self.v4.iter().any(|(p, set)| set.contains(&mask_v4(bits, *p)))
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                self.v6.iter().any(|(p, set)| set.contains(&mask_v6(bits, *p)))
            }
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl FromIterator<Cidr> for IpSet {
    fn from_iter<I: IntoIterator<Item = Cidr>>(iter: I) -> Self {
        let mut set = Self::new();
        for c in iter {
            set.insert(c);
        }
        set
    }
}

/// A route pattern: `/api/activities/*/token`, where `*` matches exactly one
/// segment and every other segment matches itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    segments: Vec<Option<String>>,
}

impl PathPattern {
    /// Refuses patterns that do not start with `/`, contain `//`, `?`, `#`, or
    /// a `*` that is not a whole segment.
    pub fn parse(pattern: &str) -> Result<Self, String> {
        if !pattern.starts_with('/') {
            return Err(format!("`{pattern}` must start with `/`"));
        }
        if pattern.len() > 512 {
            return Err("must be at most 512 characters".into());
        }
        if pattern.contains("//") {
            return Err(format!("`{pattern}` must not contain an empty segment (`//`)"));
        }
        if pattern.contains(['?', '#']) || pattern.chars().any(|c| c.is_control() || c == ' ') {
            return Err(format!("`{pattern}` must be a bare path (no query, fragment, spaces or control characters)"));
        }
        let mut segments = Vec::new();
        for seg in pattern[1..].split('/') {
            if seg.is_empty() {
                // Only a trailing slash gets here; it means nothing more.
                continue;
            }
            if seg == "*" {
                segments.push(None);
            } else if seg.contains('*') {
                return Err(format!("`{pattern}`: `*` must be a whole segment (`/*/`), not part of `{seg}`"));
            } else {
                segments.push(Some(percent_decode(seg).into_owned()));
            }
        }
        Ok(Self { segments })
    }

    /// Whether `path` (as split by [`path_segments`]) matches.
    pub fn matches<S: AsRef<str>>(&self, path: &[S]) -> bool {
        path.len() == self.segments.len()
            && self.segments.iter().zip(path).all(|(p, s)| p.as_ref().is_none_or(|lit| lit == s.as_ref()))
    }
}

/// Splits a request's `:path` into decoded segments the way a lenient router
/// might read it: the query and fragment dropped, each segment
/// percent-decoded, empty and `.` segments dropped, `..` taken back.
///
/// Normalising can only make more requests match a limit, never fewer, so a
/// client cannot slip past a route limit by writing `/api/activities/7/%74oken`
/// or `/api//activities/7/./token`.
pub fn path_segments(raw: &str) -> Vec<Cow<'_, str>> {
    let path = raw.split(['?', '#']).next().unwrap_or("");
    let mut out: Vec<Cow<'_, str>> = Vec::with_capacity(8);
    for seg in path.split('/') {
        let seg = percent_decode(seg);
        match seg.as_ref() {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            _ => out.push(seg),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_ranges() {
        let c = Cidr::parse("10.0.0.0/8", true).unwrap();
        assert!(c.contains(ip("10.255.1.2")));
        assert!(!c.contains(ip("11.0.0.0")));
        assert!(Cidr::parse("0.0.0.0/0", true).unwrap().contains(ip("203.0.113.9")));
        let one = Cidr::parse("203.0.113.7", true).unwrap();
        assert_eq!(one.prefix(), 32);
        assert!(one.contains(ip("203.0.113.7")));
        assert!(!one.contains(ip("203.0.113.8")));
        assert!(!c.contains(ip("::a00:1")), "an IPv6 address is not in an IPv4 range");
    }

    #[test]
    fn ipv6_ranges_and_mapped_addresses() {
        let c = Cidr::parse("2001:db8::/32", true).unwrap();
        assert!(c.contains(ip("2001:db8:ffff::1")));
        assert!(!c.contains(ip("2001:db9::1")));
        assert!(Cidr::parse("::1", true).unwrap().contains(ip("::1")));
        // A client written as ::ffff:10.1.2.3 is the IPv4 client 10.1.2.3.
        assert!(Cidr::parse("10.0.0.0/8", true).unwrap().contains(ip("::ffff:10.1.2.3")));
        let mapped = Cidr::parse("::ffff:10.0.0.0/104", true).unwrap();
        assert_eq!(mapped.to_string(), "10.0.0.0/8");
        assert_eq!(parse_ip("::ffff:192.0.2.1"), Some(ip("192.0.2.1")));
        assert_eq!(Cidr::parse("2001:db8::/0", false).unwrap().network(), ip("::"));
    }

    #[test]
    fn bad_ranges_are_named() {
        assert!(Cidr::parse("10.0.0.1/8", true).unwrap_err().contains("did you mean `10.0.0.0/8`"));
        assert_eq!(Cidr::parse("10.0.0.1/8", false).unwrap().to_string(), "10.0.0.0/8");
        assert!(Cidr::parse("10.0.0.0/33", true).unwrap_err().contains("at most 32"));
        assert!(Cidr::parse("::/129", true).unwrap_err().contains("at most 128"));
        assert!(Cidr::parse("10.0.0.0/x", true).unwrap_err().contains("prefix length"));
        assert!(Cidr::parse("example.com", true).unwrap_err().contains("not an IP"));
        assert!(Cidr::parse("", true).is_err());
    }

    #[test]
    fn ip_sets_mix_addresses_and_ranges() {
        let set: IpSet = ["203.0.113.7", "10.0.0.0/8", "2001:db8::/32", "10.0.0.0/8", "192.0.2.0/24"]
            .iter()
            .map(|s| Cidr::parse(s, true).unwrap())
            .collect();
        assert_eq!(set.len(), 4);
        for yes in ["203.0.113.7", "10.9.9.9", "2001:db8::42", "::ffff:10.0.0.1", "192.0.2.255"] {
            assert!(set.contains(ip(yes)), "{yes}");
        }
        for no in ["203.0.113.8", "11.0.0.1", "2001:db9::1", "::1", "192.0.3.0"] {
            assert!(!set.contains(ip(no)), "{no}");
        }
        assert!(!IpSet::new().contains(ip("1.2.3.4")));
    }

    #[test]
    fn patterns_match_one_segment_per_star() {
        let p = PathPattern::parse("/api/activities/*/token").unwrap();
        assert!(p.matches(&path_segments("/api/activities/7/token")));
        assert!(p.matches(&path_segments("/api/activities/7/token?x=1")));
        assert!(!p.matches(&path_segments("/api/activities/7/8/token")));
        assert!(!p.matches(&path_segments("/api/activities/token")));
        assert!(!p.matches(&path_segments("/api/activities/7/purchase")));
        assert!(PathPattern::parse("/").unwrap().matches(&path_segments("/")));
        assert!(PathPattern::parse("/api/*").unwrap().matches(&path_segments("/api/x")));
    }

    #[test]
    fn encoded_and_dotted_paths_still_match() {
        let p = PathPattern::parse("/api/activities/*/token").unwrap();
        for sneaky in [
            "/api/activities/7/%74oken",
            "/api/activities/7/%74%6F%6b%65%6e",
            "//api//activities/7/token",
            "/api/activities/7/./token",
            "/api/x/../activities/7/token",
            "/api/activities/7/token/",
        ] {
            assert!(p.matches(&path_segments(sneaky)), "{sneaky}");
        }
        assert_eq!(path_segments("/a/%2Fb"), ["a", "/b"]);
        assert_eq!(path_segments("/a/%zz/%4"), ["a", "%zz", "%4"]);
        assert_eq!(path_segments("/../.."), Vec::<String>::new());
    }

    #[test]
    fn bad_patterns_are_named() {
        assert!(PathPattern::parse("api/x").unwrap_err().contains("start with `/`"));
        assert!(PathPattern::parse("/api//x").unwrap_err().contains("empty segment"));
        assert!(PathPattern::parse("/api/x*").unwrap_err().contains("whole segment"));
        assert!(PathPattern::parse("/api/x?y").unwrap_err().contains("bare path"));
        assert!(PathPattern::parse(&format!("/{}", "a".repeat(600))).is_err());
    }
}
