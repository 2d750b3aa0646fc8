//! `wss://` targets: the client TLS configuration a run uses, and the verifier that
//! trusts anything (`--tls-insecure`, for benchmarks against a self-signed server).
//!
//! TLS runs on each connection the same non-blocking way as the rest of
//! [`crate::conn`]: rustls' `ClientConnection` is fed the bytes read from the socket
//! and its ciphertext is written to the socket; it never touches the socket itself.

use std::path::Path;
use std::sync::Arc;

use wavecore::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use wavecore::rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use wavecore::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use wavecore::rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

/// The TLS side of a `wss://` target.
#[derive(Debug, Clone)]
pub struct TlsTarget {
    /// The client configuration every connection starts with.
    pub config: Arc<ClientConfig>,
    /// The server's name: what its certificate must be valid for, and the SNI.
    pub name: ServerName<'static>,
}

impl PartialEq for TlsTarget {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.config, &other.config) && self.name == other.name
    }
}

impl TlsTarget {
    /// A target named `host` (a DNS name or an IP address), trusting the certificates
    /// in the PEM file `ca` if given, anything with `insecure`, else the Mozilla roots.
    pub fn new(host: &str, ca: Option<&Path>, insecure: bool) -> Result<Self, String> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| format!("{host}: not a TLS server name: {e}"))?;
        let config = if insecure {
            insecure_config()
        } else if let Some(ca) = ca {
            wavecore::client::tls_config_trusting_pem_file(ca).map_err(|e| e.to_string())?
        } else {
            wavecore::client::default_tls_config()
        };
        Ok(Self { config, name })
    }
}

/// A configuration that accepts any server certificate (signatures are still
/// checked, so the handshake costs what a verified one costs, less the chain).
fn insecure_config() -> Arc<ClientConfig> {
    let provider = wavecore::tls::crypto_provider();
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Trusts every certificate (see [`insecure_config`]).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, wavecore::rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, wavecore::rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, wavecore::rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
