//! Building a rustls server configuration from PEM files.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The ALPN protocol (RFC 7301) a wavecore server offers: WebSocket upgrades and
/// plain HTTP both run over HTTP/1.1 (RFC 6455 §4.1).
pub const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// A rustls server configuration for the certificate chain in `cert` and the private
/// key in `key` (PEM files: the chain leaf first, as `openssl` and `rcgen` write them;
/// the key in PKCS#8, PKCS#1 or SEC1 form), with rustls' safe defaults (TLS 1.2 and
/// 1.3, the `ring` provider's cipher suites), no client authentication, and ALPN
/// `http/1.1`.
///
/// # Errors
///
/// `NotFound` (or another I/O error) if a file cannot be read; `InvalidData`, naming
/// the file, if it holds no certificate or no private key, or if the key does not
/// suit the certificate.
pub fn server_config_from_pem_files(
    cert: impl AsRef<Path>,
    key: impl AsRef<Path>,
) -> io::Result<Arc<ServerConfig>> {
    let (cert, key) = (cert.as_ref(), key.as_ref());
    let chain = read_certificates(cert)?;
    let key = read_private_key(key)?;
    server_config(chain, key).map_err(|e| {
        invalid(format!(
            "TLS certificate {} and its key: {e}",
            cert.display()
        ))
    })
}

/// A rustls server configuration for `chain` and `key` (see
/// [`server_config_from_pem_files`]).
///
/// # Errors
///
/// rustls' error when the key does not suit the certificate or cannot be used.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(super::crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    Ok(Arc::new(config))
}

/// Every certificate in the PEM file at `path`, in order.
fn read_certificates(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let pem = read(path, "certificate")?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("TLS certificate {}: {e}", path.display())))?;
    if chain.is_empty() {
        return Err(invalid(format!(
            "TLS certificate {}: no CERTIFICATE block in the file",
            path.display()
        )));
    }
    Ok(chain)
}

/// The first private key in the PEM file at `path`.
fn read_private_key(path: &Path) -> io::Result<PrivateKeyDer<'static>> {
    let pem = read(path, "key")?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        invalid(format!(
            "TLS key {}: {e} (expected a PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block)",
            path.display()
        ))
    })
}

fn read(path: &Path, what: &str) -> io::Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| io::Error::new(e.kind(), format!("TLS {what} {}: {e}", path.display())))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}
