//! Graceful shutdown over real sockets: what was queued goes out before Close 1001,
//! the server waits for the close handshake, and `shutdown_timeout` bounds that wait.

mod common;

use std::io::Write;
use std::sync::mpsc::TryRecvError;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use wavecore::{CloseInfo, Conn, Handler, Message, Request, ServerBuilder, Upgrade};

const CHUNK: usize = 64 << 10;
/// 32 MiB: far more than a loopback connection's socket buffers hold, so most of it
/// waits in the server's outbox while the client does not read.
const CHUNKS: usize = 512;

/// On "go", sends `CHUNKS` binary messages of `CHUNK` bytes, message `i` filled with
/// byte `i % 256`; on "check", records `buffered_amount()`. Records `on_close`.
#[derive(Clone, Default)]
struct Backlog {
    buffered: Arc<Mutex<Vec<usize>>>,
    closes: Closes,
}

impl Handler for Backlog {
    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        match message {
            Message::Text("go") => {
                for i in 0..CHUNKS {
                    conn.send_binary(&[i as u8; CHUNK]);
                }
            }
            Message::Text("check") => self.buffered.lock().unwrap().push(conn.buffered_amount()),
            _ => {}
        }
    }

    fn on_close(&mut self, close: CloseInfo<'_>) {
        record_close(&self.closes, close);
    }
}

fn start(builder: ServerBuilder) -> (TestServer, Backlog) {
    let backlog = Backlog::default();
    let make = backlog.clone();
    let server = TestServer::start(
        builder
            .max_backpressure(64 << 20)
            // The backlog is built by a client that does not read: read-side flow
            // control would (rightly) stop reading its "check" behind 32 MiB queued.
            .high_water_mark(usize::MAX)
            .ping_interval(None)
            // Longer than any bounded wait of these tests: only what a test sets
            // shorter can end a connection.
            .close_timeout(Duration::from_secs(60)),
        move |_: &Request<'_>| Upgrade::accept(make.clone()),
    );
    (server, backlog)
}

/// Asks for the 32 MiB backlog without reading it, and waits until the server holds
/// some of it queued.
fn build_backlog(stream: &mut std::net::TcpStream, backlog: &Backlog) {
    stream
        .write_all(&encode_frame(true, OP_TEXT, b"go", true))
        .unwrap();
    stream
        .write_all(&encode_frame(true, OP_TEXT, b"check", true))
        .unwrap();
    assert!(wait_until(|| !backlog.buffered.lock().unwrap().is_empty()));
    let buffered = backlog.buffered.lock().unwrap()[0];
    assert!(buffered > 0, "part of the backlog waits in the outbox");
}

#[test]
fn queued_messages_go_out_before_close_1001_and_the_server_waits_for_the_answer() {
    let (mut server, backlog) = start(builder().shutdown_timeout(Duration::from_secs(60)));
    let mut stream = raw_upgrade(server.addr);
    build_backlog(&mut stream, &backlog);

    server.handle.shutdown();
    let joined = server.join_in_background();
    for i in 0..CHUNKS {
        let frame = read_frame(&mut stream).expect("a queued message, before the close");
        assert_eq!(frame.opcode, OP_BINARY, "message {i}");
        assert_eq!(frame.payload.len(), CHUNK, "message {i}");
        assert!(frame.payload.iter().all(|&b| b == i as u8), "message {i}");
    }
    let close = read_frame(&mut stream).expect("the close frame after the backlog");
    assert_eq!(close.close_code(), 1001);
    // Both timeouts are a minute away: the server is waiting for our close frame.
    assert_eq!(joined.try_recv(), Err(TryRecvError::Empty), "join waits");
    write_frame(&mut stream, true, OP_CLOSE, &close_payload(1001, ""));
    assert_eq!(
        read_frame(&mut stream),
        None,
        "EOF after the close handshake"
    );
    let outcome = joined
        .recv_timeout(JOIN_TIMEOUT)
        .expect("join returns once the handshake is done");
    assert_eq!(outcome, Ok(()));
    assert_eq!(
        wait_closes(&backlog.closes, 1),
        [(1001, "server shutting down".to_owned(), false)]
    );
}

#[test]
fn shutdown_timeout_ends_connections_that_never_answer() {
    // A silent peer never answers the close; a backlogged one never reads. With the
    // close timeout at a minute, only the shutdown timeout can let `join` return
    // within its bound (15 s).
    let (mut server, backlog) = start(builder().shutdown_timeout(Duration::from_millis(300)));
    let mut silent = raw_upgrade(server.addr);
    let mut backlogged = raw_upgrade(server.addr);
    build_backlog(&mut backlogged, &backlog);

    assert!(
        server.shutdown_and_join(),
        "join returns at the shutdown timeout"
    );
    assert_eq!(read_frame(&mut silent).expect("close").close_code(), 1001);
    assert_eq!(
        read_frame(&mut silent),
        None,
        "then the connection is dropped"
    );
    assert!(
        read_to_end_or_reset(&mut backlogged),
        "the backlogged connection is dropped too"
    );
    let closes = wait_closes(&backlog.closes, 2);
    assert!(
        closes
            .iter()
            .all(|c| *c == (1001, "server shutting down".to_owned(), false)),
        "{closes:?}"
    );
}

/// The reactors' count in the cross-reactor test: subscribers spread over them.
const REACTORS: usize = 4;
/// Subscribers in the cross-reactor test (enough that some sit on other reactors than
/// the publisher's, whichever reactor accepts each).
const SUBSCRIBERS: usize = 16;
/// Publishes made before the shutdown in the cross-reactor test.
const PUBLISHED: usize = 200;

/// `/sub` subscribes to "t"; `/pub`, on "go", publishes `PUBLISHED` messages to "t",
/// asks the server to shut down, and only then lets its turn end (a sleep, so that
/// the other reactors see the shutdown before this turn hands its publishes on).
struct PublishThenShutdown {
    handle: Arc<std::sync::OnceLock<wavecore::ServerHandle>>,
    subscriber: bool,
}

impl Handler for PublishThenShutdown {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        if self.subscriber {
            assert!(conn.subscribe("t"));
        }
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        if message == Message::Text("go") {
            for i in 0..PUBLISHED {
                let _ = conn.publish("t", Message::Text(&i.to_string()));
            }
            self.handle.get().expect("handle set").shutdown();
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn publishes_accepted_before_a_shutdown_reach_subscribers_on_every_reactor_before_1001() {
    let handle = Arc::new(std::sync::OnceLock::new());
    let make = handle.clone();
    let server = TestServer::start(
        builder()
            .workers(REACTORS)
            .ping_interval(None)
            .shutdown_timeout(Duration::from_secs(10)),
        move |request: &Request<'_>| {
            Upgrade::accept(PublishThenShutdown {
                handle: make.clone(),
                subscriber: request.path() == "/sub",
            })
        },
    );
    handle.set(server.handle.clone()).expect("set once");
    let mut subscribers: Vec<_> = (0..SUBSCRIBERS)
        .map(|_| ws_connect_path(server.addr, "/sub"))
        .collect();
    assert!(wait_until(|| server.handle.subscribers("t") == SUBSCRIBERS));
    let mut publisher = ws_connect_path(server.addr, "/pub");
    publisher
        .send(tungstenite::Message::text("go"))
        .expect("send go");

    for (n, subscriber) in subscribers.iter_mut().enumerate() {
        for i in 0..PUBLISHED {
            let message = ws_read_data(subscriber);
            assert_eq!(
                message,
                tungstenite::Message::text(i.to_string()),
                "subscriber {n}, message {i}: every publish accepted before the shutdown, in order, before the 1001"
            );
        }
        assert_eq!(ws_read_close(subscriber).0, 1001, "subscriber {n}");
    }
    assert_eq!(ws_read_close(&mut publisher).0, 1001);
}
