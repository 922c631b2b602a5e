//! Percent-decoding (`%XX`), one rule for everyone who reads URLs: the edge
//! filter normalises request paths with it before matching routes, and
//! `cargo xtask backup` decodes the user and password of Redis and database
//! URLs. A malformed escape is kept as it is (never half-decoded), and bytes
//! that are not UTF-8 become U+FFFD.

use std::borrow::Cow;

/// `s` with its `%XX` escapes decoded; borrowed when it has none.
pub fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_decoded_and_malformed_ones_kept() {
        assert!(matches!(percent_decode("/api/activities"), Cow::Borrowed(_)));
        assert_eq!(percent_decode("p%40ss%3Aw%2Fd"), "p@ss:w/d");
        assert_eq!(percent_decode("%2e%2E"), "..");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%zz%4g"), "%zz%4g");
        // A sign is not a hex digit (u8::from_str_radix would take "+a").
        assert_eq!(percent_decode("%+a"), "%+a");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
    }
}
