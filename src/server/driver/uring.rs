//! The completion backend: io_uring. One submission and wait per turn
//! (`io_uring_enter`, with the timer wheel's timeout), a multishot accept, a multishot
//! receive per connection into the reactor's provided buffers, one vectored write per
//! connection at a time from the outbox's frozen bytes ([`Sends::Later`]), and an
//! eventfd for wake-ups. The turn itself is the loop's (`reactor.rs`); every decision
//! about a connection is the core's.
//!
//! Every operation's `user_data` names its kind, the connection's slab key and the
//! connection's generation: a completion that arrives after its connection was
//! released (and its key perhaps given to a new one) is recognised by the generation
//! and never reaches the new connection; what it carried (a provided buffer, the
//! bytes of a write) is given back or dropped.
//!
//! `unsafe` is confined to `ring.rs`, and to the three calls here of its two `unsafe
//! fn`s (a write, the wake-up's read), each of which keeps the memory it hands the
//! kernel in the backend until the completion (see `ring.rs`'s safety argument).

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::time::Duration;

use crate::server::core::slots::Slots;

use crate::server::config::ServerConfig;
use crate::server::core::timer::Tick;
use crate::server::core::{Core, RECV_HEADROOM, Sends, Transport};
use crate::server::driver::reactor::{Backend, Event, accept_error};
use crate::server::handler::Service;
use crate::server::shared::Wake;
use crate::server::stats::Stats;

// The one module of the backend allowed `unsafe` (see its docs for the argument).
mod peak;
#[allow(unsafe_code)]
mod ring;

use peak::Peak;

use ring::{Completion, HEADROOM, Ring, SendBuffers};

// The core puts a connection's kept bytes in the room in front of each buffer.
const _: () = assert!(HEADROOM >= RECV_HEADROOM);

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

/// A connection's descriptor and the state of its receive (the core's `IO`), packed
/// into 8 bytes: no larger than the epoll backend's, since every connection, idle or
/// not, holds one in the core's slab. Its slab key is not kept (the core passes it
/// to every [`Transport`] call), its writes' state is the core's, and the
/// completions held during a pause live in the backend's [`Held`] table.
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
/// The kernel reported the peer's EOF (or a receive error): no receive is armed
/// again.
const READ_ENDED: u32 = 1 << 26;
/// Receive completions wait for it in [`Held`] (they arrived while reading was
/// paused).
const HELD: u32 = 1 << 27;
/// A write is in flight (submitted, its completion not reaped).
const SENDING: u32 = 1 << 28;

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

/// The state the backend keeps for the connection at `key` in `core`, if that
/// connection is still of `generation`.
fn socket_of<S: Service>(
    core: &mut Core<S, Socket>,
    key: usize,
    generation: u32,
) -> Option<&mut Socket> {
    core.io_mut(key)
        .filter(|socket| socket.generation() == generation)
}

/// Receive completions that arrived while their connection's reading was paused (the
/// cancellation of its multishot receive was not submitted yet, or had not taken
/// effect), in order, by slab key. They keep their provided buffers and are handed to
/// the core when reading resumes, so a paused connection is never given more than
/// flow control allows. Only paused connections have an entry: rare, so a map beside
/// the slab rather than a field in every [`Socket`].
type Held = HashMap<usize, VecDeque<Completion>>;

/// Completed writes' buffers a reactor keeps for its next writes, at least: enough for
/// a turn of 64 connections without an allocation (more while more writes were in
/// flight, see [`Uring::keep_spare`]).
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

/// One reactor's io_uring backend.
pub(crate) struct Uring {
    ring: Ring,
    listener: Option<TcpListener>,
    /// The reactor's end of its eventfd, and where the kernel reads its counter to.
    eventfd: File,
    counter: Box<u64>,
    sends: Slots<SendOp>,
    /// Buffers of completed writes, kept for the next ones (no allocation per write).
    spare: Vec<SendBuffers>,
    /// What the last wait reaped, taken one at a time by [`Backend::next_event`]
    /// (the next one at `cursor`).
    completions: Vec<Completion>,
    cursor: usize,
    /// The completion queue overflowed before the last reap (counted at the next
    /// event, where the core's counters are at hand).
    overflowed: bool,
    /// Connections with bytes for a write, taken from the core at the end of the
    /// turn (kept for its allocation).
    ready: Vec<usize>,
    /// Connections whose receive is to be armed again.
    rearm: Vec<usize>,
    /// What paused connections received (see [`Held`]).
    held: Held,
    /// The generation of the last connection accepted.
    generation: u32,
    /// Sockets released this turn, closed once the operations queued for them are
    /// submitted (a descriptor is looked up at submission: closed earlier, its
    /// number could name the next accepted socket). Safe with operations in flight:
    /// a submitted operation holds its own reference to the socket, which its
    /// completion (or cancellation) releases.
    closing: Vec<TcpStream>,
    /// Accept with one multishot operation (a listening socket of this reactor's own,
    /// `reuse_port`), or one connection per operation (the listening socket shared by
    /// every reactor: a multishot accept there took every connection for the first
    /// reactor to arm it; single accepts re-armed after each completion spread them).
    multishot_accept: bool,
    /// An accept (or the listener's poll) is armed in the ring.
    accept_armed: bool,
    /// The shared listener was said ready: accept until `EAGAIN`.
    accepting: bool,
    /// Accepting is paused (the turn loop said so).
    accept_paused: bool,
    /// The most completions one turn had, and writes in flight, since the last
    /// tick (see [`Uring::shrink_lists`]).
    completions_peak: Peak,
    sends_peak: Peak,
    /// The tick the lists were last checked at.
    shrunk_at: Tick,
}

/// What a reactor's io_uring backend needs from the starting thread: its eventfd
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
pub(crate) fn new_ring(config: &ServerConfig) -> io::Result<Ring> {
    let size = config.read_buffer_size.clamp(4096, 64 << 10) + HEADROOM;
    Ring::new(
        config.io_uring_sq_entries,
        config.io_uring_provided_buffers,
        size,
    )
}

/// Whether this process may run the io_uring backend: makes (and drops) one ring, on
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

impl Drop for Uring {
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

impl Uring {
    /// A backend over `ring` (from [`new_ring`], made on this thread) and
    /// `listener` (the waker is in the server's shared state).
    pub fn new(
        ring: Ring,
        Parts { eventfd }: Parts,
        listener: TcpListener,
        config: &ServerConfig,
    ) -> Self {
        Self {
            ring,
            listener: Some(listener),
            eventfd,
            counter: Box::new(0),
            sends: Slots::default(),
            spare: Vec::new(),
            completions: Vec::new(),
            cursor: 0,
            overflowed: false,
            ready: Vec::new(),
            rearm: Vec::new(),
            held: Held::new(),
            generation: 0,
            closing: Vec::new(),
            multishot_accept: config.reuse_port,
            accept_armed: false,
            accepting: false,
            accept_paused: false,
            completions_peak: Peak::default(),
            sends_peak: Peak::default(),
            shrunk_at: 0,
        }
    }

    /// Arms the accept: a multishot accept on a listening socket of this reactor's
    /// own; on the shared one, a multishot poll, after which this reactor accepts
    /// what it can with plain `accept` calls, as the epoll backend does (an accept
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

    fn arm_wake(&mut self) -> io::Result<()> {
        let fd = self.eventfd.as_raw_fd();
        // SAFETY: the counter lives as long as the backend, and `Uring::drop` leaks
        // it if the read may still be in flight.
        #[allow(unsafe_code)]
        unsafe {
            self.ring
                .read_eventfd(fd, &mut self.counter, user_data(Kind::Wake, 0, 0))
        }
    }

    /// An accept (or the shared listener's poll) completed: the connection it took,
    /// or an error that pauses accepting; `None` when there is nothing for the loop.
    fn accepted(&mut self, completion: &Completion) -> Option<Event<Socket>> {
        if !completion.more() {
            self.accept_armed = false;
        }
        let event = if self.accept_paused {
            // What the cancelled accept still reported is a connection: opened. (A
            // poll's result is an event mask, not a descriptor: nothing to open, and
            // the shared listener is drained on resuming.)
            self.multishot_accept
                .then(|| ring::accepted_fd(completion.result))
                .flatten()
                .and_then(|fd| self.socket(fd.into()))
        } else if self.multishot_accept {
            match completion.result {
                fd if fd >= 0 => ring::accepted_fd(fd).and_then(|fd| self.socket(fd.into())),
                e => accept_error(io::Error::from_raw_os_error(-e))
                    .filter(|_| e != -libc::ECANCELED)
                    .map(Event::AcceptFailed),
            }
        } else {
            self.accepting = true;
            None
        };
        if !matches!(event, Some(Event::AcceptFailed(_)))
            && !self.accept_armed
            && !self.accept_paused
        {
            let _ = self.arm_accept();
        }
        event
    }

    /// Accepts one connection from the shared listener; `None` once it has nothing
    /// more for this reactor.
    fn accept(&mut self) -> Option<Event<Socket>> {
        loop {
            let listener = self.listener.as_ref()?;
            match listener.accept() {
                Ok((stream, _)) => {
                    if let Some(event) = self.socket(stream) {
                        return Some(event);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) => {
                    if let Some(error) = accept_error(e) {
                        return Some(Event::AcceptFailed(error));
                    }
                }
            }
        }
    }

    /// An accepted connection's state, under the next generation (`None` when its
    /// peer is gone already).
    fn socket(&mut self, stream: TcpStream) -> Option<Event<Socket>> {
        let peer = stream.peer_addr().ok()?;
        let _ = stream.set_nodelay(true);
        self.generation = self.generation.wrapping_add(1) & GENERATION;
        Some(Event::Accepted(Socket::new(stream, self.generation), peer))
    }

    /// A receive completed for connection `key` of `generation`.
    fn received<S: Service>(
        &mut self,
        core: &mut Core<S, Socket>,
        key: usize,
        generation: u32,
        completion: Completion,
    ) {
        let Some(socket) = socket_of(core, key, generation) else {
            // A late completion of a connection gone: give its buffer back.
            if let Some(bid) = completion.buffer() {
                self.ring.recycle(bid);
            }
            return;
        };
        if !completion.more() {
            socket.set(RECEIVING, false);
        }
        let result = completion.result;
        if result <= 0 && result != -libc::ENOBUFS && result != -libc::ECANCELED {
            socket.set(READ_ENDED, true);
        }
        if socket.is(PAUSED) || socket.is(HELD) {
            // Reading is paused (the receive was cancelled, but what it had already
            // taken keeps coming): hold it, in order, until reading resumes.
            socket.set(HELD, true);
            let resumed = !socket.is(PAUSED);
            self.held.entry(key).or_default().push_back(completion);
            if resumed {
                // Resumed, with completions still held: they go first.
                self.rearm.push(key);
            }
            return;
        }
        core.contained(Some(key), self, |core, this| {
            this.process(core, key, completion);
        });
        if let Some(socket) = socket_of(core, key, generation)
            && !socket.is(RECEIVING | PAUSED | READ_ENDED)
        {
            self.rearm.push(key);
        }
    }

    /// Hands a connection whose pause ended what arrived during the pause, in order,
    /// until it pauses again.
    fn release_held<S: Service>(&mut self, core: &mut Core<S, Socket>, key: usize) {
        let Some(socket) = core.io_mut(key) else {
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
            core.contained(Some(key), self, |core, this| {
                this.process(core, key, completion);
            });
            match socket_of(core, key, generation) {
                Some(socket) if socket.is(PAUSED) => {
                    if !held.is_empty() {
                        socket.set(HELD, true);
                        self.held.insert(key, held);
                    }
                    return;
                }
                Some(_) => {}
                None => {
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

    /// Hands a receive's bytes (or its EOF, or its error) to the core.
    fn process<S: Service>(
        &mut self,
        core: &mut Core<S, Socket>,
        key: usize,
        completion: Completion,
    ) {
        match completion.result {
            n if n > 0 => {
                let Some(bid) = completion.buffer() else {
                    return;
                };
                let buf = self.ring.buffer(bid, n as usize);
                // A panic of our own while decoding (handler panics are caught nearer)
                // fails this connection only, one ring out: the buffer goes back
                // first, or each one would cost the ring a buffer for good.
                let outcome = catch_unwind(AssertUnwindSafe(|| core.received(key, buf, HEADROOM)));
                self.ring.recycle(bid);
                if let Err(panic) = outcome {
                    resume_unwind(panic);
                }
                core.write(key, self);
                core.served(key, self);
            }
            e if e == -libc::ENOBUFS || e == -libc::ECANCELED => {
                if e == -libc::ENOBUFS {
                    Stats::bump(&core.shared().stats.recv_buffers_exhausted);
                    self.ring.ran_dry();
                }
                if let Some(bid) = completion.buffer() {
                    self.ring.recycle(bid);
                }
            }
            _ => {
                core.eof(key);
                core.served(key, self);
            }
        }
    }

    /// A write completed.
    fn sent<S: Service>(&mut self, core: &mut Core<S, Socket>, id: usize, result: i32) {
        let Some(op) = self.sends.try_remove(id) else {
            return;
        };
        self.keep_spare(op.buffers);
        let Some(socket) = socket_of(core, op.key, op.generation) else {
            return;
        };
        socket.set(SENDING, false);
        let written = usize::try_from(result).ok();
        let short = written.is_some_and(|n| n < op.len);
        core.contained(Some(op.key), self, |core, this| {
            core.sent(op.key, written, short, this);
        });
    }

    /// Keeps a completed write's buffers for the next write (their bytes dropped),
    /// unless enough are kept or they grew large.
    fn keep_spare(&mut self, mut buffers: SendBuffers) {
        buffers.clear();
        // As many as writes were in flight lately (a broadcast to 10,000 has 10,000 a
        // turn), at least [`SPARE_SEND_BUFFERS`]; `shrink_lists` gives them back with
        // the table's room once such a burst is over.
        let keep = SPARE_SEND_BUFFERS.max(self.sends.capacity());
        if self.spare.len() < keep && buffers.capacity() <= SPARE_MAX_CHUNKS {
            self.spare.push(buffers);
        }
    }

    /// Arms again the receives that ended (buffers ran dry, a pause ended, the
    /// kernel stopped a multishot).
    fn rearm_receives<S: Service>(&mut self, core: &mut Core<S, Socket>) {
        for key in std::mem::take(&mut self.rearm) {
            self.release_held(core, key);
            let Some(socket) = core.io_mut(key) else {
                continue;
            };
            if socket.is(RECEIVING | PAUSED | HELD | READ_ENDED) {
                continue;
            }
            socket.set(RECEIVING, true);
            let ud = user_data(Kind::Recv, socket.generation(), key);
            let fd = socket.stream.as_raw_fd();
            let _ = self.ring.recv(fd, ud);
        }
    }

    /// One vectored write per connection the core listed as ready and with no write
    /// in flight.
    fn submit_sends<S: Service>(&mut self, core: &mut Core<S, Socket>) {
        let mut ready = std::mem::take(&mut self.ready);
        core.take_ready(&mut ready);
        for &key in &ready {
            let Some(socket) = core.io_mut(key) else {
                continue;
            };
            let (generation, fd) = (socket.generation(), socket.stream.as_raw_fd());
            let mut buffers = self.spare.pop().unwrap_or_default();
            let len = core.sendable(key, buffers.chunks_mut());
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
            // leaked with the table by `Uring::drop`).
            #[allow(unsafe_code)]
            let queued = unsafe {
                self.ring
                    .writev(fd, &mut op.buffers, user_data(Kind::Send, generation, id))
            };
            if queued.is_ok()
                && let Some(socket) = core.io_mut(key)
            {
                socket.set(SENDING, true);
            }
            if queued.is_err() {
                // The submission queue is full even after a submit: the write is
                // reported failed, which ends the connection.
                self.sends.remove(id);
                core.contained(Some(key), self, |core, this| {
                    core.sent(key, None, false, this);
                });
            }
        }
        self.ready = ready;
    }

    /// Once per timer tick: the completion list and the table of writes give back
    /// what a burst grew them to (see `peak.rs`).
    fn shrink_lists(&mut self, tick: Tick) {
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
}

impl Transport<Socket> for Uring {
    fn sends(&self) -> Sends {
        Sends::Later
    }

    fn write_now(&mut self, _: usize, _: &mut Socket, _: &[IoSlice<'_>]) -> io::Result<usize> {
        unreachable!("a Sends::Later backend writes from Core::sendable")
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
        // with the table by `Uring::drop`).
        #[allow(unsafe_code)]
        let queued = unsafe { self.ring.writev(io.stream.as_raw_fd(), &mut op.buffers, ud) };
        match queued {
            Ok(()) => io.set(SENDING, true),
            Err(_) => drop(self.sends.remove(id)),
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

    fn pause_reading(&mut self, key: usize, io: &mut Socket) {
        io.set(PAUSED, true);
        if io.is(RECEIVING) {
            let recv = user_data(Kind::Recv, io.generation(), key);
            let _ = self.ring.cancel(recv, user_data(Kind::Other, 0, 0));
        }
    }

    fn resume_reading(&mut self, key: usize, io: &mut Socket) {
        // The receive is armed again at the end of the turn (`rearm_receives`), or
        // when its cancellation completes if that is still due.
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
        if io.is(SENDING) {
            // A write waiting on a peer that does not read would hold the socket open
            // (its own reference) for as long as the peer lets it: with its buffers,
            // outside every count. Every operation on it is cancelled (the last words
            // of `write_last` go only as far as the socket takes them at once).
            let _ = self
                .ring
                .cancel_socket(io.stream.as_raw_fd(), user_data(Kind::Other, 0, 0));
        } else if io.is(RECEIVING) {
            let recv = user_data(Kind::Recv, io.generation(), key);
            let _ = self.ring.cancel(recv, user_data(Kind::Other, 0, 0));
        }
        // Closed after the next submission (see `closing`).
        self.closing.push(io.stream);
    }
}

impl Backend for Uring {
    type Io = Socket;

    fn start(&mut self) -> io::Result<()> {
        self.arm_accept()?;
        self.arm_wake()
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.ring.submit_and_wait(timeout)?;
        self.closing.clear();
        self.completions.clear();
        self.cursor = 0;
        self.overflowed |= self.ring.completions(&mut self.completions);
        self.completions_peak.see(self.completions.len());
        Ok(())
    }

    fn next_event<S: Service>(
        &mut self,
        core: &mut Core<S, Socket>,
    ) -> io::Result<Option<Event<Socket>>> {
        if std::mem::take(&mut self.overflowed) {
            Stats::bump(&core.shared().stats.cq_overflows);
        }
        loop {
            if self.accepting {
                match self.accept() {
                    Some(event) => return Ok(Some(event)),
                    None => self.accepting = false,
                }
            }
            let Some(&completion) = self.completions.get(self.cursor) else {
                return Ok(None);
            };
            self.cursor += 1;
            let (kind, generation, index) = decode(completion.user_data);
            match kind {
                k if k == Kind::Accept as u8 => {
                    if let Some(event) = self.accepted(&completion) {
                        return Ok(Some(event));
                    }
                }
                k if k == Kind::Wake as u8 => {
                    self.arm_wake()?;
                    return Ok(Some(Event::Woken));
                }
                k if k == Kind::Recv as u8 => self.received(core, index, generation, completion),
                k if k == Kind::Send as u8 => self.sent(core, index, completion.result),
                _ => {}
            }
        }
    }

    fn opened<S: Service>(&mut self, core: &mut Core<S, Socket>, key: usize) {
        let Some(socket) = socket_of(core, key, self.generation) else {
            return;
        };
        if socket.is(RECEIVING | PAUSED | HELD | READ_ENDED) {
            return;
        }
        socket.set(RECEIVING, true);
        let fd = socket.stream.as_raw_fd();
        let _ = self
            .ring
            .recv(fd, user_data(Kind::Recv, self.generation, key));
    }

    fn pause_accepting(&mut self) {
        self.accept_paused = true;
        self.accepting = false;
        if self.accept_armed {
            let accept = user_data(Kind::Accept, 0, 0);
            let _ = self.ring.cancel(accept, user_data(Kind::Other, 0, 0));
        }
    }

    fn resume_accepting(&mut self) {
        // The accept (or poll) is armed again, unless its cancellation has not
        // completed yet (then its completion arms it), and the shared listener is
        // drained of what waited.
        self.accept_paused = false;
        if !self.multishot_accept {
            self.accepting = true;
        }
        if !self.accept_armed {
            let _ = self.arm_accept();
        }
    }

    fn stop_accepting(&mut self) {
        // The armed accept holds the listening socket until its cancellation is
        // submitted.
        self.accept_paused = false;
        self.accepting = false;
        if let Some(listener) = self.listener.take() {
            let accept = user_data(Kind::Accept, 0, 0);
            let _ = self.ring.cancel(accept, user_data(Kind::Other, 0, 0));
            let _ = self.ring.submit();
            drop(listener);
        }
    }

    fn end_turn<S: Service>(&mut self, core: &mut Core<S, Socket>) -> io::Result<()> {
        self.rearm_receives(core);
        self.submit_sends(core);
        if !self.closing.is_empty() {
            self.ring.submit()?;
            self.closing.clear();
        }
        self.sends_peak.see(self.sends.len());
        self.shrink_lists(core.tick());
        Ok(())
    }

    fn failed(&mut self) {
        // The 1011 close frames go out (their writes hold the sockets) before the
        // ring is dropped.
        let _ = self.ring.submit();
        self.closing.clear();
    }
}

/// Runs reactor `index` on io_uring on this thread: makes its ring, then runs it
/// until a graceful shutdown completes or it fails (reported, as with
/// [`crate::server::driver::reactor::Reactor::run_reported`]; a ring that cannot be
/// made is such a failure).
///
/// # Errors
///
/// The [`crate::server::failure::ReactorFailure`].
pub(crate) fn run<S: Service>(
    index: usize,
    parts: Parts,
    listener: TcpListener,
    service: std::sync::Arc<S>,
    config: std::sync::Arc<ServerConfig>,
    shared: std::sync::Arc<crate::server::shared::Shared>,
) -> Result<(), crate::server::failure::ReactorFailure> {
    match new_ring(&config) {
        Ok(ring) => {
            let backend = Uring::new(ring, parts, listener, &config);
            let core = Core::new(index, service, config, shared, std::time::Instant::now());
            crate::server::driver::reactor::Reactor::new(core, backend).run_reported()
        }
        Err(error) => {
            let failure = crate::server::failure::ReactorFailure {
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
        let flags = [RECEIVING, PAUSED, READ_ENDED, HELD, SENDING];
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
        assert!(socket.is(RECEIVING | READ_ENDED | HELD | SENDING));
        for flag in flags {
            socket.set(flag, false);
        }
        assert!(!socket.is(RECEIVING | PAUSED | READ_ENDED | HELD | SENDING));
        assert_eq!(socket.generation(), 0xff_fffe);
        drop(listener);
    }
}
