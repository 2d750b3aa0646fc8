//! The Redis bridge: Redis Pub/Sub through the `redis` crate, on two threads of its own.
//!
//! * `wc-bridge-pub` takes batches from the bridge's buffer and sends each as
//!   one pipeline of `PUBLISH {prefix}{topic} {envelope}` on its connection: one write
//!   and one wait for the replies per batch, however many messages (what arrives
//!   while it waits makes the next batch). Redis runs commands of one connection in
//!   order and forwards them to subscribers in order, which keeps each publisher's
//!   order across servers.
//! * `wc-bridge-sub` holds a subscriber connection, `SUBSCRIBE`d to
//!   `{prefix}{topic}` for exactly the topics this server has subscribers for
//!   (followed within [`POLL`] of a change), and hands every message to the server.
//!
//! Why one channel per topic rather than one pattern subscription
//! (`PSUBSCRIBE {prefix}*`): with a pattern, every server receives (and Redis sends,
//! and the server reads, checks and throws away) every message of every topic, even
//! those it has no subscriber for; with a channel per topic a server hears only what
//! it delivers, and Redis matches a `PUBLISH` against one hash table entry instead of
//! every pattern. The cost is a `SUBSCRIBE`/`UNSUBSCRIBE` when a topic gets its first
//! or loses its last subscriber on a server. docs/benchmarks.md has the measurement.
//!
//! Both connections reconnect with backoff; the subscriber resubscribes to the whole
//! interest. A frozen Redis is noticed within `io_timeout` (the publisher's replies;
//! the subscriber pings when it has heard nothing for [`PING_AFTER`]).

use std::fmt;
use std::io::{self, Write};
use std::time::Duration;

use ::redis::io::tcp::TcpSettings;
use ::redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisWrite, ToRedisArgs};

use crate::server::bridge::{Bridge, BridgeLimits, BridgeLink, Outgoing};

mod publisher;
mod subscriber;

/// How often the subscriber looks for topics that gained or lost local interest while
/// no message arrives (its read timeout).
pub(crate) const POLL: Duration = Duration::from_millis(20);

/// After this long without a message, the subscriber pings Redis to tell a quiet
/// channel from a dead connection.
pub(crate) const PING_AFTER: Duration = Duration::from_secs(1);

/// A bridge through Redis Pub/Sub (any Redis 2.0 or later; Valkey too).
///
/// ```no_run
/// use wavecore::Server;
/// use wavecore::bridge::RedisBridge;
/// # struct Chat;
/// # impl wavecore::Handler for Chat {
/// #     fn on_message(&mut self, _: &mut wavecore::Conn<'_>, _: wavecore::Message<'_>) {}
/// # }
/// let bridge = RedisBridge::new("redis://127.0.0.1:6379")?.channel_prefix("chat:");
/// let server = Server::builder()
///     .bind("0.0.0.0:9001")
///     .bridge(bridge)
///     .start(wavecore::accept_all(|| Chat))?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct RedisBridge {
    info: ConnectionInfo,
    prefix: String,
    limits: BridgeLimits,
    io_timeout: Duration,
    retry_min: Duration,
    retry_max: Duration,
}

impl fmt::Debug for RedisBridge {
    /// Leaves out the credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBridge")
            .field("addr", self.info.addr())
            .field("db", &self.info.redis_settings().db())
            .field("prefix", &self.prefix)
            .field("limits", &self.limits)
            .field("io_timeout", &self.io_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisBridge {
    /// A bridge to the Redis at `url`: `redis://[[user]:password@]host[:port][/db]`
    /// (also `rediss://` where the `redis` crate was built with TLS, and
    /// `redis+unix:///path`). Nothing is connected until the server starts.
    ///
    /// Defaults: channel prefix `wavecore:`, [`BridgeLimits::default`] (1 MiB
    /// messages, 16 MiB buffered), `io_timeout` 5 s, retries from 100 ms doubling up
    /// to 5 s.
    ///
    /// # Errors
    ///
    /// `InvalidInput` (naming `url`) if `url` is not a Redis URL.
    pub fn new(url: &str) -> io::Result<Self> {
        Ok(Self {
            info: connection_info(url)?,
            prefix: "wavecore:".into(),
            limits: BridgeLimits::default(),
            io_timeout: Duration::from_secs(5),
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
        })
    }

    /// Prefix of the Redis channel names: topic `T` travels on channel `{prefix}T`.
    /// Servers share topics only if they use the same prefix (and Redis database is
    /// irrelevant: Pub/Sub ignores it).
    pub fn channel_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Largest topic message payload, in bytes (default 1 MiB); see
    /// [`BridgeLimits::max_message_size`].
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.limits.max_message_size = bytes;
        self
    }

    /// Most bytes waiting to be sent (default 16 MiB); see
    /// [`BridgeLimits::max_buffered_bytes`].
    pub fn max_buffered_bytes(mut self, bytes: usize) -> Self {
        self.limits.max_buffered_bytes = bytes;
        self
    }

    /// How long connecting, one write, or waiting for one reply may take before the
    /// connection is given up and made again (default 5 s).
    pub fn io_timeout(mut self, timeout: Duration) -> Self {
        self.io_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Delays between connection attempts: from `min`, doubling up to `max` (defaults
    /// 100 ms and 5 s), each cut by up to a quarter at random.
    pub fn retry_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.retry_min = min;
        self.retry_max = max;
        self
    }

    /// The address this bridge connects to.
    pub fn addr(&self) -> &ConnectionAddr {
        self.info.addr()
    }

    /// A connection with timeouts set.
    fn connect(&self) -> ::redis::RedisResult<::redis::Connection> {
        connect(&self.info, self.io_timeout)
    }
}

/// The connection settings of a Redis URL, with `TCP_NODELAY`.
///
/// # Errors
///
/// `InvalidInput` (naming `url`) if `url` is not a Redis URL.
pub(crate) fn connection_info(url: &str) -> io::Result<ConnectionInfo> {
    let info = url.into_connection_info().map_err(|e| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("Redis URL {url}: {e}"))
    })?;
    Ok(info.set_tcp_settings(TcpSettings::default().set_nodelay(true)))
}

/// A connection to `info` whose connecting, writes and reads each give up after
/// `io_timeout`.
pub(crate) fn connect(
    info: &ConnectionInfo,
    io_timeout: Duration,
) -> ::redis::RedisResult<::redis::Connection> {
    let client = ::redis::Client::open(info.clone())?;
    let con = client.get_connection_with_timeout(io_timeout)?;
    con.set_read_timeout(Some(io_timeout))?;
    con.set_write_timeout(Some(io_timeout))?;
    Ok(con)
}

impl Bridge for RedisBridge {
    fn limits(&self) -> BridgeLimits {
        self.limits
    }

    fn start(&self, link: BridgeLink) -> io::Result<Vec<std::thread::JoinHandle<()>>> {
        let (config, out) = (self.clone(), link.clone());
        let publisher = std::thread::Builder::new()
            .name("wc-bridge-pub".into())
            .spawn(move || publisher::run(&config, &out))?;
        let config = self.clone();
        let subscriber = std::thread::Builder::new()
            .name("wc-bridge-sub".into())
            .spawn(move || subscriber::run(&config, &link))?;
        Ok(vec![publisher, subscriber])
    }
}

/// A channel name, `{prefix}{topic}`, written straight into the command.
struct ChannelName<'a>(&'a str, &'a str);

impl ToRedisArgs for ChannelName<'_> {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        let mut arg = out.writer_for_next_arg();
        // Writing into the command's own buffer cannot fail.
        let _ = arg.write_all(self.0.as_bytes());
        let _ = arg.write_all(self.1.as_bytes());
    }
}

/// A message's envelope, written straight into the command.
struct Envelope<'a>(&'a Outgoing);

impl ToRedisArgs for Envelope<'_> {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        let mut arg = out.writer_for_next_arg();
        let _ = self.0.write_envelope(&mut arg);
    }
}
