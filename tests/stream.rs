//! The streaming example (`examples/stream.rs`), the real binary: a prompt answered
//! token by token from its worker pool through the connection's handle, many clients
//! at once, and a client that leaves mid-reply (the worker learns it and stops).

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use tungstenite::{Message, WebSocket};

/// The example running on a free port, with its log lines.
struct Stream {
    child: Child,
    addr: String,
    log: mpsc::Receiver<String>,
}

impl Stream {
    fn start() -> Self {
        let mut child = Command::new(common::examples::binary("stream"))
            .arg("127.0.0.1:0")
            .env("RUST_LOG", "stream=debug,wavecore=info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the stream example starts");
        let (tx, log) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let addr = loop {
            let line = log
                .recv_timeout(Duration::from_secs(60))
                .expect("the start line");
            if let Some(at) = line.find("stream server on http://") {
                let rest = &line[at + "stream server on http://".len()..];
                break rest.trim_end_matches('/').to_owned();
            }
        };
        Self { child, addr, log }
    }

    fn connect(&self) -> WebSocket<TcpStream> {
        let stream = TcpStream::connect(&self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let (ws, _) = tungstenite::client(format!("ws://{}/", self.addr), stream).unwrap();
        ws
    }

    /// Waits for a log line containing `needle`.
    fn logged(&self, needle: &str) -> bool {
        while let Ok(line) = self.log.recv_timeout(Duration::from_secs(10)) {
            if line.contains(needle) {
                return true;
            }
        }
        false
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads one whole reply: the tokens up to the empty message that ends it.
fn reply(ws: &mut WebSocket<TcpStream>) -> Vec<String> {
    let mut tokens = Vec::new();
    loop {
        match ws.read().expect("a token") {
            Message::Text(t) if t.is_empty() => return tokens,
            Message::Text(t) => tokens.push(t.to_string()),
            _ => {}
        }
    }
}

#[test]
fn a_prompt_is_answered_token_by_token_and_many_clients_are_served_at_once() {
    let server = Stream::start();
    let mut clients: Vec<_> = (0..40).map(|_| server.connect()).collect();
    for (i, ws) in clients.iter_mut().enumerate() {
        ws.send(Message::text(format!("question number {i}")))
            .unwrap();
    }
    for (i, ws) in clients.iter_mut().enumerate() {
        let tokens = reply(ws);
        assert!(tokens.len() > 10, "{tokens:?}");
        let text = tokens.concat();
        assert!(text.contains(&format!("\u{201c}{i}\u{201d}")), "{text}");
    }
}

#[test]
fn a_client_that_leaves_mid_reply_stops_its_worker() {
    let server = Stream::start();
    let mut ws = server.connect();
    ws.send(Message::text("a long question")).unwrap();
    let first = ws.read().unwrap();
    assert!(first.is_text());
    drop(ws);
    assert!(
        server.logged("reply stopped: the client left"),
        "the worker noticed the client was gone"
    );
    // The pool still serves the next client.
    let mut next = server.connect();
    next.send(Message::text("again")).unwrap();
    assert!(!reply(&mut next).is_empty());
}
