//! The one rustls crypto provider wavecore builds its TLS configurations with, the
//! server's ([`super::server_config`]) and the client's ([`crate::client::tls_config`]),
//! public for configurations built by hand (a certificate resolver, say).

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// rustls' `ring` provider, as wavecore's own configurations use it: X25519, P-256 and P-384 key exchange, AES-GCM and
/// ChaCha20-Poly1305.
///
/// rustls 0.23.48 deprecated `ring::default_provider` because *ring* has no
/// post-quantum key exchange (X25519MLKEM768, which the `aws-lc-rs` provider
/// offers). wavecore keeps *ring* on purpose: it builds with the C compiler alone,
/// where aws-lc-rs wants more of the toolchain (see Cargo.toml). The deprecation is
/// acknowledged here, once, rather than at every caller; Cargo.toml asks for rustls
/// 0.23.48 or later so that the expectation always holds.
#[expect(
    deprecated,
    reason = "ring is chosen for its build; it lacks post-quantum key exchange"
)]
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
