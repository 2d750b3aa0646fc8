//! Channels against plain topics in one process and one run (docs/benchmarks.md,
//! "Channels"): a wavecore server, `--subscribers` connections each subscribed to
//! the topic `t` and the channel `c` (with history), and `--publishers` connections
//! publishing at a fixed rate, alternately to the topic and to the channel, in rounds.
//! Reports, per round, deliveries per second and the server's CPU per delivery (the
//! reactor threads' user+system time from /proc), then the memory a history message
//! and a channel cost (resident set before and after).
//!
//! usage: channels-load [--subscribers 10000] [--publishers 4] [--rate 25]
//!                      [--seconds 5] [--rounds 3] [--workers 1]
//!
//! The topic's messages are padded to the length of the channel's frames (which carry
//! the channel, epoch and offset), so both deliver the same bytes. Each delivery is
//! counted by parsing the frames the subscribers read.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use mio::net::TcpStream as MioStream;
use mio::{Events, Interest, Poll, Token};
use wavecore::channels::{History, Position};
use wavecore::{Conn, Handler, Message, Request, Server, Upgrade};

enum Bench {
    /// `/sub`: subscribes to the topic `t` and the channel `c`.
    Subscriber,
    /// `/pub`: publishes what it sends (`T...` to the topic, `C...` to the channel).
    Publisher,
    /// `/rec` or `/rec/EPOCH/OFFSET`: subscribes to the channel `rec`, from the
    /// position if given.
    Recovering(Option<Position>),
}

impl Bench {
    fn of(path: &str) -> Self {
        match path {
            "/sub" => Bench::Subscriber,
            "/rec" => Bench::Recovering(None),
            _ => match path.strip_prefix("/rec/").and_then(|p| p.split_once('/')) {
                Some((epoch, offset)) => Bench::Recovering(Some(Position {
                    epoch: u64::from_str_radix(epoch, 16).unwrap_or(0),
                    offset: offset.parse().unwrap_or(0),
                })),
                None => Bench::Publisher,
            },
        }
    }
}

impl Handler for Bench {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        match self {
            Bench::Subscriber => {
                conn.subscribe("t");
                let _ = conn.subscribe_channel("c", None);
            }
            Bench::Recovering(since) => {
                let _ = conn.subscribe_channel("rec", *since);
            }
            Bench::Publisher => {}
        }
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        let Message::Text(text) = message else { return };
        match text.as_bytes().first() {
            Some(b'T') => {
                conn.publish("t", message);
            }
            Some(b'C') => {
                let _ = conn.publish_channel("c", text);
            }
            _ => {}
        }
    }
}

struct Options {
    subscribers: usize,
    publishers: usize,
    rate: u64,
    seconds: u64,
    rounds: usize,
    workers: usize,
}

fn options() -> Options {
    let mut o = Options {
        subscribers: 10_000,
        publishers: 4,
        rate: 25,
        seconds: 5,
        rounds: 3,
        workers: 1,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).and_then(|v| v.parse::<u64>().ok()).unwrap_or_else(|| {
            eprintln!("usage: channels-load [--subscribers N] [--publishers N] [--rate N] [--seconds N] [--rounds N] [--workers N]");
            std::process::exit(2)
        });
        match pair[0].as_str() {
            "--subscribers" => o.subscribers = value as usize,
            "--publishers" => o.publishers = value as usize,
            "--rate" => o.rate = value,
            "--seconds" => o.seconds = value,
            "--rounds" => o.rounds = value as usize,
            "--workers" => o.workers = value as usize,
            other => {
                eprintln!("unknown option {other}");
                std::process::exit(2)
            }
        }
    }
    o
}

/// A blocking client upgrade to `path`.
fn upgrade(addr: SocketAddr, path: &str) -> io::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte)?;
        head.push(byte[0]);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        return Err(io::Error::other("upgrade refused"));
    }
    Ok(stream)
}

/// A masked text frame (mask key 0: the payload stays as it is).
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x81];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(payload);
    out
}

/// Counts the frames in a subscriber's byte stream.
#[derive(Default)]
struct Counter {
    header: Vec<u8>,
    skip: usize,
}

impl Counter {
    fn feed(&mut self, mut bytes: &[u8]) -> u64 {
        let mut frames = 0;
        loop {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                if self.skip > 0 {
                    return frames;
                }
            }
            if bytes.is_empty() {
                return frames;
            }
            // Collect a header (2, 4 or 10 bytes: server frames are unmasked).
            let need = |h: &[u8]| match h.get(1).map(|b| b & 0x7f) {
                None => 2,
                Some(126) => 4,
                Some(127) => 10,
                Some(_) => 2,
            };
            while self.header.len() < need(&self.header) {
                let Some((&b, rest)) = bytes.split_first() else {
                    return frames;
                };
                self.header.push(b);
                bytes = rest;
            }
            let h = &self.header;
            self.skip = match h[1] & 0x7f {
                126 => u16::from_be_bytes([h[2], h[3]]) as usize,
                127 => u64::from_be_bytes(h[2..10].try_into().unwrap()) as usize,
                n => n as usize,
            };
            self.header.clear();
            frames += 1;
        }
    }
}

/// The user+system clock ticks of the reactor threads of process `pid` ("self").
fn reactor_cpu_ticks(pid: &str) -> u64 {
    let mut total = 0;
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if !comm.starts_with("wavecore-reac") {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        // Fields after the command (which ends with ')'): utime is the 12th, stime the 13th.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let tick = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        total += tick(11) + tick(12);
    }
    total
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// The server every measurement runs against.
fn server(o: &Options) -> io::Result<Server> {
    Server::builder()
        .bind("127.0.0.1:0")
        .workers(o.workers)
        .max_connections(o.subscribers + o.publishers + 3000)
        .channel_history("c", History::last(1000))
        .channel_history("mem:history", History::last(100_000))
        .channel_history("rec", History::last(1000))
        .max_channels(1_000_000)
        // The subscribers never answer pings: no idle closes during a long run.
        .ping_interval(None)
        .start(|request: &Request<'_>| Upgrade::accept(Bench::of(request.path())))
}

/// Set in the server process: the subscribers' sockets and the server's do not fit
/// the open-files limit of one process.
const SERVE: &str = "CHANNELS_LOAD_SERVE";

fn main() -> io::Result<()> {
    let o = options();
    raise_open_files(o.subscribers as u64 + 1000);
    if std::env::var_os(SERVE).is_some() {
        // The server process: says its port, serves until its stdin closes.
        let server = server(&o)?;
        println!("port {}", server.handle().local_addr().port());
        io::stdout().flush()?;
        let _ = io::stdin().read_to_end(&mut Vec::new());
        server.handle().shutdown();
        let _ = server.join();
        return Ok(());
    }
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(std::env::args().skip(1))
        .env(SERVE, "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    io::BufRead::read_line(
        &mut io::BufReader::new(child.stdout.take().expect("piped")),
        &mut line,
    )?;
    let port: u16 = line
        .trim()
        .strip_prefix("port ")
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| io::Error::other(format!("server process said {line:?}")))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let server_pid = child.id().to_string();

    // Subscribers, read by one client thread through mio.
    let delivered = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut poll = Poll::new()?;
    let mut sockets = HashMap::new();
    // Upgraded by 8 threads at once (one after the other takes a minute on a busy
    // machine).
    let streams: Vec<TcpStream> = {
        let per = o.subscribers.div_ceil(8);
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let n = per.min(o.subscribers.saturating_sub(t * per));
                thread::spawn(move || {
                    (0..n)
                        .map(|_| upgrade(addr, "/sub"))
                        .collect::<io::Result<Vec<_>>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(o.subscribers);
        for thread in threads {
            all.extend(
                thread
                    .join()
                    .map_err(|_| io::Error::other("upgrade thread"))??,
            );
        }
        all
    };
    for (i, stream) in streams.into_iter().enumerate() {
        stream.set_nonblocking(true)?;
        let mut stream = MioStream::from_std(stream);
        poll.registry()
            .register(&mut stream, Token(i), Interest::READABLE)?;
        sockets.insert(i, (stream, Counter::default()));
    }
    let reader = {
        let (delivered, stop) = (delivered.clone(), stop.clone());
        thread::spawn(move || {
            let mut events = Events::with_capacity(1024);
            let mut buf = vec![0u8; 64 << 10];
            while !stop.load(Ordering::Relaxed) {
                let _ = poll.poll(&mut events, Some(Duration::from_millis(50)));
                for event in &events {
                    let Some((stream, counter)) = sockets.get_mut(&event.token().0) else {
                        continue;
                    };
                    loop {
                        match stream.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => {
                                delivered.fetch_add(counter.feed(&buf[..n]), Ordering::Relaxed);
                            }
                            Err(_) => break,
                        }
                    }
                }
            }
        })
    };
    let publishers: Vec<TcpStream> = (0..o.publishers)
        .map(|_| upgrade(addr, "/pub"))
        .collect::<io::Result<_>>()?;
    // The channel's frame for a 32-byte payload, to pad the topic's to the same length.
    let data = "x".repeat(32);
    let channel_payload = format!("C{data}");
    let sample = format!(
        "{{\"type\":\"message\",\"channel\":\"c\",\"epoch\":\"0000000000000000\",\"offset\":100000,\"data\":\"{channel_payload}\"}}"
    );
    let topic_payload = format!("T{}", "x".repeat(sample.len() - 1));
    println!(
        "# {} subscribers, {} publishers x {} msg/s, {} s per round, {} worker(s); frames: topic {} B, channel {} B",
        o.subscribers,
        o.publishers,
        o.rate,
        o.seconds,
        o.workers,
        topic_payload.len(),
        sample.len()
    );
    println!("| round | kind | deliveries/s | server CPU us/delivery |");
    println!("| --- | --- | --- | --- |");
    let ticks_per_second = 100.0; // USER_HZ on Linux
    let mut publishers = publishers;
    let mut results: HashMap<&str, Vec<(f64, f64)>> = HashMap::new();
    for round in 0..o.rounds {
        for (kind, payload) in [("topic", &topic_payload), ("channel", &channel_payload)] {
            let bytes = frame(payload.as_bytes());
            let run = |publishers: &mut Vec<TcpStream>, seconds: f64| -> io::Result<()> {
                let tick = Duration::from_millis(10);
                let per_tick = (o.rate as f64 / 100.0).max(0.0);
                let start = Instant::now();
                let mut owed = 0.0;
                let mut next = start;
                while start.elapsed().as_secs_f64() < seconds {
                    owed += per_tick;
                    while owed >= 1.0 {
                        for p in publishers.iter_mut() {
                            p.write_all(&bytes)?;
                        }
                        owed -= 1.0;
                    }
                    next += tick;
                    if let Some(wait) = next.checked_duration_since(Instant::now()) {
                        thread::sleep(wait);
                    }
                }
                Ok(())
            };
            run(&mut publishers, 1.0)?; // warm-up
            let (d0, c0, t0) = (
                delivered.load(Ordering::Relaxed),
                reactor_cpu_ticks(&server_pid),
                Instant::now(),
            );
            run(&mut publishers, o.seconds as f64)?;
            let elapsed = t0.elapsed().as_secs_f64();
            thread::sleep(Duration::from_millis(200)); // the last ones arrive
            let (d1, c1) = (
                delivered.load(Ordering::Relaxed),
                reactor_cpu_ticks(&server_pid),
            );
            let deliveries = (d1 - d0) as f64;
            // Over the publishing window (the deliveries of its last 200 ms included).
            let rate = deliveries / elapsed;
            let cpu_us = (c1 - c0) as f64 / ticks_per_second * 1e6 / deliveries.max(1.0);
            println!("| {} | {kind} | {rate:.0} | {cpu_us:.3} |", round + 1);
            results.entry(kind).or_default().push((rate, cpu_us));
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let summary = |kind: &str| {
        let rows = &results[kind];
        let mut rates: Vec<f64> = rows.iter().map(|r| r.0).collect();
        let mut cpus: Vec<f64> = rows.iter().map(|r| r.1).collect();
        (median(&mut rates), median(&mut cpus))
    };
    let (topic_rate, topic_cpu) = summary("topic");
    let (channel_rate, channel_cpu) = summary("channel");
    println!(
        "\nmedian: topic {topic_rate:.0} deliveries/s, {topic_cpu:.3} us; channel {channel_rate:.0} deliveries/s, {channel_cpu:.3} us; channel/topic: rate x{:.3}, CPU x{:.3}",
        channel_rate / topic_rate,
        channel_cpu / topic_cpu
    );
    stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    drop(publishers);
    drop(child.stdin.take());
    let _ = child.wait();

    // In this process: the recovery of 1,000 clients, and memory.
    let server = server(&o)?;
    let handle = server.handle();
    recovery(handle.local_addr(), &handle)?;

    // Memory: a history of 100,000 messages of 32 bytes; 100,000 channels without.
    let before = resident_bytes();
    let messages = 100_000;
    for _ in 0..messages {
        let _ = handle.publish_channel("mem:history", &data);
    }
    let history = resident_bytes() - before;
    let stats = handle.channel_stats();
    let before = resident_bytes();
    let channels = 100_000;
    for i in 0..channels {
        let _ = handle.publish_channel(&format!("mem:bare:{i:06}"), &data);
    }
    let bare = resident_bytes() - before;
    println!(
        "memory: {:.0} B per history message (32-byte data, {}-byte frames); {:.0} B per channel without history (17-byte names)",
        history as f64 / messages as f64,
        stats.history_bytes / stats.history_messages.max(1),
        bare as f64 / channels as f64,
    );
    handle.shutdown();
    let _ = server.join();
    Ok(())
}

/// 1,000 clients of the channel `rec` drop their connections, 100 messages are
/// published, and all reconnect at once from their positions: how long until every
/// one has its 100 messages back, and the server's CPU and memory meanwhile.
fn recovery(addr: SocketAddr, handle: &wavecore::ServerHandle) -> io::Result<()> {
    const CLIENTS: usize = 1000;
    const BEHIND: usize = 100;
    let first: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| upgrade(addr, "/rec"))
        .collect::<io::Result<_>>()?;
    while handle.channel_position("rec").is_none() {
        thread::sleep(Duration::from_millis(1));
    }
    drop(first);
    let since = handle.channel_position("rec").unwrap_or_default();
    let data = "y".repeat(32);
    for _ in 0..BEHIND {
        let _ = handle.publish_channel("rec", &data);
    }
    let path = format!("/rec/{:016x}/{}", since.epoch, since.offset);
    let (rss0, cpu0, t0) = (resident_bytes(), reactor_cpu_ticks("self"), Instant::now());
    let mut poll = Poll::new()?;
    let mut clients = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        let stream = upgrade(addr, &path)?;
        stream.set_nonblocking(true)?;
        let mut stream = MioStream::from_std(stream);
        poll.registry()
            .register(&mut stream, Token(i), Interest::READABLE)?;
        clients.push((stream, Counter::default(), 0u64));
    }
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 << 10];
    let mut done = clients.iter().filter(|c| c.2 >= BEHIND as u64).count();
    let mut peak = resident_bytes();
    for _ in 0..10_000 {
        if done == CLIENTS {
            break;
        }
        let _ = poll.poll(&mut events, Some(Duration::from_millis(10)));
        for event in &events {
            let (stream, counter, got) = &mut clients[event.token().0];
            while let Ok(n @ 1..) = stream.read(&mut buf) {
                let before = *got;
                *got += counter.feed(&buf[..n]);
                if before < BEHIND as u64 && *got >= BEHIND as u64 {
                    done += 1;
                }
            }
        }
        peak = peak.max(resident_bytes());
    }
    let (took, cpu) = (t0.elapsed(), reactor_cpu_ticks("self") - cpu0);
    println!(
        "recovery: {done} of {CLIENTS} clients, each {BEHIND} messages behind, reconnected at once and live again in {:.0} ms (handshakes included); server CPU {:.0} ms; resident memory +{:.1} MiB at the peak (clients in the same process)",
        took.as_secs_f64() * 1e3,
        cpu as f64 * 10.0,
        peak.saturating_sub(rss0) as f64 / (1 << 20) as f64,
    );
    Ok(())
}

fn raise_open_files(needed: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < needed {
            limit.rlim_cur = needed.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
