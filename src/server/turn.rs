//! The reactor state a connection may touch while it is being served: the cork buffer,
//! topics, publishes waiting to be delivered, the turn batch, the clock and counters.

use std::sync::Arc;

use bytes::Bytes;

use crate::protocol::deflate::{DeflateConfig, pool};
use crate::protocol::frame::{MAX_HEADER_LEN, OpCode, RSV1, encode_header};
use crate::server::batch::TurnBatch;
use crate::server::handle::ServerHandle;
use crate::server::metrics::counters::ReactorCounters;
use crate::server::pubsub::{Publish, Topics};
use crate::server::shared::Shared;
use crate::server::stats::Stats;
use crate::server::timer::Tick;

/// The cork's room while a reactor serves connections; an idle reactor holds none.
pub(crate) const CORK_CAPACITY: usize = 64 << 10;

/// Per-reactor scratch and registries, lent to the connection being served.
#[derive(Debug)]
pub(crate) struct Turn {
    /// Frames sent by the connection being served, written when it is done.
    pub cork: Vec<u8>,
    /// Publishes made by handlers, delivered once the publisher's callback returned.
    pub publishes: Vec<Publish>,
    /// Small broadcast frames delivered this turn, laid end to end.
    pub batch: TurnBatch,
    /// This reactor's topics.
    pub topics: Topics,
    /// The current tick.
    pub now: Tick,
    /// Counters shared with the server handle.
    pub stats: Arc<Stats>,
    /// This reactor's own counters (written by this thread only).
    pub counters: Arc<ReactorCounters>,
    /// The server, as [`crate::Request::server`] shows it to a service.
    pub server: ServerHandle,
    /// Where a message sent with permessage-deflate is compressed before it is
    /// framed (reused; given back past [`MAX_KEPT_SCRATCH`]).
    pub scratch: Vec<u8>,
}

/// A compression scratch buffer larger than this is not kept after use.
const MAX_KEPT_SCRATCH: usize = 256 << 10;

impl Turn {
    /// The turn state of reactor `index` of the server `shared`.
    pub fn for_reactor(shared: &Arc<Shared>, index: usize) -> Self {
        Self {
            cork: Vec::with_capacity(CORK_CAPACITY),
            publishes: Vec::new(),
            batch: TurnBatch::default(),
            topics: Topics::new(shared.topic_counts.clone()),
            now: 0,
            stats: shared.stats.clone(),
            counters: shared.counters[index].clone(),
            server: ServerHandle::new(shared.clone()),
            scratch: Vec::new(),
        }
    }

    /// A turn state outside any server (unit tests), reporting to `stats` and `counts`.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn new(stats: Arc<Stats>, counts: crate::server::pubsub::TopicCounts) -> Self {
        Self::for_reactor(&Arc::new(Shared::detached(stats, counts)), 0)
    }
}

impl Turn {
    /// Gives back scratch memory grown by a crowd of connections, once none is left.
    ///
    /// Allocates nothing: the cork is dropped, not replaced, and comes back with the
    /// next connection ([`Turn::reserve_cork`]). A buffer allocated here would be placed
    /// among the pages the crowd just freed, often high in this thread's arena, and keep
    /// what lies below it from going back to the system.
    pub fn release_idle_memory(&mut self) {
        self.cork = Vec::new();
        self.publishes = Vec::new();
        self.batch.release();
        self.topics.release_idle_memory();
        self.scratch = Vec::new();
    }

    /// Gives the cork its room again after an idle reactor released it (called when a
    /// connection arrives; a branch otherwise).
    pub fn reserve_cork(&mut self) {
        if self.cork.capacity() == 0 {
            self.cork.reserve_exact(CORK_CAPACITY);
        }
    }
}

/// Appends an unmasked server frame to `out`.
pub(crate) fn encode_into(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
    encode_frame_into(out, opcode, payload, false);
}

/// Appends an unmasked server frame to `out`, with RSV1 set when `compressed` (the
/// payload is a permessage-deflate message, RFC 7692 section 6).
pub(crate) fn encode_frame_into(
    out: &mut Vec<u8>,
    opcode: OpCode,
    payload: &[u8],
    compressed: bool,
) {
    let mut header = [0u8; MAX_HEADER_LEN];
    let n = encode_header(&mut header, true, opcode, payload.len() as u64, None);
    if compressed {
        header[0] |= RSV1 << 4;
    }
    out.reserve(n + payload.len());
    out.extend_from_slice(&header[..n]);
    out.extend_from_slice(payload);
}

/// An unmasked server frame in its own shared buffer (for queues and broadcast).
pub(crate) fn encode_shared(opcode: OpCode, payload: &[u8]) -> Bytes {
    encode_shared_frame(opcode, payload, false)
}

/// [`encode_frame_into`] into a buffer of its own.
pub(crate) fn encode_shared_frame(opcode: OpCode, payload: &[u8], compressed: bool) -> Bytes {
    let mut out = Vec::with_capacity(payload.len() + 10);
    encode_frame_into(&mut out, opcode, payload, compressed);
    Bytes::from(out)
}

/// Compresses `payload` into `scratch` (cleared first) for a connection that
/// negotiated permessage-deflate with windows up to `window` bits, if `config` says
/// it is worth it: at least `min_message_size` bytes, and smaller once compressed.
/// Returns whether `scratch` holds the compressed payload to send (RSV1 set);
/// otherwise the message goes out as it is.
pub(crate) fn deflate_message(
    scratch: &mut Vec<u8>,
    window: Option<u8>,
    config: Option<&DeflateConfig>,
    payload: &[u8],
) -> bool {
    let (Some(window), Some(config)) = (window, config) else {
        return false;
    };
    if payload.len() < config.min_message_size {
        return false;
    }
    if scratch.capacity() > MAX_KEPT_SCRATCH {
        *scratch = Vec::new();
    }
    scratch.clear();
    pool::compress(config.level, window, payload, scratch) && scratch.len() < payload.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_turn_holds_no_cork_until_a_connection_comes() {
        let mut turn = Turn::new(Arc::default(), Arc::default());
        assert!(turn.cork.capacity() >= CORK_CAPACITY);
        encode_into(&mut turn.cork, OpCode::Text, b"hello");
        turn.cork.clear();
        turn.release_idle_memory();
        assert_eq!(turn.cork.capacity(), 0);
        assert_eq!(turn.publishes.capacity(), 0);
        turn.reserve_cork();
        assert!(turn.cork.capacity() >= CORK_CAPACITY);
        // A cork that has room is left as it is.
        let before = turn.cork.as_ptr();
        turn.reserve_cork();
        assert_eq!(turn.cork.as_ptr(), before);
    }
}
