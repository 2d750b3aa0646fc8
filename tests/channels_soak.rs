//! A soak of channels on Redis Streams under the loads users bring: two servers on one
//! Redis, four publishers (two on each), eight subscribers that move between the
//! servers every few hundred messages, some of them slow readers that stop for a while,
//! and, halfway, the channel's keys deleted under everyone (what a `FLUSHALL`, an
//! operator or an eviction does: the history is lost and a new epoch begins).
//!
//! What must hold, for every subscriber, all the time: within an epoch, offsets follow
//! each other with no gap and no duplicate (across its moves too), each publisher's
//! messages come in the order published, and no message of another epoch reaches it;
//! a lost history is announced (closed with 1012, or told `epoch_changed` on
//! resubscribing), never silent. At the end, every subscriber reaches the channel's last
//! position.
//!
//! It runs for `WAVECORE_SOAK_SECS` seconds (default 4, what CI runs); for minutes:
//! `WAVECORE_SOAK_SECS=300 cargo test --test channels_soak -- --include-ignored
//! --nocapture`. `#[ignore]`d like tests/channels_redis.rs (it needs `redis-server`).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::channels::{Ws, delete_room_keys, read_json, redis_room_server, send, subscribe};
use common::redis_server;
use common::ws_connect;
use serde_json::{Value, json};

const PUBLISHERS: usize = 4;
const SUBSCRIBERS: usize = 8;
const BATCH: u64 = 25;

/// Messages published so far, all publishers together (for a stall's diagnosis).
static PUBLISHED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A small deterministic generator (xorshift64), one per thread.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One subscriber's view: its position, and each publisher's next message within the
/// epoch (`None`: not seen yet in this epoch).
struct View {
    epoch: String,
    offset: u64,
    next_of: [Option<u64>; PUBLISHERS],
    taken: u64,
    moves: u64,
    recovered: u64,
    lost_closes: u64,
    epoch_changes: u64,
    too_many: u64,
    backpressure_closes: u64,
}

impl View {
    /// Takes a live or replayed message; panics on a gap, a duplicate, another epoch's
    /// message or a publisher's messages out of order.
    fn take(&mut self, who: usize, message: &Value) {
        assert_eq!(message["type"], "message", "subscriber {who}: {message}");
        assert_eq!(
            message["epoch"].as_str().unwrap(),
            self.epoch,
            "subscriber {who}: a message of another epoch: {message}"
        );
        let offset = message["offset"].as_u64().unwrap();
        assert_eq!(
            offset,
            self.offset + 1,
            "subscriber {who}: a gap or a duplicate: {message}"
        );
        self.offset = offset;
        let (publisher, n) = message["data"].as_str().unwrap().split_once(':').unwrap();
        let (publisher, n): (usize, u64) = (publisher.parse().unwrap(), n.parse().unwrap());
        if let Some(next) = self.next_of[publisher] {
            assert_eq!(
                n, next,
                "subscriber {who}: publisher {publisher} out of order: {message}"
            );
        }
        self.next_of[publisher] = Some(n + 1);
        self.taken += 1;
    }

    /// Connects to `addr` and subscribes from the position (or from now, the first
    /// time); a changed epoch starts the view over at the new position.
    fn join(&mut self, who: usize, addr: std::net::SocketAddr, first: bool) -> Ws {
        let mut ws = ws_connect(addr);
        let since = (!first).then(|| (self.epoch.clone(), self.offset));
        let (replayed, subscribed) = subscribe(
            &mut ws,
            "room",
            since.as_ref().map(|(e, o)| (e.as_str(), *o)),
        );
        assert_eq!(
            subscribed["type"], "subscribed",
            "subscriber {who}: {subscribed}"
        );
        if first {
            assert!(replayed.is_empty());
            self.epoch = subscribed["epoch"].as_str().unwrap().to_owned();
            self.offset = subscribed["offset"].as_u64().unwrap();
            return ws;
        }
        if subscribed["recovered"] == true {
            for message in &replayed {
                self.take(who, message);
            }
            assert_eq!(subscribed["offset"], self.offset, "subscriber {who}");
            self.recovered += 1;
        } else if subscribed["reason"] == "too_many" {
            // Too far behind to be replayed within `max_backpressure`: told so, it
            // goes on from the channel's current position.
            assert!(replayed.is_empty());
            assert_eq!(subscribed["epoch"], self.epoch.as_str());
            self.offset = subscribed["offset"].as_u64().unwrap();
            self.next_of = [None; PUBLISHERS];
            self.too_many += 1;
        } else {
            // The only other way to lose messages is to be told the epoch changed.
            assert_eq!(
                subscribed["reason"], "epoch_changed",
                "subscriber {who}: {subscribed}"
            );
            assert!(replayed.is_empty());
            assert_ne!(subscribed["epoch"], self.epoch.as_str());
            self.epoch = subscribed["epoch"].as_str().unwrap().to_owned();
            self.offset = subscribed["offset"].as_u64().unwrap();
            self.next_of = [None; PUBLISHERS];
            self.epoch_changes += 1;
        }
        ws
    }
}

/// Reads that give up after 100 ms, so that a subscriber notices the end at once.
fn short_reads(ws: &Ws) {
    ws.get_ref()
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
}

fn soak_secs() -> u64 {
    std::env::var("WAVECORE_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4)
}

#[test]
#[ignore = "needs redis-server (apt-get install redis-server, or WAVECORE_REDIS_URL), then --include-ignored"]
fn two_servers_four_publishers_moving_and_slow_subscribers_and_a_lost_history() {
    let redis = redis_server::shared("channels_soak");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let prefix = format!("wcsoak:{}:{nanos}:", std::process::id());
    let (a, b) = (
        redis_room_server(&redis.url(), &prefix),
        redis_room_server(&redis.url(), &prefix),
    );
    let addrs = [a.addr, b.addr];
    let secs = soak_secs();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let publishing = Arc::new(AtomicBool::new(true));

    let subscribers: Vec<_> = (0..SUBSCRIBERS)
        .map(|who| {
            let publishing = publishing.clone();
            thread::spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((who as u64 + 1) * 0x1000_0001));
                let slow = who % 2 == 1;
                let mut view = View {
                    epoch: String::new(),
                    offset: 0,
                    next_of: [None; PUBLISHERS],
                    taken: 0,
                    moves: 0,
                    recovered: 0,
                    lost_closes: 0,
                    epoch_changes: 0,
                    too_many: 0,
                    backpressure_closes: 0,
                };
                let mut at = who % 2;
                let mut ws = view.join(who, addrs[at], true);
                short_reads(&ws);
                let mut until_move = 100 + rng.below(900);
                let mut progress = Instant::now();
                while publishing.load(Ordering::Acquire) {
                    if until_move == 0 {
                        // A move: to the other server, from the position.
                        drop(ws);
                        at = 1 - at;
                        ws = view.join(who, addrs[at], false);
                        short_reads(&ws);
                        view.moves += 1;
                        until_move = 100 + rng.below(900);
                        continue;
                    }
                    if slow && rng.below(200) == 0 {
                        // A slow reader: stops reading for a while.
                        thread::sleep(Duration::from_millis(50 + rng.below(250)));
                    }
                    match ws.read() {
                        Ok(tungstenite::Message::Text(text)) => {
                            let message: Value = serde_json::from_str(&text).unwrap();
                            view.take(who, &message);
                            until_move -= 1;
                            progress = Instant::now();
                        }
                        Ok(tungstenite::Message::Close(frame)) => {
                            let code = frame.map(|f| u16::from(f.code));
                            match code {
                                Some(1012) => view.lost_closes += 1,
                                Some(1008) => view.backpressure_closes += 1,
                                other => panic!("subscriber {who}: closed with {other:?}"),
                            }
                            ws = view.join(who, addrs[at], false);
                            short_reads(&ws);
                        }
                        Ok(_) => {}
                        Err(tungstenite::Error::Io(e))
                            if e.kind() == std::io::ErrorKind::WouldBlock
                                || e.kind() == std::io::ErrorKind::TimedOut =>
                        {
                            // Nothing for a while: fine once publishing stopped, a stall
                            // if nothing came for IO_TIMEOUT while it goes on.
                            if publishing.load(Ordering::Acquire)
                                && progress.elapsed() >= common::IO_TIMEOUT
                            {
                                let port = ws.get_ref().local_addr().unwrap().port();
                                let ss = std::process::Command::new("ss")
                                    .args(["-tni"])
                                    .output()
                                    .unwrap();
                                let ss = String::from_utf8_lossy(&ss.stdout);
                                let lines: Vec<&str> = ss
                                    .lines()
                                    .collect::<Vec<_>>()
                                    .windows(2)
                                    .filter(|w| w[0].contains(&format!(":{port} ")))
                                    .flat_map(|w| [w[0], w[1]])
                                    .collect();
                                eprintln!(
                                    "stalled: subscriber {who} (port {port}), {} published; its socket:\n{}",
                                    PUBLISHED.load(Ordering::Relaxed),
                                    lines.join("\n")
                                );
                            }
                            assert!(
                                !publishing.load(Ordering::Acquire)
                                    || progress.elapsed() < common::IO_TIMEOUT,
                                "subscriber {who}: nothing for {:?} at offset {} of {}",
                                progress.elapsed(),
                                view.offset,
                                view.epoch
                            );
                        }
                        Err(e) => panic!("subscriber {who}: {e}"),
                    }
                }
                (view, ws)
            })
        })
        .collect();

    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|i| {
            let addr = addrs[i % 2];
            thread::spawn(move || {
                let mut ws = ws_connect(addr);
                let mut n = 0;
                while Instant::now() < deadline {
                    for k in n..n + BATCH {
                        send(
                            &mut ws,
                            json!({"type": "publish", "channel": "room", "data": format!("{i}:{k}")}),
                        );
                    }
                    for _ in 0..BATCH {
                        let reply = read_json(&mut ws).expect("an answer to publish");
                        assert_eq!(reply["type"], "published", "publisher {i}: {reply}");
                    }
                    n += BATCH;
                    PUBLISHED.fetch_add(BATCH, Ordering::Relaxed);
                }
                n
            })
        })
        .collect();

    // Halfway: the channel's keys deleted under everyone.
    thread::sleep(Duration::from_millis(secs * 500));
    delete_room_keys(&redis.url(), &prefix);

    let published: u64 = publishers.into_iter().map(|p| p.join().unwrap()).sum();
    let last = a.handle.channel_position("room").expect("the channel");
    assert_eq!(b.handle.channel_position("room"), Some(last));
    let last_epoch = wavecore::channels::epoch_text(last.epoch);
    // The subscribers stop moving; each reads to the channel's end below.
    publishing.store(false, Ordering::Release);
    let mut totals = (0, 0, 0, 0, 0, 0, 0);
    for (who, subscriber) in subscribers.into_iter().enumerate() {
        let (mut view, mut ws) = subscriber.join().expect("a subscriber failed");
        ws.get_ref()
            .set_read_timeout(Some(common::IO_TIMEOUT))
            .unwrap();
        // What it has not read yet is on its way: read to the channel's end.
        while view.epoch != last_epoch || view.offset < last.offset {
            match read_json(&mut ws) {
                Some(message) => view.take(who, &message),
                None => ws = view.join(who, addrs[who % 2], false),
            }
        }
        assert_eq!(view.offset, last.offset, "subscriber {who}");
        totals.0 += view.taken;
        totals.1 += view.moves;
        totals.2 += view.recovered;
        totals.3 += view.lost_closes;
        totals.4 += view.epoch_changes;
        totals.5 += view.backpressure_closes;
        totals.6 += view.too_many;
    }
    eprintln!(
        "channels soak, {secs} s: {published} published, {} taken by {SUBSCRIBERS} subscribers, \
         {} moves ({} recovered), lost history: {} closed with 1012, {} told epoch_changed; \
         {} closed with 1008, {} too far behind to replay (too_many)",
        totals.0, totals.1, totals.2, totals.3, totals.4, totals.5, totals.6
    );
    // The deleted history was announced (each subscriber's own view was checked
    // above: none went on in the old epoch unannounced).
    assert!(totals.3 + totals.4 > 0, "the lost history went unnoticed");
    assert!(totals.2 > 0, "no move recovered: recovery was not tested");
    a.check_health();
    b.check_health();
}
