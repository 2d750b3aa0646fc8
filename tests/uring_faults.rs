//! Failure paths of the completion driver, forced at scale and checked on both
//! backends (io_uring where the kernel allows it, epoll always: the same workload
//! must give the same bytes whatever the backend):
//!
//! * the provided-buffer ring running dry under many clients at once (`ENOBUFS` ends
//!   multishot receives, which must be armed again without losing a byte);
//! * a completion queue far shorter than one turn's completions (receives and writes);
//! * a graceful shutdown while writes to clients that stopped reading are in flight;
//! * connections reset with a large write in flight and a receive armed, their slab
//!   key and descriptor number taken at once by new connections: no late completion
//!   may reach a new connection;
//! * handler panics while a receive buffer is being decoded: the buffer must go back
//!   to the ring.
//!
//! `tests/io_uring.rs` forces each path once with a handful of connections; these run
//! them wider (64 clients, thousands of messages of 1-8 KiB, writes in flight) and
//! with every message carrying its connection's token, so a byte delivered to the
//! wrong connection or out of order fails the test. Correctness only: no timing is
//! asserted (the bounds below only stop a broken server from hanging the test).
//!
//! Where the kernel refuses io_uring (seccomp, `io_uring_disabled`), the io_uring
//! half of each test says so and is skipped, unless `CI` is set (CI must run it).
#![cfg(target_os = "linux")]

mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::{IO_TIMEOUT, OP_BINARY, OP_CLOSE, OP_TEXT, TestServer};
use socket2::SockRef;
use wavecore::{Backend, Conn, Handler, Message, SendStatus, Server, ServerBuilder};

/// Bytes at the front of every payload: the connection's token and the message's
/// index, little-endian `u32`s.
const HEADER: usize = 8;

/// The payload of message `index` of the connection with `token`: `len` bytes (at
/// least [`HEADER`]), the token and index, then bytes that depend on all three.
fn payload(token: u32, index: u32, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len.max(HEADER));
    out.extend_from_slice(&token.to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend((HEADER..len).map(|i| {
        (token.wrapping_mul(131) ^ index.wrapping_mul(7) ^ i as u32).wrapping_add(i as u32 >> 8)
            as u8
    }));
    out
}

/// The server side: echoes binary messages; text commands make it misbehave on
/// purpose.
///
/// * `sleep`: blocks the reactor 300 ms, then echoes (the other connections'
///   completions pile up for one turn);
/// * `panic`: panics (the connection is closed with 1011);
/// * `flood N LEN TOKEN`: sends `N` binary messages of `LEN` bytes, `payload(TOKEN,
///   i, LEN)` for `i` in `0..N` (writes that stay in flight to a client that does
///   not read).
struct Faults;

impl Handler for Faults {
    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        match message {
            Message::Text("panic") => panic!("the handler fails on purpose"),
            Message::Text("sleep") => {
                thread::sleep(Duration::from_millis(300));
                assert_ne!(conn.send(message), SendStatus::Dropped);
            }
            Message::Text(command) if command.starts_with("flood ") => {
                let args: Vec<u64> = command[6..]
                    .split(' ')
                    .map(|n| n.parse().expect("flood N LEN TOKEN"))
                    .collect();
                let (count, len, token) = (args[0] as u32, args[1] as usize, args[2] as u32);
                for index in 0..count {
                    // Queued (at once, or behind unwritten bytes), never dropped:
                    // `max_backpressure` is set above what the tests send.
                    let status = conn.send_binary(&payload(token, index, len));
                    assert_ne!(status, SendStatus::Dropped, "flood message {index}");
                }
            }
            _ => assert_ne!(conn.send(message), SendStatus::Dropped),
        }
    }
}

/// Whether the io_uring backend starts here: `true`, or `false` after saying why
/// (outside CI; in CI a refusal fails the test).
fn io_uring_available() -> bool {
    let probe = Server::builder()
        .bind("127.0.0.1:0")
        .workers(1)
        .backend(Backend::IoUring)
        .start(wavecore::accept_all(|| Faults));
    match probe {
        Ok(server) => {
            server.handle().shutdown();
            server.join().expect("the probe server stops");
            true
        }
        Err(error) if std::env::var_os("CI").is_none() => {
            eprintln!("io_uring half skipped: io_uring is not available here ({error})");
            false
        }
        Err(error) => panic!("io_uring must be available in CI: {error}"),
    }
}

/// The backends to run a test on: epoll, and io_uring where available.
fn backends() -> Vec<Backend> {
    let mut out = vec![Backend::Epoll];
    if io_uring_available() {
        out.push(Backend::IoUring);
    }
    out
}

/// A server of `builder` on `backend` running [`Faults`].
fn start(builder: ServerBuilder, backend: Backend) -> TestServer {
    let server = TestServer::start(builder.backend(backend), wavecore::accept_all(|| Faults));
    assert_eq!(server.handle.backend(), backend);
    server
}

/// A raw upgraded client whose receive buffer is `rcvbuf` bytes (set before the
/// connect, so the window stays small): the server's large writes to it stay in
/// flight while it does not read.
fn small_window_client(addr: SocketAddr, rcvbuf: usize) -> TcpStream {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(rcvbuf).expect("SO_RCVBUF");
    socket.connect(&addr.into()).expect("connect");
    let mut client: TcpStream = socket.into();
    client.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    client.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    common::upgrade_on(&mut client);
    client
}

/// Reads one frame and checks that it is binary message `index` of `token`, `len`
/// bytes; `what` names it in a failure.
fn expect_echo(client: &mut TcpStream, token: u32, index: u32, len: usize, what: &str) {
    let frame = common::read_frame(client).unwrap_or_else(|| panic!("{what}: EOF or reset"));
    assert_eq!(
        frame.opcode,
        OP_BINARY,
        "{what}: a {} frame instead of the echo (close code {:?})",
        frame.opcode,
        (frame.opcode == OP_CLOSE).then(|| frame.close_code())
    );
    if frame.payload != payload(token, index, len) {
        let head: [u8; HEADER] = frame.payload[..HEADER.min(frame.payload.len())]
            .try_into()
            .unwrap_or_default();
        panic!(
            "{what}: the echo is not what was sent ({} bytes, header {head:?})",
            frame.payload.len()
        );
    }
}

/// The length of message `m` of client `c`: 1 to 8 KiB, varying with both.
fn varied_len(c: usize, m: usize) -> usize {
    1024 + (c * 37 + m * 1021) % (7 * 1024 + 1)
}

/// `clients` connections at once, each sending `messages` messages of 1-8 KiB in
/// windows of `window` (written in one call, then their echoes read and checked).
fn echo_storm(server: &TestServer, clients: usize, messages: usize, window: usize) {
    let start = Arc::new(Barrier::new(clients));
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (addr, start) = (server.addr, start.clone());
            thread::spawn(move || {
                let mut client = common::raw_upgrade(addr);
                start.wait();
                let token = c as u32 + 1;
                for first in (0..messages).step_by(window) {
                    let last = (first + window).min(messages);
                    let mut bytes = Vec::new();
                    for m in first..last {
                        let body = payload(token, m as u32, varied_len(c, m));
                        bytes.extend(common::encode_frame(true, OP_BINARY, &body, true));
                    }
                    client.write_all(&bytes).expect("write a window");
                    for m in first..last {
                        let what = format!("client {c} message {m}");
                        expect_echo(&mut client, token, m as u32, varied_len(c, m), &what);
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a client failed");
    }
}

#[test]
fn the_buffer_ring_running_dry_under_64_clients_loses_no_byte() {
    common::ensure_open_files(1024);
    for backend in backends() {
        // One provided buffer (the least the builder takes) of 4 KiB for 64 clients
        // sending 200 messages of 1-8 KiB each: nearly every turn with more than one
        // receive finds the ring dry.
        let builder = common::builder()
            .io_uring_provided_buffers(1)
            .read_buffer_size(4096);
        let server = start(builder, backend);
        echo_storm(&server, 64, 200, 8);
        let stats = server.handle.stats();
        if backend == Backend::IoUring {
            assert!(
                stats.recv_buffers_exhausted > 0,
                "the buffers never ran dry: the test did not test what it says ({stats:?})"
            );
        }
        eprintln!(
            "{backend:?}: recv_buffers_exhausted = {}",
            stats.recv_buffers_exhausted
        );
        assert_eq!(stats.handler_panics, 0, "{backend:?}: {stats:?}");
        server.check_health();
    }
}

#[test]
fn handler_panics_give_their_receive_buffers_back() {
    for backend in backends() {
        // Two provided buffers, ten panics, each with a receive buffer in the
        // handler's hands: were one lost per panic, the ring would be empty after two
        // and the reactor would read nothing more.
        let builder = common::builder()
            .workers(1)
            .io_uring_provided_buffers(2)
            .read_buffer_size(4096);
        let server = start(builder, backend);
        for round in 0..10 {
            let mut client = common::raw_upgrade(server.addr);
            common::write_frame(&mut client, true, OP_TEXT, b"panic");
            assert_eq!(
                common::read_close_code(&mut client),
                1011,
                "{backend:?}: panic {round}"
            );
        }
        let mut client = common::raw_upgrade(server.addr);
        let body = payload(1, 0, 3000);
        common::write_frame(&mut client, true, OP_BINARY, &body);
        expect_echo(
            &mut client,
            1,
            0,
            3000,
            &format!("{backend:?}: after the panics"),
        );
        let stats = server.handle.stats();
        assert_eq!(stats.handler_panics, 10, "{backend:?}: {stats:?}");
        server.check_health();
    }
}

#[test]
fn buffers_given_back_after_a_burst_and_lent_again_lose_no_byte() {
    common::ensure_open_files(1024);
    for backend in backends() {
        // A burst (64 clients at once) grows the ring; quiet periods lower what it
        // keeps lent; a trickle (2 clients, one message at a time) then brings the
        // buffers home one by one, and the spent ones are parked, their pages given
        // back (io_uring's `ring/lending.rs`); the next burst lends them again, zeroed
        // by then. Twice over, every echo must be whole and in order. (Parking is not
        // counted anywhere the test can see: what is checked is that the bytes survive
        // it.)
        let server = start(common::builder().read_buffer_size(4096), backend);
        for _ in 0..2 {
            echo_storm(&server, 64, 40, 8);
            thread::sleep(Duration::from_millis(350));
            echo_storm(&server, 2, 150, 1);
        }
        let stats = server.handle.stats();
        assert_eq!(stats.handler_panics, 0, "{backend:?}: {stats:?}");
        server.check_health();
    }
}

#[test]
fn a_completion_queue_shorter_than_a_turn_loses_no_receive_and_no_write() {
    common::ensure_open_files(1024);
    for backend in backends() {
        // One submission queue entry (a completion queue of 2) and 4 provided buffers
        // of 4 KiB; 64 connections each write 12 messages of 2.5 KiB while the reactor
        // sleeps: the next turn has hundreds of receive completions (a multishot
        // receive posts one per buffer), then 64 writes, each far past the queue.
        let builder = common::builder()
            .io_uring_sq_entries(1)
            .io_uring_provided_buffers(4)
            .read_buffer_size(4096);
        let server = start(builder, backend);
        let mut sleeper = common::raw_upgrade(server.addr);
        let mut clients: Vec<TcpStream> =
            (0..64).map(|_| common::raw_upgrade(server.addr)).collect();
        let (messages, len) = (12, 2560);
        common::write_frame(&mut sleeper, true, OP_TEXT, b"sleep");
        for (c, client) in clients.iter_mut().enumerate() {
            for m in 0..messages {
                // Separate writes: separate segments, separate receive completions.
                let body = payload(c as u32, m, len);
                common::write_frame(client, true, OP_BINARY, &body);
            }
        }
        for (c, client) in clients.iter_mut().enumerate() {
            for m in 0..messages {
                let what = format!("{backend:?} connection {c} message {m}");
                expect_echo(client, c as u32, m, len, &what);
            }
        }
        assert_eq!(common::read_frame(&mut sleeper).unwrap().payload, b"sleep");
        let stats = server.handle.stats();
        eprintln!("{backend:?}: cq_overflows = {}", stats.cq_overflows);
        if backend == Backend::IoUring {
            // IORING_FEAT_NODROP: the kernel kept what did not fit; the count proves
            // the overflow path ran (the completions were all checked above).
            assert!(
                stats.cq_overflows > 0,
                "the completion queue never overflowed: the test did not test what it says \
                 ({stats:?})"
            );
        }
        assert_eq!(stats.handler_panics, 0, "{backend:?}: {stats:?}");
        server.check_health();
    }
}

/// Reads frames from a client that stopped reading until EOF or a reset: each must be
/// flood message `i` of `token` in order (the last may be cut short by the close),
/// then at most a close frame. `bytes`: what was already read from it. Returns how
/// many whole messages arrived.
fn drain_flood(client: &mut TcpStream, mut bytes: Vec<u8>, token: u32, len: usize) -> u32 {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match client.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if common::is_timeout(&e) => panic!("no EOF after the server stopped"),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("read: {e}"),
        }
    }
    // A server binary frame of `len` (> 65,535) bytes: 0x82, 127, 8-byte length.
    let mut header = vec![0x82, 127];
    header.extend_from_slice(&(len as u64).to_be_bytes());
    let mut at = 0;
    let mut whole = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest[0] == 0x88 {
            break;
        }
        let expected = [header.as_slice(), &payload(token, whole, len)].concat();
        let n = rest.len().min(expected.len());
        assert!(
            rest[..n] == expected[..n],
            "flood message {whole}: not the bytes sent, in order"
        );
        if n < expected.len() {
            break;
        }
        at += n;
        whole += 1;
    }
    whole
}

#[test]
fn a_shutdown_with_writes_in_flight_to_stalled_clients_ends_within_its_deadline() {
    for backend in backends() {
        let deadline = Duration::from_secs(2);
        let builder = common::builder()
            .max_backpressure(64 << 20)
            .shutdown_timeout(deadline);
        let mut server = start(builder, backend);
        let (count, len) = (16, 256 << 10);
        // Clients that ask for 4 MiB each and read one byte of it: the server's
        // writes to them stay in flight (a 16 KiB window).
        let mut stalled: Vec<TcpStream> = (0..8u32)
            .map(|token| {
                let mut client = small_window_client(server.addr, 16 << 10);
                let command = format!("flood {count} {len} {token}");
                common::write_frame(&mut client, true, OP_TEXT, command.as_bytes());
                let mut first = [0u8; 1];
                client.read_exact(&mut first).expect("the flood starts");
                assert_eq!(first[0], 0x82);
                client
            })
            .collect();
        // A client that reads its flood whole, then gets the shutdown's 1001.
        let mut reader = common::raw_upgrade(server.addr);
        let command = format!("flood {count} {len} 99");
        common::write_frame(&mut reader, true, OP_TEXT, command.as_bytes());
        for index in 0..count {
            let what = format!("{backend:?} reader message {index}");
            expect_echo(&mut reader, 99, index, len, &what);
        }
        let asked = Instant::now();
        server.handle.shutdown();
        assert_eq!(common::read_close_code(&mut reader), 1001);
        common::write_frame(
            &mut reader,
            true,
            OP_CLOSE,
            &common::close_payload(1001, ""),
        );
        // The stalled clients never answer: the reactor gives up on them at the
        // deadline, cancelling the writes in flight.
        assert!(server.join(), "{backend:?}: join did not return");
        let took = asked.elapsed();
        // A bound against a hang, far above the deadline (not a timing claim).
        assert!(
            took < deadline + Duration::from_secs(8),
            "{backend:?}: join took {took:?} for a {deadline:?} deadline"
        );
        assert!(server.handle.failures().is_empty(), "{backend:?}");
        let stats = server.handle.stats();
        assert_eq!(stats.internal_errors, 0, "{backend:?}: {stats:?}");
        assert_eq!(stats.handler_panics, 0, "{backend:?}: {stats:?}");
        for (token, client) in stalled.iter_mut().enumerate() {
            // What reached the client is an in-order prefix of what was sent (its
            // first byte was read above).
            let whole = drain_flood(client, vec![0x82], token as u32, len);
            assert!(
                whole < count,
                "{backend:?}: a stalled client got everything"
            );
        }
        eprintln!("{backend:?}: join {took:?} after the shutdown");
    }
}

/// Ends a connection that must have had nothing but its own bytes: a marker message
/// echoed as the very next frame, then the close handshake (1000) and EOF. A stray
/// frame, a close or a reset from an old connection's completion fails it.
fn end_cleanly(client: &mut TcpStream, token: u32, what: &str) {
    common::write_frame(client, true, OP_BINARY, &payload(token, u32::MAX, 64));
    expect_echo(client, token, u32::MAX, 64, what);
    common::write_frame(client, true, OP_CLOSE, &common::close_payload(1000, ""));
    let frame = common::read_frame(client).unwrap_or_else(|| panic!("{what}: no close reply"));
    assert_eq!(frame.close_code(), 1000, "{what}");
    assert!(
        common::read_frame(client).is_none(),
        "{what}: bytes after the close"
    );
}

#[test]
fn a_reset_with_a_write_in_flight_never_reaches_the_next_connection_on_its_key() {
    for backend in backends() {
        let builder = common::builder().max_backpressure(64 << 20);
        let server = start(builder, backend);
        let (count, len) = (4, 256 << 10);
        let mut kept = Vec::new();
        for round in 0..100u32 {
            // The leaving connection: a 1 MiB flood in flight to its 16 KiB window, a
            // receive armed, and a frame of its own on the way when it resets.
            let mut leaving = small_window_client(server.addr, 16 << 10);
            let token = 2 * round + 1;
            let command = format!("flood {count} {len} {token}");
            common::write_frame(&mut leaving, true, OP_TEXT, command.as_bytes());
            let mut first = [0u8; 1];
            leaving.read_exact(&mut first).expect("the flood starts");
            common::write_frame(&mut leaving, true, OP_BINARY, &payload(token, 0, 3000));
            SockRef::from(&leaving)
                .set_linger(Some(Duration::ZERO))
                .expect("SO_LINGER 0");
            drop(leaving);
            // The next connection, at once: it tends to get the same slab key and,
            // once the server closed the old socket, the same descriptor number.
            let mut next = common::raw_upgrade(server.addr);
            let token = 2 * round + 2;
            for index in 0..3 {
                let len = varied_len(round as usize, index as usize);
                common::write_frame(&mut next, true, OP_BINARY, &payload(token, index, len));
                let what = format!("{backend:?} round {round} echo {index}");
                expect_echo(&mut next, token, index, len, &what);
            }
            // Its own large writes too (two 70 KiB messages).
            let command = format!("flood 2 {} {token}", 70 << 10);
            common::write_frame(&mut next, true, OP_TEXT, command.as_bytes());
            for index in 0..2 {
                let what = format!("{backend:?} round {round} flood {index}");
                expect_echo(&mut next, token, index, 70 << 10, &what);
            }
            if round % 2 == 0 {
                // Half end now (their key and descriptor free for the next round),
                // half stay open through the later rounds' resets.
                end_cleanly(&mut next, token, &format!("{backend:?} round {round}"));
            } else {
                kept.push((round, token, next));
            }
        }
        for (round, token, mut client) in kept {
            end_cleanly(
                &mut client,
                token,
                &format!("{backend:?} kept from round {round}"),
            );
        }
        let stats = server.handle.stats();
        assert_eq!(stats.internal_errors, 0, "{backend:?}: {stats:?}");
        assert_eq!(stats.handler_panics, 0, "{backend:?}: {stats:?}");
        server.check_health();
    }
}

/// Sockets on this machine in state ESTABLISHED whose local port is `port` (the
/// server's side of its connections), from `/proc/net/tcp`.
fn established_on(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields[1].rsplit(':').next().unwrap();
            u16::from_str_radix(local_port, 16) == Ok(port) && fields[3] == "01"
        })
        .count()
}

#[test]
fn a_connection_dropped_with_a_write_in_flight_is_really_closed() {
    // A client that asks for 4 MiB and never reads: the server's write waits on its
    // zero window; the ping goes unanswered and the idle timeout drops it. The
    // socket must go with the descriptor, not linger with its buffers for as long
    // as the write is stuck (on io_uring the write held its own reference to it).
    for backend in backends() {
        let builder = common::builder()
            .ping_interval(Some(Duration::from_millis(200)))
            .pong_timeout(Duration::from_millis(200))
            .max_backpressure(64 << 20);
        let server = start(builder, backend);
        let mut client = small_window_client(server.addr, 16 << 10);
        client
            .write_all(&common::encode_frame(
                true,
                OP_TEXT,
                b"flood 64 65536 1",
                true,
            ))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.handle.stats().idle_timeouts == 0 {
            assert!(Instant::now() < deadline, "{backend:?}: no idle timeout");
            thread::sleep(Duration::from_millis(20));
        }
        let port = server.addr.port();
        while established_on(port) > 0 {
            assert!(
                Instant::now() < deadline,
                "{backend:?}: the dropped connection's socket is still established"
            );
            thread::sleep(Duration::from_millis(20));
        }
        drop(client);
    }
}
