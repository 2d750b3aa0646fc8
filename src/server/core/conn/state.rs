//! The part of a connection that its handle ([`Conn`](crate::Conn)) and broadcast
//! deliveries act on: the outbox, subscriptions, close, liveness and timer
//! bookkeeping.

use std::net::SocketAddr;

use crate::protocol::CloseCode;
use crate::protocol::close::encode_close_payload;
use crate::protocol::frame::OpCode;
use crate::server::config::{BackpressurePolicy, ServerConfig};
use crate::server::conn_api::ConnId;
use crate::server::conn_handle::Link;
use crate::server::core::outbox::{Chunk, Delivery, Outbox};
use crate::server::core::timer::Tick;
use crate::server::encode::{encode_into, encode_shared};
use crate::server::pubsub::Subscription;
use crate::server::stats::Stats;

/// Per-connection state beside the handler: the outbox, subscriptions, close and
/// timer bookkeeping.
#[derive(Debug)]
pub(crate) struct ConnState {
    pub key: usize,
    pub id: ConnId,
    pub peer: SocketAddr,
    pub outbox: Outbox,
    pub protocol: Option<Box<str>>,
    pub subscriptions: Vec<Subscription>,
    /// Channel subscriptions (`channels/`).
    pub channel_subs: Vec<crate::server::channels::subs::ChannelSub>,
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
    /// The tick this connection's timer is due at (0: none scheduled).
    pub timer_due: Tick,
    /// permessage-deflate negotiated: the largest window (8 to 15 bits) our messages
    /// may be compressed with. No compression state is kept per connection.
    pub deflate_window: Option<u8>,
    /// What this connection's [`crate::ConnHandle`]s share with it, once one was made.
    pub link: Option<std::sync::Arc<Link>>,
    /// Admission state (per-address ticket, proxy address, message-rate buckets),
    /// only where an admission setting applies (see `server/admission`).
    pub admission: Option<Box<crate::server::admission::ConnAdmission>>,
}

impl Drop for ConnState {
    fn drop(&mut self) {
        self.forget_handles();
    }
}

impl ConnState {
    /// Fresh state for an accepted connection.
    pub fn new(key: usize, id: ConnId, peer: SocketAddr, now: Tick) -> Self {
        Self {
            key,
            id,
            peer,
            outbox: Outbox::default(),
            protocol: None,
            subscriptions: Vec::new(),
            channel_subs: Vec::new(),
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
            link: None,
            admission: None,
        }
    }

    /// The connection leaves the open state: its handles answer `Gone` from now on.
    pub fn forget_handles(&mut self) {
        if let Some(link) = &self.link {
            link.mark_gone();
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
            // All of it fits under the limit: then every message passes
            // `ServerConfig::passes_backpressure` on its own too.
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
    /// `sealed` (see [`crate::server::core::batch::TurnBatch::seal`]).
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
        if config.passes_backpressure(buffered, chunk.len()) {
            self.over_limit(config, stats, None);
            return;
        }
        self.outbox.push_chunk(chunk);
    }
}

#[cfg(test)]
mod tests;
