//! A connection's queue of bytes its socket has not taken yet: a pure buffer that
//! hands out the slices to write and advances by what was written. The system calls
//! are the driver's ([`Outbox::flush_with`] takes them as a closure).
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
use std::io::{self, IoSlice};

use bytes::{Buf, Bytes};

use crate::server::core::batch::{BatchRange, TurnBatch};

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
    /// A range of this turn's batch; settled into `Shared` when the turn ends.
    Batched(BatchRange),
}

impl Chunk {
    /// Bytes in the chunk.
    pub fn len(&self) -> usize {
        match self {
            Chunk::Shared(bytes) => bytes.len(),
            Chunk::Batched(range) => range.len(),
        }
    }

    /// The chunk's bytes, `batch` being this turn's batch.
    fn resolve<'a>(&'a self, batch: &'a TurnBatch) -> &'a [u8] {
        match self {
            Chunk::Shared(bytes) => bytes,
            Chunk::Batched(range) => batch.resolve(*range),
        }
    }

    fn advance(&mut self, n: usize) {
        match self {
            Chunk::Shared(bytes) => bytes.advance(n),
            Chunk::Batched(range) => range.advance(n),
        }
    }
}

/// What one broadcast delivery pass gives a subscriber.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Delivery<'a> {
    /// One frame in its own shared buffer.
    Shared(&'a Bytes),
    /// Consecutive frames of the turn batch, end to end: `span` covers them all,
    /// `frames` is each frame's range, in order.
    Batched {
        span: BatchRange,
        frames: &'a [BatchRange],
    },
}

impl<'a> Delivery<'a> {
    /// Consecutive `frames` of the turn batch (each starting where the one before it
    /// ends, as [`TurnBatch::append`] lays them).
    pub fn batched(frames: &'a [BatchRange]) -> Self {
        let span = frames.iter().fold(BatchRange::default(), |span, &frame| {
            if span.is_empty() {
                frame
            } else {
                span.joined(frame).expect("frames of a run are contiguous")
            }
        });
        Delivery::Batched { span, frames }
    }

    /// The bytes delivered.
    pub fn len(&self) -> usize {
        match self {
            Delivery::Shared(bytes) => bytes.len(),
            Delivery::Batched { span, .. } => span.len(),
        }
    }
}

/// Bytes waiting for a connection's socket.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    queue: Queue,
    /// The newest bytes, after everything in `queue`: a range of this turn's batch
    /// (`0..0` when there is none). Kept here rather than in `queue` so the usual
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
    /// the last one extends it. The caller records the connection as a holder of the
    /// turn batch ([`TurnBatch::hold`]) when it queues a range.
    pub fn push_chunk(&mut self, chunk: Chunk) {
        let range = match chunk {
            Chunk::Shared(bytes) => return self.push(bytes),
            Chunk::Batched(range) => range,
        };
        if range.is_empty() {
            return;
        }
        self.len += range.len();
        if let Some(joined) = self.tail.joined(range) {
            self.tail = joined;
            return;
        }
        self.retire_tail();
        self.tail = range;
    }

    /// Moves the tail range into the queue, before something is queued behind it.
    fn retire_tail(&mut self) {
        if !self.tail.is_empty() {
            self.queue
                .push_back(Chunk::Batched(std::mem::take(&mut self.tail)));
        }
    }

    /// Whether anything waits in the queue proper (behind which the tail range sits).
    #[cfg(test)]
    pub fn queue_in_use(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Gives back the queue's memory if it is empty (for connections gone quiet).
    pub fn release(&mut self) {
        if self.queue.is_empty() {
            self.queue = Queue::default();
        }
    }

    /// Ends the turn for this queue: every range of the turn batch still waiting
    /// becomes a slice of `sealed`, the batch frozen (no copy). Called by
    /// [`TurnBatch::seal`] for every connection given a range this turn.
    pub fn settle(&mut self, sealed: &Bytes) {
        for chunk in self.queue.iter_mut() {
            if let Chunk::Batched(range) = *chunk {
                *chunk = Chunk::Shared(range.slice_of(sealed));
            }
        }
        if !self.tail.is_empty() {
            let range = std::mem::take(&mut self.tail);
            self.queue.push_back(Chunk::Shared(range.slice_of(sealed)));
        }
    }

    /// For a completion driver: appends to `out` the first `max` chunks waiting, as
    /// frozen shared buffers (reference counts, no copy) that stay alive and unmoved
    /// whatever happens to this outbox, and returns their length. Stops at a range of
    /// the live turn batch (there is none once the turn is sealed). The bytes stay
    /// queued until [`Outbox::consume`] is told they were written.
    #[cfg_attr(
        not(test),
        allow(dead_code, reason = "the io_uring driver's (branch uring)")
    )]
    pub fn frozen(&self, out: &mut Vec<Bytes>, max: usize) -> usize {
        let mut len = 0;
        for chunk in self.queue.iter().take(max) {
            let Chunk::Shared(bytes) = chunk else {
                break;
            };
            len += bytes.len();
            out.push(bytes.clone());
        }
        len
    }

    /// Whether any range of the turn batch is queued (the invariant of `batch.rs`
    /// says: never after the turn's seal).
    pub fn holds_batch(&self) -> bool {
        !self.tail.is_empty()
            || self
                .queue
                .iter()
                .any(|chunk| matches!(chunk, Chunk::Batched(_)))
    }

    /// Writes the queue, then `cork`, to `socket` (see [`Outbox::flush_with`]): the
    /// tests' and fuzz harnesses' in-memory sockets.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn flush<W: std::io::Write>(
        &mut self,
        socket: &mut W,
        cork: &mut Vec<u8>,
        batch: &TurnBatch,
    ) -> io::Result<Flushed> {
        self.flush_with(cork, batch, |slices| {
            if slices.len() == 1 {
                socket.write(&slices[0])
            } else {
                socket.write_vectored(slices)
            }
        })
    }

    /// Hands the queue, then `cork`, to `write` (the driver's system call: it returns
    /// the bytes it took of the slices, in order) in as few calls as it takes them
    /// (`batch` is this turn's batch, which queued ranges refer to). What `write` does
    /// not take of `cork` is copied into the queue; `cork` is left empty either way. An
    /// emptied queue gives back all but a small allocation.
    ///
    /// # Errors
    ///
    /// What `write` returned, other than `WouldBlock` (which is [`Flushed::Blocked`])
    /// and `Interrupted` (retried); `WriteZero` if it took nothing without saying why.
    pub fn flush_with(
        &mut self,
        cork: &mut Vec<u8>,
        batch: &TurnBatch,
        mut write: impl FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
    ) -> io::Result<Flushed> {
        let mut cork_written = 0;
        let result = if self.is_empty() {
            Self::write_one(&mut write, cork, &mut cork_written)
        } else if self.queue.is_empty() && cork.is_empty() {
            // A subscriber's broadcast frames of this turn, the usual case: one slice.
            let tail = batch.resolve(self.tail);
            let mut written = 0;
            let result = Self::write_one(&mut write, tail, &mut written);
            self.consume(written);
            result
        } else {
            self.write_all(&mut write, cork, batch, &mut cork_written)
        };
        if cork_written < cork.len() {
            self.push(Bytes::copy_from_slice(&cork[cork_written..]));
        }
        cork.clear();
        self.queue.shrink_if_empty(KEEP_SLOTS);
        result
    }

    /// Writes of one slice, `written` bytes of which are already out.
    fn write_one(
        write: &mut impl FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
        bytes: &[u8],
        written: &mut usize,
    ) -> io::Result<Flushed> {
        while *written < bytes.len() {
            match write(&[IoSlice::new(&bytes[*written..])]) {
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

    /// The general case: vectored writes of the queue, the tail, then the cork, in
    /// order.
    fn write_all(
        &mut self,
        write: &mut impl FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
        cork: &[u8],
        batch: &TurnBatch,
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
            let mut rest = [batch.resolve(self.tail), &cork[*cork_written..]].into_iter();
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
            let written = match write(&slices[..count]) {
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
    /// how many came from them (less than `n` when the rest came from a cork written
    /// behind them).
    pub fn consume(&mut self, mut n: usize) -> usize {
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
        let step = n.min(self.tail.len());
        self.tail.advance(step);
        taken += step;
        self.len -= taken;
        if self.queue.is_empty() {
            // A completion driver queues every reply here: an emptied queue is given
            // back rather than kept by every connection that ever sent (two small
            // allocations for the next reply, against about 200 bytes per idle
            // connection).
            self.queue.0 = None;
        }
        taken
    }
}

#[cfg(test)]
mod tests;
