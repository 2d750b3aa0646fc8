//! A connection's queue of bytes its socket has not taken yet, written with as few
//! syscalls as possible.
//!
//! Sends made while a connection is being served go first into the reactor's *cork*
//! buffer (shared by all connections, reused, so no allocation per message) and are
//! written once, together, when the reactor is done with the connection. Only what
//! the socket refuses is moved into the connection's own [`Outbox`], as [`Bytes`]; an
//! empty outbox owns no memory. Broadcast frames are queued as clones of one shared
//! `Bytes` (a reference count, not a copy) or, when small, as a range of the reactor's
//! turn batch (see `batch.rs`), which is resolved against the batch when written and
//! turned into a `Bytes` slice of it by [`Outbox::settle`] before the turn ends.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

use bytes::{Buf, Bytes};

/// Most slices handed to one `writev`.
const MAX_IOVECS: usize = 32;

/// An emptied queue keeps its allocation up to this many slots, so a connection whose
/// socket is often full (a busy subscriber on a slow link) does not allocate and free
/// it every turn; [`Outbox::release`] gives it back once the connection goes quiet.
const KEEP_SLOTS: usize = 8;

/// One piece of queued output.
#[derive(Debug, Clone)]
pub(crate) enum Chunk {
    /// Bytes of their own (possibly shared with other connections).
    Shared(Bytes),
    /// The bytes `start..end` of this turn's batch; valid until the turn ends.
    Batched { start: u32, end: u32 },
}

impl Chunk {
    /// Bytes in the chunk.
    pub fn len(&self) -> usize {
        match self {
            Chunk::Shared(bytes) => bytes.len(),
            Chunk::Batched { start, end } => (end - start) as usize,
        }
    }

    /// The chunk's bytes, `batch` being this turn's batch.
    fn resolve<'a>(&'a self, batch: &'a [u8]) -> &'a [u8] {
        match self {
            Chunk::Shared(bytes) => bytes,
            Chunk::Batched { start, end } => &batch[*start as usize..*end as usize],
        }
    }

    fn advance(&mut self, n: usize) {
        match self {
            Chunk::Shared(bytes) => bytes.advance(n),
            Chunk::Batched { start, .. } => *start += n as u32,
        }
    }
}

/// What one broadcast delivery pass gives a subscriber.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Delivery<'a> {
    /// One frame in its own shared buffer.
    Shared(&'a Bytes),
    /// Consecutive frames of the turn batch, end to end: each frame's range, in order.
    Batched(&'a [(u32, u32)]),
}

impl Delivery<'_> {
    /// The bytes delivered.
    pub fn len(&self) -> usize {
        match self {
            Delivery::Shared(bytes) => bytes.len(),
            Delivery::Batched(frames) => match (frames.first(), frames.last()) {
                (Some(first), Some(last)) => (last.1 - first.0) as usize,
                _ => 0,
            },
        }
    }
}

/// Bytes waiting for a connection's socket.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    queue: Queue,
    /// The newest bytes, after everything in `queue`: a range of this turn's batch
    /// (empty when `start == end`). Kept here rather than in `queue` so the usual
    /// broadcast delivery touches no memory but the connection's own.
    tail: BatchRange,
    len: usize,
}

/// The chunks before the tail, boxed: most connections never queue anything (a
/// subscriber's broadcasts of a turn are the tail), so it costs them one pointer.
#[derive(Debug, Default)]
#[allow(clippy::box_collection)] // Deliberate: 8 bytes per connection instead of 32.
struct Queue(Option<Box<VecDeque<Chunk>>>);

impl Queue {
    fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|q| q.is_empty())
    }

    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.len())
    }

    fn push_back(&mut self, chunk: Chunk) {
        self.0.get_or_insert_default().push_back(chunk);
    }

    fn iter(&self) -> impl Iterator<Item = &Chunk> {
        self.0.iter().flat_map(|q| q.iter())
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut Chunk> {
        self.0.iter_mut().flat_map(|q| q.iter_mut())
    }

    fn front_mut(&mut self) -> Option<&mut Chunk> {
        self.0.as_mut()?.front_mut()
    }

    fn pop_front(&mut self) {
        if let Some(q) = self.0.as_mut() {
            q.pop_front();
        }
    }

    /// Frees the allocation if the queue is empty and holds more than `keep` slots.
    fn shrink_if_empty(&mut self, keep: usize) {
        if self
            .0
            .as_ref()
            .is_some_and(|q| q.is_empty() && q.capacity() > keep)
        {
            self.0 = None;
        }
    }
}

/// A range of the turn batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct BatchRange {
    start: u32,
    end: u32,
}

impl BatchRange {
    fn is_empty(self) -> bool {
        self.start == self.end
    }

    fn resolve(self, batch: &[u8]) -> &[u8] {
        &batch[self.start as usize..self.end as usize]
    }
}

/// How a flush ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flushed {
    /// Everything was written.
    All,
    /// The socket is full; the rest waits in the outbox for the next writable event.
    Blocked,
}

impl Outbox {
    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues `bytes` behind everything already waiting.
    pub fn push(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.len += bytes.len();
        self.retire_tail();
        self.queue.push_back(Chunk::Shared(bytes));
    }

    /// Queues `chunk` behind everything already waiting; a batch range that continues
    /// the last one extends it.
    pub fn push_chunk(&mut self, chunk: Chunk) {
        let (start, end) = match chunk {
            Chunk::Shared(bytes) => return self.push(bytes),
            Chunk::Batched { start, end } => (start, end),
        };
        if start == end {
            return;
        }
        self.len += (end - start) as usize;
        if !self.tail.is_empty() && self.tail.end == start {
            self.tail.end = end;
            return;
        }
        self.retire_tail();
        self.tail = BatchRange { start, end };
    }

    /// Moves the tail range into the queue, before something is queued behind it.
    fn retire_tail(&mut self) {
        if !self.tail.is_empty() {
            let BatchRange { start, end } = std::mem::take(&mut self.tail);
            self.queue.push_back(Chunk::Batched { start, end });
        }
    }

    /// Gives back the queue's memory if it is empty (for connections gone quiet).
    pub fn release(&mut self) {
        if self.queue.is_empty() {
            self.queue = Queue::default();
        }
    }

    /// Ends the turn for this queue: every range of the turn batch still waiting
    /// becomes a slice of `sealed`, the batch frozen (no copy).
    pub fn settle(&mut self, sealed: &Bytes) {
        for chunk in self.queue.iter_mut() {
            if let Chunk::Batched { start, end } = *chunk {
                *chunk = Chunk::Shared(sealed.slice(start as usize..end as usize));
            }
        }
        if !self.tail.is_empty() {
            let BatchRange { start, end } = std::mem::take(&mut self.tail);
            self.queue
                .push_back(Chunk::Shared(sealed.slice(start as usize..end as usize)));
        }
    }

    /// Writes the queue, then `cork`, with as few syscalls as the socket allows (`batch`
    /// is this turn's batch, which queued ranges refer to). What the socket does not
    /// take of `cork` is copied into the queue; `cork` is left empty either way. An
    /// emptied queue gives back all but a small allocation.
    pub fn flush<W: Write>(
        &mut self,
        socket: &mut W,
        cork: &mut Vec<u8>,
        batch: &[u8],
    ) -> io::Result<Flushed> {
        let mut cork_written = 0;
        let result = if self.is_empty() {
            Self::write_one(socket, cork, &mut cork_written)
        } else if self.queue.is_empty() && cork.is_empty() {
            // A subscriber's broadcast frames of this turn, the usual case: one slice.
            let tail = self.tail.resolve(batch);
            let mut written = 0;
            let result = Self::write_one(socket, tail, &mut written);
            self.consume(written);
            result
        } else {
            self.write_all(socket, cork, batch, &mut cork_written)
        };
        if cork_written < cork.len() {
            self.push(Bytes::copy_from_slice(&cork[cork_written..]));
        }
        cork.clear();
        self.queue.shrink_if_empty(KEEP_SLOTS);
        result
    }

    /// Plain `write`s of one slice, `written` bytes of which are already out.
    fn write_one<W: Write>(
        socket: &mut W,
        bytes: &[u8],
        written: &mut usize,
    ) -> io::Result<Flushed> {
        while *written < bytes.len() {
            match socket.write(&bytes[*written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    *written += n;
                    if *written < bytes.len() {
                        // A short write: the socket is full for now.
                        return Ok(Flushed::Blocked);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flushed::Blocked),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Flushed::All)
    }

    /// The general case: `writev`s of the queue, the tail, then the cork, in order.
    fn write_all<W: Write>(
        &mut self,
        socket: &mut W,
        cork: &[u8],
        batch: &[u8],
        cork_written: &mut usize,
    ) -> io::Result<Flushed> {
        loop {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            let mut offered = 0;
            for chunk in self.queue.iter().take(MAX_IOVECS) {
                let bytes = chunk.resolve(batch);
                slices[count] = IoSlice::new(bytes);
                offered += bytes.len();
                count += 1;
            }
            // What follows the queue goes in only behind all of it, to keep the order.
            let mut rest = [self.tail.resolve(batch), &cork[*cork_written..]].into_iter();
            if count == self.queue.len() {
                for bytes in rest.by_ref().filter(|b| !b.is_empty()) {
                    if count == MAX_IOVECS {
                        break;
                    }
                    slices[count] = IoSlice::new(bytes);
                    offered += bytes.len();
                    count += 1;
                }
            }
            if offered == 0 {
                return Ok(Flushed::All);
            }
            let result = if count == 1 {
                socket.write(&slices[0])
            } else {
                socket.write_vectored(&slices[..count])
            };
            let written = match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flushed::Blocked),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let from_outbox = self.consume(written);
            *cork_written += written - from_outbox;
            if written < offered {
                return Ok(Flushed::Blocked);
            }
        }
    }

    /// Drops `n` written bytes from the front of the queue, then of the tail; returns
    /// how many came from them.
    fn consume(&mut self, mut n: usize) -> usize {
        let mut taken = 0;
        while n > 0 {
            let Some(front) = self.queue.front_mut() else {
                break;
            };
            let step = n.min(front.len());
            front.advance(step);
            if front.len() == 0 {
                self.queue.pop_front();
            }
            n -= step;
            taken += step;
        }
        let step = n.min((self.tail.end - self.tail.start) as usize);
        self.tail.start += step as u32;
        taken += step;
        self.len -= taken;
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket that takes at most `budget` bytes, then would block.
    struct Limited {
        taken: Vec<u8>,
        budget: usize,
        calls: usize,
    }

    impl Limited {
        /// A socket that takes `budget` bytes.
        fn new(budget: usize) -> Self {
            Self {
                taken: vec![],
                budget,
                calls: 0,
            }
        }
    }

    impl Write for Limited {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.calls += 1;
            if self.budget == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut n = 0;
            for buf in bufs {
                let take = buf.len().min(self.budget);
                self.taken.extend_from_slice(&buf[..take]);
                self.budget -= take;
                n += take;
            }
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn queue_then_cork_in_one_write() {
        let mut outbox = Outbox::default();
        outbox.push(Bytes::from_static(b"ab"));
        outbox.push(Bytes::from_static(b"cd"));
        let mut cork = b"ef".to_vec();
        let mut socket = Limited::new(100);
        assert_eq!(
            outbox.flush(&mut socket, &mut cork, &[]).unwrap(),
            Flushed::All
        );
        assert_eq!(socket.taken, b"abcdef");
        assert_eq!(socket.calls, 1);
        assert!(outbox.is_empty() && cork.is_empty());
        outbox.release();
        assert!(outbox.queue.0.is_none(), "a released outbox owns no memory");
    }

    #[test]
    fn partial_write_keeps_the_rest_in_order() {
        let mut outbox = Outbox::default();
        outbox.push(Bytes::from_static(b"abc"));
        let mut cork = b"defgh".to_vec();
        let mut socket = Limited::new(4);
        assert_eq!(
            outbox.flush(&mut socket, &mut cork, &[]).unwrap(),
            Flushed::Blocked
        );
        assert_eq!(outbox.len(), 4);
        assert!(cork.is_empty());
        socket.budget = 100;
        let mut more = b"ij".to_vec();
        assert_eq!(
            outbox.flush(&mut socket, &mut more, &[]).unwrap(),
            Flushed::All
        );
        assert_eq!(socket.taken, b"abcdefghij");
    }

    #[test]
    fn blocked_socket_moves_the_cork_into_the_queue() {
        let mut outbox = Outbox::default();
        let mut cork = b"xyz".to_vec();
        let mut socket = Limited::new(0);
        assert_eq!(
            outbox.flush(&mut socket, &mut cork, &[]).unwrap(),
            Flushed::Blocked
        );
        assert_eq!(outbox.len(), 3);
    }

    #[test]
    fn more_chunks_than_one_writev_takes() {
        let mut outbox = Outbox::default();
        for i in 0..200u8 {
            outbox.push(Bytes::from(vec![i]));
        }
        let mut socket = Limited::new(1000);
        assert_eq!(
            outbox.flush(&mut socket, &mut Vec::new(), &[]).unwrap(),
            Flushed::All
        );
        assert_eq!(socket.taken, (0..200u8).collect::<Vec<_>>());
        assert!(socket.calls >= 4);
    }

    #[test]
    fn contiguous_batch_ranges_merge_into_one_write() {
        let batch = b"0123456789";
        let mut outbox = Outbox::default();
        outbox.push_chunk(Chunk::Batched { start: 2, end: 4 });
        outbox.push_chunk(Chunk::Batched { start: 4, end: 7 });
        assert_eq!(outbox.tail, BatchRange { start: 2, end: 7 }, "one range");
        outbox.push_chunk(Chunk::Batched { start: 8, end: 9 });
        assert_eq!(outbox.queue.len(), 1, "a gap starts a new range");
        let mut socket = Limited::new(100);
        let mut cork = b"!".to_vec();
        assert_eq!(
            outbox.flush(&mut socket, &mut cork, batch).unwrap(),
            Flushed::All
        );
        assert_eq!(socket.taken, b"234568!");
        assert_eq!(socket.calls, 1);
    }

    #[test]
    fn settled_ranges_outlive_the_turn() {
        let mut outbox = Outbox::default();
        outbox.push(Bytes::from_static(b"<"));
        outbox.push_chunk(Chunk::Batched { start: 1, end: 5 });
        let mut socket = Limited::new(3);
        let batch = b"abcdefg";
        assert_eq!(
            outbox.flush(&mut socket, &mut Vec::new(), batch).unwrap(),
            Flushed::Blocked
        );
        assert_eq!(socket.taken, b"<bc");
        // The turn ends: what is left refers to the sealed batch, not to offsets.
        outbox.settle(&Bytes::from_static(batch));
        socket.budget = 100;
        assert_eq!(
            outbox
                .flush(&mut socket, &mut Vec::new(), b"another turn")
                .unwrap(),
            Flushed::All
        );
        assert_eq!(socket.taken, b"<bcde");
        assert!(outbox.is_empty());
    }

    #[test]
    fn a_long_queue_goes_out_before_the_tail_and_the_cork() {
        let mut outbox = Outbox::default();
        for i in 0..(MAX_IOVECS as u8 + 8) {
            outbox.push(Bytes::from(vec![b'a' + i % 26]));
        }
        outbox.push_chunk(Chunk::Batched { start: 0, end: 2 });
        let mut cork = b"!".to_vec();
        let mut socket = Limited::new(1000);
        assert_eq!(
            outbox.flush(&mut socket, &mut cork, b"XY").unwrap(),
            Flushed::All
        );
        let mut expected: Vec<u8> = (0..(MAX_IOVECS as u8 + 8)).map(|i| b'a' + i % 26).collect();
        expected.extend_from_slice(b"XY!");
        assert_eq!(socket.taken, expected);
    }
}
