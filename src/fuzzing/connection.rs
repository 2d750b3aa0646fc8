//! One connection's state machine fed arbitrary bytes, with an echoing handler.

use std::sync::Arc;

use crate::protocol::{CloseCode, Decoder, DecoderConfig, Event, Role};
use crate::server::config::ServerConfig;
use crate::server::conn_api::{Conn, ConnId};
use crate::server::core::conn::state::ConnState;
use crate::server::core::conn::{Connection, Env};
use crate::server::core::reactor_state::ReactorState;
use crate::server::handler::{Handler, Message, Request, Upgrade};

use super::Input;

/// An upgrade request prepended to the stream when option bit 0 is set, so that
/// the fuzzer reaches frames without first finding a valid handshake.
const UPGRADE: &[u8] = b"GET /fuzz HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat\r\n\r\n";

/// Echoes, and acts on the first byte of a message: `c` closes (1000), `p` pings
/// with the rest, `s`/`u` (un)subscribes to a topic, `b` publishes, `a` broadcasts.
struct Echo;

impl Handler for Echo {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.send_text("open");
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        let bytes = message.as_bytes();
        match bytes.first() {
            Some(b'c') => conn.close(CloseCode::NORMAL, "asked to"),
            Some(b'p') => {
                conn.ping(&bytes[1..]);
            }
            Some(b's') => {
                conn.subscribe("topic");
            }
            Some(b'u') => {
                conn.unsubscribe("topic");
            }
            Some(b'b') => {
                conn.publish("topic", message);
            }
            Some(b'a') => conn.broadcast(message),
            _ => {
                conn.send(message);
            }
        }
    }

    fn on_ping(&mut self, conn: &mut Conn<'_>, payload: &[u8]) {
        conn.send_binary(payload);
    }

    fn on_drain(&mut self, conn: &mut Conn<'_>) {
        conn.send_text("drained");
    }
}

fn service(request: &Request<'_>) -> Upgrade<Echo> {
    let upgrade = Upgrade::accept(Echo);
    match request.protocols().next() {
        Some(protocol) => upgrade.with_protocol(protocol),
        None => upgrade,
    }
}

/// Feeds the stream of `data` to a fresh connection in the reads its first byte asks
/// for, writing out (into memory) what it queues after each, and checks the whole
/// output. Option bits: 0 prepends a valid upgrade request; 1 picks small limits
/// (64-byte frames, 256-byte messages, 128-byte heads, 1 KiB of backpressure); 2
/// advances the clock by a second and runs the connection's timer after each read; 3
/// ends with the peer's EOF.
pub fn connection(data: &[u8]) {
    let Some(input) = Input::parse(data) else {
        return;
    };
    let mut config = ServerConfig::default();
    if input.option(1) {
        config.max_frame_size = 64;
        config.max_message_size = 256;
        config.max_handshake_bytes = 128;
        config.max_backpressure = 1024;
    }
    config.ping_interval = Some(std::time::Duration::from_secs(2));
    let mut reactor = ReactorState::new(Arc::default(), Arc::default());
    let state = ConnState::new(0, ConnId(1), ([127, 0, 0, 1], 5000).into(), 0);
    let mut conn = Connection::new(state, &config, 0);
    let mut wire = Vec::new();
    let mut reads = input.reads();
    if input.option(0) {
        reads.insert(0, UPGRADE);
    }
    for read in reads {
        if conn.is_done() {
            break;
        }
        let mut buf = vec![0u8; read.len() + 256];
        let held = conn.take_pending(&mut buf);
        buf[held..held + read.len()].copy_from_slice(read);
        buf.truncate(held + read.len());
        let mut env = Env {
            service: &service,
            config: &config,
            reactor: &mut reactor,
        };
        conn.receive(&mut buf, &mut env);
        if input.option(2) {
            env.reactor.now += 10;
            conn.on_timer(&mut env);
        }
        // Publishes would go to other connections; there are none.
        env.reactor.publishes.clear();
        flush(&mut conn, &mut reactor, &mut wire);
        let mut env = Env {
            service: &service,
            config: &config,
            reactor: &mut reactor,
        };
        conn.drained(&mut env);
        flush(&mut conn, &mut reactor, &mut wire);
    }
    if input.option(3) {
        let mut env = Env {
            service: &service,
            config: &config,
            reactor: &mut reactor,
        };
        conn.eof(&mut env);
        flush(&mut conn, &mut reactor, &mut wire);
    }
    check_output(&wire);
}

/// Writes what the connection queued (its outbox, then this turn's cork) to `wire`,
/// as a socket that takes everything would.
fn flush(conn: &mut Connection<Echo>, reactor: &mut ReactorState, wire: &mut Vec<u8>) {
    let cork = std::mem::take(&mut reactor.cork);
    conn.state
        .outbox
        .flush(wire, &mut Vec::new(), &reactor.batch)
        .expect("a Vec takes everything");
    wire.extend_from_slice(&cork);
}

/// The output is nothing, or HTTP responses: each whole (its body as long as its
/// `Content-Length`, or none for a `HEAD`), more only while the connection is kept
/// alive, nothing after one that says `Connection: close`; after a 101, valid unmasked
/// server frames, and nothing after a close frame.
fn check_output(wire: &[u8]) {
    let mut rest = wire;
    while !rest.is_empty() {
        let mut fields = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut fields);
        let Ok(httparse::Status::Complete(head_len)) = response.parse(rest) else {
            panic!("output does not continue with a response head");
        };
        if response.code == Some(101) {
            return check_frames(&rest[head_len..]);
        }
        let header = |name: &str| {
            response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .and_then(|h| std::str::from_utf8(h.value).ok())
        };
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .expect("a response has a Content-Length");
        let closes = header("connection").is_some_and(|v| {
            v.split(',')
                .any(|token| token.trim().eq_ignore_ascii_case("close"))
        });
        let is_next = |at: usize| at == rest.len() || rest[at..].starts_with(b"HTTP/1.1 ");
        let next = if rest.len() >= head_len + length && is_next(head_len + length) {
            head_len + length
        } else if is_next(head_len) {
            head_len // the answer to a HEAD: the length, no body
        } else {
            panic!("a response body does not match its Content-Length");
        };
        if closes {
            assert_eq!(next, rest.len(), "nothing after a response that closes");
        }
        rest = &rest[next..];
    }
}

/// Valid unmasked server frames, and nothing after a close frame.
fn check_frames(wire: &[u8]) {
    let mut frames = wire.to_vec();
    let mut decoder = Decoder::new(DecoderConfig {
        role: Role::Client,
        ..DecoderConfig::default()
    });
    let mut pos = 0;
    let mut closed = false;
    loop {
        let (used, event) = decoder.decode(&mut frames[pos..]);
        pos += used;
        match event {
            Ok(None) => break,
            Ok(Some(event)) => {
                assert!(!closed, "a frame after our close frame: {event:?}");
                closed = matches!(event, Event::Close(_));
            }
            Err(error) => panic!("the server wrote an invalid frame: {error:?}"),
        }
    }
    assert_eq!(
        pos,
        frames.len(),
        "a partial frame at the end of the output"
    );
}
