//! A channel's bounded history: the last messages, by count and by age, each with its
//! offset and the encoded frame every subscriber shares. Pure: the caller passes the
//! time, so model tests drive it with a manual clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// How much history a channel keeps (see [`crate::ServerBuilder::channel_history`]).
/// A message leaves the history when either bound is passed; with both unset
/// (`History::default()`), the channel keeps none and costs no history memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct History {
    /// The most messages kept (0: none).
    pub max_messages: usize,
    /// How long a message is kept after it was published (`None`: no age bound).
    pub max_age: Option<Duration>,
}

impl History {
    /// Keeps the last `max_messages` messages, whatever their age.
    pub fn last(max_messages: usize) -> Self {
        Self {
            max_messages,
            max_age: None,
        }
    }

    /// Also drops messages older than `max_age`.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }
}

/// One message kept: its offset, when it was published, its frame.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub offset: u64,
    pub at: Instant,
    pub frame: Bytes,
}

/// The ring of a channel's last messages, oldest first, offsets consecutive.
#[derive(Debug, Default)]
pub(crate) struct Ring {
    bounds: History,
    entries: VecDeque<Entry>,
}

impl Ring {
    /// An empty ring kept within `bounds`.
    pub fn new(bounds: History) -> Self {
        Self {
            bounds,
            entries: VecDeque::new(),
        }
    }

    /// Whether the ring keeps anything at all.
    pub fn keeps(&self) -> bool {
        self.bounds.max_messages > 0
    }

    /// Appends the message at `offset` (the one after the last appended), published at
    /// `now`, and drops what the bounds no longer allow.
    pub fn push(&mut self, offset: u64, now: Instant, frame: Bytes) {
        if !self.keeps() {
            return;
        }
        debug_assert!(self.entries.back().is_none_or(|e| e.offset + 1 == offset));
        if self.entries.len() == self.bounds.max_messages {
            self.entries.pop_front();
        }
        self.entries.push_back(Entry {
            offset,
            at: now,
            frame,
        });
        self.trim(now);
    }

    /// Drops messages older than the age bound at `now`.
    pub fn trim(&mut self, now: Instant) {
        let Some(max_age) = self.bounds.max_age else {
            return;
        };
        while self
            .entries
            .front()
            .is_some_and(|e| now.saturating_duration_since(e.at) > max_age)
        {
            self.entries.pop_front();
        }
        if self.entries.is_empty() && self.entries.capacity() > 0 {
            self.entries = VecDeque::new();
        }
    }

    /// The offset of the oldest message kept, if any.
    pub fn first(&self) -> Option<u64> {
        self.entries.front().map(|e| e.offset)
    }

    /// The messages after `offset`, oldest first (all kept ones if it is older).
    pub fn after(&self, offset: u64) -> impl Iterator<Item = &Entry> {
        let skip = match self.first() {
            Some(first) if offset >= first => (offset - first + 1) as usize,
            _ => 0,
        };
        self.entries.iter().skip(skip)
    }

    /// Messages kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes the kept frames take (not counting the ring's own slots).
    pub fn frame_bytes(&self) -> usize {
        self.entries.iter().map(|e| e.frame.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u64) -> Bytes {
        Bytes::from(n.to_string())
    }

    #[test]
    fn keeps_the_last_n_and_replays_after_an_offset() {
        let now = Instant::now();
        let mut ring = Ring::new(History::last(3));
        for offset in 1..=5 {
            ring.push(offset, now, frame(offset));
        }
        assert_eq!(ring.first(), Some(3));
        let after: Vec<u64> = ring.after(3).map(|e| e.offset).collect();
        assert_eq!(after, [4, 5]);
        let all: Vec<u64> = ring.after(0).map(|e| e.offset).collect();
        assert_eq!(all, [3, 4, 5]);
        assert_eq!(ring.after(5).count(), 0);
        assert_eq!(ring.after(9).count(), 0);
    }

    #[test]
    fn ages_out_and_keeps_nothing_without_bounds() {
        let start = Instant::now();
        let mut ring = Ring::new(History::last(10).max_age(Duration::from_secs(5)));
        ring.push(1, start, frame(1));
        ring.push(2, start + Duration::from_secs(3), frame(2));
        ring.trim(start + Duration::from_secs(6));
        assert_eq!(ring.first(), Some(2));
        ring.trim(start + Duration::from_secs(9));
        assert_eq!(ring.len(), 0);
        let mut none = Ring::new(History::default());
        none.push(1, start, frame(1));
        assert_eq!(none.len(), 0);
        assert!(!none.keeps());
    }
}
