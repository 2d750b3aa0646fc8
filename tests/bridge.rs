//! The Redis bridge with real servers, real clients and a real `redis-server`: two
//! servers sharing topics (order, exactly once, interest), and the failure cases
//! (Redis unreachable at start, restarted mid-run, frozen; a message over the limit).
//!
//! Tests needing Redis read `WAVECORE_REDIS_URL` (`.ci/run` sets it) or start their
//! own `redis-server`. They are `#[ignore]`d, so that `cargo test` reports them as not
//! run; `cargo test -- --include-ignored` (`.ci/run`) runs them, and fails them when
//! there is no Redis.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::redis_server::{self, RedisServer};
use common::{TestServer, ws_connect_path, ws_read_data};
use tungstenite::{Message as WsMessage, WebSocket};
use wavecore::bridge::{BridgeState, BridgeStats, PublishStatus, RedisBridge};
use wavecore::{Conn, Handler, Message, Request, Upgrade};

type Client = WebSocket<TcpStream>;

/// `/sub/T`: subscribes to topic T. `/pub/T`: publishes every message to T and
/// answers a refused publish with the status's text.
enum Role {
    Subscriber(String),
    Publisher(String),
}

impl Handler for Role {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        if let Role::Subscriber(topic) = self {
            conn.subscribe(topic);
        }
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        if let Role::Publisher(topic) = self {
            let status = conn.publish(topic, message);
            if !status.is_published() {
                conn.send_text(&status.to_string());
            }
        }
    }
}

fn route(request: &Request<'_>) -> Upgrade<Role> {
    let path = request.path();
    if let Some(topic) = path.strip_prefix("/pub/") {
        return Upgrade::accept(Role::Publisher(topic.to_owned()));
    }
    let topic = path.strip_prefix("/sub/").unwrap_or("none");
    Upgrade::accept(Role::Subscriber(topic.to_owned()))
}

/// A bridge to `url` with this test's own channel prefix and quick retries.
fn bridge(url: &str, test: &str) -> RedisBridge {
    RedisBridge::new(url)
        .expect("a Redis URL")
        .channel_prefix(format!("wavecore-test-{}-{test}:", std::process::id()))
        .retry_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .io_timeout(Duration::from_secs(1))
}

/// A server with two reactors and `bridge`.
fn server(bridge: RedisBridge) -> TestServer {
    TestServer::start(common::builder().workers(2).bridge(bridge), route)
}

fn bridge_stats(server: &TestServer) -> BridgeStats {
    server
        .handle
        .stats()
        .bridge
        .expect("the server has a bridge")
}

/// Waits (bounded) until `check` holds for `server`'s bridge.
fn wait_for(server: &TestServer, what: &str, check: impl Fn(&BridgeStats) -> bool) {
    let ok = common::wait_until_within(Duration::from_secs(10), || check(&bridge_stats(server)));
    assert!(
        ok,
        "timed out waiting for {what}: {:?}",
        bridge_stats(server)
    );
}

fn connected_to(topics: u64) -> impl Fn(&BridgeStats) -> bool {
    move |s| s.state == BridgeState::Connected && s.subscribed_topics == topics
}

fn connect(addr: SocketAddr, path: &str) -> Client {
    let client = ws_connect_path(addr, path);
    client
        .get_ref()
        .set_read_timeout(Some(common::IO_TIMEOUT))
        .expect("read timeout");
    client
}

fn recv(client: &mut Client) -> String {
    match ws_read_data(client) {
        WsMessage::Text(text) => text.to_string(),
        other => panic!("unexpected {other:?}"),
    }
}

fn send(client: &mut Client, text: &str) {
    client.send(WsMessage::text(text)).expect("send");
}

/// Reads until `last`, checking that each publisher's messages (`P:N`) arrive in order
/// without repeats; returns how many arrived from each of `publishers`.
fn read_until(client: &mut Client, last: &str, publishers: &[&str]) -> Vec<u64> {
    let mut next = vec![0u64; publishers.len()];
    loop {
        let text = recv(client);
        if text == last {
            return next;
        }
        let (who, n) = text.split_once(':').expect("P:N");
        let i = publishers
            .iter()
            .position(|p| *p == who)
            .expect("a known publisher");
        let n: u64 = n.parse().expect("a number");
        assert!(
            n >= next[i],
            "{who}:{n} after {who}:{}: out of order or repeated",
            next[i]
        );
        next[i] = n + 1;
    }
}

#[test]
#[ignore = "needs redis-server (apt-get install redis-server, or WAVECORE_REDIS_URL), then --include-ignored"]
fn two_servers_share_a_topic_in_order_exactly_once() {
    let redis = redis_server::shared("two_servers_share_a_topic");
    let url = redis.url();
    let a = server(bridge(&url, "share"));
    let b = server(bridge(&url, "share"));
    let mut subscribers: Vec<Client> = (0..3)
        .map(|_| connect(a.addr, "/sub/room"))
        .chain((0..3).map(|_| connect(b.addr, "/sub/room")))
        .collect();
    wait_for(&a, "A subscribed", connected_to(1));
    wait_for(&b, "B subscribed", connected_to(1));
    let mut pub_a = connect(a.addr, "/pub/room");
    let mut pub_b = connect(b.addr, "/pub/room");
    const N: u64 = 300;
    for i in 0..N {
        send(&mut pub_a, &format!("a:{i}"));
        send(&mut pub_b, &format!("b:{i}"));
        if i % 100 == 99 {
            assert_eq!(
                b.handle
                    .publish("room", Message::Text(&format!("h:{}", i / 100))),
                PublishStatus::Published
            );
        }
    }
    // Every publisher's last message, then one marker from each side: a subscriber
    // that has both markers after everything has had every message, once.
    for subscriber in &mut subscribers {
        let counts = read_until(subscriber, "a:299", &["a", "b", "h"]);
        assert!(counts[0] == N - 1, "a's messages before a:299: {counts:?}");
    }
    send(&mut pub_b, "end-b");
    for (i, subscriber) in subscribers.iter_mut().enumerate() {
        let counts = read_until(subscriber, "end-b", &["a", "b", "h"]);
        let seen_b: u64 = counts[1];
        assert!(
            seen_b == 0 || seen_b == N,
            "subscriber {i}: b's tail {counts:?}"
        );
    }
    send(&mut pub_a, "end-a");
    for subscriber in &mut subscribers {
        assert_eq!(
            recv(subscriber),
            "end-a",
            "nothing twice, nothing after the end"
        );
    }
    // Redis confirms a batch after forwarding it: the count may follow the delivery.
    wait_for(&a, "A's sent counted", |s| s.messages_out == N + 1);
    wait_for(&b, "B's sent counted", |s| s.messages_out == N + 3 + 1);
    let (sa, sb) = (bridge_stats(&a), bridge_stats(&b));
    assert_eq!(sa.messages_in, N + 3 + 1, "A got B's: {sa:?}");
    assert_eq!(sb.messages_in, N + 1, "B got A's: {sb:?}");
    assert_ne!(sa.node_id, sb.node_id);
    for s in [sa, sb] {
        assert_eq!(
            (s.lost, s.dropped, s.duplicates, s.invalid),
            (0, 0, 0, 0),
            "{s:?}"
        );
        assert!(s.lag_max >= s.lag_mean && s.lag_max >= s.lag_last, "{s:?}");
    }
    // The same counts on /metrics, and every delivery in the lag histogram.
    for (server, messages_in, messages_out) in [(&a, N + 4, N + 1), (&b, N + 1, N + 4)] {
        let text = server.handle.metrics_text();
        for line in [
            "wavecore_bridge_connected 1".to_string(),
            format!("wavecore_bridge_messages_in_total {messages_in}"),
            format!("wavecore_bridge_messages_out_total {messages_out}"),
            format!("wavecore_bridge_lag_seconds_count {messages_in}"),
            "wavecore_bridge_lost_total 0".to_string(),
            "wavecore_bridge_subscribed_topics 1".to_string(),
            format!("wavecore_bridge_lag_seconds_bucket{{le=\"+Inf\"}} {messages_in}"),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "no line {line:?} in the metrics:\n{text}"
            );
        }
    }
}

/// Subscriber counts of `channel` on Redis (`PUBSUB NUMSUB`).
fn numsub(url: &str, channel: &str) -> i64 {
    let client = redis::Client::open(url).expect("client");
    let mut con = client.get_connection().expect("connect to Redis");
    let (_, n): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query(&mut con)
        .expect("PUBSUB NUMSUB");
    n
}

#[test]
#[ignore = "needs redis-server (apt-get install redis-server, or WAVECORE_REDIS_URL), then --include-ignored"]
fn a_topic_without_subscribers_costs_a_server_nothing() {
    let redis = redis_server::shared("a_topic_without_subscribers");
    let url = redis.url();
    let prefix = format!("wavecore-test-{}-interest:", std::process::id());
    let a = server(bridge(&url, "interest"));
    let b = server(bridge(&url, "interest"));
    let mut lonely_a = connect(a.addr, "/sub/lonely");
    let mut room_a = connect(a.addr, "/sub/room");
    let mut room_b = connect(b.addr, "/sub/room");
    wait_for(&a, "A subscribed to both", connected_to(2));
    wait_for(&b, "B subscribed to room only", connected_to(1));
    assert_eq!(
        numsub(&url, &format!("{prefix}lonely")),
        1,
        "only A listens"
    );
    assert_eq!(numsub(&url, &format!("{prefix}room")), 2);
    let mut pub_a = connect(a.addr, "/pub/lonely");
    for i in 0..50 {
        send(&mut pub_a, &format!("l:{i}"));
    }
    let mut pub_room = connect(a.addr, "/pub/room");
    send(&mut pub_room, "r:0");
    // Redis forwards A's messages in order: once B has r:0, it would have had the
    // lonely ones before it.
    assert_eq!(recv(&mut room_b), "r:0");
    assert_eq!(recv(&mut room_a), "r:0");
    assert_eq!(read_until(&mut lonely_a, "l:49", &["l"]), [49]);
    let sb = bridge_stats(&b);
    assert_eq!(
        sb.messages_in, 1,
        "B heard nothing of the lonely topic: {sb:?}"
    );
    assert_eq!(sb.invalid, 0);
    // The last subscriber leaving B unsubscribes B on Redis.
    drop(room_b);
    wait_for(&b, "B unsubscribed", connected_to(0));
    assert_eq!(numsub(&url, &format!("{prefix}room")), 1);
}

#[test]
#[ignore = "needs redis-server (apt-get install redis-server, or WAVECORE_REDIS_URL), then --include-ignored"]
fn redis_unreachable_at_start_local_topics_work_and_the_bridge_retries() {
    redis_server::require("redis_unreachable_at_start");
    let port = redis_server::free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let envelope = 32 + 2 + 3; // envelope header, frame header, "m:N"
    let a = server(bridge(&url, "unreachable").max_buffered_bytes(5 * envelope));
    let mut sub = connect(a.addr, "/sub/t");
    let mut publisher = connect(a.addr, "/pub/t");
    for i in 0..8 {
        send(&mut publisher, &format!("m:{i}"));
    }
    assert_eq!(
        read_until(&mut sub, "m:7", &["m"]),
        [7],
        "local delivery as usual"
    );
    wait_for(&a, "retries", |s| {
        s.state == BridgeState::Connecting && s.connect_failures >= 3
    });
    let s = bridge_stats(&a);
    assert_eq!(
        (s.buffered, s.dropped),
        (5, 3),
        "buffered up to the bound: {s:?}"
    );
    assert_eq!(s.messages_out, 0);

    let _redis = RedisServer::start_on(port);
    wait_for(&a, "connected", connected_to(1));
    wait_for(&a, "the buffer sent", |s| {
        s.buffered == 0 && s.messages_out == 5
    });
    // Another server joining now hears what A publishes next.
    let b = server(bridge(&url, "unreachable"));
    let mut sub_b = connect(b.addr, "/sub/t");
    wait_for(&b, "B subscribed", connected_to(1));
    send(&mut publisher, "m:8");
    assert_eq!(recv(&mut sub_b), "m:8");
    assert_eq!(recv(&mut sub), "m:8");
}

#[test]
#[ignore = "needs redis-server (apt-get install redis-server, or WAVECORE_REDIS_URL), then --include-ignored"]
fn redis_restarted_mid_run_reconnects_resubscribes_and_counts() {
    redis_server::require("redis_restarted_mid_run");
    let mut redis = RedisServer::start();
    let url = redis.url();
    let a = server(bridge(&url, "restart"));
    let b = server(bridge(&url, "restart"));
    let mut sub_a = connect(a.addr, "/sub/t");
    let mut sub_b = connect(b.addr, "/sub/t");
    wait_for(&a, "A subscribed", connected_to(1));
    wait_for(&b, "B subscribed", connected_to(1));
    let mut publisher = connect(a.addr, "/pub/t");
    send(&mut publisher, "m:0");
    assert_eq!(recv(&mut sub_b), "m:0");

    redis.kill();
    wait_for(&a, "A reconnecting", |s| {
        s.state == BridgeState::Reconnecting
    });
    wait_for(&b, "B reconnecting", |s| {
        s.state == BridgeState::Reconnecting
    });
    const DOWN: u64 = 20;
    for i in 1..=DOWN {
        send(&mut publisher, &format!("m:{i}"));
    }
    assert_eq!(
        read_until(&mut sub_a, "m:20", &["m"]),
        [20],
        "local delivery goes on"
    );
    wait_for(&a, "A buffering", |s| s.buffered == DOWN);

    let _redis = RedisServer::start_on(redis.port);
    wait_for(&a, "A back", connected_to(1));
    wait_for(&b, "B back", connected_to(1));
    wait_for(&a, "A's buffer sent", |s| s.buffered == 0);
    send(&mut publisher, "m:21");
    // B got the buffered messages if it resubscribed before A sent them; those it
    // missed are counted as lost when m:21 shows the gap. Either way, in order.
    let got = read_until(&mut sub_b, "m:21", &["m"])[0];
    assert_eq!(recv(&mut sub_a), "m:21");
    let (sa, sb) = (bridge_stats(&a), bridge_stats(&b));
    let received = sb.messages_in - 1; // m:0 and m:21 bracket the outage
    assert_eq!(
        received + sb.lost,
        DOWN + 1,
        "every message accounted for: {sb:?}"
    );
    assert!(got == 1 || got == DOWN + 1 || sb.lost > 0, "{got} {sb:?}");
    wait_for(&a, "A's sent counted", |s| s.messages_out == DOWN + 2);
    assert_eq!(sa.dropped, 0, "{sa:?}");
    assert!(sa.disconnects >= 1 && sb.disconnects >= 1);
}

#[test]
#[ignore = "needs redis-server (apt-get install redis-server, or WAVECORE_REDIS_URL), then --include-ignored"]
fn a_frozen_redis_never_stalls_local_delivery() {
    redis_server::require("a_frozen_redis");
    let redis = RedisServer::start();
    let a = server(bridge(&redis.url(), "frozen").max_buffered_bytes(16 << 10));
    let mut sub = connect(a.addr, "/sub/t");
    wait_for(&a, "subscribed", connected_to(1));
    let mut publisher = connect(a.addr, "/pub/t");
    redis.pause();
    const N: u64 = 2000;
    for i in 0..N {
        send(&mut publisher, &format!("m:{i}"));
    }
    // Every message reaches the local subscriber while Redis answers nothing.
    assert_eq!(read_until(&mut sub, "m:1999", &["m"]), [N - 1]);
    let frozen = bridge_stats(&a);
    assert!(frozen.dropped > 0, "the buffer's bound held: {frozen:?}");
    redis.resume();
    wait_for(&a, "recovered", |s| {
        s.state == BridgeState::Connected && s.buffered == 0 && s.messages_out + s.dropped == N
    });
}

#[test]
#[ignore = "needs redis-server (apt-get install redis-server, or WAVECORE_REDIS_URL), then --include-ignored"]
fn a_message_over_the_size_limit_is_refused_with_a_clear_error() {
    let redis = redis_server::shared("a_message_over_the_size_limit");
    let url = redis.url();
    let a = server(bridge(&url, "size").max_message_size(100));
    let b = server(bridge(&url, "size").max_message_size(100));
    let mut sub_a = connect(a.addr, "/sub/t");
    let mut sub_b = connect(b.addr, "/sub/t");
    wait_for(&a, "A subscribed", connected_to(1));
    wait_for(&b, "B subscribed", connected_to(1));
    let mut publisher = connect(a.addr, "/pub/t");
    send(&mut publisher, &"x".repeat(101));
    assert_eq!(
        recv(&mut publisher),
        "publish refused: a 101-byte message is over the bridge's max_message_size of 100 bytes"
    );
    let big = "y".repeat(200);
    assert_eq!(
        a.handle.publish("t", Message::Text(&big)),
        PublishStatus::TooLarge {
            size: 200,
            limit: 100
        }
    );
    send(&mut publisher, &"z".repeat(100));
    assert_eq!(
        recv(&mut sub_a),
        "z".repeat(100),
        "refused ones went nowhere"
    );
    assert_eq!(recv(&mut sub_b), "z".repeat(100));
    assert_eq!(bridge_stats(&a).refused, 2);
}
