//! The turn batch: the small broadcast frames a reactor delivers in one loop turn,
//! copied once (per reactor, not per subscriber) into one contiguous buffer.
//!
//! A subscriber that gets several of them in a turn then holds one range of this buffer
//! instead of one queue entry per frame, and the whole range leaves in one plain
//! `write`. The kernel copies a contiguous slice much faster than many small `iovec`s,
//! and the queue push and the `Bytes` reference counting per frame and subscriber are
//! gone. At the end of the turn the buffer is frozen into one [`Bytes`], and whatever a
//! subscriber's socket did not take becomes a slice of it (a reference count, still no
//! copy): see [`crate::server::outbox::Outbox::settle`].

use bytes::{Bytes, BytesMut};

/// Frames larger than this are queued as their own shared `Bytes` instead: for them
/// one `iovec` each costs little, and copying them would.
pub(crate) const MAX_BATCHED_FRAME: usize = 4096;

/// A sealed batch buffer above this capacity is not kept for the next turns.
const MAX_KEPT_CAPACITY: usize = 1 << 20;

/// This turn's batched frames.
#[derive(Debug, Default)]
pub(crate) struct TurnBatch {
    buf: BytesMut,
}

impl TurnBatch {
    /// Appends `frame` if it is small enough to batch; returns its range in the buffer.
    pub fn append(&mut self, frame: &[u8]) -> Option<(u32, u32)> {
        if frame.len() > MAX_BATCHED_FRAME {
            return None;
        }
        let start = u32::try_from(self.buf.len()).ok()?;
        let end = start.checked_add(frame.len() as u32)?;
        self.buf.extend_from_slice(frame);
        Some((start, end))
    }

    /// The frames batched so far this turn.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Whether nothing was batched this turn.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Ends the turn: the batched frames as one shared buffer, for the ranges
    /// subscribers still hold. The batch starts empty again, reusing its memory once
    /// every slice of earlier turns is gone.
    pub fn seal(&mut self) -> Bytes {
        let sealed = self.buf.split().freeze();
        if self.buf.capacity() > MAX_KEPT_CAPACITY {
            self.buf = BytesMut::new();
        }
        sealed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_laid_end_to_end() {
        let mut batch = TurnBatch::default();
        assert_eq!(batch.append(b"abc"), Some((0, 3)));
        assert_eq!(batch.append(b"de"), Some((3, 5)));
        assert_eq!(batch.bytes(), b"abcde");
        let sealed = batch.seal();
        assert_eq!(&sealed[..], b"abcde");
        assert!(batch.is_empty());
        assert_eq!(batch.append(b"f"), Some((0, 1)), "a new turn starts at 0");
        assert_eq!(&sealed[..], b"abcde", "sealed bytes survive the next turn");
    }

    #[test]
    fn large_frames_are_not_batched() {
        let mut batch = TurnBatch::default();
        assert_eq!(batch.append(&vec![0; MAX_BATCHED_FRAME + 1]), None);
        assert!(batch.is_empty());
    }
}
