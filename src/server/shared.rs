//! What the reactors and server handles share: counters, topic counts, each
//! reactor's inbox with the waker that rouses it, and the graceful shutdown's barrier.
//!
//! A graceful shutdown has two phases, so that a publish accepted on one reactor
//! before the shutdown cannot reach another reactor after that reactor has sent its
//! connections Close 1001. In the first ([`ShutdownPhase::Settling`]) every reactor
//! stops accepting and, at the end of the turn that saw the request (after handing
//! that turn's publishes to the other reactors' inboxes), reports itself settled. When
//! the last one has ([`Shared::settle`]), every inbox gets [`ShutdownPhase::Closing`]:
//! a reactor takes the publishes queued before it (the inbox keeps their order) and
//! only then closes its connections with 1001.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::server::bridge::Core as Bridge;
use crate::server::config::Backend;
use crate::server::failure::ReactorFailure;
use crate::server::metrics::counters::ReactorCounters;
use crate::server::pubsub::{Publish, TopicCounts};
use crate::server::stats::{Stats, StatsSnapshot};

/// Rouses a reactor blocked in its event source, from any thread (the driver's:
/// a mio `Waker` for epoll, an eventfd for io_uring).
pub(crate) trait Wake: Send + Sync {
    /// Wakes the reactor; several wake-ups before it looks may count as one.
    ///
    /// # Errors
    ///
    /// The system call's error (the wake-up is then lost: the caller logs nothing,
    /// since a reactor that cannot be woken has failed in its own loop too).
    fn wake(&self) -> io::Result<()>;
}

/// Where a graceful shutdown stands for one reactor (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ShutdownPhase {
    /// No shutdown asked.
    #[default]
    Running,
    /// Asked: stop accepting, hand the turn's publishes on, then [`Shared::settle`].
    Settling,
    /// Every reactor settled: close the connections with 1001.
    Closing,
}

/// Commands waiting for one reactor.
#[derive(Debug, Default)]
struct Inbox {
    publishes: Vec<Publish>,
    shutdown: ShutdownPhase,
    /// A wake-up was sent since the reactor last took its inbox: it will come.
    woken: bool,
    /// The reactor is gone (it failed): nothing more is queued for it.
    closed: bool,
}

/// A reactor as other threads see it: an inbox and a waker.
pub(crate) struct Remote {
    waker: Box<dyn Wake>,
    inbox: Mutex<Inbox>,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("inbox", &self.inbox)
            .finish_non_exhaustive()
    }
}

impl Remote {
    /// A remote for the reactor that `waker` rouses.
    pub fn new(waker: Box<dyn Wake>) -> Self {
        Self {
            waker,
            inbox: Mutex::new(Inbox::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues publishes; wakes the reactor only if no wake-up is on its way since it
    /// last took its inbox, so one wake-up carries a whole batch.
    pub fn send_publishes(&self, publishes: impl Iterator<Item = Publish>) {
        let mut inbox = self.lock();
        if inbox.closed {
            return;
        }
        inbox.publishes.extend(publishes);
        self.wake(inbox);
    }

    /// Moves the reactor's shutdown on to `phase` (never back).
    pub fn send_shutdown(&self, phase: ShutdownPhase) {
        let mut inbox = self.lock();
        if phase <= inbox.shutdown {
            return;
        }
        inbox.shutdown = phase;
        self.wake(inbox);
    }

    fn wake(&self, mut inbox: MutexGuard<'_, Inbox>) {
        let wake = !std::mem::replace(&mut inbox.woken, true);
        drop(inbox);
        if wake {
            let _ = self.waker.wake();
        }
    }

    /// Marks the reactor gone: what is queued is dropped and nothing more is queued, so
    /// a failed reactor's inbox does not grow for ever.
    pub fn close(&self) {
        let mut inbox = self.lock();
        inbox.closed = true;
        inbox.publishes = Vec::new();
    }

    /// Takes everything queued: the publishes, and the shutdown's phase.
    pub fn take(&self) -> (Vec<Publish>, ShutdownPhase) {
        let mut inbox = self.lock();
        inbox.woken = false;
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
    /// Reactors that have settled for a shutdown (or failed), see [`Shared::settle`].
    pub settled: AtomicUsize,
    /// The backend the reactors run on (never `Auto`: what `Auto` chose).
    pub backend: Backend,
    /// The TLS configuration new connections start with, for a TLS server.
    pub tls: Option<Arc<crate::server::tls::Acceptor>>,
    /// The per-address admission table, when per-address limits are set.
    pub addresses: Option<Arc<crate::server::admission::per_address::AddressTable>>,
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
            settled: AtomicUsize::new(0),
            backend: Backend::Epoll,
            tls: None,
            addresses: None,
        }
    }

    /// Starts a graceful shutdown: every reactor settles, then closes.
    pub fn shutdown(&self) {
        for remote in &self.remotes {
            remote.send_shutdown(ShutdownPhase::Settling);
        }
    }

    /// Called once by each reactor: after the turn in which it saw the shutdown (its
    /// publishes handed on), or when it fails (it will hand on nothing more). The last
    /// call moves every reactor to [`ShutdownPhase::Closing`].
    pub fn settle(&self) {
        if self.settled.fetch_add(1, Ordering::AcqRel) + 1 == self.remotes.len() {
            for remote in &self.remotes {
                remote.send_shutdown(ShutdownPhase::Closing);
            }
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
