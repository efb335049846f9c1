//! Optional TLS on the router: the `[router]` section's `tls_cert_file` and
//! `tls_key_file` (PEM) loaded into a rustls server config. Every failure
//! names the file, so a bad certificate or key stops the router at start
//! instead of failing each handshake later.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use thiserror::Error;

/// The certificate chain and key the router serves HTTPS with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read TLS file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TLS certificate file {} holds no valid PEM certificate{detail}", path.display())]
    BadCert { path: PathBuf, detail: String },
    #[error("TLS key file {} holds no valid PEM private key: {detail}", path.display())]
    BadKey { path: PathBuf, detail: String },
    #[error("TLS key file {} does not fit certificate file {}: {detail}", key.display(), cert.display())]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        detail: String,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Loads and checks the pair: the chain parses, the key parses, and the key
/// belongs to the first certificate.
pub fn server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let cert_pem = read(&files.cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCert {
            path: files.cert.clone(),
            detail: format!(": {e}"),
        })?;
    if chain.is_empty() {
        return Err(TlsError::BadCert {
            path: files.cert.clone(),
            detail: String::new(),
        });
    }
    let key_pem = read(&files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::BadKey {
        path: files.key.clone(),
        detail: e.to_string(),
    })?;
    // `with_single_cert` also checks that the key is the certificate's, so a
    // wrong key fails here rather than at every handshake.
    let mismatch = |e: rustls::Error| TlsError::Mismatch {
        cert: files.cert.clone(),
        key: files.key.clone(),
        detail: e.to_string(),
    };
    ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(mismatch)?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path, cert: &str, key: &str) -> TlsFiles {
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        TlsFiles { cert: c, key: k }
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = TlsFiles {
            cert: dir.path().join("nope.pem"),
            key: dir.path().join("nope.key"),
        };
        let e = server_config(&missing).unwrap_err().to_string();
        assert!(e.contains("nope.pem"), "{e}");
        let garbage = files(dir.path(), "not pem", "not pem");
        let e = server_config(&garbage).unwrap_err();
        assert!(matches!(e, TlsError::BadCert { .. }), "{e}");
        assert!(e.to_string().contains("cert.pem"), "{e}");
    }
}
