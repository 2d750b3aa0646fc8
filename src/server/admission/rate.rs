//! Messages and bytes per connection per second: two token buckets in the
//! connection's own state, refilled by the reactor's tick (100 ms), so checking a
//! frame costs two comparisons and two subtractions (plus a refill once a tick), and
//! no clock read, lock or atomic.

use crate::protocol::Event;
use crate::server::conn_api::Conn;
use crate::server::core::timer::{TICK, Tick};

use super::token_bucket::Rate;

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

/// A connection's two buckets, refilled once per reactor tick (100 ms) for both: a
/// frame in the same tick as the last costs two comparisons and two subtractions. An
/// unlimited bucket holds infinitely many tokens, so it never refuses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnRate {
    messages: f64,
    bytes: f64,
    /// The byte burst (infinite without a byte limit): a message larger than it
    /// passes when the bucket is full.
    byte_burst: f64,
    last: Tick,
}

impl ConnRate {
    /// Full buckets at tick `now`.
    fn new(limit: &MessageRate, now: Tick) -> Self {
        Self {
            messages: limit.messages.map_or(f64::INFINITY, |r| r.burst),
            bytes: limit.bytes.map_or(f64::INFINITY, |r| r.burst),
            byte_burst: limit.bytes.map_or(f64::INFINITY, |r| r.burst),
            last: now,
        }
    }

    /// Spends one message and `len` bytes at tick `now`, if both are there.
    #[inline]
    fn take(&mut self, limit: &MessageRate, now: Tick, len: usize) -> bool {
        if now != self.last {
            self.refill(limit, now);
        }
        let len = len as f64;
        // Enough bytes, or a full bucket for a message larger than the burst.
        if self.messages >= 1.0 && (self.bytes >= len || self.bytes >= self.byte_burst) {
            self.messages -= 1.0;
            self.bytes -= len;
            return true;
        }
        false
    }

    /// Adds what the ticks since the last refill brought, up to each burst.
    #[cold]
    fn refill(&mut self, limit: &MessageRate, now: Tick) {
        let seconds = f64::from(now.wrapping_sub(self.last)) * TICK.as_secs_f64();
        if let Some(rate) = &limit.messages {
            self.messages = (self.messages + seconds * rate.per_second).min(rate.burst);
        }
        if let Some(rate) = &limit.bytes {
            self.bytes = (self.bytes + seconds * rate.per_second).min(rate.burst);
        }
        self.last = now;
    }
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
    let now = conn.reactor.now;
    let admission = conn.state.admission.get_or_insert_with(Default::default);
    let buckets = admission
        .rate
        .get_or_insert_with(|| ConnRate::new(limit, now));
    if buckets.take(limit, now, len) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_a_refill_per_tick() {
        // 10 messages a second, a burst of 3; 100 bytes a second, a burst of 50.
        let limit = MessageRate::messages(10.0).bytes(Rate::per_second(100.0).with_burst(50.0));
        let limit = MessageRate {
            messages: limit.messages.map(|r| r.with_burst(3.0)),
            ..limit
        };
        let mut rate = ConnRate::new(&limit, 0);
        assert!(rate.take(&limit, 0, 10));
        assert!(rate.take(&limit, 0, 10));
        assert!(rate.take(&limit, 0, 10));
        assert!(!rate.take(&limit, 0, 1), "the message burst is spent");
        // One tick (100 ms) brings one message and 10 bytes back.
        assert!(rate.take(&limit, 1, 10));
        assert!(!rate.take(&limit, 1, 1));
        // A message over the byte burst passes when the bucket is full, and leaves a debt.
        assert!(rate.take(&limit, 100, 500));
        assert!(!rate.take(&limit, 100, 1));
        assert!(
            !rate.take(&limit, 120, 1),
            "still in debt: 2 s bring 200 bytes"
        );
        assert!(rate.take(&limit, 150, 1));
    }

    #[test]
    fn without_a_byte_limit_only_messages_count() {
        let limit = MessageRate::messages(1.0);
        let mut rate = ConnRate::new(&limit, 0);
        assert!(rate.take(&limit, 0, 1 << 30));
        assert!(!rate.take(&limit, 0, 0));
        assert!(rate.take(&limit, 10, 1 << 30));
    }
}
