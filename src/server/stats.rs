//! Counters every reactor updates and the server handle reads: how often each limit
//! was reached, so an application can see it.

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
}

/// A snapshot of the server's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// WebSocket connections open now.
    pub open_connections: usize,
    /// TCP connections accepted since start.
    pub accepted: u64,
    /// Connections answered 503 because `max_connections` was reached.
    pub refused_over_capacity: u64,
    /// Connections dropped because the request head did not arrive in time.
    pub handshake_timeouts: u64,
    /// Requests refused with an HTTP error: malformed or over-limit heads, bad upgrades
    /// (wrong version, a body, ...), upgrades the service refused, and plain HTTP
    /// requests with a body (413). Not counted in `http_requests`.
    pub handshake_refusals: u64,
    /// Plain HTTP requests answered.
    pub http_requests: u64,
    /// Connections failed for a protocol violation or size limit (1002, 1007, 1009).
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
    /// The bridge's state and counters, if the server has a bridge
    /// ([`crate::ServerBuilder::bridge`]).
    pub bridge: Option<BridgeStats>,
}

impl Stats {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A snapshot of every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            open_connections: self.open.load(Ordering::Relaxed),
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
            bridge: None,
        }
    }
}
