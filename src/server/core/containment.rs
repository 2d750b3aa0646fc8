//! What a reactor does when its own code fails.
//!
//! Handler panics are caught around each callback (`conn.rs`). This is the next ring
//! out: a panic in the server's own code while it serves one connection (reading,
//! writing, a timer, a delivery) closes that connection (1011 where a close frame can
//! still be written), counts it in `stats().internal_errors`, logs it at `error`, and
//! the reactor goes on with every other connection. A failure that belongs to no one
//! connection ends the reactor: it closes its connections the same way, stops
//! accepting (the driver closes its listening socket) so new connections go to the
//! other reactors, and reports a [`ReactorFailure`] (on the handle, from
//! `Server::join`, in the log).

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use crate::protocol::CloseCode;
use crate::protocol::close::encode_close_payload;
use crate::protocol::frame::OpCode;
use crate::server::core::{Core, Transport};
use crate::server::encode::encode_into;
use crate::server::failure::{ReactorFailure, panic_message};
use crate::server::handler::Service;
use crate::server::stats::Stats;

impl<S: Service, IO> Core<S, IO> {
    /// Runs `serve`, which works for the connection at `key` (or, with `None`, for
    /// no connection in particular), with the driver's transport `t`. A panic fails
    /// that connection (see [`Core::fail_internal`]); with no connection, it is the
    /// reactor's and unwinds on.
    pub fn contained<T: Transport<IO>>(
        &mut self,
        key: Option<usize>,
        t: &mut T,
        serve: impl FnOnce(&mut Self, &mut T),
    ) {
        let Err(panic) = catch_unwind(AssertUnwindSafe(|| serve(self, t))) else {
            return;
        };
        let Some(key) = key else {
            resume_unwind(panic);
        };
        // The cork may hold a half-encoded frame of the failed connection.
        self.reactor.cork.clear();
        self.fail_internal(key, &*panic, t);
    }

    /// The reactor failed (`cause`: a panic outside any connection, or its event
    /// source): reports it (log, handle, the inbox closed so nothing piles up for
    /// it) and ends every connection with 1011. The driver closes its listener.
    pub fn fail_reactor<T: Transport<IO>>(&mut self, cause: String, t: &mut T) -> ReactorFailure {
        let failure = ReactorFailure {
            reactor: self.index,
            cause,
        };
        tracing::error!(
            reactor = failure.reactor,
            connections = self.conns.len(),
            "{failure}; closing its connections, the other reactors go on"
        );
        self.shared.remotes[self.index].close();
        self.shared.report_failure(failure.clone());
        // It hands on nothing more: a shutdown need not wait for it.
        self.settle();
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| self.abandon(t))) {
            tracing::error!(
                reactor = self.index,
                "closing the failed reactor's connections panicked too: {}",
                panic_message(&*panic)
            );
        }
        failure
    }

    /// Reports a panic in the server's own code while serving the connection at `key`
    /// (counted in `internal_errors`, logged at `error`) and ends that connection: the
    /// handler hears 1011, the peer gets a 1011 close frame if nothing half-written is
    /// queued before it (else only the TCP close), and the connection is dropped.
    pub(super) fn fail_internal<T: Transport<IO>>(
        &mut self,
        key: usize,
        panic: &(dyn Any + Send),
        t: &mut T,
    ) {
        Stats::bump(&self.shared.stats.internal_errors);
        tracing::error!(
            reactor = self.index,
            conn = self.conns.get(key).map(|slot| slot.conn.state.id.0),
            "panic in wavecore while serving a connection: {}; closing it (1011)",
            panic_message(panic)
        );
        self.fail(key, t);
    }

    /// Ends the connection at `key` with 1011 (see [`Core::fail_internal`]).
    fn fail<T: Transport<IO>>(&mut self, key: usize, t: &mut T) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        let was_open = slot.conn.is_open();
        let mut env = env!(self);
        let _ = catch_unwind(AssertUnwindSafe(|| slot.conn.fail(&mut env)));
        if was_open && slot.conn.state.outbox.is_empty() && slot.tls.is_none() {
            // Everything queued went out whole, so the stream is at a frame boundary.
            let mut payload = [0u8; 125];
            let n = encode_close_payload(CloseCode::INTERNAL_ERROR, "internal error", &mut payload);
            let mut frame = Vec::with_capacity(n + 2);
            encode_into(&mut frame, OpCode::Close, &payload[..n]);
            // Best effort, and the connection is released right after. (Not over
            // TLS: the session may be what failed.)
            t.write_last(key, &mut slot.io, &frame);
        }
        self.remove(key, t);
    }

    /// Ends every connection of a failed reactor (see [`Core::fail`]).
    fn abandon<T: Transport<IO>>(&mut self, t: &mut T) {
        self.reactor.cork.clear();
        let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.fail(key, t);
        }
    }
}

#[cfg(test)]
mod tests;
