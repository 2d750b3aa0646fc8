//! The one module of the io_uring driver with `unsafe`: the ring, its provided-buffer
//! ring, and the submission of operations that point at memory.
//!
//! # The safety argument, in one place
//!
//! The kernel reads or writes memory named by a submission until that operation's
//! completion is reaped. Who keeps each kind of such memory alive:
//!
//! - **Provided buffers** (receives): allocated by [`Ring::new`], owned by the ring
//!   (`BufRing`), and freed only after the ring is gone with nothing in flight; if
//!   the ring's teardown cannot confirm that, they are leaked (`Ring::drop`). A
//!   buffer a completion handed us is ours until [`Ring::recycle`] gives it back;
//!   only such a buffer is ever parked (its pages given back with `MADV_DONTNEED`,
//!   see `lending.rs`), never one in the ring, which the kernel may be writing. A
//!   spare buffer still in the ring is first taken home by a read of `/dev/zero`
//!   that selects it ([`Ring::bring_home`]): its completion hands it to us like a
//!   receive's.
//! - **A write's iovecs and bytes** ([`SendBuffers`]): owned by the driver's table of
//!   writes in flight (`uring.rs`, `sends`), entered before [`Ring::writev`] and
//!   removed only when the write's completion arrives; heap memory, so moving the
//!   table does not move it.
//! - **The wake-up counter** (`read_eventfd`): a `Box<u64>` the driver owns for its
//!   whole life.
//!
//! The two methods that hand the kernel caller-owned memory, [`Ring::writev`] and
//! [`Ring::read_eventfd`], are `unsafe fn`s whose contract is exactly that: keep it
//! alive and unmoved until the completion. When the backend goes (`Uring::drop`)
//! it cancels everything in flight and waits for the completions
//! ([`Ring::cancel_all_and_wait`]); if they do not all come, it leaks the writes'
//! table and the counter rather than free memory the kernel may still write. The
//! ring never leaves the reactor thread that made it (no `Send`).

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::fs::File;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use io_uring::{IoUring, cqueue, opcode, squeue, types};

mod lending;

use lending::{FIRST_LENT, Lending, Returned};

/// The buffer group id of the reactor's provided buffers.
const GROUP: u16 = 0;

/// The `user_data` of the reads that take spare buffers home ([`Ring::bring_home`]);
/// their completions are the ring's own, never handed to the driver.
const HOMING: u64 = u64::MAX;

/// Most spare buffers taken home at once (the rest at the next period).
const MOST_HOMING: u16 = 64;

/// Bytes kept free in front of each provided buffer, where the bytes a connection left
/// over from its last read (at most 131) are copied so the frame they begin is decoded
/// in place with the new bytes.
pub(crate) const HEADROOM: usize = 256;

// Provided buffers lent to the kernel at first: `lending::FIRST_LENT`; more are lent,
// doubling, when a receive finds none left ([`Ring::ran_dry`]). A buffer the kernel
// fills has its first page made resident (a small read touches no more), and the ring
// hands out its buffers in turn, so every buffer lent ends up costing a page: lending
// them as the load asks keeps a reactor that never had more than a few receives at
// once at a few pages instead of one per buffer of the ring, and parking them again
// once a burst is spent (`lending.rs`) gives those pages back.

/// How often the ring compares the buffers it lends with what the last period
/// needed (see [`Lending::end_period`]).
const SHRINK_PERIOD: Duration = Duration::from_millis(100);

/// A completion, copied out of the completion queue.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Completion {
    pub user_data: u64,
    pub result: i32,
    pub flags: u32,
}

impl Completion {
    /// Whether the multishot operation that posted this stays armed.
    pub fn more(&self) -> bool {
        cqueue::more(self.flags)
    }

    /// The provided buffer the kernel filled, if any.
    pub fn buffer(&self) -> Option<u16> {
        cqueue::buffer_select(self.flags)
    }
}

/// Vectored-write memory handed to the kernel: the iovec array and the bytes it points
/// at, owned until the completion (see the module docs). Reused: once its write
/// completed, [`SendBuffers::clear`] drops the bytes and keeps both lists' room for
/// the next write.
#[derive(Default)]
pub(crate) struct SendBuffers {
    /// Owns the memory the iovecs point at; held, never read, until the completion.
    chunks: Vec<bytes::Bytes>,
    iovecs: Vec<libc::iovec>,
}

impl SendBuffers {
    /// The buffers of a write of `chunks`.
    pub fn new(chunks: Vec<bytes::Bytes>) -> Self {
        Self {
            chunks,
            iovecs: Vec::new(),
        }
    }

    /// The list to append a write's bytes to ([`Ring::writev`] points the iovecs at
    /// them).
    pub fn chunks_mut(&mut self) -> &mut Vec<bytes::Bytes> {
        &mut self.chunks
    }

    /// Points the iovecs at the chunks (the `Bytes` own the memory; their heap buffers
    /// do not move when the `Vec` or this struct does).
    fn seal(&mut self) {
        self.iovecs.clear();
        self.iovecs
            .extend(self.chunks.iter().map(|chunk| libc::iovec {
                iov_base: chunk.as_ptr() as *mut libc::c_void,
                iov_len: chunk.len(),
            }));
    }

    /// Drops the bytes of a completed write; keeps the lists' room.
    pub fn clear(&mut self) {
        self.iovecs.clear();
        self.chunks.clear();
    }

    /// How many chunks the lists have room for.
    pub fn capacity(&self) -> usize {
        self.chunks.capacity().max(self.iovecs.capacity())
    }
}

/// The provided buffers: `count` buffers of `size` bytes, each at the start of its
/// own pages (`stride` apart), and the ring that lends them to the kernel.
struct BufRing {
    ring: *mut types::BufRingEntry,
    ring_layout: Layout,
    /// `count × stride` bytes of private anonymous memory of their own mapping (not
    /// the allocator's: its pages become resident only as the kernel fills them, and
    /// cost nothing before; a heap allocation may come zeroed by a `memset` that
    /// makes all of it resident at once).
    buffers: *mut u8,
    buffers_len: usize,
    count: u16,
    size: usize,
    /// Bytes from one buffer's start to the next's: `size` rounded up to whole pages,
    /// so that no page holds bytes of two buffers and a parked buffer's pages can be
    /// given back without touching a neighbour the kernel may be writing.
    stride: usize,
    /// Our copy of the ring's tail (the kernel reads the shared one).
    tail: u16,
    /// Which buffers are in the ring, ours, or parked (`lending.rs`).
    lending: Lending,
    /// When the current period of [`Lending::end_period`] began.
    period_start: Instant,
    /// The ring was grown since the last wait: more receives that found it dry in the
    /// same batch of completions do not grow it again.
    grown: bool,
}

/// An io_uring instance with its provided buffers.
pub(crate) struct Ring {
    /// Dropped first (see `Drop`), then `bufs`, unless operations are in flight.
    uring: ManuallyDrop<IoUring>,
    bufs: ManuallyDrop<BufRing>,
    /// Operations submitted and not completed (for the drop).
    in_flight: usize,
    /// `/dev/zero`, read to take spare buffers home (`None`: it could not be opened).
    /// Kept open until the ring is gone: a read still queued must never name a
    /// descriptor number reused meanwhile.
    zero: Option<File>,
    /// Being torn down: no more homing reads.
    tearing_down: bool,
    /// Reads taking buffers home, not completed yet.
    homing: u16,
    /// Buffers their completions handed us this reap, to park.
    homed: Vec<u16>,
}

impl Ring {
    /// A ring of `entries` submission slots with `count` provided buffers of `size`
    /// bytes each (`count` a power of two, at most 32,768; `size` more than
    /// [`HEADROOM`]). Asks for SINGLE_ISSUER and DEFER_TASKRUN, then COOP_TASKRUN,
    /// then neither, as the kernel allows.
    ///
    /// # Errors
    ///
    /// What `io_uring_setup` or the buffer ring's registration returned (`ENOSYS`,
    /// `EPERM` under seccomp or `io_uring_disabled`, `ENOMEM` past the locked-memory
    /// limit, `EINVAL` on kernels without provided-buffer rings).
    pub fn new(entries: u32, count: u16, size: usize) -> io::Result<Self> {
        let uring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(entries)
            .or_else(|_| IoUring::builder().setup_coop_taskrun().build(entries))
            .or_else(|_| IoUring::new(entries))?;
        if !count.is_power_of_two() || size <= HEADROOM || count > 32768 {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        let ring_layout = Layout::from_size_align(
            usize::from(count) * std::mem::size_of::<types::BufRingEntry>(),
            4096,
        )
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `sysconf` takes no pointer.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .unwrap_or(4096)
            .max(1);
        let stride = size.div_ceil(page) * page;
        let buffers_len = usize::from(count) * stride;
        // SAFETY: the layout has a non-zero size (count is positive).
        let ring = unsafe { alloc_zeroed(ring_layout) }.cast::<types::BufRingEntry>();
        if ring.is_null() {
            return Err(io::ErrorKind::OutOfMemory.into());
        }
        // SAFETY: a new private anonymous mapping; no address is asked for.
        let buffers = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                buffers_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if buffers == libc::MAP_FAILED {
            let error = io::Error::last_os_error();
            // SAFETY: `ring` came from `alloc_zeroed` with this layout.
            unsafe { dealloc(ring.cast(), ring_layout) };
            return Err(error);
        }
        let mut bufs = BufRing {
            ring,
            ring_layout,
            buffers: buffers.cast(),
            buffers_len,
            count,
            size,
            stride,
            tail: 0,
            lending: Lending::new(count),
            period_start: Instant::now(),
            grown: false,
        };
        // SAFETY: the ring memory is page-aligned, `count` entries long, and lives until
        // `BufRing::drop`, which runs after the ring is unregistered or gone.
        let registered = unsafe {
            uring
                .submitter()
                .register_buf_ring_with_flags(ring as u64, count, GROUP, 0)
        };
        if let Err(error) = registered {
            drop(uring);
            drop(bufs);
            return Err(error);
        }
        bufs.lend(FIRST_LENT);
        Ok(Self {
            uring: ManuallyDrop::new(uring),
            bufs: ManuallyDrop::new(bufs),
            in_flight: 0,
            zero: File::open("/dev/zero").ok(),
            tearing_down: false,
            homing: 0,
            homed: Vec::new(),
        })
    }

    /// The bytes a receive put in provided buffer `bid` (`len` of them), with
    /// [`HEADROOM`] free bytes before them: the whole buffer and where the data starts.
    pub fn buffer(&mut self, bid: u16, len: usize) -> &mut [u8] {
        debug_assert!(
            self.bufs.lending.is_held(bid),
            "provided buffer {bid} read while the kernel has it"
        );
        let bid = usize::from(bid % self.bufs.count);
        let len = len.min(self.bufs.size - HEADROOM);
        // SAFETY: buffer `bid` is `size` bytes inside the allocation; the kernel is
        // done with it (its completion was reaped) and does not get it back before
        // `recycle`, so nothing else writes it while this borrow lives (it borrows
        // `self` mutably, and `recycle` needs `self`).
        unsafe {
            std::slice::from_raw_parts_mut(
                self.bufs.buffers.add(bid * self.bufs.stride),
                HEADROOM + len,
            )
        }
    }

    /// Gives provided buffer `bid` back to the kernel, or, while a spent burst's
    /// buffers are being taken out of circulation, parks it and gives its pages back
    /// (one `madvise`; see `lending.rs`).
    pub fn recycle(&mut self, bid: u16) {
        match self.bufs.lending.returned(bid) {
            Returned::Relend => {
                self.bufs.push(bid);
                self.bufs.publish();
            }
            Returned::Park => self.bufs.release_pages(bid),
        }
    }

    /// A receive found no provided buffer left (`ENOBUFS`): lends the kernel twice
    /// as many as so far (at most all of them), once per wait however many receives
    /// found the ring dry in it.
    pub fn ran_dry(&mut self) {
        if !self.bufs.grown {
            self.bufs.grown = true;
            let more = self.bufs.lending.grow();
            self.bufs.push_all(&more);
        }
    }

    /// Provided buffers in circulation (in the ring, or ours until recycled).
    #[cfg(test)]
    pub fn lent(&self) -> u16 {
        self.bufs.lending.lent()
    }

    /// Queues a multishot accept on `listener`.
    /// A multishot accept stays armed; a single one takes one connection.
    pub fn accept(&mut self, listener: RawFd, multishot: bool, user_data: u64) -> io::Result<()> {
        let fd = types::Fd(listener);
        let entry = if multishot {
            opcode::AcceptMulti::new(fd).build()
        } else {
            opcode::Accept::new(fd, std::ptr::null_mut(), std::ptr::null_mut()).build()
        };
        let entry = entry.user_data(user_data);
        // SAFETY: the operation names no memory (no address is asked for: null).
        unsafe { self.push(&entry) }
    }

    /// Queues a multishot poll for `listener` becoming readable (a connection to
    /// accept).
    pub fn poll_readable(&mut self, listener: RawFd, user_data: u64) -> io::Result<()> {
        let entry = opcode::PollAdd::new(types::Fd(listener), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(user_data);
        // SAFETY: the operation names no memory.
        unsafe { self.push(&entry) }
    }

    /// Queues a multishot receive on `socket` into the provided buffers.
    pub fn recv(&mut self, socket: RawFd, user_data: u64) -> io::Result<()> {
        let len = (self.bufs.size - HEADROOM) as u32;
        let entry = opcode::RecvMulti::new(types::Fd(socket), GROUP)
            .len(len)
            .build()
            .user_data(user_data);
        // SAFETY: the kernel writes only into provided buffers, which live as long as
        // the ring (module docs).
        unsafe { self.push(&entry) }
    }

    /// Queues a write of `buffers`' chunks on `socket`: one chunk as a plain send
    /// (`IORING_OP_SEND` with `MSG_NOSIGNAL`, no iovec for the kernel to import), more
    /// as a vectored write (which, like the epoll backend's `writev`, relies on
    /// `SIGPIPE` being ignored, as Rust's runtime sets it before `main`). A peer gone
    /// is an error result.
    ///
    /// # Safety
    ///
    /// `buffers` (its iovecs and the bytes they point at) must stay alive, and its
    /// lists unchanged, until this operation's completion is reaped, or until
    /// [`Ring::cancel_all_and_wait`] returned `true`; otherwise it must be leaked.
    pub unsafe fn writev(
        &mut self,
        socket: RawFd,
        buffers: &mut SendBuffers,
        user_data: u64,
    ) -> io::Result<()> {
        if let [chunk] = buffers.chunks.as_slice() {
            buffers.iovecs.clear();
            let entry = opcode::Send::new(types::Fd(socket), chunk.as_ptr(), chunk.len() as u32)
                .flags(libc::MSG_NOSIGNAL)
                .build()
                .user_data(user_data);
            // SAFETY: the bytes are heap memory owned by the chunk, which `buffers`
            // keeps as this function's contract says.
            return unsafe { self.push(&entry) };
        }
        buffers.seal();
        let entry = opcode::Writev::new(
            types::Fd(socket),
            buffers.iovecs.as_ptr(),
            buffers.iovecs.len() as u32,
        )
        .build()
        .user_data(user_data);
        // SAFETY: the iovecs and the bytes they point at are heap memory owned by
        // `buffers`, which the caller keeps as this function's contract says.
        unsafe { self.push(&entry) }
    }

    /// Queues a read of one 8-byte counter from `eventfd` into `counter`.
    ///
    /// # Safety
    ///
    /// The `u64` that `counter` owns must stay alive until this operation's
    /// completion is reaped, or until [`Ring::cancel_all_and_wait`] returned `true`;
    /// otherwise it must be leaked.
    pub unsafe fn read_eventfd(
        &mut self,
        eventfd: RawFd,
        counter: &mut Box<u64>,
        user_data: u64,
    ) -> io::Result<()> {
        let entry = opcode::Read::new(types::Fd(eventfd), (&mut **counter as *mut u64).cast(), 8)
            .build()
            .user_data(user_data);
        // SAFETY: `counter` is heap memory the caller keeps as this function's
        // contract says.
        unsafe { self.push(&entry) }
    }

    /// Queues the cancellation of the operation submitted with `target` as its
    /// `user_data` (its completion then says `ECANCELED`, or it completed already).
    pub fn cancel(&mut self, target: u64, user_data: u64) -> io::Result<()> {
        let entry = opcode::AsyncCancel::new(target)
            .build()
            .user_data(user_data);
        // SAFETY: the operation names no memory.
        unsafe { self.push(&entry) }
    }

    /// Queues the cancellation of every operation on `socket` (its receive, a write
    /// waiting on a peer that does not read).
    pub fn cancel_socket(&mut self, socket: RawFd, user_data: u64) -> io::Result<()> {
        let entry = opcode::AsyncCancel2::new(types::CancelBuilder::fd(types::Fd(socket)).all())
            .build()
            .user_data(user_data);
        // SAFETY: the operation names no memory.
        unsafe { self.push(&entry) }
    }

    /// Submits what is queued and waits for at least one completion, at most
    /// `timeout` (`None`: until one comes): one `io_uring_enter`.
    pub fn submit_and_wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.bufs.grown = false;
        if self.bufs.period_start.elapsed() >= SHRINK_PERIOD {
            self.bufs.lending.end_period();
            self.bufs.period_start = Instant::now();
            self.bring_home();
        }
        let result = match timeout {
            Some(timeout) => {
                let ts = types::Timespec::from(timeout);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.uring.submitter().submit_with_args(1, &args)
            }
            None => self.uring.submit_and_wait(1),
        };
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ETIME) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Cancels every operation in flight and reaps completions until none is left
    /// (at most about a second: a completion that never comes is given up on).
    /// Returns whether none is left: only then may the memory they name be freed.
    pub fn cancel_all_and_wait(&mut self) -> bool {
        self.tearing_down = true;
        if self.in_flight == 0 {
            return true;
        }
        let entry = opcode::AsyncCancel2::new(types::CancelBuilder::any())
            .build()
            .user_data(0);
        // SAFETY: the operation names no memory.
        if unsafe { self.push(&entry) }.is_err() {
            return false;
        }
        let mut reaped = Vec::new();
        for _ in 0..50 {
            if self.in_flight == 0 {
                break;
            }
            if self
                .submit_and_wait(Some(Duration::from_millis(20)))
                .is_err()
            {
                break;
            }
            reaped.clear();
            let _ = self.completions(&mut reaped);
        }
        self.in_flight == 0
    }

    /// Submits what is queued without waiting.
    pub fn submit(&mut self) -> io::Result<()> {
        self.uring.submit().map(drop)
    }

    /// Appends the completions waiting to `out`. Returns whether the completion
    /// queue had overflowed: the kernel holds the completions that did not fit
    /// (IORING_FEAT_NODROP) and posts them at the next `io_uring_enter`, so none is
    /// lost, but the turn ends without them.
    pub fn completions(&mut self, out: &mut Vec<Completion>) -> bool {
        let overflowed = self.uring.submission().cq_overflow();
        let mut cq = self.uring.completion();
        cq.sync();
        for cqe in cq {
            if !cqueue::more(cqe.flags()) {
                self.in_flight = self.in_flight.saturating_sub(1);
            }
            let bid = cqueue::buffer_select(cqe.flags());
            if let Some(bid) = bid {
                self.bufs.lending.taken(bid);
            }
            if cqe.user_data() == HOMING {
                self.homing = self.homing.saturating_sub(1);
                self.homed.extend(bid);
                continue;
            }
            out.push(Completion {
                user_data: cqe.user_data(),
                result: cqe.result(),
                flags: cqe.flags(),
            });
        }
        let mut homed = std::mem::take(&mut self.homed);
        for bid in homed.drain(..) {
            self.recycle(bid);
        }
        self.homed = homed;
        overflowed
    }

    /// After a shrink (`lending.rs`), takes the spare buffers still in the ring home
    /// without waiting for receives to name them: a one-byte read of `/dev/zero` with
    /// buffer selection is given the ring's next buffer, and its completion hands it
    /// to us to park (pages given back). Without it, an idle reactor would keep a
    /// spent burst's buffers, a resident page each, for as long as nothing arrived.
    /// At most [`MOST_HOMING`] at once, none while earlier ones are on their way.
    fn bring_home(&mut self) {
        let Some(zero) = &self.zero else {
            return;
        };
        if self.homing > 0 || self.tearing_down {
            return;
        }
        let fd = zero.as_raw_fd();
        for _ in 0..self.bufs.lending.spare_in_ring().min(MOST_HOMING) {
            let entry = opcode::Read::new(types::Fd(fd), std::ptr::null_mut(), 1)
                .buf_group(GROUP)
                .build()
                .flags(squeue::Flags::BUFFER_SELECT)
                .user_data(HOMING);
            // SAFETY: the kernel writes only into the provided buffer it selects, which
            // lives as long as the ring (module docs).
            if unsafe { self.push(&entry) }.is_err() {
                break;
            }
            self.homing += 1;
        }
    }

    /// Pushes `entry`, submitting first if the submission queue is full.
    ///
    /// # Safety
    ///
    /// Whatever memory `entry` names lives, unmoved, until its completion is reaped.
    unsafe fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: the caller's promise.
            if unsafe { self.uring.submission().push(entry) }.is_ok() {
                self.in_flight += 1;
                return Ok(());
            }
            self.uring.submit()?;
        }
    }
}

impl BufRing {
    /// Lends the kernel idle buffers until `upto` are in circulation (at most
    /// `count`), and publishes them. A buffer enters the ring here when it is idle,
    /// then only through [`Ring::recycle`] after its completion: the ring, `count`
    /// entries long, never holds more than `count` buffers.
    fn lend(&mut self, upto: u16) {
        let bids = self.lending.lend(upto);
        self.push_all(&bids);
    }

    /// Pushes buffers `bids` (just put into circulation) and publishes them.
    fn push_all(&mut self, bids: &[u16]) {
        for &bid in bids {
            self.push(bid);
        }
        self.publish();
    }

    /// Gives the pages of parked buffer `bid` back to the kernel: they read as zeros
    /// and cost nothing until the buffer is lent again and filled.
    fn release_pages(&mut self, bid: u16) {
        // SAFETY: the buffer's `stride` bytes are whole pages of our private
        // anonymous mapping, holding no other buffer's bytes; the buffer is parked:
        // its completion was reaped and it is not in the ring, so the kernel does not
        // write it, and no borrow of it lives (`buffer` borrows `self`). Its contents
        // are not needed: it is lent again before it is read, and filled by then.
        unsafe {
            libc::madvise(
                self.buffers.add(usize::from(bid) * self.stride).cast(),
                self.stride,
                libc::MADV_DONTNEED,
            );
        }
    }

    /// Puts buffer `bid` at the ring's tail (seen by the kernel at [`BufRing::publish`]).
    fn push(&mut self, bid: u16) {
        let slot = usize::from(self.tail & (self.count - 1));
        // SAFETY: `slot` < `count`, the ring's length; the kernel reads entries only
        // before the published tail, and this one is past it.
        let entry = unsafe { &mut *self.ring.add(slot) };
        let bid_index = usize::from(bid);
        // SAFETY: the buffer is inside the allocation (`bid` < `count`).
        let addr = unsafe { self.buffers.add(bid_index * self.stride + HEADROOM) };
        entry.set_addr(addr as u64);
        entry.set_len((self.size - HEADROOM) as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes the pushed buffers visible to the kernel.
    fn publish(&mut self) {
        // SAFETY: `ring` is the first entry of the registered ring; its tail field is a
        // naturally aligned u16 that the kernel reads with acquire semantics.
        let tail = unsafe { &*types::BufRingEntry::tail(self.ring).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: the ring came from `alloc_zeroed` with this layout, the buffers
        // from `mmap` with this length; the ring (and with it the kernel's use of
        // them) is gone, see `Ring::drop`.
        unsafe {
            dealloc(self.ring.cast(), self.ring_layout);
            libc::munmap(self.buffers.cast(), self.buffers_len);
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        self.cancel_all_and_wait();
        // SAFETY: dropped once, here; closing the ring cancels what is in flight.
        unsafe { ManuallyDrop::drop(&mut self.uring) };
        if self.in_flight == 0 {
            // SAFETY: dropped once, here, after the ring: the kernel no longer uses it.
            unsafe { ManuallyDrop::drop(&mut self.bufs) };
        }
        // Otherwise the ring's teardown may still be writing the provided buffers:
        // their memory is kept for the life of the process rather than freed under
        // the kernel.
    }
}

/// A new non-blocking, close-on-exec eventfd with a zero counter.
///
/// # Errors
///
/// What `eventfd(2)` returned (`EMFILE`, `ENOMEM`).
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: `eventfd` takes no pointer.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor was just created and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Takes ownership of the descriptor an accept completion returned.
pub(crate) fn accepted_fd(result: i32) -> Option<OwnedFd> {
    // SAFETY: a non-negative accept result is a descriptor the kernel just installed
    // for this process, named by no one else.
    (result >= 0).then(|| unsafe { OwnedFd::from_raw_fd(result) })
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    use super::{HEADROOM, Ring};

    /// Whether the page holding `addr` is resident (`mincore`).
    fn resident(addr: *const u8) -> bool {
        // SAFETY: `sysconf` takes no pointer.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let start = (addr as usize) & !(page - 1);
        let mut state = 0u8;
        // SAFETY: one page of a live mapping, one status byte written to `state`.
        let result = unsafe { libc::mincore(start as *mut libc::c_void, page, &mut state) };
        assert_eq!(result, 0, "mincore: {}", std::io::Error::last_os_error());
        state & 1 != 0
    }

    /// Writes `bytes` to `client` and waits for the receive completion of the peer
    /// on `ring`: returns the provided buffer it named and its length.
    fn receive(ring: &mut Ring, client: &mut TcpStream, bytes: &[u8]) -> (u16, usize) {
        client.write_all(bytes).unwrap();
        let mut out = Vec::new();
        for _ in 0..100 {
            ring.submit_and_wait(Some(Duration::from_millis(50)))
                .unwrap();
            out.clear();
            ring.completions(&mut out);
            if let Some(completion) = out.iter().find(|c| c.result > 0) {
                assert!(completion.more(), "the multishot receive stays armed");
                let bid = completion.buffer().expect("a provided buffer");
                return (bid, completion.result as usize);
            }
        }
        panic!("no receive completed");
    }

    /// A ring of 128 buffers that a burst made lend them all, with a multishot receive
    /// armed on the server side of a loopback connection: the ring, the client, and
    /// the server socket (kept open). `None` without io_uring here (seccomp, an old
    /// kernel): there is nothing to test.
    fn burst_ring() -> Option<(Ring, TcpStream, TcpStream)> {
        let mut ring = Ring::new(8, 128, 4096 + HEADROOM).ok()?;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        ring.recv(server.as_raw_fd(), 1).unwrap();
        ring.ran_dry();
        ring.submit_and_wait(Some(Duration::ZERO)).unwrap();
        ring.ran_dry();
        assert_eq!(ring.lent(), 128);
        Some((ring, client, server))
    }

    #[test]
    fn a_spent_burst_is_taken_home_and_parked_without_a_receive() {
        let Some((mut ring, mut client, server)) = burst_ring() else {
            return;
        };
        if ring.zero.is_none() {
            return;
        }
        // A period that needed nothing: the target drops to the first loan, and with
        // nothing arriving the spare buffers still come home.
        ring.bufs.lending.end_period();
        let mut out = Vec::new();
        for _ in 0..10 {
            ring.bring_home();
            ring.submit_and_wait(Some(Duration::from_millis(10)))
                .unwrap();
            ring.completions(&mut out);
            if ring.lent() == 32 && ring.homing == 0 {
                break;
            }
        }
        assert!(
            out.is_empty(),
            "the homing reads are the ring's own: {out:?}"
        );
        assert_eq!(ring.lent(), 32);
        // Receives go on in the buffers left.
        for round in 0..40u8 {
            let message = [round; 100];
            let (bid, len) = receive(&mut ring, &mut client, &message);
            assert_eq!(&ring.buffer(bid, len)[HEADROOM..], &message);
            ring.recycle(bid);
        }
        drop(server);
    }

    #[test]
    fn a_parked_buffer_gives_its_pages_back_and_receives_go_on_in_the_others() {
        // A burst lent them all.
        let Some((mut ring, mut client, server)) = burst_ring() else {
            return;
        };

        let (bid, len) = receive(&mut ring, &mut client, b"first");
        assert_eq!(&ring.buffer(bid, len)[HEADROOM..], b"first");
        let page = ring.buffer(bid, len)[HEADROOM..].as_ptr();
        assert!(resident(page), "the kernel filled it");
        // A period that needed one buffer at a time: the spent burst is given back
        // as its buffers come home.
        ring.bufs.lending.end_period();
        ring.recycle(bid);
        assert_eq!(ring.lent(), 127, "parked, not lent again");
        assert!(!resident(page), "a parked buffer's pages are given back");

        // The others go on: every receive gets another buffer, with its own bytes.
        for round in 0..120u8 {
            let message = [round; 100];
            let (next, len) = receive(&mut ring, &mut client, &message);
            assert_ne!(next, bid, "a parked buffer is not in the ring");
            assert_eq!(&ring.buffer(next, len)[HEADROOM..], &message);
            ring.recycle(next);
        }
        assert_eq!(
            ring.lent(),
            32,
            "parked down to the target, then lent again"
        );
        drop(server);
    }
}
