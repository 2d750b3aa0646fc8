//! The server as other threads see it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::server::bridge::PublishStatus;
use crate::server::config::Backend;
use crate::server::failure::ReactorFailure;
use crate::server::handler::Message;
use crate::server::metrics;
use crate::server::pubsub::Publish;
use crate::server::shared::Shared;
use crate::server::stats::{Stats, StatsSnapshot};

/// A cloneable, `Send + Sync` handle to a running server.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
}

impl ServerHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// What the server's threads share.
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// What the server's threads share, to keep.
    pub(crate) fn shared_arc(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// The backend the reactors run on: [`Backend::Epoll`] or [`Backend::IoUring`]
    /// (what [`Backend::Auto`] chose).
    pub fn backend(&self) -> Backend {
        self.shared.backend
    }

    /// Replaces the TLS configuration (a renewed certificate, say): connections
    /// accepted after the call start with `config`; open ones keep the one they
    /// started with. Returns whether it was replaced: `false` if the server does not
    /// serve TLS, or if rustls cannot start a connection with `config` (a
    /// `max_fragment_size` out of range, say; logged at `error`), and then nothing
    /// changed.
    pub fn set_tls_config(&self, config: Arc<rustls::ServerConfig>) -> bool {
        match &self.shared.tls {
            Some(acceptor) => match acceptor.replace(config) {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!("TLS configuration refused, the running one stays: {e}");
                    false
                }
            },
            None => false,
        }
    }

    /// Reads a certificate chain and private key from PEM files (see
    /// [`crate::server::tls::server_config_from_pem_files`]) and makes them the ones
    /// new connections get ([`ServerHandle::set_tls_config`]).
    ///
    /// # Errors
    ///
    /// `NotFound` or `InvalidData` (naming the file) if the files cannot be read or
    /// used (the running configuration stays); `InvalidInput` if the server does not
    /// serve TLS.
    pub fn reload_tls_pem_files(
        &self,
        cert: impl AsRef<std::path::Path>,
        key: impl AsRef<std::path::Path>,
    ) -> std::io::Result<()> {
        let Some(acceptor) = &self.shared.tls else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "this server does not serve TLS",
            ));
        };
        let config = crate::server::tls::server_config_from_pem_files(cert, key)?;
        acceptor.replace(config).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("TLS configuration unusable: {e}"),
            )
        })
    }

    /// Open WebSocket connections (upgraded and not yet closing), all reactors together.
    pub fn connections(&self) -> usize {
        self.shared.stats.open.load(Ordering::Relaxed)
    }

    /// The server's counters: connections, and how often each limit was reached.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats()
    }

    /// Every counter in the Prometheus text exposition format, version 0.0.4 (the
    /// list is in [`crate::server::metrics`]). Rendered now, from counters the
    /// reactors keep without locks; costs a few microseconds per call.
    pub fn metrics_text(&self) -> String {
        metrics::render(&self.shared, metrics::Format::Prometheus)
    }

    /// Every counter in OpenMetrics 1.0 text (ending with `# EOF`); see
    /// [`ServerHandle::metrics_text`].
    pub fn metrics_openmetrics(&self) -> String {
        metrics::render(&self.shared, metrics::Format::OpenMetrics)
    }

    /// Reactors that stopped before a shutdown asked them to, in the order they failed
    /// (empty while the server is healthy). Each failure is also logged at `error`.
    pub fn failures(&self) -> Vec<ReactorFailure> {
        self.shared.failures()
    }

    /// Subscribers of `topic`, all reactors together.
    pub fn subscribers(&self, topic: &str) -> usize {
        let counts = self.shared.topic_counts.lock();
        counts.get(topic).copied().unwrap_or(0)
    }

    /// Topics with at least one subscriber.
    pub fn topic_count(&self) -> usize {
        self.shared.topic_count()
    }

    /// Publishes `message` to every subscriber of `topic`, on every reactor, and
    /// through the bridge (if one is set) on every other server. Encoded once; each
    /// reactor gets the same bytes. Messages published from one thread arrive at each
    /// subscriber in the order they were published.
    ///
    /// Returns [`PublishStatus::TooLarge`] (and delivers it nowhere) if a bridge is
    /// set and the message is over its `max_message_size`.
    pub fn publish(&self, topic: &str, message: Message<'_>) -> PublishStatus {
        if let Some(bridge) = &self.shared.bridge
            && message.len() > bridge.max_message_size()
        {
            bridge.refused();
            return PublishStatus::TooLarge {
                size: message.len(),
                limit: bridge.max_message_size(),
            };
        }
        let publish = self.send(Some(topic.into()), message);
        if let Some(bridge) = &self.shared.bridge {
            bridge.send(std::slice::from_ref(&publish));
        }
        PublishStatus::Published
    }

    /// Sends `message` to every open connection of this server (not through the
    /// bridge: other servers have connections of their own).
    pub fn broadcast(&self, message: Message<'_>) {
        self.send(None, message);
    }

    fn send(&self, topic: Option<Arc<str>>, message: Message<'_>) -> Publish {
        Stats::bump(&self.shared.stats.handle_publishes);
        let publish = Publish::new(topic, message, None, self.shared.deflate.as_ref());
        for remote in &self.shared.remotes {
            remote.send_publishes(std::iter::once(publish.clone()));
        }
        publish
    }

    /// Starts a graceful shutdown: stop accepting, send Close 1001 to every open
    /// connection, flush, wait up to `shutdown_timeout`, then the reactors return
    /// (and [`crate::Server::join`] with them). Every message accepted before this call
    /// (by [`crate::Conn::send`], a publish on any reactor, or this handle) is queued
    /// before the connection's 1001: the reactors first hand each other the publishes
    /// they accepted, and only then close.
    pub fn shutdown(&self) {
        // Asked before it is logged: a log write that fails (tracing-subscriber's
        // fallback report panics when stdout and stderr are both closed pipes) must
        // not leave the shutdown unasked.
        let connections = self.connections();
        self.shared.shutdown();
        tracing::info!(
            address = %self.shared.local_addr,
            connections,
            "wavecore server shutting down: closing connections with 1001"
        );
    }
}
