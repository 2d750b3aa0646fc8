//! Channels on Redis Streams across two servers, beside the Redis Pub/Sub bridge in
//! the same run (docs/benchmarks.md, "Channels across servers"). Two wavecore servers
//! in this process share one Redis, both as the channel engine (`RedisChannels`) and
//! as the topic bridge (`RedisBridge`); a publisher connected to B publishes, a
//! subscriber connected to A receives.
//!
//! usage: channels-redis REDIS_URL [--rate 1000] [--seconds 5] [--burst 20000] [--cluster]
//!
//! With `--cluster`, REDIS_URL is a node of a Redis Cluster (`RedisChannels::cluster`)
//! and the memory step is left out (its numbers are per master, as with one Redis).
//!
//! 1. Latency, publish to delivery, one subscriber, `--rate` msgs/s for `--seconds`,
//!    alternately on the channel and on the topic (two rounds each): p50, p99, p99.9.
//! 2. Throughput: `--burst` messages from four publishers as fast as the answers
//!    come (each publisher keeps 100 unanswered), to one channel and spread over
//!    1,000 channels, until the subscriber on A has them all.
//! 3. Memory Redis spends (`INFO memory`'s used_memory, `MEMORY USAGE`) per channel
//!    and per history message (64-byte data).
//!
//! Messages are `C<channel>:<micros>` (channel) or `T<micros>` (topic); times are
//! micros since the process started, read by the subscriber in the same process.

use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use wavecore::bridge::RedisBridge;
use wavecore::channels::{History, RedisChannels};
use wavecore::client::{Client, ClientMessage};
use wavecore::{Conn, Handler, Message, Request, Server, Upgrade};

fn micros() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// `/sub/N`: subscribes to the topic `lat` and to the channels `b0`..`b{N-1}`;
/// `/pub`: publishes `C<i>:...` to channel `b<i>`, `T...` to the topic `lat`.
enum Bench {
    Subscriber(usize),
    Publisher,
}

impl Handler for Bench {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        if let Bench::Subscriber(n) = self {
            conn.subscribe("lat");
            for i in 0..*n {
                if let Err(e) = conn.subscribe_channel(&format!("b{i}"), None) {
                    eprintln!("subscribe b{i}: {e}");
                }
            }
            conn.send_text("ready");
        }
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        let Message::Text(text) = message else { return };
        if let Some(rest) = text.strip_prefix('C') {
            let channel = format!("b{}", rest.split(':').next().unwrap_or("0"));
            let handle = conn.handle();
            let answer = move |result: Result<_, wavecore::channels::ChannelError>| {
                handle.send_text(if result.is_ok() { "ok" } else { "refused" });
            };
            if let Some(result) = conn.publish_channel_with(&channel, text, answer) {
                conn.send_text(if result.is_ok() { "ok" } else { "refused" });
            }
        } else if text.starts_with('T') {
            conn.publish("lat", message);
            conn.send_text("ok");
        }
    }
}

fn server(url: &str, cluster: bool) -> Server {
    let engine = if cluster {
        RedisChannels::cluster(url)
    } else {
        RedisChannels::new(url)
    };
    Server::builder()
        .bind("127.0.0.1:0")
        .workers(1)
        .channel_history("b*", History::last(1000))
        .channel_engine(engine.expect("Redis URL"))
        .bridge(RedisBridge::new(url).expect("Redis URL"))
        .start(|request: &Request<'_>| {
            Upgrade::accept(match request.path().strip_prefix("/sub/") {
                Some(n) => Bench::Subscriber(n.parse().unwrap_or(1)),
                None => Bench::Publisher,
            })
        })
        .expect("server starts")
}

/// The send time in a delivered frame: after the last ':' (channel frames are JSON,
/// `..."data":"C0:123"}`), or after the `T`.
fn sent_at(text: &str) -> Option<u64> {
    if let Some(rest) = text.strip_prefix('T') {
        return rest.parse().ok();
    }
    let data = &text[text.find("\"data\":\"")? + 8..];
    let end = data.find('"')?;
    data[..end].rsplit(':').next()?.parse().ok()
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn subscriber(addr: std::net::SocketAddr, channels: usize) -> Client {
    let mut client = Client::connect(&format!("ws://{addr}/sub/{channels}")).expect("connect");
    loop {
        match client.recv().expect("ready") {
            ClientMessage::Text(text) if text == "ready" => return client,
            _ => continue,
        }
    }
}

/// One latency round: `kind` 'C' or 'T' at `rate` for `seconds`.
fn latency(a: std::net::SocketAddr, b: std::net::SocketAddr, kind: char, rate: u64, seconds: u64) {
    let mut sub = subscriber(a, 1);
    // Let the bridge's subscriber follow the new interest.
    thread::sleep(Duration::from_millis(200));
    let total = rate * seconds;
    let publisher = thread::spawn(move || {
        let mut client = Client::connect(&format!("ws://{b}/pub")).expect("connect");
        let start = Instant::now();
        for i in 0..total {
            let due = start + Duration::from_micros(i * 1_000_000 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
            let text = match kind {
                'C' => format!("C0:{}", micros()),
                _ => format!("T{}", micros()),
            };
            client.send_text(&text).expect("publish");
        }
        let mut refused = 0;
        for _ in 0..total {
            if let Ok(ClientMessage::Text(answer)) = client.recv()
                && answer != "ok"
            {
                refused += 1;
            }
        }
        refused
    });
    let mut lat = Vec::with_capacity(total as usize);
    while (lat.len() as u64) < total {
        match sub.recv() {
            Ok(ClientMessage::Text(text)) => {
                let now = micros();
                let want = if kind == 'C' { '{' } else { 'T' };
                if text.starts_with(want)
                    && let Some(at) = sent_at(&text)
                {
                    lat.push(now.saturating_sub(at));
                }
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("subscriber: {e}");
                break;
            }
        }
    }
    let refused = publisher.join().expect("publisher");
    lat.sort_unstable();
    println!(
        "{:<8} {rate} msgs/s x {seconds} s: delivered {} refused {refused}  p50 {} us  p99 {} us  p99.9 {} us",
        if kind == 'C' { "channel" } else { "topic" },
        lat.len(),
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        percentile(&lat, 0.999),
    );
}

/// Throughput: `burst` messages over `channels` channels, four publishers.
fn throughput(a: std::net::SocketAddr, b: std::net::SocketAddr, channels: usize, burst: u64) {
    let mut sub = subscriber(a, channels);
    let start = Instant::now();
    let publishers: Vec<_> = (0..4u64)
        .map(|p| {
            thread::spawn(move || {
                let mut client = Client::connect(&format!("ws://{b}/pub")).expect("connect");
                let mine = burst / 4;
                let (mut sent, mut answered) = (0, 0);
                while answered < mine {
                    while sent < mine && sent - answered < 100 {
                        let channel = (p * mine + sent) as usize % channels;
                        client
                            .send_text(&format!("C{channel}:{}", micros()))
                            .expect("send");
                        sent += 1;
                    }
                    if let Ok(ClientMessage::Text(_)) = client.recv() {
                        answered += 1;
                    }
                }
            })
        })
        .collect();
    let mut got = 0;
    while got < burst / 4 * 4 {
        match sub.recv() {
            Ok(ClientMessage::Text(text)) if text.starts_with('{') => got += 1,
            Ok(_) => {}
            Err(e) => {
                eprintln!("subscriber: {e}");
                break;
            }
        }
    }
    let elapsed = start.elapsed();
    for p in publishers {
        p.join().expect("publisher");
    }
    println!(
        "throughput, {channels} channel(s): {got} messages delivered in {:.2} s: {:.0} msgs/s",
        elapsed.as_secs_f64(),
        got as f64 / elapsed.as_secs_f64()
    );
}

fn redis_cli(url: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .arg("-u")
        .arg(url)
        .args(args)
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn used_memory(url: &str) -> i64 {
    redis_cli(url, &["INFO", "memory"])
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Memory Redis spends: 1,000 channels of one message, then 1,000 messages more on
/// one channel (64-byte data), through `ServerHandle::publish_channel`.
fn memory(url: &str, handle: &wavecore::ServerHandle) {
    let data = "x".repeat(64);
    let before = used_memory(url);
    for i in 0..1000 {
        handle
            .publish_channel(&format!("bm{i}"), &data)
            .expect("publish");
    }
    let channels = used_memory(url);
    for _ in 0..1000 {
        handle.publish_channel("bm0", &data).expect("publish");
    }
    let messages = used_memory(url);
    println!(
        "memory: {} bytes per channel with one 64-byte message (used_memory), {} bytes per \
         further history message",
        (channels - before) / 1000,
        (messages - channels) / 1000
    );
    println!(
        "MEMORY USAGE of channel bm1: stream {} bytes, hash {} bytes; bm0 (1,001 messages, \
         history 1,000): stream {} bytes",
        redis_cli(url, &["MEMORY", "USAGE", "wavecore:ch:{bm1}:s"]),
        redis_cli(url, &["MEMORY", "USAGE", "wavecore:ch:{bm1}:m"]),
        redis_cli(url, &["MEMORY", "USAGE", "wavecore:ch:{bm0}:s"]),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(url) = args.first().cloned() else {
        eprintln!("usage: channels-redis REDIS_URL [--rate 1000] [--seconds 5] [--burst 20000]");
        std::process::exit(2);
    };
    let value = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (rate, seconds, burst) = (
        value("--rate", 1000),
        value("--seconds", 5),
        value("--burst", 20_000),
    );
    let cluster = args.iter().any(|a| a == "--cluster");
    micros();
    if !cluster {
        redis_cli(&url, &["FLUSHALL"]);
    }
    let (a, b) = (server(&url, cluster), server(&url, cluster));
    let (a_addr, b_addr) = (a.local_addr(), b.local_addr());
    for _ in 0..2 {
        latency(a_addr, b_addr, 'C', rate, seconds);
        latency(a_addr, b_addr, 'T', rate, seconds);
    }
    throughput(a_addr, b_addr, 1, burst);
    throughput(a_addr, b_addr, 1000, burst);
    if !cluster {
        redis_cli(&url, &["FLUSHALL"]);
        memory(&url, &a.handle());
    }
    a.handle().shutdown();
    b.handle().shutdown();
    let _ = a.join();
    let _ = b.join();
}
