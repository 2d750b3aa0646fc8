//! Connections reached from other threads through `ConnHandle`, over real sockets:
//! order through one handle, close, subscribe, closures run on the reactor (and one
//! that panics), a handle used after its connection closed and after its slot was
//! reused (it must never reach the new connection), `max_backpressure` under each
//! policy, and many threads sending to many connections at once.

mod common;

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::*;
use wavecore::{
    BackpressurePolicy, CloseCode, CloseInfo, Conn, ConnHandle, HandleStatus, Handler, Message,
    Request, Upgrade,
};

/// Hands its handle to the test at `on_open`; replies to "tag?" with its tag.
struct Reachable {
    handles: mpsc::Sender<ConnHandle>,
    tag: String,
    closes: Closes,
}

impl Handler for Reachable {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let _ = self.handles.send(conn.handle());
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        if message.as_bytes() == b"tag?" {
            conn.send_text(&self.tag.clone());
        } else {
            conn.send(message);
        }
    }

    fn on_close(&mut self, close: CloseInfo<'_>) {
        record_close(&self.closes, close);
    }
}

struct Fixture {
    server: TestServer,
    handles: mpsc::Receiver<ConnHandle>,
    closes: Closes,
}

fn fixture(builder: wavecore::ServerBuilder) -> Fixture {
    let (tx, handles) = mpsc::channel();
    let tx = Mutex::new(tx);
    let closes = Closes::default();
    let recorded = closes.clone();
    let service = move |_: &Request<'_>| {
        Upgrade::accept(Reachable {
            handles: tx.lock().unwrap().clone(),
            tag: String::new(),
            closes: recorded.clone(),
        })
    };
    Fixture {
        server: TestServer::start(builder, service),
        handles,
        closes,
    }
}

impl Fixture {
    fn connect(&self) -> (tungstenite::WebSocket<std::net::TcpStream>, ConnHandle) {
        let ws = ws_connect(self.server.addr);
        let handle = self
            .handles
            .recv_timeout(IO_TIMEOUT)
            .expect("on_open's handle");
        (ws, handle)
    }
}

fn text(ws: &mut tungstenite::WebSocket<std::net::TcpStream>) -> String {
    ws_read_data(ws).into_text().unwrap().to_string()
}

#[test]
fn messages_through_one_handle_arrive_in_order() {
    let f = fixture(builder());
    let (mut ws, handle) = f.connect();
    let sender = thread::spawn(move || {
        for i in 0..2000 {
            assert_eq!(handle.send_text(&format!("m{i}")), HandleStatus::Queued);
        }
    });
    for i in 0..2000 {
        assert_eq!(text(&mut ws), format!("m{i}"));
    }
    sender.join().unwrap();
}

#[test]
fn a_handle_closes_with_its_code_and_then_answers_gone() {
    let f = fixture(builder());
    let (mut ws, handle) = f.connect();
    assert_eq!(
        handle.close(CloseCode(4001), "logged out elsewhere"),
        HandleStatus::Queued
    );
    assert_eq!(
        ws_read_close(&mut ws),
        (4001, "logged out elsewhere".to_owned())
    );
    let closes = wait_closes(&f.closes, 1);
    assert_eq!(closes[0].0, 4001);
    assert!(wait_until(|| handle.is_gone()));
    assert_eq!(handle.send_text("late"), HandleStatus::Gone);
    assert_eq!(handle.subscribe("t"), HandleStatus::Gone);
}

#[test]
fn a_handle_to_a_reused_slot_never_reaches_the_new_connection() {
    let f = fixture(builder());
    let (mut first, old) = f.connect();
    first.close(None).unwrap();
    let _ = ws_read_close(&mut first);
    assert!(wait_until(|| old.is_gone()));
    // One worker: the new connection takes the old one's slab slot.
    let (mut second, new) = f.connect();
    assert_ne!(old.id(), new.id());
    assert_eq!(old.send_text("for the old one"), HandleStatus::Gone);
    assert_eq!(new.send_text("for the new one"), HandleStatus::Queued);
    assert_eq!(text(&mut second), "for the new one");
}

#[test]
fn a_command_queued_just_before_close_is_dropped_not_misdelivered() {
    let f = fixture(builder());
    for _ in 0..50 {
        let (mut ws, handle) = f.connect();
        // Close from the client and race sends against the close; whatever was
        // queued must never reach a later connection on the same slot.
        ws.close(None).unwrap();
        for _ in 0..20 {
            let _ = handle.send_text("stale");
        }
        let _ = ws_read_close(&mut ws);
    }
    let (mut fresh, handle) = f.connect();
    handle.send_text("fresh").unwrap_queued();
    assert_eq!(text(&mut fresh), "fresh");
}

trait Queued {
    fn unwrap_queued(self);
}

impl Queued for HandleStatus {
    fn unwrap_queued(self) {
        assert_eq!(self, HandleStatus::Queued);
    }
}

#[test]
fn subscribing_through_a_handle_then_publishing_reaches_the_connection() {
    let f = fixture(builder().workers(2));
    let (mut ws, handle) = f.connect();
    handle.subscribe("news").unwrap_queued();
    f.server
        .handle
        .publish("news", Message::Text("first edition"));
    assert_eq!(text(&mut ws), "first edition");
    handle.unsubscribe("news").unwrap_queued();
    handle.send_text("after").unwrap_queued();
    assert_eq!(text(&mut ws), "after");
    assert!(wait_until(|| f.server.handle.subscribers("news") == 0));
}

#[test]
fn run_changes_the_handler_on_its_reactor() {
    let f = fixture(builder());
    let (mut ws, handle) = f.connect();
    let status = handle.run(|handler: &mut Reachable, conn: &mut Conn<'_>| {
        handler.tag = "moved to room 7".to_owned();
        conn.send_text("you moved");
    });
    assert_eq!(status, HandleStatus::Queued);
    assert_eq!(text(&mut ws), "you moved");
    ws.send(tungstenite::Message::text("tag?")).unwrap();
    assert_eq!(text(&mut ws), "moved to room 7");
}

#[test]
fn run_with_another_handler_type_is_refused() {
    struct Other;
    impl Handler for Other {
        fn on_message(&mut self, _: &mut Conn<'_>, _: Message<'_>) {}
    }
    let f = fixture(builder());
    let (_ws, handle) = f.connect();
    assert_eq!(
        handle.run(|_: &mut Other, _: &mut Conn<'_>| {}),
        HandleStatus::WrongHandler
    );
}

#[test]
fn a_panic_in_run_closes_only_that_connection_with_1011() {
    let f = fixture(builder());
    let (mut victim, handle) = f.connect();
    let (mut bystander, _) = f.connect();
    handle
        .run(|_: &mut Reachable, _: &mut Conn<'_>| panic!("worker bug"))
        .unwrap_queued();
    assert_eq!(ws_read_close(&mut victim).0, 1011);
    bystander
        .send(tungstenite::Message::text("still here"))
        .unwrap();
    assert_eq!(text(&mut bystander), "still here");
    assert_eq!(f.server.handle.stats().handler_panics, 1);
}

/// Sends `size`-byte messages through `handle` to a client that never reads, until
/// one is not queued; returns that status and how many were queued.
fn flood(handle: &ConnHandle, size: usize) -> (HandleStatus, usize) {
    let payload = vec![7u8; size];
    for queued in 0..100_000 {
        let status = handle.send_binary(&payload);
        if status != HandleStatus::Queued {
            return (status, queued);
        }
    }
    panic!("100,000 sends of {size} bytes queued to a client that never reads");
}

#[test]
fn past_max_backpressure_under_close_the_connection_closes_with_1008() {
    let f = fixture(builder().max_backpressure(256 << 10));
    let (ws, handle) = f.connect();
    let (status, queued) = flood(&handle, 16 << 10);
    assert_eq!(status, HandleStatus::Dropped, "after {queued}");
    let closes = wait_closes(&f.closes, 1);
    assert_eq!(closes[0].0, 1008);
    assert!(wait_until(|| handle.is_gone()));
    assert!(f.server.handle.stats().backpressure_closes >= 1);
    drop(ws);
}

#[test]
fn past_max_backpressure_under_drop_messages_are_dropped_and_the_connection_lives() {
    let f = fixture(
        builder()
            .max_backpressure(256 << 10)
            .backpressure_policy(BackpressurePolicy::Drop),
    );
    let (mut ws, handle) = f.connect();
    let (status, _) = flood(&handle, 16 << 10);
    assert_eq!(status, HandleStatus::Dropped);
    assert!(f.server.handle.stats().dropped_messages >= 1);
    // The client reads what was queued; the connection lives on.
    let mut received = 0;
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    while let Ok(message) = ws.read() {
        if message.is_binary() {
            received += 1;
        }
    }
    assert!(received > 0);
    assert!(!handle.is_gone());
    ws.get_mut().set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    handle.send_text("after the flood").unwrap_queued();
    assert_eq!(text(&mut ws), "after the flood");
}

#[test]
fn many_threads_send_to_many_connections_and_nothing_is_lost_or_misdelivered() {
    const CONNS: usize = 40;
    const THREADS: usize = 4;
    const EACH: usize = 200;
    let f = fixture(builder().workers(2));
    let mut clients = Vec::new();
    let mut handles = Vec::new();
    for _ in 0..CONNS {
        let (ws, handle) = f.connect();
        clients.push(ws);
        handles.push(handle);
    }
    let handles = Arc::new(handles);
    let senders: Vec<_> = (0..THREADS)
        .map(|t| {
            let handles = handles.clone();
            thread::spawn(move || {
                for i in 0..EACH {
                    for (c, handle) in handles.iter().enumerate() {
                        handle.send_text(&format!("{c}:{t}:{i}")).unwrap_queued();
                    }
                }
            })
        })
        .collect();
    for (c, ws) in clients.iter_mut().enumerate() {
        let mut next: HashMap<usize, usize> = HashMap::new();
        for _ in 0..THREADS * EACH {
            let message = text(ws);
            let parts: Vec<usize> = message.split(':').map(|p| p.parse().unwrap()).collect();
            assert_eq!(parts[0], c, "misdelivered: {message}");
            let expected = next.entry(parts[1]).or_default();
            assert_eq!(parts[2], *expected, "out of order from thread {}", parts[1]);
            *expected += 1;
        }
    }
    for sender in senders {
        sender.join().unwrap();
    }
}

#[test]
fn a_handle_from_a_deferred_accept_sends_after_on_open() {
    struct Greeter;
    impl Handler for Greeter {
        fn on_open(&mut self, conn: &mut Conn<'_>) {
            conn.send_text("opened");
        }
        fn on_message(&mut self, _: &mut Conn<'_>, _: Message<'_>) {}
    }
    let service = |_: &Request<'_>| {
        Upgrade::defer(|pending: wavecore::PendingUpgrade<Greeter>| {
            thread::spawn(move || {
                let handle = pending.accept(Greeter).unwrap();
                for i in 0..10 {
                    handle.send_text(&format!("early {i}")).unwrap_queued();
                }
            });
        })
    };
    let server = TestServer::start(builder(), service);
    let mut ws = ws_connect(server.addr);
    assert_eq!(text(&mut ws), "opened");
    for i in 0..10 {
        assert_eq!(text(&mut ws), format!("early {i}"));
    }
}
