//! permessage-deflate (RFC 7692) over real sockets: the 101's answer, compressed
//! messages both ways (RSV1 on the wire), the Service turning it off, the close codes
//! for bad compressed data and for a decompression bomb, `wavecore::client`'s side,
//! and a published message reaching compressed and plain subscribers.

mod common;

use std::io::Write;
use std::net::TcpStream;

use common::*;
use wavecore::client::{Client, ClientMessage};
use wavecore::internals::deflate::{Compressor, Inflater};
use wavecore::{Conn, DeflateConfig, Handler, Message, Request, ServerBuilder, Upgrade};

/// Chromium's offer.
const OFFER: &str = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";

/// What the server answers it with by default.
const ANSWER: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

fn deflate_builder() -> ServerBuilder {
    builder().permessage_deflate(DeflateConfig::default())
}

/// About 1 KiB of JSON, as a chat or a price feed sends.
fn json() -> String {
    let items: Vec<String> = (0..20)
        .map(|i| format!(r#"{{"id":{i},"user":"user{i}","text":"hello from the deflate test"}}"#))
        .collect();
    format!("[{}]", items.join(","))
}

/// A raw client that offered `extra` headers; returns the stream and the answer.
fn upgrade_with(server: &TestServer, path: &str, extra: &str) -> (TcpStream, Option<String>) {
    let mut stream = tcp(server.addr);
    stream
        .write_all(upgrade_request(path, &[], extra).as_bytes())
        .unwrap();
    let reply = read_response_head(&mut stream);
    assert_eq!(reply.status, 101);
    let answer = reply.header("Sec-WebSocket-Extensions").map(str::to_owned);
    (stream, answer)
}

/// Writes a masked client frame of a whole message, RSV1 set when `compressed`.
fn write_message(stream: &mut TcpStream, opcode: u8, payload: &[u8], compressed: bool) {
    let mut frame = encode_frame(true, opcode, payload, true);
    if compressed {
        frame[0] |= 0x40;
    }
    stream.write_all(&frame).unwrap();
}

/// Compresses a message as a client would (no context takeover).
fn compress(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    assert!(Compressor::new(6, 15).compress(payload, &mut out));
    out
}

/// Inflates one message's payload.
fn inflate(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut inflater = Inflater::new(15);
    inflater
        .inflate(payload, &mut out, 1 << 20, &mut |_| Ok(()))
        .unwrap();
    inflater.finish(&mut out, 1 << 20, &mut |_| Ok(())).unwrap();
    out
}

/// Reads one server frame: its first byte (FIN, RSV, opcode) and payload.
fn read_raw(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let frame = read_frame(stream).expect("a frame");
    (
        u8::from(frame.fin) << 7 | frame.rsv | frame.opcode,
        frame.payload,
    )
}

#[test]
fn negotiates_and_echoes_compressed_messages() {
    let closes = Closes::default();
    let server = TestServer::start(deflate_builder(), echo_service(&closes));
    let (mut stream, answer) = upgrade_with(&server, "/", OFFER);
    assert_eq!(answer.as_deref(), Some(ANSWER));

    let text = json();
    write_message(&mut stream, OP_TEXT, &compress(text.as_bytes()), true);
    let (first, payload) = read_raw(&mut stream);
    assert_eq!(first, 0x80 | 0x40 | OP_TEXT, "FIN, RSV1, text");
    assert!(payload.len() < text.len() / 2, "{} bytes", payload.len());
    assert_eq!(inflate(&payload), text.as_bytes());

    // Short messages go out uncompressed (under min_message_size), and uncompressed
    // messages are accepted on a compressed connection.
    write_message(&mut stream, OP_TEXT, b"hi", false);
    assert_eq!(read_raw(&mut stream), (0x80 | OP_TEXT, b"hi".to_vec()));

    // A compressed message in three fragments is one stream; RSV1 on the first only.
    let compressed = compress(text.as_bytes());
    let (a, rest) = compressed.split_at(compressed.len() / 3);
    let (b, c) = rest.split_at(rest.len() / 2);
    let mut first = encode_frame(false, OP_TEXT, a, true);
    first[0] |= 0x40;
    stream.write_all(&first).unwrap();
    write_frame(&mut stream, false, OP_CONT, b);
    write_frame(&mut stream, true, OP_CONT, c);
    let (_, payload) = read_raw(&mut stream);
    assert_eq!(inflate(&payload), text.as_bytes());
}

#[test]
fn without_an_offer_or_the_option_rsv1_is_a_protocol_error() {
    let closes = Closes::default();
    let server = TestServer::start(deflate_builder(), echo_service(&closes));
    let (mut stream, answer) = upgrade_with(&server, "/", "");
    assert_eq!(answer, None);
    write_message(&mut stream, OP_TEXT, &compress(b"hello"), true);
    assert_eq!(read_close_code(&mut stream), 1002);

    // Off by default: the offer is declined.
    let server = TestServer::start(builder(), echo_service(&closes));
    let (mut stream, answer) = upgrade_with(&server, "/", OFFER);
    assert_eq!(answer, None);
    write_message(&mut stream, OP_TEXT, &compress(b"hello"), true);
    assert_eq!(read_close_code(&mut stream), 1002);
}

#[test]
fn the_service_sees_offers_and_can_decline() {
    let closes = Closes::default();
    let service = move |request: &Request<'_>| {
        let offers: Vec<String> = request.deflate_offers().map(|o| o.to_string()).collect();
        let echo = Echo {
            closes: closes.clone(),
        };
        let upgrade = Upgrade::accept(echo).with_header("X-Offers", offers.join(" | "));
        if request.path() == "/plain" {
            upgrade.without_compression()
        } else {
            upgrade
        }
    };
    let server = TestServer::start(deflate_builder(), service);
    // An invalid offer first (a duplicated parameter) is skipped: the second wins.
    let offers = "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; \
                  server_no_context_takeover, permessage-deflate; server_max_window_bits=10\r\n";
    let mut stream = tcp(server.addr);
    stream
        .write_all(upgrade_request("/", &[], offers).as_bytes())
        .unwrap();
    let reply = read_response_head(&mut stream);
    assert_eq!(
        reply.header("X-Offers"),
        Some("permessage-deflate; server_max_window_bits=10")
    );
    assert_eq!(
        reply.header("Sec-WebSocket-Extensions"),
        Some(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10"
        )
    );
    let (_, answer) = upgrade_with(&server, "/plain", OFFER);
    assert_eq!(answer, None);
}

#[test]
fn invalid_compressed_data_closes_with_1007() {
    let closes = Closes::default();
    let server = TestServer::start(deflate_builder(), echo_service(&closes));
    let (mut stream, _) = upgrade_with(&server, "/", OFFER);
    // Block type 3 is reserved (RFC 1951 section 3.2.3).
    write_message(&mut stream, OP_BINARY, &[0xff, 0xff, 0xff], true);
    assert_eq!(read_close_code(&mut stream), 1007);
    assert_eq!(wait_closes(&closes, 1)[0].0, 1007);
}

#[test]
fn a_decompression_bomb_closes_with_1009() {
    let closes = Closes::default();
    let builder = deflate_builder().max_message_size(64 << 10);
    let server = TestServer::start(builder, echo_service(&closes));
    let (mut stream, _) = upgrade_with(&server, "/", OFFER);
    // 16 MiB of zeros compress to about 16 KiB, well under every frame limit.
    let bomb = compress(&vec![0u8; 16 << 20]);
    assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
    write_message(&mut stream, OP_BINARY, &bomb, true);
    assert_eq!(read_close_code(&mut stream), 1009);
}

#[test]
fn the_client_negotiates_and_round_trips() {
    let closes = Closes::default();
    let server = TestServer::start(deflate_builder(), echo_service(&closes));
    let url = format!("ws://{}/", server.addr);
    let mut client = Client::connect_deflate(&url, &[]).unwrap();
    let negotiated = client.deflate().expect("the server accepted the offer");
    assert!(negotiated.inflate.no_context_takeover);
    let text = json();
    for _ in 0..3 {
        client.send_text(&text).unwrap();
        assert_eq!(client.recv().unwrap(), ClientMessage::Text(text.clone()));
    }
    client.send_binary(b"short").unwrap();
    assert_eq!(
        client.recv().unwrap(),
        ClientMessage::Binary(b"short".to_vec())
    );
    // A client that does not offer it is unaffected.
    let mut plain = Client::connect(&url).unwrap();
    assert_eq!(plain.deflate(), None);
    plain.send_text(&text).unwrap();
    assert_eq!(plain.recv().unwrap(), ClientMessage::Text(text));
}

/// Subscribes to "room" on open; publishes what it receives there.
struct Room;

impl Handler for Room {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.subscribe("room");
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        conn.publish("room", message);
    }
}

#[test]
fn a_publish_reaches_compressed_and_plain_subscribers() {
    let server = TestServer::start(deflate_builder(), wavecore::accept_all(|| Room));
    let (mut compressed, answer) = upgrade_with(&server, "/", OFFER);
    assert!(answer.is_some());
    let (mut small_window, answer) = upgrade_with(
        &server,
        "/",
        "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=8\r\n",
    );
    assert!(answer.unwrap().contains("server_max_window_bits=8"));
    let (mut plain, _) = upgrade_with(&server, "/", "");
    assert!(wait_until(|| server.handle.stats().open_connections == 3));

    let text = json();
    write_message(&mut plain, OP_TEXT, text.as_bytes(), false);
    let (first, payload) = read_raw(&mut compressed);
    assert_eq!(first, 0x80 | 0x40 | OP_TEXT);
    assert_eq!(inflate(&payload), text.as_bytes());
    // Compressed once with a 32 KiB window, for a message over 256 bytes: a
    // subscriber that asked for a 256-byte window gets it uncompressed.
    assert_eq!(
        read_raw(&mut small_window),
        (0x80 | OP_TEXT, text.clone().into_bytes())
    );
    assert_eq!(read_raw(&mut plain), (0x80 | OP_TEXT, text.into_bytes()));
}

/// Hands its handle to the test at `on_open`.
struct Reached(std::sync::mpsc::Sender<wavecore::ConnHandle>);

impl Handler for Reached {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let _ = self.0.send(conn.handle());
    }

    fn on_message(&mut self, _: &mut Conn<'_>, _: Message<'_>) {}
}

#[test]
fn a_handle_send_is_compressed_for_a_client_that_negotiated_it() {
    let (tx, handles) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let server = TestServer::start(deflate_builder(), move |_: &wavecore::Request<'_>| {
        wavecore::Upgrade::accept(Reached(tx.lock().unwrap().clone()))
    });
    let (mut compressed, answer) = upgrade_with(&server, "/", OFFER);
    assert!(answer.is_some());
    let to_compressed = handles.recv_timeout(IO_TIMEOUT).unwrap();
    let (mut plain, _) = upgrade_with(&server, "/", "");
    let to_plain = handles.recv_timeout(IO_TIMEOUT).unwrap();
    let text = json();
    for handle in [&to_compressed, &to_plain] {
        // A large message (compressed on the sending thread) and a small one (never
        // compressed).
        assert_eq!(handle.send_text(&text), wavecore::HandleStatus::Queued);
        assert_eq!(handle.send_text("hi"), wavecore::HandleStatus::Queued);
    }
    let (first, payload) = read_raw(&mut compressed);
    assert_eq!(first, 0x80 | 0x40 | OP_TEXT);
    assert_eq!(inflate(&payload), text.as_bytes());
    assert_eq!(read_raw(&mut compressed), (0x80 | OP_TEXT, b"hi".to_vec()));
    assert_eq!(read_raw(&mut plain), (0x80 | OP_TEXT, text.into_bytes()));
    assert_eq!(read_raw(&mut plain), (0x80 | OP_TEXT, b"hi".to_vec()));
}
