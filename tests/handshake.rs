//! The opening handshake over raw TCP: refusals and their HTTP responses, plain HTTP
//! requests, the connection limit, and the handshake timeout.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;
use wavecore::{HttpResponse, Request, Service, Upgrade};

/// Accepts upgrades except on `/private` (403), and serves a page on `/`.
struct Site {
    closes: Closes,
}

impl Service for Site {
    type Handler = Echo;

    fn upgrade(&self, request: &Request<'_>) -> Upgrade<Echo> {
        match request.path() {
            "/private" => return Upgrade::refuse(403, "members only"),
            "/whereami" => {
                let authority = request.authority().unwrap_or("none").to_owned();
                return Upgrade::refuse(403, format!("authority {authority}"));
            }
            _ => {}
        }
        Upgrade::accept(Echo {
            closes: self.closes.clone(),
        })
    }

    fn http(&self, request: &Request<'_>) -> HttpResponse {
        match request.path() {
            "/" => HttpResponse::html("<h1>wavecore</h1>"),
            "/socket-only" => HttpResponse::new(426, "use a WebSocket\n"),
            _ => HttpResponse::not_found(),
        }
    }
}

fn site() -> TestServer {
    TestServer::start(
        builder(),
        Site {
            closes: Closes::default(),
        },
    )
}

#[test]
fn missing_key_is_400() {
    let server = site();
    let reply = http_exchange(
        server.addr,
        &upgrade_request("/", &["Sec-WebSocket-Key"], ""),
    );
    assert_eq!(reply.status, 400, "{reply:?}");
    assert_eq!(server.handle.stats().handshake_refusals, 1);
    assert_eq!(server.handle.connections(), 0);
}

/// Whether `reply` lists `option` in its `Connection` field.
fn connection_lists(reply: &HttpReply, option: &str) -> bool {
    reply
        .header("Connection")
        .unwrap_or_default()
        .split(',')
        .any(|o| o.trim().eq_ignore_ascii_case(option))
}

#[test]
fn unsupported_version_is_426_naming_13_and_the_upgrade() {
    let server = site();
    for version in [
        "Sec-WebSocket-Version: 8\r\n",
        "Sec-WebSocket-Version: 14\r\n",
        "Sec-WebSocket-Version: abc\r\n",
        "",
    ] {
        let reply = http_exchange(
            server.addr,
            &upgrade_request("/", &["Sec-WebSocket-Version"], version),
        );
        assert_eq!(reply.status, 426, "{version:?}: {reply:?}");
        assert_eq!(reply.header("Sec-WebSocket-Version"), Some("13"));
        // RFC 9110 section 15.5.22: a 426 names the protocol to upgrade to.
        assert_eq!(reply.header("Upgrade"), Some("websocket"), "{reply:?}");
        assert!(connection_lists(&reply, "upgrade"), "{reply:?}");
        assert!(connection_lists(&reply, "close"), "{reply:?}");
        let fields = |name: &str| {
            reply
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .count()
        };
        assert_eq!(
            (fields("Upgrade"), fields("Connection")),
            (1, 1),
            "{reply:?}"
        );
    }
    // A broken upgrade (a key, but no Upgrade field) is answered the same way.
    let reply = http_exchange(server.addr, &upgrade_request("/", &["Upgrade"], ""));
    assert_eq!(reply.status, 426, "{reply:?}");
    assert_eq!(reply.header("Upgrade"), Some("websocket"));
    assert!(connection_lists(&reply, "upgrade"), "{reply:?}");
}

#[test]
fn a_426_from_the_http_hook_carries_upgrade() {
    let server = site();
    let reply = http_exchange(server.addr, "GET /socket-only HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(reply.status, 426, "{reply:?}");
    assert_eq!(reply.header("Upgrade"), Some("websocket"));
    assert!(connection_lists(&reply, "upgrade"), "{reply:?}");
    assert_eq!(reply.body_text(), "use a WebSocket\n");
}

#[test]
fn service_refusal_sends_its_status_and_reason() {
    let server = site();
    let reply = http_exchange(server.addr, &upgrade_request("/private", &[], ""));
    assert_eq!(reply.status, 403, "{reply:?}");
    assert_eq!(reply.body_text(), "members only");
    assert_eq!(server.handle.connections(), 0);
    // The same service still upgrades elsewhere.
    let mut stream = raw_upgrade(server.addr);
    write_frame(&mut stream, true, OP_TEXT, b"in");
    assert_eq!(read_frame(&mut stream).unwrap().payload, b"in");
}

#[test]
fn plain_get_is_served_by_the_http_hook() {
    let server = site();
    let reply = http_exchange(server.addr, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        reply.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(reply.body_text(), "<h1>wavecore</h1>");

    let reply = http_exchange(server.addr, "GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert_eq!(reply.status, 404, "{reply:?}");
    assert_eq!(server.handle.stats().http_requests, 2);
}

#[test]
fn plain_get_without_http_hook_is_404() {
    let closes = Closes::default();
    let server = TestServer::start(builder(), echo_service(&closes));
    let reply = http_exchange(server.addr, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert_eq!(reply.status, 404, "{reply:?}");
    assert_eq!(reply.body_text(), "not found\n");
}

#[test]
fn connection_limit_answers_503() {
    let closes = Closes::default();
    let server = TestServer::start(builder().max_connections(1), echo_service(&closes));
    let mut first = ws_connect(server.addr);
    first.send(tungstenite::Message::text("one")).unwrap();
    assert_eq!(ws_read_data(&mut first), tungstenite::Message::text("one"));

    let reply = http_exchange(server.addr, &upgrade_request("/", &[], ""));
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(server.handle.stats().refused_over_capacity, 1);

    // The first connection is untouched, and once it is gone there is room again.
    first.send(tungstenite::Message::text("two")).unwrap();
    assert_eq!(ws_read_data(&mut first), tungstenite::Message::text("two"));
    first.close(None).unwrap();
    ws_read_close(&mut first);
    drop(first);
    assert!(wait_until(|| server.handle.stats().open_connections == 0));
    let mut tcp_gone = false;
    for _ in 0..500 {
        // The server lets go of the TCP connection once it saw our EOF.
        let reply = http_exchange(
            server.addr,
            &upgrade_request("/", &["Sec-WebSocket-Key"], ""),
        );
        if reply.status == 400 {
            tcp_gone = true;
            break;
        }
        assert_eq!(reply.status, 503);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(tcp_gone, "room again after the first connection ended");
}

#[test]
fn slow_request_head_is_cut_off_by_the_handshake_timeout() {
    let server = TestServer::start(
        builder().handshake_timeout(Duration::from_millis(300)),
        echo_service(&Closes::default()),
    );
    let mut stream = tcp(server.addr);
    // About 20 s worth of bytes at one per 100 ms: far more than the timeout allows.
    let head = upgrade_request("/", &[], "X-Padding: slowloris-slowloris-slowloris\r\n");
    assert!(head.len() > 150);
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut sent = 0;
    let mut cut_off = false;
    let mut buf = [0u8; 64];
    for &byte in head.as_bytes() {
        if stream.write_all(&[byte]).is_err() {
            cut_off = true;
            break;
        }
        sent += 1;
        // Waits 100 ms for the next byte's turn, or sees the server end the connection.
        match stream.read(&mut buf) {
            Ok(0) => {
                cut_off = true;
                break;
            }
            Ok(n) => panic!("unexpected bytes: {:?}", String::from_utf8_lossy(&buf[..n])),
            Err(e) if is_timeout(&e) => {}
            Err(_) => {
                cut_off = true;
                break;
            }
        }
    }
    assert!(
        cut_off,
        "the server waited for the whole head ({sent} bytes)"
    );
    assert!(sent < head.len());
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    assert!(read_to_end_or_reset(&mut stream));
    assert_eq!(server.handle.stats().handshake_timeouts, 1);
    assert_eq!(server.handle.connections(), 0);
}

#[test]
fn absolute_form_target_is_routed_by_its_path() {
    let server = site();
    // Routing sees the path: /private is refused by the service as usual.
    let target = format!("ws://{}/private?x=1", server.addr);
    let reply = http_exchange(server.addr, &upgrade_request(&target, &[], ""));
    assert_eq!(reply.status, 403, "{reply:?}");
    assert_eq!(reply.body_text(), "members only");

    // Each accepted scheme, any case, upgrades and echoes.
    for scheme in ["ws", "WSS", "http", "HTTPS"] {
        let mut stream = tcp(server.addr);
        let target = format!("{scheme}://{}/chat", server.addr);
        stream
            .write_all(upgrade_request(&target, &[], "").as_bytes())
            .unwrap();
        let reply = read_response_head(&mut stream);
        assert_eq!(reply.status, 101, "{scheme}: {reply:?}");
        write_frame(&mut stream, true, OP_TEXT, scheme.as_bytes());
        assert_eq!(read_frame(&mut stream).unwrap().payload, scheme.as_bytes());
    }

    // An empty path is `/`: plain HTTP gets the page served on `/`.
    let reply = http_exchange(
        server.addr,
        "GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n",
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body_text(), "<h1>wavecore</h1>");
}

#[test]
fn absolute_form_authority_replaces_host() {
    let server = site();
    // The Host field says 127.0.0.1; the target's authority wins (RFC 9112 3.2.2).
    let reply = http_exchange(
        server.addr,
        &upgrade_request("wss://chat.example:8443/whereami", &[], ""),
    );
    assert_eq!(reply.status, 403, "{reply:?}");
    assert_eq!(reply.body_text(), "authority chat.example:8443");
    // In origin-form, the Host field is the authority.
    let reply = http_exchange(server.addr, &upgrade_request("/whereami", &[], ""));
    assert_eq!(reply.body_text(), "authority 127.0.0.1");
}

#[test]
fn other_target_forms_are_400_with_a_reason() {
    let server = site();
    for (target, reason) in [
        (
            "*",
            "WebSocket upgrade requires an origin-form or absolute-form target",
        ),
        (
            "127.0.0.1:9001",
            "WebSocket upgrade requires an origin-form or absolute-form target",
        ),
        (
            "ftp://127.0.0.1/chat",
            "invalid request target: unsupported scheme",
        ),
        (
            "ws://user@127.0.0.1/chat",
            "invalid request target: userinfo not allowed",
        ),
        (
            "ws:/chat",
            "invalid request target: absolute-form without authority",
        ),
        ("chat", "invalid request target"),
    ] {
        let reply = http_exchange(server.addr, &upgrade_request(target, &[], ""));
        assert_eq!(reply.status, 400, "{target}: {reply:?}");
        assert_eq!(reply.body_text(), reason, "{target}");
    }
    let reply = http_exchange(server.addr, "GET * HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(reply.status, 400, "{reply:?}");
    assert_eq!(
        reply.body_text(),
        "asterisk-form target is only for OPTIONS"
    );
    assert_eq!(server.handle.connections(), 0);
}

/// Sends `request` and reads the whole response, then everything after it until the
/// server ends the connection; returns the response and those trailing bytes.
fn exchange_with_trailer(addr: std::net::SocketAddr, request: &[u8]) -> (HttpReply, Vec<u8>) {
    let mut stream = tcp(addr);
    stream.write_all(request).unwrap();
    let mut reply = read_response_head(&mut stream);
    let len: usize = reply.header("Content-Length").unwrap().parse().unwrap();
    reply.body = vec![0; len];
    stream.read_exact(&mut reply.body).expect("body");
    let mut trailer = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => trailer.extend_from_slice(&buf[..n]),
            Err(e) if is_timeout(&e) => panic!("the server did not close"),
            Err(_) => break,
        }
    }
    (reply, trailer)
}

#[test]
fn an_upgrade_with_a_body_is_400_and_the_body_is_never_a_frame() {
    let closes = Closes::default();
    let server = TestServer::start(builder(), echo_service(&closes));
    // The 14-byte body happens to be a masked text frame ("hello, world").
    let frame = encode_frame(true, OP_TEXT, b"hello, world", true);
    let mut chunk = format!("{:x}\r\n", frame.len()).into_bytes();
    chunk.extend_from_slice(&frame);
    chunk.extend_from_slice(b"\r\n0\r\n\r\n");
    for (field, body) in [
        (
            format!("Content-Length: {}\r\n", frame.len()),
            frame.clone(),
        ),
        ("Transfer-Encoding: chunked\r\n".to_owned(), chunk),
        ("Transfer-Encoding: gzip\r\n".to_owned(), frame.clone()),
    ] {
        let mut request = upgrade_request("/", &[], &field).into_bytes();
        request.extend_from_slice(&body);
        let (reply, trailer) = exchange_with_trailer(server.addr, &request);
        assert_eq!(reply.status, 400, "{field}: {reply:?}");
        assert_eq!(reply.body_text(), "WebSocket upgrade must not have a body");
        assert!(
            trailer.is_empty(),
            "{field}: bytes after the refusal: {trailer:?}"
        );
    }
    assert_eq!(server.handle.stats().handshake_refusals, 3);
    assert_eq!(server.handle.connections(), 0);
    assert!(
        closes.lock().unwrap().is_empty(),
        "no connection was opened"
    );
}

#[test]
fn an_upgrade_with_content_length_0_is_accepted() {
    let closes = Closes::default();
    let server = TestServer::start(builder(), echo_service(&closes));
    let mut stream = tcp(server.addr);
    let request = upgrade_request("/", &[], "Content-Length: 0\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    // The frame right behind the head is a frame, not a body.
    write_frame(&mut stream, true, OP_TEXT, b"after an empty body");
    assert_eq!(read_response_head(&mut stream).status, 101);
    assert_eq!(
        read_frame(&mut stream).unwrap().payload,
        b"after an empty body"
    );
}

#[test]
fn ambiguous_body_framing_is_400() {
    let server = site();
    for (fields, reason) in [
        ("Content-Length: abc\r\n", "invalid Content-Length"),
        ("Content-Length: -1\r\n", "invalid Content-Length"),
        ("Content-Length: 1, 1\r\n", "invalid Content-Length"),
        (
            "Content-Length: 99999999999999999999\r\n",
            "invalid Content-Length",
        ),
        (
            "Content-Length: 1\r\nContent-Length: 1\r\n",
            "duplicate Content-Length",
        ),
        (
            "Content-Length: 0\r\nContent-Length: 2\r\n",
            "duplicate Content-Length",
        ),
        (
            "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
            "both Transfer-Encoding and Content-Length",
        ),
    ] {
        for request in [
            upgrade_request("/", &[], fields),
            format!("POST / HTTP/1.1\r\nHost: a\r\n{fields}\r\nabc"),
        ] {
            let reply = http_exchange(server.addr, &request);
            assert_eq!(reply.status, 400, "{request:?}: {reply:?}");
            assert_eq!(reply.body_text(), reason, "{request:?}");
        }
    }
    assert_eq!(server.handle.stats().http_requests, 0);
}

#[test]
fn a_plain_request_with_a_chunked_body_is_411_and_never_reaches_the_hook() {
    let server = site();
    let request =
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let (reply, trailer) = exchange_with_trailer(server.addr, request.as_bytes());
    assert_eq!(reply.status, 411, "{reply:?}");
    assert!(reply.closes(), "{reply:?}");
    assert_eq!(
        reply.body_text(),
        "chunked request bodies are not supported: send Content-Length"
    );
    assert!(trailer.is_empty(), "{trailer:?}");
    assert_eq!(server.handle.stats().http_requests, 0);
    // Bodies with a Content-Length do reach it (tests/http.rs).
}
