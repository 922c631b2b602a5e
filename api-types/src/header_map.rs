//! The proxy-wasm ABI's serialised header map, read in place: the one parser
//! for the host (`seckill-edge`, which builds its fields from it) and the
//! filter (which judges a request on slices of the host's buffer instead of
//! two allocations per header).
//!
//! Wire format (all integers little-endian `u32`): the number of pairs, then
//! for every pair the key length and the value length, then every key and
//! every value, each followed by a NUL byte. An empty map may be sent as zero
//! bytes, as a single NUL byte, or as a zero pair count.

/// One `(name, value)` pair, borrowed from the serialised map.
pub type Pair<'a> = (&'a [u8], &'a [u8]);

/// The pairs of a serialised map, with every length checked against the
/// input; `Err` says what is wrong.
pub fn pairs(bytes: &[u8]) -> Result<Vec<Pair<'_>>, &'static str> {
    if bytes.is_empty() || bytes == [0] {
        return Ok(Vec::new());
    }
    let word = |at: usize| -> Result<usize, &'static str> {
        let b = bytes.get(at..at + 4).ok_or("truncated header")?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let count = word(0)?;
    let table_end = count.checked_mul(8).and_then(|n| n.checked_add(4)).ok_or("pair count overflows")?;
    if table_end > bytes.len() {
        return Err("pair count larger than the data");
    }
    let mut pairs = Vec::with_capacity(count);
    let mut at = table_end;
    // The sum is checked: on 32-bit (wasm) a lying length would overflow it.
    let mut take = |len: usize, what: &'static str| -> Result<&[u8], &'static str> {
        let end = at.checked_add(len).ok_or(what)?;
        let slice = bytes.get(at..end).ok_or(what)?;
        if bytes.get(end) != Some(&0) {
            return Err("field not NUL-terminated");
        }
        at = end + 1;
        Ok(slice)
    };
    for i in 0..count {
        let (key_len, value_len) = (word(4 + i * 8)?, word(8 + i * 8)?);
        let key = take(key_len, "key runs past the end")?;
        let value = take(value_len, "value runs past the end")?;
        pairs.push((key, value));
    }
    Ok(pairs)
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
    fn reads_what_a_host_serialises() {
        let given: [(&str, &[u8]); 3] = [(":path", b"/api/activities"), ("x-empty", b""), ("x-bin", b"\xff\x00\x01")];
        let bytes = serialise(&given);
        let read = pairs(&bytes).unwrap();
        assert_eq!(read, given.iter().map(|(k, v)| (k.as_bytes(), *v)).collect::<Vec<_>>());
        for empty in [&[][..], &[0], &serialise(&[])] {
            assert_eq!(pairs(empty).unwrap(), vec![]);
        }
    }

    #[test]
    fn a_truncated_or_lying_buffer_is_refused() {
        let whole = serialise(&[(":path", b"/a"), ("host", b"h")]);
        for cut in 1..whole.len() {
            assert!(pairs(&whole[..cut]).is_err(), "cut at {cut}");
        }
        let mut huge = whole.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(pairs(&huge).is_err());
        let mut no_nul = whole.clone();
        let last = no_nul.len() - 1;
        no_nul[last] = b'x';
        assert_eq!(pairs(&no_nul), Err("field not NUL-terminated"));
    }
}
