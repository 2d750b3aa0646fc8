//! The seam between the server and whatever sequences a channel and keeps its history:
//! [`Engine`]. The in-process engine (`memory.rs`) is the default; the Redis Streams
//! engine (`redis.rs`: several servers, one order) takes its place behind the same
//! calls, its delivery coming from its reader thread rather than from `fanout`, and
//! its publishes from reactors handed to its own thread ([`Engine::publish_later`]).
//!
//! What an engine promises, whoever calls it and from whichever thread:
//!
//! - **One order per channel.** Each message published to a channel gets the next
//!   offset of the channel (one more than the last), and is handed to `fanout` before
//!   any later message of the same channel is handed to it. The server's `fanout`
//!   queues the message in every reactor's inbox, so every reactor delivers a
//!   channel's messages in offset order.
//! - **A clean switch from replay to live.** [`Engine::subscribe`] reads the history
//!   after a position and says the offset the subscriber is live from, atomically
//!   with respect to publishes: every message at or below that offset was handed to
//!   `fanout` before the call returned (the reactor skips those for the new
//!   subscriber), and every later one is handed to it after.

use std::fmt;

use bytes::Bytes;

use crate::server::channels::{ChannelError, EngineStats, Position, Subscribed};
use crate::server::pubsub::Publish;

/// What is called with a deferred publish's outcome, on the engine's thread.
pub(crate) type Done = Box<dyn FnOnce(Result<Position, ChannelError>) + Send>;

/// Sequencing and history of channels (see the module docs).
pub(crate) trait Engine: Send + Sync + fmt::Debug {
    /// Gives `data` the next offset of `channel`, keeps it in the channel's history
    /// (as configured), and hands it, encoded once, to `fanout` (see the module docs
    /// for the order). Returns the message's position.
    ///
    /// # Errors
    ///
    /// [`ChannelError::TooLarge`] over the engine's message limit,
    /// [`ChannelError::InvalidName`] for a name the engine refuses; an engine with an
    /// outside store says it is unreachable with [`ChannelError::Unavailable`].
    fn publish(
        &self,
        channel: &str,
        data: &str,
        fanout: &mut dyn FnMut(Publish),
    ) -> Result<Position, ChannelError>;

    /// Whether [`Engine::publish`] waits on an outside store, so that a reactor
    /// should hand its publishes over with [`Engine::publish_later`] instead.
    fn defers(&self) -> bool {
        false
    }

    /// Publishes on the engine's own thread and calls `done` there with the outcome;
    /// the publishes handed over by one thread keep their order. The default runs
    /// [`Engine::publish`] at once.
    fn publish_later(
        &self,
        channel: &str,
        data: &str,
        fanout: &mut dyn FnMut(Publish),
        done: Done,
    ) {
        done(self.publish(channel, data, fanout));
    }

    /// Reads what `channel` published after `since` into `replay`, oldest first, and
    /// says where live delivery starts (see the module docs and [`Subscribed`]). A
    /// replay of more than `max_replay_bytes` bytes of frames is not made:
    /// [`crate::channels::Recovery::TooMany`].
    ///
    /// # Errors
    ///
    /// [`ChannelError::InvalidName`]; [`ChannelError::Unavailable`] for an engine
    /// that cannot reach its store.
    fn subscribe(
        &self,
        channel: &str,
        since: Option<Position>,
        max_replay_bytes: usize,
        replay: &mut dyn FnMut(&Bytes),
    ) -> Result<Subscribed, ChannelError>;

    /// The position of the last message published to `channel` (offset 0 before the
    /// first), or `None` if the engine does not know the channel yet.
    fn position(&self, channel: &str) -> Option<Position>;

    /// Channels and history held, for the server handle.
    fn stats(&self) -> EngineStats;
}
