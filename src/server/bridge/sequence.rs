//! Sequence numbers per (publishing node, topic): the sender numbers its messages to
//! each topic 1, 2, 3...; a receiver remembers the last number it saw from each node on
//! each topic it listens to, and so can tell a message resent after a reconnect (a
//! duplicate, dropped) from one that never arrived (a gap, counted as lost).
//!
//! A sender forgets its numbering when it has numbered more than [`MAX_TOPICS`] topics
//! (topics may be created per user or per document) and starts a new *epoch*; a
//! receiver that sees a new epoch (or a node for the first time) starts counting from
//! the number it sees.

use std::collections::HashMap;
use std::sync::Arc;

/// Topics a sender numbers before it starts a new epoch.
pub(crate) const MAX_TOPICS: usize = 65_536;

/// This node's numbering of its messages, per topic.
#[derive(Debug, Default)]
pub(crate) struct Numbering {
    epoch: u32,
    last: HashMap<Arc<str>, u64>,
}

impl Numbering {
    /// The epoch and sequence number of the next message to `topic`.
    pub fn next(&mut self, topic: &Arc<str>) -> (u32, u64) {
        if let Some(seq) = self.last.get_mut(topic) {
            *seq += 1;
            return (self.epoch, *seq);
        }
        if self.last.len() >= MAX_TOPICS {
            self.last.clear();
            self.epoch = self.epoch.wrapping_add(1);
        }
        self.last.insert(topic.clone(), 1);
        (self.epoch, 1)
    }
}

/// What a received message is, given what came before it from the same node on the
/// same topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// The next one (or the first seen): deliver it.
    InOrder,
    /// Deliver it; this many messages before it never arrived.
    After(u64),
    /// Already seen (a resend after a reconnect): do not deliver it again.
    Duplicate,
}

/// What this node has received from the other nodes, per topic it listens to.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    topics: HashMap<Arc<str>, HashMap<u64, (u32, u64)>>,
}

impl Tracker {
    /// Records message `seq` of `epoch` from `node` on `topic`; returns what it is,
    /// and the topic's name as an `Arc` (allocated once per topic, not per message).
    pub fn observe(&mut self, topic: &str, node: u64, epoch: u32, seq: u64) -> (Seen, Arc<str>) {
        let name = match self.topics.get_key_value(topic) {
            Some((name, _)) => name.clone(),
            None => {
                let name: Arc<str> = topic.into();
                self.topics.insert(name.clone(), HashMap::new());
                name
            }
        };
        let nodes = self.topics.get_mut(topic).expect("inserted above");
        (Self::next(nodes, node, epoch, seq), name)
    }

    fn next(nodes: &mut HashMap<u64, (u32, u64)>, node: u64, epoch: u32, seq: u64) -> Seen {
        let Some(last) = nodes.get_mut(&node) else {
            nodes.insert(node, (epoch, seq));
            return Seen::InOrder;
        };
        if last.0 != epoch {
            *last = (epoch, seq);
            return Seen::InOrder;
        }
        if seq <= last.1 {
            return Seen::Duplicate;
        }
        let missed = seq - last.1 - 1;
        last.1 = seq;
        if missed == 0 {
            Seen::InOrder
        } else {
            Seen::After(missed)
        }
    }

    /// Forgets `topic`: this node stopped listening to it, so what it misses from now
    /// on is not lost.
    pub fn forget(&mut self, topic: &str) {
        self.topics.remove(topic);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_each_topic_from_one() {
        let mut numbering = Numbering::default();
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        assert_eq!(numbering.next(&a), (0, 1));
        assert_eq!(numbering.next(&a), (0, 2));
        assert_eq!(numbering.next(&b), (0, 1));
        assert_eq!(numbering.next(&a), (0, 3));
    }

    #[test]
    fn a_new_epoch_after_too_many_topics() {
        let mut numbering = Numbering::default();
        for i in 0..MAX_TOPICS {
            numbering.next(&Arc::from(i.to_string()));
        }
        let first: Arc<str> = "0".into();
        assert_eq!(numbering.next(&first), (0, 2));
        assert_eq!(numbering.next(&Arc::from("new")), (1, 1));
        assert_eq!(numbering.next(&first), (1, 1));
    }

    #[test]
    fn tells_duplicates_from_gaps() {
        let mut tracker = Tracker::default();
        let mut observe = |node, epoch, seq| tracker.observe("t", node, epoch, seq).0;
        assert_eq!(observe(1, 0, 5), Seen::InOrder, "joins mid-stream");
        assert_eq!(observe(1, 0, 6), Seen::InOrder);
        assert_eq!(observe(1, 0, 6), Seen::Duplicate);
        assert_eq!(observe(1, 0, 3), Seen::Duplicate);
        assert_eq!(observe(1, 0, 9), Seen::After(2));
        assert_eq!(observe(2, 0, 1), Seen::InOrder, "nodes apart");
        assert_eq!(observe(1, 1, 1), Seen::InOrder, "new epoch");
        tracker.forget("t");
        assert_eq!(
            tracker.observe("t", 1, 1, 7).0,
            Seen::InOrder,
            "listening anew"
        );
    }
}
