//! A client side of the channels protocol (docs/channels.md) for the tests that speak
//! it: send a request, read the next JSON answer, subscribe (from a position).

use std::net::TcpStream;

use serde_json::{Value, json};
use tungstenite::WebSocket;

/// A test's WebSocket client.
pub type Ws = WebSocket<TcpStream>;

/// Sends `value` as a text message.
pub fn send(ws: &mut Ws, value: Value) {
    ws.send(tungstenite::Message::text(value.to_string()))
        .expect("send");
}

/// The next JSON message, or `None` once the connection failed or closed.
pub fn read_json(ws: &mut Ws) -> Option<Value> {
    loop {
        match ws.read() {
            Ok(tungstenite::Message::Text(text)) => {
                return Some(serde_json::from_str(&text).expect("JSON from the server"));
            }
            Ok(tungstenite::Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// Subscribes to `channel` (from `since`, if given) and returns the replayed messages
/// and the answer (`subscribed`, or `error`).
pub fn subscribe(ws: &mut Ws, channel: &str, since: Option<(&str, u64)>) -> (Vec<Value>, Value) {
    let mut request = json!({"type": "subscribe", "channel": channel});
    if let Some((epoch, offset)) = since {
        request["since"] = json!({"epoch": epoch, "offset": offset});
    }
    send(ws, request);
    let mut replayed = Vec::new();
    loop {
        let message = read_json(ws).expect("an answer to subscribe");
        match message["type"].as_str() {
            Some("message") => replayed.push(message),
            Some("subscribed") | Some("error") => return (replayed, message),
            _ => panic!("unexpected {message}"),
        }
    }
}

/// Reads until the server's close frame, which must carry `code`; panics on anything
/// else (a message, an error, no close).
pub fn expect_close(ws: &mut Ws, code: u16) {
    match ws.read() {
        Ok(tungstenite::Message::Close(Some(frame))) => {
            assert_eq!(u16::from(frame.code), code, "{frame:?}");
        }
        other => panic!("not closed with {code}: {other:?}"),
    }
}
