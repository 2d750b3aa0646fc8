//! Channels on Redis Streams (`RedisChannels`) with real servers, real clients and a
//! real `redis-server`: two servers on one Redis with a client moving between them
//! (and through a restart of one) while four publishers publish; Redis killed and
//! restarted with append-only persistence (nothing acknowledged lost, recovery
//! across the restart) and without it (the epoch changes, clients are told); while
//! Redis is unreachable, publishes are refused with a clear answer and connections
//! stay served, and everything resumes by itself.
//!
//! `#[ignore]`d like tests/bridge.rs: run with `--include-ignored` (`.ci/run`).

mod common;

use std::thread;
use std::time::Duration;

use common::channels::{
    PUBLISHERS, Seen, Ws, delete_room_keys, expect_close, read_json, redis_room_server, send,
    subscribe,
};
use common::redis_server::{self, RedisServer};
use common::{TestServer, builder, ws_connect};
use serde_json::{Value, json};
use wavecore::channels::{ChannelsService, History, RedisChannels};

/// A key prefix no other test (or earlier run on a shared Redis) uses.
fn prefix() -> String {
    format!("wctest:{}:{}:", std::process::id(), rand_u64())
}

fn rand_u64() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Publishes `data` and returns the answer (`published` or `error`).
fn publish(ws: &mut Ws, data: &str) -> Value {
    send(
        ws,
        json!({"type": "publish", "channel": "room", "data": data}),
    );
    read_json(ws).expect("an answer to publish")
}

const PER_PUBLISHER: u64 = 500;
const BATCH: u64 = 25;

#[test]
#[ignore = "needs redis-server (apt-get install redis-server, or WAVECORE_REDIS_URL), then --include-ignored"]
fn a_client_moving_between_two_servers_misses_nothing_while_four_publish() {
    let redis = redis_server::shared("channels_redis two servers");
    let prefix = prefix();
    let (a, b) = (
        redis_room_server(&redis.url(), &prefix),
        redis_room_server(&redis.url(), &prefix),
    );
    let addrs = [a.addr, b.addr];
    let total = PUBLISHERS as u64 * PER_PUBLISHER;
    // Two subscribers, each moving to the other server at these offsets.
    let schedules: [&[u64]; 2] = [&[1, 300, 301, 1200, 1999], &[50, 900, 1500]];
    let mut subscribers = Vec::new();
    for (s, schedule) in schedules.into_iter().enumerate() {
        let mut ws = ws_connect(addrs[s]);
        let (replayed, subscribed) = subscribe(&mut ws, "room", None);
        assert!(replayed.is_empty());
        assert_eq!(subscribed["offset"], 0, "subscribed before any publish");
        let mut seen = Seen::at(&subscribed);
        let planned = schedule.len();
        subscribers.push(thread::spawn(move || {
            let mut at = s;
            let mut ws = Some(ws);
            let mut moves = schedule.iter().copied().peekable();
            // Every move is made, the last ones perhaps after everything arrived.
            while seen.offset < total || moves.peek().is_some() {
                if moves.next_if(|&m| seen.offset >= m).is_some() {
                    drop(ws.take());
                    at = 1 - at;
                    let mut fresh = ws_connect(addrs[at]);
                    seen.resume(&mut fresh);
                    ws = Some(fresh);
                    continue;
                }
                let message = read_json(ws.as_mut().unwrap()).expect("a live message");
                seen.take(&message);
            }
            assert_eq!(seen.recoveries, planned);
            seen
        }));
    }
    // Four publishers, two on each server, all on the same channel.
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|i| {
            let addr = addrs[i % 2];
            thread::spawn(move || {
                let mut ws = ws_connect(addr);
                let mut n = 0;
                while n < PER_PUBLISHER {
                    for k in n..n + BATCH {
                        send(
                            &mut ws,
                            json!({"type": "publish", "channel": "room", "data": format!("{i}:{k}")}),
                        );
                    }
                    for _ in 0..BATCH {
                        let reply = read_json(&mut ws).expect("an answer to publish");
                        assert_eq!(reply["type"], "published", "{reply}");
                    }
                    n += BATCH;
                }
            })
        })
        .collect();
    for publisher in publishers {
        publisher.join().expect("publisher");
    }
    let mut replayed = 0;
    let mut last = None;
    for subscriber in subscribers {
        let seen = subscriber.join().expect("subscriber");
        assert_eq!(seen.offset, total);
        assert_eq!(seen.next_of, [PER_PUBLISHER; PUBLISHERS]);
        replayed += seen.replayed;
        last = Some(seen);
    }
    assert!(
        replayed > 0,
        "the moves missed nothing: no replay was tested"
    );
    let seen = last.unwrap();
    assert_eq!(a.handle.channel_position("room").unwrap().offset, total);
    assert_eq!(
        b.handle.channel_position("room"),
        a.handle.channel_position("room")
    );
    // Through a restart of a server: a new process on the same Redis recovers the
    // position a client had on the old one.
    drop(b);
    let b = redis_room_server(&redis.url(), &prefix);
    let mut ws = ws_connect(b.addr);
    let (replayed, subscribed) = subscribe(&mut ws, "room", Some((&seen.epoch, total - 10)));
    assert_eq!(subscribed["recovered"], true, "{subscribed}");
    assert_eq!(replayed.len(), 10);
    assert_eq!(replayed[9]["offset"], total);
    a.check_health();
    b.check_health();
}

/// Publishes until Redis is back, checking that every refusal says why.
fn publish_until_accepted(ws: &mut Ws, data: &str) -> Value {
    for _ in 0..1000 {
        let reply = publish(ws, data);
        if reply["type"] == "published" {
            return reply;
        }
        assert_eq!(reply["type"], "error", "{reply}");
        assert_eq!(
            reply["error"], "the channel engine is unavailable",
            "{reply}"
        );
        thread::sleep(Duration::from_millis(10));
    }
    panic!("publishes still refused 10 s after Redis came back");
}

/// Redis killed (unreachable: publishes refused, connections served), then started
/// again on the same port (`persistent`: with its append-only file): with it the
/// channel goes on where it was; without it the epoch changes and clients are told.
fn kill_and_restart(persistent: bool) {
    redis_server::require("channels_redis restart");
    let port = redis_server::free_port();
    let dir = std::env::temp_dir().join(format!("wavecore-aof-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let start = |port| {
        if persistent {
            RedisServer::start_persistent(port, &dir)
        } else {
            RedisServer::start_on(port)
        }
    };
    let mut redis = start(port);
    let url = redis.url();
    let server = redis_room_server(&url, &prefix());
    let mut subscriber = ws_connect(server.addr);
    let (_, subscribed) = subscribe(&mut subscriber, "room", None);
    let epoch = subscribed["epoch"].as_str().unwrap().to_owned();
    let mut publisher = ws_connect(server.addr);
    for k in 1..=10 {
        let reply = publish(&mut publisher, &format!("before {k}"));
        assert_eq!(reply["type"], "published", "{reply}");
        assert_eq!(reply["offset"], k);
    }
    for k in 1..=10 {
        let message = read_json(&mut subscriber).unwrap();
        assert_eq!(message["offset"], k, "{message}");
    }

    redis.kill();
    // Unreachable: publishes are refused, and say so; connections stay open.
    let reply = publish(&mut publisher, "while down");
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["error"], "the channel engine is unavailable");
    let mut newcomer = ws_connect(server.addr);
    let (_, refused) = subscribe(&mut newcomer, "room", Some((&epoch, 5)));
    assert_eq!(refused["type"], "error", "{refused}");

    let _redis = start(port);
    let reply = publish_until_accepted(&mut publisher, "after 1");
    if persistent {
        // Nothing acknowledged was lost: the channel goes on where it was.
        assert_eq!(reply["epoch"], epoch.as_str(), "{reply}");
        assert_eq!(reply["offset"], 11, "{reply}");
        let message = read_json(&mut subscriber).expect("the subscriber stayed");
        assert_eq!(message["offset"], 11, "{message}");
        assert_eq!(message["data"], "after 1");
        let mut late = ws_connect(server.addr);
        let (replayed, subscribed) = subscribe(&mut late, "room", Some((&epoch, 5)));
        assert_eq!(subscribed["recovered"], true, "{subscribed}");
        let offsets: Vec<u64> = replayed
            .iter()
            .map(|m| m["offset"].as_u64().unwrap())
            .collect();
        assert_eq!(offsets, [6, 7, 8, 9, 10, 11]);
    } else {
        // The history is gone: a new epoch, and the subscriber is closed rather than
        // given messages it cannot place; from its position it is told.
        assert_ne!(reply["epoch"], epoch.as_str(), "{reply}");
        assert_eq!(reply["offset"], 1, "{reply}");
        expect_close(&mut subscriber, 1012);
        let mut back = ws_connect(server.addr);
        let (replayed, subscribed) = subscribe(&mut back, "room", Some((&epoch, 10)));
        assert!(replayed.is_empty());
        assert_eq!(subscribed["recovered"], false, "{subscribed}");
        assert_eq!(subscribed["reason"], "epoch_changed", "{subscribed}");
        assert_eq!(subscribed["epoch"], reply["epoch"]);
        assert_eq!(subscribed["offset"], 1);
        assert_eq!(publish(&mut publisher, "after 2")["offset"], 2);
        let message = read_json(&mut back).expect("live after the new position");
        assert_eq!(message["offset"], 2, "{message}");
    }
    server.check_health();
    drop(_redis);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs redis-server (apt-get install redis-server, or WAVECORE_REDIS_URL), then --include-ignored"]
fn redis_restarted_with_append_only_persistence_loses_nothing() {
    kill_and_restart(true);
}

#[test]
#[ignore = "needs redis-server (apt-get install redis-server, or WAVECORE_REDIS_URL), then --include-ignored"]
fn redis_restarted_without_persistence_changes_the_epoch_and_says_so() {
    kill_and_restart(false);
}

#[test]
fn a_bad_url_is_refused() {
    let error = RedisChannels::new("http://nope").unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
#[ignore = "needs redis-server (apt-get install redis-server, or WAVECORE_REDIS_URL), then --include-ignored"]
fn keys_deleted_under_a_running_server_change_the_epoch_and_close_subscribers() {
    let redis = redis_server::shared("channels_redis keys deleted");
    let prefix = prefix();
    let server = redis_room_server(&redis.url(), &prefix);
    let mut subscriber = ws_connect(server.addr);
    let (_, subscribed) = subscribe(&mut subscriber, "room", None);
    let epoch = subscribed["epoch"].as_str().unwrap().to_owned();
    let mut publisher = ws_connect(server.addr);
    for k in 1..=3 {
        assert_eq!(publish(&mut publisher, "before")["offset"], k);
        assert_eq!(read_json(&mut subscriber).unwrap()["offset"], k);
    }
    // What a FLUSHALL (or an operator) does to the channel.
    delete_room_keys(&redis.url(), &prefix);
    let reply = publish(&mut publisher, "after");
    assert_eq!(reply["offset"], 1, "{reply}");
    assert_ne!(reply["epoch"], epoch.as_str());
    expect_close(&mut subscriber, 1012);
    let mut back = ws_connect(server.addr);
    let (replayed, subscribed) = subscribe(&mut back, "room", Some((&epoch, 3)));
    assert!(replayed.is_empty());
    assert_eq!(subscribed["reason"], "epoch_changed", "{subscribed}");
    assert_eq!(publish(&mut publisher, "live")["offset"], 2);
    assert_eq!(read_json(&mut back).unwrap()["offset"], 2);
    server.check_health();
}

#[test]
#[ignore = "needs redis-server (apt-get install redis-server, or WAVECORE_REDIS_URL), then --include-ignored"]
fn a_client_that_resubscribed_into_the_new_epoch_is_not_closed_for_the_old_one() {
    let redis = redis_server::shared("channels_redis resubscribed first");
    let prefix = prefix();
    let server = redis_room_server(&redis.url(), &prefix);
    let mut old = ws_connect(server.addr);
    let (_, subscribed) = subscribe(&mut old, "room", None);
    let epoch = subscribed["epoch"].as_str().unwrap().to_owned();
    let mut publisher = ws_connect(server.addr);
    assert_eq!(publish(&mut publisher, "before")["offset"], 1);
    assert_eq!(read_json(&mut old).unwrap()["offset"], 1);
    delete_room_keys(&redis.url(), &prefix);
    // This subscribe is the first to see the loss (the reader learns of it from
    // there): it is told of the new epoch, and the old one's subscribers are closed,
    // not it.
    let mut new = ws_connect(server.addr);
    let (replayed, subscribed) = subscribe(&mut new, "room", Some((&epoch, 1)));
    assert!(replayed.is_empty());
    assert_eq!(subscribed["reason"], "epoch_changed", "{subscribed}");
    let new_epoch = subscribed["epoch"].as_str().unwrap().to_owned();
    assert_ne!(new_epoch, epoch);
    expect_close(&mut old, 1012);
    let reply = publish(&mut publisher, "live");
    assert_eq!(reply["offset"], 1, "{reply}");
    let message = read_json(&mut new).expect("the new epoch's message, not a close");
    assert_eq!(message["offset"], 1, "{message}");
    assert_eq!(message["epoch"], new_epoch.as_str(), "{message}");
    server.check_health();
}

#[test]
#[ignore = "needs redis-server (apt-get install redis-server, or WAVECORE_REDIS_URL), then --include-ignored"]
fn a_channel_started_over_by_another_server_closes_this_ones_subscribers() {
    let redis = redis_server::shared("channels_redis started over elsewhere");
    let prefix = prefix();
    let a = redis_room_server(&redis.url(), &prefix);
    let b = redis_room_server(&redis.url(), &prefix);
    let mut subscriber = ws_connect(a.addr);
    let (_, subscribed) = subscribe(&mut subscriber, "room", None);
    let epoch = subscribed["epoch"].as_str().unwrap().to_owned();
    let mut publisher = ws_connect(b.addr);
    for k in 1..=3 {
        assert_eq!(publish(&mut publisher, "before")["offset"], k);
        assert_eq!(read_json(&mut subscriber).unwrap()["offset"], k);
    }
    delete_room_keys(&redis.url(), &prefix);
    // B starts the channel over and publishes past where A's subscriber was: A must
    // not hand the new epoch's offsets 4 and 5 out as the old one's.
    let mut new_epoch = String::new();
    for k in 1..=5 {
        let reply = publish(&mut publisher, "after");
        assert_eq!(reply["offset"], k, "{reply}");
        new_epoch = reply["epoch"].as_str().unwrap().to_owned();
    }
    assert_ne!(new_epoch, epoch);
    expect_close(&mut subscriber, 1012);
    let mut back = ws_connect(a.addr);
    let (replayed, subscribed) = subscribe(&mut back, "room", Some((&epoch, 3)));
    assert!(replayed.is_empty());
    assert_eq!(subscribed["reason"], "epoch_changed", "{subscribed}");
    assert_eq!(subscribed["epoch"], new_epoch.as_str(), "{subscribed}");
    assert_eq!(publish(&mut publisher, "live")["offset"], 6);
    let message = read_json(&mut back).unwrap();
    assert_eq!(message["offset"], 6, "{message}");
    assert_eq!(message["epoch"], new_epoch.as_str(), "{message}");
    a.check_health();
    b.check_health();
}

#[test]
#[ignore = "needs redis-server (apt-get install redis-server, or WAVECORE_REDIS_URL), then --include-ignored"]
fn a_replay_that_would_not_fit_the_queue_is_told_and_live_follows() {
    let redis = redis_server::shared("channels_redis too many");
    let engine = RedisChannels::new(&redis.url())
        .unwrap()
        .key_prefix(prefix());
    let server = TestServer::start(
        builder()
            .max_backpressure(4096)
            .channel_history("room", History::last(1000))
            .channel_engine(engine),
        ChannelsService::new(),
    );
    let mut publisher = ws_connect(server.addr);
    let data = "x".repeat(100);
    let mut epoch = String::new();
    for k in 1..=200 {
        let reply = publish(&mut publisher, &data);
        assert_eq!(reply["offset"], k, "{reply}");
        epoch = reply["epoch"].as_str().unwrap().to_owned();
    }
    let mut behind = ws_connect(server.addr);
    let (replayed, subscribed) = subscribe(&mut behind, "room", Some((&epoch, 0)));
    assert!(replayed.is_empty());
    assert_eq!(subscribed["reason"], "too_many", "{subscribed}");
    assert_eq!(subscribed["offset"], 200);
    // 40 missed: few enough to be read (the script refuses without reading only
    // more than 4096 / 64), too many bytes to replay.
    let mut middle = ws_connect(server.addr);
    let (replayed, subscribed) = subscribe(&mut middle, "room", Some((&epoch, 160)));
    assert!(replayed.is_empty());
    assert_eq!(subscribed["reason"], "too_many", "{subscribed}");
    let mut near = ws_connect(server.addr);
    let (replayed, subscribed) = subscribe(&mut near, "room", Some((&epoch, 180)));
    assert_eq!(subscribed["recovered"], true, "{subscribed}");
    assert_eq!(replayed.len(), 20);
    assert_eq!(publish(&mut publisher, "live")["offset"], 201);
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

/// The master (index into `ports`) holding `channel`'s keys.
fn master_of(ports: &[u16], prefix: &str, channel: &str) -> usize {
    ports
        .iter()
        .position(|port| {
            let mut con = redis::Client::open(format!("redis://127.0.0.1:{port}"))
                .unwrap()
                .get_connection()
                .unwrap();
            redis::cmd("EXISTS")
                .arg(format!("{prefix}{{{channel}}}:m"))
                .query::<bool>(&mut con)
                // Another master's slot: MOVED.
                .unwrap_or(false)
        })
        .expect("the channel's keys on some master")
}

#[test]
#[ignore = "needs redis-server (apt-get install redis-server, or WAVECORE_REDIS_URL), then --include-ignored"]
fn channels_spread_over_a_three_master_cluster_and_a_failed_master_costs_its_channels() {
    redis_server::require("channels_redis cluster");
    let dir = std::env::temp_dir().join(format!("wavecore-cluster-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ports: Vec<(u16, u16)> = (0..3)
        .map(|_| (redis_server::free_port(), redis_server::free_port()))
        .collect();
    let mut nodes: Vec<RedisServer> = ports
        .iter()
        .map(|&(port, bus)| RedisServer::start_cluster_node(port, bus, &dir))
        .collect();
    let masters: Vec<u16> = ports.iter().map(|&(port, _)| port).collect();
    redis_server::create_cluster(&masters);
    let prefix = prefix();
    let start = |url: &str| {
        TestServer::start(
            builder()
                .workers(2)
                .channel_history("*", History::last(1000))
                .channel_engine(
                    RedisChannels::cluster(url)
                        .unwrap()
                        .key_prefix(&prefix)
                        .retry_backoff(Duration::from_millis(20), Duration::from_millis(200)),
                ),
            ChannelsService::new(),
        )
    };
    let a = start(&format!("redis://127.0.0.1:{}", masters[0]));
    let b = start(&format!("redis://127.0.0.1:{}", masters[1]));
    let channels: Vec<String> = (0..30).map(|i| format!("c{i}")).collect();
    let mut subscriber = ws_connect(a.addr);
    let mut epochs = std::collections::HashMap::new();
    for channel in &channels {
        let (_, subscribed) = subscribe(&mut subscriber, channel, None);
        assert_eq!(subscribed["type"], "subscribed", "{subscribed}");
        epochs.insert(
            channel.clone(),
            subscribed["epoch"].as_str().unwrap().to_owned(),
        );
    }
    // Ten messages on every channel, published on B, delivered on A in order.
    let mut publisher = ws_connect(b.addr);
    let publish_to = |ws: &mut Ws, channel: &str, data: &str| {
        send(
            ws,
            json!({"type": "publish", "channel": channel, "data": data}),
        );
        read_json(ws).expect("an answer to publish")
    };
    for k in 1..=10 {
        for channel in &channels {
            let reply = publish_to(&mut publisher, channel, &format!("{k}"));
            assert_eq!(reply["offset"], k, "{reply}");
        }
    }
    let mut last = std::collections::HashMap::new();
    for _ in 0..channels.len() * 10 {
        let message = read_json(&mut subscriber).expect("a message");
        let channel = message["channel"].as_str().unwrap().to_owned();
        let offset = message["offset"].as_u64().unwrap();
        let before = last.insert(channel, offset).unwrap_or(0);
        assert_eq!(offset, before + 1, "{message}");
    }
    // Spread: every master holds some of the channels.
    let on: Vec<usize> = channels
        .iter()
        .map(|c| master_of(&masters, &prefix, c))
        .collect();
    for m in 0..3 {
        assert!(on.contains(&m), "no channel on master {m}: {on:?}");
    }

    // One master fails: its channels refuse publishes, the others go on.
    let failed = on[0];
    nodes[failed].kill();
    let mut expected = 0;
    for (channel, &m) in channels.iter().zip(&on) {
        let reply = publish_to(&mut publisher, channel, "during");
        if m == failed {
            assert_eq!(
                reply["error"], "the channel engine is unavailable",
                "{reply}"
            );
        } else {
            assert_eq!(reply["offset"], 11, "{reply}");
            expected += 1;
        }
    }
    for _ in 0..expected {
        let message = read_json(&mut subscriber).expect("the others' messages");
        assert_eq!(message["offset"], 11, "{message}");
        assert_ne!(
            on[channels
                .iter()
                .position(|c| c == &message["channel"])
                .unwrap()],
            failed
        );
    }

    // Back without its data: its channels have new epochs; the subscriber is closed
    // (1012) rather than given messages it cannot place, and told when it comes back.
    let (port, bus) = ports[failed];
    nodes[failed] = RedisServer::start_cluster_node(port, bus, &dir);
    for _ in 0..500 {
        if masters.iter().all(|&p| redis_server::cluster_ok(p)) {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let lost = &channels[0];
    let mut reply = Value::Null;
    for _ in 0..1000 {
        reply = publish_to(&mut publisher, lost, "after");
        if reply["type"] == "published" {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(reply["offset"], 1, "{reply}");
    assert_ne!(reply["epoch"], epochs[lost].as_str());
    // Nothing else was published since: the next thing is the close.
    expect_close(&mut subscriber, 1012);
    let mut back = ws_connect(a.addr);
    for (channel, &m) in channels.iter().zip(&on) {
        let since = if m == failed { 10 } else { 11 };
        let (replayed, subscribed) = subscribe(&mut back, channel, Some((&epochs[channel], since)));
        assert!(replayed.is_empty());
        if m == failed {
            assert_eq!(subscribed["reason"], "epoch_changed", "{subscribed}");
        } else {
            assert_eq!(subscribed["recovered"], true, "{subscribed}");
        }
    }
    a.check_health();
    b.check_health();
    drop(nodes);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs redis-server (apt-get install redis-server, or WAVECORE_REDIS_URL), then --include-ignored"]
fn a_frozen_redis_is_noticed_within_io_timeout_and_publishes_resume_by_themselves() {
    redis_server::require("channels_redis frozen");
    let redis = RedisServer::start();
    let engine = RedisChannels::new(&redis.url())
        .unwrap()
        .key_prefix(prefix())
        .io_timeout(Duration::from_millis(300))
        .retry_backoff(Duration::from_millis(20), Duration::from_millis(100));
    let server = TestServer::start(
        builder()
            .channel_history("room", History::last(100))
            .channel_engine(engine),
        ChannelsService::new(),
    );
    let mut subscriber = ws_connect(server.addr);
    let (_, subscribed) = subscribe(&mut subscriber, "room", None);
    let epoch = subscribed["epoch"].as_str().unwrap().to_owned();
    let mut publisher = ws_connect(server.addr);
    assert_eq!(publish(&mut publisher, "before")["offset"], 1);

    redis.pause();
    // The first publish waits out io_timeout, then it and the next ones are refused
    // with the clear answer; the server answers every connection meanwhile.
    for _ in 0..3 {
        let reply = publish(&mut publisher, "frozen");
        assert_eq!(
            reply["error"], "the channel engine is unavailable",
            "{reply}"
        );
    }
    let mut newcomer = ws_connect(server.addr);
    send(
        &mut newcomer,
        json!({"type": "unsubscribe", "channel": "room"}),
    );
    assert_eq!(read_json(&mut newcomer).unwrap()["type"], "unsubscribed");
    redis.resume();

    let reply = publish_until_accepted(&mut publisher, "after");
    assert_eq!(reply["epoch"], epoch.as_str(), "{reply}");
    // The subscriber stayed and gets every stored message once, in order, "after"
    // last (a refused publish may have been stored: Redis ran it once thawed).
    let mut offset = 0;
    loop {
        let message = read_json(&mut subscriber).expect("the subscriber stayed");
        offset += 1;
        assert_eq!(message["offset"], offset, "a gap or a duplicate: {message}");
        if message["data"] == "after" {
            assert_eq!(reply["offset"], offset);
            break;
        }
    }
    server.check_health();
}

#[test]
#[ignore = "needs redis-server (apt-get install redis-server, or WAVECORE_REDIS_URL), then --include-ignored"]
fn first_subscribers_on_several_reactors_at_once_miss_nothing_while_publishing_goes_on() {
    let redis = redis_server::shared("channels_redis first subscribers");
    let prefix = prefix();
    let engine = RedisChannels::new(&redis.url())
        .unwrap()
        .key_prefix(&prefix);
    let server = TestServer::start(
        builder()
            .workers(4)
            .channel_history("room", History::last(10_000))
            .channel_engine(engine),
        ChannelsService::new(),
    );
    const UNTIL: u64 = 600;
    let addr = server.addr;
    let publisher = thread::spawn(move || {
        let mut ws = ws_connect(addr);
        for k in 0..UNTIL {
            let reply = publish(&mut ws, &format!("0:{k}"));
            assert_eq!(reply["type"], "published", "{reply}");
        }
    });
    // Each subscribes while the publisher runs, the first on its reactor (the reader
    // does not read the channel yet), and must get every later message.
    let subscribers: Vec<_> = (0..8)
        .map(|i| {
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(i * 3));
                let mut ws = ws_connect(addr);
                let (_, subscribed) = subscribe(&mut ws, "room", None);
                let mut offset = subscribed["offset"].as_u64().unwrap();
                while offset < UNTIL {
                    let message = read_json(&mut ws).expect("every later message");
                    offset += 1;
                    assert_eq!(message["offset"], offset, "a gap or a duplicate: {message}");
                }
            })
        })
        .collect();
    for subscriber in subscribers {
        subscriber.join().expect("subscriber");
    }
    publisher.join().expect("publisher");
    server.check_health();
}
