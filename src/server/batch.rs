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
    /// Whether a frame of `len` bytes is batched, after `pending` more bytes this turn
    /// (frames up to [`MAX_BATCHED_FRAME`], while ranges fit in 32 bits).
    pub fn takes(&self, len: usize, pending: usize) -> bool {
        len <= MAX_BATCHED_FRAME && self.buf.len() + pending + len <= u32::MAX as usize
    }

    /// Appends `frame`, which [`TurnBatch::takes`]; returns its range in the buffer.
    pub fn append(&mut self, frame: &[u8]) -> (u32, u32) {
        debug_assert!(self.takes(frame.len(), 0));
        let start = self.buf.len() as u32;
        self.buf.extend_from_slice(frame);
        (start, self.buf.len() as u32)
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
        assert_eq!(batch.append(b"abc"), (0, 3));
        assert_eq!(batch.append(b"de"), (3, 5));
        assert_eq!(batch.bytes(), b"abcde");
        let sealed = batch.seal();
        assert_eq!(&sealed[..], b"abcde");
        assert!(batch.is_empty());
        assert_eq!(batch.append(b"f"), (0, 1), "a new turn starts at 0");
        assert_eq!(&sealed[..], b"abcde", "sealed bytes survive the next turn");
    }

    #[test]
    fn large_frames_are_not_batched() {
        let batch = TurnBatch::default();
        assert!(batch.takes(MAX_BATCHED_FRAME, 0));
        assert!(!batch.takes(MAX_BATCHED_FRAME + 1, 0));
        assert!(
            !batch.takes(16, u32::MAX as usize - 15),
            "ranges stay 32-bit"
        );
    }
}
