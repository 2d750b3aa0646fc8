//! Requests refused before any upgrade, over real sockets: `431` for a head past
//! `max_handshake_bytes` or `max_headers`, `405` for an upgrade that is not a `GET`.
//! Neither reaches the `Service`, and each answer names its reason.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use wavecore::{HttpResponse, Request, Service, Upgrade};

/// Accepts every upgrade and answers every plain request with 200, counting both.
#[derive(Clone, Default)]
struct Counting {
    calls: Arc<AtomicUsize>,
}

impl Service for Counting {
    type Handler = Echo;

    fn upgrade(&self, _request: &Request<'_>) -> Upgrade<Echo> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Upgrade::accept(Echo::default())
    }

    fn http(&self, _request: &Request<'_>) -> HttpResponse {
        self.calls.fetch_add(1, Ordering::SeqCst);
        HttpResponse::text("served\n")
    }
}

const HEAD_LIMIT: usize = 1024;
const HEADER_LIMIT: usize = 16;

fn start() -> (TestServer, Counting) {
    let service = Counting::default();
    let server = TestServer::start(
        builder()
            .max_handshake_bytes(HEAD_LIMIT)
            .max_headers(HEADER_LIMIT),
        service.clone(),
    );
    (server, service)
}

/// `count` extra header lines, each of `len` bytes with its CRLF.
fn filler(count: usize, len: usize) -> String {
    (0..count)
        .map(|i| {
            let name = format!("X-Filler-{i}: ");
            format!("{name}{}\r\n", "a".repeat(len - name.len() - 2))
        })
        .collect()
}

/// An upgrade request of exactly `len` bytes (one filler field makes up the length).
fn upgrade_of_len(len: usize) -> String {
    let bare = upgrade_request("/", &[], "").len();
    let request = upgrade_request("/", &[], &filler(1, len - bare));
    assert_eq!(request.len(), len);
    request
}

/// A plain `GET` of exactly `len` bytes.
fn plain_of_len(len: usize) -> String {
    let base = "GET / HTTP/1.1\r\nHost: x\r\n";
    let request = format!("{base}{}\r\n", filler(1, len - base.len() - 2));
    assert_eq!(request.len(), len);
    request
}

#[test]
fn a_head_past_max_handshake_bytes_is_431() {
    let (server, service) = start();
    // Exactly at the limit: accepted, so the limit is the setting and not below it.
    let mut stream = tcp(server.addr);
    std::io::Write::write_all(&mut stream, upgrade_of_len(HEAD_LIMIT).as_bytes()).unwrap();
    assert_eq!(read_response_head(&mut stream).status, 101);
    drop(stream);

    for request in [
        // One byte over, as a plain request and as an upgrade.
        plain_of_len(HEAD_LIMIT + 1),
        upgrade_of_len(HEAD_LIMIT + 1),
        // Far over, and never ended by a blank line.
        format!("GET / HTTP/1.1\r\nHost: x\r\n{}", filler(20, 500)),
    ] {
        let reply = http_exchange(server.addr, &request);
        assert_eq!(reply.status, 431, "{reply:?}");
        assert_eq!(reply.body_text(), "request head too large");
    }
    assert_eq!(
        service.calls.load(Ordering::SeqCst),
        1,
        "only the head that fit"
    );
    assert_eq!(server.handle.stats().handshake_refusals, 3);
}

#[test]
fn more_headers_than_max_headers_is_431() {
    let (server, service) = start();
    // The upgrade's five standard fields plus filler up to exactly the limit: accepted.
    let ok = upgrade_request("/", &[], &filler(HEADER_LIMIT - 5, 20));
    let mut stream = tcp(server.addr);
    std::io::Write::write_all(&mut stream, ok.as_bytes()).unwrap();
    assert_eq!(read_response_head(&mut stream).status, 101);
    drop(stream);

    let reply = http_exchange(
        server.addr,
        &upgrade_request("/", &[], &filler(HEADER_LIMIT - 4, 20)),
    );
    assert_eq!(reply.status, 431, "{reply:?}");
    assert_eq!(reply.body_text(), "too many header fields");
    assert_eq!(service.calls.load(Ordering::SeqCst), 1);
    assert_eq!(server.handle.stats().handshake_refusals, 1);
}

#[test]
fn an_upgrade_that_is_not_a_get_is_405_allowing_get() {
    let (server, service) = start();
    for method in ["POST", "PUT", "DELETE", "get"] {
        let request = upgrade_request("/", &[], "").replacen("GET", method, 1);
        let reply = http_exchange(server.addr, &request);
        assert_eq!(reply.status, 405, "{method}: {reply:?}");
        assert_eq!(reply.header("Allow"), Some("GET"), "{method}");
        assert_eq!(reply.body_text(), "WebSocket upgrade requires GET");
    }
    // A plain POST is the HTTP hook's to answer: 405 is about upgrades only.
    let reply = http_exchange(server.addr, "POST /form HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((reply.status, reply.body_text()), (200, "served\n".into()));
    assert_eq!(
        service.calls.load(Ordering::SeqCst),
        1,
        "the hook, not upgrade"
    );
    assert_eq!(server.handle.stats().handshake_refusals, 4);
    assert_eq!(server.handle.connections(), 0);
}
