//! One thread's connections on its poll: opened a few at a time, each readiness event
//! handed to its connection and role, the roles started and the publishers ticked.

use std::io;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use crate::config::Config;
use crate::conn::{self, Conn, Flow, Input};
use crate::role::{Ctx, Role};
use crate::shared::Shared;
use crate::tally::Tally;

/// Connections a thread has connecting or handshaking at once, so the server's
/// accept backlog never overflows (overflow costs a one-second SYN retry).
const MAX_CONNECTING: usize = 100;

/// Above this many connections, sources spread over 127.0.0.2, .3, ... (each source
/// address has about 28,000 ephemeral ports).
const SPREAD_ABOVE: usize = 28_000;
/// The receive buffer of a slow consumer (soak), in bytes (the kernel doubles it).
pub const STALLED_RECV_BUFFER: usize = 4096;

/// Connections per source address once spread.
const PER_SOURCE: usize = 25_000;

/// A connection to open: its index over the whole run and its role.
pub struct Spec {
    /// Index over all connections (picks the source address).
    pub index: usize,
    /// Its part in the workload.
    pub role: Role,
}

/// One connection and its role; the index in [`Slots`] is its poll token.
struct Slot {
    conn: Conn,
    role: Role,
    connected: bool,
}

/// A thread's connections, indexed by poll token (`None` once failed).
pub struct Slots {
    poll: Poll,
    slots: Vec<Option<Slot>>,
    todo: std::vec::IntoIter<Spec>,
    /// Connections this thread opens in all.
    total: usize,
    /// Connections this thread may open so far: `total`, unless a staged run holds its
    /// second half back ([`Slots::allow`]).
    allowed: usize,
    /// Connections past their handshake.
    open: usize,
    /// Connections that failed (to open or later).
    failed: usize,
    /// Connections that ended without an error (closed by the server at a shutdown,
    /// or a slow consumer found closed).
    ended: usize,
    /// Slow consumers read again, to see whether the server closed them (the end of
    /// their run).
    draining: bool,
    /// Tokens of the publishers, once the roles have started.
    publishers: Vec<usize>,
    /// Where each read lands.
    read_buf: Vec<u8>,
}

impl Slots {
    /// A table for `specs`, none opened yet.
    pub fn new(poll: Poll, specs: Vec<Spec>) -> Self {
        Self {
            poll,
            slots: Vec::with_capacity(specs.len()),
            total: specs.len(),
            allowed: specs.len(),
            todo: specs.into_iter(),
            open: 0,
            failed: 0,
            ended: 0,
            draining: false,
            publishers: Vec::new(),
            read_buf: vec![0u8; 256 << 10],
        }
    }

    /// Whether every connection is open or has failed.
    pub fn settled(&self) -> bool {
        self.open + self.failed + self.ended == self.total
    }

    /// Lets the first `allowed` connections open (at most all of them).
    pub fn allow(&mut self, allowed: usize) {
        self.allowed = allowed.min(self.total);
    }

    /// Whether the connections allowed so far are all open or have failed.
    pub fn settled_allowed(&self) -> bool {
        self.slots.len() == self.allowed && self.open + self.failed + self.ended >= self.allowed
    }

    /// Whether every connection has ended (failed or closed).
    pub fn all_ended(&self) -> bool {
        self.failed + self.ended == self.total
    }

    /// Counts every connection still open as an error: `what` did not happen to it.
    pub fn fail_open(&mut self, tally: &mut Tally, what: &str) {
        let open = self.slots.iter().filter(|s| s.is_some()).count();
        for _ in 0..open {
            tally.error(|| what.to_string());
        }
    }

    /// Counts every connection not yet open nor failed (still connecting or
    /// handshaking, or not yet started) as an error: `what` happened to it.
    pub fn fail_unsettled(&mut self, tally: &mut Tally, what: &str) {
        let unsettled = self.total - (self.open + self.failed + self.ended);
        for _ in 0..unsettled {
            tally.error(|| what.to_string());
        }
        self.failed += unsettled;
    }

    /// Starts reading the slow consumers again, each at once to the end of what its
    /// socket holds (their readiness events went unanswered): each one found closed
    /// by the server (a close frame, EOF or reset) counts in [`Tally::server_closed`].
    pub fn drain_stalled(&mut self, ctx: &mut Ctx<'_>) {
        self.draining = true;
        for index in 0..self.slots.len() {
            if let Some(slot) = self.slots[index].as_mut() {
                slot.conn.read_to_eagain = true;
                self.on_event(index, true, ctx);
            }
        }
    }

    /// Opens more connections while few are in progress.
    pub fn open_more(&mut self, cfg: &Config, shared: &Shared, tally: &mut Tally) {
        let all = cfg.connections + cfg.publishing();
        while self.slots.len() < self.allowed
            && self.slots.len() - self.open - self.failed < MAX_CONNECTING
        {
            let Some(spec) = self.todo.next() else { break };
            let source = (all > SPREAD_ABOVE)
                .then(|| Ipv4Addr::new(127, 0, 0, 2 + (spec.index / PER_SOURCE) as u8));
            let publisher = matches!(spec.role, Role::Publisher { .. });
            match self.open_one(cfg, source, publisher) {
                Ok(conn) => self.slots.push(Some(Slot {
                    conn,
                    role: spec.role,
                    connected: false,
                })),
                Err(e) => {
                    tally.error(|| format!("connect: {e}"));
                    shared.error();
                    self.slots.push(None);
                    self.failed += 1;
                }
            }
        }
    }

    /// Starts connecting the next slot's socket (a publisher's to
    /// [`Config::publisher_target`]) and registers it.
    fn open_one(
        &mut self,
        cfg: &Config,
        source: Option<Ipv4Addr>,
        publisher: bool,
    ) -> io::Result<Conn> {
        let token = Token(self.slots.len());
        let (addr, host) = if publisher {
            cfg.publisher_target()
        } else {
            (cfg.addr, cfg.host.as_str())
        };
        // A slow consumer also has a small receive window, like a slow mobile link, so
        // what it does not read piles up at the server, not in its own kernel buffer.
        let recv_buffer = cfg.stall.then_some(STALLED_RECV_BUFFER);
        let mut stream = conn::open_socket(addr, source, recv_buffer)?;
        self.poll.registry().register(
            &mut stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let raw = cfg.raw.then_some(cfg.size.max(1));
        Ok(Conn::new(
            stream,
            host,
            &cfg.path,
            raw,
            cfg.binary,
            cfg.deflate,
            cfg.tls.as_ref(),
        ))
    }

    /// Waits up to `timeout` for readiness events (an interrupted wait returns none).
    pub fn wait(&mut self, events: &mut Events, timeout: Duration) -> io::Result<()> {
        match self.poll.poll(events, Some(timeout)) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => Err(e),
            _ => Ok(()),
        }
    }

    /// Handles every event of one wake-up.
    pub fn handle(&mut self, events: &Events, ctx: &mut Ctx<'_>) {
        for event in events.iter() {
            self.on_event(event.token().0, event.is_readable(), ctx);
        }
    }

    /// Handles one event: drives the slot, counts it open, or drops it on error.
    fn on_event(&mut self, index: usize, readable: bool, ctx: &mut Ctx<'_>) {
        let Some(slot) = self.slots.get_mut(index).and_then(Option::as_mut) else {
            return;
        };
        let was_open = slot.connected && slot.conn.is_open();
        let result = drive(slot, readable, self.draining, &mut self.read_buf, ctx);
        if !was_open && result.is_ok() && slot.connected && slot.conn.is_open() {
            self.open += 1;
            ctx.shared.established.fetch_add(1, Ordering::Relaxed);
            if slot.conn.deflate_negotiated() {
                ctx.tally.deflate_negotiated += 1;
            }
        }
        match result {
            Ok(Flow::Open) => return,
            Ok(Flow::Closed | Flow::Eof) if self.draining && ctx.cfg.stall => {
                ctx.tally.server_closed += 1;
                self.ended += 1;
            }
            Ok(Flow::Closed) => self.ended += 1,
            Ok(Flow::Eof) => {
                ctx.tally.error(|| "server closed the connection".into());
                ctx.shared.error();
                self.failed += 1;
            }
            Err(e) => {
                ctx.tally.error(|| e);
                ctx.shared.error();
                self.failed += 1;
            }
        }
        if was_open {
            self.open -= 1;
            ctx.shared.established.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(mut slot) = self.slots[index].take() {
            let _ = self.poll.registry().deregister(&mut slot.conn.stream);
        }
    }

    /// Starts every role (echo connections fill their pipelines) and notes the
    /// publishers.
    pub fn start(&mut self, ctx: &mut Ctx<'_>) {
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let Some(slot) = slot else { continue };
            slot.role.start(&mut slot.conn.out, ctx);
            // A write error shows up again as a read error on the next event.
            let _ = slot.conn.flush();
            if matches!(slot.role, Role::Publisher { .. }) {
                self.publishers.push(index);
            }
        }
    }

    /// Lets each publisher send what is due; returns when the next one wants to run.
    /// (Only publishers act without an event; everything else is driven by reads.)
    pub fn tick_publishers(&mut self, ctx: &mut Ctx<'_>) -> Option<Instant> {
        let mut wake: Option<Instant> = None;
        for &index in &self.publishers {
            let Some(slot) = self.slots[index].as_mut() else {
                continue;
            };
            if let Some(at) = slot.role.tick(&mut slot.conn.out, ctx) {
                wake = Some(wake.map_or(at, |w| w.min(at)));
            }
            if slot.conn.out.pending() > 0 {
                let _ = slot.conn.flush();
            }
        }
        wake
    }
}

/// Handles one readiness event for a slot (`draining`: slow consumers read again).
fn drive(
    slot: &mut Slot,
    readable: bool,
    draining: bool,
    read_buf: &mut [u8],
    ctx: &mut Ctx<'_>,
) -> Result<Flow, String> {
    let started = ctx.window.is_some();
    if !slot.connected {
        if let Ok(Some(e)) | Err(e) = slot.conn.stream.take_error() {
            return Err(format!("connect: {e}"));
        }
        match slot.conn.stream.peer_addr() {
            Ok(_) => slot.connected = true,
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(Flow::Open),
            Err(e) => return Err(format!("connect: {e}")),
        }
    }
    slot.conn.flush().map_err(|e| format!("write: {e}"))?;
    // A slow consumer (soak) reads its handshake, then nothing more until its run
    // ends and it looks for the server's close.
    if !readable || (ctx.cfg.stall && slot.conn.is_open() && !draining) {
        return Ok(Flow::Open);
    }
    let role = &mut slot.role;
    slot.conn
        .on_readable(read_buf, &mut |out, input| match input {
            Input::Opened => Ok(()),
            Input::Closed(_) if draining && ctx.cfg.stall => Ok(()),
            Input::Closed(code) if started => role.on_close(code, ctx),
            Input::Closed(code) => Err(format!("server sent close {code}")),
            Input::Message(data) if started => role.on_message(out, data, ctx),
            Input::Message(_) => match role {
                Role::Publisher { .. } | Role::Idle => Ok(()),
                _ => Err("message before the workload started".into()),
            },
        })
}
