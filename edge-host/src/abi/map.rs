//! Header maps ("fields") and their proxy-wasm serialisation (the format is
//! described, and parsed, in `seckill_api::header_map`).

use std::fmt;

/// An ordered list of header fields. Names are kept lower-case (as HTTP/2 and
/// Envoy do), lookups are case-insensitive, values are raw bytes. Pseudo
/// headers (`:method`, `:path`, `:authority`, `:scheme`, `:status`) live in
/// the same list, first.
///
/// All names and values share one buffer (two allocations per map, however
/// many fields): maps are built for every request.
#[derive(Clone, Default)]
pub struct Fields {
    buf: Vec<u8>,
    entries: Vec<Entry>,
}

#[derive(Clone, Copy)]
struct Entry {
    start: u32,
    key: u32,
    value: u32,
}

/// A serialised map that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapError(pub &'static str);

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed serialised header map: {}", self.0)
    }
}

impl std::error::Error for MapError {}

impl Fields {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(n: usize) -> Self {
        Self { buf: Vec::with_capacity(n * 24), entries: Vec::with_capacity(n) }
    }

    /// Builds a map from `(name, value)` pairs, lower-casing the names.
    pub fn from_pairs<K: AsRef<str>, V: AsRef<[u8]>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        let mut f = Self::new();
        for (k, v) in pairs {
            f.add(k.as_ref(), v.as_ref());
        }
        f
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn key_bytes(&self, e: &Entry) -> &[u8] {
        &self.buf[e.start as usize..(e.start + e.key) as usize]
    }

    fn key(&self, e: &Entry) -> &str {
        // Keys are only ever stored from `&str` (lower-cased ASCII keeps UTF-8 valid).
        std::str::from_utf8(self.key_bytes(e)).unwrap_or("")
    }

    fn matching<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.iter().filter(move |e| self.key_bytes(e).eq_ignore_ascii_case(name.as_bytes()))
    }

    fn value(&self, e: &Entry) -> &[u8] {
        let at = (e.start + e.key) as usize;
        &self.buf[at..at + e.value as usize]
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|e| (self.key(e), self.value(e)))
    }

    /// The first value of `name` (case-insensitive), as Envoy answers
    /// `proxy_get_header_map_value`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.matching(name).next().map(|e| self.value(e))
    }

    /// [`Fields::get`] as text; `None` when absent or not UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.matching(name).map(|e| self.value(e))
    }

    /// Appends a field (an existing field of that name stays).
    pub fn add(&mut self, name: &str, value: &[u8]) {
        let start = self.buf.len() as u32;
        self.buf.extend(name.bytes().map(|b| b.to_ascii_lowercase()));
        self.buf.extend_from_slice(value);
        self.entries.push(Entry { start, key: name.len() as u32, value: value.len() as u32 });
    }

    /// Sets `name` to exactly one value: the first occurrence is overwritten
    /// in place, later ones are removed; appended when absent.
    pub fn replace(&mut self, name: &str, value: &[u8]) {
        let Some(first) = self.entries.iter().position(|e| self.key_bytes(e).eq_ignore_ascii_case(name.as_bytes()))
        else {
            self.add(name, value);
            return;
        };
        let mut out = Self::with_capacity(self.len());
        out.buf.reserve(self.buf.len() + value.len());
        for (i, e) in self.entries.iter().enumerate() {
            let key = self.key(e);
            if i == first {
                out.add(key, value);
            } else if !key.eq_ignore_ascii_case(name) {
                out.add(key, self.value(e));
            }
        }
        *self = out;
    }

    /// `proxy_replace_header_map_value`, as Envoy does it (`setCopy`): every
    /// field of that name goes and one is appended, so a replaced header
    /// moves to the end. Pseudo-headers are replaced in place: Envoy keeps
    /// them ahead of the others.
    pub fn set_as_envoy(&mut self, name: &str, value: &[u8]) {
        if name.starts_with(':') {
            self.replace(name, value);
        } else {
            self.remove(name);
            self.add(name, value);
        }
    }

    /// Removes every field of that name; absent is fine.
    pub fn remove(&mut self, name: &str) {
        let buf = &self.buf;
        self.entries.retain(|e| {
            let k = &buf[e.start as usize..(e.start + e.key) as usize];
            !k.eq_ignore_ascii_case(name.as_bytes())
        });
    }

    /// The size of [`Fields::serialize`]'s output.
    pub fn serialized_len(&self) -> usize {
        4 + self.entries.iter().map(|e| 8 + e.key as usize + e.value as usize + 2).sum::<usize>()
    }

    /// The proxy-wasm serialisation (see the module docs).
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.serialized_len());
        self.serialize_into(&mut out);
        out
    }

    pub fn serialize_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for e in &self.entries {
            out.extend_from_slice(&e.key.to_le_bytes());
            out.extend_from_slice(&e.value.to_le_bytes());
        }
        for e in &self.entries {
            out.extend_from_slice(self.key_bytes(e));
            out.push(0);
            out.extend_from_slice(self.value(e));
            out.push(0);
        }
    }

    /// Parses a serialised map, checking every length against the input.
    /// Names that are not UTF-8 are converted lossily.
    pub fn deserialize(bytes: &[u8]) -> Result<Self, MapError> {
        let pairs = seckill_api::header_map::pairs(bytes).map_err(MapError)?;
        let mut f = Self { buf: Vec::with_capacity(bytes.len()), entries: Vec::with_capacity(pairs.len()) };
        for (key, value) in pairs {
            match std::str::from_utf8(key) {
                Ok(k) => f.add(k, value),
                Err(_) => f.add(&String::from_utf8_lossy(key), value),
            }
        }
        Ok(f)
    }

    /// The fields as text pairs (values converted lossily), e.g. for tests.
    pub fn to_string_pairs(&self) -> Vec<(String, String)> {
        self.iter().map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v).into_owned())).collect()
    }

    /// Fields whose name does not start with `:`.
    pub fn regular(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.iter().filter(|(k, _)| !k.starts_with(':'))
    }
}

impl PartialEq for Fields {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Fields {}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter().map(|(k, v)| (k, String::from_utf8_lossy(v)))).finish()
    }
}

impl<K: AsRef<str>, V: AsRef<[u8]>> FromIterator<(K, V)> for Fields {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self::from_pairs(iter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the ABI spec: `{"a": "1"}, {"b": "22"}`.
    #[test]
    fn serialises_like_the_spec_example() {
        let f = Fields::from_pairs([("a", "1"), ("b", "22")]);
        let expected: Vec<u8> = [
            &2u32.to_le_bytes()[..],
            &1u32.to_le_bytes(),
            &1u32.to_le_bytes(),
            &1u32.to_le_bytes(),
            &2u32.to_le_bytes(),
            b"a\x001\x00b\x0022\x00",
        ]
        .concat();
        assert_eq!(f.serialize(), expected);
        assert_eq!(f.serialized_len(), expected.len());
        assert_eq!(Fields::deserialize(&expected).unwrap(), f);
    }

    #[test]
    fn round_trips_binary_values_and_empty_strings() {
        let mut f = Fields::new();
        f.add(":path", b"/x?y=1");
        f.add("empty", b"");
        f.add("bin", &[0xff, 0x00, 0x7f]);
        let parsed = Fields::deserialize(&f.serialize()).unwrap();
        assert_eq!(parsed, f);
        assert_eq!(parsed.get("BIN"), Some(&[0xff, 0x00, 0x7f][..]));
        assert_eq!(parsed.get("empty"), Some(&b""[..]));
    }

    #[test]
    fn empty_maps_in_every_spelling() {
        assert!(Fields::deserialize(&[]).unwrap().is_empty());
        assert!(Fields::deserialize(&[0]).unwrap().is_empty());
        assert!(Fields::deserialize(&[0, 0, 0, 0]).unwrap().is_empty());
        assert_eq!(Fields::new().serialize(), vec![0, 0, 0, 0]);
    }

    #[test]
    fn rejects_truncated_and_lying_maps() {
        let good = Fields::from_pairs([("key", "value")]).serialize();
        for cut in 1..good.len() {
            assert!(Fields::deserialize(&good[..cut]).is_err(), "prefix of {cut} bytes parsed");
        }
        let mut huge = good.clone();
        huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Fields::deserialize(&huge).is_err());
        let mut no_nul = good;
        let last = no_nul.len() - 1;
        no_nul[last] = b'x';
        assert!(Fields::deserialize(&no_nul).is_err());
    }

    #[test]
    fn names_are_case_insensitive_and_replace_keeps_one() {
        let mut f = Fields::from_pairs([("X-A", "1"), ("x-a", "2"), ("b", "3")]);
        assert_eq!(f.get_str("x-A"), Some("1"));
        assert_eq!(f.get_all("x-a").count(), 2);
        f.replace("X-A", b"9");
        assert_eq!(f.to_string_pairs(), vec![("x-a".into(), "9".into()), ("b".into(), "3".into())]);
        f.remove("B");
        f.replace("new", b"n");
        assert_eq!(f.to_string_pairs(), vec![("x-a".into(), "9".into()), ("new".into(), "n".into())]);
    }

    #[test]
    fn a_header_set_as_envoy_moves_to_the_end_but_a_pseudo_header_stays_first() {
        let mut f = Fields::from_pairs([(":path", "/a"), ("x-a", "1"), ("b", "2"), ("x-a", "3")]);
        f.set_as_envoy("X-A", b"9");
        f.set_as_envoy(":path", b"/b");
        let pairs: Vec<(String, String)> =
            [(":path", "/b"), ("b", "2"), ("x-a", "9")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(f.to_string_pairs(), pairs);
    }
}
