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

    /// Makes `config` the one new connections start with, if it can start one.
    ///
    /// # Errors
    ///
    /// rustls' error if it cannot ([`Acceptor::check`]); the current one stays.
    pub fn replace(&self, config: Arc<ServerConfig>) -> Result<(), rustls::Error> {
        Self::check(&config)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
        Ok(())
    }

    /// Whether `config` can start a connection: rustls refuses some configurations
    /// only then (a `max_fragment_size` out of range, say), and a server must find
    /// out when it is given one, not on every accept.
    ///
    /// # Errors
    ///
    /// rustls' error.
    pub fn check(config: &Arc<ServerConfig>) -> Result<(), rustls::Error> {
        UnbufferedServerConnection::new(config.clone()).map(drop)
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
