//! The bridge's metrics (`wavecore_bridge_*`), written only for a server with a
//! bridge: its state, its message counts and its delivery lag (see
//! [`crate::bridge::BridgeStats`] for what each count means).

use std::fmt;

use prometheus_client::encoding::NoLabelSet;

use super::{Out, buckets};
use crate::server::bridge::{BridgeShared as Bridge, BridgeState, LAG_BOUNDS_US};

impl Out<'_, '_> {
    /// Writes every `bridge_*` metric of `bridge`.
    pub(super) fn bridge(&mut self, bridge: &Bridge) -> fmt::Result {
        let b = bridge.stats();
        let connected = usize::from(b.state == BridgeState::Connected);
        self.gauge(
            "bridge_connected",
            "1 while the bridge is connected to its broker (publishing and subscribed), else 0",
            connected,
        )?;
        let counters = [
            (
                "bridge_messages_out",
                "Messages published here that the broker confirmed",
                b.messages_out,
            ),
            (
                "bridge_messages_in",
                "Messages from other servers delivered to this server's topics",
                b.messages_in,
            ),
            (
                "bridge_dropped",
                "Messages that never left this server (buffer full, or stopped first)",
                b.dropped,
            ),
            (
                "bridge_lost",
                "Messages from other servers that never arrived here (sequence gaps)",
                b.lost,
            ),
            (
                "bridge_duplicates",
                "Messages received a second time and not delivered again",
                b.duplicates,
            ),
            (
                "bridge_refused",
                "Publishes over the bridge's max_message_size, delivered nowhere",
                b.refused,
            ),
            (
                "bridge_invalid",
                "Messages on the bridge's channels that were not valid envelopes",
                b.invalid,
            ),
            (
                "bridge_connect_failures",
                "Failed attempts to connect to the broker",
                b.connect_failures,
            ),
            (
                "bridge_disconnects",
                "Broker connections lost after being established",
                b.disconnects,
            ),
        ];
        for (name, help, value) in counters {
            self.counter(name, help, value)?;
        }
        let gauges = [
            (
                "bridge_buffered",
                "Messages waiting to be sent to the broker",
                b.buffered,
            ),
            (
                "bridge_buffered_bytes",
                "Bytes of envelopes waiting to be sent to the broker",
                b.buffered_bytes,
            ),
            (
                "bridge_subscribed_topics",
                "Topics subscribed to on the broker",
                b.subscribed_topics,
            ),
        ];
        for (name, help, value) in gauges {
            self.gauge(name, help, usize::try_from(value).unwrap_or(usize::MAX))?;
        }
        let (counts, sum_us) = bridge.lag_histogram();
        let mut metric = self.seconds_histogram(
            "bridge_lag",
            "Delivery lag of messages from other servers: from the publishing server's bridge to this server's reactors (wall clocks of both)",
        )?;
        let bounds = LAG_BOUNDS_US.iter().map(|&us| us as f64 / 1e6);
        let buckets = buckets(bounds, counts);
        let count = counts.iter().sum();
        metric.encode_histogram::<NoLabelSet>(sum_us as f64 / 1e6, count, &buckets, None)
    }
}
