//! Channels spread over a Redis Cluster: one [`RedisEngine`] per master, each with its
//! own connections, publisher and reader threads, and a channel served by the master
//! that owns its keys' hash slot (the channel's name is the keys' hash tag, so both
//! keys of a channel are always on one master).
//!
//! The slot layout is read (`CLUSTER SLOTS`) when the server starts. A master that
//! fails costs the channels in its slots: their publishes and subscribes are refused
//! (`ChannelError::Unavailable`) until it is back, while every other channel goes
//! on. Back with its data (append-only file), its channels go on; back without, their
//! epochs change and their subscribers are closed with 1012 and told when they
//! resubscribe. A failover to a replica or a resharding moves slots to other
//! addresses: the server follows them only when restarted (not yet automatically).

use std::io;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;

use ::redis::{ConnectionAddr, Value};
use bytes::Bytes;

use super::{RedisChannels, RedisEngine};
use crate::server::channels::engine::{Done, Engine};
use crate::server::channels::{ChannelError, ChannelRules, EngineStats, Position, Subscribed};
use crate::server::pubsub::Publish;
use crate::server::shared::Shared;

/// Hash slots in a Redis Cluster.
const SLOTS: usize = 16384;

/// The engine a server runs: one Redis, or one per master of a cluster.
#[derive(Debug)]
pub(crate) struct RedisEngines {
    nodes: Vec<Arc<RedisEngine>>,
    /// The node serving each slot (cluster only).
    slots: Option<Box<[u16]>>,
}

impl RedisEngines {
    /// The engine for `config`: for a cluster, reads its slot layout now.
    ///
    /// # Errors
    ///
    /// For a cluster: no node could be reached or asked for its layout, or some slot
    /// has no master (`io::ErrorKind::NotConnected` / `InvalidData`).
    pub fn new(
        config: RedisChannels,
        rules: ChannelRules,
        max_message_size: usize,
    ) -> io::Result<Self> {
        if !config.cluster {
            return Ok(Self {
                nodes: vec![Arc::new(RedisEngine::new(config, rules, max_message_size))],
                slots: None,
            });
        }
        let mut con = config.connect().map_err(|e| {
            io::Error::new(
                io::ErrorKind::NotConnected,
                format!("Redis Cluster at {}: {e}", config.info.addr()),
            )
        })?;
        let layout: Value = ::redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut con)
            .map_err(|e| io::Error::other(format!("CLUSTER SLOTS: {e}")))?;
        let bad =
            |why: &str| io::Error::new(io::ErrorKind::InvalidData, format!("CLUSTER SLOTS: {why}"));
        let Value::Array(ranges) = layout else {
            return Err(bad("not an array"));
        };
        let mut addrs: Vec<(String, u16)> = Vec::new();
        let mut slots = vec![u16::MAX; SLOTS].into_boxed_slice();
        for range in &ranges {
            let Value::Array(parts) = range else {
                return Err(bad("a range is not an array"));
            };
            let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(master))) =
                (parts.first(), parts.get(1), parts.get(2))
            else {
                return Err(bad("a range without its master"));
            };
            let host = match master.first() {
                Some(Value::BulkString(host)) => String::from_utf8_lossy(host).into_owned(),
                _ => return Err(bad("a master without a host")),
            };
            let Some(Value::Int(port)) = master.get(1) else {
                return Err(bad("a master without a port"));
            };
            let addr = (host, u16::try_from(*port).map_err(|_| bad("a bad port"))?);
            let node = match addrs.iter().position(|a| *a == addr) {
                Some(i) => i,
                None => {
                    addrs.push(addr);
                    addrs.len() - 1
                }
            };
            let (first, last) = (usize::try_from(*first), usize::try_from(*last));
            let (Ok(first), Ok(last)) = (first, last) else {
                return Err(bad("a bad slot range"));
            };
            for slot in slots.iter_mut().take(last.min(SLOTS - 1) + 1).skip(first) {
                *slot = node as u16;
            }
        }
        if slots.contains(&u16::MAX) {
            return Err(bad("some slots have no master"));
        }
        let nodes = addrs
            .into_iter()
            .map(|(host, port)| {
                let mut node = config.clone();
                node.info = node.info.set_addr(ConnectionAddr::Tcp(host, port));
                Arc::new(RedisEngine::new(node, rules.clone(), max_message_size))
            })
            .collect();
        Ok(Self {
            nodes,
            slots: Some(slots),
        })
    }

    /// The engine serving `channel`.
    fn node(&self, channel: &str) -> &RedisEngine {
        match &self.slots {
            None => &self.nodes[0],
            Some(slots) => {
                let key = self.nodes[0].config.meta_key(channel);
                &self.nodes[usize::from(slots[key_slot(key.as_bytes())])]
            }
        }
    }

    /// Starts every node's threads.
    pub fn start(&self, shared: &Weak<Shared>) -> io::Result<Vec<JoinHandle<()>>> {
        let mut threads = Vec::new();
        for node in &self.nodes {
            match node.start(shared.clone()) {
                Ok(more) => threads.extend(more),
                Err(e) => {
                    self.stop();
                    for thread in threads {
                        let _ = thread.join();
                    }
                    return Err(e);
                }
            }
        }
        Ok(threads)
    }

    /// Makes every node's threads return.
    pub fn stop(&self) {
        for node in &self.nodes {
            node.stop();
        }
    }
}

/// The hash slot of `key`, as Redis Cluster computes it: CRC16 (XMODEM) of the key's
/// hash tag (what is between its first `{` and the next `}`, if not empty) or of the
/// whole key, modulo 16384.
pub(crate) fn key_slot(key: &[u8]) -> usize {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    usize::from(crc16(tagged.unwrap_or(key))) % SLOTS
}

/// CRC16-CCITT (XMODEM: polynomial 0x1021, initial 0), bit by bit.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

impl Engine for RedisEngines {
    fn publish(
        &self,
        channel: &str,
        data: &str,
        fanout: &mut dyn FnMut(Publish),
    ) -> Result<Position, ChannelError> {
        self.node(channel).publish(channel, data, fanout)
    }

    fn defers(&self) -> bool {
        true
    }

    fn publish_later(
        &self,
        channel: &str,
        data: &str,
        fanout: &mut dyn FnMut(Publish),
        done: Done,
    ) {
        self.node(channel)
            .publish_later(channel, data, fanout, done);
    }

    fn subscribe(
        &self,
        channel: &str,
        since: Option<Position>,
        max_replay_bytes: usize,
        replay: &mut dyn FnMut(&Bytes),
    ) -> Result<Subscribed, ChannelError> {
        self.node(channel)
            .subscribe(channel, since, max_replay_bytes, replay)
    }

    fn position(&self, channel: &str) -> Option<Position> {
        self.node(channel).position(channel)
    }

    fn stats(&self) -> EngineStats {
        let mut stats = EngineStats::default();
        for node in &self.nodes {
            stats.channels += node.stats().channels;
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_those_redis_gives() {
        // Values from Redis' CLUSTER KEYSLOT (and the cluster specification).
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        // An empty tag counts as none: the whole key is hashed.
        assert_eq!(
            key_slot(b"foo{}{bar}"),
            usize::from(crc16(b"foo{}{bar}")) % SLOTS
        );
        assert_eq!(key_slot(b"wavecore:ch:{room}:m"), key_slot(b"room"));
        assert_eq!(key_slot(b"wavecore:ch:{room}:s"), key_slot(b"room"));
    }
}
