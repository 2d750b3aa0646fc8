//! Work off the reactor, measured: sends through `ConnHandle`s from another thread
//! against `Conn::send` in callbacks and `ServerHandle::publish` to one topic per
//! connection, and echo latency while upgrades wait for a slow (deferred)
//! authentication step, against a service that blocks the reactor for it.
//!
//! ```text
//! cargo bench -p wavecore-bench --bench offreactor -- send      # handle, callback, publish
//! cargo bench -p wavecore-bench --bench offreactor -- send --way handle --conns 10000 --per-round 16 --secs 5
//! cargo bench -p wavecore-bench --bench offreactor -- pending   # echo p99 with upgrades waiting
//! cargo bench -p wavecore-bench --bench offreactor -- memory    # bytes per handle, per pending upgrade
//! ```
//!
//! The server (one reactor) runs in this process; the clients run in a child process
//! (this same binary), so each side has its own open-files budget and the server's
//! CPU is its own: the reactor thread's (from `/proc/self/task/*/schedstat`, in
//! nanoseconds) and the whole process's (the sending thread included).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use mio::net::TcpStream as MioStream;
use mio::{Events, Interest, Poll, Token};
use wavecore::{
    Conn, ConnHandle, Handler, Message, PendingUpgrade, Request, Server, ServerHandle, Upgrade,
};

/// Payload of every message sent to the clients (a 34-byte frame).
const PAYLOAD: &str = "0123456789abcdef0123456789abcdef";
const FRAME: u64 = PAYLOAD.len() as u64 + 2;
/// Rounds a sender may run ahead of what the clients have read.
const AHEAD: u64 = 4;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    raise_open_files();
    match args.first().map(String::as_str) {
        Some("send") | None => send_rows(&args),
        Some("pending") => pending_rows(&args),
        Some("memory") => memory_rows(&args),
        Some("client-read") => client_read(&args[1..]),
        Some("client-latency") => client_latency(&args[1..]),
        Some(other) => panic!("unknown row {other}: send, pending or memory"),
    }
}

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

fn raise_open_files() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the struct passed by reference.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// CPU time of this process's reactor threads and of the whole process.
fn cpu() -> (Duration, Duration) {
    let mut reactor = 0u64;
    let mut all = 0u64;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let ns: u64 = std::fs::read_to_string(path.join("schedstat"))
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        all += ns;
        if comm.starts_with("wavecore-reacto") {
            reactor += ns;
        }
    }
    (Duration::from_nanos(reactor), Duration::from_nanos(all))
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

// ---------------------------------------------------------------------------------
// send: one thread sending to every connection, three ways.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Way {
    /// A thread sends through each connection's `ConnHandle`.
    Handle,
    /// Each connection's callback sends, when its client asks with "go".
    Callback,
    /// A thread publishes to each connection's own topic.
    Publish,
}

/// Keeps what a sending thread needs of each connection.
struct Registry {
    handles: Mutex<Vec<ConnHandle>>,
    topics: Mutex<Vec<String>>,
}

struct Bench {
    way: Way,
    per_round: u64,
    registry: Arc<Registry>,
}

impl Handler for Bench {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        match self.way {
            Way::Handle => self.registry.handles.lock().unwrap().push(conn.handle()),
            Way::Publish => {
                let topic = format!("c{}", conn.id());
                conn.subscribe(&topic);
                self.registry.topics.lock().unwrap().push(topic);
            }
            Way::Callback => {}
        }
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        match message.as_bytes() {
            b"go" => {
                for _ in 0..self.per_round {
                    conn.send_text(PAYLOAD);
                }
            }
            b"handle" => self.registry.handles.lock().unwrap().push(conn.handle()),
            _ => {}
        }
    }
}

fn start_server(way: Way, per_round: u64, registry: &Arc<Registry>) -> Server {
    let registry = registry.clone();
    Server::builder()
        .bind("127.0.0.1:0")
        .workers(1)
        .max_backpressure(64 << 20)
        .high_water_mark(64 << 20)
        .start(move |_: &Request<'_>| {
            Upgrade::accept(Bench {
                way,
                per_round,
                registry: registry.clone(),
            })
        })
        .expect("server starts")
}

/// Starts this binary as the client process; returns it and a counter of the
/// messages its connections have read, updated from its reports.
fn spawn_client(args: &[String]) -> (Child, Arc<AtomicU64>, mpsc::Receiver<String>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the client process starts");
    let received = Arc::new(AtomicU64::new(0));
    let (lines_tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let counter = received.clone();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line.strip_prefix("recv ") {
                counter.store(n.parse().unwrap(), Ordering::Release);
            } else if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, received, lines)
}

fn send_rows(args: &[String]) {
    let conns = arg(args, "--conns", 10_000);
    let per_round = arg(args, "--per-round", 4);
    let secs = arg(args, "--secs", 5);
    println!(
        "send: {conns} connections on one reactor, {per_round} messages of {} B to each per round, {secs} s measured",
        PAYLOAD.len()
    );
    println!(
        "{:<10} {:>12} {:>22} {:>22}",
        "way", "msgs/s", "reactor CPU ns/msg", "process CPU ns/msg"
    );
    let only = args
        .iter()
        .position(|a| a == "--way")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let mut results = Vec::new();
    for way in [Way::Callback, Way::Handle, Way::Publish] {
        if only
            .as_ref()
            .is_some_and(|w| *w != format!("{way:?}").to_lowercase())
        {
            continue;
        }
        let row = send_row(way, conns, per_round, secs);
        println!(
            "{:<10} {:>12.0} {:>22.1} {:>22.1}",
            format!("{way:?}").to_lowercase(),
            row.0,
            row.1,
            row.2
        );
        results.push((way, row));
    }
    if results.len() < 3 {
        return;
    }
    let base = results[0].1;
    for (way, row) in &results[1..] {
        println!(
            "{:?} / callback: reactor CPU per message {:.2}x, process CPU per message {:.2}x, throughput {:.2}x",
            way,
            row.1 / base.1,
            row.2 / base.2,
            row.0 / base.0
        );
    }
}

/// One way: returns messages per second, reactor and process CPU ns per message.
fn send_row(way: Way, conns: u64, per_round: u64, secs: u64) -> (f64, f64, f64) {
    let registry = Arc::new(Registry {
        handles: Mutex::new(Vec::new()),
        topics: Mutex::new(Vec::new()),
    });
    let server = start_server(way, per_round, &registry);
    let addr = server.local_addr();
    let go = if way == Way::Callback { "go" } else { "read" };
    let (mut child, received, lines) = spawn_client(&[
        "client-read".into(),
        addr.to_string(),
        conns.to_string(),
        per_round.to_string(),
        go.into(),
    ]);
    assert_eq!(lines.recv().unwrap(), "ready");
    let stop = Arc::new(AtomicBool::new(false));
    let sender = (way != Way::Callback).then(|| {
        let (registry, stop, received) = (registry.clone(), stop.clone(), received.clone());
        let handle = server.handle();
        thread::spawn(move || {
            send_loop(way, &handle, &registry, &received, conns, per_round, &stop)
        })
    });
    thread::sleep(Duration::from_secs(1));
    let (r0, c0, t0) = (received.load(Ordering::Acquire), cpu(), Instant::now());
    thread::sleep(Duration::from_secs(secs));
    let (r1, c1, t1) = (received.load(Ordering::Acquire), cpu(), Instant::now());
    stop.store(true, Ordering::Release);
    if let Some(sender) = sender {
        sender.join().unwrap();
    }
    let _ = child.kill();
    let _ = child.wait();
    server.handle().shutdown();
    let _ = server.join();
    let msgs = (r1 - r0) as f64;
    assert!(msgs > 0.0, "{way:?}: no message moved in the window");
    (
        msgs / (t1 - t0).as_secs_f64(),
        (c1.0 - c0.0).as_nanos() as f64 / msgs,
        (c1.1 - c0.1).as_nanos() as f64 / msgs,
    )
}

fn send_loop(
    way: Way,
    server: &ServerHandle,
    registry: &Registry,
    received: &AtomicU64,
    conns: u64,
    per_round: u64,
    stop: &AtomicBool,
) {
    while registry.handles.lock().unwrap().len() + registry.topics.lock().unwrap().len()
        < conns as usize
    {
        thread::sleep(Duration::from_millis(10));
    }
    let handles = registry.handles.lock().unwrap().clone();
    let topics = registry.topics.lock().unwrap().clone();
    let per = conns * per_round;
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if received.load(Ordering::Acquire) + AHEAD * per < round * per {
            thread::sleep(Duration::from_micros(50));
            continue;
        }
        for _ in 0..per_round {
            match way {
                Way::Handle => {
                    for handle in &handles {
                        handle.send_text(PAYLOAD);
                    }
                }
                Way::Publish => {
                    for topic in &topics {
                        server.publish(topic, Message::Text(PAYLOAD));
                    }
                }
                Way::Callback => unreachable!(),
            }
        }
        round += 1;
    }
}

/// Opens `n` WebSocket connections to `addr` (blocking handshakes), then makes them
/// non-blocking.
fn open(addr: SocketAddr, n: u64, path: &str) -> Vec<MioStream> {
    (0..n)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).expect("connect");
            stream.set_nodelay(true).unwrap();
            handshake(&mut stream, path);
            stream.set_nonblocking(true).unwrap();
            MioStream::from_std(stream)
        })
        .collect()
}

fn handshake(stream: &mut TcpStream, path: &str) -> u16 {
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("a response head");
        head.push(byte[0]);
    }
    std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap()
}

/// A masked client text frame.
fn client_frame(text: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x81, 0x80 | text.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(text);
    frame
}

/// The client process of `send`: reads every connection and reports how many
/// messages arrived; with "go", asks each connection's callback for a round.
fn client_read(args: &[String]) {
    let addr: SocketAddr = args[0].parse().unwrap();
    let n: u64 = args[1].parse().unwrap();
    let per_round: u64 = args[2].parse().unwrap();
    let go = args[3] == "go";
    let mut streams = open(addr, n, "/");
    let mut poll = Poll::new().unwrap();
    for (i, s) in streams.iter_mut().enumerate() {
        poll.registry()
            .register(s, Token(i), Interest::READABLE)
            .unwrap();
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    let go_frame = client_frame(b"go");
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 256 << 10];
    let mut bytes = 0u64;
    let mut rounds = 0u64;
    let mut last_report = Instant::now();
    let per = n * per_round;
    loop {
        if go && bytes / FRAME + AHEAD * per >= rounds * per {
            for s in &mut streams {
                s.write_all(&go_frame).expect("write go");
            }
            rounds += 1;
        }
        poll.poll(&mut events, Some(Duration::from_millis(5)))
            .unwrap();
        for event in &events {
            let s = &mut streams[event.token().0];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => return,
                    Ok(k) => bytes += k as u64,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => return,
                }
            }
        }
        if last_report.elapsed() >= Duration::from_millis(10) {
            last_report = Instant::now();
            if writeln!(out, "recv {}", bytes / FRAME).is_err() || out.flush().is_err() {
                return;
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// pending: echo latency while upgrades wait for a 200 ms authentication step.

struct Echo;

impl Handler for Echo {
    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        conn.send(message);
    }
}

const AUTH: Duration = Duration::from_millis(200);

fn pending_server() -> Server {
    let (waiting, queue) = mpsc::channel::<(Instant, PendingUpgrade<Echo>)>();
    thread::spawn(move || {
        for (at, pending) in queue {
            thread::sleep((at + AUTH).saturating_duration_since(Instant::now()));
            let _ = pending.accept(Echo);
        }
    });
    let waiting = Mutex::new(waiting);
    Server::builder()
        .bind("127.0.0.1:0")
        .workers(1)
        .max_pending_requests(10_000)
        .start(move |request: &Request<'_>| match request.path() {
            "/auth" => {
                let waiting = waiting.lock().unwrap().clone();
                Upgrade::defer(move |pending| {
                    let _ = waiting.send((Instant::now(), pending));
                })
            }
            "/auth-blocking" => {
                thread::sleep(AUTH);
                Upgrade::accept(Echo)
            }
            _ => Upgrade::accept(Echo),
        })
        .expect("server starts")
}

fn pending_rows(args: &[String]) {
    let echo = arg(args, "--echo", 1000);
    let secs = arg(args, "--secs", 5);
    println!(
        "pending: {echo} echo connections (one 32 B message in flight each) on one reactor, {secs} s; upgrades wait {} ms for authentication",
        AUTH.as_millis()
    );
    println!(
        "{:<42} {:>10} {:>9} {:>9} {:>9} {:>10} {:>9}",
        "scenario", "echoes/s", "p50 us", "p99 us", "max us", "upgrades", "peak RSS"
    );
    for (name, path, batch) in [
        ("no upgrades", "-", 0u64),
        ("1,000 upgrades a cycle, answered at once", "/now", 1000),
        ("1,000 upgrades a cycle, deferred 200 ms", "/auth", 1000),
        ("5 upgrades a cycle, blocking 200 ms", "/auth-blocking", 5),
    ] {
        let server = pending_server();
        let addr = server.local_addr();
        let rss_before = rss_kib();
        let (mut child, _, lines) = spawn_client(&[
            "client-latency".into(),
            addr.to_string(),
            echo.to_string(),
            secs.to_string(),
            path.into(),
            batch.to_string(),
        ]);
        let mut peak = rss_before;
        let result = loop {
            match lines.recv_timeout(Duration::from_millis(50)) {
                Ok(line) if line.starts_with("result ") => break line,
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => peak = peak.max(rss_kib()),
                Err(e) => panic!("the client process ended: {e}"),
            }
        };
        let _ = child.wait();
        server.handle().shutdown();
        let _ = server.join();
        let f: Vec<f64> = result[7..]
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        println!(
            "{:<42} {:>10.0} {:>9.0} {:>9.0} {:>9.0} {:>10.0} {:>6} KiB",
            name,
            f[0],
            f[1],
            f[2],
            f[3],
            f[4],
            peak - rss_before
        );
    }
}

/// The client process of `pending`: echo connections measuring round trips, and a
/// thread that keeps `batch` upgrades to `path` waiting, batch after batch.
fn client_latency(args: &[String]) {
    let addr: SocketAddr = args[0].parse().unwrap();
    let n: u64 = args[1].parse().unwrap();
    let secs: u64 = args[2].parse().unwrap();
    let path = args[3].clone();
    let batch: u64 = args[4].parse().unwrap();
    let mut streams = open(addr, n, "/echo");
    let warmup = Duration::from_secs(1);
    let end = Instant::now() + warmup + Duration::from_secs(secs);
    let upgrades = Arc::new(AtomicU64::new(0));
    let churn = (batch > 0).then(|| {
        let upgrades = upgrades.clone();
        thread::spawn(move || {
            while Instant::now() < end {
                // One batch at most every 200 ms, whatever the service does: the
                // same rate of upgrades in every scenario.
                let cycle = Instant::now() + AUTH;
                let mut waiting: Vec<TcpStream> = (0..batch)
                    .map(|_| {
                        let mut s = TcpStream::connect(addr).unwrap();
                        write!(
                            s,
                            "GET {path} HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\n\
                             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                             Sec-WebSocket-Version: 13\r\n\r\n"
                        )
                        .unwrap();
                        s
                    })
                    .collect();
                for s in &mut waiting {
                    let mut head = [0u8; 12];
                    if s.read_exact(&mut head).is_ok() && &head[9..12] == b"101" {
                        upgrades.fetch_add(1, Ordering::Relaxed);
                    }
                }
                drop(waiting);
                thread::sleep(cycle.saturating_duration_since(Instant::now()));
            }
        })
    });
    let mut poll = Poll::new().unwrap();
    for (i, s) in streams.iter_mut().enumerate() {
        poll.registry()
            .register(s, Token(i), Interest::READABLE)
            .unwrap();
    }
    let frame = client_frame(PAYLOAD.as_bytes());
    let mut sent_at = vec![Instant::now(); n as usize];
    for s in &mut streams {
        s.write_all(&frame).unwrap();
    }
    let mut histogram = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    let measure_from = Instant::now() + warmup;
    let mut events = Events::with_capacity(1024);
    let mut buf = [0u8; 4096];
    let mut pending = vec![0usize; n as usize];
    let mut echoes = 0u64;
    while Instant::now() < end {
        poll.poll(&mut events, Some(Duration::from_millis(5)))
            .unwrap();
        for event in &events {
            let i = event.token().0;
            let s = &mut streams[i];
            while let Ok(k) = s.read(&mut buf) {
                if k == 0 {
                    break;
                }
                pending[i] += k;
                while pending[i] >= FRAME as usize {
                    pending[i] -= FRAME as usize;
                    let now = Instant::now();
                    if now >= measure_from {
                        histogram
                            .record((now - sent_at[i]).as_micros() as u64)
                            .unwrap();
                        echoes += 1;
                    }
                    sent_at[i] = now;
                    s.write_all(&frame).unwrap();
                }
            }
        }
    }
    if let Some(churn) = churn {
        churn.join().unwrap();
    }
    println!(
        "result {} {} {} {} {}",
        echoes as f64 / secs as f64,
        histogram.value_at_quantile(0.5),
        histogram.value_at_quantile(0.99),
        histogram.max(),
        upgrades.load(Ordering::Relaxed)
    );
}

// ---------------------------------------------------------------------------------
// memory: what a handle and a waiting upgrade cost.

fn memory_rows(args: &[String]) {
    // Client and server sockets share this process's open-files limit (about 20,000).
    let conns = arg(args, "--conns", 8_000);
    // Handles: connections first, then one handle each (asked by the client).
    let registry = Arc::new(Registry {
        handles: Mutex::new(Vec::with_capacity(conns as usize)),
        topics: Mutex::new(Vec::new()),
    });
    let server = start_server(Way::Callback, 0, &registry);
    let addr = server.local_addr();
    let mut streams: Vec<TcpStream> = (0..conns)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            handshake(&mut s, "/");
            s
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    let before = rss_kib();
    let frame = client_frame(b"handle");
    for s in &mut streams {
        s.write_all(&frame).unwrap();
    }
    while registry.handles.lock().unwrap().len() < conns as usize {
        thread::sleep(Duration::from_millis(10));
    }
    thread::sleep(Duration::from_millis(500));
    let after = rss_kib();
    println!(
        "handles: {conns} connections, RSS {before} KiB before their handles, {after} KiB after: {:.0} B per handle (the link, plus 8 B for keeping the handle in a Vec)",
        (after - before) as f64 * 1024.0 / conns as f64
    );
    drop(streams);
    server.handle().shutdown();
    let _ = server.join();

    // Waiting upgrades: `conns` upgrades deferred and never answered, against as many
    // connections whose request head has not arrived.
    let (keep, kept) = mpsc::channel::<PendingUpgrade<Echo>>();
    let keep = Mutex::new(keep);
    let server = Server::builder()
        .bind("127.0.0.1:0")
        .workers(1)
        .max_pending_requests(conns as usize)
        .handshake_timeout(Duration::from_secs(60))
        .start(move |_: &Request<'_>| {
            let keep = keep.lock().unwrap().clone();
            Upgrade::defer(move |pending| {
                let _ = keep.send(pending);
            })
        })
        .unwrap();
    let addr = server.local_addr();
    let mut streams: Vec<TcpStream> = (0..conns)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    thread::sleep(Duration::from_millis(500));
    let before = rss_kib();
    for s in &mut streams {
        write!(
            s,
            "GET / HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Cookie: session=0123456789abcdef0123456789abcdef\r\n\r\n"
        )
        .unwrap();
    }
    let mut pendings = Vec::with_capacity(conns as usize);
    while (pendings.len() as u64) < conns {
        pendings.push(kept.recv().unwrap());
    }
    thread::sleep(Duration::from_millis(500));
    let after = rss_kib();
    println!(
        "pending upgrades: {conns} waiting, RSS {before} KiB before their requests, {after} KiB after: {:.0} B per waiting upgrade (its request head of ~200 B included, both sides: the reactor's and the PendingUpgrade)",
        (after - before) as f64 * 1024.0 / conns as f64
    );
    drop(pendings);
    drop(streams);
    server.handle().shutdown();
    let _ = server.join();
}
