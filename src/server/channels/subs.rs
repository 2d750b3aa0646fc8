//! One reactor's channel subscribers, each with the epoch it joined and the offset it
//! is live from.
//!
//! A subscriber joins a channel at a position the engine gave it (`live_from`):
//! messages of the channel still in the reactor's inbox at or below that offset were
//! replayed to it already (or predate it), so delivery skips them for it; later ones
//! go to it. Once a message above every subscriber's `live_from` has been delivered,
//! the channel is caught up and delivery goes to all its subscribers in runs, as for
//! a plain topic.
//!
//! A message goes only to subscribers in its epoch: one left in the inbox from before
//! the channel lost its history is not for a client that has since joined the new
//! epoch (its offsets count from 1 again), nor is a new epoch's message for one still
//! in the old (it is about to be closed with 1012, see `Command::ChannelLost`).

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
    /// Each subscribed connection: its slab key, the offset it is live from and the
    /// epoch it joined.
    subscribers: Slab<Subscriber>,
    /// The highest `live_from` of the subscribers: a message above it goes to all
    /// (when they are all in its epoch).
    lagging_until: u64,
    /// The subscribers' epochs, each with how many are in it: one entry but for the
    /// moments around a lost history.
    epochs: Vec<(u64, u32)>,
}

impl Local {
    /// Whether every subscriber is in `epoch`.
    fn all_in(&self, epoch: u64) -> bool {
        matches!(self.epochs[..], [(e, _)] if e == epoch)
    }
}

#[derive(Debug, Clone, Copy)]
struct Subscriber {
    key: usize,
    live_from: u64,
    epoch: u64,
}

/// One reactor's channel subscriptions (touched by its own thread only).
#[derive(Debug, Default)]
pub(crate) struct ChannelSubs {
    by_name: HashMap<Arc<str>, u32>,
    channels: Slab<Local>,
}

impl ChannelSubs {
    /// Subscribes connection `key` to `name` in `epoch`, live after offset
    /// `live_from`. The caller makes sure it is not already.
    pub fn subscribe(&mut self, name: &str, key: usize, live_from: u64, epoch: u64) -> ChannelSub {
        let channel = match self.by_name.get(name) {
            Some(&channel) => channel,
            None => {
                let name: Arc<str> = Arc::from(name);
                let channel = self.channels.insert(Local {
                    name: name.clone(),
                    subscribers: Slab::new(),
                    lagging_until: 0,
                    epochs: Vec::new(),
                }) as u32;
                self.by_name.insert(name, channel);
                channel
            }
        };
        let local = &mut self.channels[channel as usize];
        local.lagging_until = local.lagging_until.max(live_from);
        match local.epochs.iter_mut().find(|(e, _)| *e == epoch) {
            Some((_, count)) => *count += 1,
            None => local.epochs.push((epoch, 1)),
        }
        let slot = local.subscribers.insert(Subscriber {
            key,
            live_from,
            epoch,
        }) as u32;
        ChannelSub { channel, slot }
    }

    /// Removes a subscription; a channel left without subscribers is forgotten.
    pub fn unsubscribe(&mut self, sub: ChannelSub) {
        let Some(local) = self.channels.get_mut(sub.channel as usize) else {
            return;
        };
        let Some(gone) = local.subscribers.try_remove(sub.slot as usize) else {
            return;
        };
        if let Some(i) = local.epochs.iter().position(|(e, _)| *e == gone.epoch) {
            local.epochs[i].1 -= 1;
            if local.epochs[i].1 == 0 {
                // The last of an epoch (a lost history's): its offsets no longer hold
                // the others back (rare, so the walk is fine).
                local.epochs.swap_remove(i);
                local.lagging_until = local
                    .subscribers
                    .iter()
                    .map(|(_, s)| s.live_from)
                    .max()
                    .unwrap_or(0);
            }
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

    /// Whether some subscriber of `name` must skip the message at `offset` in
    /// `epoch` (so the message goes out alone, to the subscribers it is for).
    pub fn lagging(&self, name: &str, epoch: u64, offset: u64) -> bool {
        self.by_name.get(name).is_some_and(|&c| {
            let local = &self.channels[c as usize];
            offset <= local.lagging_until || !local.all_in(epoch)
        })
    }

    /// Slab keys of the subscribers of `name` that the message at `offset` in `epoch`
    /// is for, appended to `out` (for a run of messages of one epoch: the first one's
    /// offset, when the channel is not [`ChannelSubs::lagging`] at it).
    pub fn subscribers_into(&mut self, name: &str, epoch: u64, offset: u64, out: &mut Vec<usize>) {
        let Some(&channel) = self.by_name.get(name) else {
            return;
        };
        let local = &mut self.channels[channel as usize];
        if offset > local.lagging_until && local.all_in(epoch) {
            out.extend(local.subscribers.iter().map(|(_, s)| s.key));
            if local.lagging_until != 0 {
                // Every subscriber is live now, and stays so: nothing to skip any more.
                local.lagging_until = 0;
                for (_, s) in local.subscribers.iter_mut() {
                    s.live_from = 0;
                }
            }
        } else {
            out.extend(
                local
                    .subscribers
                    .iter()
                    .filter(|(_, s)| s.epoch == epoch && offset > s.live_from)
                    .map(|(_, s)| s.key),
            );
        }
    }

    /// Slab keys of the subscribers of `name` in an epoch other than `keep` (every
    /// one when `None`), appended to `out`.
    pub fn keys_outside(&self, name: &str, keep: Option<u64>, out: &mut Vec<usize>) {
        if let Some(&channel) = self.by_name.get(name) {
            let local = &self.channels[channel as usize];
            out.extend(
                local
                    .subscribers
                    .iter()
                    .filter(|(_, s)| keep != Some(s.epoch))
                    .map(|(_, s)| s.key),
            );
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

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(subs: &mut ChannelSubs, epoch: u64, offset: u64) -> Vec<usize> {
        let mut out = Vec::new();
        subs.subscribers_into("room", epoch, offset, &mut out);
        out.sort_unstable();
        out
    }

    #[test]
    fn a_message_goes_only_to_subscribers_in_its_epoch() {
        let mut subs = ChannelSubs::default();
        // Client 1 in the old epoch (live after 3), client 2 joined the new one.
        subs.subscribe("room", 1, 3, 0xa);
        let second = subs.subscribe("room", 2, 0, 0xb);
        // The old epoch's offset 4, still in the inbox: not for client 2.
        assert!(subs.lagging("room", 0xa, 4));
        assert_eq!(targets(&mut subs, 0xa, 4), [1]);
        // The new epoch's offset 1: not for client 1 (to be closed with 1012).
        assert_eq!(targets(&mut subs, 0xb, 1), [2]);
        let mut closed = Vec::new();
        subs.keys_outside("room", Some(0xb), &mut closed);
        assert_eq!(closed, [1]);
        closed.clear();
        subs.keys_outside("room", None, &mut closed);
        closed.sort_unstable();
        assert_eq!(closed, [1, 2]);
        // Back to one epoch once the old subscriber is gone: runs again.
        subs.unsubscribe(second);
        subs.subscribe("room", 2, 0, 0xa);
        assert!(!subs.lagging("room", 0xa, 5));
        assert_eq!(targets(&mut subs, 0xa, 5), [1, 2]);
        assert!(subs.lagging("room", 0xb, 6));
        assert!(targets(&mut subs, 0xb, 6).is_empty());
    }

    #[test]
    fn an_old_epochs_offsets_stop_holding_the_new_one_back_once_its_last_subscriber_goes() {
        let mut subs = ChannelSubs::default();
        // Far along in the old epoch; the new one counts from 1 again.
        let old = subs.subscribe("room", 1, 1_000_000, 0xa);
        subs.subscribe("room", 2, 0, 0xb);
        assert!(subs.lagging("room", 0xb, 1));
        subs.unsubscribe(old);
        assert!(!subs.lagging("room", 0xb, 1), "runs again, not one by one");
        assert_eq!(targets(&mut subs, 0xb, 1), [2]);
    }
}
