//! One event-loop thread: opens its share of the connections on its own mio poll and
//! drives their roles until the window closes.

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use crate::config::{Config, Mode};
use crate::conn::{self, Conn, Input};
use crate::payload;
use crate::role::{Ctx, Role, Unpublished};
use crate::shared::Shared;
use crate::tally::Tally;

/// Connections a thread has connecting or handshaking at once, so the server's
/// accept backlog never overflows (overflow costs a one-second SYN retry).
const MAX_CONNECTING: usize = 100;

/// Above this many connections, sources spread over 127.0.0.2, .3, ... (each source
/// address has about 28,000 ephemeral ports).
const SPREAD_ABOVE: usize = 28_000;
/// Connections per source address once spread.
const PER_SOURCE: usize = 25_000;

/// A connection to open: its index over the whole run and its role.
pub struct Spec {
    /// Index over all connections (picks the source address).
    pub index: usize,
    /// Its part in the workload.
    pub role: Role,
}

struct Slot {
    conn: Conn,
    role: Role,
    connected: bool,
}

/// Runs one thread's connections; returns what it counted.
pub fn run(cfg: &Config, shared: &Shared, specs: Vec<Spec>) -> Tally {
    let mut tally = Tally::default();
    let poll = Poll::new();
    let mut poll = match poll {
        Ok(p) => p,
        Err(e) => {
            tally.error(|| format!("poll: {e}"));
            shared.ready.fetch_add(1, Ordering::SeqCst);
            return tally;
        }
    };
    let total = specs.len();
    let all = cfg.connections
        + if cfg.mode == Mode::Broadcast {
            cfg.publishers
        } else {
            0
        };
    let mut todo = specs.into_iter();
    let mut slots: Vec<Option<Slot>> = Vec::with_capacity(total);
    let (mut open, mut failed) = (0usize, 0usize);
    let mut events = Events::with_capacity(1024);
    let mut read_buf = vec![0u8; 256 << 10];
    let template = payload::template(cfg.size);
    let mut scratch = Vec::with_capacity(cfg.size);
    let raw = cfg.raw.then_some(cfg.size.max(1));
    let mut ready_sent = false;
    let mut started = false;
    let mut wake: Option<Instant> = None;
    let mut publishers: Vec<usize> = Vec::new();
    let mut unpublished = Unpublished::default();
    loop {
        // Open more connections while few are in progress.
        while slots.len() - open - failed < MAX_CONNECTING {
            let Some(spec) = todo.next() else { break };
            let source = (all > SPREAD_ABOVE)
                .then(|| Ipv4Addr::new(127, 0, 0, 2 + (spec.index / PER_SOURCE) as u8));
            let token = Token(slots.len());
            let opened = conn::open_socket(cfg.addr, source).and_then(|mut stream| {
                poll.registry().register(
                    &mut stream,
                    token,
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                Ok(stream)
            });
            match opened {
                Ok(stream) => slots.push(Some(Slot {
                    conn: Conn::new(stream, &cfg.host, &cfg.path, raw, cfg.binary),
                    role: spec.role,
                    connected: false,
                })),
                Err(e) => {
                    tally.error(|| format!("connect: {e}"));
                    shared.error();
                    slots.push(None);
                    failed += 1;
                }
            }
        }
        if !ready_sent && open + failed == total {
            ready_sent = true;
            shared.ready.fetch_add(1, Ordering::SeqCst);
        }
        let now = Instant::now();
        let window = shared.window.get().copied();
        if shared.abort.load(Ordering::Relaxed) || window.is_some_and(|w| now >= w.to) {
            break;
        }
        let mut timeout = Duration::from_millis(10);
        if let Some(at) = wake {
            timeout = timeout.min(at.saturating_duration_since(now));
        }
        if let Some(w) = window {
            timeout = timeout.min(w.to.saturating_duration_since(now));
        }
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                tally.error(|| format!("poll: {e}"));
                break;
            }
        }
        let now = Instant::now();
        let mut ctx = Ctx {
            cfg,
            shared,
            tally: &mut tally,
            now,
            now_ns: shared.nanos(now),
            unpublished: &mut unpublished,
            window,
            template: &template,
            scratch: &mut scratch,
        };
        for event in events.iter() {
            let index = event.token().0;
            let Some(slot) = slots.get_mut(index).and_then(Option::as_mut) else {
                continue;
            };
            let was_open = slot.connected && slot.conn.is_open();
            let result = drive(slot, event.is_readable(), &mut read_buf, &mut ctx);
            if !was_open && result.is_ok() && slot.connected && slot.conn.is_open() {
                open += 1;
                shared.established.fetch_add(1, Ordering::Relaxed);
            }
            if let Err(e) = result {
                ctx.tally.error(|| e);
                shared.error();
                if was_open {
                    open -= 1;
                    shared.established.fetch_sub(1, Ordering::Relaxed);
                }
                failed += 1;
                if let Some(mut slot) = slots[index].take() {
                    let _ = poll.registry().deregister(&mut slot.conn.stream);
                }
            }
        }
        // Before the publishers look at the delivered counts.
        ctx.publish_counts();
        if window.is_some() && !started {
            started = true;
            for (index, slot) in slots.iter_mut().enumerate() {
                let Some(slot) = slot else { continue };
                slot.role.start(&mut slot.conn.out, &mut ctx);
                // A write error shows up again as a read error on the next event.
                let _ = slot.conn.flush();
                if matches!(slot.role, Role::Publisher { .. }) {
                    publishers.push(index);
                }
            }
        }
        // Only publishers act without an event; everything else is driven by reads.
        wake = None;
        for &index in &publishers {
            let Some(slot) = slots[index].as_mut() else {
                continue;
            };
            if let Some(at) = slot.role.tick(&mut slot.conn.out, &mut ctx) {
                wake = Some(wake.map_or(at, |w| w.min(at)));
            }
            if slot.conn.out.pending() > 0 {
                let _ = slot.conn.flush();
            }
        }
    }
    tally
}

/// Handles one readiness event for a slot.
fn drive(
    slot: &mut Slot,
    readable: bool,
    read_buf: &mut [u8],
    ctx: &mut Ctx<'_>,
) -> Result<(), String> {
    let started = ctx.window.is_some();
    if !slot.connected {
        if let Ok(Some(e)) | Err(e) = slot.conn.stream.take_error() {
            return Err(format!("connect: {e}"));
        }
        match slot.conn.stream.peer_addr() {
            Ok(_) => slot.connected = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotConnected => return Ok(()),
            Err(e) => return Err(format!("connect: {e}")),
        }
    }
    slot.conn.flush().map_err(|e| format!("write: {e}"))?;
    if !readable {
        return Ok(());
    }
    let role = &mut slot.role;
    slot.conn
        .on_readable(read_buf, &mut |out, input| match input {
            Input::Opened => Ok(()),
            Input::Message(data) if started => role.on_message(out, data, ctx),
            Input::Message(_) => match role {
                Role::Publisher { .. } | Role::Idle => Ok(()),
                _ => Err("message before the workload started".into()),
            },
        })
}
