//! The reactor state a connection may touch while it is being served: the cork buffer,
//! topics, publishes waiting to be delivered, the turn batch, the clock and counters.

use std::sync::Arc;

use crate::server::core::batch::TurnBatch;
use crate::server::core::timer::Tick;
use crate::server::handle::ServerHandle;
use crate::server::metrics::counters::ReactorCounters;
use crate::server::pubsub::{Publish, Topics};
use crate::server::shared::Shared;
use crate::server::stats::Stats;

/// The cork's room while a reactor serves connections; an idle reactor holds none.
pub(crate) const CORK_CAPACITY: usize = 64 << 10;

/// The reactor's state a connection may touch while it is served (per-turn scratch:
/// the cork, publishes, the turn batch; per-reactor: topics, the clock, counters),
/// lent to it by the core through `Conn` and `conn::Env`.
#[derive(Debug)]
pub(crate) struct ReactorState {
    /// Frames sent by the connection being served, written when it is done.
    pub cork: Vec<u8>,
    /// Publishes made by handlers, delivered once the publisher's callback returned.
    pub publishes: Vec<Publish>,
    /// Small broadcast frames delivered this turn, laid end to end.
    pub batch: TurnBatch,
    /// This reactor's topics.
    pub topics: Topics,
    /// This reactor's channel subscribers (`channels/subs.rs`).
    pub channels: crate::server::channels::subs::ChannelSubs,
    /// The current tick.
    pub now: Tick,
    /// Counters shared with the server handle.
    pub stats: Arc<Stats>,
    /// This reactor's own counters (written by this thread only).
    pub counters: Arc<ReactorCounters>,
    /// The server, as [`crate::Request::server`] shows it to a service.
    pub server: ServerHandle,
    /// Where a message sent with permessage-deflate is compressed before it is
    /// framed (reused; see `encode::deflate_message`).
    pub scratch: Vec<u8>,
}

impl ReactorState {
    /// The state of reactor `index` of the server `shared`.
    pub fn for_reactor(shared: &Arc<Shared>, index: usize) -> Self {
        Self {
            cork: Vec::with_capacity(CORK_CAPACITY),
            publishes: Vec::new(),
            batch: TurnBatch::default(),
            topics: Topics::new(shared.topic_counts.clone()),
            channels: Default::default(),
            now: 0,
            stats: shared.stats.clone(),
            counters: shared.counters[index].clone(),
            server: ServerHandle::new(shared.clone()),
            scratch: Vec::new(),
        }
    }

    /// A reactor state outside any server (unit tests), reporting to `stats` and `counts`.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn new(stats: Arc<Stats>, counts: crate::server::pubsub::TopicCounts) -> Self {
        Self::for_reactor(&Arc::new(Shared::detached(stats, counts)), 0)
    }
}

impl ReactorState {
    /// Gives back scratch memory grown by a crowd of connections, once none is left.
    ///
    /// Allocates nothing: the cork is dropped, not replaced, and comes back with the
    /// next connection ([`ReactorState::reserve_cork`]). A buffer allocated here would be placed
    /// among the pages the crowd just freed, often high in this thread's arena, and keep
    /// what lies below it from going back to the system.
    pub fn release_idle_memory(&mut self) {
        self.cork = Vec::new();
        self.publishes = Vec::new();
        self.batch.release();
        self.topics.release_idle_memory();
        self.channels.release_idle_memory();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::OpCode;
    use crate::server::encode::encode_into;

    #[test]
    fn an_idle_turn_holds_no_cork_until_a_connection_comes() {
        let mut reactor = ReactorState::new(Arc::default(), Arc::default());
        assert!(reactor.cork.capacity() >= CORK_CAPACITY);
        encode_into(&mut reactor.cork, OpCode::Text, b"hello");
        reactor.cork.clear();
        reactor.release_idle_memory();
        assert_eq!(reactor.cork.capacity(), 0);
        assert_eq!(reactor.publishes.capacity(), 0);
        reactor.reserve_cork();
        assert!(reactor.cork.capacity() >= CORK_CAPACITY);
        // A cork that has room is left as it is.
        let before = reactor.cork.as_ptr();
        reactor.reserve_cork();
        assert_eq!(reactor.cork.as_ptr(), before);
    }
}
