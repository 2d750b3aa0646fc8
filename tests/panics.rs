//! A panic in application code is contained: `Service::upgrade` and `Service::http`
//! answer 500, `on_open` closes its connection with 1011, `on_close` is counted; the
//! reactor and every other connection go on, and each counts in `handler_panics`.

mod common;

use std::io::Write;

use common::*;
use tungstenite::Message as WsMessage;
use wavecore::{CloseInfo, Conn, Handler, HttpResponse, Message, Request, Service, Upgrade};

/// Echoes; panics in `on_open` or `on_close` when made for that.
struct Fragile {
    panic_on_open: bool,
    panic_on_close: bool,
    closes: Closes,
}

impl Handler for Fragile {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        if self.panic_on_open {
            panic!("on_open panics, as the test asked");
        }
        conn.send_text("welcome");
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        conn.send(message);
    }

    fn on_close(&mut self, close: CloseInfo<'_>) {
        record_close(&self.closes, close);
        if self.panic_on_close {
            panic!("on_close panics, as the test asked");
        }
    }
}

/// Routes by path: `/upgrade-panics` and `/http-panics` panic in the service itself,
/// `/open-panics` and `/close-panics` in the handler; everything else is healthy.
#[derive(Default)]
struct Routes {
    closes: Closes,
}

impl Service for Routes {
    type Handler = Fragile;

    fn upgrade(&self, request: &Request<'_>) -> Upgrade<Fragile> {
        if request.path() == "/upgrade-panics" {
            panic!("Service::upgrade panics, as the test asked");
        }
        Upgrade::accept(Fragile {
            panic_on_open: request.path() == "/open-panics",
            panic_on_close: request.path() == "/close-panics",
            closes: self.closes.clone(),
        })
    }

    fn http(&self, request: &Request<'_>) -> HttpResponse {
        if request.path() == "/http-panics" {
            panic!("Service::http panics, as the test asked");
        }
        HttpResponse::text("fine\n")
    }
}

/// One reactor, so every connection shares the reactor that saw the panic; and a
/// healthy connection opened first, checked after each panic.
fn start() -> (
    TestServer,
    Closes,
    tungstenite::WebSocket<std::net::TcpStream>,
) {
    let routes = Routes::default();
    let closes = routes.closes.clone();
    let server = TestServer::start(builder().workers(1), routes);
    let mut healthy = ws_connect(server.addr);
    assert_eq!(ws_read_data(&mut healthy), WsMessage::text("welcome"));
    (server, closes, healthy)
}

fn still_echoes(healthy: &mut tungstenite::WebSocket<std::net::TcpStream>) {
    healthy.send(WsMessage::text("still here?")).unwrap();
    assert_eq!(ws_read_data(healthy), WsMessage::text("still here?"));
}

#[test]
fn a_panic_in_service_upgrade_is_500() {
    let (server, closes, mut healthy) = start();
    let reply = http_exchange(server.addr, &upgrade_request("/upgrade-panics", &[], ""));
    assert_eq!(
        (reply.status, reply.body_text()),
        (500, "internal error".into())
    );
    assert_eq!(server.handle.stats().handler_panics, 1);
    still_echoes(&mut healthy);
    assert!(closes.lock().unwrap().is_empty(), "no handler was made");
    assert_eq!(server.handle.connections(), 1);
}

#[test]
fn a_panic_in_service_http_is_500() {
    let (server, _closes, mut healthy) = start();
    let reply = http_exchange(server.addr, "GET /http-panics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        (reply.status, reply.body_text()),
        (500, "internal error\n".into())
    );
    assert_eq!(server.handle.stats().handler_panics, 1);
    // The hook still serves the next request.
    let reply = http_exchange(server.addr, "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((reply.status, reply.body_text()), (200, "fine\n".into()));
    still_echoes(&mut healthy);
}

#[test]
fn a_panic_in_on_open_closes_that_connection_with_1011() {
    let (server, closes, mut healthy) = start();
    let mut stream = tcp(server.addr);
    stream
        .write_all(upgrade_request("/open-panics", &[], "").as_bytes())
        .unwrap();
    assert_eq!(read_response_head(&mut stream).status, 101);
    // No "welcome": the close frame is the first and only frame.
    let close = read_frame(&mut stream).expect("a close frame");
    assert_eq!(close.close_code(), 1011);
    assert_eq!(
        wait_closes(&closes, 1),
        [(1011, "internal error".to_owned(), false)]
    );
    write_frame(&mut stream, true, OP_CLOSE, &close_payload(1011, ""));
    assert_eq!(read_frame(&mut stream), None);
    assert_eq!(server.handle.stats().handler_panics, 1);
    still_echoes(&mut healthy);
    assert!(wait_until(|| server.handle.connections() == 1));
}

#[test]
fn a_panic_in_on_close_is_counted_and_contained() {
    let (server, closes, mut healthy) = start();
    let mut doomed = ws_connect_path(server.addr, "/close-panics");
    assert_eq!(ws_read_data(&mut doomed), WsMessage::text("welcome"));
    doomed.close(None).unwrap();
    // The close was answered before `on_close` ran (and panicked).
    assert_eq!(ws_read_close(&mut doomed).0, 1005);
    assert_eq!(wait_closes(&closes, 1), [(1005, String::new(), true)]);
    assert!(wait_until(|| server.handle.stats().handler_panics == 1));
    still_echoes(&mut healthy);
    assert!(wait_until(|| server.handle.connections() == 1));
}
