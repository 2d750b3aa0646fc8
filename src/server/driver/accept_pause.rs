//! Accepting paused after an `accept` failed for want of resources (`EMFILE`,
//! `ENFILE`, `ENOBUFS`, `ENOMEM`...): the listening socket stays ready, so accepting
//! again at once would spin. Both drivers stop for one timer tick (100 ms) and then
//! accept what waited.

use std::io;

use crate::server::core::Core;
use crate::server::core::timer::Tick;
use crate::server::handler::Service;
use crate::server::stats::Stats;

/// Whether accepting is paused, and until which tick.
#[derive(Debug, Default)]
pub(crate) struct AcceptPause(Option<Tick>);

impl AcceptPause {
    /// `accept` failed with `error`: counted (`accept_errors`), logged at `error`,
    /// and accepting pauses until the next tick of `core`.
    pub fn start<S: Service, IO>(&mut self, core: &Core<S, IO>, error: &io::Error) {
        Stats::bump(&core.shared().stats.accept_errors);
        tracing::error!(reactor = core.index(), %error, "accept failed; pausing accepts for 100 ms");
        self.0 = Some(core.tick() + 1);
    }

    /// Whether accepting is paused (the driver's wait must then end at the next
    /// tick: [`Core::poll_timeout`]'s `waiting`).
    pub fn is_paused(&self) -> bool {
        self.0.is_some()
    }

    /// Whether the pause is over at `now`; once it is, it is cleared.
    pub fn ended(&mut self, now: Tick) -> bool {
        match self.0 {
            Some(until) if now >= until => {
                self.0 = None;
                true
            }
            _ => false,
        }
    }

    /// Forgets the pause (the listener is closing).
    pub fn clear(&mut self) {
        self.0 = None;
    }
}
