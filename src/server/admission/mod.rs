//! Admission control: decisions about a client made when it connects and when its
//! request head arrives, before any handler runs, and limits on what an open
//! connection may send.
//!
//! | limit | decided | answer | `/metrics` |
//! | --- | --- | --- | --- |
//! | connections per client address | accept (or after the PROXY header, or at the request head behind a trusted forwarding proxy) | `429` + `Retry-After` | `handshake_refusals_total{reason="connections_per_address"}` |
//! | new connections per address per second | same | `429` + `Retry-After` | `{reason="connection_rate_per_address"}` |
//! | per-address table full of open addresses | same | `503` + `Retry-After` | `{reason="address_table_full"}` |
//! | allowed origins | request head, before [`crate::Service::upgrade`] | `403` | `{reason="origin"}` |
//! | PROXY header missing or malformed from a trusted source | first bytes | connection closed at once | `{reason="proxy_protocol"}` |
//! | messages and bytes per connection per second | each frame received | close 1008 or drop and [`crate::Handler::on_rate_limited`] | `message_rate_limited_total{action}` |
//! | subscriptions per connection | [`crate::Conn::subscribe`] | `false` | — |
//!
//! Every refusal is logged at `debug` with the client's address, never louder: a flood
//! must not be able to fill a disk.
//!
//! What costs what: the per-address table (`per_address.rs`) is shared by the reactors
//! and locked (one shard of 64) only to admit a connection and when an admitted one
//! ends. An established connection's message rate is two token buckets in its own
//! state, read and written only by its reactor: no lock, no atomic, no clock read
//! (the reactor's tick).

pub(crate) mod forwarded;
mod networks;
mod origins;
pub(crate) mod per_address;
pub(crate) mod rate;
mod token_bucket;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::protocol::handshake::{Refusal, RequestHead};
use crate::protocol::proxy::{ProxyError, ProxyHeader};
use crate::server::core::conn::state::ConnState;
use crate::server::metrics::counters::RefusalReason;

pub use networks::{Cidr, CidrError};
pub use origins::AllowedOrigins;
pub use rate::{MessageRate, RatePolicy};
pub use token_bucket::Rate;

use networks::trusted;
use per_address::{AddrKey, AddressTable, Refused, Ticket};

/// Admission settings ([`crate::ServerConfig::admission`]). Everything is off by
/// default: a server behaves as before until a limit is set.
#[derive(Debug, Clone)]
pub struct AdmissionConfig {
    /// Most connections open at once from one client address (an IPv4 address, an
    /// IPv6 `/ipv6_prefix` network), across all reactors, counted from accept (or
    /// from when the real address is known, see `proxy_protocol`) until the TCP
    /// connection ends, plain HTTP connections included. Past it, the request is
    /// answered `429 Too Many Requests` (RFC 6585 §4) with `Retry-After: 1` and the
    /// connection closed, before any request byte is read. `None` (default): no limit.
    pub max_connections_per_address: Option<u32>,
    /// New connections per client address per second, with a burst (a token bucket
    /// per address, see [`Rate`]). Past it, `429` with `Retry-After` set to the
    /// seconds until a token is back (rounded up). `None` (default): no limit.
    pub connection_rate_per_address: Option<Rate>,
    /// Most client addresses the per-address limits remember (default 65,536; about
    /// 100 bytes each). What is evicted when it is full: the
    /// address with no open connection seen longest ago; when all have connections
    /// open, new addresses get `503` until one closes. Keep it at or above
    /// `max_connections` when limits are on.
    pub address_table_capacity: usize,
    /// The IPv6 prefix length that counts as one client (default 64: one subscriber's
    /// network, since a host can pick any address in its /64).
    pub ipv6_prefix: u8,
    /// Messages and bytes per connection per second (see [`MessageRate`]). `None`
    /// (default): no limit.
    pub message_rate: Option<MessageRate>,
    /// Most topics one connection may subscribe to; past it
    /// [`crate::Conn::subscribe`] returns `false`. `None` (default): no limit.
    pub max_subscriptions_per_connection: Option<usize>,
    /// Origins allowed to upgrade (RFC 6455 §10.2): a WebSocket upgrade from any
    /// other is refused with `403 Forbidden` before [`crate::Service::upgrade`] runs.
    /// Plain HTTP requests are not checked. `None` (default): every origin allowed.
    /// A server that browsers reach, and that trusts cookies or other ambient
    /// credentials, should set it.
    pub allowed_origins: Option<AllowedOrigins>,
    /// Expect a PROXY protocol header (v1 or v2, HAProxy's specification) from
    /// connections whose TCP peer is in `trusted_proxies`: the client address it
    /// names replaces the peer's (in limits, logs, [`crate::Request::peer_addr`],
    /// [`crate::Conn::peer_addr`]; the proxy's address stays at
    /// [`crate::Conn::proxy_addr`]). From such a peer, a missing or malformed header
    /// closes the connection at once (no HTTP answer: the bytes are not HTTP). From
    /// any other peer no header is honoured (a client cannot claim an address). The
    /// handshake timeout covers the header. Default false.
    pub proxy_protocol: bool,
    /// The proxies trusted to name the client: the sources PROXY headers are read
    /// from, and the hops `Forwarded` / `X-Forwarded-For` may walk past. Empty by
    /// default.
    pub trusted_proxies: Vec<Cidr>,
    /// Read the client's address from `Forwarded` (RFC 7239) or `X-Forwarded-For`
    /// on requests whose peer is in `trusted_proxies` (walked from the right past trusted hops, so a forged entry is never believed); the
    /// per-address limits for such connections are then decided at the request head
    /// (before the service is called). Headers from any other peer are ignored.
    /// Default false.
    pub forwarded_headers: bool,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            max_connections_per_address: None,
            connection_rate_per_address: None,
            address_table_capacity: 65_536,
            ipv6_prefix: 64,
            message_rate: None,
            max_subscriptions_per_connection: None,
            allowed_origins: None,
            proxy_protocol: false,
            trusted_proxies: Vec::new(),
            forwarded_headers: false,
        }
    }
}

impl AdmissionConfig {
    /// The shared per-address table these settings need, if any.
    pub(crate) fn table(&self) -> Option<Arc<AddressTable>> {
        (self.max_connections_per_address.is_some() || self.connection_rate_per_address.is_some())
            .then(|| {
                Arc::new(AddressTable::new(
                    self.address_table_capacity,
                    self.max_connections_per_address,
                    self.connection_rate_per_address,
                ))
            })
    }

    /// Whether a connection from `peer` waits for its request head to be admitted
    /// (its forwarding headers name the client).
    fn defers_to_head(&self, peer: SocketAddr) -> bool {
        self.forwarded_headers && trusted(&self.trusted_proxies, peer.ip())
    }
}

/// A connection's admission state, boxed in its [`ConnState`] only when some
/// admission setting applies to it.
#[derive(Debug, Default)]
pub(crate) struct ConnAdmission {
    /// Counts the connection against its address until the connection ends.
    ticket: Option<Ticket>,
    /// The proxy the connection came through, when a PROXY header or forwarding
    /// header replaced its address.
    pub via: Option<SocketAddr>,
    /// Admission waits for the request head (forwarding headers): the table.
    deferred: Option<Arc<AddressTable>>,
    /// The message-rate buckets, once open.
    pub rate: Option<rate::ConnRate>,
}

/// A refusal and its reason on `/metrics`.
pub(crate) type Refuse = (Refusal, RefusalReason);

/// What to do with a connection just accepted from `peer`.
pub(crate) enum AtAccept {
    /// Serve it, with this admission state (`None`: nothing applies).
    Serve(Option<Box<ConnAdmission>>),
    /// Read a PROXY header first ([`after_proxy_header`] decides).
    ProxyHeader,
    /// Answer with this refusal and close.
    Refuse(Refuse),
}

/// Decides about a connection just accepted from `peer` at `now` (`table`: the
/// server's per-address table, if limits are set).
pub(crate) fn at_accept(
    config: &AdmissionConfig,
    table: Option<&Arc<AddressTable>>,
    peer: SocketAddr,
    now: Instant,
) -> AtAccept {
    if config.proxy_protocol && trusted(&config.trusted_proxies, peer.ip()) {
        return AtAccept::ProxyHeader;
    }
    match admit(config, table, peer, now) {
        Ok(admission) => AtAccept::Serve(admission),
        Err(refuse) => AtAccept::Refuse(refuse),
    }
}

/// A trusted peer's PROXY header arrived (or failed): the client's address (the
/// header's, or the peer's for `LOCAL`, `UNKNOWN` and non-IP families) and its
/// admission state, or the refusal. A refusal with status 0 means: close at once,
/// without an answer.
pub(crate) fn after_proxy_header(
    config: &AdmissionConfig,
    table: Option<&Arc<AddressTable>>,
    header: Result<ProxyHeader, ProxyError>,
    peer: SocketAddr,
    now: Instant,
) -> Result<(SocketAddr, Option<Box<ConnAdmission>>), Refuse> {
    let header =
        header.map_err(|e| (Refusal::new(0, e.to_string()), RefusalReason::ProxyProtocol))?;
    let client = header.source.unwrap_or(peer);
    let mut admission = admit(config, table, client, now)?;
    if client != peer {
        admission.get_or_insert_with(Default::default).via = Some(peer);
    }
    Ok((client, admission))
}

/// Admits a connection from `client` now, or defers it to the request head.
fn admit(
    config: &AdmissionConfig,
    table: Option<&Arc<AddressTable>>,
    client: SocketAddr,
    now: Instant,
) -> Result<Option<Box<ConnAdmission>>, Refuse> {
    let Some(table) = table else {
        return Ok(None);
    };
    if config.defers_to_head(client) {
        return Ok(Some(Box::new(ConnAdmission {
            deferred: Some(table.clone()),
            ..Default::default()
        })));
    }
    let ticket = table
        .admit(AddrKey::of(client.ip(), config.ipv6_prefix), now)
        .map_err(refusal)?;
    Ok(Some(Box::new(ConnAdmission {
        ticket: Some(ticket),
        ..Default::default()
    })))
}

/// The answer to a refusal by the per-address table.
fn refusal(refused: Refused) -> Refuse {
    match refused {
        Refused::Connections => (
            Refusal::new(429, "too many connections from this address")
                .with_header("Retry-After", "1"),
            RefusalReason::ConnectionsPerAddress,
        ),
        Refused::Rate(wait) => (
            Refusal::new(429, "too many new connections from this address")
                .with_header("Retry-After", retry_after(wait)),
            RefusalReason::ConnectionRatePerAddress,
        ),
        Refused::TableFull => (
            Refusal::service_unavailable("too many client addresses")
                .with_header("Retry-After", "1"),
            RefusalReason::AddressTableFull,
        ),
    }
}

/// `Retry-After` in whole seconds (RFC 9110 §10.2.3), rounded up, at least 1.
fn retry_after(wait: Duration) -> String {
    wait.as_secs_f64().ceil().max(1.0).to_string()
}

/// A request head arrived on a connection: behind a trusted forwarding proxy, its
/// client address is read from the forwarding headers (the first head decides) and
/// the per-address limits applied; for a WebSocket upgrade (`upgrade`), its origin
/// is checked. The state's peer becomes the client's address.
pub(crate) fn at_head(
    head: &RequestHead,
    state: &mut ConnState,
    config: &AdmissionConfig,
    upgrade: bool,
) -> Result<(), Refuse> {
    if config.forwarded_headers
        && trusted(&config.trusted_proxies, state.peer.ip())
        && state.admission.as_ref().is_none_or(|a| a.via.is_none())
        && let Some(client) = forwarded::client(head, &config.trusted_proxies)
    {
        let proxy = std::mem::replace(&mut state.peer, client);
        state.admission.get_or_insert_with(Default::default).via = Some(proxy);
    }
    if let Some(admission) = state.admission.as_deref_mut()
        && let Some(table) = admission.deferred.take()
    {
        let key = AddrKey::of(state.peer.ip(), config.ipv6_prefix);
        admission.ticket = Some(table.admit(key, Instant::now()).map_err(refusal)?);
    }
    if upgrade
        && let Some(origins) = &config.allowed_origins
        && !origins.allows(head.header("origin"))
    {
        return Err((
            Refusal::forbidden("origin not allowed"),
            RefusalReason::Origin,
        ));
    }
    Ok(())
}

/// Whether `state` may not subscribe to one more topic.
pub(crate) fn subscriptions_full(state: &ConnState, config: &AdmissionConfig) -> bool {
    config
        .max_subscriptions_per_connection
        .is_some_and(|max| state.subscriptions.len() >= max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after(Duration::from_millis(1)), "1");
        assert_eq!(retry_after(Duration::from_millis(1500)), "2");
        assert_eq!(retry_after(Duration::ZERO), "1");
    }
}
