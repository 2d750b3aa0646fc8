//! Faults injected into the server's own code (test builds only, see `testing.rs`),
//! over real sockets: a connection's failure stays that connection's, a reactor's
//! failure is reported.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::client::{Client, ClientMessage};
use crate::server::handler::{CloseInfo, Conn, Handler, Message, Request, Upgrade};
use crate::server::testing::{PANIC_IN_REACTOR, PANIC_ON_DELIVERY, PANIC_ON_READ};
use crate::{Server, ServerHandle};

const TOPIC: &str = "room";

type Closes = Arc<Mutex<Vec<u16>>>;

/// On `/sub` subscribes to [`TOPIC`]; every connection publishes what it receives to
/// it and answers "published"; every close code is recorded.
struct Room {
    subscribe: bool,
    closes: Closes,
}

impl Handler for Room {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        if self.subscribe {
            conn.subscribe(TOPIC);
        }
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        conn.publish(TOPIC, message);
        conn.send_text("published");
    }

    fn on_close(&mut self, close: CloseInfo<'_>) {
        self.closes.lock().unwrap().push(close.code.0);
    }
}

fn start() -> (Server, Closes) {
    start_on(Server::builder()).expect("server starts")
}

/// [`start`] with `builder`'s settings; the error if the server does not start.
fn start_on(builder: crate::ServerBuilder) -> std::io::Result<(Server, Closes)> {
    let closes = Closes::default();
    let service_closes = closes.clone();
    let server = builder
        .bind("127.0.0.1:0")
        .workers(1)
        .start(move |request: &Request<'_>| {
            Upgrade::accept(Room {
                subscribe: request.path() == "/sub",
                closes: service_closes.clone(),
            })
        })?;
    Ok((server, closes))
}

fn connect(handle: &ServerHandle, path: &str) -> Client {
    let client = Client::connect(&format!("ws://{}{path}", handle.local_addr())).unwrap();
    client
        .stream()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client
}

/// Reads until a close frame; returns its code.
fn close_code(client: &mut Client) -> u16 {
    loop {
        match client
            .recv()
            .expect("a close frame before the connection ends")
        {
            ClientMessage::Close(Some((code, _))) => return code,
            ClientMessage::Close(None) => return 1005,
            _ => {}
        }
    }
}

fn expect_text(client: &mut Client, text: &str) {
    assert_eq!(client.recv().unwrap(), ClientMessage::Text(text.into()));
}

#[test]
fn a_panic_while_reading_closes_only_that_connection_with_1011() {
    let (server, closes) = start();
    let handle = server.handle();
    let mut bystander = connect(&handle, "/sub");
    let mut victim = connect(&handle, "/");
    victim.send_text(PANIC_ON_READ).unwrap();
    assert_eq!(close_code(&mut victim), 1011);
    assert_eq!(*closes.lock().unwrap(), [1011], "the handler heard 1011");
    // The reactor and the other connection live on.
    bystander.send_text("still here").unwrap();
    expect_text(&mut bystander, "published");
    expect_text(&mut bystander, "still here");
    assert_eq!(handle.stats().internal_errors, 1);
    assert!(handle.failures().is_empty());
    drop((bystander, victim));
    handle.shutdown();
    server.join().expect("no reactor failed");
}

#[test]
fn panics_while_reading_give_io_urings_receive_buffers_back() {
    // Two provided buffers, ten panics each with one of them in the decoder's hands:
    // were one lost per panic, the reactor would read nothing after the second.
    let builder = Server::builder()
        .backend(crate::Backend::IoUring)
        .io_uring_provided_buffers(2);
    let (server, closes) = match start_on(builder) {
        Ok(started) => started,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: io_uring is not available here ({e})");
            return;
        }
        Err(e) => panic!("io_uring must be available in CI: {e}"),
    };
    let handle = server.handle();
    for _ in 0..10 {
        let mut victim = connect(&handle, "/");
        victim.send_text(PANIC_ON_READ).unwrap();
        assert_eq!(close_code(&mut victim), 1011);
    }
    let mut after = connect(&handle, "/sub");
    after.send_text("still reading").unwrap();
    expect_text(&mut after, "published");
    expect_text(&mut after, "still reading");
    assert_eq!(handle.stats().internal_errors, 10);
    assert_eq!(closes.lock().unwrap().len(), 10);
    drop(after);
    handle.shutdown();
    server.join().expect("no reactor failed");
}

#[test]
fn a_panic_while_delivering_is_the_subscribers_not_the_publishers() {
    let (server, closes) = start();
    let handle = server.handle();
    let mut subscribers = [connect(&handle, "/sub"), connect(&handle, "/sub")];
    let mut publisher = connect(&handle, "/");
    publisher.send_text(PANIC_ON_DELIVERY).unwrap();
    for subscriber in &mut subscribers {
        assert_eq!(close_code(subscriber), 1011);
    }
    expect_text(&mut publisher, "published");
    publisher.send_text("after").unwrap();
    expect_text(&mut publisher, "published");
    assert_eq!(handle.stats().internal_errors, 2);
    assert_eq!(*closes.lock().unwrap(), [1011, 1011]);
    assert!(handle.failures().is_empty());
    drop((subscribers, publisher));
    handle.shutdown();
    server.join().expect("no reactor failed");
}

#[test]
fn a_failed_reactor_closes_its_connections_and_is_reported() {
    let (server, closes) = start();
    let handle = server.handle();
    let mut client = connect(&handle, "/sub");
    handle.publish(PANIC_IN_REACTOR, Message::Text("boom"));
    assert_eq!(close_code(&mut client), 1011);
    assert_eq!(*closes.lock().unwrap(), [1011]);
    let failure = server.join().expect_err("the reactor failed");
    assert_eq!(failure.reactor, 0);
    assert!(
        failure.cause.contains("injected fault"),
        "the panic message is kept: {}",
        failure.cause
    );
    assert_eq!(handle.failures(), [failure]);
    // Nothing piles up for the dead reactor.
    handle.publish(TOPIC, Message::Text("into the void"));
    assert!(
        Client::connect(&format!("ws://{}/", handle.local_addr())).is_err(),
        "its listening socket is closed"
    );
}
