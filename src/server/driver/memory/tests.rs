//! The turn loop and the core over the in-memory backend: no socket, no system call,
//! the same code the epoll and io_uring backends run.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::{Memory, Seen, Step};
use crate::protocol::frame::{OpCode, encode_frame};
use crate::protocol::handshake::ClientHandshake;
use crate::protocol::{Decoder, DecoderConfig, Event, Role};
use crate::server::config::ServerConfig;
use crate::server::core::Core;
use crate::server::driver::reactor::Reactor;
use crate::server::handler::{Conn, Handler, Message, accept_all};
use crate::server::pubsub::Interest;
use crate::server::shared::{Remote, Shared, Wake};
use crate::server::stats::Stats;

struct Echo;

impl Handler for Echo {
    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        conn.send(message);
    }
}

struct NoWake;

impl Wake for NoWake {
    fn wake(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `script` through a reactor of one echo server over the in-memory backend,
/// until its graceful shutdown completes; returns what the loop did and saw.
fn run(script: Vec<Step>, config: ServerConfig) -> (Result<(), String>, Seen, Arc<Shared>) {
    let shared = Arc::new(Shared {
        remotes: vec![Remote::new(Box::new(NoWake))],
        ..Shared::detached(Arc::new(Stats::default()), Arc::new(Interest::default()))
    });
    let seen = Arc::new(Mutex::new(Seen::default()));
    let backend = Memory::new(script, shared.clone(), seen.clone());
    let service = Arc::new(accept_all(|| Echo));
    let core = Core::new(0, service, Arc::new(config), shared.clone(), Instant::now());
    let result = Reactor::new(core, backend)
        .run_reported()
        .map_err(|failure| failure.cause);
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    (result, seen, shared)
}

fn upgrade_request() -> Vec<u8> {
    ClientHandshake::new("localhost", "/", &[], &[]).1
}

fn masked(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, true, opcode, payload, Some([1, 2, 3, 4]));
    out
}

/// The frames in what a peer received after its 101: "text X", "close CODE".
fn frames(received: &[u8]) -> Vec<String> {
    let end = received
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a 101 first")
        + 4;
    assert!(received.starts_with(b"HTTP/1.1 101"));
    let mut bytes = received[end..].to_vec();
    let mut decoder = Decoder::new(DecoderConfig {
        role: Role::Client,
        ..Default::default()
    });
    let (mut out, mut pos) = (Vec::new(), 0);
    loop {
        let (used, event) = decoder.decode(&mut bytes[pos..]);
        pos += used;
        match event.expect("valid server frames") {
            Some(Event::Text(t)) => out.push(format!("text {t}")),
            Some(Event::Close(Some(c))) => out.push(format!("close {}", c.code)),
            Some(_) => out.push("other".into()),
            None => return out,
        }
    }
}

#[test]
fn the_loop_serves_echo_and_a_graceful_shutdown_over_a_third_backend() {
    let close_reply = {
        let mut payload = 1001u16.to_be_bytes().to_vec();
        payload.extend_from_slice(b"bye");
        masked(OpCode::Close, &payload)
    };
    let script = vec![
        Step::Connect(0),
        Step::Bytes(0, upgrade_request()),
        Step::Connect(1),
        Step::Bytes(1, upgrade_request()),
        Step::Bytes(0, masked(OpCode::Text, b"one")),
        // A frame split across two reads: the core keeps the first part.
        Step::Bytes(1, masked(OpCode::Text, b"two")[..3].to_vec()),
        Step::Bytes(1, masked(OpCode::Text, b"two")[3..].to_vec()),
        Step::Shutdown,
        // The last reactor to settle moves every reactor to closing, through its
        // inbox: the next wake-up starts the closing handshakes.
        Step::Wake,
        Step::Bytes(0, close_reply.clone()),
        Step::Eof(0),
        Step::Bytes(1, close_reply),
        Step::Eof(1),
    ];
    let (result, seen, shared) = run(script, ServerConfig::default());
    assert_eq!(result, Ok(()));
    assert_eq!(frames(&seen.received[0]), ["text one", "close 1001"]);
    assert_eq!(frames(&seen.received[1]), ["text two", "close 1001"]);
    let mut released = seen.released.clone();
    released.sort_unstable();
    assert_eq!(released, [0, 1]);
    assert_eq!(shared.stats().accepted, 2);
}

#[test]
fn a_failed_accept_pauses_accepting_for_a_tick_then_resumes() {
    let script = vec![
        Step::AcceptFails(std::io::Error::from_raw_os_error(libc::EMFILE)),
        // Nothing more happens: the loop's wait must end at the next tick on its own,
        // and accepting resumes there.
        Step::Idle,
        Step::Shutdown,
        Step::Wake,
    ];
    let (result, seen, shared) = run(script, ServerConfig::default());
    assert_eq!(result, Ok(()));
    assert_eq!(seen.pauses, 1);
    assert_eq!(seen.resumes, 1, "accepting resumed at the next tick");
    assert!(
        seen.timed_waits >= 1,
        "the pause made the wait end at a tick"
    );
    assert_eq!(shared.stats().accept_errors, 1);
}

#[test]
fn a_panic_outside_any_connection_fails_the_reactor_and_closes_with_1011() {
    let script = vec![
        Step::Connect(0),
        Step::Bytes(0, upgrade_request()),
        // An unknown peer: the backend panics outside any connection's containment.
        Step::Bytes(7, Vec::new()),
    ];
    let (result, seen, shared) = run(script, ServerConfig::default());
    let cause = result.expect_err("the reactor failed");
    assert!(cause.contains("panicked"), "{cause}");
    assert_eq!(frames(&seen.received[0]), ["close 1011"]);
    assert_eq!(seen.released, [0]);
    assert_eq!(shared.failures().len(), 1);
}
