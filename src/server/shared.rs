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

use crate::server::bridge::BridgeShared as Bridge;
use crate::server::command::{Command, Outgoing, Target};
use crate::server::config::{Backend, ServerConfig};
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
    /// Commands (`command.rs`), each with the number of publishes queued before it,
    /// so the reactor applies both in the order they were queued.
    commands: Vec<(usize, Command)>,
    /// Small frames sent through handles, end to end (`Outgoing::Arena`).
    frames: Vec<u8>,
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

    /// Queues `command` behind everything queued so far, waking the reactor as
    /// [`Remote::send_publishes`] does. Returns `false` (and drops the command) if the
    /// reactor is gone.
    pub fn send_command(&self, command: Command) -> bool {
        let inbox = self.lock();
        if inbox.closed {
            return false;
        }
        self.queue(inbox, command);
        true
    }

    /// Queues a small message for `target`, encoding its frame (`opcode`, `payload`,
    /// uncompressed) straight into the inbox's frame arena. Returns the frame's
    /// length, or `None` (nothing queued) if the reactor is gone.
    pub fn send_small(
        &self,
        target: Target,
        opcode: crate::protocol::OpCode,
        payload: &[u8],
    ) -> Option<usize> {
        let mut inbox = self.lock();
        if inbox.closed {
            return None;
        }
        let start = inbox.frames.len();
        crate::server::encode::encode_frame_into(&mut inbox.frames, opcode, payload, false);
        let range = start..inbox.frames.len();
        let len = range.len();
        let message = Outgoing::Arena(range);
        self.queue(inbox, Command::Send { target, message });
        Some(len)
    }

    /// Queues `command` behind the publishes queued so far, and wakes the reactor.
    fn queue(&self, mut inbox: MutexGuard<'_, Inbox>, command: Command) {
        let at = inbox.publishes.len();
        inbox.commands.push((at, command));
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
        inbox.frames = Vec::new();
        let commands = std::mem::take(&mut inbox.commands);
        // Dropped outside the lock: a handler dropped with its decision runs the
        // application's code, which may use a handle (and so this inbox).
        drop(inbox);
        drop(commands);
    }

    /// Takes everything queued: the publishes, the commands (each with how many of
    /// the publishes came before it), and the shutdown's phase. `spare` (empty) takes
    /// the commands' place, so that a reactor that keeps handing back the list it
    /// drained spares the senders from growing a new one at every wake-up; the
    /// same for the frame arena and `spare_frames`.
    pub fn take(&self, spare: Vec<(usize, Command)>, spare_frames: Vec<u8>) -> Taken {
        debug_assert!(spare.is_empty() && spare_frames.is_empty());
        let mut inbox = self.lock();
        inbox.woken = false;
        Taken {
            publishes: std::mem::take(&mut inbox.publishes),
            commands: std::mem::replace(&mut inbox.commands, spare),
            frames: std::mem::replace(&mut inbox.frames, spare_frames),
            shutdown: inbox.shutdown,
        }
    }
}

/// What a reactor took from its inbox (see [`Remote::take`]).
pub(crate) struct Taken {
    pub publishes: Vec<Publish>,
    pub commands: Vec<(usize, Command)>,
    /// The frame arena the commands' `Outgoing::Arena` ranges point into.
    pub frames: Vec<u8>,
    pub shutdown: ShutdownPhase,
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
    /// The server's configuration (handles check sends against its limits).
    pub config: Arc<ServerConfig>,
    /// The service's `Handler` type, which [`crate::ConnHandle::run`] checks.
    pub handler_type: std::any::TypeId,
    /// Sequencing and history of channels (`channels/`).
    pub channels: Arc<dyn crate::server::channels::engine::Engine>,
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
            config: Arc::default(),
            handler_type: std::any::TypeId::of::<()>(),
            channels: Arc::new(crate::server::channels::memory::MemoryEngine::new(
                Default::default(),
                usize::MAX,
            )),
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
