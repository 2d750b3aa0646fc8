//! What a connection tells the log (through `tracing`): handler panics at `error`,
//! refused requests and protocol closes at `debug`. Each happens at most once per
//! connection or request, never per message.

use std::any::Any;

use crate::protocol::CloseCode;
use crate::protocol::handshake::Refusal;
use crate::server::core::conn::state::ConnState;
use crate::server::core::reactor_state::ReactorState;
use crate::server::failure::panic_message;
use crate::server::metrics::counters::RefusalReason;
use crate::server::stats::Stats;

/// A handler callback panicked: counted in `handler_panics`, logged at `error` with
/// the panic message and the connection; the caller closes with 1011.
pub(super) fn handler_panic(
    reactor: &ReactorState,
    state: &ConnState,
    callback: &'static str,
    panic: &(dyn Any + Send),
) {
    Stats::bump(&reactor.stats.handler_panics);
    tracing::error!(
        conn = state.id.0,
        peer = %state.peer,
        callback,
        "handler panicked in {callback}: {}; closing the connection with 1011",
        panic_message(panic)
    );
}

/// `Service::upgrade` or `Service::http` panicked: counted in `handler_panics`,
/// logged at `error`; the caller answers 500.
pub(super) fn service_panic(
    reactor: &ReactorState,
    state: &ConnState,
    method: &'static str,
    panic: &(dyn Any + Send),
) {
    Stats::bump(&reactor.stats.handler_panics);
    tracing::error!(
        conn = state.id.0,
        peer = %state.peer,
        callback = method,
        "Service::{method} panicked: {}; answering 500",
        panic_message(panic)
    );
}

/// `Service::upgrade` chose a subprotocol the client did not offer (an application
/// bug: every conforming client fails such a handshake, RFC 6455 section 4.1):
/// logged at `error`; the caller answers 500.
pub(super) fn unoffered_protocol(state: &ConnState, protocol: &str) {
    tracing::error!(
        conn = state.id.0,
        peer = %state.peer,
        protocol,
        "Service::upgrade chose subprotocol {protocol:?}, which the client did not offer; answering 500"
    );
}

/// A request was refused with an HTTP error (`debug`).
pub(super) fn refusal(state: &ConnState, refusal: &Refusal, reason: RefusalReason) {
    tracing::debug!(
        conn = state.id.0,
        peer = %state.peer,
        status = refusal.status,
        reason = reason.label(),
        "request refused: {} {}",
        refusal.status,
        refusal.reason
    );
}

/// The peer broke the protocol or a size limit; we close with `code` (`debug`).
pub(super) fn protocol_close(state: &ConnState, code: CloseCode, reason: &str) {
    tracing::debug!(
        conn = state.id.0,
        peer = %state.peer,
        code = code.0,
        "closing with {}: {reason}",
        code.0
    );
}
