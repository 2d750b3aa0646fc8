//! Time in the core: connection timers as the driver's clock moves on.

use std::time::Instant;

use crate::server::core::{Core, Transport};
use crate::server::handler::Service;

impl<S: Service, IO> Core<S, IO> {
    /// Runs every connection timer due at `now` (handshake, idle and close
    /// timeouts, automatic pings).
    pub(super) fn run_timers<T: Transport<IO>>(&mut self, now: Instant, t: &mut T) {
        self.fired.clear();
        // The turn's clock moves to the time the wheel is moved to, so a timer that
        // came due while the turn ran (a long handler, say) finds its deadline passed.
        self.reactor.now = self.wheel.tick_of(now);
        self.wheel.advance(now, &mut self.fired);
        let fired = std::mem::take(&mut self.fired);
        for timer in &fired {
            let Some(slot) = self.conns.get_mut(timer.key) else {
                continue;
            };
            let state = &slot.conn.state;
            if state.id.0 != timer.id || state.timer_due != timer.due {
                continue;
            }
            slot.conn.state.timer_due = 0;
            self.contained(Some(timer.key), t, |core, t| core.fire_timer(timer.key, t));
        }
        self.fired = fired;
    }

    /// Connection `key`'s timer is due.
    fn fire_timer<T: Transport<IO>>(&mut self, key: usize, t: &mut T) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        let mut env = env!(self);
        slot.conn.on_timer(&mut env);
        self.served(key, t);
        // A connection whose timer fires has been quiet (or is closing): give back
        // the outbox allocation kept for busy subscribers.
        if let Some(slot) = self.conns.get_mut(key) {
            slot.conn.state.outbox.release();
        }
    }
}
