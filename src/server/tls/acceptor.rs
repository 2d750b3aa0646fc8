//! The server's current TLS configuration, replaceable while it runs.

use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::server::UnbufferedServerConnection;

use crate::server::tls::session::Session;

/// The configuration new TLS connections start with, shared by every reactor. A
/// replacement ([`Acceptor::replace`]) applies to connections accepted after it;
/// each open connection keeps the configuration it started with (its rustls
/// connection holds its own reference).
#[derive(Debug)]
pub(crate) struct Acceptor {
    current: RwLock<Arc<ServerConfig>>,
}

impl Acceptor {
    /// An acceptor starting with `config`.
    pub fn new(config: Arc<ServerConfig>) -> Self {
        Self {
            current: RwLock::new(config),
        }
    }

    /// Makes `config` the one new connections start with.
    pub fn replace(&self, config: Arc<ServerConfig>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
    }

    /// A session for a connection just accepted (one uncontended read lock and a
    /// reference count).
    ///
    /// # Errors
    ///
    /// rustls' error if the configuration cannot start a connection (no protocol
    /// version the provider supports).
    pub fn accept(&self) -> Result<Box<Session>, rustls::Error> {
        let config = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Ok(Box::new(Session::new(UnbufferedServerConnection::new(
            config,
        )?)))
    }
}
