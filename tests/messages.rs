//! Data messages over real sockets: echo of text and binary, fragmented messages with
//! an interleaved ping, ping/pong payloads, and a handler panic isolated to its own
//! connection.

mod common;

use common::*;
use tungstenite::Message as WsMessage;
use wavecore::{Conn, Handler, Message, Request, SendStatus, Upgrade};

#[test]
fn echoes_text_and_binary() {
    let closes = Closes::default();
    let server = TestServer::start(builder(), echo_service(&closes));
    let mut ws = ws_connect(server.addr);

    ws.send(WsMessage::text("hello, wavecore")).unwrap();
    assert_eq!(ws_read_data(&mut ws), WsMessage::text("hello, wavecore"));

    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    ws.send(WsMessage::binary(binary.clone())).unwrap();
    assert_eq!(ws_read_data(&mut ws), WsMessage::binary(binary));

    // Larger than the reactor's read buffer: arrives over many reads.
    let large: Vec<u8> = (0..(1 << 20) + 1).map(|i| (i % 251) as u8).collect();
    ws.send(WsMessage::binary(large.clone())).unwrap();
    assert_eq!(ws_read_data(&mut ws), WsMessage::binary(large));

    ws.send(WsMessage::text("")).unwrap();
    assert_eq!(ws_read_data(&mut ws), WsMessage::text(""));
}

#[test]
fn fragmented_text_with_interleaved_ping_is_one_message_and_a_pong() {
    let closes = Closes::default();
    let server = TestServer::start(builder(), echo_service(&closes));
    let mut stream = raw_upgrade(server.addr);

    write_frame(&mut stream, false, OP_TEXT, "Hel".as_bytes());
    write_frame(&mut stream, true, OP_PING, b"mid");
    write_frame(&mut stream, false, OP_CONT, "lo, wö".as_bytes());
    write_frame(&mut stream, true, OP_CONT, "rld".as_bytes());

    // The pong answers the ping, which came before the message was complete.
    let pong = read_frame(&mut stream).expect("pong");
    assert_eq!(
        (pong.fin, pong.opcode, &pong.payload[..]),
        (true, OP_PONG, &b"mid"[..])
    );
    let text = read_frame(&mut stream).expect("echo");
    assert_eq!(text.opcode, OP_TEXT);
    assert!(text.fin, "echoed as one unfragmented message");
    assert_eq!(text.payload, "Hello, wörld".as_bytes());

    // Nothing else was sent: the next frame is the answer to our close.
    write_frame(&mut stream, true, OP_CLOSE, &close_payload(1000, ""));
    assert_eq!(read_frame(&mut stream).expect("close").close_code(), 1000);
    assert!(read_frame(&mut stream).is_none(), "EOF after the close");
    assert_eq!(wait_closes(&closes, 1)[0].0, 1000);
}

#[test]
fn ping_is_answered_with_the_same_payload() {
    let closes = Closes::default();
    let server = TestServer::start(builder(), echo_service(&closes));
    let mut ws = ws_connect(server.addr);
    ws.send(WsMessage::Ping(b"are you there?".to_vec().into()))
        .unwrap();
    match ws.read().unwrap() {
        WsMessage::Pong(payload) => assert_eq!(&payload[..], b"are you there?"),
        other => panic!("expected a pong, got {other:?}"),
    }

    // Raw, with an empty payload and with the largest allowed one.
    let mut stream = raw_upgrade(server.addr);
    for payload in [Vec::new(), vec![b'p'; 125]] {
        write_frame(&mut stream, true, OP_PING, &payload);
        let pong = read_frame(&mut stream).unwrap();
        assert_eq!((pong.opcode, pong.payload), (OP_PONG, payload));
    }
}

/// Echoes, but panics on "boom".
struct Fragile;

impl Handler for Fragile {
    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        if message == Message::Text("boom") {
            panic!("boom requested by the test");
        }
        assert_eq!(conn.send(message), SendStatus::Success);
    }
}

#[test]
fn handler_panic_closes_only_its_connection_with_1011() {
    // One worker: both connections live on the same reactor.
    let server = TestServer::start(builder().workers(1), |_: &Request<'_>| {
        Upgrade::accept(Fragile)
    });
    let mut healthy = ws_connect(server.addr);
    let mut doomed = ws_connect(server.addr);

    healthy.send(WsMessage::text("before")).unwrap();
    assert_eq!(ws_read_data(&mut healthy), WsMessage::text("before"));
    doomed.send(WsMessage::text("still fine")).unwrap();
    assert_eq!(ws_read_data(&mut doomed), WsMessage::text("still fine"));

    doomed.send(WsMessage::text("boom")).unwrap();
    let (code, _) = ws_read_close(&mut doomed);
    assert_eq!(code, 1011);

    healthy.send(WsMessage::text("after")).unwrap();
    assert_eq!(ws_read_data(&mut healthy), WsMessage::text("after"));
    assert_eq!(server.handle.stats().handler_panics, 1);
    assert!(wait_until(|| server.handle.connections() == 1));
}
