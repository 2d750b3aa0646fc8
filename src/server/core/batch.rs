//! The turn batch: the small broadcast frames a reactor delivers in one loop turn,
//! copied once (per reactor, not per subscriber) into one contiguous buffer.
//!
//! A subscriber that gets several of them in a turn then holds one [`BatchRange`] of
//! this buffer instead of one queue entry per frame, and the whole range leaves in one
//! plain `write`. The kernel copies a contiguous slice much faster than many small
//! `iovec`s, and the queue push and the `Bytes` reference counting per frame and
//! subscriber are gone.
//!
//! # The invariant
//!
//! **A range never outlives the turn whose batch it points into.** The buffer is
//! reused from turn to turn, so a range kept past its turn would read another turn's
//! bytes (or past their end). Three rules keep it:
//!
//! 1. A range is made only by [`TurnBatch::append`], and a connection given one is
//!    recorded as a *holder* ([`TurnBatch::hold`]) in the same step, whatever path
//!    delivers it.
//! 2. [`TurnBatch::seal`] ends the turn: it freezes the buffer into one [`Bytes`] and
//!    hands it to every holder, which turns whatever ranges it still has into slices of
//!    it (a reference count, no copy; see [`crate::server::core::outbox::Outbox::settle`]).
//!    So whatever path flushed a connection (end of turn, timer, `on_drain`, shutdown,
//!    close) and however much its socket took, nothing points into the buffer after.
//! 3. An empty range is always `0..0`: a range used up by writes is reset, never left
//!    as an offset into a buffer that the next turn may have made shorter.
//!
//! Debug builds check it: each range carries its turn number, [`TurnBatch::resolve`]
//! asserts it is this turn's, and the reactor asserts after each seal that no
//! connection holds a range.

use bytes::{Bytes, BytesMut};

/// Frames larger than this are queued as their own shared `Bytes` instead: for them
/// one `iovec` each costs little, and copying them would.
pub(crate) const MAX_BATCHED_FRAME: usize = 4096;

/// A sealed batch buffer above this capacity is not kept for the next turns.
const MAX_KEPT_CAPACITY: usize = 1 << 20;

/// Bytes `start..end` of one turn's batch. The empty range is always `0..0`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchRange {
    start: u32,
    end: u32,
    /// The turn whose batch this is (checked in debug builds only).
    #[cfg(debug_assertions)]
    turn: u32,
}

impl BatchRange {
    /// Bytes in the range.
    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }

    /// Whether the range is empty.
    pub fn is_empty(self) -> bool {
        self.start == self.end
    }

    /// The range `self` followed by `next`, if `next` starts where `self` ends.
    pub fn joined(self, next: BatchRange) -> Option<BatchRange> {
        (!self.is_empty() && self.end == next.start).then_some(BatchRange {
            end: next.end,
            ..self
        })
    }

    /// Drops the first `n` bytes (at most [`BatchRange::len`]); a range used up becomes
    /// `0..0`.
    pub fn advance(&mut self, n: usize) {
        debug_assert!(n <= self.len());
        self.start += n as u32;
        if self.is_empty() {
            *self = BatchRange::default();
        }
    }

    /// The same bytes in `sealed`, the batch of this range's turn, frozen.
    pub fn slice_of(self, sealed: &Bytes) -> Bytes {
        sealed.slice(self.start as usize..self.end as usize)
    }
}

/// This turn's batched frames, and the connections holding ranges of them.
#[derive(Debug)]
pub(crate) struct TurnBatch {
    buf: BytesMut,
    /// Connections given ranges this turn (slab keys; a key may repeat).
    holders: Vec<usize>,
    /// This turn's number: it changes at every seal (ranges are stamped with it in
    /// debug builds).
    turn: u32,
}

impl Default for TurnBatch {
    fn default() -> Self {
        Self {
            buf: BytesMut::new(),
            holders: Vec::new(),
            turn: 1,
        }
    }
}

impl TurnBatch {
    /// Whether a frame of `len` bytes is batched, after `pending` more bytes this turn
    /// (frames up to [`MAX_BATCHED_FRAME`], while ranges fit in 32 bits).
    pub fn takes(&self, len: usize, pending: usize) -> bool {
        len <= MAX_BATCHED_FRAME && self.buf.len() + pending + len <= u32::MAX as usize
    }

    /// Appends `frame`, which [`TurnBatch::takes`]; returns its range in the buffer.
    pub fn append(&mut self, frame: &[u8]) -> BatchRange {
        debug_assert!(self.takes(frame.len(), 0));
        if frame.is_empty() {
            return BatchRange::default();
        }
        let start = self.buf.len() as u32;
        self.buf.extend_from_slice(frame);
        BatchRange {
            start,
            end: self.buf.len() as u32,
            #[cfg(debug_assertions)]
            turn: self.turn,
        }
    }

    /// Records that the connection at slab key `key` holds ranges of this turn's batch,
    /// so [`TurnBatch::seal`] settles it. `holding` is the connection's own flag: it is
    /// recorded once per turn, and the seal's `settle` must clear the flag.
    pub fn hold(&mut self, key: usize, holding: &mut bool) {
        if !*holding {
            *holding = true;
            self.holders.push(key);
        }
    }

    /// The bytes of `range`, a range of this turn's batch.
    ///
    /// # Panics
    ///
    /// If `range` is not inside the buffer (and, in debug builds, if it is from another
    /// turn): a broken invariant, never bad input.
    pub fn resolve(&self, range: BatchRange) -> &[u8] {
        if range.is_empty() {
            return &[];
        }
        #[cfg(debug_assertions)]
        assert_eq!(
            range.turn, self.turn,
            "a range of the turn batch outlived its turn"
        );
        &self.buf[range.start as usize..range.end as usize]
    }

    /// Gives back the buffer's memory if nothing is batched (a reactor gone idle).
    pub fn release(&mut self) {
        if self.buf.is_empty() && self.holders.is_empty() {
            self.buf = BytesMut::new();
            self.holders = Vec::new();
        }
    }

    /// Ends the turn: freezes the batched frames into one shared buffer and calls
    /// `settle(key, &sealed)` for every holder (a key may come more than once), which
    /// must replace its ranges with slices of `sealed` and clear its holding flag. The
    /// batch starts empty again, reusing its memory once every slice of earlier turns
    /// is gone.
    pub fn seal(&mut self, mut settle: impl FnMut(usize, &Bytes)) {
        if self.holders.is_empty() {
            self.buf.clear();
        } else {
            let sealed = self.buf.split().freeze();
            for key in self.holders.drain(..) {
                settle(key, &sealed);
            }
        }
        if self.buf.capacity() > MAX_KEPT_CAPACITY {
            self.buf = BytesMut::new();
        }
        self.turn = self.turn.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_laid_end_to_end_and_survive_the_seal() {
        let mut batch = TurnBatch::default();
        let abc = batch.append(b"abc");
        let de = batch.append(b"de");
        assert_eq!(batch.resolve(abc), b"abc");
        assert_eq!(batch.resolve(de), b"de");
        let both = abc.joined(de).expect("contiguous ranges join");
        assert_eq!(batch.resolve(both), b"abcde");
        let mut holding = false;
        batch.hold(7, &mut holding);
        batch.hold(7, &mut holding);
        let mut settled = Vec::new();
        batch.seal(|key, sealed| settled.push((key, both.slice_of(sealed))));
        assert_eq!(settled.len(), 1, "a holder is recorded once per turn");
        assert_eq!(settled[0].0, 7);
        assert_eq!(&settled[0].1[..], b"abcde");
        let f = batch.append(b"f");
        assert_eq!((f.start, f.end), (0, 1), "a new turn starts at 0");
        assert_eq!(
            &settled[0].1[..],
            b"abcde",
            "sealed bytes survive the next turn"
        );
    }

    #[test]
    fn a_used_up_range_is_the_empty_range() {
        let mut batch = TurnBatch::default();
        batch.append(&[0; 600]);
        let mut range = batch.append(b"xyz");
        range.advance(2);
        assert_eq!(batch.resolve(range), b"z");
        range.advance(1);
        assert_eq!(range, BatchRange::default(), "not an offset 603..603");
        let mut holding = false;
        batch.hold(0, &mut holding);
        batch.seal(|_, _| {});
        // The next turn's batch is shorter than the old offset: still nothing to read.
        assert!(batch.resolve(range).is_empty());
    }

    #[test]
    fn ranges_join_only_end_to_start() {
        let mut batch = TurnBatch::default();
        let a = batch.append(b"a");
        let _gap = batch.append(b"-");
        let c = batch.append(b"c");
        assert_eq!(a.joined(c), None);
        assert_eq!(
            BatchRange::default().joined(a),
            None,
            "nothing joins onto empty"
        );
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "outlived its turn")]
    fn a_range_from_an_earlier_turn_is_caught_in_debug_builds() {
        let mut batch = TurnBatch::default();
        let old = batch.append(b"old bytes");
        batch.seal(|_, _| {});
        batch.append(b"new bytes, longer than the old ones");
        batch.resolve(old);
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
