//! Limits that end (or spare) a connection over time: automatic pings and the idle
//! timeout, and the backpressure limit under both policies. Each asserts what happens
//! (frames, counts, close codes), never how fast: every timeout a test does not
//! exercise is far longer than the test.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tungstenite::Message as WsMessage;
use wavecore::{
    BackpressurePolicy, CloseInfo, Conn, Handler, Message, Request, SendStatus, Upgrade,
};

fn pinging_server(closes: &Closes) -> TestServer {
    TestServer::start(
        builder()
            .ping_interval(Some(Duration::from_millis(200)))
            .pong_timeout(Duration::from_millis(200)),
        echo_service(closes),
    )
}

#[test]
fn unanswered_ping_drops_the_connection_as_1006() {
    let closes = Closes::default();
    let server = pinging_server(&closes);
    let mut stream = raw_upgrade(server.addr);

    let ping = read_frame(&mut stream).expect("an automatic ping");
    assert_eq!(ping.opcode, OP_PING);
    // Never answer: the server drops the TCP connection without a close frame.
    assert_eq!(read_frame(&mut stream), None);
    assert_eq!(
        wait_closes(&closes, 1),
        [(1006, "idle timeout".to_owned(), false)]
    );
    assert_eq!(server.handle.stats().idle_timeouts, 1);
    assert_eq!(server.handle.connections(), 0);
}

/// On "block", holds its reactor for `BLOCK` (a turn that lasts longer than the other
/// connection's ping interval); echoes anything else.
struct Blocker;

/// How long a "block" holds the reactor: past the silent peer's ping deadline.
const BLOCK: Duration = Duration::from_millis(1000);

impl Handler for Blocker {
    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        if message == Message::Text("block") {
            std::thread::sleep(BLOCK);
        } else {
            conn.send(message);
        }
    }
}

#[test]
fn a_deadline_passed_during_a_long_turn_still_pings_and_times_out() {
    // A handler that holds the reactor makes the turn outlast a silent peer's ping
    // deadline: its timer comes due in a turn whose clock was read before the handler
    // ran. The ping must still go out (and the idle timeout follow), not be lost.
    let server = TestServer::start(
        builder()
            .ping_interval(Some(Duration::from_millis(300)))
            .pong_timeout(Duration::from_millis(300)),
        |_: &Request<'_>| Upgrade::accept(Blocker),
    );
    let mut silent = raw_upgrade(server.addr);
    let mut blocker = raw_upgrade(server.addr);
    blocker
        .write_all(&encode_frame(true, OP_TEXT, b"block", true))
        .unwrap();
    let ping = read_frame(&mut silent).expect("an automatic ping after the long turn");
    assert_eq!(ping.opcode, OP_PING);
    assert_eq!(read_frame(&mut silent), None, "then the idle timeout");
    assert!(wait_until(|| server.handle.stats().idle_timeouts >= 1));
}

/// Echoes, and counts the pongs that reach `on_pong`.
#[derive(Clone, Default)]
struct PongCounter {
    pongs: Arc<AtomicUsize>,
    closes: Closes,
}

impl Handler for PongCounter {
    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        conn.send(message);
    }

    fn on_pong(&mut self, _conn: &mut Conn<'_>, payload: &[u8]) {
        assert!(payload.is_empty(), "automatic pings carry nothing");
        self.pongs.fetch_add(1, Ordering::SeqCst);
    }

    fn on_close(&mut self, close: CloseInfo<'_>) {
        record_close(&self.closes, close);
    }
}

#[test]
fn answered_pings_keep_the_connection_open() {
    // Pings after 50 ms of silence, but waits a minute for each answer: what happens
    // depends on the answers, never on how fast the client gives them.
    let counter = PongCounter::default();
    let make = counter.clone();
    let server = TestServer::start(
        builder()
            .ping_interval(Some(Duration::from_millis(50)))
            .pong_timeout(Duration::from_secs(60)),
        move |_: &Request<'_>| Upgrade::accept(make.clone()),
    );
    let mut ws = ws_connect(server.addr);
    // While a ping waits for its answer the server sends no other, so a sixth ping
    // proves the first five answers were taken. tungstenite answers each ping with
    // a pong on its next read.
    for i in 0..6 {
        match ws.read().expect("connection stays up") {
            WsMessage::Ping(payload) => assert!(payload.is_empty(), "ping {i}"),
            other => panic!("expected ping {i}, got {other:?}"),
        }
    }
    assert!(
        wait_until(|| counter.pongs.load(Ordering::SeqCst) >= 5),
        "on_pong for every answered ping, saw {}",
        counter.pongs.load(Ordering::SeqCst)
    );
    ws.send(WsMessage::text("still here")).unwrap();
    assert_eq!(ws_read_data(&mut ws), WsMessage::text("still here"));
    assert!(
        wait_until(|| counter.pongs.load(Ordering::SeqCst) >= 6),
        "the sixth answer reached on_pong too"
    );
    assert_eq!(server.handle.stats().idle_timeouts, 0);
    assert!(counter.closes.lock().unwrap().is_empty());
    assert_eq!(server.handle.connections(), 1);
}

const CHUNK: usize = 64 << 10;
const LIMIT: usize = 256 << 10;

/// Sends a 64 KiB binary message for every "go" (recording what `send` returned),
/// echoes anything else, and counts `on_drain` calls.
#[derive(Clone, Default)]
struct Flood {
    statuses: Arc<Mutex<Vec<SendStatus>>>,
    drains: Arc<AtomicUsize>,
    closes: Closes,
}

impl Handler for Flood {
    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        if message == Message::Text("go") {
            let status = conn.send_binary(&[0x5a; CHUNK]);
            self.statuses.lock().unwrap().push(status);
        } else {
            conn.send(message);
        }
    }

    fn on_drain(&mut self, _conn: &mut Conn<'_>) {
        self.drains.fetch_add(1, Ordering::SeqCst);
    }

    fn on_close(&mut self, close: CloseInfo<'_>) {
        record_close(&self.closes, close);
    }
}

fn flood_server(policy: BackpressurePolicy) -> (TestServer, Flood) {
    let flood = Flood::default();
    let make = flood.clone();
    let server = TestServer::start(
        builder()
            .max_backpressure(LIMIT)
            .backpressure_policy(policy)
            // The test reads everything only at the end; don't let the close
            // handshake time out meanwhile.
            .close_timeout(Duration::from_secs(60)),
        move |_: &Request<'_>| Upgrade::accept(make.clone()),
    );
    (server, flood)
}

/// Sends one "go" and waits until the handler answered it, so that each 64 KiB send
/// has its own reactor turn: the socket fills, then the connection's queue grows.
/// (Several "go"s read at once would be answered in one turn, whose sends all count
/// against the limit before any of them reaches the socket.)
fn ask_and_wait(stream: &mut std::net::TcpStream, flood: &Flood, asked: &mut usize) {
    stream
        .write_all(&encode_frame(true, OP_TEXT, b"go", true))
        .unwrap();
    *asked += 1;
    let n = *asked;
    assert!(
        wait_until(|| flood.statuses.lock().unwrap().len() == n),
        "go {n} answered"
    );
}

#[test]
fn slow_reader_is_closed_with_1008_by_default() {
    let (server, flood) = flood_server(BackpressurePolicy::default());
    let mut stream = raw_upgrade(server.addr);
    // Ask for 64 KiB at a time without reading, until the server gives up on us.
    let mut asked = 0;
    while server.handle.stats().backpressure_closes == 0 {
        assert!(
            asked < 10_000,
            "no backpressure close after {asked} x 64 KiB"
        );
        ask_and_wait(&mut stream, &flood, &mut asked);
    }
    assert_eq!(server.handle.stats().backpressure_closes, 1);
    let statuses = flood.statuses.lock().unwrap().clone();
    assert_eq!(statuses.last(), Some(&SendStatus::Dropped));
    let delivered = statuses
        .iter()
        .filter(|&&s| s != SendStatus::Dropped)
        .count();
    assert_eq!(statuses.len(), delivered + 1, "{statuses:?}");
    assert!(statuses.contains(&SendStatus::Backpressure), "{statuses:?}");

    // Now read it all: every message sent before the limit, then the close frame.
    for i in 0..delivered {
        let frame = read_frame(&mut stream).expect("a queued message");
        assert_eq!(
            (frame.opcode, frame.payload.len()),
            (OP_BINARY, CHUNK),
            "frame {i}"
        );
    }
    let close = read_frame(&mut stream).expect("the close frame");
    assert_eq!(close.close_code(), 1008);
    write_frame(&mut stream, true, OP_CLOSE, &close_payload(1008, ""));
    assert_eq!(
        read_frame(&mut stream),
        None,
        "EOF after the close handshake"
    );
    assert_eq!(
        wait_closes(&flood.closes, 1),
        [(1008, "backpressure limit".to_owned(), false)]
    );
    assert_eq!(server.handle.connections(), 0);
}

#[test]
fn drop_policy_drops_messages_and_keeps_the_connection() {
    let (server, flood) = flood_server(BackpressurePolicy::Drop);
    let mut stream = raw_upgrade(server.addr);
    let mut asked = 0;
    while !flood
        .statuses
        .lock()
        .unwrap()
        .contains(&SendStatus::Dropped)
    {
        assert!(asked < 10_000, "nothing dropped after {asked} x 64 KiB");
        ask_and_wait(&mut stream, &flood, &mut asked);
    }
    let statuses = flood.statuses.lock().unwrap().clone();
    let dropped = statuses
        .iter()
        .filter(|&&s| s == SendStatus::Dropped)
        .count();
    assert!(statuses.contains(&SendStatus::Backpressure), "{statuses:?}");
    assert_eq!(server.handle.stats().dropped_messages, dropped as u64);
    assert_eq!(server.handle.stats().backpressure_closes, 0);

    // Every message not dropped arrives, whole and in order; nothing else.
    for i in 0..statuses.len() - dropped {
        let frame = read_frame(&mut stream).expect("a queued message");
        assert_eq!(
            (frame.opcode, frame.payload.len()),
            (OP_BINARY, CHUNK),
            "frame {i}"
        );
    }
    assert!(
        wait_until(|| flood.drains.load(Ordering::SeqCst) >= 1),
        "on_drain once the queue emptied"
    );
    // The connection is still open and sends again.
    write_frame(&mut stream, true, OP_TEXT, b"still open?");
    let echo = read_frame(&mut stream).expect("echo");
    assert_eq!(
        (echo.opcode, &echo.payload[..]),
        (OP_TEXT, &b"still open?"[..])
    );
    write_frame(&mut stream, true, OP_TEXT, b"go");
    let frame = read_frame(&mut stream).expect("64 KiB again");
    assert_eq!((frame.opcode, frame.payload.len()), (OP_BINARY, CHUNK));
    assert!(flood.closes.lock().unwrap().is_empty());
    assert_eq!(server.handle.connections(), 1);
}
