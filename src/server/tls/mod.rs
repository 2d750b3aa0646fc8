//! TLS (`wss://` and `https://`) with rustls, between the socket's bytes and the
//! connection, for every driver.
//!
//! rustls' [`rustls::server::UnbufferedServerConnection`] is an I/O-free state
//! machine that owns no I/O buffer, so TLS sits in the reactor core, not in a driver:
//! the driver reads ciphertext into its read buffer and hands it to the core as for a
//! plain connection; the core has the connection's session process the records where
//! they lie, runs the WebSocket/HTTP connection on the plaintext that comes out, and
//! encrypts what the connection queued before handing the **ciphertext** to the
//! driver's write (or, for a completion driver, leaving it in a queue whose frozen
//! bytes the driver submits). A driver never knows a connection is TLS. An idle TLS
//! connection holds rustls' keys and state, and no buffer (about 3.8 KB more than a
//! plain connection; docs/architecture.md, TLS).
//!
//! * `config.rs`: a rustls configuration from PEM files (ALPN `http/1.1`);
//! * `provider.rs`: the crypto provider (*ring*) of every configuration;
//! * `acceptor.rs`: the configuration new connections start with, replaceable while
//!   the server runs ([`crate::ServerHandle::set_tls_config`]);
//! * `session.rs`: one connection's TLS state and its unsent ciphertext;
//! * `server/core/tls.rs`: the core's read and write paths for TLS connections.
//!
//! A plain connection pays one `Option` check per read and per flush.

mod acceptor;
mod config;
mod provider;
pub(crate) mod session;

pub(crate) use acceptor::Acceptor;
pub use config::{ALPN_HTTP_1_1, server_config, server_config_from_pem_files};
pub use provider::crypto_provider;
