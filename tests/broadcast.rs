//! Broadcast over real sockets with tungstenite clients: fan-out across reactors, order,
//! unsubscribe and disconnect, publish from outside, slow subscribers, registry cleanup.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{TestServer, raw_upgrade, ws_connect_path, ws_read_data};
use tungstenite::{Message as WsMessage, WebSocket};
use wavecore::{BackpressurePolicy, Conn, Handler, Message, Request, ServerBuilder, Upgrade};

const TOPIC: &str = "t";

type Client = WebSocket<TcpStream>;

/// `/sub`: subscribes on open; "unsub" unsubscribes; "echo:X" answers X.
/// `/pub`: publishes every message to the topic, without subscribing.
enum Role {
    Subscriber,
    Publisher,
}

impl Handler for Role {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        if let Role::Subscriber = self {
            conn.subscribe(TOPIC);
        }
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        match (self, message) {
            (Role::Publisher, message) => {
                conn.publish(TOPIC, message);
            }
            (Role::Subscriber, Message::Text("unsub")) => {
                conn.unsubscribe(TOPIC);
                conn.send_text("unsubscribed");
            }
            (Role::Subscriber, Message::Text(text)) if text.starts_with("echo:") => {
                conn.send_text(&text[5..]);
            }
            (Role::Subscriber, _) => {}
        }
    }
}

fn route(request: &Request<'_>) -> Upgrade<Role> {
    match request.path() {
        "/pub" => Upgrade::accept(Role::Publisher),
        _ => Upgrade::accept(Role::Subscriber),
    }
}

fn start(builder: ServerBuilder) -> TestServer {
    TestServer::start(builder, route)
}

fn connect(addr: SocketAddr, path: &str) -> Client {
    ws_connect_path(addr, path)
}

fn recv_text(client: &mut Client) -> String {
    match ws_read_data(client) {
        WsMessage::Text(text) => text.to_string(),
        other => panic!("unexpected {other:?}"),
    }
}

/// Waits (bounded) until `check` holds.
fn wait_until(what: &str, check: impl FnMut() -> bool) {
    assert!(common::wait_until(check), "timed out waiting for {what}");
}

#[test]
fn fan_out_to_1000_subscribers_over_two_reactors_exactly_once_in_order() {
    // Both ends of every connection live in this process.
    common::ensure_open_files(4096);
    let server = start(common::builder().workers(2));
    let (handle, addr) = (server.handle.clone(), server.addr);
    let mut subscribers: Vec<Client> = (0..1000).map(|_| connect(addr, "/sub")).collect();
    wait_until("1000 subscribers", || handle.subscribers(TOPIC) == 1000);
    let mut publisher = connect(addr, "/pub");
    const MESSAGES: usize = 100;
    for i in 0..MESSAGES {
        publisher.send(WsMessage::text(format!("m{i}"))).unwrap();
    }
    // A marker from a subscriber's own echo after the last publish proves nothing
    // extra is queued behind the 100 (duplicates would come first).
    for client in &mut subscribers {
        for i in 0..MESSAGES {
            assert_eq!(recv_text(client), format!("m{i}"));
        }
        client.send(WsMessage::text("echo:end")).unwrap();
        assert_eq!(recv_text(client), "end");
    }
    drop(server);
}

#[test]
fn unsubscribe_and_disconnect_stop_delivery() {
    let server = start(common::builder());
    let (handle, addr) = (server.handle.clone(), server.addr);
    let mut leaver = connect(addr, "/sub");
    let quitter = connect(addr, "/sub");
    let mut witness = connect(addr, "/sub");
    wait_until("3 subscribers", || handle.subscribers(TOPIC) == 3);

    leaver.send(WsMessage::text("unsub")).unwrap();
    assert_eq!(recv_text(&mut leaver), "unsubscribed");
    drop(quitter);
    wait_until("1 subscriber", || handle.subscribers(TOPIC) == 1);

    handle.publish(TOPIC, Message::Text("after"));
    assert_eq!(recv_text(&mut witness), "after");
    // One reactor: the publish reached every subscriber in the turn the witness got
    // it, so had the leaver still been subscribed, "after" would come before "marker".
    leaver.send(WsMessage::text("echo:marker")).unwrap();
    assert_eq!(recv_text(&mut leaver), "marker");
    drop(server);
}

#[test]
fn publish_from_an_outside_thread_arrives_in_order() {
    let server = start(common::builder().workers(2));
    let (handle, addr) = (server.handle.clone(), server.addr);
    let mut subscribers: Vec<Client> = (0..20).map(|_| connect(addr, "/sub")).collect();
    wait_until("20 subscribers", || handle.subscribers(TOPIC) == 20);
    let publisher = {
        let handle = handle.clone();
        thread::spawn(move || {
            for i in 0..500 {
                handle.publish(TOPIC, Message::Text(&format!("n{i}")));
            }
        })
    };
    for client in &mut subscribers {
        for i in 0..500 {
            assert_eq!(recv_text(client), format!("n{i}"));
        }
    }
    publisher.join().unwrap();
    drop(server);
}

/// Message `i` of the late-reader test: small and large (unbatched) frames mixed.
fn late_message(i: usize) -> String {
    let size = (i * 397) % 9000;
    format!(
        "{i}:{}",
        char::from(b'a' + (i % 26) as u8).to_string().repeat(size)
    )
}

#[test]
fn a_subscriber_that_reads_late_gets_every_message_intact_and_in_order() {
    // Far more than the socket buffers take: most of it waits in the outbox, across
    // many turns, as slices of earlier turns' batches and as whole large frames.
    const MESSAGES: usize = 3000;
    let server = start(common::builder().workers(2).max_backpressure(64 << 20));
    let (handle, addr) = (server.handle.clone(), server.addr);
    let mut late: Vec<Client> = (0..4).map(|_| connect(addr, "/sub")).collect();
    wait_until("4 subscribers", || handle.subscribers(TOPIC) == 4);
    let mut publisher = connect(addr, "/pub");
    for i in 0..MESSAGES {
        publisher.send(WsMessage::text(late_message(i))).unwrap();
    }
    thread::sleep(Duration::from_millis(300));
    for client in &mut late {
        for i in 0..MESSAGES {
            assert_eq!(recv_text(client), late_message(i), "message {i}");
        }
        client.send(WsMessage::text("echo:end")).unwrap();
        assert_eq!(recv_text(client), "end");
    }
    drop(server);
}

fn slow_subscriber_case(policy: BackpressurePolicy) -> wavecore::StatsSnapshot {
    let builder = common::builder()
        .workers(2)
        .max_backpressure(256 << 10)
        .backpressure_policy(policy);
    let server = start(builder);
    let (handle, addr) = (server.handle.clone(), server.addr);
    // A subscriber that never reads its socket.
    let _stalled = raw_upgrade(addr);
    let readers: Vec<Client> = (0..10).map(|_| connect(addr, "/sub")).collect();
    wait_until("11 subscribers", || handle.subscribers(TOPIC) == 11);
    // 20 MB in all: far more than the stalled socket's kernel buffers plus the limit.
    // The publisher waits for the readers after each batch of 100 KB, so a reader that
    // keeps reading is never more than one batch behind.
    const BATCH: usize = 100;
    const BATCHES: usize = 200;
    let progress: Arc<Vec<AtomicUsize>> = Arc::new((0..10).map(|_| AtomicUsize::new(0)).collect());
    let payload = "x".repeat(1000);
    let threads: Vec<_> = readers
        .into_iter()
        .enumerate()
        .map(|(r, mut client)| {
            let progress = progress.clone();
            thread::spawn(move || {
                for i in 0..BATCH * BATCHES {
                    let text = recv_text(&mut client);
                    let expected = i.to_string();
                    assert!(text.starts_with(&expected), "message {i} out of order");
                    assert_eq!(text.len(), expected.len() + 1000);
                    progress[r].store(i + 1, Ordering::Release);
                }
                client
            })
        })
        .collect();
    for batch in 0..BATCHES {
        for i in batch * BATCH..(batch + 1) * BATCH {
            handle.publish(TOPIC, Message::Text(&format!("{i}{payload}")));
        }
        let done = (batch + 1) * BATCH;
        let readers_done = || progress.iter().all(|p| p.load(Ordering::Acquire) >= done);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !readers_done()
            && Instant::now() < deadline
            && !threads.iter().any(|t| t.is_finished())
        {
            thread::sleep(Duration::from_micros(200));
        }
    }
    let _readers: Vec<Client> = threads
        .into_iter()
        .map(|t| t.join().expect("every reader got every message in order"))
        .collect();
    let stats = handle.stats();
    drop(server);
    stats
}

#[test]
fn a_stalled_subscriber_is_closed_while_the_others_receive_everything() {
    let stats = slow_subscriber_case(BackpressurePolicy::Close);
    assert_eq!(stats.backpressure_closes, 1);
    assert_eq!(stats.dropped_messages, 0);
}

#[test]
fn a_stalled_subscriber_loses_messages_under_the_drop_policy() {
    let stats = slow_subscriber_case(BackpressurePolicy::Drop);
    assert_eq!(stats.backpressure_closes, 0);
    assert!(stats.dropped_messages > 0);
    assert_eq!(
        stats.open_connections, 11,
        "the stalled subscriber stays connected"
    );
}

#[test]
fn no_registry_growth_after_10_000_subscribe_close_cycles() {
    let server = start(common::builder().workers(2));
    let (handle, addr) = (server.handle.clone(), server.addr);
    for _ in 0..100 {
        let batch: Vec<Client> = (0..100).map(|_| connect(addr, "/sub")).collect();
        for mut client in batch {
            client.close(None).unwrap();
            // Read until the server's close arrives and the connection ends.
            while client.read().is_ok() {}
        }
    }
    wait_until("all connections closed", || handle.connections() == 0);
    assert_eq!(handle.subscribers(TOPIC), 0);
    assert_eq!(handle.topic_count(), 0);
    assert_eq!(handle.stats().accepted, 10_000);
    drop(server);
}
