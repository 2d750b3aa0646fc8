//! The blocking client against an in-process echo server.

use std::io::ErrorKind;
use std::net::TcpListener;

use wavecore::client::{Client, ClientMessage};
use wavecore::{Conn, Handler, Message, Server};

struct Echo;

impl Handler for Echo {
    fn on_message(&mut self, conn: &mut Conn<'_>, message: Message<'_>) {
        conn.send(message);
    }
}

fn server() -> Server {
    Server::builder()
        .bind("127.0.0.1:0")
        .workers(1)
        .start(wavecore::accept_all(|| Echo))
        .expect("server starts")
}

#[test]
fn echoes_text_binary_fragments_and_control_frames() {
    let server = server();
    let url = format!("ws://{}/echo", server.local_addr());
    let mut client = Client::connect_with(&url, &["chat"]).unwrap();
    assert_eq!(client.protocol(), None);

    client.send_text("hello").unwrap();
    assert_eq!(client.recv().unwrap(), ClientMessage::Text("hello".into()));

    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
    client.send_binary(&big).unwrap();
    assert_eq!(client.recv().unwrap(), ClientMessage::Binary(big.clone()));

    client.send_fragmented(false, &big, 4096).unwrap();
    assert_eq!(client.recv().unwrap(), ClientMessage::Binary(big));
    // Split inside the two-byte "é": only the whole message must be valid UTF-8.
    client.send_fragmented(true, "héllo".as_bytes(), 2).unwrap();
    assert_eq!(client.recv().unwrap(), ClientMessage::Text("héllo".into()));
    client.send_text("").unwrap();
    assert_eq!(client.recv().unwrap(), ClientMessage::Text(String::new()));

    client.ping(b"are you there").unwrap();
    assert_eq!(
        client.recv().unwrap(),
        ClientMessage::Pong(b"are you there".to_vec())
    );
    assert!(client.ping(&[0; 126]).is_err());

    client.close(1000, "done").unwrap();
    match client.recv().unwrap() {
        ClientMessage::Close(Some((code, _))) => assert_eq!(code, 1000),
        other => panic!("expected a close, got {other:?}"),
    }
    assert!(client.recv().is_err());
    drop(client);
    server.handle().shutdown();
    server.join().expect("no reactor failed");
}

#[test]
fn many_messages_in_flight_come_back_in_order() {
    let server = server();
    let url = format!("ws://{}/", server.local_addr());
    let mut client = Client::connect(&url).unwrap();
    for i in 0..1000 {
        client.send_text(&format!("message {i}")).unwrap();
    }
    for i in 0..1000 {
        assert_eq!(
            client.recv().unwrap(),
            ClientMessage::Text(format!("message {i}"))
        );
    }
    drop(client);
    server.handle().shutdown();
    server.join().expect("no reactor failed");
}

#[test]
fn refuses_non_websocket_urls_without_connecting() {
    // A live server, so that a refusal can only come from the URL, not the network.
    let server = server();
    let addr = server.local_addr();
    for url in [
        format!("http://{addr}/"),
        format!("ftp://{addr}/"),
        "ws:///no-host".to_owned(),
        "wss:///no-host".to_owned(),
    ] {
        let error = Client::connect(&url).expect_err(&url);
        assert_eq!(error.kind(), ErrorKind::InvalidData, "{url}: {error}");
    }
    // The same server, with a ws:// URL, works; and it saw only that one connection
    // (the listener accepts in arrival order, so an earlier connect would be counted
    // by the time this echo comes back).
    let mut client = Client::connect(&format!("ws://{addr}/")).unwrap();
    client.send_text("only me").unwrap();
    assert_eq!(
        client.recv().unwrap(),
        ClientMessage::Text("only me".into())
    );
    assert_eq!(server.handle().stats().accepted, 1);
    drop(client);
    server.handle().shutdown();
    server.join().expect("no reactor failed");
}

#[test]
fn a_port_nobody_listens_on_is_connection_refused() {
    // Bind and drop a listener to find a port that is free right now.
    let free = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let error = Client::connect(&format!("ws://{free}/")).expect_err("nobody listens");
    assert_eq!(error.kind(), ErrorKind::ConnectionRefused, "{error}");
}
