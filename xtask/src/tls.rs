//! A local certificate for `cargo xtask start`'s HTTPS listener: self-signed
//! for `localhost`, `127.0.0.1` and `::1`, made once under `var/tls/` (rcgen)
//! and reused on every later start, so a client told to trust it
//! (`curl --cacert var/tls/cert.pem`) keeps trusting it. `rm -rf var/tls`
//! makes a new one. For development only: nothing else trusts it.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// The certificate and key files (PEM).
pub struct LocalCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `var/tls/{cert,key}.pem`, made if either is missing.
pub fn ensure_local_cert(var: &Path) -> anyhow::Result<LocalCert> {
    let dir = var.join("tls");
    let files = LocalCert { cert: dir.join("cert.pem"), key: dir.join("key.pem") };
    if files.cert.is_file() && files.key.is_file() {
        return Ok(files);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let names = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    let pair = rcgen::generate_simple_self_signed(names).context("making a local TLS certificate")?;
    write_private(&files.key, pair.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(&files.cert, pair.cert.pem()).with_context(|| format!("writing {}", files.cert.display()))?;
    eprintln!("xtask: made a self-signed certificate for localhost in {}", dir.display());
    Ok(files)
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(bytes).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_is_made_once_and_reused() {
        let var = std::env::temp_dir().join(format!("xtask-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&var);
        let first = ensure_local_cert(&var).unwrap();
        let pem = std::fs::read_to_string(&first.cert).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
        assert!(std::fs::read_to_string(&first.key).unwrap().contains("PRIVATE KEY"));
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&first.key).unwrap().permissions().mode() & 0o777, 0o600);
        let again = ensure_local_cert(&var).unwrap();
        assert_eq!(std::fs::read_to_string(&again.cert).unwrap(), pem, "a second start reuses it");
        // A missing half makes a new pair (a key without its certificate is useless).
        std::fs::remove_file(&again.key).unwrap();
        let renewed = ensure_local_cert(&var).unwrap();
        assert_ne!(std::fs::read_to_string(&renewed.cert).unwrap(), pem);
        let _ = std::fs::remove_dir_all(&var);
    }
}
