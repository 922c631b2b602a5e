//! The proxy-wasm header-map wire format, read in place: the host hands the
//! request headers over as one buffer, and a request is judged on slices of
//! it instead of the SDK's two allocations per header (allocation was the
//! filter's largest own cost per request inside the VM).
//!
//! Layout (little-endian `u32`s): the number of pairs, then each pair's name
//! and value lengths, then each name and value, each followed by a NUL.

/// The pairs of a serialised header map, borrowed from `buf`; `None` if the
/// buffer is not one (a header name that is not UTF-8 included).
pub fn header_pairs(buf: &[u8]) -> Option<Vec<(&str, &[u8])>> {
    let word = |at: usize| -> Option<usize> {
        let bytes = buf.get(at..at + 4)?;
        Some(u32::from_le_bytes(bytes.try_into().ok()?) as usize)
    };
    if buf.is_empty() {
        return Some(Vec::new());
    }
    let count = word(0)?;
    // Each pair takes 8 bytes of lengths and 2 NULs at least.
    if count > buf.len() / 10 {
        return None;
    }
    let mut pairs = Vec::with_capacity(count);
    let mut data = 4 + 8 * count;
    for i in 0..count {
        let (name_len, value_len) = (word(4 + 8 * i)?, word(8 + 8 * i)?);
        let name = buf.get(data..data + name_len)?;
        let value = buf.get(data + name_len + 1..data + name_len + 1 + value_len)?;
        pairs.push((std::str::from_utf8(name).ok()?, value));
        data += name_len + value_len + 2;
    }
    Some(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serialise(pairs: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (k, v) in pairs {
            out.extend((k.len() as u32).to_le_bytes());
            out.extend((v.len() as u32).to_le_bytes());
        }
        for (k, v) in pairs {
            out.extend(k.as_bytes());
            out.push(0);
            out.extend(*v);
            out.push(0);
        }
        out
    }

    #[test]
    fn reads_what_the_host_serialises() {
        let pairs: [(&str, &[u8]); 3] = [(":path", b"/api/activities"), ("x-empty", b""), ("x-bin", b"\xff\x00\x01")];
        assert_eq!(header_pairs(&serialise(&pairs)).unwrap(), pairs.to_vec());
        assert_eq!(header_pairs(&[]).unwrap(), vec![]);
        assert_eq!(header_pairs(&serialise(&[])).unwrap(), vec![]);
    }

    #[test]
    fn a_truncated_or_lying_buffer_is_refused() {
        let whole = serialise(&[(":path", b"/a"), ("host", b"h")]);
        for cut in 1..whole.len() - 1 {
            assert_eq!(header_pairs(&whole[..cut]), None, "cut at {cut}");
        }
        let mut huge = whole.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(header_pairs(&huge), None);
        assert_eq!(header_pairs(&serialise(&[("\u{e9}", b"v")])).unwrap()[0].0, "\u{e9}");
        let mut bad_name = serialise(&[("ab", b"v")]);
        bad_name[12] = 0xff;
        assert_eq!(header_pairs(&bad_name), None);
    }
}
