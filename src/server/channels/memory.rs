//! The in-process engine: every channel's state in one registry shared by the
//! reactors of one server, one lock per channel.
//!
//! A publish takes the channel's lock, gives the message the next offset, appends it
//! to the history and hands it to every reactor's inbox before letting go, so the
//! inboxes receive a channel's messages in offset order whoever published them. A
//! subscribe reads the history under the same lock. Channels are created on first
//! use, with a random epoch: history lives in memory, so a restarted server has new
//! epochs and a client's old position is recognised as lost, never silently wrong.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use bytes::Bytes;

use crate::server::channels::engine::Engine;
use crate::server::channels::history::Ring;
use crate::server::channels::protocol::message_frame;
use crate::server::channels::{
    ChannelError, ChannelRules, EngineStats, Position, Recovery, Subscribed, check_name, check_size,
};
use crate::server::pubsub::Publish;

/// The clock an engine reads (a manual one in model tests).
pub(crate) type Clock = Box<dyn Fn() -> Instant + Send + Sync>;

/// One channel: its epoch, the last offset given, its history.
#[derive(Debug)]
struct Channel {
    name: Arc<str>,
    epoch: u64,
    last: u64,
    ring: Ring,
}

/// The in-process engine (see the module docs).
pub(crate) struct MemoryEngine {
    rules: ChannelRules,
    max_message_size: usize,
    channels: RwLock<HashMap<Arc<str>, Arc<Mutex<Channel>>>>,
    clock: Clock,
}

impl std::fmt::Debug for MemoryEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryEngine")
            .field("rules", &self.rules)
            .field("max_message_size", &self.max_message_size)
            .finish_non_exhaustive()
    }
}

impl MemoryEngine {
    /// An engine keeping history per `rules`, refusing data over `max_message_size`
    /// bytes.
    pub fn new(rules: ChannelRules, max_message_size: usize) -> Self {
        Self::with_clock(rules, max_message_size, Box::new(Instant::now))
    }

    /// The same, reading time from `clock`.
    pub fn with_clock(rules: ChannelRules, max_message_size: usize, clock: Clock) -> Self {
        Self {
            rules,
            max_message_size,
            channels: RwLock::new(HashMap::new()),
            clock,
        }
    }

    /// The channel `name`, created (with a new epoch) if it is new.
    fn channel(&self, name: &str) -> Result<Arc<Mutex<Channel>>, ChannelError> {
        check_name(name)?;
        if let Some(channel) = self
            .channels
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Ok(channel.clone());
        }
        let mut channels = self.channels.write().unwrap_or_else(|e| e.into_inner());
        if channels.len() >= self.rules.max_channels && !channels.contains_key(name) {
            return Err(ChannelError::TooManyChannels {
                limit: self.rules.max_channels,
            });
        }
        let channel = channels.entry(Arc::from(name)).or_insert_with_key(|name| {
            Arc::new(Mutex::new(Channel {
                name: name.clone(),
                epoch: new_epoch(),
                last: 0,
                ring: Ring::new(self.rules.history_of(name)),
            }))
        });
        Ok(channel.clone())
    }
}

/// A random epoch (never 0, so a zeroed position is never mistaken for a real one).
pub(crate) fn new_epoch() -> u64 {
    loop {
        let epoch = getrandom::u64().unwrap_or_else(|_| {
            // No entropy source: the clock still differs from one start to the next.
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
        if epoch != 0 {
            return epoch;
        }
    }
}

fn lock(channel: &Mutex<Channel>) -> std::sync::MutexGuard<'_, Channel> {
    channel.lock().unwrap_or_else(|e| e.into_inner())
}

impl Engine for MemoryEngine {
    fn publish(
        &self,
        channel: &str,
        data: &str,
        fanout: &mut dyn FnMut(Publish),
    ) -> Result<Position, ChannelError> {
        check_size(data, self.max_message_size)?;
        let channel = self.channel(channel)?;
        let mut state = lock(&channel);
        let offset = state.last + 1;
        let frame = message_frame(&state.name, state.epoch, offset, data);
        state.last = offset;
        if state.ring.keeps() {
            let now = (self.clock)();
            state.ring.push(offset, now, frame.clone());
        }
        // Under the lock: the inboxes get this channel's messages in offset order.
        fanout(Publish {
            topic: Some(state.name.clone()),
            frame,
            exclude: None,
            deflated: None,
            offset,
            epoch: state.epoch,
        });
        Ok(Position {
            epoch: state.epoch,
            offset,
        })
    }

    fn subscribe(
        &self,
        channel: &str,
        since: Option<Position>,
        max_replay_bytes: usize,
        replay: &mut dyn FnMut(&Bytes),
    ) -> Result<Subscribed, ChannelError> {
        let channel = self.channel(channel)?;
        let mut state = lock(&channel);
        let position = Position {
            epoch: state.epoch,
            offset: state.last,
        };
        let Some(since) = since else {
            return Ok(Subscribed {
                recovery: Recovery::NotAsked,
                position,
                replayed: 0,
            });
        };
        let now = (self.clock)();
        state.ring.trim(now);
        let recovery = if since.epoch != state.epoch || since.offset > state.last {
            Recovery::EpochChanged
        } else if since.offset == state.last
            // Nothing missed, or the history holds the message after the position.
            || state
                .ring
                .first()
                .is_some_and(|first| first <= since.offset + 1)
        {
            let mut bytes = 0usize;
            let fits = state.ring.after(since.offset).all(|entry| {
                bytes += entry.frame.len();
                bytes <= max_replay_bytes
            });
            if fits {
                Recovery::Recovered
            } else {
                Recovery::TooMany
            }
        } else {
            Recovery::TooOld
        };
        let mut replayed = 0;
        if recovery == Recovery::Recovered {
            for entry in state.ring.after(since.offset) {
                replay(&entry.frame);
                replayed += 1;
            }
        }
        Ok(Subscribed {
            recovery,
            position,
            replayed,
        })
    }

    fn position(&self, channel: &str) -> Option<Position> {
        let channels = self.channels.read().unwrap_or_else(|e| e.into_inner());
        let state = lock(channels.get(channel)?);
        Some(Position {
            epoch: state.epoch,
            offset: state.last,
        })
    }

    fn stats(&self) -> EngineStats {
        let channels = self.channels.read().unwrap_or_else(|e| e.into_inner());
        let mut stats = EngineStats {
            channels: channels.len(),
            ..EngineStats::default()
        };
        for channel in channels.values() {
            let state = lock(channel);
            stats.history_messages += state.ring.len();
            stats.history_bytes += state.ring.frame_bytes();
        }
        stats
    }
}
