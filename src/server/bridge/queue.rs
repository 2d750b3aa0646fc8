//! The outbound buffer: topic messages waiting for the transport, bounded in bytes.
//!
//! Reactors add to it once per turn (one lock for the turn's publishes) and never
//! wait on it: past the bound a message is dropped and counted, so a slow or
//! unreachable broker costs local delivery nothing. The transport takes batches from
//! the front and, when a batch could not be confirmed, puts it back at the front to be
//! sent again (receivers drop the duplicates by sequence number).

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::Arc;

use bytes::Bytes;

use crate::server::bridge::envelope::{HEADER_LEN, Header};

/// One topic message on its way to the other servers.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub(crate) topic: Arc<str>,
    pub(crate) frame: Bytes,
    /// Numbered when first taken by the transport (`seq` 0 until then).
    pub(crate) header: Header,
}

impl Outgoing {
    /// The topic it was published to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Length of the envelope [`Outgoing::write_envelope`] writes, in bytes.
    pub fn envelope_len(&self) -> usize {
        HEADER_LEN + self.frame.len()
    }

    /// Writes the envelope the other servers read: the publishing node, the message's
    /// sequence number on its topic, when it was published, and the encoded WebSocket
    /// frame. Opaque bytes to a transport, carried as they are.
    ///
    /// # Errors
    ///
    /// Only `out`'s own errors.
    pub fn write_envelope(&self, out: &mut impl Write) -> io::Result<()> {
        self.header.write(&self.frame, out)
    }

    /// Bytes it counts against the buffer's bound.
    fn cost(&self) -> usize {
        self.envelope_len()
    }
}

/// Messages waiting for the transport.
#[derive(Debug)]
pub(crate) struct Queue {
    items: VecDeque<Outgoing>,
    bytes: usize,
    limit: usize,
}

impl Queue {
    /// An empty buffer holding at most `limit` bytes of envelopes.
    pub fn new(limit: usize) -> Self {
        Self {
            items: VecDeque::new(),
            bytes: 0,
            limit,
        }
    }

    /// Adds `item` at the back; returns `false` (and drops it) if it would pass the
    /// bound.
    pub fn push(&mut self, item: Outgoing) -> bool {
        if self.bytes + item.cost() > self.limit {
            return false;
        }
        self.bytes += item.cost();
        self.items.push_back(item);
        true
    }

    /// Moves messages from the front into `out`: at least one if any wait, then more
    /// while they stay within `max_bytes` together.
    pub fn take(&mut self, out: &mut Vec<Outgoing>, max_bytes: usize) {
        let mut taken = 0;
        while let Some(front) = self.items.front() {
            if !out.is_empty() && taken + front.cost() > max_bytes {
                break;
            }
            taken += front.cost();
            self.bytes -= front.cost();
            out.push(self.items.pop_front().expect("front exists"));
        }
    }

    /// Puts `items` (taken earlier, in order) back at the front, ahead of everything
    /// queued since. May go past the bound: these are older than what waits.
    pub fn requeue(&mut self, items: &mut Vec<Outgoing>) {
        for item in items.drain(..).rev() {
            self.bytes += item.cost();
            self.items.push_front(item);
        }
    }

    /// Drops everything; returns how many messages that was.
    pub fn clear(&mut self) -> usize {
        let n = self.items.len();
        self.items.clear();
        self.bytes = 0;
        n
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes of envelopes waiting.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(n: u8) -> Outgoing {
        Outgoing {
            topic: "t".into(),
            frame: Bytes::from(vec![n; 8]),
            header: Header {
                node: 1,
                epoch: 0,
                seq: 0,
                sent_at: 0,
            },
        }
    }

    #[test]
    fn bounded_in_bytes_in_order_and_requeued_in_front() {
        let cost = item(0).cost();
        let mut queue = Queue::new(cost * 3);
        assert!(queue.push(item(1)) && queue.push(item(2)) && queue.push(item(3)));
        assert!(!queue.push(item(4)), "over the bound");
        assert_eq!((queue.len(), queue.bytes()), (3, cost * 3));
        let mut batch = Vec::new();
        queue.take(&mut batch, cost * 2);
        assert_eq!(batch.iter().map(|i| i.frame[0]).collect::<Vec<_>>(), [1, 2]);
        assert!(queue.push(item(5)));
        queue.requeue(&mut batch);
        assert!(batch.is_empty());
        queue.take(&mut batch, 0);
        assert_eq!(batch.len(), 1, "at least one, whatever the byte budget");
        queue.take(&mut batch, usize::MAX);
        let order: Vec<u8> = batch.iter().map(|i| i.frame[0]).collect();
        assert_eq!(order, [1, 2, 3, 5]);
        assert!(queue.is_empty() && queue.bytes() == 0);
    }
}
