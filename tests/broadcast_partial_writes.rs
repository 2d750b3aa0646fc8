//! Several publishers broadcasting to subscribers whose sockets take a little at a
//! time, over real sockets on two reactors, with automatic pings firing meanwhile:
//! the load under which a range of the turn batch once outlived its turn (issue 10).
//! Every subscriber must get every message of every publisher, whole and in order, and
//! the server must end healthy (the test server fails the test on any internal error
//! or reactor failure).

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use common::{IO_TIMEOUT, TestServer, builder};
use socket2::{Domain, Protocol, Socket, Type};
use tungstenite::{Message as WsMessage, WebSocket};
use wavecore::{Conn, Handler, Message, Request, Upgrade};

const TOPIC: &str = "feed";
const PUBLISHERS: usize = 3;
const MESSAGES: usize = 1500;
const FAST_SUBSCRIBERS: usize = 6;
const SLOW_SUBSCRIBERS: usize = 4;

/// `/pub` publishes what it receives; anything else subscribes.
struct Role(bool);

impl Handler for Role {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        if !self.0 {
            conn.subscribe(TOPIC);
        }
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        if self.0 {
            conn.publish(TOPIC, message);
        }
    }
}

fn route(request: &Request<'_>) -> Upgrade<Role> {
    Upgrade::accept(Role(request.path() == "/pub"))
}

/// Message `seq` of `publisher`: mostly small (batched), every 97th larger than a
/// batched frame may be.
fn message(publisher: usize, seq: usize) -> String {
    let filler = if seq.is_multiple_of(97) {
        5000
    } else {
        seq % 200
    };
    format!("{publisher} {seq} {}", "x".repeat(filler))
}

/// A TCP connection whose receive buffer is as small as the kernel allows, so the
/// server's writes to it are short.
fn small_window(addr: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    socket.set_recv_buffer_size(2048).unwrap();
    socket.connect(&addr.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// A WebSocket stream that reads at most 512 bytes per `read` and pauses after each.
struct Slow(TcpStream);

impl Read for Slow {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        thread::sleep(Duration::from_micros(300));
        let n = buf.len().min(512);
        self.0.read(&mut buf[..n])
    }
}

impl std::io::Write for Slow {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Reads every message of every publisher; checks each is whole and each publisher's
/// messages come in order with none missing.
fn receive_all<S: Read + std::io::Write>(mut ws: WebSocket<S>) {
    let mut next = [0usize; PUBLISHERS];
    while next.iter().any(|&n| n < MESSAGES) {
        let text = match ws.read().expect("a broadcast message") {
            WsMessage::Text(text) => text,
            WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        };
        let mut fields = text.splitn(3, ' ');
        let publisher: usize = fields.next().unwrap().parse().unwrap();
        let seq: usize = fields.next().unwrap().parse().unwrap();
        assert_eq!(
            seq, next[publisher],
            "publisher {publisher}: in order, none lost"
        );
        assert_eq!(text.as_str(), message(publisher, seq), "whole");
        next[publisher] += 1;
    }
}

#[test]
fn several_publishers_and_slow_readers_get_everything_in_order() {
    let server = TestServer::start(
        builder()
            .workers(2)
            .ping_interval(Some(Duration::from_millis(100)))
            .pong_timeout(Duration::from_secs(30))
            .max_backpressure(64 << 20),
        route,
    );
    let addr = server.addr;
    let url = format!("ws://{addr}/sub");
    let mut readers = Vec::new();
    for i in 0..FAST_SUBSCRIBERS + SLOW_SUBSCRIBERS {
        let slow = i >= FAST_SUBSCRIBERS;
        let stream = if slow {
            small_window(addr)
        } else {
            common::tcp(addr)
        };
        if slow {
            let (ws, _) = tungstenite::client(url.as_str(), Slow(stream)).expect("handshake");
            readers.push(thread::spawn(move || receive_all(ws)));
        } else {
            let (ws, _) = tungstenite::client(url.as_str(), stream).expect("handshake");
            readers.push(thread::spawn(move || receive_all(ws)));
        }
    }
    assert!(
        common::wait_until(
            || server.handle.subscribers(TOPIC) == FAST_SUBSCRIBERS + SLOW_SUBSCRIBERS
        ),
        "every subscriber subscribed"
    );
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|publisher| {
            let mut ws = common::ws_connect_path(addr, "/pub");
            thread::spawn(move || {
                for seq in 0..MESSAGES {
                    ws.send(WsMessage::text(message(publisher, seq))).unwrap();
                }
                ws
            })
        })
        .collect();
    let publishers: Vec<_> = publishers.into_iter().map(|p| p.join().unwrap()).collect();
    for reader in readers {
        reader
            .join()
            .expect("every subscriber got everything in order");
    }
    drop(publishers);
    let stats = server.handle.stats();
    assert_eq!(stats.dropped_messages, 0);
    assert_eq!(stats.backpressure_closes, 0);
}
