//! Many connections at once: 1,000 concurrent clients across two reactors.

mod common;

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::*;
use tungstenite::Message as WsMessage;
use wavecore::{CloseInfo, Conn, Handler, Message, Request, Upgrade};

const CLIENT_THREADS: usize = 4;
const PER_THREAD: usize = 250;
const TOTAL: usize = CLIENT_THREADS * PER_THREAD;
/// Bound on each phase (connect and echo, close) of the whole crowd.
const PHASE_LIMIT: Duration = Duration::from_secs(60);

/// Echoes and records closes (the service counts upgrades per reactor thread).
struct Counted {
    closes: Closes,
}

impl Handler for Counted {
    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        conn.send(message);
    }

    fn on_close(&mut self, close: CloseInfo<'_>) {
        record_close(&self.closes, close);
    }
}

#[test]
fn thousand_concurrent_connections_on_two_workers() {
    // Both ends of every connection live in this process.
    ensure_open_files(4096);
    let closes = Closes::default();
    let per_reactor: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let service = {
        let (closes, per_reactor) = (closes.clone(), per_reactor.clone());
        move |_: &Request<'_>| {
            let name = thread::current().name().unwrap_or("?").to_owned();
            *per_reactor.lock().unwrap().entry(name).or_default() += 1;
            Upgrade::accept(Counted {
                closes: closes.clone(),
            })
        }
    };
    let server = TestServer::start(builder().workers(2), service);
    let addr = server.addr;

    let (ready_tx, ready_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let mut go_close = Vec::new();
    let mut threads = Vec::new();
    for t in 0..CLIENT_THREADS {
        let (ready_tx, done_tx) = (ready_tx.clone(), done_tx.clone());
        let (close_tx, close_rx) = mpsc::channel::<()>();
        go_close.push(close_tx);
        threads.push(thread::spawn(move || {
            let mut clients = Vec::with_capacity(PER_THREAD);
            for i in 0..PER_THREAD {
                let mut ws = ws_connect(addr);
                let text = format!("client {t}/{i}: {}", "x".repeat(i % 50));
                ws.send(WsMessage::text(text.clone())).unwrap();
                assert_eq!(ws_read_data(&mut ws), WsMessage::text(text));
                clients.push(ws);
            }
            ready_tx.send(()).unwrap();
            close_rx.recv_timeout(PHASE_LIMIT).expect("told to close");
            for ws in &mut clients {
                ws.close(None).unwrap();
                assert_eq!(ws_read_close(ws).0, 1005);
            }
            drop(clients);
            done_tx.send(()).unwrap();
        }));
    }
    for _ in 0..CLIENT_THREADS {
        ready_rx
            .recv_timeout(PHASE_LIMIT)
            .expect("a client thread opened its connections");
    }
    // Every client got its echo and none has closed yet: all are open at once.
    assert_eq!(server.handle.connections(), TOTAL);
    assert_eq!(server.handle.stats().open_connections, TOTAL);
    let spread = per_reactor.lock().unwrap().clone();
    assert_eq!(spread.values().sum::<usize>(), TOTAL);
    assert_eq!(
        spread.len(),
        2,
        "both reactors serve connections: {spread:?}"
    );

    for tx in &go_close {
        tx.send(()).unwrap();
    }
    for _ in 0..CLIENT_THREADS {
        done_rx
            .recv_timeout(PHASE_LIMIT)
            .expect("a client thread closed its connections");
    }
    for thread in threads {
        thread.join().unwrap();
    }
    assert!(
        wait_until_within(PHASE_LIMIT, || server.handle.connections() == 0),
        "connections fall back to 0, still {}",
        server.handle.connections()
    );
    let closes = closes.lock().unwrap();
    assert_eq!(closes.len(), TOTAL);
    assert!(closes.iter().all(|c| *c == (1005, String::new(), true)));
    assert_eq!(server.handle.stats().accepted, TOTAL as u64);
}
