//! `${NAME}` placeholders, as `envoy/filter-config.json` and `envoy/envoy.yaml`
//! carry them for what a deployment sets (the backend's address, the secrets).
//!
//! One filling for everyone who renders those files — the launcher, the test
//! support, the filter's config test — so that a new placeholder or a typo is
//! an error naming it, never a `${…}` left in a running configuration.

/// Fills every `${NAME}` of `template` with `value(NAME)`; a name `value` does
/// not know, or a `${` without its `}`, is an error that names it.
pub fn fill(template: &str, value: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| format!("`${{` without its `}}` near {:?}", truncate(after)))?;
        let name = &after[..end];
        let filled = value(name).ok_or_else(|| format!("no value for the placeholder ${{{name}}}"))?;
        out.push_str(&filled);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn truncate(s: &str) -> &str {
    s.char_indices().nth(24).map_or(s, |(i, _)| &s[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_filled_or_named() {
        let vars = |n: &str| (n == "A").then(|| "1".to_owned()).or_else(|| (n == "B_2").then(|| "two".to_owned()));
        assert_eq!(fill("x=${A}, y=\"${B_2}\", ${A}", vars).unwrap(), "x=1, y=\"two\", 1");
        assert_eq!(fill("no placeholders", vars).unwrap(), "no placeholders");
        assert_eq!(fill("${C}", vars).unwrap_err(), "no value for the placeholder ${C}");
        assert!(fill("${A", vars).unwrap_err().contains("without its"));
    }
}
