//! Channels over real sockets (run on each backend: `WAVECORE_BACKEND=io_uring`):
//! recovery after reconnects while four publishers on four reactors publish at full
//! rate (nothing lost, nothing twice, in order), a position older than the history,
//! an epoch that changed with a server restart, the protocol's answers to bad input,
//! and the browser client served over HTTP.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use common::channels::{PUBLISHERS, Seen, Ws, read_json, send, subscribe};
use common::{TestServer, builder, http_exchange, ws_connect, ws_read_close};
use serde_json::{Value, json};
use wavecore::channels::{History, serve_message};
use wavecore::{Conn, Handler, Message, Request, Upgrade};

/// The channels protocol, with a first message saying which reactor serves the
/// connection (`{"type":"hello","reactor":N}`).
struct Tagged;

impl Handler for Tagged {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let reactor = conn.id().0 >> 48;
        conn.send_text(&json!({"type": "hello", "reactor": reactor}).to_string());
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        serve_message(conn, message);
    }
}

fn tagged(_: &Request<'_>) -> Upgrade<Tagged> {
    Upgrade::accept(Tagged)
}

/// Connects and returns the client with the index of the reactor serving it.
fn connect(addr: SocketAddr) -> (Ws, u64) {
    let mut ws = ws_connect(addr);
    let hello = read_json(&mut ws).expect("hello");
    assert_eq!(hello["type"], "hello");
    (ws, hello["reactor"].as_u64().unwrap())
}

const PER_PUBLISHER: u64 = 4000;
const BATCH: u64 = 50;

#[test]
fn reconnecting_subscribers_recover_everything_while_four_reactors_publish() {
    let server = TestServer::start(
        builder()
            .workers(PUBLISHERS)
            .channel_history("room", History::last(100_000)),
        tagged,
    );
    let addr = server.addr;
    let total = PUBLISHERS as u64 * PER_PUBLISHER;
    // Four publishers, each on its own reactor (connections are spread by the
    // kernel; the others wait open until the end).
    let mut publishers: Vec<Option<Ws>> = (0..PUBLISHERS).map(|_| None).collect();
    let mut spares = Vec::new();
    for _ in 0..400 {
        let (ws, reactor) = connect(addr);
        match &mut publishers[reactor as usize] {
            slot @ None => *slot = Some(ws),
            Some(_) => spares.push(ws),
        }
        if publishers.iter().all(Option::is_some) {
            break;
        }
    }
    assert!(
        publishers.iter().all(Option::is_some),
        "no connection reached some reactor in 400 tries"
    );
    // Subscribers, each dropping its connection (no close handshake) after a number of
    // messages and resuming from its position; a subscriber closed for being slow
    // (1008) resumes the same way.
    let schedules: [&[u64]; 4] = [
        &[1, 700, 2500, 9000],
        &[300, 301, 4000, 15_999],
        &[1500, 5000, 5990, 12_000],
        &[10, 2000, 2001, 16_000],
    ];
    let mut subscribers = Vec::new();
    for schedule in schedules {
        let (mut ws, _) = connect(addr);
        let (replayed, subscribed) = subscribe(&mut ws, "room", None);
        assert!(replayed.is_empty());
        assert_eq!(subscribed["offset"], 0, "subscribed before any publish");
        let seen = Seen::at(&subscribed);
        subscribers.push(thread::spawn(move || {
            let mut seen = seen;
            let mut ws = Some(ws);
            let mut drops = schedule.iter().copied().peekable();
            loop {
                if drops.next_if(|&at| seen.offset >= at).is_some() {
                    drop(ws.take());
                    let (mut fresh, _) = connect(addr);
                    seen.resume(&mut fresh);
                    ws = Some(fresh);
                    continue;
                }
                if seen.offset >= total {
                    break;
                }
                match ws.as_mut().and_then(read_json) {
                    Some(message) => seen.take(&message),
                    None => {
                        // Closed by the server (a slow reader): resume.
                        let (mut fresh, _) = connect(addr);
                        seen.resume(&mut fresh);
                        ws = Some(fresh);
                    }
                }
            }
            seen
        }));
    }
    let go = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = publishers
        .into_iter()
        .enumerate()
        .map(|(i, ws)| {
            let mut ws = ws.unwrap();
            let go = go.clone();
            thread::spawn(move || {
                while !go.load(Ordering::Acquire) {
                    thread::yield_now();
                }
                let mut n = 0;
                while n < PER_PUBLISHER {
                    for k in n..n + BATCH {
                        let data = format!("{i}:{k}");
                        ws.send(tungstenite::Message::text(
                            json!({"type": "publish", "channel": "room", "data": data, "id": k})
                                .to_string(),
                        ))
                        .expect("publish");
                    }
                    let mut answered = 0;
                    while answered < BATCH {
                        let reply = read_json(&mut ws).expect("an answer to publish");
                        assert_eq!(reply["type"], "published", "{reply}");
                        assert_eq!(reply["id"], n + answered);
                        answered += 1;
                    }
                    n += BATCH;
                }
            })
        })
        .collect();
    go.store(true, Ordering::Release);
    for thread in threads {
        thread.join().expect("publisher");
    }
    let mut replayed = 0;
    for subscriber in subscribers {
        let seen = subscriber.join().expect("subscriber");
        replayed += seen.replayed;
        assert_eq!(seen.offset, total);
        assert_eq!(seen.next_of, [PER_PUBLISHER; PUBLISHERS]);
        assert!(seen.recoveries >= 4);
    }
    assert!(
        replayed > 0,
        "the drops missed nothing: no replay was tested"
    );
    let position = server.handle.channel_position("room").unwrap();
    assert_eq!(position.offset, total);
    drop(spares);
    server.check_health();
}

#[test]
fn a_position_older_than_the_history_is_told_and_live_follows() {
    let server = TestServer::start(
        builder().channel_history("news:*", History::last(3)),
        tagged,
    );
    let mut epoch = 0;
    for n in 1..=10u64 {
        let position = server
            .handle
            .publish_channel("news:today", &format!("m{n}"))
            .unwrap();
        assert_eq!(position.offset, n);
        epoch = position.epoch;
    }
    let epoch = wavecore::channels::epoch_text(epoch);
    let (mut ws, _) = connect(server.addr);
    // Offset 7 is the oldest position the history (8, 9, 10) can resume from.
    let (replayed, subscribed) = subscribe(&mut ws, "news:today", Some((&epoch, 7)));
    assert_eq!(subscribed["recovered"], true);
    let offsets: Vec<u64> = replayed
        .iter()
        .map(|m| m["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [8, 9, 10]);
    assert_eq!(replayed[0]["data"], "m8");
    let (mut old, _) = connect(server.addr);
    let (replayed, subscribed) = subscribe(&mut old, "news:today", Some((&epoch, 6)));
    assert!(replayed.is_empty());
    assert_eq!(subscribed["recovered"], false);
    assert_eq!(subscribed["reason"], "too_old");
    assert_eq!(subscribed["offset"], 10);
    server.handle.publish_channel("news:today", "m11").unwrap();
    for ws in [&mut ws, &mut old] {
        let live = read_json(ws).unwrap();
        assert_eq!(
            (live["offset"].as_u64(), live["data"].as_str()),
            (Some(11), Some("m11"))
        );
    }
    server.check_health();
}

#[test]
fn a_replay_that_would_not_fit_the_queue_is_told_and_live_follows() {
    // 200 messages of 100 bytes missed, against a 4 KiB queue: replaying them would
    // close the client with 1008 each time it came back, further behind.
    let server = TestServer::start(
        builder()
            .max_backpressure(4096)
            .channel_history("news", History::last(1000)),
        tagged,
    );
    let data = "x".repeat(100);
    let mut epoch = 0;
    for _ in 0..200 {
        epoch = server.handle.publish_channel("news", &data).unwrap().epoch;
    }
    let epoch = wavecore::channels::epoch_text(epoch);
    let (mut behind, _) = connect(server.addr);
    let (replayed, subscribed) = subscribe(&mut behind, "news", Some((&epoch, 0)));
    assert!(replayed.is_empty());
    assert_eq!(subscribed["recovered"], false, "{subscribed}");
    assert_eq!(subscribed["reason"], "too_many", "{subscribed}");
    assert_eq!(subscribed["offset"], 200);
    // What fits is replayed: the last 20 (about 3.7 KiB of frames).
    let (mut near, _) = connect(server.addr);
    let (replayed, subscribed) = subscribe(&mut near, "news", Some((&epoch, 180)));
    assert_eq!(subscribed["recovered"], true, "{subscribed}");
    assert_eq!(replayed.len(), 20);
    server.handle.publish_channel("news", "live").unwrap();
    for ws in [&mut behind, &mut near] {
        let live = read_json(ws).unwrap();
        assert_eq!(
            (live["offset"].as_u64(), live["data"].as_str()),
            (Some(201), Some("live"))
        );
    }
    assert_eq!(server.handle.stats().backpressure_closes, 0);
    server.check_health();
}

#[test]
fn a_restarted_server_has_a_new_epoch_and_says_so() {
    let mut first = TestServer::start(builder().channel_history("*", History::last(100)), tagged);
    let (mut ws, _) = connect(first.addr);
    let (_, subscribed) = subscribe(&mut ws, "room", None);
    let old_epoch = subscribed["epoch"].as_str().unwrap().to_owned();
    for n in 0..5 {
        first
            .handle
            .publish_channel("room", &format!("{n}"))
            .unwrap();
    }
    let mut last = 0;
    for _ in 0..5 {
        last = read_json(&mut ws).unwrap()["offset"].as_u64().unwrap();
    }
    assert_eq!(last, 5);
    first.handle.shutdown();
    assert_eq!(ws_read_close(&mut ws).0, 1001);
    assert!(first.join());
    // The "restarted" server: its history (in memory) is gone.
    let second = TestServer::start(builder().channel_history("*", History::last(100)), tagged);
    second.handle.publish_channel("room", "after").unwrap();
    let (mut ws, _) = connect(second.addr);
    let (replayed, subscribed) = subscribe(&mut ws, "room", Some((&old_epoch, last)));
    assert!(replayed.is_empty(), "never a silent gap: nothing replayed");
    assert_eq!(subscribed["recovered"], false);
    assert_eq!(subscribed["reason"], "epoch_changed");
    assert_ne!(subscribed["epoch"].as_str().unwrap(), old_epoch);
    assert_eq!(subscribed["offset"], 1);
    second.handle.publish_channel("room", "live").unwrap();
    let live = read_json(&mut ws).unwrap();
    assert_eq!(
        (live["offset"].as_u64(), live["data"].as_str()),
        (Some(2), Some("live"))
    );
    assert_eq!(live["epoch"], subscribed["epoch"]);
}

#[test]
fn publishing_answers_offsets_and_refuses_what_cannot_be_stored() {
    let server = TestServer::start(builder().max_message_size(64), tagged);
    let (mut ws, _) = connect(server.addr);
    let (_, subscribed) = subscribe(&mut ws, "a", None);
    assert_eq!(subscribed.get("recovered"), None, "no position asked");
    send(
        &mut ws,
        json!({"type": "publish", "channel": "a", "data": "one", "id": "x"}),
    );
    // The publisher subscribes: its answer comes in the callback, the message after.
    let answer = read_json(&mut ws).unwrap();
    assert_eq!(answer["type"], "published");
    assert_eq!(
        (answer["id"].as_str(), answer["offset"].as_u64()),
        (Some("x"), Some(1))
    );
    let message = read_json(&mut ws).unwrap();
    assert_eq!(
        (message["offset"].as_u64(), message["data"].as_str()),
        (Some(1), Some("one"))
    );
    let big = "x".repeat(65);
    assert!(matches!(
        server.handle.publish_channel("a", &big),
        Err(wavecore::channels::ChannelError::TooLarge {
            size: 65,
            limit: 64
        })
    ));
    assert!(server.handle.publish_channel("", "x").is_err());
    send(&mut ws, json!({"type": "subscribe", "channel": "a"}));
    let again = read_json(&mut ws).unwrap();
    assert_eq!(
        (again["type"].as_str(), again["error"].as_str()),
        (Some("error"), Some("already subscribed"))
    );
    send(&mut ws, json!({"type": "unsubscribe", "channel": "a"}));
    assert_eq!(read_json(&mut ws).unwrap()["type"], "unsubscribed");
    server.handle.publish_channel("a", "unheard").unwrap();
    send(
        &mut ws,
        json!({"type": "publish", "channel": "b", "data": "y"}),
    );
    let answer = read_json(&mut ws).unwrap();
    assert_eq!(
        (answer["type"].as_str(), answer["channel"].as_str()),
        (Some("published"), Some("b"))
    );
    assert_eq!(server.handle.channel_stats().channels, 2);
    server.check_health();
}

#[test]
fn bad_input_gets_an_error_or_the_right_close_code() {
    let server = TestServer::start(builder(), tagged);
    let (mut ws, _) = connect(server.addr);
    for (request, says) in [
        (json!({"type": "dance", "channel": "a"}), "\"type\""),
        (json!({"type": "subscribe"}), "\"channel\""),
        (
            json!({"type": "publish", "channel": "a", "id": 3}),
            "\"data\"",
        ),
        (
            json!({"type": "subscribe", "channel": "a", "since": {"epoch": 5}}),
            "\"since\"",
        ),
    ] {
        send(&mut ws, request.clone());
        let error = read_json(&mut ws).unwrap();
        assert_eq!(error["type"], "error", "{request}");
        assert!(error["error"].as_str().unwrap().contains(says), "{error}");
    }
    ws.send(tungstenite::Message::text("{not json")).unwrap();
    assert_eq!(ws_read_close(&mut ws).0, 1007);
    let (mut ws, _) = connect(server.addr);
    ws.send(tungstenite::Message::binary(vec![1, 2, 3]))
        .unwrap();
    assert_eq!(ws_read_close(&mut ws).0, 1003);
    server.check_health();
}

#[test]
fn a_policy_refuses_what_it_does_not_allow() {
    use wavecore::channels::{Action, ChannelsService};
    let service = ChannelsService::new().allow(|action| match action {
        Action::Subscribe(channel) => channel.starts_with("public:"),
        Action::Publish(channel) => channel == "public:board",
    });
    let server = TestServer::start(builder(), service);
    let mut ws = ws_connect(server.addr);
    for (request, refused) in [
        (json!({"type": "subscribe", "channel": "secret"}), true),
        (
            json!({"type": "publish", "channel": "public:news", "data": "x", "id": 1}),
            true,
        ),
        (
            json!({"type": "subscribe", "channel": "public:board"}),
            false,
        ),
        (
            json!({"type": "publish", "channel": "public:board", "data": "x", "id": 2}),
            false,
        ),
    ] {
        send(&mut ws, request.clone());
        let answer = read_json(&mut ws).unwrap();
        assert_eq!(answer["type"] == "error", refused, "{request} got {answer}");
        if refused {
            assert_eq!(answer["error"], "not allowed");
            assert_eq!(answer["channel"], request["channel"]);
            assert_eq!(answer.get("id"), request.get("id"));
        }
    }
    assert_eq!(server.handle.channel_position("public:news"), None);
    assert_eq!(server.handle.channel_position("secret"), None);
    server.check_health();
}

#[test]
fn the_browser_client_is_served() {
    let server = TestServer::start(builder(), wavecore::channels::ChannelsService::new());
    let reply = http_exchange(
        server.addr,
        "GET /wavecore-channels.js HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    assert_eq!(reply.body_text(), wavecore::channels::CLIENT_JS);
    let missing = http_exchange(
        server.addr,
        "GET /other HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert_eq!(missing.status, 404);
}

/// An application's own handler: in `on_open` it sends a line, subscribes from the
/// position in the path (`/EPOCH/OFFSET`), and sends another line.
struct OwnProtocol {
    since: Option<wavecore::channels::Position>,
}

impl Handler for OwnProtocol {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.send_text("welcome");
        let subscribed = conn.subscribe_channel("log", self.since).unwrap();
        conn.send_text(&format!(
            "recovery {:?}, {} replayed, live after {}",
            subscribed.recovery, subscribed.replayed, subscribed.position.offset
        ));
    }

    fn on_message(&mut self, _: &mut Conn<'_>, _: Message<'_>) {}
}

#[test]
fn a_handler_of_its_own_gets_the_replay_between_what_it_sent_before_and_after() {
    let service = |request: &Request<'_>| {
        let since = request
            .path()
            .strip_prefix('/')
            .and_then(|p| p.split_once('/'))
            .map(|(epoch, offset)| wavecore::channels::Position {
                epoch: u64::from_str_radix(epoch, 16).unwrap(),
                offset: offset.parse().unwrap(),
            });
        Upgrade::accept(OwnProtocol { since })
    };
    let server = TestServer::start(builder().channel_history("log", History::last(10)), service);
    let mut last = wavecore::channels::Position::default();
    for n in 1..=5 {
        last = server
            .handle
            .publish_channel("log", &format!("entry {n}"))
            .unwrap();
    }
    let path = format!("/{:016x}/2", last.epoch);
    let mut ws = common::ws_connect_path(server.addr, &path);
    let mut texts = Vec::new();
    for _ in 0..5 {
        texts.push(
            common::ws_read_data(&mut ws)
                .into_text()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(texts[0], "welcome");
    let data: Vec<Value> = texts[1..4]
        .iter()
        .map(|t| serde_json::from_str::<Value>(t).unwrap())
        .collect();
    let replayed: Vec<(u64, &str)> = data
        .iter()
        .map(|m| (m["offset"].as_u64().unwrap(), m["data"].as_str().unwrap()))
        .collect();
    assert_eq!(replayed, [(3, "entry 3"), (4, "entry 4"), (5, "entry 5")]);
    assert_eq!(texts[4], "recovery Recovered, 3 replayed, live after 5");
    server.handle.publish_channel("log", "entry 6").unwrap();
    let live: Value =
        serde_json::from_str(&common::ws_read_data(&mut ws).into_text().unwrap()).unwrap();
    assert_eq!(live["offset"], 6);
    server.check_health();
}
