//! Commands from other threads (`command.rs`), applied at a wake-up: deferred
//! decisions and handle calls, each for the connection it names, if it is still
//! there (same slab key and id).

use crate::server::command::{Command, Target};
use crate::server::core::{Core, Transport};
use crate::server::handler::Service;

impl<S: Service, IO> Core<S, IO> {
    /// Applies `command`. A handle's message joins the connection's outbox and is
    /// written at the end of the turn with everything else delivered in it; anything
    /// else is served at once, as after a read.
    pub(super) fn apply<T: Transport<IO>>(&mut self, command: Command, t: &mut T) {
        let target = match &command {
            Command::Decided { target, .. } | Command::Conn { target, .. } => *target,
        };
        if !self.holds(target) {
            // Dropped here: a decision's handler and link go with it (the link's
            // handles already answer `Gone`, or will once marked).
            if let Command::Decided { decision, .. } = command {
                drop_decision(decision);
            }
            return;
        }
        let key = target.key;
        let stopping = self.stopping;
        self.contained(Some(key), t, |core, t| {
            let mut env = env!(core);
            let Some(slot) = core.conns.get_mut(key) else {
                return;
            };
            let queued = match command {
                Command::Decided { decision, .. } => {
                    slot.conn.decided(decision, stopping, &mut env);
                    false
                }
                Command::Conn { op, .. } => {
                    let queued = matches!(op, crate::server::command::ConnOp::Send(_));
                    slot.conn.apply(op, &mut env);
                    queued && env.reactor.cork.is_empty()
                }
            };
            if queued {
                if !slot.conn.state.dirty {
                    slot.conn.state.dirty = true;
                    core.dirty.push(key);
                }
            } else {
                core.served(key, t);
            }
        });
    }

    /// Whether the connection `target` names is still the one at its key.
    fn holds(&self, target: Target) -> bool {
        self.conns
            .get(target.key)
            .is_some_and(|slot| slot.conn.state.id == target.id)
    }
}

/// A decision for a connection that is gone: its handles learn it.
fn drop_decision(decision: crate::server::command::Decision) {
    if let crate::server::command::Decision::Upgrade {
        outcome: Ok((_, link)),
        ..
    } = decision
    {
        link.mark_gone();
    }
}
