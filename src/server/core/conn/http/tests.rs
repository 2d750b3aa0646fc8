//! Plain HTTP on one connection, driven without sockets: bodies, `HEAD`,
//! `100-continue`, keep-alive and its timeout, pipelining and its bound.

use std::sync::Arc;

use crate::server::config::ServerConfig;
use crate::server::conn_api::ConnId;
use crate::server::core::conn::state::ConnState;
use crate::server::core::conn::{Connection, Env, Phase, ticks};
use crate::server::core::reactor_state::ReactorState;
use crate::server::core::timer::Tick;
use crate::server::handler::{Conn, Handler, Message, Request, Service, Upgrade};
use crate::server::http::HttpResponse;

struct Never;

impl Handler for Never {
    fn on_message(&mut self, _: &mut Conn<'_>, _: Message<'_>) {}
}

/// Answers `METHOD PATH BODY`; `/close` asks to close, `/panic` panics, `/big`
/// answers 4 KiB.
struct Site;

impl Service for Site {
    type Handler = Never;

    fn upgrade(&self, _: &Request<'_>) -> Upgrade<Never> {
        Upgrade::accept(Never)
    }

    fn http(&self, request: &Request<'_>) -> HttpResponse {
        let body = String::from_utf8_lossy(request.body());
        let text = format!("{} {} {body}", request.method(), request.path());
        match request.path() {
            "/close" => HttpResponse::text(text).with_header("Connection", "close"),
            "/panic" => panic!("site bug"),
            "/big" => HttpResponse::text(vec![b'x'; 4096]),
            _ => HttpResponse::text(text),
        }
    }
}

struct Harness {
    conn: Connection<Never>,
    reactor: ReactorState,
    config: ServerConfig,
}

impl Harness {
    fn new(config: ServerConfig) -> Self {
        let state = ConnState::new(0, ConnId(1), "127.0.0.1:5000".parse().unwrap(), 0);
        Self {
            conn: Connection::new(state, &config, 0),
            reactor: ReactorState::new(Arc::default(), Arc::default()),
            config,
        }
    }

    /// Feeds bytes; returns what the connection wrote (everything: a test socket
    /// that takes all).
    fn feed(&mut self, bytes: &[u8]) -> String {
        let mut data = bytes.to_vec();
        let mut env = Env {
            service: &Site,
            config: &self.config,
            reactor: &mut self.reactor,
        };
        self.conn.receive(&mut data, &mut env);
        String::from_utf8(std::mem::take(&mut self.reactor.cork)).unwrap()
    }

    fn tick(&mut self, now: Tick) {
        self.reactor.now = now;
        let mut env = Env {
            service: &Site,
            config: &self.config,
            reactor: &mut self.reactor,
        };
        self.conn.on_timer(&mut env);
    }

    fn kept_alive(&self) -> bool {
        matches!(self.conn.phase, Phase::KeepAlive)
    }
}

/// The bodies of the responses in `out`, in order.
fn bodies(out: &str) -> Vec<&str> {
    let mut rest = out;
    let mut bodies = Vec::new();
    while let Some(end) = rest.find("\r\n\r\n") {
        let head = &rest[..end];
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        let body_len = if head.starts_with("HTTP/1.1 100") {
            0
        } else {
            len
        };
        bodies.push(&rest[end + 4..end + 4 + body_len]);
        rest = &rest[end + 4 + body_len..];
    }
    bodies
}

#[test]
fn a_body_with_its_head_reaches_the_service_and_the_connection_stays() {
    let mut h = Harness::new(ServerConfig::default());
    let out = h.feed(b"POST /api HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(!out.contains("Connection:"), "{out}");
    assert_eq!(bodies(&out), ["POST /api hello"]);
    assert!(h.kept_alive());
    // The next request on the same connection.
    let out = h.feed(b"GET /two HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(bodies(&out), ["GET /two "]);
    assert_eq!(h.reactor.stats.snapshot().http_requests, 2);
}

#[test]
fn a_body_split_across_reads_is_gathered() {
    let mut h = Harness::new(ServerConfig::default());
    assert_eq!(
        h.feed(b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhel"),
        ""
    );
    assert!(matches!(h.conn.phase, Phase::Body(_)));
    assert_eq!(h.feed(b"lo w"), "");
    // The rest of the body and the start of a pipelined request.
    let out = h.feed(b"orldGET /next HTTP/1.1\r\n");
    assert_eq!(bodies(&out), ["PUT /x hello world"]);
    assert!(matches!(h.conn.phase, Phase::Handshake(_)));
    let out = h.feed(b"Host: a\r\n\r\n");
    assert_eq!(bodies(&out), ["GET /next "]);
}

#[test]
fn expect_100_continue_is_answered_before_the_body() {
    let mut h = Harness::new(ServerConfig::default());
    let out = h
        .feed(b"POST /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
    assert_eq!(out, "HTTP/1.1 100 Continue\r\n\r\n");
    let out = h.feed(b"abc");
    assert_eq!(bodies(&out), ["POST /up abc"]);
}

#[test]
fn a_body_over_the_limit_is_413_and_closes() {
    let config = ServerConfig {
        max_http_body_size: 4,
        ..ServerConfig::default()
    };
    let mut h = Harness::new(config);
    let out =
        h.feed(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    assert!(
        out.starts_with("HTTP/1.1 413 Content Too Large\r\n"),
        "{out}"
    );
    assert!(out.contains("\r\nConnection: close\r\n"));
    assert!(!out.contains("100 Continue"));
    assert!(h.conn.lingers());
    // The body that follows anyway is never a request.
    assert_eq!(h.feed(b"GET / HTTP/1.1\r\n\r\n"), "");
    // At the limit is fine.
    let mut h = Harness::new(ServerConfig {
        max_http_body_size: 4,
        ..ServerConfig::default()
    });
    let out = h.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nfour");
    assert_eq!(bodies(&out), ["POST / four"]);
}

#[test]
fn head_gets_the_head_of_the_get_response() {
    let mut h = Harness::new(ServerConfig::default());
    let out = h.feed(b"HEAD /big HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("\r\nContent-Length: 4096\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\n"), "no body: {out}");
    assert!(h.kept_alive());
}

#[test]
fn connection_close_http_1_0_and_service_close_end_the_connection() {
    for (request, closes) in [
        (
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            true,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
            false,
        ),
        ("GET / HTTP/1.0\r\n\r\n", true),
        ("GET /close HTTP/1.1\r\nHost: a\r\n\r\n", true),
    ] {
        let mut h = Harness::new(ServerConfig::default());
        let out = h.feed(request.as_bytes());
        assert_eq!(out.contains("\r\nConnection: close\r\n"), closes, "{out}");
        assert_eq!(h.conn.is_finishing(), closes, "{request:?}");
        assert_eq!(h.kept_alive(), !closes, "{request:?}");
    }
}

#[test]
fn a_panicking_service_gets_500_and_the_connection_goes_on() {
    let mut h = Harness::new(ServerConfig::default());
    let out = h.feed(b"GET /panic HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(out.starts_with("HTTP/1.1 500"), "{out}");
    assert_eq!(h.reactor.stats.snapshot().handler_panics, 1);
    assert!(h.kept_alive());
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let mut h = Harness::new(ServerConfig::default());
    let out = h.feed(
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n\
          POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi\
          GET /3 HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    assert_eq!(bodies(&out), ["GET /1 ", "POST /2 hi", "GET /3 "]);
    assert!(h.kept_alive());
}

#[test]
fn unread_responses_past_max_backpressure_close_the_connection() {
    let config = ServerConfig {
        max_backpressure: 10_000,
        ..ServerConfig::default()
    };
    let mut h = Harness::new(config);
    let requests = "GET /big HTTP/1.1\r\nHost: a\r\n\r\n".repeat(5);
    let out = h.feed(requests.as_bytes());
    // 4 KiB each: the fourth response finds over 12 KiB unread and is the last.
    let answered = bodies(&out);
    assert_eq!(answered.len(), 4, "{}", out.len());
    assert_eq!(out.matches("Connection: close").count(), 1);
    assert!(h.conn.is_finishing());
}

#[test]
fn an_idle_kept_alive_connection_is_closed_at_keep_alive_timeout() {
    let mut h = Harness::new(ServerConfig::default());
    h.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let due = h.conn.next_due(&h.config).unwrap();
    assert_eq!(due, ticks(h.config.keep_alive_timeout));
    h.tick(due - 1);
    assert!(h.kept_alive());
    h.tick(due);
    assert!(h.conn.is_done());
    assert_eq!(h.reactor.stats.snapshot().http_idle_timeouts, 1);
    assert_eq!(h.reactor.stats.snapshot().handshake_timeouts, 0);
}

#[test]
fn a_started_request_gets_handshake_timeout() {
    let mut h = Harness::new(ServerConfig::default());
    h.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    h.tick(3);
    h.feed(b"GET / HT");
    let due = h.conn.next_due(&h.config).unwrap();
    assert_eq!(due, 3 + ticks(h.config.handshake_timeout));
    h.tick(due);
    assert!(h.conn.is_done());
    assert_eq!(h.reactor.stats.snapshot().handshake_timeouts, 1);
}

#[test]
fn chunked_bodies_are_411() {
    let mut h = Harness::new(ServerConfig::default());
    let out = h.feed(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    assert!(out.starts_with("HTTP/1.1 411 Length Required\r\n"), "{out}");
    assert!(out.ends_with("chunked request bodies are not supported: send Content-Length"));
    assert!(h.conn.is_finishing());
}

#[test]
fn a_kept_alive_connection_may_still_upgrade() {
    let mut h = Harness::new(ServerConfig::default());
    h.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let out = h.feed(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert!(out.starts_with("HTTP/1.1 101"), "{out}");
    assert!(h.conn.is_open());
}
