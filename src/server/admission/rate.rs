//! Messages and bytes per connection per second: two token buckets in the
//! connection's own state, refilled by the reactor's tick (100 ms), so checking a
//! frame costs a few arithmetic operations and no clock read, lock or atomic.

use crate::protocol::Event;
use crate::server::conn_api::Conn;
use crate::server::timer::TICK;

use super::token_bucket::{Rate, TokenBucket};

/// What happens to a frame past a connection's [`MessageRate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RatePolicy {
    /// Close the connection with 1008 (Policy Violation, RFC 6455 §7.4.1) and the
    /// reason "message rate exceeded". The default.
    #[default]
    Close,
    /// Drop the frame: a data message never reaches `on_message`, a ping is not
    /// answered, a pong is not reported; the handler hears
    /// [`crate::Handler::on_rate_limited`] for each one dropped.
    Drop,
}

/// The rate a connection may send at ([`super::AdmissionConfig::message_rate`]).
/// Every frame the peer sends counts as one message, control frames (ping, pong)
/// included, so a ping flood is covered; a message's bytes are its payload's (after
/// decompression). A close frame is never limited.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MessageRate {
    /// Messages (data messages and control frames) per second, with a burst.
    pub messages: Option<Rate>,
    /// Payload bytes per second, with a burst. A message larger than the burst
    /// passes when the bucket is full and leaves it in debt.
    pub bytes: Option<Rate>,
    /// What happens past either rate.
    pub policy: RatePolicy,
}

impl MessageRate {
    /// `per_second` messages per second with a burst of as many (at least 1), closing
    /// with 1008 past it.
    pub fn messages(per_second: f64) -> Self {
        Self {
            messages: Some(Rate::per_second(per_second)),
            ..Self::default()
        }
    }

    /// Adds a limit of `rate` payload bytes per second.
    pub fn bytes(mut self, rate: Rate) -> Self {
        self.bytes = Some(rate);
        self
    }

    /// Sets what happens past the rate.
    pub fn policy(mut self, policy: RatePolicy) -> Self {
        self.policy = policy;
        self
    }
}

/// A connection's buckets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnRate {
    messages: Option<TokenBucket>,
    bytes: Option<TokenBucket>,
}

/// What to do with the frame just decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within the rate: handle it.
    Pass,
    /// Over it, under [`RatePolicy::Drop`].
    Drop,
    /// Over it, under [`RatePolicy::Close`].
    Close,
}

/// The reason sent with the 1008 close.
pub(crate) const CLOSE_REASON: &str = "message rate exceeded";

/// Checks the frame `event` against the connection's message rate, spending from its
/// buckets when it passes, and counts a frame over it.
#[inline]
pub(crate) fn check(conn: &mut Conn<'_>, event: &Event<'_>) -> Verdict {
    let Some(limit) = &conn.config.admission.message_rate else {
        return Verdict::Pass;
    };
    let len = match event {
        Event::Text(text) => text.len(),
        Event::Binary(bytes) => bytes.len(),
        Event::Ping(payload) | Event::Pong(payload) => payload.len(),
        Event::Close(_) => return Verdict::Pass,
    };
    let now_ms = u64::from(conn.reactor.now) * TICK.as_millis() as u64;
    let admission = conn.state.admission.get_or_insert_with(Default::default);
    let buckets = admission.rate.get_or_insert_with(|| ConnRate {
        messages: limit.messages.map(|r| TokenBucket::full(&r, now_ms)),
        bytes: limit.bytes.map(|r| TokenBucket::full(&r, now_ms)),
    });
    let messages_ok = match (&limit.messages, &mut buckets.messages) {
        (Some(rate), Some(bucket)) => bucket.take(rate, now_ms, 1.0).is_ok(),
        _ => true,
    };
    let bytes_ok = messages_ok
        && match (&limit.bytes, &mut buckets.bytes) {
            (Some(rate), Some(bucket)) => bucket.take(rate, now_ms, len as f64).is_ok(),
            _ => true,
        };
    if bytes_ok {
        return Verdict::Pass;
    }
    conn.reactor.counters.rate_limited(limit.policy);
    tracing::debug!(
        conn = conn.state.id.0,
        peer = %conn.state.peer,
        policy = ?limit.policy,
        "message rate exceeded"
    );
    match limit.policy {
        RatePolicy::Close => Verdict::Close,
        RatePolicy::Drop => Verdict::Drop,
    }
}
