//! Channels: topics with a position, so that a client that lost its connection gets
//! what it missed, once and in order.
//!
//! A channel is a topic whose messages get an **offset** (1 for the first, one more for
//! each next one) and that keeps a bounded **history** (the last N messages and/or
//! those younger than an age, per channel-name pattern:
//! [`crate::ServerBuilder::channel_history`]). A channel's history belongs to an
//! **epoch**, a random number chosen when the channel is created; history kept in
//! memory is lost when the server restarts, and the epoch changes with it. A client's
//! position is (epoch, offset of the last message it got).
//!
//! - [`Conn::publish_channel`] / [`crate::ServerHandle::publish_channel`] publish and
//!   return the offset the message got.
//! - [`Conn::subscribe_channel`] subscribes, with or without a position: with one, what
//!   was published after it is replayed from the history and delivery continues live,
//!   with no gap and no duplicate at the switch; if the history no longer reaches back
//!   to the position, or the epoch differs, the subscriber is told that recovery
//!   failed ([`Recovery::TooOld`], [`Recovery::EpochChanged`]) and gets the live
//!   stream from the current position.
//!
//! Every subscriber, on every reactor, receives a channel's messages in offset order
//! whichever reactor or thread published them. Channel messages reach the client as
//! JSON text frames of the channels protocol (`{"type":"message","channel":…,
//! "epoch":…,"offset":…,"data":…}`; docs/channels.md), encoded once per message and
//! shared by every subscriber and the history. [`ChannelsService`] serves that
//! protocol whole (subscribe, publish, recovery) and the browser client
//! (`/wavecore-channels.js`); the bare [`crate::Handler`] API is unchanged.
//!
//! **Costs.** A publish to a channel takes the channel's lock once and queues the
//! message in each reactor's inbox while holding it (one short lock per reactor);
//! delivery to the subscribers of a reactor goes in runs as for a plain topic. A
//! history message costs its frame (shared, not copied, by every subscriber) plus
//! about 100 bytes (a 56-byte ring slot and the frame's allocation); a channel without
//! history about 200 bytes with its name (docs/benchmarks.md).
//!
//! **Across servers.** With [`RedisChannels`] ([`crate::ServerBuilder::channel_engine`])
//! a channel's order, offsets, epoch and history live in a Redis stream shared by
//! every server on that Redis; each server reads what its subscribers need once and
//! delivers it in the stream's order. While Redis is unreachable, channel publishes
//! and subscribes fail with [`ChannelError::Unavailable`]; plain topics and everything
//! else go on, and channels resume by themselves. docs/channels.md has the details.
//!
//! **Backpressure.** A subscriber that passes `max_backpressure` under the `Close`
//! policy is closed with 1008 and recovers when it reconnects; under the `Drop`
//! policy a dropped channel message is a gap the client sees (offsets jump), so use
//! `Close` with channels.

pub(crate) mod engine;
mod history;
pub(crate) mod memory;
pub(crate) mod protocol;
pub(crate) mod redis;
mod service;
pub(crate) mod subs;

#[cfg(test)]
mod model_tests;

use std::fmt;

use crate::server::conn_api::Conn;
use crate::server::core::outbox::Delivery;
use crate::server::handle::ServerHandle;
use crate::server::pubsub::Publish;
use crate::server::shared::Shared;

pub use history::History;
pub use protocol::epoch_text;
pub use redis::{LIVE_SLACK, RedisChannels};
pub use service::{
    Action, CLIENT_JS, CLIENT_JS_PATH, ChannelsHandler, ChannelsService, Policy, serve_message,
    serve_message_with,
};

/// The longest channel name, in bytes.
pub const MAX_CHANNEL_NAME: usize = 256;

/// A position in a channel: the channel's epoch and the offset of a message (0: before
/// the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Position {
    /// The channel's epoch: changes when its history is lost (a server restart).
    pub epoch: u64,
    /// The offset of a message: 1 for the channel's first, one more for each next.
    pub offset: u64,
}

/// What became of a subscriber's position (see [`Conn::subscribe_channel`]). More
/// outcomes may come: match with a wildcard, or use [`Recovery::failed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Recovery {
    /// No position was given: live from the current position.
    NotAsked,
    /// Everything after the position was replayed (possibly nothing); live follows
    /// with no gap and no duplicate.
    Recovered,
    /// The history no longer holds the messages after the position: nothing was
    /// replayed, live follows from the current position. The application reloads its
    /// state.
    TooOld,
    /// The messages after the position would not fit in the connection's queue
    /// (`max_backpressure`, less what already waits in it): nothing was replayed, live
    /// follows from the current position. Without this, the replay would close the
    /// connection with 1008 (or, under `BackpressurePolicy::Drop`, lose messages), and
    /// a client that reconnected would fall further behind each time.
    TooMany,
    /// The position belongs to another epoch (the history it refers to was lost, as
    /// in a restart of a server keeping history in memory) or to no message the
    /// channel has: nothing was replayed, live follows from the current position.
    EpochChanged,
}

impl Recovery {
    /// Whether the subscriber asked for recovery and did not get it.
    pub fn failed(self) -> bool {
        matches!(
            self,
            Recovery::TooOld | Recovery::TooMany | Recovery::EpochChanged
        )
    }
}

/// The outcome of [`Conn::subscribe_channel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscribed {
    /// What became of the position given.
    pub recovery: Recovery,
    /// The position live delivery continues from: the next message the subscriber
    /// gets has offset `position.offset + 1`.
    pub position: Position,
    /// Messages replayed (queued on the connection before anything live).
    pub replayed: usize,
}

/// Why a channel call did nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelError {
    /// The data is over the channel data limit (bytes;
    /// [`crate::ServerBuilder::max_channel_data_size`], by default the server's
    /// `max_message_size`): not stored, not sent.
    TooLarge {
        /// The data's length in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// An empty channel name, or one over [`MAX_CHANNEL_NAME`] bytes.
    InvalidName,
    /// The connection already subscribes to the channel.
    AlreadySubscribed,
    /// The connection is closing: nothing was changed.
    Closing,
    /// The channel is new and the server already holds its most channels
    /// ([`crate::ServerBuilder::max_channels`]): nothing was created or sent.
    TooManyChannels {
        /// The limit.
        limit: usize,
    },
    /// The engine's store cannot be reached (engines with an outside store only).
    Unavailable,
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelError::TooLarge { size, limit } => {
                write!(f, "message of {size} bytes is over the limit of {limit}")
            }
            ChannelError::InvalidName => write!(
                f,
                "a channel name is 1 to {MAX_CHANNEL_NAME} bytes of UTF-8"
            ),
            ChannelError::AlreadySubscribed => write!(f, "already subscribed"),
            ChannelError::Closing => write!(f, "the connection is closing"),
            ChannelError::TooManyChannels { limit } => {
                write!(f, "the server holds its most channels ({limit})")
            }
            ChannelError::Unavailable => write!(f, "the channel engine is unavailable"),
        }
    }
}

impl std::error::Error for ChannelError {}

/// Refuses an empty channel name or one over [`MAX_CHANNEL_NAME`] bytes.
pub(crate) fn check_name(name: &str) -> Result<(), ChannelError> {
    if name.is_empty() || name.len() > MAX_CHANNEL_NAME {
        return Err(ChannelError::InvalidName);
    }
    Ok(())
}

/// Refuses data over `limit` bytes.
pub(crate) fn check_size(data: &str, limit: usize) -> Result<(), ChannelError> {
    if data.len() > limit {
        return Err(ChannelError::TooLarge {
            size: data.len(),
            limit,
        });
    }
    Ok(())
}

/// Channels and history memory held by a server's engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Channels known (created by a first publish or subscribe, kept while the
    /// server runs).
    pub channels: usize,
    /// Messages held in histories, all channels together.
    pub history_messages: usize,
    /// Bytes of the frames those messages are (shared by every subscriber).
    pub history_bytes: usize,
}

/// The most channels a server holds unless told otherwise
/// ([`crate::ServerBuilder::max_channels`]).
pub const DEFAULT_MAX_CHANNELS: usize = 100_000;

/// History settings per channel-name pattern: the first pattern that matches a
/// channel's name decides; a channel that matches none keeps no history (it still has
/// offsets and an epoch). A pattern is a name, or a prefix followed by `*`
/// (`"chat:*"`), or `*` alone. Also the most channels the server holds.
#[derive(Debug, Clone)]
pub struct ChannelRules {
    rules: Vec<(String, History)>,
    /// The most channels held: a publish or subscribe that would create one more fails
    /// with [`ChannelError::TooManyChannels`]. Channels are kept while the server runs.
    pub max_channels: usize,
    /// The largest data a publish may carry, in bytes (`None`: the server's
    /// `max_message_size`).
    pub max_data_size: Option<usize>,
}

impl Default for ChannelRules {
    fn default() -> Self {
        Self {
            rules: Vec::new(),
            max_channels: DEFAULT_MAX_CHANNELS,
            max_data_size: None,
        }
    }
}

impl ChannelRules {
    /// Adds `pattern` (after the ones added before) with `history`.
    pub fn add(&mut self, pattern: impl Into<String>, history: History) {
        self.rules.push((pattern.into(), history));
    }

    /// The history of channel `name`.
    pub fn history_of(&self, name: &str) -> History {
        self.rules
            .iter()
            .find(|(pattern, _)| match pattern.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => pattern == name,
            })
            .map(|(_, history)| *history)
            .unwrap_or_default()
    }
}

/// Queues a channel message in every reactor's inbox (the engine calls this under the
/// channel's lock).
fn fanout(shared: &Shared) -> impl FnMut(Publish) + '_ {
    move |publish| {
        for remote in &shared.remotes {
            remote.send_publishes(std::iter::once(publish.clone()));
        }
    }
}

impl Conn<'_> {
    /// Publishes `data` to `channel`: it gets the channel's next offset, joins the
    /// channel's history (if it keeps one) and reaches every subscriber on every
    /// reactor, this connection included if it subscribes, in offset order, as a
    /// channels-protocol message frame (see [`crate::channels`]). Returns the
    /// message's position.
    ///
    /// # Errors
    ///
    /// [`ChannelError::TooLarge`] over the channel data limit
    /// ([`crate::ServerBuilder::max_channel_data_size`]),
    /// [`ChannelError::InvalidName`]; nothing is stored or sent then.
    pub fn publish_channel(&mut self, channel: &str, data: &str) -> Result<Position, ChannelError> {
        let shared = self.reactor.server.shared();
        let position = shared
            .channels
            .publish(channel, data, &mut fanout(shared))?;
        self.reactor.counters.publishes.add(1);
        Ok(position)
    }

    /// Publishes `data` to `channel` without waiting for an engine that keeps
    /// channels outside the server ([`RedisChannels`]): the reactor hands the publish
    /// over and goes on, and `done` is called later, on the engine's thread, with the
    /// message's position or why it was refused (keep a [`crate::ConnHandle`] in it to
    /// answer the client). A connection's publishes are stored, and `done` called, in
    /// the order they were made. With the in-memory engine nothing waits: the publish
    /// happens at once, as [`Conn::publish_channel`], and `done` is not called.
    ///
    /// Returns `Some(result)` when the publish happened at once (`done` dropped), or
    /// `None` when it was handed over (`done` will be called once, whatever becomes of
    /// it, including when the server stops first).
    pub fn publish_channel_with(
        &mut self,
        channel: &str,
        data: &str,
        done: impl FnOnce(Result<Position, ChannelError>) + Send + 'static,
    ) -> Option<Result<Position, ChannelError>> {
        let shared = self.reactor.server.shared();
        if !shared.channels.defers() {
            return Some(self.publish_channel(channel, data));
        }
        self.reactor.counters.publishes.add(1);
        shared
            .channels
            .publish_later(channel, data, &mut fanout(shared), Box::new(done));
        None
    }

    /// Subscribes to `channel`. With `since` (the position of the last message the
    /// client got), the messages published after it are queued on this connection
    /// now, behind what this callback sent before, and live delivery continues after
    /// them with no gap and no duplicate; see [`Subscribed`] and [`Recovery`] for
    /// what happens when the history no longer reaches back that far.
    ///
    /// Replayed messages count against `max_backpressure` like any delivery: a replay
    /// that would not fit under it is not made ([`Recovery::TooMany`]).
    ///
    /// # Errors
    ///
    /// [`ChannelError::AlreadySubscribed`], [`ChannelError::Closing`],
    /// [`ChannelError::InvalidName`]: nothing changed.
    pub fn subscribe_channel(
        &mut self,
        channel: &str,
        since: Option<Position>,
    ) -> Result<Subscribed, ChannelError> {
        if self.state.closing.is_some() {
            return Err(ChannelError::Closing);
        }
        if self.is_subscribed_channel(channel) {
            return Err(ChannelError::AlreadySubscribed);
        }
        if since.is_some() && !self.reactor.cork.is_empty() {
            // What this callback sent goes before the replay.
            let sent = bytes::Bytes::copy_from_slice(&self.reactor.cork);
            self.reactor.cork.clear();
            self.state.outbox.push(sent);
        }
        let subscribed = {
            let (state, config, reactor) = (&mut *self.state, self.config, &*self.reactor);
            let engine = &reactor.server.shared().channels;
            let room = config
                .max_backpressure
                .saturating_sub(state.outbox.len() + reactor.cork.len());
            engine.subscribe(channel, since, room, &mut |frame| {
                state.deliver(Delivery::Shared(frame), config, &reactor.stats);
            })?
        };
        let sub = self.reactor.channels.subscribe(
            channel,
            self.state.key,
            subscribed.position.offset,
            subscribed.position.epoch,
        );
        self.state.channel_subs.push(sub);
        Ok(subscribed)
    }

    /// Unsubscribes from `channel`. Returns `false` if not subscribed.
    pub fn unsubscribe_channel(&mut self, channel: &str) -> bool {
        let channels = &self.reactor.channels;
        let Some(i) = self
            .state
            .channel_subs
            .iter()
            .position(|&s| channels.is_channel(s, channel))
        else {
            return false;
        };
        let sub = self.state.channel_subs.swap_remove(i);
        self.reactor.channels.unsubscribe(sub);
        true
    }

    /// Whether this server's channel engine keeps channels outside it (Redis), so
    /// that [`Conn::publish_channel_with`] hands publishes over rather than doing
    /// them at once.
    pub fn is_deferring_channels(&self) -> bool {
        self.reactor.server.shared().channels.defers()
    }

    /// Whether this connection subscribes to `channel`.
    pub fn is_subscribed_channel(&self, channel: &str) -> bool {
        let channels = &self.reactor.channels;
        self.state
            .channel_subs
            .iter()
            .any(|&s| channels.is_channel(s, channel))
    }
}

impl ServerHandle {
    /// Publishes `data` to `channel` from any thread, as [`Conn::publish_channel`]
    /// does. Messages published from one thread to one channel get increasing offsets.
    ///
    /// # Errors
    ///
    /// As [`Conn::publish_channel`].
    pub fn publish_channel(&self, channel: &str, data: &str) -> Result<Position, ChannelError> {
        let shared = self.shared();
        let position = shared
            .channels
            .publish(channel, data, &mut fanout(shared))?;
        crate::server::stats::Stats::bump(&shared.stats.handle_publishes);
        Ok(position)
    }

    /// The position of the last message published to `channel` (offset 0 before the
    /// first), or `None` if the channel was never used on this server.
    pub fn channel_position(&self, channel: &str) -> Option<Position> {
        self.shared().channels.position(channel)
    }

    /// Channels known and the history they hold.
    pub fn channel_stats(&self) -> EngineStats {
        self.shared().channels.stats()
    }
}
