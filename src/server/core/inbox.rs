//! The reactor's inbox: what other threads hand it (publishes from the other
//! reactors and the bridge, commands through handles and pending requests, a
//! shutdown), taken once per wake-up, in the order it was queued.

use std::time::Instant;

use crate::server::core::{Core, Transport};
use crate::server::handler::Service;
use crate::server::shared::ShutdownPhase;

impl<S: Service, IO> Core<S, IO> {
    /// Another thread woke this reactor: delivers the publishes waiting in its inbox
    /// and starts a graceful shutdown if one was asked (the deadline counts from
    /// `now`). A panic here is the reactor's own: it unwinds to the driver.
    pub fn wake<T: Transport<IO>>(&mut self, now: Instant, t: &mut T) {
        self.contained(None, t, |core, t| core.drain_inbox(now, t));
    }

    /// Commands from other threads: publishes and shutdown. Publishes queued before a
    /// shutdown's `Closing` are delivered before the connections start closing.
    fn drain_inbox<T: Transport<IO>>(&mut self, now: Instant, t: &mut T) {
        let spare = std::mem::take(&mut self.spare_commands);
        let spare_frames = std::mem::take(&mut self.spare_frames);
        let taken = self.shared.remotes[self.index].take(spare, spare_frames);
        let (publishes, shutdown) = (taken.publishes, taken.shutdown);
        #[cfg(test)]
        crate::server::testing::on_inbox(&publishes);
        // Publishes and commands in the order they were queued.
        self.apply_all(&publishes, taken.commands, taken.frames, t);
        if shutdown >= ShutdownPhase::Settling && !self.settled {
            self.stopping = true;
            self.settle_due = true;
        }
        if shutdown == ShutdownPhase::Closing && self.shutdown_deadline.is_none() {
            self.stopping = true;
            self.begin_shutdown(now, t);
        }
    }
}
