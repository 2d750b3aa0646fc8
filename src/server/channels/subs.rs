//! One reactor's channel subscribers, each with the offset it is live from.
//!
//! A subscriber joins a channel at a position the engine gave it (`live_from`):
//! messages of the channel still in the reactor's inbox at or below that offset were
//! replayed to it already (or predate it), so delivery skips them for it; later ones
//! go to it. Once a message above every subscriber's `live_from` has been delivered,
//! the channel is caught up and delivery goes to all its subscribers in runs, as for
//! a plain topic.

use std::collections::HashMap;
use std::sync::Arc;

use slab::Slab;

/// Where one channel subscription sits in the registry, so it can be removed in O(1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChannelSub {
    channel: u32,
    slot: u32,
}

#[derive(Debug)]
struct Local {
    name: Arc<str>,
    /// Slab key of each subscribed connection, and the offset it is live from.
    subscribers: Slab<(usize, u64)>,
    /// The highest `live_from` of the subscribers: a message above it goes to all.
    lagging_until: u64,
}

/// One reactor's channel subscriptions (touched by its own thread only).
#[derive(Debug, Default)]
pub(crate) struct ChannelSubs {
    by_name: HashMap<Arc<str>, u32>,
    channels: Slab<Local>,
}

impl ChannelSubs {
    /// Subscribes connection `key` to `name`, live after offset `live_from`. The
    /// caller makes sure it is not already.
    pub fn subscribe(&mut self, name: &str, key: usize, live_from: u64) -> ChannelSub {
        let channel = match self.by_name.get(name) {
            Some(&channel) => channel,
            None => {
                let name: Arc<str> = Arc::from(name);
                let channel = self.channels.insert(Local {
                    name: name.clone(),
                    subscribers: Slab::new(),
                    lagging_until: 0,
                }) as u32;
                self.by_name.insert(name, channel);
                channel
            }
        };
        let local = &mut self.channels[channel as usize];
        local.lagging_until = local.lagging_until.max(live_from);
        let slot = local.subscribers.insert((key, live_from)) as u32;
        ChannelSub { channel, slot }
    }

    /// Removes a subscription; a channel left without subscribers is forgotten.
    pub fn unsubscribe(&mut self, sub: ChannelSub) {
        let Some(local) = self.channels.get_mut(sub.channel as usize) else {
            return;
        };
        if local.subscribers.try_remove(sub.slot as usize).is_none() {
            return;
        }
        if local.subscribers.is_empty() {
            let local = self.channels.remove(sub.channel as usize);
            self.by_name.remove(&local.name);
        }
    }

    /// Whether `sub` is a subscription to `name`.
    pub fn is_channel(&self, sub: ChannelSub, name: &str) -> bool {
        self.by_name.get(name) == Some(&sub.channel)
    }

    /// Whether some subscriber of `name` must skip the message at `offset` (so the
    /// message goes out alone, to the subscribers it is for).
    pub fn lagging(&self, name: &str, offset: u64) -> bool {
        self.by_name
            .get(name)
            .is_some_and(|&c| offset <= self.channels[c as usize].lagging_until)
    }

    /// Slab keys of the subscribers of `name` that the message at `offset` is for,
    /// appended to `out` (for a run of messages: the first one's offset, when the
    /// channel is not [`ChannelSubs::lagging`] at it).
    pub fn subscribers_into(&mut self, name: &str, offset: u64, out: &mut Vec<usize>) {
        let Some(&channel) = self.by_name.get(name) else {
            return;
        };
        let local = &mut self.channels[channel as usize];
        if offset > local.lagging_until {
            out.extend(local.subscribers.iter().map(|(_, &(key, _))| key));
            if local.lagging_until != 0 {
                // Every subscriber is live now, and stays so: nothing to skip any more.
                local.lagging_until = 0;
                for (_, (_, live_from)) in local.subscribers.iter_mut() {
                    *live_from = 0;
                }
            }
        } else {
            out.extend(
                local
                    .subscribers
                    .iter()
                    .filter(|(_, (_, live_from))| offset > *live_from)
                    .map(|(_, &(key, _))| key),
            );
        }
    }

    /// Slab keys of every subscriber of `name`, appended to `out`.
    pub fn keys_of(&self, name: &str, out: &mut Vec<usize>) {
        if let Some(&channel) = self.by_name.get(name) {
            let local = &self.channels[channel as usize];
            out.extend(local.subscribers.iter().map(|(_, &(key, _))| key));
        }
    }

    /// Gives back the registry's memory once no channel is left.
    pub fn release_idle_memory(&mut self) {
        if self.channels.is_empty() {
            self.channels = Slab::new();
            self.by_name = HashMap::new();
        }
    }
}
