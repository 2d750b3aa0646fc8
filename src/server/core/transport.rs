//! What the reactor core asks of its driver: the only ways its decisions reach a
//! socket.
//!
//! The core never makes a system call. Whenever it has decided something that needs
//! one (write these bytes, shut down our side, resume reading, forget a socket) it
//! calls its driver through this trait, passing the driver's own per-connection
//! state (`IO`: a socket for the epoll driver, a descriptor and the bookkeeping of its
//! operations in flight for a completion driver, an in-memory peer in the tests).
//!
//! A readiness driver (epoll) writes at once, from the borrowed slices. A completion
//! driver cannot keep borrowed slices past the call: its [`Transport::write`] takes
//! nothing (`WouldBlock`), which makes the core keep every byte in the connection's
//! outbox, and the driver submits the outbox's frozen bytes after the turn ends (see
//! `outbox.rs`).

use std::io::{self, IoSlice};

/// A driver's side of the core's decisions (see the module docs).
pub(crate) trait Transport<IO> {
    /// Writes what the socket of the connection at `key` takes now of `slices` (in
    /// order, as one stream); returns the bytes taken.
    ///
    /// # Errors
    ///
    /// `WouldBlock` when nothing can be taken now (the driver tells the core when to
    /// try again, with [`crate::server::core::Core::write`] or
    /// [`crate::server::core::Core::sent`]); `Interrupted` to be retried at once; any
    /// other error ends the connection as if the peer had gone.
    fn write(&mut self, key: usize, io: &mut IO, slices: &[IoSlice<'_>]) -> io::Result<usize>;

    /// Whether [`Transport::write`] defers rather than writes (a completion driver):
    /// its `WouldBlock` then means "queued for the turn's submission", not "the
    /// socket is full", and sends queued behind such bytes are not backpressure
    /// (see [`crate::server::conn::state::ConnState::socket_full`]).
    fn defers_writes(&self) -> bool {
        false
    }

    /// Writes `bytes`, the last the connection will send (a 1011 close frame when the
    /// server's own code failed), just before [`Transport::release`]: best effort,
    /// whatever the socket does not take is lost. A completion driver keeps its own
    /// copy in flight past the release.
    fn write_last(&mut self, key: usize, io: &mut IO, bytes: &[u8]) {
        let _ = self.write(key, io, &[IoSlice::new(bytes)]);
    }

    /// Shuts down our side of the connection (TCP `FIN`) once everything is written;
    /// the peer's EOF is still awaited.
    fn shutdown_write(&mut self, io: &mut IO);

    /// Reading the connection at `key`, paused for flow control, may go on: its
    /// outbox fell under half the high-water mark. The driver reads it after the core
    /// call that said so returns.
    fn resume_reading(&mut self, key: usize, io: &mut IO);

    /// The connection at `key` is gone from the core (its slab key may be reused by
    /// the next connection): the driver closes the socket and forgets it.
    fn release(&mut self, key: usize, io: IO);
}

/// `t`'s [`Transport::write`] for the connection at `key`, noting in `wrote` whether
/// the socket took any byte (for
/// [`crate::server::conn::state::ConnState::wrote_since_ping`]).
pub(super) fn noting_writes<'a, IO, T: Transport<IO>>(
    t: &'a mut T,
    key: usize,
    io: &'a mut IO,
    wrote: &'a mut bool,
) -> impl FnMut(&[IoSlice<'_>]) -> io::Result<usize> + 'a {
    move |slices| {
        let written = t.write(key, io, slices);
        *wrote |= written.as_ref().is_ok_and(|&n| n > 0);
        written
    }
}
