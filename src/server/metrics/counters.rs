//! One reactor's own counters: written by that reactor's thread only, read by anyone
//! (a scrape, [`crate::ServerHandle::stats`]) at any time.
//!
//! A single writer needs no atomic read-modify-write: [`Counter::add`] is a relaxed
//! load and a relaxed store (two plain `mov`s on x86-64, no `lock` prefix, no fence),
//! so counting a message costs about what incrementing a field costs. The struct is
//! aligned to 128 bytes so two reactors' counters never share a cache line. Readers
//! sum the reactors; a value read while a reactor counts may lag by that one count.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::protocol::CloseCode;

/// A monotonic count with one writer thread (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning reactor's thread may call this: two writers could
    /// lose counts (never memory safety).
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Why a request was refused, the `reason` label of
/// `wavecore_handshake_refusals_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefusalReason {
    /// 400: malformed head or upgrade, ambiguous body framing.
    BadRequest,
    /// 405: an upgrade that is not `GET`.
    MethodNotAllowed,
    /// 411: a body without `Content-Length` (chunked).
    LengthRequired,
    /// 413: a body over `max_http_body_size`.
    ContentTooLarge,
    /// 426: an unsupported WebSocket version or a broken upgrade.
    UpgradeRequired,
    /// 431: a head over `max_handshake_bytes` or `max_headers`.
    HeaderFieldsTooLarge,
    /// Any other status the server's own checks use.
    Other,
    /// [`crate::Service::upgrade`] refused (any status) or panicked (500).
    Service,
    /// The TLS handshake failed (no HTTP status): garbage or plaintext HTTP instead of
    /// a ClientHello, no protocol version, cipher suite or ALPN protocol in common, or
    /// a fatal alert from the client.
    Tls,
    /// 503 for a deferred request: `max_pending_requests` reached, no answer within
    /// `handshake_timeout`, or a shutdown while it waited.
    Pending,
    /// 429: `max_connections_per_address` connections open from the client's address.
    ConnectionsPerAddress,
    /// 429: the client's address opened connections faster than
    /// `connection_rate_per_address`.
    ConnectionRatePerAddress,
    /// 503: the per-address table is full of addresses with open connections.
    AddressTableFull,
    /// 403: an upgrade from an origin not in `allowed_origins`.
    Origin,
    /// No HTTP status: a trusted proxy's connection whose PROXY header was missing,
    /// malformed or too long (closed at once).
    ProxyProtocol,
}

impl RefusalReason {
    /// Every reason, in label order.
    pub const ALL: [Self; 15] = [
        Self::BadRequest,
        Self::MethodNotAllowed,
        Self::LengthRequired,
        Self::ContentTooLarge,
        Self::UpgradeRequired,
        Self::HeaderFieldsTooLarge,
        Self::Other,
        Self::Service,
        Self::Tls,
        Self::Pending,
        Self::ConnectionsPerAddress,
        Self::ConnectionRatePerAddress,
        Self::AddressTableFull,
        Self::Origin,
        Self::ProxyProtocol,
    ];

    /// The reason for a refusal by the server's own checks with `status`.
    pub fn of_status(status: u16) -> Self {
        match status {
            400 => Self::BadRequest,
            405 => Self::MethodNotAllowed,
            411 => Self::LengthRequired,
            413 => Self::ContentTooLarge,
            426 => Self::UpgradeRequired,
            431 => Self::HeaderFieldsTooLarge,
            _ => Self::Other,
        }
    }

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::LengthRequired => "length_required",
            Self::ContentTooLarge => "content_too_large",
            Self::UpgradeRequired => "upgrade_required",
            Self::HeaderFieldsTooLarge => "header_fields_too_large",
            Self::Other => "other",
            Self::Service => "service",
            Self::Tls => "tls",
            Self::Pending => "pending",
            Self::ConnectionsPerAddress => "connections_per_address",
            Self::ConnectionRatePerAddress => "connection_rate_per_address",
            Self::AddressTableFull => "address_table_full",
            Self::Origin => "origin",
            Self::ProxyProtocol => "proxy_protocol",
        }
    }
}

/// The close codes `wavecore_connections_closed_total` tells apart; the rest share
/// the labels `application` (3000-4999) and `other`.
const CLOSE_CODES: [u16; 14] = [
    1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
];

/// Number of close-code label values: the codes, `application`, `other`.
pub(crate) const CLOSE_LABELS: usize = CLOSE_CODES.len() + 2;

/// The label slot of `code`.
fn close_slot(code: CloseCode) -> usize {
    match CLOSE_CODES.iter().position(|&c| c == code.0) {
        Some(i) => i,
        None if (3000..5000).contains(&code.0) => CLOSE_CODES.len(),
        None => CLOSE_CODES.len() + 1,
    }
}

/// The `code` label value of slot `i` (below [`CLOSE_LABELS`]).
pub(crate) fn close_label(i: usize) -> String {
    match CLOSE_CODES.get(i) {
        Some(code) => code.to_string(),
        None if i == CLOSE_CODES.len() => "application".into(),
        None => "other".into(),
    }
}

/// Upper bounds of the turn-duration buckets, in nanoseconds (10 µs to 1 s).
pub(crate) const TURN_BOUNDS_NS: [u64; 14] = [
    10_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    1_000_000_000,
];

/// How long the reactor's turns took: bucket counts (not cumulative; the last is
/// above every bound) and the sum.
#[derive(Debug, Default)]
pub(crate) struct TurnHistogram {
    buckets: [Counter; TURN_BOUNDS_NS.len() + 1],
    sum_ns: Counter,
}

/// A reading of a [`TurnHistogram`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct TurnReading {
    /// Turns per bucket (not cumulative): above the previous bound of
    /// [`TURN_BOUNDS_NS`] and at or under this one; the last is above every bound.
    pub buckets: [u64; TURN_BOUNDS_NS.len() + 1],
    /// All turns.
    pub count: u64,
    /// Their total duration in seconds.
    pub sum_seconds: f64,
}

impl TurnHistogram {
    /// Records one turn (a linear scan over 14 bounds: a few nanoseconds, once a turn).
    pub fn observe(&self, turn: Duration) {
        let ns = u64::try_from(turn.as_nanos()).unwrap_or(u64::MAX);
        let slot = TURN_BOUNDS_NS
            .iter()
            .position(|&bound| ns <= bound)
            .unwrap_or(TURN_BOUNDS_NS.len());
        self.buckets[slot].add(1);
        self.sum_ns.add(ns);
    }

    /// The counts so far.
    pub fn read(&self) -> TurnReading {
        let mut reading = TurnReading::default();
        for (slot, bucket) in reading.buckets.iter_mut().zip(&self.buckets) {
            *slot = bucket.get();
        }
        reading.count = reading.buckets.iter().sum();
        reading.sum_seconds = self.sum_ns.get() as f64 / 1e9;
        reading
    }
}

/// Everything one reactor counts on its own (see the module docs).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct ReactorCounters {
    /// Data messages handed to `on_message`.
    pub messages_received: Counter,
    /// Their payload bytes.
    pub bytes_received: Counter,
    /// Data messages a handler sent with `Conn::send*` (not dropped).
    pub messages_sent: Counter,
    /// Their payload bytes.
    pub bytes_sent: Counter,
    /// Sends queued behind bytes the socket had not taken (`SendStatus::Backpressure`).
    pub backpressure_events: Counter,
    /// `Conn::publish*` and `Conn::broadcast` calls.
    pub publishes: Counter,
    /// Published messages handed to a subscriber's connection (one per subscriber).
    pub deliveries: Counter,
    /// WebSocket connections that left the open state, by close code slot.
    pub closes: [Counter; CLOSE_LABELS],
    /// Refused requests by [`RefusalReason`] (`ALL` order).
    pub refusals: [Counter; RefusalReason::ALL.len()],
    /// How long each turn of the event loop took.
    pub turns: TurnHistogram,
    /// Frames over a connection's message rate: dropped, and connections closed.
    pub rate_limited_drops: Counter,
    pub rate_limited_closes: Counter,
}

impl ReactorCounters {
    /// A data message of `len` payload bytes was received.
    #[inline]
    pub fn received(&self, len: usize) {
        self.messages_received.add(1);
        self.bytes_received.add(len as u64);
    }

    /// A data message of `len` payload bytes was sent.
    #[inline]
    pub fn sent(&self, len: usize) {
        self.messages_sent.add(1);
        self.bytes_sent.add(len as u64);
    }

    /// A WebSocket connection left the open state with `code`.
    pub fn closed(&self, code: CloseCode) {
        self.closes[close_slot(code)].add(1);
    }

    /// A frame passed its connection's message rate, handled per `policy`.
    pub fn rate_limited(&self, policy: crate::server::admission::RatePolicy) {
        match policy {
            crate::server::admission::RatePolicy::Drop => self.rate_limited_drops.add(1),
            crate::server::admission::RatePolicy::Close => self.rate_limited_closes.add(1),
        }
    }

    /// A request was refused for `reason`.
    pub fn refused(&self, reason: RefusalReason) {
        let slot = RefusalReason::ALL
            .iter()
            .position(|&r| r == reason)
            .unwrap_or(0);
        self.refusals[slot].add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up() {
        let counters = ReactorCounters::default();
        counters.received(5);
        counters.received(7);
        counters.sent(3);
        assert_eq!(counters.messages_received.get(), 2);
        assert_eq!(counters.bytes_received.get(), 12);
        assert_eq!(
            (counters.messages_sent.get(), counters.bytes_sent.get()),
            (1, 3)
        );
        assert_eq!(std::mem::align_of::<ReactorCounters>(), 128);
    }

    #[test]
    fn close_codes_have_their_own_label_or_share_one() {
        let counters = ReactorCounters::default();
        for code in [1000, 1001, 1001, 4001, 3000, 1015, 2999] {
            counters.closed(CloseCode(code));
        }
        let label = |code| close_label(close_slot(CloseCode(code)));
        assert_eq!(label(1001), "1001");
        assert_eq!(label(4999), "application");
        assert_eq!(label(1015), "other");
        assert_eq!(counters.closes[close_slot(CloseCode::GOING_AWAY)].get(), 2);
        assert_eq!(counters.closes[CLOSE_CODES.len()].get(), 2);
        assert_eq!(counters.closes[CLOSE_CODES.len() + 1].get(), 2);
    }

    #[test]
    fn refusals_are_labelled_by_status() {
        assert_eq!(
            RefusalReason::of_status(431).label(),
            "header_fields_too_large"
        );
        assert_eq!(RefusalReason::of_status(418), RefusalReason::Other);
        let counters = ReactorCounters::default();
        counters.refused(RefusalReason::Service);
        assert_eq!(counters.refusals[7].get(), 1);
    }

    #[test]
    fn the_histogram_counts_each_bucket() {
        let histogram = TurnHistogram::default();
        histogram.observe(Duration::from_micros(5));
        histogram.observe(Duration::from_micros(10));
        histogram.observe(Duration::from_millis(3));
        histogram.observe(Duration::from_secs(2));
        let reading = histogram.read();
        assert_eq!(reading.count, 4);
        assert_eq!(reading.buckets[0], 2, "10 µs is in the first bucket");
        assert_eq!(reading.buckets[6], 0, "3 ms is above 2.5 ms");
        assert_eq!(reading.buckets[7], 1);
        assert_eq!(reading.buckets[14], 1, "2 s is above every bound");
        assert!((reading.sum_seconds - 2.003015).abs() < 1e-9);
    }
}
