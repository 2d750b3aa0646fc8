//! One event loop per core: poll, accept, read and dispatch, flush, deliver publishes,
//! run timers. The only place (with `listener.rs`) that touches sockets.

use std::io::{self, Read};
use std::net::Shutdown;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::handler::Service;
use crate::protocol::handshake::Refusal;
use crate::server::batch::BatchRange;
use crate::server::config::ServerConfig;
use crate::server::conn::Connection;
use crate::server::conn_api::{ConnCore, ConnId};
use crate::server::outbox::Flushed;
use crate::server::pubsub::Publish;
use crate::server::shared::{Shared, ShutdownPhase};
use crate::server::stats::Stats;
use crate::server::timer::{self, TimerWheel};
use crate::server::turn::Turn;

/// The environment a connection is served in, borrowed field by field from a reactor
/// (so the slab stays borrowable beside it).
macro_rules! env {
    ($reactor:ident) => {
        $crate::server::conn::Env {
            service: &*$reactor.service,
            config: &$reactor.config,
            turn: &mut $reactor.turn,
        }
    };
}

mod containment;
mod delivery;
mod report;

/// A reactor whose slab grew past this many slots gives its memory back when its last
/// connection leaves (see [`Reactor::release_idle_memory`]).
const KEEP_IDLE_SLOTS: usize = 1024;

/// The listening socket's token.
const LISTENER: Token = Token(usize::MAX - 1);
/// The waker's token: commands from other threads.
pub(crate) const WAKER: Token = Token(usize::MAX - 2);

/// What an event says about a connection's socket.
#[derive(Debug, Clone, Copy)]
struct Readiness {
    readable: bool,
    writable: bool,
    /// The peer shut down its side, or the connection failed (reset, error).
    hung_up: bool,
}

/// A connection and its socket.
struct Entry<H> {
    socket: TcpStream,
    conn: Connection<H>,
    /// Our side of the TCP connection was shut down (finishing, waiting for EOF).
    write_shut: bool,
    /// Counted against `max_connections` (a connection refused with 503 is not, so
    /// refusals cannot keep the server full).
    counted: bool,
    /// The peer hung up (or the connection failed): read on to EOF whatever a read
    /// returns, even while paused (its FIN may wait behind the data of the same event,
    /// and no later event will announce it).
    hung_up: bool,
    /// A short read does not prove the socket drained: read on until `EAGAIN`. Set when
    /// reading resumes after a pause (the events of the pause were not acted on).
    read_to_eagain: bool,
    /// Reading is paused: more than `high_water_mark` bytes wait in the outbox.
    reads_paused: bool,
}

/// One reactor: a thread's worth of connections.
pub(crate) struct Reactor<S: Service> {
    index: usize,
    poll: Poll,
    listener: Option<TcpListener>,
    conns: Slab<Entry<S::Handler>>,
    read_buf: Vec<u8>,
    turn: Turn,
    wheel: TimerWheel,
    fired: Vec<timer::Entry>,
    service: Arc<S>,
    config: Arc<ServerConfig>,
    shared: Arc<Shared>,
    /// Connections with queued bytes to write at the end of the turn.
    dirty: Vec<usize>,
    /// Publishes to hand to the other reactors at the end of the turn.
    outgoing: Vec<Publish>,
    /// Scratch list of subscriber keys.
    targets: Vec<usize>,
    /// Scratch list of frame ranges in the turn batch.
    frames: Vec<BatchRange>,
    /// The compressed counterparts of `frames` (permessage-deflate subscribers).
    deflated_frames: Vec<BatchRange>,
    next_id: u64,
    /// Accepting is paused until this tick (after EMFILE and the like).
    accept_paused_until: Option<timer::Tick>,
    /// A shutdown was seen this turn: settle at its end (see `shared.rs`).
    settle_due: bool,
    /// This reactor has settled for a shutdown (or failed): it counted itself once.
    settled: bool,
    /// When a graceful shutdown must end (set when the connections start closing).
    shutdown_deadline: Option<Instant>,
}

impl<S: Service> Reactor<S> {
    /// Registers a bound listener with the poll a reactor will use.
    pub fn register_listener(poll: &Poll, listener: &mut TcpListener) -> io::Result<()> {
        poll.registry()
            .register(listener, LISTENER, Interest::READABLE)
    }

    /// A reactor over a listener already registered with `poll` (whose waker is in
    /// `shared`). Built on its own thread, since handlers need not be `Send`.
    pub fn new(
        index: usize,
        poll: Poll,
        listener: TcpListener,
        service: Arc<S>,
        config: Arc<ServerConfig>,
        shared: Arc<Shared>,
    ) -> Self {
        let origin = Instant::now();
        Self {
            index,
            poll,
            listener: Some(listener),
            conns: Slab::new(),
            read_buf: vec![0; config.read_buffer_size.max(1024) + 256],
            turn: Turn::for_reactor(&shared, index),
            wheel: TimerWheel::new(origin),
            fired: Vec::new(),
            service,
            config,
            shared,
            dirty: Vec::new(),
            outgoing: Vec::new(),
            targets: Vec::new(),
            frames: Vec::new(),
            deflated_frames: Vec::new(),
            next_id: 1,
            accept_paused_until: None,
            settle_due: false,
            settled: false,
            shutdown_deadline: None,
        }
    }

    /// Runs until a graceful shutdown completes.
    ///
    /// # Errors
    ///
    /// The event source's error, if polling fails.
    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            let timeout = if !self.dirty.is_empty() {
                // Deliveries made while flushing (by `on_drain` callbacks): go on.
                Some(Duration::ZERO)
            } else {
                (!self.wheel.is_empty()
                    || self.accept_paused_until.is_some()
                    || self.shutdown_deadline.is_some())
                .then(|| self.wheel.until_next_tick(now))
            };
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != io::ErrorKind::Interrupted
            {
                return Err(e);
            }
            let woke = Instant::now();
            self.turn.now = self.wheel.tick_of(woke);
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => self.contained(None, Self::drain_inbox),
                    Token(key) => {
                        let readiness = Readiness {
                            readable: event.is_readable(),
                            writable: event.is_writable(),
                            hung_up: event.is_read_closed() || event.is_error(),
                        };
                        self.contained(Some(key), |r| r.serve(key, readiness));
                    }
                }
            }
            // Timers first: their callbacks may publish too, and nothing delivered in
            // a turn may wait for the next event to be written.
            self.run_timers();
            self.forward_publishes();
            if std::mem::take(&mut self.settle_due) {
                // Every publish accepted before the shutdown is in the other reactors'
                // inboxes now, ahead of the `Closing` that the last settle sends.
                self.settle();
            }
            self.flush_dirty();
            self.turn.counters.turns.observe(woke.elapsed());
            if let Some(deadline) = self.shutdown_deadline
                && (self.conns.is_empty() || Instant::now() >= deadline)
            {
                self.log_stop();
                return Ok(());
            }
        }
    }

    fn accept(&mut self) {
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            let (socket, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(error) => {
                    Stats::bump(&self.shared.stats.accept_errors);
                    tracing::error!(reactor = self.index, %error, "accept failed; pausing accepts for 100 ms");
                    // EMFILE, ENFILE, ENOBUFS, ENOMEM...: stop accepting for a tick
                    // rather than spin on a listener that stays readable.
                    self.accept_paused_until = Some(self.turn.now + 1);
                    if let Some(mut listener) = self.listener.take() {
                        let _ = self.poll.registry().deregister(&mut listener);
                        self.listener = Some(listener);
                    }
                    return;
                }
            };
            let _ = socket.set_nodelay(true);
            Stats::bump(&self.shared.stats.accepted);
            let over = self.shared.stats.tcp.load(Ordering::Relaxed) >= self.config.max_connections;
            self.insert(socket, peer, over);
        }
    }

    fn insert(&mut self, mut socket: TcpStream, peer: std::net::SocketAddr, over_capacity: bool) {
        self.turn.reserve_cork();
        let slot = self.conns.vacant_entry();
        let key = slot.key();
        if self
            .poll
            .registry()
            .register(
                &mut socket,
                Token(key),
                Interest::READABLE | Interest::WRITABLE,
            )
            .is_err()
        {
            return;
        }
        let id = ConnId(((self.index as u64) << 48) | self.next_id);
        self.next_id += 1;
        let now = self.turn.now;
        let core = ConnCore::new(key, id, peer, now);
        let mut conn = Connection::new(core, &self.config, now);
        if over_capacity {
            Stats::bump(&self.shared.stats.refused_over_capacity);
            let mut bytes = Vec::new();
            Refusal::service_unavailable("too many connections").write(&mut bytes);
            conn.finish_with(bytes.into(), &self.config, now);
        }
        if !over_capacity {
            self.shared.stats.tcp.fetch_add(1, Ordering::Relaxed);
        }
        slot.insert(Entry {
            socket,
            conn,
            write_shut: false,
            counted: !over_capacity,
            hung_up: false,
            read_to_eagain: false,
            reads_paused: false,
        });
        self.contained(Some(key), |r| r.after_io(key));
    }

    /// Handles readiness of connection `key`.
    fn serve(&mut self, key: usize, readiness: Readiness) {
        if readiness.writable {
            self.write(key);
        }
        if readiness.hung_up
            && let Some(entry) = self.conns.get_mut(key)
        {
            entry.hung_up = true;
        }
        if readiness.readable || readiness.hung_up {
            self.read(key);
        }
        self.after_io(key);
    }

    /// Reads until the socket is drained (or the connection is done, or its reading is
    /// paused for flow control), feeding bytes to the connection. What one read's
    /// messages produced is written before the next read, so the cork holds at most one
    /// read's replies and flow control sees what the socket refused.
    ///
    /// Platform assumptions (epoll, edge-triggered through mio): new bytes or a FIN
    /// arriving after a read that returned less than asked raise a new event; a FIN
    /// that arrived together with data is reported on the same event (`EPOLLRDHUP`),
    /// which is why a hang-up makes the loop read on to EOF instead of trusting a short
    /// read; an error or reset is reported as `EPOLLERR`/`EPOLLHUP` and also read to
    /// its end; a socket that refused bytes raises a writable event once it has room
    /// (which is what resumes a paused connection).
    fn read(&mut self, key: usize) {
        while self.read_once(key) {
            self.write(key);
        }
    }

    /// One `read` (retried on `EINTR`); returns whether to read again.
    fn read_once(&mut self, key: usize) -> bool {
        let Some(entry) = self.conns.get_mut(key) else {
            return false;
        };
        // Read-side flow control: while the peer does not take what we send, stop
        // taking what it sends; TCP then slows it down. A hang-up is still read, so a
        // dead peer is noticed.
        if entry.conn.core.outbox.len() > self.config.high_water_mark && !entry.hung_up {
            entry.reads_paused = true;
            return false;
        }
        let mut env = env!(self);
        loop {
            let held = entry.conn.take_pending(&mut self.read_buf);
            let space = self.read_buf.len() - held;
            match entry.socket.read(&mut self.read_buf[held..]) {
                Ok(0) => {
                    entry.conn.eof(&mut env);
                    return false;
                }
                Ok(n) => {
                    entry.conn.receive(&mut self.read_buf[..held + n], &mut env);
                    // With edge-triggered readiness a short read means the socket is
                    // drained for now: new bytes will raise a new event.
                    let more = n == space || entry.read_to_eagain || entry.hung_up;
                    return more && !entry.conn.is_done();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    entry.conn.restore_pending(&self.read_buf[..held]);
                    entry.read_to_eagain = false;
                    return false;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    entry.conn.restore_pending(&self.read_buf[..held]);
                }
                Err(_) => {
                    entry.conn.eof(&mut env);
                    return false;
                }
            }
        }
    }

    /// Resumes reading a connection paused for flow control once its outbox is down to
    /// half the high-water mark (hysteresis, so it does not flap), then writes what
    /// the read produced.
    fn resume_reading(&mut self, key: usize) {
        let low_water = self.config.high_water_mark / 2;
        let Some(entry) = self.conns.get_mut(key) else {
            return;
        };
        if !entry.reads_paused || entry.conn.core.outbox.len() > low_water {
            return;
        }
        entry.reads_paused = false;
        entry.read_to_eagain = true;
        self.read(key);
        self.write(key);
    }

    /// Writes the cork and the connection's queue; tells the handler when it drained.
    fn write(&mut self, key: usize) {
        loop {
            let Some(entry) = self.conns.get_mut(key) else {
                self.turn.cork.clear();
                return;
            };
            if entry.conn.core.outbox.is_empty() && self.turn.cork.is_empty() {
                return;
            }
            let had_queue = !entry.conn.core.outbox.is_empty();
            let turn = &mut self.turn;
            match entry
                .conn
                .core
                .outbox
                .flush(&mut entry.socket, &mut turn.cork, &turn.batch)
            {
                Ok(Flushed::All) => {
                    if !had_queue && !entry.conn.core.needs_drain {
                        return;
                    }
                    let mut env = env!(self);
                    entry.conn.drained(&mut env);
                    if self.turn.cork.is_empty() {
                        return;
                    }
                }
                Ok(Flushed::Blocked) => return,
                Err(_) => {
                    let mut env = env!(self);
                    entry.conn.eof(&mut env);
                    return;
                }
            }
        }
    }

    /// After serving `key`: write what it sent, deliver what it published, end it if
    /// done, and keep its timer armed.
    fn after_io(&mut self, key: usize) {
        self.write(key);
        self.resume_reading(key);
        self.deliver_publishes();
        let Some(entry) = self.conns.get_mut(key) else {
            return;
        };
        let written = entry.conn.is_finishing() && entry.conn.core.outbox.is_empty();
        if written && entry.conn.lingers() && !entry.write_shut {
            entry.write_shut = true;
            let _ = entry.socket.shutdown(Shutdown::Write);
        }
        if entry.conn.is_done() || (written && !entry.conn.lingers()) {
            self.remove(key);
            return;
        }
        if let Some(due) = entry.conn.next_due(&self.config) {
            let core = &mut entry.conn.core;
            if core.timer_due == 0 || due < core.timer_due {
                // The tick the entry is filed under: a deadline the wheel has passed
                // (a long turn) is filed at its next tick, and the fired entry is
                // recognised by that tick.
                core.timer_due = self.wheel.schedule(key, core.id.0, due);
            }
        }
    }

    fn remove(&mut self, key: usize) {
        let mut entry = self.conns.remove(key);
        let _ = self.poll.registry().deregister(&mut entry.socket);
        if entry.counted {
            self.shared.stats.tcp.fetch_sub(1, Ordering::Relaxed);
        }
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
    /// freed, often high in this thread's arena, where it splits the free memory.
    fn release_idle_memory(&mut self) {
        self.conns = Slab::new();
        self.wheel.clear();
        self.dirty = Vec::new();
        self.outgoing = Vec::new();
        self.targets = Vec::new();
        self.frames = Vec::new();
        self.deflated_frames = Vec::new();
        self.fired = Vec::new();
        // The cork goes last, after the trim: glibc's `malloc_trim` leaves a thread
        // arena's top chunk (where the freed crowd coalesces) resident; a free of 64 KiB
        // or more in that arena is what makes it give the top back.
        let cork = std::mem::take(&mut self.turn.cork);
        self.turn.release_idle_memory();
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
    fn deliver_publishes(&mut self) {
        if self.turn.publishes.is_empty() {
            return;
        }
        let publishes = std::mem::take(&mut self.turn.publishes);
        self.deliver_local(&publishes);
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

    /// Commands from other threads: publishes and shutdown. Publishes queued before a
    /// shutdown's `Closing` are delivered before the connections start closing.
    fn drain_inbox(&mut self) {
        let (publishes, shutdown) = self.shared.remotes[self.index].take();
        #[cfg(test)]
        crate::server::testing::on_inbox(&publishes);
        self.deliver_local(&publishes);
        if shutdown >= ShutdownPhase::Settling && !self.settled {
            self.stop_accepting();
            self.settle_due = true;
        }
        if shutdown == ShutdownPhase::Closing && self.shutdown_deadline.is_none() {
            self.begin_shutdown();
        }
    }

    /// Counts this reactor as settled for a shutdown, once (see `shared.rs`).
    fn settle(&mut self) {
        if !std::mem::replace(&mut self.settled, true) {
            self.shared.settle();
        }
    }

    /// Closes the listening socket: new connections go to no one (a shutdown) or to
    /// the other reactors (a failure).
    fn stop_accepting(&mut self) {
        self.accept_paused_until = None;
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
    }

    fn begin_shutdown(&mut self) {
        tracing::debug!(
            reactor = self.index,
            connections = self.conns.len(),
            "reactor shutting down"
        );
        self.shutdown_deadline = Some(Instant::now() + self.config.shutdown_timeout);
        self.stop_accepting();
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.contained(Some(key), |r| {
                let mut env = env!(r);
                if let Some(entry) = r.conns.get_mut(key) {
                    entry.conn.shut_down(&mut env);
                }
                r.after_io(key);
            });
        }
    }

    /// Writes every connection that got broadcast frames this turn (all of them in one
    /// write: usually one range of the turn batch), then seals the turn batch: whatever
    /// the sockets did not take becomes slices of the sealed batch (see `batch.rs`).
    fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for &key in &dirty {
            if let Some(entry) = self.conns.get_mut(key) {
                entry.conn.core.dirty = false;
                self.contained(Some(key), |r| r.after_io(key));
            }
        }
        // Connections delivered to while flushing are in `self.dirty` again, for the
        // next turn; the seal settles them with every other holder.
        let conns = &mut self.conns;
        self.turn.batch.seal(|key, sealed| {
            if let Some(entry) = conns.get_mut(key) {
                entry.conn.core.settle(sealed);
            }
        });
        debug_assert!(
            self.conns
                .iter()
                .all(|(_, entry)| !entry.conn.core.outbox.holds_batch()),
            "a connection kept a range of the sealed turn batch"
        );
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }

    /// Connection `key`'s timer is due.
    fn fire_timer(&mut self, key: usize) {
        let Some(entry) = self.conns.get_mut(key) else {
            return;
        };
        let mut env = env!(self);
        entry.conn.on_timer(&mut env);
        self.after_io(key);
        // A connection whose timer fires has been quiet (or is closing): give back
        // the outbox allocation kept for busy subscribers.
        if let Some(entry) = self.conns.get_mut(key) {
            entry.conn.core.outbox.release();
        }
    }

    fn run_timers(&mut self) {
        if let Some(until) = self.accept_paused_until
            && self.turn.now >= until
        {
            self.accept_paused_until = None;
            if let Some(listener) = self.listener.as_mut() {
                let _ = self
                    .poll
                    .registry()
                    .register(listener, LISTENER, Interest::READABLE);
                self.accept();
            }
        }
        self.fired.clear();
        // The turn's clock moves to the time the wheel is moved to, so a timer that
        // came due while the turn ran (a long handler, say) finds its deadline passed.
        let now = Instant::now();
        self.turn.now = self.wheel.tick_of(now);
        self.wheel.advance(now, &mut self.fired);
        let fired = std::mem::take(&mut self.fired);
        for entry in &fired {
            let Some(conn_entry) = self.conns.get_mut(entry.key) else {
                continue;
            };
            let core = &conn_entry.conn.core;
            if core.id.0 != entry.id || core.timer_due != entry.due {
                continue;
            }
            conn_entry.conn.core.timer_due = 0;
            self.contained(Some(entry.key), |r| r.fire_timer(entry.key));
        }
        self.fired = fired;
    }
}
