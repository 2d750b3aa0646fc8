//! Shared helpers for the integration tests: a server on 127.0.0.1:0 that is shut down
//! and joined when dropped, a tungstenite client, and a raw-socket client that writes
//! masked frames and reads the server's frames and HTTP responses byte for byte.
//!
//! Every blocking read has a timeout of a few seconds and every wait loop has a count,
//! so a broken server fails a test instead of hanging it.

#![allow(dead_code)] // Each test crate uses a different subset.

pub mod channels;
pub mod examples;
pub mod redis_server;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use tungstenite::WebSocket;
use wavecore::{
    CloseInfo, Conn, Handler, Message, ReactorFailure, SendStatus, Server, ServerBuilder,
    ServerHandle, Service,
};

/// How long any single blocking read or write may wait.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// How long `join` may take after a shutdown before a test calls it stuck.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(15);

/// A builder bound to 127.0.0.1 port 0 with one worker; tests add their settings.
pub fn builder() -> ServerBuilder {
    Server::builder().bind("127.0.0.1:0").workers(1)
}

/// A running server; shut down and joined (bounded) when dropped.
pub struct TestServer {
    server: Option<Server>,
    pub handle: ServerHandle,
    pub addr: SocketAddr,
}

impl TestServer {
    /// Starts `service` with the settings of `builder`.
    pub fn start<S: Service>(builder: ServerBuilder, service: S) -> Self {
        let server = builder.start(service).expect("server starts");
        let handle = server.handle();
        let addr = handle.local_addr();
        assert_ne!(addr.port(), 0, "bound to a real port");
        Self {
            server: Some(server),
            handle,
            addr,
        }
    }

    /// Shuts the server down and waits (bounded) for `join`; returns whether it returned.
    pub fn shutdown_and_join(&mut self) -> bool {
        self.handle.shutdown();
        self.join()
    }

    /// Waits (bounded) for `Server::join` without asking for a shutdown first; returns
    /// whether it returned. A reactor failure it reports fails the test.
    pub fn join(&mut self) -> bool {
        let Some(server) = self.server.take() else {
            return true;
        };
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(server.join());
        });
        match rx.recv_timeout(JOIN_TIMEOUT) {
            Ok(outcome) => {
                if let Err(failure) = outcome {
                    fail_unless_unwinding(&format!("{failure}"));
                }
                true
            }
            Err(_) => false,
        }
    }

    /// Starts `Server::join` on another thread without asking for a shutdown; the
    /// receiver gets its outcome. For tests that check the server is still waiting.
    pub fn join_in_background(&mut self) -> mpsc::Receiver<Result<(), ReactorFailure>> {
        let server = self.server.take().expect("not joined yet");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(server.join());
        });
        rx
    }

    /// Fails the test if the server's own code panicked while serving a connection
    /// (contained to that connection, but a bug all the same) or a reactor failed.
    pub fn check_health(&self) {
        let internal = self.handle.stats().internal_errors;
        if internal > 0 {
            fail_unless_unwinding(&format!(
                "{internal} connection(s) closed by a panic in wavecore's own code"
            ));
        }
        if let Some(failure) = self.handle.failures().first() {
            fail_unless_unwinding(&format!("{failure}"));
        }
    }
}

/// Panics with `message`, unless the thread is already unwinding from a failed
/// assertion (a second panic would abort the test binary and hide the first).
fn fail_unless_unwinding(message: &str) {
    if !thread::panicking() {
        panic!("{message}");
    }
}

impl Drop for TestServer {
    /// Shuts down and joins; a reactor panic or a contained internal error during the
    /// test fails it here, even if it happened after the test's last read (libtest
    /// would otherwise hide the reactor thread's panic message in a passing test).
    fn drop(&mut self) {
        self.check_health();
        let _ = self.shutdown_and_join();
    }
}

/// Raises this process's soft limit on open files to at least `needed` (a test that
/// opens both ends of ~1,000 connections needs over 2,000 descriptors; a common default
/// soft limit is 1,024). Panics, saying what to change, if the hard limit is lower.
pub fn ensure_open_files(needed: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    // `None` is "unlimited".
    if limit.current.is_none_or(|soft| soft >= needed) {
        return;
    }
    let hard = limit.maximum.unwrap_or(u64::MAX);
    assert!(
        hard >= needed,
        "this test needs {needed} open files, but the hard limit is {hard}: \
         raise it (`ulimit -Hn {needed}` as root, or LimitNOFILE in a service unit)"
    );
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(needed),
            maximum: limit.maximum,
        },
    )
    .unwrap_or_else(|e| panic!("raising the open-files soft limit to {needed}: {e}"));
}

/// Waits until `cond` holds, checking every millisecond up to `IO_TIMEOUT`; returns
/// whether it held. (A bound against hanging, not a timing assertion.)
pub fn wait_until(cond: impl FnMut() -> bool) -> bool {
    wait_until_within(IO_TIMEOUT, cond)
}

/// Like [`wait_until`], bounded by `limit` instead.
pub fn wait_until_within(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..limit.as_millis() {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(1));
    }
    cond()
}

/// A TCP connection to `addr` with read and write timeouts.
pub fn tcp(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// A tungstenite client connected to `ws://addr/`.
pub fn ws_connect(addr: SocketAddr) -> WebSocket<TcpStream> {
    ws_connect_path(addr, "/")
}

/// A tungstenite client connected to `ws://addr{path}`.
pub fn ws_connect_path(addr: SocketAddr, path: &str) -> WebSocket<TcpStream> {
    let (ws, response) =
        tungstenite::client(format!("ws://{addr}{path}"), tcp(addr)).expect("handshake");
    assert_eq!(response.status(), 101);
    ws
}

/// Reads the next data message (text or binary) from a tungstenite client, skipping
/// pings and pongs.
pub fn ws_read_data(ws: &mut WebSocket<TcpStream>) -> tungstenite::Message {
    for _ in 0..100 {
        match ws.read().expect("read a message") {
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => continue,
            other => return other,
        }
    }
    panic!("no data message among 100 control frames");
}

/// Reads from a tungstenite client until the server's close frame; returns its code
/// and reason. Then reads on until the connection ends (tungstenite answers the close).
pub fn ws_read_close(ws: &mut WebSocket<TcpStream>) -> (u16, String) {
    for _ in 0..100 {
        match ws.read().expect("read until close") {
            tungstenite::Message::Close(frame) => {
                let (code, reason) = frame
                    .map(|f| (u16::from(f.code), f.reason.to_string()))
                    .unwrap_or((1005, String::new()));
                for _ in 0..10 {
                    if ws.read().is_err() {
                        break;
                    }
                }
                return (code, reason);
            }
            _ => continue,
        }
    }
    panic!("no close frame among 100 messages");
}

/// A request head for an upgrade of `path`, with `extra` header lines (each ending in
/// CRLF) and the standard headers except those named in `omit`.
pub fn upgrade_request(path: &str, omit: &[&str], extra: &str) -> String {
    let standard = [
        ("Host", "127.0.0.1"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ];
    let mut head = format!("GET {path} HTTP/1.1\r\n");
    for (name, value) in standard {
        if !omit.iter().any(|o| o.eq_ignore_ascii_case(name)) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str(extra);
    head.push_str("\r\n");
    head
}

/// An HTTP response read off a raw socket.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpReply {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the `Connection` field lists `close`.
    pub fn closes(&self) -> bool {
        self.header("Connection").is_some_and(|connection| {
            connection
                .split(',')
                .any(|option| option.trim().eq_ignore_ascii_case("close"))
        })
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads a response head byte by byte (so nothing after it is consumed) and parses it.
pub fn read_response_head(stream: &mut TcpStream) -> HttpReply {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert!(head.len() < 16 << 10, "response head too long");
        match stream.read(&mut byte) {
            Ok(0) => panic!(
                "EOF inside the response head: {:?}",
                String::from_utf8_lossy(&head)
            ),
            Ok(_) => head.push(byte[0]),
            Err(e) => panic!("reading the response head: {e}"),
        }
    }
    let text = String::from_utf8(head).expect("ASCII head");
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap();
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(
        parts.next(),
        Some("HTTP/1.1"),
        "status line {status_line:?}"
    );
    let status = parts.next().unwrap().parse().expect("numeric status");
    let headers = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').expect("header line");
            (n.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    HttpReply {
        status,
        headers,
        body: Vec::new(),
    }
}

/// Sends `request` on a fresh connection and reads the whole response: head, then the
/// body up to `Content-Length`; then checks the connection ends: at once when the
/// response says `Connection: close`, else (a kept-alive connection) once the client
/// has shut down its side.
pub fn http_exchange(addr: SocketAddr, request: &str) -> HttpReply {
    let mut stream = tcp(addr);
    stream.write_all(request.as_bytes()).unwrap();
    let reply = read_response(&mut stream);
    if !reply.closes() {
        stream.shutdown(std::net::Shutdown::Write).unwrap();
    }
    assert!(read_to_end_or_reset(&mut stream), "server closes after it");
    reply
}

/// Reads one whole response (head and `Content-Length` body) off `stream`.
pub fn read_response(stream: &mut TcpStream) -> HttpReply {
    let mut reply = read_response_head(stream);
    let len: usize = reply
        .header("Content-Length")
        .expect("Content-Length")
        .parse()
        .unwrap();
    reply.body = vec![0; len];
    stream.read_exact(&mut reply.body).expect("body");
    reply
}

/// Reads until EOF or a reset; returns `false` if the read timed out instead.
pub fn read_to_end_or_reset(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if is_timeout(&e) => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
}

/// Whether `e` is a socket timeout (Linux says WouldBlock, others TimedOut).
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// A raw client that completed the upgrade handshake.
pub fn raw_upgrade(addr: SocketAddr) -> TcpStream {
    let mut stream = tcp(addr);
    upgrade_on(&mut stream);
    stream
}

/// Completes the upgrade handshake on a connected socket (a raw client).
pub fn upgrade_on(stream: &mut TcpStream) {
    stream
        .write_all(upgrade_request("/", &[], "").as_bytes())
        .unwrap();
    let reply = read_response_head(stream);
    assert_eq!(reply.status, 101, "upgrade accepted");
    assert_eq!(
        reply.header("Sec-WebSocket-Accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
}

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

const MASK_KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Encodes a client frame: masked with a fixed key unless `masked` is false.
pub fn encode_frame(fin: bool, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&MASK_KEY);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK_KEY[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// Writes one masked client frame.
pub fn write_frame(stream: &mut TcpStream, fin: bool, opcode: u8, payload: &[u8]) {
    stream
        .write_all(&encode_frame(fin, opcode, payload, true))
        .expect("write frame");
}

/// A frame from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    /// The RSV1-3 bits, in place (`0x40` is RSV1: a compressed message).
    pub rsv: u8,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The close code of a close frame (1005 if it has none).
    pub fn close_code(&self) -> u16 {
        assert_eq!(self.opcode, OP_CLOSE, "not a close frame: {self:?}");
        if self.payload.len() >= 2 {
            u16::from_be_bytes([self.payload[0], self.payload[1]])
        } else {
            1005
        }
    }
}

/// Reads one server frame; `None` at EOF (or a reset) before its first byte. Server
/// frames must not be masked.
pub fn read_frame(stream: &mut TcpStream) -> Option<Frame> {
    let mut head = [0u8; 2];
    match stream.read(&mut head[..1]) {
        Ok(0) => return None,
        Ok(_) => {}
        Err(e) if is_timeout(&e) => panic!("timed out waiting for a frame"),
        Err(_) => return None,
    }
    stream.read_exact(&mut head[1..]).expect("frame header");
    assert_eq!(head[1] & 0x80, 0, "server frames are unmasked");
    let len = match head[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            stream.read_exact(&mut b).unwrap();
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            stream.read_exact(&mut b).unwrap();
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0; len];
    stream.read_exact(&mut payload).expect("frame payload");
    Some(Frame {
        fin: head[0] & 0x80 != 0,
        rsv: head[0] & 0x70,
        opcode: head[0] & 0x0f,
        payload,
    })
}

/// Reads server frames until a close frame; returns its code. Panics at EOF first or
/// after 10,000 frames.
pub fn read_close_code(stream: &mut TcpStream) -> u16 {
    for _ in 0..10_000 {
        let frame = read_frame(stream).expect("a close frame before EOF");
        if frame.opcode == OP_CLOSE {
            return frame.close_code();
        }
    }
    panic!("no close frame among 10,000 frames");
}

/// A close-frame payload: code and reason.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    payload
}

/// What `on_close` saw: code, reason, by_peer.
pub type Closes = Arc<Mutex<Vec<(u16, String, bool)>>>;

/// Records a close into `closes`.
pub fn record_close(closes: &Closes, close: CloseInfo<'_>) {
    closes
        .lock()
        .unwrap()
        .push((close.code.0, close.reason.to_owned(), close.by_peer));
}

/// Waits (bounded) until `closes` holds at least `n` entries; returns a copy.
pub fn wait_closes(closes: &Closes, n: usize) -> Vec<(u16, String, bool)> {
    assert!(
        wait_until(|| closes.lock().unwrap().len() >= n),
        "expected {n} on_close calls, saw {:?}",
        closes.lock().unwrap()
    );
    closes.lock().unwrap().clone()
}

/// Echoes every message and records how the connection closed.
#[derive(Default)]
pub struct Echo {
    pub closes: Closes,
}

impl Handler for Echo {
    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        assert_eq!(conn.send(message), SendStatus::Success);
    }

    fn on_close(&mut self, close: CloseInfo<'_>) {
        record_close(&self.closes, close);
    }
}

/// A service accepting every upgrade with an `Echo` that records into `closes`.
pub fn echo_service(closes: &Closes) -> impl Service<Handler = Echo> {
    let closes = closes.clone();
    wavecore::accept_all(move || Echo {
        closes: closes.clone(),
    })
}
