//! A local certificate for `cargo xtask start`'s HTTPS listener: self-signed
//! for `localhost`, `127.0.0.1` and `::1`, made once under `var/tls/` (by the
//! `openssl` command, so that xtask, which a newcomer compiles first, carries
//! no TLS library) and reused on every later start, so a client told to trust
//! it (`curl --cacert var/tls/cert.pem`) keeps trusting it. `rm -rf var/tls`
//! makes a new one. For development only: nothing else trusts it.

use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

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
    // Only its owner may look in: the key is written there before its own mode is set.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args(["-days", "825", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"])
        .arg("-keyout")
        .arg(&files.key)
        .arg("-out")
        .arg(&files.cert)
        .output()
        .context("running openssl to make a local TLS certificate (Debian package `openssl`)")?;
    if !out.status.success() {
        bail!("openssl could not make a local TLS certificate: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("making {} private", files.key.display()))?;
    Ok(files)
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
