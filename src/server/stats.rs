//! Counters every reactor updates and the server handle reads: how often each limit
//! was reached, so an application can see it. These are shared atomics, bumped on
//! events that happen at most once or twice per connection; per-message counts are
//! each reactor's own (`metrics/counters.rs`) and are summed into the snapshot.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::server::bridge::BridgeStats;

/// Server-wide counters. Read a snapshot with [`crate::ServerHandle::stats`].
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Open WebSocket connections.
    pub open: AtomicUsize,
    /// TCP connections held (any phase), checked against `max_connections`.
    pub tcp: AtomicUsize,
    pub accepted: AtomicU64,
    pub refused_over_capacity: AtomicU64,
    pub handshake_timeouts: AtomicU64,
    pub handshake_refusals: AtomicU64,
    pub http_requests: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub backpressure_closes: AtomicU64,
    pub dropped_messages: AtomicU64,
    pub idle_timeouts: AtomicU64,
    pub handler_panics: AtomicU64,
    pub internal_errors: AtomicU64,
    /// Publishes made through a `ServerHandle` (those made by handlers are counted
    /// per reactor).
    pub handle_publishes: AtomicU64,
    pub accept_errors: AtomicU64,
    pub http_idle_timeouts: AtomicU64,
    pub recv_buffers_exhausted: AtomicU64,
    pub cq_overflows: AtomicU64,
    /// Requests waiting for a deferred answer, checked against
    /// `max_pending_requests`.
    pub pending: AtomicUsize,
}

/// A snapshot of the server's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// WebSocket connections open now.
    pub open_connections: usize,
    /// Requests (upgrades and plain HTTP) waiting now for an answer their service
    /// deferred ([`crate::Upgrade::defer`], [`crate::HttpResponse::defer`]).
    pub pending_requests: usize,
    /// TCP connections accepted since start.
    pub accepted: u64,
    /// Connections answered 503 because `max_connections` was reached.
    pub refused_over_capacity: u64,
    /// Connections dropped because the request head did not arrive in time.
    pub handshake_timeouts: u64,
    /// Requests refused with an HTTP error: malformed or over-limit heads, bad upgrades
    /// (wrong version, a body, ...), upgrades the service refused, and plain HTTP
    /// requests with a body (413); on a TLS server, failed TLS handshakes too (garbage
    /// or plaintext HTTP instead of a ClientHello, nothing in common with the client).
    /// Not counted in `http_requests`.
    pub handshake_refusals: u64,
    /// Plain HTTP requests answered.
    pub http_requests: u64,
    /// Connections failed for a protocol violation or size limit (1002, 1007, 1009),
    /// or, on a TLS server, by TLS after the handshake (a record that does not decrypt
    /// or is over the maximum size, a fatal alert from the client).
    pub protocol_errors: u64,
    /// Connections closed with 1008 for passing `max_backpressure`.
    pub backpressure_closes: u64,
    /// Messages dropped under the `Drop` backpressure policy.
    pub dropped_messages: u64,
    /// Connections dropped after an unanswered automatic ping.
    pub idle_timeouts: u64,
    /// Handler callbacks that panicked (each closed its connection with 1011).
    pub handler_panics: u64,
    /// Connections closed (1011 where a close frame could still be written) because the
    /// server's own code panicked while serving them: a bug in wavecore, contained to
    /// the one connection and logged at `error` with the panic message.
    pub internal_errors: u64,
    /// Failed `accept` calls other than the harmless ones (`EMFILE`, `ENFILE`,
    /// `ENOBUFS`, `ENOMEM`...); each pauses accepting for one timer tick (100 ms) and is
    /// logged at `error`.
    pub accept_errors: u64,
    /// Kept-alive HTTP connections closed because no new request began within
    /// `keep_alive_timeout`.
    pub http_idle_timeouts: u64,
    /// io_uring only: receives that found the reactor's provided-buffer ring empty
    /// (`ENOBUFS`). Each ends that connection's multishot receive, which is armed
    /// again at the end of the turn; no byte is lost. The first few are expected (each
    /// lends the kernel more of the ring's buffers, see
    /// [`crate::ServerConfig::io_uring_provided_buffers`]); a count that keeps growing
    /// says that setting is too small for the load.
    pub recv_buffers_exhausted: u64,
    /// io_uring only: turns that found the completion queue overflowed. The kernel
    /// keeps what did not fit and hands it over at the next wait, so nothing is lost;
    /// a count that keeps growing says [`crate::ServerConfig::io_uring_sq_entries`]
    /// (the completion queue is twice as long) is too small for the load.
    pub cq_overflows: u64,
    /// Data messages received and handed to `on_message`.
    pub messages_received: u64,
    /// Payload bytes of those messages.
    pub message_bytes_received: u64,
    /// Data messages handlers sent with `Conn::send`, `send_text` or `send_binary`
    /// (not counting those dropped; publishes are counted in `publishes` and
    /// `deliveries`).
    pub messages_sent: u64,
    /// Payload bytes of those messages.
    pub message_bytes_sent: u64,
    /// Sends that were queued behind bytes the socket had not yet taken
    /// (`SendStatus::Backpressure`).
    pub backpressure_events: u64,
    /// Messages published (`Conn::publish*`, `Conn::broadcast`, `ServerHandle::publish`,
    /// `ServerHandle::broadcast`).
    pub publishes: u64,
    /// Published messages handed to a subscriber's connection: one per subscriber
    /// per message.
    pub deliveries: u64,
    /// The bridge's state and counters, if the server has a bridge
    /// ([`crate::ServerBuilder::bridge`]).
    pub bridge: Option<BridgeStats>,
}

impl Stats {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A snapshot of the shared counters (the per-reactor ones are added by
    /// [`crate::server::shared::Shared::stats`]).
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            open_connections: self.open.load(Ordering::Relaxed),
            pending_requests: self.pending.load(Ordering::Relaxed),
            accepted: get(&self.accepted),
            refused_over_capacity: get(&self.refused_over_capacity),
            handshake_timeouts: get(&self.handshake_timeouts),
            handshake_refusals: get(&self.handshake_refusals),
            http_requests: get(&self.http_requests),
            protocol_errors: get(&self.protocol_errors),
            backpressure_closes: get(&self.backpressure_closes),
            dropped_messages: get(&self.dropped_messages),
            idle_timeouts: get(&self.idle_timeouts),
            handler_panics: get(&self.handler_panics),
            internal_errors: get(&self.internal_errors),
            accept_errors: get(&self.accept_errors),
            http_idle_timeouts: get(&self.http_idle_timeouts),
            recv_buffers_exhausted: get(&self.recv_buffers_exhausted),
            cq_overflows: get(&self.cq_overflows),
            publishes: get(&self.handle_publishes),
            ..StatsSnapshot::default()
        }
    }
}
