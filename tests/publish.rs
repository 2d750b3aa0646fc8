//! Publishing beyond plain `publish` over real sockets: `publish_to_others` skips the
//! publisher, `Conn::broadcast` and `ServerHandle::broadcast` reach every open
//! connection whatever it subscribes to, and a subscriber whose queue of broadcasts
//! passed `max_backpressure` hears `on_drain` once it has caught up.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use tungstenite::{Message as WsMessage, WebSocket};
use wavecore::{BackpressurePolicy, Conn, Handler, Message, Request, Upgrade};

const TOPIC: &str = "room";
/// Payload of each flood message: an 8-digit sequence number and filler.
const FLOOD_SIZE: usize = 2048;

/// Subscribes on open when `subscribe` (path `/sub`). Text commands: "others:X"
/// publishes X to the others in the topic, "all:X" broadcasts X, "echo:X" answers X,
/// "flood:FROM:N" publishes messages FROM..FROM+N. Answers `on_drain` with "drained".
struct Member {
    subscribe: bool,
    drains: Arc<AtomicUsize>,
}

impl Handler for Member {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        if self.subscribe {
            conn.subscribe(TOPIC);
        }
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        let Message::Text(text) = message else {
            return;
        };
        if let Some(x) = text.strip_prefix("others:") {
            conn.publish_to_others(TOPIC, Message::Text(x));
        } else if let Some(x) = text.strip_prefix("all:") {
            conn.broadcast(Message::Text(x));
        } else if let Some(x) = text.strip_prefix("echo:") {
            conn.send_text(x);
        } else if let Some(range) = text.strip_prefix("flood:") {
            let (from, n) = range.split_once(':').unwrap();
            let from: usize = from.parse().unwrap();
            for i in from..from + n.parse::<usize>().unwrap() {
                let payload = format!("{i:08}{}", "f".repeat(FLOOD_SIZE - 8));
                conn.publish(TOPIC, Message::Text(&payload));
            }
        }
    }

    fn on_drain(&mut self, conn: &mut Conn<'_>) {
        self.drains.fetch_add(1, Ordering::SeqCst);
        conn.send_text("drained");
    }
}

fn start(builder: wavecore::ServerBuilder) -> (TestServer, Arc<AtomicUsize>) {
    let drains = Arc::new(AtomicUsize::new(0));
    let counter = drains.clone();
    let server = TestServer::start(builder, move |request: &Request<'_>| {
        Upgrade::accept(Member {
            subscribe: request.path() == "/sub",
            drains: counter.clone(),
        })
    });
    (server, drains)
}

fn text(ws: &mut WebSocket<TcpStream>) -> String {
    match ws_read_data(ws) {
        WsMessage::Text(text) => text.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// Sends "echo:X" and checks X is the next message: nothing else was queued before it.
fn nothing_else_before_echo(ws: &mut WebSocket<TcpStream>, who: &str) {
    ws.send(WsMessage::text("echo:mark")).unwrap();
    assert_eq!(text(ws), "mark", "{who} received something else first");
}

#[test]
fn publish_to_others_skips_the_publisher() {
    // One reactor: a publish reaches all its local subscribers in the same turn, so
    // once the others have it, the publisher would have it too.
    let (server, _) = start(builder().workers(1));
    let mut members: Vec<_> = (0..3)
        .map(|_| ws_connect_path(server.addr, "/sub"))
        .collect();
    let mut outsider = ws_connect_path(server.addr, "/plain");
    assert!(wait_until(|| server.handle.subscribers(TOPIC) == 3));

    members[0].send(WsMessage::text("others:hello")).unwrap();
    for other in &mut members[1..] {
        assert_eq!(text(other), "hello");
    }
    nothing_else_before_echo(&mut members[0], "the publisher");
    nothing_else_before_echo(&mut outsider, "a connection outside the topic");
    // Plain publish, for contrast, does reach its publisher.
    members[1].send(WsMessage::text("flood:7:1")).unwrap();
    for member in &mut members {
        assert!(text(member).starts_with("00000007"));
    }
}

#[test]
fn conn_and_handle_broadcasts_reach_every_open_connection_once() {
    let (server, _) = start(builder().workers(2));
    let addr: SocketAddr = server.addr;
    let mut all: Vec<_> = (0..6)
        .map(|i| ws_connect_path(addr, if i % 2 == 0 { "/sub" } else { "/plain" }))
        .collect();
    assert!(wait_until(|| server.handle.connections() == 6));

    all[1]
        .send(WsMessage::text("all:from a connection"))
        .unwrap();
    for ws in &mut all {
        assert_eq!(text(ws), "from a connection", "the sender included");
    }
    server.handle.broadcast(Message::Binary(b"from the handle"));
    for ws in &mut all {
        assert_eq!(ws_read_data(ws), WsMessage::binary(&b"from the handle"[..]));
    }
    for (i, ws) in all.iter_mut().enumerate() {
        nothing_else_before_echo(ws, &format!("connection {i}"));
    }
}

#[test]
fn on_drain_follows_broadcast_backpressure_and_every_message_is_delivered_or_counted() {
    // 200 KiB per flood: each fits under the limit on its own, so messages drop only
    // once earlier floods wait unread in the queue.
    const PER_FLOOD: usize = 100;
    let (server, drains) = start(
        builder()
            .workers(1)
            .max_backpressure(256 << 10)
            .backpressure_policy(BackpressurePolicy::Drop),
    );
    // A subscriber that does not read for now.
    let mut subscriber = tcp(server.addr);
    subscriber
        .write_all(upgrade_request("/sub", &[], "").as_bytes())
        .unwrap();
    assert_eq!(read_response_head(&mut subscriber).status, 101);
    let mut publisher = ws_connect_path(server.addr, "/plain");
    assert!(wait_until(|| server.handle.subscribers(TOPIC) == 1));

    // One flood per turn (the echo after it proves it was handled), until one drops
    // messages: once the queue is past the limit, the rest of that flood is dropped,
    // so the last messages published are the dropped ones.
    let mut floods = 0;
    while server.handle.stats().dropped_messages == 0 {
        assert!(floods < 1000, "nothing dropped after {floods} floods");
        let from = floods * PER_FLOOD;
        publisher
            .send(WsMessage::text(format!("flood:{from}:{PER_FLOOD}")))
            .unwrap();
        nothing_else_before_echo(&mut publisher, "the publisher");
        floods += 1;
    }
    let published = floods * PER_FLOOD;

    // Catch up: every message not dropped arrives, in order, then "drained" (the
    // queue fell back under the limit after the drops), then nothing but our echo.
    let mut received: Vec<usize> = Vec::new();
    loop {
        let frame = read_frame(&mut subscriber).expect("a frame");
        assert_eq!(frame.opcode, OP_TEXT);
        if frame.payload == b"drained" {
            break;
        }
        assert_eq!(frame.payload.len(), FLOOD_SIZE, "a flood message");
        let seq: usize = std::str::from_utf8(&frame.payload[..8])
            .unwrap()
            .parse()
            .unwrap();
        assert!(received.last().is_none_or(|&last| seq > last), "in order");
        received.push(seq);
    }
    write_frame(&mut subscriber, true, OP_TEXT, b"echo:end");
    loop {
        // Only our echo, or another "drained" (the first one's send may itself have
        // queued behind the backlog, which earns a drain of its own).
        let frame = read_frame(&mut subscriber).expect("the echo");
        match &frame.payload[..] {
            b"end" => break,
            b"drained" => continue,
            other => panic!("after \"drained\": {:?}", String::from_utf8_lossy(other)),
        }
    }
    assert!(drains.load(Ordering::SeqCst) >= 1);
    let dropped = server.handle.stats().dropped_messages as usize;
    assert_eq!(
        received.len() + dropped,
        published,
        "every published message was delivered or counted as dropped"
    );
    assert_eq!(server.handle.stats().backpressure_closes, 0);
    assert_eq!(server.handle.connections(), 2);
}
