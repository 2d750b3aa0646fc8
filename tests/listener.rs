//! The listening socket: a second server on an address in use fails with `AddrInUse`
//! unless both ask to share it, and the reactors of one server share the accepts.

mod common;

use std::io::{self, Write};
use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver, Sender};

use common::*;
use wavecore::{Conn, Handler, Message, Request, Server, ServerBuilder, Service, Upgrade};

/// A builder for `addr` with one worker.
fn builder_at(addr: std::net::SocketAddr) -> ServerBuilder {
    Server::builder().bind(addr.to_string()).workers(1)
}

/// The error starting a server with `builder` gives; panics if it starts.
fn start_error(builder: ServerBuilder) -> io::Error {
    match builder.start(echo_service(&Closes::default())) {
        Ok(server) => {
            server.handle().shutdown();
            panic!("a second server started on {}", server.local_addr());
        }
        Err(e) => e,
    }
}

/// Whether a WebSocket upgrade through `addr` works (whichever server answers).
fn echoes(addr: std::net::SocketAddr) -> bool {
    let mut ws = ws_connect(addr);
    ws.send(tungstenite::Message::text("hi")).is_ok()
        && ws_read_data(&mut ws) == tungstenite::Message::text("hi")
}

#[test]
fn a_second_server_on_an_address_in_use_fails_with_addr_in_use() {
    let first = TestServer::start(builder().workers(2), echo_service(&Closes::default()));
    for reuse_port in [false, true] {
        let err = start_error(builder_at(first.addr).reuse_port(reuse_port).workers(2));
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
    }
    // The first server is untouched.
    assert!(echoes(first.addr));
}

#[test]
fn a_server_without_reuse_port_cannot_join_servers_with_it() {
    let first = TestServer::start(
        builder().workers(2).reuse_port(true),
        echo_service(&Closes::default()),
    );
    let err = start_error(builder_at(first.addr));
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
    assert!(echoes(first.addr));
}

#[cfg(target_os = "linux")]
#[test]
fn servers_that_both_ask_for_reuse_port_share_the_port() {
    let first = TestServer::start(
        builder().workers(2).reuse_port(true),
        echo_service(&Closes::default()),
    );
    let second = TestServer::start(
        builder_at(first.addr).workers(2).reuse_port(true),
        echo_service(&Closes::default()),
    );
    assert_eq!(second.addr, first.addr);
    assert!(echoes(first.addr));
}

/// Reports the reactor thread of each opened connection; the first one's `on_open`
/// then blocks until released, holding its reactor.
struct Gate {
    opened: Mutex<Sender<String>>,
    hold: Mutex<Option<Receiver<()>>>,
}

struct Held {
    hold: Option<Receiver<()>>,
}

impl Handler for Held {
    fn on_open(&mut self, _conn: &mut Conn<'_>) {
        if let Some(release) = self.hold.take() {
            // Err when the test ends without releasing: stop holding then too.
            let _ = release.recv();
        }
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        conn.send(message);
    }
}

impl Service for Gate {
    type Handler = Held;

    fn upgrade(&self, _request: &Request<'_>) -> Upgrade<Held> {
        // Take the hold before telling the test: told first, the test could open the
        // second connection, whose upgrade on the other reactor could take the hold
        // while this thread is preempted between the two steps.
        let hold = self.hold.lock().unwrap().take();
        let thread = std::thread::current().name().unwrap_or("?").to_owned();
        let _ = self.opened.lock().unwrap().send(thread);
        Upgrade::accept(Held { hold })
    }
}

#[test]
fn a_busy_reactor_does_not_hold_up_accepts_for_the_others() {
    let (opened_tx, opened) = mpsc::channel();
    let (release, hold) = mpsc::channel::<()>();
    let server = TestServer::start(
        builder().workers(2),
        Gate {
            opened: Mutex::new(opened_tx),
            hold: Mutex::new(Some(hold)),
        },
    );
    // Declared after the server, so dropped first if the test fails: the held reactor
    // is let go before the server is shut down.
    let release = release;

    let mut first = tcp(server.addr);
    first
        .write_all(upgrade_request("/", &[], "").as_bytes())
        .unwrap();
    let busy = opened.recv_timeout(IO_TIMEOUT).expect("first upgrade");

    // That reactor is stuck in on_open; another one must accept and upgrade this one.
    let mut second = tcp(server.addr);
    second
        .write_all(upgrade_request("/", &[], "").as_bytes())
        .unwrap();
    assert_eq!(read_response_head(&mut second).status, 101);
    let other = opened.recv_timeout(IO_TIMEOUT).expect("second upgrade");
    assert_ne!(busy, other, "both connections on one reactor");

    release.send(()).unwrap();
    assert_eq!(read_response_head(&mut first).status, 101);
    write_frame(&mut first, true, OP_TEXT, b"free again");
    assert_eq!(read_frame(&mut first).unwrap().payload, b"free again");
}
