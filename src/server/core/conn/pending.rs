//! A connection waiting for an answer the service deferred to another thread
//! ([`crate::Upgrade::defer`], [`crate::HttpResponse::defer`]).
//!
//! ```text
//! Handshake --upgrade, defer--> Pending --accept--> Open
//!    ^  \--HTTP request, defer--> |  \--refuse, HTTP answer--> Finishing / KeepAlive
//!    |                            \--timeout, shutdown: 503; EOF--> Finishing / Done
//! ```
//!
//! While it waits, the connection holds a [`Deferred`]: the ticket it races the
//! completion for, and the bytes that arrived meanwhile (a request the client
//! pipelined behind this one), served once the answer is written. Dropping the
//! `Deferred`, whatever the path (answered, timed out, client gone, reactor failed),
//! gives the ticket up and frees its place under `max_pending_requests`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::protocol::handshake::{Refusal, RequestHead, RequestKind, classify};
use crate::server::command::{Decision, Target};
use crate::server::core::conn::{Connection, Env, Phase, ticks};
use crate::server::handler::{Accepted, Handler, PendingUpgrade, Service};
use crate::server::metrics::counters::RefusalReason;
use crate::server::pending::{PendingResponse, Ticket};
use crate::server::stats::Stats;

/// A connection's side of a deferred request (see the module docs).
#[derive(Debug)]
pub(crate) struct Deferred {
    ticket: Arc<Ticket>,
    /// Bytes received while waiting, in order.
    held: Vec<u8>,
    /// Where the server counts waiting requests.
    stats: Arc<Stats>,
}

impl Deferred {
    /// Keeps bytes that arrived while waiting.
    pub fn hold(&mut self, bytes: &[u8]) {
        self.held.extend_from_slice(bytes);
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        self.ticket.expire();
        self.stats.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A deferred request that could not wait: `503` with `Retry-After`.
fn unavailable(reason: &'static str) -> Refusal {
    Refusal::service_unavailable(reason).with_header("Retry-After", "1")
}

impl<H: Handler> Connection<H> {
    /// The service deferred the upgrade `head`: the connection waits, and `decide`
    /// gets the pending upgrade (unless too many requests wait already: 503).
    pub(super) fn defer_upgrade<S: Service<Handler = H>>(
        &mut self,
        head: RequestHead,
        decide: Box<dyn FnOnce(PendingUpgrade<H>) + Send>,
        env: &mut Env<'_, S>,
    ) {
        let Some(ticket) = self.start_waiting(env) else {
            return;
        };
        let pending = PendingUpgrade::new(
            head,
            self.state.peer,
            env.reactor.server.clone(),
            self.target(),
            ticket,
        );
        self.hand_over(|| decide(pending), "upgrade", env);
    }

    /// The service deferred the answer to the plain HTTP request `head` (with
    /// `body`): the connection waits, as [`Connection::defer_upgrade`].
    pub(super) fn defer_http<S: Service<Handler = H>>(
        &mut self,
        head: &RequestHead,
        body: &[u8],
        decide: Box<dyn FnOnce(PendingResponse) + Send>,
        env: &mut Env<'_, S>,
    ) {
        let Some(ticket) = self.start_waiting(env) else {
            return;
        };
        let pending = PendingResponse::new(
            head.clone(),
            body.to_vec(),
            self.state.peer,
            env.reactor.server.clone(),
            self.target(),
            ticket,
        );
        self.hand_over(|| decide(pending), "http", env);
    }

    /// Takes a place under `max_pending_requests` and enters [`Phase::Pending`];
    /// returns the ticket to race for, or `None` (the client answered 503).
    fn start_waiting<S>(&mut self, env: &mut Env<'_, S>) -> Option<Arc<Ticket>> {
        let stats = &env.reactor.stats;
        if stats.pending.fetch_add(1, Ordering::AcqRel) >= env.config.max_pending_requests {
            stats.pending.fetch_sub(1, Ordering::AcqRel);
            let refusal = unavailable("too many requests waiting for an answer");
            self.refuse_for(&refusal, RefusalReason::Pending, env);
            return None;
        }
        let ticket = Arc::new(Ticket::default());
        self.phase = Phase::Pending(Box::new(Deferred {
            ticket: ticket.clone(),
            held: Vec::new(),
            stats: stats.clone(),
        }));
        Some(ticket)
    }

    /// Calls the service's `decide` (a panic is the service's: reported; the pending
    /// request it dropped answers 500 through the inbox).
    fn hand_over<S>(&mut self, decide: impl FnOnce(), what: &'static str, env: &mut Env<'_, S>) {
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(decide)) {
            super::report::service_panic(env.reactor, &self.state, what, &*panic);
        }
    }

    fn target(&self) -> Target {
        Target {
            key: self.state.key,
            id: self.state.id,
        }
    }

    /// Whether the bytes held while waiting passed what a request head and body may
    /// take: the reactor stops reading the connection until the answer came.
    pub fn holds_too_much(&self, config: &crate::server::config::ServerConfig) -> bool {
        matches!(&self.phase, Phase::Pending(deferred)
            if deferred.held.len() > config.max_handshake_bytes + config.max_http_body_size)
    }

    /// The reactor gives up waiting (a timeout, a shutdown): if no answer is on its
    /// way, the client gets 503 and the completion will learn it is too late;
    /// otherwise the answer, already queued, is awaited one more tick.
    pub(super) fn give_up_waiting<S>(&mut self, reason: &'static str, env: &mut Env<'_, S>) {
        let Phase::Pending(deferred) = &self.phase else {
            return;
        };
        if deferred.ticket.expire() {
            self.phase = Phase::Done;
            self.refuse_for(&unavailable(reason), RefusalReason::Pending, env);
        } else {
            self.deadline = env.reactor.now + ticks(crate::server::core::timer::TICK);
        }
    }

    /// The service's answer to the deferred request arrived (`stopping`: the server
    /// is shutting down). Ignored unless the connection still waits; the bytes
    /// held meanwhile are served after it.
    pub fn decided<S: Service<Handler = H>>(
        &mut self,
        decision: Decision,
        stopping: bool,
        env: &mut Env<'_, S>,
    ) {
        if !matches!(self.phase, Phase::Pending(_)) {
            if let Decision::Upgrade {
                outcome: Ok((_, link)),
                ..
            } = &decision
            {
                link.mark_gone();
            }
            return;
        }
        let Phase::Pending(mut deferred) = std::mem::replace(&mut self.phase, Phase::Done) else {
            unreachable!("matched above");
        };
        let mut held = std::mem::take(&mut deferred.held);
        drop(deferred);
        match decision {
            Decision::Upgrade { head, outcome } => {
                self.upgrade_decided(&head, outcome, stopping, env)
            }
            Decision::Http { head, response } => {
                self.write_response(&head, response, env);
                if stopping && matches!(self.phase, Phase::KeepAlive) {
                    self.phase = Phase::Finishing { linger: false };
                }
            }
        }
        if !held.is_empty() {
            self.receive(&mut held, env);
        }
    }

    fn upgrade_decided<S: Service<Handler = H>>(
        &mut self,
        head: &RequestHead,
        outcome: Result<
            (
                Accepted<crate::server::command::SentHandler>,
                Arc<crate::server::conn_handle::Link>,
            ),
            Refusal,
        >,
        stopping: bool,
        env: &mut Env<'_, S>,
    ) {
        let (accepted, link) = match outcome {
            Err(refusal) => return self.refuse_for(&refusal, RefusalReason::Service, env),
            Ok(accepted) => accepted,
        };
        let key = match classify(head) {
            Ok(RequestKind::WebSocket { key }) => key,
            // The head passed these checks before it was deferred.
            _ => unreachable!("a deferred upgrade is a valid upgrade"),
        };
        if stopping {
            link.mark_gone();
            let refusal = unavailable("server shutting down");
            return self.refuse_for(&refusal, RefusalReason::Pending, env);
        }
        // A `PendingUpgrade<H>` is made only for the service's own handler type.
        let Ok(handler) = accepted.handler.downcast::<H>() else {
            link.mark_gone();
            let refusal = Refusal::new(500, "internal error");
            return self.refuse_for(&refusal, RefusalReason::Service, env);
        };
        self.state.link = Some(link);
        let accepted = Accepted {
            handler: *handler,
            protocol: accepted.protocol,
            headers: accepted.headers,
            compression: accepted.compression,
        };
        self.accept_upgrade(head, &key, accepted, env);
    }
}
