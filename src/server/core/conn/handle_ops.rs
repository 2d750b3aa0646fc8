//! What a [`crate::ConnHandle`] asks of an open connection, applied on its reactor
//! between callbacks (see `command.rs`).

use std::any::Any;

use crate::server::command::ConnOp;
use crate::server::core::conn::{Connection, Env};
use crate::server::handler::{Handler, Service};

impl<H: Handler> Connection<H> {
    /// Applies `op` through the connection's [`crate::Conn`], as a callback would (a
    /// panic in a `run` closure closes the connection with 1011). Does nothing once
    /// the connection left the open state. (Messages take another way: see
    /// `core/commands.rs`.)
    pub fn apply<S: Service<Handler = H>>(&mut self, op: ConnOp, env: &mut Env<'_, S>) {
        if !self.is_open() {
            return;
        }
        match op {
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
