//! `${NAME}` placeholders, as `envoy/filter-config.json` and `envoy/envoy.yaml`
//! carry them for what a deployment sets (the backend's address, the secrets).
//!
//! One filling for everyone who renders those files (and one rendering of
//! the backends as Envoy endpoints, [`envoy_endpoints`]) — the launcher, the test
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

/// What a deployment fills into `envoy/envoy.yaml` (its header documents each).
#[derive(Debug, Clone)]
pub struct EnvoySite<'a> {
    pub listen_address: &'a str,
    pub listen_port: u16,
    pub admin_port: u16,
    /// `host:port` of each backend; the first one also names the state sync's Host.
    pub backends: &'a [String],
    pub filter_wasm: &'a str,
    pub edge_id: &'a str,
    pub edge_secret: &'a str,
    pub jwt_secret: &'a str,
}

/// `envoy/envoy.yaml` (`template`) with every placeholder filled for `site`.
pub fn render_envoy(template: &str, site: &EnvoySite) -> Result<String, String> {
    let endpoints = envoy_endpoints(site.backends)?;
    fill(template, |name| {
        Some(match name {
            "SECKILL_LISTEN_ADDRESS" => site.listen_address.to_owned(),
            "SECKILL_LISTEN_PORT" => site.listen_port.to_string(),
            "SECKILL_ENVOY_ADMIN_PORT" => site.admin_port.to_string(),
            "SECKILL_BACKEND_ENDPOINTS" => endpoints.clone(),
            "SECKILL_BACKEND" => site.backends.first()?.clone(),
            "SECKILL_FILTER_WASM" => site.filter_wasm.to_owned(),
            "SECKILL_EDGE_ID" => site.edge_id.to_owned(),
            "SECKILL_EDGE_SECRET" => site.edge_secret.to_owned(),
            "SECKILL_JWT_SECRET" => site.jwt_secret.to_owned(),
            _ => return None,
        })
    })
}

/// Envoy's HTTPS listener: `envoy/tls-listener.yaml`'s own placeholders.
#[derive(Debug, Clone)]
pub struct EnvoyTls<'a> {
    pub port: u16,
    pub cert_file: &'a str,
    pub key_file: &'a str,
}

/// The line of `envoy/envoy.yaml` that the HTTPS listener replaces.
pub const TLS_LISTENER_MARKER: &str = "  # @tls-listener";

/// `template` (`envoy/envoy.yaml`) with `fragment` (`envoy/tls-listener.yaml`)
/// on its `@tls-listener` line, the fragment's own placeholders filled for
/// `tls` (the shared ones are left to [`render_envoy`]).
pub fn with_tls_listener(template: &str, fragment: &str, tls: &EnvoyTls) -> Result<String, String> {
    let fragment = fill(fragment, |name| {
        Some(match name {
            "SECKILL_TLS_LISTEN_PORT" => tls.port.to_string(),
            "SECKILL_TLS_CERT_FILE" => tls.cert_file.to_owned(),
            "SECKILL_TLS_KEY_FILE" => tls.key_file.to_owned(),
            other => format!("${{{other}}}"),
        })
    })?;
    let line = template
        .lines()
        .find(|l| l.starts_with(TLS_LISTENER_MARKER))
        .ok_or_else(|| format!("no `{TLS_LISTENER_MARKER}` line for the HTTPS listener"))?;
    Ok(template.replacen(&format!("{line}\n"), &fragment, 1))
}

/// The value of `envoy/envoy.yaml`'s `${SECKILL_BACKEND_ENDPOINTS}`: Envoy's
/// endpoint list (a YAML flow sequence) for backends given as `host:port`
/// (`[v6]:port` for an IPv6 address).
pub fn envoy_endpoints<S: AsRef<str>>(backends: &[S]) -> Result<String, String> {
    if backends.is_empty() {
        return Err("at least one backend (host:port) is needed".into());
    }
    let endpoints = backends
        .iter()
        .map(|b| {
            let b = b.as_ref();
            let (host, port) = b.rsplit_once(':').ok_or_else(|| format!("backend {b:?}: expected host:port"))?;
            let port: u16 = port.parse().map_err(|_| format!("backend {b:?}: {port:?} is not a port"))?;
            let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
            if host.is_empty() || !host.bytes().all(|c| c.is_ascii_alphanumeric() || b".-:_".contains(&c)) {
                return Err(format!("backend {b:?}: {host:?} is not a host name or address"));
            }
            Ok(format!("{{endpoint: {{address: {{socket_address: {{address: \"{host}\", port_value: {port}}}}}}}}}"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(format!("[{}]", endpoints.join(", ")))
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

    #[test]
    fn backends_become_envoy_endpoints() {
        assert_eq!(
            envoy_endpoints(&["b1:8081", "[::1]:9000"]).unwrap(),
            "[{endpoint: {address: {socket_address: {address: \"b1\", port_value: 8081}}}}, \
             {endpoint: {address: {socket_address: {address: \"::1\", port_value: 9000}}}}]"
        );
        assert!(envoy_endpoints::<&str>(&[]).is_err());
        assert!(envoy_endpoints(&["b1"]).unwrap_err().contains("host:port"));
        assert!(envoy_endpoints(&["b1:http"]).unwrap_err().contains("not a port"));
        assert!(envoy_endpoints(&["b 1:80"]).unwrap_err().contains("not a host"));
    }
}
