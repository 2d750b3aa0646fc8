//! What the reactor core asks of its backend: the only ways its decisions reach a
//! socket, and the one output contract both kinds of backend share.
//!
//! The core never makes a system call. Whenever it has decided something that needs
//! one (write these bytes, pause or resume reading, shut down our side, forget a
//! socket) it calls its backend through this trait, passing the backend's own
//! per-connection state (`IO`: a socket for the epoll backend, a descriptor and the
//! state of its operations for the io_uring backend, an in-memory peer in the tests).
//!
//! ## Output
//!
//! The core keeps what a connection has to send (its outbox, and the reactor's cork
//! for the replies of the bytes just read). How those bytes leave depends on how the
//! backend writes, which it says once with [`Transport::sends`]:
//!
//! * [`Sends::Now`] (readiness): whenever a connection has bytes, the core lends them
//!   to [`Transport::write_now`] as borrowed slices for the length of the call; the
//!   backend writes what the socket takes and returns how much. What it did not take
//!   stays queued, and the backend calls [`crate::server::core::Core::write`] when the
//!   socket has room again.
//! * [`Sends::Later`] (completion): the core keeps every byte queued as memory a
//!   write can own, and lists the connection as ready. After the turn the backend
//!   takes the list ([`crate::server::core::Core::take_ready`]), takes each
//!   connection's bytes as frozen shared buffers
//!   ([`crate::server::core::Core::sendable`]: alive and unmoved until the backend
//!   drops them, whatever becomes of the connection), starts one write per
//!   connection, and reports each completion
//!   ([`crate::server::core::Core::sent`]). One write is in flight per connection at
//!   a time; the core lists the connection again when more waits.
//!
//! Either way the backend reports what was written and the core decides the rest:
//! backpressure, `on_drain`, flow control, when a connection ends.

use std::io::{self, IoSlice};

/// How a backend writes (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sends {
    /// At once, from borrowed slices ([`Transport::write_now`]).
    Now,
    /// After the turn, from owned memory (`Core::take_ready`, `Core::sendable`,
    /// `Core::sent`).
    Later,
}

/// A backend's side of the core's decisions (see the module docs).
pub(crate) trait Transport<IO> {
    /// How this backend writes; the same answer for every call.
    fn sends(&self) -> Sends;

    /// For a [`Sends::Now`] backend: writes what the socket of the connection at
    /// `key` takes now of `slices` (in order, as one stream); returns the bytes taken.
    /// Never called on a [`Sends::Later`] backend.
    ///
    /// # Errors
    ///
    /// `WouldBlock` when the socket takes nothing now (the backend calls
    /// [`crate::server::core::Core::write`] once it has room); `Interrupted` to be
    /// retried at once; any other error ends the connection as if the peer had gone.
    fn write_now(&mut self, key: usize, io: &mut IO, slices: &[IoSlice<'_>]) -> io::Result<usize>;

    /// Writes `bytes`, the last the connection will send (a 1011 close frame when the
    /// server's own code failed), just before [`Transport::release`]: best effort,
    /// whatever the socket does not take is lost. A [`Sends::Later`] backend keeps its
    /// own copy in flight past the release.
    fn write_last(&mut self, key: usize, io: &mut IO, bytes: &[u8]);

    /// Shuts down our side of the connection (TCP `FIN`) once everything is written;
    /// the peer's EOF is still awaited.
    fn shutdown_write(&mut self, io: &mut IO);

    /// Reading the connection at `key` stops for flow control: more than
    /// `high_water_mark` bytes wait for its peer. Bytes the backend already holds
    /// (read, or received into its buffers) may still be handed to the core; no new
    /// read is started until [`Transport::resume_reading`].
    fn pause_reading(&mut self, key: usize, io: &mut IO);

    /// Reading the connection at `key`, paused for flow control, may go on: its
    /// outbox fell under half the high-water mark. The backend reads it after the core
    /// call that said so returns.
    fn resume_reading(&mut self, key: usize, io: &mut IO);

    /// The connection at `key` is gone from the core (its slab key may be reused by
    /// the next connection): the backend closes the socket and forgets it.
    fn release(&mut self, key: usize, io: IO);
}

/// A writer for the bytes of the connection at `key`, as the outbox and the TLS
/// session call one: `t`'s [`Transport::write_now`] for a [`Sends::Now`] backend,
/// noting in `wrote` whether the socket took any byte (for
/// [`crate::server::core::conn::state::ConnState::wrote_since_ping`]); for a
/// [`Sends::Later`] backend, `WouldBlock`: every byte stays queued, as owned memory,
/// for the backend's write after the turn.
pub(super) fn writer<'a, IO, T: Transport<IO>>(
    t: &'a mut T,
    key: usize,
    io: &'a mut IO,
    wrote: &'a mut bool,
) -> impl FnMut(&[IoSlice<'_>]) -> io::Result<usize> + 'a {
    let now = t.sends() == Sends::Now;
    move |slices| {
        if !now {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let written = t.write_now(key, io, slices);
        *wrote |= written.as_ref().is_ok_and(|&n| n > 0);
        written
    }
}
