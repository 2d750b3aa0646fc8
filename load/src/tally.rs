//! What one thread counted during the measured window.

use crate::hist::Histogram;

/// Counts and latencies; threads keep one each and the main thread merges them.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Messages (echo) or deliveries (broadcast) received inside the window.
    pub messages: u64,
    /// Payload bytes of those messages.
    pub bytes: u64,
    /// Round-trip (echo) or delivery (broadcast) latency in nanoseconds.
    pub latency: Histogram,
    /// Failed connections, bad payloads and out-of-order deliveries.
    pub errors: u64,
    /// Broadcast deliveries a subscriber never saw (gaps in a publisher's sequence).
    pub lost: u64,
    /// Broadcast deliveries that arrived behind a later one.
    pub out_of_order: u64,
    /// Connections the server closed with 1001 after the soak's shutdown signal
    /// (see [`crate::shutdown`]).
    pub closed_1001: u64,
    /// Slow consumers found closed by the server (EOF or reset) when checked at the
    /// end of their run: its backpressure policy at work.
    pub server_closed: u64,
    /// Connections on which the server accepted permessage-deflate (`--deflate`).
    pub deflate_negotiated: u64,
    /// The first error's description.
    pub first_error: Option<String>,
}

impl Tally {
    /// Counts an error, keeping the first description.
    pub fn error(&mut self, what: impl FnOnce() -> String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(what());
        }
    }

    /// Adds another thread's tally.
    pub fn merge(&mut self, other: Tally) {
        self.messages += other.messages;
        self.bytes += other.bytes;
        self.latency.add(&other.latency);
        self.errors += other.errors;
        self.lost += other.lost;
        self.out_of_order += other.out_of_order;
        self.closed_1001 += other.closed_1001;
        self.server_closed += other.server_closed;
        self.deflate_negotiated += other.deflate_negotiated;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}
