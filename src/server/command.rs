//! Work other threads queue for one reactor beside publishes: the decision on a
//! connection's deferred upgrade or HTTP request ([`crate::PendingUpgrade`],
//! [`crate::PendingResponse`]), and what a [`crate::ConnHandle`] asks of its
//! connection. Carried in the reactor's inbox (`shared.rs`), in the order queued, and
//! applied by `core/commands.rs` at the next wake-up, a whole batch at a time.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::protocol::CloseCode;
use crate::protocol::handshake::{Refusal, RequestHead};
use crate::server::conn_api::{Conn, ConnId};
use crate::server::conn_handle::Link;
use crate::server::handler::Accepted;
use crate::server::http::HttpResponse;
use crate::server::pubsub::Publish;

/// The connection a command is for: its slab key on the reactor, and its id, which a
/// connection that reuses the key does not share (so a command never reaches it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Target {
    pub key: usize,
    pub id: ConnId,
}

impl Target {
    /// The index of the reactor that serves the connection (the top bits of its id).
    pub fn reactor(&self) -> usize {
        (self.id.0 >> 48) as usize
    }
}

/// One command for a reactor.
pub(crate) enum Command {
    /// The application decided a deferred request.
    Decided { target: Target, decision: Decision },
    /// A message sent through a [`crate::ConnHandle`], encoded (and compressed,
    /// where that applies) by the sender.
    Send { target: Target, message: Outgoing },
    /// Any other [`crate::ConnHandle`] call.
    Conn { target: Target, op: ConnOp },
    /// A channel's history was lost or a gap opened in its live stream (its Redis
    /// engine saw a new epoch, or read past what the stream still held): this
    /// reactor's subscribers to it are closed with `code`, so that they reconnect and
    /// are told whether they recovered, never given a silent gap. Those in epoch
    /// `keep` (the channel's epoch now) stay: they subscribed since and were told of
    /// it. `None`: every one is closed.
    ChannelLost {
        channel: Arc<str>,
        keep: Option<u64>,
        code: CloseCode,
        reason: &'static str,
    },
}

/// An accepted upgrade whose handler crossed threads: the reactor downcasts it back
/// to its service's handler type.
pub(crate) type SentHandler = Box<dyn Any + Send>;

/// The application's decision on a deferred request, with the request head back
/// (the reactor needs its key, offers and method to answer).
pub(crate) enum Decision {
    /// Accept (with the connection's handle link, made when the decision was) or
    /// refuse an upgrade.
    Upgrade {
        head: RequestHead,
        outcome: Result<(Accepted<SentHandler>, Arc<Link>), Refusal>,
    },
    /// Answer a plain HTTP request.
    Http {
        head: RequestHead,
        response: HttpResponse,
    },
}

/// A message sent through a handle, as the sender encoded it.
pub(crate) enum Outgoing {
    /// A small uncompressed frame, laid in the inbox's frame arena (`shared.rs`) at
    /// this range: no allocation of its own.
    Arena(std::ops::Range<usize>),
    /// A frame of its own (a large message, or one compressed with
    /// permessage-deflate beside the plain one).
    Own(Publish),
}

impl Outgoing {
    /// The plain frame's length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Outgoing::Arena(range) => range.len(),
            Outgoing::Own(publish) => publish.frame.len(),
        }
    }
}

/// A closure to run on the connection's reactor with its handler (type-checked by
/// the handle that queued it).
pub(crate) type RunOnReactor = Box<dyn FnOnce(&mut dyn Any, &mut Conn<'_>) + Send>;

/// What a [`crate::ConnHandle`] asks of its connection.
pub(crate) enum ConnOp {
    /// Start the closing handshake.
    Close(CloseCode, String),
    Subscribe(String),
    Unsubscribe(String),
    Run(RunOnReactor),
    /// Sends through handles passed `max_backpressure` under the `Close` policy: close
    /// with 1008.
    OverLimit,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Decided { target, decision } => f
                .debug_struct("Decided")
                .field("target", target)
                .field(
                    "decision",
                    &match decision {
                        Decision::Upgrade { outcome: Ok(_), .. } => "accept",
                        Decision::Upgrade {
                            outcome: Err(_), ..
                        } => "refuse",
                        Decision::Http { .. } => "respond",
                    },
                )
                .finish(),
            Command::Send { target, .. } => f.debug_struct("Send").field("target", target).finish(),
            Command::ChannelLost {
                channel,
                keep,
                code,
                ..
            } => f
                .debug_struct("ChannelLost")
                .field("channel", channel)
                .field("keep", keep)
                .field("code", code)
                .finish(),
            Command::Conn { target, op } => f
                .debug_struct("Conn")
                .field("target", target)
                .field(
                    "op",
                    &match op {
                        ConnOp::Close(..) => "close",
                        ConnOp::Subscribe(_) => "subscribe",
                        ConnOp::Unsubscribe(_) => "unsubscribe",
                        ConnOp::Run(_) => "run",
                        ConnOp::OverLimit => "over limit",
                    },
                )
                .finish(),
        }
    }
}
