//! Topics: which connections of this reactor subscribe to what, and the messages that
//! travel between reactors.
//!
//! Each reactor keeps its own registry, touched only by its own thread. A publish is
//! encoded once into a [`Bytes`] frame; other reactors get that `Bytes` through their
//! inboxes, and each reactor hands it to its local subscribers as a range of its turn
//! batch or a clone of the `Bytes` (see `core/delivery.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use slab::Slab;

use crate::server::core::slots::Slots;

use crate::protocol::OpCode;
use crate::protocol::deflate::DeflateConfig;
use crate::protocol::frame::{Role, decode_header};
use crate::server::bridge::BridgeShared as Bridge;
use crate::server::conn_api::ConnId;
use crate::server::encode::{deflate_message, encode_shared, encode_shared_frame};
use crate::server::handler::Message;

/// A published frame on its way to subscribers.
#[derive(Debug, Clone)]
pub(crate) struct Publish {
    /// The topic, or `None` for every open connection.
    pub topic: Option<Arc<str>>,
    /// The encoded frame, shared by every subscriber.
    pub frame: Bytes,
    /// A connection that must not receive it (the publisher, when it asked so).
    pub exclude: Option<ConnId>,
    /// The same message compressed (permessage-deflate), shared by every subscriber
    /// that negotiated it with a window it fits; `None` when compression is off, the
    /// message is under `min_message_size`, or compressing did not make it smaller.
    pub deflated: Option<Deflated>,
    /// The message's offset in its channel (`topic` is then a channel's name, see
    /// `channels/`); 0 for a plain topic or a broadcast.
    pub offset: u64,
    /// The channel's epoch the offset counts in; 0 for a plain topic or a broadcast.
    pub epoch: u64,
}

/// A published message compressed once, without context takeover, so that any
/// connection that negotiated permessage-deflate can be sent it.
#[derive(Debug, Clone)]
pub(crate) struct Deflated {
    /// The frame (RSV1 set).
    pub frame: Bytes,
    /// The smallest negotiated server window (bits) a subscriber needs to be sent this
    /// frame: no match in it reaches further back than 2^`needs` bytes.
    pub needs: u8,
}

impl Deflated {
    /// Compresses `payload` (of a message with `opcode`) per `config`, if worth it.
    pub fn of(opcode: OpCode, payload: &[u8], config: &DeflateConfig) -> Option<Self> {
        let window = config.server_max_window_bits.clamp(8, 15);
        let mut scratch = Vec::new();
        if !deflate_message(&mut scratch, Some(window), Some(config), payload) {
            return None;
        }
        // Matches never reach further back than the message is long, nor than the
        // window the compressor used.
        let reach = (usize::BITS - payload.len().saturating_sub(1).leading_zeros()) as u8;
        Some(Self {
            frame: encode_shared_frame(opcode, &scratch, true),
            needs: reach.clamp(8, window),
        })
    }
}

impl Publish {
    /// Encodes `message` once into the frame every subscriber will share, and, with
    /// permessage-deflate on (`deflate`), compresses it once too.
    pub fn new(
        topic: Option<Arc<str>>,
        message: Message<'_>,
        exclude: Option<ConnId>,
        deflate: Option<&DeflateConfig>,
    ) -> Self {
        let (opcode, payload) = (message.opcode(), message.as_bytes());
        Self {
            topic,
            frame: encode_shared(opcode, payload),
            exclude,
            deflated: deflate.and_then(|config| Deflated::of(opcode, payload, config)),
            offset: 0,
            epoch: 0,
        }
    }

    /// A publish of an already encoded, whole, unmasked data `frame` (from the
    /// bridge), compressed too with permessage-deflate on (`deflate`).
    pub fn of_frame(
        topic: Option<Arc<str>>,
        frame: Bytes,
        deflate: Option<&DeflateConfig>,
    ) -> Self {
        let deflated = deflate.and_then(|config| {
            let header = decode_header(&frame, Role::Client, 0).ok()??;
            let payload = frame.get(header.header_len as usize..)?;
            Deflated::of(header.opcode, payload, config)
        });
        Self {
            topic,
            frame,
            exclude: None,
            deflated,
            offset: 0,
            epoch: 0,
        }
    }
}

/// Where one subscription sits in the registry, so it can be removed in O(1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Subscription {
    topic: u32,
    slot: u32,
}

#[derive(Debug)]
struct Topic {
    name: Arc<str>,
    /// Slab keys of the subscribed connections (a table that can shrink without
    /// freeing: a topic of thousands of subscribers on one reactor grows it past
    /// 128 KiB; see `server/core/slots.rs`).
    subscribers: Slots<usize>,
}

/// Subscriber counts per topic over all reactors, for the server handle and the
/// bridge. Updated on subscribe and unsubscribe only, never on the publish path.
pub(crate) type TopicCounts = Arc<Interest>;

/// Which topics have subscribers on this server, and how many; the bridge (if any) is
/// told when a topic gets its first subscriber or loses its last.
#[derive(Debug, Default)]
pub(crate) struct Interest {
    counts: Mutex<HashMap<Arc<str>, usize>>,
    bridge: Option<Arc<Bridge>>,
}

impl Interest {
    /// Counts that report to `bridge`.
    pub fn new(bridge: Option<Arc<Bridge>>) -> Self {
        Self {
            counts: Mutex::new(HashMap::new()),
            bridge,
        }
    }

    /// The counts (a poisoned lock is taken over: counts stay consistent).
    pub fn lock(&self) -> MutexGuard<'_, HashMap<Arc<str>, usize>> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The server's bridge, if it has one.
    pub fn bridge(&self) -> Option<&Arc<Bridge>> {
        self.bridge.as_ref()
    }
}

/// One reactor's topics.
#[derive(Debug, Default)]
pub(crate) struct Topics {
    by_name: HashMap<Arc<str>, u32>,
    topics: Slab<Topic>,
    counts: TopicCounts,
}

impl Topics {
    /// A registry that keeps `counts` up to date.
    pub fn new(counts: TopicCounts) -> Self {
        Self {
            by_name: HashMap::new(),
            topics: Slab::new(),
            counts,
        }
    }

    /// Subscribes connection `key` to `name`. The caller makes sure it is not already.
    pub fn subscribe(&mut self, name: &str, key: usize) -> Subscription {
        let topic = match self.by_name.get(name) {
            Some(&topic) => topic,
            None => {
                let name: Arc<str> = Arc::from(name);
                let topic = self.topics.insert(Topic {
                    name: name.clone(),
                    subscribers: Slots::default(),
                }) as u32;
                self.by_name.insert(name, topic);
                topic
            }
        };
        let entry = &mut self.topics[topic as usize];
        let slot = entry.subscribers.insert(key) as u32;
        let mut counts = self.counts.lock();
        let count = counts.entry(entry.name.clone()).or_insert(0);
        *count += 1;
        if *count == 1
            && let Some(bridge) = self.counts.bridge()
        {
            bridge.interest_changed(&entry.name);
        }
        Subscription { topic, slot }
    }

    /// Removes a subscription; a topic left without subscribers is forgotten.
    pub fn unsubscribe(&mut self, sub: Subscription) {
        let Some(topic) = self.topics.get_mut(sub.topic as usize) else {
            return;
        };
        if topic.subscribers.try_remove(sub.slot as usize).is_none() {
            return;
        }
        {
            let mut counts = self.counts.lock();
            if let Some(count) = counts.get_mut(&topic.name) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&topic.name);
                    if let Some(bridge) = self.counts.bridge() {
                        bridge.interest_changed(&topic.name);
                    }
                }
            }
        }
        if topic.subscribers.is_empty() {
            topic.subscribers.release();
            let topic = self.topics.remove(sub.topic as usize);
            self.by_name.remove(&topic.name);
        }
    }

    /// Gives back the registry's memory once no topic is left.
    pub fn release_idle_memory(&mut self) {
        if self.topics.is_empty() {
            self.topics = Slab::new();
            self.by_name = HashMap::new();
        }
    }

    /// The server's bridge, if it has one.
    pub fn bridge(&self) -> Option<&Arc<Bridge>> {
        self.counts.bridge()
    }

    /// The name of a subscription's topic.
    pub fn name(&self, sub: Subscription) -> Option<&Arc<str>> {
        self.topics.get(sub.topic as usize).map(|t| &t.name)
    }

    /// Whether `sub` is a subscription to `name`.
    pub fn is_topic(&self, sub: Subscription, name: &str) -> bool {
        self.by_name.get(name) == Some(&sub.topic)
    }

    /// Slab keys of the connections subscribed to `name`, appended to `out`.
    pub fn subscribers_into(&self, name: &str, out: &mut Vec<usize>) {
        if let Some(&topic) = self.by_name.get(name) {
            out.extend(
                self.topics[topic as usize]
                    .subscribers
                    .iter()
                    .map(|(_, &k)| k),
            );
        }
    }

    /// Number of local subscribers of `name`.
    #[cfg(test)]
    pub fn count(&self, name: &str) -> usize {
        self.by_name
            .get(name)
            .map_or(0, |&t| self.topics[t as usize].subscribers.len())
    }

    /// Number of topics with at least one subscriber.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.topics.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_unsubscribe_forgets_empty_topics() {
        let mut topics = Topics::default();
        let a = topics.subscribe("room", 1);
        let b = topics.subscribe("room", 2);
        let c = topics.subscribe("other", 1);
        assert_eq!(topics.count("room"), 2);
        assert_eq!(topics.counts.lock()["room"], 2);
        assert!(topics.is_topic(a, "room") && !topics.is_topic(c, "room"));
        let mut keys = Vec::new();
        topics.subscribers_into("room", &mut keys);
        keys.sort();
        assert_eq!(keys, [1, 2]);
        topics.unsubscribe(a);
        topics.unsubscribe(b);
        topics.unsubscribe(c);
        assert_eq!(topics.len(), 0);
        assert!(topics.by_name.is_empty());
        assert!(topics.counts.lock().is_empty());
    }
}
