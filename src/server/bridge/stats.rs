//! The bridge's counters, kept apart from the server's (`server/stats.rs`) and read
//! through [`crate::ServerHandle::stats`] as [`crate::StatsSnapshot::bridge`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Where a bridge stands with its broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BridgeState {
    /// Never connected yet: attempts are under way, retried with backoff
    /// ([`BridgeStats::connect_failures`] counts the failed ones). Local topics work
    /// meanwhile; messages for the other servers wait in the buffer, up to its bound.
    #[default]
    Connecting,
    /// Connected: publishing, and subscribed to the topics this server has
    /// subscribers for.
    Connected,
    /// Was connected and lost the connection (or one of its connections); retrying
    /// with backoff. Messages for the other servers wait in the buffer, up to its
    /// bound; messages the other servers publish meanwhile do not reach this one
    /// (counted in [`BridgeStats::lost`] when later ones show the gap).
    Reconnecting,
    /// Stopped with the server.
    Stopped,
}

/// A snapshot of a bridge's state and counters. Message counts are messages (one
/// publish to one topic), since the server started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BridgeStats {
    /// Connected, connecting, reconnecting or stopped.
    pub state: BridgeState,
    /// This server's node id in the envelopes it sends (random at start): messages
    /// carrying it are this server's own and are not delivered twice here.
    pub node_id: u64,
    /// Messages published here that the broker confirmed.
    pub messages_out: u64,
    /// Messages from other servers delivered to this server's topics.
    pub messages_in: u64,
    /// Messages waiting to be sent now (while disconnected, or behind a slow broker).
    pub buffered: u64,
    /// Bytes of envelopes waiting to be sent now; at most the buffer's bound, plus one
    /// batch being resent.
    pub buffered_bytes: u64,
    /// Messages that never left this server: the buffer was full (a broker too slow
    /// or away too long), or the server stopped before they could be sent. Local
    /// subscribers got them.
    pub dropped: u64,
    /// Messages another server published to a topic this one listens to that never
    /// arrived here (gaps in that server's sequence for the topic, seen when a later
    /// message arrives): published while this server was disconnected, for instance.
    pub lost: u64,
    /// Messages received a second time (a server resends what the broker did not
    /// confirm before a connection failed) and not delivered again.
    pub duplicates: u64,
    /// Publishes refused because the message was over the bridge's
    /// `max_message_size` ([`crate::bridge::PublishStatus::TooLarge`]); delivered nowhere.
    pub refused: u64,
    /// Messages on this bridge's channels that were not valid envelopes (another
    /// program publishing there, a different version): dropped, logged at `warn`.
    pub invalid: u64,
    /// Failed attempts to connect (each retry counts).
    pub connect_failures: u64,
    /// Connections lost after being established.
    pub disconnects: u64,
    /// Topics this server is subscribed to on the broker now: those it has local
    /// subscribers for, once the broker confirmed.
    pub subscribed_topics: u64,
    /// Delivery lag of the last message received: from the moment the publishing
    /// server handed it to its bridge to the moment this server handed it to its
    /// reactors (wall clocks of two machines: as good as their synchronisation).
    pub lag_last: Duration,
    /// Mean delivery lag over every message received.
    pub lag_mean: Duration,
    /// Largest delivery lag seen.
    pub lag_max: Duration,
}

/// Which of a transport's connections a report is about: the one that sends or the
/// one that receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The connection that sends this server's messages.
    Publish,
    /// The connection that receives the other servers' messages.
    Subscribe,
}

/// The live counters behind [`BridgeStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub publish_up: AtomicBool,
    pub subscribe_up: AtomicBool,
    pub ever_up: AtomicBool,
    pub stopped: AtomicBool,
    pub messages_out: AtomicU64,
    pub messages_in: AtomicU64,
    pub buffered: AtomicU64,
    pub buffered_bytes: AtomicU64,
    pub dropped: AtomicU64,
    pub lost: AtomicU64,
    pub duplicates: AtomicU64,
    pub refused: AtomicU64,
    pub invalid: AtomicU64,
    pub connect_failures: AtomicU64,
    pub disconnects: AtomicU64,
    pub subscribed_topics: AtomicU64,
    /// Microseconds.
    pub lag_last: AtomicU64,
    pub lag_sum: AtomicU64,
    pub lag_max: AtomicU64,
    /// Lags per bucket of [`LAG_BOUNDS_US`] (not cumulative; the last is above every
    /// bound).
    pub lag_buckets: [AtomicU64; LAG_BOUNDS_US.len() + 1],
}

/// Upper bounds of the delivery-lag histogram's buckets, in microseconds
/// (`wavecore_bridge_lag_seconds` in [`crate::server::metrics`]).
pub(crate) const LAG_BOUNDS_US: [u64; 12] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

impl Counters {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Records one delivery lag, in microseconds.
    pub fn lag(&self, micros: u64) {
        self.lag_last.store(micros, Ordering::Relaxed);
        self.lag_sum.fetch_add(micros, Ordering::Relaxed);
        self.lag_max.fetch_max(micros, Ordering::Relaxed);
        let bucket = LAG_BOUNDS_US
            .iter()
            .position(|&bound| micros <= bound)
            .unwrap_or(LAG_BOUNDS_US.len());
        self.lag_buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// The lag histogram: lags per bucket of [`LAG_BOUNDS_US`] (not cumulative) and
    /// the sum of all lags in microseconds.
    pub fn lag_histogram(&self) -> ([u64; LAG_BOUNDS_US.len() + 1], u64) {
        let mut buckets = [0; LAG_BOUNDS_US.len() + 1];
        for (count, bucket) in buckets.iter_mut().zip(&self.lag_buckets) {
            *count = bucket.load(Ordering::Relaxed);
        }
        (buckets, self.lag_sum.load(Ordering::Relaxed))
    }

    /// Records whether the `direction` connection is connected now.
    pub fn set_up(&self, direction: Direction, up: bool) {
        let flag = match direction {
            Direction::Publish => &self.publish_up,
            Direction::Subscribe => &self.subscribe_up,
        };
        flag.store(up, Ordering::Relaxed);
        if up {
            self.ever_up.store(true, Ordering::Relaxed);
        }
    }

    /// A snapshot; `node_id` is the bridge's.
    pub fn snapshot(&self, node_id: u64) -> BridgeStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let up = |c: &AtomicBool| c.load(Ordering::Relaxed);
        let state = if up(&self.stopped) {
            BridgeState::Stopped
        } else if up(&self.publish_up) && up(&self.subscribe_up) {
            BridgeState::Connected
        } else if up(&self.ever_up) {
            BridgeState::Reconnecting
        } else {
            BridgeState::Connecting
        };
        let messages_in = get(&self.messages_in);
        let mean = get(&self.lag_sum).checked_div(messages_in).unwrap_or(0);
        BridgeStats {
            state,
            node_id,
            messages_out: get(&self.messages_out),
            messages_in,
            buffered: get(&self.buffered),
            buffered_bytes: get(&self.buffered_bytes),
            dropped: get(&self.dropped),
            lost: get(&self.lost),
            duplicates: get(&self.duplicates),
            refused: get(&self.refused),
            invalid: get(&self.invalid),
            connect_failures: get(&self.connect_failures),
            disconnects: get(&self.disconnects),
            subscribed_topics: get(&self.subscribed_topics),
            lag_last: Duration::from_micros(get(&self.lag_last)),
            lag_mean: Duration::from_micros(mean),
            lag_max: Duration::from_micros(get(&self.lag_max)),
        }
    }
}
