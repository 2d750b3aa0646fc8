//! Topics across server processes: a bridge hands the topic messages published on this
//! server to a broker, and publishes what the broker brings from the other servers to
//! this server's topics.
//!
//! Set one with [`crate::ServerBuilder::bridge`]; [`RedisBridge`] is the one that comes
//! with wavecore (Redis Pub/Sub).
//!
//! * **Out.** Every topic publish made on this server ([`crate::Conn::publish`],
//!   [`crate::ServerHandle::publish`]) is delivered locally as before and also put in
//!   the bridge's buffer: by the reactors once per turn (one lock for the turn's
//!   publishes, never a wait), so a slow or absent broker never stalls local delivery.
//!   Past the buffer's bound (`max_buffered_bytes`) a message is dropped for the other
//!   servers and counted in [`BridgeStats::dropped`]. Broadcasts to every connection
//!   ([`crate::Conn::broadcast`]) stay on this server.
//! * **Size.** A topic message larger than the bridge's `max_message_size` is refused
//!   at the publish ([`PublishStatus::TooLarge`]) and delivered nowhere, not even
//!   locally, so that every server's subscribers see the same messages.
//! * **In.** What arrives from the other servers is checked (a wavecore envelope, one
//!   valid text or binary frame), and its frame, encoded once by the publishing server,
//!   is shared by this server's reactors exactly as a local publish is. A message
//!   carries its publisher's node id: a server never delivers its own messages twice.
//! * **Order.** Messages from one publisher (one connection, or one thread calling
//!   [`crate::ServerHandle::publish`]) reach every subscriber on every server in the
//!   order they were published: they are sent in order on one connection, and the
//!   broker keeps it.
//! * **Interest.** A server listens to a topic on the broker while it has
//!   subscribers to it: a topic with none here costs this server nothing.
//! * **Failures.** Connection failures are retried with backoff and reported in
//!   [`BridgeStats`] and as `warn` events through `tracing`. What could not be sent
//!   waits in the buffer (up to its bound) and is sent after reconnecting; a batch the
//!   broker did not confirm is sent again, and receivers drop what they already have
//!   (per-topic sequence numbers; [`BridgeStats::duplicates`]). What other servers
//!   published while this one was disconnected does not arrive (Pub/Sub keeps
//!   nothing); the gap is counted in [`BridgeStats::lost`] when the next message
//!   shows it.
//!
//! A transport for another broker implements [`Bridge`]: it gets a [`BridgeLink`] and
//! runs its own threads, taking batches to send with [`BridgeLink::next_batch`] and
//! handing what it receives to [`BridgeLink::receive`]. Envelopes are opaque bytes to
//! it (`envelope.rs` has their layout).

use std::fmt;
use std::io;
use std::thread::JoinHandle;

mod backoff;
mod envelope;
mod link;
mod queue;
mod redis;
mod sequence;
mod stats;

pub(crate) use link::BridgeShared;

pub use self::redis::RedisBridge;
pub(crate) use self::redis::{connect as redis_connect, connection_info as redis_connection_info};
pub use backoff::Backoff;
pub use link::BridgeLink;
pub use queue::Outgoing;
pub(crate) use stats::LAG_BOUNDS_US;
pub use stats::{BridgeState, BridgeStats, Direction};

/// Limits the server applies on a bridge's behalf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BridgeLimits {
    /// Largest payload of a topic message, in bytes. A larger publish is refused with
    /// [`PublishStatus::TooLarge`]; a larger message from another server is dropped
    /// (counted in [`BridgeStats::invalid`]).
    pub max_message_size: usize,
    /// Most bytes of envelopes (payload, WebSocket frame header and 32 bytes of
    /// envelope header each) waiting to be sent; past it, new messages are dropped for
    /// the other servers ([`BridgeStats::dropped`]).
    pub max_buffered_bytes: usize,
}

impl Default for BridgeLimits {
    /// 1 MiB messages, 16 MiB buffered.
    fn default() -> Self {
        Self {
            max_message_size: 1 << 20,
            max_buffered_bytes: 16 << 20,
        }
    }
}

/// A transport between servers: started once by [`crate::ServerBuilder::start`],
/// stopped when the server has stopped ([`crate::Server::join`]).
pub trait Bridge: fmt::Debug + Send + Sync + 'static {
    /// The limits the server applies for this bridge.
    fn limits(&self) -> BridgeLimits;

    /// Starts the transport's threads and returns them; they must never block a
    /// reactor (they talk to the server only through `link`), and must return once
    /// [`BridgeLink::next_batch`] returns `false` or [`BridgeLink::sleep`] does.
    /// Called on the thread that starts the server, which it should not keep long:
    /// connecting belongs on the transport's threads (a broker that is not reachable
    /// must not stop the server from starting).
    ///
    /// # Errors
    ///
    /// Starting the threads failed; the server does not start.
    fn start(&self, link: BridgeLink) -> io::Result<Vec<JoinHandle<()>>>;
}

/// What became of a topic message given to [`crate::Conn::publish`] or
/// [`crate::ServerHandle::publish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishStatus {
    /// Delivered to this server's subscribers (after the callback returns, for a
    /// `Conn`), and handed to the bridge for the other servers if there is one.
    Published,
    /// Refused: a bridge is set and the payload is larger than its
    /// `max_message_size`. No subscriber on any server gets it; counted in
    /// [`BridgeStats::refused`].
    TooLarge {
        /// The payload's size, in bytes.
        size: usize,
        /// The bridge's `max_message_size`, in bytes.
        limit: usize,
    },
}

impl PublishStatus {
    /// Whether the message was published.
    pub fn is_published(&self) -> bool {
        matches!(self, PublishStatus::Published)
    }
}

impl fmt::Display for PublishStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishStatus::Published => f.write_str("published"),
            PublishStatus::TooLarge { size, limit } => write!(
                f,
                "publish refused: a {size}-byte message is over the bridge's \
                 max_message_size of {limit} bytes"
            ),
        }
    }
}
