//! The blocking client against an in-process echo server.

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
fn refuses_non_websocket_urls() {
    assert!(Client::connect("http://127.0.0.1:1/").is_err());
    assert!(Client::connect("ws://127.0.0.1:1/").is_err());
}
