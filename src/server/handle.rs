//! The server as other threads see it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::handler::Message;
use crate::server::failure::ReactorFailure;
use crate::server::pubsub::Publish;
use crate::server::shared::Shared;
use crate::server::stats::StatsSnapshot;

/// A cloneable, `Send + Sync` handle to a running server.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
}

impl ServerHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Open WebSocket connections (upgraded and not yet closing), all reactors together.
    pub fn connections(&self) -> usize {
        self.shared.stats.open.load(Ordering::Relaxed)
    }

    /// The server's counters: connections, and how often each limit was reached.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// Reactors that stopped before a shutdown asked them to, in the order they failed
    /// (empty while the server is healthy). Each failure is also logged at `error`.
    pub fn failures(&self) -> Vec<ReactorFailure> {
        self.shared.failures()
    }

    /// Subscribers of `topic`, all reactors together.
    pub fn subscribers(&self, topic: &str) -> usize {
        let counts = self
            .shared
            .topic_counts
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        counts.get(topic).copied().unwrap_or(0)
    }

    /// Topics with at least one subscriber.
    pub fn topic_count(&self) -> usize {
        self.shared
            .topic_counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Publishes `message` to every subscriber of `topic`, on every reactor. Encoded
    /// once; each reactor gets the same bytes. Messages published from one thread
    /// arrive at each subscriber in the order they were published.
    pub fn publish(&self, topic: &str, message: Message<'_>) {
        self.send(Some(topic.into()), message);
    }

    /// Sends `message` to every open connection.
    pub fn broadcast(&self, message: Message<'_>) {
        self.send(None, message);
    }

    fn send(&self, topic: Option<Arc<str>>, message: Message<'_>) {
        let publish = Publish::new(topic, message, None);
        for remote in &self.shared.remotes {
            remote.send_publishes(std::iter::once(publish.clone()));
        }
    }

    /// Starts a graceful shutdown: stop accepting, send Close 1001 to every open
    /// connection, flush, wait up to `shutdown_timeout`, then the reactors return
    /// (and [`crate::Server::join`] with them).
    pub fn shutdown(&self) {
        for remote in &self.shared.remotes {
            remote.send_shutdown();
        }
    }
}
