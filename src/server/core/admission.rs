//! Admission at the core: per-address limits when a connection is accepted, and a
//! trusted proxy's PROXY header before anything else it sends (see
//! `server/admission`). The header is read before TLS (a load balancer passing TLS
//! through puts it in front of the ClientHello).

use std::net::SocketAddr;

use crate::protocol::handshake::Refusal;
use crate::protocol::proxy::ProxyReader;
use crate::server::admission::{self, AtAccept};
use crate::server::config::ServerConfig;
use crate::server::core::conn::Connection;
use crate::server::core::reactor_state::ReactorState;
use crate::server::handler::Service;
use crate::server::metrics::counters::RefusalReason;
use crate::server::shared::Shared;
use crate::server::stats::Stats;

use super::Core;

impl<S: Service, IO> Core<S, IO> {
    /// Decides about a connection just accepted from `peer` (see
    /// [`admission::at_accept`]).
    pub(super) fn admit(&self, peer: SocketAddr) -> AtAccept {
        let now = self.wheel.instant_of(self.reactor.now);
        admission::at_accept(
            &self.config.admission,
            self.shared.addresses.as_ref(),
            peer,
            now,
        )
    }

    /// Bytes from a trusted proxy whose PROXY header is not complete yet: once it is,
    /// the client's address replaces the peer's, the per-address limits decide, and
    /// what followed the header is received as usual.
    pub(super) fn received_proxy_header(&mut self, key: usize, data: &mut [u8]) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        let Some(reader) = slot.proxy.as_mut() else {
            return;
        };
        let (header, used) = match reader.push(data) {
            Ok(None) => return,
            Ok(Some((header, used))) => (Ok(header), used),
            Err(e) => (Err(e), data.len()),
        };
        slot.proxy = None;
        let tls = slot.tls.is_some();
        let peer = slot.conn.state.peer;
        let now = self.wheel.instant_of(self.reactor.now);
        let table = self.shared.addresses.as_ref();
        match admission::after_proxy_header(&self.config.admission, table, header, peer, now) {
            Ok((client, state)) => {
                slot.conn.state.peer = client;
                slot.conn.state.admission = state;
                if used < data.len() {
                    // Nothing was kept before the header: no room is needed in front.
                    self.received(key, &mut data[used..], 0);
                }
            }
            Err((refusal, reason)) => {
                let conn = &mut slot.conn;
                refuse(
                    &self.shared,
                    &self.reactor,
                    &self.config,
                    conn,
                    &refusal,
                    reason,
                    tls,
                );
            }
        }
    }
}

/// Counts and logs (at debug) a refusal made before the request was read, and
/// answers it (status 0: closes at once, without an answer).
fn refuse<H: crate::server::handler::Handler>(
    shared: &Shared,
    reactor: &ReactorState,
    config: &ServerConfig,
    conn: &mut Connection<H>,
    refusal: &Refusal,
    reason: RefusalReason,
    tls: bool,
) {
    Stats::bump(&shared.stats.handshake_refusals);
    reactor.counters.refused(reason);
    tracing::debug!(
        conn = conn.state.id.0,
        peer = %conn.state.peer,
        status = refusal.status,
        reason = reason.label(),
        "connection refused: {}",
        refusal.reason
    );
    if refusal.status == 0 {
        conn.abandon();
        return;
    }
    let mut bytes = Vec::new();
    refusal.write(&mut bytes);
    conn.finish_with(bytes.into(), config, reactor.now, tls);
}

/// Applies the decision `admission` to the new connection `conn`: its admission
/// state, a refusal (answered over TLS when `tls`), or a PROXY header reader to keep.
pub(super) fn apply<H: crate::server::handler::Handler>(
    shared: &Shared,
    reactor: &ReactorState,
    config: &ServerConfig,
    admission: AtAccept,
    conn: &mut Connection<H>,
    tls: bool,
) -> Option<Box<ProxyReader>> {
    match admission {
        AtAccept::Serve(state) => conn.state.admission = state,
        AtAccept::ProxyHeader => return Some(Box::default()),
        AtAccept::Refuse((refusal, reason)) => {
            refuse(shared, reactor, config, conn, &refusal, reason, tls);
        }
    }
    None
}
