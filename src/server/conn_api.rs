//! What a handler can do to its connection: [`Conn`], a handle on the connection's
//! state (`conn/state.rs`) and its reactor's (`reactor_state.rs`).

use std::fmt;
use std::net::SocketAddr;

use crate::protocol::CloseCode;
use crate::protocol::frame::{OpCode, header_len};
use crate::server::bridge::PublishStatus;
use crate::server::config::ServerConfig;
use crate::server::core::conn::state::ConnState;
use crate::server::core::reactor_state::ReactorState;
use crate::server::encode::{deflate_message, encode_frame_into, encode_shared_frame};
use crate::server::handler::Message;
use crate::server::pubsub::Publish;

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

/// The connection a callback is about: send, ping, close, subscribe, publish.
///
/// Sends are encoded at once into the reactor's write buffer and written together
/// when the callback returns (one `writev` for everything sent while handling one
/// read), so sending many small messages costs one syscall.
pub struct Conn<'a> {
    pub(crate) state: &'a mut ConnState,
    pub(crate) reactor: &'a mut ReactorState,
    pub(crate) config: &'a ServerConfig,
}

impl Conn<'_> {
    /// This connection's id.
    pub fn id(&self) -> ConnId {
        self.state.id
    }

    /// The peer's address: the client's, as a trusted proxy named it (PROXY protocol
    /// or forwarding headers, see [`crate::admission::AdmissionConfig`]), else the TCP peer's.
    pub fn peer_addr(&self) -> SocketAddr {
        self.state.peer
    }

    /// The trusted proxy's address when one named the client (see
    /// [`Conn::peer_addr`]); `None` for a direct connection.
    pub fn proxy_addr(&self) -> Option<SocketAddr> {
        self.state.admission.as_ref().and_then(|a| a.via)
    }

    /// The subprotocol chosen at the upgrade, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.state.protocol.as_deref()
    }

    /// Bytes sent but not yet taken by the socket (this turn's and queued ones).
    pub fn buffered_amount(&self) -> usize {
        self.state.outbox.len() + self.reactor.cork.len()
    }

    /// A handle to this connection that any thread can keep and use: send to it,
    /// close it, subscribe it, run code on its reactor (see [`crate::ConnHandle`]).
    /// The first call allocates the link the handles share; later calls clone it.
    pub fn handle(&mut self) -> crate::ConnHandle {
        let state = &mut *self.state;
        let link = state.link.get_or_insert_with(|| {
            crate::server::conn_handle::Link::new(
                self.reactor.server.shared_arc(),
                crate::server::command::Target {
                    key: state.key,
                    id: state.id,
                },
            )
        });
        crate::ConnHandle::new(link.clone())
    }

    /// Whether a close frame was sent (nothing more can be sent).
    pub fn is_closing(&self) -> bool {
        self.state.closing.is_some()
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
        if payload.len() > 125 || self.state.closing.is_some() {
            return SendStatus::Dropped;
        }
        self.state
            .queue_control(OpCode::Ping, payload, Some(&mut self.reactor.cork));
        SendStatus::Success
    }

    /// Starts the closing handshake with `code` and `reason` (cut to 123 bytes). The
    /// handler's `on_close` follows when this callback returns; the TCP connection ends
    /// when the peer answers or after `close_timeout`. A code that is not valid on the
    /// wire (such as 1005 or 1006) sends a close frame without a code.
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        self.state
            .start_close(code, reason, Some(&mut self.reactor.cork));
    }

    /// Subscribes to `topic`. Returns `false` if already subscribed, or at
    /// [`crate::admission::AdmissionConfig::max_subscriptions_per_connection`].
    pub fn subscribe(&mut self, topic: &str) -> bool {
        if self.is_subscribed(topic)
            || self.state.closing.is_some()
            || crate::server::admission::subscriptions_full(self.state, &self.config.admission)
        {
            return false;
        }
        let sub = self.reactor.topics.subscribe(topic, self.state.key);
        self.state.subscriptions.push(sub);
        true
    }

    /// Unsubscribes from `topic`. Returns `false` if not subscribed.
    pub fn unsubscribe(&mut self, topic: &str) -> bool {
        let topics = &self.reactor.topics;
        let Some(i) = self
            .state
            .subscriptions
            .iter()
            .position(|&s| topics.is_topic(s, topic))
        else {
            return false;
        };
        let sub = self.state.subscriptions.swap_remove(i);
        self.reactor.topics.unsubscribe(sub);
        true
    }

    /// Whether this connection subscribes to `topic`.
    pub fn is_subscribed(&self, topic: &str) -> bool {
        let topics = &self.reactor.topics;
        self.state
            .subscriptions
            .iter()
            .any(|&s| topics.is_topic(s, topic))
    }

    /// The topics this connection subscribes to.
    pub fn topics(&self) -> Vec<String> {
        let topics = &self.reactor.topics;
        self.state
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
        self.publish_frame(Some(topic), message, Some(self.state.id))
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
            && let Some(bridge) = self.reactor.topics.bridge()
            && message.len() > bridge.max_message_size()
        {
            bridge.refused();
            return PublishStatus::TooLarge {
                size: message.len(),
                limit: bridge.max_message_size(),
            };
        }
        self.reactor.counters.publishes.add(1);
        self.reactor.publishes.push(Publish::new(
            topic.map(Into::into),
            message,
            exclude,
            self.config.permessage_deflate.as_ref(),
        ));
        PublishStatus::Published
    }

    fn send_frame(&mut self, opcode: OpCode, payload: &[u8]) -> SendStatus {
        if self.state.closing.is_some() {
            return SendStatus::Dropped;
        }
        let size = header_len(payload.len() as u64, false) + payload.len();
        let buffered = self.buffered_amount();
        if self.config.passes_backpressure(buffered, size) {
            self.state.over_limit(
                self.config,
                &self.reactor.stats,
                Some(&mut self.reactor.cork),
            );
            return SendStatus::Dropped;
        }
        self.reactor.counters.sent(payload.len());
        let ReactorState { cork, scratch, .. } = &mut *self.reactor;
        let compressed = deflate_message(
            scratch,
            self.state.deflate_window,
            self.config.permessage_deflate.as_ref(),
            payload,
        );
        let body = if compressed { &scratch[..] } else { payload };
        if self.state.outbox.is_empty() {
            encode_frame_into(cork, opcode, body, compressed);
            SendStatus::Success
        } else {
            // Behind bytes still queued: in order, after them.
            self.state
                .outbox
                .push(encode_shared_frame(opcode, body, compressed));
            if !self.state.socket_full {
                return SendStatus::Success;
            }
            self.state.needs_drain = true;
            self.reactor.counters.backpressure_events.add(1);
            SendStatus::Backpressure
        }
    }
}
