//! The backend-neutral reactor core: one thread's connections and everything decided
//! about them, with no system call and no clock of its own.
//!
//! The core owns the slab of connections, the reactor state (cork, turn batch, topics,
//! publishes), the timer wheel, the list of connections to flush at the end of the
//! turn, publish delivery and graceful shutdown. A backend (`driver/`) owns the
//! sockets and the event source; the turn loop (`driver/reactor.rs`), written once
//! for every backend, and the backend tell the core what happened:
//!
//! | what happened                        | the call                                   |
//! |--------------------------------------|--------------------------------------------|
//! | a new connection                     | [`Core::vacant_key`], then [`Core::open`]  |
//! | bytes read (after [`RECV_HEADROOM`]) | [`Core::received`], then [`Core::write`]   |
//! | EOF or a read error                  | [`Core::eof`]                              |
//! | room to write again (readiness)      | [`Core::write`]                            |
//! | a write completed (completion)       | [`Core::sent`]                             |
//! | done serving a connection            | [`Core::served`]                           |
//! | a wake-up from another thread        | [`Core::wake`]                             |
//! | a turn starts, a turn ends           | [`Core::begin_turn`], [`Core::end_turn`]   |
//!
//! and asks what to do next: [`Core::poll_timeout`] (how long it may sleep),
//! [`Core::finished`] (shutdown complete), [`Core::take_ready`] and
//! [`Core::sendable`] (what a completion backend writes), and, through its
//! [`Transport`], what to write now, when to pause, resume or stop reading, when to
//! shut down a socket's write side and when to forget a socket. Every instant is the
//! caller's (`now` arguments), so tests drive the core with in-memory peers and a
//! manual clock (`core/tests.rs`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::server::core::slots::Slots;

use crate::protocol::handshake::Refusal;
use crate::server::admission::AtAccept;
use crate::server::config::ServerConfig;
use crate::server::conn_api::ConnId;
use crate::server::core::batch::BatchRange;
use crate::server::core::conn::Connection;
use crate::server::core::conn::state::ConnState;
use crate::server::core::outbox::{Chunk, Flushed};
use crate::server::core::reactor_state::ReactorState;
use crate::server::handler::Service;
use crate::server::pubsub::Publish;
use crate::server::shared::Shared;
use crate::server::stats::Stats;
use timer::TimerWheel;

pub(crate) use transport::{Sends, Transport};

/// The environment a connection is served in, borrowed field by field from a core
/// (so the slab stays borrowable beside it).
macro_rules! env {
    ($core:ident) => {
        $crate::server::core::conn::Env {
            service: &*$core.service,
            config: &$core.config,
            reactor: &mut $core.reactor,
        }
    };
}

mod admission;
pub(crate) mod batch;
mod commands;
pub(crate) mod conn;
mod containment;
mod delivery;
mod inbox;
pub(crate) mod outbox;
pub(crate) mod reactor_state;
mod report;
mod shutdown;
pub(crate) mod slots;
pub(crate) mod timer;
mod timers;
mod tls;
mod transport;

#[cfg(test)]
mod tests;

/// A core whose slab grew past this many slots gives its memory back when its last
/// connection leaves (see [`Core::release_idle_memory`]).
const KEEP_IDLE_SLOTS: usize = 1024;

/// Free bytes a backend leaves in front of what it reads (see [`Core::received`]):
/// room for the bytes a connection kept from its last read (a partial frame header,
/// at most 131 bytes), put in front without a copy of what was read.
pub(crate) const RECV_HEADROOM: usize = 256;

/// A connection, the driver's state for it, and the core's bookkeeping.
struct Slot<H, IO> {
    io: IO,
    conn: Connection<H>,
    /// Our side of the TCP connection was shut down (finishing, waiting for EOF).
    write_shut: bool,
    /// Counted against `max_connections` (a connection refused with 503 is not, so
    /// refusals cannot keep the server full).
    counted: bool,
    /// Reading is paused: more than `high_water_mark` bytes wait in the outbox.
    reads_paused: bool,
    /// In the list of connections ready for a [`Sends::Later`] write.
    ready: bool,
    /// A [`Sends::Later`] write of its bytes is in flight (taken with
    /// [`Core::sendable`], not yet reported with [`Core::sent`]).
    in_flight: bool,
    /// The peer's EOF arrived while replies were on their way to a
    /// [`Sends::Later`] write: the connection ends once they are written.
    eof_pending: bool,
    /// TLS state, for a connection to a TLS server (see `tls.rs`).
    tls: Option<Box<crate::server::tls::session::Session>>,
    /// A trusted proxy's PROXY header still to read (see `proxy.rs`).
    proxy: Option<Box<crate::protocol::proxy::ProxyReader>>,
}

/// One reactor's connections and state, without I/O (see the module docs). `IO` is
/// the driver's per-connection state, stored beside each connection and handed back
/// to the driver through its [`Transport`].
pub(crate) struct Core<S: Service, IO> {
    index: usize,
    conns: Slots<Slot<S::Handler, IO>>,
    reactor: ReactorState,
    wheel: TimerWheel,
    fired: Vec<timer::Timer>,
    service: Arc<S>,
    config: Arc<ServerConfig>,
    shared: Arc<Shared>,
    /// Connections with queued bytes to write at the end of the turn.
    dirty: Vec<usize>,
    /// Connections with bytes for a [`Sends::Later`] write (see [`Core::take_ready`]).
    ready: Vec<usize>,
    /// Publishes to hand to the other reactors at the end of the turn.
    outgoing: Vec<Publish>,
    /// Scratch list of subscriber keys.
    targets: Vec<usize>,
    /// Scratch list of frame ranges in the turn batch.
    frames: Vec<BatchRange>,
    /// The compressed counterparts of `frames` (permessage-deflate subscribers).
    deflated_frames: Vec<BatchRange>,
    /// Scratch list of messages sent through handles (see `commands.rs`).
    sends: Vec<(
        crate::server::command::Target,
        crate::server::command::Outgoing,
    )>,
    /// The frame arena drained at the last wake-up, handed back to the inbox.
    spare_frames: Vec<u8>,
    /// The command list drained at the last wake-up, handed back to the inbox.
    spare_commands: Vec<(usize, crate::server::command::Command)>,
    next_id: u64,
    /// A shutdown was seen: the driver stops accepting.
    stopping: bool,
    /// A shutdown was seen this turn: settle at its end (see `shared.rs`).
    settle_due: bool,
    /// This reactor has settled for a shutdown (or failed): it counted itself once.
    settled: bool,
    /// When a graceful shutdown must end (set when the connections start closing).
    shutdown_deadline: Option<Instant>,
}

impl<S: Service, IO> Core<S, IO> {
    /// The core of reactor `index` of the server `shared`; its clock starts at
    /// `origin` (ticks of the timer wheel count from there).
    pub fn new(
        index: usize,
        service: Arc<S>,
        config: Arc<ServerConfig>,
        shared: Arc<Shared>,
        origin: Instant,
    ) -> Self {
        Self {
            index,
            conns: Slots::default(),
            reactor: ReactorState::for_reactor(&shared, index),
            wheel: TimerWheel::new(origin),
            fired: Vec::new(),
            service,
            config,
            shared,
            dirty: Vec::new(),
            ready: Vec::new(),
            outgoing: Vec::new(),
            targets: Vec::new(),
            frames: Vec::new(),
            deflated_frames: Vec::new(),
            sends: Vec::new(),
            spare_commands: Vec::new(),
            spare_frames: Vec::new(),
            next_id: 1,
            stopping: false,
            settle_due: false,
            settled: false,
            shutdown_deadline: None,
        }
    }

    /// This reactor's index among the server's.
    pub fn index(&self) -> usize {
        self.index
    }

    /// What the server's threads share (counters, inboxes).
    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Connections held (open, handshaking, closing).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// The current tick (as of the last [`Core::begin_turn`]).
    pub fn tick(&self) -> timer::Tick {
        self.reactor.now
    }

    /// The driver's state for the connection at `key`, if it is still there.
    pub fn io_mut(&mut self, key: usize) -> Option<&mut IO> {
        self.conns.get_mut(key).map(|slot| &mut slot.io)
    }

    /// The key the next [`Core::open`] will give its connection (so the driver can
    /// register the socket under it first).
    pub fn vacant_key(&self) -> usize {
        self.conns.vacant_key()
    }

    /// A turn starts at `now`: the clock the connections see moves on.
    pub fn begin_turn(&mut self, now: Instant) {
        self.reactor.now = self.wheel.tick_of(now);
    }

    /// How long the backend may wait for events from `now`: zero while deliveries,
    /// publishes or writes decided after the last flush wait (taken at the next
    /// turn), until the next tick while timers are armed, a shutdown runs or `waiting` (the driver's own
    /// timer, such as paused accepts) is set, and for ever (`None`) otherwise.
    pub fn poll_timeout(&self, now: Instant, waiting: bool) -> Option<Duration> {
        if !self.dirty.is_empty() || !self.outgoing.is_empty() || !self.ready.is_empty() {
            // Deliveries, publishes for the other reactors or writes decided after
            // the turn ended (a backend serving reads in its own `end_turn`): the next
            // turn takes them at once.
            Some(Duration::ZERO)
        } else {
            (!self.wheel.is_empty() || waiting || self.shutdown_deadline.is_some())
                .then(|| self.wheel.until_next_tick(now))
        }
    }

    /// The turn ends at `now`: timers run, publishes are handed to the other
    /// reactors, a shutdown seen this turn is settled (see `shared.rs`), every
    /// connection delivered to is written, and the turn batch is sealed (see
    /// `batch.rs`).
    pub fn end_turn<T: Transport<IO>>(&mut self, now: Instant, t: &mut T) {
        // Timers first: their callbacks may publish too, and nothing delivered in a
        // turn may wait for the next event to be written.
        self.run_timers(now, t);
        self.forward_publishes();
        if std::mem::take(&mut self.settle_due) {
            // Every publish accepted before the shutdown is in the other reactors'
            // inboxes now, ahead of the `Closing` that the last settle sends.
            self.settle();
        }
        self.flush_dirty(t);
    }

    /// Records how long the turn took (from the wake-up to the end of
    /// [`Core::end_turn`]), for the turn-duration histogram.
    pub fn observe_turn(&self, took: Duration) {
        self.reactor.counters.turns.observe(took);
    }

    /// Takes a connection just accepted from `peer` (its driver state `io`), at the
    /// key [`Core::vacant_key`] gave. Over `max_connections` it is refused with 503;
    /// the admission settings then decide (`admission.rs`): refused with 429 (or 503)
    /// over a per-address limit, or a PROXY header to read first from a trusted proxy.
    pub fn open<T: Transport<IO>>(&mut self, io: IO, peer: std::net::SocketAddr, t: &mut T) {
        self.reactor.reserve_cork();
        let over_capacity =
            self.shared.stats.tcp.load(Ordering::Relaxed) >= self.config.max_connections;
        let tls = self.tls_session();
        // A TLS server that cannot start a session drops the connection: never
        // plaintext on its port.
        let no_session = self.shared.tls.is_some() && tls.is_none();
        let decision = if over_capacity || no_session {
            AtAccept::Serve(None)
        } else {
            self.admit(peer)
        };
        let refused = matches!(decision, AtAccept::Refuse(_));
        let counted = !over_capacity && !no_session && !refused;
        let slot = self.conns.vacant_entry();
        let key = slot.key();
        let id = ConnId(((self.index as u64) << 48) | self.next_id);
        self.next_id += 1;
        let now = self.reactor.now;
        let state = ConnState::new(key, id, peer, now);
        let mut conn = Connection::new(state, &self.config, now);
        if no_session {
            conn.abandon();
        } else if over_capacity {
            Stats::bump(&self.shared.stats.refused_over_capacity);
            let mut bytes = Vec::new();
            Refusal::service_unavailable("too many connections").write(&mut bytes);
            conn.finish_with(bytes.into(), &self.config, now, tls.is_some());
        }
        let proxy = admission::apply(
            &self.shared,
            &self.reactor,
            &self.config,
            decision,
            &mut conn,
            tls.is_some(),
        );
        if counted {
            self.shared.stats.tcp.fetch_add(1, Ordering::Relaxed);
        }
        slot.insert(Slot {
            io,
            conn,
            write_shut: false,
            counted,
            reads_paused: false,
            ready: false,
            in_flight: false,
            eof_pending: false,
            tls,
            proxy,
        });
        self.contained(Some(key), t, |core, t| core.served(key, t));
    }

    /// How many bytes the connection at `key` kept from its last read (a partial frame
    /// header, at most 131; 0 for a TLS connection, whose kept bytes are plaintext):
    /// the least room a backend leaves in front of what it reads next (see
    /// [`Core::received`]). A backend that chooses where a read lands (epoll) reads
    /// right behind that room; one whose buffers the kernel picks (io_uring) leaves
    /// [`RECV_HEADROOM`].
    pub fn kept(&self, key: usize) -> usize {
        self.conns
            .get(key)
            .filter(|slot| slot.tls.is_none() && slot.proxy.is_none())
            .map_or(0, |slot| slot.conn.pending_len())
    }

    /// Bytes arrived for the connection at `key`: `buf[start..]` is what was read,
    /// and `buf[..start]` is free room (at least [`Core::kept`] bytes; a backend that
    /// cannot know leaves [`RECV_HEADROOM`]) where the bytes the connection kept from
    /// its last read go, so that they and the new ones
    /// are decoded as one, in place (unmasked where they lie). For a TLS connection
    /// the bytes are ciphertext, decrypted first (see `tls.rs`). Replies go into the
    /// cork: the caller calls [`Core::write`] next. Returns whether the connection
    /// still reads (false once it is done).
    pub fn received(&mut self, key: usize, buf: &mut [u8], start: usize) -> bool {
        let Some(slot) = self.conns.get_mut(key) else {
            return false;
        };
        if slot.proxy.is_some() {
            // Nothing is kept before the PROXY header is complete.
            self.received_proxy_header(key, &mut buf[start..]);
        } else if slot.tls.is_some() {
            // A TLS connection's pending bytes are plaintext: they go in front of the
            // next record's plaintext (`tls.rs`), not of the ciphertext read.
            self.received_tls(key, &mut buf[start..]);
        } else {
            let held = slot.conn.pending_len();
            assert!(
                held <= start,
                "{held} bytes kept, {start} bytes of headroom"
            );
            let data = &mut buf[start - held..];
            slot.conn.take_pending(data);
            let mut env = env!(self);
            slot.conn.receive(data, &mut env);
        }
        self.conns.get(key).is_some_and(|slot| !slot.conn.is_done())
    }

    /// The peer ended its side, or reading failed. While replies are on their way
    /// to a [`Sends::Later`] write, the connection ends once they are written (as a
    /// [`Sends::Now`] backend writes what a read produced before it reads the EOF).
    pub fn eof(&mut self, key: usize) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        if slot.in_flight || (slot.ready && slot.has_sendable()) {
            slot.eof_pending = true;
            return;
        }
        let mut env = env!(self);
        slot.conn.eof(&mut env);
    }

    /// Read-side flow control: reading the connection at `key` pauses
    /// ([`Transport::pause_reading`]) once more than `high_water_mark` bytes wait for
    /// its peer (TCP then slows the peer down); [`Core::resume_reading`] says when to
    /// go on.
    fn pause_reading<T: Transport<IO>>(&mut self, key: usize, t: &mut T) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        if slot.reads_paused {
            return;
        }
        if slot.unsent() > self.config.high_water_mark || slot.conn.holds_too_much(&self.config) {
            slot.reads_paused = true;
            t.pause_reading(key, &mut slot.io);
        }
    }

    /// Lists the connection at `key` for a [`Sends::Later`] write if bytes wait and
    /// no write of them is in flight or listed.
    fn list_ready(&mut self, key: usize) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        if !slot.ready && !slot.in_flight && !slot.all_sent() {
            slot.ready = true;
            self.ready.push(key);
        }
    }

    /// Writes the cork and the connection's queue through the backend (see
    /// [`Sends`]); tells the handler when it drained (its `on_drain` may send more,
    /// written in the same call). What the backend does not take stays queued, in
    /// order; reading pauses when too much waits.
    pub fn write<T: Transport<IO>>(&mut self, key: usize, t: &mut T) {
        self.write_out(key, t);
        if t.sends() == Sends::Later {
            self.list_ready(key);
        }
        self.pause_reading(key, t);
    }

    /// [`Core::write`] without the bookkeeping after it.
    fn write_out<T: Transport<IO>>(&mut self, key: usize, t: &mut T) {
        loop {
            let Some(slot) = self.conns.get_mut(key) else {
                self.reactor.cork.clear();
                return;
            };
            if slot.tls.is_some() {
                return self.write_tls(key, t);
            }
            if slot.conn.state.outbox.is_empty() && self.reactor.cork.is_empty() {
                return;
            }
            let had_queue = !slot.conn.state.outbox.is_empty();
            let reactor = &mut self.reactor;
            if t.sends() == Sends::Later {
                // Kept, in order, for the backend's write after the turn: the replies
                // go into the turn batch, which the seal freezes into one buffer
                // shared by every connection's write (a copy of their own only when
                // too large for it).
                let cork = &mut reactor.cork;
                let state = &mut slot.conn.state;
                if cork.is_empty() {
                    return;
                }
                if reactor.batch.takes(cork.len(), 0) {
                    let range = reactor.batch.append(cork);
                    state.outbox.push_chunk(Chunk::Batched(range));
                    reactor.batch.hold(key, &mut state.batch_holder);
                } else {
                    state.outbox.push(bytes::Bytes::copy_from_slice(cork));
                }
                cork.clear();
                return;
            }
            let io = &mut slot.io;
            let mut wrote = false;
            let flushed = slot.conn.state.outbox.flush_with(
                &mut reactor.cork,
                &reactor.batch,
                transport::writer(t, key, io, &mut wrote),
            );
            slot.conn.state.wrote_since_ping |= wrote && !slot.all_sent();
            if !self.flushed(key, flushed, had_queue, t) {
                return;
            }
        }
    }

    /// What a write of the connection at `key` came to (`had_queue`: its outbox held
    /// bytes before): the socket took everything (the handler hears `on_drain` if it
    /// waited for it), refused some, or failed (the connection ends). Returns whether
    /// to write again: `on_drain` sent more.
    fn flushed<T: Transport<IO>>(
        &mut self,
        key: usize,
        flushed: std::io::Result<Flushed>,
        had_queue: bool,
        t: &T,
    ) -> bool {
        let Some(slot) = self.conns.get_mut(key) else {
            return false;
        };
        match flushed {
            Ok(Flushed::All) => {
                slot.conn.state.socket_full = false;
                if !had_queue && !slot.conn.state.needs_drain {
                    return false;
                }
                let mut env = env!(self);
                slot.conn.drained(&mut env);
                !self.reactor.cork.is_empty()
            }
            Ok(Flushed::Blocked) => {
                // Bytes kept for a write after the turn say nothing of the socket:
                // its completions do (`sent`).
                if t.sends() == Sends::Now {
                    slot.conn.state.socket_full = true;
                }
                false
            }
            Err(_) => {
                let mut env = env!(self);
                slot.conn.eof(&mut env);
                false
            }
        }
    }

    /// For a [`Sends::Later`] backend, after [`Core::end_turn`]: swaps the list of
    /// connections with bytes ready for a write into `out` (cleared first). A key in
    /// it may name a connection gone since (then [`Core::sendable`] gives nothing), or
    /// one given its slot since (then it gives that connection's own bytes, if any:
    /// never another's).
    pub fn take_ready(&mut self, out: &mut Vec<usize>) {
        // Bytes kept since `end_turn` sealed the batch (a backend handing over reads
        // in its own `end_turn`, such as completions held during a pause) went into
        // the batch too: sealed now, every listed connection's bytes can be frozen.
        self.seal_batch();
        out.clear();
        std::mem::swap(&mut self.ready, out);
        for &key in out.iter() {
            if let Some(slot) = self.conns.get_mut(key) {
                slot.ready = false;
            }
        }
    }

    /// For a [`Sends::Later`] backend, between turns (after [`Core::end_turn`] sealed
    /// the turn batch): appends to `out` what waits for the connection at `key`, as
    /// frozen shared buffers that stay alive and unmoved until the backend drops them
    /// (after the write's completion, whatever became of the connection), and
    /// returns their length (0: nothing to send, or a write is already in flight).
    /// The bytes stay queued until [`Core::sent`] reports the write.
    pub fn sendable(&mut self, key: usize, out: &mut Vec<bytes::Bytes>) -> usize {
        const MAX_CHUNKS: usize = 64;
        let Some(slot) = self.conns.get_mut(key) else {
            return 0;
        };
        if slot.in_flight {
            return 0;
        }
        let len = match slot.tls.as_deref_mut() {
            // A TLS connection's ciphertext (`Core::write` encrypted its outbox).
            Some(tls) => tls.wire().frozen(out, MAX_CHUNKS),
            None => slot.conn.state.outbox.frozen(out, MAX_CHUNKS),
        };
        slot.in_flight = len > 0;
        len
    }

    /// A [`Sends::Later`] backend's write of `n` bytes from what [`Core::sendable`]
    /// gave finished (or failed: `None`); `short` when the socket took less than the
    /// write offered. The bytes leave the outbox, the handler hears `on_drain` if it
    /// waited for it, an EOF that waited for the write ends the connection, and the
    /// connection is served as after any I/O. A report for a connection gone is
    /// ignored (the backend's generation check should catch it first).
    pub fn sent<T: Transport<IO>>(&mut self, key: usize, n: Option<usize>, short: bool, t: &mut T) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        slot.in_flight = false;
        match n {
            Some(n) => {
                slot.conn.state.socket_full = short;
                match slot.tls.as_deref_mut() {
                    Some(tls) => tls.wire().consume(n),
                    None => slot.conn.state.outbox.consume(n),
                };
                slot.conn.state.wrote_since_ping |= n > 0 && !slot.all_sent();
                if slot.all_sent() {
                    if slot.conn.is_open()
                        && !slot.conn.state.needs_drain
                        && !slot.reads_paused
                        && !slot.eof_pending
                    {
                        // The usual completion (a broadcast to 10,000 has 10,000 a
                        // turn): everything went, and nothing waits on it (no handler
                        // to tell, no reading to resume, no close to finish), so
                        // there is nothing to serve; its timer stays as filed.
                        if let Some(link) = &slot.conn.state.link {
                            link.note_buffered(0);
                        }
                        return;
                    }
                    let mut env = env!(self);
                    slot.conn.drained(&mut env);
                }
            }
            None => {
                // The socket failed: nothing more goes out, the connection ends.
                slot.eof_pending = false;
                let mut env = env!(self);
                slot.conn.eof(&mut env);
            }
        }
        self.served(key, t);
        if let Some(slot) = self.conns.get_mut(key)
            && slot.eof_pending
            && !slot.in_flight
            && !slot.ready
        {
            // The replies to the last bytes read are written: the EOF that waited
            // for them ends the connection.
            slot.eof_pending = false;
            self.eof(key);
            self.served(key, t);
        }
    }

    /// The backend is done serving `key` (bytes read, a write completed, a timer
    /// fired): flush it, deliver what it published, end it if it is done, else keep
    /// its timer armed.
    pub fn served<T: Transport<IO>>(&mut self, key: usize, t: &mut T) {
        self.flush(key, t);
        if let Some(slot) = self.conns.get(key)
            && let Some(link) = &slot.conn.state.link
        {
            // What its handles weigh their sends against (`max_backpressure`).
            link.note_buffered(slot.conn.state.outbox.len());
        }
        self.deliver_publishes(t);
        if self.retire_if_done(key, t) {
            return;
        }
        self.arm_timer(key);
    }

    /// Writes what `key` queued (and, for TLS, a close_notify when it is time), and
    /// resumes reading it once flow control allows.
    fn flush<T: Transport<IO>>(&mut self, key: usize, t: &mut T) {
        self.write(key, t);
        if self.close_notify(key, t) && t.sends() == Sends::Later {
            self.list_ready(key);
        }
        self.resume_reading(key, t);
    }

    /// Ends a finishing connection whose bytes are all written: shuts down our write
    /// side first when it lingers for the peer's EOF, else forgets it (also one that
    /// is done). Returns whether `key` is gone.
    fn retire_if_done<T: Transport<IO>>(&mut self, key: usize, t: &mut T) -> bool {
        let Some(slot) = self.conns.get_mut(key) else {
            return true;
        };
        let written = slot.conn.is_finishing() && slot.all_sent();
        if written && slot.conn.lingers() && !slot.write_shut {
            slot.write_shut = true;
            t.shutdown_write(&mut slot.io);
        }
        if slot.conn.is_done() || (written && !slot.conn.lingers()) {
            self.remove(key, t);
            return true;
        }
        false
    }

    /// Files `key`'s next deadline in the timer wheel, unless an earlier one is filed.
    fn arm_timer(&mut self, key: usize) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        let Some(due) = slot.conn.next_due(&self.config) else {
            return;
        };
        let state = &mut slot.conn.state;
        if state.timer_due == 0 || due < state.timer_due {
            // The tick the timer is filed under: a deadline the wheel has passed (a
            // long turn) is filed at its next tick, and the fired timer is recognised
            // by that tick.
            state.timer_due = self.wheel.schedule(key, state.id.0, due);
        }
    }

    /// Tells the driver to resume reading a connection paused for flow control once
    /// its outbox is down to half the high-water mark (hysteresis, so it does not
    /// flap).
    fn resume_reading<T: Transport<IO>>(&mut self, key: usize, t: &mut T) {
        let low_water = self.config.high_water_mark / 2;
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        if !slot.reads_paused || slot.unsent() > low_water || slot.conn.holds_too_much(&self.config)
        {
            return;
        }
        slot.reads_paused = false;
        t.resume_reading(key, &mut slot.io);
    }

    fn remove<T: Transport<IO>>(&mut self, key: usize, t: &mut T) {
        let slot = self.conns.remove(key);
        if slot.counted {
            self.shared.stats.tcp.fetch_sub(1, Ordering::Relaxed);
        }
        t.release(key, slot.io);
        if self.conns.is_empty() && self.conns.capacity() > KEEP_IDLE_SLOTS {
            self.release_idle_memory();
        }
    }

    /// Gives back what a crowd of connections left behind once the reactor has none
    /// (the slab, the scratch lists, the cork, the timer wheel's slots, the topic
    /// registry), and asks the allocator to return the freed pages to the system, so a
    /// server's memory returns to its idle size after a burst. Rare: only when the last
    /// of more than [`KEEP_IDLE_SLOTS`] connections leaves.
    ///
    /// Keeps and allocates nothing that a crowd grew: a buffer kept from the crowd (the
    /// forwarding list) or allocated now (a fresh cork) sits among the pages the crowd
    /// freed, often high in this thread's arena, where it splits the free memory. The
    /// exception: a table or list that grew to a block glibc mapped on its own is
    /// shrunk, not freed ([`crate::server::allocator::release_vec`]), since freeing it
    /// would raise glibc's thresholds for good and keep every arena's freed memory.
    fn release_idle_memory(&mut self) {
        use crate::server::allocator::release_vec;
        self.conns.release();
        self.wheel.clear();
        release_vec(&mut self.dirty);
        release_vec(&mut self.ready);
        release_vec(&mut self.outgoing);
        release_vec(&mut self.targets);
        release_vec(&mut self.frames);
        release_vec(&mut self.deflated_frames);
        release_vec(&mut self.sends);
        self.spare_commands = Vec::new();
        self.spare_frames = Vec::new();
        release_vec(&mut self.fired);
        // The cork goes last, after the trim: glibc's `malloc_trim` leaves a thread
        // arena's top chunk (where the freed crowd coalesces) resident; a free of 64 KiB
        // or more in that arena is what makes it give the top back.
        let cork = std::mem::take(&mut self.reactor.cork);
        self.reactor.release_idle_memory();
        let released = crate::server::allocator::release_free_memory();
        drop(cork);
        tracing::debug!(
            reactor = self.index,
            released,
            "reactor idle: memory released"
        );
    }

    /// Delivers publishes made by handlers to local subscribers, and keeps them for the
    /// other reactors.
    fn deliver_publishes<T: Transport<IO>>(&mut self, t: &mut T) {
        if self.reactor.publishes.is_empty() {
            return;
        }
        let publishes = std::mem::take(&mut self.reactor.publishes);
        self.deliver_local(&publishes, t);
        if self.shared.remotes.len() > 1 || self.shared.bridge.is_some() {
            self.outgoing.extend(publishes);
        }
    }

    /// Hands this turn's publishes to every other reactor, and to the bridge (if any):
    /// one lock and at most one wake-up each per turn, however many messages.
    fn forward_publishes(&mut self) {
        if self.outgoing.is_empty() {
            return;
        }
        if let Some(bridge) = &self.shared.bridge {
            bridge.send(&self.outgoing);
        }
        for (i, remote) in self.shared.remotes.iter().enumerate() {
            if i != self.index {
                remote.send_publishes(self.outgoing.iter().cloned());
            }
        }
        self.outgoing.clear();
    }

    /// Writes every connection that got broadcast frames this turn (all of them in one
    /// write: usually one range of the turn batch), then seals the turn batch: whatever
    /// the sockets did not take becomes slices of the sealed batch (see `batch.rs`).
    fn flush_dirty<T: Transport<IO>>(&mut self, t: &mut T) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for &key in &dirty {
            if let Some(slot) = self.conns.get_mut(key) {
                slot.conn.state.dirty = false;
                self.contained(Some(key), t, |core, t| core.served(key, t));
            }
        }
        // Connections delivered to while flushing are in `self.dirty` again, for the
        // next turn; the seal settles them with every other holder.
        self.seal_batch();
        debug_assert!(
            self.conns
                .iter()
                .all(|(_, slot)| !slot.conn.state.outbox.holds_batch()),
            "a connection kept a range of the sealed turn batch"
        );
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }

    /// Seals the turn batch: every range a connection holds becomes a slice of one
    /// frozen buffer (see `batch.rs`).
    fn seal_batch(&mut self) {
        let conns = &mut self.conns;
        self.reactor.batch.seal(|key, sealed| {
            if let Some(slot) = conns.get_mut(key) {
                slot.conn.state.settle(sealed);
            }
        });
    }
}
