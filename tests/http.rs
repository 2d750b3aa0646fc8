//! Plain HTTP on the WebSocket port over real sockets: keep-alive (a page and its
//! assets over one connection), `HEAD`, request bodies up to `max_http_body_size`
//! (413 above it, 411 for chunked), the keep-alive timeout, and an upgrade after
//! HTTP requests on the same connection.

mod common;

use std::io::Write;
use std::net::Shutdown;
use std::time::Duration;

use common::*;
use wavecore::{HttpResponse, Request, Service, Upgrade};

/// A page with two assets; `/echo` answers the request body.
struct Site {
    closes: Closes,
}

impl Service for Site {
    type Handler = Echo;

    fn upgrade(&self, _: &Request<'_>) -> Upgrade<Echo> {
        Upgrade::accept(Echo {
            closes: self.closes.clone(),
        })
    }

    fn http(&self, request: &Request<'_>) -> HttpResponse {
        match request.path() {
            "/" => HttpResponse::html("<script src=app.js></script><link href=app.css>"),
            "/app.js" => HttpResponse::new(200, "console.log(1)")
                .with_header("Content-Type", "text/javascript"),
            "/app.css" => HttpResponse::new(200, "body{}").with_header("Content-Type", "text/css"),
            "/echo" => HttpResponse::new(200, request.body().to_vec()),
            _ => HttpResponse::not_found(),
        }
    }
}

fn site(builder: wavecore::ServerBuilder) -> TestServer {
    TestServer::start(
        builder,
        Site {
            closes: Closes::default(),
        },
    )
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
}

#[test]
fn a_page_and_its_assets_share_one_connection() {
    let server = site(builder());
    let mut stream = tcp(server.addr);
    for (path, body) in [
        ("/", "<script src=app.js></script><link href=app.css>"),
        ("/app.js", "console.log(1)"),
        ("/app.css", "body{}"),
    ] {
        stream.write_all(get(path).as_bytes()).unwrap();
        let reply = read_response(&mut stream);
        assert_eq!(reply.status, 200, "{path}: {reply:?}");
        assert!(!reply.closes(), "{path}: {reply:?}");
        assert_eq!(reply.body_text(), body);
    }
    let stats = server.handle.stats();
    assert_eq!((stats.accepted, stats.http_requests), (1, 3));
    // The client leaves: the server ends the connection too.
    stream.shutdown(Shutdown::Write).unwrap();
    assert!(read_to_end_or_reset(&mut stream));
    assert!(wait_until(|| server
        .handle
        .metrics_text()
        .contains("wavecore_tcp_connections 0")));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = site(builder());
    let mut stream = tcp(server.addr);
    let requests = get("/app.css") + &get("/nope") + &get("/app.js");
    stream.write_all(requests.as_bytes()).unwrap();
    let statuses: Vec<u16> = (0..3).map(|_| read_response(&mut stream).status).collect();
    assert_eq!(statuses, [200, 404, 200]);
}

#[test]
fn head_is_answered_without_a_body() {
    let server = site(builder());
    let mut stream = tcp(server.addr);
    stream
        .write_all(b"HEAD /app.js HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let reply = read_response_head(&mut stream);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("Content-Length"), Some("14"));
    assert_eq!(reply.header("Content-Type"), Some("text/javascript"));
    // No body followed: the next response starts right after the head.
    stream.write_all(get("/app.css").as_bytes()).unwrap();
    assert_eq!(read_response(&mut stream).body_text(), "body{}");
}

#[test]
fn request_bodies_reach_the_service() {
    let server = site(builder());
    let mut stream = tcp(server.addr);
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world")
        .unwrap();
    assert_eq!(read_response(&mut stream).body_text(), "hello world");
    // A body sent in pieces, after the head, on the same connection.
    let body = vec![b'z'; 40_000];
    let head = format!(
        "PUT /echo HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    for piece in body.chunks(7_000) {
        stream.write_all(piece).unwrap();
    }
    let reply = read_response(&mut stream);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, body);
}

#[test]
fn expect_100_continue_gets_100_then_the_response() {
    let server = site(builder());
    let mut stream = tcp(server.addr);
    stream
        .write_all(
            b"POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
        )
        .unwrap();
    let interim = read_response_head(&mut stream);
    assert_eq!(interim.status, 100);
    stream.write_all(b"data").unwrap();
    assert_eq!(read_response(&mut stream).body_text(), "data");
}

#[test]
fn a_body_over_the_limit_is_413_and_the_connection_closes() {
    let server = site(builder().max_http_body_size(1000));
    let mut stream = tcp(server.addr);
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n")
        .unwrap();
    stream.write_all(&[b'x'; 1001]).unwrap();
    let reply = read_response(&mut stream);
    assert_eq!(reply.status, 413, "{reply:?}");
    assert!(reply.closes());
    assert_eq!(
        reply.body_text(),
        "request body over the limit of 1000 bytes"
    );
    assert!(read_to_end_or_reset(&mut stream));
    assert_eq!(server.handle.stats().http_requests, 0);
    assert!(
        server
            .handle
            .metrics_text()
            .contains("wavecore_handshake_refusals_total{reason=\"content_too_large\"} 1")
    );
}

#[test]
fn an_idle_kept_alive_connection_is_closed_after_keep_alive_timeout() {
    let server = site(builder().keep_alive_timeout(Duration::from_millis(200)));
    let mut stream = tcp(server.addr);
    stream.write_all(get("/").as_bytes()).unwrap();
    assert_eq!(read_response(&mut stream).status, 200);
    // Nothing more is sent: the server closes (bounded by the read timeout).
    assert!(read_to_end_or_reset(&mut stream));
    assert!(wait_until(|| server.handle.stats().http_idle_timeouts == 1));
    assert_eq!(server.handle.stats().handshake_timeouts, 0);
}

#[test]
fn an_upgrade_may_follow_http_requests_on_the_same_connection() {
    let server = site(builder());
    let mut stream = tcp(server.addr);
    stream.write_all(get("/app.js").as_bytes()).unwrap();
    assert_eq!(read_response(&mut stream).status, 200);
    stream
        .write_all(upgrade_request("/", &[], "").as_bytes())
        .unwrap();
    assert_eq!(read_response_head(&mut stream).status, 101);
    write_frame(&mut stream, true, OP_TEXT, b"after http");
    assert_eq!(read_frame(&mut stream).unwrap().payload, b"after http");
}
