//! What the reactors and server handles share: counters, topic counts, and each
//! reactor's inbox with the waker that rouses it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use mio::Waker;

use crate::server::bridge::Core as Bridge;
use crate::server::failure::ReactorFailure;
use crate::server::metrics::counters::ReactorCounters;
use crate::server::pubsub::{Publish, TopicCounts};
use crate::server::stats::{Stats, StatsSnapshot};

/// Commands waiting for one reactor.
#[derive(Debug, Default)]
struct Inbox {
    publishes: Vec<Publish>,
    shutdown: bool,
    /// The reactor is gone (it failed): nothing more is queued for it.
    closed: bool,
}

/// A reactor as other threads see it: an inbox and a waker.
#[derive(Debug)]
pub(crate) struct Remote {
    waker: Waker,
    inbox: Mutex<Inbox>,
}

impl Remote {
    /// A remote for the reactor whose poll made `waker`.
    pub fn new(waker: Waker) -> Self {
        Self {
            waker,
            inbox: Mutex::new(Inbox::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues publishes; wakes the reactor only if its inbox was empty (otherwise a
    /// wake-up is already on its way), so one wake-up carries a whole batch.
    pub fn send_publishes(&self, publishes: impl Iterator<Item = Publish>) {
        let mut inbox = self.lock();
        if inbox.closed {
            return;
        }
        let was_empty = inbox.publishes.is_empty() && !inbox.shutdown;
        inbox.publishes.extend(publishes);
        drop(inbox);
        if was_empty {
            let _ = self.waker.wake();
        }
    }

    /// Asks the reactor to shut down gracefully.
    pub fn send_shutdown(&self) {
        self.lock().shutdown = true;
        let _ = self.waker.wake();
    }

    /// Marks the reactor gone: what is queued is dropped and nothing more is queued, so
    /// a failed reactor's inbox does not grow for ever.
    pub fn close(&self) {
        let mut inbox = self.lock();
        inbox.closed = true;
        inbox.publishes = Vec::new();
    }

    /// Takes everything queued: the publishes, and whether shutdown was asked.
    pub fn take(&self) -> (Vec<Publish>, bool) {
        let mut inbox = self.lock();
        (std::mem::take(&mut inbox.publishes), inbox.shutdown)
    }
}

/// Server-wide state.
#[derive(Debug)]
pub(crate) struct Shared {
    pub local_addr: SocketAddr,
    pub stats: Arc<Stats>,
    pub topic_counts: TopicCounts,
    pub remotes: Vec<Remote>,
    /// The bridge to other servers, if one is set.
    pub bridge: Option<Arc<Bridge>>,
    /// Reactors that stopped before a shutdown asked them to.
    pub failures: Mutex<Vec<ReactorFailure>>,
    /// Each reactor's own counters, by reactor index.
    pub counters: Vec<Arc<ReactorCounters>>,
    /// The permessage-deflate policy, if on: publishes made outside a reactor (the
    /// handle, the bridge) are compressed with it too.
    pub deflate: Option<crate::protocol::deflate::DeflateConfig>,
}

impl Shared {
    /// State for a turn outside any server (unit tests of a connection): no
    /// reactors to reach, one set of counters.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn detached(stats: Arc<Stats>, topic_counts: TopicCounts) -> Self {
        Self {
            local_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stats,
            topic_counts,
            remotes: Vec::new(),
            bridge: None,
            failures: Mutex::new(Vec::new()),
            counters: vec![Arc::default()],
            deflate: None,
        }
    }

    /// Every counter: the shared ones and the sums of the reactors' own.
    pub fn stats(&self) -> StatsSnapshot {
        let mut snapshot = self.stats.snapshot();
        for c in &self.counters {
            snapshot.messages_received += c.messages_received.get();
            snapshot.message_bytes_received += c.bytes_received.get();
            snapshot.messages_sent += c.messages_sent.get();
            snapshot.message_bytes_sent += c.bytes_sent.get();
            snapshot.backpressure_events += c.backpressure_events.get();
            snapshot.publishes += c.publishes.get();
            snapshot.deliveries += c.deliveries.get();
        }
        snapshot.bridge = self.bridge.as_ref().map(|bridge| bridge.stats());
        snapshot
    }

    /// Topics with at least one subscriber, all reactors together.
    pub fn topic_count(&self) -> usize {
        self.topic_counts.lock().len()
    }

    /// Records a reactor's failure (see [`ReactorFailure`]).
    pub fn report_failure(&self, failure: ReactorFailure) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(failure);
    }

    /// The reactors' failures so far.
    pub fn failures(&self) -> Vec<ReactorFailure> {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
