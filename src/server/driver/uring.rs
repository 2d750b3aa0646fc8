//! The completion driver: io_uring. One submission and wait per turn
//! (`io_uring_enter`, with the timer wheel's timeout), a multishot accept, a multishot
//! receive per connection into the reactor's provided buffers, one vectored write per
//! connection per turn from the outbox's frozen bytes, and an eventfd for wake-ups.
//!
//! Every operation's `user_data` names its kind, the connection's slab key and the
//! connection's generation: a completion that arrives after its connection was
//! released (and its key perhaps given to a new one) is recognised by the generation
//! and never reaches the new connection; what it carried (a provided buffer, the
//! bytes of a write) is given back or dropped.
//!
//! `unsafe` is confined to `ring.rs`, and to the three calls here of its two `unsafe
//! fn`s (a write, the wake-up's read), each of which keeps the memory it hands the
//! kernel in the driver until the completion (see `ring.rs`'s safety argument).

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Instant;

use crate::server::slots::Slots;

use crate::server::config::ServerConfig;
use crate::server::core::{Core, Transport};
use crate::server::driver::AcceptPause;
use crate::server::failure::{ReactorFailure, panic_message};
use crate::server::handler::Service;
use crate::server::shared::{Shared, Wake};
use crate::server::stats::Stats;
use crate::server::timer::Tick;

// The one module of the driver allowed `unsafe` (see its docs for the argument).
mod peak;
#[allow(unsafe_code)]
mod ring;

use peak::Peak;

use ring::{Completion, HEADROOM, Ring, SendBuffers};

/// What an operation is, in the top byte of its `user_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    Accept = 1,
    Wake = 2,
    Recv = 3,
    Send = 4,
    Other = 5,
}

/// `user_data`: kind (8 bits), generation (24 bits), key or send id (32 bits).
fn user_data(kind: Kind, generation: u32, index: usize) -> u64 {
    (kind as u64) << 56 | u64::from(generation & 0xff_ffff) << 32 | (index as u64 & 0xffff_ffff)
}

fn decode(user_data: u64) -> (u8, u32, usize) {
    (
        (user_data >> 56) as u8,
        ((user_data >> 32) & 0xff_ffff) as u32,
        (user_data & 0xffff_ffff) as usize,
    )
}

/// The eventfd other threads wake a reactor with.
struct EventFd(File);

impl Wake for EventFd {
    fn wake(&self) -> io::Result<()> {
        (&self.0).write_all(&1u64.to_ne_bytes())
    }
}

/// A connection's descriptor and the state of its operations (the core's `IO`),
/// packed into 8 bytes: no larger than the epoll driver's, since every connection,
/// idle or not, holds one in the core's slab. Its slab key is not kept (the core
/// passes it to every [`Transport`] call), and the completions held during a pause
/// live in the driver's [`Held`] table, not here.
pub(crate) struct Socket {
    stream: TcpStream,
    /// The generation (the low 24 bits, as in `user_data`) and the flags below (the
    /// high 8 bits).
    state: u32,
}

/// The bits of [`Socket::state`] that hold the generation.
const GENERATION: u32 = 0xff_ffff;
/// A multishot receive is armed.
const RECEIVING: u32 = 1 << 24;
/// Reading is paused for flow control (the receive was cancelled).
const PAUSED: u32 = 1 << 25;
/// A write is in flight.
const SENDING: u32 = 1 << 26;
/// In the list of connections to write at the end of the turn.
const QUEUED: u32 = 1 << 27;
/// The peer's EOF arrived while replies were still being written: end the
/// connection once they are.
const EOF_PENDING: u32 = 1 << 28;
/// Receive completions wait for it in [`Held`] (they arrived while reading was
/// paused).
const HELD: u32 = 1 << 29;

impl Socket {
    fn new(stream: TcpStream, generation: u32) -> Self {
        Self {
            stream,
            state: generation & GENERATION,
        }
    }

    /// The connection's generation (24 bits).
    fn generation(&self) -> u32 {
        self.state & GENERATION
    }

    /// Whether `flag` is set.
    fn is(&self, flag: u32) -> bool {
        self.state & flag != 0
    }

    /// Sets `flag` (`on`) or clears it.
    fn set(&mut self, flag: u32, on: bool) {
        if on {
            self.state |= flag;
        } else {
            self.state &= !flag;
        }
    }
}

/// Receive completions that arrived while their connection's reading was paused, in
/// order, by slab key (only paused connections have an entry: rare, so a map beside
/// the slab rather than a field in every [`Socket`]).
type Held = HashMap<usize, VecDeque<Completion>>;

/// Completed writes' buffers a reactor keeps for its next writes: enough for a turn
/// of 64 connections without an allocation, 12 KiB at most (4 chunks each).
const SPARE_SEND_BUFFERS: usize = 64;

/// A completed write's buffers with room for more chunks than this are not kept.
const SPARE_MAX_CHUNKS: usize = 4;

/// A write in flight: its connection and the memory the kernel reads.
struct SendOp {
    key: usize,
    generation: u32,
    /// Bytes the write offered.
    len: usize,
    buffers: SendBuffers,
}

/// The io_uring side of the core's decisions.
struct Ops<'a> {
    ring: &'a mut Ring,
    /// Sockets released this turn, closed once the operations queued for them are
    /// submitted (a descriptor is looked up at submission: closed earlier, its
    /// number could name the next accepted socket).
    closing: &'a mut Vec<TcpStream>,
    sends: &'a mut Slots<SendOp>,
    to_send: &'a mut Vec<usize>,
    rearm: &'a mut Vec<usize>,
    held: &'a mut Held,
}

impl Transport<Socket> for Ops<'_> {
    fn write(&mut self, key: usize, io: &mut Socket, _slices: &[IoSlice<'_>]) -> io::Result<usize> {
        // Completion-based: the bytes stay in the outbox and leave, frozen, after the
        // turn (`submit_sends`).
        if !io.is(QUEUED) {
            io.set(QUEUED, true);
            self.to_send.push(key);
        }
        Err(io::ErrorKind::WouldBlock.into())
    }

    fn defers_writes(&self) -> bool {
        true
    }

    fn write_last(&mut self, key: usize, io: &mut Socket, bytes: &[u8]) {
        // Its own copy, in flight past the release: the write holds the socket open
        // until it completes, and its completion finds no connection of its
        // generation.
        let chunks = vec![bytes::Bytes::copy_from_slice(bytes)];
        let entry = self.sends.vacant_entry();
        let id = entry.key();
        let op = entry.insert(SendOp {
            key,
            generation: io.generation(),
            len: bytes.len(),
            buffers: SendBuffers::new(chunks),
        });
        let ud = user_data(Kind::Send, io.generation(), id);
        // SAFETY: `op` stays in `sends` until its completion arrives (or is leaked
        // with the table by `UringDriver::drop`).
        #[allow(unsafe_code)]
        let queued = unsafe { self.ring.writev(io.stream.as_raw_fd(), &mut op.buffers, ud) };
        if queued.is_err() {
            self.sends.remove(id);
        }
    }

    fn shutdown_write(&mut self, io: &mut Socket) {
        // A plain `shutdown(2)`, not IORING_OP_SHUTDOWN: the kernel runs that one on
        // an io-wq worker, which looks the descriptor up only then, after this turn
        // may have closed it and an accept reused its number: the next connection's
        // write side was shut before its 101 went out (seen as resets in the interop
        // tests). The core asks only once everything was written (the outbox is
        // empty, every write completed), so nothing is cut short.
        let _ = io.stream.shutdown(std::net::Shutdown::Write);
    }

    fn resume_reading(&mut self, key: usize, io: &mut Socket) {
        // What was held during the pause is handed over, and the receive armed again
        // if it ended, at the end of the turn (`rearm_receives`).
        io.set(PAUSED, false);
        self.rearm.push(key);
    }

    fn release(&mut self, key: usize, io: Socket) {
        if io.is(HELD) {
            for completion in self.held.remove(&key).into_iter().flatten() {
                if let Some(bid) = completion.buffer() {
                    self.ring.recycle(bid);
                }
            }
        }
        if io.is(RECEIVING) {
            let recv = user_data(Kind::Recv, io.generation(), key);
            let _ = self.ring.cancel(recv, user_data(Kind::Other, 0, 0));
        }
        // Closed after the next submission (see `closing`); safe with operations in
        // flight: they hold their own reference to the socket, which the
        // cancellation releases.
        self.closing.push(io.stream);
    }
}

/// One reactor on io_uring.
pub(crate) struct UringDriver<S: Service> {
    core: Core<S, Socket>,
    ring: Ring,
    listener: Option<TcpListener>,
    /// The reactor's end of its eventfd, and where the kernel reads its counter to.
    eventfd: File,
    counter: Box<u64>,
    sends: Slots<SendOp>,
    /// Buffers of completed writes, kept for the next ones (no allocation per write).
    spare: Vec<SendBuffers>,
    completions: Vec<Completion>,
    /// Connections with bytes for a write at the end of the turn.
    to_send: Vec<usize>,
    /// Connections whose receive is to be armed again.
    rearm: Vec<usize>,
    /// What paused connections received (see [`Held`]).
    held: Held,
    /// The next connection's generation.
    generation: u32,
    /// Bytes a connection left over, on their way in front of its next read.
    scratch: Vec<u8>,
    /// Sockets to close after the next submission (see [`Ops`]).
    closing: Vec<TcpStream>,
    /// Accept with one multishot operation (a listening socket of this reactor's own,
    /// `reuse_port`), or one connection per operation (the listening socket shared by
    /// every reactor: a multishot accept there took every connection for the first
    /// reactor to arm it; single accepts re-armed after each completion spread them).
    multishot_accept: bool,
    /// An accept (or the listener's poll) is armed in the ring.
    accept_armed: bool,
    /// Accepting is paused until this tick (after EMFILE and the like).
    accept_pause: AcceptPause,
    /// The most completions one turn had, and writes in flight, since the last
    /// tick (see [`UringDriver::shrink_lists`]).
    completions_peak: Peak,
    sends_peak: Peak,
    /// The tick the lists were last checked at.
    shrunk_at: Tick,
}

/// What a reactor's io_uring driver needs from the starting thread: its eventfd
/// (the ring itself is made on the reactor's thread: with SINGLE_ISSUER only the
/// thread that made it may submit).
pub(crate) struct Parts {
    eventfd: File,
}

/// A reactor's io_uring instance and the waker other threads rouse it with.
///
/// # Errors
///
/// What `io_uring_setup`, the buffer ring's registration or `eventfd` returned:
/// io_uring is missing or forbidden (`ENOSYS`, `EPERM`), or the locked-memory
/// limit is too low (`ENOMEM`).
pub(crate) fn new_parts(config: &ServerConfig) -> io::Result<(Parts, Box<dyn Wake>)> {
    probe(config)?;
    let eventfd = ring::eventfd()?;
    let waker = File::from(eventfd.try_clone()?);
    let parts = Parts {
        eventfd: File::from(eventfd),
    };
    Ok((parts, Box::new(EventFd(waker))))
}

/// A ring with `config`'s submission queue and provided buffers.
fn new_ring(config: &ServerConfig) -> io::Result<Ring> {
    let size = config.read_buffer_size.clamp(4096, 64 << 10) + HEADROOM;
    Ring::new(
        config.io_uring_sq_entries,
        config.io_uring_provided_buffers,
        size,
    )
}

/// Whether this process may run the io_uring driver: makes (and drops) one ring, on
/// a thread of its own. Not on the caller's: the kernel tears a ring down with task
/// work aimed at the thread that made it, which interrupts that thread's next socket
/// call that has a timeout with `EINTR` (seen as flaky client reads in tests).
///
/// # Errors
///
/// What `io_uring_setup` or the buffer ring's registration returned: io_uring is
/// missing or forbidden (`ENOSYS`, `EPERM`), or the locked-memory limit is too low
/// (`ENOMEM`).
pub(crate) fn probe(config: &ServerConfig) -> io::Result<()> {
    let config = config.clone();
    std::thread::Builder::new()
        .name("wavecore-uring-probe".into())
        .spawn(move || new_ring(&config).map(drop))?
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the io_uring probe panicked")))
}

/// Runs reactor `index` on io_uring on this thread: makes its ring, then runs it
/// until a graceful shutdown completes or it fails (reported, as with
/// [`UringDriver::run_reported`]; a ring that cannot be made is such a failure).
///
/// # Errors
///
/// The [`ReactorFailure`].
pub(crate) fn run<S: Service>(
    index: usize,
    parts: Parts,
    listener: TcpListener,
    service: Arc<S>,
    config: Arc<ServerConfig>,
    shared: Arc<Shared>,
) -> Result<(), ReactorFailure> {
    match new_ring(&config) {
        Ok(ring) => {
            UringDriver::new(index, ring, parts, listener, service, config, shared).run_reported()
        }
        Err(error) => {
            let failure = ReactorFailure {
                reactor: index,
                cause: format!("io_uring setup failed: {error}"),
            };
            tracing::error!(reactor = index, "{failure}");
            shared.remotes[index].close();
            shared.report_failure(failure.clone());
            shared.settle();
            Err(failure)
        }
    }
}

macro_rules! split {
    ($driver:ident) => {
        (
            &mut $driver.core,
            &mut Ops {
                ring: &mut $driver.ring,
                closing: &mut $driver.closing,
                sends: &mut $driver.sends,
                to_send: &mut $driver.to_send,
                rearm: &mut $driver.rearm,
                held: &mut $driver.held,
            },
        )
    };
}

impl<S: Service> Drop for UringDriver<S> {
    fn drop(&mut self) {
        // Writes in flight read the memory `sends` owns, and the wake-up's read writes
        // `counter`: free them only once the ring says nothing is left in flight,
        // else keep them for the life of the process.
        if !self.ring.cancel_all_and_wait() {
            std::mem::forget(std::mem::take(&mut self.sends));
            std::mem::forget(std::mem::replace(&mut self.counter, Box::new(0)));
        }
    }
}

impl<S: Service> UringDriver<S> {
    /// A reactor over `listener` and `ring` (from [`new_ring`]; the waker is in
    /// `shared`).
    fn new(
        index: usize,
        ring: Ring,
        Parts { eventfd }: Parts,
        listener: TcpListener,
        service: Arc<S>,
        config: Arc<ServerConfig>,
        shared: Arc<Shared>,
    ) -> Self {
        Self {
            multishot_accept: config.reuse_port,
            core: Core::new(index, service, config, shared, Instant::now()),
            ring,
            listener: Some(listener),
            eventfd,
            counter: Box::new(0),
            sends: Slots::default(),
            spare: Vec::new(),
            completions: Vec::new(),
            to_send: Vec::new(),
            rearm: Vec::new(),
            held: Held::new(),
            generation: 0,
            scratch: vec![0; HEADROOM],
            closing: Vec::new(),
            accept_armed: false,
            accept_pause: AcceptPause::default(),
            completions_peak: Peak::default(),
            sends_peak: Peak::default(),
            shrunk_at: 0,
        }
    }

    /// Runs the reactor until a graceful shutdown completes, or until it fails; a
    /// failure is reported before this returns it.
    ///
    /// # Errors
    ///
    /// The [`ReactorFailure`]: a panic outside any one connection, or the ring failing.
    pub fn run_reported(mut self) -> Result<(), ReactorFailure> {
        let cause = match catch_unwind(AssertUnwindSafe(|| self.run())) {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(error)) => format!("event source failed: {error}"),
            Err(panic) => format!("panicked: {}", panic_message(&*panic)),
        };
        let (core, ops) = split!(self);
        let failure = core.fail_reactor(cause, ops);
        // The 1011 close frames go out (their writes hold the sockets) before the
        // ring is dropped.
        self.stop_accepting();
        let _ = self.ring.submit();
        self.closing.clear();
        Err(failure)
    }

    fn run(&mut self) -> io::Result<()> {
        self.arm_accept()?;
        self.arm_wake()?;
        loop {
            let timeout = self
                .core
                .poll_timeout(Instant::now(), self.accept_pause.is_paused());
            self.ring.submit_and_wait(timeout)?;
            let woke = Instant::now();
            self.core.begin_turn(woke);
            let mut completions = std::mem::take(&mut self.completions);
            if self.ring.completions(&mut completions) {
                Stats::bump(&self.core.shared().stats.cq_overflows);
            }
            self.completions_peak.see(completions.len());
            for completion in completions.drain(..) {
                self.complete(completion)?;
            }
            self.completions = completions;
            self.resume_accepting();
            let (core, ops) = split!(self);
            core.end_turn(Instant::now(), ops);
            self.rearm_receives();
            self.submit_sends();
            if !self.closing.is_empty() {
                self.ring.submit()?;
                self.closing.clear();
            }
            self.sends_peak.see(self.sends.len());
            self.shrink_lists();
            self.core.observe_turn(woke.elapsed());
            if self.core.finished(Instant::now()) {
                return Ok(());
            }
        }
    }

    /// Once per timer tick: the completion list and the table of writes give back
    /// what a burst grew them to (see `peak.rs`).
    fn shrink_lists(&mut self) {
        let tick = self.core.tick();
        if tick == self.shrunk_at {
            return;
        }
        self.shrunk_at = tick;
        let mut shrunk = false;
        if let Some(target) = self
            .completions_peak
            .shrink_target(self.completions.capacity())
        {
            self.completions.shrink_to(target);
            shrunk = true;
        }
        if let Some(target) = self.sends_peak.shrink_target(self.sends.capacity())
            && self.sends.is_empty()
        {
            self.sends.shrink_to(target);
            shrunk = true;
        }
        if self.held.is_empty() && self.held.capacity() > 0 {
            // Every pause ended: the table of held completions goes.
            self.held = Held::new();
            shrunk = true;
        }
        if shrunk {
            // The end of a burst (rare): what the writes' buffers left free in the
            // allocator goes back too, with the spare buffers.
            self.spare = Vec::new();
            crate::server::allocator::release_free_memory();
        }
    }

    /// Cancels the armed accept and closes this reactor's listening socket (after the
    /// cancellation is submitted: the accept holds the socket until then).
    fn stop_accepting(&mut self) {
        self.accept_pause.clear();
        if let Some(listener) = self.listener.take() {
            let accept = user_data(Kind::Accept, 0, 0);
            let _ = self.ring.cancel(accept, user_data(Kind::Other, 0, 0));
            let _ = self.ring.submit();
            drop(listener);
        }
    }

    fn arm_wake(&mut self) -> io::Result<()> {
        let fd = self.eventfd.as_raw_fd();
        // SAFETY: the counter lives as long as the driver, and `UringDriver::drop`
        // leaks it if the read may still be in flight.
        #[allow(unsafe_code)]
        unsafe {
            self.ring
                .read_eventfd(fd, &mut self.counter, user_data(Kind::Wake, 0, 0))
        }
    }

    fn complete(&mut self, completion: Completion) -> io::Result<()> {
        let (kind, generation, index) = decode(completion.user_data);
        match kind {
            k if k == Kind::Accept as u8 => self.accepted(completion),
            k if k == Kind::Wake as u8 => {
                let (core, ops) = split!(self);
                core.wake(Instant::now(), ops);
                if self.core.is_shutting_down() {
                    self.stop_accepting();
                }
                self.arm_wake()?;
            }
            k if k == Kind::Recv as u8 => self.received(index, generation, completion),
            k if k == Kind::Send as u8 => self.sent(index, completion),
            _ => {}
        }
        Ok(())
    }

    fn accepted(&mut self, completion: Completion) {
        if !completion.more() {
            self.accept_armed = false;
        }
        if self.accept_pause.is_paused() {
            // What the cancelled operation still reported: taken up on resuming.
            if let Some(fd) = ring::accepted_fd(completion.result) {
                self.open(TcpStream::from(fd));
            }
            return;
        }
        if self.multishot_accept {
            match completion.result {
                fd if fd >= 0 => {
                    if let Some(fd) = ring::accepted_fd(fd) {
                        self.open(TcpStream::from(fd));
                    }
                }
                e if e == -libc::ECANCELED || e == -libc::ECONNABORTED || e == -libc::EINTR => {}
                e => self.pause_accepting(&io::Error::from_raw_os_error(-e)),
            }
        } else {
            self.accept_ready();
        }
        if !self.accept_armed && !self.accept_pause.is_paused() {
            let _ = self.arm_accept();
        }
    }

    /// Arms the accept: a multishot accept on a listening socket of this reactor's
    /// own; on the shared one, a multishot poll, after which this reactor accepts
    /// what it can with plain `accept` calls, as the epoll driver does (an accept
    /// armed in the kernel would take the next connection for this reactor even
    /// while it is busy in a long handler call; a poll wakes every reactor and the
    /// free ones take the connections).
    fn arm_accept(&mut self) -> io::Result<()> {
        let Some(listener) = &self.listener else {
            return Ok(());
        };
        let (fd, ud) = (listener.as_raw_fd(), user_data(Kind::Accept, 0, 0));
        if self.multishot_accept {
            self.ring.accept(fd, true, ud)?;
        } else {
            self.ring.poll_readable(fd, ud)?;
        }
        self.accept_armed = true;
        Ok(())
    }

    /// Accepts until the shared listening socket has nothing left for this reactor.
    fn accept_ready(&mut self) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, _)) => self.open(stream),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(error) => return self.pause_accepting(&error),
            }
        }
    }

    /// EMFILE, ENFILE, ENOBUFS, ENOMEM...: stop accepting for a tick (the armed
    /// accept or poll is cancelled) rather than spin on a listener that stays ready.
    fn pause_accepting(&mut self, error: &io::Error) {
        self.accept_pause.start(&self.core, error);
        if self.accept_armed {
            let accept = user_data(Kind::Accept, 0, 0);
            let _ = self.ring.cancel(accept, user_data(Kind::Other, 0, 0));
        }
    }

    /// Accepting again once the pause's tick has come: the accept (or poll) is armed
    /// again, unless its cancellation has not completed yet (then its completion
    /// arms it), and the shared listener is drained of what waited.
    fn resume_accepting(&mut self) {
        if !self.accept_pause.ended(self.core.tick()) {
            return;
        }
        if !self.multishot_accept {
            self.accept_ready();
        }
        if !self.accept_armed && !self.accept_pause.is_paused() {
            let _ = self.arm_accept();
        }
    }

    fn open(&mut self, stream: TcpStream) {
        let Ok(peer) = stream.peer_addr() else {
            return;
        };
        let _ = stream.set_nodelay(true);
        Stats::bump(&self.core.shared().stats.accepted);
        self.generation = self.generation.wrapping_add(1) & 0xff_ffff;
        let key = self.core.vacant_key();
        let socket = Socket::new(stream, self.generation);
        let fd = socket.stream.as_raw_fd();
        let generation = socket.generation();
        let (core, ops) = split!(self);
        core.open(socket, peer, ops);
        if let Some(socket) = self.core.io_mut(key)
            && socket.generation() == generation
        {
            socket.set(RECEIVING, true);
            let _ = self.ring.recv(fd, user_data(Kind::Recv, generation, key));
        }
    }
}

impl<S: Service> UringDriver<S> {
    /// A receive completed for connection `key` of `generation`.
    fn received(&mut self, key: usize, generation: u32, completion: Completion) {
        let Some(socket) = self
            .core
            .io_mut(key)
            .filter(|socket| socket.generation() == generation)
        else {
            // A late completion of a connection gone: give its buffer back.
            if let Some(bid) = completion.buffer() {
                self.ring.recycle(bid);
            }
            return;
        };
        if !completion.more() {
            socket.set(RECEIVING, false);
        }
        if socket.is(PAUSED) || socket.is(HELD) {
            // Reading is paused (the receive was cancelled, but what it had already
            // taken keeps coming): hold it, in order, until reading resumes.
            socket.set(HELD, true);
            self.held.entry(key).or_default().push_back(completion);
            if !socket.is(PAUSED) {
                // Resumed, with completions still held: they go first.
                self.rearm.push(key);
            }
            return;
        }
        self.process(key, generation, completion);
        if let Some(socket) = self.core.io_mut(key)
            && socket.generation() == generation
            && !socket.is(RECEIVING | PAUSED | EOF_PENDING)
        {
            self.rearm.push(key);
        }
    }

    /// Hands a receive's bytes (or its EOF, or its error) to the core.
    fn process(&mut self, key: usize, generation: u32, completion: Completion) {
        let scratch = &mut self.scratch;
        let (core, ops) = split!(self);
        core.contained(Some(key), ops, |core, ops| match completion.result {
            n if n > 0 => {
                let Some(bid) = completion.buffer() else {
                    return;
                };
                let held = core.take_pending(key, scratch);
                let buf = ops.ring.buffer(bid, n as usize);
                buf[HEADROOM - held..HEADROOM].copy_from_slice(&scratch[..held]);
                core.received(key, &mut buf[HEADROOM - held..]);
                ops.ring.recycle(bid);
                core.write(key, ops);
                if core.pause_reading(key)
                    && let Some(socket) = core.io_mut(key)
                {
                    socket.set(PAUSED, true);
                    if socket.is(RECEIVING) {
                        let recv = user_data(Kind::Recv, generation, key);
                        let _ = ops.ring.cancel(recv, user_data(Kind::Other, 0, 0));
                    }
                }
                core.served(key, ops);
            }
            e if e == -libc::ENOBUFS || e == -libc::ECANCELED => {
                if e == -libc::ENOBUFS {
                    Stats::bump(&core.shared().stats.recv_buffers_exhausted);
                    ops.ring.ran_dry();
                }
                if let Some(bid) = completion.buffer() {
                    ops.ring.recycle(bid);
                }
            }
            _ if !core.is_flushed(key) => {
                // EOF (or an error) right behind bytes whose replies are still on
                // their way: as epoll's read loop writes them before it reads the
                // EOF, end the connection once they are written (`sent`).
                if let Some(socket) = core.io_mut(key) {
                    socket.set(EOF_PENDING, true);
                }
            }
            _ => {
                core.eof(key);
                core.served(key, ops);
            }
        });
    }

    /// A write completed.
    fn sent(&mut self, id: usize, completion: Completion) {
        let Some(op) = self.sends.try_remove(id) else {
            return;
        };
        self.keep_spare(op.buffers);
        let Some(socket) = self
            .core
            .io_mut(op.key)
            .filter(|socket| socket.generation() == op.generation)
        else {
            return;
        };
        socket.set(SENDING, false);
        let eof_pending = socket.is(EOF_PENDING);
        let written = usize::try_from(completion.result).ok();
        let short = written.is_some_and(|n| n < op.len);
        let (core, ops) = split!(self);
        let key = op.key;
        core.contained(Some(key), ops, |core, ops| {
            core.sent(key, written, short, ops);
            if eof_pending && core.is_flushed(key) {
                core.eof(key);
                core.served(key, ops);
            }
        });
    }

    /// Keeps a completed write's buffers for the next write (their bytes dropped),
    /// unless enough are kept or they grew large.
    fn keep_spare(&mut self, mut buffers: SendBuffers) {
        buffers.clear();
        if self.spare.len() < SPARE_SEND_BUFFERS && buffers.capacity() <= SPARE_MAX_CHUNKS {
            self.spare.push(buffers);
        }
    }

    /// Arms again the receives that ended (buffers ran dry, a pause ended, the
    /// kernel stopped a multishot).
    fn rearm_receives(&mut self) {
        for key in std::mem::take(&mut self.rearm) {
            self.release_held(key);
            let Some(socket) = self.core.io_mut(key) else {
                continue;
            };
            if socket.is(RECEIVING | PAUSED | HELD | EOF_PENDING) {
                continue;
            }
            socket.set(RECEIVING, true);
            let ud = user_data(Kind::Recv, socket.generation(), key);
            let fd = socket.stream.as_raw_fd();
            let _ = self.ring.recv(fd, ud);
        }
    }

    /// Hands a connection whose pause ended what arrived during the pause, in order,
    /// until it pauses again.
    fn release_held(&mut self, key: usize) {
        let Some(socket) = self.core.io_mut(key) else {
            return;
        };
        if socket.is(PAUSED) || !socket.is(HELD) {
            return;
        }
        socket.set(HELD, false);
        let generation = socket.generation();
        let Some(mut held) = self.held.remove(&key) else {
            return;
        };
        while let Some(completion) = held.pop_front() {
            self.process(key, generation, completion);
            match self.core.io_mut(key) {
                Some(socket) if socket.generation() == generation && socket.is(PAUSED) => {
                    if !held.is_empty() {
                        socket.set(HELD, true);
                        self.held.insert(key, held);
                    }
                    return;
                }
                Some(socket) if socket.generation() == generation => {}
                _ => {
                    // The connection ended: give the rest of its buffers back.
                    for completion in held.drain(..) {
                        if let Some(bid) = completion.buffer() {
                            self.ring.recycle(bid);
                        }
                    }
                    return;
                }
            }
        }
    }

    /// One vectored write per connection with bytes waiting and none in flight.
    fn submit_sends(&mut self) {
        for key in std::mem::take(&mut self.to_send) {
            let Some(socket) = self.core.io_mut(key) else {
                continue;
            };
            socket.set(QUEUED, false);
            if socket.is(SENDING) {
                continue;
            }
            let (generation, fd) = (socket.generation(), socket.stream.as_raw_fd());
            let mut buffers = self.spare.pop().unwrap_or_default();
            let len = self.core.sendable(key, buffers.chunks_mut());
            if len == 0 {
                self.spare.push(buffers);
                continue;
            }
            let entry = self.sends.vacant_entry();
            let id = entry.key();
            let op = entry.insert(SendOp {
                key,
                generation,
                len,
                buffers,
            });
            // SAFETY: `op` stays in `sends` until its completion arrives (or is
            // leaked with the table by `UringDriver::drop`).
            #[allow(unsafe_code)]
            let queued = unsafe {
                self.ring
                    .writev(fd, &mut op.buffers, user_data(Kind::Send, generation, id))
            };
            if queued.is_ok()
                && let Some(socket) = self.core.io_mut(key)
            {
                socket.set(SENDING, true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_is_no_larger_than_the_epoll_drivers() {
        assert_eq!(std::mem::size_of::<Socket>(), 8);
        assert!(
            std::mem::size_of::<Socket>()
                <= std::mem::size_of::<crate::server::driver::epoll::Socket>()
        );
    }

    #[test]
    fn provided_buffers_are_lent_as_receives_run_dry_up_to_all_of_them() {
        // Without io_uring here (seccomp, an old kernel), there is nothing to test.
        let Ok(mut ring) = Ring::new(8, 128, 4096 + HEADROOM) else {
            return;
        };
        assert_eq!(ring.lent(), 32);
        ring.ran_dry();
        assert_eq!(ring.lent(), 64);
        // Many receives finding the ring dry in one batch grow it once.
        ring.ran_dry();
        assert_eq!(ring.lent(), 64);
        ring.submit_and_wait(Some(std::time::Duration::ZERO))
            .unwrap();
        ring.ran_dry();
        assert_eq!(ring.lent(), 128);
        ring.submit_and_wait(Some(std::time::Duration::ZERO))
            .unwrap();
        ring.ran_dry();
        assert_eq!(ring.lent(), 128);

        // A ring smaller than the first loan lends all of it at once.
        let Ok(ring) = Ring::new(8, 2, 4096 + HEADROOM) else {
            return;
        };
        assert_eq!(ring.lent(), 2);
    }

    #[test]
    fn flags_and_generation_share_the_state_without_touching_each_other() {
        let (listener, addr) = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let a = l.local_addr().unwrap();
            (l, a)
        };
        let stream = TcpStream::connect(addr).unwrap();
        let mut socket = Socket::new(stream, 0x1ff_fffe);
        assert_eq!(socket.generation(), 0xff_fffe);
        let flags = [RECEIVING, PAUSED, SENDING, QUEUED, EOF_PENDING, HELD];
        for flag in flags {
            assert!(!socket.is(flag));
        }
        for (i, flag) in flags.into_iter().enumerate() {
            socket.set(flag, true);
            assert!(socket.is(flag));
            assert_eq!(socket.generation(), 0xff_fffe);
            for other in &flags[i + 1..] {
                assert!(!socket.is(*other));
            }
        }
        assert!(socket.is(RECEIVING | PAUSED));
        socket.set(PAUSED, false);
        assert!(!socket.is(PAUSED));
        assert!(socket.is(RECEIVING | SENDING | QUEUED | EOF_PENDING | HELD));
        for flag in flags {
            socket.set(flag, false);
        }
        assert!(!socket.is(RECEIVING | PAUSED | SENDING | QUEUED | EOF_PENDING | HELD));
        assert_eq!(socket.generation(), 0xff_fffe);
        drop(listener);
    }
}
