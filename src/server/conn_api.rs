//! What a handler can do to its connection: [`Conn`], and the per-connection state
//! behind it that is not the handler's own.

use std::fmt;
use std::net::SocketAddr;

use crate::handler::Message;
use crate::protocol::CloseCode;
use crate::protocol::close::encode_close_payload;
use crate::protocol::frame::{OpCode, header_len};
use crate::server::bridge::PublishStatus;
use crate::server::config::{BackpressurePolicy, ServerConfig};
use crate::server::outbox::{Chunk, Delivery, Outbox};
use crate::server::pubsub::{Publish, Subscription};
use crate::server::stats::Stats;
use crate::server::timer::Tick;
use crate::server::turn::{
    Turn, deflate_message, encode_frame_into, encode_into, encode_shared, encode_shared_frame,
};

/// A connection's id: unique across the server's reactors for the server's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What became of a message given to [`Conn::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    /// Encoded into this turn's write; it goes out when the callback returns.
    Success,
    /// Queued behind bytes the socket has not taken yet (the peer reads slowly).
    /// [`crate::Handler::on_drain`] tells when the queue fell back under the limit.
    Backpressure,
    /// Not sent: `max_backpressure` would be passed (the connection is closed with 1008,
    /// or under the `Drop` policy only this message is dropped), or the connection is
    /// closing.
    Dropped,
}

/// Per-connection state beside the handler: the outbox, subscriptions, close and
/// timer bookkeeping.
#[derive(Debug)]
pub(crate) struct ConnCore {
    pub key: usize,
    pub id: ConnId,
    pub peer: SocketAddr,
    pub outbox: Outbox,
    pub protocol: Option<Box<str>>,
    pub subscriptions: Vec<Subscription>,
    /// Set once we sent a close frame: the code and reason we sent.
    pub closing: Option<Box<(CloseCode, String)>>,
    /// A send was refused or queued: call `on_drain` once the queue falls back.
    pub needs_drain: bool,
    /// The socket refused bytes the last time it was written (a readiness write that
    /// would block, a completion write that came back short): sends queue behind
    /// them and say [`SendStatus::Backpressure`]. Bytes merely waiting for a
    /// completion driver's submission or completion are not refused.
    pub socket_full: bool,
    /// When bytes last arrived.
    pub last_seen: Tick,
    /// An automatic ping is waiting for an answer.
    pub ping_outstanding: bool,
    /// Since the automatic ping was queued, the socket took bytes and more were still
    /// waiting after them: the peer reads, and the ping, queued behind a large send,
    /// may not have reached it yet.
    pub wrote_since_ping: bool,
    /// In the reactor's list of connections to flush at the end of the turn.
    pub dirty: bool,
    /// Recorded as holding ranges of this turn's batch (see `batch.rs`).
    pub batch_holder: bool,
    /// The tick this connection's timer entry is due at (0: none scheduled).
    pub timer_due: Tick,
    /// permessage-deflate negotiated: the largest window (8 to 15 bits) our messages
    /// may be compressed with. No compression state is kept per connection.
    pub deflate_window: Option<u8>,
}

impl ConnCore {
    /// Fresh state for an accepted connection.
    pub fn new(key: usize, id: ConnId, peer: SocketAddr, now: Tick) -> Self {
        Self {
            key,
            id,
            peer,
            outbox: Outbox::default(),
            protocol: None,
            subscriptions: Vec::new(),
            closing: None,
            needs_drain: false,
            socket_full: false,
            last_seen: now,
            ping_outstanding: false,
            wrote_since_ping: false,
            dirty: false,
            batch_holder: false,
            timer_due: 0,
            deflate_window: None,
        }
    }

    /// Queues a control frame, never dropped: into `cork` when this connection is the
    /// one being served and nothing waits before it, else into the outbox.
    pub fn queue_control(&mut self, opcode: OpCode, payload: &[u8], cork: Option<&mut Vec<u8>>) {
        match cork {
            Some(cork) if self.outbox.is_empty() => encode_into(cork, opcode, payload),
            _ => self.outbox.push(encode_shared(opcode, payload)),
        }
    }

    /// Sends a close frame (once) and remembers what was sent.
    pub fn start_close(&mut self, code: CloseCode, reason: &str, cork: Option<&mut Vec<u8>>) {
        if self.closing.is_some() {
            return;
        }
        let mut payload = [0u8; 125];
        let n = encode_close_payload(code, reason, &mut payload);
        self.queue_control(OpCode::Close, &payload[..n], cork);
        self.closing = Some(Box::new((code, reason.to_owned())));
    }

    /// Applies the backpressure policy to a message that would pass the limit.
    pub fn over_limit(&mut self, config: &ServerConfig, stats: &Stats, cork: Option<&mut Vec<u8>>) {
        self.needs_drain = true;
        match config.backpressure_policy {
            BackpressurePolicy::Drop => Stats::bump(&stats.dropped_messages),
            BackpressurePolicy::Close => {
                Stats::bump(&stats.backpressure_closes);
                self.start_close(CloseCode::POLICY_VIOLATION, "backpressure limit", cork);
            }
        }
    }

    /// Queues broadcast frames for a connection that is not being served, applying the
    /// backpressure policy to each message.
    pub fn deliver(&mut self, delivery: Delivery<'_>, config: &ServerConfig, stats: &Stats) {
        match delivery {
            // All of it fits: every message passes the limit on its own too.
            Delivery::Batched { span, .. }
                if self.closing.is_none()
                    && self.outbox.len() + delivery.len() <= config.max_backpressure =>
            {
                self.outbox.push_chunk(Chunk::Batched(span));
            }
            Delivery::Batched { frames, .. } => {
                for &frame in frames {
                    self.deliver_one(Chunk::Batched(frame), config, stats);
                }
            }
            Delivery::Shared(bytes) => {
                self.deliver_one(Chunk::Shared(bytes.clone()), config, stats)
            }
        }
    }

    /// Ends the turn for this connection: ranges of the turn batch become slices of
    /// `sealed` (see [`crate::server::batch::TurnBatch::seal`]).
    pub fn settle(&mut self, sealed: &bytes::Bytes) {
        self.outbox.settle(sealed);
        self.batch_holder = false;
    }

    /// Queues one message, unless the connection is closing or the queue is past the
    /// limit (then the policy applies). A message always goes into an empty queue.
    fn deliver_one(&mut self, chunk: Chunk, config: &ServerConfig, stats: &Stats) {
        if self.closing.is_some() {
            return;
        }
        let buffered = self.outbox.len();
        if buffered > 0 && buffered + chunk.len() > config.max_backpressure {
            self.over_limit(config, stats, None);
            return;
        }
        self.outbox.push_chunk(chunk);
    }
}

/// The connection a callback is about: send, ping, close, subscribe, publish.
///
/// Sends are encoded at once into the reactor's write buffer and written together
/// when the callback returns (one `writev` for everything sent while handling one
/// read), so sending many small messages costs one syscall.
pub struct Conn<'a> {
    pub(crate) core: &'a mut ConnCore,
    pub(crate) turn: &'a mut Turn,
    pub(crate) config: &'a ServerConfig,
}

impl Conn<'_> {
    /// This connection's id.
    pub fn id(&self) -> ConnId {
        self.core.id
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.core.peer
    }

    /// The subprotocol chosen at the upgrade, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.core.protocol.as_deref()
    }

    /// Bytes sent but not yet taken by the socket (this turn's and queued ones).
    pub fn buffered_amount(&self) -> usize {
        self.core.outbox.len() + self.turn.cork.len()
    }

    /// Whether a close frame was sent (nothing more can be sent).
    pub fn is_closing(&self) -> bool {
        self.core.closing.is_some()
    }

    /// Sends a text or binary message.
    pub fn send(&mut self, message: Message<'_>) -> SendStatus {
        self.send_frame(message.opcode(), message.as_bytes())
    }

    /// Sends a text message.
    pub fn send_text(&mut self, text: &str) -> SendStatus {
        self.send_frame(OpCode::Text, text.as_bytes())
    }

    /// Sends a binary message.
    pub fn send_binary(&mut self, bytes: &[u8]) -> SendStatus {
        self.send_frame(OpCode::Binary, bytes)
    }

    /// Sends a ping with `payload` (at most 125 bytes; longer is `Dropped`). The answer
    /// arrives at [`crate::Handler::on_pong`].
    pub fn ping(&mut self, payload: &[u8]) -> SendStatus {
        if payload.len() > 125 || self.core.closing.is_some() {
            return SendStatus::Dropped;
        }
        self.core
            .queue_control(OpCode::Ping, payload, Some(&mut self.turn.cork));
        SendStatus::Success
    }

    /// Starts the closing handshake with `code` and `reason` (cut to 123 bytes). The
    /// handler's `on_close` follows when this callback returns; the TCP connection ends
    /// when the peer answers or after `close_timeout`. A code that is not valid on the
    /// wire (such as 1005 or 1006) sends a close frame without a code.
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        self.core
            .start_close(code, reason, Some(&mut self.turn.cork));
    }

    /// Subscribes to `topic`. Returns `false` if already subscribed.
    pub fn subscribe(&mut self, topic: &str) -> bool {
        if self.is_subscribed(topic) || self.core.closing.is_some() {
            return false;
        }
        let sub = self.turn.topics.subscribe(topic, self.core.key);
        self.core.subscriptions.push(sub);
        true
    }

    /// Unsubscribes from `topic`. Returns `false` if not subscribed.
    pub fn unsubscribe(&mut self, topic: &str) -> bool {
        let topics = &self.turn.topics;
        let Some(i) = self
            .core
            .subscriptions
            .iter()
            .position(|&s| topics.is_topic(s, topic))
        else {
            return false;
        };
        let sub = self.core.subscriptions.swap_remove(i);
        self.turn.topics.unsubscribe(sub);
        true
    }

    /// Whether this connection subscribes to `topic`.
    pub fn is_subscribed(&self, topic: &str) -> bool {
        let topics = &self.turn.topics;
        self.core
            .subscriptions
            .iter()
            .any(|&s| topics.is_topic(s, topic))
    }

    /// The topics this connection subscribes to.
    pub fn topics(&self) -> Vec<String> {
        let topics = &self.turn.topics;
        self.core
            .subscriptions
            .iter()
            .filter_map(|&s| topics.name(s).map(|n| n.to_string()))
            .collect()
    }

    /// Publishes `message` to every subscriber of `topic` on every reactor, this
    /// connection included if it subscribes, and through the bridge (if one is set)
    /// on every other server. Encoded once; delivered after this callback returns, in
    /// publish order.
    ///
    /// Returns [`PublishStatus::TooLarge`] (and delivers it nowhere) if a bridge is
    /// set and the message is over its `max_message_size`.
    pub fn publish(&mut self, topic: &str, message: Message<'_>) -> PublishStatus {
        self.publish_frame(Some(topic), message, None)
    }

    /// Like [`Conn::publish`], but this connection does not receive its own message.
    pub fn publish_to_others(&mut self, topic: &str, message: Message<'_>) -> PublishStatus {
        self.publish_frame(Some(topic), message, Some(self.core.id))
    }

    /// Sends `message` to every open connection on every reactor of this server, this
    /// one included (not through the bridge).
    pub fn broadcast(&mut self, message: Message<'_>) {
        self.publish_frame(None, message, None);
    }

    fn publish_frame(
        &mut self,
        topic: Option<&str>,
        message: Message<'_>,
        exclude: Option<ConnId>,
    ) -> PublishStatus {
        if topic.is_some()
            && let Some(bridge) = self.turn.topics.bridge()
            && message.len() > bridge.max_message_size()
        {
            bridge.refused();
            return PublishStatus::TooLarge {
                size: message.len(),
                limit: bridge.max_message_size(),
            };
        }
        self.turn.counters.publishes.add(1);
        self.turn.publishes.push(Publish::new(
            topic.map(Into::into),
            message,
            exclude,
            self.config.permessage_deflate.as_ref(),
        ));
        PublishStatus::Published
    }

    fn send_frame(&mut self, opcode: OpCode, payload: &[u8]) -> SendStatus {
        if self.core.closing.is_some() {
            return SendStatus::Dropped;
        }
        let size = header_len(payload.len() as u64, false) + payload.len();
        let buffered = self.buffered_amount();
        if buffered > 0 && buffered + size > self.config.max_backpressure {
            self.core
                .over_limit(self.config, &self.turn.stats, Some(&mut self.turn.cork));
            return SendStatus::Dropped;
        }
        self.turn.counters.sent(payload.len());
        let Turn { cork, scratch, .. } = &mut *self.turn;
        let compressed = deflate_message(
            scratch,
            self.core.deflate_window,
            self.config.permessage_deflate.as_ref(),
            payload,
        );
        let body = if compressed { &scratch[..] } else { payload };
        if self.core.outbox.is_empty() {
            encode_frame_into(cork, opcode, body, compressed);
            SendStatus::Success
        } else {
            // Behind bytes still queued: in order, after them.
            self.core
                .outbox
                .push(encode_shared_frame(opcode, body, compressed));
            if !self.core.socket_full {
                return SendStatus::Success;
            }
            self.core.needs_drain = true;
            self.turn.counters.backpressure_events.add(1);
            SendStatus::Backpressure
        }
    }
}

#[cfg(test)]
mod tests;
