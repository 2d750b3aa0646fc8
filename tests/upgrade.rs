//! What an accepted upgrade carries over real sockets: the subprotocol chosen with
//! `Upgrade::with_protocol` (in the 101 and in `Conn::protocol`) and the fields added
//! with `Upgrade::with_header`.

mod common;

use std::io::Write;

use common::*;
use wavecore::client::{Client, ClientMessage};
use wavecore::{Conn, Handler, Message, Request, Upgrade};

/// Says which subprotocol its connection has, then echoes.
struct Protocol;

impl Handler for Protocol {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let protocol = conn.protocol().unwrap_or("none").to_owned();
        conn.send_text(&format!("protocol {protocol}"));
    }

    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        conn.send(message);
    }
}

/// Picks the last offered subprotocol it knows (`chat.v1`, `chat.v2`) and adds two
/// fields to every 101, one of them trying to smuggle in a header line of its own.
fn service(request: &Request<'_>) -> Upgrade<Protocol> {
    let known = ["chat.v1", "chat.v2"];
    let chosen = request.protocols().filter(|p| known.contains(p)).last();
    let upgrade = Upgrade::accept(Protocol)
        .with_header("X-Served-By", "wavecore-test")
        .with_header("X-Note", "a\r\nSet-Cookie: stolen=1");
    match chosen {
        Some(protocol) => upgrade.with_protocol(protocol),
        None => upgrade,
    }
}

/// Upgrades with `extra` header lines; returns the 101 and the first frame's text.
fn upgrade_with(server: &TestServer, extra: &str) -> (HttpReply, String) {
    let mut stream = tcp(server.addr);
    stream
        .write_all(upgrade_request("/", &[], extra).as_bytes())
        .unwrap();
    let reply = read_response_head(&mut stream);
    assert_eq!(reply.status, 101, "{reply:?}");
    let first = read_frame(&mut stream).expect("the on_open message");
    (reply, String::from_utf8(first.payload).unwrap())
}

#[test]
fn the_chosen_subprotocol_is_in_the_101_and_in_conn_protocol() {
    let server = TestServer::start(builder(), service);
    let (reply, said) = upgrade_with(
        &server,
        "Sec-WebSocket-Protocol: mqtt, chat.v1\r\nSec-WebSocket-Protocol: chat.v2, x\r\n",
    );
    assert_eq!(reply.header("Sec-WebSocket-Protocol"), Some("chat.v2"));
    assert_eq!(said, "protocol chat.v2");

    // Nothing known offered, or nothing offered: no subprotocol field at all.
    for extra in ["Sec-WebSocket-Protocol: mqtt\r\n", ""] {
        let (reply, said) = upgrade_with(&server, extra);
        assert_eq!(reply.header("Sec-WebSocket-Protocol"), None, "{extra:?}");
        assert_eq!(said, "protocol none");
    }

    // A real client agrees on it.
    let url = format!("ws://{}/", server.addr);
    let mut client = Client::connect_with(&url, &["chat.v1"]).unwrap();
    assert_eq!(client.protocol(), Some("chat.v1"));
    assert_eq!(
        client.recv().unwrap(),
        ClientMessage::Text("protocol chat.v1".into())
    );
}

#[test]
fn added_fields_are_in_the_101_and_cannot_add_lines() {
    let server = TestServer::start(builder(), service);
    let (reply, _) = upgrade_with(&server, "");
    assert_eq!(reply.header("X-Served-By"), Some("wavecore-test"));
    // CR and LF are dropped from values: the smuggled field stays inside X-Note.
    assert_eq!(reply.header("X-Note"), Some("aSet-Cookie: stolen=1"));
    assert_eq!(reply.header("Set-Cookie"), None, "{reply:?}");
    // The fields the handshake needs are all there beside them.
    assert_eq!(reply.header("Upgrade"), Some("websocket"));
    assert_eq!(
        reply.header("Sec-WebSocket-Accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
}

#[test]
fn a_subprotocol_the_client_did_not_offer_is_refused_with_500() {
    // An application bug: every conforming client would fail the handshake.
    let server = TestServer::start(builder(), |_: &Request<'_>| {
        Upgrade::accept(Protocol).with_protocol("chat.v9")
    });
    for extra in ["Sec-WebSocket-Protocol: chat.v1\r\n", ""] {
        let mut stream = tcp(server.addr);
        stream
            .write_all(upgrade_request("/", &[], extra).as_bytes())
            .unwrap();
        let reply = read_response_head(&mut stream);
        assert_eq!(reply.status, 500, "{extra:?}: {reply:?}");
        assert_eq!(reply.header("Sec-WebSocket-Protocol"), None);
    }
    assert_eq!(server.handle.stats().open_connections, 0);
}
