//! Requests decided later, on any thread: [`PendingUpgrade`] and [`PendingResponse`].
//!
//! A service that answers [`Upgrade::defer`] or [`HttpResponse::defer`] gets the
//! request as an owned, `Send` value and completes it when it has decided (after
//! asking Redis, a database, an identity provider). Meanwhile the reactor serves
//! everything else; the waiting connection holds its slot, counts against
//! `max_connections` and against `max_pending_requests`, and still ends at
//! `handshake_timeout`, when its client leaves, or at a shutdown.
//!
//! The two sides meet at a [`Ticket`]: the completion and the reactor's giving up
//! race for it, and exactly one wins. A completion that wins queues its decision in
//! the reactor's inbox; one that loses learns [`TooLate`] at once, and what it
//! carried (the handler) is dropped on its own thread.

use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::protocol::handshake::{Refusal, RequestHead};
use crate::server::command::{Command, Decision, SentHandler, Target};
use crate::server::conn_handle::{ConnHandle, Link};
use crate::server::handle::ServerHandle;
use crate::server::handler::{Accepted, Handler, Outcome, Request, Upgrade};
use crate::server::http::HttpResponse;

const WAITING: u8 = 0;
const DECIDED: u8 = 1;
const EXPIRED: u8 = 2;

/// Who settles a deferred request first: its completion or its reactor giving up.
#[derive(Debug, Default)]
pub(crate) struct Ticket(AtomicU8);

impl Ticket {
    /// The completion's claim: `true` if it came first (its decision is then queued
    /// and the reactor waits for it).
    fn decide(&self) -> bool {
        self.0
            .compare_exchange(WAITING, DECIDED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The reactor's claim (timeout, client gone, shutdown): `true` if it came first;
    /// `false` means a decision is already on its way.
    pub fn expire(&self) -> bool {
        self.0
            .compare_exchange(WAITING, EXPIRED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// A completion that came too late: the connection's client left, `handshake_timeout`
/// passed, or the server shut down (the client was answered 503 where it was still
/// there). What the completion carried, a handler say, has been dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLate;

impl fmt::Display for TooLate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the connection no longer waits for this answer (client gone, handshake timeout or shutdown)")
    }
}

impl std::error::Error for TooLate {}

/// The parts both kinds of pending request share.
struct Waiting {
    head: Option<RequestHead>,
    peer: SocketAddr,
    server: ServerHandle,
    target: Target,
    ticket: Arc<Ticket>,
}

impl Waiting {
    fn new(
        head: RequestHead,
        peer: SocketAddr,
        server: ServerHandle,
        target: Target,
        ticket: Arc<Ticket>,
    ) -> Self {
        Self {
            head: Some(head),
            peer,
            server,
            target,
            ticket,
        }
    }

    /// Queues `decision` for the reactor if this completion came first.
    fn complete(&mut self, decision: impl FnOnce(RequestHead) -> Decision) -> Result<(), TooLate> {
        let head = self.head.take().ok_or(TooLate)?;
        if !self.ticket.decide() {
            return Err(TooLate);
        }
        let command = Command::Decided {
            target: self.target,
            decision: decision(head),
        };
        // A reactor that failed meanwhile drops the command (and its connection).
        if let Some(remote) = self.server.shared().remotes.get(self.target.reactor()) {
            remote.send_command(command);
        }
        Ok(())
    }

    fn head(&self) -> &RequestHead {
        self.head
            .as_ref()
            .expect("taken only by a completion, which consumes self")
    }
}

/// An upgrade request whose answer the service deferred ([`Upgrade::defer`]): owned,
/// `Send`, completed from any thread with [`PendingUpgrade::accept`],
/// [`PendingUpgrade::complete`] or [`PendingUpgrade::refuse`].
///
/// Dropped without an answer, it refuses the upgrade with `500` (and logs nothing:
/// the service chose not to answer).
pub struct PendingUpgrade<H> {
    waiting: Waiting,
    handler: PhantomData<fn() -> H>,
}

impl<H> fmt::Debug for PendingUpgrade<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingUpgrade")
            .field("peer", &self.waiting.peer)
            .field("head", &self.waiting.head)
            .finish_non_exhaustive()
    }
}

impl<H> PendingUpgrade<H> {
    pub(crate) fn new(
        head: RequestHead,
        peer: SocketAddr,
        server: ServerHandle,
        target: Target,
        ticket: Arc<Ticket>,
    ) -> Self {
        Self {
            waiting: Waiting::new(head, peer, server, target, ticket),
            handler: PhantomData,
        }
    }

    /// The request, as [`crate::Service::upgrade`] saw it: path, query, headers
    /// (cookies among them), Origin, offered subprotocols and extensions, the peer's
    /// address and the server.
    pub fn request(&self) -> Request<'_> {
        let w = &self.waiting;
        Request::new(w.head(), &[], w.peer, &w.server)
    }

    /// Refuses the upgrade with an HTTP `status` and a short `reason` (the body), as
    /// [`Upgrade::refuse`] does; the TCP connection closes after it.
    ///
    /// # Errors
    ///
    /// [`TooLate`] if the connection no longer waits.
    pub fn refuse(
        mut self,
        status: u16,
        reason: impl Into<std::borrow::Cow<'static, str>>,
    ) -> Result<(), TooLate> {
        let refusal = Refusal::new(status, reason);
        self.waiting.complete(|head| Decision::Upgrade {
            head,
            outcome: Err(refusal),
        })
    }
}

impl<H: Handler + Send> PendingUpgrade<H> {
    /// Accepts the upgrade with `handler`, as [`Upgrade::accept`] does, and returns
    /// the connection's handle (usable at once: what is sent through it goes out after
    /// the `101` response and `on_open`).
    ///
    /// # Errors
    ///
    /// [`TooLate`] if the connection no longer waits (`handler` is dropped here).
    pub fn accept(self, handler: H) -> Result<ConnHandle, TooLate> {
        self.complete(Upgrade::accept(handler))
            .map(|handle| handle.expect("an accepted upgrade has a handle"))
    }

    /// Completes with a whole [`Upgrade`]: accepted (with its subprotocol, response
    /// headers, and compression choice; the connection's handle is returned) or
    /// refused (`None`). An `Upgrade::defer` here is a mistake of the service's and
    /// is answered `500`.
    ///
    /// # Errors
    ///
    /// [`TooLate`] if the connection no longer waits (an accepted handler is dropped
    /// here).
    pub fn complete(mut self, upgrade: Upgrade<H>) -> Result<Option<ConnHandle>, TooLate> {
        let (outcome, handle) = match upgrade.outcome {
            Outcome::Accept(accepted) => {
                let link = Link::new(self.waiting.server.shared_arc(), self.waiting.target);
                let handle = ConnHandle::new(link.clone());
                let accepted = Accepted {
                    handler: Box::new(accepted.handler) as SentHandler,
                    protocol: accepted.protocol,
                    headers: accepted.headers,
                    compression: accepted.compression,
                };
                (Ok((accepted, link)), Some(handle))
            }
            Outcome::Refuse(refusal) => (Err(refusal), None),
            Outcome::Defer(_) => {
                tracing::error!("a PendingUpgrade was completed with Upgrade::defer: answered 500");
                (Err(Refusal::new(500, "internal error")), None)
            }
        };
        self.waiting
            .complete(|head| Decision::Upgrade { head, outcome })?;
        Ok(handle)
    }
}

impl<H> Drop for PendingUpgrade<H> {
    fn drop(&mut self) {
        if self.waiting.head.is_some() {
            let _ = self.waiting.complete(|head| Decision::Upgrade {
                head,
                outcome: Err(Refusal::new(500, "the upgrade was not answered")),
            });
        }
    }
}

/// A plain HTTP request whose response the service deferred
/// ([`HttpResponse::defer`]): owned, `Send`, answered from any thread with
/// [`PendingResponse::respond`]. Later requests on the same kept-alive connection
/// wait for it, so responses stay in order.
///
/// Dropped without an answer, it answers `500`.
pub struct PendingResponse {
    waiting: Waiting,
    body: Vec<u8>,
}

impl fmt::Debug for PendingResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingResponse")
            .field("peer", &self.waiting.peer)
            .field("head", &self.waiting.head)
            .field("body", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl PendingResponse {
    pub(crate) fn new(
        head: RequestHead,
        body: Vec<u8>,
        peer: SocketAddr,
        server: ServerHandle,
        target: Target,
        ticket: Arc<Ticket>,
    ) -> Self {
        Self {
            waiting: Waiting::new(head, peer, server, target, ticket),
            body,
        }
    }

    /// The request, as [`crate::Service::http`] saw it, body included.
    pub fn request(&self) -> Request<'_> {
        let w = &self.waiting;
        Request::new(w.head(), &self.body, w.peer, &w.server)
    }

    /// Sends `response` (a `HEAD` request gets its head only; keep-alive as for an
    /// immediate answer). A deferred response here is a mistake and is answered
    /// `500`.
    ///
    /// # Errors
    ///
    /// [`TooLate`] if the connection no longer waits.
    pub fn respond(mut self, response: HttpResponse) -> Result<(), TooLate> {
        let response = if response.is_deferred() {
            tracing::error!(
                "a PendingResponse was answered with HttpResponse::defer: answered 500"
            );
            HttpResponse::new(500, "internal error\n")
        } else {
            response
        };
        self.waiting
            .complete(|head| Decision::Http { head, response })
    }
}

impl Drop for PendingResponse {
    fn drop(&mut self) {
        if self.waiting.head.is_some() {
            let _ = self.waiting.complete(|head| Decision::Http {
                head,
                response: HttpResponse::new(500, "the request was not answered\n"),
            });
        }
    }
}
