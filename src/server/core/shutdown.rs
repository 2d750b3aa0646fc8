//! The graceful shutdown a command from another thread starts (see `inbox.rs`), in
//! two phases (see `shared.rs`): settle (stop accepting, hand this turn's publishes
//! on), then close every connection with 1001.

use std::time::Instant;

use crate::server::core::{Core, Transport};
use crate::server::handler::Service;

impl<S: Service, IO> Core<S, IO> {
    /// Whether a graceful shutdown has started: the driver stops accepting (closes its
    /// listening socket).
    pub fn is_shutting_down(&self) -> bool {
        self.stopping
    }

    /// Whether a graceful shutdown is complete at `now`: every connection finished,
    /// or `shutdown_timeout` passed (the driver then drops what is left). Logs the
    /// outcome when it says yes.
    pub fn finished(&self, now: Instant) -> bool {
        let done = self
            .shutdown_deadline
            .is_some_and(|deadline| self.conns.is_empty() || now >= deadline);
        if done {
            self.log_stop();
        }
        done
    }

    /// Counts this reactor as settled for a shutdown, once (see `shared.rs`).
    pub(super) fn settle(&mut self) {
        if !std::mem::replace(&mut self.settled, true) {
            self.shared.settle();
        }
    }

    /// Closes every open connection with 1001 (Going Away, RFC 6455 §7.4.1) and drops
    /// those not yet upgraded; the rest finish within `shutdown_timeout`.
    pub(super) fn begin_shutdown<T: Transport<IO>>(&mut self, now: Instant, t: &mut T) {
        tracing::debug!(
            reactor = self.index,
            connections = self.conns.len(),
            "reactor shutting down"
        );
        self.shutdown_deadline = Some(now + self.config.shutdown_timeout);
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.contained(Some(key), t, |core, t| {
                let mut env = env!(core);
                if let Some(slot) = core.conns.get_mut(key) {
                    slot.conn.shut_down(&mut env);
                }
                core.served(key, t);
            });
        }
    }
}
