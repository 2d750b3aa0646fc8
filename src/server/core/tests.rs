//! The core driven with no socket: in-memory peers that take a chosen number of
//! bytes, and a manual clock. Timeouts, backpressure, flow control, delivery and
//! shutdown, deterministically.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Core, RECV_HEADROOM, Sends, Transport};
use crate::protocol::frame::{OpCode, encode_frame};
use crate::protocol::handshake::ClientHandshake;
use crate::protocol::{Decoder, DecoderConfig, Event, Role};
use crate::server::config::ServerConfig;
use crate::server::core::timer::TICK;
use crate::server::handler::{CloseInfo, Conn, Handler, Message, Request, Service, Upgrade};
use crate::server::pubsub::{Interest, Publish};
use crate::server::shared::{Remote, Shared, Wake};
use crate::server::stats::Stats;

const TOPIC: &str = "room";

type Closes = Arc<Mutex<Vec<u16>>>;

/// Subscribes on `/sub`; "pub X" publishes X to [`TOPIC`], "big N" sends N bytes,
/// anything else is echoed. Close codes are recorded.
struct App {
    closes: Closes,
    /// Upgrades of `/later`, deferred: the test decides them.
    pending: Arc<Mutex<Vec<crate::server::handler::PendingUpgrade<Peer>>>>,
}

struct Peer {
    subscribe: bool,
    closes: Closes,
}

impl Service for App {
    type Handler = Peer;

    fn upgrade(&self, request: &Request<'_>) -> Upgrade<Peer> {
        if request.path() == "/later" {
            let pending = self.pending.clone();
            return Upgrade::defer(move |p| pending.lock().unwrap().push(p));
        }
        Upgrade::accept(Peer {
            subscribe: request.path() == "/sub",
            closes: self.closes.clone(),
        })
    }
}

impl Handler for Peer {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        if self.subscribe {
            conn.subscribe(TOPIC);
        }
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        let Message::Text(text) = message else {
            return;
        };
        if let Some(rest) = text.strip_prefix("pub ") {
            conn.publish(TOPIC, Message::Text(rest));
        } else if let Some(n) = text.strip_prefix("big ") {
            conn.send_binary(&vec![7; n.parse().unwrap()]);
        } else {
            conn.send(message);
        }
    }

    fn on_close(&mut self, close: CloseInfo<'_>) {
        self.closes.lock().unwrap().push(close.code.0);
    }
}

/// An in-memory peer (the core's `IO`): takes up to `budget` bytes, then would block.
#[derive(Debug, Default)]
struct Memory {
    taken: Vec<u8>,
    budget: usize,
    /// Our side was shut down.
    shut: bool,
}

/// The test's transport: records what the core asked for.
#[derive(Debug, Default)]
struct Wire {
    /// A completion backend's transport ([`Sends::Later`]).
    defers: bool,
    /// Connections whose reading the core paused, in order.
    paused: Vec<usize>,
    resumed: Vec<usize>,
    /// Connections released, with what their peer received in all.
    released: Vec<(usize, Memory)>,
}

impl Transport<Memory> for Wire {
    fn sends(&self) -> Sends {
        if self.defers {
            Sends::Later
        } else {
            Sends::Now
        }
    }

    fn write_now(
        &mut self,
        _key: usize,
        io: &mut Memory,
        slices: &[IoSlice<'_>],
    ) -> io::Result<usize> {
        assert!(!self.defers, "a Later backend is never asked to write now");
        if io.budget == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut n = 0;
        for slice in slices {
            let take = slice.len().min(io.budget);
            io.taken.extend_from_slice(&slice[..take]);
            io.budget -= take;
            n += take;
        }
        Ok(n)
    }

    fn write_last(&mut self, key: usize, io: &mut Memory, bytes: &[u8]) {
        if !self.defers {
            let _ = self.write_now(key, io, &[IoSlice::new(bytes)]);
        } else {
            io.taken.extend_from_slice(bytes);
        }
    }

    fn shutdown_write(&mut self, io: &mut Memory) {
        io.shut = true;
    }

    fn pause_reading(&mut self, key: usize, _io: &mut Memory) {
        self.paused.push(key);
    }

    fn resume_reading(&mut self, key: usize, _io: &mut Memory) {
        self.resumed.push(key);
    }

    fn release(&mut self, key: usize, io: Memory) {
        self.released.push((key, io));
    }
}

struct NoWake;

impl Wake for NoWake {
    fn wake(&self) -> io::Result<()> {
        Ok(())
    }
}

/// A core, its transport and the manual clock.
struct Harness {
    core: Core<App, Memory>,
    wire: Wire,
    origin: Instant,
    now: Instant,
    shared: Arc<Shared>,
    closes: Closes,
    pending: Arc<Mutex<Vec<crate::server::handler::PendingUpgrade<Peer>>>>,
}

impl Harness {
    fn new(config: ServerConfig) -> Self {
        let stats = Arc::new(Stats::default());
        let shared = Arc::new(Shared {
            remotes: vec![Remote::new(Box::new(NoWake))],
            ..Shared::detached(stats, Arc::new(Interest::default()))
        });
        let closes = Closes::default();
        let app = App {
            closes: closes.clone(),
            pending: Arc::default(),
        };
        let pending = app.pending.clone();
        let origin = Instant::now();
        let core = Core::new(0, Arc::new(app), Arc::new(config), shared.clone(), origin);
        Self {
            core,
            wire: Wire::default(),
            origin,
            now: origin,
            shared,
            closes,
            pending,
        }
    }

    /// Moves the manual clock to `after` past the start and runs a turn there.
    fn at(&mut self, after: Duration) {
        self.now = self.origin + after;
        self.core.begin_turn(self.now);
        self.core.end_turn(self.now, &mut self.wire);
    }

    /// Ends the turn at the current instant: timers, the flush, the seal of the turn
    /// batch (what a completion backend waits for before it takes bytes).
    fn end_turn(&mut self) {
        self.core.end_turn(self.now, &mut self.wire);
    }

    /// A new connection whose peer takes `budget` bytes; returns its key.
    fn connect(&mut self, budget: usize) -> usize {
        let key = self.core.vacant_key();
        let peer = SocketAddr::from(([127, 0, 0, 1], 40000 + key as u16));
        let memory = Memory {
            budget,
            ..Memory::default()
        };
        self.core.open(memory, peer, &mut self.wire);
        key
    }

    /// A connection upgraded on `path`, its 101 taken out of its peer's bytes.
    fn upgraded(&mut self, path: &str) -> usize {
        let key = self.connect(usize::MAX);
        let (client, request) = ClientHandshake::new("localhost", path, &[], &[]);
        self.read(key, &request);
        let taken = std::mem::take(&mut self.peer(key).taken);
        let end = taken.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        client.validate(&taken[..end]).expect("a valid 101");
        self.peer(key).taken = taken[end..].to_vec();
        key
    }

    /// What a driver does when `bytes` are read for `key`.
    fn read(&mut self, key: usize, bytes: &[u8]) {
        let mut buf = vec![0; RECV_HEADROOM];
        buf.extend_from_slice(bytes);
        self.core.received(key, &mut buf, RECV_HEADROOM);
        self.core.write(key, &mut self.wire);
        self.core.served(key, &mut self.wire);
    }

    /// A masked text frame from the peer of `key`.
    fn send_text(&mut self, key: usize, text: &str) {
        self.read(key, &masked(OpCode::Text, text.as_bytes()));
    }

    /// The peer of `key` gets room for `budget` more bytes and the socket says so.
    fn writable(&mut self, key: usize, budget: usize) {
        self.peer(key).budget = budget;
        self.core.write(key, &mut self.wire);
        self.core.served(key, &mut self.wire);
    }

    /// A graceful shutdown asked from another thread: the core settles at the end of
    /// the turn that saw it (the last reactor to settle, here the only one, moves
    /// every reactor to closing), then closes at the next wake-up.
    fn shut_down(&mut self) {
        self.shared.shutdown();
        self.core.wake(self.now, &mut self.wire);
        assert!(self.core.is_shutting_down(), "accepting stops at once");
        assert!(!self.core.finished(self.now), "not closing before settling");
        self.at(self.now - self.origin);
        self.core.wake(self.now, &mut self.wire);
    }

    fn peer(&mut self, key: usize) -> &mut Memory {
        self.core.io_mut(key).expect("the connection is there")
    }

    /// The frames the peer of `key` received so far (taken).
    fn frames(&mut self, key: usize) -> Vec<String> {
        let mut bytes = std::mem::take(&mut self.peer(key).taken);
        frames(&mut bytes)
    }

    fn released(&self, key: usize) -> Option<&Memory> {
        self.wire
            .released
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, memory)| memory)
    }
}

fn masked(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, true, opcode, payload, Some([9, 8, 7, 6]));
    out
}

/// Decodes server frames into tags: "text X", "binary N", "ping N", "close CODE".
fn frames(bytes: &mut [u8]) -> Vec<String> {
    let mut decoder = Decoder::new(DecoderConfig {
        role: Role::Client,
        ..Default::default()
    });
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let (used, event) = decoder.decode(&mut bytes[pos..]);
        pos += used;
        match event.expect("valid server frames") {
            Some(Event::Text(t)) => out.push(format!("text {t}")),
            Some(Event::Binary(b)) => out.push(format!("binary {}", b.len())),
            Some(Event::Ping(p)) => out.push(format!("ping {}", p.len())),
            Some(Event::Pong(p)) => out.push(format!("pong {}", p.len())),
            Some(Event::Close(c)) => out.push(match c {
                Some(c) => format!("close {}", c.code),
                None => "close".into(),
            }),
            None => return out,
        }
    }
}

#[test]
fn echo_with_no_socket() {
    let mut h = Harness::new(ServerConfig::default());
    let key = h.upgraded("/");
    h.send_text(key, "hello");
    assert_eq!(h.frames(key), ["text hello"]);
    assert_eq!(h.core.len(), 1);
}

#[test]
fn a_partial_frame_waits_for_the_rest() {
    let mut h = Harness::new(ServerConfig::default());
    let key = h.upgraded("/");
    let frame = masked(OpCode::Text, b"split in two");
    h.read(key, &frame[..1]);
    h.read(key, &frame[1..5]);
    assert!(h.frames(key).is_empty());
    h.read(key, &frame[5..]);
    assert_eq!(h.frames(key), ["text split in two"]);
}

#[test]
fn the_handshake_times_out_on_the_manual_clock() {
    let config = ServerConfig::default();
    let timeout = config.handshake_timeout;
    let mut h = Harness::new(config);
    let key = h.connect(usize::MAX);
    assert_eq!(
        h.core.poll_timeout(h.origin, false),
        Some(TICK),
        "a timer is armed: wake at the next tick"
    );
    h.at(timeout - TICK);
    assert!(h.released(key).is_none(), "not before the timeout");
    h.at(timeout + 2 * TICK);
    assert!(h.released(key).is_some(), "dropped after it");
    assert_eq!(h.shared.stats().handshake_timeouts, 1);
    assert_eq!(h.core.len(), 0);
    assert_eq!(
        h.core.poll_timeout(h.now, false),
        None,
        "nothing to wake for"
    );
}

/// Pings after 2 s of silence, drops 1 s after an unanswered ping.
fn pinging() -> ServerConfig {
    ServerConfig {
        ping_interval: Some(Duration::from_secs(2)),
        pong_timeout: Duration::from_secs(1),
        ..ServerConfig::default()
    }
}

#[test]
fn an_idle_peer_is_pinged_then_dropped() {
    let mut h = Harness::new(pinging());
    let key = h.upgraded("/");
    h.at(Duration::from_secs(1));
    assert!(h.frames(key).is_empty());
    h.at(Duration::from_secs(2) + 2 * TICK);
    assert_eq!(h.frames(key), ["ping 0"]);
    h.at(Duration::from_secs(3) + 4 * TICK);
    assert!(h.released(key).is_some());
    assert_eq!(*h.closes.lock().unwrap(), [1006]);
    assert_eq!(h.shared.stats().idle_timeouts, 1);
}

#[test]
fn a_pong_keeps_the_peer() {
    let mut h = Harness::new(pinging());
    let key = h.upgraded("/");
    h.at(Duration::from_secs(2) + 2 * TICK);
    assert_eq!(h.frames(key), ["ping 0"]);
    h.read(key, &masked(OpCode::Pong, b""));
    h.at(Duration::from_secs(3) + 4 * TICK);
    assert!(h.released(key).is_none());
}

#[test]
fn a_peer_still_reading_what_was_queued_before_the_ping_is_not_idle() {
    let mut h = Harness::new(pinging());
    let key = h.upgraded("/");
    h.peer(key).budget = 0;
    h.send_text(key, "big 100000");
    // The ping goes out behind the 100 KB; the peer reads 1 KB every 100 ms, so it
    // reaches the ping only after 10 s, long past the 1 s pong timeout.
    let mut at = Duration::from_secs(2) + 2 * TICK;
    h.at(at);
    let mut frames = Vec::new();
    while h.peer(key).taken.len() < 100_000 + 10 {
        at += Duration::from_millis(100);
        h.at(at);
        assert!(h.released(key).is_none(), "dropped at {at:?} while reading");
        h.writable(key, 1_000);
    }
    frames.extend(h.frames(key));
    assert_eq!(frames, ["binary 100000", "ping 0"]);
    h.read(key, &masked(OpCode::Pong, b""));
    h.at(at + Duration::from_secs(1) + 4 * TICK);
    assert!(h.released(key).is_none());
    assert_eq!(h.shared.stats().idle_timeouts, 0);
}

#[test]
fn a_peer_that_stops_reading_with_bytes_queued_is_dropped_as_idle() {
    let mut h = Harness::new(pinging());
    let key = h.upgraded("/");
    h.peer(key).budget = 0;
    h.send_text(key, "big 100000");
    h.at(Duration::from_secs(2) + 2 * TICK);
    // It reads a little after the ping, then nothing: one more pong timeout at most.
    h.writable(key, 1_000);
    h.at(Duration::from_secs(3) + 4 * TICK);
    assert!(h.released(key).is_none(), "it read since the ping");
    h.at(Duration::from_secs(4) + 6 * TICK);
    assert!(h.released(key).is_some());
    assert_eq!(*h.closes.lock().unwrap(), [1006]);
    assert_eq!(h.shared.stats().idle_timeouts, 1);
}

#[test]
fn reading_pauses_over_the_high_water_mark_and_resumes_under_half_of_it() {
    let config = ServerConfig {
        high_water_mark: 16 << 10,
        ..ServerConfig::default()
    };
    let mut h = Harness::new(config);
    let key = h.upgraded("/");
    h.peer(key).budget = 0;
    h.send_text(key, "big 10000");
    assert!(h.wire.paused.is_empty(), "10 KB queued: under the mark");
    h.send_text(key, "big 10000");
    assert_eq!(h.wire.paused, [key], "20 KB queued: over it");
    // The peer takes 11 KB: 9 KB are left, not under half the mark yet.
    h.writable(key, 11_000);
    assert!(h.wire.resumed.is_empty());
    h.writable(key, usize::MAX);
    assert_eq!(h.wire.resumed, [key], "the driver is told to read again");
    h.send_text(key, "big 10");
    assert_eq!(h.wire.paused, [key], "not paused again under the mark");
    assert_eq!(h.frames(key), ["binary 10000", "binary 10000", "binary 10"]);
}

#[test]
fn a_peer_past_max_backpressure_is_closed_with_1008() {
    let config = ServerConfig {
        max_backpressure: 32 << 10,
        high_water_mark: usize::MAX,
        ..ServerConfig::default()
    };
    let mut h = Harness::new(config);
    let key = h.upgraded("/");
    h.peer(key).budget = 0;
    for _ in 0..4 {
        h.send_text(key, "big 10000");
    }
    assert_eq!(h.shared.stats().backpressure_closes, 1);
    assert_eq!(*h.closes.lock().unwrap(), [1008]);
    h.writable(key, usize::MAX);
    assert_eq!(
        h.frames(key),
        ["binary 10000", "binary 10000", "binary 10000", "close 1008"]
    );
}

#[test]
fn publishes_reach_subscribers_when_the_turn_ends() {
    let mut h = Harness::new(ServerConfig::default());
    let fast = h.upgraded("/sub");
    let slow = h.upgraded("/sub");
    let publisher = h.upgraded("/");
    h.peer(slow).budget = 3;
    h.send_text(publisher, "pub one");
    h.send_text(publisher, "pub two");
    assert!(h.frames(fast).is_empty(), "delivered at the turn's end");
    assert_eq!(h.core.poll_timeout(h.now, false), Some(Duration::ZERO));
    h.at(Duration::ZERO);
    assert_eq!(h.frames(fast), ["text one", "text two"]);
    // The slow subscriber's rest outlived the turn batch it was a range of.
    let first = std::mem::take(&mut h.peer(slow).taken);
    assert_eq!(first.len(), 3);
    h.send_text(publisher, "pub three");
    h.at(Duration::ZERO);
    h.writable(slow, usize::MAX);
    let mut all = first;
    all.extend(std::mem::take(&mut h.peer(slow).taken));
    assert_eq!(frames(&mut all), ["text one", "text two", "text three"]);
    assert!(h.frames(publisher).is_empty());
}

#[test]
fn shutdown_closes_with_1001_and_ends_when_the_peers_answer() {
    let mut h = Harness::new(ServerConfig::default());
    let answers = h.upgraded("/");
    let handshaking = h.connect(usize::MAX);
    h.shut_down();
    assert!(h.released(handshaking).is_some(), "not upgraded: dropped");
    assert_eq!(h.frames(answers), ["close 1001"]);
    assert!(!h.core.finished(h.now));
    h.read(answers, &masked(OpCode::Close, b"\x03\xe9"));
    assert!(h.released(answers).is_some());
    assert!(h.core.finished(h.now));
    assert_eq!(*h.closes.lock().unwrap(), [1001]);
}

#[test]
fn shutdown_gives_up_on_silent_peers_after_its_timeout() {
    let config = ServerConfig {
        shutdown_timeout: Duration::from_secs(3),
        ..ServerConfig::default()
    };
    let mut h = Harness::new(config);
    let silent = h.upgraded("/");
    h.shut_down();
    assert_eq!(h.frames(silent), ["close 1001"]);
    h.at(Duration::from_secs(2));
    assert!(!h.core.finished(h.now));
    h.at(Duration::from_secs(3));
    assert!(h.core.finished(h.now), "the deadline passed");
}

#[test]
fn an_http_refusal_shuts_our_side_then_waits_for_eof() {
    let mut h = Harness::new(ServerConfig::default());
    let key = h.connect(usize::MAX);
    h.read(
        key,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(h.peer(key).taken.starts_with(b"HTTP/1.1 404"));
    assert!(h.peer(key).shut, "our FIN after the response");
    h.core.eof(key);
    h.core.served(key, &mut h.wire);
    assert!(h.released(key).is_some());
}

#[test]
fn a_completion_driver_sends_frozen_bytes_and_the_core_advances_by_completions() {
    let mut h = Harness::new(ServerConfig::default());
    let key = h.upgraded("/");
    h.wire.defers = true;
    h.send_text(key, "one");
    h.send_text(key, "two");
    let mut chunks: Vec<Bytes> = Vec::new();
    h.end_turn();
    let offered = h.core.sendable(key, &mut chunks);
    assert_eq!(offered, chunks.iter().map(Bytes::len).sum::<usize>());
    // The write is in flight: what is queued meanwhile goes behind it.
    h.send_text(key, "three");
    let mut wire: Vec<u8> = chunks.concat();
    h.core.sent(key, Some(offered), false, &mut h.wire);
    chunks.clear();
    h.end_turn();
    let rest = h.core.sendable(key, &mut chunks);
    wire.extend(chunks.concat());
    h.core.sent(key, Some(rest), false, &mut h.wire);
    assert_eq!(frames(&mut wire), ["text one", "text two", "text three"]);
    let mut none = Vec::new();
    h.end_turn();
    assert_eq!(h.core.sendable(key, &mut none), 0);
    // Bytes waiting for a submission or a completion were never refused.
    assert_eq!(h.shared.stats().backpressure_events, 0);
}

#[test]
fn replies_kept_for_a_completion_backend_share_the_turns_one_buffer() {
    let mut h = Harness::new(ServerConfig::default());
    let (a, b) = (h.upgraded("/"), h.upgraded("/"));
    h.wire.defers = true;
    h.send_text(a, "to a");
    h.send_text(b, "to b");
    let mut ready = Vec::new();
    h.end_turn();
    h.core.take_ready(&mut ready);
    assert_eq!(ready, [a, b], "both listed for a write, in order");
    let (mut to_a, mut to_b): (Vec<Bytes>, Vec<Bytes>) = (Vec::new(), Vec::new());
    let n = h.core.sendable(a, &mut to_a);
    h.core.sendable(b, &mut to_b);
    assert_eq!((to_a.len(), to_b.len()), (1, 1));
    // One allocation for the turn: b's reply follows a's in the sealed batch.
    assert_eq!(to_b[0].as_ptr(), to_a[0].as_ptr().wrapping_add(n));
    assert_eq!(frames(&mut to_a.concat()), ["text to a"]);
    assert_eq!(frames(&mut to_b.concat()), ["text to b"]);
    // Listed once per write: nothing more until the completions are reported.
    h.end_turn();
    h.core.take_ready(&mut ready);
    assert!(ready.is_empty());
}

#[test]
fn replies_to_reads_handed_over_after_the_turn_ended_are_still_sent() {
    let mut h = Harness::new(ServerConfig::default());
    let key = h.upgraded("/");
    h.wire.defers = true;
    h.end_turn();
    // A completion backend handing over reads in its own end of turn (completions
    // held during a pause), after the core sealed the turn batch.
    h.send_text(key, "late");
    let mut ready = Vec::new();
    h.core.take_ready(&mut ready);
    assert_eq!(ready, [key]);
    let mut chunks: Vec<Bytes> = Vec::new();
    let n = h.core.sendable(key, &mut chunks);
    assert!(n > 0, "the reply can be written now");
    assert_eq!(frames(&mut chunks.concat()), ["text late"]);
}

#[test]
fn an_eof_behind_replies_waits_for_their_write_then_ends_the_connection() {
    let mut h = Harness::new(ServerConfig::default());
    let key = h.upgraded("/");
    h.wire.defers = true;
    h.send_text(key, "last words");
    h.core.eof(key);
    h.core.served(key, &mut h.wire);
    assert!(h.released(key).is_none(), "the reply is on its way");
    h.end_turn();
    let mut ready = Vec::new();
    h.core.take_ready(&mut ready);
    let mut chunks: Vec<Bytes> = Vec::new();
    let n = h.core.sendable(key, &mut chunks);
    assert_eq!(frames(&mut chunks.concat()), ["text last words"]);
    h.core.sent(key, Some(n), false, &mut h.wire);
    assert!(h.released(key).is_some(), "the EOF ended it once written");
    assert_eq!(*h.closes.lock().unwrap(), [1006]);
}

#[test]
fn only_a_short_completion_makes_sends_report_backpressure() {
    let mut h = Harness::new(ServerConfig::default());
    let key = h.upgraded("/");
    h.wire.defers = true;
    h.send_text(key, "one");
    let mut chunks: Vec<Bytes> = Vec::new();
    h.end_turn();
    let offered = h.core.sendable(key, &mut chunks);
    // The socket took all but the last byte: it is full.
    h.core.sent(key, Some(offered - 1), true, &mut h.wire);
    h.send_text(key, "two");
    assert_eq!(h.shared.stats().backpressure_events, 1);
    // The rest went out whole: sends are no longer backpressured.
    chunks.clear();
    h.end_turn();
    let rest = h.core.sendable(key, &mut chunks);
    h.core.sent(key, Some(rest), false, &mut h.wire);
    h.send_text(key, "three");
    assert_eq!(h.shared.stats().backpressure_events, 1);
}

#[test]
fn publishes_queued_before_the_shutdown_go_out_before_the_1001() {
    let mut h = Harness::new(ServerConfig::default());
    let subscriber = h.upgraded("/sub");
    h.shared.shutdown();
    h.core.wake(h.now, &mut h.wire);
    h.at(Duration::ZERO);
    assert!(
        h.frames(subscriber).is_empty(),
        "settled: nothing closed yet"
    );
    // Another reactor handed on a publish it accepted before the shutdown: it is in
    // the inbox with the `Closing` the last settle sent.
    let publish = Publish::new(Some(TOPIC.into()), Message::Text("last"), None, None);
    h.shared.remotes[0].send_publishes(std::iter::once(publish));
    h.core.wake(h.now, &mut h.wire);
    h.at(Duration::ZERO);
    assert_eq!(h.frames(subscriber), ["text last", "close 1001"]);
}

/// A connection whose upgrade of `/later` waits for the test; returns its key.
fn deferred(h: &mut Harness) -> usize {
    let key = h.connect(usize::MAX);
    let (_, request) = ClientHandshake::new("localhost", "/later", &[], &[]);
    h.read(key, &request);
    assert_eq!(h.pending.lock().unwrap().len(), 1);
    key
}

fn peer_peer(closes: &Closes) -> Peer {
    Peer {
        subscribe: false,
        closes: closes.clone(),
    }
}

#[test]
fn a_decision_already_on_its_way_at_the_timeout_is_waited_for() {
    let config = ServerConfig {
        handshake_timeout: Duration::from_secs(1),
        ..ServerConfig::default()
    };
    let mut h = Harness::new(config);
    let key = deferred(&mut h);
    let pending = h.pending.lock().unwrap().pop().unwrap();
    // Decided (queued in the inbox), but the reactor has not woken yet...
    let handle = pending.accept(peer_peer(&h.closes)).expect("in time");
    // ...when the deadline passes: the reactor waits for the decision.
    h.at(Duration::from_secs(2));
    assert!(
        h.peer(key).taken.is_empty(),
        "no 503: the answer is on its way"
    );
    h.core.wake(h.now, &mut h.wire);
    h.at(Duration::from_secs(2));
    assert!(h.peer(key).taken.starts_with(b"HTTP/1.1 101"));
    assert!(!handle.is_gone());
    assert_eq!(
        h.shared
            .stats
            .pending
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[test]
fn a_timeout_before_the_decision_answers_503_and_the_decision_is_too_late() {
    let config = ServerConfig {
        handshake_timeout: Duration::from_secs(1),
        ..ServerConfig::default()
    };
    let mut h = Harness::new(config);
    let key = deferred(&mut h);
    h.at(Duration::from_secs(2));
    assert!(h.peer(key).taken.starts_with(b"HTTP/1.1 503"));
    let pending = h.pending.lock().unwrap().pop().unwrap();
    assert!(pending.accept(peer_peer(&h.closes)).is_err());
    assert_eq!(
        h.shared
            .stats
            .pending
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[test]
fn a_decision_for_a_reused_slot_never_reaches_the_new_connection() {
    let mut h = Harness::new(ServerConfig::default());
    let key = deferred(&mut h);
    let pending = h.pending.lock().unwrap().pop().unwrap();
    h.core.eof(key);
    h.core.served(key, &mut h.wire);
    // A new connection takes the slot, then the old decision arrives.
    let reused = h.upgraded("/");
    assert_eq!(reused, key);
    assert!(
        pending.accept(peer_peer(&h.closes)).is_err(),
        "the ticket expired with the old one"
    );
    h.send_text(reused, "still mine");
    assert_eq!(h.frames(reused), ["text still mine"]);
}

mod tls;
