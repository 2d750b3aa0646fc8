//! One connection reached from any thread: [`ConnHandle`].
//!
//! A handle queues commands (`command.rs`) in the inbox of the connection's reactor,
//! which applies them at its next wake-up, all that arrived together in one batch:
//! one lock and at most one wake-up per batch on the sending side, and no lock,
//! channel operation or system call per message on the reactor's. The reactor marks
//! the handle's [`Link`] gone when the connection leaves the open state, so a handle
//! answers [`HandleStatus::Gone`] from then on without asking it; a command that was
//! already queued finds, by the connection's id, that its slot now holds another
//! connection (or none) and is dropped.

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::protocol::CloseCode;
use crate::protocol::frame::header_len;
use crate::server::command::{Command, ConnOp, Outgoing, Target};
use crate::server::config::BackpressurePolicy;
use crate::server::conn_api::{Conn, ConnId};
use crate::server::handler::{Handler, Message};
use crate::server::pubsub::Publish;
use crate::server::shared::Shared;
use crate::server::stats::Stats;

/// Payloads up to this many bytes (and not compressed) are encoded straight into the
/// reactor's inbox instead of a buffer of their own.
const ARENA_MAX: usize = 4096;

/// What became of a [`ConnHandle`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandleStatus {
    /// Queued for the connection's reactor, which applies it at its next wake-up, in
    /// the order this handle's calls were made.
    Queued,
    /// The connection has left the open state (closed, closing, failed, or its
    /// upgrade never completed): nothing was queued.
    Gone,
    /// Not queued: the bytes this connection's handles have queued and its reactor
    /// has not yet taken would pass `max_backpressure`. Under
    /// [`BackpressurePolicy::Close`] the connection is being closed with 1008 (Policy
    /// Violation, RFC 6455 §7.4.1) as a slow reader is; under
    /// [`BackpressurePolicy::Drop`] only this message was dropped (counted in
    /// `dropped_messages`).
    Dropped,
    /// [`ConnHandle::run`] named a handler type that is not the server's
    /// `Service::Handler`: nothing was queued.
    WrongHandler,
}

/// What a connection's handles share with its reactor.
#[derive(Debug)]
pub(crate) struct Link {
    shared: Arc<Shared>,
    target: Target,
    /// The connection left the open state (set by its reactor).
    gone: AtomicBool,
    /// Bytes of messages sent through handles and not yet taken by the reactor.
    queued: AtomicUsize,
    /// Bytes waiting in the connection's outbox, as its reactor last saw them.
    buffered: AtomicUsize,
    /// An `OverLimit` command was queued (once).
    over_limit: AtomicBool,
}

impl Link {
    /// The link of the connection at `target` of the server `shared`.
    pub fn new(shared: Arc<Shared>, target: Target) -> Arc<Self> {
        Arc::new(Self {
            shared,
            target,
            gone: AtomicBool::new(false),
            queued: AtomicUsize::new(0),
            buffered: AtomicUsize::new(0),
            over_limit: AtomicBool::new(false),
        })
    }

    /// The connection left the open state: every handle answers `Gone` from now on.
    pub fn mark_gone(&self) {
        self.gone.store(true, Ordering::Release);
    }

    /// The connection's outbox holds `bytes` after its reactor served it.
    pub fn note_buffered(&self, bytes: usize) {
        self.buffered.store(bytes, Ordering::Relaxed);
    }

    /// The reactor took `bytes` of a message sent through a handle.
    pub fn taken(&self, bytes: usize) {
        self.queued.fetch_sub(bytes, Ordering::AcqRel);
    }

    fn send(&self, op: ConnOp) -> HandleStatus {
        self.queue(Command::Conn {
            target: self.target,
            op,
        })
    }

    fn queue(&self, command: Command) -> HandleStatus {
        if self.gone.load(Ordering::Acquire) {
            return HandleStatus::Gone;
        }
        let remote = self.shared.remotes.get(self.target.reactor());
        if remote.is_some_and(|remote| remote.send_command(command)) {
            HandleStatus::Queued
        } else {
            HandleStatus::Gone
        }
    }
}

/// A `Send + Sync + Clone` handle to one WebSocket connection, usable from any thread:
/// send to it, close it, subscribe it to topics, or run code on its reactor with its
/// [`Handler`]. Get one from [`Conn::handle`] (in any callback, `on_open` say) or
/// from [`crate::PendingUpgrade::accept`].
///
/// Each call queues a command for the connection's reactor and returns at once,
/// without blocking or waiting for the reactor: [`HandleStatus::Queued`], or
/// [`HandleStatus::Gone`] once the connection has left the open state (for as long
/// as anybody holds the handle). A command queued just before the connection closed
/// is dropped by the reactor; one for a connection whose slot a new connection took
/// never reaches the new one.
///
/// **Order.** What one thread does through the handles of one connection reaches it
/// in the order done. Against the connection's own callbacks, a command runs between
/// two of them (never during one): a message sent through a handle goes out after
/// everything callbacks sent before the reactor took it, and before what they send
/// after. Against publishes from other threads ([`crate::ServerHandle::publish`]),
/// everything queued on the same reactor keeps the order it was queued in, so a
/// thread that subscribes a connection through its handle and then publishes to the
/// topic reaches it.
///
/// **Cost.** A handle is one pointer (an `Arc`): the first one made for a connection
/// allocates the shared link (about 80 bytes with the allocator's overhead), later
/// ones share it. A send encodes the frame on the calling thread: a small one (up to
/// 4 KiB, not compressed) straight into the reactor's inbox, with no allocation of
/// its own; a larger one into a buffer of its own (compressed there too, when the
/// server has permessage-deflate on and the message is worth it). The reactor writes
/// it with everything else it sends that turn. `docs/benchmarks.md` has the
/// measurements.
#[derive(Clone)]
pub struct ConnHandle {
    link: Arc<Link>,
}

impl fmt::Debug for ConnHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnHandle")
            .field("id", &self.link.target.id)
            .field("gone", &self.is_gone())
            .finish()
    }
}

impl ConnHandle {
    pub(crate) fn new(link: Arc<Link>) -> Self {
        Self { link }
    }

    /// The connection's id (as [`Conn::id`] says it).
    pub fn id(&self) -> ConnId {
        self.link.target.id
    }

    /// Whether the connection has left the open state: every call answers
    /// [`HandleStatus::Gone`]. `false` does not promise that the next call finds it
    /// open (it may close meanwhile; the call then says so or its command is dropped).
    pub fn is_gone(&self) -> bool {
        self.link.gone.load(Ordering::Acquire)
    }

    /// Sends a text or binary message. It obeys `max_backpressure` and the
    /// backpressure policy as [`Conn::send`] does, counting the bytes queued through
    /// handles and not yet taken by the reactor as well as those waiting for the
    /// socket (as the reactor last saw them): past the limit,
    /// [`HandleStatus::Dropped`]. A message the handle queued can still meet a
    /// queue that filled meanwhile when the reactor takes it: the policy applies
    /// there as it does to [`Conn::send`] (closed with 1008, or dropped and counted
    /// in `dropped_messages`).
    pub fn send(&self, message: Message<'_>) -> HandleStatus {
        let link = &self.link;
        if link.gone.load(Ordering::Acquire) {
            return HandleStatus::Gone;
        }
        let config = &link.shared.config;
        let size = header_len(message.len() as u64, false) + message.len();
        let waiting = link.queued.load(Ordering::Acquire) + link.buffered.load(Ordering::Relaxed);
        if config.passes_backpressure(waiting, size) {
            return self.over_limit();
        }
        let deflate = link.shared.deflate.as_ref();
        let taken = if message.len() <= ARENA_MAX
            && deflate.is_none_or(|config| message.len() < config.min_message_size)
        {
            // Small and never compressed: encoded straight into the reactor's inbox.
            link.queued.fetch_add(size, Ordering::AcqRel);
            if link.gone.load(Ordering::Acquire) {
                link.taken(size);
                return HandleStatus::Gone;
            }
            let remote = link.shared.remotes.get(link.target.reactor());
            match remote
                .and_then(|r| r.send_small(link.target, message.opcode(), message.as_bytes()))
            {
                Some(_) => return HandleStatus::Queued,
                None => size,
            }
        } else {
            let publish = Publish::new(None, message, None, deflate);
            let taken = publish.frame.len();
            link.queued.fetch_add(taken, Ordering::AcqRel);
            let status = link.queue(Command::Send {
                target: link.target,
                message: Outgoing::Own(publish),
            });
            if status == HandleStatus::Queued {
                return status;
            }
            taken
        };
        link.taken(taken);
        HandleStatus::Gone
    }

    /// Sends a text message (see [`ConnHandle::send`]).
    pub fn send_text(&self, text: &str) -> HandleStatus {
        self.send(Message::Text(text))
    }

    /// Sends a binary message (see [`ConnHandle::send`]).
    pub fn send_binary(&self, bytes: &[u8]) -> HandleStatus {
        self.send(Message::Binary(bytes))
    }

    /// Starts the closing handshake with `code` and `reason` (cut to 123 bytes), as
    /// [`Conn::close`] does; the handler's `on_close` follows on its reactor.
    pub fn close(&self, code: CloseCode, reason: &str) -> HandleStatus {
        self.link.send(ConnOp::Close(code, reason.to_owned()))
    }

    /// Subscribes the connection to `topic` (as [`Conn::subscribe`]; already
    /// subscribed, nothing changes).
    pub fn subscribe(&self, topic: &str) -> HandleStatus {
        self.link.send(ConnOp::Subscribe(topic.to_owned()))
    }

    /// Unsubscribes the connection from `topic` (as [`Conn::unsubscribe`]).
    pub fn unsubscribe(&self, topic: &str) -> HandleStatus {
        self.link.send(ConnOp::Unsubscribe(topic.to_owned()))
    }

    /// Runs `f` on the connection's reactor thread with its handler and its [`Conn`],
    /// between two callbacks (what uWebSockets' `Loop::defer` is used for): state
    /// that lives in the handler can be changed from a worker. `H` must be the
    /// server's `Service::Handler` type, else [`HandleStatus::WrongHandler`]. A panic
    /// in `f` is contained like a callback's: the connection closes with 1011, the
    /// reactor and every other connection go on. If the connection closes before its
    /// reactor takes the command, `f` is dropped without running.
    pub fn run<H, F>(&self, f: F) -> HandleStatus
    where
        H: Handler,
        F: FnOnce(&mut H, &mut Conn<'_>) + Send + 'static,
    {
        if TypeId::of::<H>() != self.link.shared.handler_type {
            return HandleStatus::WrongHandler;
        }
        self.link
            .send(ConnOp::Run(Box::new(move |handler: &mut dyn Any, conn| {
                if let Some(handler) = handler.downcast_mut::<H>() {
                    f(handler, conn);
                }
            })))
    }

    /// A send passed the limit: the policy applies (see [`HandleStatus::Dropped`]).
    fn over_limit(&self) -> HandleStatus {
        let link = &self.link;
        match link.shared.config.backpressure_policy {
            BackpressurePolicy::Drop => Stats::bump(&link.shared.stats.dropped_messages),
            BackpressurePolicy::Close => {
                if !link.over_limit.swap(true, Ordering::AcqRel) {
                    link.send(ConnOp::OverLimit);
                }
            }
        }
        HandleStatus::Dropped
    }
}
