//! A client side of the channels protocol (docs/channels.md) for the tests that speak
//! it: send a request, read the next JSON answer, subscribe (from a position); and,
//! for the Redis engine's tests, a server on a Redis and the loss of a channel's keys.

use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};
use tungstenite::WebSocket;
use wavecore::channels::{ChannelsService, History, RedisChannels};

use super::{TestServer, builder};

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
        // Says what came instead of an answer (a close and its code, an error).
        let message: Value = match ws.read() {
            Ok(tungstenite::Message::Text(text)) => serde_json::from_str(&text).unwrap(),
            Ok(tungstenite::Message::Close(frame)) => panic!(
                "no answer to subscribe to {channel} from {since:?} ({} replayed): closed, {frame:?}",
                replayed.len()
            ),
            Ok(_) => continue,
            Err(e) => panic!(
                "no answer to subscribe to {channel} from {since:?} ({} replayed): {e}",
                replayed.len()
            ),
        };
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

/// Publishers in the recovery tests: each publishes `"{publisher}:{n}"`, n from 0.
pub const PUBLISHERS: usize = 4;

/// A subscriber's view of the channel `room` in the recovery tests: its position, and
/// the next message it expects of each publisher.
pub struct Seen {
    /// The channel's epoch.
    pub epoch: String,
    /// The offset of the last message taken.
    pub offset: u64,
    /// Each publisher's next `n`.
    pub next_of: [u64; PUBLISHERS],
    /// Resubscriptions from a position.
    pub recoveries: usize,
    /// Messages replayed to it, all resubscriptions together.
    pub replayed: usize,
}

impl Seen {
    /// A subscriber at `subscribed` (the answer to a subscribe without a position).
    pub fn at(subscribed: &Value) -> Self {
        Self {
            epoch: subscribed["epoch"].as_str().expect("an epoch").to_owned(),
            offset: subscribed["offset"].as_u64().expect("an offset"),
            next_of: [0; PUBLISHERS],
            recoveries: 0,
            replayed: 0,
        }
    }

    /// Takes a message; panics on a gap, a duplicate, or a publisher's messages out of
    /// order.
    pub fn take(&mut self, message: &Value) {
        assert_eq!(message["type"], "message", "{message}");
        assert_eq!(message["epoch"].as_str().unwrap(), self.epoch);
        let offset = message["offset"].as_u64().unwrap();
        assert_eq!(offset, self.offset + 1, "a gap or a duplicate: {message}");
        self.offset = offset;
        let data = message["data"].as_str().unwrap();
        let (publisher, n) = data.split_once(':').unwrap();
        let (publisher, n): (usize, u64) = (publisher.parse().unwrap(), n.parse().unwrap());
        assert_eq!(
            n, self.next_of[publisher],
            "publisher {publisher} out of order"
        );
        self.next_of[publisher] += 1;
    }

    /// Reconnected as `ws`: subscribes to `room` from the position; what was missed
    /// must come back, and recovery must succeed.
    pub fn resume(&mut self, ws: &mut Ws) {
        let epoch = self.epoch.clone();
        let (replayed, subscribed) = subscribe(ws, "room", Some((&epoch, self.offset)));
        assert_eq!(subscribed["recovered"], true, "{subscribed}");
        assert_eq!(subscribed["replayed"], replayed.len());
        for message in &replayed {
            self.take(message);
        }
        assert_eq!(subscribed["offset"], self.offset);
        self.recoveries += 1;
        self.replayed += replayed.len();
    }
}

/// A server with two reactors keeping `room`'s history in the Redis at `url`, under
/// the key prefix `prefix`.
pub fn redis_room_server(url: &str, prefix: &str) -> TestServer {
    let engine = RedisChannels::new(url)
        .unwrap()
        .key_prefix(prefix)
        .retry_backoff(Duration::from_millis(20), Duration::from_millis(200));
    TestServer::start(
        builder()
            .workers(2)
            .channel_history("room", History::last(100_000))
            .channel_engine(engine),
        ChannelsService::new(),
    )
}

/// Deletes `room`'s keys under `prefix` in the Redis at `url`: what a `FLUSHALL`, an
/// operator or an eviction does to the channel (its history is lost).
pub fn delete_room_keys(url: &str, prefix: &str) {
    let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
    let _: () = redis::cmd("DEL")
        .arg(format!("{prefix}{{room}}:m"))
        .arg(format!("{prefix}{{room}}:s"))
        .query(&mut con)
        .unwrap();
}
