//! The turn loop, written once for every backend, and the contract a backend fills.
//!
//! One turn: ask the core how long the reactor may sleep, let the backend wait that
//! long, then take what happened one event at a time (accepted connections, accept
//! failures, wake-ups; the backend serves connections' reads and writes with the core
//! as it meets them), resume accepting when a pause ends, end the turn in the core
//! (timers, publishes to the other reactors, the flush of every connection delivered
//! to), let the backend start the I/O the turn decided, and stop once a graceful
//! shutdown has finished. A failure (a panic outside any one connection, or the
//! event source failing) closes every connection with 1011, stops accepting and is
//! reported.
//!
//! ## What a backend does
//!
//! A [`Backend`] says how bytes move and how a turn waits, nothing more: every
//! decision about a connection is the core's (`core/`), and every decision about the
//! turn is this loop's. The calling order, which every backend can rely on:
//!
//! 1. [`Backend::start`], once, before the first turn.
//! 2. Each turn: [`Backend::wait`] with the core's timeout;
//!    [`Backend::resume_accepting`] when a pause has ended; then
//!    [`Backend::next_event`] until it returns `None`. Between two calls the loop
//!    may call the core with the backend as its [`Transport`] (to open a connection
//!    or deliver a wake-up), then [`Backend::opened`] after opening one;
//!    [`Backend::pause_accepting`] after an [`Event::AcceptFailed`].
//! 3. Once the events are taken: [`crate::server::core::Core::end_turn`], then
//!    [`Backend::end_turn`].
//! 4. [`Backend::stop_accepting`] once a shutdown starts (and after a failure); it
//!    may be called more than once.
//! 5. After a failure: [`Backend::failed`], once, after the core closed every
//!    connection; the backend is dropped after it.
//!
//! Inside [`Backend::next_event`] and [`Backend::end_turn`] a backend calls the core
//! for its connections: [`crate::server::core::Core::received`] then
//! [`crate::server::core::Core::write`] for bytes read,
//! [`crate::server::core::Core::eof`], [`crate::server::core::Core::write`] when a
//! socket has room again (readiness), [`crate::server::core::Core::sent`] when a
//! write completed (completion), and [`crate::server::core::Core::served`] once done
//! with a connection for now, each inside [`crate::server::core::Core::contained`].

use std::io;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use crate::server::core::{Core, Transport};
use crate::server::driver::AcceptPause;
use crate::server::failure::{ReactorFailure, panic_message};
use crate::server::handler::Service;
use crate::server::stats::Stats;

/// What a backend met that the turn loop acts on (connections' own reads and writes
/// the backend serves itself, with the core).
pub(crate) enum Event<IO> {
    /// A connection was accepted from `peer`; `IO` is the backend's state for it,
    /// ready to live at the core's [`Core::vacant_key`] (the loop opens it there).
    Accepted(IO, SocketAddr),
    /// Accepting failed for a reason that does not go away by retrying at once
    /// (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`...): the loop pauses accepting for a
    /// tick (see [`accept_error`] for what is retried instead).
    AcceptFailed(io::Error),
    /// Another thread woke the reactor (publishes, commands, shutdown wait in its
    /// inbox).
    Woken,
}

/// How bytes move and how a turn waits (see the module docs for the calling order).
pub(crate) trait Backend: Transport<Self::Io> {
    /// The backend's state for one connection, kept by the core beside it.
    type Io;

    /// Arms what the first turn waits on (the listener, the wake-up).
    ///
    /// # Errors
    ///
    /// The event source refused (the reactor fails).
    fn start(&mut self) -> io::Result<()>;

    /// Starts what was queued and waits until something happens or `timeout` passes
    /// (`None`: no limit).
    ///
    /// # Errors
    ///
    /// The event source failed (the reactor fails); `EINTR` is not an error.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()>;

    /// The next event of the wait for the loop, serving on the way, with `core`, the
    /// connections whose sockets became readable or writable, or whose operations
    /// completed. `None`: nothing more this turn.
    ///
    /// # Errors
    ///
    /// The event source failed (the reactor fails).
    fn next_event<S: Service>(
        &mut self,
        core: &mut Core<S, Self::Io>,
    ) -> io::Result<Option<Event<Self::Io>>>;

    /// The connection accepted as [`Event::Accepted`] was opened at `key` (it may be
    /// gone already: refused, or dropped): start reading it.
    fn opened<S: Service>(&mut self, core: &mut Core<S, Self::Io>, key: usize);

    /// Stops accepting until [`Backend::resume_accepting`].
    fn pause_accepting(&mut self);

    /// Accepting goes on after a pause; connections waiting are taken through
    /// [`Backend::next_event`].
    fn resume_accepting(&mut self);

    /// Stops accepting for good: closes this reactor's listening socket (its own, or
    /// its duplicate of the shared one), so new connections go to no one (a shutdown)
    /// or to the other reactors (a failure).
    fn stop_accepting(&mut self);

    /// The turn ended in the core: starts what it decided (writes, reads to resume)
    /// and gives back what a burst grew.
    ///
    /// # Errors
    ///
    /// The event source failed (the reactor fails).
    fn end_turn<S: Service>(&mut self, core: &mut Core<S, Self::Io>) -> io::Result<()>;

    /// The reactor failed and the core closed every connection: sends what that
    /// queued (the 1011 close frames) as far as it goes without waiting.
    fn failed(&mut self);
}

/// What to do about an error from `accept`: `None` to go on accepting (`EINTR`, a
/// connection aborted before it was taken), else the error that pauses accepting.
/// `WouldBlock` is the backend's to see first (nothing more to accept).
pub(crate) fn accept_error(error: io::Error) -> Option<io::Error> {
    match error.kind() {
        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted => None,
        _ => Some(error),
    }
}

/// One reactor: its core and its backend, and the state of accepting.
pub(crate) struct Reactor<S: Service, B: Backend> {
    core: Core<S, B::Io>,
    backend: B,
    /// Accepting is paused until a tick (after `EMFILE` and the like).
    accept_pause: AcceptPause,
}

impl<S: Service, B: Backend> Reactor<S, B> {
    /// A reactor of `core` over `backend`.
    pub fn new(core: Core<S, B::Io>, backend: B) -> Self {
        Self {
            core,
            backend,
            accept_pause: AcceptPause::default(),
        }
    }

    /// Runs the reactor until a graceful shutdown completes, or until it fails; a
    /// failure is reported before this returns it.
    ///
    /// # Errors
    ///
    /// The [`ReactorFailure`]: a panic outside any one connection, or the event
    /// source failing.
    pub fn run_reported(mut self) -> Result<(), ReactorFailure> {
        let cause = match catch_unwind(AssertUnwindSafe(|| self.run())) {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(error)) => format!("event source failed: {error}"),
            Err(panic) => format!("panicked: {}", panic_message(&*panic)),
        };
        let failure = self.core.fail_reactor(cause, &mut self.backend);
        self.stop_accepting();
        self.backend.failed();
        Err(failure)
    }

    /// Runs turns until a graceful shutdown completes.
    fn run(&mut self) -> io::Result<()> {
        self.backend.start()?;
        loop {
            let timeout = self
                .core
                .poll_timeout(Instant::now(), self.accept_pause.is_paused());
            self.backend.wait(timeout)?;
            let woke = Instant::now();
            self.core.begin_turn(woke);
            if self.accept_pause.ended(self.core.tick()) {
                self.backend.resume_accepting();
            }
            while let Some(event) = self.backend.next_event(&mut self.core)? {
                match event {
                    Event::Accepted(io, peer) => self.open(io, peer),
                    Event::AcceptFailed(error) => {
                        self.accept_pause.start(&self.core, &error);
                        self.backend.pause_accepting();
                    }
                    Event::Woken => {
                        self.core.wake(Instant::now(), &mut self.backend);
                        if self.core.is_shutting_down() {
                            self.stop_accepting();
                        }
                    }
                }
            }
            self.core.end_turn(Instant::now(), &mut self.backend);
            self.backend.end_turn(&mut self.core)?;
            self.core.observe_turn(woke.elapsed());
            if self.core.finished(Instant::now()) {
                return Ok(());
            }
        }
    }

    /// Opens a connection the backend accepted, at the core's vacant key.
    fn open(&mut self, io: B::Io, peer: SocketAddr) {
        Stats::bump(&self.core.shared().stats.accepted);
        let key = self.core.vacant_key();
        self.core.open(io, peer, &mut self.backend);
        self.backend.opened(&mut self.core, key);
    }

    fn stop_accepting(&mut self) {
        self.accept_pause.clear();
        self.backend.stop_accepting();
    }
}
