//! The connection state machine driven directly: bytes in, bytes out, no sockets.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use super::*;
use crate::protocol::frame::encode_frame;
use crate::protocol::handshake::ClientHandshake;
use crate::protocol::{DecoderConfig, Role};
use crate::server::conn_api::ConnId;
use crate::server::handler::Upgrade;

type Log = Arc<Mutex<Vec<String>>>;
type TestService = Box<dyn Fn(&Request<'_>) -> Upgrade<Recorder> + Send + Sync>;

/// Echoes, panics on "boom", closes on "bye", logs every callback.
struct Recorder {
    log: Log,
}

impl Handler for Recorder {
    fn on_open(&mut self, _conn: &mut Conn<'_>) {
        self.log.lock().unwrap().push("open".into());
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        match message {
            Message::Text("boom") => panic!("handler bug"),
            Message::Text("bye") => conn.close(CloseCode(4001), "later"),
            message => {
                conn.send(message);
            }
        }
    }

    fn on_close(&mut self, close: CloseInfo<'_>) {
        let line = format!("close {} {} {}", close.code, close.reason, close.by_peer);
        self.log.lock().unwrap().push(line);
    }
}

struct Harness {
    conn: Connection<Recorder>,
    reactor: ReactorState,
    config: ServerConfig,
    service: TestService,
    log: Log,
}

impl Harness {
    fn new() -> Self {
        let log: Log = Arc::default();
        let service_log = log.clone();
        let config = ServerConfig::default();
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let state = ConnState::new(0, ConnId(1), peer, 0);
        Self {
            conn: Connection::new(state, &config, 0),
            reactor: ReactorState::new(Arc::default(), Arc::default()),
            config,
            service: Box::new(move |_| {
                Upgrade::accept(Recorder {
                    log: service_log.clone(),
                })
            }),
            log,
        }
    }

    /// Feeds bytes; returns what the connection wrote this turn (cork and outbox).
    fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut data = vec![0u8; bytes.len() + 256];
        let held = self.conn.take_pending(&mut data);
        data[held..held + bytes.len()].copy_from_slice(bytes);
        data.truncate(held + bytes.len());
        let service = &self.service;
        let mut env = Env {
            service,
            config: &self.config,
            reactor: &mut self.reactor,
        };
        self.conn.receive(&mut data, &mut env);
        self.take_output()
    }

    fn take_output(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.reactor.cork);
        let mut sink = Vec::new();
        let mut cork = Vec::new();
        self.conn
            .state
            .outbox
            .flush(&mut sink, &mut cork, &self.reactor.batch)
            .unwrap();
        sink.append(&mut out);
        sink
    }

    fn open(&mut self) {
        let (client, request) = ClientHandshake::new("localhost", "/", &[], &[]);
        let response = self.feed(&request);
        let head_end = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        client.validate(&response[..head_end]).expect("a valid 101");
        assert!(self.conn.is_open());
    }

    fn tick(&mut self, now: Tick) {
        self.reactor.now = now;
        let mut env = Env {
            service: &self.service,
            config: &self.config,
            reactor: &mut self.reactor,
        };
        self.conn.on_timer(&mut env);
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

fn masked(opcode: OpCode, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, fin, opcode, payload, Some([1, 2, 3, 4]));
    out
}

/// Decodes the server frames in `bytes` into (opcode-ish tag, payload) pairs.
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
            Some(Event::Pong(p)) => out.push(format!("pong {}", String::from_utf8_lossy(p))),
            Some(Event::Close(c)) => out.push(match c {
                Some(c) => format!("close {} {}", c.code, c.reason),
                None => "close".into(),
            }),
            None => return out,
        }
    }
}

#[test]
fn handshake_then_echo_in_one_write() {
    let mut h = Harness::new();
    h.open();
    let mut input = masked(OpCode::Text, true, b"one");
    input.extend(masked(OpCode::Binary, true, &[0; 300]));
    let mut out = h.feed(&input);
    assert_eq!(frames(&mut out), ["text one", "binary 300"]);
    assert_eq!(h.log(), ["open"]);
}

#[test]
fn a_request_split_into_single_bytes_upgrades() {
    let mut h = Harness::new();
    let (_, request) = ClientHandshake::new("localhost", "/", &[], &[]);
    let mut out = Vec::new();
    for byte in &request {
        out.extend(h.feed(std::slice::from_ref(byte)));
    }
    assert!(out.starts_with(b"HTTP/1.1 101"));
    assert!(h.conn.is_open());
}

#[test]
fn a_frame_split_across_reads_is_delivered_once() {
    let mut h = Harness::new();
    h.open();
    let input = masked(OpCode::Text, true, "héllo".as_bytes());
    let mut out = Vec::new();
    for byte in &input {
        out.extend(h.feed(std::slice::from_ref(byte)));
    }
    assert_eq!(frames(&mut out), ["text héllo"]);
}

#[test]
fn ping_gets_a_pong_with_the_same_payload() {
    let mut h = Harness::new();
    h.open();
    let mut out = h.feed(&masked(OpCode::Ping, true, b"abc"));
    assert_eq!(frames(&mut out), ["pong abc"]);
}

#[test]
fn peer_close_is_echoed_and_reported() {
    let mut h = Harness::new();
    h.open();
    let mut out = h.feed(&masked(OpCode::Close, true, b"\x0f\xa0bye"));
    assert_eq!(frames(&mut out), ["close 4000 "]);
    assert_eq!(h.log(), ["open", "close 4000 bye true"]);
    assert!(h.conn.is_finishing());
}

#[test]
fn protocol_errors_close_with_their_code() {
    for (input, code) in [
        (
            masked(OpCode::Text, true, b"\xff"),
            "close 1007 invalid UTF-8",
        ),
        (
            masked(OpCode::Continuation, true, b"x"),
            "close 1002 continuation without a message",
        ),
        (vec![0x81, 0x01, b'x'], "close 1002 client frame not masked"),
    ] {
        let mut h = Harness::new();
        h.open();
        let mut out = h.feed(&input);
        assert_eq!(frames(&mut out), [code]);
        assert!(h.conn.is_finishing());
        assert_eq!(h.log()[1], format!("close {} false", &code[6..]));
    }
}

#[test]
fn handler_close_waits_for_the_peer() {
    let mut h = Harness::new();
    h.open();
    let mut out = h.feed(&masked(OpCode::Text, true, b"bye"));
    assert_eq!(frames(&mut out), ["close 4001 later"]);
    assert_eq!(h.log(), ["open", "close 4001 later false"]);
    assert!(matches!(h.conn.phase, Phase::Closing { .. }));
    // Data after our close is dropped; the peer's close ends the handshake.
    assert!(h.feed(&masked(OpCode::Text, true, b"late")).is_empty());
    assert!(h.feed(&masked(OpCode::Close, true, b"\x0f\xa1")).is_empty());
    assert!(h.conn.is_finishing());
}

#[test]
fn a_panicking_handler_closes_with_1011() {
    let mut h = Harness::new();
    h.open();
    let mut out = h.feed(&masked(OpCode::Text, true, b"boom"));
    assert_eq!(frames(&mut out), ["close 1011 internal error"]);
    assert_eq!(h.reactor.stats.snapshot().handler_panics, 1);
}

#[test]
fn plain_http_gets_404_and_broken_upgrades_are_refused() {
    let mut h = Harness::new();
    let out = h.feed(b"GET /page HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        out.starts_with(b"HTTP/1.1 404"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert!(
        matches!(h.conn.phase, Phase::KeepAlive),
        "HTTP/1.1 keeps the connection"
    );
    let mut h = Harness::new();
    let out = h.feed(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 12\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 426"), "{text}");
    assert!(text.contains("Sec-WebSocket-Version: 13"));
}

#[test]
fn idle_connection_is_pinged_then_dropped() {
    let mut h = Harness::new();
    h.open();
    let interval = ticks(h.config.ping_interval.unwrap());
    let due = h.conn.next_due(&h.config).unwrap();
    assert_eq!(due, interval);
    h.tick(due);
    let mut out = h.take_output();
    assert_eq!(frames(&mut out), ["ping 0"]);
    let due = h.conn.next_due(&h.config).unwrap();
    h.tick(due);
    assert!(h.conn.is_done());
    assert_eq!(h.log(), ["open", "close 1006 idle timeout false"]);
}

#[test]
fn idle_open_connection_holds_no_buffers() {
    let mut h = Harness::new();
    h.open();
    h.feed(&masked(OpCode::Text, false, b"part"));
    h.feed(&masked(OpCode::Continuation, true, b"done"));
    assert!(h.conn.pending.is_none());
    assert!(h.conn.state.outbox.is_empty());
    let Phase::Open { decoder, .. } = &h.conn.phase else {
        panic!()
    };
    assert_eq!(decoder.buffered(), 0);
    assert!(!decoder.is_mid_message());
}
