//! The Redis Streams engine: channels shared by several servers through one Redis.
//!
//! **Where a channel lives.** Two keys per channel, in one hash slot (the channel's
//! name is their hash tag): `{prefix}{NAME}:m`, a hash with the channel's epoch (`e`,
//! 16 hex digits) and last offset (`n`), and `{prefix}{NAME}:s`, a stream of the
//! channel's last messages, each with the id `0-OFFSET` (so an offset is a stream id
//! and reading after a position is one `XRANGE`), with the fields `d`, the data, and
//! `e`, the epoch it was published in.
//!
//! **Publish** is one Lua script (atomic in Redis): take the epoch (choose one, and
//! start from an empty stream, if the hash is missing: a new channel, or one whose
//! Redis lost its data), `HINCRBY n`, `XADD` with the id `0-n`, trimmed to the
//! channel's history bound (at least `live_slack` entries: the slack the readers
//! need to catch up). The offset is given by Redis, so every server agrees on it.
//! Nothing is delivered by the publishing call itself.
//!
//! **Delivery.** One reader thread per server (`wc-channels-redis`) holds the streams
//! of every channel this server has had a subscriber for, with the offset it has
//! delivered up to, and reads them with `XREAD BLOCK`. What it reads it encodes once
//! and queues in every reactor's inbox, in stream order: every server delivers a
//! channel's messages in the same order, whichever server published them.
//!
//! **Subscribe** is one Lua script too: the epoch, the last offset and (with a
//! position) the entries after it, read atomically. The subscriber is live after that
//! last offset; the reader delivers later ones (see `engine.rs` for the switch).
//!
//! **Failures.** A call that cannot reach Redis fails with
//! [`ChannelError::Unavailable`] (nothing stored, or, if Redis stalled mid-call past
//! `io_timeout`, possibly stored: never accepted and then lost), and later calls fail
//! at once until the reader has reconnected. The reader reconnects with backoff,
//! then checks each channel's epoch: the same (Redis kept its data, as with
//! append-only persistence) and delivery goes on from where it was; another (Redis
//! lost the data) or a gap in what it reads (it fell behind by more than the stream
//! holds) and this server's subscribers to that channel are closed with 1012: they
//! reconnect, subscribe from their position, and are told whether they recovered.
//! Never a silent gap.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use ::redis::{Connection, ConnectionInfo, Value};
use bytes::Bytes;

use crate::protocol::CloseCode;
use crate::server::bridge::{Backoff, redis_connect, redis_connection_info};
use crate::server::channels::engine::{Done, Engine};
use crate::server::channels::memory::new_epoch;
use crate::server::channels::protocol::{epoch_text, message_frame};
use crate::server::channels::{
    ChannelError, ChannelRules, EngineStats, Position, Recovery, Subscribed, check_name, check_size,
};
use crate::server::command::Command;
use crate::server::pubsub::Publish;
use crate::server::shared::Shared;

mod cluster;

pub(crate) use cluster::RedisEngines;

/// The fewest entries a channel's stream keeps unless told otherwise
/// ([`RedisChannels::live_slack`]), whatever its history: how far a server's reader
/// may fall behind a channel before it has to close that channel's subscribers (they
/// reconnect and recover from the history, or are told they cannot).
pub const LIVE_SLACK: usize = 1000;

/// How long one `XREAD` waits for messages before the reader looks for new channels
/// to read (milliseconds).
const BLOCK_MS: u64 = 20;

/// How long the reader of a cluster node whose channels span several hash slots
/// pauses after a round of `XREAD`s that found nothing (milliseconds): it cannot
/// block on streams of several slots at once.
const CLUSTER_POLL_MS: u64 = 5;

/// Most entries one `XREAD` returns per stream.
const READ_COUNT: usize = 1000;

/// Most idle connections kept for publishes and subscribes.
const POOL: usize = 8;

/// Most publishes waiting for the publisher thread; past it, a publish handed over
/// is refused ([`ChannelError::Unavailable`]).
const MAX_QUEUED: usize = 1 << 16;

/// Most publishes in one pipeline.
const MAX_PIPELINE: usize = 512;

/// The start of both scripts (KEYS meta, stream; `new_epoch`, the ARGV holding the
/// epoch for a new channel): the channel's epoch `e`, chosen (and the stream started
/// afresh) if the hash is missing.
macro_rules! epoch_or_new {
    ($new_epoch:literal) => {
        concat!(
            "local e = redis.call('HGET', KEYS[1], 'e')\n",
            "if not e then\n",
            "  e = ARGV[",
            $new_epoch,
            "]\n",
            "  redis.call('DEL', KEYS[2])\n",
            "  redis.call('HSET', KEYS[1], 'e', e, 'n', 0)\n",
            "end\n",
        )
    };
}

/// Publish: KEYS meta, stream; ARGV data, maxlen, epoch for a new channel.
const PUBLISH: &str = concat!(
    epoch_or_new!("3"),
    "local n = redis.call('HINCRBY', KEYS[1], 'n', 1)\n",
    "redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], '0-' .. n, 'd', ARGV[1], 'e', e)\n",
    "return {e, n}",
);

/// The channel's epoch (chosen now if it has none): KEYS meta, stream; ARGV epoch for
/// a new channel.
const EPOCH: &str = concat!(epoch_or_new!("1"), "return e");

/// Subscribe: KEYS meta, stream; ARGV epoch for a new channel, since offset (-1: no
/// position), since epoch, most messages the history keeps, most messages the replay
/// could hold. More missed than the replay could hold: `{e, n, {}, 1}` (nothing read).
const SUBSCRIBE: &str = concat!(
    epoch_or_new!("1"),
    "local n = tonumber(redis.call('HGET', KEYS[1], 'n'))\n",
    "local since = tonumber(ARGV[2])\n",
    "if since < 0 or ARGV[3] ~= e or since >= n or n - since > tonumber(ARGV[4]) then\n",
    "  return {e, n, {}}\n",
    "end\n",
    "if n - since > tonumber(ARGV[5]) then\n",
    "  return {e, n, {}, 1}\n",
    "end\n",
    "return {e, n, redis.call('XRANGE', KEYS[2], '0-' .. (since + 1), '+')}",
);

/// The fewest bytes a message's frame takes (its JSON envelope, see
/// `protocol::message_frame`, is longer): a replay of more messages than
/// `max_replay_bytes / MIN_FRAME_BYTES` cannot fit, and is refused without reading it.
const MIN_FRAME_BYTES: usize = 64;

/// Channels kept in Redis Streams, shared by every server on the same Redis (and key
/// prefix). Turn it on with [`crate::ServerBuilder::channel_engine`].
///
/// ```no_run
/// use wavecore::channels::{ChannelsService, History, RedisChannels};
///
/// wavecore::Server::builder()
///     .bind("0.0.0.0:9001")
///     .channel_history("chat:*", History::last(500))
///     .channel_engine(RedisChannels::new("redis://127.0.0.1:6379")?)
///     .run(ChannelsService::new())?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// What it costs: a publish is one Redis round trip on the publishing thread (a
/// reactor, for [`crate::Conn::publish_channel`]: it waits for the reply, within
/// `io_timeout`); a subscribe is one too. Each message is read once per server and
/// encoded once per server. History age bounds ([`crate::channels::History::max_age`])
/// are not applied by this engine (count bounds are). A channel's keys stay in Redis
/// until deleted. [`crate::ServerHandle::channel_stats`] counts the channels this
/// server reads; their history is in Redis and not counted there.
#[derive(Clone)]
pub struct RedisChannels {
    info: ConnectionInfo,
    prefix: String,
    io_timeout: Duration,
    retry_min: Duration,
    retry_max: Duration,
    /// A Redis Cluster: channels spread over its masters by hash slot.
    cluster: bool,
    live_slack: usize,
}

impl fmt::Debug for RedisChannels {
    /// Leaves out the credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisChannels")
            .field("addr", self.info.addr())
            .field("prefix", &self.prefix)
            .field("io_timeout", &self.io_timeout)
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl RedisChannels {
    /// Channels in the Redis at `url` (`redis://[[user]:password@]host[:port][/db]`).
    /// Nothing is connected until the server starts.
    ///
    /// Defaults: key prefix `wavecore:ch:`, `io_timeout` 2 s, reconnects from 100 ms
    /// doubling up to 2 s.
    ///
    /// # Errors
    ///
    /// `InvalidInput` (naming `url`) if `url` is not a Redis URL.
    pub fn new(url: &str) -> io::Result<Self> {
        Ok(Self {
            info: redis_connection_info(url)?,
            prefix: "wavecore:ch:".into(),
            io_timeout: Duration::from_secs(2),
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(2),
            cluster: false,
            live_slack: LIVE_SLACK,
        })
    }

    /// Channels spread over the masters of the Redis Cluster that the node at `url`
    /// belongs to, by the hash slot of the channel's name (both keys of a channel
    /// are on one master). The layout is read when the server starts, which fails if
    /// it cannot be (no node reachable at `url`, a slot without a master).
    ///
    /// A master that fails costs the channels in its slots: their publishes and
    /// subscribes fail with [`ChannelError::Unavailable`] until it is back, every
    /// other channel goes on; back without its data, its channels' epochs change and
    /// their clients are told (as for one Redis restarted without persistence). A
    /// failover or resharding is followed only by a server restart.
    ///
    /// # Errors
    ///
    /// `InvalidInput` (naming `url`) if `url` is not a Redis URL.
    pub fn cluster(url: &str) -> io::Result<Self> {
        let mut channels = Self::new(url)?;
        channels.cluster = true;
        Ok(channels)
    }

    /// Prefix of the keys (servers share channels only if they use the same one).
    /// It should hold no `{`: the channel's name is the keys' hash tag.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The fewest entries a channel's stream keeps, whatever its history (default
    /// [`LIVE_SLACK`], at least 1): how many messages a server's reader may fall
    /// behind a channel before it must close that channel's subscribers (with 1012;
    /// they reconnect and recover from the history, or are told they cannot). Costs
    /// Redis about 85 bytes per entry of 64 bytes of data, in busy channels only.
    /// Recovery still answers only from the configured history.
    pub fn live_slack(mut self, entries: usize) -> Self {
        self.live_slack = entries.max(1);
        self
    }

    /// How long connecting, one write or waiting for one reply may take before the
    /// call fails with [`ChannelError::Unavailable`] (default 2 s).
    pub fn io_timeout(mut self, timeout: Duration) -> Self {
        self.io_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Delays between the reader's connection attempts: from `min`, doubling up to
    /// `max` (defaults 100 ms and 2 s).
    pub fn retry_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.retry_min = min;
        self.retry_max = max;
        self
    }

    fn connect(&self) -> ::redis::RedisResult<Connection> {
        redis_connect(&self.info, self.io_timeout)
    }

    fn meta_key(&self, channel: &str) -> String {
        format!("{}{{{channel}}}:m", self.prefix)
    }

    fn stream_key(&self, channel: &str) -> String {
        format!("{}{{{channel}}}:s", self.prefix)
    }
}

/// Where the reader is in one channel.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    /// The epoch the delivered offsets belong to (`None`: not known yet).
    epoch: Option<u64>,
    /// The last offset delivered (or the lowest that the first subscribers are live
    /// after; `u64::MAX` until one of them has its answer).
    last: u64,
    /// First subscribes still waiting for Redis: the reader leaves the channel alone
    /// until they have all answered, then reads after the lowest offset they were
    /// given, so that none of them misses what came between their answers.
    pending: u32,
    /// Two first subscribes here were answered in different epochs (the channel's
    /// keys went between their scripts): the reader's next check closes the
    /// subscribers outside the channel's epoch, even if it is the one kept here.
    mixed: bool,
}

impl Cursor {
    /// At `last` in `epoch`, read by the reader.
    fn at(epoch: Option<u64>, last: u64) -> Self {
        Self {
            epoch,
            last,
            pending: 0,
            mixed: false,
        }
    }

    /// Whether the reader reads this channel.
    fn is_read(&self) -> bool {
        self.pending == 0 && self.last != u64::MAX
    }
}

/// The engine a server runs (see the module docs).
pub(crate) struct RedisEngine {
    config: RedisChannels,
    rules: ChannelRules,
    max_message_size: usize,
    pool: Mutex<Vec<Connection>>,
    /// Cleared by a call that failed to reach Redis; set by the reader once it has.
    available: AtomicBool,
    cursors: Mutex<HashMap<Arc<str>, Cursor>>,
    stopped: AtomicBool,
    /// Publishes handed over by reactors, for the publisher thread.
    queue: Mutex<VecDeque<Job>>,
    ready: Condvar,
    /// Bumped each time the reader (re)connects: connections made before are stale.
    generation: AtomicU64,
    /// Set when a call saw a channel with an epoch other than the reader's (its keys
    /// were deleted, or Redis lost them between two of the reader's calls): the
    /// reader checks every channel's epoch again.
    recheck: AtomicBool,
}

/// A publish handed over to the publisher thread.
struct Job {
    channel: String,
    data: String,
    done: Done,
}

impl fmt::Debug for RedisEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisEngine")
            .field("config", &self.config)
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn parse_epoch(value: &Value) -> Option<u64> {
    match value {
        Value::BulkString(text) => u64::from_str_radix(std::str::from_utf8(text).ok()?, 16).ok(),
        _ => None,
    }
}

fn parse_int(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        Value::BulkString(text) => std::str::from_utf8(text).ok()?.parse().ok(),
        _ => None,
    }
}

/// One stream entry `[id, [field, value, ...]]` as (offset, data).
fn parse_entry(value: &Value) -> Option<(u64, &[u8])> {
    let Value::Array(parts) = value else {
        return None;
    };
    let [Value::BulkString(id), Value::Array(fields), ..] = parts.as_slice() else {
        return None;
    };
    let offset = std::str::from_utf8(id)
        .ok()?
        .strip_prefix("0-")?
        .parse()
        .ok()?;
    let data = fields.chunks(2).find_map(|pair| match pair {
        [Value::BulkString(k), Value::BulkString(v)] if k == b"d" => Some(v.as_slice()),
        _ => None,
    })?;
    Some((offset, data))
}

/// The epoch an entry was published in (its `e` field; `None` for an entry written
/// without one).
fn entry_epoch(value: &Value) -> Option<u64> {
    let [_, Value::Array(fields), ..] = (match value {
        Value::Array(parts) => parts.as_slice(),
        _ => return None,
    }) else {
        return None;
    };
    fields.chunks(2).find_map(|pair| match pair {
        [Value::BulkString(k), v] if k == b"e" => parse_epoch(v),
        _ => None,
    })
}

/// The publish script's reply `[epoch, offset]` as a position.
fn parse_published(reply: &Value) -> Result<Position, ChannelError> {
    let Value::Array(parts) = reply else {
        return Err(ChannelError::Unavailable);
    };
    match (
        parts.first().and_then(parse_epoch),
        parts.get(1).and_then(parse_int),
    ) {
        (Some(epoch), Some(offset)) => Ok(Position { epoch, offset }),
        _ => Err(ChannelError::Unavailable),
    }
}

fn unexpected() -> ::redis::RedisError {
    ::redis::RedisError::from((::redis::ErrorKind::UnexpectedReturnType, "unexpected reply"))
}

impl RedisEngine {
    /// An engine on `config`, keeping history per `rules`, refusing data over
    /// `max_message_size` bytes.
    pub fn new(config: RedisChannels, rules: ChannelRules, max_message_size: usize) -> Self {
        Self {
            config,
            rules,
            max_message_size,
            pool: Mutex::new(Vec::new()),
            available: AtomicBool::new(true),
            cursors: Mutex::new(HashMap::new()),
            stopped: AtomicBool::new(false),
            queue: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            generation: AtomicU64::new(0),
            recheck: AtomicBool::new(false),
        }
    }

    /// Runs `call` on a pooled connection; any failure makes the engine unavailable
    /// until the reader has reconnected.
    fn with_connection<T>(
        &self,
        call: impl FnOnce(&mut Connection) -> ::redis::RedisResult<T>,
    ) -> Result<T, ChannelError> {
        if !self.available.load(Ordering::Acquire) {
            return Err(ChannelError::Unavailable);
        }
        let pooled = lock(&self.pool).pop();
        let mut con = match pooled {
            Some(con) => con,
            None => self.config.connect().map_err(|e| self.failed(&e))?,
        };
        match call(&mut con) {
            Ok(value) => {
                let mut pool = lock(&self.pool);
                if pool.len() < POOL {
                    pool.push(con);
                }
                Ok(value)
            }
            Err(e) if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() => {
                Err(self.failed(&e))
            }
            Err(e) => {
                tracing::warn!("wavecore channels: Redis refused a call: {e}");
                Err(ChannelError::Unavailable)
            }
        }
    }

    /// A call learnt `channel`'s epoch: if the reader delivers another one, it
    /// checks the epochs again.
    fn note_epoch(&self, channel: &str, epoch: u64) {
        if lock(&self.cursors)
            .get(channel)
            .and_then(|cursor| cursor.epoch)
            .is_some_and(|known| known != epoch)
        {
            self.recheck.store(true, Ordering::Release);
        }
    }

    /// The reader reached Redis: connections made before are dropped, calls go on.
    fn reconnected(&self) {
        lock(&self.pool).clear();
        self.generation.fetch_add(1, Ordering::AcqRel);
        if !self.available.swap(true, Ordering::AcqRel) {
            tracing::info!("wavecore channels: Redis reachable again");
        }
    }

    fn failed(&self, error: &::redis::RedisError) -> ChannelError {
        if self.available.swap(false, Ordering::AcqRel) {
            tracing::warn!("wavecore channels: Redis unreachable: {error}");
        }
        lock(&self.pool).clear();
        ChannelError::Unavailable
    }

    /// Refuses data over the size limit and bad names.
    fn check(&self, channel: &str, data: &str) -> Result<(), ChannelError> {
        check_size(data, self.max_message_size)?;
        check_name(channel)
    }

    /// The publish script's call for `data` on `channel`.
    fn publish_cmd(&self, channel: &str, data: &str) -> ::redis::Cmd {
        let maxlen = self
            .rules
            .history_of(channel)
            .max_messages
            .max(self.config.live_slack);
        let mut cmd = ::redis::cmd("EVAL");
        cmd.arg(PUBLISH)
            .arg(2)
            .arg(self.config.meta_key(channel))
            .arg(self.config.stream_key(channel))
            .arg(data)
            .arg(maxlen)
            .arg(epoch_text(new_epoch()));
        cmd
    }

    /// The publisher: sends what reactors handed over, a pipeline of publishes at a
    /// time on one connection, and calls each one's `done` with its position (in the
    /// order they were handed over: Redis runs one connection's commands in order).
    fn send_publishes(&self) {
        let mut con: Option<(Connection, u64)> = None;
        let mut batch = Vec::new();
        loop {
            {
                let mut queue = lock(&self.queue);
                while queue.is_empty() && !self.stopped.load(Ordering::Acquire) {
                    queue = self
                        .ready
                        .wait_timeout(queue, Duration::from_millis(100))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                let n = queue.len().min(MAX_PIPELINE);
                batch.extend(queue.drain(..n));
            }
            if batch.is_empty() {
                // Stopped with nothing left.
                return;
            }
            if self.stopped.load(Ordering::Acquire) || !self.available.load(Ordering::Acquire) {
                con = None;
                for job in batch.drain(..) {
                    (job.done)(Err(ChannelError::Unavailable));
                }
                continue;
            }
            let generation = self.generation.load(Ordering::Acquire);
            let connection = match con.take() {
                Some((c, made)) if made == generation => Ok(c),
                _ => self.config.connect(),
            };
            let mut connection = match connection {
                Ok(c) => c,
                Err(e) => {
                    self.failed(&e);
                    for job in batch.drain(..) {
                        (job.done)(Err(ChannelError::Unavailable));
                    }
                    continue;
                }
            };
            let mut pipe = ::redis::Pipeline::with_capacity(batch.len());
            for job in &batch {
                pipe.add_command(self.publish_cmd(&job.channel, &job.data));
            }
            match pipe.query::<Vec<Value>>(&mut connection) {
                Ok(replies) => {
                    con = Some((connection, generation));
                    let mut replies = replies.into_iter();
                    for job in batch.drain(..) {
                        let result = replies
                            .next()
                            .map_or(Err(ChannelError::Unavailable), |r| parse_published(&r));
                        if let Ok(position) = &result {
                            self.note_epoch(&job.channel, position.epoch);
                        }
                        (job.done)(result);
                    }
                }
                Err(e) => {
                    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() {
                        self.failed(&e);
                    } else {
                        tracing::warn!("wavecore channels: Redis refused a publish: {e}");
                    }
                    for job in batch.drain(..) {
                        (job.done)(Err(ChannelError::Unavailable));
                    }
                }
            }
        }
    }

    /// Starts the reader and publisher threads for the server `shared`.
    pub fn start(self: &Arc<Self>, shared: Weak<Shared>) -> io::Result<Vec<JoinHandle<()>>> {
        let engine = self.clone();
        let reader = std::thread::Builder::new()
            .name("wc-channels-read".into())
            .spawn(move || engine.read(&shared))?;
        let engine = self.clone();
        let publisher = std::thread::Builder::new()
            .name("wc-channels-pub".into())
            .spawn(move || engine.send_publishes());
        match publisher {
            Ok(publisher) => Ok(vec![reader, publisher]),
            Err(e) => {
                self.stop();
                let _ = reader.join();
                Err(e)
            }
        }
    }

    /// Makes the threads return (within their read timeouts); publishes still
    /// queued are answered [`ChannelError::Unavailable`].
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.ready.notify_all();
    }

    /// The reader: connects, checks epochs, reads and delivers until stopped.
    fn read(&self, shared: &Weak<Shared>) {
        let mut backoff = Backoff::new(self.config.retry_min, self.config.retry_max, new_epoch());
        while !self.stopped.load(Ordering::Acquire) {
            let error = match self.config.connect() {
                Ok(mut con) => {
                    backoff.reset();
                    self.read_until_failure(&mut con, shared)
                }
                Err(e) => e,
            };
            if self.stopped.load(Ordering::Acquire) {
                return;
            }
            self.failed(&error);
            let delay = backoff.next_delay();
            let until = std::time::Instant::now() + delay;
            while std::time::Instant::now() < until && !self.stopped.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    fn read_until_failure(
        &self,
        con: &mut Connection,
        shared: &Weak<Shared>,
    ) -> ::redis::RedisError {
        // Calls go on first: a client closed by the check below comes back at once.
        self.reconnected();
        if let Err(e) = self.revalidate(con, shared) {
            return e;
        }
        let mut publishes = Vec::new();
        loop {
            if self.stopped.load(Ordering::Acquire) {
                return unexpected();
            }
            if self.recheck.swap(false, Ordering::AcqRel)
                && let Err(e) = self.revalidate(con, shared)
            {
                return e;
            }
            if !self.available.load(Ordering::Acquire) {
                // A call failed while this connection looked fine: Redis restarted
                // (or stalled) under it. Check it, and the epochs.
                if let Err(e) = ::redis::cmd("PING").query::<()>(con) {
                    return e;
                }
                self.reconnected();
                if let Err(e) = self.revalidate(con, shared) {
                    return e;
                }
            }
            let snapshot: Vec<(Arc<str>, Cursor)> = lock(&self.cursors)
                .iter()
                .filter(|(_, cursor)| cursor.is_read())
                .map(|(name, cursor)| (name.clone(), *cursor))
                .collect();
            if snapshot.is_empty() {
                std::thread::sleep(Duration::from_millis(BLOCK_MS));
                continue;
            }
            let replies = match self.read_streams(con, &snapshot) {
                Ok(replies) => replies,
                Err(e) => return e,
            };
            let Some(shared) = shared.upgrade() else {
                return unexpected();
            };
            // Match the streams that came back by key.
            let by_key: HashMap<String, &Arc<str>> = snapshot
                .iter()
                .map(|(name, _)| (self.config.stream_key(name), name))
                .collect();
            let mut keyed: Vec<(Option<&Arc<str>>, &Value)> = Vec::new();
            for reply in &replies {
                match reply {
                    Value::Array(streams) => keyed.extend(streams.iter().filter_map(|s| match s {
                        Value::Array(pair) if pair.len() == 2 => {
                            Some((key_name(&pair[0], &by_key), &pair[1]))
                        }
                        _ => None,
                    })),
                    Value::Map(pairs) => {
                        keyed.extend(pairs.iter().map(|(k, v)| (key_name(k, &by_key), v)))
                    }
                    _ => {}
                }
            }
            for (name, entries) in keyed {
                let (Some(name), Value::Array(entries)) = (name, entries) else {
                    continue;
                };
                if let Err(e) = self.deliver(con, &shared, name, entries, &mut publishes) {
                    return e;
                }
            }
            if !publishes.is_empty() {
                for remote in &shared.remotes {
                    remote.send_publishes(publishes.iter().cloned());
                }
                publishes.clear();
            }
        }
    }

    /// Reads what was added after the cursors in `snapshot`: one `XREAD BLOCK`; on a
    /// cluster node, where one command may only name keys of one hash slot, the same
    /// if all are in one slot, else a pipeline of `XREAD`s (one per slot), then a
    /// pause of [`CLUSTER_POLL_MS`] if nothing came. Each reply is an `XREAD` reply.
    fn read_streams(
        &self,
        con: &mut Connection,
        snapshot: &[(Arc<str>, Cursor)],
    ) -> ::redis::RedisResult<Vec<Value>> {
        let xread = |group: &[&(Arc<str>, Cursor)], block: bool| {
            let mut cmd = ::redis::cmd("XREAD");
            cmd.arg("COUNT").arg(READ_COUNT);
            if block {
                cmd.arg("BLOCK").arg(BLOCK_MS);
            }
            cmd.arg("STREAMS");
            for (name, _) in group {
                cmd.arg(self.config.stream_key(name));
            }
            for (_, cursor) in group {
                cmd.arg(format!("0-{}", cursor.last));
            }
            cmd
        };
        if !self.config.cluster {
            let all: Vec<_> = snapshot.iter().collect();
            return Ok(vec![xread(&all, true).query(con)?]);
        }
        let mut by_slot: HashMap<usize, Vec<&(Arc<str>, Cursor)>> = HashMap::new();
        for entry in snapshot {
            let key = self.config.stream_key(&entry.0);
            by_slot
                .entry(cluster::key_slot(key.as_bytes()))
                .or_default()
                .push(entry);
        }
        if by_slot.len() == 1 {
            let group = by_slot.into_values().next().unwrap_or_default();
            return Ok(vec![xread(&group, true).query(con)?]);
        }
        let mut pipe = ::redis::Pipeline::with_capacity(by_slot.len());
        for group in by_slot.values() {
            pipe.add_command(xread(group, false));
        }
        let replies: Vec<Value> = pipe.query(con)?;
        if replies.iter().all(|r| matches!(r, Value::Nil)) {
            std::thread::sleep(Duration::from_millis(CLUSTER_POLL_MS));
        }
        Ok(replies)
    }

    /// Turns the entries read from `name`'s stream into publishes (in order), closing
    /// the channel's subscribers on a gap.
    fn deliver(
        &self,
        con: &mut Connection,
        shared: &Shared,
        name: &Arc<str>,
        entries: &[Value],
        publishes: &mut Vec<Publish>,
    ) -> ::redis::RedisResult<()> {
        let Some(mut cursor) = lock(&self.cursors).get(name).copied() else {
            return Ok(());
        };
        let epoch = match cursor.epoch {
            Some(epoch) => epoch,
            None => {
                let value: Value = ::redis::cmd("HGET")
                    .arg(self.config.meta_key(name))
                    .arg("e")
                    .query(con)?;
                let Some(epoch) = parse_epoch(&value) else {
                    return Ok(());
                };
                epoch
            }
        };
        cursor.epoch = Some(epoch);
        for entry in entries {
            let Some((offset, data)) = parse_entry(entry) else {
                continue;
            };
            if entry_epoch(entry).is_some_and(|e| e != epoch) {
                // The channel started over (its keys were deleted, another server
                // published into its new epoch): the epochs are checked, and the
                // channel read again from its start.
                self.recheck.store(true, Ordering::Release);
                break;
            }
            if offset <= cursor.last {
                continue;
            }
            if offset != cursor.last + 1 {
                // Fell behind by more than the stream holds.
                self.lost(
                    shared,
                    name,
                    None,
                    publishes,
                    "channel messages were missed",
                );
            }
            cursor.last = offset;
            let Ok(data) = std::str::from_utf8(data) else {
                continue;
            };
            publishes.push(Publish {
                topic: Some(name.clone()),
                frame: message_frame(name, epoch, offset, data),
                exclude: None,
                deflated: None,
                offset,
                epoch,
            });
        }
        if let Some(stored) = lock(&self.cursors).get_mut(name)
            && stored.last < cursor.last
        {
            *stored = cursor;
        }
        Ok(())
    }

    /// Closes every reactor's subscribers to `name` in an epoch other than `keep`
    /// (every one when `None`), behind what was read before.
    fn lost(
        &self,
        shared: &Shared,
        name: &Arc<str>,
        keep: Option<u64>,
        publishes: &mut Vec<Publish>,
        why: &'static str,
    ) {
        tracing::warn!(
            channel = &**name,
            "wavecore channels: {why}; closing its subscribers"
        );
        for remote in &shared.remotes {
            remote.send_publishes(publishes.iter().cloned());
            remote.send_command(Command::ChannelLost {
                channel: name.clone(),
                keep,
                code: CloseCode::SERVICE_RESTART,
                reason: why,
            });
        }
        publishes.clear();
    }

    /// After a (re)connection: a channel whose epoch changed (or whose hash is gone:
    /// a new epoch is chosen now) lost its history; its subscribers here in another
    /// epoch are closed, and reading starts over.
    fn revalidate(&self, con: &mut Connection, shared: &Weak<Shared>) -> ::redis::RedisResult<()> {
        let names: Vec<(Arc<str>, Cursor)> = lock(&self.cursors)
            .iter()
            .map(|(n, c)| (n.clone(), *c))
            .collect();
        let Some(shared) = shared.upgrade() else {
            return Ok(());
        };
        for (name, cursor) in names {
            if !cursor.is_read() {
                continue;
            }
            let value: Value = ::redis::cmd("EVAL")
                .arg(EPOCH)
                .arg(2)
                .arg(self.config.meta_key(&name))
                .arg(self.config.stream_key(&name))
                .arg(epoch_text(new_epoch()))
                .query(con)?;
            let epoch = parse_epoch(&value);
            let kept = cursor.epoch.is_some() && epoch == cursor.epoch;
            // Closed: those outside the channel's epoch, when it changed under
            // delivered messages, or when first subscribers were answered in two
            // epochs. A client that resubscribed meanwhile was told of the new epoch
            // (its subscribe chose the same one, or this did before it): it stays.
            let changed = !kept && (cursor.epoch.is_some() || cursor.last > 0);
            if changed || (kept && cursor.mixed) {
                self.lost(
                    &shared,
                    &name,
                    epoch,
                    &mut Vec::new(),
                    "channel history was lost",
                );
            }
            if kept {
                if cursor.mixed
                    && let Some(stored) = lock(&self.cursors).get_mut(&name)
                {
                    stored.mixed = false;
                }
                continue;
            }
            lock(&self.cursors).insert(name, Cursor::at(epoch, 0));
        }
        Ok(())
    }
}

fn key_name<'a>(key: &Value, by_key: &HashMap<String, &'a Arc<str>>) -> Option<&'a Arc<str>> {
    match key {
        Value::BulkString(key) => by_key.get(std::str::from_utf8(key).ok()?).copied(),
        Value::SimpleString(key) => by_key.get(key.as_str()).copied(),
        _ => None,
    }
}

impl RedisEngine {
    /// The subscribe script and what its answer means (see [`Engine::subscribe`]).
    fn subscribe_script(
        &self,
        channel: &str,
        since: Option<Position>,
        max_replay_bytes: usize,
        replay: &mut dyn FnMut(&Bytes),
    ) -> Result<Subscribed, ChannelError> {
        let history = self.rules.history_of(channel).max_messages;
        let reply: Value = self.with_connection(|con| {
            ::redis::cmd("EVAL")
                .arg(SUBSCRIBE)
                .arg(2)
                .arg(self.config.meta_key(channel))
                .arg(self.config.stream_key(channel))
                .arg(epoch_text(new_epoch()))
                .arg(since.map_or(-1, |s| i128::from(s.offset)).to_string())
                .arg(since.map_or_else(String::new, |s| epoch_text(s.epoch)))
                .arg(history)
                .arg(max_replay_bytes / MIN_FRAME_BYTES)
                .query(con)
        })?;
        let Value::Array(parts) = &reply else {
            return Err(ChannelError::Unavailable);
        };
        let (Some(epoch), Some(last)) = (
            parts.first().and_then(parse_epoch),
            parts.get(1).and_then(parse_int),
        ) else {
            return Err(ChannelError::Unavailable);
        };
        self.note_epoch(channel, epoch);
        let position = Position {
            epoch,
            offset: last,
        };
        let entries: &[Value] = match parts.get(2) {
            Some(Value::Array(entries)) => entries,
            _ => &[],
        };
        let mut replayed = 0;
        let recovery = match since {
            None => Recovery::NotAsked,
            Some(since) if since.epoch != epoch || since.offset > last => Recovery::EpochChanged,
            Some(since) if since.offset == last => Recovery::Recovered,
            Some(_) if matches!(parts.get(3), Some(Value::Int(1))) => Recovery::TooMany,
            Some(since) => {
                // Recovered only if the entries are exactly those after the position.
                let found: Vec<(u64, &[u8])> = entries.iter().filter_map(parse_entry).collect();
                let whole = found.len() as u64 == last - since.offset
                    && found
                        .iter()
                        .enumerate()
                        .all(|(i, (offset, _))| *offset == since.offset + 1 + i as u64);
                let frames: Vec<Bytes> = if whole {
                    found
                        .into_iter()
                        .map(|(offset, data)| {
                            message_frame(channel, epoch, offset, &String::from_utf8_lossy(data))
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                if !whole {
                    Recovery::TooOld
                } else if frames.iter().map(Bytes::len).sum::<usize>() > max_replay_bytes {
                    Recovery::TooMany
                } else {
                    for frame in &frames {
                        replay(frame);
                        replayed += 1;
                    }
                    Recovery::Recovered
                }
            }
        };
        Ok(Subscribed {
            recovery,
            position,
            replayed,
        })
    }
}

impl Engine for RedisEngine {
    fn publish(
        &self,
        channel: &str,
        data: &str,
        _fanout: &mut dyn FnMut(Publish),
    ) -> Result<Position, ChannelError> {
        self.check(channel, data)?;
        let reply: Value =
            self.with_connection(|con| self.publish_cmd(channel, data).query(con))?;
        let position = parse_published(&reply)?;
        self.note_epoch(channel, position.epoch);
        Ok(position)
    }

    fn defers(&self) -> bool {
        true
    }

    fn publish_later(
        &self,
        channel: &str,
        data: &str,
        _fanout: &mut dyn FnMut(Publish),
        done: Done,
    ) {
        if let Err(e) = self.check(channel, data) {
            return done(Err(e));
        }
        if !self.available.load(Ordering::Acquire) || self.stopped.load(Ordering::Acquire) {
            return done(Err(ChannelError::Unavailable));
        }
        let mut queue = lock(&self.queue);
        if queue.len() >= MAX_QUEUED {
            drop(queue);
            return done(Err(ChannelError::Unavailable));
        }
        queue.push_back(Job {
            channel: channel.to_owned(),
            data: data.to_owned(),
            done,
        });
        drop(queue);
        self.ready.notify_one();
    }

    fn subscribe(
        &self,
        channel: &str,
        since: Option<Position>,
        max_replay_bytes: usize,
        replay: &mut dyn FnMut(&Bytes),
    ) -> Result<Subscribed, ChannelError> {
        check_name(channel)?;
        // A first subscribe here (or one beside other first ones) holds the reader
        // off the channel until its answer is in (see `Cursor::pending`).
        let first = {
            let mut cursors = lock(&self.cursors);
            if cursors.len() >= self.rules.max_channels && !cursors.contains_key(channel) {
                return Err(ChannelError::TooManyChannels {
                    limit: self.rules.max_channels,
                });
            }
            let cursor = cursors
                .entry(Arc::from(channel))
                .or_insert(Cursor::at(None, u64::MAX));
            let first = !cursor.is_read();
            if first {
                cursor.pending += 1;
            }
            first
        };
        let answered = self.subscribe_script(channel, since, max_replay_bytes, replay);
        if first {
            let mut cursors = lock(&self.cursors);
            if let Some(cursor) = cursors.get_mut(channel) {
                cursor.pending -= 1;
                if let Ok(subscribed) = &answered {
                    cursor.last = cursor.last.min(subscribed.position.offset);
                    let epoch = subscribed.position.epoch;
                    match cursor.epoch {
                        None => cursor.epoch = Some(epoch),
                        Some(known) if known != epoch => {
                            cursor.mixed = true;
                            self.recheck.store(true, Ordering::Release);
                        }
                        Some(_) => {}
                    }
                }
                if cursor.pending == 0 && cursor.last == u64::MAX {
                    cursors.remove(channel);
                }
            }
        }
        answered
    }

    fn position(&self, channel: &str) -> Option<Position> {
        check_name(channel).ok()?;
        let values: Vec<Value> = self
            .with_connection(|con| {
                ::redis::cmd("HMGET")
                    .arg(self.config.meta_key(channel))
                    .arg("e")
                    .arg("n")
                    .query(con)
            })
            .ok()?;
        Some(Position {
            epoch: parse_epoch(values.first()?)?,
            offset: parse_int(values.get(1)?)?,
        })
    }

    fn stats(&self) -> EngineStats {
        EngineStats {
            channels: lock(&self.cursors).len(),
            ..EngineStats::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn replies_are_read_and_odd_ones_refused_without_a_panic() {
        let entry = Value::Array(vec![
            bulk("0-42"),
            Value::Array(vec![bulk("d"), bulk("hi")]),
        ]);
        assert_eq!(parse_entry(&entry), Some((42, &b"hi"[..])));
        for odd in [
            Value::Nil,
            Value::Array(vec![]),
            Value::Array(vec![
                bulk("17-42"),
                Value::Array(vec![bulk("d"), bulk("x")]),
            ]),
            Value::Array(vec![bulk("0-x"), Value::Array(vec![bulk("d"), bulk("x")])]),
            Value::Array(vec![bulk("0-1"), Value::Array(vec![bulk("e"), bulk("x")])]),
            Value::Array(vec![bulk("0-1"), Value::Array(vec![bulk("d")])]),
        ] {
            assert_eq!(parse_entry(&odd), None, "{odd:?}");
        }
        let published = Value::Array(vec![bulk("00000000000000ff"), Value::Int(7)]);
        assert_eq!(
            parse_published(&published),
            Ok(Position {
                epoch: 255,
                offset: 7
            })
        );
        for odd in [
            Value::Nil,
            Value::Okay,
            Value::Array(vec![bulk("not hex"), Value::Int(7)]),
            Value::Array(vec![bulk("ff"), Value::Int(-1)]),
            Value::Array(vec![bulk("ff")]),
        ] {
            assert_eq!(
                parse_published(&odd),
                Err(ChannelError::Unavailable),
                "{odd:?}"
            );
        }
    }

    #[test]
    fn no_frame_is_shorter_than_the_replay_bound_assumes() {
        assert!(message_frame("x", 0, 1, "").len() >= MIN_FRAME_BYTES);
    }

    #[test]
    fn keys_carry_the_channel_as_their_hash_tag() {
        let config = RedisChannels::new("redis://127.0.0.1:1").unwrap();
        assert_eq!(config.meta_key("chat:lobby"), "wavecore:ch:{chat:lobby}:m");
        assert_eq!(
            config.stream_key("chat:lobby"),
            "wavecore:ch:{chat:lobby}:s"
        );
        assert!(RedisChannels::new("http://x").is_err());
        assert!(PUBLISH.starts_with("local e = redis.call('HGET', KEYS[1], 'e')\nif not e"));
        assert!(SUBSCRIBE.contains("e = ARGV[1]\n"));
        assert!(PUBLISH.contains("e = ARGV[3]\n"));
    }
}
