//! Graceful stop on signals, over real sockets and a real process: this test binary
//! runs itself again as a server process (`child_server`, built with
//! `shutdown_on_signals(true)`), and the tests send that process `SIGTERM`.
//!
//! Each wait is bounded (a line from the child, its exit), never a timing assertion.

#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use wavecore::{Conn, Handler, Message, Server};

/// Set in the child's environment: the server's `shutdown_timeout` in milliseconds.
const CHILD: &str = "WAVECORE_SIGNALS_CHILD_SHUTDOWN_MS";

/// How long the child may take to print a line or to exit.
const CHILD_LIMIT: Duration = Duration::from_secs(30);

/// Size of each message of a burst.
const BURST_MESSAGE: usize = 64 << 10;

/// Echoes; `burst N` answers N messages of 64 KiB at once and prints `QUEUED` on the
/// child's stdout once they are sent (most wait in the outbox: the client is not
/// reading yet).
struct Bursty;

impl Handler for Bursty {
    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        if let Message::Text(text) = message
            && let Some(n) = text.strip_prefix("burst ")
        {
            let payload = vec![b'q'; BURST_MESSAGE];
            for _ in 0..n.parse::<usize>().unwrap() {
                conn.send_binary(&payload);
            }
            println!("QUEUED");
            return;
        }
        conn.send(message);
    }
}

#[test]
#[ignore = "the server process the other tests start; does nothing unless they do"]
fn child_server() {
    let Some(ms) = std::env::var(CHILD).ok().and_then(|ms| ms.parse().ok()) else {
        return;
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stdout)
        .with_ansi(false)
        .init();
    let server = Server::builder()
        .bind("127.0.0.1:0")
        .workers(2)
        .max_backpressure(256 << 20)
        .shutdown_timeout(Duration::from_millis(ms))
        .shutdown_on_signals(true)
        .start(wavecore::accept_all(|| Bursty))
        .expect("child server starts");
    println!("LISTENING {}", server.local_addr());
    server.join().expect("no reactor failed");
    println!("STOPPED");
}

/// The server process and its stdout, line by line.
struct ChildServer {
    child: Child,
    lines: Receiver<String>,
    addr: SocketAddr,
}

impl ChildServer {
    fn start(shutdown_timeout: Duration) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "child_server",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, shutdown_timeout.as_millis().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the test binary runs again");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Self {
            child,
            lines,
            addr: "0.0.0.0:0".parse().unwrap(),
        };
        let line = server.wait_for("LISTENING ");
        server.addr = line["LISTENING ".len()..].parse().unwrap();
        server
    }

    /// Waits (bounded) for a line of the child's stdout containing `text`.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + CHILD_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => continue,
                Err(_) => panic!("the child never printed {text:?}"),
            }
        }
    }

    fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) with a valid signal number on our own child process.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill");
    }

    /// Waits (bounded) for the child to exit.
    fn exit_status(&mut self) -> ExitStatus {
        let deadline = Instant::now() + CHILD_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("the child did not exit");
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sigterm_flushes_what_is_queued_then_closes_every_client_with_1001() {
    let mut server = ChildServer::start(Duration::from_secs(20));
    let mut idle = ws_connect(server.addr);
    let mut reader = ws_connect(server.addr);
    // Make sure the idle one is open before the signal.
    idle.send(tungstenite::Message::text("hi")).unwrap();
    assert_eq!(ws_read_data(&mut idle).into_text().unwrap(), "hi");
    let burst = 256;
    reader
        .send(tungstenite::Message::text(format!("burst {burst}")))
        .unwrap();
    server.wait_for("QUEUED");

    server.signal(libc::SIGTERM);
    server.wait_for("stopping gracefully");
    // Every queued message arrives before the close.
    for i in 0..burst {
        match ws_read_data(&mut reader) {
            tungstenite::Message::Binary(bytes) => assert_eq!(bytes.len(), BURST_MESSAGE, "{i}"),
            other => panic!("message {i}: expected data, got {other:?}"),
        }
    }
    assert_eq!(
        ws_read_close(&mut reader),
        (1001, "server shutting down".into())
    );
    assert_eq!(ws_read_close(&mut idle).0, 1001);
    // Both answered: the process ends without waiting for shutdown_timeout.
    assert!(server.exit_status().success());
    server.wait_for("STOPPED");
    // Nothing listens any more.
    assert!(std::net::TcpStream::connect(server.addr).is_err());
}

#[test]
fn a_client_that_never_answers_is_dropped_at_shutdown_timeout() {
    let mut server = ChildServer::start(Duration::from_millis(300));
    let mut silent = raw_upgrade(server.addr);
    server.signal(libc::SIGINT);
    // The close frame arrives; the client never answers it.
    let frame = read_frame(&mut silent).expect("a close frame");
    assert_eq!(frame.close_code(), 1001);
    assert!(server.exit_status().success());
    server.wait_for("did not finish closing");
    let mut rest = Vec::new();
    let _ = silent.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{rest:?}");
}

#[test]
fn a_second_signal_ends_the_process_at_once() {
    use std::os::unix::process::ExitStatusExt;
    let mut server = ChildServer::start(Duration::from_secs(60));
    let mut silent = raw_upgrade(server.addr);
    server.signal(libc::SIGTERM);
    server.wait_for("stopping gracefully");
    assert_eq!(read_frame(&mut silent).unwrap().close_code(), 1001);
    server.signal(libc::SIGTERM);
    let status = server.exit_status();
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
}
