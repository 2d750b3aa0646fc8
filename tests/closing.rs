//! How connections end: the close handshake and its codes, protocol errors answered
//! with the right close code, EOF without a close frame, and graceful shutdown.

mod common;

use std::io::Write;
use std::net::Shutdown;

use common::*;
use tungstenite::Message as WsMessage;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use wavecore::{CloseCode, CloseInfo, Conn, Handler, Message, Request, Upgrade};

#[test]
fn client_close_code_is_echoed_and_seen_by_the_handler() {
    let closes = Closes::default();
    let server = TestServer::start(builder(), echo_service(&closes));
    let mut ws = ws_connect(server.addr);
    ws.close(Some(CloseFrame {
        code: WsCloseCode::from(4000),
        reason: "bye".into(),
    }))
    .unwrap();
    let (code, _) = ws_read_close(&mut ws);
    assert_eq!(code, 4000, "the server's close frame echoes the code");
    assert_eq!(wait_closes(&closes, 1), [(4000, "bye".to_owned(), true)]);
    assert!(wait_until(|| server.handle.connections() == 0));
}

#[test]
fn close_without_code_is_answered_and_seen_as_1005() {
    let closes = Closes::default();
    let server = TestServer::start(builder(), echo_service(&closes));
    let mut stream = raw_upgrade(server.addr);
    write_frame(&mut stream, true, OP_CLOSE, b"");
    assert_eq!(read_frame(&mut stream).expect("close").close_code(), 1005);
    assert!(read_frame(&mut stream).is_none(), "EOF after the close");
    assert_eq!(wait_closes(&closes, 1), [(1005, String::new(), true)]);
}

/// Closes the connection with 4001 "x" when told to; records `on_close`.
struct Closer {
    closes: Closes,
}

impl Handler for Closer {
    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        if message == Message::Text("close me") {
            conn.close(CloseCode(4001), "x");
        } else {
            conn.send(message);
        }
    }

    fn on_close(&mut self, close: CloseInfo<'_>) {
        record_close(&self.closes, close);
    }
}

#[test]
fn server_initiated_close_reaches_the_client() {
    let closes = Closes::default();
    let service = {
        let closes = closes.clone();
        move |_: &Request<'_>| {
            Upgrade::accept(Closer {
                closes: closes.clone(),
            })
        }
    };
    let server = TestServer::start(builder(), service);
    let mut ws = ws_connect(server.addr);
    ws.send(WsMessage::text("close me")).unwrap();
    assert_eq!(ws_read_close(&mut ws), (4001, "x".to_owned()));
    assert_eq!(wait_closes(&closes, 1), [(4001, "x".to_owned(), false)]);
    assert!(wait_until(|| server.handle.connections() == 0));
}

#[test]
fn close_timeout_drops_a_peer_that_never_answers_our_close() {
    let closes = Closes::default();
    let service = {
        let closes = closes.clone();
        move |_: &Request<'_>| {
            Upgrade::accept(Closer {
                closes: closes.clone(),
            })
        }
    };
    // Nothing else can end the connection: no pings, no shutdown.
    let builder = builder()
        .ping_interval(None)
        .close_timeout(std::time::Duration::from_millis(200));
    let server = TestServer::start(builder, service);
    let mut stream = raw_upgrade(server.addr);
    write_frame(&mut stream, true, OP_TEXT, b"close me");
    assert_eq!(read_frame(&mut stream).expect("close").close_code(), 4001);
    assert_eq!(wait_closes(&closes, 1), [(4001, "x".to_owned(), false)]);
    // Never answer: at the close timeout the server drops the TCP connection (a
    // broken timeout leaves this read to time out, which fails the test).
    assert_eq!(read_frame(&mut stream), None);
}

#[test]
fn eof_without_close_frame_is_1006() {
    let closes = Closes::default();
    let server = TestServer::start(builder(), echo_service(&closes));
    let mut stream = raw_upgrade(server.addr);
    write_frame(&mut stream, true, OP_TEXT, b"hi");
    assert_eq!(read_frame(&mut stream).unwrap().payload, b"hi");
    stream.shutdown(Shutdown::Write).unwrap();
    assert_eq!(wait_closes(&closes, 1), [(1006, String::new(), false)]);
    assert!(read_to_end_or_reset(&mut stream), "the server drops it");
    assert!(wait_until(|| server.handle.connections() == 0));
}

/// Sends `frames` on a fresh upgraded connection (to a server with a 1 KiB message
/// limit) and returns the code of the server's close frame, checking the connection
/// then ends and the handler saw the same code.
fn close_code_after(frames: &[Vec<u8>]) -> u16 {
    let closes = Closes::default();
    let server = TestServer::start(builder().max_message_size(1024), echo_service(&closes));
    let mut stream = raw_upgrade(server.addr);
    for frame in frames {
        // The server may close (and reset) before the last frames are written.
        if stream.write_all(frame).is_err() {
            break;
        }
    }
    let code = read_close_code(&mut stream);
    assert!(read_to_end_or_reset(&mut stream), "the server ends it");
    let seen = wait_closes(&closes, 1);
    assert_eq!(
        (seen[0].0, seen[0].2),
        (code, false),
        "on_close saw {seen:?}"
    );
    assert_eq!(server.handle.stats().protocol_errors, 1);
    code
}

#[test]
fn oversized_message_is_1009() {
    let big = vec![b'a'; 2000];
    assert_eq!(
        close_code_after(&[encode_frame(true, OP_BINARY, &big, true)]),
        1009
    );
    // The limit is on the message, all fragments together.
    let part = vec![b'a'; 600];
    assert_eq!(
        close_code_after(&[
            encode_frame(false, OP_TEXT, &part, true),
            encode_frame(true, OP_CONT, &part, true),
        ]),
        1009
    );
}

#[test]
fn max_frame_size_from_the_builder_limits_each_frame_not_the_message() {
    let closes = Closes::default();
    let server = TestServer::start(
        builder().max_frame_size(1000).max_message_size(1 << 20),
        echo_service(&closes),
    );
    // Frames of exactly the limit make a message three times its size: echoed whole.
    let mut stream = raw_upgrade(server.addr);
    let part = vec![b'f'; 1000];
    write_frame(&mut stream, false, OP_BINARY, &part);
    write_frame(&mut stream, false, OP_CONT, &part);
    write_frame(&mut stream, true, OP_CONT, &part);
    let echo = read_frame(&mut stream).expect("the echo");
    assert_eq!((echo.opcode, echo.payload.len()), (OP_BINARY, 3000));
    // One byte more in a single frame: 1009, before its payload is even sent.
    let frame = encode_frame(true, OP_BINARY, &[b'f'; 1001], true);
    stream.write_all(&frame[..8]).unwrap();
    assert_eq!(read_close_code(&mut stream), 1009);
    assert!(read_to_end_or_reset(&mut stream), "the server ends it");
    let seen = wait_closes(&closes, 1);
    assert_eq!((seen[0].0, seen[0].2), (1009, false), "{seen:?}");
    assert_eq!(server.handle.stats().protocol_errors, 1);
}

#[test]
fn invalid_utf8_is_1007() {
    assert_eq!(
        close_code_after(&[encode_frame(true, OP_TEXT, b"ok \xff\xfe", true)]),
        1007
    );
    // A message may not end inside a code point.
    assert_eq!(
        close_code_after(&[encode_frame(true, OP_TEXT, b"price: \xe2\x82", true)]),
        1007
    );
}

#[test]
fn invalid_utf8_across_fragments_is_1007() {
    // "€" is E2 82 AC: the first fragment ends after E2 82 (valid so far), the second
    // goes on with '(' instead of the last continuation byte.
    assert_eq!(
        close_code_after(&[
            encode_frame(false, OP_TEXT, b"price: \xe2\x82", true),
            encode_frame(true, OP_CONT, b"(oops)", true),
        ]),
        1007
    );
}

#[test]
fn unmasked_client_frame_is_1002() {
    assert_eq!(
        close_code_after(&[encode_frame(true, OP_TEXT, b"naked", false)]),
        1002
    );
}

#[test]
fn reserved_opcode_is_1002() {
    assert_eq!(
        close_code_after(&[encode_frame(true, 0x3, b"what", true)]),
        1002
    );
    assert_eq!(
        close_code_after(&[encode_frame(true, 0xB, b"what", true)]),
        1002
    );
}

#[test]
fn continuation_without_start_is_1002() {
    assert_eq!(
        close_code_after(&[encode_frame(true, OP_CONT, b"orphan", true)]),
        1002
    );
}

#[test]
fn graceful_shutdown_sends_1001_and_join_returns() {
    let closes = Closes::default();
    let mut server = TestServer::start(builder().workers(2), echo_service(&closes));
    let mut clients: Vec<_> = (0..2).map(|_| ws_connect(server.addr)).collect();
    for (i, ws) in clients.iter_mut().enumerate() {
        ws.send(WsMessage::text(format!("hi {i}"))).unwrap();
        assert_eq!(ws_read_data(ws), WsMessage::text(format!("hi {i}")));
    }
    assert_eq!(server.handle.connections(), 2);

    server.handle.shutdown();
    for ws in &mut clients {
        assert_eq!(ws_read_close(ws).0, 1001);
    }
    // Like any client that saw the close handshake end, close the TCP connections:
    // the server waits for that (up to its timeouts) before it lets go of them.
    drop(clients);
    assert!(server.join(), "join returns after the shutdown");
    let seen = wait_closes(&closes, 2);
    assert!(
        seen.iter().all(|c| c.0 == 1001 && !c.2),
        "on_close saw {seen:?}"
    );
    assert_eq!(server.handle.connections(), 0);
    // The listener is gone too.
    assert!(std::net::TcpStream::connect(server.addr).is_err());
}
