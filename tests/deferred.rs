//! Upgrades and HTTP answers decided later, on other threads (`Upgrade::defer`,
//! `HttpResponse::defer`), over real sockets: accept and refuse, the bounds
//! (`max_pending_requests`, `handshake_timeout`), a client that leaves, a shutdown,
//! permessage-deflate negotiated from the deferred request's offer, and keep-alive
//! with pipelined requests answered in order.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::*;
use wavecore::{
    Conn, DeflateConfig, Handler, HttpResponse, Message, PendingResponse, PendingUpgrade, Request,
    Service, TooLate, Upgrade,
};

/// Echoes, and counts itself alive (dropped handlers decrement).
struct Counted {
    alive: Arc<AtomicUsize>,
}

impl Counted {
    fn new(alive: &Arc<AtomicUsize>) -> Self {
        alive.fetch_add(1, Ordering::SeqCst);
        Self {
            alive: alive.clone(),
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.alive.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Handler for Counted {
    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        conn.send(message);
    }
}

/// Defers every upgrade and every HTTP request: pending ones go to the test through
/// channels, which decides them when it likes.
struct Later {
    upgrades: Mutex<mpsc::Sender<PendingUpgrade<Counted>>>,
    requests: Mutex<mpsc::Sender<PendingResponse>>,
}

impl Service for Later {
    type Handler = Counted;

    fn upgrade(&self, _: &Request<'_>) -> Upgrade<Counted> {
        let to_test = self.upgrades.lock().unwrap().clone();
        Upgrade::defer(move |pending| to_test.send(pending).unwrap())
    }

    fn http(&self, request: &Request<'_>) -> HttpResponse {
        if request.path() == "/now" {
            return HttpResponse::text("now\n");
        }
        let to_test = self.requests.lock().unwrap().clone();
        HttpResponse::defer(move |pending| to_test.send(pending).unwrap())
    }
}

type Pendings = (
    mpsc::Receiver<PendingUpgrade<Counted>>,
    mpsc::Receiver<PendingResponse>,
);

fn later() -> (Later, Pendings) {
    let (upgrades, upgrades_rx) = mpsc::channel();
    let (requests, requests_rx) = mpsc::channel();
    let service = Later {
        upgrades: Mutex::new(upgrades),
        requests: Mutex::new(requests),
    };
    (service, (upgrades_rx, requests_rx))
}

fn next<T>(rx: &mpsc::Receiver<T>) -> T {
    rx.recv_timeout(IO_TIMEOUT)
        .expect("the service deferred a request")
}

/// Sends an upgrade request on a fresh socket, with `extra` header lines.
fn start_upgrade(server: &TestServer, extra: &str) -> std::net::TcpStream {
    let mut stream = tcp(server.addr);
    stream
        .write_all(upgrade_request("/", &[], extra).as_bytes())
        .unwrap();
    stream
}

#[test]
fn a_deferred_upgrade_accepted_from_another_thread_opens_and_echoes() {
    let (service, (upgrades, _)) = later();
    let server = TestServer::start(builder(), service);
    let alive = Arc::new(AtomicUsize::new(0));
    let mut stream = start_upgrade(&server, "Cookie: session=alice\r\n");
    let pending = next(&upgrades);
    assert_eq!(
        pending.request().header_str("cookie"),
        Some("session=alice")
    );
    assert_eq!(pending.request().path(), "/");
    assert_eq!(server.handle.stats().pending_requests, 1);
    let worker = {
        let alive = alive.clone();
        thread::spawn(move || pending.accept(Counted::new(&alive)))
    };
    let handle = worker.join().unwrap().expect("in time");
    let reply = read_response_head(&mut stream);
    assert_eq!(reply.status, 101);
    write_frame(&mut stream, true, 1, b"hello");
    let echo = read_frame(&mut stream).unwrap();
    assert_eq!(echo.payload, b"hello");
    assert!(!handle.is_gone());
    assert_eq!(server.handle.stats().pending_requests, 0);
}

#[test]
fn a_deferred_refusal_sends_its_status_and_reason() {
    let (service, (upgrades, _)) = later();
    let server = TestServer::start(builder(), service);
    let mut stream = start_upgrade(&server, "");
    let pending = next(&upgrades);
    thread::spawn(move || pending.refuse(401, "log in first"))
        .join()
        .unwrap()
        .unwrap();
    let reply = read_response(&mut stream);
    assert_eq!(reply.status, 401);
    assert_eq!(reply.body_text(), "log in first");
    assert!(reply.closes());
}

#[test]
fn other_connections_are_served_while_an_upgrade_waits() {
    let (upgrades, upgrades_rx) = mpsc::channel();
    let upgrades = Mutex::new(upgrades);
    let alive = Arc::new(AtomicUsize::new(0));
    let counted = alive.clone();
    let service = move |request: &Request<'_>| {
        if request.path() == "/slow" {
            let to_test = upgrades.lock().unwrap().clone();
            Upgrade::defer(move |pending: PendingUpgrade<Counted>| to_test.send(pending).unwrap())
        } else {
            Upgrade::accept(Counted::new(&counted))
        }
    };
    let server = TestServer::start(builder(), service);
    let mut waiting = tcp(server.addr);
    waiting
        .write_all(upgrade_request("/slow", &[], "").as_bytes())
        .unwrap();
    let pending = next(&upgrades_rx);
    for i in 0..20 {
        let mut ws = ws_connect(server.addr);
        ws.send(tungstenite::Message::text(format!("m{i}")))
            .unwrap();
        assert_eq!(
            ws_read_data(&mut ws),
            tungstenite::Message::text(format!("m{i}"))
        );
    }
    pending.accept(Counted::new(&alive)).unwrap();
    assert_eq!(read_response_head(&mut waiting).status, 101);
}

#[test]
fn a_client_that_leaves_frees_its_slot_and_the_completion_learns_too_late() {
    let (service, (upgrades, _)) = later();
    let server = TestServer::start(builder(), service);
    let alive = Arc::new(AtomicUsize::new(0));
    let stream = start_upgrade(&server, "");
    let pending = next(&upgrades);
    drop(stream);
    assert!(wait_until(|| server.handle.stats().pending_requests == 0));
    assert!(wait_until(|| server
        .handle
        .metrics_text()
        .contains("wavecore_tcp_connections 0")));
    assert_eq!(pending.accept(Counted::new(&alive)).unwrap_err(), TooLate);
    assert_eq!(
        alive.load(Ordering::SeqCst),
        0,
        "the late handler was dropped"
    );
}

#[test]
fn handshake_timeout_answers_503_and_a_later_completion_is_too_late() {
    let (service, (upgrades, _)) = later();
    let server = TestServer::start(
        builder().handshake_timeout(Duration::from_millis(300)),
        service,
    );
    let alive = Arc::new(AtomicUsize::new(0));
    let mut stream = start_upgrade(&server, "");
    let pending = next(&upgrades);
    let reply = read_response(&mut stream);
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("Retry-After"), Some("1"));
    assert_eq!(pending.accept(Counted::new(&alive)).unwrap_err(), TooLate);
    assert_eq!(alive.load(Ordering::SeqCst), 0);
    assert!(server.handle.stats().handshake_timeouts >= 1);
    assert!(
        server
            .handle
            .metrics_text()
            .contains("reason=\"pending\"} 1")
    );
}

#[test]
fn past_max_pending_requests_an_upgrade_gets_503_with_retry_after() {
    let (service, (upgrades, _)) = later();
    let server = TestServer::start(builder().max_pending_requests(2), service);
    let _a = start_upgrade(&server, "");
    let _b = start_upgrade(&server, "");
    let (pa, pb) = (next(&upgrades), next(&upgrades));
    let mut c = start_upgrade(&server, "");
    let reply = read_response(&mut c);
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("Retry-After"), Some("1"));
    assert!(
        upgrades.recv_timeout(Duration::from_millis(200)).is_err(),
        "the third was never handed to the service"
    );
    // Places come back as requests are answered.
    pa.refuse(403, "no").unwrap();
    pb.refuse(403, "no").unwrap();
    assert!(wait_until(|| server.handle.stats().pending_requests == 0));
    let _d = start_upgrade(&server, "");
    next(&upgrades);
}

#[test]
fn a_shutdown_answers_waiting_upgrades_503() {
    let (service, (upgrades, _)) = later();
    let mut server = TestServer::start(builder(), service);
    let alive = Arc::new(AtomicUsize::new(0));
    let mut stream = start_upgrade(&server, "");
    let pending = next(&upgrades);
    server.handle.shutdown();
    let reply = read_response(&mut stream);
    assert_eq!(reply.status, 503);
    assert_eq!(pending.accept(Counted::new(&alive)).unwrap_err(), TooLate);
    assert!(server.join());
}

#[test]
fn a_pending_upgrade_dropped_unanswered_is_refused_with_500() {
    let (service, (upgrades, _)) = later();
    let server = TestServer::start(builder(), service);
    let mut stream = start_upgrade(&server, "");
    drop(next(&upgrades));
    assert_eq!(read_response(&mut stream).status, 500);
}

#[test]
fn a_panic_in_defer_is_contained_and_answered_500() {
    let service = |_: &Request<'_>| {
        Upgrade::defer(|_: PendingUpgrade<Counted>| panic!("the deferral failed"))
    };
    let server = TestServer::start(builder(), service);
    let mut stream = start_upgrade(&server, "");
    assert_eq!(read_response(&mut stream).status, 500);
    let mut ws_server_still_up = tcp(server.addr);
    ws_server_still_up
        .write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut ws_server_still_up).status, 404);
}

#[test]
fn deflate_is_negotiated_from_the_offer_of_the_deferred_request() {
    let (service, (upgrades, _)) = later();
    let server = TestServer::start(
        builder().permessage_deflate(DeflateConfig::default()),
        service,
    );
    let alive = Arc::new(AtomicUsize::new(0));
    let mut stream = start_upgrade(
        &server,
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
         Sec-WebSocket-Protocol: chat, other\r\n",
    );
    let pending = next(&upgrades);
    let upgrade = Upgrade::accept(Counted::new(&alive))
        .with_protocol("chat")
        .with_header("X-Decided", "later");
    pending.complete(upgrade).unwrap().expect("a handle");
    let reply = read_response_head(&mut stream);
    assert_eq!(reply.status, 101);
    assert_eq!(reply.header("Sec-WebSocket-Protocol"), Some("chat"));
    assert_eq!(reply.header("X-Decided"), Some("later"));
    assert!(
        reply
            .header("Sec-WebSocket-Extensions")
            .is_some_and(|e| e.starts_with("permessage-deflate")),
        "{reply:?}"
    );
}

#[test]
fn deferred_http_answers_keep_alive_and_pipelined_requests_in_order() {
    let (service, (_, requests)) = later();
    let server = TestServer::start(builder(), service);
    let mut stream = tcp(server.addr);
    // Three pipelined requests: deferred, immediate, deferred (with a body).
    stream
        .write_all(
            b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n\
              GET /now HTTP/1.1\r\nHost: a\r\n\r\n\
              POST /third HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        )
        .unwrap();
    let first = next(&requests);
    assert_eq!(first.request().path(), "/first");
    assert!(
        requests.recv_timeout(Duration::from_millis(200)).is_err(),
        "the later requests wait for the first answer"
    );
    thread::spawn(move || first.respond(HttpResponse::text("first\n")))
        .join()
        .unwrap()
        .unwrap();
    let third = next(&requests);
    assert_eq!(third.request().path(), "/third");
    assert_eq!(third.request().body(), b"hello");
    third.respond(HttpResponse::text("third\n")).unwrap();
    let replies: Vec<String> = (0..3)
        .map(|_| read_response(&mut stream).body_text())
        .collect();
    assert_eq!(replies, ["first\n", "now\n", "third\n"]);
    // Still alive for a fourth.
    stream
        .write_all(b"GET /now HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut stream).body_text(), "now\n");
}

#[test]
fn a_deferred_http_answer_after_the_timeout_is_too_late() {
    let (service, (_, requests)) = later();
    let server = TestServer::start(
        builder().handshake_timeout(Duration::from_millis(300)),
        service,
    );
    let mut stream = tcp(server.addr);
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let pending = next(&requests);
    assert_eq!(read_response(&mut stream).status, 503);
    assert_eq!(
        pending.respond(HttpResponse::text("late\n")).unwrap_err(),
        TooLate
    );
}
