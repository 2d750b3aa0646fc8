//! The io_uring driver's own failure modes, each forced, on io_uring whatever
//! `WAVECORE_BACKEND` says (the rest of the suite runs on both backends through it):
//!
//! * the provided-buffer ring running dry (`ENOBUFS` ends a multishot receive, which
//!   must be armed again without losing a byte);
//! * a completion queue too short for a turn's completions (the kernel holds the rest);
//! * short sends (a reply larger than the socket takes at once);
//! * completions that arrive after their connection was released and its slab key
//!   given to a new connection (they must never reach the new one).
//!
//! A reactor is made busy on purpose (a handler that sleeps) so that many receives
//! complete in one turn: that is what makes the buffers run dry and the queue overflow
//! here, deterministically, rather than by the luck of scheduling.
//!
//! Where the kernel refuses io_uring (seccomp, `io_uring_disabled`), these tests say
//! so and pass, unless `CI` is set (CI must run them).
#![cfg(target_os = "linux")]

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::Duration;

use common::{IO_TIMEOUT, OP_BINARY, TestServer, read_frame, write_frame};
use wavecore::{Backend, Conn, Handler, Message, SendStatus, Server, ServerBuilder};

/// Echoes every message; a text message `"sleep"` first blocks the reactor for a
/// moment, so that the other connections' bytes pile up for one turn.
struct Busy;

impl Handler for Busy {
    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        if let Message::Text("sleep") = message {
            thread::sleep(Duration::from_millis(300));
        }
        assert_eq!(conn.send(message), SendStatus::Success);
    }
}

/// A server of `builder` on io_uring, or `None` (the test passes, saying why) where
/// the kernel refuses io_uring outside CI.
fn start_on_io_uring(builder: ServerBuilder) -> Option<TestServer> {
    let probe = Server::builder()
        .bind("127.0.0.1:0")
        .workers(1)
        .backend(Backend::IoUring)
        .start(wavecore::accept_all(|| Busy));
    match probe {
        Ok(server) => {
            server.handle().shutdown();
            server.join().expect("the probe server stops");
        }
        Err(error) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: io_uring is not available here ({error})");
            return None;
        }
        Err(error) => panic!("io_uring must be available in CI: {error}"),
    }
    let server = TestServer::start(
        builder.backend(Backend::IoUring),
        wavecore::accept_all(|| Busy),
    );
    assert_eq!(server.handle.backend(), Backend::IoUring);
    Some(server)
}

/// A connection upgraded with a raw socket (frames written and read byte for byte).
fn connect(server: &TestServer) -> TcpStream {
    common::raw_upgrade(server.addr)
}

/// The payload connection `c` sends as its message `m`: `len` bytes, distinct per
/// connection and message, so a byte delivered to the wrong connection or out of
/// order is caught.
fn payload(c: usize, m: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (c.wrapping_mul(31) ^ m.wrapping_mul(7) ^ i) as u8)
        .collect()
}

/// Blocks the reactor (a `"sleep"` message on a connection of its own), writes
/// `messages` binary messages of `len` bytes on each of `conns`, then checks that
/// every connection gets its own back, whole and in order.
fn pile_up_and_check(server: &TestServer, conns: usize, messages: usize, len: usize) {
    let mut sleeper = connect(server);
    let mut clients: Vec<TcpStream> = (0..conns).map(|_| connect(server)).collect();
    write_frame(&mut sleeper, true, common::OP_TEXT, b"sleep");
    for (c, client) in clients.iter_mut().enumerate() {
        let mut bytes = Vec::new();
        for m in 0..messages {
            bytes.extend(common::encode_frame(
                true,
                OP_BINARY,
                &payload(c, m, len),
                true,
            ));
        }
        client.write_all(&bytes).expect("write");
    }
    for (c, client) in clients.iter_mut().enumerate() {
        for m in 0..messages {
            let frame = read_frame(client).expect("an echo");
            assert_eq!(
                frame.opcode,
                OP_BINARY,
                "connection {c} message {m}: {:?}",
                String::from_utf8_lossy(&frame.payload)
            );
            assert!(
                frame.payload == payload(c, m, len),
                "connection {c} message {m}: the echo is not what it sent"
            );
        }
    }
    let frame = read_frame(&mut sleeper).expect("the sleeper's echo");
    assert_eq!(frame.payload, b"sleep");
}

#[test]
fn provided_buffers_running_dry_lose_no_byte() {
    // Two 4 KiB buffers for 48 connections whose bytes all arrive while the reactor
    // sleeps: most receives find the ring empty (ENOBUFS), end, and are armed again.
    let builder = common::builder()
        .io_uring_provided_buffers(2)
        .read_buffer_size(4096);
    let Some(server) = start_on_io_uring(builder) else {
        return;
    };
    pile_up_and_check(&server, 48, 8, 3000);
    let stats = server.handle.stats();
    assert!(
        stats.recv_buffers_exhausted > 0,
        "the buffers never ran dry: the test did not test what it says ({stats:?})"
    );
}

#[test]
fn a_full_completion_queue_loses_nothing() {
    // A submission queue of 2 entries (a completion queue of 4) for 48 connections
    // whose bytes all arrive in one turn: the kernel holds what does not fit.
    let builder = common::builder().io_uring_sq_entries(2);
    let Some(server) = start_on_io_uring(builder) else {
        return;
    };
    pile_up_and_check(&server, 48, 4, 1000);
    let stats = server.handle.stats();
    assert!(
        stats.cq_overflows > 0,
        "the completion queue never overflowed: the test did not test what it says ({stats:?})"
    );
}

#[test]
fn a_reply_larger_than_the_socket_takes_goes_out_in_short_sends() {
    // 8 MiB back to a client with a small receive buffer that reads slowly: each
    // write completes short, and the rest must follow from where it stopped.
    let builder = common::builder().max_message_size(16 << 20);
    let Some(server) = start_on_io_uring(builder) else {
        return;
    };
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(16 << 10).expect("SO_RCVBUF");
    socket.connect(&server.addr.into()).expect("connect");
    let mut client: TcpStream = socket.into();
    client.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    client.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    common::upgrade_on(&mut client);
    let big = payload(1, 1, 8 << 20);
    let frame = common::encode_frame(true, OP_BINARY, &big, true);
    let writer = {
        let mut client = client.try_clone().unwrap();
        thread::spawn(move || client.write_all(&frame).expect("write"))
    };
    let mut small = connect(&server);
    let mut echoed = Vec::with_capacity(big.len() + 16);
    let mut buf = [0u8; 4096];
    let mut rounds = 0;
    while echoed.len() < big.len() + 10 {
        let n = client.read(&mut buf).expect("read");
        assert!(n > 0, "the server closed after {} bytes", echoed.len());
        echoed.extend_from_slice(&buf[..n]);
        rounds += 1;
        if rounds % 256 == 0 {
            // Meanwhile the reactor serves others.
            write_frame(&mut small, true, OP_BINARY, b"still here");
            assert_eq!(read_frame(&mut small).unwrap().payload, b"still here");
        }
    }
    writer.join().unwrap();
    // An 8 MiB binary frame from the server: 10-byte header, then the payload.
    assert_eq!(&echoed[..2], &[0x82, 127]);
    assert_eq!(
        u64::from_be_bytes(echoed[2..10].try_into().unwrap()),
        8 << 20
    );
    assert!(echoed[10..] == big[..], "the echo is not what was sent");
}

#[test]
fn late_completions_never_reach_the_next_connection_on_the_same_key() {
    // Connections that leave with a receive in flight (reset with unread bytes): the
    // receive's cancellation completes after the release, by when the next
    // connection may hold the same slab key. Each new connection must get exactly
    // its own echo.
    let Some(server) = start_on_io_uring(common::builder()) else {
        return;
    };
    for round in 0..200 {
        let mut leaving = connect(&server);
        write_frame(&mut leaving, true, OP_BINARY, &payload(round, 0, 100));
        let mut next = connect(&server);
        // Unread echo in its buffer: the close sends a reset.
        let _ = leaving.shutdown(Shutdown::Write);
        drop(leaving);
        let mine = payload(round, 1, 100 + round);
        write_frame(&mut next, true, OP_BINARY, &mine);
        let frame = read_frame(&mut next).expect("its own echo");
        assert!(
            frame.payload == mine,
            "round {round}: another connection's bytes"
        );
        let mut rest = [0u8; 1];
        next.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        assert!(
            next.read(&mut rest).is_err(),
            "round {round}: more than its own echo arrived"
        );
    }
    server.check_health();
}

#[test]
fn a_lingering_close_never_shuts_the_next_connection_on_the_same_descriptor() {
    // A request answered with `Connection: close` ends with our write side shut
    // (then the peer's EOF releases it). The next connection may get the same
    // descriptor number: the shutdown must have been of the old socket, never of the
    // new one (IORING_OP_SHUTDOWN, run late by an io-wq worker, once hit the new
    // socket and cut its 101 off).
    let Some(server) = start_on_io_uring(common::builder()) else {
        return;
    };
    for round in 0..2000 {
        let mut old = common::tcp(server.addr);
        old.write_all(b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .unwrap();
        // The answer's head, then gone at once (as a client that got its answer):
        // the server's shutdown and our close race the next accept.
        let _ = common::read_response_head(&mut old);
        drop(old);
        let mut next = common::raw_upgrade(server.addr);
        write_frame(&mut next, true, OP_BINARY, b"whole");
        let frame = read_frame(&mut next).unwrap_or_else(|| panic!("round {round}: cut off"));
        assert_eq!(frame.payload, b"whole", "round {round}");
    }
    server.check_health();
}
