//! What a reactor tells the log about its own life (failures are in `containment.rs`).

use crate::server::core::Core;
use crate::server::handler::Service;

impl<S: Service, IO> Core<S, IO> {
    /// The reactor returns after a graceful shutdown: `debug` when every connection
    /// finished its close, `warn` with the count when `shutdown_timeout` cut some off.
    pub(super) fn log_stop(&self) {
        let left = self.conns.len();
        if left == 0 {
            tracing::debug!(reactor = self.index, "reactor stopped");
        } else {
            tracing::warn!(
                reactor = self.index,
                connections = left,
                "shutdown_timeout passed: dropping {left} connection(s) that did not finish closing"
            );
        }
    }
}
