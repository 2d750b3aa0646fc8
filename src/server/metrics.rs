//! The server's counters in the Prometheus text exposition format (version 0.0.4) or
//! OpenMetrics 1.0 text, rendered with the `prometheus-client` crate at scrape time.
//!
//! Nothing here runs on the hot path: reactors count into their own counters
//! (`metrics/counters.rs`: single-writer, no lock, no atomic read-modify-write) and
//! the shared ones (`stats.rs`); a scrape reads and sums them. Serve them on the WebSocket port from
//! [`Service::http`](crate::Service::http) with one line:
//!
//! ```no_run
//! use wavecore::{HttpResponse, Request, Service, Upgrade};
//! # struct Echo;
//! # impl wavecore::Handler for Echo {
//! #     fn on_message(&mut self, c: &mut wavecore::Conn<'_>, m: wavecore::Message<'_>) {}
//! # }
//! struct App;
//!
//! impl Service for App {
//!     type Handler = Echo;
//!     fn upgrade(&self, _: &Request<'_>) -> Upgrade<Echo> {
//!         Upgrade::accept(Echo)
//!     }
//!     fn http(&self, request: &Request<'_>) -> HttpResponse {
//!         match request.path() {
//!             "/metrics" => HttpResponse::metrics(request),
//!             _ => HttpResponse::not_found(),
//!         }
//!     }
//! }
//! ```
//!
//! Every name starts with `wavecore_`:
//!
//! | metric | type | what |
//! | --- | --- | --- |
//! | `connections_open` | gauge | WebSocket connections open |
//! | `tcp_connections` | gauge | TCP connections held in any phase (HTTP, handshake, closing) |
//! | `connections_accepted_total` | counter | TCP connections accepted |
//! | `accept_errors_total` | counter | failed `accept` calls (each pauses accepting for 100 ms) |
//! | `io_uring_recv_buffers_exhausted_total`, `io_uring_cq_overflows_total` | counter | io_uring only: receives that found the provided buffers used up (`ENOBUFS`, re-armed); turns that found the completion queue overflowed (held by the kernel, not lost) |
//! | `handshake_refusals_total{reason}` | counter | refused requests: `over_capacity` (503), `bad_request`, `method_not_allowed`, `length_required`, `content_too_large`, `upgrade_required`, `header_fields_too_large`, `other`, `service`, `tls` (a failed TLS handshake), and the admission limits' (see [`crate::server::admission`]): `connections_per_address`, `connection_rate_per_address` (429), `address_table_full` (503), `origin` (403), `proxy_protocol` (a trusted proxy's missing or malformed PROXY header) |
//! | `message_rate_limited_total{action}` | counter | frames over a connection's message rate: `dropped` (policy Drop) or `closed` (policy Close, 1008) |
//! | `connections_closed_total{code}` | counter | WebSocket connections that left the open state, by close code (`1000`...`1014`, `application` for 3000-4999, `other`) |
//! | `handshake_timeouts_total`, `idle_timeouts_total`, `http_idle_timeouts_total` | counter | connections dropped by `handshake_timeout`, `pong_timeout`, `keep_alive_timeout` |
//! | `http_requests_total` | counter | plain HTTP requests answered by the service |
//! | `protocol_errors_total` | counter | connections closed with 1002, 1007 or 1009, or failed by TLS after the handshake |
//! | `messages_received_total`, `messages_sent_total` | counter | data messages handed to `on_message` / sent with `Conn::send*` |
//! | `message_received_bytes_total`, `message_sent_bytes_total` | counter | their payload bytes |
//! | `backpressure_events_total` | counter | sends queued behind a full socket |
//! | `backpressure_closes_total`, `dropped_messages_total` | counter | 1008 closes and drops under `max_backpressure` |
//! | `publishes_total`, `deliveries_total` | counter | messages published; published messages handed to subscribers |
//! | `handler_panics_total`, `internal_errors_total` | counter | panics in handlers (1011) and in wavecore itself |
//! | `topics` | gauge | topics with a subscriber |
//! | `reactors`, `reactors_failed` | gauge | reactor threads started; failed |
//! | `turn_duration_seconds{reactor}` | histogram | one turn of a reactor's event loop (events, timers, flush) |
//!
//! A server with a bridge ([`crate::ServerBuilder::bridge`]) adds its state and counts
//! (each described at [`crate::bridge::BridgeStats`]):
//!
//! | metric | type | what |
//! | --- | --- | --- |
//! | `bridge_connected` | gauge | 1 while connected to the broker (publishing and subscribed), else 0 |
//! | `bridge_messages_out_total`, `bridge_messages_in_total` | counter | messages published here and confirmed; messages from other servers delivered here |
//! | `bridge_dropped_total`, `bridge_lost_total`, `bridge_duplicates_total`, `bridge_refused_total`, `bridge_invalid_total` | counter | messages dropped before leaving, lost on the way here, received twice, over the size limit, not envelopes |
//! | `bridge_connect_failures_total`, `bridge_disconnects_total` | counter | failed connection attempts; connections lost |
//! | `bridge_buffered`, `bridge_buffered_bytes`, `bridge_subscribed_topics` | gauge | messages and bytes waiting for the broker; topics subscribed to on it |
//! | `bridge_lag_seconds` | histogram | delivery lag of messages from other servers, from the publishing server's bridge to this server's reactors (buckets 100 µs to 1 s) |

mod bridge;
pub(crate) mod counters;

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::server::handler::Request;
use crate::server::http::HttpResponse;
use crate::server::shared::Shared;
use counters::{CLOSE_LABELS, RefusalReason, TURN_BOUNDS_NS, close_label};

/// The `Content-Type` of the Prometheus text format, version 0.0.4.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `Content-Type` of OpenMetrics 1.0 text.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A text exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// Prometheus text, version 0.0.4.
    Prometheus,
    /// OpenMetrics 1.0 text (ends with `# EOF`).
    OpenMetrics,
}

/// Renders every metric of the server `shared` in `format`.
pub(crate) fn render(shared: &Arc<Shared>, format: Format) -> String {
    let mut registry = Registry::with_prefix("wavecore");
    registry.register_collector(Box::new(ServerCollector(shared.clone())));
    let mut out = String::with_capacity(8 << 10);
    let written = match format {
        Format::Prometheus => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        }
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
    };
    if written.is_err() {
        // Writing to a String cannot fail; an encoder refusing a value would be a bug.
        tracing::error!("rendering the metrics failed; the scrape gets what was written");
    }
    out
}

impl HttpResponse {
    /// `200` with the server's metrics (see [`crate::server::metrics`] for the list):
    /// OpenMetrics 1.0 text when the request's `Accept` names
    /// `application/openmetrics-text` (as Prometheus does), else the Prometheus text
    /// format 0.0.4. Meant for [`crate::Service::http`]: `"/metrics" =>
    /// HttpResponse::metrics(request)`.
    pub fn metrics(request: &Request<'_>) -> Self {
        let openmetrics = request
            .header_str("accept")
            .is_some_and(|accept| accept.contains("application/openmetrics-text"));
        let server = request.server();
        if openmetrics {
            HttpResponse::new(200, server.metrics_openmetrics())
                .with_header("Content-Type", OPENMETRICS_CONTENT_TYPE)
        } else {
            HttpResponse::new(200, server.metrics_text())
                .with_header("Content-Type", PROMETHEUS_CONTENT_TYPE)
        }
    }
}

/// Reads the server's counters on each scrape.
#[derive(Debug)]
struct ServerCollector(Arc<Shared>);

impl Collector for ServerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let shared = &self.0;
        let s = shared.stats();
        let tcp = shared.stats.tcp.load(std::sync::atomic::Ordering::Relaxed);
        let failed = shared.failures().len();
        let mut out = Out(&mut encoder);

        out.gauge(
            "connections_open",
            "WebSocket connections open now",
            s.open_connections,
        )?;
        out.gauge("tcp_connections", "TCP connections held, in any phase", tcp)?;
        out.gauge(
            "pending_requests",
            "Requests waiting for an answer their service deferred",
            s.pending_requests,
        )?;
        out.counter(
            "connections_accepted",
            "TCP connections accepted",
            s.accepted,
        )?;
        out.counter("accept_errors", "Failed accept calls", s.accept_errors)?;
        out.counter(
            "io_uring_recv_buffers_exhausted",
            "io_uring receives that found the provided buffers used up (ENOBUFS)",
            s.recv_buffers_exhausted,
        )?;
        out.counter(
            "io_uring_cq_overflows",
            "io_uring turns that found the completion queue overflowed",
            s.cq_overflows,
        )?;

        let mut refusals = vec![("over_capacity", s.refused_over_capacity)];
        for (i, reason) in RefusalReason::ALL.iter().enumerate() {
            let n = shared.counters.iter().map(|c| c.refusals[i].get()).sum();
            refusals.push((reason.label(), n));
        }
        out.labelled(
            "handshake_refusals",
            "Requests refused with an HTTP error or a failed TLS handshake, by reason",
            "reason",
            refusals.into_iter().map(|(l, n)| (l.to_owned(), n)),
        )?;
        let rate_limited = [
            (
                "dropped",
                shared
                    .counters
                    .iter()
                    .map(|c| c.rate_limited_drops.get())
                    .sum(),
            ),
            (
                "closed",
                shared
                    .counters
                    .iter()
                    .map(|c| c.rate_limited_closes.get())
                    .sum(),
            ),
        ];
        out.labelled(
            "message_rate_limited",
            "Frames over a connection's message rate: dropped, or the connection closed (1008)",
            "action",
            rate_limited.into_iter().map(|(l, n)| (l.to_owned(), n)),
        )?;
        let closes = (0..CLOSE_LABELS).map(|i| {
            let n = shared.counters.iter().map(|c| c.closes[i].get()).sum();
            (close_label(i), n)
        });
        out.labelled(
            "connections_closed",
            "WebSocket connections that left the open state, by close code",
            "code",
            closes,
        )?;

        out.counter(
            "handshake_timeouts",
            "Connections dropped by handshake_timeout",
            s.handshake_timeouts,
        )?;
        out.counter(
            "idle_timeouts",
            "Connections dropped after an unanswered automatic ping",
            s.idle_timeouts,
        )?;
        out.counter(
            "http_idle_timeouts",
            "Kept-alive HTTP connections closed by keep_alive_timeout",
            s.http_idle_timeouts,
        )?;
        out.counter(
            "http_requests",
            "Plain HTTP requests answered by the service",
            s.http_requests,
        )?;
        out.counter(
            "protocol_errors",
            "Connections closed for a protocol violation or size limit",
            s.protocol_errors,
        )?;
        out.counter(
            "messages_received",
            "Data messages handed to on_message",
            s.messages_received,
        )?;
        out.counter(
            "messages_sent",
            "Data messages sent with Conn::send",
            s.messages_sent,
        )?;
        out.bytes(
            "message_received",
            "Payload bytes of data messages received",
            s.message_bytes_received,
        )?;
        out.bytes(
            "message_sent",
            "Payload bytes of data messages sent with Conn::send",
            s.message_bytes_sent,
        )?;
        out.counter(
            "backpressure_events",
            "Sends queued behind bytes the socket had not taken",
            s.backpressure_events,
        )?;
        out.counter(
            "backpressure_closes",
            "Connections closed with 1008 at max_backpressure",
            s.backpressure_closes,
        )?;
        out.counter(
            "dropped_messages",
            "Messages dropped under the Drop backpressure policy",
            s.dropped_messages,
        )?;
        out.counter(
            "publishes",
            "Messages published to a topic or broadcast",
            s.publishes,
        )?;
        out.counter(
            "deliveries",
            "Published messages handed to a subscriber",
            s.deliveries,
        )?;
        out.counter(
            "handler_panics",
            "Handler callbacks that panicked (1011)",
            s.handler_panics,
        )?;
        out.counter(
            "internal_errors",
            "Connections failed by a panic in wavecore itself",
            s.internal_errors,
        )?;
        out.gauge(
            "topics",
            "Topics with at least one subscriber",
            shared.topic_count(),
        )?;
        out.gauge("reactors", "Reactor threads started", shared.counters.len())?;
        out.gauge(
            "reactors_failed",
            "Reactors that stopped on a failure",
            failed,
        )?;
        if let Some(bridge) = &shared.bridge {
            out.bridge(bridge)?;
        }

        let mut metric = out.seconds_histogram(
            "turn_duration",
            "Duration of one turn of a reactor's event loop",
        )?;
        for (index, counters) in shared.counters.iter().enumerate() {
            let reading = counters.turns.read();
            let bounds = TURN_BOUNDS_NS.iter().map(|&ns| ns as f64 / 1e9);
            let buckets = buckets(bounds, reading.buckets);
            let labels = [("reactor", index.to_string())];
            metric
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(
                    reading.sum_seconds,
                    reading.count,
                    &buckets,
                    None,
                )?;
        }
        Ok(())
    }
}

/// Shorthands for the descriptors [`ServerCollector`] writes.
struct Out<'a, 'e>(&'a mut DescriptorEncoder<'e>);

impl Out<'_, '_> {
    fn gauge(&mut self, name: &str, help: &str, value: usize) -> fmt::Result {
        let mut metric = self
            .0
            .encode_descriptor(name, help, None, MetricType::Gauge)?;
        metric.encode_gauge(&(value as u64))
    }

    /// The descriptor of a histogram in seconds, for its values to be encoded.
    fn seconds_histogram<'s>(
        &'s mut self,
        name: &'s str,
        help: &'s str,
    ) -> Result<MetricEncoder<'s>, fmt::Error> {
        static SECONDS: Unit = Unit::Seconds;
        self.0
            .encode_descriptor(name, help, Some(&SECONDS), MetricType::Histogram)
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) -> fmt::Result {
        let metric = self
            .0
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        counter_value(metric, value)
    }

    fn bytes(&mut self, name: &str, help: &str, value: u64) -> fmt::Result {
        let unit = Unit::Bytes;
        let metric = self
            .0
            .encode_descriptor(name, help, Some(&unit), MetricType::Counter)?;
        counter_value(metric, value)
    }

    fn labelled(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        values: impl Iterator<Item = (String, u64)>,
    ) -> fmt::Result {
        let mut metric = self
            .0
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        for (value, n) in values {
            let labels = [(label, value)];
            counter_value(metric.encode_family(&labels)?, n)?;
        }
        Ok(())
    }
}

/// A histogram's buckets for the encoder: each bucket's own count (not cumulative: the
/// encoder accumulates them) under its upper bound in seconds, the last above every
/// bound.
fn buckets(
    bounds_seconds: impl Iterator<Item = f64>,
    counts: impl IntoIterator<Item = u64>,
) -> Vec<(f64, u64)> {
    bounds_seconds.chain([f64::INFINITY]).zip(counts).collect()
}

fn counter_value(mut metric: MetricEncoder<'_>, value: u64) -> fmt::Result {
    metric.encode_counter::<NoLabelSet, _, u64>(&value, None)
}
