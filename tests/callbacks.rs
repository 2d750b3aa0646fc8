//! Handler callbacks and `Conn` queries over real sockets: `on_ping` after the
//! automatic pong, `Conn::ping` answered at `on_pong`, and `buffered_amount` for this
//! turn's sends and for what waits behind a full socket.

mod common;

use std::net::TcpStream;
use std::sync::{Arc, Mutex};

use common::*;
use wavecore::{Conn, Handler, Message, Request, SendStatus, Upgrade};

const CHUNK: usize = 64 << 10;
/// A `CHUNK`-byte binary frame on the wire: 10 bytes of header (64-bit length).
const CHUNK_FRAME: usize = CHUNK + 10;

/// What `buffered_amount()` said after each "go" (with the send's status).
type Amounts = Arc<Mutex<Vec<(SendStatus, usize)>>>;

/// Reports pings and pongs as text; pings on request; measures `buffered_amount`.
#[derive(Clone, Default)]
struct Talker {
    amounts: Amounts,
}

impl Handler for Talker {
    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        match message {
            Message::Text("ping me") => {
                let status = conn.ping(b"from server");
                conn.send_text(&format!("ping sent: {status:?}"));
            }
            Message::Text("ping me big") => {
                let status = conn.ping(&[b'x'; 126]);
                conn.send_text(&format!("ping sent: {status:?}"));
            }
            Message::Text("measure") => {
                let before = conn.buffered_amount();
                conn.send_text("hello");
                let after_text = conn.buffered_amount();
                conn.send_binary(&[7; 200]);
                let after_binary = conn.buffered_amount();
                conn.send_text(&format!("{before} {after_text} {after_binary}"));
            }
            Message::Text("go") => {
                let status = conn.send_binary(&[0x5a; CHUNK]);
                let amount = conn.buffered_amount();
                self.amounts.lock().unwrap().push((status, amount));
            }
            Message::Text("report") => {
                let amount = conn.buffered_amount();
                conn.send_text(&amount.to_string());
            }
            _ => {}
        }
    }

    fn on_ping(&mut self, conn: &mut Conn<'_>, payload: &[u8]) {
        conn.send_text(&format!("on_ping {}", String::from_utf8_lossy(payload)));
    }

    fn on_pong(&mut self, conn: &mut Conn<'_>, payload: &[u8]) {
        conn.send_text(&format!("on_pong {}", String::from_utf8_lossy(payload)));
    }
}

fn start() -> (TestServer, Talker) {
    let talker = Talker::default();
    let make = talker.clone();
    let server = TestServer::start(
        // Automatic pings off, so every ping and pong here is the test's own; room for
        // the backlog test's queue.
        builder().ping_interval(None).max_backpressure(256 << 20),
        move |_: &Request<'_>| Upgrade::accept(make.clone()),
    );
    (server, talker)
}

/// Reads one frame and checks its opcode and payload.
fn expect_frame(stream: &mut TcpStream, opcode: u8, payload: &[u8]) {
    let frame = read_frame(stream).expect("a frame");
    assert_eq!(
        (frame.opcode, String::from_utf8_lossy(&frame.payload)),
        (opcode, String::from_utf8_lossy(payload)),
    );
}

#[test]
fn on_ping_runs_after_the_pong_was_queued() {
    let (server, _) = start();
    let mut stream = raw_upgrade(server.addr);
    for payload in [&b"p1"[..], b"", &[b'q'; 125]] {
        write_frame(&mut stream, true, OP_PING, payload);
        expect_frame(&mut stream, OP_PONG, payload);
        let seen = format!("on_ping {}", String::from_utf8_lossy(payload));
        expect_frame(&mut stream, OP_TEXT, seen.as_bytes());
    }
}

#[test]
fn conn_ping_reaches_the_peer_and_its_pong_reaches_on_pong() {
    let (server, _) = start();
    let mut stream = raw_upgrade(server.addr);
    write_frame(&mut stream, true, OP_TEXT, b"ping me");
    expect_frame(&mut stream, OP_PING, b"from server");
    expect_frame(&mut stream, OP_TEXT, b"ping sent: Success");
    write_frame(&mut stream, true, OP_PONG, b"from server");
    expect_frame(&mut stream, OP_TEXT, b"on_pong from server");

    // An unsolicited pong reaches on_pong too (RFC 6455 section 5.5.3 allows it).
    write_frame(&mut stream, true, OP_PONG, b"heartbeat");
    expect_frame(&mut stream, OP_TEXT, b"on_pong heartbeat");

    // Over 125 bytes is not a valid control frame: dropped, nothing sent.
    write_frame(&mut stream, true, OP_TEXT, b"ping me big");
    expect_frame(&mut stream, OP_TEXT, b"ping sent: Dropped");
}

#[test]
fn buffered_amount_counts_this_turns_sends() {
    let (server, _) = start();
    let mut stream = raw_upgrade(server.addr);
    write_frame(&mut stream, true, OP_TEXT, b"measure");
    expect_frame(&mut stream, OP_TEXT, b"hello");
    expect_frame(&mut stream, OP_BINARY, &[7; 200]);
    // Nothing before; "hello" is 2 + 5 bytes on the wire; 200 bytes take 4 + 200.
    expect_frame(&mut stream, OP_TEXT, b"0 7 211");
}

#[test]
fn buffered_amount_counts_what_waits_behind_a_full_socket() {
    let (server, talker) = start();
    let mut stream = raw_upgrade(server.addr);
    // Ask for 64 KiB at a time without reading, one reactor turn each, until a send
    // finds bytes still queued before it.
    let mut asked = 0;
    loop {
        assert!(asked < 4000, "no send queued after {asked} x 64 KiB");
        write_frame(&mut stream, true, OP_TEXT, b"go");
        asked += 1;
        assert!(wait_until(|| talker.amounts.lock().unwrap().len() == asked));
        if talker.amounts.lock().unwrap()[asked - 1].0 == SendStatus::Backpressure {
            break;
        }
    }
    let amounts = talker.amounts.lock().unwrap().clone();
    for (i, &(status, amount)) in amounts.iter().enumerate() {
        match status {
            // In this turn's write buffer: at least this frame.
            SendStatus::Success => assert!(amount >= CHUNK_FRAME, "{i}: {amount}"),
            // Queued behind bytes the socket has not taken: those, and this frame.
            SendStatus::Backpressure => assert!(amount > CHUNK_FRAME, "{i}: {amount}"),
            SendStatus::Dropped => panic!("{i}: dropped under a 256 MiB limit"),
        }
    }
    // Read it all; then nothing is buffered any more.
    for i in 0..asked {
        let frame = read_frame(&mut stream).expect("a queued message");
        assert_eq!(
            (frame.opcode, frame.payload.len()),
            (OP_BINARY, CHUNK),
            "{i}"
        );
    }
    write_frame(&mut stream, true, OP_TEXT, b"report");
    expect_frame(&mut stream, OP_TEXT, b"0");
}
