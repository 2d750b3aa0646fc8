//! What a [`crate::ConnHandle`] asks of an open connection, applied on its reactor
//! between callbacks (see `command.rs`).

use std::any::Any;

use crate::server::command::ConnOp;
use crate::server::conn::{Connection, Env};
use crate::server::handler::{Handler, Service};
use crate::server::outbox::Delivery;
use crate::server::pubsub::Publish;

impl<H: Handler> Connection<H> {
    /// Applies `op`. A message goes into the outbox (written with everything else at
    /// the end of the turn) under the backpressure policy, as a broadcast delivery
    /// does; the rest acts through the connection's [`crate::Conn`], as a callback
    /// would (a panic in a `run` closure closes the connection with 1011). Does
    /// nothing once the connection left the open state.
    pub fn apply<S: Service<Handler = H>>(&mut self, op: ConnOp, env: &mut Env<'_, S>) {
        if !self.is_open() {
            return;
        }
        match op {
            ConnOp::Send(publish) => {
                if let Some(link) = &self.state.link {
                    link.taken(publish.frame.len());
                }
                env.reactor.counters.sent(payload_len(&publish));
                let frame = match &publish.deflated {
                    Some(deflated)
                        if self
                            .state
                            .deflate_window
                            .is_some_and(|window| window >= deflated.needs) =>
                    {
                        &deflated.frame
                    }
                    _ => &publish.frame,
                };
                self.deliver(Delivery::Shared(frame), env);
            }
            ConnOp::Close(code, reason) => self.call(env, |_, conn| conn.close(code, &reason)),
            ConnOp::Subscribe(topic) => self.call(env, |_, conn| {
                conn.subscribe(&topic);
            }),
            ConnOp::Unsubscribe(topic) => self.call(env, |_, conn| {
                conn.unsubscribe(&topic);
            }),
            ConnOp::Run(run) => self.call(env, |handler, conn| run(handler as &mut dyn Any, conn)),
            ConnOp::OverLimit => {
                let cork = Some(&mut env.reactor.cork);
                self.state.over_limit(env.config, &env.reactor.stats, cork);
            }
        }
        self.after_callbacks(env);
    }
}

/// The payload length of a message sent through a handle (its frame less the
/// header).
fn payload_len(publish: &Publish) -> usize {
    let frame = &publish.frame;
    let header = match frame.get(1).map(|b| b & 0x7f) {
        Some(127) => 10,
        Some(126) => 4,
        _ => 2,
    };
    frame.len().saturating_sub(header)
}
